"""Samplers against their published update equations, written here independently, and their
measured convergence order on a problem whose exact solution is known.

The references below are written from the papers' equations in log-SNR time (lambda = -log sigma,
h = lambda_next - lambda), not from core/samplers.py: a wrong coefficient, a dropped term or a
disabled corrector in a solver makes its output differ from the reference (parity), and a solver
whose order falls short shows it on the Gaussian problem (convergence).
"""

from __future__ import annotations

import math

import pytest
import torch

from diffsuite.core.samplers import SAMPLERS

# --- a smooth, nonlinear denoiser for parity (no solver is exact on it) --------------------------


def wavy(x, sigma, cond=None):
    s = sigma.double().reshape(-1, *([1] * (x.ndim - 1)))
    return (torch.tanh(x.double()) / (1 + 0.3 * s) + 0.2 * torch.sin(s) * x.double().cos()).to(x.dtype)


class Tape:
    """A noise hook that hands out a fixed sequence of draws, so a solver and its reference see the
    same noise in the same order (and a different number of draws shows up as a mismatch)."""

    def __init__(self, seed: int):
        self.g = torch.Generator().manual_seed(seed)
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return torch.randn(x.shape, generator=self.g, dtype=torch.float64).to(x.dtype)


def D(x, s):
    """The denoiser at one noise level, as the references call it."""
    return wavy(x, torch.full((x.shape[0],), s, dtype=torch.float32)).double()


# --- references ---------------------------------------------------------------------------------


def ref_euler(x, sig, eps):
    for s, sn in zip(sig[:-1], sig[1:]):
        x = x + (sn - s) * (x - D(x, s)) / s  # Karras et al. 2022, eq. 4 with Euler's method
    return x


def ref_heun(x, sig, eps, churn=0.0, s_noise=1.0):
    n = len(sig) - 1
    for s, sn in zip(sig[:-1], sig[1:]):  # Karras et al. 2022, Algorithm 2
        gamma = min(churn / n, math.sqrt(2) - 1) if churn else 0.0
        s_hat = s * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(s_hat**2 - s**2) * s_noise * eps(x)
        d = (x - D(x, s_hat)) / s_hat
        x_e = x + (sn - s_hat) * d
        if sn == 0:
            x = x_e
        else:
            d2 = (x_e - D(x_e, sn)) / sn
            x = x + (sn - s_hat) * (d + d2) / 2
    return x


def ref_euler_ancestral(x, sig, eps, eta=1.0):
    for s, sn in zip(sig[:-1], sig[1:]):
        # DDIM's sigma_t(eta) in VE form: the step splits sn^2 into a deterministic part and fresh noise
        up = min(sn, eta * sn * math.sqrt(1 - sn**2 / s**2)) if sn > 0 else 0.0
        down = math.sqrt(sn**2 - up**2)
        x = x + (down - s) * (x - D(x, s)) / s
        if up > 0:
            x = x + up * eps(x)
    return x


def ref_dpmpp_2m(x, sig, eps):
    # Lu et al. 2022 (DPM-Solver++), Algorithm 2, alpha = 1: x_{i+1} = (s_{i+1}/s_i) x_i - (e^{-h} - 1) D_i,
    # D_i = (1 + 1/(2r)) m_i - 1/(2r) m_{i-1} with r = h_{i-1}/h_i; the last step (lambda = inf) is m_i
    m_prev, h_prev = None, None
    for s, sn in zip(sig[:-1], sig[1:]):
        m = D(x, s)
        if sn == 0:
            return m
        h = math.log(s) - math.log(sn)
        Di = m if m_prev is None else m + (m - m_prev) * (h / h_prev) / 2
        x = (sn / s) * x + (1 - math.exp(-h)) * Di
        m_prev, h_prev = m, h
    return x


