"""Copy exported audio weights with some domain settings changed (the ones that only decide how
samples are decoded or where data would be read), e.g. to ship a trained checkpoint with the
vocoder chosen after its training started:

    python -m diffsuite.domains.audio.ship runs/audio/fsdd_s2/export/weights.safetensors \\
        domains/audio/pretrained/audio_fsdd.safetensors vocoder=griffinlim griffin_lim_init=pghi

The weights are copied unchanged; the new settings are checked by building the domain from them.
Settings the network depends on (features, classes, preset, clip length) cannot be changed here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

DECODING = ("vocoder", "griffin_lim_iters", "griffin_lim_init", "hifigan_model", "data", "pretrained", "classifier",
            "cache_dir")


def ship(src: str | Path, dst: str | Path, changes: dict) -> Path:
    from diffsuite.core.training.export import export_weights, load_exported

    from .domain import AudioDomain

    fixed = sorted(set(changes) - set(DECODING))
    if fixed:
        raise ValueError(f"{', '.join(fixed)}: the network was trained with these; only {', '.join(DECODING)} can change")
    state, config = load_exported(src)
    if config["domain"].get("_target_") != "diffsuite.domains.audio.AudioDomain":
        raise ValueError(f"{src} holds a {config['domain'].get('_target_')} model, not an audio one")
    config["domain"].update(changes)
    domain = AudioDomain(**{k: v for k, v in config["domain"].items() if k != "_target_"})  # raises naming a bad one
    domain.vocoder_module()
    return export_weights(dst, state, config)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path, help="never overwritten")
    p.add_argument("changes", nargs="*", help="key=value domain settings, e.g. vocoder=griffinlim")
    a = p.parse_args(argv)
    changes = {}
    for item in a.changes:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected key=value")
        changes[key] = yaml.safe_load(value)
    print(f"wrote {ship(a.src, a.dst, changes)}")


if __name__ == "__main__":
    main()
