"""Damage for tests of what a damaged file does: one byte flipped in place."""

from __future__ import annotations

from pathlib import Path


def flip(file: Path, at: float, xor: int = 0xFF) -> None:
    """XORs the byte at fraction `at` of `file` (0: the first, 1: the last) with `xor`."""
    data = bytearray(file.read_bytes())
    data[min(int(at * len(data)), len(data) - 1)] ^= xor
    file.write_bytes(bytes(data))
