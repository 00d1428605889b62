"""The actor-critic MLP of paper §6.1 (64-64 tanh), with a leading run axis R on every parameter.

All parameters of all runs live in one flat (R, P) tensor; each layer is a view into it, a batched
affine map x (R, B, in) ↦ x @ W (R, in, out) + b (R, 1, out), so one ``baddbmm`` evaluates the
layer of every run, and the optimiser, gradient clipping and masking act on a single tensor.
Run r's parameters are initialised from its own seed, so a run starts from the same weights alone
or in a population.

``arch=separate``: policy and value networks share nothing (paper default for MuJoCo).
``arch=shared``: one trunk with a policy head and a value head (paper eq. 9 couples them).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

def tanh_via_sigmoid(x: Tensor) -> Tensor:
    """tanh(x) = 2σ(2x) − 1. Measured on the CPU builds we run: torch's tanh kernel costs ~3× its
    sigmoid kernel, and tanh dominated a 33-run update. Used by every torch forward (training, any R); the
    NumPy acting policy uses np.tanh, equal to float rounding."""
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


class _Tanh(torch.autograd.Function):
    """tanh_via_sigmoid with the backward 1 − tanh² from the saved output."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = tanh_via_sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


ACTIVATIONS = {"tanh": _Tanh.apply, "relu": torch.relu}
NO_GRAD_ACTIVATIONS = {"tanh": tanh_via_sigmoid, "relu": torch.relu}  # the taped forward: no autograd


def _tanh_backward(grad: Tensor, y: Tensor) -> Tensor:
    return torch.addcmul(grad, grad * y, y, value=-1.0)  # grad · (1 − y²)


def _relu_backward(grad: Tensor, y: Tensor) -> Tensor:
    return grad * (y > 0)


ACTIVATION_BACKWARDS = {"tanh": _tanh_backward, "relu": _relu_backward}  # from the activation's output

# Batched GEMMs with a narrow output (a policy or value head: out = 1..A columns) run several times
# slower in MKL's batched kernel than the same product computed transposed (outᵀ = Wᵀ·xᵀ), measured
# on the CPUs we run; layers narrower than this are evaluated and differentiated transposed.
NARROW_OUTPUT = 16


def _pad_batch(t: Tensor) -> Tensor:
    """(1, m, n) → (2, m, n): t then zeros, each matrix with t's own strides (which decide the kernel too)."""
    _, m, n = t.shape
    size = 1 + (m - 1) * t.stride(1) + (n - 1) * t.stride(2)
    out = t.new_zeros(2 * size).as_strided((2, m, n), (size, t.stride(1), t.stride(2)))
    out[0] = t[0]
    return out


