"""The HParams tab of a mixed sweep: every hyperparameter that varies is a column, as TensorBoard computes it."""

from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context

from ppo_bench.rl.cli import train_from_config

TINY = ["env=pendulum", "ppo.num_steps=64", "ppo.minibatch_size=32", "ppo.epochs=1", "ppo.total_timesteps=256"]  # 1 episode


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
    train_from_config(make_cfg(*TINY, "objective=none", "seed=1", "ppo.anneal_lr=true", "ppo.clip_value=0.2"))
    exp = hparams_experiment(tmp_path / "runs")
    cols = {h.name: h for h in exp.hparam_infos}
    for key in ("objective.name", "objective.eps", "objective.beta", "objective.kl_target", "seed",
                "ppo.anneal_lr", "ppo.clip_value"):
        assert key in cols, sorted(cols)
    assert cols["objective.name"].differs and cols["ppo.anneal_lr"].differs and cols["seed"].differs
    assert cols["objective.beta"].differs  # 3 (fixed) and 1 (adaptive's β₀)
    # one type per column, so the plugin can sort and filter it: a bool switch offers both values
    assert cols["ppo.anneal_lr"].type == api_pb2.DATA_TYPE_BOOL
    assert sorted(v.bool_value for v in cols["ppo.anneal_lr"].domain_discrete.values) == [False, True]
    assert cols["objective.eps"].type == api_pb2.DATA_TYPE_FLOAT64
    assert cols["ppo.clip_value"].type == api_pb2.DATA_TYPE_FLOAT64  # null elsewhere: left out, not "null"
    metrics = {m.name.tag for m in exp.metric_infos}
    assert "charts/episodic_return" in metrics
