"""Param trees of a whole model: random init, abstract shapes, logical axis names, and a
strict structure check.

The tree is `{"vqvae": ..., "prior_level_{L}": ...}` holding only the parts the config has,
each prior in the canonical layout (`jukebox_jax/prior/layout.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
from flax import traverse_util

from jukebox_jax import prior
from jukebox_jax.config import JukeboxConfig
from jukebox_jax.layers import init_key
from jukebox_jax.vqvae import VQVAE

Params = dict[str, Any]


class ParamsError(ValueError):
    """A param tree that does not fit the config: lists every missing, unexpected and
    mis-shaped array."""


def init_boxed(config: JukeboxConfig, key: jax.Array) -> Params:
    """Random params for every part of `config`, boxed with their logical axis names."""
    params: Params = {}
    if config.vqvae is not None:
        audio = jax.ShapeDtypeStruct((1, config.vqvae.hop_lengths[-1], 1), jnp.float32)  # one top-level code
        params["vqvae"] = VQVAE(config.vqvae).lazy_init(jax.random.fold_in(key, 0), audio)["params"]
    for cfg, key in zip(config.priors, jax.random.split(jax.random.fold_in(key, 1), len(config.priors))):
        params[f"prior_level_{cfg.level}"] = prior.init_boxed(cfg, key)
    return params


def init_params(config: JukeboxConfig, key: jax.Array) -> Params:
    """Random params for every part of `config` (for tests and training from scratch),
    deterministic in `key` (drawn from `layers.init_key(key)`)."""
    return nn.unbox(init_boxed(config, init_key(key)))


def abstract_params(config: JukeboxConfig) -> Params:
    """`jax.ShapeDtypeStruct` leaves of `init_params(config)`, computed without allocating."""
    return jax.eval_shape(functools.partial(init_params, config), jax.random.key(0))


def param_axes(config: JukeboxConfig) -> Params:
    """The logical axis names of every param (a tuple per leaf, one name per array axis; None
    where a module gives no name), computed without allocating. Sharding rules map these
    names onto mesh axes."""
    boxed = jax.eval_shape(functools.partial(init_boxed, config), jax.random.key(0))
    is_box = lambda x: isinstance(x, nn.LogicallyPartitioned)
    return jax.tree.map(lambda x: tuple(x.names) if is_box(x) else (None,) * len(x.shape), boxed, is_leaf=is_box)


def flatten(params: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    return traverse_util.flatten_dict(params)


def check_params(expected: Params, params: Params) -> None:
    """Raises `ParamsError` unless `params` has exactly the paths and shapes of `expected`."""
    want, got = flatten(expected), flatten(params)
    missing = sorted("/".join(p) for p in want.keys() - got.keys())
    unexpected = sorted("/".join(p) for p in got.keys() - want.keys())
    misshaped = sorted(
        f"{'/'.join(p)}: expected {tuple(want[p].shape)}, got {tuple(np.shape(got[p]))}"
        for p in want.keys() & got.keys()
        if tuple(want[p].shape) != tuple(np.shape(got[p]))
    )
    if missing or unexpected or misshaped:
        raise ParamsError(describe_mismatch(missing, unexpected, misshaped))


def describe_mismatch(missing: list[str], unexpected: list[str], misshaped: list[str]) -> str:
    parts = [
        f"{len(xs)} {what}:\n  " + "\n  ".join(xs)
        for what, xs in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
        if xs
    ]
    return "params do not fit the config; " + "\n".join(parts)
