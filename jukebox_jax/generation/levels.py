"""Multi-level, multi-window sampling (original `jukebox/sample.py`): for each level from the
top down, windows of the prior's context `hop_fraction * n_ctx` apart, the last one aligned
to the end; each window continues the codes already there, conditioned on its own labels
and, below the top, on the codes of the level above.

Codes are plain numpy arrays `[n_samples, tokens]`, one per level (level 0 first). Each
window's key is derived from (key, level, window start), one per sample (`row_keys`), never
from a running stream or the batch a sample is drawn in: a sample does not depend on
`max_batch_size`, and a run resumed from saved codes gives exactly what an uninterrupted one
gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jukebox_jax import checks
from jukebox_jax.config import PriorConfig
from jukebox_jax.errors import InputError, shown
from jukebox_jax.generation.windows import level_windows, upper_codes_of_window
from jukebox_jax.jukebox import Jukebox, check_method
from jukebox_jax.labels import SongLabels, window_labels
from jukebox_jax.sampling.decode import row_keys
from jukebox_jax.sampling.methods import Method, Temperature, check_is_method, method_from_dict


@dataclasses.dataclass(frozen=True)
class LevelSettings:
    """How one level is sampled (the original's per-level `sampling_kwargs` and `hop_fraction`)."""

    method: Method = Temperature(0.99)  # how each token is drawn (`sampling_method(temperature, top_k, top_p)`)
    hop_fraction: float = 0.5  # 0.125 for the released top priors
    max_batch_size: int = 16  # samples per call: bounds memory; same keys, logits equal to float rounding (a resume may change it)
    chunk_size: int | None = 32  # prompt positions per prefill call

    def __post_init__(self):  # numbers kept as Python's (numpy's are not JSON)
        check_is_method(self.method)
        hop = checks.finite_real("hop_fraction", self.hop_fraction)
        if not 0 < hop <= 1:
            raise InputError(f"hop_fraction must be in (0, 1] (the share of a window the next one moves on), got {hop:g}")
        object.__setattr__(self, "hop_fraction", hop)
        object.__setattr__(self, "max_batch_size", checks.integer("max_batch_size", self.max_batch_size, 1))
        if self.chunk_size is not None:
            object.__setattr__(self, "chunk_size", checks.integer("chunk_size", self.chunk_size, 1))

    def to_dict(self) -> dict:
        """The fields as plain JSON values, the method as its name and fields."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} | {"method": self.method.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> LevelSettings:
        """The settings `to_dict` gave `d` for."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(d, dict) or not d.keys() <= names:
            raise InputError(f"not a LevelSettings dict: {shown(d)} (its keys are {sorted(names)})")
        fields = dict(d)
        if "method" in fields:
            fields["method"] = method_from_dict(fields["method"])
        return cls(**fields)


Codes = list[np.ndarray]
OnWindow = Callable[[int, int, Codes], None]  # (level, window start, codes so far)
OnTokens = Callable[[int, int], None]  # (the window's new tokens sampled so far, to sample)
STEPS_PER_CALL = 64  # decode steps per jitted call when `on_tokens` reports progress


def sample_window(
    jb: Jukebox,
    zs: Codes,
    level: int,
    songs: Sequence[SongLabels],
    start: int,
    n_tokens: int,
    key: jax.Array,
    settings: LevelSettings,
    on_tokens: OnTokens | None = None,
) -> Codes:
    """Samples the window `[start, start + n_tokens)` of `level`, continuing the codes already
    in it (original `sample_single_window`); returns the codes with the new tokens appended.
    `on_tokens` hears after every `STEPS_PER_CALL` tokens of each batch chunk."""
    cfg = jb.config.prior(level)
    z = zs[level][:, start : start + cfg.n_ctx]
    new = n_tokens - z.shape[1]
    if new <= 0:  # already sampled (e.g. before a resume)
        return zs
    labels = np.stack([window_labels(cfg, song, start) for song in songs])
    upper = upper_codes_of_window(cfg, zs[level + 1], start) if cfg.conditioner is not None else None
    keys = row_keys(jax.random.fold_in(jax.random.fold_in(key, level), start), len(songs))  # [samples]
    out = []
    for lo in range(0, len(songs), settings.max_batch_size):
        part = slice(lo, lo + settings.max_batch_size)
        out.append(
            np.asarray(
                jb.sample(
                    level,
                    keys[part],
                    labels[part],
                    n_tokens,
                    None if upper is None else upper[part],
                    z[part] if z.shape[1] else None,
                    method=settings.method,
                    chunk_size=settings.chunk_size,
                    steps_per_call=None if on_tokens is None else STEPS_PER_CALL,
                    on_tokens=on_tokens,
                )
            )
        )
    zs = list(zs)
    zs[level] = np.concatenate([zs[level], np.concatenate(out)[:, -new:]], axis=1)
    return zs


def sample_level(
    jb: Jukebox,
    zs: Codes,
    level: int,
    songs: Sequence[SongLabels],
    total_tokens: int,
    key: jax.Array,
    settings: LevelSettings,
    on_window: OnWindow | None = None,
    on_tokens: OnTokens | None = None,
) -> Codes:
    """Brings `level` to `total_tokens` codes, window by window (original `sample_level`).

    Shorter than the context: one partial window ending at `total_tokens` (the original's
    `sample_partial_window` would sample `total_tokens` *more* after a prompt; we stop at the
    requested length)."""
    for start, n_tokens in level_windows(jb.config.prior(level), total_tokens, settings.hop_fraction):
        zs = sample_window(jb, zs, level, songs, start, n_tokens, key, settings, on_tokens)
        if on_window is not None:
            on_window(level, start, zs)
    return zs


def check_level(cfg: PriorConfig, settings: LevelSettings, sample_length: int, songs: Sequence[SongLabels]) -> None:
    """`sample_length` audio samples are whole tokens of the prior `cfg`'s level, its windows,
    if it takes more than one, move on by at least a token, its method fits the prior, and
    the labels of `songs` fit it in every window (each song's lyric ids whole, as each window
    takes a slice of them; the rest in the first and last window: artist and genres are the
    same in each, the offset grows), so that no level is sampled before another's input is
    refused."""
    if sample_length % cfg.raw_to_tokens:
        raise InputError(
            f"sample_length {sample_length} is not a multiple of level {cfg.level}'s hop of {cfg.raw_to_tokens} samples"
        )
    if sample_length // cfg.raw_to_tokens >= cfg.n_ctx and int(settings.hop_fraction * cfg.n_ctx) < 1:
        raise InputError(f"hop_fraction {settings.hop_fraction:g} moves level {cfg.level}'s windows of {cfg.n_ctx} tokens by none")
    check_method(cfg, settings.method)
    if cfg.n_tokens:
        for i, song in enumerate(songs):
            lyrics = np.asarray(song.lyrics, np.int64).reshape(-1)
            checks.in_range(f"songs[{cfg.level}][{i}].lyrics", lyrics, 0, cfg.n_vocab, f"the level-{cfg.level} prior reads {cfg.n_vocab} lyric ids")
    windows = level_windows(cfg, sample_length // cfg.raw_to_tokens, settings.hop_fraction)
    for start, _ in {windows[0], windows[-1]}:
        try:
            checks.labels(cfg, np.stack([window_labels(cfg, song, start) for song in songs]))
        except InputError as e:
            raise InputError(f"songs[{cfg.level}], the window at token {start}: {e}") from None


def sample_levels(
    jb: Jukebox,
    zs: Codes,
    songs: dict[int, Sequence[SongLabels]],
    levels: Sequence[int],
    sample_length: int,
    key: jax.Array,
    settings: dict[int, LevelSettings],
    on_window: OnWindow | None = None,
    on_tokens: OnTokens | None = None,
) -> Codes:
    """Samples `levels` from the top down to `sample_length` audio samples (original
    `_sample`). `zs` holds the codes to continue: empty for ancestral sampling, the encoded
    prompt for primed sampling, saved codes to continue or upsample. `songs[level]` are the
    labels in that prior's label set. Every level's inputs are checked before any is sampled."""
    checks.untraced("key", key)
    key = checks.key(key)
    sample_length = checks.integer("sample_length", sample_length, 1, note=" (audio samples)")
    part = jb.config.vqvae or jb.config.priors[0]  # the hierarchy's levels and codebook (a model of priors alone too)
    n_levels = len(part.downs_t)
    if not isinstance(zs, list | tuple) or len(zs) != n_levels:
        raise InputError(f"zs must be a list of codes [samples, tokens], one per level ({n_levels}; [samples, 0] where none), got {shown(zs)}")
    fix = "give each level's codes as integers [samples, tokens], the same samples at every level ([samples, 0] where none)"
    rows = None  # zs[0]'s, then the same at every level
    for level, z in enumerate(zs):
        z = checks.array(f"zs[{level}]", z, 2, "[samples, tokens]", empty_ok=True)
        rows = len(checks.codes(f"zs[{level}]", z, part.l_bins, fix, rows=rows))
    if not isinstance(levels, Sequence) or isinstance(levels, str):
        raise InputError(f"levels must be a sequence of levels to sample, e.g. [2, 1, 0], got {shown(levels)}")
    if on_window is not None and not callable(on_window):  # `on_tokens`: `Jukebox.sample` checks it before its first window
        raise InputError(f"on_window must be a function, got {shown(on_window)}")
    for level in levels:
        checks.integer("levels", level, 0, n_levels - 1, " (the hierarchy's levels)")
        if level not in songs or level not in settings:
            raise InputError(f"songs and settings must each hold level {level}'s (one entry per level sampled)")
        if len(songs[level]) != len(zs[0]):
            raise InputError(f"songs[{level}] holds {len(songs[level])} samples' labels, zs {len(zs[0])} rows: give one per sample")
        check_level(jb.config.prior(level), settings[level], sample_length, songs[level])
    for level in sorted(levels, reverse=True):
        cfg = jb.config.prior(level)
        zs = sample_level(jb, zs, level, songs[level], sample_length // cfg.raw_to_tokens, key, settings[level], on_window, on_tokens)
    return zs
