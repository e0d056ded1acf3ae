"""jukebox-jax: OpenAI Jukebox in JAX/Flax."""

from jukebox_jax import default
from jukebox_jax.config import (
    AttnKind,
    ConfigError,
    JukeboxConfig,
    Lyrics,
    PriorConfig,
    VQVAEConfig,
    attn_pattern,
    preset,
)
from jukebox_jax.jukebox import Jukebox
from jukebox_jax.sharding import make_mesh

__all__ = [
    "AttnKind",
    "ConfigError",
    "Jukebox",
    "JukeboxConfig",
    "Lyrics",
    "PriorConfig",
    "VQVAEConfig",
    "attn_pattern",
    "default",
    "make_mesh",
    "preset",
]
