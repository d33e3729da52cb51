"""Audio: which vocoder turns the model's features back into sound best, measured on held-out
real FSDD clips by the round trip waveform -> features -> waveform.

    python benchmarks/audio_vocoders.py [--data ../shared/data/fsdd/train] [--clips 60] [--threads 2]
                                        [--methods gl32_8k,hifigan_universal,...] [--no-record]

Per method: spectral convergence ||S - S'|| / ||S|| and log-spectral distance (dB) of the 8 kHz
STFT magnitudes (n_fft 256, hop 64) against the original clip, the accuracy of a quick MFCC
digit classifier (logistic regression on MFCC statistics, trained on the training takes) on the
round-tripped clips, and the wall time per clip (one clip at a time, `--threads` torch threads).
The clips are held-out takes (take 5 of every speaker and digit by default: 60 clips); nothing
here trains on them. Records its table under ``## Audio`` in benchmarks/RESULTS.md.
For development and benchmarks only: tests never read FSDD.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
import torchaudio.transforms as T

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import machine, record  # noqa: E402
from diffsuite.domains.audio.features import HIFIGAN_SPEC, FeatureSpec, LogMel, make_vocoder  # noqa: E402
from diffsuite.domains.audio.folder import read_audio  # noqa: E402

NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
RATE = 8000
TODAY = dict(sample_rate=8000, n_fft=256, hop_length=128, n_mels=64, f_min=20.0)  # the synthetic-set features
HOP64 = dict(sample_rate=8000, n_fft=256, hop_length=64, n_mels=64, f_min=20.0)
HIFI = dict(HIFIGAN_SPEC)
# name: (feature settings, vocoder options)
METHODS = {
    "gl32_8k": (TODAY, dict(name="griffinlim", griffin_lim_iters=32)),
    "gl100_8k_hop64": (HOP64, dict(name="griffinlim", griffin_lim_iters=100)),
    "pghi_only_8k_hop64": (HOP64, dict(name="griffinlim", griffin_lim_iters=0, griffin_lim_init="pghi")),
    "pghi_gl32_8k_hop64": (HOP64, dict(name="griffinlim", griffin_lim_iters=32, griffin_lim_init="pghi")),
    "pghi_gl100_8k_hop64": (HOP64, dict(name="griffinlim", griffin_lim_iters=100, griffin_lim_init="pghi")),
    "pghi_gl32_hifimel": (HIFI, dict(name="griffinlim", griffin_lim_iters=32, griffin_lim_init="pghi")),
    "hifigan_universal": (HIFI, dict(name="hifigan", hifigan_model="universal")),
    "hifigan_LJSpeech": (HIFI, dict(name="hifigan", hifigan_model="LJSpeech")),
}


def parse(path: Path) -> tuple[int, str, int]:
    m = NAME.match(path.name)
    if m is None:
        raise ValueError(f"{path}: not an FSDD file name (digit_speaker_take.wav)")
    return int(m.group(1)), m.group(2), int(m.group(3))


def analysis(wave: torch.Tensor) -> torch.Tensor:
    """8 kHz STFT magnitude (bins, frames) used by every figure."""
    return torch.stft(wave, 256, 64, window=torch.hann_window(256), return_complex=True).abs()


def lsd_db(ref: torch.Tensor, est: torch.Tensor) -> float:
    """Log-spectral distance in dB over frames within 60 dB of the clip's loudest frame."""
    p, q = analysis(ref) ** 2, analysis(est) ** 2
    floor = p.max() * 1e-8
    d = 10 * (torch.log10(p.clamp_min(floor)) - torch.log10(q.clamp_min(floor)))  # (bins, frames)
    energy = p.sum(0)
    keep = energy > energy.max() * 1e-6
    return float(d[:, keep].pow(2).mean(0).sqrt().mean())


def sc(ref: torch.Tensor, est: torch.Tensor) -> float:
    a, b = analysis(ref), analysis(est)
    return float((a - b).norm() / a.norm().clamp_min(1e-12))


class MfccClassifier:
    """Logistic regression on per-clip MFCC means, standard deviations and 6 time-segment means."""

    def __init__(self):
        self.mfcc = T.MFCC(sample_rate=RATE, n_mfcc=20, melkwargs=dict(n_fft=256, hop_length=64, n_mels=40, f_min=20.0))

    def features(self, wave: torch.Tensor) -> np.ndarray:
        m = self.mfcc(wave)  # (20, frames)
        seg = torch.nn.functional.adaptive_avg_pool1d(m[None], 6)[0].flatten()
        return torch.cat([m.mean(-1), m.std(-1), seg]).numpy()

    def fit(self, waves: list[torch.Tensor], labels: list[int]) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
        self.model.fit(np.stack([self.features(w) for w in waves]), labels)

    def predict(self, waves: list[torch.Tensor]) -> np.ndarray:
        return self.model.predict(np.stack([self.features(w) for w in waves]))


