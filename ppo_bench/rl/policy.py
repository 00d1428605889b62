"""A trained run's policy, for use outside training: ``load_policy(run_dir).act(obs)``.

The acting policy is a plain torch module (``ActingPolicy``): raw observations in, normalised with the
run's statistics frozen at its checkpoint (as in training: (o − μ) / sqrt(σ² + 1e-8), clipped to
±env.obs_clip), through the policy network, out the mean action (a Gaussian policy) or the most likely
one (a categorical policy), clipped to the action bounds when the run trained with
``env.clip_actions=true``. The evaluation command (``ppo-bench-eval``) acts through the same module, and
``export_policy`` writes it as TorchScript or ONNX, so all of them give the same actions (ONNX Runtime's to
float32 rounding: its matrix products sum in another order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ppo_bench.common.errors import ConfigError
from ppo_bench.common.identity import read_config
from ppo_bench.common.run_folder import has_checkpoint, load_last_good
from ppo_bench.rl.engine.config import NOT_IDENTITY, migrate_config, migrate_keys
from ppo_bench.rl.engine.envs import ActionSpace, make_env
from ppo_bench.rl.engine.normalization import ObservationNormalizer

CHECKPOINT = "checkpoint.pt"


class ActingPolicy(nn.Module):
    """(B, obs_dim) raw observations ↦ (B, action_dim) actions, or (B,) action indices.

    ``distribution(obs)`` gives the policy's distribution parameters: the Gaussian's mean (its
    log-std is the buffer ``log_std``), or the categorical logits."""

    def __init__(self, layers: list[tuple[Tensor, Tensor]], activation: str, obs_mean: np.ndarray,
                 obs_var: np.ndarray, obs_clip: float | None, obs_norm: bool, epsilon: float,
                 log_std: Tensor | None, low: np.ndarray | None = None, high: np.ndarray | None = None,
                 action_shape: tuple[int, ...] | None = None, action_start: int = 0):
        """``action_shape``: a Box's shape (the flat actions are reshaped to it; default: flat);
        ``action_start``: a Discrete's first action (added to the chosen index)."""
        super().__init__()
        mods: list[nn.Module] = []
        for k, (W, b) in enumerate(layers):  # checkpoints store W as (in, out): y = x W + b
            lin = nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                lin.weight.copy_(W.T)
                lin.bias.copy_(b.reshape(-1))
            mods.append(lin)
            if k < len(layers) - 1:
                mods.append(nn.Tanh() if activation == "tanh" else nn.ReLU())
        self.net = nn.Sequential(*mods)
        self.obs_norm = bool(obs_norm)
        self.obs_clip = float("inf") if obs_clip is None else float(obs_clip)  # env.obs_clip null: no clipping
        self.register_buffer("obs_mean", torch.as_tensor(np.asarray(obs_mean), dtype=torch.float64))
        self.register_buffer("obs_std", torch.sqrt(torch.as_tensor(np.asarray(obs_var), dtype=torch.float64) + epsilon))
        self.gaussian = log_std is not None
        self.register_buffer("log_std", log_std.reshape(-1).clone() if log_std is not None else torch.zeros(0))
        self.clip_actions = low is not None
        self.register_buffer("low", torch.as_tensor(low if low is not None else np.zeros(0), dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high if high is not None else np.zeros(0), dtype=torch.float32))
        self.action_shape = tuple(action_shape) if action_shape is not None else None
        self.action_start = int(action_start)
        self.requires_grad_(False)  # acting only

    def normalize(self, obs: Tensor) -> Tensor:
        """The run's observation normalisation, frozen: float64 arithmetic as in training, then float32."""
        x = obs.to(torch.float64)
        if self.obs_norm:
            x = ((x - self.obs_mean) / self.obs_std).clamp(-self.obs_clip, self.obs_clip)
        return x.to(torch.float32)

    def distribution(self, obs: Tensor) -> Tensor:
        return self.net(self.normalize(obs))

    def forward(self, obs: Tensor) -> Tensor:
        out = self.distribution(obs)
        if not self.gaussian:
            return out.argmax(-1) + self.action_start
        if self.clip_actions:
            out = torch.maximum(torch.minimum(out, self.high), self.low)
        return out if self.action_shape is None else out.reshape((-1,) + self.action_shape)


