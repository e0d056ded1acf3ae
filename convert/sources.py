"""Reading PyTorch checkpoints safely: original `*.pth.tar` files and HF model directories.

Nothing is unpickled beyond tensors and plain containers (`torch.load(weights_only=True)`).
Every failure to read a file is a `ConversionError` naming the file, never a PyTorch,
safetensors, zipfile or JSON traceback. Every tensor must be a dense float (checked here) and
finite (checked by the converter as it reads each one).

Reading is lazy where the format allows, so that converting never holds a file's weights and
the result at once: zip-format `.pth.tar`/`.bin` files are memory-mapped (`torch.load(mmap=True)`)
and safetensors files are mapped by their library; the converter reads each tensor as it
converts it, then `release`s its pages. Old non-zip `.pth.tar` files (torch < 1.6) are read whole
(their format has no index to map); the converter lets go of each tensor as it converts it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import mmap
import pickle
import re
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import torch

from jukebox_jax.errors import ConversionError

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6; older files are a bare pickle
_DIRECTORY_ATTRIBUTES = 0x10 | (0o040000 << 16)  # zip external attributes: MS-DOS directory, Unix S_IFDIR
_MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)  # POSIX systems
_libc = ctypes.CDLL(None) if _MADV_DONTNEED is not None else None


# The first names of the original's tensors: a VQ-VAE's, and a prior's (`y_emb.*` and
# `conditioner_blocks.*` come only with `prior.*`).
VQVAE_PREFIXES = ("encoders.", "decoders.", "bottleneck.")
PRIOR_PREFIX = "prior."


@dataclasses.dataclass
class OriginalFile:
    """One original checkpoint: its `hps` dict and its state dict (dense float tensors, in the
    file's dtypes; `mapped`: memory-mapped from the file, see `release`)."""

    path: Path
    hps: dict[str, Any]
    state: dict[str, torch.Tensor]
    mapped: bool

    @property
    def is_vqvae(self) -> bool:
        return any(k.startswith(VQVAE_PREFIXES) for k in self.state)


@dataclasses.dataclass
class HFDirectory:
    """A transformers 4.40.2 `save_pretrained` directory: `config.json` and its weights (as
    `OriginalFile.state`; `mapped` if every shard is)."""

    path: Path
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    mapped: bool


def few(names: list[str], n: int = 5) -> str:
    """`names` for a message: the first `n`, then how many more."""
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def count(xs: list, noun: str) -> str:
    """"1 tensor", "3 tensors"."""
    return f"{len(xs)} {noun}{'' if len(xs) == 1 else 's'}"


def check_file(path: Path) -> None:
    """Refuses a path that is not a non-empty regular file."""
    if not path.exists():
        raise ConversionError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise ConversionError(f"{path}: not a file (a directory?); give the checkpoint file itself")
    if path.stat().st_size == 0:
        raise ConversionError(f"{path}: empty file (0 bytes); the download or copy did not finish, fetch it again")


def verify_zip(path: Path) -> None:
    """Checks the CRC-32 of every member of a zip-format checkpoint, which torch.load does not.

    Costs one extra read of the file (zlib's CRC-32 runs at several GB/s, so the disk sets
    the pace: seconds for the 5b priors' GBs, nothing for the page-cached re-read that follows).
    """
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()  # the first member whose CRC or local header disagrees
            # torch's reader reads no bytes for a member marked as a directory: its tensor would be uninitialised memory
            folders = [i.filename for i in z.infolist() if i.external_attr & _DIRECTORY_ATTRIBUTES]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as e:
        raise ConversionError(
            f"{path}: truncated or corrupt (not a readable zip archive: {e}); fetch the file again"
        ) from None
    if bad is not None:
        raise ConversionError(
            f"{path}: corrupt: member {bad!r} fails its CRC-32 check (bytes changed after saving); fetch the file again"
        )
    if folders:
        raise ConversionError(f"{path}: corrupt: member {folders[0]!r} is marked as a directory; fetch the file again")


def torch_load(path: Path) -> tuple[Any, bool]:
    """`torch.load` that refuses anything but tensors and plain containers, and any file
    that is not an intact PyTorch checkpoint; and whether its tensors are memory-mapped (those
    of a zip-format file are; an old non-zip file is read whole)."""
    check_file(path)
    with path.open("rb") as f:
        mapped = f.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    if mapped:
        verify_zip(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mapped), mapped
    except pickle.UnpicklingError as e:
        if hostile := _GLOBAL.search(str(e)):  # a global torch allows not, or whose module it blocks (os, sys)
            raise ConversionError(
                f"{path}: refused to unpickle: the file holds objects other than tensors and plain "
                f"containers, which could run code on load (the global {hostile.group(1)}). Convert only "
                f"checkpoints you trust to safetensors or a plain state dict first."
            ) from None
        detail = _unpickler_detail(str(e))
        raise ConversionError(f"{path}: not a PyTorch checkpoint, or corrupt (its pickle: {detail}); fetch the file again") from None
    except Exception as e:  # noqa: BLE001 - torch's readers raise many types on damaged input
        raise ConversionError(
            f"{path}: not a PyTorch checkpoint, or corrupt ({type(e).__name__}: {_first_sentence(str(e))}); fetch the file again"
        ) from None


_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")


def _unpickler_detail(message: str) -> str:
    """What torch's weights-only unpickler objected to, without its advice to retry unsafely."""
    m = re.search(r"WeightsUnpickler error:\s*(.*?)(?: was not an allowed global|\. Please use|\n\n|$)", message, re.DOTALL)
    return m.group(1).strip() if m else _first_sentence(message)


def _first_sentence(message: str) -> str:
    message = re.sub(r"^\[enforce fail at [^\]]*\][\s.]*", "", message.strip())  # c10's source location
    return re.split(r"(?<=\.)\s", message, maxsplit=1)[0] if message else "no detail"


def check_state(state: Any, path: Path) -> dict[str, torch.Tensor]:
    """A state dict, refusing, naming them, keys that are not strings, values that are not
    tensors and tensors that are not dense floats (int, bool, complex, sparse). Reads no values."""
    if not isinstance(state, Mapping):
        raise ConversionError(f"{path}: the state dict is a {type(state).__name__}, not a dict of name -> tensor")
    bad_keys = [repr(k) for k in state if not isinstance(k, str)]
    if bad_keys:
        raise ConversionError(f"{path}: {count(bad_keys, 'state dict key')} not a string: {few(bad_keys)}")
    not_tensors = [f"{k} ({type(v).__name__})" for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ConversionError(f"{path}: {count(not_tensors, 'state dict value')} not a tensor: {few(not_tensors)}")
    not_float = [
        f"{k} ({v.dtype if v.layout is torch.strided else v.layout})"
        for k, v in state.items()
        if v.layout is not torch.strided or not v.is_floating_point()
    ]
    if not_float:
        raise ConversionError(
            f"{path}: {count(not_float, 'tensor')} not dense floating point, as every Jukebox weight is: "
            f"{few(not_float)}; the file is corrupt or not a Jukebox checkpoint"
        )
    empty = [k for k, v in state.items() if v.is_meta]
    if empty:
        raise ConversionError(
            f"{path}: {count(empty, 'tensor')} on the meta device, with shapes but no values: {few(empty)}; "
            "save the model after its weights are loaded or trained"
        )
    return dict(state)


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def numpy_view(tensor: torch.Tensor) -> np.ndarray:
    """A float tensor's values as numpy in its own dtype, without a copy (a bfloat16 tensor as
    `ml_dtypes.bfloat16`); float8 types, which numpy lacks, as a float32 copy. Parameters
    (`requires_grad`, e.g. from `state_dict(keep_vars=True)`) are read alike."""
    tensor = tensor.detach()
    if tensor.dtype in _NUMPY_FLOATS:
        return tensor.numpy()
    if tensor.dtype is torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.float().numpy()


def release(tensor: torch.Tensor) -> None:
    """Drops the pages of a tensor memory-mapped from a file out of this process's resident
    set (`madvise(MADV_DONTNEED)`): they stay in the page cache, reclaimable, and reading the
    tensor again maps them back in. Without this, every page read stays resident until the
    whole file is unmapped. Only for mapped tensors: anonymous memory would read as zeros."""
    if _MADV_DONTNEED is None:
        return
    storage = tensor.untyped_storage()
    start = -(-storage.data_ptr() // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages inside the tensor's bytes
    end = (storage.data_ptr() + storage.nbytes()) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > start:
        _libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED)


def read_original(path: Path) -> OriginalFile:
    ckpt, mapped = torch_load(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ConversionError(
            f"{path}: not an original Jukebox checkpoint (expected a dict with a 'model' state dict "
            f"and 'hps', as `make_models.save_checkpoint` writes)"
        )
    model, hps = ckpt["model"], ckpt.get("hps") or {}
    if not isinstance(hps, Mapping) or not all(isinstance(k, str) for k in hps):
        raise ConversionError(
            f"{path}: 'hps' is a {type(hps).__name__}, not a dict of hyperparameters; "
            f"pass config= a preset name (e.g. '5b_lyrics') to convert the weights without them"
        )
    state = check_state(model, path)
    unprefixed = {k.removeprefix("module."): v for k, v in state.items()}
    if len(unprefixed) != len(state):
        raise ConversionError(f"{path}: the state dict holds some names both with and without DDP's 'module.' prefix")
    if not any(k.startswith((*VQVAE_PREFIXES, PRIOR_PREFIX)) for k in unprefixed):
        raise ConversionError(
            f"{path}: holds no Jukebox weights (its tensors: {few(sorted(unprefixed)) or 'none'}; a VQ-VAE's names "
            f"begin with {' or '.join(map(repr, VQVAE_PREFIXES))}, a prior's with {PRIOR_PREFIX!r}); give a "
            "vqvae.pth.tar or prior_level_*.pth.tar of the released models"
        )
    return OriginalFile(path, dict(hps), unprefixed, mapped)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object."""
    check_file(path)
    try:
        d = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ConversionError(f"{path}: not valid JSON ({e}); restore the file from where the model came from") from None
    if not isinstance(d, dict):
        raise ConversionError(
            f"{path}: holds a JSON {type(d).__name__}, not an object; restore the file from where the model came from"
        )
    return d


def read_hf(path: Path) -> HFDirectory:
    config_file = path / "config.json"
    if not config_file.exists():
        raise ConversionError(
            f"{path}: a directory without config.json; give an HF model directory (config.json and "
            f"its weights) or the original *.pth.tar files"
        )
    config = read_json(config_file)
    if str(config.get("format", "")).startswith("jukebox-jax/"):
        raise ConversionError(
            f"{path}: already a jukebox-jax checkpoint ({config['format']}), nothing to convert; load it "
            f"with Jukebox.load or pass it to `jukebox-jax sample --model`"
        )
    state: dict[str, torch.Tensor] = {}
    mapped = True
    for file in _hf_weight_files(path):
        part, part_mapped = (_read_safetensors(file), True) if file.suffix == ".safetensors" else torch_load(file)
        part = check_state(part, file)
        twice = sorted(state.keys() & part.keys())
        if twice:
            raise ConversionError(f"{file}: {count(twice, 'tensor')} also in another shard: {few(twice)}")
        state |= part
        mapped &= part_mapped
    return HFDirectory(path, config, state, mapped)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, views of its library's memory map."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    check_file(path)
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ConversionError(f"{path}: not a safetensors file, or corrupt ({e}); fetch the file again") from None


def _hf_weight_files(path: Path) -> list[Path]:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).exists():
            return [path / name]
        index = path / f"{name}.index.json"
        if index.exists():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not all(isinstance(s, str) and s == Path(s).name for s in weight_map.values()):
                raise ConversionError(f"{index}: 'weight_map' must map tensor names to shard file names in {path}")
            shards = sorted(set(weight_map.values()))
            missing = [s for s in shards if not (path / s).exists()]
            if missing:
                raise ConversionError(f"{index}: shards {missing} are missing from {path}")
            return [path / s for s in shards]
    raise ConversionError(
        f"{path}: no weights found (expected model.safetensors, pytorch_model.bin, or a sharded "
        f"*.index.json with its shards)"
    )
