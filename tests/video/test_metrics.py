"""PSNR, SSIM and the Frechet distance state their defining properties."""

import numpy as np
import pytest
import torch

from diffsuite.domains.video.evaluation import copy_last_frame
from diffsuite.domains.video.metrics import frechet_distance, psnr, ssim


def test_psnr_known_value_and_identity():
    a = torch.zeros(1, 2, 8, 8)
    b = torch.full_like(a, 0.1)  # mse 0.01 -> 20 dB
    assert psnr(a, b) == pytest.approx(20.0)
    assert psnr(a, a) == float("inf")
    with pytest.raises(ValueError, match="equal shapes"):
        psnr(a, b[..., :4])


def test_ssim_identity_and_monotone_in_noise():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 16, 16, generator=g)
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = [(a + s * torch.randn(a.shape, generator=g)).clamp(0, 1) for s in (0.05, 0.2, 0.5)]
    scores = [ssim(a, n) for n in noisy]
    assert scores[0] > scores[1] > scores[2]


def test_frechet_distance_properties():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0.0])
    assert frechet_distance(a, a + shift) == pytest.approx(5.0, rel=1e-3)  # ||d||^2, covariances equal
    b = rng.normal(size=(4000, 3)) * 2  # variances 4: trace term 3 * (1 + 4 - 2 * 2) = 3
    assert frechet_distance(a, b) == pytest.approx(3.0, rel=0.1)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], b)


def test_copy_last_frame_baseline():
    truth = np.arange(6)[:, None, None, None] * np.ones((6, 2, 2, 1), dtype=np.uint8)
    out = copy_last_frame(truth, [0, 1])
    assert [int(f[0, 0, 0]) for f in out] == [0, 1, 1, 1, 1, 1]
    out = copy_last_frame(truth, [2, 4])  # interpolation: before the first given frame use it
    assert [int(f[0, 0, 0]) for f in out] == [2, 2, 2, 3 - 1, 4, 4]
