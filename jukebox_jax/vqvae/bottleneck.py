"""Vector quantisation against a fixed codebook (original `BottleneckBlock.encode/decode`).

Distances are computed in float32 whatever the VQ-VAE's compute dtype (as logits are): the
nearest code is an argmin over differences of large sums, which bfloat16 would mostly
randomise. Training's codebook EMA and restarts are in `jukebox_jax.train.codebook`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jukebox_jax.config import FULL_PRECISION, Precision


def quantise(x: jax.Array, codebook: jax.Array, precision: Precision = FULL_PRECISION) -> jax.Array:
    """Nearest codebook entry: `x [B, T, D]`, `codebook [K, D]` -> codes `[B, T]` int32.

    Distances are `|x|^2 - 2 x.k + |k|^2`, the original's formula, so near-ties resolve the
    same way up to float32 rounding.
    """
    return jnp.argmin(distances(x, codebook, precision), axis=-1).astype(jnp.int32)


def distances(x: jax.Array, codebook: jax.Array, precision: Precision = FULL_PRECISION) -> jax.Array:
    """Squared distances `[B, T, K]` float32 from each vector of `x [B, T, D]` to each code
    of `codebook [K, D]`, the dot products at `precision.matmul`."""
    x, codebook = x.astype(jnp.float32), codebook.astype(jnp.float32)
    dots = jnp.einsum("btd,kd->btk", x, codebook, precision=precision.matmul.lax)  # [B, T, K]
    return jnp.sum(x**2, axis=-1, keepdims=True) - 2 * dots + jnp.sum(codebook**2, axis=-1)


def dequantise(codes: jax.Array, codebook: jax.Array) -> jax.Array:
    """Codes `[B, T]` -> code vectors `[B, T, D]` in the codebook's dtype."""
    return jnp.take(codebook, codes, axis=0)