def _exp_weights(u):
    """w0 = 1 - e^-u and, for a prediction linear / quadratic in the step fraction s in [0, 1],
    w1 = u int_0^1 e^{-u(1-s)} s ds and w2 = u int_0^1 e^{-u(1-s)} s^2 ds (closed forms)."""
    w0 = 1 - math.exp(-u)
    w1 = 1 - w0 / u
    w2 = 1 - 2 / u + 2 * w0 / u**2
    return w0, w1, w2


def ref_dpmpp_2m_sde(x, sig, eps, eta=1.0, solver="midpoint", s_noise=1.0):
    # x_next = (sn/s) e^{-eta h} x + (1+eta) int_0^h e^{-(1+eta)(h-t)} m(t) dt + sn sqrt(1 - e^{-2 eta h}) eps
    # with m(t) = m_i + t (m_i - m_{i-1}) / h_{i-1}: "heun" integrates that line exactly (w1), "midpoint"
    # takes the published cheaper weight w0 / 2 for the slope term.
    m_prev, h_prev = None, None
    for s, sn in zip(sig[:-1], sig[1:]):
        m = D(x, s)
        if sn == 0:
            return m
        h = math.log(s / sn)
        w0, w1, _ = _exp_weights((1 + eta) * h)
        x = (sn / s) * math.exp(-eta * h) * x + w0 * m
        if m_prev is not None:
            slope = (m - m_prev) * (h / h_prev)  # change of m over one step of size h
            x = x + (w0 / 2 if solver == "midpoint" else w1) * slope
        if eta > 0:
            x = x + sn * math.sqrt(1 - math.exp(-2 * eta * h)) * s_noise * eps(x)
        m_prev, h_prev = m, h
    return x


def ref_dpmpp_3m_sde(x, sig, eps, eta=1.0, s_noise=1.0):
    # Lu et al. 2022 third-order multistep (data prediction) with the SDE's e^{-eta h} decay: the
    # prediction is the quadratic through the last three m's in the step fraction s = t/h,
    # m(s) = m0 + a s + b s^2 (Newton form); the published update weights a by w1 and b by w2 / 2
    # (phi_3 of the paper; the exact integral of the quadratic term would be w2).
    ms, hs = [], []  # newest first
    for s, sn in zip(sig[:-1], sig[1:]):
        m = D(x, s)
        if sn == 0:
            return m
        h = math.log(s / sn)
        w0, w1, w2 = _exp_weights((1 + eta) * h)
        x = (sn / s) * math.exp(-eta * h) * x + w0 * m
        if len(ms) >= 2:
            r0, r1 = hs[0] / h, hs[1] / h  # previous points at s = -r0 and s = -(r0 + r1)
            f01 = (m - ms[0]) / r0
            f12 = (ms[0] - ms[1]) / r1
            b = (f01 - f12) / (r0 + r1)
            a = f01 + b * r0
            x = x + w1 * a + (w2 / 2) * b
        elif len(ms) == 1:
            x = x + w1 * (m - ms[0]) / (hs[0] / h)
        if eta > 0:
            x = x + sn * math.sqrt(1 - math.exp(-2 * eta * h)) * s_noise * eps(x)
        ms.insert(0, m)
        hs.insert(0, h)
    return x


def _unipc_b(hh, k, variant):
    """B(h) and the right-hand sides g_k = hh k! phi_{k+1}(hh) / B(h) of UniPC's order conditions (hh = -h)."""
    B = hh if variant == "bh1" else math.expm1(hh)
    # phi_{k}(hh) with phi_1(z) = (e^z - 1)/z, phi_{k+1}(z) = (phi_k(z) - 1/k!)/z
    phi = math.expm1(hh) / hh
    out = []
    for j in range(1, k + 1):
        phi = (phi - 1 / math.factorial(j)) / hh  # phi_{j+1}
        out.append(hh * phi * math.factorial(j) / B)
    return B, out


