"""``ppo-bench-eval``: episodes of a trained run's policy (or of every run under a sweep folder), and its export.

    ppo-bench-eval RUN_DIR [--episodes 10] [--stochastic] [--env-id ID] [--video DIR] [--seed 0]
    ppo-bench-eval SWEEP_DIR --episodes 5               # every run found below the folder
    ppo-bench-eval RUN_DIR --export policy.pt           # TorchScript, normalisation included
    ppo-bench-eval RUN_DIR --export policy.onnx         # ONNX (the onnx extra), normalisation included

Episode i is reset with seed ``seed + i``. Actions are the policy's mean (``ppo_bench.rl.policy``) unless
``--stochastic``; observations are normalised with the run's statistics frozen at its checkpoint.
``--video`` records the first ``--video-episodes`` episodes as mp4 through Gymnasium's ``RecordVideo``
(needs the ``video`` extra); MuJoCo renders without a display through EGL (``MUJOCO_GL=egl``, set here
when no display is found).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppo_bench.common.errors import ConfigError, OneLineArgumentParser, check_writable, run_command
from ppo_bench.common.run_folder import CHECKPOINT, PREVIOUS, has_checkpoint


@dataclass
class Evaluation:
    run_dir: Path
    env_id: str
    deterministic: bool
    returns: np.ndarray
    lengths: np.ndarray

    def summary(self) -> dict:
        return {"run": str(self.run_dir), "env": self.env_id, "episodes": len(self.returns),
                "actions": "mean" if self.deterministic else "sampled",
                "return_mean": float(self.returns.mean()), "return_std": float(self.returns.std()),
                "length_mean": float(self.lengths.mean()), "length_std": float(self.lengths.std())}


def headless_rendering() -> None:
    """MuJoCo renders off-screen through EGL (Mesa's software EGL on a machine without a GPU) unless told otherwise."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def evaluate(policy, episodes: int = 10, deterministic: bool = True, env_id: str | None = None, seed: int = 0,
             video_dir: str | Path | None = None, video_episodes: int = 1) -> Evaluation:
    """``episodes`` episodes of ``policy`` (a ``ppo_bench.rl.policy.Policy``) on its run's env, or on ``env_id``."""
    from ppo_bench.rl.engine.envs import ActionSpace, make_env

    env_id = env_id or policy.env_id
    kwargs = policy.env_kwargs if env_id == policy.env_id else {}
    if video_dir is not None:
        headless_rendering()
        from gymnasium.wrappers import RecordVideo

        env = make_env(env_id, render_mode="rgb_array", **kwargs)
        prefix = "_".join(policy.run_dir.parts[-3:]).replace("/", "_")
        env = RecordVideo(env, str(video_dir), episode_trigger=lambda i: i < video_episodes, name_prefix=prefix,
                          disable_logger=True)
    else:
        env = make_env(env_id, **kwargs)
    obs_dim = policy.module.obs_mean.numel()
    if env.observation_space.shape != (obs_dim,):
        env.close()
        raise ConfigError(f"{env_id} has observations of shape {env.observation_space.shape}; the policy of "
                          f"{policy.run_dir} ({policy.env_id}) takes ({obs_dim},)")
    try:
        acts_in = ActionSpace.of(env_id, env.action_space).describe()
    except ConfigError:
        env.close()
        raise
    if acts_in != policy.acts_in():
        env.close()
        raise ConfigError(f"{env_id} has actions in {acts_in}; the policy of {policy.run_dir} ({policy.env_id}) "
                          f"acts in {policy.acts_in()}")
    rng = np.random.default_rng(seed)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy.act(obs, deterministic, rng))
                returns[i] += float(reward)
                lengths[i] += 1
                done = terminated or truncated
    finally:
        env.close()
    return Evaluation(policy.run_dir, env_id, deterministic, returns, lengths)


