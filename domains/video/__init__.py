"""Video: spatio-temporal patch diffusion on clips, with an embedded moving-digits data set."""

from .domain import VideoDomain

__all__ = ["VideoDomain"]
