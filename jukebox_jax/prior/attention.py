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
    heads_first = lambda x: jnp.swapaxes(x, -2, -3)  # [..., h, t, d]
    out, probs = attend_heads(heads_first(q), heads_first(k), heads_first(v), mask)
    return heads_first(out), probs


def attend_heads(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | np.ndarray | None) -> tuple[jax.Array, jax.Array]:
    """`attend` with positions next to the head width: `q [..., t, d]`, `k, v [..., s, d]`
    (any leading axes, e.g. heads) -> `(out [..., t, d], probs [..., t, s])`."""
    scores = jnp.einsum("...td,...sd->...ts", q, k) * (1.0 / np.sqrt(q.shape[-1]))
    scores = scores.astype(jnp.float32)
    if mask is not None:
        scores = jnp.where(mask, scores, MASKED)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("...ts,...sd->...td", probs, v), probs


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


# -- Cached attention (prefill in chunks of any size, and single-step decode) ----------------
#
# A layer's cache holds keys and values of earlier positions with the batch and head axes
# merged (`[b * h, ...]`, heads fastest: what the attention's batched matmuls take as they
# are), laid out per kind so a decode step reads only what it needs:
#   DENSE                      [b*h, n_positions, d]   position p at p
#   BLOCK                      [b*h, c, d]             ring: position p at p % c
#   PREV_BLOCK                 [b*h, 2c, d]            ring: position p at p % 2c
#   TRANSPOSE_BLOCK, SUMMARY*  [b*h, c, n, d]          column-major: p at (p % c, p // c)
#   PRIME                      [b*h, prime_len, d]     the lyric prefix only
#   ENC_DEC                    [b*h, n_tokens, d]      the encoder's keys/values, computed once
# A chunk of queries at positions t0..t0+L-1 attends to the cached earlier positions plus the
# chunk itself, under the same position rules as the full pass (`allowed`). A single-position
# decode step (`decode_step`) instead writes its key and value in place first, then reads only
# what its kind needs: the block's ring, the double ring (its previous-block half unmasked),
# one column of the transposed window, the prefix.


