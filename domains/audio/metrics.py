"""Sample-quality figures: Fréchet distance between Gaussian fits of two sets of vectors, the
Inception-style score exp(E_x KL(p(y|x) || p(y))), and MFCC statistics of log-mel clips."""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF
from torch import Tensor

from diffsuite.core.metrics import frechet_distance  # noqa: F401  (re-exported: one implementation for every domain)


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


def modified_inception_score(logits: Tensor) -> float:
    """exp(mean over pairs i, j of KL(p(y|x_i) || p(y|x_j))) (Gurumurthy et al. 2017): high when each
    clip is confidently one class and clips of a class differ little in what they predict."""
    logp = torch.log_softmax(logits.double(), dim=-1)  # (N, K)
    p = logp.exp()
    # KL(p_i || p_j) = sum_k p_ik (log p_ik - log p_jk), for all pairs at once
    kl = (p * logp).sum(-1, keepdim=True) - p @ logp.T  # (N, N)
    return float(torch.exp(kl.mean()))


def am_score(logits: Tensor, reference_marginal: Tensor | None = None) -> float:
    """AM score (Zhou et al. 2018): KL(p_ref(y) || p(y)) + mean_x H(p(y|x)); lower is better, 0 for
    confident predictions whose classes are spread as in the reference (uniform when not given)."""
    logp = torch.log_softmax(logits.double(), dim=-1)  # (N, K)
    p = logp.exp()
    marginal = p.mean(0).clamp_min(1e-12)
    ref = (torch.full_like(marginal, 1.0 / len(marginal)) if reference_marginal is None
           else reference_marginal.double() / reference_marginal.double().sum())
    kl = (ref * (ref.clamp_min(1e-12).log() - marginal.log())).sum()
    entropy = -(p * logp).sum(-1).mean()
    return float(kl + entropy)


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) of a set of vectors (N, D), N >= 2."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"statistics need a set of at least 2 vectors (N, D), got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_from_stats(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """The Fréchet distance between two Gaussians given by their statistics (the shipped reference
    statistics stand in for the real clips a user's clone does not have)."""
    from scipy import linalg

    w_a, v_a = linalg.eigh(np.asarray(cov_a, dtype=np.float64))
    root_a = (v_a * np.sqrt(np.clip(w_a, 0.0, None))) @ v_a.T
    inner = root_a @ np.asarray(cov_b, dtype=np.float64) @ root_a
    w = linalg.eigvalsh((inner + inner.T) / 2)
    if not np.isfinite(w).all():
        raise FloatingPointError("non-finite covariance in the Frechet distance: the embeddings hold NaN or inf")
    d = float(((np.asarray(mu_a) - np.asarray(mu_b)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
              - 2 * np.sqrt(np.clip(w, 0.0, None)).sum())
    return max(d, 0.0)
