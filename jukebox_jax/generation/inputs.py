"""A sampling job's inputs read from files and checked before any model is built: codes of an
earlier run (`read_codes`), prompt audio (`read_prompt`), and the longest song a model's
timing conditioning covers (`max_seconds`). Each problem is an `InputError` naming the file."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from jukebox_jax import audio, checks, integrity
from jukebox_jax.config import JukeboxConfig
from jukebox_jax.errors import InputError
from jukebox_jax.io import check_file, read_npz

AUDIO_FORMATS = audio.FORMATS
_FIX = "give the codes.npz an earlier run wrote"


def read_codes(path: Path, levels: int, l_bins: int, fix: str = _FIX) -> dict[int, np.ndarray]:
    """The `level_{L}` arrays of a codes `.npz` (as `jukebox-jax sample` writes), checked:
    integer `[samples, tokens]` in `[0, l_bins)`, the same number of samples at every level,
    levels `0..levels-1` only. Returns `{level: int64 codes}`; an unreadable or misnamed array's error ends with `fix`."""
    what = f"codes file {path}"
    check_file(path, what)
    arrays = read_npz(path, what, fix)
    found = {int(name[6:]): name for name in arrays if re.fullmatch(r"level_[0-9]+", name)}
    odd = [name for name in arrays if re.fullmatch(r"level_[0-9]+", name) and name != f"level_{int(name[6:])}"]
    if odd:  # level_02 beside level_2: one would silently stand for the other
        raise InputError(f"{what} holds {', '.join(sorted(odd))}: name each level's codes level_0, level_1, ...; {fix}")
    if not found:
        raise InputError(f"{what} holds no level_* arrays (it has {sorted(arrays) or 'nothing'}); {fix}")
    if max(found) >= levels:
        raise InputError(f"{what} holds {found[max(found)]}, but the model has levels 0..{levels - 1}")
    codes = {
        level: checks.codes(f"{what}: {name}", arrays[name], l_bins, fix) for level, name in sorted(found.items())
    }
    batches = {level: len(z) for level, z in codes.items()}
    if len(set(batches.values())) > 1:
        raise InputError(f"{what} holds different numbers of samples per level ({batches}); every level needs the same")
    return codes


@dataclasses.dataclass(frozen=True)
class Prompt:
    """The part of a prompt file a job continues."""

    audio: np.ndarray  # [T, 1] float32 mono, T a multiple of the top hop
    digest: str  # SHA-256 of the file
    file_seconds: float  # the whole file's length
    seconds: float  # how much of it was asked for (`audio` may be shorter)


def read_prompt(path: Path, sample_rate: int, hop: int, seconds: float) -> Prompt:
    """Up to `seconds` of the audio file at `path` at `sample_rate` (resampled from any rate
    and mixed to mono, `audio.load_segment`), cut to a multiple of `hop` samples; it must hold
    at least `hop` finite samples."""
    what = "prompt audio"
    header = audio.info(path, what=what)
    available = int(min(seconds * sample_rate, header.length(sample_rate)))  # in floats: seconds may be 1e306
    used = available // hop * hop
    if used == 0:
        raise InputError(
            f"{what} {path}: {available} samples used; priming needs at least {hop} ({hop / sample_rate:.4f} s): "
            "prime with more of it, or with a longer file"
        )
    mono = audio.load_segment(path, 0, used, sample_rate, what=what)  # [used, 1]
    return Prompt(mono, integrity.file_digest(path), header.seconds, seconds)


def max_seconds(config: JukeboxConfig) -> float | None:
    """The longest song (seconds) the model's timing conditioning covers: its timing bins
    end at `max_duration`, and longer songs would all fall in the last bin. None if no prior
    is conditioned on timing."""
    limits = [p.labels.max_duration for p in config.priors if p.labels is not None and p.labels.timing]
    return min(limits) if limits else None
