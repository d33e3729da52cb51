"""Normalised log-mel features and their inversion to sound.

Forward: waveform -> power mel spectrogram (torchaudio) -> log with a floor -> affine map to a
standard deviation of about ``sigma_data``. Inverse: undo the map -> power mel -> linear power
spectrogram by ``InverseMelScale`` (least squares) -> waveform by Griffin-Lim. The round trip is
measured by spectral convergence ||S - S'||_F / ||S||_F on magnitude spectrograms.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from einops import rearrange
import torchaudio.functional as F
import torchaudio.transforms as T
from torch import Tensor, nn


@dataclass(frozen=True)
class FeatureSpec:
    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 128
    n_mels: int = 64
    f_min: float = 20.0
    floor: float = 1e-5  # power floor before the log (about -100 dB re full scale)
    offset: float = -9.4  # log-mel values are mapped to (log - offset) * scale
    scale: float = 0.17

    def seconds_to_frames(self, seconds: float) -> int:
        return int(math.ceil(seconds * self.sample_rate / self.hop_length))

    def frames_to_seconds(self, frames: int) -> float:
        return frames * self.hop_length / self.sample_rate

    def as_dict(self) -> dict:
        return asdict(self)


class LogMel(nn.Module):
    """(..., samples) -> (..., n_mels, samples // hop) normalised log-mel; pad value = silence."""

    def __init__(self, spec: FeatureSpec):
        super().__init__()
        self.spec = spec
        self.mel = T.MelSpectrogram(sample_rate=spec.sample_rate, n_fft=spec.n_fft, hop_length=spec.hop_length,
                                    n_mels=spec.n_mels, f_min=spec.f_min, power=2.0, norm="slaney", mel_scale="slaney")

    def forward(self, wave: Tensor) -> Tensor:
        frames = wave.shape[-1] // self.spec.hop_length
        m = self.mel(wave.float())[..., :frames]  # (..., M, frames)
        return (m.clamp_min(self.spec.floor).log() - self.spec.offset) * self.spec.scale

    @property
    def silence(self) -> float:
        return (math.log(self.spec.floor) - self.spec.offset) * self.spec.scale


class MelInverter(nn.Module):
    """Normalised log-mel (..., n_mels, frames) -> waveform (..., frames * hop) by InverseMelScale + Griffin-Lim."""

    def __init__(self, spec: FeatureSpec, *, n_iter: int = 32):
        super().__init__()
        self.spec = spec
        n_stft = spec.n_fft // 2 + 1
        self.inv_mel = T.InverseMelScale(n_stft=n_stft, n_mels=spec.n_mels, sample_rate=spec.sample_rate,
                                         f_min=spec.f_min, norm="slaney", mel_scale="slaney")
        self.n_iter = n_iter
        self.register_buffer("window", torch.hann_window(spec.n_fft), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        mel = (x.float() / self.spec.scale + self.spec.offset).exp()  # (..., M, F) power mel
        lead = mel.shape[:-2]
        flat = rearrange(mel.reshape(-1, *mel.shape[-2:]), "b m t -> m (b t)")  # one solve, many columns
        lin = rearrange(self.inv_mel(flat).clamp_min(0), "f (b t) -> b f t", t=mel.shape[-1])
        lin = lin.reshape(*lead, *lin.shape[-2:])  # (..., n_stft, F) power spectrogram
        lin = torch.cat([lin, lin[..., -1:]], dim=-1)  # (..., n_stft, F + 1): STFT of F * hop samples
        frames = x.shape[-1]
        s = self.spec  # zero initial phase (rand_init=False): the same features give the same sound
        wave = F.griffinlim(lin, self.window, s.n_fft, s.hop_length, s.n_fft, 2.0, self.n_iter, 0.99,
                            frames * s.hop_length, False)
        return wave.clamp(-1, 1)


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
