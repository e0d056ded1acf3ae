"""Int8 weights: weight-only, symmetric, per-output-channel quantization of the priors'
transformer projection matrices (attention `c_attn`, `c_enc_kv`, `c_proj`; MLP `c_fc`,
`c_proj`; the 5b_lyrics lyric encoder's too).

The config says which arrays are int8 (`Precision.weights`, read by `prior/transformer.py`):
each such `{name}_kernel [*in, *out]` is int8 and has a float32 `{name}_scale [*out]` with the
logical axis names of its output axes, so `abstract_params`, `param_axes`, the canonical
layout, checkpoints and `jax.eval_shape` accounting see the int8 structure as it is. Here
float weights become those arrays: per output channel c, `scale[c] = max |w[:, c]| / 127` and
`q[:, c] = round(w[:, c] / scale[c])` in [-127, 127] (so each weight is within `scale[c] / 2`
of `q * scale`); the matmul computes `(x @ q) * scale` (`transformer._matmul`).

What stays float, and why: embeddings and position embeddings are read one row per token
(a decode step reads a few KB of them, not the table); LayerNorms and biases are tiny; the
output head (`x_out_kernel`, or the tied embedding table) makes the logits sampling reads
directly, and is 0.2-0.5% of a released prior's weights. Quantizing them would save little
bandwidth and cost accuracy.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import traverse_util

from jukebox_jax.config import JukeboxConfig, WeightFormat
from jukebox_jax.errors import InputError
from jukebox_jax.params import Params, abstract_params, check_params, flatten, param_axes

INT8_MAX = 127


def config_with_weights(config: JukeboxConfig, weights: WeightFormat | str) -> JukeboxConfig:
    """`config` with every prior's transformer weights in `weights`. Raises `InputError` for
    weights already quantized (quantizing twice would round twice; int8 cannot become float
    again) and `ConfigError` for an unknown format."""
    weights = WeightFormat.parse(weights)
    have = {p.precision.weights for p in config.priors}
    if WeightFormat.INT8 in have:
        raise InputError(
            f"the priors' weights are already int8; {weights.value} weights come from the float model "
            "(quantize it once, or load its float checkpoint)"
        )
    with_weights = lambda p: dataclasses.replace(p, precision=dataclasses.replace(p.precision, weights=weights))
    return dataclasses.replace(config, priors=tuple(with_weights(p) for p in config.priors))


def quantize_params(config: JukeboxConfig, params: Params, target: JukeboxConfig) -> Params:
    """`params` of `config` -> params of `target` (`config_with_weights`): every array that
    `target` declares int8 is quantized from its float weights (a `{name}_scale` added),
    every other array kept as it is."""
    check_params(abstract_params(config), params)
    want, axes, got = flatten(abstract_params(target)), flatten(param_axes(target)), flatten(params)
    out = {}
    for path in (p for p, spec in want.items() if spec.dtype == jnp.int8):
        scale_path = (*path[:-1], path[-1].removesuffix("_kernel") + "_scale")
        reduce = tuple(i for i, name in enumerate(axes[path]) if name not in axes[scale_path])  # the input axes
        out[path], out[scale_path] = quantize_int8(got[path], reduce)
    out.update((path, got[path]) for path in want.keys() - out.keys())
    return traverse_util.unflatten_dict(out)


@functools.partial(jax.jit, static_argnums=1)
def quantize_int8(w: jax.Array, reduce: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """Float weights `w` -> (int8 `q` of `w`'s shape, float32 `scale` of `w`'s shape without
    the `reduce` axes), symmetric per channel of the other axes: `w ~= q * scale`, the largest
    |w| of a channel mapped to +-127. An all-zero channel gets scale 0 and q 0."""
    w = w.astype(jnp.float32)
    amax = jnp.max(jnp.abs(w), axis=reduce, keepdims=True)
    scale = amax / INT8_MAX
    q = jnp.clip(jnp.round(w / jnp.where(scale > 0, scale, 1.0)), -INT8_MAX, INT8_MAX).astype(jnp.int8)
    return q, jnp.squeeze(scale, reduce)
