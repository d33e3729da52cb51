"""EDM's protocol for property-conditioned generation: a property regressor trained on the
*first* half of the QM9 training split (the generative model learns on the second half,
``train_half=second``); samples drawn at target values are scored by the mean absolute error
between the target and the regressor's prediction.

The regressor is an E(3)-invariant EGNN (the layers of ``egnn.py``) with a sum-over-atoms readout,
working on Angstrom positions and one-hot elements.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .egnn import EGNNLayer
from .molecule import Molecule


class PropertyRegressor(nn.Module):
    def __init__(self, *, num_elements: int, dim: int = 64, depth: int = 4):
        super().__init__()
        self.embed = nn.Linear(num_elements, dim)
        self.layers = nn.ModuleList(EGNNLayer(dim=dim) for _ in range(depth))
        self.readout = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, 1))
        self.register_buffer("stats", torch.tensor([0.0, 1.0]))  # mean, std of the property

    def forward(self, positions: Tensor, onehot: Tensor, mask: Tensor) -> Tensor:  # -> (B,) in property units
        N = positions.shape[1]
        emask = mask[:, :, None] * mask[:, None, :] * (1 - torch.eye(N, device=mask.device))[None, :, :, None]
        h = self.embed(onehot) * mask  # (B, N, D)
        p = positions * mask  # (B, N, 3)
        d0 = (p[:, :, None] - p[:, None, :]).pow(2).sum(-1, keepdim=True)  # (B, N, N, 1)
        zero = h.new_zeros(h.shape[0], h.shape[-1])
        for layer in self.layers:
            h, p = layer(h, p, zero, d0, emask, mask)
        y = (self.readout(h) * mask).sum(1).squeeze(-1)  # (B,)
        return y * self.stats[1] + self.stats[0]


def _tensors(mols: list[Molecule], elements: tuple[str, ...]) -> tuple[Tensor, Tensor, Tensor]:
    N = max(len(m) for m in mols)
    pos = torch.zeros(len(mols), N, 3)
    onehot = torch.zeros(len(mols), N, len(elements))
    mask = torch.zeros(len(mols), N, 1)
    for i, m in enumerate(mols):
        n = len(m)
        pos[i, :n] = torch.as_tensor(m.positions - m.positions.mean(0), dtype=torch.float32)
        onehot[i, torch.arange(n), [elements.index(e) for e in m.elements]] = 1
        mask[i, :n] = 1
    return pos, onehot, mask


def train_regressor(mols: list[Molecule], values: np.ndarray, elements: tuple[str, ...], *, steps: int = 1000,
                    batch_size: int = 64, lr: float = 5e-4, dim: int = 64, depth: int = 4, seed: int = 0,
                    log_every: int = 0) -> PropertyRegressor:
    """Fit on (molecule, property) pairs with an L1 loss on the normalised property."""
    g = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = PropertyRegressor(num_elements=len(elements), dim=dim, depth=depth)
    model.stats.copy_(torch.tensor([float(values.mean()), float(values.std() + 1e-8)]))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in range(steps):
        idx = g.choice(len(mols), size=min(batch_size, len(mols)), replace=False)
        pos, onehot, mask = _tensors([mols[i] for i in idx], elements)
        y = torch.as_tensor(values[idx], dtype=torch.float32)
        loss = ((model(pos, onehot, mask) - y).abs() / model.stats[1]).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log_every and step % log_every == 0:
            print(f"regressor step {step}: L1 (normalised) {loss.item():.4f}")
    return model.eval()


@torch.no_grad()
def predict(model: PropertyRegressor, mols: list[Molecule], elements: tuple[str, ...], batch_size: int = 256) -> np.ndarray:
    out = []
    for s in range(0, len(mols), batch_size):
        out.append(model(*_tensors(mols[s:s + batch_size], elements)).numpy())
    return np.concatenate(out)


def property_mae(model: PropertyRegressor, samples: list[Molecule], name: str, elements: tuple[str, ...]) -> float:
    """MAE between each sample's target (``properties['target_<name>']``, set by decode) and the prediction."""
    targets = np.array([m.properties[f"target_{name}"] for m in samples])
    return float(np.abs(predict(model, samples, elements) - targets).mean())
