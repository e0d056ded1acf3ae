"""Bad input to the Python API: each case is a call, the error it must raise and a pattern its
message must match (the argument, the allowed range or the fix). Every check runs on the host
before anything is traced, so the whole table costs milliseconds. Then what the checks let
through: a key used twice, `Jukebox.labels` against the tokenizer path, presets by name."""

from __future__ import annotations

import time

import jax
import numpy as np
import pytest
from zero_models import zero_model

from jukebox_jax import Jukebox, JukeboxConfig, preset, tokenizer
from jukebox_jax.errors import ConfigError, InputError, JukeboxError, ParamsError
from jukebox_jax.labels import window_labels
from jukebox_jax.sampling import MIN_TEMPERATURE, Temperature, TopK, TopP, sampling_method
from jukebox_jax.sampling.decode import _decode

RATE = 44100


@pytest.fixture(scope="module")
def jb() -> Jukebox:
    """The tiny VQ-VAE and 5b top prior (the upsampler cases need no weights: `params_free`)."""
    return Jukebox.init(JukeboxConfig(vqvae=preset("tiny_vqvae"), priors=(preset("tiny_5b"),)), jax.random.key(0))


PARAMS_FREE = ("tiny_1b_lyrics", "tiny_5b", "tiny_5b_lyrics", "tiny_upsampler_level_1")


params_free = zero_model  # made before the timed calls (`test_bad_input_is_a_clear_error`)


KEY = jax.random.key(1)
TOP = np.array([[60 * RATE, 0, 48 * 128, 1, 2, -1, -1, -1, -1]])  # tiny_5b level 2: 30 artists, 12 genres, 600 s
UP = np.array([[60 * RATE, 0, 64 * 32, 1, 2, -1, -1, -1, -1]])  # tiny_5b level 1
TOKENS = np.zeros((1, 8), np.int32)
UPPER = np.zeros((1, 16), np.int32)  # level 1: 64 tokens per window, 4 per level-2 code
AUDIO = np.zeros((1, 256, 1), np.float32)


def with_(labels: np.ndarray, col, value) -> np.ndarray:
    out = labels.copy()
    out[:, col] = value
    return out


def logits(labels=TOP, tokens=TOKENS, level=2, upper=None):
    return lambda jb: (jb if level in (2, 2.0) else params_free("tiny_5b")).prior_logits(level, tokens, labels, upper)


def sample(labels=TOP, n_tokens=4, level=2, **kw):
    return lambda jb: jb.sample(level, kw.pop("key", KEY), labels, n_tokens, **kw)


def lyric_labels(name: str, col: int, value: int) -> np.ndarray:
    cfg = JukeboxConfig.from_preset(name).prior(2)
    row = np.zeros((1, cfg.n_labels), np.int64)
    row[0, :3] = 60 * RATE, 0, cfg.n_ctx * cfg.raw_to_tokens
    row[0, 4 + cfg.labels.max_bow_genre_size :] = 0
    row[0, col] = value
    return row


