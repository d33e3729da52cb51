"""Audio: spectrogram diffusion over normalised log-mel features, inverted by Griffin-Lim."""

from .domain import AudioDomain

__all__ = ["AudioDomain"]