def find_trained_runs(folder: Path) -> list[Path]:
    """``folder`` itself if it is a run (config.yaml and a checkpoint: checkpoint.pt, or the previous one a damaged
    or interrupted save left alone), else every run below it."""
    def trained(d: Path) -> bool:
        return (d / "config.yaml").exists() and has_checkpoint(d)

    if trained(folder):
        return [folder]
    return sorted({p.parent for name in (CHECKPOINT, PREVIOUS) for p in folder.rglob(name) if trained(p.parent)})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = OneLineArgumentParser(
        prog="ppo-bench-eval",
        description="Evaluate a trained run's policy (or every run below a folder): N episodes, mean ± std of the "
                    "return and length; optionally an mp4 of the first episodes, or the policy exported.",
        epilog="examples:\n"
               "  ppo-bench-eval outputs/2026-12-02/10-00-00/InvertedPendulum-v5/clip_eps0.2/seed0 --episodes 10\n"
               "  ppo-bench-eval runs/table1 --episodes 5 --json runs/table1/eval.json\n"
               "  ppo-bench-eval RUN_DIR --video videos/ --video-episodes 2\n"
               "  ppo-bench-eval RUN_DIR --export policy.pt      # torch.jit.load('policy.pt')(obs) -> actions\n"
               "  ppo-bench-eval RUN_DIR --export policy.onnx    # for ONNX Runtime (the onnx extra)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="a run folder (config.yaml, checkpoint.pt) or a folder of runs at any depth")
    ap.add_argument("--episodes", type=int, default=10, help="episodes per run (default 10)")
    ap.add_argument("--stochastic", action="store_true", help="sample actions from the policy instead of its mean")
    ap.add_argument("--env-id", help="evaluate on this Gymnasium id instead of the run's own")
    ap.add_argument("--seed", type=int, default=0, help="episode i is reset with seed+i (default 0)")
    ap.add_argument("--video", metavar="DIR", help="record the first episodes of each run as mp4 into DIR")
    ap.add_argument("--video-episodes", type=int, default=1, help="episodes recorded with --video (default 1)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--export", metavar="PATH", help="write the run's acting policy and stop: TorchScript "
                                                     "(PATH ending in .pt) or ONNX (.onnx)")
    args = ap.parse_args(argv)
    for key in ("episodes", "video_episodes"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')}={getattr(args, key)} must be a positive integer")
    return args


def main(argv: list[str] | None = None) -> int:
    """The command: every error a user can cause in one line, exit code 2 (``ppo_bench.common.errors``)."""
    return run_command(lambda: evaluate_command(argv))


def evaluate_command(argv: list[str] | None) -> int:
    args = parse_args(argv)
    from ppo_bench.rl.policy import EXPORT_FORMATS, export_policy, load_policy

    if args.export and Path(args.export).suffix not in EXPORT_FORMATS:
        raise ConfigError(f"--export {args.export}: the file name must end in "
                          + " or ".join(f"{s} ({f})" for s, f in EXPORT_FORMATS.items()))
    folder = Path(args.folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder")
    runs = find_trained_runs(folder)
    if not runs:
        raise ConfigError(f"no trained run (config.yaml beside checkpoint.pt) in or below {folder}")
    # the outputs can be written, before the work whose results they hold
    for path, is_folder in ((args.export, False), (args.json, False), (args.video, True)):
        if path:
            check_writable(path, folder=is_folder)
    if args.export:
        if len(runs) > 1:
            raise ConfigError(f"--export takes one run folder; {folder} holds {len(runs)} runs")
        try:
            path = export_policy(load_policy(runs[0]), args.export)
        except ImportError as e:  # onnx, onnxscript: the onnx extra
            raise ConfigError(f"--export {args.export} needs {e.name}; install the onnx extra: "
                              "pip install 'ppo-bench[onnx]'") from None
        if path.suffix == ".onnx":
            print(f"wrote {path}: onnxruntime.InferenceSession('{path}').run(None, {{'obs': obs}})[0] maps a "
                  f"(B, obs_dim) array of raw observations, as the environment returns them, to actions")
        else:
            print(f"wrote {path}: torch.jit.load('{path}')(obs) maps a (B, obs_dim) float tensor of raw "
                  f"observations to actions")
        return 0
    if args.video:
        try:
            import moviepy  # noqa: F401  (Gymnasium's RecordVideo writes through it)
        except ImportError:
            raise ConfigError("--video needs moviepy; install the video extra: pip install 'ppo-bench[video]'") from None
    import gymnasium as gym

    results = []
    for run in runs:
        try:
            ev = evaluate(load_policy(run), args.episodes, not args.stochastic, args.env_id, args.seed,
                          args.video, args.video_episodes)
        except gym.error.Error as e:  # an unknown --env-id
            raise ConfigError(str(e).strip().splitlines()[0]) from None
        s = ev.summary()
        results.append(s)
        print(f"{run}: return {s['return_mean']:.2f} ± {s['return_std']:.2f}, length {s['length_mean']:.1f} ± "
              f"{s['length_std']:.1f} over {s['episodes']} episodes of {s['env']} ({s['actions']} actions)")
    if args.video:
        videos = sorted(Path(args.video).glob("*.mp4"))
        print(f"videos: {len(videos)} mp4 file(s) in {args.video}")
    if args.json:
        from ppo_bench.common.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
