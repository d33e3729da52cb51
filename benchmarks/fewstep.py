"""Few-step study (issue 15): quality against network evaluations and against wall time, every
sampler on each domain's base model beside its consistency-tuned (ECT) model, at 1, 2, 4, 8, 16
and 32 evaluations.

    .venv/bin/python benchmarks/fewstep.py                       # toy + every domain, records
    .venv/bin/python benchmarks/fewstep.py --domains toy         # the toy alone (~2 min of CPU)
    .venv/bin/python benchmarks/fewstep.py --quick               # tiny smoke run, records nothing

The toy (core.toy: 8-mode ring, exact denoiser known) is trained here with the real trainer, then
consistency-tuned from its export (`model=ect init=...`) for a quarter of its steps; its figures
are the sliced Wasserstein distance to data and the distance to the exact probability-flow ODE
map of the same start noise, and class accuracy under classifier-free guidance at 1, 2, 4
evaluations. A domain uses its shipped checkpoint as the base and, for the consistency rows, the
export of `diffsuite train experiment=<domain>_ect` (runs/<domain>/ect/export/weights.safetensors,
or --ect domain=PATH); without one its consistency rows are left out and the table says so.

Writes a table per domain under `## Few-step generation` in benchmarks/RESULTS.md and a PNG plot
(benchmarks/fewstep.png): the main metric against evaluations and against wall time.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from diffsuite.core.consistency import consistency_sigmas  # noqa: E402
from diffsuite.core.guidance import cfg as guided  # noqa: E402
from diffsuite.core.samplers import SAMPLERS, steps_for_evaluations  # noqa: E402
from diffsuite.core.schedules import karras_sigmas  # noqa: E402
from diffsuite.core.toy import GaussianMixture, sliced_wasserstein  # noqa: E402

from _results import machine, record  # noqa: E402

SECTION = "## Few-step generation"
EVALS = (1, 2, 4, 8, 16, 32)
SOLVERS = [s for s in SAMPLERS if s != "consistency"]
# per domain: sampling options, guidance, samples, and the figures shown (the first is plotted)
DOMAINS = {
    "audio": dict(n=20, guidance=2.0, options={}, metrics=["accuracy", "fd"]),
    "video": dict(n=10, guidance=2.0, options={"class": list(range(10))},
                  metrics=["classifier_accuracy_conditioned", "classifier_frechet_distance"]),
    "molecules": dict(n=64, guidance=1.0, options={}, metrics=["strict_molecule_stability", "validity"]),
}


def grid_for(sampler: str, evals: int):
    if sampler == "consistency":
        return consistency_sigmas(evals)
    return karras_sigmas(steps_for_evaluations(sampler, evals))


def compose(overrides: list[str]):
    from hydra import compose as hcompose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return hcompose(config_name="train", overrides=overrides)


# --- the toy --------------------------------------------------------------------------------------

def toy_models(out: Path, steps: int, seed: int = 0) -> tuple[Path, Path, dict]:
    """Train the toy base model, then consistency-tune it from its export for steps // 4 steps."""
    from diffsuite.core.training import train

    common = ["domain=toy", "trainer.batch_size=256", "trainer.num_workers=0", "trainer.checkpoint_every=0",
              "trainer.tensorboard=false", "trainer.progress=false", "trainer.device=cpu", "trainer.log_every=100",
              "trainer.eval_every=0",
              f"seed={seed}"]
    t0 = time.perf_counter()
    base = train(compose(common + [f"trainer.steps={steps}", "trainer.lr=2e-3", "trainer.warmup=100",
                                   f"run_dir={out / 'toy_base'}"]))
    t_base = time.perf_counter() - t0
    tune = max(steps // 4, 1)
    t0 = time.perf_counter()
    ect = train(compose(common + ["model=ect", f"init={base}", f"trainer.steps={tune}", "trainer.lr=5e-4",
                                  "trainer.warmup=0", "trainer.decay=constant", "trainer.ema=[0.99]", "model.loss.c=0.03",
                                  f"model.loss.stage_every={max(tune // 4, 1)}", f"run_dir={out / 'toy_ect'}"]))
    t_ect = time.perf_counter() - t0
    return base, ect, {"base_steps": steps, "ect_steps": tune, "base_s": t_base, "ect_s": t_ect}


def toy_study(out: Path, steps: int, n: int) -> tuple[str, list[dict]]:
    from diffsuite.core.training.export import build_from_export

    base_path, ect_path, info = toy_models(out, steps)
    _, base, _ = build_from_export(base_path)
    domain, ect, _ = build_from_export(ect_path)
    gm = domain.mixture
    data = domain.dataset("test").tensors[0].double()
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(7))
    uncond = {"class": torch.full((n,), -1)}
    exact = lambda x, s, c=None: gm.denoise(x, s)  # noqa: E731
    truth = SAMPLERS["dpmpp_2m"](exact, 80.0 * z.double(), karras_sigmas(800))  # the exact ODE map of z
    models = {"base": base, "ect": ect}
    rows = []

    def run(model_name, sampler, evals, den, cond):
        sig = grid_for(sampler, evals)
        g = torch.Generator().manual_seed(11)
        noise = lambda x: torch.randn(x.shape, generator=g, dtype=x.dtype)  # noqa: E731
        t0 = time.perf_counter()
        with torch.no_grad():
            x = SAMPLERS[sampler](den, float(sig[0]) * z, sig, cond, noise=noise)
        wall = time.perf_counter() - t0
        return x.double(), wall

    for model_name, sampler in [("base", s) for s in SOLVERS] + [("base", "consistency"), ("ect", "consistency")]:
        den = models[model_name]
        for evals in EVALS:
            x, wall = run(model_name, sampler, evals, den, uncond)
            rows.append({"model": model_name, "sampler": sampler, "evals": evals, "wall_s": wall,
                         "sw": sliced_wasserstein(x, data), "ode_err": (x - truth).norm(dim=1).mean().item()})
    for evals in (1, 2, 4, 32):  # the exact denoiser: what a perfect base model reaches with dpmpp_2m / unipc
        for sampler in ("dpmpp_2m", "unipc"):
            x, wall = run("exact", sampler, evals, exact, None)
            rows.append({"model": "exact", "sampler": sampler, "evals": evals, "wall_s": wall,
                         "sw": sliced_wasserstein(x, data), "ode_err": (x - truth).norm(dim=1).mean().item()})
    floor = sliced_wasserstein(gm.sample(n, torch.Generator().manual_seed(3))[0], data)

    # guidance: class accuracy (the mixture component that most likely produced a sample)
    labels = torch.arange(n) % len(gm.weights)
    cond = {"class": labels}
    guide_rows = []
    for model_name, sampler in (("ect", "consistency"), ("base", "dpmpp_2m"), ("base", "heun")):
        for evals in (1, 2, 4):
            for w in (1.0, 2.0, 4.0):
                den = guided(models[model_name], w)
                x, _ = run(model_name, sampler, evals, den, cond)
                acc = (gm._log_resp(x, gm.stds[None] ** 2).argmax(1) == labels).double().mean().item()
                guide_rows.append((model_name, sampler, evals, w, acc, sliced_wasserstein(x, data)))

    L = [f"### Toy (8-mode ring, exact denoiser), {datetime.date.today()}", "",
         f"Machine: {machine('cpu')}. Base: the toy S MLP trained {info['base_steps']} steps (batch 256, "
         f"{info['base_s']:.0f} s); ECT: `model=ect init=<base export>` for {info['ect_steps']} steps "
         f"(a quarter; {info['ect_s']:.0f} s), q=4, stage every {max(info['ect_steps'] // 4, 1)} steps, pseudo-Huber "
         f"c=0.03, lr 5e-4, EMA 0.99. "
         f"The toy network has no dropout. {n} points from one start noise z (sigma_max 80) for every row. "
         f"**SW**: sliced Wasserstein to the 5000-point test split (floor, an independent {n}-point data "
         f"sample: {floor:.4f}); **ODE err**: mean distance to the exact probability-flow ODE map of the same z "
         "(what a perfect consistency model returns in one step). Base samplers on the Karras grid (0.002, 80), "
         "`consistency` on `consistency_sigmas` (80 down to 0.8). Wall time: the whole batch, one thread.", ""]
    L += ["| model | sampler | " + " | ".join(f"SW@{e}" for e in EVALS) + " | " + " | ".join(f"err@{e}" for e in EVALS)
          + " | ms@1 | ms@32 |", "|---|---|" + "---|" * (2 * len(EVALS) + 2)]
    keyed = {}
    for r in rows:
        keyed.setdefault((r["model"], r["sampler"]), {})[r["evals"]] = r
    for (m, s), by in keyed.items():
        L.append(f"| {m} | {s} | " + " | ".join(f"{by[e]['sw']:.4f}" if e in by else "" for e in EVALS) + " | "
                 + " | ".join(f"{by[e]['ode_err']:.4f}" if e in by else "" for e in EVALS) + " | "
                 + " | ".join(f"{by[e]['wall_s'] * 1e3:.1f}" if e in by else "" for e in (1, 32)) + " |")
    L += ["", "Classifier-free guidance (class accuracy of class-conditioned samples: the ring component most "
          "likely to have produced each point; SW to the unconditional data in brackets). The tuned model kept "
          "condition dropout (0.1), so `core.guidance.cfg` applies to it unchanged:", "",
          "| model | sampler | evaluations | w=1 | w=2 | w=4 |", "|---|---|---|---|---|---|"]
    g_by = {}
    for m, s, e, w, acc, sw in guide_rows:
        g_by.setdefault((m, s, e), {})[w] = (acc, sw)
    for (m, s, e), by in g_by.items():
        L.append(f"| {m} | {s} | {e} | " + " | ".join(f"{by[w][0]:.3f} ({by[w][1]:.3f})" for w in (1.0, 2.0, 4.0)) + " |")
    plot_rows = [dict(r, domain="toy", metric="sw") for r in rows if r["model"] != "exact"]
    return "\n".join(L), plot_rows


