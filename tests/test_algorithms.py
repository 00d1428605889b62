"""The algorithms of the PPO paper's Figure 3 (ppo_bench/rl/algorithms/): each formula against a hand value, a dense
solve or autograd; each algorithm's population member against its solo run, its resume against a straight run,
and a short run that must raise its return."""

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ppo_bench.rl.algorithms.a2c import a2c_loss
from ppo_bench.rl.algorithms.acer_trust_region import average_network, trust_region_projection
from ppo_bench.rl.algorithms.cem import added_noise_variance, elite_refit
from ppo_bench.rl.algorithms.trpo import conjugate_gradient, fisher_vector_product, line_search, max_step
from ppo_bench.rl.algorithms.vpg import adapt_step_size
from ppo_bench.rl.launch import population_specs, train_from_config
from ppo_bench.rl.engine.distributions import Categorical, DiagGaussian
from ppo_bench.rl.engine.networks import ActorCritic
from ppo_bench.rl.engine.trainer import CHECKPOINT, TIMING_KEYS, PopulationTrainer

ALGOS = ("trpo", "vpg", "a2c", "a2c_trust_region", "cem")
# tiny versions: a few iterations each
TINY = {"ppo": ["algo.num_steps=64", "algo.minibatch_size=32", "algo.epochs=2"],
        "trpo": ["algo.num_steps=64", "algo.vf_epochs=2", "algo.vf_minibatch_size=16"],
        "vpg": ["algo.num_steps=64", "algo.vf_epochs=2", "algo.vf_minibatch_size=16"],
        "a2c": ["algo.anneal_lr=false", "env.num_envs=4"],
        "a2c_trust_region": ["algo.anneal_lr=false", "env.num_envs=4"],
        "cem": ["algo.num_steps=40", "env.num_envs=5"]}


def test_conjugate_gradient_matches_a_dense_solve_per_run():
    gen = torch.Generator().manual_seed(0)
    R, P = 3, 6
    X = torch.randn(R, P, P, generator=gen, dtype=torch.float64)
    A = X @ X.transpose(1, 2) + 0.5 * torch.eye(P, dtype=torch.float64)  # a different SPD matrix per run
    b = torch.randn(R, P, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: (A @ v.unsqueeze(-1)).squeeze(-1), b, iters=P, residual_tol=1e-30)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), atol=1e-8, rtol=1e-8)
    # a run whose right-hand side is 0 stays at 0 while the others iterate
    b[1] = 0
    x = conjugate_gradient(lambda v: (A @ v.unsqueeze(-1)).squeeze(-1), b, iters=P, residual_tol=1e-30)
    assert torch.equal(x[1], torch.zeros(P, dtype=torch.float64))
    torch.testing.assert_close(x[[0, 2]], torch.linalg.solve(A, b)[[0, 2]], atol=1e-8, rtol=1e-8)


def test_max_step_puts_the_quadratic_kl_on_the_boundary():
    x, Fx = torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 1.0]])  # xᵀFx = 4
    step = max_step(x, Fx, 0.02)  # β = √(2·0.02/4) = 0.1
    torch.testing.assert_close(step, torch.tensor([[0.1, 0.2]]))
    assert math.isclose(0.5 * 0.1 ** 2 * 4, 0.02, rel_tol=1e-9)  # ½ (βx)ᵀF(βx) = δ


def test_line_search_never_accepts_a_kl_above_delta():
    gen = torch.Generator().manual_seed(1)
    delta = 0.01
    for _ in range(50):
        R = 6
        curvature = torch.rand(R, generator=gen) * 0.5  # KL(θ) = c·θ², surrogate a·θ − θ² (a ≤ 0: never improves)
        slope = torch.randn(R, generator=gen)

        def evaluate(theta):
            t = theta[:, 0]
            return slope * t - t * t, curvature * t * t

        full = torch.ones(R, 1) * (torch.rand(R, 1, generator=gen) * 3)
        new, frac = line_search(evaluate, torch.zeros(R, 1), full, delta)
        surr, kl = evaluate(new)
        assert (kl <= delta).all()
        accepted = frac > 0
        assert (surr[accepted] > 0).all()  # accepted steps improve on θ_old's surrogate (0)
        assert torch.equal(new[~accepted], torch.zeros_like(new[~accepted]))  # rejected runs keep θ
        assert not accepted[slope <= 0].any()
        # the first acceptable fraction is taken: the one before it (twice as long) was not acceptable
        for r in accepted.nonzero().flatten().tolist():
            if frac[r] < 1:
                t = 2 * frac[r] * full[r, 0]
                assert curvature[r] * t * t > delta or slope[r] * t - t * t <= 0