def _bmm(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    """bias + a @ b for batches (R, m, k) @ (R, k, n), each run's product the same bits whatever R is.

    A batch of one matrix-vector product (m or n = 1) takes another kernel than a batch of several
    (measured: a value head's (1, 1, 64)·(1, 64, B) differs from row 0 of the same product with R = 2 in
    the last bits), which would make a run alone differ from the same run in a population. Such a
    product is padded to a batch of two (``tests/test_population.py`` checks a member against its solo run)."""
    pad = a.shape[0] == 1 and (a.shape[1] == 1 or b.shape[2] == 1)
    if pad:
        a, b = _pad_batch(a), _pad_batch(b)
        bias = None if bias is None else _pad_batch(bias)
    out = torch.bmm(a, b) if bias is None else torch.baddbmm(bias, a, b)
    return out[:1] if pad else out


def _affine(x: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """x (R, B, in) @ W (R, in, out) + b (R, 1, out)."""
    if W.shape[2] < NARROW_OUTPUT:
        return _bmm(W.transpose(1, 2), x.transpose(1, 2), b.transpose(1, 2)).transpose(1, 2)
    return _bmm(x, W, b)


class FlatLayout:
    """Named (R, *shape) views into one flat (R, P) parameter tensor."""

    def __init__(self):
        self.slots: dict[str, tuple[int, tuple[int, ...]]] = {}
        self.size = 0

    def add(self, name: str, *shape: int) -> str:
        self.slots[name] = (self.size, shape)
        self.size += math.prod(shape)
        return name

    def view(self, flat: Tensor, name: str) -> Tensor:
        off, shape = self.slots[name]
        return flat[:, off:off + math.prod(shape)].view(flat.shape[0], *shape)

    def views(self, flat: Tensor) -> dict[str, Tensor]:
        """All named views at once: one split (and one node for autograd) instead of a slice each."""
        parts = flat.split([math.prod(shape) for _, shape in self.slots.values()], dim=1)
        return {name: p.view(flat.shape[0], *shape) for (name, (_, shape)), p in zip(self.slots.items(), parts)}


class ActorCritic(nn.Module):
    """Returns (distribution parameters (R, B, P), value (R, B))."""

    def __init__(self, runs: int, obs_dim: int, action_dim: int, gaussian: bool,
                 hidden: Sequence[int] = (64, 64), activation: str = "tanh", arch: str = "separate",
                 log_std_init: float = 0.0):
        super().__init__()
        if arch not in ("separate", "shared"):
            raise ValueError(f"model.arch must be 'separate' or 'shared', got {arch!r}")
        self.arch, self.gaussian, self.action_dim = arch, gaussian, action_dim
        self.activation = activation
        self.act, self.act_no_grad = ACTIVATIONS[activation], NO_GRAD_ACTIVATIONS[activation]
        self.log_std_init = log_std_init
        self.layout = lay = FlatLayout()
        hidden = list(hidden)

        def mlp(prefix: str, sizes: list[int]) -> list[tuple[str, str]]:
            return [(lay.add(f"{prefix}.{k}.weight", i, o), lay.add(f"{prefix}.{k}.bias", 1, o))
                    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]))]

        if arch == "separate":
            self.trunk = []
            self.pi = mlp("pi", [obs_dim, *hidden, action_dim])
            self.vf = mlp("vf", [obs_dim, *hidden, 1])
        else:
            self.trunk = mlp("trunk", [obs_dim, *hidden])
            self.pi = mlp("pi", [hidden[-1], action_dim])
            self.vf = mlp("vf", [hidden[-1], 1])
        self.log_std = lay.add("log_std", 1, action_dim) if gaussian else None
        self.flat = nn.Parameter(torch.zeros(runs, lay.size))

    def _forward(self, obs: Tensor, tape: list | None = None, flat: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(distribution parameters, value); with a tape, each layer's (weight, bias, input, activated
        output or None) is appended for backward_taped() and the activation is autograd-free. ``flat``:
        other (R, P) parameters in this network's layout (a line-search candidate, an average network)."""
        p = self.layout.views(self.flat if flat is None else flat)
        act = self.act if tape is None else self.act_no_grad

        def mlp(layers, x: Tensor, last_activation: bool) -> Tensor:
            for k, (w, b) in enumerate(layers):
                inp = x
                x = _affine(inp, p[w], p[b])
                activated = k < len(layers) - 1 or last_activation
                if activated:
                    x = act(x)
                if tape is not None:
                    tape.append((w, b, inp, x if activated else None))
            return x

        h = mlp(self.trunk, obs, True) if self.trunk else obs
        out, value = mlp(self.pi, h, False), mlp(self.vf, h, False)
        if self.gaussian:
            out = torch.cat([out, p[self.log_std].expand_as(out)], -1)
        return out, value.squeeze(-1)

    def forward(self, obs: Tensor, flat: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._forward(obs, flat=flat)

    # ---- training: forward with a tape, backward by hand ---------------------------------------
    # The update's minibatch step is two small MLPs per run; autograd's bookkeeping (and the
    # gradient of the split into named views, a copy of the whole (R, P) gradient) cost as much as
    # the matrix products. The network's backward is therefore written out (it is the textbook
    # one); autograd differentiates only the loss w.r.t. the network outputs. Checked against
    # autograd in tests/test_networks.py.

    @torch.no_grad()
    def forward_taped(self, obs: Tensor) -> tuple[Tensor, Tensor, list]:
        """forward() without autograd, plus the tape backward_taped() needs."""
        tape: list = []
        out, value = self._forward(obs, tape)
        return out, value, tape

    @torch.no_grad()
    def backward_taped(self, tape: list, grad_out: Tensor, grad_value: Tensor) -> Tensor:
        """∂loss/∂flat (R, P) from ∂loss/∂(distribution parameters, value) of forward_taped."""
        p = self.layout.views(self.flat)
        act_backward = ACTIVATION_BACKWARDS[self.activation]
        grads: dict[str, Tensor] = {}
        n_trunk, n_pi = len(self.trunk), len(self.pi)
        trunk_tape, pi_tape, vf_tape = tape[:n_trunk], tape[n_trunk:n_trunk + n_pi], tape[n_trunk + n_pi:]

        def backprop(entries, g: Tensor, need_input_grad: bool) -> Tensor | None:
            for k in range(len(entries) - 1, -1, -1):
                w, b, inp, y = entries[k]
                if y is not None:
                    g = act_backward(g, y)
                W = p[w]
                if W.shape[2] < NARROW_OUTPUT:  # (∂W)ᵀ = gᵀ·x, the fast orientation for narrow layers
                    grads[w] = _bmm(g.transpose(1, 2), inp).transpose(1, 2)
                else:
                    grads[w] = _bmm(inp.transpose(1, 2), g)
                grads[b] = g.sum(1, keepdim=True)
                if k > 0 or need_input_grad:  # g·Wᵀ; a one-column layer's is an outer product, cheaper broadcast
                    g = g * W.transpose(1, 2) if W.shape[2] == 1 else _bmm(g, W.transpose(1, 2))
            return g

        A = self.action_dim
        g_pi = grad_out[..., :A] if self.gaussian else grad_out
        g_h_pi = backprop(pi_tape, g_pi, bool(self.trunk))
        g_h_vf = backprop(vf_tape, grad_value.unsqueeze(-1), bool(self.trunk))
        if self.trunk:
            backprop(trunk_tape, g_h_pi + g_h_vf, False)
        if self.gaussian:
            grads[self.log_std] = grad_out[..., A:].sum(1, keepdim=True)
        R = self.flat.shape[0]
        return torch.cat([grads[name].reshape(R, -1) for name in self.layout.slots], 1)

    @torch.no_grad()
    def jvp_taped(self, tape: list, v: Tensor) -> Tensor:
        """J·v: the change of the distribution parameters (R, B, P) of forward_taped along a direction v (R, P)
        of the flat parameters (forward-mode, written out like backward_taped: d(x W + b) = dx W + x dW + db,
        then the activation's derivative from its saved output). TRPO's Fisher-vector product is Jᵀ M J v."""
        dp = self.layout.views(v)
        act_deriv = ACTIVATION_BACKWARDS[self.activation]  # g ↦ g·σ'(x) from the activation's output
        n_trunk, n_pi = len(self.trunk), len(self.pi)

        def forward(entries, dx: Tensor | None) -> Tensor:
            for w, b, inp, y in entries:
                out = _affine(inp, dp[w], dp[b])
                if dx is not None:
                    out = out + _affine(dx, self.layout.view(self.flat, w), torch.zeros_like(dp[b]))
                dx = act_deriv(out, y) if y is not None else out
            return dx

        dh = forward(tape[:n_trunk], None) if self.trunk else None
        d_out = forward(tape[n_trunk:n_trunk + n_pi], dh)
        if self.gaussian:
            d_out = torch.cat([d_out, dp[self.log_std].expand_as(d_out)], -1)
        return d_out

    def value(self, obs: Tensor) -> Tensor:
        """The value network alone, (R, B, in) ↦ (R, B): a rollout's values are evaluated after it, all at once.
        Autograd-free activations; call it under torch.no_grad (undecorated: torch.compile keys its cache on
        the code object, and every no_grad-decorated function shares the decorator's)."""
        p = self.layout.views(self.flat)
        h = obs
        for k, (w, b) in enumerate(self.trunk + self.vf):
            h = _affine(h, p[w], p[b])
            if k < len(self.trunk) + len(self.vf) - 1:
                h = self.act_no_grad(h)
        return h.squeeze(-1)

    @torch.no_grad()
    def acting_policy(self):
        """A function obs (R, B, in) ↦ distribution parameters (R, B, P) for rollouts, in NumPy float32.

        Rollouts feed a handful of observations per run, so each op's fixed cost and the weights' trip
        from memory are the price, not the arithmetic: NumPy's per-op cost is a fraction of torch's, and
        acting needs only the policy network (the rollout's values are evaluated after it, in one batched
        pass: ``value``). Built once per rollout from the current parameters (they do not change while
        acting). Matches forward() to float rounding (np.tanh, not tanh_via_sigmoid's arithmetic)."""
        v = lambda name: self.layout.view(self.flat, name).detach().numpy().copy()  # noqa: E731
        layers = [(v(w), v(b)) for w, b in self.trunk + self.pi]
        log_std = v(self.log_std) if self.gaussian else None
        tanh = self.activation == "tanh"

        def forward(obs: np.ndarray) -> np.ndarray:
            h = obs
            for k, (W, b) in enumerate(layers):
                h = np.matmul(h, W)
                h += b
                if k < len(layers) - 1:
                    h = np.tanh(h, out=h) if tanh else np.maximum(h, 0, out=h)
            if log_std is not None:
                h = np.concatenate([h, np.broadcast_to(log_std, h.shape)], -1)
            return h

        return forward

    @torch.no_grad()
    def init_run(self, r: int, seed: int, scheme: str = "orthogonal") -> None:
        """(Re)initialise run r from its seed. orthogonal (ppo2): hidden gain √2, policy head 0.01, value head 1;
        normc (ppo1): every unit's incoming weights a Gaussian vector scaled to norm 1 (policy head 0.01)."""
        gen = torch.Generator().manual_seed(int(seed))
        root2 = math.sqrt(2)
        for layers, last_gain in ((self.trunk, root2), (self.pi, 0.01), (self.vf, 1.0)):
            for k, (w, b) in enumerate(layers):
                gain = last_gain if k == len(layers) - 1 else root2
                W, B = self.layout.view(self.flat, w)[r], self.layout.view(self.flat, b)[r, 0]
                fan_in, fan_out = W.shape
                weight = torch.empty(fan_out, fan_in)  # torch's Linear layout, so init matches nn.Linear
                if scheme == "orthogonal":
                    nn.init.orthogonal_(weight, gain=gain, generator=gen)
                    bias = torch.zeros(fan_out)
                elif scheme == "normc":  # baselines' U.normc_initializer(std): Gaussian rows scaled to norm std
                    std = 0.01 if layers is self.pi and k == len(layers) - 1 else 1.0
                    weight = torch.randn(fan_out, fan_in, generator=gen)
                    weight *= std / weight.norm(dim=1, keepdim=True)
                    bias = torch.zeros(fan_out)
                elif scheme == "xavier":  # Glorot & Bengio 2010: U(±gain·√(6 / (fan_in + fan_out))), gain 1 everywhere
                    nn.init.xavier_uniform_(weight, gain=1.0, generator=gen)
                    bias = torch.zeros(fan_out)
                elif scheme == "default":
                    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=gen)
                    bound = 1 / math.sqrt(fan_in)
                    bias = torch.empty(fan_out).uniform_(-bound, bound, generator=gen)
                else:
                    raise ValueError(f"unknown init scheme {scheme!r}")
                W.copy_(weight.T)
                B.copy_(bias)
        if self.log_std is not None:
            self.layout.view(self.flat, self.log_std)[r].fill_(self.log_std_init)

    @property
    def value_columns(self) -> slice:
        """The columns of ``flat`` that only the value function reads (arch=separate: its whole network)."""
        if self.arch != "separate":
            raise ValueError("a value function of its own needs model.arch=separate")
        first, last = self.layout.slots[self.vf[0][0]][0], self.layout.slots[self.vf[-1][1]]
        return slice(first, last[0] + math.prod(last[1]))

    def run_state(self, r: int) -> dict[str, Tensor]:
        """Run r's parameters by name (readable checkpoints)."""
        return {name: self.layout.view(self.flat, name)[r].detach().clone() for name in self.layout.slots}

    @torch.no_grad()
    def load_run_state(self, r: int, state: dict[str, Tensor]) -> None:
        for name in self.layout.slots:
            self.layout.view(self.flat, name)[r].copy_(state[name])
