"""Files written atomically (a temporary file beside the target, then a rename), so an
interrupted run never leaves a truncated output behind; output folders one process at a time."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterator
from io import BytesIO
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # not POSIX: folders are not locked
    fcntl = None

import numpy as np

from jukebox_jax.errors import InputError

TEMP_PREFIX = ".partial-"  # temporary files start with this; a kill can leave them behind
LOCK_FILE = ".jukebox-jax.lock"  # in an output folder: locked by the process writing there (`exclusive`)


def write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Runs `write(file)` on a temporary file beside `path`, then renames it into place. If
    anything fails the temporary file goes, and an `OSError` (a full disk) names `path`."""
    f = tempfile.NamedTemporaryFile(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix, delete=False)  # noqa: SIM115 (closed by hand: a failed flush must not be retried)
    try:
        write(f)
        f.close()  # flushes: a full disk may show only here
        os.chmod(f.name, 0o644)
        os.replace(f.name, path)
    except BaseException as e:
        with contextlib.suppress(OSError):  # what the buffer holds goes with the file (its flush failed again, unnamed)
            f.close()
        os.unlink(f.name)
        if isinstance(e, OSError):
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def nearest_existing(path: Path) -> Path:
    """`path` if it exists, else its nearest parent that does."""
    return next(p for p in (path, *path.absolute().parents) if p.exists())


def check_file(path: Path, what: str) -> None:
    """Raises `InputError` "{what} ..." unless `path` is a regular file (or a link to one): a
    folder, a device, pipe or socket, and a missing file are each named as such."""
    if path.is_dir():
        raise InputError(f"{what} is a folder; give a file")
    if not path.exists():
        raise InputError(f"{what} does not exist")
    if not path.is_file():
        raise InputError(f"{what} is not a regular file (a device, pipe or socket); give a file")


def dangling_link(path: Path) -> Path | None:
    """The first of `path` and its parents that is a symbolic link to nothing (or a loop), where
    no folder can be made, if any."""
    return next((p for p in (path, *path.parents) if p.is_symlink() and not p.exists()), None)


def check_space(folder: Path, nbytes: int, what: str) -> None:
    """Raises `OSError` (ENOSPC) naming `what` unless the file system of `folder` (or of its
    nearest existing parent) has `nbytes` free: checked before writes that would fail part
    way (inside orbax's threads, in a flood of errors) or after hours."""
    free = shutil.disk_usage(nearest_existing(folder)).free
    if free < nbytes:
        raise OSError(
            errno.ENOSPC, f"not enough space: {what} needs about {_size(nbytes)}, {_size(free)} are free", str(folder)
        )


FULL = (errno.ENOSPC, errno.EDQUOT)  # a write failed for want of space
CHECKPOINT_OVERHEAD = 4 << 20  # an orbax checkpoint's own files past its arrays' bytes (metadata, OCDBT manifests)


def full_disk(e: BaseException) -> bool:
    """Whether a write failed for want of space: an `OSError` of `FULL`, or orbax's and
    tensorstore's own errors for it (`ValueError: RESOURCE_EXHAUSTED: Error writing ...`)."""
    if isinstance(e, OSError):
        return e.errno in FULL
    text = str(e)
    return "No space left on device" in text or ("RESOURCE_EXHAUSTED" in text and "writing" in text)


def checkpoint_nbytes(arrays: Any) -> int:
    """About the bytes an orbax checkpoint of `arrays` takes on disk (for `check_space`)."""
    nbytes = tree_nbytes(arrays)
    return nbytes + nbytes // 10 + CHECKPOINT_OVERHEAD


def tree_nbytes(arrays: Any) -> int:
    """The bytes of a pytree's arrays, uncompressed."""
    import jax

    return sum(x.nbytes for x in jax.tree.leaves(arrays))


