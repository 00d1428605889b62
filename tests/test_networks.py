"""The actor-critic's hand-written backward (used by every update) against autograd on forward()."""

import pytest
import torch

from ppo_bench.rl.engine.networks import ActorCritic


@pytest.mark.parametrize("arch", ["separate", "shared"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("gaussian,action_dim", [(True, 6), (False, 3), (True, 17)])
def test_taped_backward_matches_autograd(arch, activation, gaussian, action_dim):
    R, B, obs_dim = 3, 11, 5
    net = ActorCritic(R, obs_dim, action_dim, gaussian, hidden=(8, 20), activation=activation, arch=arch)
    for r in range(R):
        net.init_run(r, seed=r, scheme="default")  # non-zero biases, so every path carries a signal
    with torch.no_grad():
        net.flat.add_(0.1 * torch.randn_like(net.flat))
    obs = torch.randn(R, B, obs_dim)
    w_out = torch.randn(R, B, 2 * action_dim if gaussian else action_dim)  # loss = Σ w·out + Σ v·value + Σ (out·value)²
    w_value = torch.randn(R, B)

    def loss_of(out, value):
        return (w_out * out).sum() + (w_value * value).sum() + ((out * value.unsqueeze(-1)) ** 2).sum()

    out, value = net(obs)
    loss_of(out, value).backward()
    expected = net.flat.grad.clone()

    out_t, value_t, tape = net.forward_taped(obs)
    torch.testing.assert_close(out_t, out.detach())
    torch.testing.assert_close(value_t, value.detach())
    out_t.requires_grad_(True)
    value_t.requires_grad_(True)
    g_out, g_value = torch.autograd.grad(loss_of(out_t, value_t), [out_t, value_t])
    got = net.backward_taped(tape, g_out, g_value)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert expected.abs().sum() > 0
