"""Argument checks at the API edge: host-side, on concrete values, before anything is traced
or compiled. Each raises `InputError` naming the argument, what it may hold and the fix;
the model code behind them assumes valid input and checks nothing."""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jukebox_jax.audio import MAX_AUDIO_PEAK
from jukebox_jax.config import PriorConfig
from jukebox_jax.errors import InputError, shown

_INT32 = np.iinfo(np.int32)
MAX_SEED = 2**32 - 1  # `jax.random.key` keeps a seed's low 32 bits; numpy splits a larger one into 32-bit words


def integer(name: str, value: Any, lo: int, hi: int = _INT32.max, note: str = "") -> int:
    """`value` as an int in `lo..hi` (inclusive); bools, floats and strings are refused.
    `note` says where the bounds come from."""
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise InputError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if not lo <= value <= hi:
        span = f">= {lo}" if hi == _INT32.max and value < lo else f"in {lo}..{hi}"
        raise InputError(f"{name} must be {span}{note}, got {value}")
    return int(value)


def donated(tree: Any) -> bool:
    """Whether an array of `tree` was donated to a jitted call (its buffer now holds another's
    result); tracers are not."""
    return any(isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and x.is_deleted() for x in jax.tree.leaves(tree))


def alive(params: Any) -> None:
    """Raises `InputError` if an array of `params` was donated: `loop.fit` consumes the
    training state it is given, arrays shared with it included."""
    if donated(params):
        raise InputError(
            "these params were donated to a training step (loop.fit consumes the state it is given, and every "
            "array shared with it): take them from the state fit returned, or keep a copy (jax.tree.map(jnp.copy, ...))"
        )


def float32_mode() -> None:
    """jukebox-jax computes in float32 and int32; with `jax_enable_x64` on, its Python numbers
    and index arithmetic turn 64-bit and the results are another model's (encode's codes and
    greedy tokens all differed from float32's)."""
    if jax.config.jax_enable_x64:
        raise InputError(
            "jax_enable_x64 is on: jukebox-jax computes in float32 and int32, and under x64 its codes and samples "
            "are not the model's; turn it off (jax.config.update('jax_enable_x64', False), or unset JAX_ENABLE_X64) "
            "before using it"
        )


def seed(value: Any, name: str = "seed") -> int:
    """`value` as a PRNG seed in `0..MAX_SEED`: past it, a seed draws what another one does."""
    return integer(name, value, 0, MAX_SEED, " (jax.random.key keeps a seed's low 32 bits)")


def finite_real(name: str, value: Any) -> float:
    """`value` as a finite float; bools, strings, NaN and infinities are refused."""
    if not isinstance(value, Real) or isinstance(value, bool):
        raise InputError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value}")
    return float(value)


def untraced(name: str, value: Any) -> None:
    """`value` is not traced: `Jukebox`'s methods check their inputs on the host and run host loops."""
    if isinstance(value, jax.core.Tracer):
        raise InputError(
            f"{name} is traced (a Jukebox method called inside jax.jit, vmap or grad): its methods check their "
            "inputs on the host and compile themselves; call them directly, or jit the functional API "
            "(prior.forward, sampling.prefill and decode)"
        )


def array(name: str, value: Any, ndim: int, shape_doc: str, *, empty_ok: bool = False) -> np.ndarray:
    """`value` as a numpy array of `ndim` dimensions, none of them empty (but the last where
    `empty_ok`)."""
    untraced(name, value)
    if isinstance(value, str | os.PathLike):
        raise InputError(
            f"{name} must be an array {shape_doc}, got the file name {shown(value)}: read the file first "
            "(audio: jukebox_jax.audio.load(path, sample_rate); codes: numpy.load)"
        )
    try:
        x = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged nested lists, objects numpy cannot read
        raise InputError(f"{name} must be an array {shape_doc}, got {type(value).__name__} ({e})") from None
    if x.ndim != ndim or 0 in x.shape[: -1 if empty_ok else None]:
        raise InputError(f"{name} must be an array {shape_doc}{'' if empty_ok else ', none of it empty'}, got shape {x.shape}")
    return x


def int_array(name: str, value: Any, ndim: int, shape_doc: str, *, empty_ok: bool = False) -> np.ndarray:
    """`value` as an integer numpy array (`array`)."""
    x = array(name, value, ndim, shape_doc, empty_ok=empty_ok)
    if not np.issubdtype(x.dtype, np.integer):
        raise InputError(f"{name} must hold integers {shape_doc}, got dtype {x.dtype}")
    return x