CASES = [
    # labels: ids past their tables, lyric ids past the vocabulary, timing that makes no sense
    ("artist past table", logits(with_(TOP, 3, 30)), InputError, r"artist ids\) must lie in \[0, 30\).*Jukebox.labels"),
    ("artist negative", logits(with_(TOP, 3, -1)), InputError, r"artist ids\) must lie in \[0, 30\)"),
    ("genre past table", logits(with_(TOP, 5, 12)), InputError, r"genre ids, -1 in empty slots\) must lie in \[-1, 12\)"),
    ("genre below -1", logits(with_(TOP, 4, -2)), InputError, r"\[-1, 12\)"),
    ("upsampler artist", logits(with_(UP, 3, 99), level=1, upper=UPPER), InputError, r"artist ids\) must lie in \[0, 30\)"),
    ("lyric id past vocab", lambda _: params_free("tiny_5b_lyrics").prior_logits(2, TOKENS, lyric_labels("tiny_5b_lyrics", -1, 80)), InputError, r"lyric token ids\) must lie in \[0, 80\)"),
    ("lyric id negative 1b", lambda _: params_free("tiny_1b_lyrics").prior_logits(2, TOKENS, lyric_labels("tiny_1b_lyrics", -3, -1)), InputError, r"lyric token ids\) must lie in \[0, 79\)"),
    ("total length zero", logits(with_(TOP, 0, 0)), InputError, r"total_length.*1\.\.26460000.*600 s"),
    ("total length past timing", logits(with_(TOP, 0, 601 * RATE)), InputError, r"total_length.*600 s"),
    ("offset negative", logits(with_(TOP, 1, -5)), InputError, r"offset.*\[0, total_length\)"),
    ("offset past song", logits(with_(TOP, 1, 60 * RATE)), InputError, r"offset.*\[0, total_length\)"),
    ("sample length zero", logits(with_(TOP, 2, 0)), InputError, r"sample_length.*must be 6144, the level-2 prior's window \(48 tokens of 128"),
    # the top prior's timing read over the upsampler's window: no error in the original, other logits
    ("upsampler's labels on top", logits(UP), InputError, r"labels\[:, 2\].*must be 6144.*got \[2048\] \(another level's labels\?\)"),
    ("labels past int32", logits(with_(TOP, 0, 2**40)), InputError, r"fit int32"),
    ("labels width", logits(TOP[:, :-1]), InputError, r"labels must be integer \[batch, 9\].*Jukebox.labels\(2"),
    ("labels float", logits(TOP.astype(np.float32)), InputError, r"labels must hold integers"),
    ("labels ragged", logits([[1, 2], [3]]), InputError, r"labels must be an array"),
    # tokens and upper codes
    ("token past codebook", logits(tokens=np.full((1, 8), 64)), InputError, r"tokens must lie in \[0, 64\): tokens\[0, 0\] is 64"),
    ("token negative", logits(tokens=np.full((1, 8), -1)), InputError, r"tokens must lie in \[0, 64\)"),
    ("tokens float", logits(tokens=np.zeros((1, 8), np.float32)), InputError, r"tokens must hold integers"),
    ("tokens bool", logits(tokens=np.zeros((1, 8), bool)), InputError, r"tokens must hold integers"),
    ("tokens past window", logits(tokens=np.zeros((1, 49), np.int32)), InputError, r"<= 48 \(the prior's window\)"),
    ("tokens empty", logits(tokens=np.zeros((1, 0), np.int32)), InputError, r"tokens must be an array .*none of it empty"),
    ("tokens 1-D", logits(tokens=np.zeros(8, np.int32)), InputError, r"tokens must be an array \[batch"),
    ("tokens batch", logits(tokens=np.zeros((2, 8), np.int32)), InputError, r"batch=1 \(as labels\)"),
    ("upper missing", logits(UP, level=1), InputError, r"level-1 prior \(an upsampler\) needs upper_codes \(1, 16\)"),
    ("upper past codebook", logits(UP, level=1, upper=np.full((1, 16), 70)), InputError, r"upper_codes must lie in \[0, 64\)"),
    ("upper shape", logits(UP, level=1, upper=np.zeros((1, 15), np.int32)), InputError, r"upper_codes must be \(1, 16\)"),
    ("upper on top", logits(upper=UPPER), InputError, r"not conditioned on upper codes"),
    ("capture outside stack", lambda jb: jb.prior_forward(2, TOKENS, TOP, capture={63}), InputError, r"capture \[63\]: the level-2 prior has layers 0\.\.5"),
    ("capture negative", lambda jb: jb.prior_forward(2, TOKENS, TOP, capture={-1}), InputError, r"layers 0\.\.5"),
    ("capture not a set", lambda jb: jb.prior_forward(2, TOKENS, TOP, capture=3), InputError, r"capture must be a set"),
    ("no such level", lambda jb: jb.prior_logits(3, TOKENS, TOP), InputError, r"no prior for level 3"),
    ("loss token", lambda jb: jb.prior_loss(2, np.full((1, 8), 99), TOP), InputError, r"tokens must lie in \[0, 64\)"),
    # sampling settings
    ("temperature nan", sample(temperature=float("nan")), InputError, r"temperature must be a finite number"),
    ("temperature inf", sample(temperature=float("inf")), InputError, r"temperature must be a finite number"),
    ("temperature zero", sample(temperature=0.0), InputError, r"temperature must be at least 1e-06.*top_k=1"),
    ("temperature past float32", sample(temperature=1e39), InputError, r"temperature must be at most 1e\+06"),
    ("temperature negative", sample(temperature=-1.0), InputError, r"at least 1e-06"),
    ("temperature underflow", sample(temperature=1e-30), InputError, r"at least 1e-06"),
    ("temperature nan greedy", sample(temperature=float("nan"), top_k=1), InputError, r"temperature"),
    ("temperature str", sample(temperature="hot"), InputError, r"temperature must be a finite number"),
    ("top_k negative", sample(top_k=-1), InputError, r"top_k must be an int >= 0"),
    ("top_k float", sample(top_k=2.5), InputError, r"top_k must be an int"),
    ("top_k past vocab", sample(top_k=65), InputError, r"top_k must be at most 64"),
    ("top_p past 1", sample(top_p=1.5), InputError, r"top_p must be a number in \[0, 1\]"),
    ("top_p nan", sample(top_p=float("nan")), InputError, r"top_p"),
    ("top_k and top_p", sample(top_k=3, top_p=0.5), InputError, r"not both"),
    ("method and temperature", sample(method=TopK(1.0, 2), temperature=0.5), InputError, r"not both"),
    ("method not a method", sample(method="greedy"), InputError, r"method must be a jukebox_jax.sampling method"),
    ("chunk size zero", sample(chunk_size=0), InputError, r"chunk_size must be >= 1"),
    ("chunk size negative", sample(chunk_size=-3, prompt=TOKENS[:, :2]), InputError, r"chunk_size must be >= 1, got -3"),
    ("steps per call zero", sample(steps_per_call=0), InputError, r"steps_per_call must be >= 1"),
    ("n_tokens zero", sample(n_tokens=0), InputError, r"n_tokens must be in 1\.\.48 \(the prior's window\)"),
    ("n_tokens past window", sample(n_tokens=49), InputError, r"n_tokens must be in 1\.\.48"),
    ("n_tokens float", sample(n_tokens=4.0), InputError, r"n_tokens must be an int"),
    ("prompt too long", sample(prompt=TOKENS[:, :4]), InputError, r"shorter than n_tokens=4"),
    ("prompt past codebook", sample(prompt=np.full((1, 2), 64)), InputError, r"prompt must lie in \[0, 64\)"),
    ("key int", sample(key=0), InputError, r"key must be one PRNG key, jax.random.key\(seed\).*; got 0 \(int\)$"),
    ("key batch", sample(key=jax.random.split(KEY, 2)), InputError, r"key must be one PRNG key.*; got \w+ of key<fry> \(2,\)$"),
    ("sample labels artist", sample(with_(TOP, 3, 31)), InputError, r"artist ids\) must lie in \[0, 30\)"),
    # Jukebox.labels
    ("unknown artist", lambda jb: jb.labels(2, artist="Alan Jacksn", total_seconds=60), InputError, r"not in the v2 artist table; close: 'alan_jackson'"),
    ("unknown genre", lambda jb: jb.labels(2, genre="Cuntry", total_seconds=60), InputError, r"genre 'Cuntry'.*close: 'country'"),
    ("artist beyond tiny", lambda jb: jb.labels(2, artist="Alan Jackson", total_seconds=60), InputError, r"beyond the level-2 prior's 30 artists.*'unknown'"),
    ("artist id past table", lambda jb: jb.labels(2, artist=30, total_seconds=60), InputError, r"artist ids must lie in \[0, 30\)"),
    ("artist id bool", lambda jb: jb.labels(2, artist=True, total_seconds=60), InputError, r"artist must be a name \(str\) or an id \(int\)"),
    ("genre ids too many", lambda jb: jb.labels(2, genre=[1] * 6, total_seconds=60), InputError, r"at most 5"),
    ("genre id negative", lambda jb: jb.labels(2, genre=-1, total_seconds=60), InputError, r"genre ids must lie in \[0, 12\)"),
    ("lyric ids past vocab", lambda _: params_free("tiny_5b_lyrics").labels(2, lyrics=[1, 80], total_seconds=60), InputError, r"lyrics ids must lie in \[0, 80\)"),
    # bytes are a Sequence of ints: read as ids, b"HELLO" was lyric ids 72, 69, ... (text "HELLO": 8, 5, ...)
    ("lyrics bytes", lambda _: params_free("tiny_5b_lyrics").labels(2, lyrics=b"HELLO", total_seconds=60), InputError, r"lyrics must be a str or ints, got bytes b'HELLO': decode it first"),
    ("genre bytes", lambda jb: jb.labels(2, genre=b"\x01", total_seconds=60), InputError, r"genre must be a str or ints, got bytes"),
    ("lyrics a number", lambda _: params_free("tiny_1b_lyrics").labels(2, lyrics=3.5, total_seconds=60), InputError, r"lyrics must be text \(str\) or token ids"),
    ("total seconds nan", lambda jb: jb.labels(2, total_seconds=float("nan")), InputError, r"total_seconds must be finite"),
    ("total seconds zero", lambda jb: jb.labels(2, total_seconds=0), InputError, r"total_seconds must be in \(0, 600\]"),
    ("total seconds past timing", lambda jb: jb.labels(2, total_seconds=601), InputError, r"timing covers songs up to 600 s"),
    ("total seconds past int32", lambda _: params_free("tiny_5b").labels(1, total_seconds=1e9), InputError, r"int32 audio samples"),
    ("total seconds str", lambda jb: jb.labels(2, total_seconds="60"), InputError, r"total_seconds must be a number"),
    ("offset past song", lambda jb: jb.labels(2, total_seconds=60, offset_seconds=60), InputError, r"offset_seconds must be in \[0, total_seconds=60\)"),
    ("offset negative", lambda jb: jb.labels(2, total_seconds=60, offset_seconds=-1), InputError, r"offset_seconds"),
    ("offset negative, rounding to sample 0", lambda jb: jb.labels(2, total_seconds=1, offset_seconds=-1e-300), InputError, r"offset_seconds must be in \[0, "),  # found by test_fuzz
    ("n_samples zero", lambda jb: jb.labels(2, total_seconds=60, n_samples=0), InputError, r"n_samples must be >= 1"),
    ("labels of no prior", lambda jb: jb.labels(5, total_seconds=60), InputError, r"no prior for level 5"),
    ("offset rounding to the end", lambda jb: jb.labels(2, total_seconds=10, offset_seconds=9.99999), InputError,
     r"offset_seconds 9.99999 is sample 441000 at 44100 Hz, not before the song's end at sample 441000: give at most 9.999977324263039 s"),
    # levels (a KeyError 'prior_level_2.0', or True taken as level 1)
    ("level float", logits(level=2.0), InputError, r"level must be an int, got 2.0 \(float\)"),
    ("level bool", lambda jb: jb.labels(True, total_seconds=60), InputError, r"level must be an int, got True \(bool\)"),
    ("level str", sample(level="2"), InputError, r"level must be an int, got '2' \(str\)"),
    ("decode_params of no prior", lambda jb: jb.decode_params(7), InputError, r"no prior for level 7"),
    # the model itself
    ("params of a part missing", lambda jb: Jukebox(jb.config, {"vqvae": jb.params["vqvae"]}), ParamsError, r"params do not fit the config; \d+ missing:\n  prior_level_2/"),
    ("params not a dict", lambda jb: Jukebox(jb.config, [jb.params]), InputError, r"params must be a dict of each part's params, got list"),
    ("config a name", lambda _: Jukebox.init("small", KEY), InputError, r"config must be a JukeboxConfig \(e.g. JukeboxConfig.from_preset\('small'\)\), got str"),
    ("init key int", lambda jb: Jukebox.init(jb.config, 0), InputError, r"key must be one PRNG key"),
    # encode
    ("audio nan", lambda jb: jb.encode(np.where(np.arange(256)[None, :, None] == 7, np.nan, AUDIO)), InputError, r"audio must be finite: audio\[0, 7, 0\] is nan.*nan_to_num"),
    ("audio inf", lambda jb: jb.encode(np.full((1, 256, 1), np.inf, np.float32)), InputError, r"audio must be finite"),
    ("audio unscaled", lambda jb: jb.encode(np.full((1, 256, 1), 1000.0, np.float32)), InputError, r"full scale 1 \(peaks up to 8 are taken\), its peak is 1000.*32768.*np.clip"),
    ("audio past the bound", lambda jb: jb.encode(np.full((1, 256, 1), -8.5, np.float32)), InputError, r"its peak is 8.5"),
    ("audio int", lambda jb: jb.encode(np.zeros((1, 256, 1), np.int16)), InputError, r"audio must be float.*32768"),
    ("audio stereo", lambda jb: jb.encode(np.zeros((1, 256, 2), np.float32)), InputError, r"mono"),
    ("audio empty", lambda jb: jb.encode(np.zeros((1, 0, 1), np.float32)), InputError, r"audio must be an array .*none of it empty"),
    ("audio no batch", lambda jb: jb.encode(np.zeros((0, 256, 1), np.float32)), InputError, r"none of it empty"),
    ("audio length", lambda jb: jb.encode(np.zeros((1, 100, 1), np.float32)), InputError, r"multiple of 128 samples.*pad or trim"),
    ("audio 2-D", lambda jb: jb.encode(np.zeros((256, 1), np.float32)), InputError, r"\[batch, time, 1\]"),
    ("encode start level", lambda jb: jb.encode(AUDIO, start_level=3), InputError, r"start_level must be in 0\.\.2"),
    ("encode end level", lambda jb: jb.encode(AUDIO, start_level=1, end_level=1), InputError, r"end_level must be in 2\.\.3"),
    ("no vqvae", lambda _: params_free("tiny_upsampler_level_1").encode(AUDIO), InputError, r"no VQ-VAE"),
    # decode
    ("codes empty", lambda jb: jb.decode([np.zeros((1, 0), np.int32)]), InputError, r"codes\[0\] must be an array \[batch, time\], none of it empty"),
    ("codes past codebook", lambda jb: jb.decode([np.full((1, 4), 64)], start_level=2), InputError, r"codes\[0\] must lie in \[0, 64\).*codebook has 64"),
    ("codes negative", lambda jb: jb.decode([np.full((1, 4), -1)]), InputError, r"\[0, 64\)"),
    ("codes float", lambda jb: jb.decode([np.zeros((1, 4), np.float32)]), InputError, r"codes\[0\] must hold integers"),
    ("codes not a list", lambda jb: jb.decode(np.zeros((1, 4), np.int32)), InputError, r"non-empty list.*wrap one level's codes in a list"),
    ("codes no levels", lambda jb: jb.decode([]), InputError, r"non-empty list"),
    ("codes too many levels", lambda jb: jb.decode([TOKENS] * 2, start_level=2), InputError, r"do not fit 3 levels"),
    ("decode start level", lambda jb: jb.decode([TOKENS], start_level=-1), InputError, r"start_level must be in 0\.\.2"),
    # presets
    ("unknown preset", lambda _: JukeboxConfig.from_preset("6b"), ConfigError, r"unknown preset '6b'; whole models: 5b, .*single parts: .*tiny_vqvae"),
]