def cache_shape(kind: AttnKind, *, n_positions: int, block_ctx: int | None, prime_len: int | None, n_tokens: int) -> tuple[int, ...]:
    """Cache position axes of one layer of `kind` (between the batch-heads and head-width axes)."""
    c = block_ctx
    if kind is AttnKind.DENSE:
        return (n_positions,)
    if kind is AttnKind.PRIME:
        return (prime_len,)
    if kind is AttnKind.ENC_DEC:
        return (n_tokens,)
    if kind is AttnKind.BLOCK:
        return (c,)
    if kind is AttnKind.PREV_BLOCK:
        return (2 * c,)
    return (c, n_positions // c)  # TRANSPOSE_BLOCK, SUMMARY, SUMMARY_SPREAD: column-major window


def to_cache(x: jax.Array) -> jax.Array:
    """Queries, keys or values `[b, t, h, d]` -> the cache's `[b * h, t, d]`."""
    b, t, h, d = x.shape
    return jnp.swapaxes(x, 1, 2).reshape(b * h, t, d)


def attend_cache(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Queries `q [b, L, h, d]` against cached `k, v [b * h, s, d]`, `mask [L, s]` -> `[b, L, h, d]`."""
    b, length, h, d = q.shape
    out, _ = attend_heads(to_cache(q), k, v, mask)
    return jnp.swapaxes(out.reshape(b, h, length, d), 1, 2)


def allowed(kind: AttnKind, i: jax.Array, j: jax.Array, *, c: int, n: int, spread: int | None, prime_len: int | None) -> jax.Array:
    """May a query at position `i` see the key at position `j` (broadcasting int arrays)?
    `n` is the number of blocks in the window."""
    causal = j <= i
    if kind is AttnKind.DENSE:
        return causal
    if kind is AttnKind.PRIME:
        return causal & (j < prime_len)
    if kind is AttnKind.BLOCK:
        return causal & (j // c == i // c)
    if kind is AttnKind.TRANSPOSE_BLOCK:
        return causal & (j % c == i % c)
    if kind is AttnKind.PREV_BLOCK:
        return j // c == i // c - 1
    tail = 1 if kind is AttnKind.SUMMARY else spread
    return causal & (j % c >= c - tail) & (j // c < n - 1)


def _zero_keys(kind: AttnKind, i: jax.Array, c: int, spread: int | None) -> jax.Array | None:
    """`[L, z]` mask of the zero keys the original puts before the real ones, or None."""
    if kind is AttnKind.PREV_BLOCK:
        return jnp.broadcast_to((i // c == 0)[:, None], (i.shape[0], c))
    if kind in (AttnKind.SUMMARY, AttnKind.SUMMARY_SPREAD):
        return jnp.ones((i.shape[0], 1 if kind is AttnKind.SUMMARY else spread), bool)
    return None


def _context(kind: AttnKind, cache_k, cache_v, t0, c: int | None):
    """Earlier positions from the cache: `(k, v [b*h, s, d], positions [s], valid [s])`."""
    if kind in (AttnKind.TRANSPOSE_BLOCK, AttnKind.SUMMARY, AttnKind.SUMMARY_SPREAD):
        bh, _, n, d = cache_k.shape
        k, v = (jnp.swapaxes(x, 1, 2).reshape(bh, -1, d) for x in (cache_k, cache_v))  # position-major
        pos = jnp.arange(n * c)
        return k, v, pos, pos < t0
    size = cache_k.shape[1]
    if kind in (AttnKind.BLOCK, AttnKind.PREV_BLOCK):  # rings: slot s holds the latest p < t0 with p = s mod size
        pos = t0 - 1 - jnp.mod(t0 - 1 - jnp.arange(size), size)
        return cache_k, cache_v, pos, pos >= 0
    pos = jnp.arange(size)  # DENSE, PRIME: position-major
    return cache_k, cache_v, pos, pos < t0


def _write(kind: AttnKind, cache: jax.Array, new: jax.Array, t0, c: int | None) -> jax.Array:
    """`cache` with the chunk's keys or values `new [b, L, h, d]` (positions t0..) written in."""
    length, new = new.shape[1], to_cache(new)
    if kind in (AttnKind.TRANSPOSE_BLOCK, AttnKind.SUMMARY, AttnKind.SUMMARY_SPREAD):
        pos = t0 + jnp.arange(length)
        return cache.at[:, pos % c, pos // c].set(new, mode="drop")
    size = cache.shape[1]
    if kind in (AttnKind.BLOCK, AttnKind.PREV_BLOCK):  # only the last `size` positions survive
        keep = min(length, size)
        pos = t0 + length - keep + jnp.arange(keep)
        return cache.at[:, pos % size].set(new[:, length - keep :])
    return cache.at[:, t0 + jnp.arange(length)].set(new, mode="drop")  # DENSE, PRIME (past the prefix: dropped)


_DECODES = (AttnKind.DENSE, AttnKind.BLOCK, AttnKind.TRANSPOSE_BLOCK, AttnKind.PREV_BLOCK, AttnKind.PRIME)


def _put(cache: jax.Array, new: jax.Array, index: tuple, keep_old: jax.Array | bool = False) -> jax.Array:
    """`cache [b*h, *positions, d]` with one position's `new [b, 1, h, d]` written at `index`
    (a start per position axis), unless `keep_old`."""
    new = to_cache(new).reshape(-1, *(1,) * len(index), new.shape[-1])
    index = (0, *index, 0)
    if keep_old is not False:
        new = jnp.where(keep_old, jax.lax.dynamic_slice(cache, index, new.shape), new)
    return jax.lax.dynamic_update_slice(cache, new.astype(cache.dtype), index)


def decode_step(kind: AttnKind, q: jax.Array, k: jax.Array, v: jax.Array, cache: dict[str, jax.Array], t0: jax.Array, *, c: int):
    """One query at position `t0` (`q, k, v [b, 1, h, d]`) of a kind in `_DECODES` ->
    `(out [b, 1, h, d], updated cache)`; equals `cached_self_attention` of a 1-chunk."""
    ck, cv = cache["k"], cache["v"]
    if kind is AttnKind.PREV_BLOCK:  # the previous block fills the other half of the ring
        # Reads the whole ring under a mask: slicing the half it needs out of the buffer it
        # writes makes XLA copy the ring every step.
        ck, cv = _put(ck, k, (t0 % (2 * c),)), _put(cv, v, (t0 % (2 * c),))
        previous = jnp.arange(2 * c) // c == jnp.mod(t0 // c - 1, 2)
        out = jnp.where(t0 >= c, attend_cache(q, ck, cv, previous[None, :]), 0)  # the first block sees zero values
        return out, {"k": ck, "v": cv}
    if kind is AttnKind.TRANSPOSE_BLOCK:  # column t0 % c: positions t0 % c + n * c
        col, row = t0 % c, t0 // c
        ck, cv = _put(ck, k, (col, row)), _put(cv, v, (col, row))
        keys, values = (jax.lax.dynamic_index_in_dim(x, col, axis=1, keepdims=False) for x in (ck, cv))
        upto = row
    else:
        size = ck.shape[1]
        slot = t0 % c if kind is AttnKind.BLOCK else jnp.minimum(t0, size - 1)
        past_end = kind is AttnKind.PRIME and t0 >= size  # a PRIME cache keeps the prefix only
        ck, cv = _put(ck, k, (slot,), past_end), _put(cv, v, (slot,), past_end)
        keys, values, upto = ck, cv, slot if kind is AttnKind.BLOCK else t0
    out = attend_cache(q, keys, values, (jnp.arange(keys.shape[1]) <= upto)[None, :])
    return out, {"k": ck, "v": cv}


def cached_self_attention(
    kind: AttnKind,
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    cache: dict[str, jax.Array],
    t0: jax.Array,
    *,
    block_ctx: int | None,
    n_positions: int,
    spread: int | None = None,
    prime_len: int | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Queries `q [b, L, h, d]` at positions `t0..t0+L-1` with their own `k, v`, against
    `cache {"k", "v"}` of the earlier positions -> `(out [b, L, h, d], updated cache)`.
    Equals the rows t0..t0+L-1 of the full pass (`self_attention`)."""
    if kind is AttnKind.SUMMARY_SPREAD and q.shape[1] == 1:
        raise NotImplementedError("SUMMARY_SPREAD cannot be sampled (the original does not implement it either)")
    length = q.shape[1]
    c = block_ctx or 1
    if length == 1 and kind in _DECODES:
        return decode_step(kind, q, k, v, cache, t0, c=c)
    ck, cv, pos, valid = _context(kind, cache["k"], cache["v"], t0, block_ctx)
    i = t0 + jnp.arange(length)
    keys = jnp.concatenate([ck, to_cache(k)], axis=1)
    values = jnp.concatenate([cv, to_cache(v)], axis=1)
    pos = jnp.concatenate([pos, i])
    valid = jnp.concatenate([valid, jnp.ones(length, bool)])
    mask = valid[None, :] & allowed(kind, i[:, None], pos[None, :], c=c, n=n_positions // c, spread=spread, prime_len=prime_len)
    zero = _zero_keys(kind, i, c, spread)
    if zero is not None:
        z = jnp.zeros((keys.shape[0], zero.shape[1], keys.shape[2]), keys.dtype)
        keys, values, mask = jnp.concatenate([z, keys], 1), jnp.concatenate([z, values], 1), jnp.concatenate([zero, mask], 1)
    out = attend_cache(q, keys, values, mask)
    return out, {"k": _write(kind, cache["k"], k, t0, c), "v": _write(kind, cache["v"], v, t0, c)}
