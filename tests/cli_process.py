"""`jukebox-jax` in a process of its own, as a user runs it: the tests that sample through the
CLI use it. (They moved here after XLA segfaulted while compiling a sampler in a test process
that had compiled much: the kernel's limit on memory maps, `conftest.release_compiled_programs`.)"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys


def cpu_env(devices: int = 1) -> dict[str, str]:
    """The environment for a process on the CPU with `devices` XLA devices, keeping the suite's
    other XLA flags (`conftest.py`)."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
    if devices > 1:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": " ".join(flags)}


def run_cli(command: str) -> None:
    """Runs `jukebox-jax COMMAND` on the CPU; raises CalledProcessError (with its output) if it fails."""
    argv = [sys.executable, "-m", "jukebox_jax.cli", *shlex.split(command)]
    subprocess.run(argv, check=True, capture_output=True, env=cpu_env())
