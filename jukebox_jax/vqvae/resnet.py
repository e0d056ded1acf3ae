"""Dilated residual conv stacks (original `Resnet1D`), used by the VQ-VAE and the upsamplers'
conditioner."""

from __future__ import annotations

import math

import flax.linen as nn
import jax

from jukebox_jax.config import Precision
from jukebox_jax.layers import conv1d


class ResConv1DBlock(nn.Module):
    """`x + res_scale * conv_2(relu(conv_1(relu(x))))`; conv_1 is dilated, width 3;
    `zero_out` starts conv_2 at zero (the block starts as the identity)."""

    state: int
    dilation: int
    precision: Precision
    res_scale: float = 1.0
    zero_out: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, C] -> [B, T, C] in precision.compute
        p = self.precision
        conv_1 = conv1d(self.state, 3, padding=self.dilation, dilation=self.dilation, precision=p, name="conv_1")
        h = conv_1(nn.relu(x))  # [B, T, state]
        h = conv1d(x.shape[-1], 1, precision=p, zero_init=self.zero_out, name="conv_2")(nn.relu(h))  # [B, T, C]
        return x.astype(p.compute.jnp) + self.res_scale * h


class Resnet1D(nn.Module):
    """`depth` residual blocks with dilations `growth ** (d % cycle)`, optionally reversed;
    `res_scale` divides each residual by sqrt(depth); `zero_out` starts each block as the identity."""

    depth: int
    precision: Precision
    m_conv: float = 1.0
    dilation_growth_rate: int = 1
    dilation_cycle: int | None = None
    res_scale: bool = False
    reverse_dilation: bool = False
    zero_out: bool = False

    def dilations(self) -> list[int]:
        cycle = self.dilation_cycle or self.depth
        ds = [self.dilation_growth_rate ** (d % cycle) for d in range(self.depth)]
        return ds[::-1] if self.reverse_dilation else ds

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, C] -> [B, T, C] in precision.compute
        scale = 1.0 / math.sqrt(self.depth) if self.res_scale else 1.0
        state = int(self.m_conv * x.shape[-1])
        for d, dilation in enumerate(self.dilations()):
            x = ResConv1DBlock(state, dilation, self.precision, scale, self.zero_out, name=f"block_{d}")(x)  # [B, T, C]
        return x
