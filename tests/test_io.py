"""`io`: one process at a time writes an output folder (`exclusive`), its lock going with the
process, killed or not, and a refused command leaving no folder behind; a full disk is an
`OSError` naming the file, before orbax's writes (`check_space`) or during ours (`write_atomic`)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jukebox_jax import io
from jukebox_jax.errors import InputError
from jukebox_jax.io import LOCK_FILE, check_output_folder, check_space, exclusive, tree_nbytes, write_atomic

HOLD = """
import sys, time
from pathlib import Path
from jukebox_jax.io import exclusive
with exclusive(Path(sys.argv[1]), ("run.json",), "training run"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_folder_in_use_is_refused_until_its_process_ends(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        in_use = rf"--out {out} is in use: another process is writing a training run there"
        with pytest.raises(InputError, match=in_use), exclusive(out, ("run.json",), "training run"):
            pytest.fail("entered a folder another process holds")
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the OS drops the lock
        holder.wait()
    assert (out / LOCK_FILE).exists()  # left by the killed process, unlocked: taken over
    with exclusive(out, ("run.json",), "training run"):
        (out / "run.json").write_text("{}")
    assert [p.name for p in out.iterdir()] == ["run.json"]  # the lock file goes with its holder


def test_a_lock_file_removed_by_its_last_holder_is_not_held(tmp_path):
    """A process that opened the lock file just before its holder removed it must not count
    the removed file's lock as the folder's (a newcomer would make and lock another)."""
    path = tmp_path / LOCK_FILE
    with open(path, "a") as f:
        path.unlink()
        assert not io._locked(f, path)
    with open(path, "a") as f:
        assert io._locked(f, path)


def test_one_process_two_holders_are_refused_too(tmp_path):
    job = tmp_path / "job"
    holds = ("job.json",), "sampling job"
    with exclusive(job, *holds), pytest.raises(InputError, match="is in use"), exclusive(job, *holds):
        pass


def test_the_lock_file_is_not_content(tmp_path):
    """A folder left holding only the lock (its process killed before writing) counts as
    empty; one holding anything else of someone else's is still refused."""
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).touch()
    check_output_folder(out, ("run.json",), "training run")
    (out / "notes.txt").touch()
    with (
        pytest.raises(InputError, match=r"holds other files \(notes.txt\), not a training run"),
        exclusive(out, ("run.json",), "training run"),
    ):
        pass


def test_a_link_to_nothing_is_named(tmp_path):
    """An output folder (or one above it) that is a symbolic link to nothing or a loop: `mkdir`
    said only "File exists"."""
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for out, link in ((tmp_path / "dangling", "dangling"), (tmp_path / "dangling" / "run", "dangling"), (tmp_path / "loop", "loop")):
        with pytest.raises(InputError, match=rf"--out {out}: {tmp_path / link} is a link to nothing \("), exclusive(out, ("run.json",), "training run"):
            pass


def test_a_body_that_fails_before_writing_leaves_no_folder(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(InputError, match="refused"), exclusive(out, ("run.json",), "training run"):
        raise InputError("refused")
    assert not out.exists()
    with pytest.raises(KeyboardInterrupt), exclusive(out, ("run.json",), "training run"):
        (out / "run.json").write_text("{}")
        raise KeyboardInterrupt
    assert (out / "run.json").exists()  # what was written stays
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(InputError, match="refused"), exclusive(existing, ("run.json",), "training run"):
        raise InputError("refused")
    assert existing.is_dir()  # not ours to remove


def test_a_full_disk_names_the_file_and_leaves_no_temporary_file(tmp_path):
    def full(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left on device") as e:
        write_atomic(tmp_path / "codes.npz", full)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "codes.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_file_though_the_buffer_fails_to_flush_again(tmp_path):
    """np.savez stopped by a full disk leaves bytes in the file's buffer; flushing them as the
    file closed failed too, and its unnamed error replaced the named one."""

    def full(f):
        f.write(b"half")  # buffered
        os.dup2(os.open("/dev/full", os.O_WRONLY), f.fileno())  # every later write fails, as on a full disk
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left on device") as e:
        write_atomic(tmp_path / "codes.npz", full)
    assert e.value.filename == str(tmp_path / "codes.npz") and list(tmp_path.iterdir()) == []


def test_check_space_counts_the_arrays_against_the_free_bytes(tmp_path, monkeypatch):
    arrays = {"a": np.zeros((1000, 1000), np.float32), "b": [np.zeros(500_000, np.int8)]}  # 4.5 MB
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=4_499_999))
    with pytest.raises(OSError, match=r"not enough space: checkpoint 7 needs about 4.5 MB, 4.5 MB are free") as e:
        check_space(tmp_path / "run" / "checkpoints", tree_nbytes(arrays), "checkpoint 7")  # not made yet: its parent's disk
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "run" / "checkpoints")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=4_500_000))
    check_space(tmp_path / "run" / "checkpoints", tree_nbytes(arrays), "checkpoint 7")


def test_a_missing_npz_is_named_missing(tmp_path):
    """It was "is not an .npz archive" (`zipfile.is_zipfile` of no file), with a fix for a damaged one."""
    with pytest.raises(InputError, match=r"^codes file x\.npz is missing; encode it$"):
        io.read_npz(tmp_path / "x.npz", "codes file x.npz", "encode it")
    (tmp_path / "y.npz").write_text("text")
    with pytest.raises(InputError, match=r"^codes file y\.npz is not an \.npz archive; encode it$"):
        io.read_npz(tmp_path / "y.npz", "codes file y.npz", "encode it")
