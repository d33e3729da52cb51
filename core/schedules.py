"""Sampling grids (descending sigmas ending in 0) and training noise-level laws.

A grid is a value, not a flag: each function returns ``Tensor[n + 1]`` of sigmas in variance-
exploding form (``x = x0 + sigma * eps``), strictly descending, with a final 0. A law draws the
training sigmas ``Tensor[B]``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

Spacing = Literal["leading", "trailing", "linspace"]
VPKind = Literal["linear", "cosine"]


def _append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """Karras et al. 2022, eq. 5: sigma_i = (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho."""
    _check_range(n, sigma_min, sigma_max)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def exponential_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0) -> Tensor:
    """Log-linear grid: equal steps in log sigma (the rho -> infinity limit of Karras)."""
    _check_range(n, sigma_min, sigma_max)
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64).exp())


def vp_alphas_cumprod(kind: VPKind = "linear", num_train_steps: int = 1000,
                      beta_start: float = 0.00085, beta_end: float = 0.012) -> Tensor:
    """alpha-bar_t of a discrete VP model, t = 0 .. T-1 (DDPM linear-in-beta, or Nichol & Dhariwal cosine)."""
    if kind == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_steps, dtype=torch.float64)
        return torch.cumprod(1 - betas, 0)
    if kind == "cosine":  # Nichol & Dhariwal 2021, eq. 17, betas clipped at 0.999
        s = 0.008
        t = torch.arange(num_train_steps + 1, dtype=torch.float64) / num_train_steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        return torch.cumprod(1 - betas, 0)
    raise ValueError(f"unknown VP schedule kind {kind!r}; expected 'linear' or 'cosine'")


def vp_discrete_sigmas(kind: VPKind = "linear", num_train_steps: int = 1000, **betas: float) -> Tensor:
    """The training table sigma_t = sqrt((1 - abar_t) / abar_t), ascending in t."""
    abar = vp_alphas_cumprod(kind, num_train_steps, **betas)
    return ((1 - abar) / abar).sqrt()


def vp_sigmas(n: int, kind: VPKind = "linear", spacing: Spacing = "trailing", num_train_steps: int = 1000,
              **betas: float) -> Tensor:
    """A grid on the timesteps of a discrete VP model, with the spacings of Lin et al. 2024, table 2.

    leading:  t = floor(arange(n) * T/n)[::-1] + 1 (as DDIM/SD; never reaches t = T-1)
    trailing: t = round(arange(T, 0, -T/n)) - 1 (starts at the last, noisiest timestep)
    linspace: t = round(linspace(0, T-1, n))[::-1]
    """
    if not 1 <= n <= num_train_steps:
        raise ValueError(f"steps must be in [1, {num_train_steps}], got {n}")
    table = vp_discrete_sigmas(kind, num_train_steps, **betas)
    T = num_train_steps
    if spacing == "leading":
        t = (torch.arange(n, dtype=torch.float64) * (T // n)).floor().flip(0) + 1
    elif spacing == "trailing":
        t = torch.arange(T, 0, -T / n, dtype=torch.float64).round() - 1
    elif spacing == "linspace":
        t = torch.linspace(0, T - 1, n, dtype=torch.float64).round().flip(0)
    else:
        raise ValueError(f"unknown spacing {spacing!r}; expected leading, trailing or linspace")
    return _append_zero(table[t.long().clamp(0, T - 1)])


def flow_sigmas(n: int, shift: float = 1.0, t_max: float = 1.0 - 1e-3) -> Tensor:
    """Rectified-flow grid: t uniform from t_max to 0, shifted (SD3: t' = s t / (1 + (s-1) t)),
    mapped to sigma = t / (1 - t). The shift multiplies every sigma by `shift`.

    t = 1 is pure noise, sigma = inf; the grid starts at t_max < 1 instead.
    """
    if not 0 < t_max < 1:
        raise ValueError(f"t_max must be in (0, 1), got {t_max}")
    if n < 1:
        raise ValueError(f"steps must be >= 1, got {n}")
    t = torch.linspace(t_max, 0, n + 1, dtype=torch.float64)[:-1]
    return _append_zero(shift * t / (1 - t))


def _check_range(n: int, sigma_min: float, sigma_max: float) -> None:
    if n < 1:
        raise ValueError(f"steps must be >= 1, got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def check_sigmas(sigmas: Tensor) -> Tensor:
    """Refuse a grid a sampler cannot use, naming what is wrong."""
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D tensor of n + 1 >= 2 values, got shape {tuple(sigmas.shape)}")
    if not torch.isfinite(sigmas).all():
        raise ValueError("sigmas hold a non-finite value")
    if sigmas[-1] != 0:
        raise ValueError(f"sigmas must end in 0, got {sigmas[-1].item()}")
    if not (sigmas[:-1] > sigmas[1:]).all():
        i = int((sigmas[:-1] <= sigmas[1:]).nonzero()[0])
        raise ValueError(f"sigmas must be strictly descending; sigmas[{i}]={sigmas[i].item()} <= sigmas[{i + 1}]={sigmas[i + 1].item()}")
    return sigmas


GRIDS = {
    "karras": karras_sigmas,
    "exponential": exponential_sigmas,
    "vp": vp_sigmas,
    "flow": flow_sigmas,
}


# --- training noise-level laws ---------------------------------------------------------------

class LogNormalLaw:
    """EDM: ln sigma ~ N(p_mean, p_std^2), times `shift` (log-SNR shifted by -2 ln shift)."""

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2, shift: float = 1.0):
        self.p_mean, self.p_std, self.shift = p_mean, p_std, shift

    def __call__(self, n: int, device=None, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(n, device=device, generator=generator)
        return self.shift * (self.p_mean + self.p_std * z).exp()


class VPUniformLaw:
    """VP: t ~ U(eps_t, 1) through a continuous schedule, or t uniform over a discrete table."""

    def __init__(self, kind: VPKind = "linear", discrete_steps: int | None = None, eps_t: float = 1e-5,
                 beta_min: float = 0.1, beta_d: float = 19.9, shift: float = 1.0):
        self.kind, self.eps_t, self.beta_min, self.beta_d, self.shift = kind, eps_t, beta_min, beta_d, shift
        self.table = None if discrete_steps is None else vp_discrete_sigmas(kind, discrete_steps).float()

    def __call__(self, n: int, device=None, generator: torch.Generator | None = None) -> Tensor:
        if self.table is not None:
            idx = torch.randint(len(self.table), (n,), generator=generator, device=device)
            return self.shift * self.table.to(device)[idx]
        t = self.eps_t + (1 - self.eps_t) * torch.rand(n, device=device, generator=generator)
        return self.shift * vp_continuous_sigma(t, self.kind, self.beta_min, self.beta_d)


def vp_continuous_sigma(t: Tensor, kind: VPKind = "linear", beta_min: float = 0.1, beta_d: float = 19.9) -> Tensor:
    """sigma(t) of the continuous VP SDE (Song et al. 2021), or the cosine schedule at t in [0, 1]."""
    if kind == "linear":
        return torch.expm1(0.5 * beta_d * t**2 + beta_min * t).sqrt()
    s = 0.008
    abar = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    return ((1 - abar) / abar.clamp_min(1e-12)).sqrt()


class LogitNormalLaw:
    """Rectified flow (SD3): t = sigmoid(N(mean, std^2)), sigma = shift * t / (1 - t)."""

    def __init__(self, mean: float = 0.0, std: float = 1.0, shift: float = 1.0, t_max: float = 1 - 1e-4):
        self.mean, self.std, self.shift, self.t_max = mean, std, shift, t_max

    def __call__(self, n: int, device=None, generator: torch.Generator | None = None) -> Tensor:
        t = torch.sigmoid(self.mean + self.std * torch.randn(n, device=device, generator=generator))
        t = t.clamp(max=self.t_max)
        return self.shift * t / (1 - t)
