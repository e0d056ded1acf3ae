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

import dataclasses
import enum
import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax
from jax.sharding import PartitionSpec

from jukebox_jax.config import Precision

AXES = frozenset(  # the glossary above
    {"embed", "vocab", "heads", "kv", "qkv", "mlp", "layers", "conv_width", "conv_in", "conv_out", "codes", "code_width",
     "length", "lyric_embed", "batch", "cache_length"}
)
CONV_KERNEL = ("conv_width", "conv_in", "conv_out")
Params = dict[str, Any]  # a param tree: nested dicts of arrays, as flax's "params" collection
CONV_BIAS = ("conv_out",)


# -- Initialisers carrying logical axis names ------------------------------------------------


class InitKind(enum.Enum):
    """The distribution a param is drawn from (scaled by `Init.scale`)."""

    ZEROS = "zeros"
    ONES = "ones"
    NORMAL = "normal"  # N(0, 1)
    TRUNCATED_NORMAL = "truncated_normal"  # N(0, 1) truncated to [-2, 2]

    def unit(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:  # float32 [*shape]
        match self:
            case InitKind.ZEROS:
                return jnp.zeros(shape)
            case InitKind.ONES:
                return jnp.ones(shape)
            case InitKind.NORMAL:
                return jax.random.normal(key, shape)
            case InitKind.TRUNCATED_NORMAL:
                return jax.random.truncated_normal(key, -2.0, 2.0, shape)


@dataclasses.dataclass(frozen=True)
class Init:
    """How one param is drawn: `scale * InitKind`."""

    kind: InitKind
    scale: float = 1.0

    def sample(self, key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return (self.scale * self.kind.unit(key, shape)).astype(dtype)


class Param(nn.LogicallyPartitioned):
    """A param boxed with its logical axis `names` and its `init`: what `jax.eval_shape` of
    a model's init returns, and all `params.init_params` needs to draw the values of a whole
    model at once (one draw per kind and shape, compiled in a second or two, where Flax's
    per-param draws took tens of seconds to compile)."""

    init: Init | None = struct.field(default=None, pytree_node=False)


Initializer = Callable[[jax.Array, tuple[int, ...], Any], Param]  # Flax's (key, shape, dtype) -> value


def initializer(init: Init | Callable[[tuple[int, ...]], Init], names: tuple[str | None, ...]) -> Initializer:
    """A Flax initializer `(key, shape, dtype) -> Param` drawing from `init` (or from
    `init(shape)`, for a scale that depends on the shape)."""

    def draw(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Param:
        spec = init(tuple(shape)) if callable(init) else init
        return Param(spec.sample(key, shape, dtype), names, init=spec)

    return draw


def normal(std: float, names: tuple[str | None, ...]) -> Initializer:
    """Normal(0, std) init with logical axis `names`."""
    return initializer(Init(InitKind.NORMAL, std), names)


def zeros(names: tuple[str | None, ...]) -> Initializer:
    return initializer(Init(InitKind.ZEROS), names)


def ones(names: tuple[str | None, ...]) -> Initializer:
    return initializer(Init(InitKind.ONES), names)


def lecun_normal(names: tuple[str | None, ...]) -> Initializer:
    """Flax's default kernel init (normal truncated at 2 sd, variance 1 / fan-in, fan-in the
    product of all axes but the last) with logical axis `names`."""
    return initializer(
        lambda shape: Init(InitKind.TRUNCATED_NORMAL, math.sqrt(1 / math.prod(shape[:-1])) / _TRUNCATED_STD), names
    )


_TRUNCATED_STD = 0.87962566103423978  # sd of N(0, 1) truncated to [-2, 2]


def is_param(x: Any) -> bool:
    return isinstance(x, Param)


def draw(boxed: Any, key: jax.Array) -> Any:
    """Values for a tree of `Param`s whose values may be abstract (`jax.eval_shape` of an
    init), unboxed, deterministic in `key`.

    Params of one kind, shape and dtype are drawn as one stacked array and then taken apart:
    compiling costs a kernel per group (tens for a whole model) where a kernel per param
    (hundreds) took tens of seconds on a CPU."""
    leaves, _ = jax.tree.flatten(boxed, is_leaf=is_param)
    if not all(is_param(b) and b.init is not None for b in leaves):
        raise TypeError("draw needs every leaf to be a Param made by a jukebox_jax.layers initializer")
    groups: dict[tuple[InitKind, tuple[int, ...], jnp.dtype], list[int]] = {}
    for i, b in enumerate(leaves):
        groups.setdefault((b.init.kind, tuple(b.value.shape), jnp.dtype(b.value.dtype)), []).append(i)
    scales = tuple(tuple(leaves[i].init.scale for i in members) for members in groups.values())
    stacks = _draw_groups(tuple(groups), scales, key)
    out: list[jax.Array | None] = [None] * len(leaves)
    cpu = cpu_device(stacks)
    for stack, members in zip(stacks, groups.values()):
        for i, x in zip(members, unstack(stack, cpu, copy=True)):
            out[i] = x
    return jax.tree.unflatten(jax.tree.structure(nn.unbox(boxed)), out)


def cpu_device(tree: Any) -> jax.Device | None:
    """The one CPU device holding every array of `tree`, or None (other or several devices,
    or traced arrays)."""
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree)):
        return None
    devices = {d for x in jax.tree.leaves(tree) if isinstance(x, jax.Array) for d in x.devices()}
    return next(iter(devices)) if len(devices) == 1 and next(iter(devices)).platform == "cpu" else None


def unstack(x: jax.Array, cpu: jax.Device | None, *, copy: bool) -> list[jax.Array]:
    """The entries `x[0], x[1], ...` of a stacked array as arrays of their own, compiling no
    kernel per entry. On a `cpu` (`cpu_device`), slices of the array's own buffer: zero-copy
    views, or copies with `copy`. Elsewhere, device copies (one compiled slice per shape)."""
    if cpu is not None:
        host = np.asarray(x)  # the array's own buffer
        return [jnp.array(host[i]) if copy else jax.device_put(host[i], cpu) for i in range(x.shape[0])]
    return [lax.dynamic_index_in_dim(x, i, keepdims=False) for i in range(x.shape[0])]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _draw_groups(
    groups: tuple[tuple[InitKind, tuple[int, ...], jnp.dtype], ...],
    scales: tuple[tuple[float, ...], ...],
    key: jax.Array,
) -> list[jax.Array]:
    """One `[n, *shape]` stack per group, entry j scaled by `scales[group][j]`. Each kind is
    one draw, sliced after a barrier (fused into each group's kernel, the draws' arithmetic
    made compiling ten times slower)."""
    sizes: dict[InitKind, int] = {}
    for (kind, shape, _), scale in zip(groups, scales):
        sizes[kind] = sizes.get(kind, 0) + len(scale) * math.prod(shape)
    flat = {
        kind: lax.optimization_barrier(kind.unit(jax.random.fold_in(key, k), (n,)))
        for k, (kind, n) in enumerate(sizes.items())
    }  # [n] per kind
    offsets = dict.fromkeys(sizes, 0)
    out = []
    for (kind, shape, dtype), scale in zip(groups, scales):
        n = len(scale) * math.prod(shape)
        units = flat[kind][offsets[kind] : offsets[kind] + n].reshape(len(scale), *shape)
        offsets[kind] += n
        out.append((jnp.asarray(scale, jnp.float32).reshape(-1, *[1] * len(shape)) * units).astype(dtype))
    return out


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
    zero_init: bool = False,
    name: str | None = None,
) -> nn.Conv:
    """PyTorch `nn.Conv1d(in, features, kernel, stride, padding, dilation)`, on `[B, T, C]`
    -> `[B, T', features]` in `precision.compute`. Kernel `[kernel, in, features]`, bias
    `[features]`; `zero_init`: the kernel starts at zero too."""
    return nn.Conv(
        features,
        (kernel,),
        strides=(stride,),
        padding=[(padding, padding)],
        kernel_dilation=(dilation,),
        dtype=precision.compute.jnp,
        param_dtype=precision.params.jnp,
        precision=precision.matmul.lax,
        kernel_init=zeros(CONV_KERNEL) if zero_init else lecun_normal(CONV_KERNEL),
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


def embed(n: int, width: int, std: float, name: str | None = None) -> nn.Embed:
    """An `[n, width]` float32 embedding table, axes ("vocab", "embed"); looks up `[...]` ids
    -> `[..., width]` in the table's dtype."""
    return nn.Embed(n, width, param_dtype=jnp.float32, embedding_init=normal(std, ("vocab", "embed")), name=name)


def layer_norm(name: str | None = None) -> nn.LayerNorm:
    """The original's LayerNorm over the last axis, `[..., embed]` -> `[..., embed]` float32:
    eps 1e-5, statistics in float32 whatever the input dtype (two-pass variance), scale and
    bias made float32 and applied in float32 whatever dtype they are cast to."""
    return nn.LayerNorm(
        epsilon=1e-5,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        use_fast_variance=False,
        scale_init=ones(("embed",)),
        bias_init=zeros(("embed",)),
        name=name,
    )
