"""Sample-quality figures: Fréchet distance between Gaussian fits of two sets of vectors, the
Inception-style score exp(E_x KL(p(y|x) || p(y))), and MFCC statistics of log-mel clips."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import torchaudio.functional as AF
from torch import Tensor


def gaussian_fit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 2 or len(v) < 2:
        raise ValueError(f"a Gaussian fit needs at least 2 vectors, got shape {v.shape}")
    return v.mean(0), np.cov(v, rowvar=False)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) of Gaussian fits of row vectors."""
    (m1, c1), (m2, c2) = gaussian_fit(a), gaussian_fit(b)
    covmean, _ = scipy.linalg.sqrtm(c1 @ c2, disp=False)
    if not np.isfinite(covmean).all():  # nearly singular product: regularise as in the FID reference
        off = np.eye(len(c1)) * 1e-6
        covmean = scipy.linalg.sqrtm((c1 + off) @ (c2 + off))
    covmean = covmean.real
    return float(((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean))


def inception_score(logits: Tensor) -> float:
    """exp(mean_x KL(p(y|x) || p(y))) with p(y) the mean prediction over the set; 1 .. K."""
    logp = torch.log_softmax(logits.double(), dim=-1)  # (N, K)
    p = logp.exp()
    log_marginal = torch.logsumexp(logp, dim=0) - np.log(len(logp))  # (K,)
    return float(torch.exp((p * (logp - log_marginal)).sum(-1).mean()))


def mfcc_stats(logmel: Tensor, n_mfcc: int = 20) -> Tensor:
    """(N, M, T) natural-log mel -> (N, 2 n_mfcc): per-clip mean and std over time of the MFCCs."""
    dct = AF.create_dct(n_mfcc, logmel.shape[-2], "ortho").to(logmel)  # (M, n_mfcc)
    mfcc = torch.einsum("nmt,mk->nkt", logmel, dct)  # (N, n_mfcc, T)
    return torch.cat([mfcc.mean(-1), mfcc.std(-1)], dim=-1)