# --- the domains ----------------------------------------------------------------------------------

def domain_study(name: str, ect_path: Path | None, quick: bool, device: str) -> tuple[str, list[dict]]:
    from diffsuite.core.generate import generate
    from diffsuite.core.training.export import build_from_export
    from hydra.utils import instantiate

    spec = DOMAINS[name]
    cfg_domain = compose([f"domain={name}"]).domain
    shipped = instantiate(cfg_domain).pretrained
    if shipped is None or not Path(shipped).is_file():
        return f"### {name}\n\nskipped: no shipped checkpoint.", []
    domain, base, _ = build_from_export(shipped, device, expect_domain=name)
    models = {"base": base}
    if ect_path is not None and ect_path.is_file():
        models["ect"] = build_from_export(ect_path, device, expect_domain=name)[1]
    n = 2 if quick else spec["n"]
    evals_list = (1, 2) if quick else EVALS
    pairs = [("base", s) for s in (["euler", "heun"] if quick else SOLVERS)]
    pairs += [("ect", "consistency")] if "ect" in models else []
    rows = []
    options = dict(spec["options"])
    if quick and "class" in options:
        options["class"] = options["class"][:n]
    for model_name, sampler in pairs:
        for evals in evals_list:
            steps = evals if sampler == "consistency" else steps_for_evaluations(sampler, evals)
            grid = consistency_sigmas if sampler == "consistency" else None
            t0 = time.perf_counter()
            samples, _ = generate(domain, models[model_name], n, sampler=sampler, steps=steps, grid=grid,
                                  guidance=spec["guidance"], seed=0, device=device, batch_size=n, **options)
            wall = time.perf_counter() - t0
            with tempfile.TemporaryDirectory() as tmp:
                domain.write(samples, Path(tmp))
                figures = domain.evaluate(Path(tmp))
            row = {"model": model_name, "sampler": sampler, "evals": evals, "wall_s": wall, "domain": name,
                   "metric": spec["metrics"][0]}
            row.update({k: figures.get(k, math.nan) for k in spec["metrics"]})
            rows.append(row)
            print(f"{name} {model_name} {sampler} {evals}: " + ", ".join(f"{k} {row[k]:.4g}" for k in spec["metrics"])
                  + f", {wall:.1f} s", flush=True)
    L = [f"### {name}, {datetime.date.today()}: {Path(shipped).name}" + (f" and {ect_path}" if "ect" in models else ""), "",
         f"Machine: {machine(device)}. {n} samples per row, guidance {spec['guidance']}, seed 0; base samplers on "
         "the Karras grid, `consistency` on `consistency_sigmas`. Wall time: sampling and decoding, not evaluation."]
    if "ect" not in models:
        L.append(f"No consistency-tuned export ({ect_path}): run `diffsuite train experiment={name}_ect` "
                 "(configs/experiment) first; only the base model's samplers are shown.")
    L += ["", "| model | sampler | " + " | ".join(f"{m}@{e}" for m in spec["metrics"] for e in evals_list)
          + " | s@1 | s@max |", "|---|---|" + "---|" * (len(spec["metrics"]) * len(evals_list) + 2)]
    keyed = {}
    for r in rows:
        keyed.setdefault((r["model"], r["sampler"]), {})[r["evals"]] = r
    for (m, s), by in keyed.items():
        L.append(f"| {m} | {s} | " + " | ".join(f"{by[e][k]:.4g}" for k in spec["metrics"] for e in evals_list)
                 + f" | {by[evals_list[0]]['wall_s']:.1f} | {by[evals_list[-1]]['wall_s']:.1f} |")
    return "\n".join(L), rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = list(dict.fromkeys(r["domain"] for r in rows))
    fig, axes = plt.subplots(len(domains), 2, figsize=(11, 3.6 * len(domains)), squeeze=False)
    for row_axes, d in zip(axes, domains):
        mine = [r for r in rows if r["domain"] == d]
        metric = mine[0]["metric"]
        for key in dict.fromkeys((r["model"], r["sampler"]) for r in mine):
            pts = sorted((r for r in mine if (r["model"], r["sampler"]) == key), key=lambda r: r["evals"])
            style = dict(marker="o", lw=2.2 if key[0] == "ect" else 1.0, ls="-" if key[0] == "ect" else "--")
            label = f"{key[0]} {key[1]}"
            row_axes[0].plot([r["evals"] for r in pts], [r[metric] for r in pts], label=label, **style)
            row_axes[1].plot([r["wall_s"] for r in pts], [r[metric] for r in pts], label=label, **style)
        for ax, xl in zip(row_axes, ("network evaluations", "wall time (s)")):
            ax.set_xscale("log")
            ax.set_xlabel(xl)
            ax.set_ylabel(metric)
            ax.set_title(d)
        if metric in ("sw", "fd"):
            row_axes[0].set_yscale("log")
            row_axes[1].set_yscale("log")
        row_axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", default="toy,audio,video,molecules")
    ap.add_argument("--ect", action="append", default=[], metavar="DOMAIN=PATH",
                    help="a consistency-tuned export (default runs/<domain>/ect/export/weights.safetensors)")
    ap.add_argument("--toy-steps", type=int, default=4000)
    ap.add_argument("--toy-n", type=int, default=4000)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, records nothing")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="folder for the toy runs (default: a temporary one)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    ect = {}
    for item in a.ect:
        if "=" not in item:
            raise SystemExit(f"fewstep: --ect wants DOMAIN=PATH, got {item!r}")
        k, v = item.split("=", 1)
        ect[k] = Path(v)
    names = [d for d in a.domains.split(",") if d]
    for d in names:
        if d != "toy" and d not in DOMAINS:
            raise SystemExit(f"fewstep: unknown domain {d!r}; choose from toy, {', '.join(DOMAINS)}")
    if a.quick:
        a.toy_steps, a.toy_n = 200, 500
    texts, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or Path(tmp)
        for d in names:
            t0 = time.perf_counter()
            if d == "toy":
                text, r = toy_study(out, a.toy_steps, a.toy_n)
            else:
                text, r = domain_study(d, ect.get(d, ROOT / "runs" / d / "ect" / "export" / "weights.safetensors"),
                                       a.quick, a.device)
            print(text, flush=True)
            print(f"[{d}: {time.perf_counter() - t0:.0f} s]", flush=True)
            texts.append(text)
            rows += r
    stem = "fewstep" if names == ["toy"] else "fewstep_" + "_".join(names)  # one plot per study run
    png = Path(__file__).parent / (f"{stem}_quick.png" if a.quick else f"{stem}.png")
    if rows:
        plot(rows, Path(tempfile.gettempdir()) / png.name if a.quick else png)
    if not (a.quick or a.no_record):
        record(SECTION, "\n\n".join(texts) + f"\n\nPlot: `benchmarks/{png.name}`. Command: "
               f"`.venv/bin/python benchmarks/fewstep.py --domains {a.domains}"
               + "".join(f" --ect {e}" for e in a.ect) + "`.")
        print(f"recorded under {SECTION} in benchmarks/RESULTS.md; plot {png}")


if __name__ == "__main__":
    main()
