"""Samplers: plain functions over a sigma-space denoiser ``D(x, sigma, cond) -> x0_hat``.

Every solver has the signature ``sample_<name>(denoiser, x, sigmas, cond=None, *, noise=None,
callback=None, **options) -> Tensor`` and keeps its multistep history in local variables, so it
has no state to reset and two threads may share it. ``x`` is the start, already scaled to
``sigmas[0]``; ``sigmas`` is a strictly descending grid ending in 0. The solver's state is kept in
the start's dtype, raised to float32 for half-precision starts (a float64 start runs in float64);
step coefficients are Python floats (float64), and each update is one or two fused tensor ops
(``torch.lerp`` / ``add(alpha=)``), so a step costs about as much as reading the state twice.
Measured on the exact-denoiser benchmark (``benchmarks/samplers.py``), a float64 state instead of
float32 moves no sample by more than float32 rounding; see RESULTS.md. ``noise(x)`` is the domain's noise hook,
called only where a solver really adds noise. ``callback(info)`` receives a dict with ``i``,
``x``, ``sigma``, ``sigma_next`` and ``denoised`` after each step.

Equations are in the variance-exploding form with lambda = -log(sigma) as the log-SNR time.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

import torch
from torch import Tensor

from .errors import UserError
from .noise import all_finite
from .schedules import check_sigmas

Denoiser = Callable[..., Tensor]
NoiseFn = Callable[[Tensor], Tensor]
Callback = Callable[[dict[str, Any]], None]


def _setup(x: Tensor, sigmas: Tensor, noise: NoiseFn | None) -> tuple[Tensor, list[float], NoiseFn]:
    check_sigmas(sigmas)
    if not all_finite(x):
        raise ValueError("the start x holds a non-finite value")
    dtype = x.dtype
    state = torch.promote_types(dtype, torch.float32)
    hook = noise or torch.randn_like
    # the hook sees x in the network's dtype (a float64 randn costs ~5x a float32 one on CPU)
    draw = hook if state == dtype else (lambda xs: hook(xs.to(dtype)))
    return x.to(state), sigmas.double().tolist(), draw


def _denoise(denoiser: Denoiser, x: Tensor, sigma: float, cond, dtype: torch.dtype, i: int) -> Tensor:
    """One network evaluation at the sampler's state, checked for shape and finiteness."""
    s = torch.full((x.shape[0],), sigma, dtype=torch.float32, device=x.device)
    out = denoiser(x if x.dtype == dtype else x.to(dtype), s, cond)
    if out.shape != x.shape:
        raise ValueError(f"denoiser returned shape {tuple(out.shape)} for input {tuple(x.shape)}")
    if out.dtype != x.dtype:
        out = out.to(x.dtype)
    if not all_finite(out):
        raise FloatingPointError(f"denoiser output is not finite at step {i} (sigma={sigma:.6g}); "
                                 f"{(~torch.isfinite(out)).sum().item()} bad values")
    return out


def _report(callback: Callback | None, i: int, x: Tensor, sigma: float, sigma_next: float, denoised: Tensor) -> None:
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})


def _churn(x: Tensor, sigma: float, n: int, noise: NoiseFn, churn: float, t_min: float, t_max: float,
           s_noise: float) -> tuple[Tensor, float]:
    """EDM Algorithm 2, lines 4-6: raise sigma by gamma and add the matching fresh noise."""
    gamma = min(churn / n, math.sqrt(2) - 1) if churn > 0 and t_min <= sigma <= t_max else 0.0
    if gamma == 0:
        return x, sigma
    sigma_hat = sigma * (1 + gamma)
    return torch.add(x, noise(x), alpha=s_noise * math.sqrt(sigma_hat**2 - sigma**2)), sigma_hat


