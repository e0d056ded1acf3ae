"""Shared test helpers: the original-code fixtures in `tests/fixtures/openai`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests compare float32 numbers; keep XLA on CPU deterministic and quiet.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# No persistent compilation cache: in CI, reading an entry another xdist worker had written
# segfaulted inside jax (compilation_cache.get_executable_and_time), and the crashed worker then
# left xdist hanging past CI's limit. Each process compiles for itself.

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "openai"  # see tests/fixtures/README.md


@pytest.fixture(scope="session")
def fixtures() -> Path:
    if not (FIXTURES / "vqvae.pth.tar").is_file():
        pytest.fail(f"the original-code fixtures are missing from {FIXTURES} (they are part of the repository)")
    return FIXTURES
