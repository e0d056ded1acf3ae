"""Label rows: one song's conditioning (`SongLabels`) and the row a prior reads for one
window of it (original `data/labels.py` `get_y_from_ids` and `sample.py` `get_y`), as pure
host-side functions over plain ints and numpy arrays.

A row is `[total_length, offset, sample_length, artist, genre slots..., lyric tokens...]`:
lengths in audio samples, empty genre slots -1, `PriorConfig.n_labels` columns in all.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jukebox_jax.config import PriorConfig
from jukebox_jax.errors import InputError


@dataclasses.dataclass(frozen=True)
class SongLabels:
    """One sample's conditioning in one label set (v2 for 5b and the upsamplers, v3 for the
    1b_lyrics top prior): lengths in audio samples, ids, and the whole song's lyric tokens."""

    total_length: int
    artist: int
    genres: tuple[int, ...] = ()
    lyrics: tuple[int, ...] = ()
    offset: int = 0  # where the sampled audio starts in the song


def int32_seconds(sample_rate: int) -> int:
    """The longest song, in whole seconds, whose length in samples at `sample_rate` is an int32."""
    return np.iinfo(np.int32).max // sample_rate


def relevant_lyric_tokens(full: tuple[int, ...], n_tokens: int, total_length: int, offset: int, duration: int) -> tuple[list[int], list[int]]:
    """The `n_tokens` lyric tokens for audio `[offset, offset + duration)` of a song of
    `total_length` samples, chosen linearly around the window's midpoint; short lyrics are
    left-padded with 0 (index -1). Returns (tokens, indices into `full`)."""
    full = list(full)
    if len(full) < n_tokens:
        pad = n_tokens - len(full)
        return [0] * pad + full, [-1] * pad + list(range(len(full)))
    if not 0 <= offset < total_length:
        raise InputError(f"window offset {offset} is outside the song (total_length {total_length})")
    midpoint = int(len(full) * (offset + duration / 2.0) / total_length)
    midpoint = min(max(midpoint, n_tokens // 2), len(full) - n_tokens // 2)
    indices = list(range(midpoint - n_tokens // 2, midpoint + n_tokens // 2))
    return [full[i] for i in indices], indices


def window_labels(cfg: PriorConfig, song: SongLabels, start: int) -> np.ndarray:
    """The labels row `[n_labels]` of the window starting at token `start` of the prior's
    level (original `get_y`): offset moved by the window, sample_length = the window's
    audio, genre slots padded with -1, and that window's lyric tokens."""
    n_genres = cfg.labels.max_bow_genre_size if cfg.labels else 0
    if len(song.genres) > n_genres:
        raise InputError(f"{len(song.genres)} genres given; the level-{cfg.level} prior takes at most {n_genres}")
    sample_length = cfg.n_ctx * cfg.raw_to_tokens
    offset = song.offset + start * cfg.raw_to_tokens
    row = [song.total_length, offset, sample_length, song.artist, *song.genres, *[-1] * (n_genres - len(song.genres))]
    if cfg.n_tokens:
        row += relevant_lyric_tokens(song.lyrics, cfg.n_tokens, song.total_length, offset, sample_length)[0]
    return np.asarray(row, np.int64)
