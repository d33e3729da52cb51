"""Sampler benchmark (issue 2): quality against denoiser evaluations and per-step overhead, ours
beside k-diffusion's and diffusers', on the 8-mode ring mixture with its exact denoiser.

    .venv/bin/python benchmarks/samplers.py            # full run, writes `## Samplers` in RESULTS.md
    .venv/bin/python benchmarks/samplers.py --quick    # small smoke run, writes nothing

Protocol
--------
* Every method starts from the *exact* marginal at its own first sigma: one set of N start points
  ``x0 + sigma_top * eps`` (sigma_top = the largest first sigma of all grids) is carried down the
  probability-flow ODE by a fine RK4 solve in log sigma, and each method starts from that solve's
  state at its ``sigmas[0]``. So all methods share one start sample (common random numbers), the
  prior mismatch of starting from pure noise is removed, and what is left is the sampler + grid.
* (a) SW: ``core.toy.sliced_wasserstein`` (256 projections, 200 quantiles) between the N outputs and a
  100k data sample. Floor: the SW of an independent N-point data sample, and the SW of the exact
  ODE solution over the method's own sigma range ("exact", the best any solver can do on it).
* (b) ODE error (deterministic solvers only): mean Euclidean distance per point to the fine ODE
  solution over the same sigma range from the same start, followed by the same last step to
  sigma = 0 (x = D(x, sigma_last), which all grids here end with; dpm_fast stops at sigma_min).
* NFE: counted by the oracle, not assumed. Two-evaluation samplers use n = (NFE + 1) / 2 steps
  (2n - 1 calls). The NFE columns are targets; a method that made fewer calls is marked.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from diffsuite.core import samplers as S  # noqa: E402
from diffsuite.core.schedules import exponential_sigmas, flow_sigmas, karras_sigmas, vp_discrete_sigmas, vp_sigmas  # noqa: E402
from diffsuite.core.toy import GaussianMixture, sliced_wasserstein  # noqa: E402

import _reference_samplers as R  # noqa: E402

NFES = (5, 10, 20, 50)
OVERHEAD_SHAPES = ((16, 2), (4, 3, 32, 32), (4096, 64))  # the last: 262k float32 values, memory-bound
SIGMA_END = 1e-4  # the full reference solve ends here; D(x, 1e-4) differs from x by < 2e-6 relative
_VP = vp_discrete_sigmas("linear")
VP_MIN, VP_MAX = float(_VP[0]), float(_VP[-1])  # the range of the 1000-step linear-beta table: [0.0292, 25.1]
OUR_GRIDS = {
    "karras": lambda n: karras_sigmas(n),  # sigma in [0.002, 80], rho = 7
    "exponential": lambda n: exponential_sigmas(n),  # [0.002, 80]
    "karras[vp range]": lambda n: karras_sigmas(n, VP_MIN, VP_MAX),
    "exponential[vp range]": lambda n: exponential_sigmas(n, VP_MIN, VP_MAX),
    "vp-trailing": lambda n: vp_sigmas(n, "linear", "trailing"),  # discrete linear-beta table, [0.029, 25]
    "vp-leading": lambda n: vp_sigmas(n, "linear", "leading"),
    "vp-linspace": lambda n: vp_sigmas(n, "linear", "linspace"),
    "flow": lambda n: flow_sigmas(n),  # shift 1, t_max = 0.999: sigma from 999
}
KD_GRIDS = ("karras", "exponential", "karras[vp range]", "exponential[vp range]")
RANGES = [(0.005, 25.1), (0.01, 25.1), (0.01, 80.0)]  # sigma ranges swept at 10 evaluations
RANGE_GRIDS = {f"{kind}[{lo:g},{hi:g}]": (lambda n, f=f, lo=lo, hi=hi: f(n, lo, hi))
               for kind, f in (("exponential", exponential_sigmas), ("karras", karras_sigmas)) for lo, hi in RANGES}
RANGE_SWEEP_OURS = [("dpmpp_2m", "", {}), ("dpmpp_2m_sde", "eta=0 heun", dict(eta=0.0, solver="heun")),
                    ("dpmpp_3m_sde", "eta=0", dict(eta=0.0)), ("unipc", "order=2 bh2", {}),
                    ("unipc", "order=3 bh2", dict(order=3))]
RANGE_SWEEP_KD = [("dpmpp_2m", "", {}), ("lms", "", {}), ("dpmpp_3m_sde", "eta=0", dict(eta=0.0))]
OUR_DEFAULTS = {  # sampler -> (options label, options, stochastic)
    "euler": ("", {}, False),
    "euler_ancestral": ("eta=1", {}, True),
    "heun": ("", {}, False),
    "dpmpp_2m": ("", {}, False),
    "dpmpp_2m_sde": ("eta=1 midpoint", {}, True),
    "dpmpp_3m_sde": ("eta=1", {}, True),
    "unipc": ("order=2 bh2", {}, False),
}
OUR_OPTIONS = [  # swept at 10 evaluations on every grid
    ("dpmpp_2m_sde", "eta=0 midpoint", dict(eta=0.0), False),
    ("dpmpp_2m_sde", "eta=0 heun", dict(eta=0.0, solver="heun"), False),
    ("dpmpp_2m_sde", "eta=1 heun", dict(solver="heun"), True),
    ("dpmpp_3m_sde", "eta=0", dict(eta=0.0), False),
    ("unipc", "order=1 bh1", dict(order=1, variant="bh1"), False),
    ("unipc", "order=1 bh2", dict(order=1, variant="bh2"), False),
    ("unipc", "order=2 bh1", dict(order=2, variant="bh1"), False),
    ("unipc", "order=3 bh1", dict(order=3, variant="bh1"), False),
    ("unipc", "order=3 bh2", dict(order=3, variant="bh2"), False),
    ("unipc", "order=3 bh2 no corrector", dict(order=3, variant="bh2", corrector=False), False),
]


# --- measures -----------------------------------------------------------------------------------

class SW:
    """diffsuite.core.toy.sliced_wasserstein against a fixed reference sample, with the reference quantiles
    computed once (same directions, seed and quantile levels; checked equal at start-up)."""

    def __init__(self, ref: torch.Tensor, projections: int = 256, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        dirs = torch.randn(ref.shape[1], projections, generator=g, dtype=torch.float64)
        self.dirs = (dirs / dirs.norm(dim=0, keepdim=True)).T.contiguous().numpy()  # (P, D)
        self.qs = np.linspace(0.005, 0.995, 200)
        self.qref = self._quantiles(ref)

    def _quantiles(self, a: torch.Tensor) -> np.ndarray:
        # sorted in float32 (2x faster; the quantiles move by ~1e-7, SW values are >= 1e-3)
        p = np.sort((self.dirs @ a.double().numpy().T).astype(np.float32), axis=1).astype(np.float64)  # (P, N)
        pos = self.qs * (p.shape[1] - 1)  # linear interpolation, as torch.quantile
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, p.shape[1] - 1)
        w = pos - lo
        return p[:, lo] * (1 - w) + p[:, hi] * w

    def __call__(self, a: torch.Tensor) -> float:
        return float(np.abs(self._quantiles(a) - self.qref).mean())


def reference_solve(oracle: R.Oracle, x_top: torch.Tensor, top: float, knots: list[float], steps: int):
    """RK4 on dx/ds = x - D(x, e^s), s = ln sigma, from sigma = top down through every knot; uniform
    steps in s plus the knots themselves. Returns {knot sigma: state}."""
    lo = min(knots)
    grid = set(np.exp(np.linspace(math.log(top), math.log(lo), steps + 1)).tolist()) | set(knots) | {top}
    grid = sorted((g for g in grid if lo <= g <= top), reverse=True)
    want, out = set(knots), {}
    x = x_top.clone()
    f = lambda x, s: x - oracle(x, math.exp(s))  # noqa: E731
    if top in want:
        out[top] = x.clone()
    for a, b in zip(grid[:-1], grid[1:]):
        sa, sb = math.log(a), math.log(b)
        h = sb - sa
        k1 = f(x, sa)
        k2 = f(x + 0.5 * h * k1, sa + 0.5 * h)
        k3 = f(x + 0.5 * h * k2, sa + 0.5 * h)
        k4 = f(x + h * k3, sb)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if b in want:
            out[b] = x.clone()
    return out


# --- the methods --------------------------------------------------------------------------------

class Method:
    def __init__(self, lib, sampler, options, grid, nfe, steps, stochastic, rng, run, final="denoise"):
        self.lib, self.sampler, self.options, self.grid, self.nfe = lib, sampler, options, grid, nfe
        self.steps, self.stochastic, self.range, self.run, self.final = steps, stochastic, rng, run, final
        self.calls = None
        self.sweep = False  # part of the sigma-range sweep (its own table)
        self.sw = self.err = self.err_range = self.sw_exact = self.err_exact = None

    @property
    def name(self):
        return f"{self.sampler}{' (' + self.options + ')' if self.options else ''}"


def our_method(sampler, label, opts, stochastic, grid, nfe, seed):
    n = S.steps_for_evaluations(sampler, nfe)
    sig = (OUR_GRIDS.get(grid) or RANGE_GRIDS[grid])(n)

    def run(start, oracle):
        g = torch.Generator().manual_seed(seed)
        noise = lambda x: torch.randn(x.shape, generator=g, dtype=x.dtype)  # noqa: E731
        den = lambda x, s, cond=None: oracle(x, s)  # noqa: E731
        return S.SAMPLERS[sampler](den, start(float(sig[0])), sig, noise=noise, **opts)

    return Method("ours", sampler, label, grid, nfe, n, stochastic, (float(sig[0]), float(sig[-2])), run)


def kd_method(sampler, grid, nfe, seed, label=None, options=None, stochastic=None):
    options = options or {}
    run = lambda start, oracle: R.kd_run(sampler, grid, nfe, start, oracle, seed, **options)  # noqa: E731
    final = "none" if sampler == "dpm_fast" else "denoise"
    steps = nfe if sampler == "dpm_fast" else R.kd_steps(sampler, nfe)
    if label is None:
        label = "eta=1" if sampler in R.KD_STOCHASTIC else ""
    if stochastic is None:
        stochastic = sampler in R.KD_STOCHASTIC
    return Method("k-diffusion", sampler, label, grid, nfe, steps, stochastic, R.kd_range(sampler, grid, nfe), run,
                  final)


def diffusers_method(spec: R.DiffusersSpec, nfe, seed):
    run = lambda start, oracle: spec.run(nfe, start, oracle, seed)  # noqa: E731
    return Method("diffusers", spec.label, "", spec.grid, nfe, spec.steps(nfe), spec.stochastic,
                  spec.sigma_range(nfe), run)


def build_methods(quick: bool) -> list[Method]:
    ms: list[Method] = []
    nfes = (5, 10) if quick else NFES
    seed = 1234
    for nfe in nfes:
        for grid in OUR_GRIDS:
            for sampler, (label, opts, st) in OUR_DEFAULTS.items():
                ms.append(our_method(sampler, label, opts, st, grid, nfe, seed))
    for grid in OUR_GRIDS:
        for sampler, label, opts, st in OUR_OPTIONS:
            ms.append(our_method(sampler, label, opts, st, grid, 10, seed))
    for nfe in nfes:
        for grid in KD_GRIDS:
            for sampler in R.KD_SAMPLERS:
                ms.append(kd_method(sampler, grid, nfe, seed))
        ms.append(kd_method("dpm_fast", "log-SNR uniform", nfe, seed))
        ms.append(kd_method("dpm_fast", "log-SNR uniform[vp range]", nfe, seed))
        for spec in R.diffusers_specs():
            ms.append(diffusers_method(spec, nfe, seed))
    for grid in KD_GRIDS:  # option sweeps of theirs at 10, beside ours
        for sampler, label, opts in R.KD_OPTIONS:
            ms.append(kd_method(sampler, grid, 10, seed, label, opts, opts.get("eta", 1.0) > 0))
    for spec in R.diffusers_option_specs():
        ms.append(diffusers_method(spec, 10, seed))
    for grid in RANGE_GRIDS:  # sigma-range sweep at 10, ours and k-diffusion's best on the same grids
        for sampler, label, opts in RANGE_SWEEP_OURS:
            ms.append(our_method(sampler, label, opts, False, grid, 10, seed))
            ms[-1].sweep = True
        for sampler, label, opts in RANGE_SWEEP_KD:
            ms.append(kd_method(sampler, grid, 10, seed, label, opts, False))
            ms[-1].sweep = True
    return ms


# --- overhead -----------------------------------------------------------------------------------

def overhead(shape, steps: int = 50, reps: int = 25) -> list[tuple[str, dict[str, float | None]]]:
    """Per-step cost of the sampler's own work in microseconds: (median CPU time of a whole run with
    a trivial denoiser - the same number of bare denoiser calls) / steps. CPU time of the (only)
    torch thread, not wall time, because the machine is shared. Grid construction and
    diffusers' set_timesteps are inside the timed run (both are per-generation costs)."""
    import diffusers
    import k_diffusion.sampling as K

    x = torch.randn(shape)
    calls = [0]

    def triv(x, s, cond=None):
        calls[0] += 1
        return x * 0.5

    def triv_eps(x_in, t):
        calls[0] += 1
        return x_in * 0.5

    def ours(name, **kw):
        return lambda: S.SAMPLERS[name](triv, x, karras_sigmas(steps), **kw)

    def kd(name, **kw):
        def f():
            sig = K.get_sigmas_karras(steps, 0.002, 80.0)
            if name in ("dpmpp_2m_sde", "dpmpp_3m_sde"):
                kw["noise_sampler"] = K.default_noise_sampler(x)  # plain randn, as ours (not a Brownian tree)
            return getattr(K, f"sample_{name}")(triv, x, sig, disable=True, **kw)
        return f

    def dif(cls, step_kw=None, **cfg):
        c = dict(R.VP_CONFIG)
        c.update(cfg)
        sch = getattr(diffusers, cls)(**c)

        def f():
            sch.set_timesteps(steps)
            y = x * sch.init_noise_sigma
            for t in sch.timesteps:
                y_in = sch.scale_model_input(y, t)
                y = sch.step(triv_eps(y_in, t), t, y, **(step_kw or {})).prev_sample
            return y
        return f

    rows = [
        ("euler", ours("euler"), kd("euler"), dif("EulerDiscreteScheduler")),
        ("euler_ancestral", ours("euler_ancestral"), kd("euler_ancestral"), dif("EulerAncestralDiscreteScheduler")),
        ("heun", ours("heun"), kd("heun"), dif("HeunDiscreteScheduler")),
        ("dpmpp_2m", ours("dpmpp_2m"), kd("dpmpp_2m"),
         dif("DPMSolverMultistepScheduler", algorithm_type="dpmsolver++", solver_order=2)),
        ("dpmpp_2m_sde", ours("dpmpp_2m_sde"), kd("dpmpp_2m_sde"),
         dif("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++", solver_order=2)),
        ("dpmpp_3m_sde", ours("dpmpp_3m_sde"), kd("dpmpp_3m_sde"),
         dif("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++", solver_order=3)),
        ("unipc (order 2 bh2)", ours("unipc"), None, dif("UniPCMultistepScheduler", solver_order=2)),
        ("unipc (order 3 bh2)", ours("unipc", order=3), None, dif("UniPCMultistepScheduler", solver_order=3)),
        ("DDIM = euler", None, None, dif("DDIMScheduler", step_kw={"eta": 0.0})),
    ]
    # round-robin over all runs, so that load from other jobs on the shared machine hits all alike
    def bare():  # the bare denoiser, to subtract; each result is dropped at once, as in a sampler loop (keeping
        for _ in range(100):  # 100 large results alive made every call fault in fresh pages: 483 µs instead of
            triv(x, None)  # ~40 at (4096, 64), and negative overheads)
    def draw():  # one Gaussian draw of the state's size, the unavoidable cost of a stochastic step
        for _ in range(100):
            torch.randn_like(x)
    jobs = [(label, lib, fn) for label, *fns in rows for lib, fn in zip(("ours", "k-diffusion", "diffusers"), fns)
            if fn is not None] + [("bare", "bare", bare), ("draw", "draw", draw)]
    n_calls, n_draws, times = {}, {}, {}
    draws = [0]

    def counting(f):  # counts the state-sized Gaussian draws of a run (every library calls torch.randn*)
        def g(*a, **k):
            out = f(*a, **k)
            draws[0] += out.numel() == x.numel()
            return out
        return g
    plain = torch.randn, torch.randn_like
    for label, lib, fn in jobs:
        calls[0] = draws[0] = 0
        torch.randn, torch.randn_like = counting(plain[0]), counting(plain[1])
        try:
            fn()  # warm-up, and the evaluation and draw counts
        finally:
            torch.randn, torch.randn_like = plain
        n_calls[(label, lib)], n_draws[(label, lib)] = calls[0], draws[0]
        times[(label, lib)] = []
    for _ in range(reps):
        for label, lib, fn in jobs:
            t = time.thread_time()  # CPU time of this thread: time spent preempted by other jobs is not counted
            fn()
            times[(label, lib)].append(time.thread_time() - t)
    t_call = statistics.median(times[("bare", "bare")]) / 100
    t_draw = statistics.median(times[("draw", "draw")]) / 100
    out = []
    for label, *fns in rows:
        res = {}
        for lib, fn in zip(("ours", "k-diffusion", "diffusers"), fns):
            res[lib] = None if fn is None else \
                (statistics.median(times[(label, lib)]) - n_calls[(label, lib)] * t_call) / steps * 1e6
            res[lib + " draws"] = None if fn is None else n_draws[(label, lib)] / steps
        out.append((label, res))
    return out, t_call * 1e6, t_draw * 1e6


