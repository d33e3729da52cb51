"""The project's own spectrogram classifier: its penultimate layer is the embedding for the
Fréchet distance and the Inception-style score (the protocol DiffWave used on SC09), its
predictions give the class accuracy of conditioned samples.

Train one on a domain's data with ``python -m diffsuite.domains.audio.classifier --out PATH [domain overrides]``;
the weights and the settings that built them go in one safetensors file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from safetensors.torch import load_file, safe_open
from torch import Tensor, nn

from diffsuite.core.classifiers import check_classifier_meta, read_classifier_meta
from diffsuite.core.errors import UserError

from .features import FeatureSpec


class SpectrogramClassifier(nn.Module):
    """(B, 1, M, T) normalised log-mel -> logits (B, K); any T >= 8 (pooled over time)."""

    def __init__(self, *, num_classes: int, n_mels: int, width: int = 64, emb_dim: int = 64):
        super().__init__()
        self.num_classes, self.n_mels = num_classes, n_mels
        layers, c = [], n_mels
        for stride in (1, 2, 2):
            layers += [nn.Conv1d(c, width, 5, stride=stride, padding=2), nn.GroupNorm(8, width), nn.SiLU()]
            c = width
        self.body = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Linear(2 * width, emb_dim), nn.SiLU())
        self.head = nn.Linear(emb_dim, num_classes)

    def embedding(self, x: Tensor) -> Tensor:
        if x.shape[2] != self.n_mels:
            raise ValueError(f"the classifier was trained on {self.n_mels} mel bins, got {x.shape[2]}")
        h = self.body(rearrange(x, "b 1 m t -> b m t"))  # (B, W, T/4)
        pooled = torch.cat([reduce(h, "b w t -> b w", "mean"), reduce(h, "b w t -> b w", "max")], dim=1)  # (B, 2W)
        return self.embed(pooled)  # (B, E)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embedding(x))  # (B, K)


def classifier_meta(path: str | Path) -> dict:
    """The settings stored with a classifier export; a feature_spec written before a field existed
    gets that field's default (the features it was trained on did not have it either)."""
    path = Path(path)
    meta = read_classifier_meta(path, "audio_classifier",
                                hint=f"train one with `python -m diffsuite.domains.audio.classifier --out {path}`")
    if isinstance(meta.get("feature_spec"), dict):
        meta["feature_spec"] = {**FeatureSpec().as_dict(), **meta["feature_spec"]}
    return meta


def load_classifier(path: str | Path, *, num_classes: int, n_mels: int, feature_spec: dict) -> tuple[SpectrogramClassifier, dict]:
    path = Path(path)
    meta = classifier_meta(path)
    if meta["num_classes"] != num_classes or meta["n_mels"] != n_mels:
        raise UserError(f"{path} classifies {meta['num_classes']} classes on {meta['n_mels']} mel bins; "
                        f"this domain has {num_classes} classes and {n_mels} mel bins")
    check_classifier_meta(path, meta, {"feature_spec": feature_spec})
    net = SpectrogramClassifier(num_classes=num_classes, n_mels=n_mels, width=meta["width"], emb_dim=meta["emb_dim"])
    tensors = load_file(str(path))
    net.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(REFERENCE)})
    stored = {k[len(REFERENCE):]: v for k, v in tensors.items() if k.startswith(REFERENCE)}
    if stored:  # training-clip statistics shipped with the classifier (evaluation without the data)
        meta["_reference"] = {k: (v.double() if k == "marginal" else v.double().numpy()) for k, v in stored.items()}
        meta["_reference"]["train_clips"] = meta.get("train_clips")
    return net.eval(), meta


CONFIGS = Path(__file__).resolve().parents[2] / "configs"
REFERENCE = "reference."  # prefix of the training-clip statistics stored beside the weights


