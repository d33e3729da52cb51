"""The Frechet distance against its definition, with no general matrix square root in the code."""

import numpy as np
import pytest
from scipy import linalg

from diffsuite.core.metrics import frechet_distance


def _reference(a, b):
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b).real  # the textbook formula, for the test only
    return ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean)


def test_matches_the_textbook_formula_on_correlated_sets():
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(6, 6))
    a = rng.normal(size=(400, 6)) @ mix
    b = rng.normal(size=(300, 6)) @ (mix + 0.3 * rng.normal(size=(6, 6))) + 0.5
    assert frechet_distance(a, b) == pytest.approx(_reference(a, b), rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_closed_form_for_commuting_covariances():
    # isotropic Gaussians: FD = |mu_a - mu_b|^2 + D (s_a - s_b)^2 with exact sample moments
    rng = np.random.default_rng(1)
    z = rng.normal(size=(1000, 4))
    z = (z - z.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # covariance exactly I
    a, b = 2.0 * z, 0.5 * z + 1.0
    assert frechet_distance(a, b) == pytest.approx(4 * 1.0 + 4 * (2.0 - 0.5) ** 2, rel=1e-9)


def test_non_finite_embeddings_are_named():
    a = np.ones((5, 3))
    a[2, 1] = np.nan
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        frechet_distance(a, np.random.default_rng(0).normal(size=(5, 3)))
