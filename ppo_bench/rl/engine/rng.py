"""Counter-based random numbers with a run axis.

Every random draw of a run is a pure function of (run seed, stream, counter): action noise at
step t, minibatch permutations at (iteration, epoch). So a run draws the same numbers alone or
inside a population of any size, draws for all R runs are one vectorised call, and resuming needs
no generator state — only the step counter (PureJaxRL's keys, carried to PyTorch).

The mixer is Wellons' 32-bit "lowbias32" integer hash, chained over the key words.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF

# streams: one per kind of draw, so they never overlap
ACTION = 1
PERMUTATION = 2
VALUE_PERMUTATION = 3  # the value-function fit of TRPO and vanilla PG
CEM_CANDIDATES = 4  # the cross-entropy method's candidate parameters
EPISODE_RESET = 5  # seeds of the resets of algorithms whose episodes start with each iteration (CEM)


def _mix32(x: Tensor) -> Tensor:
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def hash_words(*words: Tensor | int) -> Tensor:
    """Hash broadcastable int64 tensors (or ints) into 32-bit values."""
    h = torch.as_tensor(0x9E3779B9, dtype=torch.int64)
    for w in words:
        w = torch.as_tensor(w, dtype=torch.int64)
        h = _mix32(h ^ _mix32(w + 0x632BE5AB))
    return h


def uniform(seeds: Tensor, stream: int, counter: Tensor) -> Tensor:
    """U(0, 1) float32 in the open interval, shaped broadcast(seeds, counter).

    seeds: (R, 1, ...) int64 per-run seeds; counter: int64 indices of the draws.
    """
    h = hash_words(seeds, stream, counter >> 32, counter & _MASK32)
    return ((h >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def normal(seeds: Tensor, stream: int, counter: Tensor) -> Tensor:
    """Standard normal draws (Box–Muller on two hashed uniforms)."""
    u1 = uniform(seeds, stream, 2 * counter)
    u2 = uniform(seeds, stream, 2 * counter + 1)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


def permutations(seeds: Tensor, stream: int, start: Tensor, n: int) -> Tensor:
    """One permutation of range(n) per run: argsort of hashed keys. seeds, start: (R,)."""
    counter = start.view(-1, 1) * n + torch.arange(n, dtype=torch.int64)
    keys = hash_words(seeds.view(-1, 1), stream, counter >> 32, counter & _MASK32)
    return torch.argsort(keys, dim=1, stable=True)