@pytest.mark.parametrize("gaussian", [True, False])
def test_fisher_vector_product_is_the_hessian_of_the_exact_kl(gaussian):
    torch.manual_seed(0)
    R, B, obs_dim, A = 2, 7, 3, 2
    model = ActorCritic(R, obs_dim, A if gaussian else 3, gaussian, hidden=[5, 4])
    for r in range(R):
        model.init_run(r, r)
    with torch.no_grad():
        model.flat.add_(0.3 * torch.randn_like(model.flat))  # away from the small-output-layer initialisation
    dist = DiagGaussian(A) if gaussian else Categorical(3)
    obs = torch.randn(R, B, obs_dim)
    w = (torch.rand(R, B) > 0.2).float()
    old, _ = model(obs)
    old = old.detach()
    theta0 = model.flat.detach().clone()

    def mean_kl(flat):  # Σ_r of run r's mean KL: its Hessian is block-diagonal over the runs
        p, _ = model(obs, flat=flat)
        kl = dist.kl(old, p)
        return ((kl * w).sum(1) / w.sum(1)).sum()

    H = torch.autograd.functional.hessian(mean_kl, theta0)  # (R, P, R, P)
    v = torch.randn_like(theta0)
    expected = torch.einsum("rpsq,sq->rp", H, v)
    params, _, tape = model.forward_taped(obs)
    got = fisher_vector_product(model, dist, tape, params, w, v, damping=0.0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    damped = fisher_vector_product(model, dist, tape, params, w, v, damping=0.1)
    torch.testing.assert_close(damped, expected + 0.1 * v, atol=1e-5, rtol=1e-4)


def test_adaptive_step_size_rule_by_hand():
    lr = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0])
    kl = torch.tensor([0.03, 0.0201, 0.02, 0.004, 0.005])  # target 0.01: > 2·target, just above, at, below half, at
    got = adapt_step_size(lr, kl, 0.01)
    torch.testing.assert_close(got, torch.tensor([1 / 1.5, 1 / 1.5, 1.0, 1.5, 1.0]))


def test_a2c_loss_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -0.5]])
    adv = torch.tensor([[2.0, -1.0, 4.0]])
    entropy = torch.tensor([[1.0, 1.0, 1.0]])
    value, ret = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    w = torch.tensor([[1.0, 1.0, 0.0]])  # the third sample is an autoreset row
    # policy: mean(−2, 2) = 0, entropy 1 → −(0 + 0.01·1); value: ½·mean(1, 0) = 0.25 → +0.5·0.25 (baselines' mse)
    got = a2c_loss(logp, adv, entropy, value, ret, w, ent_coef=0.01, vf_coef=0.5)
    torch.testing.assert_close(got, torch.tensor([-0.01 + 0.125]))


def test_a2c_update_follows_the_gradient_of_its_loss(make_cfg, monkeypatch):
    """The gradient A2C hands RMSProp (per-sample policy part, value part, the taped backward) is autograd's
    gradient of a2c_loss through the network, per run."""
    cfg = make_cfg("env=cartpole", "algo=a2c", *TINY["a2c"], "population.seeds=[0,1]")
    t = PopulationTrainer(cfg, population_specs(cfg))
    t.collect()
    data = t.batch()
    theta = t.model.flat.detach().clone().requires_grad_(True)
    seen = {}
    step = t.algo.opt.step

    def keep_gradient(*args, **kwargs):
        seen["grad"] = t.model.flat.grad.clone()
        return step(*args, **kwargs)

    monkeypatch.setattr(t.algo.opt, "step", keep_gradient)
    t.algo.update(data)
    params, value = t.model(data["obs"], flat=theta)
    loss = a2c_loss(t.dist.log_prob(params, data["actions"]), data["adv"], t.dist.entropy(params), value,
                    data["ret"], data["valid"], cfg.algo.ent_coef, cfg.algo.vf_coef)
    (expected,) = torch.autograd.grad(loss.sum(), theta)
    torch.testing.assert_close(seen["grad"], expected, atol=1e-6, rtol=1e-4)


