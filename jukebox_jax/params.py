"""Param trees of a whole model: random init, abstract shapes, logical axis names, and a
strict structure check.

The tree is `{"vqvae": ..., "prior_level_{L}": ...}` holding only the parts the config has,
each prior in the canonical layout (`jukebox_jax/prior/layout.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jukebox_jax import checks, prior
from jukebox_jax.config import JukeboxConfig
from jukebox_jax.errors import ParamsError
from jukebox_jax.layers import Params, draw, is_param
from jukebox_jax.vqvae import VQVAE


@functools.cache
def boxed_shapes(config: JukeboxConfig) -> Params:
    """The params of every part of `config` as abstract `layers.Param`s (shape, dtype, logical
    axis names, init), traced once per config without allocating."""
    params: Params = {}
    if config.vqvae is not None:
        audio = jax.ShapeDtypeStruct((1, config.vqvae.hop_lengths[-1], 1), jnp.float32)  # one top-level code
        init = functools.partial(VQVAE(config.vqvae).init, jax.random.key(0))
        params["vqvae"] = jax.eval_shape(init, audio)["params"]
    for cfg in config.priors:
        params[f"prior_level_{cfg.level}"] = prior.boxed_shapes(cfg)
    return params


def init_params(config: JukeboxConfig, key: jax.Array) -> Params:
    """Random params for every part of `config` (for tests and training from scratch),
    deterministic in `key`."""
    return draw(boxed_shapes(config), key)


def abstract_params(config: JukeboxConfig) -> Params:
    """`jax.ShapeDtypeStruct` leaves of `init_params(config)`, computed without allocating."""
    return nn.unbox(boxed_shapes(config))


def param_axes(config: JukeboxConfig) -> Params:
    """The logical axis names of every param (a tuple per leaf, one name per array axis),
    computed without allocating. Sharding rules map these names onto mesh axes."""
    return jax.tree.map(lambda x: tuple(x.names), boxed_shapes(config), is_leaf=is_param)


def cast(config: JukeboxConfig, params: Params) -> Params:
    """`params` with every array in the dtype `config` stores it in (`abstract_params`), one
    array at a time (a leaf already in its dtype is kept, not copied); sharded arrays keep
    their sharding. A weight beyond the range of its new dtype (float16's 65504) is a
    `ParamsError` naming it, not an infinity."""
    expected = abstract_params(config)
    check_params(expected, params)
    want = flatten(expected)
    beyond = []
    for path, x in flatten(params).items():
        dtype = np.dtype(want[path].dtype)
        narrower = jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).maxexp < jnp.finfo(x.dtype).maxexp  # float16
        if narrower and (peak := float(jnp.max(jnp.abs(x)))) > (top := float(jnp.finfo(dtype).max)):
            beyond.append(f"{'/'.join(path)} (|x| up to {peak:.4g}, beyond {dtype.name}'s {top:g})")
    if beyond:
        more = f" and {len(beyond) - 5} more" if len(beyond) > 5 else ""
        raise ParamsError(
            f"{len(beyond)} weights would overflow: {', '.join(beyond[:5])}{more}; use bfloat16 (float32's range) or float32"
        )
    return jax.tree.map(lambda want, x: x if x.dtype == want.dtype else x.astype(want.dtype), expected, params)


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
    checks.alive(params)



def describe_mismatch(
    missing: list[str], unexpected: list[str], misshaped: list[str], subject: str = "params", shown: int = 20
) -> str:
    """"{subject} do not fit the config; N missing: ..." listing the first `shown` of each kind."""

    def listing(what: str, xs: list[str]) -> str:
        more = [f"... and {len(xs) - shown} more"] if len(xs) > shown else []
        return f"{len(xs)} {what}:\n  " + "\n  ".join(xs[:shown] + more)

    kinds = (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
    return f"{subject} do not fit the config; " + "\n".join(listing(what, xs) for what, xs in kinds if xs)