@dataclass
class Policy:
    """A trained run's policy. ``act(obs)`` takes raw observations (one, or a batch on the first axis) as the
    environment returns them; ``module`` is the torch module behind it."""

    module: ActingPolicy
    config: dict[str, Any]  # the run's resolved config (config.yaml)
    run_dir: Path
    global_step: int  # environment steps the checkpoint had trained

    @property
    def env_id(self) -> str:
        return str(self.config["env"]["id"])

    @property
    def env_kwargs(self) -> dict:
        return dict(self.config["env"].get("kwargs") or {})

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
        """The action(s) for raw observation(s): the mean (or most likely) action, or with
        ``deterministic=False`` one sampled from the policy's distribution with ``rng``."""
        obs = np.asarray(obs)
        single = obs.ndim == 1
        x = torch.from_numpy(np.atleast_2d(obs))
        if deterministic:
            action = self.module(x).numpy()
        else:
            rng = rng if rng is not None else np.random.default_rng()
            params = self.module.distribution(x).numpy()
            m = self.module
            if m.gaussian:
                std = m.log_std.exp().numpy()
                action = (params + std * rng.standard_normal(params.shape)).astype(np.float32)
                if m.clip_actions:
                    action = np.clip(action, m.low.numpy(), m.high.numpy())
                if m.action_shape is not None:
                    action = action.reshape((-1,) + m.action_shape)
            else:
                p = np.exp(params - params.max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                u = rng.random((len(p), 1))
                action = np.minimum((p.cumsum(-1) < u).sum(-1), p.shape[-1] - 1) + m.action_start
        return action[0] if single else action

    def acts_in(self) -> str:
        """What the policy acts in, for messages: 'a Box of shape (6,)', 'a Discrete of 2 actions'."""
        m = self.module
        if m.gaussian:
            return f"a Box of shape {m.action_shape if m.action_shape is not None else (m.log_std.numel(),)}"
        n = m.net[-1].out_features
        return f"a Discrete of {n} actions" + (f" from {m.action_start}" if m.action_start else "")


def load_policy(run_dir: str | Path) -> Policy:
    """The policy of the run in ``run_dir`` (its ``config.yaml``, verified against its identity.json, and its last
    checkpoint, or the previous one with a warning when the last is missing or unreadable)."""
    run_dir = Path(run_dir)
    if not has_checkpoint(run_dir):
        raise ConfigError(f"{run_dir} is not a trained run: no {CHECKPOINT}")
    cfg = migrate_config(read_config(run_dir, NOT_IDENTITY, migrate_keys))
    state, _ = load_last_good(run_dir)  # weights_only: no code runs while reading it
    params = state["model"]
    trunk = sorted({n.rsplit(".", 1)[0] for n in params if n.startswith("trunk.")}, key=lambda s: int(s.split(".")[1]))
    pi = sorted({n.rsplit(".", 1)[0] for n in params if n.startswith("pi.")}, key=lambda s: int(s.split(".")[1]))
    layers = [(params[f"{p}.weight"], params[f"{p}.bias"]) for p in trunk + pi]
    log_std = params.get("log_std")
    env = cfg["env"]
    made = make_env(str(env["id"]), disable_env_checker=True, **(env.get("kwargs") or {}))
    try:
        space = ActionSpace.of(str(env["id"]), made.action_space)
    finally:
        made.close()
    width = layers[-1][0].shape[1]
    if width != space.dim or (log_std is not None) != space.gaussian:
        raise ConfigError(f"{run_dir}: its checkpoint's policy has {width} outputs, and its environment "
                          f"{env['id']} has {space.describe()}: the checkpoint is not this run's")
    low = high = None
    if log_std is not None and env.get("clip_actions"):
        low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    rms = state["obs_rms"]
    module = ActingPolicy(layers, cfg["model"]["activation"], rms["mean"], rms["var"], env["obs_clip"],
                          env["obs_norm"], ObservationNormalizer(1, 1, 1.0).epsilon, log_std, low, high,
                          action_shape=space.shape if space.gaussian else None, action_start=space.start)
    module.eval()
    return Policy(module=module, config=cfg, run_dir=run_dir, global_step=int(state["global_step"]))


# what ``export_policy`` writes, by the file's suffix
EXPORT_FORMATS = {".pt": "TorchScript", ".onnx": "ONNX"}


def export_policy(policy: Policy, path: str | Path) -> Path:
    """Write the acting policy (normalisation and action clipping included), in the format its suffix names:

    - ``.pt``, TorchScript: ``torch.jit.load(path)(obs)`` maps a (B, obs_dim) tensor of raw observations to
      actions;
    - ``.onnx``, ONNX (the ``onnx`` extra): ``onnxruntime.InferenceSession(path).run(None, {"obs": obs})[0]``
      maps a (B, obs_dim) array of raw observations, of the environment's dtype (float64 for MuJoCo, float32
      for the classic-control tasks), to actions.

    Any other suffix is a ``ValueError``."""
    from ppo_bench.common.atomic import atomic_write_bytes

    fmt = EXPORT_FORMATS.get(Path(path).suffix)
    if fmt is None:
        raise ValueError(f"cannot export to {path}: the file name must end in "
                         + " or ".join(f"{s} ({f})" for s, f in EXPORT_FORMATS.items()))
    example = torch.zeros(2, policy.module.obs_mean.numel(), dtype=observation_dtype(policy))
    data = onnx_bytes(policy.module, example) if fmt == "ONNX" else torchscript_bytes(policy.module, example)
    return atomic_write_bytes(path, data)


def observation_dtype(policy: Policy) -> torch.dtype:
    """The dtype of the observations the run's environment returns, which an ONNX model's input is fixed to."""
    import gymnasium as gym

    env = gym.make(policy.env_id, disable_env_checker=True, **policy.env_kwargs)
    try:
        return torch.from_numpy(np.zeros(0, dtype=env.observation_space.dtype)).dtype
    finally:
        env.close()


def torchscript_bytes(module: ActingPolicy, example: Tensor) -> bytes:
    import io

    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(module, example), buf)
    return buf.getvalue()


