"""The training loop on a toy regression (the model-specific steps have their own tests):
checkpoints, bit-identical resume, metrics and the run folder's refusals."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import re
import shutil
import signal
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from damage import flip

from jukebox_jax.errors import CheckpointError, DivergedError, InputError
from jukebox_jax.train.loop import Run, RunConfig, TrainState, fit, interrupts_deferred, new_key

OPT = optax.adam(1e-2)
SPEC = {"task": "toy"}


def step(state: TrainState, batch):
    """One Adam step on `|x w - y|^2` plus a draw from the state's key (as dropout would)."""
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    noise = 1e-3 * jax.random.normal(sub, batch["y"].shape)

    def loss(p):
        return jnp.mean((batch["x"] @ p["w"] - batch["y"] - noise) ** 2)

    value, grads = jax.value_and_grad(loss)(state.params)
    updates, opt_state = OPT.update(grads, state.opt_state, state.params)
    new = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        opt_state=opt_state,
        key=jax.random.key_data(key),
    )
    return new, {"loss": value}


def batches(i: int):
    x = np.random.default_rng([7, i]).normal(size=(8, 3)).astype(np.float32)
    return {"x": x, "y": x @ np.float32([1, 2, 3])}


def fresh() -> TrainState:
    params = {"w": jnp.zeros(3)}
    return TrainState(jnp.zeros((), jnp.int32), params, OPT.init(params), None, new_key(0))


def train(out, steps: int, resume: bool = False, spec=SPEC) -> TrainState:
    run = Run(out, RunConfig(steps, save_every=2, eval_every=3))
    start = run.start(spec, resume)
    state = run.restore(fresh()) if start else fresh()
    evaluate = lambda s, b: {"loss": jnp.mean((b["x"] @ s.params["w"] - b["y"]) ** 2)}
    return fit(step, state, batches, run, evaluate=evaluate, eval_batches=lambda: iter([batches(1000), batches(1001)]))


def test_resume_is_bit_identical_and_metrics_follow(tmp_path):
    straight = train(tmp_path / "a", 7)
    train(tmp_path / "b", 3)  # stopped after 3 steps: its newest checkpoint is step 3 (the end)
    (tmp_path / "b" / "checkpoints" / "3").rename(
        tmp_path / "b" / "checkpoints" / "old"
    )  # a kill before step 3 was saved
    resumed = train(tmp_path / "b", 7, resume=True)  # from step 2
    np.testing.assert_array_equal(resumed.params["w"], straight.params["w"])
    np.testing.assert_array_equal(resumed.key, straight.key)
    assert int(resumed.step) == 7
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 8))  # step 3 logged once, after the resume
    assert [r["step"] for r in rows if "eval" in r] == [3, 6, 7]
    assert rows == [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert {p.name for p in (tmp_path / "b" / "checkpoints").iterdir()} == {"6", "7", "old"}  # the newest 2 kept


TRACED: list[float] = []


@dataclasses.dataclass(frozen=True)
class Scaled:
    """A task as `jukebox_jax.train.steps`' are: a frozen dataclass whose `step` is a method."""

    scale: float

    def step(self, state: TrainState, batch):
        TRACED.append(self.scale)  # once per trace
        new, metrics = step(state, batch)
        return new, {"loss": self.scale * metrics["loss"]}


class Mutable:
    """A task whose settings may change between runs: compared by identity, not by value."""

    def __init__(self, scale):
        self.scale = scale

    step = Scaled.step


@dataclasses.dataclass(frozen=True)
class Unhashable(Scaled):
    """A frozen task holding a list: it cannot be a static argument."""

    extra: list = dataclasses.field(default_factory=list)


def test_runs_of_equal_tasks_share_their_compiled_step(tmp_path):
    """A second run of an equal frozen task is not traced (nor compiled) again; another task's
    is, and logs its own loss. A mutable task is traced on every run (its settings may have
    changed since), and a frozen one holding a list trains too."""
    TRACED.clear()
    mutable = Mutable(1.0)

    def losses(task) -> list[float]:
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        run = Run(out, RunConfig(2, save_every=2))
        run.start(SPEC, False)
        fit(task.step, fresh(), batches, run)
        return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]

    one = losses(Scaled(1.0))
    assert losses(Scaled(1.0)) == one
    assert losses(Scaled(2.0)) == pytest.approx([2 * v for v in one], rel=1e-6)
    assert TRACED == [1.0, 2.0]
    assert losses(mutable) == one
    mutable.scale = 3.0
    assert losses(mutable) == pytest.approx([3 * v for v in one], rel=1e-6)
    assert losses(Unhashable(4.0)) == pytest.approx([4 * v for v in one], rel=1e-6)


