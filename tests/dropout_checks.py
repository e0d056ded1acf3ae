"""Dropout as it runs: every `nn.Dropout` call of a model recorded with its input and output,
and checked to drop its rate's share and scale the rest by 1 / (1 - rate)."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import numpy as np


def dropout_calls(run: Callable[[], object]) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """`(rate, input, output)` of each dropout call while `run()` applies a model eagerly (not
    under jit or scan: the values are read)."""
    calls = []

    def record(call, args, kwargs, context):
        out = call(*args, **kwargs)
        if isinstance(context.module, nn.Dropout):
            calls.append((context.module.rate, np.asarray(args[0], np.float64), np.asarray(out, np.float64)))
        return out

    with nn.intercept_methods(record):
        run()
    return calls


def assert_drops_at_its_rate(rate: float, inputs: np.ndarray, out: np.ndarray) -> None:
    """One call dropped a share of its non-zero inputs within 5 binomial sd of `rate`, and
    scaled the others by 1 / (1 - rate)."""
    live = inputs != 0  # masked attention probabilities are 0 already
    dropped = (out == 0) & live
    share, n = dropped.sum() / live.sum(), live.sum()
    assert abs(share - rate) < 5 * np.sqrt(rate * (1 - rate) / n), (rate, share, n)
    np.testing.assert_allclose(out[live & ~dropped], inputs[live & ~dropped] / (1 - rate), rtol=1e-6)
