"""MoleculesDomain: E(3)-equivariant diffusion over atom positions and types (``core.domain.Domain``),
and, with ``bonds=true``, jointly over formal charges and bond types (``dataset.JointEncoding``,
``graph_egnn.GraphEGNN``): the categorical parts are one-hots scaled per modality and diffused in
the core's sigma space with the positions, so every core sampler and guidance works unchanged.

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

from diffsuite.core.domain import Batch, ConfigFromInit
from diffsuite.core.errors import MissingFileError, UserError
from diffsuite.core.options import check_known
from diffsuite.core.pretrained import shipped_weights
from diffsuite.core.splits import split_records

from .dataset import BOND_CLASSES, Encoding, JointEncoding, MoleculeSet, edge_lists, from_molecules
from .egnn import EGNN_PRESETS
from .graph_egnn import GRAPH_EGNN_PRESETS
from .graphs import graph_smiles, qm9_graphs_for
from .metrics import evaluate_molecules, reference_smiles
from .molecule import Molecule
from .qm9 import ELEMENTS as QM9_ELEMENTS
from .qm9 import MAX_ATOMS as QM9_MAX_ATOMS
from .qm9 import PROPERTIES, default_cache_dir, edm_split, load_qm9, qm9_split
from .readers import embed_smiles, read_molecules, read_sdf
from .tensor_product import TP_PRESETS
from .vocabulary import make_vocabulary
from .writer import write_molecules

log = logging.getLogger(__name__)
NETWORKS = {"egnn": EGNN_PRESETS, "tensor_product": TP_PRESETS, "graph_egnn": GRAPH_EGNN_PRESETS}
JOINT_NETWORKS = {"graph_egnn"}  # the networks that denoise bonds and charges too
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
FILE_SPLITS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}


class MoleculesDomain(ConfigFromInit):
    name = "molecules"

    def __init__(self, *, sigma_data: float = 0.5, preset: str = "S", network: str = "egnn",
                 vocabulary: "str | dict" = "qm9", data: str = "qm9", max_molecules: int | None = None,
                 cache_dir: str | None = None, condition: str | None = None, max_atoms: int | None = None,
                 position_scale: float = 2.8, type_scale: float = 0.25, charge_scale: float = 0.25,
                 pretrained: str | None = "qm9_egnn_s.safetensors", seed: int = 0, train_half: str | None = None,
                 bonds: bool = False, bond_scale: float = 0.5,
                 loss_weights: "tuple[float, float, float, float] | list[float]" = (3.0, 0.4, 1.0, 2.0)):
        if network not in NETWORKS:
            raise UserError(f"unknown network {network!r}; expected one of {sorted(NETWORKS)}")
        if preset not in NETWORKS[network]:
            raise UserError(f"unknown {network} preset {preset!r}; expected one of {sorted(NETWORKS[network])}")
        if condition is not None and condition not in PROPERTIES:
            raise UserError(f"unknown property {condition!r}; QM9 properties are {sorted(PROPERTIES)}")
        self.sigma_data, self.preset, self.network_kind = sigma_data, preset, network
        self.vocabulary_spec, self.data, self.max_molecules = vocabulary, str(data), max_molecules
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.condition, self.seed = condition, seed
        if train_half not in (None, "first", "second"):
            raise UserError(f"train_half must be null, 'first' or 'second', got {train_half!r}")
        self.train_half = train_half  # EDM: the property regressor learns on one half, the model on the other
        self.vocabulary = make_vocabulary(vocabulary)
        self.bonds = bool(bonds)
        if self.bonds != (network in JOINT_NETWORKS):
            raise UserError(f"domain.bonds={self.bonds} needs network " + ("graph_egnn" if self.bonds else "egnn or tensor_product")
                            + f", got network={network!r}")
        if self.bonds and len(loss_weights) != 4:
            raise UserError(f"domain.loss_weights must be 4 numbers (positions, types, charges, bonds), got {list(loss_weights)}")
        if self.bonds and data == "qm9" and not {-1, 1} <= set(self.vocabulary.charges):
            raise UserError(f"QM9's graphs carry formal charges -1 and +1; vocabulary {vocabulary!r} allows "
                            f"{list(self.vocabulary.charges)}: use domain.vocabulary=qm9_charged")
        if self.data == "qm9":
            missing = [e for e in QM9_ELEMENTS if e not in self.vocabulary.elements]
            if missing:
                raise UserError(f"QM9 needs elements {missing} that the vocabulary {self.vocabulary.elements} lacks")
        elif condition is not None:
            log.info("property %r is read from each record of %s", condition, self.data)
        self.max_atoms = max_atoms or (QM9_MAX_ATOMS if self.data == "qm9" else None)
        self.encoding = Encoding(self.vocabulary, position_scale, type_scale, charge_scale)
        self.scales = (position_scale, type_scale, charge_scale)
        self.bond_scale, self.loss_weight_spec = bond_scale, tuple(float(w) for w in loss_weights)
        self.joint = JointEncoding(self.vocabulary, position_scale, type_scale, charge_scale, bond_scale,
                                   self.loss_weight_spec) if self.bonds else None
        self.main_metric = "strict_molecule_stability"  # the figure a training summary line shows
        self.pretrained_name = pretrained
        shipped = "qm9_joint_s.safetensors" if self.data == "qm9" else None  # what pretrained=default names
        p = shipped_weights(pretrained, PRETRAINED_DIR, shipped)
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
            charges, graph = np.zeros(d["types"].shape, np.int64), None
            if self.bonds:
                d, charges, graph = self._qm9_graphs(split, d)
                if props is not None:
                    props = d["properties"][:, list(PROPERTIES).index(self.condition)]
            return MoleculeSet(positions=d["positions"], types=remap[d["types"].astype(np.int64)],
                               charges=charges, n_atoms=d["n_atoms"].astype(np.int64),
                               properties=props, smiles=d["smiles"], bonds=graph)
        if split not in FILE_SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {list(FILE_SPLITS)}")
        mols = read_molecules(self.data)
        chosen = [mols[i] for i in split_records(len(mols), 0.1, 0.1)[split]][: self.max_molecules]  # core.splits
        if not chosen:
            raise UserError(f"{self.data}: the {split} split is empty ({len(mols)} molecules in the file)")
        return from_molecules(chosen, self.vocabulary, max_atoms=self.max_atoms, property_name=self.condition,
                              bonds=self.bonds)

    def _qm9_graphs(self, split: str, d: dict) -> tuple[dict, np.ndarray, dict]:
        """The split's rows (as ``qm9_split`` and train_half chose them) with their bonds and formal
        charges; the few rows whose graph does not reproduce QM9's SMILES are left out."""
        full = load_qm9(self.cache_dir)
        rows = edm_split(split)
        if split == "train" and self.train_half is not None:
            half = len(rows) // 2
            rows = rows[:half] if self.train_half == "first" else rows[half:]
        rows = rows[: len(d["n_atoms"])]
        if not np.array_equal(full["index"][rows], d["index"]):
            raise RuntimeError("QM9 rows and graphs are out of step; delete the QM9 caches and retry")
        mats, charges, ok = qm9_graphs_for(full, rows, QM9_ELEMENTS, self.cache_dir)
        if not ok.all():
            log.info("QM9 %s: %d of %d molecules left out (their graph does not reproduce the SMILES)", split,
                     int((~ok).sum()), len(ok))
        d = {k: v[ok] for k, v in d.items()}
        return d, charges[ok], edge_lists([m for m, keep in zip(mats, ok) if keep])

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
        bonds = torch.zeros(B, N, N, dtype=torch.long)
        for i, it in enumerate(items):
            n = len(it["types"])
            pos[i, :n], types[i, :n], charges[i, :n], mask[i, :n] = it["positions"], it["types"], it["charges"], 1
            if self.bonds:
                bonds[i, :n, :n] = it["bonds"]
        if self.bonds:
            x = self.joint.encode(pos, types, charges, bonds, mask)  # (B, N, 3 + A + N K)
            weights = self.joint.loss_weights(mask, self.sigma_data)  # (B, N, 3 + A + N K): per-modality weights
        else:
            x, weights = self.encoding.encode(pos, types, charges, mask), mask  # (B, N, 3 + F)
        cond = {"mask": mask}
        if self.condition is not None:
            mean, std = self._property_stats()
            cond["property"] = (torch.tensor([it["property"] for it in items], dtype=torch.float32) - mean) / std
        return Batch(x=x, cond=cond, mask=weights, meta={"num_atoms": [len(it["types"]) for it in items]})

    # --- model -----------------------------------------------------------------------------
    def network(self) -> nn.Module:
        if self.bonds:
            return NETWORKS[self.network_kind][self.preset](atom_dim=self.joint.atom_dim, bond_classes=BOND_CLASSES,
                                                            conditioned=self.condition is not None)
        return NETWORKS[self.network_kind][self.preset](feature_dim=self.vocabulary.feature_dim,
                                                        conditioned=self.condition is not None)

    def noise_fn(self, batch: Batch, generator: torch.Generator | None = None):
        """Gaussian noise, zero on padding; positions projected to zero mean over the frame's
        centre atoms (all atoms, or the fixed fragment)."""
        mask = batch.cond["mask"] if batch.cond is not None and batch.cond.get("mask") is not None else batch.mask
        mask = (mask[..., :1] > 0).to(mask.dtype)  # (B, N, 1) atoms (Batch.mask may hold loss weights)
        centre = mask if batch.cond is None or batch.cond.get("centre") is None else batch.cond["centre"] * mask
        A = self.joint.atom_dim if self.bonds else 0

        def noise(x: Tensor) -> Tensor:
            m, w = mask.to(x), centre.to(x)
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * m  # (B, N, C)
            pos = eps[..., :3]
            mean = (pos * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1)  # (B, 1, 3)
            if not self.bonds:
                return torch.cat([(pos - mean) * m, eps[..., 3:]], dim=-1)
            B, N, _ = x.shape
            e = eps[..., 3 + A:].reshape(B, N, N, BOND_CLASSES)
            pair = (m[:, :, None] * m[:, None, :] * (1 - torch.eye(N, device=x.device, dtype=x.dtype))[None, :, :, None])
            e = torch.triu(e.permute(0, 3, 1, 2), diagonal=1)  # (B, K, N, N) upper triangle: one draw per pair
            e = (e + e.transpose(-1, -2)).permute(0, 2, 3, 1) * pair  # (B, N, N, K) symmetric, unit variance
            return torch.cat([(pos - mean) * m, eps[..., 3:3 + A], e.reshape(B, N, N * BOND_CLASSES)], dim=-1)

        return noise

    # --- sampling --------------------------------------------------------------------------
    def sampling_batch(self, n: int, *, num_atoms: "int | list[int] | None" = None, property: str | None = None,
                       target: float | None = None, fragment: str | None = None, new_atoms: int | None = None,
                       generator: torch.Generator | None = None, **unused: Any) -> Batch:
        check_known(unused, ("num_atoms", "property", "target", "fragment", "new_atoms"), "molecules sampling")
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
            raise UserError(f"num_atoms must be >= {max(k, 1)} (the fragment has {k} atoms), got {counts.min()}")
        if self.max_atoms is not None and counts.max() > self.max_atoms:
            raise UserError(f"{counts.max()} atoms is more than the model's maximum {self.max_atoms}")
        # pad to the model's maximum when it has one: every batch of a run then has the same
        # shape (core.generate concatenates the batches), at little cost (a 64-sample batch's
        # largest molecule is usually within a few atoms of QM9's 29 anyway)
        N = int(self.max_atoms or counts.max())
        mask = (torch.arange(N)[None, :] < torch.as_tensor(counts)[:, None]).float()[..., None]  # (n, N, 1)
        cond = {"mask": mask}
        if self.condition is not None:
            if property is not None and property != self.condition:
                raise UserError(f"this model is conditioned on {self.condition!r}, not {property!r}")
            mean, std = self._property_stats()
            if target is None:  # EDM: draw targets from the training distribution
                targets = rng.choice(self.dataset("train").properties, size=n)
            else:
                targets = np.full(n, float(target))
            cond["property"] = (torch.as_tensor(targets, dtype=torch.float32) - mean) / std
            meta_targets = np.asarray(targets, dtype=np.float64).tolist()
        elif target is not None or property is not None:
            raise UserError("this model is not property-conditioned (condition=null); train one with domain.condition=NAME")
        meta = {"num_atoms": counts.tolist()}
        if self.condition is not None:
            meta["targets"] = meta_targets
        channels = self.joint.channels(N) if self.bonds else 3 + self.vocabulary.feature_dim
        batch = Batch(x=torch.zeros(n, N, channels), cond=cond, mask=mask, meta=meta)
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
            mol = Molecule([full.elements[i] for i in heavy], full.positions[heavy], full.charges[heavy], name=spec,
                           bonds=None if full.bonds is None else full.bonds[np.ix_(heavy, heavy)])
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
        if not self.bonds:
            row = self.encoding.encode(pos[None], types[None], torch.as_tensor(frag.charges)[None], ones)  # (1, k, 3+F), centred on the fragment
            known = torch.zeros_like(batch.x)
            known[:, :k] = row
            known_mask = torch.zeros(B, N, 1)
            known_mask[:, :k] = 1
        else:  # the fragment's atoms and the bonds among them are known; its bonds to new atoms are generated
            fb = torch.zeros(1, N, N, dtype=torch.long)
            if frag.bonds is not None:
                fb[0, :k, :k] = torch.as_tensor(frag.bonds)
            P, T, Q = torch.zeros(1, N, 3), torch.zeros(1, N, dtype=torch.long), torch.zeros(1, N, dtype=torch.long)
            P[0, :k], T[0, :k], Q[0, :k] = pos, types, torch.as_tensor(frag.charges)
            fm = torch.zeros(1, N, 1)
            fm[0, :k] = 1
            known = self.joint.encode(P, T, Q, fb, fm).expand(B, -1, -1).clone()  # centred on the fragment
            atom = fm.expand(1, N, 3 + self.joint.atom_dim)
            pairs = (fm[:, :, None, 0] * fm[:, None, :, 0])[..., None].expand(1, N, N, BOND_CLASSES).reshape(1, N, -1)
            known_mask = torch.cat([atom, pairs], dim=-1).expand(B, -1, -1).clone()  # (B, N, C)
        cond = dict(batch.cond, centre=known_mask[..., :1].clone())  # (B, N, 1) the fragment atoms
        return Batch(x=batch.x, cond=cond, mask=batch.mask, known=known, known_mask=known_mask,
                     meta=dict(batch.meta, fragment_atoms=k))

    def decode(self, x: Tensor, batch: Batch) -> list[Molecule]:
        counts = batch.meta.get("num_atoms") or batch.mask.sum((1, 2)).long().tolist()
        enc = self.joint if self.bonds else self.encoding
        mols = [enc.decode_one(x[i], int(n), name=f"sample_{i}") for i, n in enumerate(counts)]
        for m, t in zip(mols, batch.meta.get("targets") or []):
            m.properties[f"target_{self.condition}"] = float(t)
        return mols

    def write(self, samples: list[Molecule], out_dir: Path) -> list[Path]:
        return write_molecules(samples, Path(out_dir))

    # --- evaluation ------------------------------------------------------------------------
    def training_smiles(self) -> set[str]:
        """SMILES of the training molecules, built as samples are built (cached for QM9)."""
        if self.data == "qm9" and self.max_molecules is None:
            cache = self.cache_dir / f"qm9_train_smiles_v2_{self.train_half or 'all'}.txt"  # a half has its own
            if cache.is_file():
                return set(cache.read_text().split())
            smiles = self._qm9_train_graph_smiles()
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text("\n".join(sorted(smiles)))
            tmp.replace(cache)
            return smiles
        return reference_smiles(self.dataset("train").molecules(self.vocabulary))

    def _qm9_train_graph_smiles(self) -> set[str]:
        """QM9's training molecules as chemists know them: the SMILES of their stored graphs."""
        full = load_qm9(self.cache_dir)
        rows = edm_split("train")
        if self.train_half is not None:
            rows = rows[: len(rows) // 2] if self.train_half == "first" else rows[len(rows) // 2:]
        mats, charges, _ = qm9_graphs_for(full, rows, QM9_ELEMENTS, self.cache_dir)
        out = set()
        for r, m, q in zip(rows, mats, charges):
            n = len(m)
            s = graph_smiles([QM9_ELEMENTS[t] for t in full["types"][r, :n]], m, q[:n])
            if s is not None:
                out.add(s)
        return out

    def evaluate(self, samples: Path, *, novelty: bool = True, limit: int | None = None, **unused: Any) -> dict[str, float]:
        path = Path(samples)
        if path.is_dir():  # a folder written by `diffsuite sample`: its newest SDF (or XYZ)
            files = sorted((f for f in path.iterdir() if f.suffix.lower() in (".sdf", ".xyz")), key=lambda f: f.stat().st_mtime)
            if not files:
                raise MissingFileError(f"{path} holds no .sdf or .xyz file to evaluate")
            path = files[-1]
            log.info("evaluating %s", path)
        mols = read_molecules(path, limit=limit, require_hydrogens=False)  # a sample without H is scored, not dropped
        return evaluate_molecules(mols, self.training_smiles() if novelty else None)

    def settled_config(self) -> dict[str, Any]:
        return {"cache_dir": None}  # the QM9 cache is this machine's
