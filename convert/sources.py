"""Reading PyTorch checkpoints safely: original `*.pth.tar` files and HF model directories.

Nothing is unpickled beyond tensors and plain containers (`torch.load(weights_only=True)`).
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jukebox_jax.errors import ConversionError


@dataclasses.dataclass
class OriginalFile:
    """One original checkpoint: its `hps` dict and its state dict as float32 numpy arrays."""

    path: Path
    hps: dict[str, Any]
    state: dict[str, np.ndarray]

    @property
    def is_vqvae(self) -> bool:
        return any(k.startswith(("encoders.", "decoders.", "bottleneck.")) for k in self.state)


@dataclasses.dataclass
class HFDirectory:
    """A transformers 4.40.2 `save_pretrained` directory: `config.json` and its weights."""

    path: Path
    config: dict[str, Any]
    state: dict[str, np.ndarray]


def torch_load(path: Path) -> Any:
    """`torch.load` that refuses anything but tensors and plain containers."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ConversionError(
            f"{path}: refused to unpickle: the file holds objects other than tensors and plain "
            f"containers, which could run code on load. Convert only checkpoints you trust to "
            f"safetensors or a plain state dict first. ({str(e).splitlines()[0]})"
        ) from None


def to_numpy(state: dict[str, Any], path: Path) -> dict[str, np.ndarray]:
    """Tensors -> numpy; fp16/bf16 are upcast to float32 (released 5b priors store fp16)."""
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise ConversionError(f"{path}: state dict entry {k!r} is a {type(v).__name__}, not a tensor")
        out[k] = (v.float() if v.is_floating_point() else v).numpy()
    return out


def read_original(path: Path) -> OriginalFile:
    ckpt = torch_load(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ConversionError(
            f"{path}: not an original Jukebox checkpoint (expected a dict with a 'model' state dict "
            f"and 'hps', as `make_models.save_checkpoint` writes)"
        )
    state = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    return OriginalFile(path, dict(ckpt.get("hps") or {}), to_numpy(state, path))


def read_hf(path: Path) -> HFDirectory:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConversionError(f"{path}: an HF model directory needs a config.json")
    config = json.loads(config_file.read_text())
    state: dict[str, Any] = {}
    for file in _hf_weight_files(path):
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state.update(load_file(file))
        else:
            state.update(torch_load(file))
    return HFDirectory(path, config, to_numpy(state, path))


def _hf_weight_files(path: Path) -> list[Path]:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return [path / name]
        index = path / f"{name}.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            missing = [s for s in shards if not (path / s).is_file()]
            if missing:
                raise ConversionError(f"{index}: shards {missing} are missing from {path}")
            return [path / s for s in shards]
    raise ConversionError(
        f"{path}: no weights found (expected model.safetensors, pytorch_model.bin, or a sharded "
        f"*.index.json with its shards)"
    )
