"""Layers shared by the domains' denoisers."""

from .attention import Attention, apply_rope, dot_product_attention, rope_frequencies
from .embedding import ClassEmbedding, NoiseEmbedding
from .modulation import AdaLNZero, modulate

__all__ = ["Attention", "dot_product_attention", "apply_rope", "rope_frequencies", "ClassEmbedding", "NoiseEmbedding", "AdaLNZero", "modulate"]
