"""The hierarchical VQ-VAE."""

from jukebox_jax.vqvae.bottleneck import dequantise, quantise
from jukebox_jax.vqvae.vqvae import VQVAE

__all__ = ["VQVAE", "dequantise", "quantise"]
