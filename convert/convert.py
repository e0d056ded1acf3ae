"""`convert_checkpoint`: PyTorch Jukebox checkpoints (original or HF) -> `Jukebox`."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import jax
import numpy as np
import torch
from flax import traverse_util

from convert.hf_config import config_from_hf
from convert.hps import prior_config_from_hps, vqvae_config_from_hps
from convert.sources import (
    VQVAE_PREFIXES,
    ConversionError,
    HFDirectory,
    OriginalFile,
    count,
    few,
    numpy_view,
    read_hf,
    read_original,
    release,
)
from convert.table import Row, vqvae_rows
from convert.table_prior import prior_rows
from jukebox_jax import Jukebox
from jukebox_jax.config import (
    ConfigError,
    DType,
    JukeboxConfig,
    PriorConfig,
    VQVAEConfig,
    WeightFormat,
)
from jukebox_jax.params import abstract_params, describe_mismatch, flatten

T = TypeVar("T")


def convert_checkpoint(
    *paths: str | os.PathLike,
    config: JukeboxConfig | VQVAEConfig | PriorConfig | str | None = None,
    dtype: DType | str | None = None,
) -> Jukebox:
    """Converts PyTorch Jukebox weights into a `Jukebox`, one tensor at a time: the files are
    memory-mapped where their format allows, and each tensor is cast once, from the file's
    dtype, into the result (so the host holds the result, plus one tensor in flight).

    Args:
      paths: either any set of original files (`vqvae.pth.tar`, `prior_level_{0,1,2}.pth.tar`),
        or one HF model directory (`config.json` + `pytorch_model*.bin` or `*.safetensors`,
        optionally sharded with an index).
      config: the structure, overriding what the files say: a `JukeboxConfig`, one part's
        `VQVAEConfig` or `PriorConfig`, or a preset name, of a whole model ("5b_lyrics",
        "tiny_5b", ...) or of one part ("vqvae", "upsampler_level_1", ...). The result holds
        the parts of it that the files hold. Needed for a prior file given without its VQ-VAE
        file.
      dtype: the priors' weight and compute dtype ('float32', 'bfloat16', 'float16'): the
        result equals converting to float32, then `Jukebox.astype(dtype)`, bit for bit. The
        5b files' fp16 weights go straight into a 16-bit target (float32 holds them exactly).
        None keeps the config's (float32, unless a given config says otherwise).

    Raises `ConversionError` naming the file for anything unreadable, corrupt (a zip member
    failing its CRC-32, NaN or Inf weights, non-float tensors) or not fitting: every missing,
    unexpected and mis-shaped tensor is named; and for weights beyond float16's range when
    converting to it. `ConfigError` for an unknown `dtype`.
    """
    dtype = None if dtype is None else DType.parse(dtype)
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
        return _from_hf(read_hf(paths[0]), _resolve(config), dtype)
    return _from_original([read_original(p) for p in paths], _resolve(config), dtype)


def _resolve(config: JukeboxConfig | VQVAEConfig | PriorConfig | str | None) -> JukeboxConfig | None:
    """The given structure as a whole model's config: a preset name (`JukeboxConfig.from_preset`)
    or one part's config."""
    if isinstance(config, str):
        try:
            return JukeboxConfig.from_preset(config)
        except ConfigError as e:
            raise ConversionError(str(e)) from None
    if isinstance(config, VQVAEConfig):
        config = JukeboxConfig(vqvae=config)
    elif isinstance(config, PriorConfig):
        config = JukeboxConfig(priors=(config,))
    elif config is not None and not isinstance(config, JukeboxConfig):
        raise ConversionError(
            f"config must be a JukeboxConfig, a VQVAEConfig or PriorConfig, or a preset name, got {type(config).__name__}"
        )
    if config is not None and any(p.precision.weights is not WeightFormat.FLOAT for p in config.priors):
        raise ConversionError("the given config declares int8 weights; convert with float weights, then `Jukebox.quantize('int8')`")
    return config


