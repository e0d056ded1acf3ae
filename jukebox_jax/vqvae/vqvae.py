"""The hierarchical VQ-VAE (original `vqvae/vqvae.py`): one encoder, codebook and decoder per
level; level 0 is the finest (hop 8 in the released model)."""

from __future__ import annotations

import flax.linen as nn
import jax

from jukebox_jax.config import VQVAEConfig
from jukebox_jax.vqvae.bottleneck import dequantise, quantise
from jukebox_jax.vqvae.encdec import Decoder, Encoder


class VQVAE(nn.Module):
    """Param tree: `encoders_{L}`, `decoders_{L}`, `codebook_{L}` for each level L."""

    config: VQVAEConfig

    def setup(self):
        cfg = self.config
        self.encoders = [Encoder(cfg, level) for level in range(cfg.levels)]
        self.decoders = [Decoder(cfg, level) for level in range(cfg.levels)]
        self.codebooks = [
            self.param(f"codebook_{level}", nn.initializers.normal(1.0), (cfg.l_bins, cfg.emb_width))
            for level in range(cfg.levels)
        ]

    def encode(self, x: jax.Array, start_level: int = 0, end_level: int | None = None) -> list[jax.Array]:
        """Audio `[B, T, 1]` -> codes `[B, T / hop_lengths[L]]` for L in start_level..end_level-1."""
        end_level = self.config.levels if end_level is None else end_level
        return [quantise(self.encoders[level](x), self.codebooks[level]) for level in range(start_level, end_level)]

    def encode_continuous(self, x: jax.Array, level: int) -> jax.Array:
        """Audio `[B, T, 1]` -> encoder output of `level` before quantisation `[B, T_level, D]`."""
        return self.encoders[level](x)

    def decode(self, codes: jax.Array, level: int) -> jax.Array:
        """Codes of `level` `[B, T_level]` -> audio `[B, T_level * hop_lengths[level], 1]`."""
        return self.decoders[level](dequantise(codes, self.codebooks[level]))

    def __call__(self, x: jax.Array) -> tuple[list[jax.Array], list[jax.Array]]:
        """Encodes and reconstructs through every level: (codes per level, audio per level)."""
        codes = self.encode(x)
        return codes, [self.decode(z, level) for level, z in enumerate(codes)]
