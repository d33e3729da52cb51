"""Preconditioning: a raw network becomes a denoiser in sigma space, and the training loss.

Every wrapper computes, from sigma alone (Karras et al. 2022, table 1),

    D(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma), cond)

so the raw network F only ever sees its own input scaling and noise label, whatever it was
trained to predict. Variance-preserving and flow models differ only in these coefficients:
with x = x0 + sigma * eps,

* VP:   x_vp = x / sqrt(1 + sigma^2)             (alpha = 1/sqrt(1+s^2), sigma_vp = s alpha)
* flow: x_t  = x / (1 + sigma),  t = s / (1 + s)  (x_t = (1 - t) x0 + t eps)

The noise label c_noise is of order one for every wrapper, the range the shared
``core.nn.embedding.NoiseEmbedding`` is tuned for: EDM's ln(sigma)/4 (about -1.6 to 1.1 over
sigma in [0.002, 80]), VP's time as a fraction of the chain (t/1000 in [0, 1)), flow's t in
[0, 1]. Labels up to 1000 would turn the embedding's top frequencies into aliased noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from .noise import NoiseFn
from .schedules import VPKind, vp_discrete_sigmas

Prediction = Literal["eps", "v", "x0"]


def _expand(sigma: Tensor | float, x: Tensor) -> Tensor:
    """sigma as Tensor[B] (float32, or float64 for float64 x) -> (B, 1, ..., 1) against x."""
    sigma = torch.as_tensor(sigma, dtype=torch.promote_types(x.dtype, torch.float32), device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"sigma must be a scalar or Tensor[{x.shape[0]}], got shape {tuple(sigma.shape)}")
    return sigma.reshape(-1, *([1] * (x.ndim - 1)))


class Precond(nn.Module):
    """Base class: subclasses give the four coefficients of sigma (already broadcast)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor, sigma: Tensor | float, cond: dict[str, Tensor] | None = None) -> Tensor:
        s = _expand(sigma, x)  # (B, 1, ...)
        c_skip, c_out, c_in, c_noise = self.coefficients(s)  # coefficients in >= float32
        xs = x.to(s.dtype)
        F = self.net((c_in * xs).to(x.dtype), c_noise.reshape(-1), cond)  # same shape as x
        return (c_skip * xs + c_out * F.to(s.dtype)).to(x.dtype)

    def loss_weight(self, sigma: Tensor) -> Tensor:
        """1 / c_out^2: the x0-space weight that is plain MSE on the network's own target."""
        _, c_out, _, _ = self.coefficients(sigma)
        return c_out.reshape(-1).pow(-2)


