"""The HParams tab, as TensorBoard's own HParams code computes it: every hyperparameter that varies is a column;
trials are named like the run selector; operational keys and copies are left out; integers read as integers; the
objectives' settings are columns of every run, among the first the dashboard shows."""

import subprocess
import sys

from omegaconf import OmegaConf
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context

from ppo_bench.rl.launch import train_from_config

TINY = ["env=pendulum", "algo.num_steps=64", "algo.minibatch_size=32", "algo.epochs=1", "total_timesteps=256"]  # 1 episode


def hparams_experiment(logdir) -> api_pb2.Experiment:
    """The experiment TensorBoard's HParams plugin serves for this logdir (its own backend, no server)."""
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(data_provider=provider, logdir=str(logdir)))
    ctx = context.RequestContext()
    return backend.experiment_from_metadata(ctx, "", True, backend.hparams_metadata(ctx, ""),
                                            backend.hparams_from_data_provider(ctx, "", 0))


def test_every_varied_key_is_a_column_across_objectives_and_processes(make_cfg, tmp_path):
    # one process: three objectives with different hyperparameter keys; a second process (as a Hydra job
    # would be) with another step-size schedule and value clipping, logging into the same folder
    train_from_config(make_cfg(*TINY, "population.objectives=[{name:clip,eps:0.1},{name:kl_fixed,beta:3},"
                                      "{name:kl_adaptive,kl_target:0.03}]"))
    train_from_config(make_cfg(*TINY, "objective=none", "seed=1", "algo.anneal_lr=true", "algo.clip_value=0.2"))
    exp = hparams_experiment(tmp_path / "runs")
    cols = {h.name: h for h in exp.hparam_infos}
    for key in ("objective.name", "objective.eps", "objective.beta", "objective.kl_target", "seed",
                "algo.anneal_lr", "algo.clip_value"):
        assert key in cols, sorted(cols)
    assert cols["objective.name"].differs and cols["algo.anneal_lr"].differs and cols["seed"].differs
    assert cols["objective.beta"].differs  # 3 (fixed) and 1 (adaptive's β₀)
    # one type per column, so the plugin can sort and filter it: a bool switch offers both values
    assert cols["algo.anneal_lr"].type == api_pb2.DATA_TYPE_BOOL
    assert sorted(v.bool_value for v in cols["algo.anneal_lr"].domain_discrete.values) == [False, True]
    # an objective's setting as written, a discrete column; empty where the run's objective has none
    assert cols["objective.eps"].type == api_pb2.DATA_TYPE_STRING
    assert sorted(cols["objective.eps"].domain_discrete.values[i].string_value
                  for i in range(len(cols["objective.eps"].domain_discrete.values))) == ["", "0.1"]
    assert cols["seed"].type == api_pb2.DATA_TYPE_STRING  # an integer as its text: "1", not 1.0000
    assert cols["algo.clip_value"].type == api_pb2.DATA_TYPE_FLOAT64  # null elsewhere: left out, not "null"
    metrics = {m.name.tag for m in exp.metric_infos}
    assert "charts/episodic_return" in metrics


def session_groups(logdir, exp: api_pb2.Experiment) -> dict[str, dict]:
    """Trial id -> {column: value} of every row of the HParams table, through TensorBoard's own session listing."""
    from tensorboard.plugins.hparams import list_session_groups

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(data_provider=provider, logdir=str(logdir)))
    ctx = context.RequestContext()
    request = api_pb2.ListSessionGroupsRequest(
        col_params=[api_pb2.ColParams(hparam=h.name) for h in exp.hparam_infos], start_index=0, slice_size=1000,
        allowed_statuses=[api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE,
                          api_pb2.STATUS_RUNNING])
    handler = list_session_groups.Handler(ctx, backend, "", request)
    groups = handler.run().session_groups
    return {g.name: {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in g.hparams.items()}
            for g in groups}


def dashboard_columns(exp: api_pb2.Experiment, shown: int = 5) -> list[str]:
    """The columns the HParams dashboard shows before any is ticked: TensorBoard's backend orders them (those that
    differ first, then by name) and the dashboard shows the first five."""
    return [h.name for h in sorted(exp.hparam_infos, key=lambda h: (not h.differs, h.name))][:shown]