def _from_original(files: list[OriginalFile], config: JukeboxConfig | None, dtype: DType | None) -> Jukebox:
    vqvae_files = [f for f in files if f.is_vqvae]
    prior_files = [f for f in files if not f.is_vqvae]
    if len(vqvae_files) > 1:
        raise ConversionError(f"more than one VQ-VAE file: {[str(f.path) for f in vqvae_files]}")
    for level in {_level(f) for f in prior_files} - {None}:
        same = [str(f.path) for f in prior_files if _level(f) == level]
        if len(same) > 1:
            raise ConversionError(f"{', '.join(same)}: each holds a prior of level {level!r}; give one file per level")
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
    config = config if dtype is None else config.astype(dtype)
    template = flatten(abstract_params(config))
    flat = {}
    if vqvae_files:
        flat |= _fill(template, vqvae_rows(config.vqvae), vqvae_files[0], lambda r: r.original)
    for f, prior in zip(prior_files, priors):
        flat |= _fill(template, prior_rows(prior, 0), f, lambda r: r.original)
    return _jukebox(config, template, flat)


def _prior_of(f: OriginalFile, config: JukeboxConfig) -> PriorConfig:
    """The prior of `config` that file `f` holds: the one of the level its hps give, else the one
    whose tensor names the file holds exactly."""
    level = _level(f)
    if level is not None:
        candidates = [p for p in config.priors if p.level == level]
    else:
        candidates = [p for p in config.priors if _names_fit(prior_rows(p, 0), f.state)]
    if len(candidates) != 1:
        says = f"its hps say level {level}" if level is not None else "its hps give no level"
        has = f"levels {[p.level for p in config.priors]}" if config.priors else "no prior"
        examples = {0: "'upsampler_level_0'", 1: "'upsampler_level_1'", None: "'upsampler_level_1' or 'upsampler_level_0'"}
        example = examples.get(level, "'5b', '5b_lyrics' or '1b_lyrics'")
        raise ConversionError(
            f"{f.path}: cannot tell which prior of the config it holds ({says}; the config has {has}); pass config= "
            f"the preset of that prior alone, e.g. {example}"
        )
    return candidates[0]


def _level(f: OriginalFile) -> int | None:
    """The level a prior file's hps give, if any."""
    level = f.hps.get("level")
    if level is not None and type(level) is not int:
        raise ConversionError(f"{f.path}: its hps say level={level!r}, not an integer level")
    return level


def _names_fit(rows: list[Row], state: dict[str, torch.Tensor]) -> bool:
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


def _from_hf(d: HFDirectory, config: JukeboxConfig | None, dtype: DType | None) -> Jukebox:
    standalone = d.config.get("model_type") == "jukebox_vqvae"
    vqvae_prefix = "" if standalone else "vqvae."
    if config is None:
        config = _read_config(d.path / "config.json", lambda: config_from_hf(d.config))
    else:
        config = _hf_parts(config, d, vqvae_prefix)
    config = config if dtype is None else config.astype(dtype)
    rows = vqvae_rows(config.vqvae, hf_prefix=vqvae_prefix) if config.vqvae else []
    for p in config.priors:
        rows += prior_rows(p, hf_index=_hf_index(p))
    template = flatten(abstract_params(config))
    return _jukebox(config, template, _fill(template, rows, d, lambda r: r.hf))


def _hf_index(prior: PriorConfig) -> int:
    return len(prior.downs_t) - 1 - prior.level  # HF lists the priors top first


def _hf_parts(config: JukeboxConfig, d: HFDirectory, vqvae_prefix: str) -> JukeboxConfig:
    """The parts of a given `config` that the HF directory `d` holds tensors of; it must give
    every part `d` holds (a part's config given for a whole model named each other tensor)."""
    has_vqvae = any(k.startswith(tuple(vqvae_prefix + p for p in VQVAE_PREFIXES)) for k in d.state)
    held = sorted({int(m[1]) for k in d.state if (m := re.match(r"priors\.(\d+)\.", k))})  # HF's prior indices
    given = {_hf_index(p) for p in config.priors}
    if (has_vqvae and config.vqvae is None) or set(held) - given:
        levels = len(config.priors[0].downs_t) if config.priors else config.vqvae.levels
        named = lambda i: f"priors.{i} (level {levels - 1 - i})"  # HF lists the priors top first
        parts = ["the VQ-VAE"] * has_vqvae + [named(i) for i in held]
        gives = ["the VQ-VAE"] * (config.vqvae is not None) + [named(i) for i in sorted(given)]
        raise ConversionError(
            f"{d.path} holds {', '.join(parts)}; the config gives {', '.join(gives) or 'no part'}: pass config= of every "
            "part it holds (e.g. its whole-model preset), or none to read its config.json"
        )
    priors = tuple(p for p in config.priors if _hf_index(p) in held)
    return JukeboxConfig(vqvae=config.vqvae if has_vqvae else None, priors=priors)


