"""The KV cache: a chunked prefill (chunks not aligned to blocks) followed by single-step
decoding gives the teacher-forced logits at every position, for every attention kind and
every prior structure, with canonical params and with `decode_params` (one buffer per layer)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convert import convert_checkpoint
from jukebox_jax import prior
from jukebox_jax.config import AttnKind, Lyrics, PriorConfig, TransformerConfig, preset


def chunk_sizes(n: int, head: list[int], step: int = 1) -> list[int]:
    """`head`, then chunks of `step` (the last one absorbing any remainder), summing to `n`."""
    sizes = head + [step] * ((n - sum(head)) // step)
    sizes[-1] += (n - sum(head)) % step
    return sizes


def cached_logits(cfg: PriorConfig, params, tokens, labels, upper, sizes: list[int]) -> np.ndarray:
    """Logits of the whole sequence computed chunk by chunk against the cache (chunks of one
    position take the decode step)."""
    ctx = prior.condition(cfg, params, labels, upper)
    seq = prior.sequence(cfg, tokens, labels)
    prev = jnp.pad(seq, ((0, 0), (1, 0)))  # the input at position p is the id at p - 1
    extend = jax.jit(functools.partial(prior.extend, cfg), static_argnums=5)
    cache = prior.init_cache(cfg, tokens.shape[0])
    if ctx.encoder_kv is not None:  # ENC_DEC layers read the encoder's keys and values, filled once
        cache = prior.fill_encoder_cache(cfg, params, ctx, cache)
    ctx = dataclasses.replace(ctx, encoder_kv=None)
    out, t0 = [], 0
    for size in sizes:
        logits, cache = extend(params, prev[:, t0 : t0 + size], jnp.int32(t0), ctx, cache, size == 1)
        out.append(np.asarray(logits))
        t0 += size
    return np.concatenate(out, axis=1)


def assert_close(a, b):
    scale = float(np.abs(b).max())
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * scale)


FIXTURES = {"prior_5b_level2": 2, "prior_5b_lyrics_level2": 2, "prior_1b_lyrics_level2": 2, "upsampler_level1": 1}


CASES = [(stem, True) for stem in FIXTURES] + [("prior_5b_level2", False)]  # what `sample` runs, and canonical params once


@pytest.mark.parametrize("stem,per_layer", CASES, ids=[f"{s}-{'per_layer' if p else 'canonical'}" for s, p in CASES])
def test_cached_equals_full_pass_on_fixtures(stem, per_layer, fixtures):
    jb = convert_checkpoint(fixtures / "vqvae.pth.tar", fixtures / f"{stem}.pth.tar")
    ref = np.load(fixtures / f"{stem}.reference.npz")
    level = FIXTURES[stem]
    cfg = jb.config.prior(level)
    params = jb.params[f"prior_level_{level}"]
    upper = ref["z_cond"] if "z_cond" in ref else None
    full = np.asarray(jb.prior_forward(level, ref["z"], ref["y"], upper).logits)
    c = cfg.block_ctx
    sizes = chunk_sizes(full.shape[1], [c + 5, 7, c - 3])  # prefill chunks never aligned to blocks, then decode
    params = prior.decode_params(cfg, params) if per_layer else params
    cached = cached_logits(cfg, params, jnp.asarray(ref["z"]), jnp.asarray(ref["y"]), upper, sizes)
    assert_close(cached, full)


def _random_config(order: int, depth: int, seed: int) -> PriorConfig:
    """A tiny prior of any layout: lyrics as the layout needs (enc-dec or prime layers)."""
    kinds = set(TransformerConfig(width=8, depth=depth, heads=1, attn_order=order, blocks=4).pattern)
    base = preset("tiny_1b_lyrics") if AttnKind.PRIME in kinds else preset("tiny_5b_lyrics" if AttnKind.ENC_DEC in kinds else "tiny_5b")
    rng = np.random.default_rng(seed)
    blocks = int(rng.choice([4, 6]))
    n_ctx = blocks * int(rng.integers(3, 6)) - (base.n_tokens if base.lyrics is Lyrics.JOINT_SEQUENCE else 0)
    n_ctx += (-(n_ctx + (base.n_tokens if base.lyrics is Lyrics.JOINT_SEQUENCE else 0))) % blocks
    t = dataclasses.replace(base.transformer, width=16, depth=depth, heads=2, attn_order=order, blocks=blocks, spread=2, init_scale=5.0)
    return dataclasses.replace(base, n_ctx=max(n_ctx, blocks), transformer=t)


DEEP = (6, 7, 8, 10, 11, 12)  # layouts of deep stacks: 14-26 s each


@pytest.mark.parametrize("order", [pytest.param(o, marks=pytest.mark.slow) if o in DEEP else o for o in range(13)])
def test_cached_equals_full_pass_for_every_layout(order):
    depth = {7: 17, 8: 11, 10: 20, 11: 17, 12: 17}.get(order, 5)
    cfg = _random_config(order, depth, seed=order)
    upper = jnp.zeros((2, cfg.n_ctx // cfg.cond_downsample), jnp.int32) if cfg.conditioner else None
    key = jax.random.key(order)
    params = prior.init_params(cfg, key)
    t = cfg.n_ctx
    tokens = jax.random.randint(jax.random.fold_in(key, 1), (2, t), 0, cfg.l_bins)
    labels = jnp.zeros((2, cfg.n_labels), jnp.int32).at[:, 0].set(int(cfg.labels.t_ranges[0][0]) + 5).at[:, 2].set(t * cfg.raw_to_tokens)
    labels = labels.at[:, cfg.lyric_start :].set(jax.random.randint(key, (2, cfg.n_tokens), 0, cfg.n_vocab))
    full = np.asarray(prior.forward(cfg, params, tokens, labels, upper).logits)
    c = cfg.block_ctx
    # SUMMARY_SPREAD cannot be decoded one position at a time (nor can it in the original)
    step = 2 if AttnKind.SUMMARY_SPREAD in cfg.transformer.pattern else 1
    sizes = chunk_sizes(full.shape[1], [c + 1, c - 1], step)  # the second chunk starts mid-block and crosses a block
    assert_close(cached_logits(cfg, params, tokens, labels, upper, sizes), full)
    if order not in DEEP and AttnKind.PREV_BLOCK in cfg.transformer.pattern:  # decode steps cross the first block's end
        sizes = chunk_sizes(full.shape[1], [c // 2 // step * step], step)
        assert_close(cached_logits(cfg, params, tokens, labels, upper, sizes), full)