def _augment(x: Tensor, frames: int, generator: torch.Generator, silence: float | None = None) -> Tensor:
    """A random crop of `frames`, a random delay of up to 1/8 of them (silence shifted in; with
    `silence` given) and a random gain in log space."""
    B, _, M, T = x.shape
    if T > frames:
        start = torch.randint(0, T - frames + 1, (1,), generator=generator).item()
        x = x[..., start:start + frames]
    if silence is not None:
        delay = torch.randint(0, max(1, frames // 8) + 1, (1,), generator=generator).item()
        if delay:
            x = torch.cat([torch.full_like(x[..., :delay], silence), x[..., :-delay]], dim=-1)
    gain = 0.2 * torch.randn(B, 1, 1, 1, generator=generator)
    return x + gain


@torch.no_grad()
def accuracy(net: SpectrogramClassifier, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    pred = torch.cat([net(x[i:i + batch_size]).argmax(-1) for i in range(0, len(x), batch_size)])
    return float((pred == y).float().mean())


def train_classifier(domain, out: str | Path, *, steps: int = 400, batch_size: int = 64, lr: float = 2e-3,
                     width: int = 64, emb_dim: int = 64, seed: int = 0, store_reference: bool = False,
                     reference_lines: bool = False) -> dict:
    """Train on the domain's train split, report accuracy on its test split, export the weights.
    store_reference: also store the training clips' statistics (embedding and MFCC mean and
    covariance, class frequencies) so that evaluation needs no data; reference_lines: also store
    the figures of all held-out clips, real and through the domain's vocoder."""
    from diffsuite.core.training.export import export_weights  # the trainer package is heavy to import; only needed here

    if Path(out).exists():
        raise FileExistsError(f"{out} exists; classifier weights are never overwritten")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    train, test = domain.labelled_tensors("train"), domain.labelled_tensors("test")
    if domain.num_classes < 2:
        raise ValueError("a classifier needs at least 2 classes; this data set is unlabelled")
    net = SpectrogramClassifier(num_classes=domain.num_classes, n_mels=domain.spec.n_mels, width=width, emb_dim=emb_dim)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    x_all, y_all = train
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(x_all), (batch_size,), generator=g)
        frames = max(16, x_all.shape[-1] * 3 // 4)
        loss = F.cross_entropy(net(_augment(x_all[idx], frames, g, domain._logmel.silence)), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"classifier step {step} loss {loss.item():.4f}", flush=True)
    net.eval()
    acc = accuracy(net, *test)
    meta = {"kind": "audio_classifier", "num_classes": domain.num_classes, "n_mels": domain.spec.n_mels,
            "width": width, "emb_dim": emb_dim, "feature_spec": domain.spec.as_dict(), "classes": list(domain.classes),
            "test_accuracy": acc, "test_clips": len(test[0]), "steps": steps, "train_seconds": round(time.time() - t0, 1),
            "seed": seed}
    tensors = dict(net.state_dict())
    if store_reference or reference_lines:
        from .evaluation import compute_reference, held_out_lines

        ref = compute_reference(domain, net)
        meta["train_clips"] = ref["train_clips"]
        tensors.update({REFERENCE + k: torch.as_tensor(v, dtype=torch.float64) for k, v in ref.items() if k != "train_clips"})
        if reference_lines:
            lines = held_out_lines(domain, net, ref, None, None, vocoded=True)
            meta["reference_lines"] = lines
            meta["reference_vocoder"] = domain.vocoder
            print("held-out lines: " + ", ".join(f"{k} {v:.3f}" for k, v in lines.items()), flush=True)
    export_weights(out, tensors, meta)
    print(f"classifier test accuracy {acc:.4f} on {len(test[0])} held-out clips; written to {out}")
    return meta


def main(argv: list[str] | None = None) -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="safetensors file to write (never overwritten)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default=str(CONFIGS / "domain/audio.yaml"))
    p.add_argument("--experiment", default=None,
                   help="also apply the domain settings of configs/experiment/NAME.yaml (e.g. audio_fsdd)")
    p.add_argument("--store-reference", action="store_true",
                   help="store the training clips' statistics with the weights (evaluation without the data)")
    p.add_argument("--reference-lines", action="store_true",
                   help="also store the figures of all held-out clips, real and vocoded")
    p.add_argument("overrides", nargs="*", help="domain constructor overrides, e.g. data=/path/to/clips")
    a = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    root = OmegaConf.create({"domain": OmegaConf.load(a.config).domain})
    if a.experiment:
        path = CONFIGS / "experiment" / f"{a.experiment}.yaml"
        if not path.is_file():
            raise SystemExit(f"--experiment {a.experiment}: no {path}")
        exp = OmegaConf.load(path)
        root = OmegaConf.merge(root, {k: exp[k] for k in ("domain", "data") if k in exp})  # ${data} resolves here
    root.domain = OmegaConf.merge(root.domain, OmegaConf.from_dotlist(a.overrides))
    domain = instantiate(root.domain, classifier=None)
    train_classifier(domain, a.out, steps=a.steps, batch_size=a.batch_size, seed=a.seed,
                     store_reference=a.store_reference, reference_lines=a.reference_lines)


if __name__ == "__main__":
    main()
