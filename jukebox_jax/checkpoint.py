"""The checkpoint format: a folder holding `config.json` and an orbax checkpoint `params/`.

`config.json` of format 3:

    {"format": "jukebox-jax/3",
     "config": JukeboxConfig.to_dict(),
     "checksums": {"config": SHA-256 of the config, "params": {"vqvae/codebook_0": SHA-256, ...}}}

Formats: 3 adds the checksums to 2. 2: priors in the canonical layout (`prior/layout.py`).
1 (issues 2-4): layers stacked per `layer_groups` segment (`segment_{s}/layer_{j}`), converted
on load. 1 and 2 have no checksums: they load with a warning that they are unverified.

Saving is atomic. The whole new checkpoint is written to a sibling `.partial-NAME.new-XXXXXXXX`,
then swapped in: the old folder is renamed to `.partial-NAME.old`, the new one renamed to NAME,
the old one deleted. A kill at any moment leaves NAME the old or the new checkpoint, except
between the two renames, where NAME is missing and `.partial-NAME.old` holds the old one: the
next `load` or `save` renames it back (`_recover`). With no checkpoint before, NAME appears
only complete. `save` refuses to replace a file or a folder that is not a checkpoint, and
deletes the leftovers of killed saves of the same NAME. Concurrent saves to one NAME are not
supported; nothing is fsynced (a kill is survived, a power cut may not be). In a run of several
processes (a file system they share) all of them save together: each writes the shards it
holds into the new folder, which process 0 prepares and swaps in.

Saving records, and loading verifies, the SHA-256 (`integrity.py`) of the config and of every
array; both refuse non-finite weights, and weights not of the config's format (float, or
int8 where it declares int8), naming them. Measured here: hashing 400 MB took 0.22 s on two
cores, the finiteness check 0.03 s; so a 5B prior's 20 GB of weights costs ~11 core-seconds
(seconds on a multi-core host), less than reading them. `verify=False` skips the checksums.
Every read error is a `CheckpointError` naming the file and what to do. After one, the process
drops what orbax's failed read leaves behind (`orbax_reading`).

Loading onto a mesh (`load(mesh=...)`) restores each array straight into its shards (orbax
restore args; each process reads only its own); the checks then fetch one array at a time
to the host (in a run of several processes, every process gathers each array in turn).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import traverse_util
from jax.sharding import Mesh

from jukebox_jax import integrity, prior, sharding
from jukebox_jax.config import JukeboxConfig
from jukebox_jax.errors import CheckpointError, ParamsError
from jukebox_jax.io import TEMP_PREFIX, check_space, checkpoint_nbytes, full_disk, writable_ancestor, write_text
from jukebox_jax.params import Params, abstract_params, check_params, flatten

FORMAT = "jukebox-jax/3"
FORMAT_V2 = "jukebox-jax/2"
FORMAT_V1 = "jukebox-jax/1"
FORMATS = (FORMAT, FORMAT_V2, FORMAT_V1)
CONFIG = "config.json"
PARAMS = "params"
REWRITE = "save it again, or convert the original again (`jukebox-jax convert`)"  # the mend most errors give
DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"  # shipped in the package (`default.py`): never written
_DATA_FILE_BYTES = 16 << 20  # measured: saving 3.3 GB of random float32 held 0.18 GB more (2 GiB files: 3.1 GB)


# -- Saving -------------------------------------------------------------------------------


def save(path: Path, config: JukeboxConfig, params: Params, digests: Mapping[str, str] | None = None) -> None:
    """Writes the checkpoint of `config` and `params` to the folder `path`, replacing the one
    there atomically (module docstring). `digests`: the params' `integrity.tree_digests`, if
    the caller has them already. In a run of several processes every process calls it: each
    writes the shards it holds, process 0 the rest, and all return once the checkpoint is in
    place (or all raise)."""
    path = path.resolve()
    if path == DEFAULT_MODEL:
        raise CheckpointError(
            f"refusing to save over the default model that ships in the package ({path}): save elsewhere "
            "(a retrained default is copied there by hand: scripts/train_default.sh)"
        )
    check_params(abstract_params(config), params)  # what load would refuse is never written
    got, bad = _inspect(params, config, digests is None)
    if bad:
        raise CheckpointError(f"refusing to save {path}: bad weights:\n  " + "\n  ".join(bad))
    digests = got if digests is None else digests
    if jax.process_count() > 1:
        _save_together(path, config, params, digests)
        return
    _prepare(path, params)
    try:
        new = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.new-"))
        try:
            _write_params(new, params)
            _write_config(new, config, digests)
            _swap(new, path)
        finally:
            shutil.rmtree(new, ignore_errors=True)  # nothing there once swapped in
    except Exception as e:  # orbax tells a full disk as a ValueError
        if not (isinstance(e, OSError) or full_disk(e)):
            raise
        raise _unwritable(path, e) from e


def _save_together(path: Path, config: JukeboxConfig, params: Params, digests: Mapping[str, str]) -> None:
    """`save` in a run of several processes (a file system they share): process 0 prepares the
    new folder, named after the digests so that every process knows it, all write their shards
    into it (orbax), process 0 adds the config and swaps it in. A failure on process 0 is told
    to every process (`_agree`), so that none waits for the others forever."""
    first = jax.process_index() == 0
    tag = integrity.text_digest(json.dumps(dict(sorted(digests.items()))))[:8]
    new = path.with_name(f"{TEMP_PREFIX}{path.name}.new-{tag}")
    failure = None
    if first:
        try:
            _prepare(path, params)
            new.mkdir()
        except CheckpointError as e:
            failure = e
        except OSError as e:
            failure = _unwritable(path, e)
    _agree(failure, path, "preparing")
    try:
        _write_params(new, params)  # every process: orbax writes each one's shards, in step
        if first:
            _write_config(new, config, digests)
            _swap(new, path)
    except Exception as e:  # noqa: BLE001 -- any failure, raised below on every process, none left waiting
        failure = _unwritable(path, e)
        failure.__cause__ = e
    finally:
        if first:
            shutil.rmtree(new, ignore_errors=True)
    _agree(failure, path, "writing")


def _prepare(path: Path, params: Params) -> None:
    """Checks that `path` may be saved to (`check_target`), makes its parent, removes what
    killed saves of it left there and checks that `params` fit beside the old checkpoint."""
    check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(path)
        check_space(path.parent, checkpoint_nbytes(params), "the checkpoint")
    except OSError as e:
        raise _unwritable(path, e) from e


def _agree(failure: CheckpointError | None, path: Path, stage: str) -> None:
    """A barrier of every process that raises on all of them if any failed (its own error where
    it failed)."""
    from jax.experimental import multihost_utils

    failed = multihost_utils.process_allgather(np.int32(failure is not None))  # [processes]
    if failure is not None:
        raise failure
    if failed.any():
        where = ", ".join(map(str, np.flatnonzero(failed)))
        raise CheckpointError(f"saving {path} failed on process {where} while {stage}: see its error")


def _unwritable(path: Path, e: Exception) -> CheckpointError:
    return CheckpointError(f"cannot write the checkpoint {path} ({e}); choose a folder you can write to, with room")


def check_target(path: Path) -> None:
    """Raises `CheckpointError` unless `save` can write a checkpoint at `path`: a folder we can
    write in that is absent, empty or a checkpoint, and not a mount point, which the swap that
    replaces a checkpoint whole cannot rename (what a conversion checks before it starts)."""
    path = path.resolve()
    try:
        writable_ancestor(path.parent)
    except OSError as e:
        raise CheckpointError(f"cannot write the checkpoint {path} ({e.filename}: {e.strerror}); choose a folder you can write to") from e
    if os.path.ismount(path):
        raise CheckpointError(
            f"{path} is a mount point: a checkpoint is written beside its folder and renamed into place, which a mount "
            f"point cannot be; give a folder inside it, e.g. {path / 'model'}"
        )
    _recover(path)
    _refuse_foreign(path)


def _write_params(folder: Path, params: Params) -> None:
    """Writes the params in OCDBT data files of at most `_DATA_FILE_BYTES` (so in chunks of at
    most that): tensorstore holds each data file's compressed bytes until it is written, which
    with orbax's default (2 GiB files) held about a second copy of the weights."""
    import orbax.checkpoint as ocp

    with ocp.Checkpointer(ocp.PyTreeCheckpointHandler()) as ckptr:
        ckptr.save(folder / PARAMS, args=ocp.args.PyTreeSave(params, ocdbt_target_data_file_size=_DATA_FILE_BYTES))


