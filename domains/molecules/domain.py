"""MoleculesDomain: E(3)-equivariant diffusion over atom positions and types (``core.domain.Domain``).

x: (B, N, 3 + F) -- positions in the zero-centre-of-mass subspace, then atom features (one-hot
element, formal charge). Variable atom counts by padding: ``Batch.mask`` and ``cond["mask"]`` are
(B, N, 1). Optional ``cond["property"]`` (B,) is a normalised QM9 property for classifier-free
guidance; ``cond["centre"]`` (B, N, 1) moves the frame's origin onto a fixed fragment.

Fragment conditioning and the centre of mass: the fragment's atoms are kept by the core's
``known_region``. With the origin at the centre of mass of *all* atoms, the fragment's place
would depend on the atoms still being generated. So in fragment mode the frame's origin is the
fragment's own centroid: the noise hook draws noise with zero mean over the fragment atoms, the
fragment is given centred, and the network (translation invariant internally) makes its
position output zero-mean over the same atoms. Then every denoiser output already has the
fragment's centroid exactly where the known fragment has it, and known_region only fixes its
internal shape.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from diffsuite.core.domain import Batch

from .dataset import Encoding, MoleculeSet, from_molecules
from .egnn import EGNN_PRESETS
from .metrics import evaluate_molecules, reference_smiles
from .molecule import Molecule
from .qm9 import ELEMENTS as QM9_ELEMENTS
from .qm9 import MAX_ATOMS as QM9_MAX_ATOMS
from .qm9 import PROPERTIES, default_cache_dir, qm9_split
from .readers import embed_smiles, read_molecules, read_sdf
from .tensor_product import TP_PRESETS
from .vocabulary import make_vocabulary
from .writer import write_molecules

log = logging.getLogger(__name__)
NETWORKS = {"egnn": EGNN_PRESETS, "tensor_product": TP_PRESETS}
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
FILE_SPLITS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}


class MoleculesDomain:
    name = "molecules"

    def __init__(self, *, sigma_data: float = 0.5, preset: str = "S", network: str = "egnn",
                 vocabulary: "str | dict" = "qm9", data: str = "qm9", max_molecules: int | None = None,
                 cache_dir: str | None = None, condition: str | None = None, max_atoms: int | None = None,
                 position_scale: float = 2.8, type_scale: float = 0.25, charge_scale: float = 0.25,
                 pretrained: str | None = "qm9_egnn_s.safetensors", seed: int = 0, train_half: str | None = None):
        if network not in NETWORKS:
            raise ValueError(f"unknown network {network!r}; expected one of {sorted(NETWORKS)}")
        if preset not in NETWORKS[network]:
            raise ValueError(f"unknown {network} preset {preset!r}; expected one of {sorted(NETWORKS[network])}")
        if condition is not None and condition not in PROPERTIES:
            raise ValueError(f"unknown property {condition!r}; QM9 properties are {sorted(PROPERTIES)}")
        self.sigma_data, self.preset, self.network_kind = sigma_data, preset, network
        self.vocabulary_spec, self.data, self.max_molecules = vocabulary, str(data), max_molecules
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.condition, self.seed = condition, seed
        if train_half not in (None, "first", "second"):
            raise ValueError(f"train_half must be null, 'first' or 'second', got {train_half!r}")
        self.train_half = train_half  # EDM: the property regressor learns on one half, the model on the other
        self.vocabulary = make_vocabulary(vocabulary)
        if self.data == "qm9":
            missing = [e for e in QM9_ELEMENTS if e not in self.vocabulary.elements]
            if missing:
                raise ValueError(f"QM9 needs elements {missing} that the vocabulary {self.vocabulary.elements} lacks")
        elif condition is not None:
            log.info("property %r is read from each record of %s", condition, self.data)
        self.max_atoms = max_atoms or (QM9_MAX_ATOMS if self.data == "qm9" else None)
        self.encoding = Encoding(self.vocabulary, position_scale, type_scale, charge_scale)
        self.scales = (position_scale, type_scale, charge_scale)
        self.pretrained_name = pretrained
        p = PRETRAINED_DIR / pretrained if pretrained else None
        self.pretrained = p if p is not None and p.is_file() else None
        self._sets: dict[str, MoleculeSet] = {}
        self._stats: tuple[float, float] | None = None  # conditioning property mean and std (train split)
        self._rng = np.random.default_rng(seed)

    # --- data ------------------------------------------------------------------------------
    def dataset(self, split: str) -> MoleculeSet:
        if split not in self._sets:
            self._sets[split] = self._load(split)
        return self._sets[split]

    def _load(self, split: str) -> MoleculeSet:
        if self.data == "qm9":
            halved = split == "train" and self.train_half is not None  # cut after halving, below
            d = qm9_split(split, self.cache_dir, None if halved else self.max_molecules)
            if split == "train" and self.train_half is not None:
                half = len(d["n_atoms"]) // 2
                sl = slice(0, half) if self.train_half == "first" else slice(half, None)
                d = {k: v[sl][: self.max_molecules] for k, v in d.items()}
            remap = np.array([self.vocabulary.index(e, "QM9") for e in QM9_ELEMENTS] + [-1])  # -1 pads stay -1
            props = None
            if self.condition is not None:
                props = d["properties"][:, list(PROPERTIES).index(self.condition)]
            return MoleculeSet(positions=d["positions"], types=remap[d["types"].astype(np.int64)],
                               charges=np.zeros(d["types"].shape, np.int64), n_atoms=d["n_atoms"].astype(np.int64),
                               properties=props, smiles=d["smiles"])
        if split not in FILE_SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {list(FILE_SPLITS)}")
        mols = read_molecules(self.data)
        perm = np.random.RandomState(0).permutation(len(mols))
        lo, hi = (int(round(f * len(mols))) for f in FILE_SPLITS[split])
        chosen = [mols[i] for i in perm[lo:hi]][: self.max_molecules]
        if not chosen:
            raise ValueError(f"{self.data}: the {split} split is empty ({len(mols)} molecules in the file)")
        return from_molecules(chosen, self.vocabulary, max_atoms=self.max_atoms, property_name=self.condition)

    def _property_stats(self) -> tuple[float, float]:
        """Mean and std of the conditioning property over the training split, computed once."""
        if self._stats is None:
            p = self.dataset("train").properties
            self._stats = (float(p.mean()), float(p.std() + 1e-8))
        return self._stats

    def atom_histogram(self) -> np.ndarray:
        """Probability of each atom count in the training split."""
        h = np.bincount(self.dataset("train").n_atoms).astype(np.float64)
        return h / h.sum()

    def collate(self, items: list[dict]) -> Batch:
        B, N = len(items), max(len(it["types"]) for it in items)
        pos = torch.zeros(B, N, 3)
        types = torch.zeros(B, N, dtype=torch.long)
        charges = torch.zeros(B, N, dtype=torch.long)
        mask = torch.zeros(B, N, 1)
        for i, it in enumerate(items):
            n = len(it["types"])
            pos[i, :n], types[i, :n], charges[i, :n], mask[i, :n] = it["positions"], it["types"], it["charges"], 1
        x = self.encoding.encode(pos, types, charges, mask)  # (B, N, 3 + F)
        cond = {"mask": mask}
        if self.condition is not None:
            mean, std = self._property_stats()
            cond["property"] = (torch.tensor([it["property"] for it in items], dtype=torch.float32) - mean) / std
        return Batch(x=x, cond=cond, mask=mask, meta={"num_atoms": [len(it["types"]) for it in items]})

    # --- model -----------------------------------------------------------------------------
    def network(self) -> nn.Module:
        return NETWORKS[self.network_kind][self.preset](feature_dim=self.vocabulary.feature_dim,
                                                        conditioned=self.condition is not None)

    def noise_fn(self, batch: Batch, generator: torch.Generator | None = None):
        """Gaussian noise, zero on padding; positions projected to zero mean over the frame's
        centre atoms (all atoms, or the fixed fragment)."""
        mask = batch.mask
        centre = mask if batch.cond is None or batch.cond.get("centre") is None else batch.cond["centre"] * mask

        def noise(x: Tensor) -> Tensor:
            m, w = mask.to(x), centre.to(x)
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * m  # (B, N, 3 + F)
            pos = eps[..., :3]
            mean = (pos * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1)  # (B, 1, 3)
            return torch.cat([(pos - mean) * m, eps[..., 3:]], dim=-1)

        return noise

    # --- sampling --------------------------------------------------------------------------
    def sampling_batch(self, n: int, *, num_atoms: "int | list[int] | None" = None, property: str | None = None,
                       target: float | None = None, fragment: str | None = None, new_atoms: int | None = None,
                       generator: torch.Generator | None = None, **unused: Any) -> Batch:
        if unused:
            log.warning("molecules: ignoring unknown sample options %s", sorted(unused))
        # atom counts and targets follow the sampling seed when generate() passes its generator
        rng = self._rng if generator is None else np.random.default_rng(generator.initial_seed())
        frag = self._fragment(fragment) if fragment else None
        k = len(frag) if frag is not None else 0
        if frag is not None and new_atoms is not None:
            counts = np.full(n, k + int(new_atoms))
        elif num_atoms is not None:
            counts = np.broadcast_to(np.asarray(num_atoms, dtype=np.int64), (n,)).copy()
        else:
            hist = self.atom_histogram()
            counts = rng.choice(len(hist), size=n, p=hist)
            if frag is not None:
                counts = np.maximum(counts, k + 1)
        if (counts < max(k, 1)).any():
            raise ValueError(f"num_atoms must be >= {max(k, 1)} (the fragment has {k} atoms), got {counts.min()}")
        if self.max_atoms is not None and counts.max() > self.max_atoms:
            raise ValueError(f"{counts.max()} atoms is more than the model's maximum {self.max_atoms}")
        # pad to the model's maximum when it has one: every batch of a run then has the same
        # shape (core.generate concatenates the batches), at little cost (a 64-sample batch's
        # largest molecule is usually within a few atoms of QM9's 29 anyway)
        N = int(self.max_atoms or counts.max())
        mask = (torch.arange(N)[None, :] < torch.as_tensor(counts)[:, None]).float()[..., None]  # (n, N, 1)
        cond = {"mask": mask}
        if self.condition is not None:
            if property is not None and property != self.condition:
                raise ValueError(f"this model is conditioned on {self.condition!r}, not {property!r}")
            mean, std = self._property_stats()
            if target is None:  # EDM: draw targets from the training distribution
                targets = rng.choice(self.dataset("train").properties, size=n)
            else:
                targets = np.full(n, float(target))
            cond["property"] = (torch.as_tensor(targets, dtype=torch.float32) - mean) / std
            meta_targets = np.asarray(targets, dtype=np.float64).tolist()
        elif target is not None or property is not None:
            raise ValueError("this model is not property-conditioned (condition=null); train one with domain.condition=NAME")
        meta = {"num_atoms": counts.tolist()}
        if self.condition is not None:
            meta["targets"] = meta_targets
        batch = Batch(x=torch.zeros(n, N, 3 + self.vocabulary.feature_dim), cond=cond, mask=mask, meta=meta)
        if frag is not None:
            batch = self._with_fragment(batch, frag)
        return batch

    def _fragment(self, spec: str) -> Molecule:
        """A file's first molecule, atoms as given; or a SMILES, embedded in 3D, heavy atoms only
        (its hydrogens would close every open valence, leaving nothing to grow from)."""
        path = Path(spec)
        if path.suffix.lower() in (".sdf", ".sd", ".mol"):  # heavy atoms alone are the usual fragment
            mol = read_sdf(path, limit=1, require_hydrogens=False)[0]
        elif path.suffix.lower() == ".xyz" or path.is_file():
            mol = read_molecules(path, limit=1)[0]
        else:
            full = embed_smiles(spec, name="fragment")
            heavy = [i for i, e in enumerate(full.elements) if e != "H"]
            mol = Molecule([full.elements[i] for i in heavy], full.positions[heavy], full.charges[heavy], name=spec)
        for e, q in zip(mol.elements, mol.charges):
            self.vocabulary.index(e, f"fragment {spec}")
            self.vocabulary.check_charge(int(q), f"fragment {spec}")
        return mol

    def _with_fragment(self, batch: Batch, frag: Molecule) -> Batch:
        B, N, _ = batch.x.shape
        k = len(frag)
        types = torch.tensor([self.vocabulary.index(e, "fragment") for e in frag.elements])
        pos = torch.as_tensor(frag.positions, dtype=torch.float32)
        ones = torch.ones(1, k, 1)
        row = self.encoding.encode(pos[None], types[None], torch.as_tensor(frag.charges)[None], ones)  # (1, k, 3+F), centred on the fragment
        known = torch.zeros_like(batch.x)
        known[:, :k] = row
        known_mask = torch.zeros(B, N, 1)
        known_mask[:, :k] = 1
        cond = dict(batch.cond, centre=known_mask.clone())
        return Batch(x=batch.x, cond=cond, mask=batch.mask, known=known, known_mask=known_mask,
                     meta=dict(batch.meta, fragment_atoms=k))

    def decode(self, x: Tensor, batch: Batch) -> list[Molecule]:
        counts = batch.meta.get("num_atoms") or batch.mask.sum((1, 2)).long().tolist()
        mols = [self.encoding.decode_one(x[i], int(n), name=f"sample_{i}") for i, n in enumerate(counts)]
        for m, t in zip(mols, batch.meta.get("targets") or []):
            m.properties[f"target_{self.condition}"] = float(t)
        return mols

    def write(self, samples: list[Molecule], out_dir: Path) -> list[Path]:
        return write_molecules(samples, Path(out_dir))

    # --- evaluation ------------------------------------------------------------------------
    def training_smiles(self) -> set[str]:
        """SMILES of the training molecules, built as samples are built (cached for QM9)."""
        if self.data == "qm9" and self.max_molecules is None:
            cache = self.cache_dir / f"qm9_train_smiles_v1_{self.train_half or 'all'}.txt"  # a half has its own
            if cache.is_file():
                return set(cache.read_text().split())
            smiles = reference_smiles(self.dataset("train").molecules(self.vocabulary))
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text("\n".join(sorted(smiles)))
            tmp.replace(cache)
            return smiles
        return reference_smiles(self.dataset("train").molecules(self.vocabulary))

    def evaluate(self, samples: Path, *, novelty: bool = True, limit: int | None = None, **unused: Any) -> dict[str, float]:
        path = Path(samples)
        if path.is_dir():  # a folder written by `diffsuite sample`: its newest SDF (or XYZ)
            files = sorted((f for f in path.iterdir() if f.suffix.lower() in (".sdf", ".xyz")), key=lambda f: f.stat().st_mtime)
            if not files:
                raise FileNotFoundError(f"{path} holds no .sdf or .xyz file to evaluate")
            path = files[-1]
            log.info("evaluating %s", path)
        mols = read_molecules(path, limit=limit, require_hydrogens=False)  # a sample without H is scored, not dropped
        return evaluate_molecules(mols, self.training_smiles() if novelty else None)

    def config(self) -> dict[str, Any]:
        ps, ts, cs = self.scales
        return {"_target_": "diffsuite.domains.molecules.MoleculesDomain", "sigma_data": self.sigma_data, "preset": self.preset,
                "network": self.network_kind, "vocabulary": self.vocabulary_spec, "data": self.data,
                "max_molecules": self.max_molecules, "cache_dir": None, "condition": self.condition,
                "max_atoms": self.max_atoms, "position_scale": ps, "type_scale": ts, "charge_scale": cs,
                "pretrained": self.pretrained_name, "seed": self.seed, "train_half": self.train_half}