def test_table1_smoke_sweep_reads_like_the_run_selector(tmp_path):
    # the Table-1 smoke sweep as a user launches it (a Hydra multirun, one population per environment), shortened
    cmd = [sys.executable, "-m", "ppo_bench", "-m", "experiment=table1_smoke", "hydra/launcher=basic",
           "total_timesteps=128", "algo.num_steps=64", "algo.minibatch_size=32", "algo.epochs=1"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    logdir = tmp_path / "runs" / "table1_smoke"
    exp = hparams_experiment(logdir)
    cols = {h.name: h for h in exp.hparam_infos}
    rows = session_groups(logdir, exp)
    assert sorted(rows) == sorted(f"{env}/{setting}/seed{seed}" for env in ("InvertedPendulum-v5", "Hopper-v5")
                                  for setting in ("none", "clip_eps0.2", "kl_adaptive_beta1_kl_target0.01")
                                  for seed in (0, 1))
    for key in ("run_root", "resume", "compile", "torch_threads", "checkpoint_every", "progress", "extensions"):
        assert not any(c == key or c.startswith(key + ".") for c in cols), key
    assert not any(c.startswith("population") for c in cols)
    # the objective's own settings: columns of every row, among the five the dashboard shows
    assert {"objective.eps", "objective.beta", "objective.kl_target"} <= set(dashboard_columns(exp))
    clip = rows["Hopper-v5/clip_eps0.2/seed1"]
    assert (clip["objective.eps"], clip["objective.beta"], clip["objective.kl_target"]) == ("0.2", "", "")
    kl = rows["InvertedPendulum-v5/kl_adaptive_beta1_kl_target0.01/seed0"]
    assert (kl["objective.eps"], kl["objective.beta"], kl["objective.kl_target"]) == ("", "1", "0.01")
    assert (clip["seed"], clip["algo.num_steps"], clip["total_timesteps"]) == ("1", "64", "128")
    assert cols["algo.lr"].type == api_pb2.DATA_TYPE_FLOAT64 and clip["algo.lr"] == 0.003


def test_multirun_trials_are_named_below_the_sweep_folder(tmp_path):
    # each Hydra job has its own run_root (the default: the job's folder inside the sweep folder)
    cmd = [sys.executable, "-m", "ppo_bench", "-m", *TINY[1:], "env=cartpole", "seed=0,1", "progress=never",
           "hydra.sweep.dir=sweep"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    exp = hparams_experiment(tmp_path / "sweep")
    assert sorted(session_groups(tmp_path / "sweep", exp)) == ["0/CartPole-v1/clip_eps0.2/seed0",
                                                                "1/CartPole-v1/clip_eps0.2/seed1"]


def test_copies_are_left_out():
    from ppo_bench.common.tblog import hparams_row, interpolated_keys

    cfg = OmegaConf.create({"algo": {"gamma": 0.99, "num_steps": 2048}, "critic": {"gamma": "${algo.gamma}"},
                            "run_root": "${oc.env:HOME}/runs", "name": "${algo.gamma}_x", "seed": 3})
    assert interpolated_keys(cfg) == ["critic.gamma"]
    row = hparams_row(OmegaConf.to_container(cfg, resolve=True), leave_out=["run_root", *interpolated_keys(cfg)],
                      settings=["objective.eps"])
    assert row == {"algo.gamma": 0.99, "algo.num_steps": "2048", "name": "0.99_x", "seed": "3", "objective.eps": ""}


def test_lm_runs_read_like_the_run_selector_too(tmp_path):
    # ppo-bench-llm's rows: named below the sweep, the operational keys left out, integers as text, the budget kept
    tiny = ["model=tiny", "task=reverse", "task.n_eval=4", "eval.every=0", "eval.before=false", "eval.batch_size=4",
            "eval.max_new_tokens=4", "algo.max_completion_length=4", "algo.prompts_per_step=2",
            "algo.num_generations=4", "save_model=false", "torch_threads=1", "algo.steps=1"]
    cmd = [sys.executable, "-m", "ppo_bench.llm.cli", "-m", *tiny, "seed=0,1", "run_root=runs"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    logdir = tmp_path / "runs"
    exp = hparams_experiment(logdir)
    cols = {h.name: h for h in exp.hparam_infos}
    rows = session_groups(logdir, exp)
    (tag,) = {name.split("/")[1] for name in rows}
    assert sorted(rows) == [f"reverse-tiny/{tag}/seed0", f"reverse-tiny/{tag}/seed1"]
    for key in ("run_root", "run_name", "resume", "progress", "torch_threads", "checkpoint_every", "save_model",
                "algo.run_tag", "model.gguf_cache", "eval.every", "extensions"):
        assert not any(c == key or c.startswith(key + ".") for c in cols), key
    assert cols["seed"].differs and rows[f"reverse-tiny/{tag}/seed1"]["seed"] == "1"
    assert rows[f"reverse-tiny/{tag}/seed0"]["algo.steps"] == "1" and "algo.lr" in cols
    assert "task.rewards" in cols  # the reward functions' weights: one column
