"""The training loop: one jitted step over explicit state, checkpoints, resume and metrics.

A run folder holds:

    run.json          what the run trains and how (`RunConfig` and the caller's `spec`);
                      `--resume` refuses a folder whose spec, or `RUN_FORMAT`, differs
    checkpoints/N/    the `TrainState` after N steps (orbax; written to a temporary folder and
                      renamed, so a kill leaves the previous checkpoints whole)
    digests.json      the SHA-256 of each checkpoint's arrays, written after it
    files.json        each checkpoint's files and their sizes, written after it
    damaged/N/        a checkpoint that did not restore or match its digest, moved aside
    metrics.jsonl     one JSON object per step (and per evaluation), appended as the run goes

Resuming restores the newest checkpoint that reads back whole (one that does not, or whose
arrays differ from its digest, is moved to `damaged/` with a warning, and the one before it
serves; one whose files lost bytes or went missing is moved before orbax reads it, which
would flood the terminal with tensorstore's errors) and cuts `metrics.jsonl` back to its step. Batch `i`
is a pure function of (seed, i) (`train/data.py`) and every random draw of a step comes from
the state's key, so a resumed run reaches bit-identical parameters (a test kills one).

The loop knows nothing of the model: a task gives `step(state, batch) -> (state, metrics)`
and `evaluate(state, batch) -> metrics`. Data parallelism is a sharding, not another step:
under a mesh the state is replicated and each batch split over `data`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import errno
import functools
import inspect
import json
import math
import os
import re
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from numbers import Integral
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jukebox_jax import checks, integrity
from jukebox_jax.checkpoint import orbax_reading
from jukebox_jax.errors import CheckpointError, DivergedError, InputError
from jukebox_jax.io import check_space, checkpoint_nbytes, full_disk, read_record, write_text

Batch = Mapping[str, np.ndarray]
Metrics = dict[str, jax.Array]

RUN = "run.json"
CHECKPOINTS = "checkpoints"
DIGESTS = "digests.json"
FILES = "files.json"
DAMAGED = "damaged"
METRICS = "metrics.jsonl"
MAX_STEPS = 2**31 - 1  # the optimizer counts its steps in int32
RUN_FORMAT = 4  # run.json's layout and what its spec holds; a run of another format is not resumed
# 3 (2026-12-06): the songs' fingerprints one per song, so a resume names the songs that changed;
# 4 (2026-12-06): songs held out by their names without suffix (`train.data.Folder.split`): a
# run of 3 held out others, so its resume would train on other songs


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes. `aux` is what the optimizer does not learn (the
    VQ-VAE's EMA codebooks; None for priors); `key` is a raw `[2]` uint32 PRNG key."""

    step: jax.Array  # [] int32: optimizer steps taken
    params: Any
    opt_state: optax.OptState
    aux: Any
    key: jax.Array  # [2] uint32