def _write_config(folder: Path, config: JukeboxConfig, digests: Mapping[str, str]) -> None:
    os.chmod(folder, 0o755)  # mkdtemp makes it private
    write_text(folder / CONFIG, json.dumps(_metadata(config.to_dict(), digests), indent=1))


def _metadata(config: Mapping[str, Any], digests: Mapping[str, str]) -> dict[str, Any]:
    """What `config.json` holds: the format, the config and the checksums."""
    return {
        "format": FORMAT,
        "config": config,
        "checksums": {"config": _config_digest(config), "params": dict(digests)},
    }


def _config_digest(config: Mapping[str, Any]) -> str:
    return integrity.text_digest(json.dumps(config, sort_keys=True))


def _swap(new: Path, path: Path) -> None:
    """Renames the complete checkpoint `new` to `path`, the one there aside first."""
    if path.exists():
        os.rename(path, _aside(path))
        os.rename(new, path)
        shutil.rmtree(_aside(path), ignore_errors=True)  # the save is complete; the next removes what is left
    else:
        os.rename(new, path)


def _aside(path: Path) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{path.name}.old")


def _recover(path: Path) -> None:
    """Renames back the old checkpoint a save killed between its two renames put aside."""
    if not path.exists() and _aside(path).is_dir():
        try:
            os.rename(_aside(path), path)
        except OSError as e:
            raise CheckpointError(
                f"an interrupted save left the checkpoint {path} at {_aside(path)}, and it cannot be renamed back ({e}): rename it"
            ) from e


