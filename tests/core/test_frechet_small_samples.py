"""Small-sample behaviour of the shared embedding distances: the Frechet distance is biased at
small N, KID is not, and KID's jackknife standard error measures its spread."""

import logging

import numpy as np
import pytest

from diffsuite.core.errors import UserError
from diffsuite.core.metrics import embedding_distances, frechet_distance, kernel_distance


def test_frechet_is_biased_at_small_n_and_kid_is_not():
    rng = np.random.default_rng(0)
    d = 64
    fd, kid = [], []
    for _ in range(200):  # two sets of 10 from the SAME distribution: the true distance is 0
        a, b = rng.standard_normal((10, d)), rng.standard_normal((10, d))
        fd.append(frechet_distance(a, b))
        kid.append(kernel_distance(a, b)[0])
    # the Frechet figure is far from 0 (the "628.9 vs 628.4": all bias) ...
    assert np.mean(fd) > 50
    # ... while KID averages to 0 within its standard error of the mean
    assert abs(np.mean(kid)) < 3 * np.std(kid) / np.sqrt(len(kid))


def test_kid_separates_shifted_sets_and_its_error_matches_the_spread():
    rng = np.random.default_rng(1)
    d = 16
    same, shifted, errors = [], [], []
    for _ in range(150):
        a = rng.standard_normal((30, d))
        k, s = kernel_distance(a, rng.standard_normal((30, d)))
        same.append(k)
        errors.append(s)
        shifted.append(kernel_distance(a, rng.standard_normal((30, d)) + 0.8)[0])
    assert min(shifted) > max(same)  # a shift of 0.8 per dimension is always seen
    # the jackknife standard error is the right size: within a factor 2 of the actual spread
    assert 0.5 < np.mean(errors) / np.std(same) < 2.0


def test_kid_is_unbiased_for_the_population_mmd():
    rng = np.random.default_rng(2)
    d = 8
    big = kernel_distance(rng.standard_normal((3000, d)), rng.standard_normal((3000, d)) + 0.5)[0]
    small = [kernel_distance(rng.standard_normal((12, d)), rng.standard_normal((12, d)) + 0.5)[0] for _ in range(400)]
    assert np.mean(small) == pytest.approx(big, rel=0.15)  # 12 per set: same expectation as 3,000


def test_report_warns_on_small_counts_and_refuses_too_few(caplog):
    rng = np.random.default_rng(3)
    with caplog.at_level(logging.WARNING):
        out = embedding_distances(rng.standard_normal((10, 64)), rng.standard_normal((256, 64)), name="classifier_")
    assert set(out) == {"classifier_frechet_distance", "classifier_kid", "classifier_kid_std"}
    assert "from 10 embeddings in 64 dimensions is mostly small-sample bias" in caplog.text
    assert out["classifier_kid_std"] > 0
    with pytest.raises(UserError, match="at least 3 embeddings per set, got 2 and 5"):
        kernel_distance(rng.standard_normal((2, 4)), rng.standard_normal((5, 4)))
    with pytest.raises(FloatingPointError, match="NaN"):
        frechet_distance(np.full((4, 3), np.nan), rng.standard_normal((4, 3)))
