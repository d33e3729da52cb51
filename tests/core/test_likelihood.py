import torch

from diffsuite.core.likelihood import ode_likelihood


def test_ode_log_likelihood_matches_the_exact_mixture_density(gm):
    x, _ = gm.sample(200, torch.Generator().manual_seed(3))
    D = lambda x, s, c=None: gm.denoise(x, s)  # noqa: E731
    exact = gm.log_prob(x, 0.002)
    L = ode_likelihood(D, x, exact_trace=True, steps=48)
    assert (L.log_prob - exact).abs().mean() < 0.06
    H = ode_likelihood(D, x, probes=4, steps=48, generator=torch.Generator().manual_seed(0))
    assert abs((H.log_prob - exact).mean().item()) < 0.1  # Hutchinson is unbiased
    torch.testing.assert_close(H.bits_per_dim, -H.log_prob / (2 * torch.log(torch.tensor(2.0, dtype=torch.float64))))


def test_likelihood_ranks_data_above_off_manifold_points(gm):
    D = lambda x, s, c=None: gm.denoise(x, s)  # noqa: E731
    data, _ = gm.sample(50, torch.Generator().manual_seed(0))
    far = data * 0.2  # the centre of the ring holds no mass
    on = ode_likelihood(D, data, exact_trace=True, steps=32).bits_per_dim
    off = ode_likelihood(D, far, exact_trace=True, steps=32).bits_per_dim
    assert on.mean() + 2 < off.mean()
