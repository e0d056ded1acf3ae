"""Prior parity with the original code's fixtures: teacher-forced logits, both losses, the
5b_lyrics lyric encoder, for all five released structures (tiny, random weights)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from convert import convert_checkpoint
from jukebox_jax.config import Lyrics
from jukebox_jax.prior import condition

PRIORS = ["prior_5b_level2", "prior_5b_lyrics_level2", "prior_1b_lyrics_level2", "upsampler_level1", "upsampler_level0"]
LEVEL = {"prior_5b_level2": 2, "prior_5b_lyrics_level2": 2, "prior_1b_lyrics_level2": 2, "upsampler_level1": 1, "upsampler_level0": 0}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module", params=PRIORS)
def case(request, fixtures):
    stem = request.param
    jb = convert_checkpoint(fixtures / "vqvae.pth.tar", fixtures / f"{stem}.pth.tar")
    ref = dict(np.load(fixtures / f"{stem}.reference.npz"))
    return stem, jb, LEVEL[stem], ref


def test_logits_and_losses(case):
    stem, jb, level, ref = case
    args = (level, ref["z"], ref["y"], ref.get("z_cond"))
    logits = jb.prior_logits(*args)
    assert logits.shape == ref["logits"].shape
    assert rel_err(logits, ref["logits"]) < 2e-6  # measured 4e-7 to 7e-7 (1e-5 let a gelu constant off by 1e-5 through)
    if "logits_full" in ref:  # 1b_lyrics: the whole joint sequence and vocabulary
        assert rel_err(jb.prior_forward(*args).logits, ref["logits_full"]) < 2e-6
    losses = jb.prior_loss(*args)
    assert abs(float(losses["gen_loss"]) / ref["gen_loss"] - 1) < 1e-5
    if ref["prime_loss"] == 0:
        assert float(losses["prime_loss"]) == 0
    else:
        assert abs(float(losses["prime_loss"]) / ref["prime_loss"] - 1) < 1e-5


def test_unrolled_stack_gives_the_same_logits(case):
    stem, jb, level, ref = case
    args = (level, ref["z"], ref["y"], ref.get("z_cond"))
    scanned = jb.prior_forward(*args).logits
    unrolled = jb.prior_forward(*args, unroll=True).logits
    np.testing.assert_allclose(np.asarray(unrolled), np.asarray(scanned), rtol=1e-5, atol=1e-5 * float(np.abs(scanned).max()))


def test_lyric_encoder(case):
    stem, jb, level, ref = case
    cfg = jb.config.prior(level)
    if cfg.lyrics is not Lyrics.SEPARATE_ENCODER:
        pytest.skip("only 5b_lyrics has a lyric encoder")
    ctx = condition(cfg, jb.params[f"prior_level_{level}"], ref["y"], None)
    assert rel_err(ctx.encoder_kv, ref["encoder_kv"]) < 1e-5
    assert rel_err(ctx.lyric_logits, ref["prime_logits"]) < 1e-5


def test_a_dense_lyric_encoder_runs_without_blocks(fixtures):
    """A lyric encoder of dense layers only may leave `blocks` None, as the original's hps do
    (it divided by None): it encodes as it does with any blocks."""
    jb = convert_checkpoint(fixtures / "vqvae.pth.tar", fixtures / "prior_5b_lyrics_level2.pth.tar")
    y = np.load(fixtures / "prior_5b_lyrics_level2.reference.npz")["y"]
    cfg = jb.config.prior(2)
    dense = dataclasses.replace(cfg.lyric_encoder, attn_order=0)
    a, b = (
        condition(dataclasses.replace(cfg, lyric_encoder=dataclasses.replace(dense, blocks=n)), jb.params["prior_level_2"], y, None)
        for n in (cfg.lyric_encoder.blocks, None)
    )
    np.testing.assert_array_equal(np.asarray(a.encoder_kv), np.asarray(b.encoder_kv))
    np.testing.assert_array_equal(np.asarray(a.lyric_logits), np.asarray(b.lyric_logits))


def test_teacher_forcing_is_causal(case):
    """Logits of a prefix equal the first positions of the full pass (no peeking ahead)."""
    stem, jb, level, ref = case
    full = jb.prior_logits(level, ref["z"], ref["y"], ref.get("z_cond"))
    t = ref["z"].shape[1] // 2 + 1  # not a whole number of blocks
    part = jb.prior_logits(level, ref["z"][:, :t], ref["y"], ref.get("z_cond"))
    np.testing.assert_allclose(np.asarray(part), np.asarray(full[:, :t]), rtol=1e-5, atol=1e-5 * float(np.abs(full).max()))


def test_capture_outside_the_stack_is_an_error(case):
    """Asking for a layer the prior does not have is refused, not silently empty."""
    stem, jb, level, ref = case
    depth = jb.config.prior(level).transformer.depth
    with pytest.raises(ValueError, match=f"layers 0..{depth - 1}"):
        jb.prior_forward(level, ref["z"], ref["y"], ref.get("z_cond"), capture={depth})
