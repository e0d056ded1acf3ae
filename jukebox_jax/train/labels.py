"""A folder's songs as a prior's training batches: its artist and genre names as the prior's
ids (a fine-tuned prior gives names it does not know new ids, `with_labels_of`), its lyrics as
the prior's lyric tokens, and `prior_arrays`, the batch dicts `train.steps.PriorTask` reads
from `data.CodesWindows` batches. `jukebox-jax train prior` uses these; so can a notebook's
fine-tune."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from jukebox_jax import checks, tokenizer
from jukebox_jax.config import PriorConfig
from jukebox_jax.errors import InputError, shown
from jukebox_jax.labels import SongLabels, window_labels
from jukebox_jax.layers import Params
from jukebox_jax.train.data import Batch, Folder
from jukebox_jax.train.prior import grow_label_tables


def with_labels_of(cfg: PriorConfig, params: Params, folder: Folder, key: jax.Array) -> tuple[PriorConfig, Params]:
    """A prior to fine-tune on `folder`: the artists and genres it does not know get new ids
    after its own (new embedding rows, `train.prior.grow_label_tables`), and its tables
    become its own, named (the released names by id, then the new ones; a released id with no
    name is called `<kind> <id>`; the released tables' id 0 is `unknown`). Songs without
    labels are `unknown`: a new name where the prior's own tables lack it (the default
    model's). Unchanged if it knows every name.
    `key` draws the new rows (`jax.random.key(seed)`)."""
    key = checks.key(key)
    lab = cfg.labels
    if lab is None:
        return cfg, params
    tables = {}
    for kind, names, bins, own in (
        ("artist", folder.artists or ("unknown",), lab.artist_bins, lab.artists),  # unlabelled songs: 'unknown'
        ("genre", folder.genres or ("unknown",), lab.genre_bins, lab.genres),
    ):
        unknown = []
        for name in names:
            try:
                _label_id(cfg, kind, name)
            except InputError:
                unknown.append(name)
        if own is None and unknown:
            by_id = {0: "unknown"}
            for n, i in tokenizer.id_table(kind, lab.v3).items():
                if n:
                    by_id.setdefault(i, n)  # an id's first name in the table
            own = tuple(by_id.get(i, f"{kind} {i}") for i in range(bins))
        tables[kind] = own if not unknown else (*own, *unknown)
    if tables["artist"] == lab.artists and tables["genre"] == lab.genres:
        return cfg, params
    grown = dataclasses.replace(
        lab,
        artists=tables["artist"],
        genres=tables["genre"],
        artist_bins=max(lab.artist_bins, len(tables["artist"] or ())),
        genre_bins=max(lab.genre_bins, len(tables["genre"] or ())),
    )
    return grow_label_tables(cfg, params, grown, key)


def label_ids(cfg: PriorConfig, folder: Folder) -> dict[str, list]:
    """The prior's artist id and genre ids (a tuple: the released v2 tables give one per word,
    "Hip Hop" -> hip, hop) of each of the folder's names, by the folder's index (`Batch.artist`,
    `Batch.genre`); a name the prior does not know is an error naming the fix."""
    if cfg.labels is None:
        return {"artist": [0] * max(1, len(folder.artists)), "genre": [()] * max(1, len(folder.genres))}
    return {
        kind: [_label_id(cfg, kind, name) for name in names or ("unknown",)]
        for kind, names in (("artist", folder.artists), ("genre", folder.genres))
    }


def _label_id(cfg: PriorConfig, kind: str, name: str) -> int | tuple[int, ...]:
    """The prior's id of one artist, or ids of one genre (`InputError` naming the fix if unknown)."""
    if kind == "artist":
        return tokenizer.song_labels(cfg, 1, artist=name, genre=0).artist
    return tokenizer.song_labels(cfg, 1, artist=0, genre=name).genres


def dropped_lyric_chars(cfg: PriorConfig, folder: Folder) -> str:
    """The characters of the songs' lyrics that the prior's lyric vocabulary lacks, dropped as
    the original drops them (a fine-tuned prior keeps its own vocabulary); "" for none, or a
    prior that reads no lyrics."""
    lab = cfg.labels
    if not (cfg.n_tokens and lab):
        return ""
    return tokenizer.dropped_chars("".join(s.lyrics for s in folder.songs), lab.v3, tokenizer.lyric_chars(lab))


def prior_arrays(cfg: PriorConfig, folder: Folder) -> Callable[[Batch], dict[str, np.ndarray]]:
    """`batch -> {"tokens", "labels", "upper"}` for `PriorTask`: the windows' codes and each
    window's labels row (`window_labels`: its song's length, its offset, the prior's ids of its
    artist and genre, and its lyric tokens). Names the prior does not know are refused here
    (`with_labels_of` first, to fine-tune on them)."""
    ids = label_ids(cfg, folder)
    lab = cfg.labels
    lyrics = {
        s.name: tokenizer.lyric_tokens(s.lyrics, lab.v3, tokenizer.lyric_chars(lab)) if cfg.n_tokens and lab else ()
        for s in folder.songs
    }

    def arrays(b: Batch) -> dict[str, np.ndarray]:
        if others := [s for s in b.songs if s not in lyrics]:  # `b.artist` indexes `folder`'s tables: its songs only
            raise InputError(
                f"the batch's songs {shown(others, 80)} are not {folder.root}'s: give prior_arrays the codes folder "
                "its windows come from (data.codes_folder)"
            )
        rows = [
            window_labels(cfg, SongLabels(int(t), ids["artist"][a], ids["genre"][g], lyrics[s], int(o)), 0)
            for s, a, g, o, t in zip(b.songs, b.artist, b.genre, b.offset, b.total_length, strict=True)
        ]
        out = {"tokens": b.x, "labels": np.stack(rows).astype(np.int32)}
        return out if b.upper is None else {**out, "upper": b.upper}

    return arrays
