"""PyTorch -> jukebox-jax checkpoint conversion (the only package that imports torch)."""

from convert.convert import convert_checkpoint
from convert.sources import ConversionError

__all__ = ["ConversionError", "convert_checkpoint"]