def round_trip(wave8k: torch.Tensor, spec: FeatureSpec, logmel: LogMel, vocoder) -> tuple[torch.Tensor, torch.Tensor]:
    """(original trimmed to whole frames, round-tripped) both at 8 kHz."""
    wave = AF.resample(wave8k, RATE, spec.sample_rate) if spec.sample_rate != RATE else wave8k
    with torch.no_grad():
        out = vocoder(logmel(wave)[None])[0]
    if spec.sample_rate != RATE:
        out = AF.resample(out, spec.sample_rate, RATE)
    n = min(len(out), len(wave8k))
    return wave8k[:n], out[:n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/fsdd/train")
    p.add_argument("--takes", default="5", help="held-out takes to round-trip, comma-separated")
    p.add_argument("--clips", type=int, default=60)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    files = sorted(a.data.glob("*.wav"))
    if not files:
        raise SystemExit(f"{a.data}: no .wav files")
    held_takes = {int(t) for t in a.takes.split(",")}
    train = [f for f in files if parse(f)[2] >= 12 and parse(f)[2] % 2 == 0]  # even training takes (12-48)
    held = [f for f in files if parse(f)[2] in held_takes][: a.clips]
    t0 = time.time()
    clf = MfccClassifier()
    clf.fit([read_audio(f, RATE) for f in train], [parse(f)[0] for f in train])
    labels = np.array([parse(f)[0] for f in held])
    originals = [read_audio(f, RATE) for f in held]
    real_acc = float((clf.predict(originals) == labels).mean())
    print(f"MFCC classifier trained on {len(train)} clips in {time.time() - t0:.0f} s; {real_acc:.3f} on {len(held)} "
          "held-out real clips", flush=True)
    rows = []
    for name in a.methods.split(","):
        feats, opts = METHODS[name]
        spec = FeatureSpec(**{**feats, "offset": 0.0, "scale": 1.0})
        try:
            vocoder = make_vocoder(opts["name"], spec, **{k: v for k, v in opts.items() if k != "name"})
        except (ModuleNotFoundError, ValueError) as e:
            print(f"{name}: skipped ({e})", flush=True)
            continue
        logmel = LogMel(spec)
        round_trip(originals[0], spec, logmel, vocoder)  # warm-up (first-call costs)
        scs, lsds, outs, seconds, cpu, audio = [], [], [], 0.0, 0.0, 0.0
        for w in originals:
            t, c = time.perf_counter(), time.process_time()
            ref, out = round_trip(w, spec, logmel, vocoder)
            seconds += time.perf_counter() - t
            cpu += time.process_time() - c
            audio += len(ref) / RATE
            scs.append(sc(ref, out))
            lsds.append(lsd_db(ref, out))
            outs.append(out)
        acc = float((clf.predict(outs) == labels).mean())
        rows.append((name, spec, np.mean(scs), np.mean(lsds), acc, seconds / len(originals), cpu / audio))
        print(f"{name}: SC {np.mean(scs):.3f}  LSD {np.mean(lsds):.2f} dB  accuracy {acc:.3f}  "
              f"{seconds / len(originals):.3f} s/clip wall, {cpu / audio:.2f} CPU s per s of audio", flush=True)
    text = [f"### Vocoders: FSDD round trip, {datetime.date.today()}, {machine('cpu')}", "",
            f"`python benchmarks/audio_vocoders.py --clips {a.clips} --takes {a.takes} --threads {a.threads}`: "
            f"{len(held)} held-out real clips (takes {a.takes}; mean {np.mean([len(w) for w in originals]) / RATE:.2f} s), "
            "wave -> features -> wave. SC = spectral convergence, LSD = log-spectral distance (8 kHz STFT, n_fft 256, "
            f"hop 64); accuracy of an MFCC logistic-regression classifier trained on the even takes 12-48 "
            f"(real clips: {real_acc:.3f}); wall seconds per clip (one clip at a time, {a.threads} threads, on a shared "
            "machine: see the load) and CPU seconds (all threads) per second of audio.", "",
            "| method | features (rate, n_fft/hop, mels) | SC | LSD (dB) | MFCC accuracy | wall s per clip | CPU s per s of audio |",
            "|---|---|---|---|---|---|---|"]
    for name, spec, s, l, acc, per_clip, per_second in rows:
        text.append(f"| {name} | {spec.sample_rate} Hz, {spec.n_fft}/{spec.hop_length}, {spec.n_mels} | {s:.3f} | "
                    f"{l:.2f} | {acc:.3f} | {per_clip:.3f} | {per_second:.2f} |")
    print("\n".join(text))
    if not a.no_record:
        record("## Audio", "\n".join(text))


if __name__ == "__main__":
    main()
