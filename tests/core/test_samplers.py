import math
import threading

import pytest
import torch

from diffsuite.core.samplers import EVALUATIONS, SAMPLERS, get_sampler, steps_for_evaluations
from diffsuite.core.schedules import karras_sigmas
from diffsuite.core.toy import sliced_wasserstein

DETERMINISTIC = ["euler", "heun", "dpmpp_2m", "unipc"]
# the ODE/SDE solvers; "consistency" re-noises a consistency model's output and is tested apart
SOLVERS = sorted(name for name in SAMPLERS if name != "consistency")
N = 4000


def exact(gm):
    return lambda x, s, c=None: gm.denoise(x, s)


def start(n=N, seed=0, sigma=80.0):
    return sigma * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def seeded_noise(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda x: torch.randn(x.shape, generator=g, dtype=x.dtype)


@pytest.fixture(scope="module")
def data():
    from diffsuite.core.toy import GaussianMixture

    return GaussianMixture.ring().sample(N, torch.Generator().manual_seed(123))[0]


@pytest.fixture(scope="module")
def floor(data):
    from diffsuite.core.toy import GaussianMixture

    other = GaussianMixture.ring().sample(N, torch.Generator().manual_seed(321))[0]
    return sliced_wasserstein(other, data)


@pytest.mark.parametrize("name", SOLVERS)
def test_every_sampler_converges_to_the_data_distribution(name, gm, data, floor):
    errors = []
    for nfe in (6, 50):
        sigmas = karras_sigmas(steps_for_evaluations(name, nfe))
        out = SAMPLERS[name](exact(gm), start(), sigmas, noise=seeded_noise(1))
        errors.append(sliced_wasserstein(out, data))
    assert errors[1] < errors[0], errors
    assert errors[1] < 2.5 * floor + 0.01, (errors, floor)  # at the level of two data samples


@pytest.fixture(scope="module")
def ode_reference():
    from diffsuite.core.samplers import sample_dpmpp_2m
    from diffsuite.core.toy import GaussianMixture

    gm = GaussianMixture.ring()  # second order: error ~3e-3 at 50 steps, so ~1e-5 at 800
    return sample_dpmpp_2m(lambda x, s, c=None: gm.denoise(x, s), start(500), karras_sigmas(800))


def ode_error(gm, name, nfe, ref, **opts):
    sigmas = karras_sigmas(steps_for_evaluations(name, nfe))
    out = SAMPLERS[name](exact(gm), start(500), sigmas, **opts)
    return (out - ref).norm(dim=1).mean().item()


@pytest.mark.parametrize("name", DETERMINISTIC + ["dpmpp_2m_sde", "dpmpp_3m_sde", "euler_ancestral"])
def test_deterministic_solvers_converge_to_the_probability_flow_solution(name, gm, ode_reference):
    opts = {"eta": 0.0} if name in ("dpmpp_2m_sde", "dpmpp_3m_sde", "euler_ancestral") else {}
    errs = [ode_error(gm, name, nfe, ode_reference, **opts) for nfe in (12, 40, 120)]
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[2] < 0.02, errs


def test_second_order_solvers_beat_euler_at_equal_evaluations(gm, ode_reference):
    # On this stiff mixture (mode widths 0.08 at sigma_max 80) Heun's 2-evaluation steps only pay
    # off from about 50 evaluations; at 30 it is on par with Euler (measured).
    for nfe in (50, 100):
        euler = ode_error(gm, "euler", nfe, ode_reference)
        for name in ("heun", "dpmpp_2m", "unipc"):
            assert ode_error(gm, name, nfe, ode_reference) < 0.75 * euler, (name, nfe)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_are_deterministic_and_draw_no_noise(name, gm):
    def forbidden(x):
        raise AssertionError(f"{name} drew noise it does not use")

    sigmas = karras_sigmas(8)
    a = SAMPLERS[name](exact(gm), start(64), sigmas, noise=forbidden)
    b = SAMPLERS[name](exact(gm), start(64), sigmas, noise=forbidden)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["euler_ancestral", "dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_stochastic_samplers_use_the_noise_hook_once_per_noisy_step(name, gm):
    calls = []

    def noise(x):
        calls.append(1)
        return torch.zeros_like(x)

    SAMPLERS[name](exact(gm), start(8), karras_sigmas(10), noise=noise)
    assert len(calls) == 9  # every step but the last, which lands on sigma = 0
    calls.clear()
    SAMPLERS[name](exact(gm), start(8), karras_sigmas(10), noise=noise, eta=0.0)
    assert calls == []


def test_heun_churn_adds_noise_only_inside_its_window(gm):
    calls = []

    def noise(x):
        calls.append(1)
        return torch.randn_like(x)

    sigmas = karras_sigmas(10)
    SAMPLERS["heun"](exact(gm), start(8), sigmas, noise=noise, churn=10.0, churn_tmin=0.05, churn_tmax=1.0)
    assert len(calls) == int(((sigmas[:-1] >= 0.05) & (sigmas[:-1] <= 1.0)).sum())


def test_samplers_hold_no_state_between_threads(gm):
    sigmas = karras_sigmas(12)
    want = SAMPLERS["unipc"](exact(gm), start(256), sigmas)
    got = [None, None]

    def run(k):
        got[k] = SAMPLERS["unipc"](exact(gm), start(256), sigmas)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert torch.equal(got[0], want) and torch.equal(got[1], want)


def test_callback_reports_every_step_and_evaluations_are_counted(gm):
    for name in SAMPLERS:
        seen, calls = [], []

        def D(x, s, c=None):
            calls.append(1)
            return gm.denoise(x, s)

        SAMPLERS[name](D, start(4), karras_sigmas(7), callback=lambda info: seen.append(info["i"]))
        assert seen == list(range(7)), name
        assert len(calls) == EVALUATIONS[name](7), name


def test_bad_input_is_refused_with_a_clear_error(gm):
    D = exact(gm)
    with pytest.raises(ValueError, match="descending"):
        SAMPLERS["euler"](D, start(4), torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="end in 0"):
        SAMPLERS["euler"](D, start(4), torch.tensor([2.0, 1.0]))
    with pytest.raises(ValueError, match="unknown sampler 'ddpm'"):
        get_sampler("ddpm")
    with pytest.raises(ValueError, match="shape"):
        SAMPLERS["heun"](lambda x, s, c: x[:, :1], start(4), karras_sigmas(3))

    def nan_at_small_sigma(x, s, c=None):
        out = gm.denoise(x, s)
        return out * math.nan if s[0] < 1 else out

    with pytest.raises(FloatingPointError, match=r"step \d+ \(sigma="):
        SAMPLERS["dpmpp_2m"](nan_at_small_sigma, start(4), karras_sigmas(10))

    def one_inf(x, s, c=None):  # a single inf among finite values, at every sampler's first evaluation
        out = gm.denoise(x, s).clone()
        out[1, 0] = math.inf
        return out

    for name in SAMPLERS:
        with pytest.raises(FloatingPointError, match="step 0"):
            SAMPLERS[name](one_inf, start(4), karras_sigmas(3))
    with pytest.raises(ValueError, match="start x holds a non-finite"):
        SAMPLERS["euler"](exact(gm), start(4).index_fill(0, torch.tensor([2]), math.nan), karras_sigmas(3))


def test_finite_values_whose_sum_overflows_are_not_called_non_finite():
    # the cheap finiteness check sums in float32; 3e38 * 16 overflows that sum though every value is finite
    from diffsuite.core.noise import check_finite

    big = torch.full((16, 2), 3e38)
    out = SAMPLERS["euler"](lambda x, s, c=None: big, big.clone(), torch.tensor([1.0, 0.0]))
    assert torch.isfinite(out).all()
    assert check_finite(big, "big") is big
    with pytest.raises(FloatingPointError, match="decode: 1 non-finite value"):
        check_finite(big.index_fill(0, torch.tensor([3]), math.nan)[:, :1], "decode")


def test_the_state_keeps_the_start_dtype_raised_to_float32(gm):
    for start_dtype, state in ((torch.float32, torch.float32), (torch.bfloat16, torch.float32),
                               (torch.float64, torch.float64)):
        for name in SAMPLERS:
            seen = []

            def D(x, s, c=None):
                seen.append(x.dtype)
                return gm.denoise(x.float(), s).to(x.dtype)

            def cb(info):
                seen.append(("state", info["x"].dtype))

            out = SAMPLERS[name](D, start(4).to(start_dtype), karras_sigmas(5), callback=cb)
            assert out.dtype == start_dtype, name
            assert set(seen) == {start_dtype, ("state", state)}, (name, set(seen))  # the network sees its dtype


@pytest.mark.parametrize("name", DETERMINISTIC + ["dpmpp_3m_sde"])
def test_a_float64_state_changes_nothing_beyond_float32_rounding(name, gm, ode_reference):
    # the measured basis for dropping the float64 state (benchmarks/samplers.py, "state precision")
    net32 = lambda x, s, c=None: gm.denoise(x.float(), s).to(x.dtype)  # noqa: E731  a float32 network
    opts = {"eta": 0.0} if name.endswith("_sde") else {}
    sig = karras_sigmas(steps_for_evaluations(name, 40))
    a = SAMPLERS[name](net32, start(500).float(), sig, **opts).double()
    b = SAMPLERS[name](lambda x, s, c=None: net32(x.float(), s).double(), start(500).float().double(), sig, **opts)
    diff = (a - b).norm(dim=1).max().item()
    assert diff < 1e-4 and diff < 0.05 * (b - ode_reference).norm(dim=1).mean().item(), diff


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("alias", ["itself", "view"])
def test_a_denoiser_that_returns_its_input_is_a_fixed_point(name, alias):
    # D(x) = x makes the ODE's drift zero, so every sampler must hand back its start unchanged (plus
    # noise for the stochastic ones, here zero). Heun updates its state in place after the network's
    # second call; a denoiser that returns its input (or a view of it) must not corrupt that update.
    torch.manual_seed(0)
    x = 3.0 * torch.randn(64, 5)
    ident = (lambda z, s, cond=None: z) if alias == "itself" else (lambda z, s, cond=None: z.view(z.shape))
    out = SAMPLERS[name](ident, x.clone(), karras_sigmas(6), noise=torch.zeros_like)
    torch.testing.assert_close(out, x, rtol=1e-5, atol=1e-5)
