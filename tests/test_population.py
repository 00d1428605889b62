"""A member of a population learns what it learns alone with the same seed."""

import numpy as np
import torch

from ppo_bench.rl.launch import population_specs
from ppo_bench.rl.engine.trainer import PopulationTrainer, per_run_sum

SETTINGS = "population.objectives=[{name:clip,eps:0.1},{name:kl_adaptive,kl_target:0.003},{name:none}]"
SMALL = ["algo.num_steps=64", "algo.minibatch_size=16", "algo.epochs=2"]

# Tolerance for the compiled update against the eager one (Inductor's kernels round differently).
ATOL, RTOL = 1e-5, 1e-4


def trainer(cfg):
    return PopulationTrainer(cfg, population_specs(cfg))


def first_update(cfg):
    t = trainer(cfg)
    t.collect()
    before = t.model.flat.detach().clone()
    stats = t.update()
    return t, before, stats


def test_each_member_gets_the_same_first_update_as_alone(make_cfg):
    for env in ("env=hopper", "env=cartpole"):
        pop, pop_before, pop_stats = first_update(make_cfg(env, *SMALL, SETTINGS, "population.seeds=[3,4]"))
        assert pop.R == 6
        for r, spec in enumerate(pop.specs):
            obj = ",".join(f"{k}:{v}" for k, v in spec.objective.items())
            alone, alone_before, alone_stats = first_update(
                make_cfg(env, *SMALL, f"population.objectives=[{{{obj}}}]", f"population.seeds=[{spec.seed}]"))
            assert torch.equal(pop_before[r], alone_before[0])  # same initial weights from the seed
            assert torch.equal(pop.buf.actions[:, r], alone.buf.actions[:, 0])  # same episodes
            assert torch.equal(pop.model.flat[r], alone.model.flat[0])  # bit for bit (networks._bmm, PerRunAdam)
            assert not torch.allclose(pop.model.flat[r], pop_before[r])  # it did move
            for k in pop_stats:
                assert torch.equal(pop_stats[k][r], alone_stats[k][0]), k


def test_members_differ_and_adaptive_beta_follows_the_rule(make_cfg):
    t = trainer(make_cfg("env=pendulum", *SMALL, "population.objectives=[{name:kl_adaptive,kl_target:0.003}]",
                         "population.seeds=[0,1]"))
    assert not torch.equal(t.model.flat[0], t.model.flat[1])
    for _ in range(3):
        beta = t.algo.groups[0][2]["beta"].clone()
        t.collect()
        d = t.update()["kl"]
        t.iteration += 1
        for r in range(2):
            expect = beta[r] / 2 if d[r] < 0.003 / 1.5 else beta[r] * 2 if d[r] > 0.0045 else beta[r]
            assert torch.equal(t.algo.groups[0][2]["beta"][r], expect)


def test_acting_policy_and_value_equal_the_training_forward(make_cfg):
    for env, arch, seeds in (("env=hopper", "model=separate", "[0,1,2]"), ("env=cartpole", "model=shared", "[0,1,2]"),
                              ("env=hopper", "model=separate", "[0,1,2,3,4,5]"), ("env=pendulum", "model=shared", "[0,1,2,3,4]"),
                              ("env=hopper", "model=separate model.activation=relu", "[0,1]")):
        t = trainer(make_cfg(env, *arch.split(), f"population.seeds={seeds}"))
        obs = torch.randn(t.R, 5, t.obs_dim)
        p_train, v_train = t.model(obs)
        p_act = t.model.acting_policy()(obs.numpy())
        assert p_act.dtype == np.float32
        torch.testing.assert_close(torch.from_numpy(p_act), p_train.detach(), atol=1e-6, rtol=1e-5)
        assert torch.equal(t.model.value(obs), v_train.detach())