def test_a_cut_metrics_line_is_dropped_on_resume(tmp_path):
    """A write cut short (a full disk, a kill mid-line) left half a line: the resume drops it
    with a warning, as it drops the lines past its checkpoint (it raised a traceback)."""
    straight = train(tmp_path / "a", 4)
    train(tmp_path / "b", 2)
    with open(tmp_path / "b" / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 3, "lo\xff')
    with pytest.warns(UserWarning, match=r"metrics.jsonl: 1 damaged line\(s\) dropped"):
        resumed = train(tmp_path / "b", 4, resume=True)
    np.testing.assert_array_equal(resumed.params["w"], straight.params["w"])
    rows = {run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()] for run in "ab"}
    assert [r for r in rows["b"] if "loss" in r] == [r for r in rows["a"] if "loss" in r]  # steps 1 to 4, once each


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [("run.json", "{", "cannot be read"), ("run.json", "[]", "is not what jukebox-jax writes there"),
     ("digests.json", '{"2": ', "cannot be read"), ("digests.json", "[1]", "is not what jukebox-jax writes there"),
     ("files.json", '{"2": ', "cannot be read")],
)  # fmt: skip
def test_a_damaged_run_record_is_named(tmp_path, name, text, why):
    train(tmp_path, 2)
    (tmp_path / name).write_text(text)
    with pytest.raises(CheckpointError, match=rf"{tmp_path / name} {why}.*; start the run again in another --out"):
        train(tmp_path, 4, resume=True)


