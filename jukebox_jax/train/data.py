"""Training data: batches of random song windows from a folder of audio files (the VQ-VAE, or a
prior that encodes each step) or of precomputed codes (a prior without the VQ-VAE), with each
window's labels. Batch `step` is a pure function of `(seed, step)`, so a resumed run draws the
same windows; a window is uniform over every (song, start) that fits, so songs weigh by length.

An audio folder (`audio_folder`):

    DIR/**/*.{wav,flac,ogg,opus,mp3,aif,aiff}   the songs, at any rate and channel count (`jukebox_jax.audio`)
    DIR/metadata.json             optional labels (extra keys are ignored, e.g. `jukebox-jax data synth`'s):
      {"sample_rate": 16000,                      # the songs' rate, the default of the folder's
       "artists": ["name", ...],                  # artist id = position in this list
       "genres": ["name", ...],                   # genre id = position in this list
       "songs": {"<path under DIR, / separated>": {"artist": "name", "genre": "name", "lyrics": "..."}}}

With metadata.json every song must be listed once and every listed song present, and each name
given once (compared case-insensitively, as names are looked up); without it every
song is artist 0, genre 0, with no lyrics, and `audio_folder` needs its `sample_rate`. A codes folder (`encode_folder`) mirrors it:
`<path>.npz` per song (the audio suffix replaced) holding `level_{L}` `[1, tokens]` int32 codes
(as `jukebox-jax sample` writes codes.npz, so `--codes` reads one), `total_length` (the song's
samples at the model's rate), `hop_lengths`, `sample_rate` and `vqvae` (`Jukebox.vqvae_fingerprint()` of the VQ-VAE that made
them: a prior trains on them only with that VQ-VAE) and `source` (the song file's SHA-256:
a song changed since is encoded again); and metadata.json keyed by the .npz paths (codes of
songs no longer in the audio folder, and a metadata.json it no longer has, are removed).
Hidden files and folders are left out. The held-out split (`Folder.split`) hashes each song's path, so it is stable as
songs are added. Codes are held in memory (4 bytes a token); audio is read per window.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jukebox_jax import audio, checks, integrity
from jukebox_jax.config import repeated_names
from jukebox_jax.errors import InputError, shown
from jukebox_jax.io import check_file, dangling_link, read_npz, remove_leftovers, write_npz, write_text

if TYPE_CHECKING:
    from jukebox_jax.jukebox import Jukebox

METADATA = "metadata.json"


@dataclasses.dataclass(frozen=True)
class Song:
    name: str  # path under the folder, / separated
    length: int  # audio samples at the folder's rate: the song's `total_length` label
    artist: int  # position in `Folder.artists` (0 without metadata)
    genre: int  # position in `Folder.genres` (0 without metadata)
    lyrics: str  # the whole song's ("" without metadata)


def check_eval_fraction(eval_fraction: float) -> None:
    """The share of songs `Folder.split` holds out lies in [0, 1)."""
    if not 0 <= eval_fraction < 1:
        raise InputError(f"eval_fraction {eval_fraction:g} must lie in [0, 1)")


@dataclasses.dataclass(frozen=True)
class Folder:
    """A folder's songs (sorted by name) and label tables (empty without metadata)."""

    root: Path
    sample_rate: int
    songs: tuple[Song, ...]
    artists: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()
    vqvae: str | None = None  # a codes folder's `Jukebox.vqvae_fingerprint()` (None: audio, or unrecorded)
    hop_lengths: tuple[int, ...] = ()  # a codes folder's: audio samples per token of each level

    def fingerprint(self) -> dict[str, Any]:
        """Digests of what training reads, which a resumed run compares to name what changed:
        one per song (its length, labels and file's SHA-256) under "songs", and one of the label
        tables, the sample rate and, for codes, the VQ-VAE that made them under "tables"."""
        songs = [[*dataclasses.astuple(s), integrity.file_digest(self.root / s.name)] for s in self.songs]
        tables = [self.artists, self.genres, self.sample_rate, self.vqvae]
        return {"songs": {song[0]: _digest(song) for song in songs}, "tables": _digest(tables)}

    def split(self, eval_fraction: float = 0.1) -> tuple[tuple[Song, ...], tuple[Song, ...]]:
        """(train, held-out): a song is held out when the hash of its name without its suffix, in
        [0, 1), is below `eval_fraction`, so a song and its codes (`codes_name`) are held out
        alike: the priors trained on a folder's codes hold out the songs its VQ-VAE did. With two
        songs or more and `eval_fraction > 0`, at least one is held
        out and at least one trains."""
        check_eval_fraction(eval_fraction)
        h = [int.from_bytes(hashlib.sha256(_stem(s.name).encode()).digest()[:8], "big") / 2**64 for s in self.songs]
        held = {i for i, x in enumerate(h) if x < eval_fraction}
        if len(self.songs) >= 2 and eval_fraction > 0:
            held = held or {int(np.argmin(h))}
            held -= {int(np.argmax(h))} if len(held) == len(h) else set()
        elif len(self.songs) < 2:
            held = set()
        return (
            tuple(s for i, s in enumerate(self.songs) if i not in held),
            tuple(s for i, s in enumerate(self.songs) if i in held),
        )


