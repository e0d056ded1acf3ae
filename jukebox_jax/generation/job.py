"""A sampling job in a folder: the request (`job.json`), the codes after every window
(`codes.npz`, written atomically) and each finished level's audio (`level_{L}/sample_{i}.wav`).
Rerunning the same request with `resume=True` continues where it stopped and gives the
result an uninterrupted run gives; a kill loses at most the window in flight."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np

from jukebox_jax.generation.levels import Codes, LevelSettings, OnTokens, OnWindow, sample_levels
from jukebox_jax.io import write_npz, write_text, write_wav
from jukebox_jax.jukebox import Jukebox
from jukebox_jax.labels import SongLabels


@dataclasses.dataclass(frozen=True)
class SampleRequest:
    """Everything that determines a job's output."""

    levels: tuple[int, ...]
    sample_length: int  # audio samples
    seed: int
    songs: dict[int, tuple[SongLabels, ...]]  # per level, in that prior's label set
    settings: dict[int, LevelSettings]

    def to_json(self) -> str:
        """Deterministic: the same request always gives the same text (a resume compares them)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["songs"] = {level: [dataclasses.asdict(song) for song in songs] for level, songs in self.songs.items()}
        d["settings"] = {level: s.to_dict() for level, s in self.settings.items()}
        return json.dumps(d, sort_keys=True, default=list)


def run_job(
    jb: Jukebox,
    out: Path,
    request: SampleRequest,
    start_codes: Codes,
    *,
    resume: bool = False,
    on_window: OnWindow | None = None,
    on_tokens: OnTokens | None = None,
) -> Codes:
    """Runs (or, with `resume`, continues) `request` in folder `out`; returns the codes.
    `start_codes` are the codes to continue (empty arrays for ancestral sampling).
    `on_window` hears after each saved window, `on_tokens` during one (`sample_levels`)."""
    out.mkdir(parents=True, exist_ok=True)
    job, codes_file = out / "job.json", out / "codes.npz"
    zs = [np.asarray(z, np.int64) for z in start_codes]
    if job.exists():
        if not resume:
            raise FileExistsError(f"{out} already holds a sampling job: pass resume=True (--resume) to continue it, or choose another output folder")
        if job.read_text() != request.to_json():
            raise ValueError(f"{out} holds a different job (job.json differs from this request); choose another output folder")
        if codes_file.exists():
            saved = np.load(codes_file)
            zs = [saved[f"level_{level}"] for level in range(len(zs))]
    else:
        write_text(job, request.to_json())

    def checkpoint(level: int, start: int, zs: Codes) -> None:
        write_npz(codes_file, {f"level_{i}": z for i, z in enumerate(zs)})
        if on_window is not None:
            on_window(level, start, zs)

    for level in sorted(request.levels, reverse=True):
        zs = sample_levels(jb, zs, request.songs, (level,), request.sample_length, jax.random.key(request.seed), request.settings, checkpoint, on_tokens)
        if jb.config.vqvae is not None:
            write_level_audio(jb, out / f"level_{level}", zs[level], level)
    return zs


def write_level_audio(jb: Jukebox, folder: Path, codes: np.ndarray, level: int) -> None:
    """Decodes one level's codes `[n, t]` and writes `sample_{i}.wav` per sample."""
    folder.mkdir(parents=True, exist_ok=True)
    audio = np.asarray(jb.decode([codes], start_level=level))
    for i, x in enumerate(audio):
        write_wav(folder / f"sample_{i}.wav", x, jb.config.vqvae.sample_rate)

