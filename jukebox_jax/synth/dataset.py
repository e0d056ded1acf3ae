"""The synthetic music dataset (`jukebox-jax data synth`): songs rendered from `score.compose`,
deterministic from a seed, written to a folder that a rerun resumes.

Folder layout (what `jukebox_jax.train.data` reads):

    DIR/synth.json       the run's arguments {"songs", "seconds", "seed", "sample_rate", "vocals", "comping",
                         "key", "scale"},
                         written first; a rerun with other arguments is refused
    DIR/songs/<name>.flac  mono 16-bit FLAC at sample_rate, one per song, each written atomically;
                         a rerun makes again any whose header is not its song's
    DIR/metadata.json    written last: {"sample_rate": int, "seed": int, "artists": [names],
                         "genres": [names], "songs": {"songs/<name>.flac": {"artist": name,
                         "genre": name, "lyrics": str, "key": "C".."B", "scale": "major"|...,
                         "tempo_bpm": float, "vocals": bool, "seconds": float}}}

Song `i` takes its random numbers from `numpy.random.default_rng([seed, i])` alone, so it is
the same whatever the number of songs; its artist is `ARTISTS[i % 4]` and its genre
`GENRES[(i // 4) % 3]`, so any 12 consecutive songs cover every pair. Its key and scale are drawn
(the scale from its genre's), or fixed for every song by `key` and `scale`: the same songs,
transposed. Lyrics are the words
sung before the song's end, one line per 2-bar phrase (a song without vocals has the lyrics
its vocals would sing). Sung songs also depend on the installed espeak-ng (its speech is the
source of the vocals' formants): the same seed gives the same songs with the same espeak-ng.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jukebox_jax import audio
from jukebox_jax.checks import MAX_SEED
from jukebox_jax.errors import InputError, JobError, shown
from jukebox_jax.io import (
    check_output_folder,
    check_space,
    exclusive,
    read_record,
    remove_leftovers,
    write_audio,
    write_text,
)
from jukebox_jax.synth import vocals as vocals_module
from jukebox_jax.synth.instruments import Drum, add_at, drum_sounds, render_notes
from jukebox_jax.synth.score import ARTISTS, GENRES, KEY_NAMES, WORDS_PER_LINE, Comping, Note, Scale, Score, compose

PEAK = 0.9  # every song is scaled to this peak: loud, never clipped
VOCAL_OCTAVE_SHIFT = -12  # the voice sings the melody an octave below the lead instrument
LEAD_UNDER_VOCALS = 0.5  # the lead instrument's level when it doubles a voice
DRUM_GAIN = {Drum.KICK: 0.9, Drum.SNARE: 0.5, Drum.HAT: 0.2}
CHORD_GAIN = 0.6
VOCAL_GAIN = 0.6
RUN_FILE = "synth.json"
METADATA_FILE = "metadata.json"
MAX_SONGS = 99_999  # the five digits of `song_path`; the metadata of them all is one JSON file
FLAC_SHARE = 0.5  # the least share of its 16-bit PCM's bytes a song's FLAC takes (these take 0.7 to 0.8)
SONG_SECONDS = (1.0, 600.0)  # a song's shortest and longest (ten minutes of audio fit in a few GB)
SAMPLE_RATES = (4000, 48000)  # Hz, the lowest and highest


SCALE_NAMES = tuple(s.name.lower() for s in Scale)


@dataclass(frozen=True)
class SynthConfig:
    """The arguments of a dataset: `songs` songs of `seconds` each, from `seed`; every song in
    `key` (a name of `KEY_NAMES`, e.g. "C") and `scale` (a `Scale` name in lower case, e.g.
    "major") where given, else in its own."""

    songs: int = 200
    seconds: float = 20.0
    seed: int = 0
    sample_rate: int = 16000
    vocals: bool = True
    comping: Comping = Comping.BAR
    key: str | None = None
    scale: str | None = None

    def __post_init__(self):
        try:
            object.__setattr__(self, "comping", Comping(self.comping))
        except ValueError:
            raise InputError(f"synth: comping {shown(self.comping)} (give one of {', '.join(c.value for c in Comping)})") from None
        if self.key is not None and self.key not in KEY_NAMES:
            raise InputError(f"synth: key {shown(self.key)} (give one of {', '.join(KEY_NAMES)})")
        if self.scale is not None and self.scale not in SCALE_NAMES:
            raise InputError(f"synth: scale {shown(self.scale)} (give one of {', '.join(SCALE_NAMES)})")
        limits = {"songs": (1, MAX_SONGS), "seconds": SONG_SECONDS, "sample_rate": SAMPLE_RATES, "seed": (0, MAX_SEED)}
        bad = []
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                bad.append(f"{name} {value} (give {lo:g} to {hi:g})" if isinstance(hi, float) else f"{name} {value} (give {lo} to {hi})")
        if bad:
            raise InputError(f"synth: {'; '.join(bad)}")


def song_path(index: int) -> str:
    """Song `index`'s path in the dataset folder, as the metadata keys it."""
    return f"songs/song_{index:05d}.flac"


