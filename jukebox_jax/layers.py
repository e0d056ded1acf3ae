"""Layers shared by the VQ-VAE and the priors.

Convolutions follow the original's (PyTorch) padding conventions, channels-last. Kernels are
stored as `[width, in, out]` (Flax `nn.Conv` layout) for both kinds, so the converter only
permutes axes: PyTorch `Conv1d` weights are `[out, in, width]`, `ConvTranspose1d` weights
`[in, out, width]`.

How a layer stores and computes is a `config.Precision` passed to it: `params` is the
dtype weights are created in, `compute` the dtype of activations and matmul inputs, and
`matmul` the `lax.Precision` of its matmuls and convolutions. LayerNorm statistics are
float32 whatever these say.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jukebox_jax.config import Precision

# -- Initialisers carrying logical axis names ------------------------------------------------


def normal(std: float, names: tuple[str | None, ...]):
    """Normal(0, std) init with logical axis `names`."""
    return nn.with_logical_partitioning(nn.initializers.normal(std), names)


def zeros(names: tuple[str | None, ...]):
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


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
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, p.params.jnp)  # [K, in, out]
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), p.params.jnp)  # [out]
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