def test_acer_trust_region_projection_by_hand():
    g = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    k = torch.tensor([[1.0, 1.0], [0.2, 0.0], [1.0, 1.0]])
    z, projected = trust_region_projection(g, k, delta=0.5)
    # row 0: kᵀg = 1 > δ → g − (1 − 0.5)/2 · k = (0.75, −0.25), on the boundary kᵀz = δ
    # row 1: kᵀg = 0.2 ≤ δ → unchanged; row 2: kᵀg = 2 → g − (1.5/2)·k = (−0.75, 1.25)
    torch.testing.assert_close(z, torch.tensor([[0.75, -0.25], [1.0, 0.0], [-0.75, 1.25]]))
    assert projected.tolist() == [True, False, True]
    torch.testing.assert_close((k[[0, 2]] * z[[0, 2]]).sum(-1), torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(average_network(torch.tensor([1.0]), torch.tensor([3.0]), 0.75), torch.tensor([1.5]))


def test_cem_elite_refit_by_hand():
    candidates = torch.tensor([[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 9.0]]])  # (R=1, N=4, P=2)
    scores = torch.tensor([[1.0, 10.0, -1.0, 5.0]])  # elite of 2: candidates 1 and 3
    mean, std = elite_refit(candidates, scores, 2, torch.tensor([0.25]))
    torch.testing.assert_close(mean, torch.tensor([[4.0, 6.0]]))
    # variances (population) of (2, 6) and (3, 9): 4 and 9, plus the added noise 0.25
    torch.testing.assert_close(std, torch.tensor([[math.sqrt(4.25), math.sqrt(9.25)]]))
    # the added variance falls linearly from 0.1² to 0 over 10 iterations (Szita & Lőrincz's Z_t)
    torch.testing.assert_close(added_noise_variance(torch.tensor([0, 5, 10, 20]), 0.1, 10.0),
                               torch.tensor([0.01, 0.005, 0.0, 0.0], dtype=torch.float64))


def trained(make_cfg, algo, seeds, iterations, env="cartpole"):
    cfg = make_cfg(f"env={env}", f"algo={algo}", *TINY[algo], f"population.seeds={seeds}")
    t = PopulationTrainer(cfg, population_specs(cfg))
    start = t.model.flat.detach().clone()
    for _ in range(iterations):
        t.collect()
        t.update()
        t.iteration += 1
    return t, start


