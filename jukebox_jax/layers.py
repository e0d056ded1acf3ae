"""Layers shared by the VQ-VAE and the priors, every weight carrying logical axis names.

Convolutions follow the original's (PyTorch) padding conventions, channels-last. Kernels are
stored as `[width, in, out]` (Flax `nn.Conv` layout) for both kinds, so the converter only
permutes axes: PyTorch `Conv1d` weights are `[out, in, width]`, `ConvTranspose1d` weights
`[in, out, width]`.

How a layer stores and computes is a `config.Precision` passed to it: `params` is the
dtype weights are created in, `compute` the dtype of activations and matmul inputs, and
`matmul` the `lax.Precision` of its matmuls and convolutions. LayerNorm statistics are
float32 whatever these say.

Logical axis names (the glossary; every weight in the project is named from it, one name per
array axis, and a sharding rules table maps them onto a mesh):

| name         | axis                                                                     |
|--------------|--------------------------------------------------------------------------|
| `embed`      | a transformer's width (the prior's, its lyric encoder's): residual       |
|              | stream, LayerNorm, embeddings, conditioner outputs                       |
| `vocab`      | rows of a prior's embedding tables and columns of its output head: music |
|              | tokens, lyric characters, artists, genres, timing bins                   |
| `heads`      | attention heads                                                          |
| `kv`         | width of one attention head                                              |
| `qkv`        | the 3 stacked query/key/value projections                                |
| `mlp`        | a prior's MLP hidden width                                               |
| `layers`     | stacked repeats of a transformer segment (leading axis)                  |
| `conv_width` | kernel taps of a 1-D convolution                                         |
| `conv_in`    | a convolution's input channels                                           |
| `conv_out`   | a convolution's output channels (its bias too)                           |
| `codes`      | entries of a VQ-VAE codebook (`l_bins`; the ids a prior's music `vocab`  |
|              | holds, named apart so the VQ-VAE shards on its own)                      |
| `code_width` | width of one code vector (`emb_width`)                                   |
| `length`     | sequence positions: position embeddings, the start token's length-1      |
|              | axis, activations                                                        |
| `lyric_embed`| the 5b_lyrics lyric encoder's width where it projects to the prior's     |
| `batch`      | activations and KV caches only: the batch                                |
| `cache_length` | KV caches only: cached positions (per attention kind, `attention.py`)  |
| `None`       | an axis never sharded                                                    |

`logical_axes(module, *init_args)` reads these names back for any module's params.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec

from jukebox_jax.config import Precision

AXES = frozenset(  # the glossary above
    {"embed", "vocab", "heads", "kv", "qkv", "mlp", "layers", "conv_width", "conv_in", "conv_out", "codes", "code_width",
     "length", "lyric_embed", "batch", "cache_length"}
)
CONV_KERNEL = ("conv_width", "conv_in", "conv_out")
CONV_BIAS = ("conv_out",)


# -- Initialisers carrying logical axis names ------------------------------------------------


def init_key(key: jax.Array) -> jax.Array:
    """An `unsafe_rbg` key seeded from any key, for initialisers: Flax derives a key per
    parameter, and with threefry those derivations doubled the compile time of a model's init."""
    return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="unsafe_rbg")



def normal(std: float, names: tuple[str | None, ...]):
    """Normal(0, std) init with logical axis `names`."""
    return nn.with_logical_partitioning(nn.initializers.normal(std), names)


def zeros(names: tuple[str | None, ...]):
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def lecun_normal(names: tuple[str | None, ...]):
    """Flax's default kernel init (truncated normal, fan-in scaled) with logical axis `names`."""
    return nn.with_logical_partitioning(nn.initializers.lecun_normal(), names)