ONNX_TORCH = (2, 6)  # torch.onnx.export(dynamo=True) returning an ONNXProgram: "PyTorch 2.6 and newer" (torch.onnx docs)


def torch_version() -> tuple[int, int]:
    return tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])  # type: ignore[return-value]


def onnx_bytes(module: ActingPolicy, example: Tensor) -> bytes:
    """The module as an ONNX model through torch.export (``torch.onnx.export(dynamo=True)``, which translates
    through onnxscript): input ``obs`` (batch, obs_dim) of ``example``'s dtype, output ``action``, any batch
    size."""
    import logging
    import warnings

    import onnxscript  # noqa: F401  (an ImportError here names the missing extra; torch's would not)

    if torch_version() < ONNX_TORCH:
        raise ConfigError(f"--export to ONNX needs torch>={'.'.join(map(str, ONNX_TORCH))} (its torch.export-based "
                          f"exporter); this is torch {torch.__version__}: pip install 'torch>=2.6'")

    exporter_log = logging.getLogger("torch.onnx")  # it warns of every torchvision operator it cannot register
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), dynamo=True, verbose=False, input_names=["obs"],
                                        output_names=["action"], dynamic_shapes=({0: torch.export.Dim("batch")},))
    finally:
        exporter_log.setLevel(level)
    return program.model_proto.SerializeToString()
