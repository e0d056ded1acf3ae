"""Files written atomically (a temporary file beside the target, then a rename), so an
interrupted run never leaves a truncated output behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from jukebox_jax.errors import InputError

TEMP_PREFIX = ".partial-"  # temporary files start with this; a kill can leave them behind


def write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Runs `write(file)` on a temporary file beside `path`, then renames it into place."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix, delete=False) as f:
        try:
            write(f)
        except BaseException:
            os.unlink(f.name)
            raise
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)


def writable_ancestor(path: Path) -> Path:
    """The nearest existing folder at or above `path`, after writing a temporary file there
    (permission bits do not tell for root, /proc or a read-only mount); raises `OSError` if
    it cannot be written, `NotADirectoryError` if it is a file."""
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(20, "a file, not a folder", str(existing))
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=TEMP_PREFIX):
            pass
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(existing)) from e
    return existing


def check_output_folder(out: Path, ours: tuple[str, ...], what: str) -> None:
    """Raises `InputError` unless `out` is absent, an empty folder, or holds one of the names
    `ours` (so it is a `what` of ours, to continue), besides the temporary files of a killed
    write: writing into any other folder could overwrite files that are not ours, or bury ours
    among them."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    entries = sorted(p.name for p in out.iterdir() if not p.name.startswith(TEMP_PREFIX))
    if entries and not set(ours) & set(entries):
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise InputError(f"--out {out} holds other files ({shown}), not a {what}; give a new or empty folder")


def remove_leftovers(folder: Path) -> list[Path]:
    """Deletes the temporary files an interrupted `write_atomic` left in `folder` and its
    subfolders; returns them."""
    found = sorted(folder.rglob(f"{TEMP_PREFIX}*")) if folder.is_dir() else []
    for path in found:
        path.unlink()
    return found


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Writes `[T, channels]` float audio in [-1, 1] as 16-bit PCM."""
    import soundfile

    write_atomic(path, lambda f: soundfile.write(f, np.clip(audio, -1, 1), sample_rate, subtype="PCM_16", format="WAV"))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    write_atomic(path, lambda f: np.savez(f, **arrays))
