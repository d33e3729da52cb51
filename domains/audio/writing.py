"""Samples to files a person opens: a 16-bit WAV and a spectrogram PNG per clip, never
overwriting an existing file (each file is opened with mode 'x')."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from diffsuite.core.naming import free_stem  # noqa: E402

LABEL_IN_NAME = re.compile(r"_class(\d+)")


def _free_stem(out_dir: Path, stem: str) -> str:
    """`stem` itself, or stem_1, stem_2, ...: core.naming's rule, for the .wav and .png pair."""
    return free_stem(out_dir, stem, (".wav", ".png"))


def spectrogram_png(f, features: np.ndarray, *, title: str, seconds: float, top_hz: float) -> None:
    fig, ax = plt.subplots(figsize=(4, 2.6), dpi=100)
    ax.imshow(features, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, features.shape[0]))
    ax.set_xlabel("seconds")
    ax.set_ylabel(f"mel bin (0-{top_hz:.0f} Hz)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(f, format="png")
    plt.close(fig)


def write_clips(samples: list[dict], out_dir: str | Path) -> list[Path]:
    """Each sample dict holds wave (np float), sample_rate, label (int, -1 unconditional),
    class_name and features (M, T). Names: sample_<i>_class<label>.wav/.png (label used by evaluate)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, s in enumerate(samples):
        tag = f"_class{s['label']}" if s["label"] >= 0 else "_uncond"
        stem = _free_stem(out_dir, f"sample_{i:04d}{tag}")
        wav, png = out_dir / f"{stem}.wav", out_dir / f"{stem}.png"
        wave = np.asarray(s["wave"], dtype=np.float32)
        with open(wav, "xb") as f:
            sf.write(f, wave, s["sample_rate"], format="WAV", subtype="PCM_16")
        seconds = len(wave) / s["sample_rate"]
        with open(png, "xb") as f:
            spectrogram_png(f, np.asarray(s["features"]), title=f"{stem}: {s['class_name']}", seconds=seconds,
                            top_hz=s["sample_rate"] / 2)
        written += [wav, png]
    return written
