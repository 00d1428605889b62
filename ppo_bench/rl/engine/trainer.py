"""The population engine: one algorithm trained for a population of R runs in one process.

Every tensor carries a leading run axis R; a single run is R = 1 (docs: "Populations"). One iteration:
each run's N actors collect T steps (``collect``), GAE turns them into advantages (``ppo_bench.common.losses.gae``),
and the algorithm (``ppo_bench.rl.engine.registry``; ``ppo_bench.rl.algorithms``: PPO's K epochs of minibatch Adam on its surrogate, TRPO, …)
updates each run (``update``). Each run owns its seed, environments, normalisation statistics, the
algorithm's state (optimiser, step-size schedule, per-run hyperparameters such as the adaptive β),
checkpoints and TensorBoard directory.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ppo_bench.rl.engine import rng
from ppo_bench.common.atomic import atomic_write_text
from ppo_bench.rl.engine.distributions import Categorical, DiagGaussian
from ppo_bench.rl.engine.envs import check_spaces, env_state, make_vector_env, reset, set_env_state
from ppo_bench.rl.engine.config import NOT_IDENTITY, migrate_keys, schema_defaults
from ppo_bench.rl.engine.registry import get_algorithm
from ppo_bench.common.errors import ConfigError
from ppo_bench.common.identity import IDENTITY, check_identity, training_keys, write_identity
from ppo_bench.rl.engine.networks import ActorCritic
from ppo_bench.rl.engine.normalization import ObservationNormalizer, RewardScaler
from ppo_bench.common.losses import gae, masked_standardize
from ppo_bench.rl.engine.population import RunSpec
from ppo_bench.common.preemption import Interrupted, StopRequest
from ppo_bench.common.progress import make_progress
from ppo_bench.common.run_folder import (CHECKPOINT, PREVIOUS, clear_run_files, has_checkpoint, load_last_good, save_checkpoint, set_aside,
                                  to_data)
from ppo_bench.common.tblog import RunLogger
from ppo_bench.common.hparams import trial_name
from ppo_bench.rl.engine.hparams import run_hparams

STATUS = "status.json"
SCORE_EPISODES = 100  # a run's score: mean return of its last 100 episodes (paper §6.1)


def run_config(cfg: DictConfig, spec: RunSpec) -> dict:
    """The resolved config of one member: its own setting (PPO's surrogate objective; none for an algorithm
    without such an axis), its own algo settings and seed, no population."""
    d = OmegaConf.to_container(cfg, resolve=True)
    d["objective"], d["seed"] = (dict(spec.objective) if spec.objective else None), spec.seed
    d["algo"].update(spec.algo_settings)
    d["population"] = {"seeds": None, "objectives": None}
    return d


def identity_keys(cfg: DictConfig, spec: RunSpec) -> dict:
    """The keys of one member's resolved config that decide what it trains (``ppo_bench.common.identity``)."""
    return training_keys(run_config(cfg, spec), NOT_IDENTITY)


def check_run_identity(cfg: DictConfig, spec: RunSpec) -> None:
    """Refuse (ConfigError, one line naming every differing key with both values) to continue a run whose
    folder was trained with other settings (identity.json; a run older than it, its config.yaml)."""
    check_identity(spec.dir, identity_keys(cfg, spec), NOT_IDENTITY, schema_defaults(cfg.algo.name),
                   migrate=migrate_keys)


TIMING_KEYS = ("wall_s", "cpu_s", "cpu_since")  # run-state keys that measure time, not what was trained
ADDED_KEYS = ("cpu_s", "cpu_since")  # newer than some checkpoints (0.2.0's): one without them loads (load_run_state)
RUN_STATE_KEYS = ("iteration", "global_step", "model", "obs_rms", "ret_rms", "ret_acc", "raw_obs", "prev_done",
                  "ep_return", "ep_length", "recent", "wall_s", "envs")  # and the algorithm's own (its run_state)