@dataclasses.dataclass(frozen=True)
class Batch:
    """Windows and their labels; lengths and offsets in audio samples at the folder's rate."""

    x: np.ndarray  # [b, sample_length, 1] float32 audio, or [b, n_tokens] int32 codes
    upper: np.ndarray | None  # [b, n_tokens // ratio] int32 codes of the level above (codes, upper=True)
    songs: tuple[str, ...]  # each window's song name
    artist: np.ndarray  # [b] int32
    genre: np.ndarray  # [b] int32
    offset: np.ndarray  # [b] int64 the window's first sample in its song
    total_length: np.ndarray  # [b] int64 its song's length
    lyrics: tuple[str, ...]  # its song's whole lyrics


def _digest(value: Any) -> str:
    return integrity.text_digest(json.dumps(value))[:16]


def audio_folder(root: Path, sample_rate: int | None = None) -> Folder:
    """The songs under `root` (recursively) and their labels, lengths counted at `sample_rate`
    (default: metadata.json's)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            f"data folder {root} {'is a file' if root.exists() else 'does not exist'}; give a folder of audio files"
        )
    names = _files(root, audio.SUFFIXES)
    if others := _files(root, audio.OTHER_SUFFIXES):
        raise InputError(
            f"data folder {root} holds audio of formats not read ({', '.join(others[:4])}{', ...' if len(others) > 4 else ''}): "
            f"convert them to one of {audio.FORMATS} (ffmpeg -i song.m4a song.flac), or move them out"
        )
    if not names:
        raise InputError(f"data folder {root} holds no audio files ({audio.FORMATS}); give a folder of songs")
    meta = _read_metadata(root)
    sample_rate = sample_rate or (meta or {}).get("sample_rate")
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise InputError(f"data folder {root}: no sample rate to read it at; give sample_rate (or metadata.json's)")
    lengths = {name: audio.info(root / name).length(sample_rate) for name in names}
    return _folder(root, sample_rate, lengths, meta)


def check_audio(folder: Folder) -> None:
    """Decodes every song of an audio folder once, in blocks at its own rate (seconds for hours
    of audio, the memory of one block), so that a damaged or cut-short file, one holding NaN or
    infinite samples or one not scaled as audio (`audio.scan`), is named before training
    starts rather than when a window first falls in it: a run whose songs change cannot resume."""
    for song in folder.songs:
        audio.scan(folder.root / song.name)


def holds_codes(root: Path) -> bool:
    """Whether the data folder `root` holds codes (`.npz`) rather than audio; both is an
    `InputError` (one codes file among songs made the whole folder a codes folder)."""
    codes, songs = _files(root, (".npz",)), _files(root, audio.SUFFIXES)
    if codes and songs:
        raise InputError(
            f"data folder {root} holds audio ({songs[0]}, ...) and codes ({codes[0]}, ...); give a folder of one or the other"
        )
    return bool(codes)


def codes_folder(root: Path) -> Folder:
    """The songs of a codes folder `encode_folder` wrote, and their labels."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"codes folder {root} does not exist; encode an audio folder into it (encode_folder)")
    names = _files(root, (".npz",))
    if not names:
        raise InputError(f"codes folder {root} holds no .npz files; encode an audio folder into it (encode_folder)")
    heads = {name: _header(root / name) for name in names}
    kinds = {(int(h["sample_rate"]), tuple(h["hop_lengths"].tolist()), str(h.get("vqvae", ""))) for h in heads.values()}
    if len(kinds) > 1:
        raise InputError(
            f"codes folder {root} mixes the codes of {len(kinds)} VQ-VAEs (sample rates, hop lengths and fingerprints "
            f"{sorted(kinds)}); encode it again with one"
        )
    sample_rate, hops, vqvae = kinds.pop()
    lengths = {name: int(h["total_length"]) for name, h in heads.items()}
    return dataclasses.replace(_folder(root, sample_rate, lengths, _read_metadata(root)), vqvae=vqvae or None, hop_lengths=hops)


