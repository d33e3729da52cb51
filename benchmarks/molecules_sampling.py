"""Molecules: molecules per second sampled on this machine with few-step solvers, beside the cost
of EDM's 1,000-step ancestral sampling with the same network, and the quality figures (EDM's
stability, RDKit validity, uniqueness, novelty) of each.

    python benchmarks/molecules_sampling.py [--checkpoint PATH] [--n 64] [--edm-n 16] [--no-record]

Appends a table under ``## Molecules`` in benchmarks/RESULTS.md, with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import time

import torch

from diffsuite.core.generate import generate
from diffsuite.core.training.export import build_from_export
from diffsuite.domains.molecules.metrics import evaluate_molecules

from _results import RESULTS, machine, record


def run(domain, denoiser, n, train_smiles, device, **kw) -> dict:
    t0 = time.perf_counter()
    samples, _ = generate(domain, denoiser, n, device=device, seed=0, **kw)
    dt = time.perf_counter() - t0
    figures = evaluate_molecules(samples, train_smiles)
    return {"n": n, "seconds": dt, "mol_per_s": n / dt, **figures}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None, help="exported weights (default: the shipped QM9 checkpoint)")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--edm-n", type=int, default=16, help="molecules for the 1,000-step EDM baseline")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    from diffsuite.domains.molecules import MoleculesDomain

    path = args.checkpoint or MoleculesDomain().pretrained
    if path is None:
        raise SystemExit("no shipped checkpoint; pass --checkpoint PATH")
    domain, denoiser, _ = build_from_export(path, device, expect_domain="molecules")
    train_smiles = domain.training_smiles()
    rows = [
        ("heun, 25 steps (49 NFE)", run(domain, denoiser, args.n, train_smiles, device, sampler="heun", steps=25)),
        ("heun, 50 steps (99 NFE)", run(domain, denoiser, args.n, train_smiles, device, sampler="heun", steps=50)),
        ("dpmpp_2m, 50 steps (50 NFE)", run(domain, denoiser, args.n, train_smiles, device, sampler="dpmpp_2m", steps=50)),
        ("EDM-style: euler_ancestral, 1000 steps (1000 NFE)",
         run(domain, denoiser, args.edm_n, train_smiles, device, sampler="euler_ancestral", steps=1000)),
    ]
    keys = ["atom_stability", "molecule_stability", "validity", "valid_x_unique", "novelty"]
    head = "| sampler | molecules | mol/s | " + " | ".join(keys) + " |"
    lines = [head, "|" + "---|" * (3 + len(keys))]
    for name, r in rows:
        lines.append(f"| {name} | {r['n']} | {r['mol_per_s']:.2f} | " + " | ".join(f"{100 * r.get(k, float('nan')):.1f}%" for k in keys) + " |")
    table = "\n".join(lines)
    print(table)
    if not args.no_record:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        record("## Molecules", f"`benchmarks/molecules_sampling.py`, checkpoint `{path}`, {stamp}, {machine()}; "
                               f"QM9 novelty against the EDM training split.\n\n{table}\n")
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