def check_run_state(state: dict) -> None:
    """Reject a checkpoint that is not a run state of this version (ValueError naming what is missing)."""
    missing = [k for k in RUN_STATE_KEYS if k not in state]
    if missing:
        raise ValueError(f"not a ppo-bench run checkpoint (missing {', '.join(missing)})")


def state_misfit(expected, got, where: str = "") -> str | None:
    """Where a loaded run state's tensors differ in shape (or its lists in length) from the state of the run as
    configured, or None: a checkpoint is loaded into the run only when every tensor fits, never broadcast into
    another shape. Episode returns (``recent``) and a pure-Python env's own attributes may differ in length."""
    if isinstance(expected, dict) and isinstance(got, dict):
        for k in expected:
            if k in ("recent", "attributes"):
                continue
            if k not in got:
                if k in ADDED_KEYS:
                    continue
                return f"{where}{k} missing"
            why = state_misfit(expected[k], got[k], f"{where}{k}.")
            if why:
                return why
        return None
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        if len(expected) != len(got):
            return f"{where.rstrip('.')}: {len(got)} items, the run has {len(expected)}"
        return next((w for i, (a, b) in enumerate(zip(expected, got)) if (w := state_misfit(a, b, f"{where}{i}."))), None)
    if isinstance(expected, torch.Tensor):
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else None
        if shape != tuple(expected.shape):
            return f"{where.rstrip('.')}: shape {shape}, the run's {tuple(expected.shape)}"
    return None


@dataclass
class Rollout:
    """Time-major storage for one iteration: (T, R, N, ...)."""

    obs: Tensor  # normalised observations the policy acted on
    params: Tensor  # action-distribution parameters at acting time (π_θold)
    actions: Tensor
    logp: Tensor
    values: Tensor  # (T + 1, R, N): V(o_t) and the bootstrap V(o_T)
    rewards: np.ndarray  # (after optional scaling), float64
    terminated: np.ndarray
    truncated: np.ndarray
    valid: np.ndarray  # False on autoreset rows

    @classmethod
    def empty(cls, T, R, N, obs_dim, param_dim, act_shape, act_dtype):
        return cls(
            obs=torch.zeros(T, R, N, obs_dim),
            params=torch.zeros(T, R, N, param_dim),
            actions=torch.zeros(T, R, N, *act_shape, dtype=act_dtype),
            logp=torch.zeros(T, R, N),
            values=torch.zeros(T + 1, R, N),
            rewards=np.zeros((T, R, N)),
            terminated=np.zeros((T, R, N), dtype=bool),
            truncated=np.zeros((T, R, N), dtype=bool),
            valid=np.zeros((T, R, N), dtype=bool),
        )