def ref_unipc(x, sig, eps, order=2, variant="bh2", corrector=True):
    # Zhao et al. 2023, UniP-p / UniC-p in data prediction (alpha = 1), written with numpy-free
    # tensors: with D1_k = (m_k - m_0)/r_k, the predictor adds -B(h) sum_k a_k D1_k with
    # sum_k a_k r_k^{j-1} = g_j (j = 1..p-1); the corrector adds the new m_t at r = 1 (j = 1..p).
    lam = [-math.log(s) if s > 0 else math.inf for s in sig]
    n = len(sig) - 1
    hist = []  # (lambda, m), newest first
    prev = None

    def update(x0, m0, older, l0, lt, ratio, m_t):
        h = lt - l0
        rs = [(lk - l0) / h for lk, _ in older]
        ds = [(mk - m0) / r for (_, mk), r in zip(older, rs)]
        if m_t is not None:
            rs.append(1.0)
            ds.append(m_t - m0)
        B, g = _unipc_b(-h, max(len(rs), 1), variant)
        xt = ratio * x0 - math.expm1(-h) * m0
        if not rs:
            return xt
        if len(rs) == 1:
            a = [0.5]
        else:
            A = torch.tensor([[r ** (j - 1) for r in rs] for j in range(1, len(rs) + 1)], dtype=torch.float64)
            a = torch.linalg.solve(A, torch.tensor(g[: len(rs)], dtype=torch.float64)).tolist()
        for ak, dk in zip(a, ds):
            xt = xt - B * ak * dk
        return xt

    for i in range(n):
        m = D(x, sig[i])
        if corrector and prev is not None and sig[i + 1] > 0:
            xp, ip, p = prev
            x = update(xp, hist[0][1], hist[1:p], lam[ip], lam[i], sig[i] / sig[ip], m)
        hist.insert(0, (lam[i], m))
        del hist[order:]
        if sig[i + 1] == 0:
            return m
        p = max(1, min(order, len(hist), n - 1 - i))
        prev = (x, i, p)
        x = update(x, m, hist[1:p], lam[i], lam[i + 1], sig[i + 1] / sig[i], None)
    return x


# --- parity ---------------------------------------------------------------------------------------

GRID = torch.tensor([12.0, 6.1, 3.3, 1.7, 0.9, 0.41, 0.2, 0.08, 0.0], dtype=torch.float64)  # uneven steps

CASES = [
    ("euler", {}, ref_euler),
    ("heun", {}, ref_heun),
    ("heun", {"churn": 6.0}, ref_heun),
    ("euler_ancestral", {}, ref_euler_ancestral),
    ("euler_ancestral", {"eta": 0.5}, ref_euler_ancestral),
    ("dpmpp_2m", {}, ref_dpmpp_2m),
    ("dpmpp_2m_sde", {}, ref_dpmpp_2m_sde),
    ("dpmpp_2m_sde", {"eta": 0.6, "solver": "heun"}, ref_dpmpp_2m_sde),
    ("dpmpp_2m_sde", {"eta": 0.0}, ref_dpmpp_2m_sde),
    ("dpmpp_3m_sde", {}, ref_dpmpp_3m_sde),
    ("dpmpp_3m_sde", {"eta": 0.0}, ref_dpmpp_3m_sde),
    ("unipc", {"order": 1}, ref_unipc),
    ("unipc", {"order": 2}, ref_unipc),
    ("unipc", {"order": 3}, ref_unipc),
    ("unipc", {"order": 3, "variant": "bh1"}, ref_unipc),
    ("unipc", {"order": 2, "corrector": False}, ref_unipc),
]


@pytest.mark.parametrize("name,options,reference", CASES,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}" for n, o, _ in CASES])
def test_solver_matches_its_published_update_equations(name, options, reference):
    x = 12.0 * torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = SAMPLERS[name](wavy, x.clone(), GRID, noise=Tape(7), **options)
    theirs = reference(x.clone(), GRID.tolist(), Tape(7), **options)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


