"""Artist, genre and lyrics to the ids the priors were trained on (original
`data/artist_genre_processor.py` and `data/text_processor.py`).

Two label sets: v2 (5b, 5b_lyrics and the upsamplers) normalises names to lowercase words
joined by `_` and reads a genre as a bag of words (up to 5 slots); v3 (1b_lyrics) only
lowercases, and a genre is one whole string. Lyrics are characters: non-ASCII transliterated
(Unidecode, as the original), anything outside the vocabulary dropped, each character its
index in the vocabulary + 1 (0 is the padding the window adds).

A model trained here carries its own tables in its `LabelConfig` (`artists`, `genres`,
`lyric_chars`): names match case-insensitively, a genre is one whole name (one slot; in a
released v2 prior fine-tuned here, whose table keeps the released words, a name of several of
them is one slot per word, as in the released table), and a lyric character's id is its
position + 1; the packaged tables are then not used.

Unlike the original, an artist or genre word that is not in the table is an error (the
original prints a warning and falls back to `unknown`, id 0); ask for `unknown` to get that.
Bad names and ids raise `InputError`.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Sequence
from importlib import resources
from numbers import Integral

import numpy as np

from jukebox_jax.config import LabelConfig, PriorConfig
from jukebox_jax.errors import InputError, shown
from jukebox_jax.labels import SongLabels

_V2_LYRICS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,:;!?-+'\"()[] \t\n"
_V3_LYRICS = _V2_LYRICS.replace("+", "")


def lyric_vocab(v3: bool) -> str:
    """The lyric characters of a label set; character `vocab[i]` has id `i + 1`."""
    return _V3_LYRICS if v3 else _V2_LYRICS


def normalize(name: str, v3: bool) -> str:
    """An artist or genre as the tables spell it: v3 lowercases; v2 also turns every run of
    characters other than a-z, 0-9 into one `_` and strips `_` at the ends."""
    name = name.lower()
    return name if v3 else re.sub(r"[^a-z0-9]+", "_", name).strip("_")


@functools.cache
def _table(kind: str, v3: bool) -> dict[str, int]:
    text = resources.files("jukebox_jax").joinpath("data", f"{'v3' if v3 else 'v2'}_{kind}_ids.txt").read_text("utf-8")
    table = {}
    for line in text.splitlines():
        name, i = line.strip().rsplit(";", 1)
        table[name.lower()] = int(i)
    return table


def id_table(kind: str, v3: bool) -> dict[str, int]:
    """The packaged `kind` ("artist" or "genre") table of a label set: name (lowercased, as
    written in the table) -> id. Where a name repeats, the later line wins, as the original's dict."""
    if kind not in ("artist", "genre"):
        raise InputError(f"kind must be 'artist' or 'genre', got {kind!r}")
    return dict(_table(kind, v3))


def _lookup(kind: str, name: str, key: str, table: dict[str, int], which: str, fallback: str) -> int:
    if key not in table:
        close = difflib.get_close_matches(key, table, n=5)
        hint = f"; close: {', '.join(repr(c) for c in close)}" if close else ""
        raise InputError(f"{kind} {shown(name)} (as {shown(key)}) is not in the {which} {kind} table{hint}. {fallback}")
    return table[key]


def _released(kind: str, name: str, key: str, v3: bool) -> int:
    return _lookup(kind, name, key, _table(kind, v3), "v3" if v3 else "v2", "Use 'unknown' for id 0.")


def _own(kind: str, name: str, names: tuple[str, ...], v3: bool) -> int:
    """The position of `name` in a model's own table; as written (any case), or normalised as
    the released tables are, on either side ("nova_star" finds "Nova Star"; a fine-tuned
    model's table starts with the released names). A name as written wins over another's
    normalised form."""
    table = {}
    for i, n in enumerate(names):
        table.setdefault(normalize(n, v3), i)
    table |= {n.lower(): i for i, n in enumerate(names)}
    key = name.lower() if name.lower() in table else normalize(name, v3)
    known = ", ".join(map(repr, names[:20])) + (", ..." if len(names) > 20 else "")
    return _lookup(kind, name, key, table, "model's", f"This model knows {known}.")


def _own_genres(genre: str, names: tuple[str, ...], v3: bool) -> tuple[int, ...]:
    """A genre's ids in a model's own table: the whole name's, or, in a v2 label set where every
    word of it is in the table, one per word as `genre_ids` (a fine-tuned table keeps the
    released v2 words); else the whole name's error, listing the table."""
    table = {n.lower() for n in names} | {normalize(n, v3) for n in names}
    words = [w for w in normalize(genre, v3).split("_") if w]
    if v3 or genre.lower() in table or normalize(genre, v3) in table or not words or not set(words) <= table:
        return (_own("genre", genre, names, v3),)
    return tuple(_own("genre", word, names, v3) for word in words)


def artist_id(artist: str, v3: bool) -> int:
    """The id of `artist` in the v2 or v3 table."""
    return _released("artist", artist, normalize(artist, v3), v3)


def genre_ids(genre: str, v3: bool) -> tuple[int, ...]:
    """v2: one id per word of the normalised genre ("Country Rock" -> country, rock); v3: the
    id of the whole lowercased string."""
    words = [normalize(genre, v3)] if v3 else normalize(genre, v3).split("_")
    return tuple(_released("genre", genre, word, v3) for word in words if word)