def test_run_folder_refusals(tmp_path):
    train(tmp_path, 2)
    with pytest.raises(InputError, match=r"holds a training run already: pass --resume \(Run.start\(spec, resume=True\)\)"):
        train(tmp_path, 4)
    with pytest.raises(InputError, match=r'other settings \(task "toy" -> "other"\)'):  # a short value shown, old and new
        train(tmp_path, 4, resume=True, spec={"task": "other"})
    nested = {"task": json.dumps({"lr": 1, "loss": {"l2": 1.0, "linf": 0.02}})}
    train(tmp_path / "nested", 2, spec=nested)
    changed = {"task": json.dumps({"lr": 1, "loss": {"l2": 2.0, "linf": 0.02}}), "seed": 3}
    with pytest.raises(InputError, match=r"other settings \(seed \(none\) -> 3, task.loss.l2 1 -> 2\); resume with the same ones"):
        train(tmp_path / "nested", 4, resume=True, spec=changed)
    tables = {"task": "toy", "data": {"tables": "a287838bb07f12e6"}}  # a digest, short as it is, by name alone
    train(tmp_path / "digest", 2, spec=tables)
    with pytest.raises(InputError, match=r"other settings \(data.tables\); resume with the same ones"):
        train(tmp_path / "digest", 4, resume=True, spec={**tables, "data": {"tables": "f7f4f891788ef66d"}})
    before = (tmp_path / "run.json").read_text()
    with pytest.raises(InputError, match=r"is at step 2, past --steps 1: a run cannot go back.*give --steps 2 or more"):
        train(tmp_path, 1, resume=True)
    assert (tmp_path / "run.json").read_text() == before  # the run's record is left as it was
    # a resume where no run began (killed, or out of room, before run.json) starts it, as `sample` does
    np.testing.assert_array_equal(train(tmp_path / "new", 4, resume=True).params["w"], train(tmp_path / "new2", 4).params["w"])
    train(tmp_path / "lost", 2)
    (tmp_path / "lost" / "run.json").unlink()
    for resume in (False, True):  # a new run wrote over the old run's checkpoints
        with pytest.raises(InputError, match=r"lost holds checkpoints but no run.json \(removed\?\).*move .*checkpoints away"):
            train(tmp_path / "lost", 4, resume=resume)
    record = json.loads((tmp_path / "run.json").read_text())
    (tmp_path / "run.json").write_text(json.dumps({k: v for k, v in record.items() if k != "format"}))
    with pytest.raises(InputError, match=r"begun by another version of jukebox-jax \(run format 1, this one writes 4\)"):
        train(tmp_path, 4, resume=True)  # the settings it kept may not be those this version checks
    with pytest.raises(InputError, match="steps must be at least 1"):
        RunConfig(0)
    with pytest.raises(InputError, match="past 2147483647"):
        RunConfig(2**31)
    with pytest.raises(InputError, match=r"steps must be an int, got 2\.5 \(float\)"):  # a TypeError inside fit
        RunConfig(2.5)
    assert RunConfig(np.int64(3)).steps == 3 and type(RunConfig(np.int64(3)).steps) is int
    for seed in (-1, 2**32):  # jax.random.key kept the low 32 bits (-1 drew as 2**32 - 1, 2**32 + 5 as 5)
        with pytest.raises(InputError, match=rf"seed must be in 0..4294967295 \(jax.random.key keeps a seed's low 32 bits\), got {seed}"):
            RunConfig(1, seed=seed)
        with pytest.raises(InputError, match="seed must be in 0..4294967295"):
            new_key(seed)  # the steps' key, and so each task's `init`


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_diverged_step_stops_the_run_before_saving_it(tmp_path, bad):
    """Batch 2 holds a NaN or Inf target: step 3's loss is not finite and its update spreads
    NaN through the weights; the run stops there, logging and saving nothing of it."""

    def poisoned(i: int):
        b = batches(i)
        if i == 2:
            b["y"][0] = bad
        return b

    run = Run(tmp_path, RunConfig(6, save_every=2))
    run.start(SPEC, False)
    with pytest.raises(
        DivergedError,
        match=rf"^step 3: loss {bad}: training diverged, and stops here; {tmp_path} keeps its checkpoint of step 2\. "
        r"Train again with a lower --lr or a longer --warmup \(OptimConfig's lr, lr_warmup\)",
    ):
        fit(step, fresh(), poisoned, run)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"2"}
    assert np.isfinite(run.restore(fresh()).params["w"]).all()


def test_a_state_of_other_settings_is_refused_and_moves_no_checkpoint(tmp_path):
    """Restoring into the state of other settings (an optimizer with another state, from Python
    where nothing compares the task) moved every good checkpoint to damaged/ and blamed damage."""
    train(tmp_path, 4)
    other = optax.chain(optax.adam(1e-2), optax.ema(0.9))  # one more moment per weight
    template = fresh().replace(opt_state=other.init(fresh().params))
    run = Run(tmp_path, RunConfig(6, save_every=2))
    run.start(SPEC, True)
    with pytest.raises(InputError, match=r"checkpoint 4 of .* holds 6 arrays, not the \d+ of this run's state .* resume with those"):
        run.restore(template)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2", "4"] and not (tmp_path / "damaged").exists()
    assert int(run.restore(fresh()).step) == 4


