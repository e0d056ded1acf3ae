"""`Jukebox`: a config plus its params, with the model's public methods.

Any subset of parts may be present (a VQ-VAE alone, one prior alone, or all). Methods are
pure: they read `params` and return arrays; the jitted kernels take the config statically.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jukebox_jax.config import JukeboxConfig, VQVAEConfig
from jukebox_jax.io import write_text
from jukebox_jax.params import Params, abstract_params, check_params, init_params
from jukebox_jax.vqvae import VQVAE

_FORMAT = "jukebox-jax/1"


@dataclasses.dataclass(frozen=True)
class Jukebox:
    config: JukeboxConfig
    params: Params

    @classmethod
    def init(cls, config: JukeboxConfig, key: jax.Array) -> Jukebox:
        """Random weights for every part of `config`."""
        return cls(config, init_params(config, key))

    # -- VQ-VAE -------------------------------------------------------------------------

    def encode(self, audio: jax.Array, *, start_level: int = 0, end_level: int | None = None) -> list[jax.Array]:
        """Audio `[B, T, 1]` float32 in [-1, 1] -> int32 codes `[B, T / hop]` per level,
        level 0 (finest) first, for levels `start_level..end_level-1` (default: all).

        `T` must be a multiple of the hop of the deepest level asked for (128 for all three
        levels of the released VQ-VAE)."""
        cfg = self._vqvae_config()
        end_level = cfg.levels if end_level is None else end_level
        if not 0 <= start_level < end_level <= cfg.levels:
            raise ValueError(f"need 0 <= start_level < end_level <= {cfg.levels}, got {start_level}, {end_level}")
        audio = jnp.asarray(audio)
        hop = cfg.hop_lengths[end_level - 1]
        if audio.ndim != 3 or audio.shape[-1] != 1:
            raise ValueError(f"audio must be [batch, time, 1] (mono), got shape {audio.shape}")
        if audio.shape[1] % hop or audio.shape[1] == 0:
            raise ValueError(
                f"audio length {audio.shape[1]} is not a positive multiple of {hop} samples (the hop of "
                f"level {end_level - 1}); pad or trim it"
            )
        if not jnp.issubdtype(audio.dtype, jnp.floating):
            raise ValueError(f"audio must be float in [-1, 1], got {audio.dtype}")
        return _encode(self.params["vqvae"], audio.astype(jnp.float32), cfg, start_level, end_level)

    def decode(self, codes: Sequence[jax.Array], start_level: int = 0) -> jax.Array:
        """Codes of levels `start_level, start_level + 1, ...` -> audio `[B, T, 1]`.

        As the original `decode(zs[l:], start_level=l)`, only `codes[0]` (level
        `start_level`) is decoded; the rest are accepted for symmetry with `encode`."""
        cfg = self._vqvae_config()
        if isinstance(codes, (jax.Array, np.ndarray)) or not len(codes):
            raise TypeError("codes must be a non-empty list of [batch, time] arrays, one per level")
        if not 0 <= start_level < cfg.levels or start_level + len(codes) > cfg.levels:
            raise ValueError(f"{len(codes)} levels of codes from start_level {start_level} do not fit {cfg.levels} levels")
        z = jnp.asarray(codes[0])
        if z.ndim != 2 or not jnp.issubdtype(z.dtype, jnp.integer):
            raise ValueError(f"codes must be integer [batch, time], got {z.dtype} {z.shape}")
        if z.size and not (0 <= int(z.min()) and int(z.max()) < cfg.l_bins):
            raise ValueError(f"codes must lie in [0, {cfg.l_bins}), got [{int(z.min())}, {int(z.max())}]")
        return _decode(self.params["vqvae"], z.astype(jnp.int32), cfg, start_level)

    def _vqvae_config(self) -> VQVAEConfig:
        if self.config.vqvae is None:
            raise ValueError("this Jukebox has no VQ-VAE: convert or load one with it")
        return self.config.vqvae

    # -- Saving -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Writes `path/config.json` and an orbax checkpoint `path/params`, each atomically;
        an existing checkpoint at `path` is replaced."""
        import orbax.checkpoint as ocp

        path = Path(path).absolute()
        path.mkdir(parents=True, exist_ok=True)
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(path / "params", self.params, force=True)
        write_text(path / "config.json", json.dumps({"format": _FORMAT, "config": self.config.to_dict()}, indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Jukebox:
        """Reads what `save` wrote; checks every array against the config."""
        import orbax.checkpoint as ocp

        path = Path(path).absolute()
        if not (path / "config.json").is_file() or not (path / "params").is_dir():
            raise FileNotFoundError(f"{path} is not a jukebox-jax checkpoint (needs config.json and params/)")
        meta = json.loads((path / "config.json").read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}/config.json: format {meta.get('format')!r}, expected {_FORMAT!r}")
        config = JukeboxConfig.from_dict(meta["config"])
        with ocp.StandardCheckpointer() as ckptr:
            params = ckptr.restore(path / "params")
        check_params(abstract_params(config), params)
        return cls(config, params)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _encode(params: Params, audio: jax.Array, cfg: VQVAEConfig, start_level: int, end_level: int) -> list[jax.Array]:
    return VQVAE(cfg).apply({"params": params}, audio, start_level, end_level, method=VQVAE.encode)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _decode(params: Params, codes: jax.Array, cfg: VQVAEConfig, level: int) -> jax.Array:
    return VQVAE(cfg).apply({"params": params}, codes, level, method=VQVAE.decode)
