"""Audio in and out of files, the one way audio enters jukebox-jax (training data, prompts), plus
a deterministic test signal. Audio is float32 in [-1, 1]; `[t, 1]` mono per file here, and
`[batch, t, 1]` as `Jukebox.encode` takes it.

Files are read with soundfile (libsndfile: wav, flac, ogg, aiff, mp3 from libsndfile 1.1 on,
`soundfile.available_formats()`), mixed to mono by the mean of the channels and resampled
with soxr (high quality) when their rate is not the one asked for. Lengths at a rate other
than the file's are `frames * sample_rate // file_rate` samples. Every problem with a file is
an `InputError` naming it. soundfile and soxr are imported on first use, so the CLI starts fast.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np

from jukebox_jax.errors import InputError
from jukebox_jax.io import check_file

FORMATS = "wav, flac, ogg (Vorbis, Opus), mp3 or aiff"  # what soundfile (libsndfile >= 1.1) reads
SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff")  # the files of a folder of songs (`train.data`)
# Audio of other formats, which a folder of songs refuses rather than leave out unsaid
OTHER_SUFFIXES = (".m4a", ".aac", ".wma", ".mp4", ".webm", ".oga", ".aifc", ".au", ".caf", ".w64", ".ape", ".wv")
# The loudest audio `encode` takes, and the loudest a file may be. Float audio is full scale at
# 1, but decoded audio (which callers re-encode) overshoots it, by 2.4x from a random tiny model;
# anything past this bound is almost surely integer PCM that was never scaled, whose codes
# would be noise.
MAX_AUDIO_PEAK = 8.0
MIN_FILE_RATE, MAX_FILE_RATE = 1000, 768_000  # the sample rates a file's header may give (Hz); others are damage
_SCAN_BLOCK = 2**18  # frames decoded at a time by `scan`
# libsndfile's note on a WAV's `data` or an AIFF's `SSND` chunk whose size exceeds the bytes present
_UNFINISHED = re.compile(r"^\s*(?:data|SSND)\s*:\s*(?P<declared>\d+)\s*\(should be (?P<present>\d+)\)", re.MULTILINE)
_HEADER_BYTES = 4096  # more than the headers of a file holding no audio take (3.5 kB: an ogg Vorbis)
# Chunk sizes from here up are placeholders of writers that did not know the length (streaming to
# a pipe): SoX's 0x7ffff000 (WAV) and 0x7f000008 (AIFF), GStreamer's 0x7fff0000, 0x7fffffff, 0xffffffff.
_SIZE_UNKNOWN = 0x7F000000
_MARGIN = 512  # samples at the lower of two rates read around a resampled segment: soxr's filter
# settles in ~128 (differences < 1e-7 beyond, tests/test_audio.py), so this is 4x that


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """A file's header: its rate, channels and length in frames (samples per channel)."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    def length(self, sample_rate: int) -> int:
        """The file's length in whole samples at `sample_rate`."""
        return self.frames * sample_rate // self.sample_rate


def info(path: Path, *, what: str = "audio") -> AudioInfo:
    """The header of the audio file at `path`, read without decoding; `what` starts the error
    messages ("prompt audio")."""
    import soundfile

    path = Path(path)
    check_file(path, f"{what} {path}")
    try:
        header = soundfile.info(str(path))
    except (soundfile.SoundFileError, RuntimeError) as e:
        raise InputError(f"{what} {path} is not audio soundfile can read ({FORMATS}): {e}") from None
    if header.frames <= 0:
        if (size := path.stat().st_size) > _HEADER_BYTES:  # an ogg without its last page counts none
            raise InputError(
                f"{what} {path} holds {size} bytes but no samples libsndfile can count: it may be cut short "
                "(an unfinished copy or download?); fetch or re-encode it, or leave it out"
            )
        raise InputError(f"{what} {path} holds no samples; give a file with audio in it")
    if not MIN_FILE_RATE <= header.samplerate <= MAX_FILE_RATE:
        raise InputError(
            f"{what} {path}: its header gives a sample rate of {header.samplerate} Hz, outside {MIN_FILE_RATE} to "
            f"{MAX_FILE_RATE} Hz (a damaged header?); re-encode it with its true rate"
        )
    if cut := _UNFINISHED.search(header.extra_info):  # a WAV or AIFF shortened: libsndfile counts the frames present
        declared, present = int(cut["declared"]), int(cut["present"])
        if present + 1 < declared < _SIZE_UNKNOWN:  # a pad byte is no cut; streaming writers leave the size unknown
            raise InputError(
                f"{what} {path} holds {present} bytes of audio where its header gives {declared}: it is cut short "
                "(an unfinished copy or download?); fetch or re-encode it, or leave it out"
            )
    return AudioInfo(header.samplerate, header.channels, header.frames)


