"""Molecules: sample quality of a checkpoint under the three named protocols side by side (EDM's
distance bonds; the model's own bonds on a strict charge-aware table; MiDi's lenient table), with
validity of the largest fragment, connected validity, uniqueness and novelty, at <= 100 network
evaluations, beside the QM9 test split's own line and the issue's targets.

    python benchmarks/molecules_sampling.py                       # 1,000 molecules, shipped checkpoints
    python benchmarks/molecules_sampling.py --n 32 --data-n 200 --no-record   # a quick check
    python benchmarks/molecules_sampling.py --checkpoint runs/molecules/qm9_joint_s/export/weights.safetensors

The joint checkpoint (``pretrained/qm9_joint_s.safetensors``) and the positions-only baseline
(``pretrained/qm9_egnn_s.safetensors``) are each scored when present. Appends a table under
``## Molecules`` in benchmarks/RESULTS.md, with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import torch

from diffsuite.core.consistency import consistency_sigmas
from diffsuite.core.generate import generate
from diffsuite.core.training.export import build_from_export
from diffsuite.domains.molecules.metrics import evaluate_molecules

from _results import RESULTS, machine, record

KEYS = [("strict_atom_stability", "strict atom"), ("strict_molecule_stability", "strict mol"),
        ("midi_atom_stability", "MiDi atom"), ("midi_molecule_stability", "MiDi mol"),
        ("edm_atom_stability", "EDM atom"), ("edm_molecule_stability", "EDM mol"), ("edm_validity", "EDM valid"),
        ("validity", "valid (largest frag.)"), ("connected_validity", "connected valid"),
        ("uniqueness", "unique"), ("novelty", "novel")]
TARGETS = {"strict_molecule_stability": 0.80, "validity": 0.90, "uniqueness": 0.95}


def sample_row(path: Path, n: int, sampler: str, steps: int, device: str, batch_size: int, train_smiles=None):
    domain, denoiser, _ = build_from_export(path, device, expect_domain="molecules")
    smiles = train_smiles if train_smiles is not None else domain.training_smiles()
    t0 = time.perf_counter()
    grid = consistency_sigmas if sampler == "consistency" else None  # a consistency model's own grid
    samples, _ = generate(domain, denoiser, n, sampler=sampler, steps=steps, device=device, seed=0,
                          batch_size=batch_size, grid=grid)
    dt = time.perf_counter() - t0
    nfe = 2 * steps - 1 if sampler == "heun" else steps
    return {"n": n, "nfe": nfe, "mol_per_s": n / dt, **evaluate_molecules(samples, smiles)}, smiles


def data_row(n: int | None) -> dict:
    from diffsuite.domains.molecules import MoleculesDomain

    d = MoleculesDomain(network="graph_egnn", bonds=True, vocabulary="qm9_charged", pretrained=None, max_molecules=n)
    mols = d.dataset("test").molecules(d.vocabulary)
    full = MoleculesDomain(network="graph_egnn", bonds=True, vocabulary="qm9_charged", pretrained=None)
    return {"n": len(mols), "nfe": 0, "mol_per_s": float("nan"), **evaluate_molecules(mols, full.training_smiles())}


def table(rows: list[tuple[str, dict]]) -> str:
    head = "| model / sampler | NFE | molecules | mol/s | " + " | ".join(h for _, h in KEYS) + " |"
    lines = [head, "|" + "---|" * (4 + len(KEYS))]
    for name, r in rows:
        cells = [f"{100 * r[k]:.1f}%" if k in r else "-" for k, _ in KEYS]
        lines.append(f"| {name} | {r['nfe'] or '-'} | {int(r['n'])} | "
                     f"{'-' if r['mol_per_s'] != r['mol_per_s'] else format(r['mol_per_s'], '.2f')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", action="append", default=None,
                    help="exported weights (repeatable; default: the shipped joint and positions-only checkpoints)")
    ap.add_argument("--n", type=int, default=1000, help="molecules sampled per checkpoint")
    ap.add_argument("--sampler", default="heun")
    ap.add_argument("--steps", type=int, default=50, help="sampler steps (heun 50 = 99 network evaluations)")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--no-data", action="store_true", help="leave out the QM9 test split's line")
    ap.add_argument("--data-n", type=int, default=None, help="QM9 test molecules for the data line (default: all 13,083)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    from diffsuite.domains.molecules.domain import PRETRAINED_DIR

    paths = [Path(p) for p in args.checkpoint] if args.checkpoint else \
        [p for p in (PRETRAINED_DIR / "qm9_joint_s.safetensors", PRETRAINED_DIR / "qm9_egnn_s.safetensors") if p.is_file()]
    rows, smiles = [], None
    for p in paths:
        r, smiles = sample_row(p, args.n, args.sampler, args.steps, device, args.batch_size, smiles)
        rows.append((f"`{p.name}`, {args.sampler} {args.steps} steps", r))
        print(table(rows[-1:]), flush=True)
    if not args.no_data:
        rows.append(("QM9 test split (data)", data_row(args.data_n)))
    text = table(rows)
    hits = []
    for name, r in rows[:len(paths)]:
        met = [f"{k} {100 * r[k]:.1f}% {'>=' if r[k] >= v else '<'} {100 * v:.0f}%" for k, v in TARGETS.items()]
        hits.append(f"- {name}: " + ", ".join(met))
    text += ("\n\nTargets (issue 12): strict molecule stability >= 80%, validity >= 90%, uniqueness >= 95% at <= 100 "
             "evaluations; moonshot EDM's own line on EDM's protocol (82.0% molecule stability, 91.9% validity).\n"
             + "\n".join(hits))
    print(text)
    if not args.no_record:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        record("## Molecules", f"`benchmarks/molecules_sampling.py --n {args.n}`, {stamp}, {machine()}; three "
                               "protocols (domains/molecules/metrics.py); novelty against the EDM training split's "
                               f"graphs.\n\n{text}\n")
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
