"""The symbolic song: key, scale, chord progression, melody, drums and lyrics on a tempo grid,
drawn from a per-song `numpy.random.Generator` under the song's artist and genre styles.

Time is counted in grid steps of a sixteenth note (`STEPS_PER_BAR` = 16 in 4/4); pitches are
MIDI note numbers. A song is a repeating form: sections of 4 bars (A, B, A, B, ...), each with
its own chord progression and a 2-bar melody motif that is repeated over the section's chords.
How chords and bass accompany it is the dataset's `Comping`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from jukebox_jax.synth.instruments import (
    BASS,
    BELL,
    BRASS,
    FM_BASS,
    ORGAN,
    PAD,
    PLUCK,
    PLUCK_BASS,
    SQUARE,
    Drum,
    Instrument,
)

STEPS_PER_BAR = 16  # sixteenth notes in a 4/4 bar
STEPS_PER_BEAT = 4
BARS_PER_SECTION = 4
MOTIF_BARS = 2  # a melody motif and one lyric line span 2 bars
KEY_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


class Comping(str, enum.Enum):
    """How chords and bass accompany the melody."""

    BAR = "bar"  # the chord held a bar, the bass's root on beats 1 and 3 (the first default's songs)
    BEAT = "beat"  # chord and bass's root struck on every beat, stopping short of the next: the beat
    # sounds in the low and middle bands too, which a coarse VQ-VAE top level keeps (the default
    # model's songs; RESULTS.md)


class Scale(enum.Enum):
    """Scales as semitones above the tonic."""

    MAJOR = (0, 2, 4, 5, 7, 9, 11)
    MIXOLYDIAN = (0, 2, 4, 5, 7, 9, 10)
    DORIAN = (0, 2, 3, 5, 7, 9, 10)
    MINOR = (0, 2, 3, 5, 7, 8, 10)
    HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)


@dataclass(frozen=True)
class Genre:
    """What a genre fixes: tempo range, scales, chord progressions (scale degrees, one chord a
    bar), the drum pattern (grid steps of one bar per drum), and the chord and bass instruments."""

    name: str
    tempo_bpm: tuple[float, float]
    scales: tuple[Scale, ...]
    progressions: tuple[tuple[int, int, int, int], ...]
    drums: tuple[tuple[Drum, tuple[int, ...]], ...]
    chords: Instrument
    bass: Instrument


@dataclass(frozen=True)
class Artist:
    """What an artist fixes: the melody instrument, its register (the MIDI note of the lowest
    tonic it sings from), how busy its melodies are (probability of an extra eighth-note onset)
    and its espeak-ng voice."""

    name: str
    lead: Instrument
    register: int
    density: float
    voice: str


GENRES = (
    Genre(
        "pop",
        (100.0, 118.0),
        (Scale.MAJOR,),
        ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4)),
        ((Drum.KICK, (0, 8, 10)), (Drum.SNARE, (4, 12)), (Drum.HAT, (0, 2, 4, 6, 8, 10, 12, 14))),
        ORGAN,
        BASS,
    ),
    Genre(
        "folk",
        (80.0, 96.0),
        (Scale.MIXOLYDIAN, Scale.DORIAN),
        ((0, 6, 3, 0), (0, 3, 0, 4), (0, 3, 6, 0)),
        ((Drum.KICK, (0, 8)), (Drum.SNARE, (12,)), (Drum.HAT, (0, 4, 8, 12))),
        PLUCK,
        PLUCK_BASS,
    ),
    Genre(
        "electronic",
        (122.0, 134.0),
        (Scale.MINOR, Scale.HARMONIC_MINOR),
        ((0, 5, 6, 0), (0, 3, 4, 0), (0, 5, 2, 4)),
        ((Drum.KICK, (0, 4, 8, 12)), (Drum.SNARE, (4, 12)), (Drum.HAT, (2, 6, 10, 14, 3, 11))),
        PAD,
        FM_BASS,
    ),
)

ARTISTS = (
    Artist("lark", PLUCK, 64, 0.5, "en-us+f3"),
    Artist("ember", SQUARE, 60, 0.25, "en-us+m3"),
    Artist("tide", BELL, 67, 0.1, "en+f2"),
    Artist("quartz", BRASS, 55, 0.4, "en+m1"),
)

_WORD_LIST = (
    "love night light rain sun heart road home fire sky sea dream gold run fly sing dance shine fall rise blue wild "
    "slow free time day moon star wind song stay hold far near dark bright river stone morning summer city street "
    "open door away again alone together forever tonight calling waiting falling burning golden silver ocean"
)
WORDS = tuple(_WORD_LIST.split())  # the lyrics' vocabulary
WORDS_PER_LINE = 4


@dataclass(frozen=True)
class Note:
    """One note: start and length in grid steps, MIDI pitch, loudness in [0, 1]."""

    start: int
    steps: int
    pitch: int
    velocity: float


@dataclass(frozen=True)
class Score:
    """A whole song. `lyrics[i]` is sung on the first `WORDS_PER_LINE` melody notes of the
    song's `i`-th 2-bar phrase; `sung[j]` is the word (or None) on `melody[j]`."""

    artist: Artist
    genre: Genre
    tonic: int  # pitch class of the key, 0 = C
    scale: Scale
    tempo_bpm: float
    bars: int
    chords: tuple[Note, ...]
    bass: tuple[Note, ...]
    melody: tuple[Note, ...]
    sung: tuple[str | None, ...]
    drums: tuple[tuple[int, Drum, float], ...]  # (step, drum, velocity)
    lyrics: tuple[str, ...]

    @property
    def key(self) -> str:
        return KEY_NAMES[self.tonic]

    @property
    def step_seconds(self) -> float:
        return 60.0 / self.tempo_bpm / STEPS_PER_BEAT


