import math

import pytest
import torch

from diffsuite.core.schedules import (GRIDS, LogitNormalLaw, LogNormalLaw, VPUniformLaw, check_sigmas, exponential_sigmas,
                            flow_sigmas, karras_sigmas, vp_discrete_sigmas, vp_sigmas)


@pytest.mark.parametrize("name", sorted(GRIDS))
@pytest.mark.parametrize("n", [1, 5, 37])
def test_every_grid_is_descending_n_plus_one_and_ends_in_zero(name, n):
    s = GRIDS[name](n)
    assert s.shape == (n + 1,) and s[-1] == 0
    check_sigmas(s)


def test_karras_hits_both_ends_and_follows_rho():
    s = karras_sigmas(10, 0.002, 80.0, rho=7.0)
    assert s[0].item() == pytest.approx(80.0) and s[-2].item() == pytest.approx(0.002)
    steps = s[:-1] ** (1 / 7)
    assert torch.allclose(steps[:-1] - steps[1:], (steps[0] - steps[1]).expand(9), atol=1e-9)


def test_exponential_is_uniform_in_log_sigma():
    s = exponential_sigmas(6, 0.01, 10.0)[:-1].log()
    assert torch.allclose(s[:-1] - s[1:], (s[0] - s[1]).expand(5))


def test_vp_spacings_pick_the_documented_timesteps():
    table = vp_discrete_sigmas("linear", 1000)
    assert vp_sigmas(10, spacing="trailing")[0] == table[999]  # starts at the noisiest timestep
    assert vp_sigmas(10, spacing="leading")[0] == table[901]
    assert vp_sigmas(10, spacing="linspace")[0] == table[999] and vp_sigmas(10, spacing="linspace")[-2] == table[0]
    assert vp_sigmas(4, kind="cosine")[0] > vp_sigmas(4, kind="linear")[0]
    with pytest.raises(ValueError, match="spacing"):
        vp_sigmas(10, spacing="middle")


def test_flow_shift_multiplies_sigma():
    torch.testing.assert_close(flow_sigmas(8, shift=3.0), 3.0 * flow_sigmas(8))


def test_laws_draw_positive_sigmas_where_they_should():
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    s = LogNormalLaw()(20000, generator=g())
    assert s.min() > 0 and s.log().median().item() == pytest.approx(-1.2, abs=0.05)
    assert LogNormalLaw(shift=2.0)(20000, generator=g()).log().median().item() == pytest.approx(-1.2 + math.log(2), abs=0.05)
    t = LogitNormalLaw()(20000, generator=g())
    assert (t / (1 + t)).median().item() == pytest.approx(0.5, abs=0.02)  # sigmoid(N(0,1)) has median 1/2
    table = vp_discrete_sigmas("linear", 1000).float()
    d = VPUniformLaw(discrete_steps=1000)(500, generator=g())
    assert torch.isin(d, table).all()
    c = VPUniformLaw()(500, generator=g())
    assert c.min() > 0 and c.max() < 160


def test_check_sigmas_names_the_problem():
    with pytest.raises(ValueError, match=r"sigmas\[1\]"):
        check_sigmas(torch.tensor([3.0, 3.0, 0.0]))
    with pytest.raises(ValueError, match="1-D"):
        check_sigmas(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="non-finite"):
        check_sigmas(torch.tensor([math.inf, 1.0, 0.0]))
    with pytest.raises(ValueError, match="sigma_min"):
        karras_sigmas(5, 1.0, 0.5)
