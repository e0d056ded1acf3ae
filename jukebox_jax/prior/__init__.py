"""The autoregressive priors: attention kinds, the transformer stack, conditioners, the prior,
and the canonical parameter layout. The functional API takes canonical params:
`init_params`, `forward`, `condition`, `sequence`, `decode_params`, `init_cache`,
`fill_encoder_cache`, `extend`."""

from jukebox_jax.prior.layout import Layout
from jukebox_jax.prior.prior import (
    Context,
    Prior,
    PriorOutput,
    boxed_shapes,
    condition,
    decode_params,
    extend,
    fill_encoder_cache,
    forward,
    init_cache,
    init_params,
    prior_losses,
    sequence,
)
from jukebox_jax.prior.transformer import Captured, Execution, Remat, layer_groups

__all__ = [
    "Captured",
    "Context",
    "Execution",
    "Layout",
    "Prior",
    "PriorOutput",
    "Remat",
    "boxed_shapes",
    "condition",
    "decode_params",
    "extend",
    "fill_encoder_cache",
    "forward",
    "init_cache",
    "init_params",
    "layer_groups",
    "prior_losses",
    "sequence",
]
