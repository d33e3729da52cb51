"""`diffsuite train|sample|evaluate|demo`: hydra entry points over `configs/`.

Each command is a hydra app, so every config key can be overridden (`domain=audio steps=25`),
groups are listed by `diffsuite <command> --help`, each run gets its own output folder, and
`-m hydra/launcher=submitit_slurm` sends a run to Slurm.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")
COMMANDS = {
    "train": "train a denoiser (configs/train.yaml)",
    "sample": "draw samples from exported weights and write files (configs/sample.yaml)",
    "evaluate": "offline quality figures for sample files (configs/evaluate.yaml)",
    "demo": "train the toy and sample every domain's shipped weights (configs/demo.yaml)",
}
USAGE = "usage: diffsuite {train,sample,evaluate,demo} [key=value ...] [group=option ...]\n\n" + "\n".join(
    f"  {k:<9} {v}" for k, v in COMMANDS.items()) + (
    "\n\n`diffsuite COMMAND --help` lists the config groups and the composed config.\n"
    "examples:\n  diffsuite sample domain=audio n=16 class=3 seconds=1.0 out=clips\n"
    "  diffsuite evaluate domain=molecules samples=mols/molecules.sdf out=figures.json\n")


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _checkpoint(cfg) -> Path:
    from hydra.utils import instantiate

    if cfg.get("checkpoint"):
        return Path(cfg.checkpoint)
    domain = instantiate(cfg.domain)
    if domain.pretrained is None or not Path(domain.pretrained).is_file():
        raise SystemExit(f"diffsuite: domain {domain.name!r} ships no pretrained weights; pass checkpoint=PATH "
                         f"(an export/weights.safetensors written by `diffsuite train domain={domain.name}`)")
    return Path(domain.pretrained)


def print_table(title: str, figures: dict[str, float]) -> None:
    print(f"\n{title}")
    width = max(len(k) for k in figures) if figures else 0
    for k, v in figures.items():
        print(f"  {k:<{width}}  {v:.4g}" if isinstance(v, float) else f"  {k:<{width}}  {v}")


def run_train(cfg) -> None:
    from .training import train

    path = train(cfg)
    print(f"exported weights: {path}")


def run_sample(cfg) -> None:
    from hydra.utils import instantiate

    from .domain import config_options
    from .generate import generate
    from .training.export import build_from_export

    device = resolve_device(cfg.device)
    ckpt = _checkpoint(cfg)
    expect = instantiate(cfg.domain).name
    domain, denoiser, _ = build_from_export(ckpt, device, expect_domain=expect)
    samples, _ = generate(domain, denoiser, cfg.n, sampler=cfg.sampler.name, steps=cfg.steps,
                          grid=instantiate(cfg.schedule), sampler_options=dict(cfg.sampler.options),
                          guidance=cfg.guidance, guidance_rescale=cfg.guidance_rescale,
                          guidance_interval=cfg.guidance_interval, seed=cfg.seed, device=device,
                          batch_size=cfg.batch_size, progress=True, **config_options(cfg))
    files = domain.write(samples, Path(cfg.out))
    print(f"wrote {len(files)} files to {cfg.out}:")
    for f in files:
        print(f"  {f}")


def run_evaluate(cfg) -> None:
    from hydra.utils import instantiate

    from .domain import config_options

    domain = instantiate(cfg.domain)
    figures = domain.evaluate(Path(cfg.samples), **config_options(cfg, "evaluate_options"))
    print_table(f"{domain.name}: {cfg.samples}", figures)
    if cfg.out:
        out = Path(cfg.out)
        if out.exists():
            raise SystemExit(f"diffsuite: {out} exists; figures are never overwritten")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {out}")


def run_demo(cfg) -> None:
    from .demo import demo

    demo(cfg)


RUNNERS = {"train": run_train, "sample": run_sample, "evaluate": run_evaluate, "demo": run_demo}


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command not in RUNNERS:
        raise SystemExit(f"diffsuite: unknown command {command!r}\n\n{USAGE}")
    sys.argv = [f"diffsuite {command}", *rest]
    app = hydra.main(config_path=CONFIG_DIR, config_name=command, version_base="1.3")(RUNNERS[command])
    app()


if __name__ == "__main__":
    main()
