"""Checksums: what a checkpoint stores and verifies on load, and what identifies a model in a
sampling job.

SHA-256 of each array's dtype, shape and bytes, the arrays hashed on every core at once
(hashlib releases the GIL): about 1.8 GB/s per core here, so a few seconds for a full-size
prior's weights.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flax import traverse_util


def array_digest(x: Any) -> str:
    """SHA-256 (hex) of an array's dtype, shape and bytes."""
    a = np.ascontiguousarray(np.asarray(x))
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.reshape(-1).view(np.uint8) if a.size else b"")  # as bytes: memoryview refuses bfloat16
    return h.hexdigest()


def tree_digests(tree: Mapping[str, Any]) -> dict[str, str]:
    """`{"path/to/leaf": array_digest(leaf)}` for every array of a nested dict."""
    flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(tree).items()}
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return dict(zip(flat, pool.map(array_digest, flat.values())))


def leaves_digest(leaves: Sequence[Any]) -> str:
    """One digest of a sequence of arrays (e.g. a pytree's leaves, in order)."""
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return text_digest("".join(pool.map(array_digest, leaves)))


def file_digest(path: os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(config: Mapping[str, Any], digests: Mapping[str, str]) -> str:
    """One digest of a model: its config (as a JSON-able dict) and its arrays' digests."""
    return text_digest(json.dumps({"config": config, "arrays": dict(sorted(digests.items()))}, sort_keys=True))
