"""Shared test helpers: the original-code fixtures in `tests/fixtures/openai`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import jax

# Tests compare float32 numbers; keep XLA on CPU deterministic and quiet.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# Compiling, not computing, dominates the suite. XLA's persistent cache lets the two xdist
# workers (and later runs on the same machine) reuse each other's executables; its keys hold
# the program, the flags and the jax version, so an entry is never reused for other code.
jax.config.update("jax_compilation_cache_dir", str(Path(__file__).resolve().parents[1] / ".xla_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "openai"  # see tests/fixtures/README.md


@pytest.fixture(scope="session")
def fixtures() -> Path:
    if not (FIXTURES / "vqvae.pth.tar").is_file():
        pytest.fail(f"the original-code fixtures are missing from {FIXTURES} (they are part of the repository)")
    return FIXTURES