def load(path: Path, sample_rate: int, *, mono: bool = True, min_samples: int = 1, what: str = "audio") -> np.ndarray:
    """The whole file at `sample_rate`: `[t, 1]` float32 mixed to mono, or `[t, channels]`
    with `mono=False`. Refuses a file of fewer than `min_samples` samples at `sample_rate`."""
    header = info(path, what=what)
    length = header.length(sample_rate)
    if length < min_samples:
        raise InputError(
            f"{what} {path} is {header.seconds:.3f} s ({length} samples at {sample_rate} Hz); at least {min_samples} "
            f"samples ({min_samples / sample_rate:.3f} s) are needed: give a longer file"
        )
    return load_segment(path, 0, length, sample_rate, mono=mono, what=what)


def load_segment(
    path: Path, start: int, length: int, sample_rate: int, *, mono: bool = True, what: str = "audio"
) -> np.ndarray:
    """Samples `[start, start + length)` at `sample_rate` of the file at `path` (`[length, 1]`
    float32, or `[length, channels]` with `mono=False`), decoding only that part. Resampled,
    it is the same part of the whole file resampled (to < 1e-6): the part read is aligned to
    the rates' common period and has `_MARGIN` samples of context on each side."""
    import soundfile

    header = info(path, what=what)
    available = header.length(sample_rate)
    if not (start >= 0 and length >= 1 and start + length <= available):
        raise InputError(
            f"{what} {path}: samples [{start}, {start + length}) asked for, but it holds {available} at {sample_rate} Hz "
            f"({header.seconds:.3f} s)"
        )
    rate = header.sample_rate
    g = math.gcd(rate, sample_rate)
    p, q = rate // g, sample_rate // g  # p samples of the file are q samples at `sample_rate`
    margin = 0 if rate == sample_rate else -(-_MARGIN * sample_rate // min(rate, sample_rate))  # at `sample_rate`
    first = max(0, (start - margin) // q)  # whole periods before the part read
    stop = min(-(-(start + length + margin) // q) * p, header.frames)  # in the file's frames
    try:
        x, _ = soundfile.read(str(path), start=first * p, stop=stop, dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError) as e:
        raise InputError(f"{what} {path} cannot be decoded ({FORMATS}): {e}") from None  # [n, channels]
    _check_samples(x, path, what)
    if len(x) < stop - first * p:
        raise _cut_short(path, what, first * p + len(x), header.frames)
    if mono:
        x = x.mean(axis=1, keepdims=True)  # [n, 1]
    # Resampling may overshoot a loud file's peak (ringing at a square wave's edges): held to the
    # bound the file was checked against, as `encode` takes no louder audio.
    x = np.clip(resample(x, rate, sample_rate), -MAX_AUDIO_PEAK, MAX_AUDIO_PEAK)
    begin = start - first * q
    return np.ascontiguousarray(x[begin : begin + length])


def scan(path: Path, *, what: str = "audio") -> None:
    """Decodes the whole file at `path` in blocks (memory: one block, whatever the file's
    length), refusing it if it decodes short of its header's length (cut short), or holds
    samples `load_segment` would refuse."""
    import soundfile

    header = info(path, what=what)
    frames = 0
    try:
        with soundfile.SoundFile(str(path)) as f:
            while len(block := f.read(_SCAN_BLOCK, dtype="float32", always_2d=True)):  # not `blocks`: it pads
                _check_samples(block, path, what)
                frames += len(block)
    except (soundfile.SoundFileError, RuntimeError) as e:
        raise InputError(f"{what} {path} cannot be decoded ({FORMATS}): {e}") from None
    if frames < header.frames:
        raise _cut_short(path, what, frames, header.frames)


def _check_samples(x: np.ndarray, path: Path, what: str) -> None:
    """Refuses decoded samples `[n, channels]` that are NaN or infinite, or louder than audio is."""
    if not np.isfinite(x).all():
        raise InputError(f"{what} {path} holds NaN or infinite samples; repair the file or leave it out")
    peak = float(np.abs(x).max(initial=0))
    if peak > MAX_AUDIO_PEAK:
        raise InputError(
            f"{what} {path} peaks at {peak:.4g}: its samples are not scaled as audio (full scale 1; a float file may "
            f"go up to {MAX_AUDIO_PEAK:g}); normalise it (e.g. sox --norm in.wav out.wav) or leave it out"
        )


def _cut_short(path: Path, what: str, decoded: int, frames: int) -> InputError:
    return InputError(
        f"{what} {path} decodes to {decoded} of the {frames} frames its header gives: it is cut short (an unfinished "
        "copy or download?); fetch or re-encode it, or leave it out"
    )


def resample(audio: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """`[t, channels]` float32 from `rate` to `sample_rate` (soxr, high quality): about
    `t * sample_rate / rate` samples, the first at the same instant."""
    if rate == sample_rate:
        return audio
    import soxr

    return soxr.resample(audio, rate, sample_rate).astype(np.float32, copy=False)


def test_signal(n: int, sample_rate: int, seed: int) -> np.ndarray:
    """`[1, n, 1]` float32: four sines (110-3300 Hz, drawn from `seed`) and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    x = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(110, 3300, 4)) / 4 + 0.02 * rng.standard_normal(n)
    return np.clip(x, -1, 1).astype(np.float32)[None, :, None]
