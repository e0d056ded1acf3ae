"""Shared test helpers: the original-code fixtures in `tests/fixtures/openai`."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

# Tests compare float32 numbers; keep XLA on CPU deterministic and quiet.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# The suite is compile-bound: XLA's CPU backend at LLVM optimisation level 0 compiles a third
# faster. It runs the same float32 operations, rounded differently in the last bits only (the
# prior fixtures' logits move by 4e-7 of their largest, far inside every tolerance here); users
# run the default level. Processes the tests start inherit it (`cli_process.cpu_env`).
FAST_COMPILE = "--xla_backend_optimization_level=0"
if FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()

# No persistent compilation cache: in CI, reading an entry another xdist worker had written
# segfaulted inside jax (compilation_cache.get_executable_and_time), most likely the map limit
# below (loading a program maps its code as compiling does). Each process compiles for itself.


@pytest.fixture(scope="module", autouse=True)
def release_compiled_programs():
    """Frees every compiled program after each test file. XLA's CPU backend maps about 80
    memory regions per program it compiles; a test worker keeping all of them reached 48k of
    the kernel's limit of 65530 (`vm.max_map_count`), past which the next compile segfaults
    (CI, 2026-12-05: the crashed xdist worker failed the run; reproduced by lowering the
    limit). Freed after each file, a worker peaks at 23k (test_sample.py)."""
    yield
    import jax  # imported by every test file by now; here, after conftest has set the flags

    jax.clear_caches()
    gc.collect()


# The files that take a minute or more each on the CI machines, longest first, run before the
# rest: xdist hands out whole files in collection order, so the workers end together instead of
# one finishing a long file alone. The rest keep pytest's order.
LONGEST_FIRST = (
    "test_cache.py",
    "test_sample.py",
    "test_train_cli.py",
    "test_sharding.py",
    "test_attention.py",
    "test_precision.py",
    "test_default_model.py",
    "test_cli.py",
    "test_multihost.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's tests keep their order


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "openai"  # see tests/fixtures/README.md


@pytest.fixture(scope="session")
def fixtures() -> Path:
    if not (FIXTURES / "vqvae.pth.tar").is_file():
        pytest.fail(f"the original-code fixtures are missing from {FIXTURES} (they are part of the repository)")
    return FIXTURES
