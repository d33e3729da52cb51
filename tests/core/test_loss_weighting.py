"""Each loss weighting against its formula, for every preconditioning.

The loss is sum over the batch of lambda(sigma) * mean ||D(x0 + sigma eps, sigma) - x0||^2 / B; the
weights are written here from the papers: EDM (Karras et al. 2022, eq. 8)
lambda = (sigma^2 + sd^2) / (sigma sd)^2; min-SNR (Hang et al. 2023) min(1/sigma^2, gamma) in x0
space; uniform: plain MSE on the network's own target, 1 / c_out^2 (eps: 1/sigma^2, v:
(1 + sigma^2)/sigma^2, x0: 1, flow: ((1 + sigma)/sigma)^2, EDM: the EDM weight).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from diffsuite.core.precond import DenoisingLoss, EDMPrecond, FlowPrecond, VPPrecond

SIGMAS = torch.tensor([0.002, 0.05, 0.3, 1.0, 2.5, 40.0])
SD = 0.5


class FixedLaw:
    def __call__(self, n, *, device=None, generator=None):
        return SIGMAS[:n].clone()


class Wobbly(nn.Module):
    """A raw network whose output depends on input and noise label (so D - x0 is never trivial)."""

    def forward(self, x, c_noise, cond=None):
        return torch.sin(3 * x) + 0.1 * c_noise.reshape(-1, *([1] * (x.ndim - 1)))


def edm_weight(s):
    return (s**2 + SD**2) / (s * SD) ** 2


UNIFORM = {  # 1 / c_out^2 per preconditioning, from each parameterisation's x0 = c_skip x + c_out F
    "edm": (lambda net: EDMPrecond(net, sigma_data=SD), edm_weight),
    "eps": (lambda net: VPPrecond(net, "eps"), lambda s: 1 / s**2),
    "v": (lambda net: VPPrecond(net, "v"), lambda s: (1 + s**2) / s**2),
    "x0": (lambda net: VPPrecond(net, "x0"), lambda s: torch.ones_like(s)),
    "flow": (lambda net: FlowPrecond(net), lambda s: ((1 + s) / s) ** 2),
}
WEIGHTINGS = {"edm": lambda s: edm_weight(s), "min_snr": lambda s: torch.clamp(1 / s**2, max=5.0)}


def _per_sample_error(D, x0, eps):
    s = SIGMAS.reshape(-1, 1, 1)
    with torch.no_grad():
        return ((D(x0 + s * eps, SIGMAS) - x0) ** 2).flatten(1).mean(1).double()


def _run(loss, D, x0, eps):
    out = loss(D, x0, noise=lambda x: eps)
    return out, _per_sample_error(D, x0, eps)


@pytest.mark.parametrize("precond", list(UNIFORM))
@pytest.mark.parametrize("weighting", ["edm", "min_snr", "uniform"])
def test_loss_is_the_weighted_denoising_error(precond, weighting):
    make, uniform = UNIFORM[precond]
    D = make(Wobbly())
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(len(SIGMAS), 3, 4, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    out, err = _run(DenoisingLoss(FixedLaw(), weighting, sigma_data=SD, gamma=5.0), D, x0, eps)
    w = (uniform if weighting == "uniform" else WEIGHTINGS[weighting])(SIGMAS.double())
    torch.testing.assert_close(out.per_sample.double(), w * err, rtol=2e-5, atol=0)
    torch.testing.assert_close(out.loss.double(), (w * err).mean(), rtol=2e-5, atol=0)
    torch.testing.assert_close(out.sigma, SIGMAS)


def test_uniform_weighting_is_plain_mse_on_the_networks_target():
    """For eps prediction, uniform weighting is ||F - eps||^2: the DDPM loss, nothing else."""
    net = Wobbly()
    D = VPPrecond(net, "eps")
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(len(SIGMAS), 5, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    out = DenoisingLoss(FixedLaw(), "uniform")(D, x0, noise=lambda x: eps)
    s = SIGMAS.reshape(-1, 1)
    c_in = 1 / torch.sqrt(1 + s**2)
    F = net(c_in * (x0 + s * eps), D.sigma_to_t(SIGMAS) / 1000)  # the label: the timestep / 1000
    torch.testing.assert_close(out.per_sample, ((F - eps) ** 2).mean(1), rtol=1e-4, atol=1e-6)


def test_masked_elements_carry_no_weight_and_the_mean_is_over_real_ones():
    D = EDMPrecond(Wobbly(), sigma_data=SD)
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(len(SIGMAS), 6, 1, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    mask = torch.ones_like(x0)
    mask[:, 4:] = 0
    out = DenoisingLoss(FixedLaw(), "edm", sigma_data=SD)(D, x0, mask=mask, noise=lambda x: eps)
    s = SIGMAS.reshape(-1, 1, 1)
    with torch.no_grad():
        err = ((D(x0 + s * eps, SIGMAS) - x0) ** 2)[:, :4].flatten(1).mean(1)
    torch.testing.assert_close(out.per_sample, edm_weight(SIGMAS) * err, rtol=2e-5, atol=0)
    assert math.isfinite(out.loss.item())
