"""GAE (paper eq. 11–12) against a brute-force sum over a rollout with every kind of episode end."""

import numpy as np

from ppo_bench.common.losses import gae


def brute_force(rewards, values, terminated, truncated, valid, gamma, lam):
    """Â_t = Σ_k (γλ)^k δ_{t+k}, summed explicitly until the episode or the rollout ends."""
    T = len(rewards)
    adv = np.zeros(T)
    for t in range(T):
        if not valid[t]:
            continue
        total, k = 0.0, 0
        while t + k < T:
            i = t + k
            bootstrap = 0.0 if terminated[i] else values[i + 1]
            delta = rewards[i] + gamma * bootstrap - values[i]
            total += (gamma * lam) ** k * delta
            if terminated[i] or truncated[i]:
                break
            k += 1
        adv[t] = total
    return adv


def make_rollout(rng, T, p_end=0.15):
    rewards = rng.normal(size=T)
    values = rng.normal(size=T + 1)
    terminated = np.zeros(T, bool)
    truncated = np.zeros(T, bool)
    valid = np.ones(T, bool)
    for t in range(T):
        if t > 0 and (terminated[t - 1] or truncated[t - 1]):
            valid[t] = False  # NEXT_STEP autoreset row: action ignored, reward 0
            rewards[t] = 0.0
            continue
        u = rng.random()
        terminated[t] = u < p_end / 2
        truncated[t] = p_end / 2 <= u < p_end
    return rewards, values, terminated, truncated, valid


def test_gae_matches_brute_force_with_terminations_truncations_and_reset_rows():
    rng = np.random.default_rng(0)
    for trial in range(20):
        r, v, te, tr, va = make_rollout(rng, 64)
        assert te.any() and tr.any() and (~va).any()
        adv, ret = gae(r, v, te, tr, va, gamma=0.99, lam=0.95)
        np.testing.assert_allclose(adv, brute_force(r, v, te, tr, va, 0.99, 0.95), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ret, adv + v[:-1])
        assert np.all(adv[~va] == 0)


def test_gae_batched_axes_equal_per_column():
    rng = np.random.default_rng(1)
    cols = [make_rollout(rng, 40) for _ in range(6)]
    stacked = [np.stack([c[i] for c in cols], axis=1).reshape(-1 if i != 1 else 41, 2, 3) for i in range(5)]
    adv, _ = gae(*stacked, gamma=0.9, lam=0.8)
    for j, c in enumerate(cols):
        ref, _ = gae(*c, gamma=0.9, lam=0.8)
        np.testing.assert_allclose(adv.reshape(40, 6)[:, j], ref)


def test_truncation_bootstraps_from_final_observation_and_termination_does_not():
    # one step then the episode ends; row 1 is the reset row whose observation is the final one
    rewards = np.array([1.0, 0.0])
    values = np.array([0.5, 10.0, 3.0])  # V(o_0), V(final obs), V(next)
    valid = np.array([True, False])
    trunc, _ = gae(rewards, values, np.array([False, False]), np.array([True, False]), valid, 0.9, 0.5)
    term, _ = gae(rewards, values, np.array([True, False]), np.array([False, False]), valid, 0.9, 0.5)
    assert trunc[0] == 1.0 + 0.9 * 10.0 - 0.5
    assert term[0] == 1.0 - 0.5
