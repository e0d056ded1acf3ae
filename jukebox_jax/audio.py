"""Audio helpers that need no files: a deterministic test signal for demos, notebooks and
tests. Audio is `[batch, time, 1]` float32 in [-1, 1] (mono), as `Jukebox.encode` takes it."""

from __future__ import annotations

import numpy as np


def test_signal(n: int, sample_rate: int, seed: int) -> np.ndarray:
    """`[1, n, 1]` float32: four sines (110-3300 Hz, drawn from `seed`) and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    x = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(110, 3300, 4)) / 4 + 0.02 * rng.standard_normal(n)
    return np.clip(x, -1, 1).astype(np.float32)[None, :, None]