@pytest.mark.parametrize("call,error,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(jb, call, error, pattern):
    assert issubclass(error, JukeboxError) and issubclass(error, ValueError)
    for name in PARAMS_FREE:
        params_free(name)
    start = time.perf_counter()
    with pytest.raises(error, match=pattern):
        call(jb)
    assert time.perf_counter() - start < 1.0, "checks run before anything is compiled"


def test_a_key_can_be_used_twice(jb):
    """`sample` never donates the caller's key: the same key again gives the same tokens,
    with and without a prompt, and stays usable. (Both decode 6 steps: one compiled loop.)"""
    labels = jb.labels(2, genre="blues", total_seconds=60)
    first = np.asarray(jb.sample(2, KEY, labels, 6))
    np.testing.assert_array_equal(np.asarray(jb.sample(2, KEY, labels, 6)), first)
    primed = [np.asarray(jb.sample(2, KEY, labels, 9, prompt=first[:, :3])) for _ in range(2)]
    np.testing.assert_array_equal(primed[0], primed[1])
    np.testing.assert_array_equal(primed[0][:, :3], first[:, :3])
    jax.random.split(KEY)  # not deleted


def test_64_bit_mode_is_refused(jb):
    """Under `jax_enable_x64` encode's codes and greedy tokens all differed from float32's
    (Python numbers and index arithmetic turn 64-bit), and `sample` failed inside XLA: every
    part's use, and a training step's batch, refuses it, naming the switch."""
    from jukebox_jax.train.optim import OptimConfig
    from jukebox_jax.train.steps import PriorTask

    labels = jb.labels(2, genre="blues", total_seconds=60)
    task = PriorTask(jb.config.prior(2), OptimConfig())
    uses = [
        lambda: jb.encode(AUDIO),
        lambda: jb.prior_logits(2, TOKENS, TOP),
        lambda: jb.sample(2, KEY, labels, 4),
        lambda: task.check_batch({"tokens": np.zeros((1, 4), np.int32), "labels": np.asarray(labels)}),
    ]
    jax.config.update("jax_enable_x64", True)
    try:
        for use in uses:
            with pytest.raises(InputError, match=r"jax_enable_x64 is on: .*\(jax.config.update\('jax_enable_x64', False\)"):
                use()
    finally:
        jax.config.update("jax_enable_x64", False)
    jb.encode(AUDIO)


def test_a_method_under_jit_says_to_call_it_directly(jb):
    """jax.jit around a method said "tokens must be an array ... got DynamicJaxprTracer"; a
    traced key, the one input `sample` did not check, failed in numpy after the whole window
    was sampled (under vmap, a leaked tracer)."""
    labels = jb.labels(2, genre="blues", total_seconds=60)
    uses = (
        (jax.jit, lambda t: jb.prior_logits(2, t, TOP), TOKENS),
        (jax.jit, jb.encode, AUDIO),
        (jax.jit, lambda k: jb.sample(2, k, labels, 4), KEY),
        (jax.vmap, lambda k: jb.sample(2, k, labels, 4), jax.random.split(KEY, 3)),
    )
    for transform, method, arg in uses:
        with pytest.raises(InputError, match=r"is traced \(a Jukebox method called inside jax.jit, vmap or grad\): .* call them directly"):
            transform(method)(arg)


def test_a_file_name_or_a_hook_that_is_not_a_function_is_refused_first(jb, monkeypatch):
    """`encode("song.wav")` said "got shape ()"; `sample(on_tokens=5)` failed calling it after the
    first decode call had run."""
    with pytest.raises(InputError, match=r"audio must be an array .*, got the file name 'song.wav': read the file first \(audio: jukebox_jax.audio.load"):
        jb.encode("song.wav")
    monkeypatch.setattr("jukebox_jax.jukebox.prefill", lambda *a, **k: pytest.fail("sampled before on_tokens was refused"))
    with pytest.raises(InputError, match=r"on_tokens must be a function \(done, total\) -> None, got 5"):
        jb.sample(2, KEY, jb.labels(2, genre="blues", total_seconds=60), 4, on_tokens=5)


def test_parts_replaced_after_the_model_was_made_are_checked_when_used(jb):
    """`jb.params[part] = ...`, as `Jukebox` says to change weights, was checked only when the
    model was made: another level's prior there failed inside Flax (an IndexError, a
    ScopeParamShapeError), a missing VQ-VAE as a ScopeCollectionNotFound."""
    mine = Jukebox(jb.config, dict(jb.params))
    mine.params["prior_level_2"] = params_free("tiny_5b").params["prior_level_1"]
    for use in (lambda: mine.prior_logits(2, TOKENS, TOP), lambda: mine.sample(2, KEY, TOP, 4)):
        with pytest.raises(ParamsError, match=r"params do not fit the config; \d+ missing:\n  prior_level_2/"):
            use()
    del mine.params["vqvae"]
    with pytest.raises(ParamsError, match=r"missing:\n  vqvae/"):
        mine.encode(AUDIO)
    mine.params["prior_level_2"] = jb.params["prior_level_2"]  # put back: checked again, and runs
    np.testing.assert_array_equal(mine.prior_logits(2, TOKENS, TOP), jb.prior_logits(2, TOKENS, TOP))


def test_decode_params_are_the_callers_to_edit(jb):
    """`decode_params` gave the model's own kept dicts: zeroing a layer there changed every
    later `sample` but not `prior_logits` (nor the fingerprint a job records)."""
    labels = jb.labels(2, genre="blues", total_seconds=60)
    greedy = np.asarray(jb.sample(2, KEY, labels, 6, top_k=1))
    edited = jb.decode_params(2)
    edited["x_emb"] = jax.tree.map(np.zeros_like, edited["x_emb"])
    assert jb.decode_params(2) is not edited
    np.testing.assert_array_equal(np.asarray(jb.sample(2, KEY, labels, 6, top_k=1)), greedy)


def test_raw_keys_per_sample_are_taken_as_typed_ones(jb):
    """One key per sample as raw uint32 `[B, 2]` (`jax.random.split(jax.random.PRNGKey(0), B)`,
    the old-style form) samples as its typed keys do (it was refused, advising that form)."""
    labels = jb.labels(2, genre="blues", total_seconds=60, n_samples=2)
    keys = jax.random.split(KEY, 2)
    typed = np.asarray(jb.sample(2, keys, labels, 6))
    one = jb.labels(2, genre="blues", total_seconds=60)
    typed_one = np.asarray(jb.sample(2, jax.random.key(3), one, 6))
    compiled = _decode._cache_size()  # raw keys compile nothing of their own (a raw key compiled again)
    np.testing.assert_array_equal(np.asarray(jb.sample(2, jax.random.key_data(keys), labels, 6)), typed)
    np.testing.assert_array_equal(np.asarray(jb.sample(2, jax.random.PRNGKey(3), one, 6)), typed_one)
    assert _decode._cache_size() == compiled


def test_the_least_temperature_is_greedy_and_finite():
    """Logits are shifted before the division, so even the least temperature gives no NaN
    (dividing first overflowed inside the fused softmax below about 1e-7)."""
    logits = 100 * jax.random.normal(jax.random.key(0), (16, 64))
    draw = jax.jit(lambda x, k: Temperature(MIN_TEMPERATURE).next_token(x, k))
    np.testing.assert_array_equal(np.asarray(draw(logits, jax.random.split(KEY, 16))), np.argmax(np.asarray(logits), -1))
    assert sampling_method(MIN_TEMPERATURE, top_p=0.9) == TopP(MIN_TEMPERATURE, 0.9)


def any_id(kind: str, v3: bool, below: int) -> tuple[str, int]:
    """A name of the `kind` table with an id in 1..below-1 (inside a tiny model's table)."""
    return next((name, i) for name, i in tokenizer.id_table(kind, v3).items() if 0 < i < below)


@pytest.mark.parametrize("name,level", [("tiny_5b_lyrics", 2), ("tiny_1b_lyrics", 2), ("tiny_5b", 1)])
def test_labels_from_names_and_ids_are_the_tokenizer_ones(name, level):
    """`Jukebox.labels` with names, and with the ids the tables give them, equals the
    tokenizer's `song_labels` + `window_labels`; a later window's offset moves as there."""
    model = params_free(name)
    cfg = model.config.prior(level)
    v3 = cfg.labels.v3
    artist, artist_id = any_id("artist", v3, cfg.labels.artist_bins)
    genre, genre_id = any_id("genre", v3, cfg.labels.genre_bins)
    text = "Old town road, la la la\nyeah"
    total, offset, start = 100 * RATE, 10 * RATE, 8
    song = tokenizer.song_labels(cfg, total, artist, genre, text, offset)
    want = window_labels(cfg, song, start)
    later = (offset + start * cfg.raw_to_tokens) / RATE
    by_name = model.labels(level, artist=artist, genre=genre, lyrics=text, total_seconds=100, offset_seconds=later, n_samples=3)
    by_id = model.labels(level, artist=artist_id, genre=[genre_id], lyrics=tokenizer.lyric_tokens(text, v3), total_seconds=100, offset_seconds=later)
    assert by_name.dtype == np.int32 and by_name.shape == (3, cfg.n_labels)
    for row in (*by_name, by_id[0]):
        np.testing.assert_array_equal(row, want)
    if cfg.n_tokens:
        assert (want[-cfg.n_tokens :] > 0).any()  # the window holds lyric tokens


def test_labels_drive_the_prior(jb):
    """What `Jukebox.labels` builds passes the prior's checks and gives finite logits."""
    labels = jb.labels(2, artist=3, genre="blues", total_seconds=30, offset_seconds=12.5)
    logits = jb.prior_logits(2, TOKENS, labels)
    assert logits.shape == (1, 8, 64) and np.isfinite(np.asarray(logits)).all()


def test_presets_by_whole_model_or_part():
    assert JukeboxConfig.from_preset("tiny_vqvae") == JukeboxConfig(vqvae=preset("tiny_vqvae"))
    assert JukeboxConfig.from_preset("vqvae") == JukeboxConfig(vqvae=preset("vqvae"))
    assert JukeboxConfig.from_preset("upsampler_level_1") == JukeboxConfig(priors=(preset("upsampler_level_1"),))
    whole = JukeboxConfig.from_preset("tiny_5b")
    assert whole.vqvae == preset("tiny_vqvae") and [p.level for p in whole.priors] == [0, 1, 2]


def test_repr_is_one_short_line(jb):
    text = repr(jb)
    assert text.startswith("Jukebox(vqvae, prior_level_2; ") and text.endswith(" M params)"), text
    assert len(text) < 100 and "\n" not in text


def test_audio_past_full_scale_is_encoded_as_given(jb):
    """Decoded audio overshoots [-1, 1] and callers re-encode it: a peak under the bound is
    taken (and encoded as given: `encode` does not clip)."""
    loud = 2.0 * np.sin(np.arange(256) / 3.0, dtype=np.float32)[None, :, None]
    assert [z.shape for z in jb.encode(loud)] == [(1, 32), (1, 8), (1, 2)]
