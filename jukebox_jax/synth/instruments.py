"""Synthesised instruments (numpy only): band-limited wavetable additive synthesis whose
timbre fades from a bright to a dull harmonic spectrum (a plucked string's higher harmonics
die first, as in Karplus-Strong), optional FM (phase modulation of the carrier by a sine at
`fm_ratio` times its frequency, for bells, brass and basses), an attack / decay / sustain /
release envelope, and drums from sine sweeps and shaped noise. Every note is one vectorised
expression over its samples."""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TABLE_SIZE = 2048  # samples in one period of a wavetable
NYQUIST_MARGIN = 0.45  # harmonics above this fraction of the sample rate are dropped


class Drum(enum.IntEnum):
    KICK = 0
    SNARE = 1
    HAT = 2


@dataclass(frozen=True)
class Instrument:
    """A tone: harmonic amplitudes at the attack (`bright`) fading to `dull` with time constant
    `brightness_decay` (s); the envelope rises over `attack` (s), decays toward `sustain` with
    time constant `decay` (s) and fades out over `release` (s) after the note."""

    bright: tuple[float, ...]
    dull: tuple[float, ...]
    brightness_decay: float
    attack: float
    decay: float
    sustain: float
    release: float
    gain: float
    fm_ratio: float = 0.0
    fm_index: float = 0.0  # peak modulation index (radians), decaying like the brightness


def _saw(n: int) -> tuple[float, ...]:
    return tuple(1.0 / k for k in range(1, n + 1))


_ORGAN_HARMONICS = (1.0, 0.6, 0.4, 0.25, 0.15, 0.1)
PLUCK = Instrument(_saw(12), (1.0, 0.3, 0.1), 0.12, 0.003, 0.5, 0.0, 0.05, 0.5)
PLUCK_BASS = Instrument((1.0, 0.6, 0.4, 0.3, 0.2), (1.0, 0.2), 0.2, 0.003, 0.7, 0.0, 0.05, 0.7)
ORGAN = Instrument(_ORGAN_HARMONICS, _ORGAN_HARMONICS, 1.0, 0.02, 1.0, 0.8, 0.08, 0.25)
PAD = Instrument(_saw(8), (1.0, 0.5, 0.25), 0.8, 0.15, 2.0, 0.7, 0.2, 0.25)
BASS = Instrument((1.0, 0.5, 0.2), (1.0, 0.5, 0.2), 1.0, 0.005, 0.3, 0.8, 0.05, 0.7)
FM_BASS = Instrument((1.0,), (1.0,), 0.15, 0.003, 0.4, 0.5, 0.05, 0.7, fm_ratio=1.0, fm_index=3.0)
SQUARE = Instrument(
    tuple(1.0 / k if k % 2 else 0.0 for k in range(1, 10)), (1.0, 0.0, 0.3), 0.5, 0.01, 0.3, 0.6, 0.05, 0.4
)
BELL = Instrument((1.0,), (1.0,), 0.5, 0.002, 0.8, 0.0, 0.05, 0.6, fm_ratio=3.0, fm_index=2.0)
BRASS = Instrument((1.0,), (1.0,), 0.3, 0.04, 0.5, 0.7, 0.06, 0.45, fm_ratio=1.0, fm_index=2.5)
VOICE = Instrument((1.0,) * 40, (1.0,) * 40, 1.0, 0.02, 1.0, 1.0, 0.05, 1.0)  # flat pulse train: the vocoder's carrier


def midi_hz(pitch: float | np.ndarray) -> float | np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch) - 69) / 12)


@functools.lru_cache(maxsize=256)
def _table(harmonics: tuple[float, ...], n_harmonics: int) -> np.ndarray:
    """One period of the sum of the first `n_harmonics` harmonics, peak 1; [TABLE_SIZE + 1]
    (the last sample repeats the first, for interpolation)."""
    k = np.arange(1, n_harmonics + 1)[:, None]
    amps = np.asarray(harmonics[:n_harmonics])[:, None]
    phase = np.arange(TABLE_SIZE + 1)[None, :] / TABLE_SIZE
    table = (amps * np.sin(2 * np.pi * k * phase)).sum(0)
    return table / max(np.abs(table).max(), 1e-9)


def _lookup(table: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """The wavetable at `phase` (cycles), linearly interpolated."""
    x = (phase % 1.0) * TABLE_SIZE
    i = x.astype(np.int64)
    frac = x - i
    return table[i] * (1 - frac) + table[i + 1] * frac


def tone(instrument: Instrument, hz: float, seconds: float, sample_rate: int) -> np.ndarray:
    """One note of `seconds` plus the release, peak about 1; [n]."""
    n = round((seconds + instrument.release) * sample_rate)
    t = np.arange(n) / sample_rate
    n_harmonics = max(1, int(NYQUIST_MARGIN * sample_rate / hz))
    fade = np.exp(-t / instrument.brightness_decay)
    phase = hz * t
    if instrument.fm_index:
        phase = phase + instrument.fm_index * fade * np.sin(2 * np.pi * instrument.fm_ratio * phase) / (2 * np.pi)
    bright = _lookup(_table(instrument.bright, min(n_harmonics, len(instrument.bright))), phase)
    if instrument.dull == instrument.bright:
        wave = bright
    else:
        dull = _lookup(_table(instrument.dull, min(n_harmonics, len(instrument.dull))), phase)
        wave = fade * bright + (1 - fade) * dull
    s = instrument.sustain
    env = np.minimum(t / instrument.attack, 1.0) * (s + (1 - s) * np.exp(-t / instrument.decay))
    env *= np.clip((n - np.arange(n)) / max(instrument.release * sample_rate, 1.0), 0.0, 1.0)
    return env * wave


def add_at(track: np.ndarray, start: int, sound: np.ndarray) -> None:
    """Adds `sound` into `track` from sample `start`, cut at the end of the track."""
    end = min(len(track), start + len(sound))
    if end > start:
        track[start:end] += sound[: end - start]


def render_notes(
    instrument: Instrument, notes: Sequence[tuple[float, float, float, float]], n_samples: int, sample_rate: int
) -> np.ndarray:
    """The notes (start s, length s, MIDI pitch, velocity) played on `instrument`; [n_samples]."""
    track = np.zeros(n_samples)
    for start, seconds, pitch, velocity in notes:
        sound = tone(instrument, float(midi_hz(pitch)), seconds, sample_rate)
        add_at(track, round(start * sample_rate), instrument.gain * velocity * sound)
    return track


def drum_sounds(rng: np.random.Generator, sample_rate: int) -> dict[Drum, np.ndarray]:
    """A kick (a sine sweeping down from 155 to 45 Hz), a snare (high-passed noise and a
    190 Hz body) and a hi-hat (twice-differenced noise), each peak 1; each [n]."""

    def t(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sample_rate)) / sample_rate

    tk, ts, th = t(0.35), t(0.2), t(0.08)
    sweep = 45 + 110 * np.exp(-tk / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sample_rate) * np.exp(-tk / 0.12)
    snare = np.diff(rng.standard_normal(len(ts) + 1)) * np.exp(-ts / 0.05) + 0.8 * np.sin(
        2 * np.pi * 190 * ts
    ) * np.exp(-ts / 0.04)
    hat = np.diff(rng.standard_normal(len(th) + 2), 2) * np.exp(-th / 0.015)
    return {d: x / np.abs(x).max() for d, x in ((Drum.KICK, kick), (Drum.SNARE, snare), (Drum.HAT, hat))}
