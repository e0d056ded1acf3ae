"""Per-level encoders and decoders of the hierarchical VQ-VAE (original `vqvae/encdec.py`).

The encoder of level L stacks the downsampling blocks of levels 0..L (each level has its own
encoder and decoder, with no weights shared between levels); its decoder mirrors it.
`DecoderBlock` is also the upsamplers' conditioner stack.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from jukebox_jax.config import VQVAEConfig
from jukebox_jax.layers import ConvTranspose1D, conv1d
from jukebox_jax.vqvae.resnet import Resnet1D


class EncoderBlock(nn.Module):
    """`down_t` x (strided conv, residual stack), then a width-3 conv to `out_width`
    (original `EncoderConvBlock`): `[B, T, C] -> [B, T / stride**down_t, out_width]`."""

    out_width: int
    width: int
    depth: int
    down_t: int
    stride: int
    m_conv: float = 1.0
    dilation_growth_rate: int = 1
    dilation_cycle: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s = self.stride
        for i in range(self.down_t):
            x = conv1d(self.width, 2 * s, s, s // 2, name=f"down_{i}")(x)
            x = Resnet1D(self.depth, self.m_conv, self.dilation_growth_rate, self.dilation_cycle, name=f"resnet_{i}")(x)
        return conv1d(self.out_width, 3, padding=1, name="proj_out")(x)


class DecoderBlock(nn.Module):
    """A width-3 conv to `width`, then `down_t` x (residual stack, transposed conv); the last
    one maps to `out_width` (original `DecoderConvBock`): `[B, T, C] -> [B, T * stride**down_t, out_width]`."""

    out_width: int
    width: int
    depth: int
    down_t: int
    stride: int
    m_conv: float = 1.0
    dilation_growth_rate: int = 1
    dilation_cycle: int | None = None
    res_scale: bool = False
    reverse_dilation: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s = self.stride
        x = conv1d(self.width, 3, padding=1, name="proj_in")(x)
        for i in range(self.down_t):
            x = Resnet1D(
                self.depth, self.m_conv, self.dilation_growth_rate, self.dilation_cycle, self.res_scale, self.reverse_dilation, name=f"resnet_{i}"
            )(x)
            out = self.out_width if i == self.down_t - 1 else self.width
            x = ConvTranspose1D(out, 2 * s, s, s // 2, name=f"up_{i}")(x)
        return x


class Encoder(nn.Module):
    """Audio `[B, T, 1]` -> continuous codes of `level`, `[B, T / hop_lengths[level], emb_width]`."""

    config: VQVAEConfig
    level: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        for l in range(self.level + 1):  # one downsampling block per level up to ours
            x = EncoderBlock(
                cfg.emb_width, cfg.level_width(self.level), cfg.level_depth(self.level), cfg.downs_t[l], cfg.strides_t[l],
                cfg.m_conv, cfg.dilation_growth_rate, cfg.dilation_cycle, name=f"block_{l}",
            )(x)
        return x


class Decoder(nn.Module):
    """Dequantised codes of `level` `[B, T_level, emb_width]` -> audio `[B, T, 1]`."""

    config: VQVAEConfig
    level: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        for l in reversed(range(self.level + 1)):
            x = DecoderBlock(
                cfg.emb_width, cfg.level_width(self.level), cfg.level_depth(self.level), cfg.downs_t[l], cfg.strides_t[l],
                cfg.m_conv, cfg.dilation_growth_rate, cfg.dilation_cycle, reverse_dilation=cfg.reverse_decoder_dilation, name=f"block_{l}",
            )(x)
        return conv1d(1, 3, padding=1, name="proj_out")(x)