# --- state precision ----------------------------------------------------------------------------

def precision_check(gm, n: int = 2000, nfes=(10, 50)) -> list[tuple[str, int, float, float]]:
    """Does a float64 sampler state change results for a float32 network? Every deterministic
    sampler, Karras grid, the exact denoiser evaluated on float32 inputs and returned in float32 (a
    float32 network): once with a float32 start (the state stays float32), once with the same start
    in float64 (the state is float64, the network still sees float32). Returns rows (sampler, NFE,
    max |float32 state - float64 state| per point, mean ODE error of the float64-state run against a
    800-step float64 dpmpp_2m solve)."""
    net32 = lambda x, s, cond=None: gm.denoise(x.float(), s).float()  # noqa: E731
    net_for64 = lambda x, s, cond=None: gm.denoise(x.float(), s).double()  # noqa: E731  (float32 network)
    x64 = 80.0 * torch.randn(n, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x32 = x64.float()
    ref = S.sample_dpmpp_2m(lambda x, s, cond=None: gm.denoise(x, s), x32.double(), karras_sigmas(800))
    rows = []
    for name in ("euler", "heun", "dpmpp_2m", "unipc", "dpmpp_3m_sde"):
        opts = {"eta": 0.0} if name.endswith("_sde") else {}
        for nfe in nfes:
            sig = karras_sigmas(S.steps_for_evaluations(name, nfe))
            a = S.SAMPLERS[name](net32, x32, sig, **opts).double()
            b = S.SAMPLERS[name](net_for64, x32.double(), sig, **opts)
            rows.append((name, nfe, (a - b).norm(dim=1).max().item(), (b - ref).norm(dim=1).mean().item()))
    return rows


# --- tables -------------------------------------------------------------------------------------

def fmt(v, nd=4):
    if v is None:
        return "—"
    if v == 0:
        return "0"
    return f"{v:.{nd}f}" if v >= 10 ** -(nd - 1) else f"{v:.1e}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="sample points per method")
    ap.add_argument("--ref-steps", type=int, default=300, help="RK4 steps of the reference ODE solve")
    ap.add_argument("--quick", action="store_true", help="a small smoke run; writes nothing")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--overhead-only", action="store_true",
                    help="measure only the state precision and per-step overhead, and replace only those "
                         "subsections of `## Samplers` (the quality tables stay)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.ref_steps = 2000, 200
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    gm = GaussianMixture.ring()
    if args.overhead_only:
        over = [(shape, *overhead(shape, reps=7 if args.quick else 31)) for shape in OVERHEAD_SHAPES]
        md = "\n".join(tail_md(precision_check(gm, n=500 if args.quick else 2000), over)) + "\n"
        md += (f"\n(Refreshed alone by `.venv-bench/bin/python benchmarks/samplers.py --overhead-only` on "
               f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {time.perf_counter() - t_start:.0f} s "
               f"wall, CPU time {time.process_time():.0f} s; the tables above are from the full run.)\n")
        print(md)
        if not (args.quick or args.no_write):
            replace_tail(ROOT / "benchmarks" / "RESULTS.md", md)
        return
    oracle = R.Oracle(gm)

    # checks: the fast oracle is gm.denoise; the cached SW is core's sliced_wasserstein
    g = torch.Generator().manual_seed(99)
    xs, _ = gm.sample(3000, g)
    for s in (torch.rand(3000, dtype=torch.float64) * 5, 1e-3, 500.0):
        xn = xs + torch.as_tensor(s).reshape(-1, 1) * torch.randn(xs.shape, generator=g, dtype=torch.float64)
        assert (oracle.exact(xn, s) - gm.denoise(xn, s)).abs().max() < 1e-12
    a, _ = gm.sample(2000, g)
    b, _ = gm.sample(3000, g)
    assert abs(SW(b)(a) - sliced_wasserstein(a, b)) < 1e-6

    ref_data, _ = gm.sample(100_000, torch.Generator().manual_seed(1))
    sw = SW(ref_data)
    floors = [sw(gm.sample(args.n, torch.Generator().manual_seed(100 + k))[0]) for k in range(3)]
    print(f"SW floor (independent {args.n}-point data samples vs 100k): {', '.join(f'{f:.4f}' for f in floors)}")

    methods = build_methods(args.quick)
    print(f"{len(methods)} method runs")
    knots = sorted({m.range[0] for m in methods} | {m.range[1] for m in methods} | {SIGMA_END}, reverse=True)
    top = knots[0]
    x0, _ = gm.sample(args.n, torch.Generator().manual_seed(2))
    eps = torch.randn(args.n, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x_top = x0 + top * eps
    t = time.perf_counter()
    ref = reference_solve(oracle, x_top, top, knots, args.ref_steps)
    ref_half = reference_solve(oracle, x_top, top, knots, args.ref_steps // 2)
    t_ref = time.perf_counter() - t

    def final(sigma_last, mode, states):
        xs = states[sigma_last]
        return xs if mode == "none" else oracle.exact(xs, sigma_last)

    ref_err = max((final(k, "denoise", ref) - final(k, "denoise", ref_half)).norm(dim=1).mean().item()
                  for k in knots)
    truth = final(SIGMA_END, "denoise", ref)  # the exact probability-flow ODE map of the starts to sigma = 0
    print(f"reference: RK4 {args.ref_steps} steps in log sigma from sigma={top:.4g} through {len(knots)} knots, "
          f"{t_ref:.0f}s; |ref({args.ref_steps}) - ref({args.ref_steps // 2})| <= {ref_err:.1e}")

    start_of = lambda s: ref[s].clone()  # noqa: E731
    exact_sw: dict[tuple[float, str], float] = {}
    t = time.perf_counter()
    lib_time: dict[str, float] = {}
    for i, m in enumerate(methods):
        t0 = time.perf_counter()
        oracle.calls = 0
        out = m.run(start_of, oracle).double()
        m.calls = oracle.calls
        assert out.shape == x0.shape
        m.sw = sw(out) if torch.isfinite(out).all() else float("nan")
        key = (m.range[1], m.final)
        exact = final(*key, ref)  # the exact ODE over this method's own sigma range, then its last step
        if key not in exact_sw:
            exact_sw[key] = (sw(exact), (exact - truth).norm(dim=1).mean().item())
        m.sw_exact, m.err_exact = exact_sw[key]
        if not m.stochastic:
            m.err = (out - truth).norm(dim=1).mean().item()
            m.err_range = (out - exact).norm(dim=1).mean().item()
        lib_time[m.lib] = lib_time.get(m.lib, 0.0) + time.perf_counter() - t0
        if m.calls > m.nfe:
            raise AssertionError(f"{m.lib} {m.name} {m.grid}: {m.calls} calls for a budget of {m.nfe}")
    t_runs = time.perf_counter() - t
    print(f"runs: {t_runs:.0f}s ({', '.join(f'{k} {v:.0f}s' for k, v in lib_time.items())})")

    over = None
    if not args.skip_overhead:
        t = time.perf_counter()
        over = [(shape, *overhead(shape, reps=7 if args.quick else 31)) for shape in OVERHEAD_SHAPES]
        print(f"overhead: {time.perf_counter() - t:.0f}s")
    precision = precision_check(gm, n=500 if args.quick else 2000)

    md = report(methods, floors, sw(truth), ref_err, args, over, knots, top, time.perf_counter() - t_start, precision)
    print(md)
    if not (args.quick or args.no_write):
        write_section(ROOT / "benchmarks" / "RESULTS.md", md)


def cell(m, what):
    v = getattr(m, what)
    if v is None:
        return "—"
    s = fmt(v)
    return s + (f" ({m.calls})" if m.calls < m.nfe else "")


def report(methods, floors, sw_truth, ref_err, args, over, knots, top, wall, precision=()) -> str:
    nfes = sorted({m.nfe for m in methods})
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    L = ["## Samplers", ""]
    L += [f"Machine: {os.cpu_count()}-core CPU, {cpu} (shared with other jobs; torch {torch.__version__}, "
          f"1 thread). Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. "
          f"Wall time {wall:.0f}s, CPU time {time.process_time():.0f}s (the difference is other jobs' load).",
          "",
          f"Command: `.venv/bin/python benchmarks/samplers.py{' --n ' + str(args.n) if args.n != 20000 else ''}`",
          ""]
    L += [f"Ring mixture (8 modes, `GaussianMixture.ring()`), exact denoiser, {args.n} points per run. Every method "
          "starts from the same points placed exactly on the probability-flow ODE at its own first sigma: one RK4 "
          f"solve in log sigma from x0 + {top:.4g} eps with {args.ref_steps} steps through the {len(knots)} "
          f"first/last sigmas of all grids, down to sigma = {SIGMA_END:g} (its own error, against "
          f"{args.ref_steps // 2} steps: <= {ref_err:.1e}). So the starts are exact samples of each grid's first "
          "marginal and the runs share their randomness.",
          "",
          f"* **SW** = `core.toy.sliced_wasserstein` to a 100k data sample. Noise floor (independent {args.n}-point "
          f"data samples): {', '.join(f'{f:.4f}' for f in floors)}; the exact ODE map of these very starts to "
          f"sigma = 0 scores {sw_truth:.4f}.",
          "* **err** = mean distance per point to the exact ODE map of the same start to sigma = 0 (deterministic "
          "solvers only; — for stochastic ones). It charges the grid's truncation (stopping at sigma_last and "
          "returning D(x, sigma_last)) as well as the solver; **range err** (best-of table) is the distance to the "
          "exact ODE over the method's own sigma range with the same last step: the solver alone.",
          "* NFE columns are budgets of denoiser evaluations, counted by the oracle. Two-evaluation samplers "
          "(Heun, dpm_2, dpmpp_sde, ...) take (NFE + 1) / 2 steps; a number in brackets is the count actually "
          "made when below the budget.",
          "* diffusers runs in float32 on a 1000-step linear-beta (0.00085..0.012) eps-prediction table (the same "
          "table as our `vp_sigmas(kind='linear')`: sigma in [0.029, 25]); the oracle returns "
          "eps = (x_ve - D(x_ve, sigma)) / sigma for the network input x_t = x_ve / sqrt(1 + sigma^2), at the "
          "sigma the scheduler assumes for that call (`benchmarks/_reference_samplers.py`). `leading` is "
          "`steps_offset=1` as Stable Diffusion ships it; `karras`/`exponential` are `use_karras_sigmas` / "
          "`use_exponential_sigmas`. Ours and k-diffusion run in float64; ours and k-diffusion's karras/exponential "
          "grids span [0.002, 80]; the flow grid is `flow_sigmas(n)` (shift 1, from sigma 999).",
          ""]

    def table(rows, title):
        L.append(title)
        L.append("")
        hdr = ["method", "grid"] + [f"SW@{n}" for n in nfes] + [f"err@{n}" for n in nfes]
        L.append("| " + " | ".join(hdr) + " |")
        L.append("|" + "---|" * len(hdr))
        for key, ms in rows:
            by = {m.nfe: m for m in ms}
            cells = [cell(by[n], "sw") if n in by else "" for n in nfes]
            cells += [cell(by[n], "err") if n in by else "" for n in nfes]
            L.append("| " + " | ".join([key[0], key[1]] + cells) + " |")
        L.append("")

    defaults = {(s_, v[0]) for s_, v in OUR_DEFAULTS.items()}

    def group(lib, sweep=False):
        rows: dict[tuple[str, str], list] = {}
        for m in methods:
            if m.lib != lib or m.sweep or (lib == "ours" and ((m.sampler, m.options) not in defaults) != sweep):
                continue
            rows.setdefault((m.name, m.grid), []).append(m)
        return list(rows.items())

    table(group("ours"), "### Ours: every sampler (default options) on every grid")
    table(group("k-diffusion"), "### k-diffusion (`k_diffusion.sampling.sample_*`)")
    table(group("diffusers"), "### diffusers schedulers (`set_timesteps` / `scale_model_input` / `step`)")

    # the grids' own floors: an exact solver on the grid's sigma range
    L.append("### Grid floors: the exact ODE over each grid's sigma range (SW / err), by number of steps")
    L.append("")
    steps = sorted({m.steps for m in methods if m.lib != "k-diffusion"})
    floor_rows: dict[str, dict[int, Method]] = {}
    for m in methods:
        if m.lib == "ours":
            floor_rows.setdefault(f"ours {m.grid}", {}).setdefault(m.steps, m)
        elif m.lib == "diffusers":
            floor_rows.setdefault(f"diffusers {m.sampler.split(' ')[0]} {m.grid}", {}).setdefault(m.steps, m)
    L.append("| grid | " + " | ".join(f"{n} steps" for n in steps) + " |")
    L.append("|---|" + "---|" * len(steps))
    for name, by in floor_rows.items():
        L.append(f"| {name} | " + " | ".join(f"{fmt(by[n].sw_exact)} / {fmt(by[n].err_exact)}" if n in by else ""
                                            for n in steps) + " |")
    L.append("")

    L.append("### Ours at 10 evaluations: every options setting on every grid (SW / err)")
    L.append("")
    grids = list(OUR_GRIDS)
    L.append("| sampler (options) | " + " | ".join(grids) + " |")
    L.append("|---|" + "---|" * len(grids))
    rows: dict[str, dict[str, Method]] = {}
    for m in methods:
        if m.lib == "ours" and m.nfe == 10 and not m.sweep:
            rows.setdefault(m.name, {})[m.grid] = m
    for name, by in rows.items():
        L.append(f"| {name} | " + " | ".join(f"{cell(by[g], 'sw')} / {cell(by[g], 'err')}" if g in by else ""
                                            for g in grids) + " |")
    L.append("")

    L.append("### Sigma range at 10 evaluations (SW / err): our best samplers and k-diffusion's, same grids")
    L.append("")
    L.append("Columns are `kind[sigma_min,sigma_max]`; [vp range] is [0.0292, 25.1] and the plain grids [0.002, 80] "
             "(from the tables above).")
    L.append("")
    sweep_grids = ["exponential", "exponential[vp range]"] + [g for g in RANGE_GRIDS if g.startswith("exp")] + \
        ["karras", "karras[vp range]"] + [g for g in RANGE_GRIDS if g.startswith("karras")]
    L.append("| method | " + " | ".join(sweep_grids) + " |")
    L.append("|---|" + "---|" * len(sweep_grids))
    want = {("ours", sm, lab) for sm, lab, _ in RANGE_SWEEP_OURS} | {("k-diffusion", sm, lab) for sm, lab, _ in RANGE_SWEEP_KD}
    rows = {}
    for m in methods:
        if m.nfe == 10 and (m.lib, m.sampler, m.options) in want and m.grid in sweep_grids:
            rows.setdefault(f"{m.lib} {m.name}", {})[m.grid] = m
    for name, by in rows.items():
        L.append(f"| {name} | " + " | ".join(f"{cell(by[g], 'sw')} / {cell(by[g], 'err')}" if g in by else ""
                                            for g in sweep_grids) + " |")
    L.append("")

    L.append("### Best at each budget (any sampler, options and grid of each library)")
    L.append("")
    L.append("| NFE | measure | ours | k-diffusion | diffusers | ours best? |")
    L.append("|---|---|---|---|---|---|")
    verdict = {}
    names = {"sw": "SW", "err": "err", "err_range": "range err"}
    for n in nfes:
        for what in ("sw", "err", "err_range"):
            best = {}
            for lib in ("ours", "k-diffusion", "diffusers"):
                cands = [m for m in methods if m.lib == lib and m.nfe == n and getattr(m, what) is not None
                         and math.isfinite(getattr(m, what))]
                if cands:
                    best[lib] = min(cands, key=lambda m: getattr(m, what))
            if "ours" not in best:
                continue
            theirs = min(getattr(best[k], what) for k in best if k != "ours")
            ours_v = getattr(best["ours"], what)
            ok = ours_v < theirs
            tie = abs(ours_v - theirs) <= 0.01 * theirs  # within 1%: the same algorithm on the same grid
            verdict[(n, what)] = ok and not tie
            desc = lambda m: f"{fmt(getattr(m, what))} {m.name}, {m.grid}"  # noqa: E731
            L.append(f"| {n} | {names[what]} | "
                     + " | ".join(desc(best[k]) if k in best else "—" for k in ("ours", "k-diffusion", "diffusers"))
                     + f" | {'tie (within 1%)' if tie else 'yes' if ok else 'NO'} |")
    L.append("")
    L.append("Ours and k-diffusion's implementations of the same algorithm on the same grid agree to the digits "
             "shown (euler, heun, dpmpp_2m, dpmpp_2m_sde/3m_sde with eta=0 are the same equations), and diffusers' "
             "agree to float32 where its grid is the same; 'tie' marks such a case. 'range err' favours grids that "
             "stop early (trailing, flow at few steps) since the last step D(x, sigma_last) contracts all errors: "
             "read it within one grid only.")
    L.append("")
    if (10, "sw") in verdict:
        L.append("Target (issue 2: at 10 evaluations our best error below the best of theirs): "
                 + ", ".join(f"{names[w]} {'met' if verdict.get((10, w)) else 'NOT met'}"
                             for w in ("sw", "err", "err_range")) + ".")
        L.append("")

    L += tail_md(precision, over)
    return "\n".join(L).rstrip() + "\n"


def tail_md(precision, over) -> list[str]:
    """The state-precision and per-step overhead subsections (also refreshed alone by --overhead-only)."""
    L: list[str] = []
    if precision:
        L.append("### Sampler state precision: float32 against float64 for a float32 network")
        L.append("")
        L.append("Our samplers keep their state in the start's dtype (float32 for a float32 or half-precision start; "
                 "step coefficients are Python floats). Here every deterministic sampler runs twice on the Karras grid "
                 "with the exact denoiser evaluated in float32 (a float32 network): from a float32 start (float32 "
                 "state) and from the same start in float64 (float64 state, the network still fed float32). The "
                 "float64 state would matter only if the difference came near the solver's own error.")
        L.append("")
        L.append("| sampler | NFE | max distance float32 vs float64 state | ODE error (float64 state) |")
        L.append("|---|---|---|---|")
        for name, nfe, diff, err in precision:
            L.append(f"| {name}{' (eta=0)' if name.endswith('_sde') else ''} | {nfe} | {diff:.1e} | {fmt(err)} |")
        L.append("")
    if over:
        L.append("### Per-step sampler overhead (µs of CPU time per step; 50 steps, median of 31 runs taken "
                 "round-robin, trivial denoiser x*0.5 whose bare cost is subtracted)")
        L.append("")
        L.append("Grid construction and diffusers' `set_timesteps` are inside the timed run; k-diffusion's SDE "
                 "samplers are given plain `randn` noise (as ours), not their default Brownian tree. Inputs are "
                 "float32 (all three libraries keep a float32 state; ours since issue 15, before it converted the whole "
                 "state to float64 and back around every evaluation). Stochastic samplers include their Gaussian noise "
                 "draw, counted per run (columns *draws*: state-sized `torch.randn*` calls per step, ours / "
                 "k-diffusion / diffusers) and timed alone (*one draw* below); the last column takes each library's "
                 "draws times that cost out of its overhead before comparing, since a Gaussian draw per step is the "
                 "algorithm, not the loop. The machine is shared (load average "
                 f"{os.getloadavg()[0]:.1f} on 2 cores at the end of this run): the times are the thread's CPU "
                 "time (`time.thread_time`), which preemption does not inflate, though cache sharing still adds "
                 "some noise; the runs are interleaved so that all libraries see the same load.")
        L.append("")
        for shape, rows_, t_call, t_draw in over:
            L.append(f"Tensor {tuple(shape)} (one bare denoiser call: {t_call:.1f} µs; one draw: {t_draw:.1f} µs):")
            L.append("")
            L.append("| sampler | ours | k-diffusion | diffusers | draws | ours ≤ k-diffusion? | ours < diffusers/3? "
                     "| draws taken out: ours < diffusers/3? |")
            L.append("|---|---|---|---|---|---|---|---|")
            for label, r in rows_:
                o, k, d = r["ours"], r["k-diffusion"], r["diffusers"]
                c1 = "—" if o is None or k is None else ("yes" if o <= k else "NO")
                c2 = "—" if o is None or d is None else ("yes" if o < d / 3 else "NO")
                dr = " / ".join("—" if r[lib + " draws"] is None else f"{r[lib + ' draws']:.2f}"
                                for lib in ("ours", "k-diffusion", "diffusers"))
                c3 = "—" if o is None or d is None else \
                    ("yes" if o - r["ours draws"] * t_draw < (d - r["diffusers draws"] * t_draw) / 3 else "NO")
                L.append(f"| {label} | {fmt(o, 1)} | {fmt(k, 1)} | {fmt(d, 1)} | {dr} | {c1} | {c2} | {c3} |")
            L.append("")
    return L


def replace_tail(path: Path, md: str) -> None:
    """Replace the precision/overhead subsections at the end of `## Samplers` with `md`."""
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, l in enumerate(lines) if l.rstrip() == "## Samplers")
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    heads = ("### Sampler state precision", "### Per-step sampler overhead")
    first = next((j for j in range(start, end) if lines[j].startswith(heads)), end)
    path.write_text("".join(lines[:first]) + md + ("\n" + "".join(lines[end:]) if end < len(lines) else ""))
    print(f"replaced the overhead subsections of the Samplers section of {path}")


def write_section(path: Path, md: str) -> None:
    """Replace (or append) only the `## Samplers` section of RESULTS.md."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.rstrip() == "## Samplers"), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + md
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        new = "".join(lines[:start]) + md + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    path.write_text(new)
    print(f"wrote the Samplers section of {path}")


if __name__ == "__main__":
    main()
