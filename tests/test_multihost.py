"""Several hosts, simulated: 2 processes on this machine, 2 CPU devices each, joined by
`jax.distributed` with CPU collectives (gloo), load one checkpoint into one mesh over all 4
devices, sample together and give the single-process greedy tokens; a sampling job in that
run is written by process 0 alone, and the model split over both saves to the same checkpoint
(`multihost_worker.py`); `jukebox-jax sample --distributed` in two processes runs one job."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
from cli_process import cpu_env, run_cli

from jukebox_jax import Jukebox, JukeboxConfig, preset
from jukebox_jax.generation import LevelSettings, SampleRequest, run_job
from jukebox_jax.io import TEMP_PREFIX
from jukebox_jax.sampling import Greedy
from jukebox_jax.tokenizer import song_labels

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "multihost_worker.py"
BATCH, N_TOKENS = 4, 10  # as the worker's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_together(argvs: list[list[str]], env: dict[str, str]) -> tuple[list[str], str]:
    """Runs `python ARGV` for each of `argvs` at once (the processes of one run) and waits for
    all: (each one's stdout, every one's exit status and output tails to report); asserts each
    exits 0."""
    procs = [
        subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for argv in argvs
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=240))
    finally:
        for p in procs:
            p.kill()
    logs = "\n".join(f"--- process {i} (exit {p.returncode}):\n{out[-3000:]}\n{err[-5000:]}" for i, (p, (out, err)) in enumerate(zip(procs, outs)))
    assert all(p.returncode == 0 for p in procs), logs
    return [out for out, _ in outs], logs


def test_two_processes_sample_together_as_one(tmp_path):
    """Greedy tokens of a batch of 4 (tiny_5b at init scale 1, whose greedy margins exceed
    any float32 reordering, see sharded_checks.py) on meshes model=4 (each process holds half
    of each split weight) and data=2,model=2, and a one-window job, equal the single-process
    ones; only process 0 writes the job's folder; the model saved from the two processes, each
    holding half of each split weight, loads as the one saved from one; a save that process 0
    refuses (onto a file) raises on both, neither waiting for the other."""
    cfg = preset("tiny_5b")
    cfg = dataclasses.replace(cfg, transformer=dataclasses.replace(cfg.transformer, init_scale=1.0))
    jb = Jukebox.init(JukeboxConfig(priors=(cfg,)), jax.random.key(0))
    jb.save(tmp_path / "ckpt")
    labels = jb.labels(2, total_seconds=30.0, n_samples=BATCH)
    labels[:, 3] = np.arange(BATCH)
    want = np.asarray(jb.sample(2, jax.random.key(1), labels, N_TOKENS, top_k=1))
    request = SampleRequest((2,), N_TOKENS * cfg.raw_to_tokens, 0, {2: (song_labels(cfg, 30 * 44100, 1),) * BATCH}, {2: LevelSettings(Greedy())})
    want_job = run_job(jb, tmp_path / "single", request, [np.zeros((BATCH, 0), np.int64)] * 3)[2]

    (tmp_path / "taken").write_text("mine")
    port = free_port()
    env = {**cpu_env(2), "PYTHONPATH": str(ROOT)}
    outs, logs = run_together(
        [[str(WORKER), str(i), str(port), str(tmp_path / "ckpt"), str(tmp_path / f"job_{i}"), str(tmp_path / "saved")] for i in range(2)],
        env,
    )
    results = [json.loads(out.strip().splitlines()[-1]) for out in outs]
    for r in results:
        assert (r["devices"], r["local"]) == (4, 2), logs
        assert r["held"] == {"model=4": 0.5, "data=2,model=2": 1.0}, logs  # model=4 spans both processes
        for spec, tokens in r["tokens"].items():
            np.testing.assert_array_equal(tokens, want, err_msg=f"{spec}\n{logs}")
        np.testing.assert_array_equal(r["job"], want_job, err_msg=logs)
    assert "refusing to save over" in results[0]["refused"] and "it is a file" in results[0]["refused"], logs
    assert "failed on process 0 while preparing" in results[1]["refused"], logs
    assert (tmp_path / "taken").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "job_0").iterdir()) == ["codes.npz", "job.json"]
    assert not (tmp_path / "job_1").exists()
    saved = np.load(tmp_path / "job_0" / "codes.npz")
    np.testing.assert_array_equal(saved["level_2"], want_job)
    again = Jukebox.load(tmp_path / "saved")  # its checksums verified
    assert again.config == jb.config and again.fingerprint() == jb.fingerprint()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)) == []  # nothing left beside it


def test_the_cli_samples_over_two_processes(tmp_path):
    """`jukebox-jax sample --distributed` started in 2 processes of one CPU device each, over
    `--mesh data=2`: each joins the run, process 0 alone writes the job, and its codes are one
    process's with `--max-batch-size 1` (each process draws one sample, as a batch of one
    does: README, "sample_levels")."""
    common = "sample --model tiny_5b --levels 2 --seconds 0.2 --n-samples 2 --seed 3"
    run_cli(f"{common} --max-batch-size 1 --out {tmp_path / 'single'}")
    port = free_port()
    distributed = ["--distributed", "--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id"]
    outs, logs = run_together(
        [["-m", "jukebox_jax.cli", *common.split(), "--out", str(tmp_path / "job"), "--mesh", "data=2", *distributed, str(i)] for i in range(2)],
        cpu_env(),
    )
    for out in outs:
        assert f"--distributed: joining the run via localhost:{port}" in out and "mesh: {'data': 2, 'model': 1} over 2 devices" in out, logs
    np.testing.assert_array_equal(np.load(tmp_path / "job" / "codes.npz")["level_2"], np.load(tmp_path / "single" / "codes.npz")["level_2"])
    assert sorted(p.name for p in (tmp_path / "job").iterdir()) == ["codes.npz", "job.json", "level_2"]
