"""Full-sequence attention of every kind equals a dense masked reference written from the
original's rules in terms of positions, for random sizes (lengths need not be whole blocks,
block lengths need not be powers of two); and the layer stack's grouping, scan and unrolled
forms agree on one set of canonical weights, with remat and dropout."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dropout_checks import assert_drops_at_its_rate, dropout_calls

from jukebox_jax.config import AttnKind, TransformerConfig, attn_pattern
from jukebox_jax.prior import layout
from jukebox_jax.prior.attention import Geometry, self_attention
from jukebox_jax.prior.transformer import Execution, LayerSpec, Remat, Transformer, layer_groups


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
    out, _ = self_attention(kind, q, k, v, Geometry(n_positions=t, block_ctx=c, spread=spread, prime_len=prime_len))
    assert out.shape == (b, t, h, d)
    np.testing.assert_allclose(np.asarray(out), reference(kind, q, k, v, c, spread, prime_len), rtol=2e-5, atol=2e-5)


def test_prev_block_first_block_is_exactly_zero():
    q, k, v = (jnp.ones((1, 8, 1, 2)) for _ in range(3))
    out, _ = self_attention(AttnKind.PREV_BLOCK, q, k, v, Geometry(n_positions=8, block_ctx=4))
    assert np.all(np.asarray(out[:, :4]) == 0) and np.all(np.asarray(out[:, 4:]) == 1)


@pytest.mark.parametrize("order", range(13))
def test_layer_groups_cover_every_layout(order):
    for depth in (1, 5, 16, 33, 79):
        pattern = attn_pattern(order, depth)
        groups = layer_groups(pattern)
        assert tuple(k for unit, reps in groups for k in unit * reps) == pattern
        units = [unit for unit, _ in groups]
        assert all(a != b for a, b in zip(units, units[1:])), "equal neighbours would merge into one segment"
        for unit in units:  # no unit is a shorter unit repeated (it would compile more layers than needed)
            assert not any(len(unit) % p == 0 and unit == unit[:p] * (len(unit) // p) for p in range(1, len(unit)))


def test_released_stacks_compile_few_layers():
    """72 layers of [block, transpose, prev] compile as one 3-layer unit scanned 24 times."""
    assert layer_groups(attn_pattern(2, 72)) == (((AttnKind.BLOCK, AttnKind.TRANSPOSE_BLOCK, AttnKind.PREV_BLOCK), 24),)
    assert sum(len(u) for u, _ in layer_groups(attn_pattern(10, 79))) <= 13


def _stack(order: int, depth: int, **dropout: float):
    cfg = TransformerConfig(width=16, depth=depth, heads=2, attn_order=order, blocks=4, init_scale=4.0, **dropout)
    setup = LayerSpec(cfg, Geometry(n_positions=20, block_ctx=5, spread=2, prime_len=8, n_tokens=6))
    enc = jax.random.normal(jax.random.key(2), (2, 6, 16)) if AttnKind.ENC_DEC in cfg.pattern else None
    x = jax.random.normal(jax.random.key(1), (2, 20, 16))
    scan_tree = Transformer(setup, Execution.SCAN).init(jax.random.key(order), x, enc)["params"]
    return cfg, setup, x, enc, layout.to_canonical(nn.unbox(scan_tree), cfg.pattern)


def _apply(setup, params, x, enc, execution, remat=Remat.NONE, **kw):
    tree = layout.to_execution(params, setup.config.pattern, execution)
    return Transformer(setup, execution, remat).apply({"params": tree}, x, enc, **kw)


@pytest.mark.parametrize("order,depth", [pytest.param(2, 7, marks=pytest.mark.slow), pytest.param(12, 17, marks=pytest.mark.slow), (10, 12), (9, 6)])  # slow: ~17 s each
def test_scan_and_unrolled_stacks_agree(order, depth):
    """One set of canonical weights, every execution form: the same numbers."""
    cfg, setup, x, enc, params = _stack(order, depth)
    scanned, _ = _apply(setup, params, x, enc, Execution.SCAN)
    unrolled, captured = _apply(setup, params, x, enc, Execution.UNROLLED, capture=frozenset({0, depth - 1}))
    np.testing.assert_allclose(np.asarray(scanned), np.asarray(unrolled), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(captured.activations[depth - 1]), np.asarray(unrolled))
    assert set(captured.attn_probs) == set(captured.activations) == {0, depth - 1}
    per_layer = Transformer(setup).apply({"params": layout.per_layer(params, cfg.pattern)}, x, enc)[0]  # the decode layout
    np.testing.assert_array_equal(np.asarray(per_layer), np.asarray(unrolled))
    for remat in (Remat.FULL, Remat.DOTS):  # recomputation changes memory, not numbers
        np.testing.assert_array_equal(np.asarray(_apply(setup, params, x, enc, Execution.SCAN, remat)[0]), np.asarray(scanned))


def test_canonical_layout_round_trips():
    """Canonical -> each execution layout -> canonical is the identity, and the stacks hold
    the layers in original order (entry i of `cross_layers` is the i-th ENC_DEC layer)."""
    cfg, setup, x, enc, params = _stack(10, 29)  # ENC_DEC layers at 18 and 28
    assert layout.stack_sizes(cfg.pattern) == {"layers": 27, "cross_layers": 2}
    for execution in Execution:
        back = layout.to_canonical(layout.to_execution(params, cfg.pattern, execution), cfg.pattern)
        jax.tree.map(np.testing.assert_array_equal, back, params)
    per_layer = layout.per_layer(params, cfg.pattern)
    np.testing.assert_array_equal(per_layer["layers_28"]["attn"]["c_enc_kv_kernel"], params["cross_layers"]["attn"]["c_enc_kv_kernel"][1])
    np.testing.assert_array_equal(per_layer["layers_19"]["mlp"]["c_fc_kernel"], params["layers"]["mlp"]["c_fc_kernel"][18])


def test_per_layer_views_share_memory_on_cpu():
    """On a CPU the decode layout is views of the canonical stacks: no second copy."""
    cfg, setup, x, enc, params = _stack(2, 6)
    stacked = params["layers"]["mlp"]["c_fc_kernel"]
    per_layer = layout.per_layer(params, cfg.pattern)
    base, size = stacked.unsafe_buffer_pointer(), stacked[0].nbytes
    assert [per_layer[f"layers_{d}"]["mlp"]["c_fc_kernel"].unsafe_buffer_pointer() - base for d in range(6)] == [d * size for d in range(6)]
    del params, stacked
    np.testing.assert_array_equal(Transformer(setup).apply({"params": per_layer}, x, enc)[0], _apply(setup, _stack(2, 6)[-1], x, enc, Execution.UNROLLED)[0])


def test_dropout_drops_at_each_configured_rate():
    """Every dropout call of the stack zeroes its rate's share of the values and scales the rest
    by 1 / (1 - rate), at the attention and residual rates given (the test below checks only
    that dropout changes the output: halved rates passed it)."""
    rates = {"attn_dropout": 0.3, "resid_dropout": 0.2}
    cfg, setup, x, enc, params = _stack(9, 4, **rates)
    train = dataclasses.replace(setup, deterministic=False)
    calls = dropout_calls(lambda: _apply(train, params, x, enc, Execution.UNROLLED, rngs={"dropout": jax.random.key(0)}))
    assert {rate for rate, _, _ in calls} == set(rates.values()) and len(calls) == 3 * cfg.depth  # probs, attention out, MLP out
    for call in calls:
        assert_drops_at_its_rate(*call)


def test_dropout_is_plumbed():
    """Dropout rates of the original: off at inference (deterministic), on in training with a
    "dropout" rng, and with rate 0 training equals inference."""
    cfg, setup, x, enc, params = _stack(2, 4, attn_dropout=0.3, resid_dropout=0.3)
    plain, _ = _apply(setup, params, x, enc, Execution.SCAN)
    train = lambda seed, execution: _apply(dataclasses.replace(setup, deterministic=False), params, x, enc, execution, rngs={"dropout": jax.random.key(seed)})[0]
    a, b = train(0, Execution.SCAN), train(1, Execution.SCAN)
    assert float(jnp.abs(a - plain).max()) > 1e-2 and float(jnp.abs(a - b).max()) > 1e-2
    np.testing.assert_array_equal(np.asarray(train(0, Execution.SCAN)), np.asarray(a))  # the rng decides
    cfg0, setup0, _, _, params0 = _stack(2, 4)
    off = _apply(dataclasses.replace(setup0, deterministic=False), params0, x, enc, Execution.SCAN, rngs={"dropout": jax.random.key(0)})[0]
    np.testing.assert_array_equal(np.asarray(off), np.asarray(_apply(setup0, params0, x, enc, Execution.SCAN)[0]))