def test_compiled_update_equals_the_eager_one(make_cfg):
    """compile=true (torch.compile of the minibatch gradient: taped forward, loss gradient, taped backward)
    trains the same runs as the eager path, to float rounding, over several iterations, without recompiling
    when the adaptive β changes between iterations (a recompile would silently fall back to eager after a few)."""
    import torch._dynamo

    cases = [("env=hopper", "model=separate", "algo.clip_value=0.2", "algo.ent_coef=0.01"),
             ("env=cartpole", "model=shared", "algo.norm_adv=minibatch", "algo.vf_coef=0.5")]
    for case in cases:
        torch._dynamo.reset()  # another trainer in this process (other shapes) is not a recompile of this one
        runs = {}
        for mode in ("false", "true"):
            t = trainer(make_cfg(*case, *SMALL, SETTINGS, "population.seeds=[3,4]", f"compile={mode}"))
            assert (t.algo.compiled_gradient is not None) == (mode == "true")
            t.start(resume=False)
            start = t.model.flat.detach().clone()
            with torch._dynamo.config.patch(error_on_recompile=True):  # (config's own patch: monkeypatch breaks it)
                for _ in range(3):
                    t.iterate()
            runs[mode] = t
        eager, compiled = runs["false"], runs["true"]
        assert not torch.allclose(eager.model.flat, start, atol=ATOL, rtol=RTOL)  # training moved the weights
        torch.testing.assert_close(compiled.model.flat, eager.model.flat, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(compiled.algo.opt.v, eager.algo.opt.v, atol=1e-7, rtol=1e-3)
        for (_, _, hp_c), (_, _, hp_e) in zip(compiled.algo.groups, eager.algo.groups):
            for k in hp_e:
                assert torch.equal(hp_c[k], hp_e[k])  # the same β decisions


def test_members_train_bit_for_bit_as_alone_whatever_their_neighbours_do(make_cfg, monkeypatch, capsys):
    """Healthy members of a population whose other members diverge (β turns infinite: a non-finite loss) or
    fail otherwise (non-finite parameters after an update) end with the same checkpoint and log the same
    numbers, to the bit, as each alone; the member that had no checkpoint yet says so."""
    from ppo_bench.rl.algorithms.ppo.algorithm import PPO
    from ppo_bench.rl.launch import train_from_config
    from scripts.fault_drill import run_differences, scalars

    small = ["env=hopper", "algo.num_steps=128", "algo.minibatch_size=32", "algo.epochs=2", "total_timesteps=512",
             "checkpoint_every=2"]
    objectives = [("clip", "eps:0.2"), ("kl_fixed", "beta:1.0")]
    orig_adapt, orig_check = PPO.adapt, PopulationTrainer.check_parameters

    def beta_turns_infinite(self, mean_kl):  # kl_fixed/seed0 diverges in iteration 1, before its first checkpoint
        orig_adapt(self, mean_kl)
        if int(self.tr.iteration[2]) == 0:
            self.groups[1][2]["beta"][0] = float("inf")

    def parameters_blow_up(self):  # clip/seed1 breaks in iteration 2 (after its checkpoint at iteration 2)
        if int(self.iteration[1]) == 2:
            self.model.flat.data[1, :7] = float("nan")
        orig_check(self)

    monkeypatch.setattr(PPO, "adapt", beta_turns_infinite)
    monkeypatch.setattr(PopulationTrainer, "check_parameters", parameters_blow_up)
    pop = train_from_config(make_cfg(*small, "population.seeds=[0,1]",
                                     "population.objectives=[" + ",".join(f"{{name:{n},{h}}}" for n, h in objectives)
                                     + "]", f"run_root={make_cfg.root}/pop"))
    monkeypatch.setattr(PPO, "adapt", orig_adapt)
    monkeypatch.setattr(PopulationTrainer, "check_parameters", orig_check)
    status = {n: s["status"] for n, s in pop.items()}
    assert status == {"Hopper-v5/clip_eps0.2/seed0": "finished", "Hopper-v5/clip_eps0.2/seed1": "failed",
                      "Hopper-v5/kl_fixed_beta1/seed0": "failed", "Hopper-v5/kl_fixed_beta1/seed1": "finished"}
    err = capsys.readouterr().err
    assert "kl_fixed_beta1/seed0 stopped at iteration 1 (step 128): non-finite loss; it had no checkpoint yet" in err
    assert "clip_eps0.2/seed1 stopped at iteration 2 (step 256): non-finite parameters after the update; " \
           "its last good checkpoint is kept" in err

    for (name, hp), seed in (objectives[0], 0), (objectives[1], 1):
        run = f"Hopper-v5/{name}_{hp.replace(':', '').replace('.0', '')}/seed{seed}"
        alone = train_from_config(make_cfg(*small, f"population.seeds=[{seed}]",
                                           f"population.objectives=[{{name:{name},{hp}}}]",
                                           f"run_root={make_cfg.root}/alone"))
        assert list(alone) == [run] and alone[run]["status"] == "finished"
        # the whole checkpoint (but the wall time) and every logged scalar (but perf/*), the acting diagnostics
        # (policy/*) and the env's reward terms (env/*) included
        assert run_differences(f"{make_cfg.root}/pop/{run}", f"{make_cfg.root}/alone/{run}") == [], run
        assert {"policy/mean_std", "env/reward_forward", "losses/policy"} <= set(scalars(f"{make_cfg.root}/pop/{run}"))


def test_per_run_sums_of_a_population_equal_each_run_alone():
    """The acting diagnostics and reward terms are per-run sums over (T, N, ...): a member's equals its own
    array's to the bit (a NumPy sum over axes (0, 2, 3) of the population's array rounded otherwise)."""
    x = np.random.default_rng(0).standard_normal((256, 3, 2, 5)).astype(np.float32)
    together = per_run_sum(x)
    for r in range(3):
        alone = per_run_sum(np.ascontiguousarray(x[:, r:r + 1]))
        assert together[r] == alone[0]
        assert together[r] == np.float32(x[:, r].reshape(-1).sum())  # the run's values in its own order
    assert per_run_sum(x > 0).tolist() == [(x[:, r] > 0).sum() for r in range(3)]