def _refuse_foreign(path: Path) -> None:
    """Raises unless `path` is absent, an empty folder or a jukebox-jax checkpoint (so that
    replacing it loses nothing else)."""
    if not path.exists():
        return
    if not path.is_dir():
        raise CheckpointError(
            f"refusing to save over {path}: it is a file, not a checkpoint folder; choose another path"
        )
    entries = {p.name for p in path.iterdir()}
    if not entries:
        return
    try:
        ours = json.loads((path / CONFIG).read_text()).get("format") in FORMATS
    except (OSError, ValueError, AttributeError, RecursionError):
        ours = False
    if not ours or entries - {CONFIG, PARAMS}:
        raise CheckpointError(
            f"refusing to save over {path}: it holds {sorted(entries)}, not only a jukebox-jax checkpoint "
            f"({CONFIG} and {PARAMS}/); choose another path or move those files"
        )


def _remove_leftovers(path: Path) -> None:
    """Deletes what killed saves of `path` left beside it (after `_recover`)."""
    leftover = re.compile(re.escape(f"{TEMP_PREFIX}{path.name}.") + r"(new-[a-z0-9_]{8}|old)")
    for p in path.parent.iterdir():
        if leftover.fullmatch(p.name):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


# -- Loading ------------------------------------------------------------------------------


def load(
    path: Path | str, *, verify: bool = True, mesh: Mesh | None = None, rules: sharding.Rules | None = None
) -> tuple[JukeboxConfig, Params, dict[str, str] | None]:
    """Reads what `save` wrote (or formats 1, 2); verifies format 3's checksums unless
    `verify` is false, checks every array against the config, refuses bad weights. Returns
    the config, the params and, when verified, their `integrity.tree_digests`. With a `mesh`,
    the params are restored into their `sharding.shardings(config, mesh, rules)`."""
    path, meta = _open(path, verify)
    config = _read_config(path / CONFIG, meta["config"])
    targets = None if mesh is None else sharding.shardings(config, mesh, rules)
    params = _read_params(path / PARAMS, config, meta["format"], targets)
    want = meta["checksums"]["params"] if meta["format"] == FORMAT and verify else None
    got, bad = _inspect(params, config, want is not None)
    digests = None if want is None else _verify_params(path / PARAMS, want, got)
    if bad:
        raise CheckpointError(f"{path / PARAMS}: bad weights ({REWRITE}):\n  " + "\n  ".join(bad))
    return config, params, digests


def digests(params: Params) -> dict[str, str]:
    """`integrity.tree_digests(params)`, also of arrays split over several processes (each
    gathered in turn: every process must call it)."""
    return _inspect(params, None, True)[0]


def _inspect(params: Params, config: JukeboxConfig | None, hash: bool) -> tuple[dict[str, str] | None, list[str]]:
    """(the params' digests if `hash`, else None; their `bad_weights` under `config`, [] without
    one). Arrays split over several processes are gathered one at a time, once for both (every
    process must call it)."""
    if _addressable(params):
        return (integrity.tree_digests(params) if hash else None), (bad_weights(params, config) if config else [])
    got, bad = {}, []
    for key, x in flatten(params).items():
        host = _host(x)
        if hash:
            got["/".join(key)] = integrity.array_digest(host)
        if config:
            bad += bad_weights(traverse_util.unflatten_dict({key: host}), config)
    return (got if hash else None), bad


