"""Factored attention over a full sequence (training, teacher forcing, prefill), one function
per `AttnKind`, exactly as the original `FactoredAttention` computes it.

Axis legend: b batch, t / s query / key positions, n blocks, c positions in a block
(`block_ctx`), h heads, d head width, w model width.

Every function takes `q, k, v [b, t, h, d]` with `t` a multiple of `block_ctx` (the caller
pads the end; padding never reaches a real query, since every kind is causal) and returns
`(out [b, t, h, d], probs)`, `probs` in the kind's own layout (documented per function).
Scores are `q.k / sqrt(d)`, masked to -1e9 (the original's `w * mask - 1e9 * (1 - mask)`),
with the softmax in float32.

Two quirks of the original are kept on purpose: PREV_BLOCK queries of the first block attend
to a block of zero keys and values (so their output is exactly 0), and SUMMARY kinds always
see one zero key in front of the summaries.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jukebox_jax.config import AttnKind

MASKED = -1e9


def attend(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | np.ndarray | None) -> tuple[jax.Array, jax.Array]:
    """Dense attention `q [..., t, h, d]`, `k, v [..., s, h, d]`, `mask [t, s]` (True = may
    attend) -> `(out [..., t, h, d], probs [..., h, t, s])`."""
    scores = jnp.einsum("...thd,...shd->...hts", q, k) * (1.0 / np.sqrt(q.shape[-1]))
    scores = scores.astype(jnp.float32)
    if mask is not None:
        scores = jnp.where(mask, scores, MASKED)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("...hts,...shd->...thd", probs, v), probs


def causal_mask(t: int, s: int | None = None) -> np.ndarray:
    """`[t, s]`: query i may attend key j <= i + (s - t) (the original's `tril(offset)`)."""
    s = t if s is None else s
    return np.tril(np.ones((t, s), bool), max(s - t, 0))


def _blocks(x: jax.Array, c: int) -> jax.Array:  # [b, t, h, d] -> [b, n, c, h, d]
    return x.reshape(x.shape[0], x.shape[1] // c, c, *x.shape[2:])


def _unblocks(x: jax.Array) -> jax.Array:  # [b, n, c, h, d] -> [b, t, h, d]
    return x.reshape(x.shape[0], -1, *x.shape[3:])


def dense(q, k, v):
    """Every earlier position. probs `[b, h, t, t]`."""
    return attend(q, k, v, causal_mask(q.shape[1]))


def block(q, k, v, *, block_ctx: int):
    """Earlier positions of the query's own block. probs `[b, n, h, c, c]`."""
    out, probs = attend(_blocks(q, block_ctx), _blocks(k, block_ctx), _blocks(v, block_ctx), causal_mask(block_ctx))
    return _unblocks(out), probs


def transpose_block(q, k, v, *, block_ctx: int):
    """The same offset in the query's block and every earlier one. probs `[b, c, h, n, n]`."""
    col = lambda x: jnp.swapaxes(_blocks(x, block_ctx), 1, 2)  # [b, c, n, h, d]
    out, probs = attend(col(q), col(k), col(v), causal_mask(q.shape[1] // block_ctx))
    return _unblocks(jnp.swapaxes(out, 1, 2)), probs


def prev_block(q, k, v, *, block_ctx: int):
    """All of the previous block (zeros before the first). probs `[b, n, h, c, c]`."""
    shift = lambda x: jnp.pad(_blocks(x, block_ctx)[:, :-1], ((0, 0), (1, 0), (0, 0), (0, 0), (0, 0)))
    out, probs = attend(_blocks(q, block_ctx), shift(k), shift(v), None)
    return _unblocks(out), probs


def summary_spread(q, k, v, *, block_ctx: int, spread: int):
    """The last `spread` positions of every finished block, after one block of zero keys.
    probs `[b, h, t, n * spread]`."""
    t = q.shape[1]
    n = t // block_ctx
    tail = lambda x: jnp.pad(_blocks(x, block_ctx)[:, :-1, -spread:], ((0, 0), (1, 0), (0, 0), (0, 0), (0, 0)))
    keys_at = np.arange(-block_ctx, (n - 1) * block_ctx).reshape(n, block_ctx)[:, -spread:].reshape(-1)
    mask = (keys_at[None, :] <= np.arange(t)[:, None]) | (np.arange(n * spread) < spread)[None, :]
    return attend(q, _unblocks(tail(k)), _unblocks(tail(v)), mask)


def summary(q, k, v, *, block_ctx: int):
    """The last position of every finished block, after one zero key. probs `[b, h, t, n]`."""
    return summary_spread(q, k, v, block_ctx=block_ctx, spread=1)


def prime(q, k, v, *, prime_len: int):
    """Earlier positions among the first `prime_len` (the lyric prefix of the 1b sequence,
    rounded up as the original). probs `[b, h, t, min(t, prime_len)]`."""
    s = min(q.shape[1], prime_len)
    return attend(q, k[:, :s], v[:, :s], causal_mask(q.shape[1], s))


def enc_dec(q, k, v):
    """Every encoder state (`k, v [b, s, h, d]` from the lyric encoder). probs `[b, h, t, s]`."""
    return attend(q, k, v, None)


_BLOCKWISE = {
    AttnKind.BLOCK: block,
    AttnKind.TRANSPOSE_BLOCK: transpose_block,
    AttnKind.PREV_BLOCK: prev_block,
    AttnKind.SUMMARY: summary,
    AttnKind.SUMMARY_SPREAD: summary_spread,
}


def self_attention(
    kind: AttnKind, q: jax.Array, k: jax.Array, v: jax.Array, *, block_ctx: int | None, spread: int | None = None, prime_len: int | None = None
) -> tuple[jax.Array, jax.Array]:
    """Self-attention of `kind` over `q, k, v [b, t, h, d]` of any length `t` (blockwise
    kinds pad the end to a whole block) -> `(out [b, t, h, d], probs)`."""
    if kind is AttnKind.DENSE:
        return dense(q, k, v)
    if kind is AttnKind.PRIME:
        return prime(q, k, v, prime_len=prime_len)
    if kind not in _BLOCKWISE:
        raise ValueError(f"{kind.name} is not self-attention")
    t = q.shape[1]
    pad = lambda x: jnp.pad(x, ((0, 0), (0, -t % block_ctx), (0, 0), (0, 0)))
    kwargs = {"spread": spread} if kind is AttnKind.SUMMARY_SPREAD else {}
    out, probs = _BLOCKWISE[kind](pad(q), pad(k), pad(v), block_ctx=block_ctx, **kwargs)
    return out[:, :t], probs
