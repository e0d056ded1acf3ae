"""Per-level encoders and decoders of the hierarchical VQ-VAE (original `vqvae/encdec.py`).

The encoder of level L stacks the downsampling blocks of levels 0..L (each level has its own
encoder and decoder, with no weights shared between levels); its decoder mirrors it.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from jukebox_jax.config import VQVAEConfig
from jukebox_jax.layers import ConvTranspose1D, conv1d
from jukebox_jax.vqvae.resnet import Resnet1D


def _resnet(cfg: VQVAEConfig, level: int, reverse: bool, name: str) -> Resnet1D:
    return Resnet1D(
        depth=cfg.level_depth(level),
        m_conv=cfg.m_conv,
        dilation_growth_rate=cfg.dilation_growth_rate,
        dilation_cycle=cfg.dilation_cycle,
        reverse_dilation=reverse,
        name=name,
    )


class Encoder(nn.Module):
    """Audio `[B, T, 1]` -> continuous codes of `level`, `[B, T / hop_lengths[level], emb_width]`."""

    config: VQVAEConfig
    level: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        width = cfg.level_width(self.level)
        for l in range(self.level + 1):  # one downsampling block per level up to ours
            stride = cfg.strides_t[l]
            for i in range(cfg.downs_t[l]):
                x = conv1d(width, 2 * stride, stride, stride // 2, name=f"block_{l}_down_{i}")(x)
                x = _resnet(cfg, self.level, reverse=False, name=f"block_{l}_resnet_{i}")(x)
            x = conv1d(cfg.emb_width, 3, padding=1, name=f"block_{l}_proj_out")(x)
        return x


class Decoder(nn.Module):
    """Dequantised codes of `level` `[B, T_level, emb_width]` -> audio `[B, T, 1]`."""

    config: VQVAEConfig
    level: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        width = cfg.level_width(self.level)
        for l in reversed(range(self.level + 1)):
            stride, down_t = cfg.strides_t[l], cfg.downs_t[l]
            x = conv1d(width, 3, padding=1, name=f"block_{l}_proj_in")(x)
            for i in range(down_t):
                x = _resnet(cfg, self.level, reverse=cfg.reverse_decoder_dilation, name=f"block_{l}_resnet_{i}")(x)
                out = cfg.emb_width if i == down_t - 1 else width
                x = ConvTranspose1D(out, 2 * stride, stride, stride // 2, name=f"block_{l}_up_{i}")(x)
        return conv1d(1, 3, padding=1, name="proj_out")(x)