def _addressable(params: Params) -> bool:
    return all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in jax.tree.leaves(params))


def _host(x: jax.Array) -> np.ndarray:
    """The whole of an array split over processes, on this host (a collective)."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def read_config(path: Path | str, *, verify: bool = True) -> JukeboxConfig:
    """The config of the checkpoint at `path`, verified against its checksum unless `verify`
    is false, without reading the weights (what a command checks its arguments against)."""
    path, meta = _open(path, verify)
    return _read_config(path / CONFIG, meta["config"])


def _open(path: Path | str, verify: bool) -> tuple[Path, dict[str, Any]]:
    """The checkpoint folder (an interrupted save recovered) and its `config.json`, the
    config verified unless `verify` is false."""
    path = Path(path).resolve()  # a str too
    _recover(path)
    if not path.is_dir():
        what = "a file" if path.exists() else "missing"
        raise CheckpointError(
            f"{path} is {what}, not a jukebox-jax checkpoint folder; pass the folder `Jukebox.save` or `jukebox-jax convert -o` wrote"
        )
    meta = _read_meta(path / CONFIG)
    if meta["format"] == FORMAT and verify:
        _verify_config(path / CONFIG, meta)
    elif meta["format"] != FORMAT:
        warnings.warn(
            f"{path}: format {meta['format']!r} has no checksums; loaded unverified ({REWRITE} to add them)",
            stacklevel=4,
        )
    return path, meta


def _read_meta(file: Path) -> dict[str, Any]:
    """`config.json`, checked to be of a format we read."""
    try:
        meta = json.loads(file.read_bytes().decode())
    except FileNotFoundError as e:
        inner = file.parent / "model" / file.name
        if inner.is_file():  # `jukebox-jax train --out` holds the run; its checkpoint is OUT/model
            raise CheckpointError(f"{file.parent} is a training run, not a checkpoint: give its model, {inner.parent}") from e
        run = file.parent.parent.parent
        if file.parent.parent.name == "checkpoints" and (run / "run.json").is_file():  # OUT/checkpoints/STEP
            raise CheckpointError(
                f"{file.parent} is a training state of the run {run}, not a model: give its model, {run / 'model'} "
                f"(the last saved step's; `--resume` the run to go on training)"
            ) from e
        raise CheckpointError(f"{file} is missing: not a jukebox-jax checkpoint, or a damaged one ({REWRITE})") from e
    except (OSError, ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{file} is not readable JSON ({e}); the checkpoint is damaged: {REWRITE}") from e
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt is None and isinstance(meta, dict) and meta.get("model_type") in ("jukebox", "jukebox_vqvae"):  # what convert reads
        raise CheckpointError(
            f"{file.parent} is a Hugging Face transformers model: convert it first (`jukebox-jax convert "
            f"{file.parent} -o OUT`, then give OUT)"
        )
    if fmt not in FORMATS or not isinstance(meta.get("config"), dict):
        raise CheckpointError(
            f"{file}: format {fmt!r}; this version reads {', '.join(map(repr, FORMATS))} "
            f"(a newer jukebox-jax wrote it, or it is not a jukebox-jax checkpoint, or it is damaged)"
        )
    if (fmt == FORMAT) != ("checksums" in meta):
        raise CheckpointError(
            f"{file}: format {fmt!r} with{'out' if fmt == FORMAT else ''} checksums: the file is damaged; {REWRITE}"
        )
    return meta


def _verify_config(file: Path, meta: dict[str, Any]) -> None:
    sums = meta["checksums"]
    if not (
        isinstance(sums, dict)
        and isinstance(sums.get("params"), dict)
        and sums.get("config") == _config_digest(meta["config"])
    ):
        raise CheckpointError(
            f"{file}: the config does not match its checksum: the file was edited or is damaged; {REWRITE}"
        )


def _read_config(file: Path, config: dict[str, Any]) -> JukeboxConfig:
    try:
        return JukeboxConfig.from_dict(config)
    except Exception as e:  # an unverified config may fail anywhere in its validation
        raise CheckpointError(f"{file}: the config cannot be read ({type(e).__name__}: {e}); {REWRITE}") from e


@contextlib.contextmanager
def _absl_quiet() -> Iterator[None]:
    """orbax's warnings (absl's logger) held back for the body."""
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


# What Python warns of orbax's per-shard reads when a read that gave up had made but not begun them.
_ORBAX_UNAWAITED = r"coroutine '_read_array_index_and_device_put' was never awaited"


def quiet_orbax_leftovers() -> None:
    """Drops, from now on in this process, what orbax leaves behind when a read of damaged
    files gives up (`orbax_reading` calls it): tensorstore's threads still finish the reads it
    had begun, whose callbacks find the read's asyncio loop closed, and the read's coroutines
    and tasks, never awaited, fail when collected. Python printed a traceback for each of those
    unraisables, asyncio logged "exception was never retrieved" for each task and warned of
    the reads never begun: thousands of lines after the one error, on a busy machine. Only
    those are dropped: "Event loop is closed", exceptions raised in orbax's files or by
    tensorstore, and the warning of orbax's unawaited shard reads. Idempotent."""
    warnings.filterwarnings("ignore", _ORBAX_UNAWAITED, RuntimeWarning)  # again if the filters were reset
    if getattr(sys.unraisablehook, "drops_orbax_leftovers", False):
        return
    hook = sys.unraisablehook

    def drop_orbax_leftovers(unraisable) -> None:
        if not _orbax_leftover(unraisable.exc_value):
            hook(unraisable)

    drop_orbax_leftovers.drops_orbax_leftovers = True
    sys.unraisablehook = drop_orbax_leftovers
    logging.getLogger("asyncio").addFilter(_not_orbax_leftover)


