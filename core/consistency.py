"""Few-step generation: Easy Consistency Tuning (ECT; Geng et al., ICLR 2025, arXiv 2406.14548) as
a training loss of the core, and the re-noising grid the multistep consistency sampler walks.

ECT fine-tunes a trained EDM-preconditioned denoiser ``D`` into a consistency function. Per example
it draws ``t ~ lognormal(p_mean, p_std)`` and a smaller level

    r = t * (1 - q^-(stage + 1) * (1 + k * sigmoid(-b t)))     clamped at 0,

noises the clean sample with ONE draw of the noise at both levels (``x_t = x0 + t eps``,
``x_r = x0 + r eps``) and regresses ``D(x_t, t)`` onto the stop-gradient ``D(x_r, r)`` -- onto
``x0`` itself where ``r = 0``. ``stage`` grows by one every ``stage_every`` optimizer steps, so
``r -> t`` and the model is asked to be consistent over ever shorter intervals; at stage 0 with
q = 4 every ``t`` below about 1.2 has ``r = 0``, i.e. the loss starts as plain denoising.

Both network passes see the same dropout mask (the random-number state is set back before the
second pass), as ECT does; the network must have dropout for the recipe to work as published.
The distance is the pseudo-Huber ``sqrt(mse + c^2) - c`` of the per-example mean squared error
(ECT: of the sum, a constant factor sqrt(d) for fixed-size data that Adam does not see; the mean
keeps variable-size data, molecules, on one scale), times ``(t^2 + sd^2) / (t sd)^2``.

The loss has the call interface of ``core.precond.DenoisingLoss``, plus ``step=`` for the stage.
Train with ``diffsuite train model=ect init=<exported weights>`` (configs/model/ect.yaml).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .noise import NoiseFn
from .precond import LossOutput
from .schedules import LogNormalLaw, _append_zero


class ConsistencyLoss:
    """ECT's loss; ``__call__(denoiser, x0, cond, mask, noise=, generator=, step=) -> LossOutput``.

    law: the law of t (default lognormal(-1.1, 2.0), ECT's); q, k, b: the r(t) mapping above;
    c: the pseudo-Huber constant (0 = the L2 norm, ECT's choice); stage_every: optimizer steps per
    stage (0 = stay at stage 0, as ECT's one-hour recipe with q = 256 does)."""

    def __init__(self, law=None, sigma_data: float = 0.5, q: float = 4.0, k: float = 8.0, b: float = 1.0,
                 c: float = 0.0, stage_every: int = 0):
        if q <= 1:
            raise ValueError(f"ECT needs q > 1 (r moves towards t by 1/q per stage), got q={q}")
        if stage_every < 0:
            raise ValueError(f"stage_every must be >= 0 (0: a fixed stage), got {stage_every}")
        if c < 0:
            raise ValueError(f"the pseudo-Huber constant c must be >= 0, got {c}")
        self.law = law if law is not None else LogNormalLaw(p_mean=-1.1, p_std=2.0)
        self.sigma_data, self.q, self.k, self.b, self.c, self.stage_every = sigma_data, q, k, b, c, stage_every

    def stage(self, step: int) -> int:
        return step // self.stage_every if self.stage_every > 0 else 0

    def r_of(self, t: Tensor, step: int) -> Tensor:
        """The smaller noise level r(t) at optimizer step `step` (0 where the mapping goes negative)."""
        decay = self.q ** -(self.stage(step) + 1)
        return (t * (1 - decay * (1 + self.k * torch.sigmoid(-self.b * t)))).clamp_min(0)

    def weight(self, t: Tensor) -> Tensor:
        sd = self.sigma_data
        return (t**2 + sd**2) / (t * sd) ** 2

    def __call__(self, denoiser: nn.Module, x0: Tensor, cond=None, mask: Tensor | None = None,
                 noise: NoiseFn | None = None, generator: torch.Generator | None = None,
                 step: int = 0) -> LossOutput:
        t = self.law(x0.shape[0], device=x0.device, generator=generator)  # (B,)
        r = self.r_of(t, step)
        eps = noise(x0) if noise is not None else torch.randn(x0.shape, device=x0.device, generator=generator)
        col = lambda v: v.reshape(-1, *([1] * (x0.ndim - 1)))  # noqa: E731
        tail = col(r > 0)
        target = x0
        if bool((r > 0).any()):
            # evaluated at t where r = 0 (a level the network knows; the value is not used)
            r_eval = torch.where(r > 0, r, t)
            state = _rng_state(x0.device)
            with torch.no_grad():
                d_r = denoiser(x0 + col(r_eval) * eps, r_eval, cond)
            _set_rng_state(x0.device, state)  # the same dropout mask for the pass at t
            target = torch.where(tail, d_r.to(x0.dtype), x0)
        d_t = denoiser(x0 + col(t) * eps, t, cond)
        err = (d_t.float() - target.detach().float()) ** 2
        if mask is not None:
            m = mask.expand_as(err).float()
            mse = (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)
        else:
            mse = err.flatten(1).mean(1)
        # the clamp gives an exact match (mse = 0, e.g. everything dropped out) zero gradient, not 0 * inf = NaN
        per = ((mse + self.c**2).clamp_min(1e-30).sqrt() - self.c) * self.weight(t.float())
        return LossOutput(per.mean(), per.detach(), t.detach())


def _rng_state(device: torch.device):
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(device: torch.device, state) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)


def consistency_sigmas(n: int, sigma_max: float = 80.0, sigma_last: float = 0.8, rho: float = 7.0) -> Tensor:
    """The levels a multistep consistency sampler denoises at: sigma_max, then n - 1 re-noising
    levels spaced as Karras' grid down to `sigma_last`, then 0. ECT's 2-step sampling re-noises to
    about 0.8 (sigma_data 0.5); a re-noising level near 0 would only repeat the previous output."""
    if n < 1:
        raise ValueError(f"a consistency grid needs n >= 1 steps, got {n}")
    if not 0 < sigma_last < sigma_max:
        raise ValueError(f"need 0 < sigma_last < sigma_max, got sigma_last={sigma_last}, sigma_max={sigma_max}")
    if n == 1:
        return torch.tensor([sigma_max, 0.0], dtype=torch.float64)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_last ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


__all__ = ["ConsistencyLoss", "consistency_sigmas"]
