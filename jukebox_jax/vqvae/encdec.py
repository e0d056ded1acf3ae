"""Per-level encoders and decoders of the hierarchical VQ-VAE (original `vqvae/encdec.py`).

The encoder of level L stacks the downsampling blocks of levels 0..L (each level has its own
encoder and decoder, with no weights shared between levels); its decoder mirrors it.
`DecoderBlock` is also the upsamplers' conditioner stack. Every block computes as its
`precision` says (the VQ-VAE's `VQVAEConfig.precision`, the conditioner's `FULL_PRECISION`).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from jukebox_jax.config import Precision, VQVAEConfig
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
    precision: Precision
    m_conv: float = 1.0
    dilation_growth_rate: int = 1
    dilation_cycle: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, C] -> [B, T / stride**down_t, out_width]
        s, p = self.stride, self.precision
        for i in range(self.down_t):
            x = conv1d(self.width, 2 * s, s, s // 2, precision=p, name=f"down_{i}")(x)  # [B, T / s**(i+1), width]
            x = Resnet1D(
                self.depth, p, self.m_conv, self.dilation_growth_rate, self.dilation_cycle, name=f"resnet_{i}"
            )(x)  # [B, T / s**(i+1), width]
        return conv1d(self.out_width, 3, padding=1, precision=p, name="proj_out")(x)


class DecoderBlock(nn.Module):
    """A width-3 conv to `width`, then `down_t` x (residual stack, transposed conv); the last
    one maps to `out_width` (original `DecoderConvBock`): `[B, T, C] -> [B, T * stride**down_t, out_width]`."""

    out_width: int
    width: int
    depth: int
    down_t: int
    stride: int
    precision: Precision
    m_conv: float = 1.0
    dilation_growth_rate: int = 1
    dilation_cycle: int | None = None
    res_scale: bool = False
    reverse_dilation: bool = False
    zero_out: bool = False  # init only: each residual block starts as the identity

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, C] -> [B, T * stride**down_t, out_width]
        s, p = self.stride, self.precision
        x = conv1d(self.width, 3, padding=1, precision=p, name="proj_in")(x)  # [B, T, width]
        for i in range(self.down_t):
            x = Resnet1D(
                self.depth, p, self.m_conv, self.dilation_growth_rate, self.dilation_cycle, self.res_scale,
                self.reverse_dilation, self.zero_out, name=f"resnet_{i}",
            )(x)  # [B, T * s**i, width]
            out = self.out_width if i == self.down_t - 1 else self.width
            x = ConvTranspose1D(out, 2 * s, s, s // 2, p, name=f"up_{i}")(x)  # [B, T * s**(i+1), out]
        return x


def _shared_sizes(cfg: VQVAEConfig, level: int) -> dict:
    """What every block of `level`'s encoder and decoder shares."""
    return {
        "out_width": cfg.emb_width, "width": cfg.level_width(level), "depth": cfg.level_depth(level), "precision": cfg.precision,
        "m_conv": cfg.m_conv, "dilation_growth_rate": cfg.dilation_growth_rate, "dilation_cycle": cfg.dilation_cycle,
    }


class Encoder(nn.Module):
    """Audio `[B, T, 1]` -> continuous codes of `level`, `[B, T / hop_lengths[level], emb_width]`
    in the config's compute dtype."""

    config: VQVAEConfig
    level: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, 1] -> [B, T_level, emb_width]
        cfg = self.config
        for l in range(self.level + 1):  # one downsampling block per level up to ours
            x = EncoderBlock(
                down_t=cfg.downs_t[l], stride=cfg.strides_t[l], **_shared_sizes(cfg, self.level), name=f"block_{l}"
            )(x)  # [B, T / hop_lengths[l], emb_width]
        return x


class Decoder(nn.Module):
    """Dequantised codes of `level` `[B, T_level, emb_width]` -> audio `[B, T, 1]` in the
    config's compute dtype."""

    config: VQVAEConfig
    level: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T_level, emb_width] -> [B, T, 1]
        cfg = self.config
        for l in reversed(range(self.level + 1)):
            x = DecoderBlock(
                down_t=cfg.downs_t[l], stride=cfg.strides_t[l], reverse_dilation=cfg.reverse_decoder_dilation,
                **_shared_sizes(cfg, self.level), name=f"block_{l}",
            )(x)  # [B, T_in * strides_t[l] ** downs_t[l], emb_width]
        return conv1d(1, 3, padding=1, precision=cfg.precision, name="proj_out")(x)
