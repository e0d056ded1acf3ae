"""The VQ-VAE codebook's EMA update with random restarts (original `BottleneckBlock.init_k`,
`restore_k`, `update_k`), as explicit state: each function takes the state and returns the new one.

The codebook itself is not trained by gradients: after the codes are picked, the EMA of the
per-code sums and counts sets the new codebook, and codes whose EMA count falls below a
threshold restart at random encoder outputs.

Axes: n encoder vectors (batch x time, item-major), d code width, k codebook size (l_bins).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jukebox_jax.errors import InputError
from jukebox_jax.vqvae.bottleneck import distances


@dataclasses.dataclass(frozen=True)
class CodebookState:
    """One level's EMA state: per-code sums `k_sum [k, d]` and counts `k_elem [k]` of the
    encoder vectors assigned to each code."""

    k_sum: jax.Array  # [k, d]
    k_elem: jax.Array  # [k]


jax.tree_util.register_dataclass(CodebookState, data_fields=["k_sum", "k_elem"], meta_fields=[])


def restore_state(codebook: jax.Array, expected_usage: float) -> CodebookState:
    """State for training on from a trained `codebook [k, d]` (original `restore_k`): every
    code counted `expected_usage` times (tokens per training sample / l_bins)."""
    codebook = codebook.astype(jnp.float32)
    return CodebookState(
        k_sum=codebook * expected_usage, k_elem=jnp.full(codebook.shape[:1], expected_usage, jnp.float32)
    )


def restart_candidates(x_flat: jax.Array, l_bins: int, key: jax.Array) -> jax.Array:
    """`l_bins` random rows `[k, d]` of the encoder outputs `x_flat [n, d]` (original `_tile` and
    `randperm`): with fewer rows than codes, the rows are repeated ceil(k / n) times plus Gaussian
    noise of std 0.01 / sqrt(d); then randomly permuted and the first `l_bins` kept."""
    if x_flat.ndim != 2:
        raise InputError(f"restart_candidates takes encoder outputs [n, width], got shape {x_flat.shape}")
    n, d = x_flat.shape
    tile_key, perm_key = jax.random.split(key)
    if n < l_bins:
        x_flat = jnp.tile(x_flat, (math.ceil(l_bins / n), 1))  # [n * repeats, d]
        x_flat = x_flat + jax.random.normal(tile_key, x_flat.shape, x_flat.dtype) * (0.01 / math.sqrt(d))
    return x_flat[jax.random.permutation(perm_key, x_flat.shape[0])[:l_bins]]


def init_state(x_flat: jax.Array, key: jax.Array, l_bins: int) -> tuple[jax.Array, CodebookState]:
    """A codebook `[k, d]` of random encoder outputs and its state, each code counted once
    (original `init_k`, for training from scratch on the first batch `x_flat [n, d]`).
    Note the original then keeps its default restart threshold 1.0, whatever `revival_threshold` says."""
    codebook = restart_candidates(x_flat.astype(jnp.float32), l_bins, key)  # [k, d]
    return codebook, CodebookState(k_sum=codebook, k_elem=jnp.ones(l_bins, jnp.float32))


def ema_update(
    codebook: jax.Array,
    state: CodebookState,
    x_flat: jax.Array,
    codes: jax.Array,
    mu: float,
    threshold: float,
    k_rand: jax.Array,
) -> tuple[jax.Array, CodebookState, dict[str, jax.Array]]:
    """One EMA step of a level (original `update_k`): `codebook [k, d]` (the old one, which
    picked `codes [n]` for the encoder outputs `x_flat [n, d]`), restart candidates `k_rand [k, d]`
    (from `restart_candidates`) -> (new codebook, new state, metrics). Codes whose new EMA count
    is below `threshold` move to their candidate. No gradient flows through any of it.

    Metrics (float32 scalars): `entropy` (nats) of the batch code frequencies, `used_curr` codes
    with batch count >= threshold, `usage` codes kept, `dk` RMS change of the codebook, `fit`
    mean squared distance to the nearest code, `pn` RMS of the centred encoder outputs."""
    n_codes, width = codebook.shape
    if x_flat.ndim != 2 or codes.shape != x_flat.shape[:1] or x_flat.shape[1] != width:
        raise InputError(
            f"ema_update takes encoder outputs [n, {width}] and codes [n]; got {x_flat.shape} and {codes.shape}"
        )
    if k_rand.shape != codebook.shape:
        raise InputError(f"restart candidates k_rand {k_rand.shape} must have the codebook's shape {codebook.shape}")
    codebook, x_flat = jax.lax.stop_gradient((codebook.astype(jnp.float32), x_flat.astype(jnp.float32)))
    onehot = jax.nn.one_hot(codes, n_codes, dtype=jnp.float32)  # [n, k]
    batch_sum = jnp.einsum("nk,nd->kd", onehot, x_flat, precision=jax.lax.Precision.HIGHEST)  # [k, d]
    batch_elem = jnp.sum(onehot, axis=0)  # [k]
    k_sum = mu * state.k_sum + (1.0 - mu) * batch_sum  # [k, d]
    k_elem = mu * state.k_elem + (1.0 - mu) * batch_elem  # [k]
    usage = k_elem >= threshold  # [k]
    new_codebook = jnp.where(usage[:, None], k_sum / k_elem[:, None], k_rand)  # [k, d]
    prob = batch_elem / jnp.sum(batch_elem)  # [k]
    metrics = {
        "entropy": -jnp.sum(prob * jnp.log(prob + 1e-8)),
        "used_curr": jnp.sum(batch_elem >= threshold).astype(jnp.float32),
        "usage": jnp.sum(usage).astype(jnp.float32),
        "dk": jnp.linalg.norm(new_codebook - codebook) / math.sqrt(n_codes * width),
        "fit": jnp.mean(jnp.min(distances(x_flat[None], codebook)[0], axis=-1)),
        "pn": jnp.linalg.norm(x_flat - jnp.mean(x_flat)) / math.sqrt(x_flat.size),
    }
    return new_codebook, CodebookState(k_sum=k_sum, k_elem=k_elem), metrics
