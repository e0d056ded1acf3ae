"""The autoregressive priors: attention kinds, the transformer stack, conditioners, the prior."""

from jukebox_jax.prior.prior import Prior, PriorOutput, prior_losses
from jukebox_jax.prior.transformer import Captured, layer_groups

__all__ = ["Captured", "Prior", "PriorOutput", "layer_groups", "prior_losses"]
