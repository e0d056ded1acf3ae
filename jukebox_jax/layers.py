"""Convolutions in the original's (PyTorch) padding conventions, channels-last.

Kernels are stored as `[width, in, out]` (Flax `nn.Conv` layout) for both kinds, so the
converter only permutes axes: PyTorch `Conv1d` weights are `[out, in, width]`,
`ConvTranspose1d` weights `[in, out, width]`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

# The VQ-VAE and conditioner are cheap next to the priors: keep them at full float32
# precision on accelerators too, so codes match the original to float32 rounding.
PRECISION = lax.Precision.HIGHEST


def conv1d(features: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1, name: str | None = None) -> nn.Conv:
    """PyTorch `nn.Conv1d(in, features, kernel, stride, padding, dilation)`, on `[B, T, C]`."""
    return nn.Conv(
        features,
        (kernel,),
        strides=(stride,),
        padding=[(padding, padding)],
        kernel_dilation=(dilation,),
        precision=PRECISION,
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

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, C_in] -> [B, T', features]
        c_in = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (self.kernel, c_in, self.features))  # [K, in, out]
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        pad = self.kernel - 1 - self.padding
        y = lax.conv_general_dilated(
            x,
            jnp.flip(kernel, axis=0).astype(x.dtype),
            window_strides=(1,),
            padding=[(pad, pad)],
            lhs_dilation=(self.stride,),
            dimension_numbers=("NWC", "WIO", "NWC"),
            precision=PRECISION,
        )
        return y + bias.astype(x.dtype)


# -- Initialisers and layers carrying logical axis names (see jukebox_jax/prior) -----------


def normal(std: float, names: tuple[str | None, ...]):
    """Normal(0, std) init with logical axis `names`."""
    return nn.with_logical_partitioning(nn.initializers.normal(std), names)


def zeros(names: tuple[str | None, ...]):
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def embed(n: int, width: int, std: float, name: str | None = None) -> nn.Embed:
    """An `[n, width]` embedding table, axes ("vocab", "embed")."""
    return nn.Embed(n, width, embedding_init=normal(std, ("vocab", "embed")), name=name)


def layer_norm(name: str | None = None) -> nn.LayerNorm:
    """The original's LayerNorm: eps 1e-5, statistics in float32 (two-pass variance)."""
    return nn.LayerNorm(
        epsilon=1e-5,
        dtype=jnp.float32,
        use_fast_variance=False,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
        bias_init=zeros(("embed",)),
        name=name,
    )
