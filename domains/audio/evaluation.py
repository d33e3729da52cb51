"""`diffsuite evaluate domain=audio samples=DIR`: quality figures for a folder of sample clips,
each beside the same figure for as many held-out real clips (and for those clips after the
mel -> Griffin-Lim round trip, which shows what the vocoder alone costs).

The held-out real clips carry the same labels as the samples (read from their names) where the
held-out split has enough of each class, else as many clips of each class in turn.

* fd / is: Fréchet distance to the training clips and Inception-style score, both on the
  embedding / predictions of the project's classifier (DiffWave's SC09 protocol);
* accuracy: how often the classifier recognises the class a sample was conditioned on (read
  from ``_class<k>`` in the file name, as ``write`` names them);
* mfcc_fd: Fréchet distance of per-clip MFCC mean and standard deviation to the training clips.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from .classifier import load_classifier
from .features import MelInverter
from .folder import AUDIO_EXTENSIONS
from .metrics import frechet_distance, inception_score, mfcc_stats
from .writing import LABEL_IN_NAME

log = logging.getLogger(__name__)


def _fit_length(f: torch.Tensor, frames: int, silence: float) -> torch.Tensor:
    """(M, T) -> (M, frames): crop, or pad with silence."""
    if f.shape[-1] >= frames:
        return f[:, :frames]
    return torch.nn.functional.pad(f, (0, frames - f.shape[-1]), value=silence)


def balanced_subset(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of `n` clips taken from each class in turn (files sorted by name are grouped by class)."""
    queues = [(labels == c).nonzero().flatten().tolist() for c in labels.unique().tolist()]
    order = [q[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]
    return torch.tensor(order[:n])


def matching_subset(labels: torch.Tensor, wanted: list[int]) -> torch.Tensor | None:
    """Held-out clips with the samples' labels, one for one (so class=3 samples meet real class-3
    clips); None when the held-out split has too few clips of some class."""
    queues = {c: (labels == c).nonzero().flatten().tolist() for c in set(wanted)}
    if any(wanted.count(c) > len(q) for c, q in queues.items()):
        return None
    return torch.tensor([queues[c].pop(0) for c in wanted])


def read_sample_folder(domain, folder: Path) -> tuple[torch.Tensor, list[int], list[str]]:
    """(N, 1, M, frames) features, labels (-1 unknown) and names; unreadable files are skipped."""
    if not folder.exists():
        raise FileNotFoundError(f"samples folder {folder} does not exist")
    files = [folder] if folder.is_file() else sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
    feats, labels, names = [], [], []
    for p in files:
        try:
            f = domain.clip_features(p)
        except ValueError as e:
            log.warning("skipping %s", e)
            continue
        feats.append(_fit_length(f, domain.frames, domain._logmel.silence))
        m = LABEL_IN_NAME.search(p.name)
        labels.append(int(m.group(1)) if m else -1)
        names.append(p.name)
    if len(feats) < 2:
        raise ValueError(f"{folder}: {len(feats)} readable audio file(s); evaluation needs at least 2")
    return torch.stack(feats)[:, None], labels, names


@torch.no_grad()
def _figures(net, x: torch.Tensor, labels: list[int], ref_emb: np.ndarray, ref_mfcc: np.ndarray, spec) -> dict[str, float]:
    emb = net.embedding(x)  # (N, E)
    logits = net.head(emb)  # (N, K)
    logmel = x[:, 0] / spec.scale + spec.offset  # (N, M, T) natural-log mel
    out = {"fd": frechet_distance(emb.numpy(), ref_emb), "is": inception_score(logits),
           "mfcc_fd": frechet_distance(mfcc_stats(logmel).numpy(), ref_mfcc)}
    y = torch.tensor(labels)
    known = y >= 0
    if known.any():
        out["accuracy"] = float((logits.argmax(-1)[known] == y[known]).float().mean())
    return out


def reference_stats(domain, net) -> tuple[np.ndarray, np.ndarray]:
    """Classifier embeddings and MFCC statistics of the training clips (kept on the domain)."""
    if "train" not in domain._reference:
        x, _ = domain.labelled_tensors("train")
        with torch.no_grad():
            emb = torch.cat([net.embedding(x[i:i + 256]) for i in range(0, len(x), 256)]).numpy()
        logmel = x[:, 0] / domain.spec.scale + domain.spec.offset
        domain._reference["train"] = (emb, mfcc_stats(logmel).numpy())
    return domain._reference["train"]


def evaluate_folder(domain, samples: Path, *, reference: bool = True, vocoded_reference: bool = True) -> dict[str, float]:
    t0 = time.time()
    if domain.classifier_path is None:
        raise ValueError("no classifier for this data set: train one with `python -m diffsuite.domains.audio.classifier "
                         "--out PATH data=...` and pass classifier=PATH")
    net, meta = load_classifier(domain.classifier_path, num_classes=domain.num_classes, n_mels=domain.spec.n_mels,
                                feature_spec=domain.spec.as_dict())
    x, labels, names = read_sample_folder(domain, samples)
    ref_emb, ref_mfcc = reference_stats(domain, net)
    out = {"n": float(len(x)), **_figures(net, x, labels, ref_emb, ref_mfcc, domain.spec)}
    out["classifier_test_accuracy"] = float(meta["test_accuracy"])
    if reference:
        xr, yr = domain.labelled_tensors("test")
        pick = matching_subset(yr, labels) if min(labels) >= 0 else None
        pick = balanced_subset(yr, min(len(x), len(xr))) if pick is None else pick
        xr, yr = xr[pick], yr[pick].tolist()
        out.update({f"real_{k}": v for k, v in _figures(net, xr, yr, ref_emb, ref_mfcc, domain.spec).items()})
        if vocoded_reference:
            with torch.no_grad():
                waves = MelInverter(domain.spec, n_iter=domain.griffin_lim_iters)(xr[:, 0])  # (n, samples)
            xv = domain._logmel(waves)[:, None]  # re-analysed, as sample files are
            xv = torch.stack([_fit_length(f, domain.frames, domain._logmel.silence) for f in xv[:, 0]])[:, None]
            out.update({f"vocoded_{k}": v for k, v in _figures(net, xv, yr, ref_emb, ref_mfcc, domain.spec).items()})
    out["seconds"] = round(time.time() - t0, 2)
    return out
