"""Property tests of the label, token and audio entry points: whatever a caller passes, the
answer is a `JukeboxError` or a correct result, never another exception and never NaN.

Inputs that pass the checks keep one shape per entry point (only their values vary), so each
kernel compiles once; most drawn inputs fail the checks, which cost microseconds."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from zero_models import zero_model

from jukebox_jax import Jukebox, JukeboxConfig, checks, preset
from jukebox_jax.errors import JukeboxError
from jukebox_jax.sampling import Greedy, Temperature, sampling_method

FUZZ = settings(max_examples=40, deadline=None, database=None)
RATE = 44100
T = 8  # tokens of every valid prior call
WINDOW = 48 * 128  # the tiny 5b top prior's window in audio samples: labels' sample_length
WIDE_INTS = st.integers(-(2**40), 2**40)


@pytest.fixture(scope="module")
def jb() -> Jukebox:
    """The tiny VQ-VAE and tiny 5b top prior: 64 codes, 30 artists, 12 genres, 5 genre slots."""
    return Jukebox.init(JukeboxConfig(vqvae=preset("tiny_vqvae"), priors=(preset("tiny_5b"),)), jax.random.key(0))


def names() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(["unknown", "blues", "Country Rock", "Alan Jackson", "", "  "]), st.text(max_size=12))


def ids(top: int) -> st.SearchStrategy:
    return st.one_of(st.integers(-3, top + 3), WIDE_INTS, st.booleans(), st.floats(), st.none())


def seconds() -> st.SearchStrategy:
    return st.one_of(st.floats(-10, 700), st.floats(), st.integers(-5, 10**12), st.just(0.0), st.text(max_size=3))


def mostly(valid: st.SearchStrategy, anything: st.SearchStrategy) -> st.SearchStrategy:
    """Three draws in four from `valid`: properties with several arguments still see
    accepted examples."""
    return st.sampled_from([valid, valid, valid, anything]).flatmap(lambda strategy: strategy)


def outcome(call):
    """`call()`'s result, or None where it raised a `JukeboxError` (anything else propagates).
    `--hypothesis-show-statistics` shows how many examples each test saw accepted."""
    try:
        result = call()
    except JukeboxError as e:
        event(f"refused: {type(e).__name__}")
        return None
    event("accepted")
    return result


def assert_finite_logits(jb: Jukebox, labels: np.ndarray) -> None:
    logits = np.asarray(jb.prior_logits(2, np.zeros((labels.shape[0], T), np.int32), labels))
    assert logits.shape == (labels.shape[0], T, 64) and np.isfinite(logits).all()


@FUZZ
@given(
    artist=mostly(st.sampled_from(["unknown", 0, 7, 29]), st.one_of(names(), ids(30))),
    genre=mostly(st.sampled_from(["blues", "unknown", 11, (1, 2)]), st.one_of(names(), ids(12), st.lists(st.integers(-2, 14), max_size=7))),
    total=mostly(st.floats(1e-3, 600), seconds()),
    offset=mostly(st.floats(0, 1), seconds()),
)
@example(artist="unknown", genre="blues", total=1.0, offset=4.076401666354458e303)  # found here: once an OverflowError
def test_labels_from_any_arguments(jb, artist, genre, total, offset):
    labels = outcome(lambda: jb.labels(2, artist=artist, genre=genre, total_seconds=total, offset_seconds=offset))
    if labels is not None:
        assert labels.shape == (1, 9) and labels.dtype == np.int32
        assert 0 < total <= 600 and 0 <= offset < total
        assert labels[0, 0] == max(round(total * RATE), 1) and labels[0, 1] == round(offset * RATE)
        assert_finite_logits(jb, labels)


@pytest.mark.parametrize("name", ["tiny_1b_lyrics", "tiny_5b_lyrics"])
@FUZZ
@given(lyrics=st.one_of(st.text(max_size=40), st.lists(st.integers(-2, 90), max_size=40), st.integers(), st.none()))
def test_lyrics_from_any_text_or_ids(name, lyrics):
    """Lyric labels of the 1b_lyrics (v3, 79 ids) and 5b_lyrics (v2, 80 ids) tiny top priors
    (no weights needed): every token a vocabulary id, and the labels the prior's own checks accept."""
    model = zero_model(name)
    cfg = model.config.prior(2)
    labels = outcome(lambda: model.labels(2, lyrics=lyrics, total_seconds=60))
    if labels is not None:
        tokens = labels[0, -cfg.n_tokens :]
        assert ((0 <= tokens) & (tokens < cfg.n_vocab)).all()
        checks.labels(cfg, labels)  # what sample and prior_logits check