class PopulationTrainer:
    def __init__(self, cfg: DictConfig, specs: list[RunSpec]):
        self.cfg, self.specs = cfg, specs
        # the rollout's length and discounting are the algorithm's (conf/algo/)
        self.R, self.N, self.T = len(specs), cfg.env.num_envs, int(cfg.algo.num_steps)
        algorithm = get_algorithm(cfg.algo.name)
        for s in specs:
            if set(s.algo_settings) - set(algorithm.member_settings):
                raise ConfigError(f"run {s.name}: algo={cfg.algo.name}'s members may differ by "
                                  f"{', '.join(algorithm.member_settings)} only, not by "
                                  f"{', '.join(sorted(set(s.algo_settings) - set(algorithm.member_settings)))}")
        # per run, (R, 1): a member's own γ and λ broadcast over its actors like one shared value
        self.gamma, self.gae_lambda = self.member_values("gamma")[:, None], self.member_values("gae_lambda")[:, None]
        self.n_iter = math.ceil(cfg.total_timesteps / (self.N * self.T))
        R, N = self.R, self.N

        self.env_seeds = [s.seed + n for s in specs for n in range(N)]
        self.envs = make_vector_env(cfg.env.id, self.env_seeds, cfg.env.kwargs)
        obs_space = self.envs.single_observation_space
        # the policy acts in flat actions; the space's own shape and first action are applied on the way to the env
        self.action_space = check_spaces(cfg.env.id, obs_space, self.envs.single_action_space)
        self.obs_dim = obs_space.shape[0]
        self.gaussian = self.action_space.gaussian
        A = self.action_space.dim
        if self.gaussian:
            self.dist = DiagGaussian(A)
            self.act_shape, self.act_dtype = (A,), torch.float32
            self.act_low, self.act_high = self.action_space.low, self.action_space.high
            param_dim = 2 * A
        else:
            self.dist = Categorical(A)
            self.act_shape, self.act_dtype = (), torch.int64
            param_dim = A

        m = cfg.model
        self.model = ActorCritic(R, self.obs_dim, param_dim // 2 if self.gaussian else param_dim,
                                 self.gaussian, m.hidden, m.activation, m.arch, m.log_std_init)
        for r, s in enumerate(specs):
            self.model.init_run(r, s.seed, m.init)
        self.obs_norm = ObservationNormalizer(R, self.obs_dim, cfg.env.obs_clip, cfg.env.obs_norm)
        self.rew_scale = RewardScaler(R, N, self.gamma, cfg.env.reward_clip, cfg.env.reward_scale,
                                      by=cfg.env.reward_scale_by)

        self.seeds = torch.tensor([s.seed for s in specs], dtype=torch.int64)
        self.iteration = torch.zeros(R, dtype=torch.int64)
        self.failed = torch.zeros(R, dtype=torch.bool)
        self.pruned = torch.zeros(R, dtype=torch.bool)  # stopped early by a tuner (``prune``)
        self.wall_s = torch.zeros(R, dtype=torch.float64)  # training wall time, carried across resumes
        # the process's CPU time while it trained the run (its population's, as the wall time), carried across
        # resumes; cpu_since: the iteration it was first measured at (> 0 for a run checkpointed by an older version)
        self.cpu_s = torch.zeros(R, dtype=torch.float64)
        self.cpu_since = torch.zeros(R, dtype=torch.int64)
        self.errors: dict[int, str] = {}
        self.algo = algorithm(self)  # the update rule: its optimiser, state, hyperparameters
        compiled = lambda f: torch.compile(f, dynamic=False, fullgraph=True) if cfg.compile else None  # noqa: E731
        self.compiled_value = compiled(self.model.value)

        self.buf = Rollout.empty(self.T, R, N, self.obs_dim, param_dim, self.act_shape, self.act_dtype)
        # per-step bookkeeping lives in NumPy: (R, N) arrays are too small for torch's per-op cost
        self.raw_obs = np.asarray(reset(self.envs, self.env_seeds), dtype=np.float64).reshape(R, N, -1)
        self.prev_done = np.zeros((R, N), dtype=bool)
        self.ep_return = np.zeros((R, N))
        self.ep_length = np.zeros((R, N), dtype=np.int64)
        self.recent = [deque(maxlen=SCORE_EPISODES) for _ in range(R)]
        # per actor, the returns and count of the episodes it finished in this iteration (CEM scores on them)
        self.actor_returns, self.actor_episodes = np.zeros((R, N)), np.zeros((R, N), dtype=np.int64)
        self.episodes: list[tuple[int, int, float, int]] = []  # (run, step, return, length) since last log
        self.loggers: list[RunLogger | None] = [None] * R
        self.reward_terms: dict[str, np.ndarray] = {}  # the last rollout's mean reward terms, (R,) each

    # ------------------------------------------------------------------ state
    @property
    def active(self) -> Tensor:
        return ~self.failed & ~self.pruned & (self.iteration < self.n_iter)

    def member_values(self, key: str) -> np.ndarray:
        """algo.<key> of each run, (R,) float64: a member's own (``RunSpec.algo_settings``) or the config's."""
        return np.array([float(s.algo_settings.get(key, self.cfg.algo[key])) for s in self.specs])

    def hparams_of(self, r: int) -> dict[str, float]:
        """Run r's per-run hyperparameters as they are now (adaptive ones included)."""
        return self.algo.hparams_of(r)

    def run_state(self, r: int) -> dict:
        N = self.N
        return {
            "version": 2,  # 2: tensors and plain data only (weights_only loading)
            "run": self.specs[r].name,
            "iteration": int(self.iteration[r]),
            "global_step": int(self.iteration[r]) * N * self.T,
            "model": self.model.run_state(r),
            **self.algo.run_state(r),
            "obs_rms": self.obs_norm.rms.state_dict(r),
            "ret_rms": self.rew_scale.rms.state_dict(r),
            "ret_acc": self.rew_scale.returns[r].copy(),
            "raw_obs": self.raw_obs[r].copy(),
            "prev_done": self.prev_done[r].copy(),
            "ep_return": self.ep_return[r].copy(),
            "ep_length": self.ep_length[r].copy(),
            "recent": list(self.recent[r]),
            "wall_s": float(self.wall_s[r]),
            "cpu_s": float(self.cpu_s[r]),
            "cpu_since": int(self.cpu_since[r]),
            "envs": [env_state(self.envs, r * N + n) for n in range(N)],
        }

    def load_run_state(self, r: int, st: dict) -> None:
        self.iteration[r] = st["iteration"]
        self.model.load_run_state(r, st["model"])
        self.algo.load_run_state(r, st)
        self.obs_norm.rms.load_state_dict(r, st["obs_rms"])
        self.rew_scale.rms.load_state_dict(r, st["ret_rms"])
        self.rew_scale.returns[r] = st["ret_acc"]
        self.raw_obs[r], self.prev_done[r] = st["raw_obs"], st["prev_done"]
        self.ep_return[r], self.ep_length[r] = st["ep_return"], st["ep_length"]
        self.recent[r].extend(st["recent"])
        self.wall_s[r] = st["wall_s"]
        self.cpu_s[r] = st.get("cpu_s", 0.0)
        self.cpu_since[r] = st.get("cpu_since", 0) if "cpu_s" in st else st["iteration"]
        for n, es in enumerate(st["envs"]):
            set_env_state(self.envs, r * self.N + n, es)

    def score(self, r: int) -> float:
        return float(np.mean(self.recent[r])) if self.recent[r] else float("nan")

    def write_status(self, r: int, status: str, error: str | None = None) -> None:
        d = {"status": status, "run": self.specs[r].name, "iteration": int(self.iteration[r]),
             "global_step": int(self.iteration[r]) * self.N * self.T, "episodes_scored": len(self.recent[r]),
             "score_last100": self.score(r), "wall_s": round(float(self.wall_s[r]), 1),
             "cpu_s": round(float(self.cpu_s[r]), 1)}
        if self.cpu_since[r]:
            d["cpu_s_since_iteration"] = int(self.cpu_since[r])
        if error:
            d["error"] = error
        atomic_write_text(self.specs[r].dir / STATUS, json.dumps(d, indent=2) + "\n")

    def save_checkpoint(self, r: int, finished: bool = False) -> None:
        if self.loggers[r] is not None:  # what a resume does not log again is on disk before the checkpoint
            self.loggers[r].flush()
        save_checkpoint(to_data(self.run_state(r)), self.specs[r].dir)
        self.write_status(r, "finished" if finished else "running")

    # ------------------------------------------------------------------ setup
    def start(self, resume: bool) -> None:
        """Open each run's directory: fresh, or continued from its checkpoint. Every run is checked and every
        checkpoint read before anything is written, so a bad run folder touches no other run."""
        states: dict[int, dict] = {}
        fallback: dict[int, bool] = {}
        for r, spec in enumerate(self.specs):
            ckpt = spec.dir / CHECKPOINT
            if has_checkpoint(spec.dir):
                if not resume:
                    raise ConfigError(f"resume=false but {ckpt} exists; pass resume=true to continue that run "
                                      "or choose another hydra.run.dir / run_root")
                check_run_identity(self.cfg, spec)
                states[r], source = load_last_good(spec.dir, check_run_state)
                fallback[r] = source.name == PREVIOUS
                misfit = state_misfit(to_data(self.run_state(r)), states[r])
                if misfit:
                    raise ConfigError(f"{source} does not fit run {spec.name} as configured ({misfit}): it is not "
                                      "this run's checkpoint; move that run folder away or choose another run folder")
        env_state(self.envs, 0)  # an env whose state cannot be checkpointed as data is refused now, not later
        for r, spec in enumerate(self.specs):
            hparams, purge_after = None, None
            config = run_config(self.cfg, spec)
            if r in states:
                if fallback[r]:
                    set_aside(spec.dir)
                self.load_run_state(r, states[r])
                purge_after = states[r]["global_step"]
            else:  # a fresh start: what a dead process left here (events, status) goes
                spec.dir.mkdir(parents=True, exist_ok=True)
                clear_run_files(spec.dir, (STATUS, IDENTITY), status_means_checkpointed=True)
                hparams = run_hparams(self.cfg, config, self.specs)
            write_identity(spec.dir, identity_keys(self.cfg, spec), total_timesteps=self.cfg.total_timesteps)
            atomic_write_text(spec.dir / "config.yaml", OmegaConf.to_yaml(config))
            self.loggers[r] = RunLogger(spec.dir, hparams, purge_after, name=trial_name(spec.dir, self.cfg.run_root))

    # ------------------------------------------------------------------ rollout
    def action_noise(self) -> Tensor:
        """(T, R, N, D) draws for this iteration, a function of (seed, step, env, dim) only."""
        T, R, N, D = self.T, self.R, self.N, self.dist.noise_dim
        t = torch.arange(T).view(T, 1, 1, 1)
        step = self.iteration.view(1, R, 1, 1) * T + t
        counter = (step * N + torch.arange(N).view(1, 1, N, 1)) * D + torch.arange(D).view(1, 1, 1, D)
        seeds = self.seeds.view(1, R, 1, 1)
        draw = rng.normal if self.gaussian else rng.uniform
        return draw(seeds, rng.ACTION, counter)

    @torch.no_grad()
    def collect(self) -> None:
        buf, R, N = self.buf, self.R, self.N
        active = self.active
        all_active = bool(active.all())
        active_np = None if all_active else active.numpy()  # runs stopped mid-population keep their statistics
        if getattr(self.algo, "reset_each_iteration", False):
            self.reset_episodes()
        self.actor_returns.fill(0.0)
        self.actor_episodes.fill(0)
        sample = self.dist.rollout_sampler(self.action_noise())
        # the actors act with the trained network, or with parameters of the algorithm's own (CEM's candidates)
        policy = getattr(self.algo, "acting_policy", self.model.acting_policy)()
        clip = self.gaussian and self.cfg.env.clip_actions
        idle = None if all_active else np.repeat(active_np, N).reshape(-1, *([1] * len(self.act_shape)))
        steps: dict[str, list[np.ndarray]] = {"obs": [], "params": [], "actions": [], "logp": []}
        infos: list[dict] = []  # the env's reward terms per step (Gymnasium's info), reduced once below
        for t in range(self.T):  # acting is NumPy (acting_policy's docstring says why)
            obs = self.obs_norm(self.raw_obs, active=active_np)
            params = policy(obs)
            action, logp = sample(t, params)
            for k, x in zip(steps, (obs, params, action, logp)):
                steps[k].append(x)
            valid = ~self.prev_done
            buf.valid[t] = valid

            env_action = action.reshape(R * N, *self.act_shape)
            if clip:
                env_action = np.clip(env_action, self.act_low, self.act_high)
            if idle is not None:  # stopped runs idle with a harmless action
                env_action = np.where(idle, env_action, self.action_space.idle)
            next_obs, reward, term, trunc, info = self.envs.step(self.action_space.to_env(env_action))
            infos.append(info)
            reward, term, trunc = reward.reshape(R, N), term.reshape(R, N), trunc.reshape(R, N)
            done = term | trunc

            self.ep_return += reward * valid
            self.ep_length += valid
            if done.any():
                self.record_episodes(done, t)
            buf.rewards[t] = self.rew_scale(reward, done, valid, active_np)
            buf.terminated[t], buf.truncated[t] = term, trunc
            # float64 as after a reset or a resume, whatever the env's dtype: the normalisation statistics of
            # N > 1 actors reduce over them, and a float32 reduction rounds otherwise than a float64 one
            self.raw_obs = np.asarray(next_obs, dtype=np.float64).reshape(R, N, -1)
            self.prev_done = done
        steps["obs"].append(self.obs_norm(self.raw_obs, update=False))  # o_T, for the bootstrap value
        self.reward_terms = mean_reward_terms(infos, buf.valid)
        obs = np.stack(steps.pop("obs"))  # (T + 1, R, N, obs_dim)
        np.copyto(buf.obs.numpy(), obs[:-1])
        for k, xs in steps.items():  # one copy per buffer instead of a (slow) tensor __setitem__ per step
            np.stack(xs, out=getattr(buf, k).numpy())
        # acting did not need the value network: V(o_0), …, V(o_T) of every run in one batched pass
        T1 = self.T + 1
        flat_obs = torch.from_numpy(obs).transpose(0, 1).reshape(R, T1 * N, self.obs_dim)
        buf.values.copy_((self.compiled_value or self.model.value)(flat_obs).view(R, T1, N).transpose(0, 1))

    def record_episodes(self, done: np.ndarray, t: int) -> None:
        for r, n in zip(*done.nonzero()):
            ret, length = float(self.ep_return[r, n]), int(self.ep_length[r, n])
            step = (int(self.iteration[r]) * self.T + t + 1) * self.N
            if self.active[r]:
                self.recent[r].append(ret)
                self.episodes.append((int(r), step, ret, length))
            self.actor_returns[r, n] += ret
            self.actor_episodes[r, n] += 1
        self.ep_return[done] = 0.0
        self.ep_length[done] = 0

    def reset_episodes(self) -> None:
        """Start a new episode in every actor (algorithms whose episodes begin with the iteration: CEM scores a
        candidate on the episodes it plays from a reset). The unfinished episodes are dropped, unrecorded; the
        reset seeds are a function of (run seed, iteration, actor), so a resumed run meets the same episodes."""
        N = self.N
        counter = self.iteration.view(-1, 1) * N + torch.arange(N).view(1, N)
        seeds = rng.hash_words(self.seeds.view(-1, 1), rng.EPISODE_RESET, counter) & 0x7FFFFFFF
        self.raw_obs = np.asarray(reset(self.envs, seeds.flatten().tolist()), dtype=np.float64).reshape(self.R, N, -1)
        self.prev_done[:] = False
        self.ep_return[:] = 0.0
        self.ep_length[:] = 0
        self.rew_scale.returns[:] = 0.0

    def acting_diagnostics(self) -> dict[str, np.ndarray]:
        """How the Gaussian policy acted in this rollout, per run (R,) over its valid steps: mean |μ| and mean σ
        over the action components, and the fraction of sampled components outside the action bounds (which
        the env charges its control cost on, clipped or not)."""
        if not self.gaussian:
            return {}
        b = self.buf
        mean, log_std = (x.numpy() for x in self.dist.split(b.params))
        actions = b.actions.numpy()
        w = b.valid[..., None]
        count = np.maximum(per_run_sum(w) * self.act_shape[0], 1)
        masked_mean = lambda x: per_run_sum(x * w) / count  # noqa: E731 — (T, R, N, A) → (R,)
        out_of_bounds = (actions < self.act_low) | (actions > self.act_high)
        return {"mean_abs_mean": masked_mean(np.abs(mean)), "mean_std": masked_mean(np.exp(log_std)),
                "frac_out_of_bounds": masked_mean(out_of_bounds)}

    # ------------------------------------------------------------------ update
    def batch(self) -> dict[str, Tensor]:
        """Flatten the rollout to (R, B = T·N, ...) and add advantages and returns."""
        b, R = self.buf, self.R
        values = b.values.double().numpy()  # GAE's loop runs over NumPy rows: cheaper per step than torch
        adv, ret = gae(b.rewards, values, b.terminated, b.truncated, b.valid, self.gamma, self.gae_lambda)

        def flat(x):  # contiguous: a reduction over a strided row sums in another order than over a run alone
            x = torch.as_tensor(x)
            return x.transpose(0, 1).reshape(R, self.T * self.N, *x.shape[3:]).contiguous()

        out = {"obs": flat(b.obs), "params": flat(b.params), "actions": flat(b.actions), "logp": flat(b.logp),
               "values": flat(b.values[:-1]), "adv": flat(adv).float(), "ret": flat(ret).float(),
               "valid": flat(b.valid).float()}
        if self.algo.standardize_advantages:
            out["adv"] = masked_standardize(out["adv"], out["valid"])
        return out

    def update(self) -> dict[str, Tensor]:
        """The algorithm's update of every active run from this iteration's batch; a run whose parameters
        stop being finite is stopped (``fail``)."""
        stats = self.algo.update(self.batch())
        self.check_parameters()
        return stats

    def check_parameters(self) -> None:
        ok = torch.isfinite(self.model.flat).all(1)
        bad = (self.active & ~ok).nonzero().flatten().tolist()
        if bad:
            self.fail(bad, "non-finite parameters after the update")

    def fail(self, runs: list[int], why: str) -> None:
        for r in runs:
            if self.failed[r]:
                continue
            self.failed[r] = True
            step = int(self.iteration[r]) * self.N * self.T
            ckpt = self.specs[r].dir / CHECKPOINT
            kept = (f"its last good checkpoint is kept: {ckpt}" if ckpt.exists() else
                    f"it had no checkpoint yet (the first comes at iteration {self.cfg.checkpoint_every}); "
                    f"its logs are in {self.specs[r].dir}")
            msg = f"run {self.specs[r].name} stopped at iteration {int(self.iteration[r])} (step {step}): {why}; {kept}"
            self.errors[r] = msg
            print(f"error: {msg}", file=sys.stderr, flush=True)
            self.write_status(r, "failed", why)

    def prune(self, runs: list[int]) -> None:
        """Stop runs that a tuner ends early (an Optuna pruner's verdict on their trial): like a finished or
        failed run they take no further step, and their neighbours train on as they would have (a stopped run's
        rows are never read); status "pruned", logs flushed, no checkpoint written."""
        for r in runs:
            if self.active[r]:
                self.pruned[r] = True
                self.write_status(r, "pruned")
                self.loggers[r].flush()

    # ------------------------------------------------------------------ logging
    def log(self, stats: dict[str, Tensor], active_before: Tensor, sps: float) -> None:
        for r, step, ret, length in self.episodes:
            self.loggers[r].scalars({"charts/episodic_return": ret, "charts/episodic_length": length}, step)
        self.episodes.clear()
        for r in active_before.nonzero().flatten().tolist():
            if self.failed[r]:
                continue
            step = int(self.iteration[r]) * self.N * self.T
            values = {**self.algo.log_values(stats, r), "perf/sps": sps}
            for k in ("mean_abs_mean", "mean_std", "frac_out_of_bounds"):
                if k in stats:
                    values[f"policy/{k}"] = stats[k][r]
            for k, per_run in self.reward_terms.items():
                if not math.isnan(per_run[r]):
                    values[f"env/{k}"] = per_run[r]
            self.loggers[r].scalars({k: float(v) for k, v in values.items()}, step)

    # ------------------------------------------------------------------ loop
    def iterate(self) -> tuple[int, float]:
        """One iteration of Algorithm 1 for every active run; returns (steps taken, wall seconds)."""
        t0, c0 = time.perf_counter(), time.process_time()
        active_before = self.active.clone()
        self.collect()
        acting = self.acting_diagnostics()
        stats = self.update()
        stepped = active_before & ~self.failed
        self.iteration += stepped.long()
        elapsed = time.perf_counter() - t0
        self.wall_s += active_before.double() * elapsed
        self.cpu_s += active_before.double() * (time.process_time() - c0)
        steps = int(active_before.sum()) * self.N * self.T
        self.log({**stats, **acting}, active_before, steps / elapsed)
        for r in stepped.nonzero().flatten().tolist():
            finished = int(self.iteration[r]) >= self.n_iter
            if finished or int(self.iteration[r]) % self.cfg.checkpoint_every == 0:
                self.save_checkpoint(r, finished)
            if finished:
                self.loggers[r].flush()
        return steps, elapsed

    def train(self) -> dict[str, dict]:
        per_iter = self.N * self.T
        todo = int((self.n_iter - self.iteration).clamp(min=0)[self.active].sum()) * per_iter
        bar = make_progress(self.cfg.progress, total=todo, desc=f"{self.cfg.env.id} ×{self.R}")
        for r in (~self.active).nonzero().flatten().tolist():
            self.save_checkpoint(r, finished=True)
        with StopRequest() as stop:
            while self.active.any():
                steps, elapsed = self.iterate()
                scores = [self.score(r) for r in range(self.R) if not math.isnan(self.score(r))]
                bar.update(steps, sps=steps / elapsed, ret=float(np.mean(scores)) if scores else float("nan"))
                if stop.signal is not None:  # preempted: checkpoint where we are, resume later
                    with stop.deferred():
                        for r in self.active.nonzero().flatten().tolist():
                            self.save_checkpoint(r)
                        bar.close()
                        self.close()
                    raise Interrupted(f"stopped by {stop.signal.name} after an iteration; every run checkpointed",
                                      int(stop.signal))
        bar.close()
        self.close()
        status = lambda r: "failed" if self.failed[r] else "pruned" if self.pruned[r] else "finished"  # noqa: E731
        return {s.name: {"status": status(r), "score_last100": self.score(r),
                         "global_step": int(self.iteration[r]) * per_iter, "dir": str(s.dir),
                         "wall_s": float(self.wall_s[r]), "cpu_s": float(self.cpu_s[r])}
                for r, s in enumerate(self.specs)}

    def close(self) -> None:
        for lg in self.loggers:
            if lg is not None:
                lg.close()
        self.envs.close()


