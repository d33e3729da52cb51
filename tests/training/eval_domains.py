"""Toy-domain variants for the periodic-evaluation tests: one whose samples include an audio
clip and an animation (as the audio and video domains write), one whose evaluate fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffsuite.core.toy import ToyDomain

CLIP_RATE = 8000


class MediaToyDomain(ToyDomain):
    """The toy, writing beside its scatter plot a WAV clip and a three-frame GIF made from the samples."""

    def write(self, samples, out_dir: Path) -> list[Path]:
        import soundfile as sf
        from PIL import Image

        paths = super().write(samples, out_dir)
        pts = np.stack(samples)
        t = np.arange(CLIP_RATE // 4) / CLIP_RATE
        wav = Path(out_dir) / "clip.wav"
        sf.write(str(wav), 0.5 * np.sin(2 * np.pi * (300 + 100 * abs(pts[0, 0])) * t), CLIP_RATE)
        frames = [Image.fromarray(np.full((16, 24), 60 * k, dtype=np.uint8)) for k in range(3)]
        gif = Path(out_dir) / "anim.gif"
        frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
        return [*paths, wav, gif]


class FailingEvalToyDomain(ToyDomain):
    """The toy whose evaluation always fails (as a missing reference set or classifier would)."""

    def evaluate(self, samples, **options):
        raise RuntimeError("reference statistics unavailable")