def test_a_non_finite_held_out_loss_stops_the_run_before_saving(tmp_path):
    """Weights blown up but finite (`--lr 1e30`) trained on, giving NaN held-out losses, and
    were saved as the run's model; the run stops at that evaluation instead."""

    def blown(state: TrainState, batch):
        new, metrics = step(state, batch)
        return new.replace(params={"w": jnp.where(state.step == 3, 1e30 * new.params["w"], new.params["w"])}), metrics

    run = Run(tmp_path, RunConfig(6, save_every=2, eval_every=2))
    run.start(SPEC, False)
    evaluate = lambda s, b: {"loss": jnp.mean((b["x"] @ s.params["w"] - b["y"]) ** 2)}  # inf past float32
    with pytest.raises(DivergedError, match=rf"^step 4: its held-out loss is inf: .* {tmp_path} keeps its checkpoint of step 2\."):
        fit(blown, fresh(), batches, run, evaluate=evaluate, eval_batches=lambda: iter([batches(1000)]))
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"2"}


def test_an_update_to_nan_weights_is_not_saved(tmp_path):
    """A step whose loss is finite but whose update is not (the last step, say): the checkpoint
    it would write is refused, the one before kept."""

    def blown(state: TrainState, batch):
        new, metrics = step(state, batch)
        w = jnp.where(state.step == 3, new.params["w"] / 0.0, new.params["w"])  # the last step's update
        return new.replace(params={"w": w}), metrics

    run = Run(tmp_path, RunConfig(4, save_every=2))
    run.start(SPEC, False)
    with pytest.raises(DivergedError, match=rf"^step 4: its update made weights NaN or infinite: .* {tmp_path} keeps its checkpoint of step 2\."):
        fit(blown, fresh(), batches, run)
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"2"}


def test_a_full_disk_stops_the_run_before_a_checkpoint_and_resume_goes_on(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=10))
    with pytest.raises(OSError, match="not enough space: checkpoint 2 needs about") as e:
        train(tmp_path, 4)
    assert e.value.errno == errno.ENOSPC and not (tmp_path / "checkpoints" / "2").exists()
    monkeypatch.undo()
    np.testing.assert_array_equal(train(tmp_path, 4, resume=True).params["w"], train(tmp_path / "straight", 4).params["w"])


@pytest.mark.parametrize(
    "error, named, code",
    [  # orbax tells a failed write as tensorstore's ValueError
        ('RESOURCE_EXHAUSTED: Error writing "opt_state" in OCDBT database at local file', "no space left while writing checkpoint 4", errno.ENOSPC),
        (  # as tensorstore words it: the cause after the paths (a first line cut at 300 characters lost it)
            'OUT_OF_RANGE: Error writing "params.w/0" in OCDBT database at local file "' + "/very/long/run" * 30 + '/ocdbt.process_0/": '
            'Failed writing: "/d/60e8" [source locations=\'tensorstore/internal/os/file_util_posix.cc:285\'] [os_error_code=\'27\'] File too large',
            r"cannot write checkpoint 4: File too large: ",
            errno.EFBIG,
        ),
    ],
    ids=["disk full", "file too large"],
)  # fmt: skip
def test_a_checkpoint_that_cannot_be_written_is_named_and_resume_goes_on(tmp_path, monkeypatch, error, named, code):
    """A disk filled, or a file-size limit met (EFBIG: `ulimit -f`, a FAT disk's 4 GB), mid-write
    ended in tensorstore's traceback (the CLI showed it), its temporary folder left: an `OSError`
    naming the checkpoint instead, the folder removed, the checkpoint before kept."""
    import orbax.checkpoint as ocp

    save = ocp.CheckpointManager.save

    def fails_at_4(manager, step, *args, **kwargs):
        if step != 4:
            return save(manager, step, *args, **kwargs)
        (tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp-1").mkdir()
        raise ValueError(error)

    monkeypatch.setattr(ocp.CheckpointManager, "save", fails_at_4)
    with pytest.raises(OSError, match=named) as e:
        train(tmp_path, 6)
    assert e.value.errno == code and e.value.filename == str(tmp_path / "checkpoints")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2"]
    monkeypatch.undo()
    np.testing.assert_array_equal(train(tmp_path, 6, resume=True).params["w"], train(tmp_path / "straight", 6).params["w"])


@pytest.fixture
def ctrl_c():
    """Python's own SIGINT handler (KeyboardInterrupt), as in a terminal: pytest-xdist's workers ignore SIGINT."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_deferred_ctrl_c_goes_to_the_handler_there_was(ctrl_c):
    """An ignored SIGINT (a background job of a script) stays ignored (it stopped the run); a
    second Ctrl-C is not held (a save that hangs can be stopped)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    reached = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)  # held until the block ends
        reached.append("past the first")
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("past the second")
    assert reached == ["past the first"] and signal.getsignal(signal.SIGINT) is previous