def in_range(name: str, x: np.ndarray, lo: int, hi: int, fix: str) -> None:
    """Every value of `x` lies in `[lo, hi)`; otherwise an error naming the first one outside."""
    bad = (x < lo) | (x >= hi)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{name} must lie in [{lo}, {hi}): {name}[{', '.join(map(str, where))}] is {x[where]}; {fix}")


def codes(name: str, z: np.ndarray, bins: int | None, fix: str, *, rows: int | None = None) -> np.ndarray:
    """Codes read from a file, checked: integer `[rows, tokens]` (any rows >= 1 without `rows`)
    in `[0, bins)` (only non-negative without `bins`). Returns them as int64."""
    doc = f"[{rows if rows else 'samples >= 1'}, tokens]"
    if not np.issubdtype(z.dtype, np.integer) or z.ndim != 2 or not len(z) or (rows and len(z) != rows):
        raise InputError(f"{name} is {z.dtype} of shape {z.shape}, not integer codes {doc}; {fix}")
    if z.size and (z.min() < 0 or (bins is not None and z.max() >= bins)):
        raise InputError(f"{name} holds codes in [{z.min()}, {z.max()}], not in [0, {bins or 'bins'}); {fix}")
    return z.astype(np.int64)


def key(value: Any, batch: int | None = None) -> jax.Array:
    """One PRNG key: a typed key of shape () (`jax.random.key`) or a raw uint32 `[2]`
    (`jax.random.PRNGKey`); given `batch`, also one key per sample, typed `[batch]` or raw
    `[batch, 2]`. Returned typed (the same draws; one compiled program for either kind)."""
    dtype = getattr(value, "dtype", None)
    shapes = [(), (batch,)] if batch is not None else [()]
    typed = dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key) and np.shape(value) in shapes
    raw = dtype == np.uint32 and np.shape(value) in [(2,)] + ([(batch, 2)] if batch is not None else [])
    if not (typed or raw):
        each = f", or one per sample, jax.random.split(key, {batch})" if batch is not None else ""
        raise InputError(f"key must be one PRNG key, jax.random.key(seed){each}; got {_describe(value)}")
    return jax.random.wrap_key_data(value) if raw else value


def _describe(value: Any) -> str:
    """An argument as an error message shows it: an array by its type, dtype and shape, anything else by its repr."""
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return f"{type(value).__name__} of {value.dtype} {tuple(value.shape)}"
    return f"{shown(value)} ({type(value).__name__})"


def audio(value: Any) -> np.ndarray:
    """Audio `[batch, time, 1]` of finite floats with a peak of at most `MAX_AUDIO_PEAK` ->
    float32. Samples past [-1, 1] but under the bound are encoded as given (not clipped)."""
    x = array("audio", value, 3, "[batch, time, 1] (mono)")
    if x.shape[-1] != 1:
        raise InputError(f"audio must be [batch, time, 1] (mono), got shape {x.shape}; average the channels for mono")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise InputError(f"audio must be float in [-1, 1], got {x.dtype}; integer PCM: divide by its full scale (32768 for 16 bit)")
    peak = float(np.max(np.abs(x)))
    if not math.isfinite(peak):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise InputError(f"audio must be finite: audio{list(where)} is {x[where]}; replace NaN and Inf samples (np.nan_to_num)")
    if peak > MAX_AUDIO_PEAK:
        raise InputError(
            f"audio must be float audio, full scale 1 (peaks up to {MAX_AUDIO_PEAK:g} are taken), its peak is {peak:.4g}: "
            "scale it (integer PCM: divide by its full scale, 32768 for 16 bit) or clip it (np.clip(audio, -1, 1))"
        )
    return x.astype(np.float32)


def labels(cfg: PriorConfig, y: np.ndarray, *, timing: bool = True) -> None:
    """Label rows `[b, n_labels]` the prior of `cfg` can read: artist and genre ids inside its
    tables, lyric ids inside its vocabulary, and, where the prior reads timing and `timing`,
    lengths and an offset that place the window in a song the timing covers (training takes
    songs of any length: their timing saturates, `prior.conditioners`). `Jukebox.labels`
    builds them."""
    fix = "build labels with Jukebox.labels(level, artist=..., genre=..., ...)"
    if y.min() < _INT32.min or y.max() > _INT32.max:
        raise InputError(f"labels must fit int32, got values in [{y.min()}, {y.max()}]; {fix}")
    lab = cfg.labels
    if lab is not None:
        n_genres = lab.max_bow_genre_size
        in_range("labels[:, 3] (artist ids)", y[:, 3], 0, lab.artist_bins, f"the level-{cfg.level} prior has {lab.artist_bins} artists; {fix}")
        genres = y[:, 4 : 4 + n_genres]
        in_range(f"labels[:, 4:{4 + n_genres}] (genre ids, -1 in empty slots)", genres, -1, lab.genre_bins, f"the level-{cfg.level} prior has {lab.genre_bins} genres; {fix}")
        if lab.timing and timing:
            _timing(cfg, y[:, 0], y[:, 1], y[:, 2], fix)
    if cfg.n_tokens:
        first = cfg.lyric_start
        in_range(f"labels[:, {first}:] (lyric token ids)", y[:, first:], 0, cfg.n_vocab, f"the level-{cfg.level} prior reads {cfg.n_vocab} lyric ids; {fix}")


