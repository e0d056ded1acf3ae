"""The default model that ships inside the package: the `small` structure (`config.py`)
trained on the synthetic songs of `jukebox-jax data synth` (4 artists, 3 genres, instrumental;
the VQ-VAE on songs in every key, the priors on the same songs in C major, so its songs are in
C major) by `scripts/train_default.sh`, on a 2-core CPU; how, and what it scores, in
benchmarks/RESULTS.md ("The default model"). `jukebox-jax sample` uses it when no `--model` is
given. Its label tables are its own: `Jukebox.config.prior(2).labels.artists` / `.genres`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jukebox_jax import checkpoint
from jukebox_jax.errors import CheckpointError
from jukebox_jax.jukebox import Jukebox

PATH = checkpoint.DEFAULT_MODEL
REPAIR = "reinstall jukebox-jax (in a clone: `git checkout jukebox_jax/default_model`), or retrain it (scripts/train_default.sh)"


def is_default(folder: str | os.PathLike) -> bool:
    """Whether `folder` is the default model's checkpoint folder."""
    return Path(folder).resolve() == PATH


@contextlib.contextmanager
def reading(folder: str | os.PathLike) -> Iterator[None]:
    """Turns a `CheckpointError` raised reading `folder`, if it is the default model, into one
    that says the installation is broken and how to mend it (in place of the checkpoint's own
    mend, which would have the user save or convert it)."""
    try:
        yield
    except CheckpointError as e:
        if not is_default(folder):
            raise
        problem = str(e)
        mend = "" if checkpoint.REWRITE in problem else f"; {REPAIR}"
        problem = problem.replace(checkpoint.REWRITE, REPAIR)
        raise CheckpointError(f"the default model that ships in the package is missing or damaged: {problem}{mend}") from e


def path() -> Path:
    """The default model's checkpoint folder; an error if this installation lacks it."""
    if not (PATH / "config.json").is_file():
        raise CheckpointError(f"the default model is missing from {PATH}: {REPAIR}")
    return PATH


def load(**kwargs: Any) -> Jukebox:
    """`Jukebox.load` of the default model (`kwargs`: `dtype`, `mesh`, ...)."""
    folder = path()
    with reading(folder):
        return Jukebox.load(folder, **kwargs)
