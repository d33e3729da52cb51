"""Training throughput per CPU hour (issue 17): samples/s of each domain's shipped network for
fp32, bf16 autocast, torch.compile and both, side by side in one run, with the loss after a fixed
number of steps for each, so a speed-up that hurts training is seen; and the share of a step spent
outside the network (fetching and collating the next batch through the trainer's data stream).

    .venv/bin/python benchmarks/train_throughput.py                         # every domain, 2 threads
    .venv/bin/python benchmarks/train_throughput.py --domains audio --steps 20 --no-write

Each domain is measured with the network and batch size of the experiment that made its shipped
weights (SHIPPED below; `--domain-defaults` measures the domain config's default preset instead).
Where the training set has per-item sizes (molecules: atom counts), the variants "grouped" and
"bf16+grouped" train on batches grouped by size as the trainer forms them (trainer.group_by_size):
other batches, so their loss after N steps is comparable only roughly.

Each variant trains a fresh copy of the same network (same seed, same batches, same noise) for
`--steps` optimizer steps as the trainer takes them (the domain's noise hook, condition dropout,
the configured loss, backward, clipping, AdamW, EMA), through the trainer's own autocast and
`parallelize(compile=...)`. Timing excludes the first `--warmup` steps (compilation), and the timed
steps go round-robin over the variants, so a change in a shared machine's load falls on all alike. The table is
printed and recorded, with the machine and the date, in the `## Training throughput` section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import sys
import time
from pathlib import Path

import torch

from _results import machine, record

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# overrides that only make the training set smaller to build (the network is the shipped one)
DATA_ONLY = {
    "molecules": ["domain.max_molecules=4096"],
    "audio": ["domain.synthetic_per_class=[8,2,2]"],
    "video": ["domain.train_clips=256", "domain.eval_clips=16"],
}
# the experiment behind each domain's shipped weights (its network, preset and batch size)
SHIPPED = {"audio": ["experiment=audio_fsdd"], "video": ["experiment=video_full"],
           "molecules": ["experiment=molecules_joint"]}
BATCH = {"toy": 256}
# name: (bf16 autocast, torch.compile, batches grouped by size)
VARIANTS = {"fp32": (False, False, False), "bf16": (True, False, False), "compile": (False, True, False),
            "compile+bf16": (True, True, False), "grouped": (False, False, True), "bf16+grouped": (True, False, True),
            "compile+bf16+grouped": (True, True, True)}


def compose(name: str, shipped: bool):
    from hydra import compose as hydra_compose, initialize_config_dir

    network = SHIPPED.get(name, []) if shipped else []
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=[*(network or [f"domain={name}"]), *DATA_ONLY.get(name, [])])


def batches(cfg, domain, n: int, batch_size: int, group: bool = False) -> tuple[list, float]:
    """`n` collated batches through the trainer's DataStream, and the mean seconds to fetch one."""
    from diffsuite.core.training.data import DataStream
    from diffsuite.core.training.distributed import DistInfo
    from diffsuite.core.training.precision import cpu_resources

    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), owns_group=False)
    workers, _ = cpu_resources(cfg.trainer.num_workers, info.device)  # what the trainer would use
    stream = DataStream(domain.dataset("train"), domain.collate, dist=info, micro_batch=batch_size, seed=0,
                        num_workers=workers, group=batch_size if group else 0)
    next(stream)  # start-up (workers, caches) is not a per-step cost
    t0 = time.perf_counter()
    out = [next(stream) for _ in range(n)]
    return out, (time.perf_counter() - t0) / n


def train_steps(cfg, domain, data: list, bf16: bool, compiled: bool):
    """A fresh copy of the network trained one optimizer step per next(); yields each step's loss."""
    from hydra.utils import instantiate

    from diffsuite.core.training.distributed import DistInfo
    from diffsuite.core.training.ema import EMA
    from diffsuite.core.training.parallelize import ParallelOptions, parallelize
    from diffsuite.core.training.trainer import _cond_dropout, adamw

    torch.manual_seed(0)
    model = instantiate(cfg.model.precond)(domain.network())
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), owns_group=False)
    module = parallelize(model, ParallelOptions(compile=compiled), info)
    loss_fn = instantiate(cfg.model.loss)
    opt = adamw(model.parameters(), lr=float(cfg.trainer.lr))
    ema = EMA(model, [0.999])
    g = torch.Generator()
    yield sum(p.numel() for p in model.parameters()) / 1e6
    for i in itertools.count():
        b = data[i % len(data)]
        g.manual_seed(i)
        _cond_dropout(b, 0.1, g)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = loss_fn(module, b.x, b.cond, b.mask, noise=domain.noise_fn(b, g), generator=g)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(model, i)
        yield out.loss.item()


