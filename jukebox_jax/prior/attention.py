"""Factored attention, one object per `AttnKind` (original `FactoredAttention`).

Axis legend: b batch, t / s query / key positions, n blocks, c positions in a block
(`block_ctx`), h heads, d head width, L positions of a chunk.

Every kind answers three questions about the same rule, "which earlier positions may a query
see", so they cannot drift apart:
- `full(q, k, v)`: the whole sequence at once (training, teacher forcing): `q, k, v
  [b, t, h, d]` -> `(out [b, t, h, d], probs)`, `probs` in the kind's own layout;
- `extend(q, k, v, cache, t0)`: a chunk of `L` positions `t0..t0+L-1` against the cache of
  the earlier ones (prefill in chunks of any size) -> `(new cache, out [b, L, h, d])`;
- `step(q, k, v, cache, t0)`: one position (decode), reading only what the kind needs ->
  `(new cache, out [b, 1, h, d])`.
Scores are `q.k / sqrt(d)` in float32, masked to -1e9 (the original's
`w * mask - 1e9 * (1 - mask)`), softmax in float32.

The KV cache of one layer is `{"k", "v"}`, each `[b, h, *positions, d]` (logical axes
`batch, heads, <positions>, kv`), laid out per kind so a decode step reads only what it needs:

    kind                        positions                 position p lives at
    DENSE                       [n_positions]             p
    BLOCK                       [c]                       p % c           (a ring)
    PREV_BLOCK                  [2c]                      p % 2c          (a ring)
    TRANSPOSE_BLOCK, SUMMARY*   [c, n]                    (p % c, p // c) (column-major)
    PRIME                       [prime_len]               p < prime_len   (the lyric prefix)
    ENC_DEC                     [n_tokens]                encoder state p (filled once, `fill`)

Two quirks of the original are kept on purpose: PREV_BLOCK queries of the first block attend
to a block of zero keys and values (so their output is exactly 0), and SUMMARY kinds always
see zero keys in front of the summaries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jukebox_jax.config import AttnKind

MASKED = -1e9
Cache = dict[str, jax.Array]  # {"k", "v"}: [b, h, *positions, d]
Mask = np.ndarray | jax.Array | None  # bool, True = may attend; None: all
Dropout = Callable[[jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Geometry:
    """The sequence a layer attends over."""

    n_positions: int  # the window (lyrics + music for the joint 1b sequence)
    block_ctx: int | None  # positions per block (None for dense-only stacks)
    spread: int | None = None  # SUMMARY_SPREAD
    prime_len: int | None = None  # keys a PRIME layer may see
    n_tokens: int = 0  # encoder states an ENC_DEC layer reads

    @property
    def n_blocks(self) -> int:
        return self.n_positions // self.block_ctx


# -- Shared primitives ------------------------------------------------------------------


def attend(q: jax.Array, k: jax.Array, v: jax.Array, mask: Mask, dropout: Dropout | None = None) -> tuple[jax.Array, jax.Array]:
    """Dense attention with positions next to the head width: `q [..., t, d]`,
    `k, v [..., s, d]` (any leading axes), `mask [t, s]` (True = may attend) or None ->
    `(out [..., t, d], probs [..., t, s])`. `dropout` (training) acts on the probabilities
    that weight the values; the returned probs are before it."""
    scores = jnp.einsum("...td,...sd->...ts", q, k, preferred_element_type=jnp.float32) * (1.0 / np.sqrt(q.shape[-1]))
    if mask is not None:
        scores = jnp.where(mask, scores, MASKED)
    probs = jax.nn.softmax(scores, axis=-1)
    weights = probs if dropout is None else dropout(probs)
    return jnp.einsum("...ts,...sd->...td", weights.astype(v.dtype), v), probs


def attend_seq(q: jax.Array, k: jax.Array, v: jax.Array, mask: Mask, dropout: Dropout | None = None) -> tuple[jax.Array, jax.Array]:
    """`attend` on `[..., t, h, d]` queries and `[..., s, h, d]` keys -> `(out [..., t, h, d],
    probs [..., h, t, s])`."""
    heads_first = lambda x: jnp.swapaxes(x, -2, -3)  # [..., h, t, d]
    out, probs = attend(heads_first(q), heads_first(k), heads_first(v), mask, dropout)
    return heads_first(out), probs


def causal_mask(t: int, s: int | None = None) -> np.ndarray:
    """`[t, s]`: query i may attend key j <= i + (s - t) (the original's `tril(offset)`)."""
    s = t if s is None else s
    return np.tril(np.ones((t, s), bool), max(s - t, 0))


def _blocks(x: jax.Array, c: int) -> jax.Array:  # [b, t, h, d] -> [b, n, c, h, d]
    return x.reshape(x.shape[0], x.shape[1] // c, c, *x.shape[2:])


def _unblocks(x: jax.Array) -> jax.Array:  # [b, n, c, h, d] -> [b, t, h, d]
    return x.reshape(x.shape[0], -1, *x.shape[3:])


def heads_major(x: jax.Array) -> jax.Array:
    """Queries, keys or values `[b, L, h, d]` -> `[b, h, L, d]` (the cache's axis order)."""
    return jnp.swapaxes(x, 1, 2)


def attend_cache(q: jax.Array, k: jax.Array, v: jax.Array, mask: Mask) -> jax.Array:
    """Queries `q [b, L, h, d]` against cached `k, v [b, h, s, d]`, `mask [L, s]` ->
    `[b, L, h, d]`: batched matmuls over (b, h) as the cache holds them (merging the two axes
    by a reshape measured 20-40% slower decode steps on CPU)."""
    out, _ = attend(heads_major(q), k, v, mask)  # [b, h, L, d]
    return heads_major(out)


def _put(cache: jax.Array, new: jax.Array, index: tuple, keep_old: jax.Array | bool = False) -> jax.Array:
    """`cache [b, h, *positions, d]` with one position's `new [b, 1, h, d]` written at `index`
    (a start per position axis), unless `keep_old`."""
    new = heads_major(new).reshape(*new.shape[:1], new.shape[2], *(1,) * len(index), new.shape[-1])
    index = (0, 0, *index, 0)
    if keep_old is not False:
        new = jnp.where(keep_old, jax.lax.dynamic_slice(cache, index, new.shape), new.astype(cache.dtype))
    return jax.lax.dynamic_update_slice(cache, new.astype(cache.dtype), index)


def cache_axes(ndim: int) -> tuple[str | None, ...]:
    """The logical axis names of a KV-cache array of `ndim` axes: `batch, heads, <positions>,
    kv`; a column-major cache's second position axis is unnamed (a name may appear once)."""
    return ("batch", "heads", "cache_length", *(None,) * (ndim - 4), "kv")


def constrain(cache: Cache) -> Cache:
    """Names the cache's axes for sharding (`cache_axes`; a no-op without a mesh and rules)."""
    return {name: nn.with_logical_constraint(x, cache_axes(x.ndim)) for name, x in cache.items()}


# -- The kinds ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SelfAttention:
    """A self-attention kind. Subclasses give the full pass, the cache layout and the
    visibility rule; chunked extension is shared, and `step` is specialised per kind."""

    geometry: Geometry

    def full(self, q: jax.Array, k: jax.Array, v: jax.Array, dropout: Dropout | None = None) -> tuple[jax.Array, jax.Array]:
        """The whole sequence at once: `q, k, v [b, t, h, d]` (t a whole number of blocks for
        the blockwise kinds) -> `(out [b, t, h, d], probs)`, probs in the kind's own layout."""
        raise NotImplementedError

    def cache_positions(self) -> tuple[int, ...]:
        """The cache's position axes: `init_cache` makes `[b, h, *these, d]`."""
        raise NotImplementedError

    def allowed(self, i: jax.Array, j: jax.Array) -> jax.Array:
        """May a query at position `i` see the key at position `j` (broadcasting int arrays)?"""
        raise NotImplementedError

    def zero_keys(self, i: jax.Array) -> jax.Array | None:
        """`[L, z]` mask of the zero keys the original puts before the real ones, or None."""
        return None

    def context(self, cache: Cache, t0) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """Earlier positions held by the cache: `(k, v [b, h, s, d], positions [s], valid [s])`."""
        pos = jnp.arange(self.cache_positions()[0])  # position-major: slot s holds position s
        return cache["k"], cache["v"], pos, pos < t0

    def write(self, cache: jax.Array, new: jax.Array, t0) -> jax.Array:
        """`cache` with a chunk's keys or values `new [b, L, h, d]` (positions t0..) written in."""
        return cache.at[:, :, t0 + jnp.arange(new.shape[1])].set(heads_major(new).astype(cache.dtype), mode="drop")

    def extend(self, q: jax.Array, k: jax.Array, v: jax.Array, cache: Cache, t0: jax.Array | int) -> tuple[Cache, jax.Array]:
        """Queries `q [b, L, h, d]` at positions `t0..t0+L-1` with their own `k, v` (L static,
        `t0` traced or not) -> `(new cache, out [b, L, h, d])`; equals rows t0..t0+L-1 of `full`."""
        length = q.shape[1]
        ck, cv, pos, valid = self.context(cache, t0)
        i = t0 + jnp.arange(length)
        keys = jnp.concatenate([ck, heads_major(k).astype(ck.dtype)], axis=2)
        values = jnp.concatenate([cv, heads_major(v).astype(cv.dtype)], axis=2)
        pos = jnp.concatenate([pos, i])
        mask = jnp.concatenate([valid, jnp.ones(length, bool)])[None, :] & self.allowed(i[:, None], pos[None, :])
        zero = self.zero_keys(i)
        if zero is not None:
            z = jnp.zeros((*keys.shape[:2], zero.shape[1], keys.shape[3]), keys.dtype)
            keys, values, mask = jnp.concatenate([z, keys], 2), jnp.concatenate([z, values], 2), jnp.concatenate([zero, mask], 1)
        out = attend_cache(q, keys, values, mask)
        return constrain({"k": self.write(cache["k"], k, t0), "v": self.write(cache["v"], v, t0)}), out

    def step(self, q: jax.Array, k: jax.Array, v: jax.Array, cache: Cache, t0: jax.Array) -> tuple[Cache, jax.Array]:
        """One query at position `t0` (a traced int32 scalar; `q, k, v [b, 1, h, d]`) -> `(new
        cache, out [b, 1, h, d])`; equals a 1-position `extend`. Specialised per kind."""
        return self.extend(q, k, v, cache, t0)


class Dense(SelfAttention):
    """Every earlier position. probs `[b, h, t, t]`."""

    def full(self, q, k, v, dropout=None):
        return attend_seq(q, k, v, causal_mask(q.shape[1]), dropout=dropout)

    def cache_positions(self):
        return (self.geometry.n_positions,)

    def allowed(self, i, j):
        return j <= i

    def step(self, q, k, v, cache, t0):
        size = cache["k"].shape[2]
        slot, past_end = jnp.minimum(t0, size - 1), self.past_cache(t0, size)
        ck, cv = _put(cache["k"], k, (slot,), past_end), _put(cache["v"], v, (slot,), past_end)
        return constrain({"k": ck, "v": cv}), attend_cache(q, ck, cv, (jnp.arange(size) <= t0)[None, :])

    def past_cache(self, t0: jax.Array, size: int) -> jax.Array | bool:
        """Is position `t0` past the `size` the cache keeps (then it is not written)? Never here."""
        return False


class Prime(Dense):
    """Earlier positions among the first `prime_len` (the lyric prefix of the 1b sequence,
    rounded up as the original). probs `[b, h, t, min(t, prime_len)]`."""

    def full(self, q, k, v, dropout=None):
        s = min(q.shape[1], self.geometry.prime_len)
        return attend_seq(q, k[:, :s], v[:, :s], causal_mask(q.shape[1], s), dropout=dropout)

    def cache_positions(self):
        return (self.geometry.prime_len,)

    def allowed(self, i, j):
        return (j <= i) & (j < self.geometry.prime_len)

    def past_cache(self, t0, size):
        return t0 >= size  # the cache keeps the prefix only


class Block(SelfAttention):
    """Earlier positions of the query's own block. probs `[b, n, h, c, c]`."""

    def full(self, q, k, v, dropout=None):
        c = self.geometry.block_ctx
        out, probs = attend_seq(_blocks(q, c), _blocks(k, c), _blocks(v, c), causal_mask(c), dropout=dropout)
        return _unblocks(out), probs

    def cache_positions(self):
        return (self.geometry.block_ctx,)

    def allowed(self, i, j):
        c = self.geometry.block_ctx
        return (j <= i) & (j // c == i // c)

    def context(self, cache, t0):
        size = cache["k"].shape[2]  # a ring: slot s holds the latest p < t0 with p = s mod size
        pos = t0 - 1 - jnp.mod(t0 - 1 - jnp.arange(size), size)
        return cache["k"], cache["v"], pos, pos >= 0

    def write(self, cache, new, t0):
        size, length = cache.shape[2], new.shape[1]
        keep = min(length, size)  # only the last `size` positions survive
        pos = t0 + length - keep + jnp.arange(keep)
        return cache.at[:, :, pos % size].set(heads_major(new[:, length - keep :]).astype(cache.dtype))

    def step(self, q, k, v, cache, t0):
        slot = t0 % self.geometry.block_ctx
        ck, cv = _put(cache["k"], k, (slot,)), _put(cache["v"], v, (slot,))
        return constrain({"k": ck, "v": cv}), attend_cache(q, ck, cv, (jnp.arange(ck.shape[2]) <= slot)[None, :])


class PrevBlock(Block):
    """All of the previous block (zeros before the first). probs `[b, n, h, c, c]`."""

    def full(self, q, k, v, dropout=None):
        c = self.geometry.block_ctx
        shift = lambda x: jnp.pad(_blocks(x, c)[:, :-1], ((0, 0), (1, 0), (0, 0), (0, 0), (0, 0)))
        out, probs = attend_seq(_blocks(q, c), shift(k), shift(v), None, dropout=dropout)
        return _unblocks(out), probs

    def cache_positions(self):
        return (2 * self.geometry.block_ctx,)

    def allowed(self, i, j):
        c = self.geometry.block_ctx
        return j // c == i // c - 1

    def zero_keys(self, i):
        c = self.geometry.block_ctx
        return jnp.broadcast_to((i // c == 0)[:, None], (i.shape[0], c))

    def step(self, q, k, v, cache, t0):
        # Writes, then reads the whole ring under a mask: slicing the half it needs out of
        # the buffer it writes makes XLA copy the ring every step.
        c = self.geometry.block_ctx
        ck, cv = _put(cache["k"], k, (t0 % (2 * c),)), _put(cache["v"], v, (t0 % (2 * c),))
        previous = jnp.arange(2 * c) // c == jnp.mod(t0 // c - 1, 2)
        out = jnp.where(t0 >= c, attend_cache(q, ck, cv, previous[None, :]), 0)  # the first block sees zero values
        return constrain({"k": ck, "v": cv}), out


class TransposeBlock(SelfAttention):
    """The same offset in the query's block and every earlier one. probs `[b, c, h, n, n]`."""

    def full(self, q, k, v, dropout=None):
        c = self.geometry.block_ctx
        col = lambda x: jnp.swapaxes(_blocks(x, c), 1, 2)  # [b, c, n, h, d]
        out, probs = attend_seq(col(q), col(k), col(v), causal_mask(q.shape[1] // c), dropout=dropout)
        return _unblocks(jnp.swapaxes(out, 1, 2)), probs

    def cache_positions(self):
        return (self.geometry.block_ctx, self.geometry.n_blocks)

    def allowed(self, i, j):
        c = self.geometry.block_ctx
        return (j <= i) & (j % c == i % c)

    def context(self, cache, t0):
        b, h, c, n, d = cache["k"].shape
        k, v = (jnp.swapaxes(x, 2, 3).reshape(b, h, n * c, d) for x in (cache["k"], cache["v"]))  # position-major
        pos = jnp.arange(n * c)
        return k, v, pos, pos < t0

    def write(self, cache, new, t0):
        c = self.geometry.block_ctx
        pos = t0 + jnp.arange(new.shape[1])
        return cache.at[:, :, pos % c, pos // c].set(heads_major(new).astype(cache.dtype), mode="drop")

    def step(self, q, k, v, cache, t0):
        c = self.geometry.block_ctx
        col, row = t0 % c, t0 // c  # column t0 % c holds positions t0 % c + n * c
        ck, cv = _put(cache["k"], k, (col, row)), _put(cache["v"], v, (col, row))
        keys, values = (jax.lax.dynamic_index_in_dim(x, col, axis=2, keepdims=False) for x in (ck, cv))
        return constrain({"k": ck, "v": cv}), attend_cache(q, keys, values, (jnp.arange(keys.shape[2]) <= row)[None, :])


class SummarySpread(TransposeBlock):
    """The last `spread` positions of every finished block, after `spread` zero keys (the tail
    of an empty block before the first). probs `[b, h, t, n * spread]`. Not sampleable (nor in the original)."""

    @property
    def tail(self) -> int:
        return self.geometry.spread

    def full(self, q, k, v, dropout=None):
        c, spread = self.geometry.block_ctx, self.tail
        t = q.shape[1]
        n = t // c
        tail = lambda x: jnp.pad(_blocks(x, c)[:, :-1, -spread:], ((0, 0), (1, 0), (0, 0), (0, 0), (0, 0)))
        keys_at = np.arange(-c, (n - 1) * c).reshape(n, c)[:, -spread:].reshape(-1)
        mask = (keys_at[None, :] <= np.arange(t)[:, None]) | (np.arange(n * spread) < spread)[None, :]
        return attend_seq(q, _unblocks(tail(k)), _unblocks(tail(v)), mask, dropout=dropout)

    def allowed(self, i, j):
        c = self.geometry.block_ctx
        return (j <= i) & (j % c >= c - self.tail) & (j // c < self.geometry.n_blocks - 1)

    def zero_keys(self, i):
        return jnp.ones((i.shape[0], self.tail), bool)

    def step(self, q, k, v, cache, t0):
        raise NotImplementedError("SUMMARY_SPREAD cannot be sampled (the original does not implement it either)")


class Summary(SummarySpread):
    """The last position of every finished block, after one zero key. probs `[b, h, t, n]`."""

    @property
    def tail(self) -> int:
        return 1

    step = SelfAttention.step  # sampleable, unlike SummarySpread: a 1-position extend


@dataclasses.dataclass(frozen=True)
class EncDec:
    """Every encoder state: keys and values come from the lyric encoder, not the sequence.
    Its cache is filled once per window (`fill`) and only read afterwards."""

    geometry: Geometry

    def full(self, q, k, v, dropout=None):
        """`q [b, t, h, d]`, encoder `k, v [b, s, h, d]`. probs `[b, h, t, s]`."""
        return attend_seq(q, k, v, None, dropout=dropout)

    def cache_positions(self) -> tuple[int, ...]:
        return (self.geometry.n_tokens,)

    def fill(self, k: jax.Array, v: jax.Array, dtype: jnp.dtype) -> Cache:
        """The cache of the encoder's keys and values `[b, s, h, d]`."""
        return constrain({"k": heads_major(k).astype(dtype), "v": heads_major(v).astype(dtype)})

    def extend(self, q: jax.Array, cache: Cache) -> tuple[Cache, jax.Array]:
        """Queries `q [b, L, h, d]` over the filled cache -> `(cache, out [b, L, h, d])`."""
        return cache, attend_cache(q, cache["k"], cache["v"], None)


KINDS: dict[AttnKind, type] = {
    AttnKind.DENSE: Dense,
    AttnKind.BLOCK: Block,
    AttnKind.TRANSPOSE_BLOCK: TransposeBlock,
    AttnKind.PREV_BLOCK: PrevBlock,
    AttnKind.SUMMARY: Summary,
    AttnKind.SUMMARY_SPREAD: SummarySpread,
    AttnKind.ENC_DEC: EncDec,
    AttnKind.PRIME: Prime,
}


def attention(kind: AttnKind, geometry: Geometry) -> SelfAttention | EncDec:
    """The attention object of `kind` over `geometry`."""
    return KINDS[kind](geometry)


def self_attention(kind: AttnKind, q: jax.Array, k: jax.Array, v: jax.Array, geometry: Geometry, dropout: Dropout | None = None) -> tuple[jax.Array, jax.Array]:
    """The full pass of a self-attention `kind` over `q, k, v [b, t, h, d]` of any length `t`
    (blockwise kinds pad the end to a whole block; padding never reaches a real query, since
    every kind is causal) -> `(out [b, t, h, d], probs)`."""
    obj = attention(kind, geometry)
    if kind in (AttnKind.DENSE, AttnKind.PRIME):
        return obj.full(q, k, v, dropout)
    t = q.shape[1]
    pad = lambda x: jnp.pad(x, ((0, 0), (0, -t % geometry.block_ctx), (0, 0), (0, 0)))
    out, probs = obj.full(pad(q), pad(k), pad(v), dropout)
    return out[:, :t], probs


def init_cache(kind: AttnKind, geometry: Geometry, batch: int, heads: int, head_width: int, dtype: jnp.dtype) -> Cache:
    """Zeros in the cache layout of `kind` (see the table above)."""
    shape = (batch, heads, *attention(kind, geometry).cache_positions(), head_width)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
