"""PyTorch -> jukebox-jax checkpoint conversion (the only package that imports torch).

`convert.hps` and `convert.hf_config` read the configs stored beside released weights (the
original `hps` dict, a transformers 4.40.2 `config.json`); they are pure Python and import
without torch. `convert_checkpoint` and `ConversionError` import torch when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convert.convert import convert_checkpoint
    from convert.sources import ConversionError

__all__ = ["ConversionError", "convert_checkpoint"]
_LAZY = {"ConversionError": "convert.sources", "convert_checkpoint": "convert.convert"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'convert' has no attribute {name!r}")