def song_score(config: SynthConfig, index: int) -> tuple[Score, np.random.Generator]:
    """Song `index`'s score, and its random generator ready for rendering."""
    rng = np.random.default_rng([config.seed, index])
    artist = ARTISTS[index % len(ARTISTS)]
    genre = GENRES[(index // len(ARTISTS)) % len(GENRES)]
    tonic = None if config.key is None else KEY_NAMES.index(config.key)
    scale = None if config.scale is None else Scale[config.scale.upper()]
    return compose(rng, artist, genre, config.seconds, config.comping, tonic, scale), rng


def timed_notes(score: Score, notes: Iterable[Note], shift: int = 0) -> list[tuple[float, float, float, float]]:
    """The notes as (start s, length s, MIDI pitch + `shift`, velocity) at the song's tempo."""
    dt = score.step_seconds
    return [(n.start * dt, n.steps * dt, n.pitch + shift, n.velocity) for n in notes]


def render(score: Score, rng: np.random.Generator, config: SynthConfig) -> np.ndarray:
    """The song's audio, peak `PEAK`; [round(seconds * sample_rate)]."""
    sr = config.sample_rate
    n = round(config.seconds * sr)
    mix = CHORD_GAIN * render_notes(score.genre.chords, timed_notes(score, score.chords), n, sr)
    mix += render_notes(score.genre.bass, timed_notes(score, score.bass), n, sr)
    mix += (LEAD_UNDER_VOCALS if config.vocals else 1.0) * render_notes(
        score.artist.lead, timed_notes(score, score.melody), n, sr
    )
    sounds = drum_sounds(rng, sr)
    for step, drum, velocity in score.drums:
        add_at(mix, round(step * score.step_seconds * sr), DRUM_GAIN[drum] * velocity * sounds[drum])
    if config.vocals:
        words = [
            (start, seconds, pitch, word)
            for (start, seconds, pitch, _), word, sung in zip(
                timed_notes(score, score.melody, VOCAL_OCTAVE_SHIFT), score.sung, sung_words(score, config)
            )
            if sung
        ]
        mix += VOCAL_GAIN * vocals_module.sing(words, score.artist.voice, n, rng, sr)
    return PEAK * mix / max(np.abs(mix).max(), 1e-9)


def sung_words(score: Score, config: SynthConfig) -> list[bool]:
    """Whether each melody note's word is sung: it has one, and starts before the song ends
    (the vocals and the metadata's lyrics hold the same words)."""
    return [word is not None and note.start * score.step_seconds < config.seconds for note, word in zip(score.melody, score.sung)]


def song_metadata(score: Score, config: SynthConfig) -> dict:
    """The metadata entry of a song (no rendering needed)."""
    n_words = sum(sung_words(score, config))
    words = " ".join(score.lyrics).split()[:n_words]
    lines = [" ".join(words[i : i + WORDS_PER_LINE]) for i in range(0, len(words), WORDS_PER_LINE)]
    return {
        "artist": score.artist.name,
        "genre": score.genre.name,
        "lyrics": "\n".join(lines),
        "key": score.key,
        "scale": score.scale.name.lower(),
        "tempo_bpm": score.tempo_bpm,
        "vocals": config.vocals,
        "seconds": round(config.seconds * config.sample_rate) / config.sample_rate,
    }


def make_song(config: SynthConfig, index: int) -> tuple[np.ndarray, dict]:
    """Song `index`: its audio [n] and its metadata entry."""
    score, rng = song_score(config, index)
    return render(score, rng, config), song_metadata(score, config)


def check_folder(out: Path, config: SynthConfig) -> None:
    """Raises `JobError` if `out` holds a dataset made with other arguments, `InputError` if it
    holds anything else."""
    check_output_folder(out, (RUN_FILE,), "synthetic dataset")
    run_file, asked = out / RUN_FILE, json.loads(json.dumps(dataclasses.asdict(config)))  # as synth.json holds it
    if run_file.exists():
        found = read_record(run_file, JobError, "what `data synth` writes there", "give another --out")
        found = {"comping": Comping.BAR.value, "key": None, "scale": None} | found  # written before these had a choice
        if found != asked:
            diff = ", ".join(f"{k} {found.get(k)!r} (asked {v!r})" for k, v in asked.items() if found.get(k) != v)
            raise JobError(
                f"{out} holds a synthetic dataset made with other arguments: {diff}; rerun with its arguments to "
                "resume it, or give another --out"
            )


def generate(out: Path | str, config: SynthConfig, progress: Callable[[Iterable[int]], Iterable[int]] = iter) -> dict:
    """Writes the dataset to `out` (layout in the module docstring), skipping the songs already
    there; returns the metadata. `progress` wraps the loop over song indices (e.g. tqdm)."""
    out = Path(out)  # a str too
    if config.vocals:
        vocals_module.require()
    with exclusive(out, (RUN_FILE,), "synthetic dataset"):
        check_folder(out, config)
        return _generate(out, config, progress)


def _written(path: Path, samples: int, sample_rate: int) -> bool:
    """Whether `path` holds a song of this dataset, by its header and decoded whole (a song is
    written whole, so only damage from outside makes one that is not, and such a one is made
    again; a FLAC cut short keeps its header's length)."""
    import soundfile

    try:
        header = audio.info(path)
        if (header.sample_rate, header.channels, header.frames) != (sample_rate, 1, samples):
            return False
        return len(soundfile.read(path, dtype="int16")[0]) == samples
    except (InputError, soundfile.SoundFileError):
        return False


def _generate(out: Path, config: SynthConfig, progress: Callable[[Iterable[int]], Iterable[int]]) -> dict:
    remove_leftovers(out)
    samples = round(config.seconds * config.sample_rate)
    done = {i for i in range(config.songs) if _written(out / song_path(i), samples, config.sample_rate)}
    missing = config.songs - len(done)
    what = f"writing {missing} song{'s' * (missing != 1)} of {config.seconds:g} s at {config.sample_rate} Hz (as FLAC: half of 16-bit PCM at least)"
    check_space(out, int(missing * samples * 2 * FLAC_SHARE), what)
    write_text(out / RUN_FILE, json.dumps(dataclasses.asdict(config), indent=1))  # first: it marks the folder ours
    (out / "songs").mkdir(exist_ok=True)
    songs = {}
    for index in progress(range(config.songs)):
        path = out / song_path(index)
        if index in done:
            songs[song_path(index)] = song_metadata(song_score(config, index)[0], config)
            continue
        song, songs[song_path(index)] = make_song(config, index)
        write_audio(path, song, config.sample_rate)
    metadata = {
        "sample_rate": config.sample_rate,
        "seed": config.seed,
        "artists": [a.name for a in ARTISTS],
        "genres": [g.name for g in GENRES],
        "songs": songs,
    }
    write_text(out / METADATA_FILE, json.dumps(metadata, indent=1))
    return metadata
