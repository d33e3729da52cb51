"""A small video classifier trained on the domain's own data. Its penultimate features give the
"classifier Frechet distance" (the Frechet distance of this network's embeddings, in the manner
of FVD but NOT the I3D-based FVD, whose weights cannot be had offline), and its predictions the
class accuracy of conditioned samples.

Shipped weights for the moving digits: ``domains/video/pretrained/classifier_moving_digits.safetensors``,
trained by ``python -m diffsuite.domains.video.classifier`` (the command is stored in the file's metadata).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffsuite.core import classifiers as core_classifiers
from diffsuite.core.noise import check_finite


class VideoClassifier(nn.Module):
    """(B, C, T, H, W) in [0, 1] -> logits (B, classes); ``embed`` gives the pooled features (B, width*4)."""

    def __init__(self, *, channels: int = 1, classes: int = 10, width: int = 16):
        super().__init__()
        self.config = {"channels": channels, "classes": classes, "width": width}
        w = width
        self.features = nn.Sequential(
            nn.Conv3d(channels, w, (1, 3, 3), padding=(0, 1, 1)), nn.GELU(),
            nn.Conv3d(w, 2 * w, 3, stride=(1, 2, 2), padding=1), nn.GELU(),
            nn.Conv3d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv3d(4 * w, 4 * w, 3, padding=1),
        )
        self.head = nn.Linear(4 * w, classes)

    def embed(self, video: Tensor) -> Tensor:
        f = self.features(video * 2 - 1)  # (B, 4w, T', H', W')
        return f.amax(dim=(2, 3, 4))  # (B, 4w): max over space-time, so where the object is does not matter

    def forward(self, video: Tensor) -> Tensor:
        return self.head(self.embed(video))  # (B, classes)


def save_classifier(model: VideoClassifier, path: Path, info: dict) -> Path:
    """core.classifiers' format: kind video_classifier, the constructor settings, the training facts."""
    return core_classifiers.save_classifier(path, model.state_dict(),
                                            {"kind": "video_classifier", "config": model.config, "info": info})


def load_classifier(path: Path) -> VideoClassifier:
    """A video classifier file (either format); any other file is one error saying what it is."""
    from safetensors.torch import load_file

    meta = core_classifiers.read_classifier_meta(path, "video_classifier",
                                                 hint="train one with `python -m diffsuite.domains.video.classifier`")
    model = VideoClassifier(**meta["config"])
    model.load_state_dict(load_file(str(Path(path).expanduser())))
    return model.eval()


@torch.no_grad()
def embed_and_classify(model: VideoClassifier, videos: Tensor, batch: int = 64) -> tuple[Tensor, Tensor]:
    """(N, C, T, H, W) -> (embeddings (N, F), predicted class (N,))."""
    embs, preds = [], []
    for chunk in videos.split(batch):
        e = model.embed(chunk.float())
        embs.append(e)
        preds.append(model.head(e).argmax(-1))
    return torch.cat(embs), torch.cat(preds)


def train_classifier(train_set, val_set, *, channels: int, classes: int, steps: int = 400, batch_size: int = 32,
                     lr: float = 2e-3, seed: int = 0, log_every: int = 50) -> tuple[VideoClassifier, dict]:
    """Adam on cross-entropy over random clips of `train_set`; returns the model and val accuracy."""
    torch.manual_seed(seed)
    model = VideoClassifier(channels=channels, classes=classes)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(len(train_set), (batch_size,), generator=g).tolist()
        items = [train_set[i] for i in idx]
        x = torch.stack([it["video"] for it in items])
        y = torch.tensor([it["label"] for it in items])
        loss = F.cross_entropy(model(x), y)
        check_finite(loss, f"classifier training loss at step {step}")
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log_every and step % log_every == 0:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    items = [val_set[i] for i in range(len(val_set))]
    _, pred = embed_and_classify(model, torch.stack([it["video"] for it in items]))
    acc = (pred == torch.tensor([it["label"] for it in items])).float().mean().item()
    return model, {"val_accuracy": acc, "steps": steps, "batch_size": batch_size, "seconds": round(time.time() - t0)}


def main() -> None:
    """Train and ship the moving-digits classifier (MNIST digits, 8-frame clips: 800 steps, 98.2% on 500
    validation clips; about 5 CPU-minutes, 30 min wall on the shared, heavily loaded 2 cores)."""
    import argparse

    from .moving_digits import NUM_CLASSES, MovingDigits

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "pretrained" / "classifier_moving_digits.safetensors")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=32)
    a = p.parse_args()
    torch.set_num_threads(1)
    train = MovingDigits(split="train", clips=100000, frames=a.frames, size=a.size)
    val = MovingDigits(split="val", clips=500, frames=a.frames, size=a.size)
    model, info = train_classifier(train, val, channels=1, classes=NUM_CLASSES, steps=a.steps)
    info["command"] = f"python -m diffsuite.domains.video.classifier --steps {a.steps} --frames {a.frames} --size {a.size}"
    print(json.dumps(info))
    print(save_classifier(model, a.out, info))


if __name__ == "__main__":
    main()