def _files(root: Path, suffixes: tuple[str, ...]) -> list[str]:
    """The files under `root` with one of `suffixes`, as sorted / separated paths; those in
    hidden folders or hidden themselves (a killed atomic write's `.partial-*`, a desktop's
    `.Trash-1000/`) left out. Links to folders are followed, each folder read once (a link
    back up is no loop). A name that is not UTF-8, or a link to nothing, is an `InputError`."""
    names, seen = [], set()

    def walk(folder: Path, prefix: str) -> None:
        if (real := folder.resolve()) in seen:
            return
        seen.add(real)
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):  # a folder reached twice: its first name
            name, path = prefix + entry.name, Path(entry.path)
            if entry.name.startswith("."):
                continue
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError:  # a loop of links (ELOOP)
                is_dir = is_file = False
            if is_dir:
                walk(path, name + "/")
            elif path.suffix.lower() in suffixes:
                if not is_file:
                    if dangling_link(path) == path:
                        raise InputError(f"{root}: {name} is a link to nothing (or a loop of links); remove it or mend it")
                    check_file(path, f"{root}: {name}")  # a device, pipe or socket
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    raise InputError(f"{root}: the file name {name!r} is not UTF-8; rename it") from None
                names.append(name)

    walk(root, "")
    return sorted(names)


def _folder(root: Path, sample_rate: int, lengths: dict[str, int], meta: dict | None) -> Folder:
    """The folder's songs with the labels of `meta` (metadata.json, checked; None: unlabelled)."""
    if meta is None:
        return Folder(root, sample_rate, tuple(Song(name, n, 0, 0, "") for name, n in lengths.items()))
    what = f"{root / METADATA}"
    artists, genres, songs = (meta.get(k) for k in ("artists", "genres", "songs"))
    if not (_names(artists) and _names(genres) and isinstance(songs, dict)):
        raise InputError(
            f'{what} needs "artists" and "genres" (lists of names, none blank) and "songs" (an object); see jukebox_jax/train/data.py'
        )
    for field, names in (("artists", artists), ("genres", genres)):
        if repeats := repeated_names(names):
            raise InputError(
                f'{what}: "{field}" names {", ".join(map(repr, repeats))} more than once (names are compared '
                "case-insensitively); list each once"
            )
    songs = {_nfc(name): entry for name, entry in songs.items()}  # macOS writes names decomposed (NFD)
    unlisted = sorted(name for name in lengths if _nfc(name) not in songs)
    missing = sorted(set(songs) - {_nfc(name) for name in lengths})
    if unlisted or missing:
        found = [
            f"{label} {names[:5]}"
            for label, names in (("songs not listed", unlisted), ("listed but not found", missing))
            if names
        ]
        raise InputError(
            f"{what} does not match the folder: {', '.join(found)}; list each song once (in a codes folder: run encode_folder to the end)"
        )
    out = []
    for name, n in lengths.items():
        entry = songs[_nfc(name)]
        if not isinstance(entry, dict) or entry.get("artist") not in artists or entry.get("genre") not in genres:
            raise InputError(
                f'{what}: song {name!r} has artist {_get(entry, "artist")!r} and genre {_get(entry, "genre")!r}; each must be one of "artists" / "genres"'
            )
        lyrics = entry.get("lyrics", "")
        if not isinstance(lyrics, str):
            raise InputError(f"{what}: song {name!r} has lyrics of type {type(lyrics).__name__}; give a string")
        out.append(Song(name, n, artists.index(entry["artist"]), genres.index(entry["genre"]), lyrics))
    return Folder(root, sample_rate, tuple(out), tuple(artists), tuple(genres))


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _names(x: object) -> bool:
    """A list of names, none blank (a model's label tables take no blank name)."""
    return isinstance(x, list) and all(isinstance(n, str) and n.strip() for n in x)