class EDMPrecond(Precond):
    """Karras et al. 2022, eq. 7: unit-variance input and target at every sigma."""

    def __init__(self, net: nn.Module, sigma_data: float = 0.5):
        super().__init__(net)
        self.sigma_data = sigma_data

    def coefficients(self, sigma):
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = 1 / (sigma**2 + sd2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise


class VPPrecond(Precond):
    """A variance-preserving model predicting eps, v or x0, continuous or discrete in time.

    ``sigma_to_t`` gives the timestep in [0, 999]: continuous, 999 * t with sigma(t) of the VP SDE
    (linear) or the cosine schedule; discrete (``discrete_steps=1000``), the fractional timestep
    found by interpolating log sigma in the training table, as k-diffusion's DiscreteSchedule does.
    The network's label is that timestep / 1000, in the embedding's range (module docstring).
    """

    def __init__(self, net: nn.Module, prediction: Prediction = "eps", kind: VPKind = "linear",
                 discrete_steps: int | None = None, beta_min: float = 0.1, beta_d: float = 19.9):
        super().__init__(net)
        if prediction not in ("eps", "v", "x0"):
            raise ValueError(f"unknown prediction {prediction!r}; expected eps, v or x0")
        self.prediction, self.kind, self.beta_min, self.beta_d = prediction, kind, beta_min, beta_d
        table = None if discrete_steps is None else vp_discrete_sigmas(kind, discrete_steps).log().float()
        self.register_buffer("log_sigmas", table, persistent=False)

    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        if self.log_sigmas is not None:  # discrete: fractional index into the table
            ls = self.log_sigmas
            s = sigma.log().clamp(ls[0], ls[-1])
            hi = torch.searchsorted(ls, s.contiguous()).clamp(1, len(ls) - 1)
            lo = hi - 1
            w = (s - ls[lo]) / (ls[hi] - ls[lo])
            return lo + w
        if self.kind == "linear":  # invert sigma^2 + 1 = exp(beta_d t^2 / 2 + beta_min t)
            b0, bd = self.beta_min, self.beta_d
            return 999 * ((b0**2 + 2 * bd * torch.log1p(sigma**2)).sqrt() - b0) / bd
        st = 0.008  # cosine: sqrt(abar) = cos((t + s)/(1 + s) pi/2) / cos(s/(1+s) pi/2)
        c = (1 + sigma**2).rsqrt() * math.cos(st / (1 + st) * math.pi / 2)
        return 999 * ((1 + st) * 2 / math.pi * torch.arccos(c.clamp(-1, 1)) - st)

    def coefficients(self, sigma):
        c_in = (1 + sigma**2).rsqrt()
        if self.prediction == "eps":  # x0 = x - sigma eps
            c_skip, c_out = torch.ones_like(sigma), -sigma
        elif self.prediction == "v":  # x0 = alpha x_vp - sigma_vp v
            c_skip, c_out = 1 / (1 + sigma**2), -sigma * c_in
        else:
            c_skip, c_out = torch.zeros_like(sigma), torch.ones_like(sigma)
        return c_skip, c_out, c_in, self.sigma_to_t(sigma) / 1000


class FlowPrecond(Precond):
    """Rectified flow predicting the velocity v = eps - x0 at x_t = (1 - t) x0 + t eps."""

    def __init__(self, net: nn.Module, time_scale: float = 1.0):  # label = time_scale * t, t in [0, 1]
        super().__init__(net)
        self.time_scale = time_scale

    def coefficients(self, sigma):
        t = sigma / (1 + sigma)
        c_in = 1 / (1 + sigma)
        return c_in, -t, c_in, self.time_scale * t  # x0 = x_t - t v, x_t = x / (1 + sigma)


# --- the training loss ---------------------------------------------------------------------

Weighting = Literal["edm", "min_snr", "uniform"]


@dataclass
class LossOutput:
    loss: Tensor  # scalar: mean over the batch
    per_sample: Tensor  # (B,)
    sigma: Tensor  # (B,) the noise levels drawn


class DenoisingLoss:
    """Denoising score matching in x0 space, E ||D(x0 + sigma eps, sigma) - x0||^2 weighted by
    lambda(sigma), with a per-element mask for variable-size data and a noise hook.

    Weightings (all in x0 space): ``edm`` (sigma^2 + sd^2) / (sigma sd)^2; ``min_snr`` min(SNR, gamma)
    with SNR = 1 / sigma^2 (Hang et al. 2023 -- the same x0 weight for eps, v and x0 targets);
    ``uniform`` plain MSE on whatever the wrapped network predicts (1 / c_out^2).
    """

    def __init__(self, law, weighting: Weighting = "edm", sigma_data: float = 0.5, gamma: float = 5.0):
        if weighting not in ("edm", "min_snr", "uniform"):
            raise ValueError(f"unknown weighting {weighting!r}; expected edm, min_snr or uniform")
        self.law, self.weighting, self.sigma_data, self.gamma = law, weighting, sigma_data, gamma

    def weight(self, denoiser: nn.Module, sigma: Tensor) -> Tensor:
        if self.weighting == "edm":
            sd = self.sigma_data
            return (sigma**2 + sd**2) / (sigma * sd) ** 2
        if self.weighting == "min_snr":
            return (1 / sigma**2).clamp(max=self.gamma)
        inner = getattr(denoiser, "module", denoiser)  # DDP / FSDP wrap the Precond
        return inner.loss_weight(sigma.reshape(-1, 1)).reshape(-1)

    def __call__(self, denoiser: nn.Module, x0: Tensor, cond=None, mask: Tensor | None = None,
                 noise: NoiseFn | None = None, generator: torch.Generator | None = None) -> LossOutput:
        sigma = self.law(x0.shape[0], device=x0.device, generator=generator)  # (B,)
        eps = noise(x0) if noise is not None else torch.randn(x0.shape, device=x0.device, generator=generator)
        s = sigma.reshape(-1, *([1] * (x0.ndim - 1)))
        denoised = denoiser(x0 + s * eps, sigma, cond)
        err = (denoised.float() - x0.float()) ** 2  # (B, ...)
        if mask is not None:
            m = mask.expand_as(err).float()
            per = (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)
        else:
            per = err.flatten(1).mean(1)
        per = per * self.weight(denoiser, sigma)
        return LossOutput(per.mean(), per.detach(), sigma.detach())


__all__ = ["EDMPrecond", "VPPrecond", "FlowPrecond", "Precond", "DenoisingLoss", "LossOutput"]
