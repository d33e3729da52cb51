"""EDM's property-conditioning protocol: train the property regressor on the first half of the
QM9 training split, sample a property-conditioned checkpoint (trained with
``domain.condition=NAME domain.train_half=second``) at targets drawn from the training
distribution, and report the MAE between targets and the regressor's predictions, beside the
regressor's own MAE on the QM9 test split (EDM's lower bound) and the MAE of shuffled targets
(EDM's "naive" upper bound).

    python benchmarks/molecules_property.py --checkpoint PATH [--n 1000] [--regressor-steps 20000]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from diffsuite.core.generate import generate
from diffsuite.core.training.export import build_from_export
from diffsuite.domains.molecules import MoleculesDomain
from diffsuite.domains.molecules.property_regressor import predict, property_mae, train_regressor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--regressor-steps", type=int, default=20000)
    ap.add_argument("--guidance", type=float, default=1.0)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    domain, denoiser, _ = build_from_export(args.checkpoint, device, expect_domain="molecules")
    name = domain.condition
    if name is None:
        raise SystemExit(f"{args.checkpoint} is not property-conditioned")
    first = MoleculesDomain(condition=name, train_half="first")
    ds = first.dataset("train")
    reg = train_regressor(ds.molecules(first.vocabulary), ds.properties, first.vocabulary.elements,
                          steps=args.regressor_steps, log_every=1000)
    test = first.dataset("test")
    lower = np.abs(predict(reg, test.molecules(first.vocabulary), first.vocabulary.elements) - test.properties).mean()
    samples, _ = generate(domain, denoiser, args.n, sampler="heun", steps=args.steps, guidance=args.guidance,
                          device=device, batch_size=256)
    mae = property_mae(reg, samples, name, first.vocabulary.elements)
    targets = np.array([m.properties[f"target_{name}"] for m in samples])
    naive = np.abs(predict(reg, samples, first.vocabulary.elements) - np.random.default_rng(0).permutation(targets)).mean()
    print(f"{name}: MAE samples {mae:.4g} | regressor on QM9 test {lower:.4g} | shuffled targets {naive:.4g}")


if __name__ == "__main__":
    main()