@contextlib.contextmanager
def orbax_reading() -> Iterator[None]:
    """`quiet_orbax_leftovers` while the body reads with orbax, and from then on if it raises;
    after a good read the process's hooks and filters are as they were. (Orbax gives up on some
    damage inside a call that then returns or raises: the leftovers begin before the body ends.)"""
    asyncio_log = logging.getLogger("asyncio")
    with contextlib.ExitStack() as after_a_good_read:  # restores each as it was
        after_a_good_read.enter_context(warnings.catch_warnings())
        after_a_good_read.callback(setattr, sys, "unraisablehook", sys.unraisablehook)
        after_a_good_read.callback(setattr, asyncio_log, "filters", list(asyncio_log.filters))
        quiet_orbax_leftovers()
        try:
            yield
        except BaseException:
            after_a_good_read.pop_all()  # a failed read's leftovers come later: the quiet stays
            raise


_STATUS = re.compile(
    r"(CANCELLED|UNKNOWN|INVALID_ARGUMENT|DEADLINE_EXCEEDED|NOT_FOUND|ALREADY_EXISTS|PERMISSION_DENIED|RESOURCE_EXHAUSTED"
    r"|FAILED_PRECONDITION|ABORTED|OUT_OF_RANGE|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS|UNAUTHENTICATED): "
)  # how tensorstore's errors begin: an absl status code


def _orbax_leftover(error: BaseException | None) -> bool:
    """Whether `error` is an "Event loop is closed", was raised in orbax's files, or is
    tensorstore's: one naming a `tensorstore_spec` (a task awaiting a tensorstore future fails
    in asyncio's frames alone), or a status set on a future by tensorstore's C++ (no Python
    traceback, its message an absl status: "FAILED_PRECONDITION: Error reading ...")."""
    if error is None:
        return False
    if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
        return True
    if isinstance(error, Exception) and ("tensorstore_spec" in str(error) or (error.__traceback__ is None and _STATUS.match(str(error)))):
        return True
    return any("orbax" in Path(frame.filename).parts for frame in traceback.extract_tb(error.__traceback__))


def _not_orbax_leftover(record: logging.LogRecord) -> bool:
    """False for asyncio's "... exception was never retrieved" of an orbax leftover."""
    return "exception was never retrieved" not in str(record.msg) or not _orbax_leftover(record.exc_info and record.exc_info[1])


