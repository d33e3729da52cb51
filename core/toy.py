"""A two-dimensional Gaussian mixture whose exact denoiser is known in closed form, and a toy
domain on it. The tests measure samplers against the exact answer; the demo trains on it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset

from .domain import Batch, ConfigFromInit, gaussian_noise_fn
from .naming import free_stem
from .nn import ClassEmbedding, NoiseEmbedding
from .options import check_known, parse_classes


class GaussianMixture:
    """sum_k w_k N(mu_k, s_k^2 I). Noised by sigma it stays a mixture: N(mu_k, (s_k^2 + sigma^2) I)."""

    def __init__(self, means: Tensor, stds: Tensor, weights: Tensor):
        self.means = means.double()  # (K, D)
        self.stds = stds.double()  # (K,)
        self.weights = weights.double() / weights.sum()  # (K,)

    @classmethod
    def ring(cls, k: int = 8, radius: float = 0.7, std: float = 0.08) -> "GaussianMixture":
        angle = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
        means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
        stds = std * (1 + 0.5 * (torch.arange(k) % 2))  # alternate widths: not all modes alike
        weights = 1 + torch.arange(k, dtype=torch.float64) % 3  # unequal weights
        return cls(means, stds, weights)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None, component: int | None = None) -> tuple[Tensor, Tensor]:
        if component is None:
            k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        else:
            k = torch.full((n,), component, dtype=torch.long)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * eps, k

    def _log_resp(self, x: Tensor, var: Tensor) -> Tensor:  # (B, K) joint log densities
        d2 = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)  # (B, K)
        return self.weights.log()[None] - 0.5 * d2 / var - 0.5 * self.dim * (2 * math.pi * var).log()

    def log_prob(self, x: Tensor, sigma: float = 0.0) -> Tensor:
        var = self.stds[None] ** 2 + sigma**2  # (1, K)
        return torch.logsumexp(self._log_resp(x.double(), var), dim=1)

    def denoise(self, x: Tensor, sigma: Tensor | float, component: Tensor | None = None) -> Tensor:
        """E[x0 | x] exactly; with `component` given, the posterior mean within that component."""
        x64 = x.double()
        s2 = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1) ** 2  # (B or 1, 1)
        var = self.stds[None] ** 2 + s2  # (B, K)
        resp = torch.softmax(self._log_resp(x64, var), dim=1)  # (B, K)
        if component is not None:
            keep = component >= 0
            onehot = torch.nn.functional.one_hot(component.clamp_min(0), len(self.weights)).double()
            resp = torch.where(keep[:, None], onehot, resp)
        shrink = (self.stds[None] ** 2 / var)[..., None]  # (B, K, 1)
        comp_mean = self.means[None] + shrink * (x64[:, None, :] - self.means[None])  # (B, K, D)
        return (resp[..., None] * comp_mean).sum(1).to(x.dtype)


class ToyNet(nn.Module):
    """MLP denoiser for 2-D points: noise-level and class embeddings added to the input features."""

    def __init__(self, *, dim: int = 2, width: int = 128, depth: int = 3, num_classes: int = 8):
        super().__init__()
        self.inp = nn.Linear(dim, width)
        self.noise = NoiseEmbedding(width)
        self.label = ClassEmbedding(num_classes, width)
        self.body = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(width, width)) for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(width, dim))

    def repeated_blocks(self) -> list[nn.Module]:
        """The hidden layers, for activation checkpointing, compile and FSDP (``find_blocks``)."""
        return list(self.body)

    def forward(self, x: Tensor, c_noise: Tensor, cond: dict[str, Tensor] | None = None) -> Tensor:
        h = self.inp(x) + self.noise(c_noise)  # (B, W)
        if cond is not None and "class" in cond:
            h = h + self.label(cond["class"], cond.get("drop"))
        for layer in self.body:
            h = h + layer(h)
        return self.out(h)  # (B, D)


TOY_PRESETS = {"tiny": dict(width=32, depth=2), "S": dict(width=128, depth=3), "B": dict(width=256, depth=4)}


class ToyDomain(ConfigFromInit):
    """Points from an 8-mode ring mixture, labelled by mode; a domain with nothing to download."""

    name = "toy"
    pretrained = None

    def __init__(self, *, sigma_data: float = 0.5, preset: str = "S", train_size: int = 20000, seed: int = 0):
        if preset not in TOY_PRESETS:
            raise ValueError(f"unknown toy preset {preset!r}; choose one of {', '.join(TOY_PRESETS)}")
        self.sigma_data, self.preset, self.train_size, self.seed = sigma_data, preset, train_size, seed
        self.mixture = GaussianMixture.ring()

    def dataset(self, split: str) -> Dataset:
        offset = {"train": 0, "val": 1, "test": 2}
        if split not in offset:
            raise ValueError(f"unknown split {split!r}; expected train, val or test")
        g = torch.Generator().manual_seed(self.seed * 10 + offset[split])
        x, k = self.mixture.sample(self.train_size if split == "train" else 5000, g)
        return TensorDataset(x.float(), k)

    def collate(self, items: list[tuple[Tensor, Tensor]]) -> Batch:
        x = torch.stack([i[0] for i in items])
        return Batch(x=x, cond={"class": torch.stack([i[1] for i in items])})

    def network(self) -> nn.Module:
        return ToyNet(**TOY_PRESETS[self.preset], num_classes=len(self.mixture.weights))

    def noise_fn(self, batch: Batch, generator: torch.Generator | None = None):
        return gaussian_noise_fn(generator)

    def sampling_batch(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> Batch:
        check_known(options, ("class",), "toy sampling")
        labels = parse_classes(options.get("class"), len(self.mixture.weights), n)  # None: unconditional
        return Batch(x=torch.zeros(n, 2), cond={"class": torch.tensor([-1] * n if labels is None else labels)})

    def decode(self, x: Tensor, batch: Batch) -> list[np.ndarray]:
        return list(x.detach().cpu().double().numpy())

    def write(self, samples: list[np.ndarray], out_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = free_stem(out_dir, "samples", (".npz", ".png"))  # samples, or samples_1, ... (core.naming)
        npz, png = out_dir / f"{stem}.npz", out_dir / f"{stem}.png"
        pts = np.stack(samples)
        with open(npz, "xb") as f:  # "x": fail rather than overwrite
            np.savez(f, samples=pts)
        data = self.dataset("test").tensors[0][: len(pts) * 4].numpy()
        fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
        ax.scatter(data[:, 0], data[:, 1], s=3, alpha=0.4, label="data (test split)")
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.6, label="samples")
        ax.set_aspect("equal")
        ax.legend(loc="upper right")
        ax.set_title(f"toy: {len(pts)} samples against data")
        with open(png, "xb") as f:
            fig.savefig(f, format="png", bbox_inches="tight")
        plt.close(fig)
        return [npz, png]

    def evaluate(self, samples: Path, **options: Any) -> dict[str, float]:
        path = Path(samples)
        if path.is_dir():
            path = path / "samples.npz"
        try:
            pts = torch.from_numpy(np.load(path)["samples"]).double()
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: not a toy samples file (npz with 'samples'): {e}") from e
        test = self.dataset("test").tensors[0].double()
        ref = self.dataset("val").tensors[0].double()[: len(pts)]
        return {
            "sliced_wasserstein": sliced_wasserstein(pts, test),
            "sliced_wasserstein_real": sliced_wasserstein(ref, test),
            "log_likelihood": self.mixture.log_prob(pts).mean().item(),
            "log_likelihood_real": self.mixture.log_prob(ref).mean().item(),
        }


def sliced_wasserstein(a: Tensor, b: Tensor, projections: int = 256, seed: int = 0) -> float:
    """Mean 1-Wasserstein distance over random 1-D projections (quantile matching)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    qs = torch.linspace(0.005, 0.995, 200, dtype=torch.float64)
    pa = torch.quantile(a.double() @ dirs, qs, dim=0)
    pb = torch.quantile(b.double() @ dirs, qs, dim=0)
    return (pa - pb).abs().mean().item()