def test_ctrl_c_during_a_checkpoint_waits_for_it(tmp_path, monkeypatch, ctrl_c):
    """Mid-save, orbax's threads swallowed Ctrl-C (the run trained to its end) or died in
    tracebacks leaving a temporary folder: it is raised once checkpoint 4 is whole."""
    import orbax.checkpoint as ocp

    save = ocp.CheckpointManager.save

    def interrupted_at_4(manager, step, *args, **kwargs):
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return save(manager, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", interrupted_at_4)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, 6)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2", "4"]
    monkeypatch.undo()
    np.testing.assert_array_equal(train(tmp_path, 6, resume=True).params["w"], train(tmp_path / "straight", 6).params["w"])


def flip_a_byte(folder) -> None:
    """Flips one byte in the middle of every array file of an orbax checkpoint folder."""
    for f in folder.rglob("*"):
        if f.is_file() and f.parent.name == "d":  # ocdbt's data files
            flip(f, 0.5)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_checkpoint_is_set_aside_and_the_one_before_serves(tmp_path, damage):
    """A flipped byte (restores, but differs from its digest) or a checkpoint whose arrays are
    gone (orbax fails): the resume warns, moves it to damaged/, resumes from the checkpoint
    before, and reaches the straight run's parameters bit for bit."""
    straight = train(tmp_path / "a", 7)
    train(tmp_path / "b", 4)  # checkpoints 2 and 4
    newest = tmp_path / "b" / "checkpoints" / "4"
    if damage == "flip":
        flip_a_byte(newest)
    else:
        for f in newest.rglob("*"):
            if f.is_file() and f.parent.name == "d":
                f.write_bytes(b"")
    with pytest.warns(UserWarning, match="checkpoint 4.*resuming from step 2") as caught:
        resumed = train(tmp_path / "b", 7, resume=True)
    # emptied files are found before orbax reads them (its threads printed tracebacks by the
    # hundred for a prior's state, and its message held tensorstore's spec of every array)
    warned = str(caught[0].message)
    if damage == "truncate":
        assert re.search(r"checkpoint 4's files are not as written \(default/(ocdbt.process_0/)?d/\w+: 0 bytes, written \d+", warned), warned
    assert "tensorstore_spec" not in warned and len(warned) < 700, warned
    np.testing.assert_array_equal(resumed.params["w"], straight.params["w"])
    assert [p.name.split(".")[0] for p in (tmp_path / "b" / "damaged").iterdir()] == ["4"]
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 8))


def test_a_checkpoint_orbax_cannot_read_is_named_briefly(tmp_path, monkeypatch):
    """A checkpoint damaged where files.json does not see it (a run before it was written):
    orbax's error to its first line, without tensorstore's spec of every array; the abandoned
    reads' late tracebacks are dropped from then on (`checkpoint.quiet_orbax_leftovers`)."""
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    monkeypatch.setattr(logging.getLogger("asyncio"), "filters", [])
    train(tmp_path, 4)
    (tmp_path / "files.json").unlink()
    for f in (tmp_path / "checkpoints" / "4").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.unlink()
    with pytest.warns(UserWarning, match=r"checkpoint 4 does not restore \(\w+: .*: moved to") as caught:
        train(tmp_path, 7, resume=True)
    assert "tensorstore_spec" not in str(caught[0].message) and len(str(caught[0].message)) < 700
    assert sys.unraisablehook.drops_orbax_leftovers and logging.getLogger("asyncio").filters


