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


def load_classifier(path: str | Path, *, num_classes: int, n_mels: int, feature_spec: dict) -> tuple[SpectrogramClassifier, dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no classifier weights at {path}; train one with `python -m diffsuite.domains.audio.classifier --out {path}`")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("diffsuite_config", "{}"))
    if meta.get("kind") != "audio_classifier":
        raise ValueError(f"{path} is not an audio classifier export")
    if meta["num_classes"] != num_classes or meta["n_mels"] != n_mels:
        raise ValueError(f"{path} classifies {meta['num_classes']} classes on {meta['n_mels']} mel bins; "
                         f"this domain has {num_classes} classes and {n_mels} mel bins")
    if meta.get("feature_spec") != feature_spec:
        raise ValueError(f"{path} was trained on other features ({meta.get('feature_spec')}), not {feature_spec}")
    net = SpectrogramClassifier(num_classes=num_classes, n_mels=n_mels, width=meta["width"], emb_dim=meta["emb_dim"])
    net.load_state_dict(load_file(str(path)))
    return net.eval(), meta


def _augment(x: Tensor, frames: int, generator: torch.Generator) -> Tensor:
    """A random crop of `frames` (padded with the clip's own minimum) and a random gain in log space."""
    B, _, M, T = x.shape
    if T > frames:
        start = torch.randint(0, T - frames + 1, (1,), generator=generator).item()
        x = x[..., start:start + frames]
    gain = 0.2 * torch.randn(B, 1, 1, 1, generator=generator)
    return x + gain


@torch.no_grad()
def accuracy(net: SpectrogramClassifier, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    pred = torch.cat([net(x[i:i + batch_size]).argmax(-1) for i in range(0, len(x), batch_size)])
    return float((pred == y).float().mean())


def train_classifier(domain, out: str | Path, *, steps: int = 400, batch_size: int = 64, lr: float = 2e-3,
                     width: int = 64, emb_dim: int = 64, seed: int = 0) -> dict:
    """Train on the domain's train split, report accuracy on its test split, export the weights."""
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
        loss = F.cross_entropy(net(_augment(x_all[idx], frames, g)), y_all[idx])
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
            "test_accuracy": acc, "test_clips": len(test[0]), "steps": steps, "train_seconds": round(time.time() - t0, 1)}
    export_weights(out, net.state_dict(), meta)
    print(f"classifier test accuracy {acc:.4f} on {len(test[0])} held-out clips; written to {out}")
    return meta


def main(argv: list[str] | None = None) -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="safetensors file to write (never overwritten)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--config", default=str(Path(__file__).resolve().parents[2] / "configs/domain/audio.yaml"))
    p.add_argument("overrides", nargs="*", help="domain constructor overrides, e.g. data=/path/to/clips")
    a = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = OmegaConf.load(a.config).domain
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(a.overrides))
    domain = instantiate(cfg, classifier=None)
    train_classifier(domain, a.out, steps=a.steps, batch_size=a.batch_size)


if __name__ == "__main__":
    main()
