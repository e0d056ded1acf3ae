"""A sampling job in a folder: what the job is (`job.json`), the codes after every window
(`codes.npz`, written atomically) and each finished level's audio (`level_{L}/sample_{i}.wav`).
Rerunning the same job with `resume=True` continues where it stopped and gives the result an
uninterrupted run gives; a kill loses at most the window in flight.

`job.json` holds the request, where its start codes came from (`JobSource`), the model's
fingerprint (`Jukebox.fingerprint`), a digest of the start codes and the job format (how keys
become draws, `JOB_FORMAT`); a resume with anything different is refused, naming what differs.

In a run of several processes (`jax.distributed`), every process samples (they compute
together) and reads the folder, which must be one they all see; only process 0 writes."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jukebox_jax import checks, integrity
from jukebox_jax.config import JukeboxConfig
from jukebox_jax.errors import InputError, JobError, shown
from jukebox_jax.generation.inputs import read_codes
from jukebox_jax.generation.levels import Codes, LevelSettings, OnTokens, OnWindow, check_level, sample_levels
from jukebox_jax.io import (
    check_output_folder,
    exclusive,
    read_npz,
    read_record,
    remove_leftovers,
    write_audio,
    write_npz,
    write_text,
)
from jukebox_jax.jukebox import Jukebox
from jukebox_jax.labels import SongLabels

JOB_FILE = "job.json"
CODES_FILE = "codes.npz"
# How a job's seed becomes its draws; a job of another format would continue with other
# numbers than it began with. 2: one key per sample (`sampling.row_keys`, 2026-12-05); 1 (no
# "format" in job.json): one key per batch chunk.
JOB_FORMAT = 2


class Mode(str, enum.Enum):
    """Where a job's start codes come from: nothing (`ANCESTRAL`), an earlier run's codes,
    extended at every level (`CONTINUE`) or below their top level (`UPSAMPLE`), or a prompt
    audio file, encoded (`PRIMED`). A `str`: `job.json` records the value."""

    ANCESTRAL = "ancestral"
    CONTINUE = "continue"
    UPSAMPLE = "upsample"
    PRIMED = "primed"

    def __str__(self) -> str:
        return self.value

    @property
    def reads_codes(self) -> bool:
        return self in (Mode.CONTINUE, Mode.UPSAMPLE)


@dataclasses.dataclass(frozen=True)
class JobSource:
    """Where a job's start codes come from, as the user gave them."""

    mode: Mode = Mode.ANCESTRAL
    prompt: str | None = None  # SHA-256 of the prompt audio file (primed)
    prompt_seconds: float | None = None  # seconds of it the job continues (primed)


@dataclasses.dataclass(frozen=True)
class Placement:
    """How a job's model runs, which its 16-bit and int8 samples depend on besides the weights:
    the priors' compute dtypes and weight formats, and the mesh's shape (None: one device).
    At 16 bits another mesh rounds otherwise, so near-tie draws differ: a resume keeps it."""

    dtype: str = "float32"
    weights: str = "float"
    mesh: dict[str, int] | None = None

    @classmethod
    def of(cls, config: JukeboxConfig, mesh: dict[str, int] | None) -> Placement:
        """The placement of a model of `config` on a mesh of shape `mesh`."""
        dtype, weights = ({getattr(p.precision, f).value for p in config.priors} for f in ("compute", "weights"))
        return cls(",".join(sorted(dtype)), ",".join(sorted(weights)), mesh)