def physical_memory() -> int | None:
    """This machine's memory in bytes (None where the OS does not say: no `sysconf`)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(nbytes: int, share: float, what: str, fix: str, memory: int | None = None) -> None:
    """Raises `InputError` if `nbytes` pass `share` of `memory` (default: this machine's):
    "{what} about X GB of memory, more than N% of this machine's Y GB; {fix}" (MB below 1 GB).
    Refuses a request before it is built, where building it would end in the OS killing the
    process."""
    memory = memory or physical_memory()
    if memory and nbytes > share * memory:
        raise InputError(
            f"{what} about {_size(nbytes)} of memory, more than {share:.1%} of this machine's {_size(memory)}; {fix}"
        )


def _size(nbytes: float) -> str:
    """`nbytes` in the largest of kB, MB, GB, TB it reaches."""
    scale, unit = next(((s, u) for s, u in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB")) if nbytes >= s), (1e3, "kB"))
    return f"{nbytes / scale:,.1f} {unit}"


def writable_ancestor(path: Path) -> Path:
    """The nearest existing folder at or above `path`, after writing a temporary file there
    (permission bits do not tell for root, /proc or a read-only mount); raises `OSError` if
    it cannot be written, `NotADirectoryError` if it is a file."""
    existing = nearest_existing(path)
    if not existing.is_dir():
        raise NotADirectoryError(20, "a file, not a folder", str(existing))
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=TEMP_PREFIX):
            pass
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(existing)) from e
    return existing


def check_output_folder(out: Path, ours: tuple[str, ...], what: str, *, only: bool = False) -> None:
    """Raises `InputError` unless `out` is absent, an empty folder, or holds one of the names
    `ours` (so it is a `what` of ours, to continue; with `only`, nothing but them), besides the
    temporary files of a killed write: writing into any other folder could overwrite files
    that are not ours, or bury ours among them. And unless it can be written in (or made)."""
    if (link := dangling_link(out)) is not None:
        raise InputError(f"--out {out}: {link} is a link to nothing ({os.readlink(link)}); give a folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    try:
        writable_ancestor(out)
    except OSError as e:
        raise InputError(f"--out {out}: cannot write in {e.filename} ({e.strerror or e}); choose a folder you can write in") from None
    if not out.exists():
        return
    entries = sorted(p.name for p in out.iterdir() if not p.name.startswith(TEMP_PREFIX) and p.name != LOCK_FILE)
    if entries and (not set(entries) <= set(ours) if only else not set(ours) & set(entries)):
        entries = [e for e in entries if e not in ours]
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise InputError(f"--out {out} holds other files ({shown}), not a {what}; give a new or empty folder")


@contextlib.contextmanager
def exclusive(out: Path, ours: tuple[str, ...], what: str, *, only: bool = False) -> Iterator[None]:
    """Checks `out` (`check_output_folder`), creates it and holds a lock on it while the body
    runs: a second process given the same folder is refused (`InputError`) rather than
    interleave its writes with ours or delete our temporary files. The lock file goes when the
    body ends (the folder too if the body failed before writing into a folder made here); a
    killed process leaves it unlocked, and the next one takes it over."""
    check_output_folder(out, ours, what, only=only)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK_FILE
    failed = False
    with open(lock, "a") as f:
        if not _locked(f, lock):
            raise _in_use(out, what)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            lock.unlink()  # while held: a process that opened it meanwhile finds it gone (`_locked`)
            if failed and made:
                with contextlib.suppress(OSError):  # removed only if empty: nothing was written
                    out.rmdir()


def check_not_in_use(out: Path, what: str) -> None:
    """Refuses `out` while another process holds its lock (`exclusive`, which checks again):
    before the long work a command does first (loading a model)."""
    if fcntl is None:
        return
    try:
        f = open(out / LOCK_FILE)  # noqa: SIM115 (closed below; its holder may remove it meanwhile)
    except (FileNotFoundError, NotADirectoryError):
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(out, what) from None
        fcntl.flock(f, fcntl.LOCK_UN)


def _in_use(out: Path, what: str) -> InputError:
    return InputError(
        f"--out {out} is in use: another process is writing a {what} there; wait for it to end, or give another folder"
    )


def _locked(f: IO[str], path: Path) -> bool:
    """Whether we now hold the lock of open file `f` and it is still the file at `path` (one
    that its last holder removed, or replaced, is not)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except (BlockingIOError, FileNotFoundError):
        return False


def remove_leftovers(folder: Path) -> list[Path]:
    """Deletes the temporary files (and folders) an interrupted write left in `folder` and its
    subfolders; returns them."""
    found = sorted(folder.rglob(f"{TEMP_PREFIX}*")) if folder.is_dir() else []
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)  # missing: inside a folder removed before it
    return found


def read_record(path: Path, error: type[Exception], kind: str, fix: str) -> dict[str, Any]:
    """The JSON object a command wrote whole to `path` (`write_text`): one that cannot be read
    is `error` "{path} cannot be read (...); {fix}", one that is no object "{path} is not {kind}; {fix}"."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise error(f"{path} cannot be read ({e}); {fix}") from None
    if not isinstance(record, dict):
        raise error(f"{path} is not {kind}; {fix}")
    return record


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Writes float audio `[T]` or `[T, channels]`, clipped to [-1, 1], as 16-bit PCM in the
    format of `path`'s suffix (.wav, .flac). Encoded in memory first: soundfile reports a full
    disk as a failed assertion, a plain write as the `OSError` it is."""
    import soundfile

    encoded = BytesIO()
    soundfile.write(encoded, np.clip(audio, -1, 1), sample_rate, subtype="PCM_16", format=path.suffix[1:].upper())
    write_atomic(path, lambda f: f.write(encoded.getbuffer()))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    write_atomic(path, lambda f: np.savez(f, **arrays))


def read_npz(
    path: Path, what: str, fix: str, keys: Collection[str] | None = None, optional: Collection[str] = ()
) -> dict[str, np.ndarray]:
    """The arrays `keys` (None: all) of the `.npz` at `path`, and those of `optional` it holds,
    read without pickles. A file that is no `.npz`, is damaged, lacks one of `keys` or would
    unpack past half of this machine's memory (checked before unpacking) is an `InputError`:
    "{what} ...; {fix}"."""
    if not Path(path).is_file():
        raise InputError(f"{what} is missing; {fix}")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{what} is not an .npz archive; {fix}")
    damaged = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
    try:
        with zipfile.ZipFile(path) as z:
            unpacked = sum(info.file_size for info in z.infolist())
            files = [name.removesuffix(".npy") for name in z.namelist()]  # as np.load names them
    except damaged as e:
        raise InputError(f"{what} cannot be read ({e}); {fix}") from None
    check_memory(unpacked, 0.5, f"{what} unpacks to", fix)
    if missing := [k for k in keys or () if k not in files]:
        raise InputError(f"{what} lacks the arrays {missing} (it has {files}); {fix}")
    names = files if keys is None else [*keys, *(k for k in optional if k in files)]
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in names}
    except damaged as e:
        raise InputError(f"{what} cannot be read ({e}); {fix}") from None
