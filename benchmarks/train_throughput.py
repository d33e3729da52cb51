"""Training throughput (issue 3): samples/s of each domain's default denoiser, one optimizer step
as the trainer takes it (condition dropout, the domain's noise hook, the EDM loss, backward,
gradient clipping, AdamW, EMA update), on a real batch from the domain's training set.

    .venv/bin/python benchmarks/train_throughput.py              # every domain in configs/domain/
    .venv/bin/python benchmarks/train_throughput.py --domains toy audio --seconds 5 --no-write

Data loading is left out (the batch is collated once): the figure is the model's, not the disk's.
The table is printed and appended, with the machine and the date, to the `## Training throughput`
section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

from _results import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# overrides that only make the training set smaller to build (the network is the default one)
DATA_ONLY = {
    "molecules": ["domain.max_molecules=512"],
    "audio": ["domain.synthetic_per_class=[8,2,2]"],
    "video": ["domain.train_clips=256", "domain.eval_clips=16"],
}
BATCH = {"toy": 256}  # other domains: --batch


def measure(name: str, batch_size: int, seconds: float, device: torch.device) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from diffsuite.core.training.ema import EMA
    from diffsuite.core.training.trainer import _cond_dropout

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"domain={name}", *DATA_ONLY.get(name, [])])
    torch.manual_seed(0)
    domain = instantiate(cfg.domain)
    model = instantiate(cfg.model.precond)(domain.network()).to(device)
    loss_fn = instantiate(cfg.model.loss)
    t0 = time.perf_counter()
    data = domain.dataset("train")
    items = [data[i % len(data)] for i in range(batch_size)]
    batch = domain.collate(items).to(device)
    data_s = time.perf_counter() - t0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ema = EMA(model, [0.999])
    g = torch.Generator(device)
    params = sum(p.numel() for p in model.parameters())

    def step(i: int) -> None:
        g.manual_seed(i)
        b = batch
        _cond_dropout(b, 0.1, g)
        out = loss_fn(model, b.x, b.cond, b.mask, noise=domain.noise_fn(b, g), generator=g)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update(model, i)
        if device.type == "cuda":
            torch.cuda.synchronize()

    for i in range(2):  # warm-up: allocator, first-call paths
        step(i)
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < seconds:
        step(2 + n)
        n += 1
    dt = (time.perf_counter() - t0) / n
    return {"domain": name, "preset": cfg.domain.get("preset", "-"), "params_m": params / 1e6, "batch": batch_size,
            "step_ms": dt * 1e3, "samples_s": batch_size / dt, "steps": n, "data_s": data_s}


def table(rows: list[dict]) -> str:
    lines = ["| domain | preset | parameters | batch | step (ms) | samples/s | steps timed |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['domain']} | - | - | - | - | not measured: {r['error']} | - |")
            continue
        lines.append(f"| {r['domain']} | {r['preset']} | {r['params_m']:.2f} M | {r['batch']} | {r['step_ms']:.1f} | "
                     f"{r['samples_s']:.1f} | {r['steps']} |")
    return "\n".join(lines)


def append_results(text: str, path: Path) -> None:
    header = "## Training throughput"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if header not in old:
        old = old.rstrip("\n") + f"\n\n{header}\n\n" + (
            "Samples/s of one optimizer step of each domain's default denoiser (EDM loss, backward, clipping, "
            "AdamW, EMA) on a real collated batch, data loading excluded (`benchmarks/train_throughput.py`).\n")
    start = old.index(header)
    nxt = old.find("\n## ", start + len(header))
    end = len(old) if nxt < 0 else nxt
    block = old[start:end].rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    path.write_text(old[:start] + block + ("\n" + old[end:].lstrip("\n") if end < len(old) else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", nargs="*", default=None, help="default: every configs/domain/*.yaml")
    ap.add_argument("--batch", type=int, default=32, help="batch size for the domains (toy: 256)")
    ap.add_argument("--seconds", type=float, default=10.0, help="time at least this long per domain")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.domains or sorted(p.stem for p in (ROOT / "configs" / "domain").glob("*.yaml"))
    device = torch.device(args.device)
    rows = []
    for name in names:
        try:
            rows.append(measure(name, BATCH.get(name, args.batch), args.seconds, device))
            r = rows[-1]
            print(f"{name}: {r['samples_s']:.1f} samples/s ({r['step_ms']:.1f} ms a step; data built in "
                  f"{r['data_s']:.1f} s)", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 -- a domain that cannot be measured is reported, not fatal
            rows.append({"domain": name, "error": f"{type(e).__name__}: {str(e)[:80]}"})
            print(f"{name}: not measured: {type(e).__name__}: {e}", file=sys.stderr)
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = f"### {when}, {args.device}: {machine()}\n\n{table(rows)}\n"
    print(text)
    if not args.no_write:
        append_results(text, ROOT / "benchmarks" / "RESULTS.md")
        print(f"appended to {ROOT / 'benchmarks' / 'RESULTS.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
