"""Offline figures for a folder of video samples, each beside its real held-out reference.

* Prediction / interpolation samples (some frames given, the true clip stored in the sidecar):
  PSNR and SSIM of the generated frames against the true ones, beside the copy-last-frame
  baseline (each missing frame replaced by the nearest given frame before it, or after it when
  none is before).
* Generated samples: the classifier Frechet distance (the Frechet distance between Gaussians
  fitted to the embeddings of the project's own video classifier; this is not FVD) between the
  samples and held-out real clips, beside the same figure for as many other held-out real clips,
  and KID with its standard error (core.metrics: unbiased at small counts, where the Frechet
  distance is mostly bias and a warning says so); and, on class-conditioned samples, the
  classifier's accuracy at recognising the asked class, beside its accuracy on held-out real clips.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from diffsuite.core.metrics import embedding_distances

from .classifier import embed_and_classify, load_classifier
from .metrics import psnr, ssim
from .writing import VideoSample

if TYPE_CHECKING:
    from .domain import VideoDomain

log = logging.getLogger(__name__)


def _video(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, C) uint8 -> (C, T, H, W) float in [0, 1]."""
    return torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255


def copy_last_frame(truth: np.ndarray, given: list[int]) -> np.ndarray:
    """The baseline prediction: each frame is the nearest given frame at or before it (after it,
    when no given frame comes before)."""
    out = truth.copy()
    for t in range(len(truth)):
        before = [g for g in given if g <= t]
        out[t] = truth[before[-1] if before else min(given)]
    return out


def prediction_figures(samples: list[VideoSample]) -> dict[str, float]:
    rows = []
    for s in samples:
        if s.truth.shape != s.frames.shape:
            log.warning("skipping a prediction sample from %s: truth %s and frames %s differ", s.source,
                        s.truth.shape, s.frames.shape)
            continue
        missing = [t for t in range(len(s.frames)) if t not in s.given]
        gen, real = _video(s.frames[missing]), _video(s.truth[missing])
        base = _video(copy_last_frame(s.truth, s.given)[missing])
        rows.append((psnr(gen, real), ssim(gen, real), psnr(base, real), ssim(base, real)))
    if not rows:
        return {}
    m = np.asarray(rows, dtype=np.float64).mean(0)
    return {"prediction_samples": float(len(rows)), "prediction_psnr": float(m[0]), "prediction_ssim": float(m[1]),
            "copy_last_frame_psnr": float(m[2]), "copy_last_frame_ssim": float(m[3])}


def generation_figures(domain: "VideoDomain", samples: list[VideoSample], reference_clips: int) -> dict[str, float]:
    path = domain.classifier_path()
    if path is None:
        log.warning("no video classifier for data %r (train one with domains.video.classifier.train_classifier "
                    "and pass classifier=PATH); skipping the classifier Frechet distance and accuracy", domain.data)
        return {}
    model = load_classifier(path)
    shapes = Counter(s.frames.shape for s in samples)
    shape = shapes.most_common(1)[0][0]
    if len(shapes) > 1:
        log.warning("samples differ in shape %s; scoring the %d of shape %s", dict(shapes), shapes[shape], shape)
    samples = [s for s in samples if s.frames.shape == shape]
    T, H, W, C = shape
    if C != model.config["channels"]:
        log.warning("classifier %s takes %d channel(s), samples have %d; skipping", path, model.config["channels"], C)
        return {}
    n = len(samples)
    test = domain.dataset("test", frames=T, size=[H, W])
    val = domain.dataset("val", frames=T, size=[H, W])
    k = min(reference_clips, len(test))
    if n < 2 or len(val) < n:
        log.warning("the classifier Frechet distance needs >= 2 samples and as many held-out val clips; got %d, %d",
                    n, len(val))
        return {}
    ref_items = [test[i] for i in range(k)]
    ref_emb, ref_pred = embed_and_classify(model, torch.stack([it["video"] for it in ref_items]))
    ref_labels = torch.tensor([it["label"] for it in ref_items])
    real = torch.stack([val[i]["video"] for i in range(n)])
    real_emb, _ = embed_and_classify(model, real)
    gen_emb, gen_pred = embed_and_classify(model, torch.stack([_video(s.frames) for s in samples]))
    # Frechet distance (biased at small n: a warning says when it is mostly bias) and KID with its
    # standard error (unbiased at any n), for the samples and for as many real held-out clips
    real_figures = embedding_distances(real_emb.numpy(), ref_emb.numpy(), name="classifier_")
    out = {"generated_samples": float(n), **embedding_distances(gen_emb.numpy(), ref_emb.numpy(), name="classifier_"),
           **{f"{k}_real_heldout": v for k, v in real_figures.items()}}
    labelled = ref_labels >= 0
    if labelled.any():
        out["classifier_accuracy_real_heldout"] = (ref_pred[labelled] == ref_labels[labelled]).float().mean().item()
    asked = torch.tensor([s.label for s in samples])
    cond = asked >= 0
    if cond.any():
        out["conditioned_samples"] = float(cond.sum())
        out["classifier_accuracy_conditioned"] = (gen_pred[cond] == asked[cond]).float().mean().item()
    return out


def evaluate_samples(domain: "VideoDomain", samples: Path, *, reference_clips: int = 256) -> dict[str, float]:
    all_samples = domain.read_samples(samples)
    predicted = [s for s in all_samples if s.given and s.truth is not None]
    generated = [s for s in all_samples if not s.given]
    out = {"samples": float(len(all_samples))}
    out.update(prediction_figures(predicted))
    if generated:
        out.update(generation_figures(domain, generated, reference_clips))
    return out
