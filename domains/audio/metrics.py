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
