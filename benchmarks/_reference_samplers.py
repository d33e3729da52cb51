"""Drivers for the reference implementations the sampler benchmark measures beside ours
(k-diffusion's ``sample_*`` functions and diffusers' schedulers), and the exact oracle they share.

Everything here works in the variance-exploding (VE) coordinates of ``core``: ``x = x0 + sigma * eps``.
A diffusers scheduler on a discrete VP schedule sees instead

* Euler / EulerAncestral / Heun: the sample ``x_ve`` itself (``init_noise_sigma = sqrt(sigma_max^2 + 1)``);
  ``scale_model_input`` divides it by ``sqrt(sigma^2 + 1)`` to give the network's VP input ``x_t``;
* DDIM / DPMSolverMultistep / UniPCMultistep: the VP sample ``x_t = x_ve / sqrt(1 + sigma^2)``
  (``init_noise_sigma = 1``), passed unchanged by ``scale_model_input``.

In both cases the network receives ``x_t = x_ve / sqrt(1 + sigma^2)``, and an epsilon-predicting
network must return ``eps = (x_ve - D(x_ve, sigma)) / sigma`` with ``x_ve = x_t * sqrt(1 + sigma^2)``
(since ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps`` and ``sigma = sqrt((1 - abar) / abar)``). The
oracle takes sigma to be the noise level the scheduler itself assumes at that call:
``scheduler.sigmas[i]`` for the sigma-based schedulers (the i-th model call of the loop; Heun's
interleaved table included), ``sqrt((1 - abar_t) / abar_t)`` from ``scheduler.alphas_cumprod[t]``
for DDIM. That is a perfect network whose timestep embedding agrees with its scheduler.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

# --- the exact denoiser -------------------------------------------------------------------------


class Oracle:
    """E[x0 | x_sigma] of a GaussianMixture in closed form, with an evaluation counter.

    The same arithmetic as ``GaussianMixture.denoise`` (checked to 1e-12 at start-up by the
    benchmark), written with (B, K) matrices only, which is ~2.5x faster on 2-D points."""

    def __init__(self, gm):
        self.mu = gm.means  # (K, 2)
        self.mu2 = (gm.means**2).sum(1)  # (K,)
        self.s2k = gm.stds**2  # (K,)
        self.logw = gm.weights.log()  # (K,)
        self.half_dim = 0.5 * gm.means.shape[1]
        self.calls = 0

    def __call__(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        self.calls += 1
        return self.exact(x, sigma)

    def exact(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        x64 = x.double()
        s2 = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1) ** 2  # (B or 1, 1)
        var = self.s2k + s2  # (B, K)
        d2 = (x64 * x64).sum(1, keepdim=True) - 2 * x64 @ self.mu.T + self.mu2  # (B, K)
        r = torch.softmax(self.logw - 0.5 * d2 / var - self.half_dim * var.log(), dim=1)
        shrink = self.s2k / var
        out = (r * (1 - shrink)) @ self.mu + (r * shrink).sum(1, keepdim=True) * x64
        return out.to(x.dtype)

    def eps(self, x_in: Tensor, sigma: float) -> Tensor:
        """The epsilon a perfect VP network returns for its input x_t at VE noise level sigma."""
        x_ve = x_in.double() * math.sqrt(1 + sigma**2)
        return ((x_ve - self(x_ve, sigma)) / sigma).to(x_in.dtype)


# --- k-diffusion --------------------------------------------------------------------------------

# samplers making two evaluations per step except the last (which steps to sigma = 0 with Euler)
KD_TWO_EVAL = {"heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde"}
KD_STOCHASTIC = {"euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde",
                 "dpmpp_3m_sde"}
KD_SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral",
               "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde"]


def kd_steps(name: str, nfe: int) -> int:
    return max(1, (nfe + 1) // 2) if name in KD_TWO_EVAL else nfe


def kd_bounds(grid: str) -> tuple[float, float]:
    """[0.002, 80] (EDM's range, as ours), or the VP table's range as k-diffusion's CompVis wrapper
    reports it for a discrete linear-beta model (`grid[vp range]`)."""
    if grid.endswith("[vp range]"):
        from diffsuite.core.schedules import vp_discrete_sigmas

        table = vp_discrete_sigmas("linear")
        return float(table[0]), float(table[-1])
    if "[" in grid:  # e.g. exponential[0.01,25.1]
        lo, hi = grid[grid.index("[") + 1: -1].split(",")
        return float(lo), float(hi)
    return 0.002, 80.0


def kd_grid(grid: str, n: int) -> Tensor:
    import k_diffusion.sampling as K

    lo, hi = kd_bounds(grid)
    if grid.startswith("karras"):
        return K.get_sigmas_karras(n, lo, hi, rho=7.0).double()
    if grid.startswith("exponential"):
        return K.get_sigmas_exponential(n, lo, hi).double()
    raise ValueError(grid)


KD_OPTIONS = [  # swept at 10 evaluations, as our options: the same algorithms where k-diffusion has them
    ("dpmpp_2m_sde", "eta=0 midpoint", dict(eta=0.0)),
    ("dpmpp_2m_sde", "eta=0 heun", dict(eta=0.0, solver_type="heun")),
    ("dpmpp_2m_sde", "eta=1 heun", dict(solver_type="heun")),
    ("dpmpp_3m_sde", "eta=0", dict(eta=0.0)),
]


def kd_run(name: str, grid: str, nfe: int, start: Callable[[float], Tensor], oracle: Oracle, seed: int,
           **options) -> Tensor:
    """Run k_diffusion.sampling.sample_<name>; the SDE samplers use their default Brownian-tree
    noise (torchsde), seeded."""
    import k_diffusion.sampling as K

    model = lambda x, sigma, **kw: oracle(x, sigma)  # noqa: E731  (k-diffusion models are sigma-space denoisers)
    torch.manual_seed(seed)
    if name == "dpm_fast":  # its own log-SNR-uniform grid; NFE is its argument; ends at sigma_min (no denoise)
        lo, hi = kd_bounds(grid)
        return K.sample_dpm_fast(model, start(hi), lo, hi, nfe, disable=True)
    sigmas = kd_grid(grid, kd_steps(name, nfe))
    x = start(float(sigmas[0]))
    kw: dict[str, Any] = {}
    if name in ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"):
        kw["noise_sampler"] = K.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seed)
    return getattr(K, f"sample_{name}")(model, x, sigmas, disable=True, **kw, **options)


def kd_range(name: str, grid: str, nfe: int) -> tuple[float, float]:
    if name == "dpm_fast":
        lo, hi = kd_bounds(grid)
        return hi, lo
    s = kd_grid(grid, kd_steps(name, nfe))
    return float(s[0]), float(s[-2])


# --- diffusers ----------------------------------------------------------------------------------

VP_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
                 prediction_type="epsilon")  # the same table as core.schedules.vp_sigmas(kind="linear")
SPACING = {"leading": dict(timestep_spacing="leading", steps_offset=1),  # as Stable Diffusion ships it
           "trailing": dict(timestep_spacing="trailing"),
           "linspace": dict(timestep_spacing="linspace")}


@dataclass
class DiffusersSpec:
    label: str  # e.g. "DPMSolverMultistep 2M"
    cls: str
    grid: str  # leading / trailing / linspace / karras / exponential
    config: dict[str, Any] = field(default_factory=dict)
    two_eval: bool = False  # Heun
    stochastic: bool = False
    step_kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self):
        import diffusers

        cfg = dict(VP_CONFIG)
        cfg.update(SPACING.get(self.grid, SPACING["linspace"]))
        if self.grid == "karras":
            cfg["use_karras_sigmas"] = True
        elif self.grid == "exponential":
            cfg["use_exponential_sigmas"] = True
        cfg.update(self.config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return getattr(diffusers, self.cls)(**cfg)

    def steps(self, nfe: int) -> int:
        return max(1, (nfe + 1) // 2) if self.two_eval else nfe

    def prepared(self, nfe: int):
        sch = self.make()
        sch.set_timesteps(self.steps(nfe))
        return sch

    @staticmethod
    def sigma_table(sch) -> list[float]:
        """The VE sigma the scheduler assumes at each model call of its loop."""
        if hasattr(sch, "sigmas") and sch.sigmas is not None and len(sch.sigmas) >= len(sch.timesteps):
            return [float(s) for s in sch.sigmas[: len(sch.timesteps)]]
        abar = sch.alphas_cumprod  # DDIM
        return [math.sqrt((1 - float(abar[int(t)])) / float(abar[int(t)])) for t in sch.timesteps]

    def sigma_range(self, nfe: int) -> tuple[float, float]:
        table = self.sigma_table(self.prepared(nfe))
        return table[0], min(table)

    def sample_is_vp(self) -> bool:
        return self.cls in ("DDIMScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler")

    def run(self, nfe: int, start: Callable[[float], Tensor], oracle: Oracle, seed: int) -> Tensor:
        sch = self.prepared(nfe)
        table = self.sigma_table(sch)
        x = start(table[0]).float()  # diffusers' schedulers compute in float32
        if self.sample_is_vp():
            x = x / math.sqrt(1 + table[0] ** 2)
        g = torch.Generator().manual_seed(seed)
        kw = dict(self.step_kwargs)
        if self.stochastic:
            kw["generator"] = g
        for i, t in enumerate(sch.timesteps):
            x_in = sch.scale_model_input(x, t)
            eps = oracle.eps(x_in, table[i])
            x = sch.step(eps, t, x, **kw).prev_sample
        return x.double()  # at sigma = 0 both coordinate systems are x0


def diffusers_specs() -> list[DiffusersSpec]:
    specs: list[DiffusersSpec] = []
    sp = ["leading", "trailing", "linspace"]
    for g in sp:
        specs.append(DiffusersSpec("DDIM (eta=0)", "DDIMScheduler", g, step_kwargs={"eta": 0.0}))
    for g in sp + ["karras", "exponential"]:
        specs.append(DiffusersSpec("Euler", "EulerDiscreteScheduler", g))
    for g in sp:
        specs.append(DiffusersSpec("EulerAncestral", "EulerAncestralDiscreteScheduler", g, stochastic=True))
    for g in sp + ["karras", "exponential"]:
        specs.append(DiffusersSpec("Heun", "HeunDiscreteScheduler", g, two_eval=True))
    for g in sp + ["karras", "exponential"]:
        specs.append(DiffusersSpec("DPMSolverMultistep 2M (dpmsolver++)", "DPMSolverMultistepScheduler", g,
                                   dict(algorithm_type="dpmsolver++", solver_order=2)))
    for g in sp + ["karras", "exponential"]:
        specs.append(DiffusersSpec("DPMSolverMultistep 2M SDE (sde-dpmsolver++)", "DPMSolverMultistepScheduler", g,
                                   dict(algorithm_type="sde-dpmsolver++", solver_order=2), stochastic=True))
    for order in (2, 3):
        for g in sp + ["karras", "exponential"]:
            specs.append(DiffusersSpec(f"UniPCMultistep bh2 order {order}", "UniPCMultistepScheduler", g,
                                       dict(solver_order=order, solver_type="bh2")))
    return specs


def diffusers_option_specs() -> list[DiffusersSpec]:
    """Swept at 10 evaluations, beside our options sweep: the same algorithm variants where diffusers
    has them (Heun-type 2M correction, third order, bh1)."""
    specs: list[DiffusersSpec] = []
    grids = ["leading", "trailing", "linspace", "karras", "exponential"]
    for g in grids:
        specs.append(DiffusersSpec("DPMSolverMultistep 2M (dpmsolver++, heun)", "DPMSolverMultistepScheduler", g,
                                   dict(algorithm_type="dpmsolver++", solver_order=2, solver_type="heun")))
        specs.append(DiffusersSpec("DPMSolverMultistep 3M (dpmsolver++)", "DPMSolverMultistepScheduler", g,
                                   dict(algorithm_type="dpmsolver++", solver_order=3)))
        specs.append(DiffusersSpec("DPMSolverMultistep 2M SDE (sde-dpmsolver++, heun)", "DPMSolverMultistepScheduler",
                                   g, dict(algorithm_type="sde-dpmsolver++", solver_order=2, solver_type="heun"),
                                   stochastic=True))
        for order in (2, 3):
            specs.append(DiffusersSpec(f"UniPCMultistep bh1 order {order}", "UniPCMultistepScheduler", g,
                                       dict(solver_order=order, solver_type="bh1")))
    return specs
