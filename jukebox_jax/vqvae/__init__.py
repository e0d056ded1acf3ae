"""The hierarchical VQ-VAE."""

from jukebox_jax.vqvae.bottleneck import codebook_from_samples, dequantise, quantise
from jukebox_jax.vqvae.vqvae import VQVAE

__all__ = ["VQVAE", "codebook_from_samples", "dequantise", "quantise"]