def _read_params(folder: Path, config: JukeboxConfig, fmt: str, targets: Params | None = None) -> Params:
    """The orbax checkpoint in `folder`, in the canonical layout, checked against `config`;
    restored into the shardings `targets` (a tree of the params'), if given, else onto this
    process's first device (also a checkpoint saved from a mesh or from several processes)."""
    import orbax.checkpoint as ocp

    if not folder.is_dir():
        what = "is a file, not orbax's folder" if folder.exists() else "is missing"
        raise CheckpointError(f"{folder} {what}: the checkpoint is damaged; {REWRITE}")
    try:
        with ocp.StandardCheckpointer() as ckptr, orbax_reading():
            if fmt == FORMAT_V1:
                params = ckptr.restore(folder)  # another layout: read whole, converted below
            else:  # shapes checked first, then each array read into its shards
                with _absl_quiet():  # its warning for None: the error below says it, with the mend
                    metadata = ckptr.metadata(folder).item_metadata  # None: _METADATA or the index is unreadable
                if metadata is None:
                    raise CheckpointError(
                        f"{folder}: the arrays' metadata (_METADATA, the index in d/ and manifest.ocdbt) cannot be read; "
                        f"the checkpoint is damaged: {REWRITE}"
                    )
                saved = dict(metadata.tree)
                _check_fits(folder, config, saved)
                if targets is None:  # onto one device, whatever devices saved it
                    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
                    targets = jax.tree.map(lambda _: one, saved)
                restore = lambda m, s: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=s)
                params = ckptr.restore(folder, jax.tree.map(restore, saved, targets))
        if fmt == FORMAT_V1:
            params = _from_v1(config, params)
            _check_fits(folder, config, params)  # the other formats' are checked before reading
            if targets is not None:
                params = jax.device_put(params, targets)
    except CheckpointError:
        raise
    except Exception as e:  # orbax and tensorstore raise many types for damaged files
        raise CheckpointError(
            f"{folder}: the params cannot be read ({_innermost(e)}); the checkpoint is damaged: {REWRITE}"
        ) from e
    return params


def _innermost(e: BaseException) -> str:
    """The first line of `e`'s innermost cause, which names the file and what is wrong with
    it (orbax's own says which array it was reading), without tensorstore's spec."""
    while e.__cause__ is not None:
        e = e.__cause__
    first = (str(e).strip().splitlines() or [""])[0]
    for tail in (" [tensorstore_spec", ". See full TensorStore details"):
        first = first.split(tail)[0]
    return f"{type(e).__name__}: {first[:300]}"


def _check_fits(folder: Path, config: JukeboxConfig, params: Params) -> None:
    try:
        check_params(abstract_params(config), params)
    except ParamsError as e:
        raise CheckpointError(f"{folder}: {e}; the checkpoint is damaged: {REWRITE}") from e


def _verify_params(folder: Path, want: Mapping[str, str], got: Mapping[str, str]) -> dict[str, str]:
    """The params' digests `got`, once they are checked to be `want`."""
    differ = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
    if differ:
        raise CheckpointError(
            f"{folder}: checksum mismatch, {len(differ)} of {len(want)} arrays differ from {CONFIG} "
            f"(damaged data files; {REWRITE}):\n  " + "\n  ".join(differ)
        )
    return got


def bad_weights(params: Params, config: JukeboxConfig) -> list[str]:
    """The arrays of `params` that hold non-finite values, or are not of the dtype `config`
    stores them in (`abstract_params`: its `Precision`), described (paths `config` lacks are
    `check_params`'s to name)."""
    declared = flatten(abstract_params(config))
    bad = []
    for path, x in flatten(params).items():
        name, a, want = "/".join(path), np.asarray(x), declared[path].dtype if path in declared else None
        if want is not None and a.dtype != want:
            bad.append(f"{name}: {a.dtype}, where the config stores {want} (Jukebox.astype and quantize change both)")
        elif n := _non_finite(a):
            bad.append(f"{name}: {n} NaN or infinite values")
    return bad


def _non_finite(a: np.ndarray, block: int = 1 << 24) -> int:
    """How many values of `a` are NaN or infinite, counted a block at a time (a 5b prior's MLP
    stack would need a 6.6 GB boolean temporary at once)."""
    flat = a.reshape(-1)
    return sum(int(b.size - np.count_nonzero(np.isfinite(b))) for b in (flat[i : i + block] for i in range(0, flat.size, block)))


def _from_v1(config: JukeboxConfig, params: Params) -> Params:
    """Format-1 priors (`transformer/segment_{s}/layer_{j}`, stacked over each segment's
    repeats as `layer_groups` cut the pattern) -> the canonical layout."""
    from jukebox_jax.prior import layout

    def convert(tree, pattern):
        renamed = {
            name.replace("segment_", "segments_"): {
                layer.replace("layer_", "layers_"): sub for layer, sub in seg.items()
            }
            for name, seg in tree.items()
        }
        return layout.to_canonical(renamed, pattern)

    out = dict(params)
    for cfg in config.priors:
        out[f"prior_level_{cfg.level}"] = prior.prior.map_transformers(cfg, params[f"prior_level_{cfg.level}"], convert)
    return out
