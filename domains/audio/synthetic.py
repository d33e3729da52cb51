"""The embedded default dataset: labelled sounds synthesised deterministically, no download.

Ten classes that differ in timbre (sine, odd harmonics, sawtooth, inharmonic partials, noise),
pitch (low / high, rising / falling sweeps) and envelope (percussive decay, sustained, swell,
tremolo, repeated notes). Clip ``i`` of a split is a pure function of (split, i): a numpy
generator seeded from both draws the jitter in pitch, onset, level and noise.
"""

from __future__ import annotations

import zlib

import numpy as np

SYNTH_CLASSES = (
    "pluck_low",     # sine 110-160 Hz, fast exponential decay
    "flute_high",    # sine + weak 2nd harmonic 700-1000 Hz, sustained with soft attack
    "clarinet",      # odd harmonics (square-like) 250-350 Hz, sustained
    "brass_swell",   # sawtooth 150-220 Hz, crescendo
    "chirp_up",      # sine sweep 300 -> 1500 Hz
    "chirp_down",    # sine sweep 1500 -> 300 Hz
    "snare",         # band-passed noise, percussive, two hits
    "tremolo",       # 440-560 Hz sine with 6-10 Hz amplitude modulation
    "bell",          # inharmonic partials (1, 2.76, 5.4, 8.9), slow decay
    "staccato",      # repeated short notes at 4-6 per second, 400-600 Hz triangle
)
SYNTH_VERSION = 1  # bump when a change to this file changes the sounds (keys the feature cache)
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


def _rng(split: str, index: int) -> np.random.Generator:
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_SEEDS)}")
    return np.random.default_rng([SPLIT_SEEDS[split], index, zlib.crc32(b"diffsuite-audio")])


def _phase(freq: np.ndarray | float, n: int, sr: int) -> np.ndarray:
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    return 2 * np.pi * np.cumsum(f) / sr


def _envelope(kind: str, t: np.ndarray, onset: float, dur: float, rate: float) -> np.ndarray:
    u = np.clip((t - onset) / dur, 0, None)  # time since onset, in units of the note length
    on = (t >= onset) & (u <= 1)
    if kind == "decay":
        env = np.exp(-rate * u)
    elif kind == "sustain":
        env = np.minimum(u / 0.1, 1) * np.minimum((1 - u) / 0.1, 1)
    elif kind == "swell":
        env = u**2 * np.minimum((1 - u) / 0.05, 1)
    else:
        raise ValueError(kind)
    return np.where(on, env, 0.0)


def synth_clip(label: int, split: str, index: int, *, sample_rate: int = 8000, num_samples: int = 8192) -> np.ndarray:
    """One clip of class ``label`` as float32 in [-1, 1]."""
    if not 0 <= label < len(SYNTH_CLASSES):
        raise ValueError(f"class {label} is outside the {len(SYNTH_CLASSES)} synthetic classes")
    g = _rng(split, index)
    n, sr = num_samples, sample_rate
    t = np.arange(n) / sr
    T = n / sr
    onset = g.uniform(0.0, 0.15) * T
    dur = g.uniform(0.6, 0.8) * T
    jit = g.uniform(0.9, 1.1)
    name = SYNTH_CLASSES[label]
    if name == "pluck_low":
        f = g.uniform(110, 160)
        y = np.sin(_phase(f, n, sr)) * _envelope("decay", t, onset, dur, rate=g.uniform(5, 8))
    elif name == "flute_high":
        f = g.uniform(700, 1000)
        p = _phase(f, n, sr)
        y = (np.sin(p) + 0.15 * np.sin(2 * p)) * _envelope("sustain", t, onset, dur, 0)
    elif name == "clarinet":
        f = g.uniform(250, 350)
        p = _phase(f, n, sr)
        y = sum(np.sin(k * p) / k for k in (1, 3, 5, 7, 9)) * _envelope("sustain", t, onset, dur, 0)
    elif name == "brass_swell":
        f = g.uniform(150, 220)
        p = _phase(f, n, sr)
        y = sum(np.sin(k * p) / k for k in range(1, 12)) * 0.6 * _envelope("swell", t, onset, dur, 0)
    elif name in ("chirp_up", "chirp_down"):
        lo, hi = 300 * jit, 1500 * jit
        u = np.clip((t - onset) / dur, 0, 1)
        f = lo * (hi / lo) ** (u if name == "chirp_up" else 1 - u)
        y = np.sin(_phase(f, n, sr)) * _envelope("sustain", t, onset, dur, 0)
    elif name == "snare":
        noise = g.standard_normal(n)
        centre = g.uniform(1200, 2000)
        spec = np.fft.rfft(noise)
        freqs = np.fft.rfftfreq(n, 1 / sr)
        spec *= np.exp(-0.5 * ((freqs - centre) / 500) ** 2)
        band = np.fft.irfft(spec, n)
        band /= np.abs(band).max() + 1e-9
        gap = g.uniform(0.25, 0.4) * T
        env = _envelope("decay", t, onset, 0.3 * T, 6) + _envelope("decay", t, onset + gap, 0.3 * T, 6)
        y = band * env
    elif name == "tremolo":
        f = g.uniform(440, 560)
        am = 0.5 * (1 + np.sin(2 * np.pi * g.uniform(6, 10) * t))
        y = np.sin(_phase(f, n, sr)) * am * _envelope("sustain", t, onset, dur, 0)
    elif name == "bell":
        f = g.uniform(300, 450)
        y = sum(a * np.sin(_phase(r * f, n, sr)) for r, a in ((1, 1), (2.76, 0.6), (5.4, 0.4), (8.9, 0.25)) if r * f < sr / 2)
        y = y * _envelope("decay", t, onset, dur + 0.2 * T, rate=3)
    else:  # staccato
        f = g.uniform(400, 600)
        p = _phase(f, n, sr)
        tri = 2 / np.pi * np.arcsin(np.sin(p))
        rate = g.uniform(4, 6)
        gate = ((t - onset) * rate % 1 < 0.35) & (t >= onset) & (t <= onset + dur)
        y = tri * gate * np.exp(-8 * ((t - onset) * rate % 1))
    y = y / (np.abs(y).max() + 1e-9) * g.uniform(0.4, 0.9)
    y = y + 0.003 * g.standard_normal(n)
    return np.clip(y, -1, 1).astype(np.float32)


def synth_split(split: str, per_class: int, *, sample_rate: int = 8000, num_samples: int = 8192):
    """(waves (N, num_samples) float32, labels (N,) int64), classes interleaved."""
    k = len(SYNTH_CLASSES)
    labels = np.arange(per_class * k) % k
    waves = np.stack([synth_clip(int(c), split, i, sample_rate=sample_rate, num_samples=num_samples)
                      for i, c in enumerate(labels)])
    return waves, labels.astype(np.int64)