def degree_pitch(scale: Scale, tonic_midi: int, degree: int) -> int:
    """The MIDI pitch of scale degree `degree` (any integer; 7 = the tonic an octave up)."""
    octave, index = divmod(degree, len(scale.value))
    return tonic_midi + 12 * octave + scale.value[index]


def compose(
    rng: np.random.Generator,
    artist: Artist,
    genre: Genre,
    seconds: float,
    comping: Comping = Comping.BAR,
    tonic: int | None = None,
    scale: Scale | None = None,
) -> Score:
    """Draws a song of at least `seconds` for `artist` in `genre`: in the key `tonic` (a pitch
    class, 0 = C) and `scale` where given, else in ones drawn from the genre's. The same random
    numbers are drawn either way, so a fixed key or scale gives the same song transposed."""
    drawn_tonic = int(rng.integers(12))
    drawn_scale = genre.scales[int(rng.integers(len(genre.scales)))]
    tonic = drawn_tonic if tonic is None else tonic
    scale = drawn_scale if scale is None else scale
    tempo = float(np.round(rng.uniform(*genre.tempo_bpm), 1))
    bar_seconds = 4 * 60.0 / tempo
    bars = int(np.ceil(seconds / bar_seconds))
    sections = [genre.progressions[int(i)] for i in rng.choice(len(genre.progressions), size=2, replace=False)]
    motifs = [_motif(rng, artist.density) for _ in sections]
    bass_root = 36 + tonic  # C2..B2
    chord_root = 48 + tonic  # C3..B3
    lead_root = artist.register + (tonic - artist.register) % 12
    chords, bass, melody, sung, lyrics = [], [], [], [], []
    chord_strikes, bass_strikes = COMPING_STRIKES[comping]
    for bar in range(bars):
        section = (bar // BARS_PER_SECTION) % len(sections)
        degree = sections[section][bar % BARS_PER_SECTION]
        start = bar * STEPS_PER_BAR
        chords += chord_strikes.bar(start, [degree_pitch(scale, chord_root, degree + 2 * third) for third in range(3)])
        bass += bass_strikes.bar(start, [degree_pitch(scale, bass_root, degree)])
        if bar % MOTIF_BARS == 0:
            line = [WORDS[int(i)] for i in rng.integers(len(WORDS), size=WORDS_PER_LINE)]
            lyrics.append(" ".join(line))
            degrees = (degree, sections[section][(bar + 1) % BARS_PER_SECTION])
            notes = _phrase(motifs[section], degrees, scale, lead_root, start)
            melody.extend(notes)
            sung.extend(line + [None] * (len(notes) - len(line)))
    hits = []
    for bar in range(bars):
        for drum, steps in genre.drums:
            for step in steps:
                velocity = float(rng.uniform(0.75, 1.0)) * (1.0 if step % 4 == 0 else 0.7)
                hits.append((bar * STEPS_PER_BAR + step, drum, velocity))
    parts = (tuple(chords), tuple(bass), tuple(melody), tuple(sung), tuple(hits), tuple(lyrics))
    return Score(artist, genre, tonic, scale, tempo, bars, *parts)


@dataclass(frozen=True)
class Strikes:
    """One part's notes in each bar: onset steps, length in steps, velocity of the bar's first
    onset and of the others."""

    onsets: tuple[int, ...]
    steps: int
    accent: float
    velocity: float

    def bar(self, start: int, pitches: list[int]) -> list[Note]:
        """The bar from step `start` with `pitches` struck together at every onset."""
        return [Note(start + o, self.steps, p, self.accent if o == 0 else self.velocity) for o in self.onsets for p in pitches]


_BEATS = tuple(range(0, STEPS_PER_BAR, STEPS_PER_BEAT))
# (chord, bass) per comping; BEAT's notes end before the next beat: a dotted eighth, an eighth.
COMPING_STRIKES = {
    Comping.BAR: (Strikes((0,), STEPS_PER_BAR, 0.7, 0.7), Strikes((0, STEPS_PER_BAR // 2), STEPS_PER_BAR // 2, 0.9, 0.7)),
    Comping.BEAT: (Strikes(_BEATS, STEPS_PER_BEAT - 1, 0.8, 0.6), Strikes(_BEATS, STEPS_PER_BEAT // 2, 0.9, 0.7)),
}


def _motif(rng: np.random.Generator, density: float) -> list[tuple[int, int]]:
    """A 2-bar melody motif: (onset step, scale-degree offset from the bar's chord root) pairs.
    Every beat has an onset (so a lyric line always finds its notes), off-beat eighths are
    added with probability `density`; the line moves mostly by steps and lands on chord tones
    (offset 0, 2, 4) at bar starts."""
    onsets = [s for s in range(0, MOTIF_BARS * STEPS_PER_BAR, 2) if s % 4 == 0 or rng.random() < density]
    offsets, current = [], int(rng.choice([0, 2, 4]))
    for step in onsets:
        if step % STEPS_PER_BAR == 0:
            current = int(rng.choice([0, 2, 4]))
        else:
            current = int(np.clip(current + rng.choice([-2, -1, -1, 1, 1, 2]), -2, 7))
        offsets.append(current)
    return list(zip(onsets, offsets))


def _phrase(motif: list[tuple[int, int]], degrees: tuple[int, int], scale: Scale, root: int, start: int) -> list[Note]:
    """The motif placed at `start` over two bars whose chords are on `degrees`."""
    ends = [s for s, _ in motif[1:]] + [MOTIF_BARS * STEPS_PER_BAR]
    notes = []
    for (step, offset), end in zip(motif, ends):
        degree = degrees[step // STEPS_PER_BAR] % 7 + offset
        degree = degree - 7 if degree > 7 else degree  # within a ninth of the tonic's octave
        velocity = 0.9 if step % 4 == 0 else 0.7
        notes.append(Note(start + step, end - step, degree_pitch(scale, root, degree), velocity))
    return notes