def logical_axes(module: nn.Module, *init_args: Any, **init_kwargs: Any) -> dict:
    """The logical axis names of `module`'s params, as a tree of the params' structure whose
    leaves are `PartitionSpec`s of names (tuples of `str | None`, one entry per array axis).

    Traced by `jax.eval_shape(module.init, ...)`, so nothing is allocated and `init_args` may
    be `jax.ShapeDtypeStruct`s. Raises `ValueError` naming every param that carries no names
    or a number of names other than its rank.
    """
    boxed = jax.eval_shape(functools.partial(module.init, **init_kwargs), jax.random.key(0), *init_args)["params"]
    is_box = lambda x: isinstance(x, nn.Partitioned)
    bad = [
        f"{jax.tree_util.keystr(path)} {getattr(leaf, 'names', None)} on shape {tuple(nn.unbox(leaf).shape)}"
        for path, leaf in jax.tree_util.tree_flatten_with_path(boxed, is_leaf=is_box)[0]
        if not is_box(leaf) or len(leaf.names) != leaf.value.ndim
    ]
    if bad:
        what = f"{len(bad)} params of {type(module).__name__} lack one logical axis name per axis"
        raise ValueError(what + ":\n  " + "\n  ".join(bad))
    return jax.tree.map(lambda b: PartitionSpec(*b.names), boxed, is_leaf=is_box)


# -- Layers ------------------------------------------------------------------------------


def conv1d(
    features: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    *,
    precision: Precision,
    name: str | None = None,
) -> nn.Conv:
    """PyTorch `nn.Conv1d(in, features, kernel, stride, padding, dilation)`, on `[B, T, C]`
    -> `[B, T', features]` in `precision.compute`. Kernel `[kernel, in, features]`, bias
    `[features]`."""
    return nn.Conv(
        features,
        (kernel,),
        strides=(stride,),
        padding=[(padding, padding)],
        kernel_dilation=(dilation,),
        dtype=precision.compute.jnp,
        param_dtype=precision.params.jnp,
        precision=precision.matmul.lax,
        kernel_init=lecun_normal(CONV_KERNEL),
        bias_init=zeros(CONV_BIAS),
        name=name,
    )


class ConvTranspose1D(nn.Module):
    """PyTorch `nn.ConvTranspose1d(in, features, kernel, stride, padding)`, on `[B, T, C]`.

    Output length `(T - 1) * stride - 2 * padding + kernel`. Computed as a convolution of
    the stride-dilated input with the time-reversed kernel.
    """

    features: int
    kernel: int
    stride: int
    padding: int
    precision: Precision

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, C_in] -> [B, T', features]
        p, c_in = self.precision, x.shape[-1]
        shape = (self.kernel, c_in, self.features)
        kernel = self.param("kernel", lecun_normal(CONV_KERNEL), shape, p.params.jnp)  # [K, in, out]
        bias = self.param("bias", zeros(CONV_BIAS), (self.features,), p.params.jnp)  # [out]
        pad = self.kernel - 1 - self.padding
        y = lax.conv_general_dilated(
            x.astype(p.compute.jnp),
            jnp.flip(kernel, axis=0).astype(p.compute.jnp),
            window_strides=(1,),
            padding=[(pad, pad)],
            lhs_dilation=(self.stride,),
            dimension_numbers=("NWC", "WIO", "NWC"),
            precision=p.matmul.lax,
        )  # [B, T', out]
        return y + bias.astype(p.compute.jnp)


def embed(n: int, width: int, std: float, name: str | None = None, param_dtype: Any = jnp.float32) -> nn.Embed:
    """An `[n, width]` embedding table, axes ("vocab", "embed"), stored in `param_dtype`;
    looks up `[...]` ids -> `[..., width]` in the table's dtype."""
    return nn.Embed(n, width, param_dtype=param_dtype, embedding_init=normal(std, ("vocab", "embed")), name=name)


def layer_norm(name: str | None = None, param_dtype: Any = jnp.float32) -> nn.LayerNorm:
    """The original's LayerNorm over the last axis, `[..., embed]` -> `[..., embed]` float32:
    eps 1e-5, statistics in float32 whatever the input dtype (two-pass variance), scale and
    bias stored in `param_dtype` and applied in float32."""
    return nn.LayerNorm(
        epsilon=1e-5,
        dtype=jnp.float32,
        param_dtype=param_dtype,
        use_fast_variance=False,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
        bias_init=zeros(("embed",)),
        name=name,
    )
