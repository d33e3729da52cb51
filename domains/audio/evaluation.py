"""`diffsuite evaluate domain=audio samples=DIR`: quality figures for a folder of sample clips
(DiffWave's SC09 protocol, Kong et al. 2021, with the project's own digit classifier), each beside
the same figure for held-out real clips and for those clips after the vocoder round trip (what
the vocoder alone costs).

* fd: Fréchet distance of the classifier's embedding to the training clips' (lower is better);
* is / mis: Inception score and modified Inception score of its predictions (higher is better);
* am: AM score (lower is better);
* accuracy: how often the classifier recognises the class a sample was conditioned on (read
  from ``_class<k>`` in the file name, as ``write`` names them);
* mfcc_fd: Fréchet distance of per-clip MFCC mean and standard deviation to the training clips.

The training-clip statistics come from the classifier file when it carries them (the shipped
FSDD classifier does: a user's clone has no FSDD), else from the domain's training split. The
real and vocoded-real lines are computed from the held-out split when the data is there, with
the same labels as the samples where it has enough of each class; else the lines stored in the
classifier file are reported (``real_n`` says over how many clips). Fréchet distances grow as
the set shrinks: compare figures over the same number of clips.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from .classifier import load_classifier
from .folder import AUDIO_EXTENSIONS
from .metrics import am_score, frechet_from_stats, gaussian_stats, inception_score, mfcc_stats, modified_inception_score
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
def embed(net, x: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(embeddings (N, E), logits (N, K)) of features (N, 1, M, T)."""
    emb = torch.cat([net.embedding(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    return emb, net.head(emb)


def figures(net, x: torch.Tensor, labels: list[int], ref: dict, spec) -> dict[str, float]:
    """The protocol's figures for one set of clips (N, 1, M, T) against reference statistics."""
    emb, logits = embed(net, x)
    logmel = x[:, 0] / spec.scale + spec.offset  # (N, M, T) natural-log mel
    out = {"fd": frechet_from_stats(*gaussian_stats(emb.double().numpy()), ref["emb_mu"], ref["emb_cov"]),
           "is": inception_score(logits), "mis": modified_inception_score(logits),
           "am": am_score(logits, ref.get("marginal")),
           "mfcc_fd": frechet_from_stats(*gaussian_stats(mfcc_stats(logmel).double().numpy()), ref["mfcc_mu"], ref["mfcc_cov"])}
    y = torch.tensor(labels)
    known = y >= 0
    if known.any():
        out["accuracy"] = float((logits.argmax(-1)[known] == y[known]).float().mean())
    return out


def compute_reference(domain, net) -> dict:
    """Statistics of the training clips: embedding and MFCC-statistics mean and covariance, and
    the class frequencies (the AM score's reference marginal)."""
    x, y = domain.labelled_tensors("train")
    emb, _ = embed(net, x)
    logmel = x[:, 0] / domain.spec.scale + domain.spec.offset
    emb_mu, emb_cov = gaussian_stats(emb.double().numpy())
    mfcc_mu, mfcc_cov = gaussian_stats(mfcc_stats(logmel).double().numpy())
    marginal = torch.bincount(y[y >= 0], minlength=domain.num_classes).double()
    return {"emb_mu": emb_mu, "emb_cov": emb_cov, "mfcc_mu": mfcc_mu, "mfcc_cov": mfcc_cov, "marginal": marginal,
            "train_clips": len(x)}


def reference_stats(domain, net, meta: dict | None = None) -> dict:
    """The training-clip statistics: stored in the classifier file, else computed (kept on the domain)."""
    if "train" not in domain._reference:
        stored = (meta or {}).get("_reference")
        domain._reference["train"] = stored if stored is not None else compute_reference(domain, net)
    return domain._reference["train"]


def has_data(domain) -> bool:
    return domain.synthetic or Path(domain.data).is_dir()


def held_out_lines(domain, net, ref: dict, labels: list[int] | None, n: int | None, *,
                   vocoded: bool = True) -> dict[str, float]:
    """Figures of held-out real clips (real_*) and of the same clips through the vocoder
    (vocoded_*): `n` of them with `labels` where the split has enough of each class, else
    balanced over classes (n=None: all)."""
    xr, yr = domain.labelled_tensors("test")
    pick = matching_subset(yr, labels) if labels and min(labels) >= 0 else None
    pick = balanced_subset(yr, min(n or len(xr), len(xr))) if pick is None else pick
    xr, yr = xr[pick], yr[pick].tolist()
    out = {"real_n": float(len(xr))}
    out.update({f"real_{k}": v for k, v in figures(net, xr, yr, ref, domain.spec).items()})
    if vocoded:
        feats, _ = domain.split_features("test")
        silence = domain._logmel.silence
        xv = []
        for i in pick.tolist():  # each clip at its own length (no vocoding of padding), re-analysed as sample files are
            f = feats[i][:, :domain.frames]
            wave = domain.vocode(f[None])[0]
            xv.append(_fit_length(domain._logmel(wave), domain.frames, silence))
        out.update({f"vocoded_{k}": v for k, v in figures(net, torch.stack(xv)[:, None], yr, ref, domain.spec).items()})
    return out


def evaluate_folder(domain, samples: Path, *, reference: bool = True, vocoded_reference: bool = True) -> dict[str, float]:
    t0 = time.time()
    if domain.classifier_path is None:
        raise ValueError("no classifier for this data set: train one with `python -m diffsuite.domains.audio.classifier "
                         "--out PATH data=...` and pass classifier=PATH")
    net, meta = load_classifier(domain.classifier_path, num_classes=domain.num_classes, n_mels=domain.spec.n_mels,
                                feature_spec=domain.spec.as_dict())
    x, labels, names = read_sample_folder(domain, samples)
    ref = reference_stats(domain, net, meta)
    out = {"n": float(len(x)), **figures(net, x, labels, ref, domain.spec)}
    out["classifier_test_accuracy"] = float(meta["test_accuracy"])
    if reference:
        if has_data(domain):
            out.update(held_out_lines(domain, net, ref, labels, len(x), vocoded=vocoded_reference))
        elif meta.get("reference_lines"):  # a clone without the data: the lines measured when the classifier was made
            stored = meta["reference_lines"]
            out.update({k: float(v) for k, v in stored.items() if vocoded_reference or not k.startswith("vocoded_")})
        else:
            log.warning("%s is not here and the classifier stores no reference lines: no real / vocoded lines",
                        domain.data)
    out["seconds"] = round(time.time() - t0, 2)
    return out