def test_no_whole_checkpoint_is_an_error_naming_the_run(tmp_path):
    train(tmp_path, 4)
    for step in (2, 4):
        flip_a_byte(tmp_path / "checkpoints" / str(step))
    with pytest.raises(CheckpointError, match=f"no checkpoint in {tmp_path / 'checkpoints'} restores: checkpoint 4"):
        train(tmp_path, 7, resume=True)


def test_fit_refuses_a_run_not_started_and_no_held_out_batches_before_step_one(tmp_path):
    """From Python: `fit` on a `Run` never started wrote checkpoints that every later start
    refused (no run.json); empty held-out batches failed only at the first evaluation."""
    run = Run(tmp_path / "a", RunConfig(4, save_every=2, eval_every=2))
    with pytest.raises(InputError, match=r"holds no run.json: call run.start\(spec, resume\) before fit"):
        fit(step, fresh(), batches, run)
    assert not (tmp_path / "a").exists()
    run.start(SPEC, False)
    drawn = []
    evaluate = lambda s, b: {"loss": jnp.sum(s.params["w"])}
    with pytest.raises(InputError, match=r"eval_batches\(\) yields no batch"):
        fit(step, fresh(), lambda i: drawn.append(i) or batches(i), run, evaluate=evaluate, eval_batches=lambda: iter([]))
    assert drawn == [] and not (tmp_path / "a" / "metrics.jsonl").exists()
    # half an evaluation, or one every 0 steps, went unevaluated without a word (a notebook's RunConfig(steps))
    held = lambda: iter([batches(1000)])
    never = Run(tmp_path / "b", RunConfig(4, save_every=2))
    never.start(SPEC, False)
    for r, kw, given in ((run, {"evaluate": evaluate}, "evaluate"), (run, {"eval_batches": held}, "eval_batches"), (never, {"evaluate": evaluate, "eval_batches": held}, "both")):
        with pytest.raises(InputError, match=rf"a held-out evaluation needs evaluate, eval_batches and RunConfig.eval_every > 0; given {given}, eval_every {r.config.eval_every}"):
            fit(step, fresh(), lambda i: drawn.append(i) or batches(i), r, **kw)
    assert drawn == []


def test_a_state_fit_consumed_is_refused(tmp_path):
    """`fit` donates the state it is given (the README says so): passing it again, as a notebook
    re-running its cell does, was JAX's "Array has been deleted" from inside the step."""
    run = Run(tmp_path / "a", RunConfig(2, save_every=2))
    run.start(SPEC, False)
    state = fresh()
    done = fit(step, state, batches, run)
    with pytest.raises(InputError, match=r"state was consumed by an earlier fit .*: pass the state fit returned"):
        fit(step, state, batches, run)
    assert int(done.step) == 2


def test_a_state_behind_the_runs_checkpoints_is_refused_and_they_stay_whole(tmp_path):
    """`run.start(..., resume=True)` with a new `task.init` state (not `run.restore`'s) trained
    the run again from step 0: orbax skipped the saves of steps it had, while the run's digests
    were written over with the new states', so the kept checkpoints were later set aside as
    damaged."""
    train(tmp_path / "run", 2)
    digests = (tmp_path / "run" / "digests.json").read_text()
    run = Run(tmp_path / "run", RunConfig(3, save_every=2))
    run.start(SPEC, resume=True)
    with pytest.raises(InputError, match=r"holds checkpoint 2, and this state is at step 0: continue the run from its checkpoint, state = run.restore"):
        fit(step, fresh(), batches, run)
    other = Run(tmp_path / "other", RunConfig(1))
    other.start(SPEC, resume=False)
    one = fit(step, fresh(), batches, other)  # a state at step 1
    with pytest.raises(InputError, match=r"checkpoint 1 not written: .* holds checkpoints up to step 2"):
        run.save(one)
    assert (tmp_path / "run" / "digests.json").read_text() == digests
    resumed = fit(step, run.restore(fresh()), batches, run)
    np.testing.assert_array_equal(resumed.params["w"], train(tmp_path / "straight", 3).params["w"])