def test_the_references_are_not_all_alike():
    """The parity above means something only if the references differ where the solvers should."""
    x = 12.0 * torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = GRID.tolist()
    outs = {
        "2m": ref_dpmpp_2m(x, g, None), "2m_sde_heun": ref_dpmpp_2m_sde(x, g, None, eta=0.0, solver="heun"),
        "3m": ref_dpmpp_3m_sde(x, g, None, eta=0.0), "unipc2": ref_unipc(x, g, None, order=2),
        "unipc2_plain": ref_unipc(x, g, None, order=2, corrector=False), "unipc3": ref_unipc(x, g, None, order=3),
    }
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert (outs[a] - outs[b]).abs().max() > 1e-4, f"{a} and {b} agree: the parity tests cannot tell them apart"


# --- convergence order on a Gaussian: exact denoiser, exact ODE solution ------------------------

MU, SD = 0.3, 0.5  # data ~ N(MU, SD^2) per coordinate
S_MAX, S_MIN = 10.0, 0.02


def gaussian_denoiser(x, sigma, cond=None):
    s = sigma.double().reshape(-1, *([1] * (x.ndim - 1)))
    return MU + SD**2 / (SD**2 + s**2) * (x.double() - MU)


def exact_end(x_start):
    """The probability-flow ODE from S_MAX to S_MIN in closed form, x - mu ~ sqrt(SD^2 + sigma^2), then
    the final step every solver takes to sigma = 0 (the denoised value at S_MIN)."""
    x_min = MU + (x_start - MU) * math.sqrt((SD**2 + S_MIN**2) / (SD**2 + S_MAX**2))
    return gaussian_denoiser(x_min, torch.full((x_start.shape[0],), S_MIN))


def log_grid(n):
    s = torch.exp(torch.linspace(math.log(S_MAX), math.log(S_MIN), n, dtype=torch.float64))
    return torch.cat([s, s.new_zeros(1)])


def error(name, options, n):
    x = torch.linspace(-20, 20, 5, dtype=torch.float64).reshape(-1, 1)
    out = SAMPLERS[name](gaussian_denoiser, x.clone(), log_grid(n), **options)
    return (out - exact_end(x)).abs().max().item()


ORDERS = [  # (solver, options, order): measured between 20, 40 and 80 steps
    ("euler", {}, 1),
    ("heun", {}, 2),
    ("dpmpp_2m", {}, 2),
    ("dpmpp_2m_sde", {"eta": 0.0}, 2),
    ("dpmpp_2m_sde", {"eta": 0.0, "solver": "heun"}, 2),
    ("dpmpp_3m_sde", {"eta": 0.0}, 2),  # its first step is first order, which caps the global order at 2
    ("unipc", {"order": 1}, 2),  # the corrector raises UniP-p's order p to p + 1
    ("unipc", {"order": 2}, 3),
    ("unipc", {"order": 1, "corrector": False}, 1),
    ("unipc", {"order": 2, "corrector": False}, 2),
]


@pytest.mark.parametrize("name,options,order", ORDERS,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}" for n, o, _ in ORDERS])
def test_solver_converges_at_its_order(name, options, order):
    e20, e40, e80 = (error(name, options, n) for n in (20, 40, 80))
    measured = math.log2(e20 / e80) / 2
    assert order - 0.25 <= measured <= order + 0.4, f"{name} {options}: errors {e20:.2e} {e40:.2e} {e80:.2e}, " \
                                                     f"order {measured:.2f}, expected {order}"


def test_third_order_term_of_3m_pays_off():
    """The 3M update beats the same exponential integrator without its quadratic term (2M, heun
    weights) by a wide margin at equal steps."""
    e3 = error("dpmpp_3m_sde", {"eta": 0.0}, 40)
    e2 = error("dpmpp_2m_sde", {"eta": 0.0, "solver": "heun"}, 40)
    assert e3 < 0.35 * e2, (e3, e2)
