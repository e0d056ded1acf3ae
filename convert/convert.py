"""`convert_checkpoint`: PyTorch Jukebox checkpoints (original or HF) -> `Jukebox`."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
from flax import traverse_util

from convert.hf_config import config_from_hf
from convert.hps import prior_config_from_hps, vqvae_config_from_hps
from convert.sources import ConversionError, HFDirectory, OriginalFile, read_hf, read_original
from convert.table import Row, vqvae_rows
from convert.table_prior import prior_rows
from jukebox_jax import Jukebox
from jukebox_jax.config import PRESETS, ConfigError, JukeboxConfig, VQVAEConfig
from jukebox_jax.params import abstract_params, describe_mismatch, flatten


def convert_checkpoint(*paths: str | os.PathLike, config: JukeboxConfig | str | None = None) -> Jukebox:
    """Converts PyTorch Jukebox weights into a `Jukebox`.

    Args:
      paths: either any set of original files (`vqvae.pth.tar`, `prior_level_{0,1,2}.pth.tar`),
        or one HF model directory (`config.json` + `pytorch_model*.bin` or `*.safetensors`,
        optionally sharded with an index).
      config: the structure, overriding what the files say: a `JukeboxConfig` or a preset name
        (a whole model such as "5b_lyrics", or one part such as "vqvae"). Needed for a prior
        file given without its VQ-VAE file.

    Raises `ConversionError` naming every missing, unexpected and mis-shaped tensor.
    """
    if not paths:
        raise ConversionError("give at least one checkpoint file or HF directory")
    paths = tuple(Path(p) for p in paths)
    for p in paths:
        if not p.exists():
            raise ConversionError(f"{p}: no such file or directory")
    if any(p.is_dir() for p in paths):
        if len(paths) != 1:
            raise ConversionError("give an HF model directory on its own, not together with other paths")
        return _from_hf(read_hf(paths[0]), _resolve(config))
    return _from_original([read_original(p) for p in paths], _resolve(config))


def _resolve(config: JukeboxConfig | str | None) -> JukeboxConfig | None:
    if not isinstance(config, str):
        return config
    if config in PRESETS:
        part = PRESETS[config]
        return JukeboxConfig(vqvae=part) if isinstance(part, VQVAEConfig) else JukeboxConfig(priors=(part,))
    try:
        return JukeboxConfig.from_preset(config)
    except ConfigError as e:
        raise ConversionError(str(e)) from None


def _from_original(files: list[OriginalFile], config: JukeboxConfig | None) -> Jukebox:
    vqvae_files = [f for f in files if f.is_vqvae]
    prior_files = [f for f in files if not f.is_vqvae]
    if len(vqvae_files) > 1:
        raise ConversionError(f"more than one VQ-VAE file: {[str(f.path) for f in vqvae_files]}")
    if config is None:
        config = _config_from_hps(vqvae_files[0] if vqvae_files else None, prior_files)
    template = flatten(abstract_params(config))
    flat = {}
    if vqvae_files:
        if config.vqvae is None:
            raise ConversionError(f"{vqvae_files[0].path} is a VQ-VAE but the given config has none")
        flat |= _fill(template, vqvae_rows(config.vqvae), vqvae_files[0].state, lambda r: r.original, vqvae_files[0].path)
    for f in prior_files:
        level = f.hps.get("level") if f.hps else None
        candidates = [p for p in config.priors if level is None or p.level == level]
        if len(candidates) != 1:
            raise ConversionError(f"{f.path}: cannot tell which prior of the config it holds (its hps say level {level})")
        flat |= _fill(template, prior_rows(candidates[0], 0), f.state, lambda r: r.original, f.path)
    return _jukebox(config, template, flat)


def _config_from_hps(vqvae_file: OriginalFile | None, prior_files: list[OriginalFile]) -> JukeboxConfig:
    try:
        vqvae = vqvae_config_from_hps(vqvae_file.hps) if vqvae_file else None
        if prior_files and vqvae is None:
            raise ConversionError(
                f"{prior_files[0].path} is a prior: its hps hold only defaults for the VQ-VAE fields "
                f"(codebook size, hops). Convert it together with its vqvae.pth.tar, or pass "
                f"config= a preset name such as '5b_lyrics'"
            )
        return JukeboxConfig(vqvae=vqvae, priors=tuple(prior_config_from_hps(f.hps, vqvae) for f in prior_files))
    except ConfigError as e:
        raise ConversionError(f"cannot read the checkpoints' hps: {e}") from None


def _from_hf(d: HFDirectory, config: JukeboxConfig | None) -> Jukebox:
    try:
        config = config or config_from_hf(d.config)
    except ConfigError as e:
        raise ConversionError(f"{d.path}/config.json: {e}") from None
    standalone = d.config.get("model_type") == "jukebox_vqvae"
    rows = vqvae_rows(config.vqvae, hf_prefix="" if standalone else "vqvae.") if config.vqvae else []
    top = len(config.priors[0].downs_t) - 1 if config.priors else 0
    for p in config.priors:
        rows += prior_rows(p, hf_index=top - p.level)  # HF lists the priors top first
    template = flatten(abstract_params(config))
    return _jukebox(config, template, _fill(template, rows, d.state, lambda r: r.hf, d.path))


def _fill(template: dict, rows: list[Row], state: dict[str, np.ndarray], key, source) -> dict:
    """Our params named by `rows`, from `state`, demanding exact key-set equality (tied
    copies may be absent) and checking every shape and tied copy."""
    wanted = {key(r): r for r in rows}
    required = {k for k, r in wanted.items() if not r.tied}
    missing = sorted(required - state.keys())
    unexpected = sorted(state.keys() - wanted.keys())
    misshaped, stacks, flat = [], {}, {}
    for name in sorted(wanted.keys() & state.keys()):
        row, tensor = wanted[name], state[name]
        want = tuple(template[row.path].shape)
        want = want[1:] if row.index is not None else want
        if row.our_shape(tensor.shape) != want:
            misshaped.append(f"{name}: {tuple(tensor.shape)} does not give our {'/'.join(row.path)} {want}")
            continue
        value = row.transform(tensor).astype(np.float32)
        if row.tied:
            continue  # compared below, once every weight is in place
        if row.index is None:
            flat[row.path] = value
        else:
            stack = stacks.setdefault(row.path, np.zeros(template[row.path].shape, np.float32))
            stack[row.index] = value
    if missing or unexpected or misshaped:
        raise ConversionError(f"{source}: " + describe_mismatch(missing, unexpected, misshaped).replace("params", "checkpoint", 1))
    flat |= stacks
    for name, row in wanted.items():
        if row.tied and name in state and not np.array_equal(row.transform(state[name]), flat[row.path]):
            raise ConversionError(f"{source}: {name} should be the same tensor as our {'/'.join(row.path)} (tied), but differs")
    return flat


def _jukebox(config: JukeboxConfig, template: dict, flat: dict) -> Jukebox:
    if flat.keys() != template.keys():  # the table and the modules must agree
        raise AssertionError(f"name table out of sync with the model: {sorted(map('/'.join, flat.keys() ^ template.keys()))}")
    return Jukebox(config, jax.device_put(traverse_util.unflatten_dict(flat)))