def _fill(template: dict, rows: list[Row], source: OriginalFile | HFDirectory, key) -> dict:
    """Our params named by `rows`, in the template's dtypes, from `source`'s tensors, demanding
    exact key-set equality (tied copies may be absent) and checking every shape, tied copy and
    value. Reads one tensor at a time, each cast once into its place in the result, and lets
    go of it (`sources.release`; `source.state` is consumed)."""
    state, path = source.state, source.path
    wanted = {key(r): r for r in rows}
    required = {k for k, r in wanted.items() if not r.tied}
    missing = sorted(required - state.keys())
    unexpected = sorted(state.keys() - wanted.keys())
    misshaped = [
        f"{name}: {tuple(state[name].shape)} does not give our {'/'.join(wanted[name].path)} {_slot_shape(template, wanted[name])}"
        for name in sorted(wanted.keys() & state.keys())
        if wanted[name].our_shape(tuple(state[name].shape)) != _slot_shape(template, wanted[name])
    ]
    if missing or unexpected or misshaped:
        raise ConversionError(f"{path}: " + describe_mismatch(missing, unexpected, misshaped, "its tensors"))
    owned = sorted(name for name, r in wanted.items() if not r.tied)
    for name, row in wanted.items():  # before anything is released
        if row.tied and name in state:
            owner = next(n for n in owned if wanted[n].path == row.path)  # a tied weight is not stacked
            tied, own = (wanted[n].transform(numpy_view(state[n])) for n in (name, owner))
            if not np.array_equal(tied, own, equal_nan=True):  # a NaN is named below
                raise ConversionError(f"{path}: {name} should be the same tensor as our {'/'.join(row.path)} (tied), but differs")
    flat = {p: _empty(template[p].shape, template[p].dtype) for p in {wanted[n].path for n in owned}}
    non_finite, overflow, beyond_float16_only = [], [], True
    for name in owned:
        row, tensor = wanted[name], state.pop(name)
        out = flat[row.path] if row.index is None else flat[row.path][row.index]
        row.write(numpy_view(tensor), out)
        if not np.isfinite(out).all():  # NaN or Inf in the file, or (float16) a value beyond the target's range
            values = numpy_view(tensor)
            if n := values.size - np.count_nonzero(np.isfinite(values)):
                non_finite.append(f"{name} ({n} of {values.size} values)")
            else:
                overflow.append(f"{name} (|x| up to {np.abs(values).max():.4g}, beyond {out.dtype}'s {np.finfo(out.dtype).max:g})")
                beyond_float16_only &= out.dtype == np.float16
        if source.mapped:
            release(tensor)
    if non_finite:
        raise ConversionError(
            f"{path}: {count(non_finite, 'tensor')} with NaN or Inf: {few(non_finite)}; the weights are corrupt "
            f"(or training diverged), convert a healthy checkpoint"
        )
    if overflow:
        raise ConversionError(
            f"{path}: {count(overflow, 'tensor')} with values beyond the target dtype's range: {few(overflow)}; "
            + ("convert to bfloat16 or float32 instead" if beyond_float16_only else "the weights are corrupt")
        )
    return {p: jax.device_put(flat.pop(p)) for p in list(flat)}  # one at a time: any copy a device makes is freed as it goes


def _slot_shape(template: dict, row: Row) -> tuple[int, ...]:
    """The shape `row`'s tensor takes in our param: one layer's slot if stacked."""
    shape = tuple(template[row.path].shape)
    return shape[1:] if row.index is not None else shape


def _empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Uninitialised host memory aligned to 64 bytes, which `jax.device_put` on the CPU adopts
    without a copy (its pages are committed only as they are written)."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _jukebox(config: JukeboxConfig, template: dict, flat: dict) -> Jukebox:
    if flat.keys() != template.keys():  # the table and the modules must agree
        raise AssertionError(f"name table out of sync with the model: {sorted(map('/'.join, flat.keys() ^ template.keys()))}")
    return Jukebox(config, traverse_util.unflatten_dict(flat))