Step = Callable[[TrainState, Batch], tuple[TrainState, Metrics]]
Evaluate = Callable[[TrainState, Batch], Metrics]


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How long and how often: `steps` in all, a checkpoint every `save_every` steps (and at
    the end; the newest `keep` are kept), an evaluation over the held-out batches every
    `eval_every` steps (0: never). `seed` is recorded in `run.json`; the loop draws nothing
    from it: the caller gives it to the task's `init` and its batches (`batch(seed, i, ...)`)."""

    steps: int
    save_every: int = 500
    eval_every: int = 0
    keep: int = 2
    seed: int = 0

    def __post_init__(self):
        for field in dataclasses.fields(self):  # a float or a string failed later, inside `fit`
            value = getattr(self, field.name)
            if not isinstance(value, Integral) or isinstance(value, bool):
                raise InputError(f"{field.name} must be an int, got {value!r} ({type(value).__name__})")
            object.__setattr__(self, field.name, int(value))
        for name in ("steps", "save_every", "keep"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps > MAX_STEPS:
            raise InputError(f"steps {self.steps} is past {MAX_STEPS}, the most the optimizer's int32 count holds")
        if self.eval_every < 0:
            raise InputError(f"eval_every must be 0 (never) or positive, got {self.eval_every}")
        checks.seed(self.seed)


def jit_step(step: Step) -> Step:
    """`step` jitted with its state donated (the old state's buffers hold the new one)."""
    return _jit(step, donate_argnums=(0,))


def _jit(fn: Callable, donate_argnums: tuple[int, ...] = ()) -> Callable:
    """`fn` jitted. A method of a value-compared frozen dataclass (a task's `step`) is jitted
    once per method with the object as a static argument, so the runs of equal tasks in one
    process (a notebook's, the tests') share their compiled programs, kept with the tasks until
    `jax.clear_caches()`; any other callable (a mutable task's method) is jitted anew."""
    if inspect.ismethod(fn) and _by_value(fn.__self__):
        return functools.partial(_jit_method(fn.__func__, tuple(i + 1 for i in donate_argnums)), fn.__self__)
    return jax.jit(fn, donate_argnums=donate_argnums)


def _by_value(obj: object) -> bool:
    """Whether `obj` is a frozen dataclass compared by value that hashes (no list or array in it)."""
    params = getattr(type(obj), "__dataclass_params__", None)
    if params is None or not (params.frozen and params.eq):
        return False
    try:
        hash(obj)
    except TypeError:
        return False
    return True


@functools.cache
def _jit_method(function: Callable, donate_argnums: tuple[int, ...]) -> Callable:
    return jax.jit(function, static_argnums=0, donate_argnums=donate_argnums)


def place(state: TrainState, mesh: Mesh | None) -> TrainState:
    """The state replicated over `mesh` (data parallel), or as is without one."""
    return state if mesh is None else jax.device_put(state, NamedSharding(mesh, PartitionSpec()))


def place_batch(batch: Batch, mesh: Mesh | None) -> dict[str, jax.Array]:
    """A host batch on the devices, split over the mesh's `data` axis along its first axis."""
    if mesh is None:
        return {k: jnp.asarray(v) for k, v in batch.items()}
    n = mesh.shape.get("data", 1)
    for k, v in batch.items():
        if len(v) % n:
            raise InputError(f"the batch ({len(v)} {k}) must be a multiple of the mesh's data axis ({n})")
    return {k: jax.device_put(v, NamedSharding(mesh, PartitionSpec("data"))) for k, v in batch.items()}


class Run:
    """A run folder (module docstring). `start(spec, resume)` checks it against `spec` and
    returns the newest checkpoint's step; `restore(template)` the newest whole checkpoint."""

    def __init__(self, out: Path, config: RunConfig):
        self.out, self.config = Path(out), config
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"--out {self.out} is a file; give a folder for the run")

    @functools.cached_property
    def _manager(self):
        """Opened when first used, so a run refused by `start` leaves no folder behind."""
        return self._open()

    def _open(self):
        import orbax.checkpoint as ocp

        options = ocp.CheckpointManagerOptions(
            max_to_keep=self.config.keep, create=True, enable_async_checkpointing=False
        )
        return ocp.CheckpointManager((self.out / CHECKPOINTS).absolute(), options=options)

    def latest_step(self) -> int | None:
        """The newest checkpoint's step (None: none saved). Makes no folder."""
        return self._manager.latest_step() if (self.out / CHECKPOINTS).is_dir() else None

    def start(self, spec: Mapping[str, Any], resume: bool) -> int:
        """Writes `run.json` for a new run; for `resume`, checks it (`check_start`) and returns
        the newest checkpoint's step (0 if none). A resumed run's `run.json` is written anew, in
        this `RUN_FORMAT`."""
        check_start(self.out, spec, resume)
        record = {"format": RUN_FORMAT, "run": dataclasses.asdict(self.config), "spec": spec}
        path = self.out / RUN
        step = (self.latest_step() if resume else None) or 0
        if step > self.config.steps:
            raise InputError(
                f"{self.out} is at step {step}, past --steps {self.config.steps}: a run cannot go back (it keeps only "
                f"its newest checkpoints); give --steps {step} or more, or train the shorter run into another --out"
            )
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(record, indent=1))
        self._trim_metrics(step)
        return step

    def restore(self, template: TrainState) -> TrainState:
        """The newest checkpoint that restores whole into the shapes, dtypes and shardings of
        `template` and matches its digest; a damaged one is moved to `damaged/` (warning)."""
        import orbax.checkpoint as ocp

        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        digests, problems = self._record(DIGESTS), []
        sizes = self._record(FILES)
        for step in sorted(self._manager.all_steps(), reverse=True):
            if changed := _changed_files(self.out / CHECKPOINTS / str(step), sizes.get(str(step))):
                problems.append(f"checkpoint {step}'s files are not as written ({changed})")
                self._set_aside(step)
                continue
            try:
                with orbax_reading():  # a failed read's abandoned reads: no tracebacks, then or later
                    state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
            except Exception as e:  # noqa: BLE001 (a damaged folder fails inside orbax or tensorstore in many ways)
                self._check_fits(step, abstract)  # another state's checkpoint is not damaged: nothing is moved
                problems.append(f"checkpoint {step} does not restore ({type(e).__name__}: {_brief(e)})")
            else:
                want = digests.get(str(step))  # none if killed between the checkpoint and its digest
                if want is None or want == _digest(state):
                    break
                problems.append(f"checkpoint {step}'s arrays differ from the digest written with it")
            self._set_aside(step)
        else:
            raise CheckpointError(
                f"no checkpoint in {self.out / CHECKPOINTS} restores: {'; '.join(problems) or 'there are none'}; "
                f"start the run again in another --out"
            )
        if problems:
            warnings.warn(
                f"{'; '.join(problems)}: moved to {self.out / DAMAGED}; resuming from step {step}", stacklevel=2
            )
        self._trim_metrics(step)
        return state

    def _check_fits(self, step: int, abstract: Any) -> None:
        """Raises `InputError` if checkpoint `step`'s arrays, by its metadata, are not those of
        `abstract` in number, shapes and dtypes: the state it was made for was another (other
        task or optimizer settings), so it is not damaged. Unreadable metadata is damage."""
        try:
            saved = jax.tree.leaves(self._manager.item_metadata(step).tree)
        except Exception:  # noqa: BLE001 (as restoring)
            return
        arrays = lambda leaves: sorted((tuple(x.shape), str(x.dtype)) for x in leaves)
        if arrays(saved) != arrays(jax.tree.leaves(abstract)):
            raise InputError(
                f"checkpoint {step} of {self.out} holds {len(saved)} arrays, not the {len(jax.tree.leaves(abstract))} of "
                "this run's state (or not of its shapes): it was made with other task or optimizer settings (an EMA, "
                "the model's structure); resume with those the run began with"
            )

    def save(self, state: TrainState) -> None:
        import orbax.checkpoint as ocp

        step = int(state.step)
        check_space(self.out / CHECKPOINTS, checkpoint_nbytes(state), f"checkpoint {step}")
        try:
            saved = self._manager.save(step, args=ocp.args.StandardSave(state))
            self._manager.wait_until_finished()
        except Exception as e:  # orbax says a failed write as a ValueError (tensorstore's), its temporary folder left
            if not (full_disk(e) or isinstance(e, OSError) or "Error writing" in str(e)):
                raise
            for partial in (self.out / CHECKPOINTS).glob(f"{step}.orbax-checkpoint-tmp*"):
                shutil.rmtree(partial, ignore_errors=True)
            where = str(self.out / CHECKPOINTS)
            if full_disk(e):
                raise OSError(errno.ENOSPC, f"no space left while writing checkpoint {step}", where) from e
            m = re.search(r"os_error_code='(\d+)'", str(e))  # tensorstore's, after a line of paths
            code = e.errno if isinstance(e, OSError) and e.errno else int(m[1]) if m else errno.EIO
            raise OSError(code, f"cannot write checkpoint {step}: {os.strerror(code)}", where) from e  # e.g. EFBIG
        if not saved:  # orbax skips a step at or before its newest: the digests would no longer be that checkpoint's
            raise InputError(
                f"checkpoint {step} not written: {self.out / CHECKPOINTS} holds checkpoints up to step "
                f"{self._manager.latest_step()}; save a state past it (continue the run from run.restore)"
            )
        kept = {str(s) for s in self._manager.all_steps()}
        digests = {k: v for k, v in self._record(DIGESTS).items() if k in kept} | {str(step): _digest(state)}
        write_text(self.out / DIGESTS, json.dumps(digests, indent=1))
        sizes = {k: v for k, v in self._record(FILES).items() if k in kept}
        sizes[str(step)] = _file_sizes(self.out / CHECKPOINTS / str(step))
        write_text(self.out / FILES, json.dumps(sizes, indent=1))

    def _record(self, name: str) -> dict[str, Any]:
        """The per-checkpoint record `name` (DIGESTS, FILES); empty if not written yet."""
        return _run_record(self.out, name) if (self.out / name).is_file() else {}

    def _set_aside(self, step: int) -> None:
        """Moves checkpoint `step` to `damaged/` (kept for a post-mortem, out of orbax's way)."""
        self._manager.close()
        (self.out / DAMAGED).mkdir(exist_ok=True)
        (self.out / CHECKPOINTS / str(step)).rename(self.out / DAMAGED / f"{step}.{time.time_ns()}")
        self._manager = self._open()

    def log(self, record: Mapping[str, Any]) -> None:
        with open(self.out / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _trim_metrics(self, step: int) -> None:
        """Keeps the metrics of steps up to `step` (a resumed run logs the later ones again)."""
        path = self.out / METRICS
        if not path.is_file():
            return
        lines = path.read_text(errors="replace").splitlines()
        parsed = [(line, _metrics_record(line)) for line in lines if line.strip()]
        if damaged := sum(record is None for _, record in parsed):
            warnings.warn(f"{path}: {damaged} damaged line(s) dropped (a write cut short?)", stacklevel=3)
        kept = [line for line, record in parsed if record is not None and record["step"] <= step]
        write_text(path, "".join(line + "\n" for line in kept))


def check_start(out: Path, spec: Mapping[str, Any], resume: bool, *, partial: bool = False) -> None:
    """Refuses, writing nothing, what `Run.start` refuses: a new run over one, checkpoints
    without their run.json, a resume of a run another version of run.json began, or one whose `spec`
    differs from the one it began with (where `partial`, in `spec`'s keys only: a caller
    checks what it knows before it prepares the data, e.g. encodes songs into the run folder)."""
    path, checkpoints = Path(out) / RUN, Path(out) / CHECKPOINTS
    if not path.is_file() and checkpoints.is_dir() and any(checkpoints.iterdir()):  # a new run would write over them
        raise InputError(
            f"{out} holds checkpoints but no {RUN} (removed?): the run they belong to cannot be checked; move "
            f"{checkpoints} away, or train into another --out"
        )
    if not path.is_file():  # also for `resume`: killed (or out of room) before run.json, it starts, as `sample` does
        return
    if not resume:
        raise InputError(
            f"{out} holds a training run already: pass --resume (Run.start(spec, resume=True)) to continue it, or choose "
            "another --out"
        )
    record = _run_record(Path(out), RUN)
    if record.get("format", 1) != RUN_FORMAT:
        raise InputError(
            f"{out} holds a run begun by another version of jukebox-jax (run format {record.get('format', 1)}, this "
            f"one writes {RUN_FORMAT}): it cannot be resumed; train again into another --out (with --init its model "
            "to go on from its weights)"
        )
    new = json.loads(json.dumps(spec))
    old = {k: record["spec"].get(k) for k in new} if partial else record["spec"]
    if changed := _changed(old, new):
        named = [_named_change(*c) for c in changed]
        listed = ", ".join(named[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        songs = sum("songs" in c or "codes" in c for c, _, _ in changed)  # the data's digests (`train.data.Folder.fingerprint`)
        what = "songs" if songs == len(changed) else "settings and songs" if songs else "settings"
        fix = (
            "bring back the songs it began on, each with its audio, length and labels (or train into another --out)"
            if songs
            else "resume with the same ones"
        )
        raise InputError(f"{out} was started with other {what} ({listed}); {fix}")


def _run_record(out: Path, name: str) -> dict[str, Any]:
    """The JSON file `name` of the run folder `out` (written whole by `write_text`); damaged,
    a `CheckpointError` naming it (`run.json` needs its "spec", an object)."""
    path, kind, fix = out / name, "what jukebox-jax writes there", "start the run again in another --out"
    record = read_record(path, CheckpointError, kind, fix)
    if name == RUN and not isinstance(record.get("spec"), dict):
        raise CheckpointError(f"{path} is not {kind}; {fix}")
    return record


def _metrics_record(line: str) -> dict | None:
    """One line of `metrics.jsonl` (None if damaged: not a JSON object with an integer step)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None


def fit(
    step: Step,
    state: TrainState,
    batches: Callable[[int], Batch],
    run: Run,
    *,
    evaluate: Evaluate | None = None,
    eval_batches: Callable[[], Iterator[Batch]] | None = None,
    mesh: Mesh | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    on_save: Callable[[TrainState], None] | None = None,
) -> TrainState:
    """Runs `state` from its step to `run.config.steps`: `batches(i)` is batch i (pure in i),
    `step` is jitted here (a frozen task's `step` once for all equal tasks, so another run of
    the task on batches of the same shapes starts without compiling: `_jit`). Checkpoints and
    metrics go to `run`; `on_step(i, metrics)` is the caller's progress hook (a bar),
    `on_save(state)` follows each checkpoint (e.g. writes the model). With both `evaluate` and `eval_batches` (held-out batches), every
    `eval_every` steps and at the end the mean of `evaluate` over them is logged. Returns the
    final state (also checkpointed). `state` is consumed: the first step is donated its
    buffers, so use the state `fit` returns (`task.init` copies the params it is given).
    Where `step` is a task's (`train.steps`), its `check_batch` refuses a bad batch on the
    host before the step (inside jit, an id outside a table is read from its edge)."""
    cfg = run.config
    if checks.donated(state):
        raise InputError("state was consumed by an earlier fit (its buffers hold that run's steps): pass the state fit returned, or a new task.init(...)")
    if not (run.out / RUN).is_file():  # its checkpoints would be refused by every later start
        raise InputError(f"{run.out} holds no {RUN}: call run.start(spec, resume) before fit, which records the run")
    latest = run.latest_step()
    if latest is not None and int(state.step) < latest:  # it restarted the run, and wrote digests over the kept checkpoints'
        raise InputError(
            f"{run.out} holds checkpoint {latest}, and this state is at step {int(state.step)}: continue the run from "
            "its checkpoint, state = run.restore(task.init(...)), or train into another folder"
        )
    if (evaluate is None) != (eval_batches is None) or (evaluate is not None and not cfg.eval_every):
        given = "evaluate" if eval_batches is None else "eval_batches" if evaluate is None else "both"
        raise InputError(
            f"a held-out evaluation needs evaluate, eval_batches and RunConfig.eval_every > 0; given {given}, eval_every "
            f"{cfg.eval_every}: give all three, or neither function for none"
        )
    jitted = jit_step(step)
    jitted_eval = None if evaluate is None else _jit(evaluate)
    if jitted_eval is not None and int(state.step) < cfg.steps and next(iter(eval_batches()), None) is None:
        raise InputError("eval_batches() yields no batch: give held-out batches, or evaluate=None (or eval_every=0)")
    check = getattr(getattr(step, "__self__", None), "check_batch", lambda batch: None)

    def placed(batch: Batch) -> dict[str, jax.Array]:
        check(batch)
        return place_batch(batch, mesh)

    state = place(state, mesh)
    for i in range(int(state.step), cfg.steps):
        state, metrics = jitted(state, placed(batches(i)))
        record = {"step": i + 1, **{k: float(v) for k, v in metrics.items()}}
        bad = {k: record[k] for k in ("loss", "grad_norm") if k in record and not math.isfinite(record[k])}
        if bad:
            raise _diverged(run, i + 1, ", ".join(f"{k} {v}" for k, v in bad.items()))
        run.log(record)
        if jitted_eval is not None and ((i + 1) % cfg.eval_every == 0 or i + 1 == cfg.steps):
            held = mean_metrics(jitted_eval(state, placed(b)) for b in eval_batches())
            if not math.isfinite(held.get("loss", 0.0)):  # finite but huge weights: not a state to save
                raise _diverged(run, i + 1, f"its held-out loss is {held['loss']}")
            run.log({"step": i + 1, "eval": held})
        if (i + 1) % cfg.save_every == 0 or i + 1 == cfg.steps:
            if not _finite(state.params):
                raise _diverged(run, i + 1, "its update made weights NaN or infinite")
            with interrupts_deferred():
                run.save(state)
                if on_save is not None:
                    on_save(state)
        if on_step is not None:
            on_step(i + 1, record)
    return state


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C (SIGINT) held until the block ends, then handed to the handler there was
    (Python's raises `KeyboardInterrupt`; an ignored one stays ignored): mid-save, orbax's
    threads swallowed it (the run trained on) or died in tracebacks, leaving a temporary
    checkpoint folder. A second Ctrl-C goes to that handler at once (a write that hangs)."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
        yield  # signals reach the main thread only; None: a handler not set from Python, not ours to move
        return
    caught = []

    def defer(signum, frame):
        caught.append((signum, frame))
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, defer)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if callable(previous):
            previous(*caught[0])
        else:  # SIG_DFL: the process would have ended
            raise KeyboardInterrupt


def _diverged(run: Run, step: int, what: str) -> DivergedError:
    """The error that stops a run at `step`, whose loss, gradient or update (`what`) is NaN or
    infinite: such an update spreads NaN through the weights and the optimizer's moments, so
    every later step would be lost too (the original trains on; we stop before logging or
    saving it)."""
    newest = run.latest_step()
    if newest:
        kept = f"{run.out} keeps its checkpoint of step {newest}"
        again = "into a new --out (with --init this run's model, to go on from its saved weights)"
    else:
        kept, again = f"{run.out} holds no checkpoint yet", "into a new --out"
    return DivergedError(
        f"step {step}: {what}: training diverged, and stops here; {kept}. Train again with a lower --lr or a "
        f"longer --warmup (OptimConfig's lr, lr_warmup), {again}; from the first steps, it may be the batches instead (codes or label ids "
        "outside the model's tables)"
    )


def _finite(params: Any) -> bool:
    return bool(jax.tree.reduce(lambda ok, x: ok & jnp.isfinite(x).all(), params, jnp.bool_(True)))


def _changed(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """`(dotted path, old, new)` where two JSON values differ; a string that holds a JSON
    object (a task's config) is compared as that object, so the message names the field."""
    old, new = _as_object(old), _as_object(new)
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(old.keys() | new.keys())
        return [c for k in keys for c in _changed(old.get(k), new.get(k), f"{path}.{k}".lstrip("."))]
    return [] if old == new else [(path, old, new)]


_DIGEST = re.compile(r"[0-9a-f]{16,}")  # a song's or a table's (`Folder.fingerprint`): a name says more


def _named_change(path: str, old: Any, new: Any) -> str:
    """A changed field as a message names it: a song by its file ("songs in --data: songs/x.flac",
    `Folder.fingerprint`), a short value with its old and new ("lr 0.001 -> 0.0003"); digests
    and tables by name alone."""
    if ".songs." in path:
        return path.replace(".songs.", ": ", 1)
    short = all(
        isinstance(v, int | float | bool) or v is None or (isinstance(v, str) and len(v) <= 24 and not _DIGEST.fullmatch(v))
        for v in (old, new)
    )
    return f"{path} {_value(old)} -> {_value(new)}" if short else path


def _value(value: Any) -> str:
    return "(none)" if value is None else f"{value:.6g}" if isinstance(value, float) else json.dumps(value)


def _as_object(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("{"):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def _brief(e: BaseException, most: int = 400) -> str:
    """`e`'s message to its first line, without tensorstore's spec (thousands of characters
    per array), at most `most` characters."""
    text = str(e).split("\n", 1)[0].split(" [tensorstore_spec", 1)[0]
    return text if len(text) <= most else text[: most - 3] + "..."


def _file_sizes(folder: Path) -> dict[str, int]:
    """`{path relative to folder: size in bytes}` of every file under `folder`."""
    return {str(f.relative_to(folder)): f.stat().st_size for f in sorted(folder.rglob("*")) if f.is_file()}


def _changed_files(folder: Path, written: dict[str, int] | None) -> str:
    """What is missing from, or of another size in, checkpoint `folder` than `written` records
    ("": nothing, or nothing recorded)."""
    if not isinstance(written, dict):
        return ""
    now = _file_sizes(folder)
    changed = [
        f"{name}: {now[name]} bytes, written {size}" if name in now else f"{name} missing"
        for name, size in written.items()
        if now.get(name) != size
    ]
    return "; ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")


def _digest(state: TrainState) -> str:
    """The digest of a state's arrays (a checkpoint's, to check it restores as written)."""
    return integrity.leaves_digest(jax.device_get(jax.tree.leaves(state)))


def mean_metrics(per_batch: Iterator[Metrics]) -> dict[str, float]:
    """The mean of each metric over batches (equal-sized batches: the mean over windows)."""
    rows = [{k: float(v) for k, v in m.items()} for m in per_batch]
    if not rows:
        raise InputError("no held-out batches to evaluate on")
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


class KeyUse(enum.IntEnum):
    """The independent key streams a run draws from its seed: `run_key(seed, use)`. Each use
    has its own: `fold_in(k, i)` equals `split(k)[i]`, so two uses splitting or folding one
    key would draw the same numbers (the first step's codebook restarts would redraw the
    initial codebook)."""

    INIT = 0  # new parameters, and a fine-tuned prior's new label rows
    CODEBOOKS = 1  # the VQ-VAE's initial codebooks
    STEPS = 2  # the steps' draws (dropout, codebook restarts): `TrainState.key`, split every step


def run_key(seed: int, use: KeyUse) -> jax.Array:
    """The typed key of `use`'s stream: `fold_in(key(seed), use)`."""
    return jax.random.fold_in(jax.random.key(checks.seed(seed)), use)


def new_key(seed: int) -> jax.Array:
    """The raw `[2]` uint32 key a `TrainState` starts with (raw, so orbax saves it as an array)."""
    return jax.random.key_data(run_key(seed, KeyUse.STEPS))