def _get(entry: object, key: str) -> object:
    return entry.get(key) if isinstance(entry, dict) else None


def _read_metadata(root: Path) -> dict | None:
    path = root / METADATA
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path} cannot be read as JSON ({e}); fix or remove it") from None
    except _RepeatedKey as e:
        raise InputError(f"{path} gives {e} twice in one object (JSON keeps only the last); give each once") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path} holds a {type(meta).__name__}; it must be an object (see jukebox_jax/train/data.py)")
    return meta


class _RepeatedKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's dict, raising `_RepeatedKey` for a key given twice (a song listed twice)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(repr(key))
        out[key] = value
    return out


_REENCODE = "delete it and encode it again (encode_folder)"


def _read_npz(path: Path, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    return read_npz(path, f"codes file {path}", _REENCODE, keys, optional)


def _header(path: Path) -> dict[str, np.ndarray]:
    """A codes file's `total_length`, `sample_rate` (positive integers) and `hop_lengths`
    (positive integers, each dividing the next), checked, and its `vqvae` (the encoder's
    fingerprint) if it has one."""
    h = _read_npz(path, ("total_length", "hop_lengths", "sample_rate"), ("vqvae",))
    hops = h["hop_lengths"]
    ok = all(np.issubdtype(h[k].dtype, np.integer) and h[k].ndim == 0 and h[k] > 0 for k in ("total_length", "sample_rate"))
    ok &= np.issubdtype(hops.dtype, np.integer) and hops.ndim == 1 and len(hops) > 0 and bool((hops > 0).all())
    if not ok or any(b % a for a, b in zip(hops.tolist(), hops.tolist()[1:])):
        values = {k: shown(h[k].tolist()) for k in ("total_length", "sample_rate", "hop_lengths")}
        raise InputError(f"codes file {path}: not what encode_folder writes ({values}); {_REENCODE}")
    return h


def _codes(path: Path, a: np.ndarray, level: int, hop: int, total_length: int, bins: int | None) -> np.ndarray:
    """The level-`level` codes `a` of a codes file, checked: integer `[1, T]` in `[0, bins)`,
    no longer than the song; [T] int32."""
    what = f"codes file {path}: level_{level}"
    a = checks.codes(what, a, bins, _REENCODE, rows=1)
    if a.shape[1] * hop > total_length:
        raise InputError(f"{what}: {a.shape[1]} tokens of {hop} samples, past the song's {total_length}; {_REENCODE}")
    return a[0].astype(np.int32)


# -- windows ------------------------------------------------------------------------------


def _rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([checks.seed(seed), checks.integer("step", step, 0)])


def _draw(counts: np.ndarray, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`batch_size` (song, start index) pairs, uniform over the `counts[i]` starts of song i."""
    checks.integer("batch_size", batch_size, 1)
    ends = np.cumsum(counts)  # [songs]
    r = rng.integers(ends[-1], size=batch_size)  # [b]
    song = np.searchsorted(ends, r, side="right")  # [b]
    return song, r - (ends[song] - counts[song])


def check_fit(songs: tuple[Song, ...], units: list[int], window: int, what: str, fix: str = "") -> None:
    """Refuses no songs, or songs shorter than the window (`fix`: how to shorten it)."""
    if not songs:
        raise InputError("no songs to draw windows from; give a folder (or split) with songs")
    short = [f"{s.name} ({n})" for s, n in zip(songs, units) if n < window]
    if short:
        who = "1 song is" if len(short) == 1 else f"{len(short)} songs are"
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        raise InputError(
            f"{who} shorter than the window of {window} {what}: {', '.join(short[:5])}{more}; remove them{fix}"
        )


def _batch(
    songs: tuple[Song, ...], index: np.ndarray, offset: np.ndarray, x: np.ndarray, upper: np.ndarray | None
) -> Batch:
    chosen = [songs[i] for i in index]
    return Batch(
        x,
        upper,
        tuple(s.name for s in chosen),
        np.array([s.artist for s in chosen], np.int32),
        np.array([s.genre for s in chosen], np.int32),
        np.asarray(offset, np.int64),
        np.array([s.length for s in chosen], np.int64),
        tuple(s.lyrics for s in chosen),
    )


def _held_out_tiles(
    units: list[int], window: int, batch_size: int, most: int | None, multiple: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(song, start) `[b]` arrays of held-out batches, all of one size (one shape to compile):
    of every whole window of each song, back to back from its start, the whole batches of
    `batch_size` (at most `most`, spread evenly), or, with fewer windows than one batch, one
    batch of them all cut to a multiple of `multiple` (a mesh's data axis; none if none is left)."""
    checks.integer("batch_size", batch_size, 1)
    tiles = [(i, start) for i, n in enumerate(units) for start in range(0, n - window + 1, window)]
    groups = [tiles[k : k + batch_size] for k in range(0, len(tiles) - batch_size + 1, batch_size)]
    if not groups:
        n = len(tiles) // multiple * multiple
        groups = [tiles[:n]] if n else []
    picks = np.linspace(0, len(groups) - 1, min(len(groups), most or len(groups))).round().astype(int)
    return [tuple(np.array(groups[k]).T) for k in picks]


@dataclasses.dataclass(frozen=True)
class AudioWindows:
    """Windows of `sample_length` samples of `songs` of `folder`, read (and resampled) per batch."""

    folder: Folder
    songs: tuple[Song, ...]
    sample_length: int

    def __post_init__(self):
        checks.integer("sample_length", self.sample_length, 1, note=" (samples per window)")
        check_fit(
            self.songs,
            [s.length for s in self.songs],
            self.sample_length,
            f"samples ({self.sample_length / self.folder.sample_rate:.2f} s at {self.folder.sample_rate} Hz)",
            ", or give shorter windows (train vqvae --seconds)",
        )

    def batch(self, seed: int, step: int, batch_size: int) -> Batch:
        """`batch_size` random windows, a pure function of `(seed, step)`."""
        counts = np.array([s.length - self.sample_length + 1 for s in self.songs])
        song, start = _draw(counts, batch_size, _rng(seed, step))
        return self._read(song, start)

    def eval_batches(self, batch_size: int, most: int | None = None, multiple: int = 1) -> list[Batch]:
        """The held-out batches of `_held_out_tiles`, read."""
        units = [s.length for s in self.songs]
        return [self._read(*t) for t in _held_out_tiles(units, self.sample_length, batch_size, most, multiple)]

    def _read(self, song: np.ndarray, start: np.ndarray) -> Batch:
        x = np.stack(
            [
                audio.load_segment(
                    self.folder.root / self.songs[i].name, int(t), self.sample_length, self.folder.sample_rate
                )
                for i, t in zip(song, start)
            ]
        )  # [b, sample_length, 1]
        return _batch(self.songs, song, start, x, None)


@dataclasses.dataclass(frozen=True)
class CodesWindows:
    """Windows of `n_tokens` codes of `level` (and, with `uppers`, the level above's codes of
    the same audio) of `songs`; starts fall on the upper level's tokens. Build with `load`."""

    songs: tuple[Song, ...]
    n_tokens: int
    hop: int  # audio samples per token of the level
    tokens: tuple[np.ndarray, ...]  # per song [T] int32
    ratio: int = 1  # tokens of the level per token of the level above (1 without uppers)
    uppers: tuple[np.ndarray, ...] | None = None  # per song [T // ratio] int32

    @classmethod
    def load(
        cls,
        folder: Folder,
        songs: tuple[Song, ...],
        level: int,
        n_tokens: int,
        *,
        upper: bool = False,
        bins: int | None = None,
    ) -> CodesWindows:
        """The codes of `songs` of the codes folder `folder` at `level`, and `level + 1` with
        `upper`, checked (`_codes`; in `[0, bins)`, or only non-negative without `bins`)."""
        checks.integer("n_tokens", n_tokens, 1, note=" (tokens per window)")
        check_fit(songs, [], 0, "")
        known = set(folder.songs)
        if others := [s.name for s in songs if s not in known]:
            raise InputError(
                f"songs {shown(others, 80)} are not the codes folder {folder.root}'s: split that folder "
                "(codes_folder(root).split(): a song's codes are held out with it)"
            )
        hops = _read_npz(folder.root / songs[0].name, ("hop_lengths",))["hop_lengths"].tolist()
        if not 0 <= level < len(hops) - int(upper):
            raise InputError(
                f"level {level}{' and the level above' if upper else ''}: the codes have levels 0..{len(hops) - 1}"
            )
        levels = (level, level + 1) if upper else (level,)
        arrays = [_read_npz(folder.root / s.name, tuple(f"level_{lv}" for lv in levels)) for s in songs]
        ratio = hops[level + 1] // hops[level] if upper else 1
        if n_tokens % ratio:
            raise InputError(
                f"n_tokens {n_tokens} of level {level} is not a whole number of level-{level + 1} tokens ({ratio} each); give a multiple of {ratio}"
            )
        per_level = [
            [_codes(folder.root / s.name, a[f"level_{lv}"], lv, hops[lv], s.length, bins) for lv in levels]
            for s, a in zip(songs, arrays)
        ]
        for s, z in zip(songs, per_level):
            if upper and len(z[1]) * ratio != len(z[0]):
                raise InputError(
                    f"codes file {folder.root / s.name}: level_{level} ({len(z[0])} tokens) and level_{level + 1} "
                    f"({len(z[1])}) do not cover the same audio; {_REENCODE}"
                )
        tokens = tuple(z[0] for z in per_level)
        uppers = tuple(z[1] for z in per_level) if upper else None
        check_fit(songs, [len(z) for z in tokens], n_tokens, f"level-{level} tokens", ", or train a prior of a shorter n_ctx")
        return cls(songs, n_tokens, hops[level], tokens, ratio, uppers)

    def batch(self, seed: int, step: int, batch_size: int) -> Batch:
        """`batch_size` random windows, a pure function of `(seed, step)`."""
        counts = np.array([(len(z) - self.n_tokens) // self.ratio + 1 for z in self.tokens])
        song, start = _draw(counts, batch_size, _rng(seed, step))
        return self._read(song, start * self.ratio)

    def eval_batches(self, batch_size: int, most: int | None = None, multiple: int = 1) -> list[Batch]:
        """The held-out batches of `_held_out_tiles`, read."""
        units = [len(z) for z in self.tokens]
        return [self._read(*t) for t in _held_out_tiles(units, self.n_tokens, batch_size, most, multiple)]

    def _read(self, song: np.ndarray, start: np.ndarray) -> Batch:
        x = np.stack([self.tokens[i][t : t + self.n_tokens] for i, t in zip(song, start)])  # [b, n_tokens]
        upper = None
        if self.uppers is not None:
            n = self.n_tokens // self.ratio
            upper = np.stack(
                [self.uppers[i][t // self.ratio : t // self.ratio + n] for i, t in zip(song, start)]
            )  # [b, n]
        return _batch(self.songs, song, start * self.hop, x, upper)


# -- encoding -----------------------------------------------------------------------------


def _encoded(path: Path) -> bool:
    """Whether `path` is a codes file or codes folder's metadata that `encode_folder` wrote (it
    removes only those)."""
    try:
        if path.suffix == ".npz":
            return {"vqvae", "source"} <= set(_read_npz(path, (), ("vqvae", "source")))
        return "sample_rate" in json.loads(path.read_text(encoding="utf-8"))
    except (InputError, OSError, ValueError, TypeError):
        return False


def _stem(name: str) -> str:
    """A song's name without its suffix: the same for the song and its codes file."""
    return Path(name).with_suffix("").as_posix()


def codes_name(name: str) -> str:
    """The codes file of the song `name` of an audio folder."""
    return f"{_stem(name)}.npz"


def encode_folder(jb: Jukebox, source: Path, out: Path, on_song: Callable[[str, bool], None] | None = None) -> Folder:
    """Encodes every song of the audio folder `source` at `jb`'s sample rate (each whole, cut
    to a multiple of the top hop) into the codes folder `out` (module docstring), each file
    written atomically. Songs already in `out` are skipped, so an interrupted run resumes.
    `on_song(name, skipped)` follows each song. Returns `codes_folder(out)`."""
    cfg = jb.config.vqvae
    if cfg is None:
        raise InputError("encode_folder needs a Jukebox with a VQ-VAE")
    folder = audio_folder(source, cfg.sample_rate)
    names = {s.name: codes_name(s.name) for s in folder.songs}
    if len(set(names.values())) < len(names):
        clash = sorted(n for n in names if list(names.values()).count(names[n]) > 1)
        raise InputError(f"data folder {source}: songs {clash[:4]} would share a codes file; rename them apart")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    stale = sorted(set(_files(out, (".npz",))) - set(names.values()))  # of songs no longer in `source`, or not ours
    meta = _read_metadata(Path(source))
    foreign = [name for name in stale if not _encoded(out / name)]
    if meta is None and (out / METADATA).exists() and not _encoded(out / METADATA):
        foreign.append(METADATA)
    if foreign:  # removed, they were the caller's files
        raise InputError(
            f"codes folder {out} holds files encode_folder did not write ({', '.join(foreign[:4])}"
            f"{', ...' if len(foreign) > 4 else ''}); give an empty folder or one it wrote"
        )
    for name in stale:
        (out / name).unlink()
    if meta is not None:
        codes_of = {_nfc(s.name): names[s.name] for s in folder.songs}  # a listed name may differ in form (NFC, NFD) from the file's
        songs = {codes_of[_nfc(k)]: v for k, v in meta["songs"].items()}
        write_text(out / METADATA, json.dumps({**meta, "sample_rate": cfg.sample_rate, "songs": songs}, indent=1))
    else:
        (out / METADATA).unlink(missing_ok=True)
    top, vqvae = cfg.hop_lengths[-1], jb.vqvae_fingerprint()
    for song in folder.songs:
        target, made_from = out / names[song.name], integrity.file_digest(folder.root / song.name)
        kept = _read_npz(target, (), ("vqvae", "source")) if target.exists() else {}
        skipped = (str(kept.get("vqvae", "")), str(kept.get("source", ""))) == (vqvae, made_from)
        if not skipped:  # absent, made by another VQ-VAE (retrained in place) or of a song since changed
            x = audio.load(folder.root / song.name, cfg.sample_rate, min_samples=top)  # [t, 1]
            codes = jb.encode(x[None, : len(x) // top * top])  # per level [1, t / hop]
            target.parent.mkdir(parents=True, exist_ok=True)
            arrays = {f"level_{level}": np.asarray(z, np.int32) for level, z in enumerate(codes)}
            extra = {
                "total_length": np.int64(song.length),
                "hop_lengths": np.array(cfg.hop_lengths),
                "sample_rate": np.int64(cfg.sample_rate),
                "vqvae": np.array(vqvae),
                "source": np.array(made_from),  # the song file's SHA-256
            }
            write_npz(target, {**arrays, **extra})
        if on_song is not None:
            on_song(song.name, skipped)
    return codes_folder(out)
