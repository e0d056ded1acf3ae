"""Full-sequence attention of every kind equals a dense masked reference written from the
original's rules in terms of positions, for random sizes (lengths need not be whole blocks,
block lengths need not be powers of two); and the layer stack's grouping, scan and unrolled
paths agree, with stacked and per-layer params."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jukebox_jax.config import AttnKind, TransformerConfig, attn_pattern
from jukebox_jax.prior.attention import self_attention
from jukebox_jax.prior.transformer import LayerSpec, apply_transformer, init_transformer, layer_groups, unstack_layers


def reference(kind: AttnKind, q, k, v, c: int, spread: int, prime_len: int) -> np.ndarray:
    """Dense attention with an explicit [t, s] mask; the original's zero keys appended."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    b, t, h, d = q.shape
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    n = -(-t // c)  # blocks, the last one possibly partial
    causal = j <= i
    allowed, zeros = {
        AttnKind.DENSE: (causal, None),
        AttnKind.BLOCK: (causal & (j // c == i // c), None),
        AttnKind.TRANSPOSE_BLOCK: (causal & (j % c == i % c), None),
        AttnKind.PREV_BLOCK: (j // c == i // c - 1, np.broadcast_to(i // c == 0, (t, c))),
        AttnKind.SUMMARY: (causal & (j % c == c - 1) & (j // c < n - 1), np.ones((t, 1), bool)),
        AttnKind.SUMMARY_SPREAD: (causal & (j % c >= c - spread) & (j // c < n - 1), np.ones((t, spread), bool)),
        AttnKind.PRIME: (causal & (j < prime_len), None),
    }[kind]
    if zeros is not None:  # keys and values of zeros that the original attends to
        allowed = np.concatenate([allowed, zeros], axis=1)
        pad = np.zeros((b, zeros.shape[1], h, d))
        k, v = np.concatenate([k, pad], 1), np.concatenate([v, pad], 1)
    scores = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(d)
    scores = np.where(allowed, scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhts,bshd->bthd", p, v)


CASES = [(seed, kind) for seed in range(6) for kind in AttnKind if kind is not AttnKind.ENC_DEC]


@pytest.mark.parametrize("seed,kind", CASES, ids=[f"{k.name}-{s}" for s, k in CASES])
def test_full_attention_matches_dense_reference(seed, kind):
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 9))  # block length, any size
    t = int(rng.integers(1, 5 * c))  # not always a whole number of blocks
    b, h, d = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(2, 6))
    spread = int(rng.integers(1, c + 1))
    prime_len = int(rng.integers(1, t + 3))
    q, k, v = (rng.standard_normal((b, t, h, d)).astype(np.float32) for _ in range(3))
    out, _ = self_attention(kind, q, k, v, block_ctx=c, spread=spread, prime_len=prime_len)
    assert out.shape == (b, t, h, d)
    np.testing.assert_allclose(np.asarray(out), reference(kind, q, k, v, c, spread, prime_len), rtol=2e-5, atol=2e-5)


def test_prev_block_first_block_is_exactly_zero():
    q, k, v = (jnp.ones((1, 8, 1, 2)) for _ in range(3))
    out, _ = self_attention(AttnKind.PREV_BLOCK, q, k, v, block_ctx=4)
    assert np.all(np.asarray(out[:, :4]) == 0) and np.all(np.asarray(out[:, 4:]) == 1)


@pytest.mark.parametrize("order", range(13))
def test_layer_groups_cover_every_layout(order):
    for depth in (1, 5, 16, 33, 79):
        pattern = attn_pattern(order, depth)
        groups = layer_groups(pattern)
        assert tuple(k for unit, reps in groups for k in unit * reps) == pattern
        assert sum(len(unit) for unit, _ in groups) <= len(pattern)


def test_released_stacks_compile_few_layers():
    """72 layers of [block, transpose, prev] compile as one 3-layer unit scanned 24 times."""
    assert layer_groups(attn_pattern(2, 72)) == (((AttnKind.BLOCK, AttnKind.TRANSPOSE_BLOCK, AttnKind.PREV_BLOCK), 24),)
    assert sum(len(u) for u, _ in layer_groups(attn_pattern(10, 79))) <= 13


@pytest.mark.parametrize("order,depth", [(2, 7), (12, 17), (10, 12), (9, 6)])
def test_scan_and_unrolled_stacks_agree(order, depth):
    cfg = TransformerConfig(width=16, depth=depth, heads=2, attn_order=order, blocks=4, init_scale=4.0)
    spec = LayerSpec(cfg, block_ctx=5, prime_len=8)
    enc = 16 if AttnKind.ENC_DEC in cfg.pattern else None
    params = jax.tree.map(lambda b: b.value, init_transformer(jax.random.key(order), spec, enc), is_leaf=lambda b: hasattr(b, "names"))
    x = jax.random.normal(jax.random.key(1), (2, 20, 16))
    kv = jax.random.normal(jax.random.key(2), (2, 6, 16)) if enc else None
    scanned, _, _ = apply_transformer(params, x, kv, spec)
    unrolled, captured, _ = apply_transformer(params, x, kv, spec, unroll=True, capture=frozenset({0, depth - 1}))
    np.testing.assert_allclose(np.asarray(scanned), np.asarray(unrolled), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(captured.activations[depth - 1]), np.asarray(unrolled))
    assert set(captured.attn_probs) == {0, depth - 1}
    per_layer, _, _ = apply_transformer(unstack_layers(params), x, kv, spec)  # the decode layout
    np.testing.assert_array_equal(np.asarray(per_layer), np.asarray(unrolled))
