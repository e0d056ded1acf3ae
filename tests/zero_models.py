"""Models of zeros for the tests that check arguments before any kernel runs: `Jukebox`
checks its params against its config, so these have every array, made without running an
init (an `abstract_params` shape each), once per preset."""

from __future__ import annotations

import functools

import jax
import numpy as np

from jukebox_jax import Jukebox, JukeboxConfig
from jukebox_jax.params import abstract_params


@functools.cache
def zero_model(name: str) -> Jukebox:
    """The preset `name` (`JukeboxConfig.from_preset`) with every weight 0."""
    config = JukeboxConfig.from_preset(name)
    return Jukebox(config, jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract_params(config)))
