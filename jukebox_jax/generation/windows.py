"""The original's windowing rules (`jukebox/sample.py`, `utils/sample_utils.py`), as pure
host-side functions over plain ints and numpy arrays. The labels row of a window is in
`jukebox_jax.labels`."""

from __future__ import annotations

import numpy as np

from jukebox_jax.config import PriorConfig
from jukebox_jax.errors import InputError


def get_starts(total_length: int, n_ctx: int, hop_length: int) -> list[int]:
    """Window starts covering `total_length` tokens, `hop_length` apart; the last window is
    moved back to end exactly at `total_length` (original `get_starts`)."""
    starts = []
    for start in range(0, total_length - n_ctx + hop_length, hop_length):
        starts.append(total_length - n_ctx if start + n_ctx >= total_length else start)
    return starts


def level_windows(cfg: PriorConfig, total_tokens: int, hop_fraction: float) -> list[tuple[int, int]]:
    """`(start, n_tokens)` of each window that brings the prior `cfg`'s level to `total_tokens`
    codes: whole contexts `hop_fraction * n_ctx` apart (`get_starts`); shorter than one context,
    one partial window ending at `total_tokens`."""
    if total_tokens < cfg.n_ctx:
        return [(0, total_tokens)]
    return [(start, cfg.n_ctx) for start in get_starts(total_tokens, cfg.n_ctx, int(hop_fraction * cfg.n_ctx))]


def upper_codes_of_window(cfg: PriorConfig, upper: np.ndarray, start: int) -> np.ndarray:
    """The codes of the level above that condition the window at `start` (original
    `get_z_conds`): `upper [b, tokens of the level above]` -> `[b, n_ctx // cond_downsample]`."""
    down = cfg.cond_downsample
    if start % down:
        raise ValueError(f"window start {start} is not a multiple of the upsampling factor {down}")
    z = upper[:, start // down : (start + cfg.n_ctx) // down]
    if z.shape[1] != cfg.n_ctx // down:
        raise InputError(
            f"the level-{cfg.level + 1} codes end at {upper.shape[1]} tokens; the window at {start} needs "
            f"{(start + cfg.n_ctx) // down} (a window reads the level above over all its {cfg.n_ctx} tokens, even the "
            "last, partial one): sample the level above further first"
        )
    return z
