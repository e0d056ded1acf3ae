"""`convert_checkpoint`: PyTorch Jukebox checkpoints (original or HF) -> `Jukebox`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import jax
import numpy as np
from flax import traverse_util

from convert.hf_config import config_from_hf
from convert.hps import prior_config_from_hps, vqvae_config_from_hps
from convert.sources import ConversionError, HFDirectory, OriginalFile, read_hf, read_original
from convert.table import Row, vqvae_rows
from convert.table_prior import prior_rows
from jukebox_jax import Jukebox
from jukebox_jax.config import MODEL_PRESETS, PRESETS, ConfigError, JukeboxConfig, PriorConfig, VQVAEConfig
from jukebox_jax.params import abstract_params, describe_mismatch, flatten

T = TypeVar("T")


def convert_checkpoint(*paths: str | os.PathLike, config: JukeboxConfig | str | None = None) -> Jukebox:
    """Converts PyTorch Jukebox weights into a `Jukebox`.

    Args:
      paths: either any set of original files (`vqvae.pth.tar`, `prior_level_{0,1,2}.pth.tar`),
        or one HF model directory (`config.json` + `pytorch_model*.bin` or `*.safetensors`,
        optionally sharded with an index).
      config: the structure, overriding what the files say: a `JukeboxConfig` or a preset name,
        of a whole model ("5b_lyrics", "tiny_5b", ...) or of one part ("vqvae",
        "upsampler_level_1", ...). The result holds the parts of it that the files hold. Needed
        for a prior file given without its VQ-VAE file.

    Raises `ConversionError` naming the file for anything unreadable, corrupt (a zip member
    failing its CRC-32, NaN or Inf weights, non-float tensors) or not fitting: every missing,
    unexpected and mis-shaped tensor is named.
    """
    if not paths:
        raise ConversionError("give at least one checkpoint file or HF directory")
    paths = tuple(Path(p) for p in paths)
    for p in paths:
        if not p.exists():
            raise ConversionError(f"{p}: no such file or directory; check the path")
    if any(p.is_dir() for p in paths):
        if len(paths) != 1:
            raise ConversionError(
                f"{next(p for p in paths if p.is_dir())}: a directory among several paths; give an HF model "
                f"directory on its own, or only original *.pth.tar files"
            )
        return _from_hf(read_hf(paths[0]), _resolve(config))
    return _from_original([read_original(p) for p in paths], _resolve(config))


def _resolve(config: JukeboxConfig | str | None) -> JukeboxConfig | None:
    """A preset name as a config: a whole model (`MODEL_PRESETS`) or one part (`PRESETS`)."""
    if not isinstance(config, str):
        return config
    if config in MODEL_PRESETS:
        return JukeboxConfig.from_preset(config)
    if config in PRESETS:
        part = PRESETS[config]
        return JukeboxConfig(vqvae=part) if isinstance(part, VQVAEConfig) else JukeboxConfig(priors=(part,))
    parts = sorted(set(PRESETS) - set(MODEL_PRESETS))
    raise ConversionError(f"unknown preset {config!r}; choose a whole model {list(MODEL_PRESETS)} or a part {parts}")


def _from_original(files: list[OriginalFile], config: JukeboxConfig | None) -> Jukebox:
    vqvae_files = [f for f in files if f.is_vqvae]
    prior_files = [f for f in files if not f.is_vqvae]
    if len(vqvae_files) > 1:
        raise ConversionError(f"more than one VQ-VAE file: {[str(f.path) for f in vqvae_files]}")
    _check_sample_rates(files)
    if config is None:
        config = _config_from_hps(vqvae_files[0] if vqvae_files else None, prior_files)
    elif vqvae_files and config.vqvae is None:
        raise ConversionError(f"{vqvae_files[0].path} is a VQ-VAE but the given config has none")
    priors = [_prior_of(f, config) for f in prior_files]
    try:
        config = JukeboxConfig(vqvae=config.vqvae if vqvae_files else None, priors=tuple(priors))  # the parts the files hold
    except ConfigError as e:
        raise ConversionError(f"{', '.join(str(f.path) for f in prior_files)}: {e}") from None
    template = flatten(abstract_params(config))
    flat = {}
    if vqvae_files:
        flat |= _fill(template, vqvae_rows(config.vqvae), vqvae_files[0].state, lambda r: r.original, vqvae_files[0].path)
    for f, prior in zip(prior_files, priors):
        flat |= _fill(template, prior_rows(prior, 0), f.state, lambda r: r.original, f.path)
    return _jukebox(config, template, flat)


def _prior_of(f: OriginalFile, config: JukeboxConfig) -> PriorConfig:
    """The prior of `config` that file `f` holds: the one of the level its hps give, else the one
    whose tensor names the file holds exactly."""
    level = f.hps.get("level")
    if level is not None and type(level) is not int:
        raise ConversionError(f"{f.path}: its hps say level={level!r}, not an integer level")
    if level is not None:
        candidates = [p for p in config.priors if p.level == level]
    else:
        candidates = [p for p in config.priors if _names_fit(prior_rows(p, 0), f.state)]
    if len(candidates) != 1:
        says = f"its hps say level {level}" if level is not None else "its hps give no level"
        raise ConversionError(
            f"{f.path}: cannot tell which prior of the config it holds ({says}; the config has levels "
            f"{[p.level for p in config.priors]}); pass config= the preset of that prior alone, e.g. 'upsampler_level_1'"
        )
    return candidates[0]


def _names_fit(rows: list[Row], state: dict[str, np.ndarray]) -> bool:
    names = {r.original for r in rows}
    return {r.original for r in rows if not r.tied} <= state.keys() <= names


def _check_sample_rates(files: list[OriginalFile]) -> None:
    """Refuses files whose hps say they were trained at different sample rates."""
    rates = [(f.path, f.hps["sr"]) for f in files if "sr" in f.hps]
    for path, sr in rates:
        if type(sr) is not int:
            raise ConversionError(f"{path}: its hps say sr={sr!r}, not a sample rate in Hz")
    if any(sr != rates[0][1] for _, sr in rates):
        listed = ", ".join(f"{path}: {sr} Hz" for path, sr in rates)
        raise ConversionError(
            f"the checkpoints were trained at different sample rates (their hps 'sr': {listed}); "
            f"a VQ-VAE and its priors must share one: convert files of one model"
        )


def _config_from_hps(vqvae_file: OriginalFile | None, prior_files: list[OriginalFile]) -> JukeboxConfig:
    if prior_files and vqvae_file is None:
        raise ConversionError(
            f"{prior_files[0].path} is a prior: its hps hold only defaults for the VQ-VAE fields "
            f"(codebook size, hops). Convert it together with its vqvae.pth.tar, or pass "
            f"config= a preset name such as '5b_lyrics'"
        )
    vqvae = _read_config(vqvae_file.path, lambda: vqvae_config_from_hps(vqvae_file.hps)) if vqvae_file else None
    priors = tuple(_read_config(f.path, lambda f=f: prior_config_from_hps(f.hps, vqvae)) for f in prior_files)
    return _read_config(prior_files[0].path if prior_files else vqvae_file.path, lambda: JukeboxConfig(vqvae=vqvae, priors=priors))


def _read_config(source: Path, read: Callable[[], T]) -> T:
    """`read()`, a config reader given the file's own values: any failure is named as `source`'s."""
    try:
        return read()
    except KeyError as e:
        raise ConversionError(f"{source}: its config lacks the field {e}; pass config= a preset name instead") from None
    except (TypeError, ValueError, AttributeError) as e:  # ConfigError is a ValueError
        raise ConversionError(f"{source}: cannot read its config: {e}; pass config= a preset name instead") from None


def _from_hf(d: HFDirectory, config: JukeboxConfig | None) -> Jukebox:
    standalone = d.config.get("model_type") == "jukebox_vqvae"
    vqvae_prefix = "" if standalone else "vqvae."
    if config is None:
        config = _read_config(d.path / "config.json", lambda: config_from_hf(d.config))
    else:
        config = _hf_parts(config, d.state, vqvae_prefix)
    rows = vqvae_rows(config.vqvae, hf_prefix=vqvae_prefix) if config.vqvae else []
    for p in config.priors:
        rows += prior_rows(p, hf_index=_hf_index(p))
    template = flatten(abstract_params(config))
    return _jukebox(config, template, _fill(template, rows, d.state, lambda r: r.hf, d.path))


def _hf_index(prior: PriorConfig) -> int:
    return len(prior.downs_t) - 1 - prior.level  # HF lists the priors top first


def _hf_parts(config: JukeboxConfig, state: dict[str, np.ndarray], vqvae_prefix: str) -> JukeboxConfig:
    """The parts of a given `config` that an HF state dict holds tensors of."""
    has_vqvae = any(k.startswith(vqvae_prefix + p) for k in state for p in ("encoders.", "decoders.", "bottleneck."))
    priors = tuple(p for p in config.priors if any(k.startswith(f"priors.{_hf_index(p)}.") for k in state))
    return JukeboxConfig(vqvae=config.vqvae if has_vqvae else None, priors=priors)


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