def prior_inputs(
    cfg: PriorConfig, tokens: Any, label_rows: Any, upper_codes: Any, *, prompt: bool = False, timing: bool = True
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Checks a prior's `tokens [B, T]` (1 <= T <= n_ctx; for a sampling `prompt`, None or
    T >= 0), `label_rows` (`labels`; the timing columns too where `timing`) and `upper_codes`
    on the host -> int32 arrays."""
    y = int_array("labels", label_rows, 2, f"[batch, {cfg.n_labels}]")
    if y.shape[1] != cfg.n_labels:
        raise InputError(
            f"labels must be integer [batch, {cfg.n_labels}] (4 + genre slots + {cfg.n_tokens} lyric tokens), got "
            f"shape {y.shape}; build them with Jukebox.labels({cfg.level}, ...)"
        )
    labels(cfg, y, timing=timing)
    batch, name = y.shape[0], "prompt" if prompt else "tokens"
    tokens = np.zeros((batch, 0), np.int32) if prompt and tokens is None else tokens
    tokens = int_array(name, tokens, 2, f"[batch, <= {cfg.n_ctx}] of level-{cfg.level} codes", empty_ok=prompt)
    if tokens.shape[0] != batch or tokens.shape[1] > cfg.n_ctx:
        raise InputError(f"{name} must be [batch={batch} (as labels), <= {cfg.n_ctx} (the prior's window)], got shape {tokens.shape}")
    in_range(name, tokens, 0, cfg.l_bins, f"they are codes of a {cfg.l_bins}-code VQ-VAE level")
    if cfg.conditioner is None:
        if upper_codes is not None:
            raise InputError(f"the level-{cfg.level} prior is not conditioned on upper codes; pass upper_codes=None")
    else:
        want = (batch, cfg.n_ctx // cfg.cond_downsample)
        doc = f"{want}: the level-{cfg.level + 1} codes of the window"
        if upper_codes is None:
            raise InputError(f"the level-{cfg.level} prior (an upsampler) needs upper_codes {doc}")
        upper_codes = int_array("upper_codes", upper_codes, 2, doc)
        if upper_codes.shape != want:
            raise InputError(f"upper_codes must be {doc}, got shape {upper_codes.shape}")
        in_range("upper_codes", upper_codes, 0, cfg.l_bins, f"they are codes of a {cfg.l_bins}-code VQ-VAE level")
        upper_codes = jnp.asarray(upper_codes, jnp.int32)
    return jnp.asarray(tokens, jnp.int32), jnp.asarray(y, jnp.int32), upper_codes


def _timing(cfg: PriorConfig, total: np.ndarray, offset: np.ndarray, length: np.ndarray, fix: str) -> None:
    """The timing columns (in audio samples): 0 < total_length <= the longest song the
    prior's timing covers, 0 <= offset < total_length, sample_length the prior's window
    (`n_ctx * raw_to_tokens`, as the original's `get_y` sets it and every prior was trained)."""
    longest = round(cfg.labels.max_duration * cfg.labels.sample_rate)
    if not ((0 < total) & (total <= longest)).all():
        raise InputError(
            f"labels[:, 0] (total_length, audio samples) must be in 1..{longest} (the level-{cfg.level} prior's "
            f"timing covers songs up to {cfg.labels.max_duration:g} s), got {total.tolist()}; {fix}"
        )
    if not ((0 <= offset) & (offset < total)).all():
        raise InputError(f"labels[:, 1] (offset, audio samples) must be in [0, total_length), got {offset.tolist()} for total_length {total.tolist()}; {fix}")
    window = cfg.n_ctx * cfg.raw_to_tokens
    if not (length == window).all():
        raise InputError(
            f"labels[:, 2] (sample_length, audio samples) must be {window}, the level-{cfg.level} prior's window "
            f"({cfg.n_ctx} tokens of {cfg.raw_to_tokens} samples), got {length.tolist()} (another level's labels?); {fix}"
        )
