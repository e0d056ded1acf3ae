"""Shared test helpers: paths to the shared fixtures, tiny PyTorch reference models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests compare float32 numbers; keep XLA on CPU deterministic and quiet.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "openai"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"the openai fixtures are not at {FIXTURES}")
    return FIXTURES
