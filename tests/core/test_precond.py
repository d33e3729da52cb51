"""Each wrapper turns the ideal raw output of its parameterisation into the exact denoiser, and
each, trained briefly on the toy, gives a denoiser whose error falls."""

import pytest
import torch
from torch import nn

from diffsuite.core.precond import DenoisingLoss, EDMPrecond, FlowPrecond, VPPrecond
from diffsuite.core.schedules import LogitNormalLaw, LogNormalLaw, VPUniformLaw, vp_continuous_sigma, vp_discrete_sigmas
from diffsuite.core.toy import ToyNet


class Oracle(nn.Module):
    """The raw output each parameterisation should learn, computed from the exact denoiser."""

    def __init__(self, gm, target, sigma_of_input):
        super().__init__()
        self.gm, self.target, self.sigma_of_input = gm, target, sigma_of_input
        self.sigma = None

    def forward(self, x_in, c_noise, cond):
        s = self.sigma.reshape(-1, 1).double()
        x = x_in.double() * self.sigma_of_input(s)  # undo c_in: back to VE x
        d = self.gm.denoise(x, s.reshape(-1))
        eps = (x - d) / s
        return self.target(x, d, eps, s)


WRAPPERS = {
    "edm": (lambda net: EDMPrecond(net, sigma_data=0.5),
            lambda x, d, e, s: (d - 0.25 / (s**2 + 0.25) * x) / (s * 0.5 / (s**2 + 0.25).sqrt()),
            lambda s: (s**2 + 0.25).sqrt()),
    "eps": (lambda net: VPPrecond(net, "eps"), lambda x, d, e, s: e, lambda s: (1 + s**2).sqrt()),
    "x0": (lambda net: VPPrecond(net, "x0", discrete_steps=1000), lambda x, d, e, s: d, lambda s: (1 + s**2).sqrt()),
    "v": (lambda net: VPPrecond(net, "v", kind="cosine"),
          lambda x, d, e, s: (e - s * d) / (1 + s**2).sqrt(), lambda s: (1 + s**2).sqrt()),
    "flow": (FlowPrecond, lambda x, d, e, s: e - d, lambda s: 1 + s),
}


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_ideal_raw_output_gives_the_exact_denoiser(name, gm):
    wrap, target, scale = WRAPPERS[name]
    oracle = Oracle(gm, target, scale)
    D = wrap(oracle).double()
    x0, _ = gm.sample(64, torch.Generator().manual_seed(0))
    for sigma in (0.01, 0.3, 2.0, 40.0):
        s = torch.full((64,), sigma, dtype=torch.float64)
        x = x0 + sigma * torch.randn_like(x0)
        oracle.sigma = s
        torch.testing.assert_close(D(x, s), gm.denoise(x, s), rtol=1e-6, atol=1e-6)


def test_vp_time_labels_invert_the_schedules():
    D = VPPrecond(nn.Identity(), "eps")
    t = torch.linspace(0.01, 1, 50, dtype=torch.float64)
    torch.testing.assert_close(D.sigma_to_t(vp_continuous_sigma(t)), 999 * t)
    Dc = VPPrecond(nn.Identity(), "eps", kind="cosine")
    torch.testing.assert_close(Dc.sigma_to_t(vp_continuous_sigma(t, "cosine")), 999 * t, rtol=1e-6, atol=1e-3)
    Dd = VPPrecond(nn.Identity(), "eps", discrete_steps=1000)
    table = vp_discrete_sigmas("linear", 1000).float()
    torch.testing.assert_close(Dd.sigma_to_t(table[[0, 10, 500, 999]]), torch.tensor([0.0, 10, 500, 999]), atol=2e-3, rtol=0)


class PassThrough(nn.Module):
    def forward(self, x, c_noise, cond):
        return x


LAWS = {
    "edm": (lambda net: EDMPrecond(net, 0.5), LogNormalLaw(), "edm"),
    "eps": (lambda net: VPPrecond(net, "eps", discrete_steps=1000), VPUniformLaw(discrete_steps=1000), "min_snr"),
    "v": (lambda net: VPPrecond(net, "v"), VPUniformLaw(), "uniform"),
    "x0": (lambda net: VPPrecond(net, "x0"), VPUniformLaw(), "min_snr"),
    "flow": (FlowPrecond, LogitNormalLaw(), "uniform"),
}


@pytest.mark.parametrize("name", sorted(LAWS))
def test_brief_training_on_the_toy_reduces_the_denoising_error(name, gm):
    torch.manual_seed(0)
    wrap, law, weighting = LAWS[name]
    D = wrap(ToyNet(width=64, depth=2))
    loss_fn = DenoisingLoss(law, weighting, sigma_data=0.5)
    opt = torch.optim.Adam(D.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    x_eval, _ = gm.sample(2000, torch.Generator().manual_seed(2))
    sig = torch.tensor([0.05, 0.2, 0.5, 1.0, 3.0]).repeat_interleave(400)
    x_noisy = x_eval.float() + sig[:, None] * torch.randn(2000, 2, generator=g)

    def error():
        with torch.no_grad():
            return ((D(x_noisy, sig) - gm.denoise(x_noisy.double(), sig).float()) ** 2).mean().item()

    before = error()
    for _ in range(200):
        x0, _ = gm.sample(128, g)
        out = loss_fn(D, x0.float(), generator=g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    after = error()
    assert after < 0.5 * before, (before, after)


def test_loss_mask_ignores_padding():
    D = EDMPrecond(PassThrough(), 0.5)  # raw output = its input: a bad but finite denoiser
    loss = DenoisingLoss(LogNormalLaw(), "edm")
    x0 = torch.randn(4, 6, 3)
    mask = torch.ones(4, 6, 1)
    mask[:, 3:] = 0
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = loss(D, x0, mask=mask, generator=g()).per_sample
    x0[:, 3:] = 1e6  # whatever sits in the padding
    b = loss(D, x0, mask=mask, generator=g()).per_sample
    torch.testing.assert_close(a, b)


def test_loss_uses_the_noise_hook():
    D = EDMPrecond(PassThrough(), 0.5)
    loss = DenoisingLoss(LogNormalLaw(), "edm")
    seen = []

    def hook(x):
        seen.append(x.shape)
        return torch.zeros_like(x)

    out = loss(D, torch.randn(5, 2), noise=hook)
    assert seen == [torch.Size([5, 2])] and out.per_sample.shape == (5,) and out.sigma.shape == (5,)


def test_bad_weighting_and_sigma_shape_are_refused():
    with pytest.raises(ValueError, match="unknown weighting"):
        DenoisingLoss(LogNormalLaw(), "snr")
    with pytest.raises(ValueError, match="sigma must be"):
        EDMPrecond(PassThrough())(torch.randn(3, 2), torch.ones(2))
