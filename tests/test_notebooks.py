"""Every notebook's code cells run top to bottom, so the notebooks stay true to the API, and
what each computes is checked: every notebook needs an entry in `CHECKS`. Each notebook runs
in a process of its own, as a user's kernel would (in a test worker that had compiled much,
XLA crashed compiling the notebook's prior pass once in CI; see `cli_process.py`):

    python tests/test_notebooks.py NOTEBOOK
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_process import cpu_env

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def check_quickstart(ns: dict) -> None:
    jb, vq, top = ns["jb"], ns["config"].vqvae, ns["top"]
    audio, codes, recon = np.asarray(ns["audio"]), ns["codes"], np.asarray(ns["recon"])
    t = 48 * vq.hop_lengths[-1]
    assert audio.shape == (1, t, 1) and audio.dtype == np.float32 and np.abs(audio).max() <= 1

    # Audio -> codes at every level -> audio, and the codes of the decoded audio.
    assert [np.shape(z) for z in codes] == [(1, t // hop) for hop in vq.hop_lengths]
    for z in codes:
        z = np.asarray(z)
        assert z.dtype == np.int32 and 0 <= z.min() and z.max() < vq.l_bins
    assert len(np.unique(np.asarray(codes[0]))) > 1  # a degenerate codebook would give one code
    assert recon.shape == audio.shape and np.isfinite(recon).all()
    assert [np.shape(z) for z in jb.encode(recon, start_level=2)] == [np.shape(codes[2])]
    for level in (0, 1):
        assert np.shape(jb.decode(codes[level:], start_level=level)) == audio.shape

    # Teacher-forced logits: the full shape, finite, and the loss the notebook prints is their
    # cross entropy against the tokens, in bits.
    logits, tokens = np.asarray(ns["logits"], np.float64), np.asarray(ns["tokens"])
    assert logits.shape == (1, top.n_ctx, top.l_bins) and np.isfinite(logits).all()
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    bits = -np.take_along_axis(log_probs, tokens[..., None], -1).mean() / np.log(2)
    np.testing.assert_allclose(float(ns["losses"]["gen_loss"]), bits, rtol=1e-5)

    # Captured layers: the residual stream after each, and attention probabilities over keys.
    captured, layers = ns["out"].captured, {0, top.transformer.depth - 1}
    assert set(captured.activations) == set(captured.attn_probs) == layers
    for layer in layers:
        assert captured.activations[layer].shape == (1, top.n_ctx, top.transformer.width)
        probs = np.asarray(captured.attn_probs[layer])
        assert (probs >= 0).all()
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ns["out"].logits), logits, rtol=1e-6, atol=1e-6)


CHECKS: dict[str, Callable[[dict], None]] = {"quickstart": check_quickstart}


def test_every_notebook_is_run_and_checked():
    assert NOTEBOOKS, "no notebooks found"
    assert {p.stem for p in NOTEBOOKS} == set(CHECKS)


def run_and_check(path: Path) -> None:
    """Runs the notebook's code cells in one namespace, then its `CHECKS` entry on it."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert cells
    namespace: dict = {}
    for i, cell in enumerate(cells):
        exec(compile("".join(cell["source"]), f"{path.name} code cell {i}", "exec"), namespace)
    CHECKS[path.stem](namespace)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    env = cpu_env()
    run = subprocess.run([sys.executable, __file__, str(path)], check=False, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, f"{path.name} failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"


if __name__ == "__main__":
    run_and_check(Path(sys.argv[1]))
