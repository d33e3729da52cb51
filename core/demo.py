"""The main job on embedded defaults (`make demo`, `diffsuite demo`): nothing is downloaded.

1. Train the 2-D toy for a few seconds with the real trainer, sample it, draw samples on data.
2. For every domain: sample its shipped pretrained weights, write the files, evaluate them.
It ends by naming every file it wrote and printing the quality figures.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra import compose
from hydra.utils import instantiate

from .api import Model, evaluate
from .cli import print_table, resolve_device

log = logging.getLogger("diffsuite.demo")


def demo(cfg) -> dict[str, dict[str, float]]:
    out = Path(cfg.out)
    device = resolve_device(cfg.device)
    written: dict[str, list[Path]] = {}
    figures: dict[str, dict[str, float]] = {}

    _toy(cfg, out, device, written, figures)
    failures = _shipped(cfg, out, device, written, figures)

    print("\nfiles written:")
    for name, files in written.items():
        for f in files:
            print(f"  [{name}] {f}")
    for name, figs in figures.items():
        print_table(f"quality figures: {name}", figs)
    if failures:  # after every file and figure the other domains made
        raise SystemExit("demo: " + "; ".join(f"{n} failed ({why})" for n, why in failures.items()))
    return figures


def _toy(cfg, out: Path, device, written: dict, figures: dict) -> None:
    """1. the toy, trained here by the same trainer every domain uses."""
    from .training import train

    t0 = time.perf_counter()
    train_cfg = compose(config_name="train", overrides=[
        "domain=toy", f"trainer.steps={cfg.toy_steps}", "trainer.batch_size=256", "trainer.lr=2e-3",
        "trainer.warmup=100", "trainer.num_workers=0", "trainer.checkpoint_every=0", "trainer.tensorboard=false",
        f"trainer.device={device}", f"run_dir={out / 'toy' / 'train'}"])
    weights = train(train_cfg)
    toy = Model.from_export(weights, device=device)  # the Python API, as a user would call it
    samples = toy.sample(2000, sampler="heun", steps=24, schedule=instantiate(cfg.schedule), batch_size=2000)
    written["toy"] = [weights, *samples.save(out / "toy")]
    figures["toy"] = evaluate(toy, out / "toy")
    print(f"toy: trained {cfg.toy_steps} steps and sampled in {time.perf_counter() - t0:.0f} s")



def _shipped(cfg, out: Path, device, written: dict, figures: dict) -> dict[str, str]:
    """2. every domain from its shipped checkpoint; a domain that fails is reported (returned: name ->
    error) and the others go on."""
    failures: dict[str, str] = {}
    for name, spec in cfg.domains.items():
        t0 = time.perf_counter()
        try:
            shipped = instantiate(spec.domain).pretrained
        except ImportError as e:
            print(f"{name}: skipped, the domain package is not importable ({e})")
            continue
        if shipped is None or not Path(shipped).is_file():
            print(f"{name}: skipped, no shipped pretrained weights")
            continue
        try:
            model = Model.from_export(shipped, device=device, expect_domain=name)
            samples = model.sample(spec.n, sampler=spec.sampler, steps=spec.steps, schedule=instantiate(cfg.schedule),
                                   guidance=spec.guidance, batch_size=spec.n, **dict(spec.options))
            written[name] = samples.save(out / name)
            figures[name] = evaluate(model, out / name)
        except Exception as e:  # noqa: BLE001 -- reported below, and the demo exits non-zero
            failures[name] = f"{type(e).__name__}: {e}"
            log.exception("%s failed", name)
            print(f"{name}: FAILED ({failures[name]})")
            continue
        print(f"{name}: sampled {spec.n} from {shipped.name} and evaluated in {time.perf_counter() - t0:.0f} s")
    return failures
