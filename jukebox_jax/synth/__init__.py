"""A synthetic music dataset with structure a small model can learn (`jukebox-jax data synth`),
and measures that tell its music from noise."""

from jukebox_jax.synth.dataset import SynthConfig, generate, make_song, song_path
from jukebox_jax.synth.measures import compare, describe

__all__ = ["SynthConfig", "compare", "describe", "generate", "make_song", "song_path"]