def measure(name: str, batch_size: int | None, steps: int, warmup: int, variants: list[str], shipped: bool) -> list[dict]:
    """Every variant trained side by side: after `warmup` untimed steps each, the timed steps go
    round-robin (one step of each variant in turn), so a change in the machine's load falls on
    every variant alike."""
    from hydra.utils import instantiate

    from diffsuite.core.training.data import dataset_sizes

    cfg = compose(name, shipped)
    batch_size = batch_size or int(cfg.trainer.batch_size)
    domain = instantiate(cfg.domain)
    sized = dataset_sizes(domain.dataset("train")) is not None
    feeds = {False: batches(cfg, domain, min(steps + warmup, 24), batch_size)}
    if sized and any(VARIANTS[v][2] for v in variants):
        feeds[True] = batches(cfg, domain, min(steps + warmup, 24), batch_size, group=True)
    runs, rows = {}, []
    for v in variants:
        bf16, compiled, grouped = VARIANTS[v]
        if grouped and not sized:
            continue  # nothing to group by: the same batches as without
        try:
            gen = train_steps(cfg, domain, feeds[grouped][0], bf16, compiled)
            params = next(gen)
            for _ in range(warmup):  # compilation happens here
                next(gen)
        except Exception as e:  # noqa: BLE001 -- a variant that cannot run is reported, not fatal
            rows.append({"domain": name, "variant": v, "error": f"{type(e).__name__}: {str(e)[:90]}"})
            print(f"{name} {v}: not measured: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        runs[v] = {"gen": gen, "params_m": params, "seconds": 0.0, "losses": []}
    for _ in range(steps):
        for r in runs.values():
            t0 = time.perf_counter()
            r["losses"].append(next(r["gen"]))
            r["seconds"] += time.perf_counter() - t0
    for v, r in runs.items():
        fetch_s = feeds[VARIANTS[v][2]][1]
        step_ms = r["seconds"] / steps * 1e3
        tail = r["losses"][-max(1, steps // 3):]
        row = {"domain": name, "variant": v, "step_ms": step_ms, "loss": sum(tail) / len(tail), "params_m": r["params_m"],
               "preset": " ".join(str(cfg.domain.get(k)) for k in ("preset", "network") if cfg.domain.get(k)) or "-",
               "batch": batch_size, "samples_s": batch_size / (step_ms / 1e3), "fetch_ms": fetch_s * 1e3,
               "outside": fetch_s * 1e3 / (fetch_s * 1e3 + step_ms)}
        rows.append(row)
        print(f"{name} {v}: {row['samples_s']:.1f} samples/s, loss {row['loss']:.4f}", file=sys.stderr)
    base = next((r for r in rows if r.get("variant") == "fp32" and "error" not in r), None)
    for r in rows:
        if base is not None and "error" not in r:
            r["speedup"] = r["samples_s"] / base["samples_s"]
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| domain | preset | params | batch | variant | step (ms) | samples/s | x fp32 | loss after N steps | "
             "batch fetch (ms) | share outside the network |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['domain']} | | | | {r['variant']} | | not measured: {r['error']} | | | | |")
            continue
        lines.append(f"| {r['domain']} | {r['preset']} | {r['params_m']:.2f} M | {r['batch']} | {r['variant']} | "
                     f"{r['step_ms']:.1f} | {r['samples_s']:.1f} | {r.get('speedup', float('nan')):.2f} | "
                     f"{r['loss']:.4f} | {r['fetch_ms']:.1f} | {100 * r['outside']:.0f}% |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", nargs="*", default=None, help="default: every configs/domain/*.yaml")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: the shipped experiment's; toy 256)")
    ap.add_argument("--domain-defaults", action="store_true",
                    help="measure each domain config's default network, not the shipped experiment's")
    ap.add_argument("--steps", type=int, default=30, help="timed optimizer steps per variant")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch intra-op threads")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.domains or sorted(p.stem for p in (ROOT / "configs" / "domain").glob("*.yaml"))
    rows = []
    for name in names:
        rows += measure(name, args.batch or BATCH.get(name), args.steps, args.warmup, args.variants,
                        shipped=not args.domain_defaults)
    from diffsuite.core.training.precision import cpu_bf16_units

    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = (f"### {when}: {machine('cpu')}; bf16 units: {cpu_bf16_units() or 'none'}; "
            f"{args.steps} timed steps after {args.warmup} untimed; "
            f"{'domain default networks' if args.domain_defaults else 'the shipped networks'}\n\n{table(rows)}\n")
    print(text)
    if not args.no_write:
        record("## Training throughput", text)
        print("recorded in benchmarks/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
