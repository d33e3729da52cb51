"""Distances between two sets of embeddings that every domain shares.

* ``frechet_distance``: the Frechet distance between Gaussians fitted to the two sets (the FID
  formula). Its plug-in estimate is biased upwards, and the bias grows as the number of
  embeddings falls towards their dimension: at 10 embeddings in 64 dimensions it is mostly bias
  (real held-out clips and samples then score alike). Compare it only at one N.
* ``kernel_distance``: the kernel distance (KID, Binkowski et al. 2018): the unbiased estimate of
  the squared MMD with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, which is unbiased at
  any N >= 2, with its jackknife standard error, so small sample counts give a wide error bar
  instead of a misleading figure.
* ``embedding_distances``: both, as an evaluation reports them, with a warning when the Frechet
  distance is mostly small-sample bias.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import linalg

from .errors import UserError

log = logging.getLogger(__name__)


def _pair(a: np.ndarray, b: np.ndarray, least: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"embeddings must be (N, D) with one D, got {a.shape} and {b.shape}")
    if len(a) < least or len(b) < least:
        raise UserError(f"{what} needs at least {least} embeddings per set, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise FloatingPointError(f"{what}: the embeddings hold NaN or inf")
    return a, b


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to two sets
    of embeddings (N, D). Needs N >= 2 in each set; small sets give a biased (larger) figure, so
    compare only figures computed with the same N (or use ``kernel_distance``)."""
    a, b = _pair(a, b, 2, "a Frechet distance")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # Tr (S_a S_b)^(1/2) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric PSD
    # matrix: two eigh calls, no general matrix square root (scipy's sqrtm(disp=) is gone in 1.18).
    w_a, v_a = linalg.eigh(s_a)
    root_a = (v_a * np.sqrt(np.clip(w_a, 0.0, None))) @ v_a.T
    inner = root_a @ s_b @ root_a
    w = linalg.eigvalsh((inner + inner.T) / 2)
    trace_covmean = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    d = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * trace_covmean)
    return max(d, 0.0)


def kernel_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(KID, its standard error) between two sets of embeddings (N, D), N >= 3 each.

    KID is the unbiased U-statistic of the squared MMD with k(x, y) = (x.y / D + 1)^3: its
    expectation is the population value at any N (it can come out negative when the sets are
    alike). The standard error is the two-sample jackknife (leave one embedding of either set
    out), from the kernel matrices in O(N^2)."""
    a, b = _pair(a, b, 3, "the kernel distance (KID)")
    m, n, d = len(a), len(b), a.shape[1]
    kaa = (a @ a.T / d + 1.0) ** 3
    kbb = (b @ b.T / d + 1.0) ** 3
    kab = (a @ b.T / d + 1.0) ** 3
    np.fill_diagonal(kaa, 0.0)
    np.fill_diagonal(kbb, 0.0)
    saa, sbb, sab = kaa.sum(), kbb.sum(), kab.sum()
    kid = saa / (m * (m - 1)) + sbb / (n * (n - 1)) - 2 * sab / (m * n)
    # leave a_i out: its row leaves the a-a sum twice (symmetric) and the a-b sum once
    drop_a = ((saa - 2 * kaa.sum(1)) / ((m - 1) * (m - 2)) + sbb / (n * (n - 1))
              - 2 * (sab - kab.sum(1)) / ((m - 1) * n))
    drop_b = (saa / (m * (m - 1)) + (sbb - 2 * kbb.sum(1)) / ((n - 1) * (n - 2))
              - 2 * (sab - kab.sum(0)) / (m * (n - 1)))
    var = (m - 1) / m * ((drop_a - drop_a.mean()) ** 2).sum() + (n - 1) / n * ((drop_b - drop_b.mean()) ** 2).sum()
    return float(kid), float(np.sqrt(var))


def frechet_is_mostly_bias(n: int, dim: int) -> bool:
    """True when N embeddings are too few for a Frechet distance in `dim` dimensions to mean
    much: fewer than twice the dimension (the covariance then has rank N - 1 < dim, or is barely
    full rank, and the plug-in bias dominates)."""
    return n < 2 * dim


def embedding_distances(samples: np.ndarray, reference: np.ndarray, *, name: str = "") -> dict[str, float]:
    """``{name}frechet_distance``, ``{name}kid`` and ``{name}kid_std`` of samples against a
    reference set; warns (naming the counts) when the Frechet distance is mostly bias."""
    samples, reference = np.asarray(samples), np.asarray(reference)
    out = {f"{name}frechet_distance": frechet_distance(samples, reference)}
    n, dim = min(len(samples), len(reference)), samples.shape[1]
    if frechet_is_mostly_bias(n, dim):
        log.warning("%sfrechet_distance from %d embeddings in %d dimensions is mostly small-sample bias "
                    "(it needs well over %d); compare %skid, unbiased at any count, and its standard error",
                    name, n, dim, 2 * dim, name)
    if n >= 3:
        out[f"{name}kid"], out[f"{name}kid_std"] = kernel_distance(samples, reference)
    return out
