"""Param trees of a whole model: random init, abstract shapes, and a strict structure check.

The tree is `{"vqvae": ..., "prior_level_{L}": ...}` holding only the parts the config has.
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

from jukebox_jax.config import JukeboxConfig, PriorConfig
from jukebox_jax.prior import Prior
from jukebox_jax.vqvae import VQVAE

Params = dict[str, Any]


class ParamsError(ValueError):
    """A param tree that does not fit the config: lists every missing, unexpected and
    mis-shaped array."""


def init_params(config: JukeboxConfig, key: jax.Array) -> Params:
    """Random params for every part of `config` (for tests and training from scratch)."""
    params: Params = {}
    if config.vqvae is not None:
        audio = jnp.zeros((1, config.vqvae.hop_lengths[-1], 1), jnp.float32)  # one top-level code
        params["vqvae"] = VQVAE(config.vqvae).init(jax.random.fold_in(key, 0), audio)["params"]
    for cfg, key in zip(config.priors, jax.random.split(jax.random.fold_in(key, 1), len(config.priors))):
        params[f"prior_level_{cfg.level}"] = nn.unbox(Prior(cfg).init(key, *prior_dummy_inputs(cfg))["params"])
    return params


def prior_dummy_inputs(cfg: PriorConfig) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Shortest valid (tokens, labels, upper_codes) for `Prior(cfg).init`."""
    down = cfg.cond_downsample or 1
    labels = jnp.zeros((1, cfg.n_labels), jnp.int32)
    upper = jnp.zeros((1, 1), jnp.int32) if cfg.conditioner is not None else None
    return jnp.zeros((1, down), jnp.int32), labels, upper


def abstract_params(config: JukeboxConfig) -> Params:
    """`jax.ShapeDtypeStruct` leaves of `init_params(config)`, computed without allocating."""
    return jax.eval_shape(functools.partial(init_params, config), jax.random.key(0))


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