def _chars(v3: bool, chars: str | None) -> str:
    """`chars`, or the v2/v3 set where None."""
    return lyric_vocab(v3) if chars is None else chars


def lyric_chars(labels: LabelConfig) -> str:
    """The lyric characters of a prior's label set: its own, or the v2/v3 set."""
    return _chars(labels.v3, labels.lyric_chars)


def clean_lyrics(text: str, v3: bool, chars: str | None = None) -> str:
    """The original `TextProcessor.clean`: `transliterate`, then characters outside the
    vocabulary (`chars`, default the v2/v3 set) are dropped."""
    vocab = set(_chars(v3, chars))
    return "".join(c for c in transliterate(text) if c in vocab)


def dropped_chars(text: str, v3: bool, chars: str | None = None) -> str:
    """The characters of `text` (transliterated) that `clean_lyrics` drops, each once, sorted:
    what a note should name."""
    return "".join(sorted(set(transliterate(text)) - set(_chars(v3, chars))))


def transliterate(text: str) -> str:
    """`text` in ASCII as the original's lyrics are (Unidecode), `\\` a newline: what a lyric
    vocabulary must hold (`clean_lyrics` drops the rest)."""
    if not text.isascii():
        try:
            from unidecode import unidecode
        except ImportError:
            first = next(c for c in text if not c.isascii())
            raise ImportError(
                f"the lyrics contain non-ASCII characters (e.g. {first!r}), which the original transliterates with "
                "Unidecode: pip install 'jukebox-jax[lyrics]' (Unidecode, GPL-2.0+), or pass ASCII lyrics"
            ) from None
        text = unidecode(text)
    return text.replace("\\", "\n")


def lyric_tokens(text: str, v3: bool, chars: str | None = None) -> tuple[int, ...]:
    """The ids of the cleaned lyrics, one per character (of `chars`, default the v2/v3 set)."""
    index = {c: i + 1 for i, c in enumerate(_chars(v3, chars))}
    return tuple(index[c] for c in clean_lyrics(text, v3, chars))


Artist = str | int
Genre = str | int | Sequence[int]
Lyrics = str | Sequence[int]


def song_labels(cfg: PriorConfig, total_length: int, artist: Artist = "unknown", genre: Genre = "unknown", lyrics: Lyrics = "", offset: int = 0) -> SongLabels:
    """One song's `SongLabels` in the label set of the prior `cfg` (its lyric tokens only if
    it reads lyrics). `artist`, `genre`: names in that set's tables or ids (a genre also a
    sequence of ids, one per slot); `lyrics`: text or token ids. `total_length` and `offset`
    in audio samples."""
    if cfg.labels is None:
        return SongLabels(total_length, 0, (), (), offset)
    lab, v3 = cfg.labels, cfg.labels.v3
    if isinstance(artist, str):
        a = artist_id(artist, v3) if lab.artists is None else _own("artist", artist, lab.artists, v3)
    else:
        a = _ids("artist", (artist,), lab.artist_bins)[0]
    if isinstance(genre, str):
        genres = genre_ids(genre, v3) if lab.genres is None else _own_genres(genre, lab.genres, v3)
    else:
        genres = _ids("genre", (genre,) if _is_int(genre) else genre, lab.genre_bins)
    if len(genres) > lab.max_bow_genre_size:
        raise InputError(f"genre {genre!r} has {len(genres)} words or ids; the level-{cfg.level} prior takes at most {lab.max_bow_genre_size}")
    if a >= lab.artist_bins or any(g >= lab.genre_bins for g in genres):
        raise InputError(
            f"artist {artist!r} / genre {genre!r} have ids {a} / {list(genres)}, beyond the level-{cfg.level} prior's "
            f"{lab.artist_bins} artists and {lab.genre_bins} genres (a model smaller than the released ones); use 'unknown'"
        )
    tokens = ()
    if cfg.n_tokens:
        chars = lyric_chars(lab)
        if len(chars) + 1 != cfg.n_vocab:
            raise InputError(f"the level-{cfg.level} prior reads {cfg.n_vocab} lyric ids; its lyric vocabulary has {len(chars) + 1}")
        tokens = lyric_tokens(lyrics, v3, chars) if isinstance(lyrics, str) else _ids("lyrics", lyrics, cfg.n_vocab)
    return SongLabels(total_length, a, genres, tokens, offset)


def _is_int(x: object) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)


def _ids(name: str, ids: object, n: int) -> tuple[int, ...]:
    """The ids given for `name` (a sequence of ints, or a 1-D int array) checked to lie in
    [0, n) -> a tuple of ints."""
    ids = ids.tolist() if isinstance(ids, np.ndarray) and ids.ndim == 1 else ids
    if isinstance(ids, (bytes, bytearray, memoryview)):  # a Sequence of ints, but meant as text
        raise InputError(f"{name} must be a str or ints, got {type(ids).__name__} {bytes(ids)[:40]!r}: decode it first (.decode())")
    if isinstance(ids, str) or not isinstance(ids, Sequence) or not all(_is_int(i) for i in ids):
        what = "a name (str) or an id (int)" if name == "artist" else "text (str) or token ids" if name == "lyrics" else "a name (str), an id (int) or ids"
        raise InputError(f"{name} must be {what}, got {ids!r}")
    bad = [i for i in ids if not 0 <= i < n]
    if bad:
        raise InputError(f"{name} ids must lie in [0, {n}) for this prior, got {bad[:5]}")
    return tuple(int(i) for i in ids)
