"""`jukebox-jax` in a process of its own, as a user runs it: the tests that sample through the
CLI use it. In a test process that had already compiled and trained much, XLA crashed (segfault)
while compiling or caching a sampler in three CI runs, never alone; the crashed xdist worker
then failed the run."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys


def run_cli(command: str) -> None:
    """Runs `jukebox-jax COMMAND` on the CPU; raises CalledProcessError (with its output) if it fails."""
    argv = [sys.executable, "-m", "jukebox_jax.cli", *shlex.split(command)]
    subprocess.run(argv, check=True, capture_output=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