@pytest.mark.parametrize("algo", ALGOS)
def test_each_member_trains_as_it_would_alone(make_cfg, algo):
    pop, pop_start = trained(make_cfg, algo, "[3,4]", 2)
    alone, _ = trained(make_cfg, algo, "[4]", 2)
    assert torch.equal(pop.buf.actions[:, 1], alone.buf.actions[:, 0])  # the same episodes
    torch.testing.assert_close(pop.model.flat[1], alone.model.flat[0], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(pop.model.flat[1], pop_start[1])  # it did move
    assert not torch.allclose(pop.model.flat[0], pop.model.flat[1])  # and the members differ


def assert_same_data(a, b, where=""):
    """Two checkpoints' contents (tensors and plain data) equal bit for bit, torch.equal for every tensor."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_data(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_data(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


def logged_scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar a run logged, (step, value) per tag, but the wall-clock ones."""
    events = EventAccumulator(str(run_dir)).Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"] if tag != "perf/sps"}


@pytest.mark.parametrize("algo", ["ppo", *ALGOS])
def test_resume_continues_bit_for_bit(make_cfg, tmp_path, algo):
    """Half the steps, then resumed to all of them, ends where a straight run ends, with several actors per run
    on an env whose observations are float32 (CartPole): the whole checkpoint (network, the algorithm's own state
    such as Adam, value Adam, adaptive step, RMSProp, average network, CEM's σ; normalisation statistics, envs)
    and every logged scalar equal bit for bit."""
    actors = {"ppo": ["env.num_envs=2"], "trpo": ["env.num_envs=2"], "vpg": ["env.num_envs=2"]}.get(algo, [])
    opts = ["env=cartpole", f"algo={algo}", *TINY[algo], *actors, "population.seeds=[0,1]", "checkpoint_every=1"]
    per_iter = {"ppo": 128, "trpo": 128, "vpg": 128, "a2c": 20, "a2c_trust_region": 20, "cem": 200}[algo]
    train_from_config(make_cfg(*opts, f"total_timesteps={4 * per_iter}", f"run_root={tmp_path}/a"))
    train_from_config(make_cfg(*opts, f"total_timesteps={2 * per_iter}", f"run_root={tmp_path}/b"))
    summary = train_from_config(make_cfg(*opts, f"total_timesteps={4 * per_iter}", f"run_root={tmp_path}/b",
                                         "resume=true"))
    for name, s in summary.items():
        assert s["global_step"] == 4 * per_iter
        a = torch.load(f"{tmp_path}/a/{name}/{CHECKPOINT}", weights_only=False)
        b = torch.load(f"{tmp_path}/b/{name}/{CHECKPOINT}", weights_only=False)
        for k in TIMING_KEYS:
            a.pop(k), b.pop(k)
        assert_same_data(a, b)
        assert logged_scalars(f"{tmp_path}/a/{name}") == logged_scalars(f"{tmp_path}/b/{name}")


def test_figure3_jobs_start_then_skip_what_finished(make_cfg, tmp_path):
    """A job of experiment=figure3 launched on an empty run root starts its runs, launched again skips them
    (the sweep is relaunched sitting after sitting)."""
    opts = ["experiment=figure3", "env=cartpole", "algo=a2c", "env.num_envs=2", "total_timesteps=40",
            "compile=false", f"run_root={tmp_path}/figure3"]
    first = train_from_config(make_cfg(*opts))
    assert len(first) == 3 and all(s["status"] == "finished" for s in first.values())
    again = train_from_config(make_cfg(*opts))
    assert all(s["status"] == "finished (skipped)" for s in again.values())
    # carried to another machine by the archive (an algorithm's run has no surrogate objective) and skipped there
    from ppo_bench.analysis.archive import pack, unpack

    assert pack(tmp_path / "figure3", tmp_path / "archive") == {"CartPole-v1": 3}
    assert unpack(tmp_path / "archive", tmp_path / "carried") == {"CartPole-v1": 3}
    carried = train_from_config(make_cfg(*opts[:-1], f"run_root={tmp_path}/carried"))
    assert {n: s["score_last100"] for n, s in carried.items()} == {n: s["score_last100"] for n, s in first.items()}
    assert all(s["status"] == "finished (skipped)" for s in carried.values())


# settings that learn CartPole within a few thousand steps (the algorithms' own defaults are for 1M MuJoCo steps)
# (a2c*: RMSProp's mean square starts at 1, TensorFlow's form, and keeps α^t of it; over these 300 updates α = 0.99
# keeps ≥ 0.05 of it, steps ≲ lr·g/0.22, too small to learn; α = 0.9 keeps 0.005 after 50 updates)
LEARN = {"trpo": ["algo.num_steps=512", "total_timesteps=10240"],
         "vpg": ["algo.num_steps=512", "algo.lr=0.003", "total_timesteps=10240"],
         "a2c": ["env.num_envs=8", "algo.lr=0.003", "algo.rms_alpha=0.9", "total_timesteps=12000"],
         "a2c_trust_region": ["env.num_envs=8", "algo.lr=0.003", "algo.rms_alpha=0.9", "total_timesteps=12000"],
         "cem": ["algo.num_steps=200", "env.num_envs=10", "algo.initial_std=0.3", "total_timesteps=16000"]}


@pytest.mark.parametrize("algo", ALGOS)
def test_a_short_run_raises_the_return(make_cfg, algo):
    summary = train_from_config(make_cfg("env=cartpole", f"algo={algo}", *LEARN[algo], "population.seeds=[0]"))
    (s,) = summary.values()
    returns = [e.value for e in EventAccumulator(s["dir"]).Reload().Scalars("charts/episodic_return")]
    first, last = sum(returns[:10]) / 10, sum(returns[-10:]) / 10
    assert last > 1.5 * first and last > 50, (algo, first, last)