def ancestral_step(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """(sigma_down, sigma_up): DDIM's eta noise written in VE form; eta=0 is DDIM, eta=1 DDPM-like."""
    if eta == 0 or sigma_next == 0:
        return sigma_next, 0.0
    up = min(sigma_next, eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - up**2), up


@torch.no_grad()
def sample_euler(denoiser, x, sigmas, cond=None, *, noise=None, callback=None, churn: float = 0.0,
                 churn_tmin: float = 0.0, churn_tmax: float = math.inf, s_noise: float = 1.0) -> Tensor:
    """First-order probability-flow ODE step, dx = (x - D) / sigma dsigma: DDIM with eta = 0."""
    dtype = x.dtype
    x, sig, noise = _setup(x, sigmas, noise)
    n = len(sig) - 1
    for i in range(n):
        x, s = _churn(x, sig[i], n, noise, churn, churn_tmin, churn_tmax, s_noise)
        denoised = _denoise(denoiser, x, s, cond, dtype, i)
        x = torch.lerp(denoised, x, sig[i + 1] / s)  # D + (sigma_next / s)(x - D) = x + (sigma_next - s)(x - D)/s
        _report(callback, i, x, sig[i], sig[i + 1], denoised)
    return x.to(dtype)


@torch.no_grad()
def sample_euler_ancestral(denoiser, x, sigmas, cond=None, *, noise=None, callback=None, eta: float = 1.0,
                           s_noise: float = 1.0) -> Tensor:
    """Euler step to sigma_down, then fresh noise of std sigma_up (DDIM with eta; eta=1 DDPM-like)."""
    dtype = x.dtype
    x, sig, noise = _setup(x, sigmas, noise)
    for i in range(len(sig) - 1):
        denoised = _denoise(denoiser, x, sig[i], cond, dtype, i)
        down, up = ancestral_step(sig[i], sig[i + 1], eta)
        x = torch.lerp(denoised, x, down / sig[i])
        if up > 0:
            x = torch.add(x, noise(x), alpha=s_noise * up)
        _report(callback, i, x, sig[i], sig[i + 1], denoised)
    return x.to(dtype)


@torch.no_grad()
def sample_heun(denoiser, x, sigmas, cond=None, *, noise=None, callback=None, churn: float = 0.0,
                churn_tmin: float = 0.0, churn_tmax: float = math.inf, s_noise: float = 1.0) -> Tensor:
    """EDM Algorithm 2: Heun's second-order method with optional stochastic churn; 2n - 1 evaluations."""
    dtype = x.dtype
    x, sig, noise = _setup(x, sigmas, noise)
    n = len(sig) - 1
    for i in range(n):
        x, s = _churn(x, sig[i], n, noise, churn, churn_tmin, churn_tmax, s_noise)
        denoised = _denoise(denoiser, x, s, cond, dtype, i)
        x_next = torch.lerp(denoised, x, sig[i + 1] / s)  # Euler predictor (eq. 8): x + h d, h = sigma_next - s
        if sig[i + 1] > 0:  # trapezoidal corrector (lines 9-11): x + h (d + d') / 2 = (x + x_next + h d') / 2
            d2 = _denoise(denoiser, x_next, sig[i + 1], cond, dtype, i)
            # with d' = (x_next - d2) / sigma_next and k = h / sigma_next: ((1 + k) x_next - k d2 + x) / 2,
            # as two lerps in place on x_next (ours, fresh from the lerp; the network has seen it): no
            # large temporaries; side by side at a (4096, 64) state a step cost 372 us against 870 with
            # the two out-of-place lerps (a denoiser that hands back its input, d2 = x_next, still gets
            # the right result: lerp_ reads each element before it writes it)
            x_next.lerp_(d2, (s - sig[i + 1]) / sig[i + 1]).lerp_(x, 0.5)
        x = x_next
        _report(callback, i, x, sig[i], sig[i + 1], denoised)
    return x.to(dtype)


@torch.no_grad()
def sample_dpmpp_2m(denoiser, x, sigmas, cond=None, *, noise=None, callback=None) -> Tensor:
    """DPM-Solver++(2M), Lu et al. 2022, Algorithm 2 (data prediction, multistep)."""
    dtype = x.dtype
    x, sig, _ = _setup(x, sigmas, noise)
    old, h_last = None, None
    for i in range(len(sig) - 1):
        denoised = _denoise(denoiser, x, sig[i], cond, dtype, i)
        if sig[i + 1] == 0:
            x = denoised
        else:
            h = math.log(sig[i] / sig[i + 1])  # lambda_next - lambda
            d = denoised
            if old is not None:  # d = (1 + 1/(2r)) D - (1/(2r)) D_old
                d = torch.lerp(old, denoised, 1 + h / (2 * h_last))
            x = torch.lerp(d, x, sig[i + 1] / sig[i])  # e^-h x + (1 - e^-h) d
            h_last = h
        old = denoised
        _report(callback, i, x, sig[i], sig[i + 1], denoised)
    return x.to(dtype)


@torch.no_grad()
def sample_dpmpp_2m_sde(denoiser, x, sigmas, cond=None, *, noise=None, callback=None, eta: float = 1.0,
                        s_noise: float = 1.0, solver: Literal["midpoint", "heun"] = "midpoint") -> Tensor:
    """DPM-Solver++(2M) SDE: the exact exponential integrator of the noise-injecting SDE with a
    second-order multistep correction; eta scales the injected noise (0 gives an ODE solver)."""
    if solver not in ("midpoint", "heun"):
        raise ValueError(f"unknown solver {solver!r}; expected midpoint or heun")
    dtype = x.dtype
    x, sig, noise = _setup(x, sigmas, noise)
    old, h_last = None, None
    for i in range(len(sig) - 1):
        denoised = _denoise(denoiser, x, sig[i], cond, dtype, i)
        if sig[i + 1] == 0:
            x = denoised
        else:
            h = math.log(sig[i] / sig[i + 1])
            eh = eta * h
            phi = -math.expm1(-h - eh)  # 1 - exp(-(1 + eta) h)
            d = denoised
            if old is not None:  # x gains coeff / r (D - D_old): folded into d, as phi d
                r = h_last / h
                coeff = 0.5 * phi if solver == "midpoint" else 1 - phi / (h + eh)  # heun: 1 - (1 - e^-u) / u
                d = torch.lerp(old, denoised, 1 + coeff / (r * phi))
            x = torch.lerp(d, x, 1 - phi)  # (sigma_next / sigma) e^-eh x + phi d
            if eta > 0:
                x = torch.add(x, noise(x), alpha=sig[i + 1] * math.sqrt(-math.expm1(-2 * eh)) * s_noise)
            h_last = h
        old = denoised
        _report(callback, i, x, sig[i], sig[i + 1], denoised)
    return x.to(dtype)


@torch.no_grad()
def sample_dpmpp_3m_sde(denoiser, x, sigmas, cond=None, *, noise=None, callback=None, eta: float = 1.0,
                        s_noise: float = 1.0) -> Tensor:
    """DPM-Solver++(3M) SDE: third-order multistep over the last three data predictions."""
    dtype = x.dtype
    x, sig, noise = _setup(x, sigmas, noise)
    d1_, d2_, h1_, h2_ = None, None, None, None  # the last two predictions and their step sizes
    for i in range(len(sig) - 1):
        denoised = _denoise(denoiser, x, sig[i], cond, dtype, i)
        if sig[i + 1] == 0:
            x = denoised
        else:
            h = math.log(sig[i] / sig[i + 1])
            he = h * (eta + 1)
            w = math.exp(-he)
            phi2 = math.expm1(-he) / he + 1
            # x = w x + (1 - w) D + phi2 d1 - phi3 d2, with d1, d2 the divided differences below; their
            # combination a (D - D_1) + b (D_2 - D_1) is folded into one effective prediction
            d = denoised
            if h2_ is not None:
                r0, r1 = h1_ / h, h2_ / h
                phi3 = phi2 / he - 0.5
                # phi2 d1 - phi3 d2 = A d1_0 - B d1_1, d1_0 = (D - D_1)/r0, d1_1 = (D_1 - D_2)/r1
                B = (phi2 * r0 - phi3) / (r0 + r1)
                A = phi2 + B
                d = torch.lerp(d1_, denoised, 1 + A / (r0 * (1 - w)))
                d = torch.add(d, d2_ - d1_, alpha=B / (r1 * (1 - w)))
            elif h1_ is not None:
                d = torch.lerp(d1_, denoised, 1 + phi2 * h / (h1_ * (1 - w)))
            x = torch.lerp(d, x, w)
            if eta > 0:
                x = torch.add(x, noise(x), alpha=sig[i + 1] * math.sqrt(-math.expm1(-2 * h * eta)) * s_noise)
            h1_, h2_ = h, h1_
        d1_, d2_ = denoised, d1_
        _report(callback, i, x, sig[i], sig[i + 1], denoised)
    return x.to(dtype)


def _solve(A: list[list[float]], b: list[float]) -> list[float]:
    """A 1x1 to 3x3 linear system in Python floats (Gaussian elimination, partial pivoting): UniPC's
    order conditions, without building tensors and calling LAPACK twice per step."""
    n = len(b)
    M = [row[:] + [v] for row, v in zip(A, b)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(M[r][c]))
        M[c], M[p] = M[p], M[c]
        for r in range(c + 1, n):
            f = M[r][c] / M[c][c]
            for k in range(c, n + 1):
                M[r][k] -= f * M[c][k]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        out[r] = (M[r][n] - sum(M[r][k] * out[k] for k in range(r + 1, n))) / M[r][r]
    return out


def _unipc_update(x: Tensor, m0: Tensor, history: list[tuple[float, Tensor]], lam0: float, lam_t: float,
                  sigma_ratio: float, variant: str, m_t: Tensor | None) -> Tensor:
    """One UniP (m_t is None) or UniC (m_t given) update, Zhao et al. 2023, Algorithms 1-2, in
    data-prediction form with alpha = 1. `history` holds older (lambda, x0_hat), newest first."""
    h = lam_t - lam0
    rks = [(lam_k - lam0) / h for lam_k, _ in history]
    n_old = len(rks)
    rks.append(1.0)
    order = len(rks)  # conditions of the order system
    hh = -h
    h_phi_1 = math.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    B_h = hh if variant == "bh1" else math.expm1(hh)
    R, b, fact = [], [], 1
    for k in range(1, order + 1):
        R.append([r ** (k - 1) for r in rks])
        b.append(h_phi_k * fact / B_h)
        fact *= k + 1
        h_phi_k = h_phi_k / hh - 1 / fact
    # x_t = sigma_ratio x - h_phi_1 m0 - B_h sum_k rho_k D1_k, D1_k = (m_k - m0) / r_k; sigma_ratio = e^-h
    # and -h_phi_1 = 1 - e^-h, so the sum folds into one prediction m = m0 + sum_k a_k (m_k - m0) and
    # x_t = lerp(m, x, sigma_ratio): two fused ops per term instead of a float64 tensor per term
    if m_t is None:  # predictor UniP-p: uses only the older predictions
        if n_old == 0:
            rhos = []
        else:
            rhos = [0.5] if n_old == 1 else _solve([row[:-1] for row in R[:-1]], b[:-1])
        terms = [(r, m_k, rk) for r, (_, m_k), rk in zip(rhos, history, rks)]
    else:  # corrector UniC-p
        rhos = [0.5] if n_old == 0 else _solve(R, b)
        terms = [(r, m_k, rk) for r, (_, m_k), rk in zip(rhos[:-1], history, rks)] + [(rhos[-1], m_t, 1.0)]
    scale = B_h / h_phi_1  # -B_h rho / r over (1 - e^-h) = B_h rho / (r h_phi_1)
    m = m0
    for k, (r, m_k, rk) in enumerate(terms):
        a = scale * r / rk
        m = torch.lerp(m0, m_k, a) if k == 0 else torch.add(m, m_k - m0, alpha=a)
    return torch.lerp(m, x, sigma_ratio)


@torch.no_grad()
def sample_unipc(denoiser, x, sigmas, cond=None, *, noise=None, callback=None, order: int = 2,
                 variant: Literal["bh1", "bh2"] = "bh2", corrector: bool = True) -> Tensor:
    """UniPC, Zhao et al. 2023: multistep predictor UniP-p with the corrector UniC reusing the next
    network evaluation, so order p + 1 accuracy at one evaluation per step. Lower order at the
    start, and the last step (to sigma = 0) returns the data prediction."""
    if order not in (1, 2, 3):
        raise ValueError(f"UniPC order must be 1, 2 or 3, got {order}")
    if variant not in ("bh1", "bh2"):
        raise ValueError(f"unknown UniPC variant {variant!r}; expected bh1 or bh2")
    dtype = x.dtype
    x, sig, _ = _setup(x, sigmas, noise)
    n = len(sig) - 1
    lam = lambda s: -math.log(s)  # noqa: E731
    history: list[tuple[float, Tensor]] = []  # (lambda, x0_hat), newest first
    prev = None  # (x, sigma, step order) at the previous point, for the corrector
    for i in range(n):
        denoised = _denoise(denoiser, x, sig[i], cond, dtype, i)
        if corrector and prev is not None and sig[i + 1] > 0:  # the last step returns `denoised` anyway
            x_prev, s_prev, p = prev
            x = _unipc_update(x_prev, history[0][1], history[1:p], lam(s_prev), lam(sig[i]),
                              sig[i] / s_prev, variant, denoised)
        history.insert(0, (lam(sig[i]), denoised))
        del history[order:]
        if sig[i + 1] == 0:
            x = denoised
        else:
            p = min(order, len(history), n - 1 - i)  # lower order near the end
            p = max(p, 1)
            prev = (x, sig[i], p)
            x = _unipc_update(x, denoised, history[1:p], lam(sig[i]), lam(sig[i + 1]),
                              sig[i + 1] / sig[i], variant, None)
        _report(callback, i, x, sig[i], sig[i + 1], denoised)
    return x.to(dtype)


@torch.no_grad()
def sample_consistency(denoiser, x, sigmas, cond=None, *, noise=None, callback=None, s_noise: float = 1.0) -> Tensor:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1): D(x, sigma_0) is the sample;
    each further grid level sigma_i > 0 re-noises it with fresh noise, x = x0_hat + sigma_i z, and
    denoises again. n evaluations for an n-step grid. Meant for consistency-tuned models
    (``core.consistency``; grid: ``consistency_sigmas``, schedule=consistency); a plain diffusion
    model gives blurred samples with it."""
    dtype = x.dtype
    x, sig, noise = _setup(x, sigmas, noise)
    n = len(sig) - 1
    denoised = x
    for i in range(n):
        if i > 0:
            x = torch.add(denoised, noise(denoised), alpha=s_noise * sig[i])
        denoised = _denoise(denoiser, x, sig[i], cond, dtype, i)
        _report(callback, i, x, sig[i], sig[i + 1], denoised)
    return denoised.to(dtype)


SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_3m_sde": sample_dpmpp_3m_sde,
    "unipc": sample_unipc,
    "consistency": sample_consistency,
}

# Denoiser evaluations a sampler makes on an n-step grid (Heun skips its corrector at sigma = 0).
EVALUATIONS: dict[str, Callable[[int], int]] = {name: (lambda n: n) for name in SAMPLERS}
EVALUATIONS["heun"] = lambda n: 2 * n - 1


def get_sampler(name: str) -> Callable[..., Tensor]:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise UserError(f"unknown sampler {name!r}; choose one of {', '.join(sorted(SAMPLERS))}") from None


def steps_for_evaluations(name: str, evaluations: int) -> int:
    """The grid size n giving at most `evaluations` denoiser calls for sampler `name`."""
    get_sampler(name)
    n = max(1, evaluations)
    while n > 1 and EVALUATIONS[name](n) > evaluations:  # derived from EVALUATIONS, not restated
        n -= 1
    return n