def label_rows() -> st.SearchStrategy:
    """Label rows `[1, 9]` near and across the valid ranges of each column."""
    columns = [
        mostly(st.integers(RATE, 600 * RATE), st.integers(-1, 601 * RATE)),  # total_length
        mostly(st.integers(0, RATE), st.integers(-1, 601 * RATE)),  # offset
        mostly(st.just(WINDOW), st.integers(-1, 10_000)),  # sample_length
        mostly(st.integers(0, 29), st.integers(-2, 32)),  # artist
        *[mostly(st.integers(-1, 11), st.integers(-3, 14))] * 5,  # genre slots
    ]
    return mostly(st.tuples(*columns).map(lambda row: np.array([row], np.int64)), hnp.arrays(np.int64, (1, 9), elements=WIDE_INTS))


def token_arrays() -> st.SearchStrategy:
    valid_shape = hnp.arrays(np.int64, (1, T), elements=st.integers(0, 63))
    other = hnp.arrays(
        st.sampled_from([np.int64, np.int32, np.uint8, np.float32, np.bool_]),
        st.sampled_from([(1, T), (1, 0), (2, T), (1, 49), (T,), (1, 1, T)]),
    )
    return mostly(valid_shape, other)


@FUZZ
@given(tokens=token_arrays(), labels=label_rows())
def test_prior_logits_of_any_tokens_and_labels(jb, tokens, labels):
    logits = outcome(lambda: jb.prior_logits(2, tokens, labels))
    if logits is not None:
        assert tokens.shape == (1, T) and tokens.min() >= 0 and tokens.max() < 64
        assert 0 <= labels[0, 3] < 30 and 0 < labels[0, 0] and 0 <= labels[0, 1] < labels[0, 0] and labels[0, 2] == WINDOW
        assert logits.shape == (1, T, 64) and np.isfinite(np.asarray(logits)).all()


def audio_arrays() -> st.SearchStrategy:
    """`[1, 256, 1]` audio: mostly in range, some with a NaN, an Inf or a loud sample."""
    sample = mostly(st.floats(-1, 1, width=32), st.one_of(st.floats(width=32), st.floats(-9, 9, width=32)))
    loud = hnp.arrays(np.float32, (1, 256, 1), elements=sample)
    quiet = hnp.arrays(np.float32, (1, 256, 1), elements=st.floats(-1, 1, width=32))
    other = hnp.arrays(st.sampled_from([np.float64, np.int16]), st.sampled_from([(1, 256, 1), (1, 256, 2), (1, 100, 1), (256, 1)]))
    return st.one_of(quiet, loud, other)


@FUZZ
@given(audio=audio_arrays())
def test_encode_any_audio(jb, audio):
    codes = outcome(lambda: jb.encode(audio))
    if codes is not None:
        assert np.isfinite(audio).all() and np.abs(audio).max() <= checks.MAX_AUDIO_PEAK and audio.shape == (1, 256, 1)
        assert [z.shape for z in codes] == [(1, 32), (1, 8), (1, 2)]
        assert all(0 <= int(z.min()) and int(z.max()) < 64 for z in codes)


@FUZZ
@given(
    codes=st.one_of(
        hnp.arrays(np.int64, (1, 4), elements=st.one_of(st.integers(0, 63), WIDE_INTS)),
        hnp.arrays(st.sampled_from([np.float32, np.int8]), st.sampled_from([(1, 4), (1, 0), (4,)])),
    ),
    level=st.sampled_from([2, 2, -1, 3, 2.0, "2"]),  # only level 2 is valid: one compiled decoder
)
def test_decode_any_codes(jb, codes, level):
    audio = outcome(lambda: jb.decode([codes], start_level=level))
    if audio is not None:
        assert level == 2 and codes.shape == (1, 4) and codes.min() >= 0 and codes.max() < 64
        assert audio.shape == (1, 512, 1) and np.isfinite(np.asarray(audio)).all()


@FUZZ
@given(
    temperature=mostly(st.floats(1e-6, 10), st.one_of(st.floats(), st.integers(-3, 3), st.text(max_size=2), st.none())),
    top_k=mostly(st.sampled_from([0, 0, 1, 5]), st.one_of(st.integers(-3, 100), st.floats(-1, 5), st.booleans())),
    top_p=mostly(st.sampled_from([0.0, 0.0, 0.5, 1.0]), st.one_of(st.floats(), st.integers(-1, 2))),
)
def test_sampling_settings(temperature, top_k, top_p):
    method = outcome(lambda: sampling_method(temperature, top_k, top_p))
    if method is not None:
        assert math.isfinite(temperature) and temperature >= 1e-6 and isinstance(method, (Greedy, Temperature))