def per_run_sum(x: np.ndarray) -> np.ndarray:
    """(T, R, ...) → (R,): each run's sum over its own values, laid out contiguously in the order a run alone has
    them, so that a member's statistics do not depend on its neighbours (NumPy sums a strided selection of a
    population's array in another order than a run's own array, which rounds otherwise)."""
    x = np.ascontiguousarray(np.moveaxis(x, 1, 0))
    return x.reshape(x.shape[0], -1).sum(1)


def is_reward_term(key: str) -> bool:
    # Gymnasium's MuJoCo v5 envs report their reward's parts in info: reward_forward, reward_ctrl, ..., *_penalty
    return not key.startswith("_") and (key.startswith("reward_") or key.endswith("_penalty"))


def mean_reward_terms(infos: list[dict], valid: np.ndarray) -> dict[str, np.ndarray]:
    """Each reward term's mean per step over a rollout's valid steps, per run: infos are the T vector infos
    (``info[k]`` per sub-env, ``info["_k"]`` where it is set), valid is (T, R, N); NaN where a run has none."""
    T, R, N = valid.shape
    keys = [k for k in dict.fromkeys(itertools.chain.from_iterable(infos)) if is_reward_term(k)]  # first-seen order
    out = {}
    for k in keys:
        values, mask = np.zeros((T, R * N)), np.zeros((T, R * N), dtype=bool)
        for t, info in enumerate(infos):
            if k in info:
                values[t], mask[t] = info[k], info[f"_{k}"]
        mask = mask.reshape(T, R, N) & valid
        count = per_run_sum(mask)
        total = per_run_sum(values.reshape(T, R, N) * mask)
        out[k] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out