@dataclasses.dataclass(frozen=True)
class SampleRequest:
    """Everything that determines a job's output, besides the model and the start codes.
    `placement` None: the model's (`run_job` fills it in)."""

    levels: tuple[int, ...]
    sample_length: int  # audio samples
    seed: int
    songs: dict[int, tuple[SongLabels, ...]]  # per level, in that prior's label set
    settings: dict[int, LevelSettings]
    source: JobSource = JobSource()
    placement: Placement | None = None

    def __post_init__(self):  # numbers kept as Python ints (numpy's are not JSON)
        seed = checks.seed(self.seed)
        levels = self.levels
        if not isinstance(levels, tuple) or not levels or len(set(levels)) != len(levels):
            raise InputError(f"levels must be a non-empty tuple of distinct levels, got {shown(levels)}")
        levels = tuple(checks.integer("each of levels", level, 0) for level in levels)
        sample_length = checks.integer("sample_length", self.sample_length, 1, note=" (audio samples)")
        for name, value in (("seed", seed), ("levels", levels), ("sample_length", sample_length)):
            object.__setattr__(self, name, value)
        for name in ("songs", "settings"):  # keyed by level: numpy keys are not JSON either
            keyed = {checks.integer(f"each level of {name}", k, 0): v for k, v in getattr(self, name).items()}
            object.__setattr__(self, name, keyed)
        for name, per_level in (("songs", self.songs), ("settings", self.settings)):
            missing = [level for level in levels if level not in per_level]
            if missing:
                raise InputError(f"{name} has no entry for level {', '.join(map(str, missing))}: give one per level sampled")
        counts = {level: len(self.songs[level]) for level in levels}
        if 0 in counts.values() or len(set(counts.values())) > 1:
            raise InputError(f"songs must hold the same number (>= 1) of samples' labels at every level, got {counts}")

    @property
    def n_samples(self) -> int:
        """Samples the job draws (the songs' labels per level; the same at every level)."""
        return len(next(iter(self.songs.values())))

    def to_json(self) -> str:
        """Deterministic: the same request always gives the same text."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["songs"] = {level: [dataclasses.asdict(song) for song in songs] for level, songs in self.songs.items()}
        d["settings"] = {level: s.to_dict() for level, s in self.settings.items()}
        d["source"] = dataclasses.asdict(self.source)
        d["placement"] = None if self.placement is None else dataclasses.asdict(self.placement)
        return json.dumps(d, sort_keys=True, default=_plain)

    @classmethod
    def from_json(cls, text: str) -> SampleRequest:
        """The request `to_json` gave `text` for (a job's state between sessions, or a web
        request's); each part checked as when made."""
        try:
            d = json.loads(text)
            if not isinstance(d, dict):
                raise TypeError(f"not an object: {shown(d)}")
            if extra := sorted(d.keys() - {f.name for f in dataclasses.fields(cls)}):  # e.g. a job.json's own
                raise ValueError(f"not a SampleRequest's fields: {extra}")
            songs = {
                int(level): tuple(SongLabels(**{**s, "genres": tuple(s.get("genres", ())), "lyrics": tuple(s.get("lyrics", ()))}) for s in rows)
                for level, rows in d["songs"].items()
            }
            source = dict(d.get("source") or {})
            placement = d.get("placement")
            return cls(
                tuple(d["levels"]),
                d["sample_length"],
                d["seed"],
                songs,
                {int(level): LevelSettings.from_dict(v) for level, v in d["settings"].items()},
                JobSource(**{**source, "mode": Mode(source.get("mode", Mode.ANCESTRAL))}),
                None if placement is None else Placement(**placement),
            )
        except InputError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise InputError(f"not a SampleRequest's JSON (SampleRequest.to_json): {type(e).__name__}: {e}") from None


def _plain(value: Any) -> Any:
    """A JSON value for what `json` cannot write itself: numpy numbers, tuples of them."""
    if isinstance(value, np.generic):
        return value.item()
    return list(value)


def codes_digest(codes: Codes) -> str:
    """SHA-256 of a list of codes (as int64), one per level."""
    return integrity.text_digest(json.dumps([integrity.array_digest(np.asarray(z, np.int64)) for z in codes]))


def job_record(request: SampleRequest, model: str | None = None, start_codes: Codes | None = None) -> dict[str, Any]:
    """What `job.json` holds: the request plus the model's fingerprint and the start codes'
    digest. Either may be left out (not known yet, e.g. before the model is loaded): a
    check then compares the rest."""
    record = json.loads(request.to_json()) | {"format": JOB_FORMAT}
    if model is not None:
        record["model"] = model
    if start_codes is not None:
        record["start_codes"] = codes_digest(start_codes)
    return record


def check_job(out: Path, record: dict[str, Any], resume: bool, flag_of: Callable[[str], str | None] | None = None) -> bool:
    """Whether `out` holds a job to continue. Raises `JobError` if it holds one and `resume`
    is false, or if that job differs from `record` (in the keys `record` has). `flag_of` names
    what sets the field of a difference (`job_differences`; a CLI's flag: `"seed: 5 -> 6"` ->
    `"--seed"`), added to it."""
    check_output_folder(out, (JOB_FILE,), "sampling job")
    job = out / JOB_FILE
    if not job.exists():
        return False
    if not resume:
        raise JobError(f"{out} already holds a sampling job: resume it (--resume) or choose another output folder")
    saved = read_record(job, JobError, "a job record", "choose another output folder")
    saved_format = saved.get("format", 1)  # job.json had no format before format 2
    if saved_format != JOB_FORMAT:
        raise JobError(
            f"{out} holds a job of format {saved_format!r}, begun by another version of jukebox-jax, which "
            f"draws other numbers from a seed than this one (format {JOB_FORMAT}): resuming it would not give its "
            "samples. Sample again into another output folder (its finished levels' audio and codes.npz stay valid)"
        )
    saved = {k: v for k, v in saved.items() if k in record or k not in ("model", "start_codes")}
    if "placement" not in saved:  # a job begun before placements were recorded: its model's fingerprint serves
        record = {k: v for k, v in record.items() if k != "placement"}
    differences = job_differences(saved, record)
    if flag_of is not None:
        differences = [f"{d} ({flag})" if (flag := flag_of(d)) else d for d in differences]
    if differences:
        more = f"; and {len(differences) - 6} more" if len(differences) > 6 else ""
        raise JobError(
            f"{out} holds another job; this request differs in {'; '.join(differences[:6])}{more}. "
            "Resume it with the arguments it was started with, or choose another output folder"
        )
    if (out / CODES_FILE).exists():  # read now, before a model loads (minutes for a 5b); checked in full by `_saved_codes`
        try:
            read_npz(out / CODES_FILE, f"codes file {out / CODES_FILE}", _DAMAGED)
        except InputError as e:
            raise _unresumable(out, str(e)) from None
    return True


# Leaves of a job record that do not change its samples: a resume may give other values.
FREE_FIELDS = ("max_batch_size",)


def job_differences(saved: Any, new: Any, path: str = "") -> list[str]:
    """`"path: saved -> new"` for every leaf that differs between two job records, but for
    `FREE_FIELDS`. Lists of records (a level's songs, one per sample) are compared record by
    record (`songs.2.0.total_length`), or by their counts where those differ."""
    if isinstance(saved, dict) and isinstance(new, dict):
        keys = sorted(k for k in saved.keys() | new.keys() if k not in FREE_FIELDS)
        return [d for k in keys for d in job_differences(saved.get(k), new.get(k), f"{path}.{k}" if path else str(k))]
    if isinstance(saved, list) and isinstance(new, list) and any(isinstance(x, dict) for x in saved + new):
        if len(saved) != len(new):
            return [f"{path}: {len(saved)} -> {len(new)} records"]
        return [d for i, (x, y) in enumerate(zip(saved, new)) for d in job_differences(x, y, f"{path}.{i}")]
    return [] if saved == new else [f"{path}: {_short(saved)} -> {_short(new)}"]


def _short(value: Any) -> str:
    return "(none)" if value is None else shown(value)


def run_job(
    jb: Jukebox,
    out: Path,
    request: SampleRequest,
    start_codes: Codes,
    *,
    resume: bool = False,
    on_window: OnWindow | None = None,
    on_tokens: OnTokens | None = None,
    flag_of: Callable[[str], str | None] | None = None,
) -> Codes:
    """Runs (or, with `resume`, continues) `request` in folder `out`; returns the codes.
    `start_codes` are the codes to continue (empty arrays for ancestral sampling).
    A resume first removes the temporary files a killed run left (`io.remove_leftovers`).
    `on_window` hears after each saved window, `on_tokens` during one (`sample_levels`);
    `flag_of` names what set a field a refused resume differs in (`check_job`).
    Another process running a job in `out` meanwhile is an `InputError` (`io.exclusive`)."""
    with exclusive(out, (JOB_FILE,), "sampling job") if _writer() else contextlib.nullcontext():
        return _run_job(jb, out, request, start_codes, resume, on_window, on_tokens, flag_of)


def _run_job(
    jb: Jukebox,
    out: Path,
    request: SampleRequest,
    start_codes: Codes,
    resume: bool,
    on_window: OnWindow | None,
    on_tokens: OnTokens | None,
    flag_of: Callable[[str], str | None] | None,
) -> Codes:
    zs = _checked_start(jb, request, start_codes)
    placement = Placement.of(jb.config, None if jb.mesh is None else dict(jb.mesh.shape))
    if request.placement not in (None, placement):
        raise InputError(f"request.placement {request.placement} is not the model's: {placement}")
    record = job_record(dataclasses.replace(request, placement=placement), jb.fingerprint(), zs)
    codes_file = out / CODES_FILE
    resuming = check_job(out, record, resume, flag_of)
    if resuming:
        _check_nothing_in_the_way(out, request)
    if resuming and codes_file.exists():
        most = {level: request.sample_length // jb.config.prior(level).raw_to_tokens for level in request.levels}
        zs = _saved_codes(codes_file, zs, jb.config.priors[0].l_bins, most)
    _every_process_has_read()
    if _writer():
        if resuming:
            remove_leftovers(out)
        else:
            write_text(out / JOB_FILE, json.dumps(record, sort_keys=True))

    def checkpoint(level: int, start: int, zs: Codes) -> None:
        if _writer():
            write_npz(codes_file, {f"level_{i}": z for i, z in enumerate(zs)})
        if on_window is not None:
            on_window(level, start, zs)

    for level in sorted(request.levels, reverse=True):
        zs = sample_levels(jb, zs, request.songs, (level,), request.sample_length, jax.random.key(request.seed), request.settings, checkpoint, on_tokens)
        if jb.config.vqvae is not None:
            write_level_audio(jb, out / f"level_{level}", zs[level], level)
    return zs


def _check_nothing_in_the_way(out: Path, request: SampleRequest) -> None:
    """Raises `JobError` naming a file where a level's audio folder goes, or a folder where one
    of its wavs goes (found after sampling, it was a bare 'File exists')."""
    n = request.n_samples
    for level in request.levels:
        folder = out / f"level_{level}"
        if (folder.exists() or folder.is_symlink()) and not folder.is_dir():  # a file, or a link to nothing
            blocking = folder
        else:
            blocking = next((wav for i in range(n) if (wav := folder / f"sample_{i}.wav").is_dir()), None)
        if blocking is not None:
            raise JobError(f"{blocking} is in the way of the job's level-{level} audio: move it away and resume")


def _checked_start(jb: Jukebox, request: SampleRequest, start_codes: Codes) -> Codes:
    """The start codes as int64, once `request` is checked against `jb` (its levels, their hops
    and windows) and the start codes against both: before a job is written."""
    n = request.n_samples
    needed = 0
    for level in request.levels:
        try:
            cfg = jb.config.prior(level)
        except InputError as e:
            raise InputError(f"levels: {e}") from None
        check_level(cfg, request.settings[level], request.sample_length, request.songs[level])
        needed = max(needed, level + 1 + (cfg.conditioner is not None))
    if len(start_codes) < needed:
        raise InputError(f"start_codes holds {len(start_codes)} levels; the levels sampled need {needed} (empty [{n}, 0] where none)")
    fix = f"give [{n}, tokens] codes per level, one row per sample ([{n}, 0] where none)"
    l_bins = jb.config.priors[0].l_bins
    arrays = [np.asarray(z) if np.size(z) else np.asarray(z, np.int64) for z in start_codes]  # empty: no dtype to be wrong
    codes = [checks.codes(f"start_codes[{level}]", z, l_bins, fix, rows=n) for level, z in enumerate(arrays)]
    for level in request.levels:
        total = request.sample_length // jb.config.prior(level).raw_to_tokens
        if codes[level].shape[1] >= total:  # nothing would be sampled, and the job's audio would be the start codes'
            raise InputError(
                f"start_codes[{level}] holds {codes[level].shape[1]} tokens, the {total} of sample_length "
                f"{request.sample_length} or more, which leaves nothing to sample: give a longer sample_length, or fewer "
                "start codes"
            )
    return codes


def _saved_codes(path: Path, start: Codes, l_bins: int, most: dict[int, int]) -> Codes:
    """The codes a stopped run of this job saved: every level, as many samples as the job
    draws, each level beginning with the start codes and at most `most[level]` tokens long
    (the start codes alone at a level not sampled); else a `JobError` (a damaged folder)."""
    try:
        saved = read_codes(path, len(start), l_bins, _DAMAGED)
    except InputError as e:
        problem = str(e)
    else:
        n = len(start[0])
        ordered = [saved[level] for level in sorted(saved)]
        if sorted(saved) == list(range(len(start))) and all(
            len(z) == n and s.shape[1] <= z.shape[1] <= most.get(level, s.shape[1]) and np.array_equal(z[:, : s.shape[1]], s)
            for level, (z, s) in enumerate(zip(ordered, start))
        ):
            return ordered
        lengths = [f"{s.shape[1]}..{most.get(level, s.shape[1])}" for level, s in enumerate(start)]
        problem = (
            f"its {path.name} is not this job's (levels {sorted(saved)}, shapes {[z.shape for z in saved.values()]}; "
            f"the job has {len(start)} levels of {n} samples starting with its start codes, of {', '.join(lengths)} tokens)"
        )
    raise _unresumable(path.parent, problem)


_DAMAGED = "a kill or a disk fault damaged it"


def _unresumable(out: Path, problem: str) -> JobError:
    return JobError(f"{out} cannot be resumed: {problem}. Sample again into a new folder (without --resume)")


def _writer() -> bool:
    """Whether this process writes the job's files (process 0 of a multi-process run)."""
    return jax.process_index() == 0


def _every_process_has_read() -> None:
    """Waits until every process has read the folder (before process 0 changes it)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("jukebox-jax: job folder read")


def write_level_audio(jb: Jukebox, folder: Path, codes: np.ndarray, level: int) -> None:
    """Decodes one level's codes `[n, t]` and writes `sample_{i}.wav` per sample (every
    process decodes; process 0 writes)."""
    audio = np.asarray(jb.decode([codes], start_level=level))
    if not _writer():
        return
    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(audio):
        write_audio(folder / f"sample_{i}.wav", x, jb.config.vqvae.sample_rate)
