"""The default model that ships inside the package: the `small` structure (`config.py`)
trained on the synthetic songs of `jukebox-jax data synth` (4 artists, 3 genres, instrumental)
by `scripts/train_default.sh`, on a 2-core CPU; how, and what it scores, in
benchmarks/RESULTS.md ("The default model"). `jukebox-jax sample` uses it when no `--model` is
given. Its label tables are its own: `Jukebox.config.prior(2).labels.artists` / `.genres`.
"""

from __future__ import annotations

from pathlib import Path

from jukebox_jax.errors import CheckpointError
from jukebox_jax.jukebox import Jukebox

PATH = Path(__file__).resolve().parent / "default_model"


def path() -> Path:
    """The default model's checkpoint folder; an error if this installation lacks it."""
    if not (PATH / "config.json").is_file():
        raise CheckpointError(f"the default model is missing from {PATH}: reinstall jukebox-jax, or retrain it (scripts/train_default.sh)")
    return PATH


def load(**kwargs) -> Jukebox:
    """`Jukebox.load` of the default model (`kwargs`: `dtype`, `mesh`, ...)."""
    return Jukebox.load(path(), **kwargs)
