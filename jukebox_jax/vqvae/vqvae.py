"""The hierarchical VQ-VAE (original `vqvae/vqvae.py`): one encoder, codebook and decoder per
level; level 0 is the finest (hop 8 in the released model).

Stores and computes as `VQVAEConfig.precision` says (float32 at HIGHEST matmul precision by
default); codebook distances and the decoded audio are float32 whatever it says.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jukebox_jax.config import VQVAEConfig
from jukebox_jax.layers import normal
from jukebox_jax.vqvae.bottleneck import dequantise, quantise
from jukebox_jax.vqvae.encdec import Decoder, Encoder


class VQVAE(nn.Module):
    """Param tree: `encoders_{L}`, `decoders_{L}`, `codebook_{L}` for each level L; codebooks
    `[l_bins, emb_width]` with axes ("codes", "code_width")."""

    config: VQVAEConfig

    def setup(self):
        cfg = self.config
        self.encoders = [Encoder(cfg, level) for level in range(cfg.levels)]
        self.decoders = [Decoder(cfg, level) for level in range(cfg.levels)]
        init, shape = normal(1.0, ("codes", "code_width")), (cfg.l_bins, cfg.emb_width)
        self.codebooks = [
            self.param(f"codebook_{level}", init, shape, cfg.precision.params.jnp) for level in range(cfg.levels)
        ]  # [l_bins, emb_width] each

    def encode(self, x: jax.Array, start_level: int = 0, end_level: int | None = None) -> list[jax.Array]:
        """Audio `[B, T, 1]` -> codes `[B, T / hop_lengths[L]]` for L in start_level..end_level-1."""
        end_level = self.config.levels if end_level is None else end_level
        p = self.config.precision
        return [quantise(self.encoders[level](x), self.codebooks[level], p) for level in range(start_level, end_level)]

    def encode_continuous(self, x: jax.Array, level: int) -> jax.Array:
        """Audio `[B, T, 1]` -> encoder output of `level` before quantisation `[B, T_level, D]`,
        in the compute dtype."""
        return self.encoders[level](x)

    def decode(self, codes: jax.Array, level: int) -> jax.Array:
        """Codes of `level` `[B, T_level]` -> float32 audio `[B, T_level * hop_lengths[level], 1]`."""
        return self.decoders[level](dequantise(codes, self.codebooks[level])).astype(jnp.float32)

    def __call__(self, x: jax.Array) -> tuple[list[jax.Array], list[jax.Array]]:
        """Encodes and reconstructs through every level: (codes per level, audio per level)."""
        codes = self.encode(x)
        return codes, [self.decode(z, level) for level, z in enumerate(codes)]
