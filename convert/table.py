"""The name table: for every param of ours, its key in an original checkpoint, its key in a
transformers 4.40.2 checkpoint, and the axis permutation that turns one into the other.

Rows are generated from the config, so the table always has exactly the tensors the model
has. The priors add their rows beside `vqvae_rows`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np

from jukebox_jax.config import VQVAEConfig

# PyTorch -> ours axis permutations.
KEEP = ()
LINEAR = (1, 0)  # nn.Linear [out, in] -> [in, out]
CONV = (2, 1, 0)  # Conv1d [out, in, K] -> [K, in, out]
CONV_TRANSPOSE = (2, 0, 1)  # ConvTranspose1d [in, out, K] -> [K, in, out]


@dataclasses.dataclass(frozen=True)
class Row:
    """One tensor. After `perm`, axis `split[0]` is split into the sizes `split[1]` (the
    original's fused head axes, e.g. `3 * heads * head_width`), and the result fills slot
    `index` of a param stacked over layers, or the whole param when `index` is None.
    A `tied` row is a second name of a weight another row already fills: it must be equal
    where present, and may be absent from HF files (which drop tied weights)."""

    path: tuple[str, ...]  # our param path, e.g. ("vqvae", "codebook_0")
    original: str  # key in an original `*.pth.tar` state dict
    hf: str  # key in a transformers 4.40.2 state dict
    perm: tuple[int, ...] = KEEP  # transpose applied to the PyTorch tensor
    split: tuple[int, tuple[int, ...]] | None = None
    index: int | None = None
    tied: bool = False

    def our_shape(self, torch_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """The shape this tensor takes in our param (one layer's slot if stacked), or None
        if it cannot be split as the row says."""
        shape = [torch_shape[i] for i in self.perm] if self.perm else list(torch_shape)
        if self.split is not None:
            axis, sizes = self.split
            if axis >= len(shape) or shape[axis] != math.prod(sizes):
                return None
            shape[axis : axis + 1] = sizes
        return tuple(shape)

    def torch_shape(self, ours: tuple[int, ...]) -> tuple[int, ...]:
        """The PyTorch shape that gives our shape `ours` (one layer's slot if stacked): `our_shape` inverted."""
        shape = list(ours)
        if self.split is not None:
            axis, sizes = self.split
            shape[axis : axis + len(sizes)] = [math.prod(sizes)]
        return tuple(shape[self.perm.index(i)] for i in range(len(shape))) if self.perm else tuple(shape)

    def transform(self, tensor: np.ndarray) -> np.ndarray:
        """The PyTorch tensor in our layout (its shape already checked with `our_shape`)."""
        shape = self.our_shape(tensor.shape)
        return (np.transpose(tensor, self.perm) if self.perm else tensor).reshape(shape)

    def write(self, tensor: np.ndarray, out: np.ndarray) -> None:
        """`out[...] = transform(tensor)` cast to `out`'s dtype, in one pass with no temporary
        (`out`: contiguous, our layout; the split is a view of it)."""
        source = np.transpose(tensor, self.perm) if self.perm else tensor
        with np.errstate(over="ignore"):  # a value beyond a float16 target becomes inf, which the converter names
            np.copyto(out.reshape(source.shape), source, casting="unsafe")  # float to float, rounding to nearest even


def _conv(path: tuple[str, ...], original: str, hf: str, perm: tuple[int, ...] = CONV) -> Iterator[Row]:
    yield Row((*path, "kernel"), f"{original}.weight", f"{hf}.weight", perm)
    yield Row((*path, "bias"), f"{original}.bias", f"{hf}.bias")


def _resnet(path: tuple[str, ...], original: str, hf: str, depth: int) -> Iterator[Row]:
    for d in range(depth):
        yield from _conv((*path, f"block_{d}", "conv_1"), f"{original}.{d}.model.1", f"{hf}.{d}.conv1d_1")
        yield from _conv((*path, f"block_{d}", "conv_2"), f"{original}.{d}.model.3", f"{hf}.{d}.conv1d_2")


def encoder_block_rows(path: tuple[str, ...], original: str, hf: str, down_t: int, depth: int) -> Iterator[Row]:
    """An `EncoderBlock` (original `EncoderConvBlock`, a `Sequential`)."""
    for i in range(down_t):
        yield from _conv((*path, f"down_{i}"), f"{original}.model.{i}.0", f"{hf}.downsample_block.{2 * i}")
        yield from _resnet((*path, f"resnet_{i}"), f"{original}.model.{i}.1.model", f"{hf}.downsample_block.{2 * i + 1}.resnet_block", depth)
    yield from _conv((*path, "proj_out"), f"{original}.model.{down_t}", f"{hf}.proj_out")


def decoder_block_rows(
    path: tuple[str, ...], original: str, hf: str, down_t: int, depth: int, resnet_list: str = "model"
) -> Iterator[Row]:
    """A `DecoderBlock` (original `DecoderConvBock`). `resnet_list` is "blocks" where the
    original built its residual stacks with `checkpoint_res=1` (the upsampler conditioners)."""
    yield from _conv((*path, "proj_in"), f"{original}.model.0", f"{hf}.proj_in")
    for i in range(down_t):
        yield from _resnet((*path, f"resnet_{i}"), f"{original}.model.{i + 1}.0.{resnet_list}", f"{hf}.upsample_block.{2 * i}.resnet_block", depth)
        yield from _conv((*path, f"up_{i}"), f"{original}.model.{i + 1}.1", f"{hf}.upsample_block.{2 * i + 1}", CONV_TRANSPOSE)


def vqvae_rows(cfg: VQVAEConfig, hf_prefix: str = "vqvae.") -> list[Row]:
    """Rows of the VQ-VAE under our `("vqvae", ...)`. `hf_prefix` is "vqvae." inside a whole
    HF `JukeboxModel` and "" for a standalone `JukeboxVQVAE`."""
    rows: list[Row] = []
    for L in range(cfg.levels):
        depth = cfg.level_depth(L)
        for l in range(L + 1):
            o, h = f"encoders.{L}.level_blocks.{l}", f"{hf_prefix}encoders.{L}.level_blocks.{l}"
            rows += encoder_block_rows(("vqvae", f"encoders_{L}", f"block_{l}"), o, h, cfg.downs_t[l], depth)
            o, h = f"decoders.{L}.level_blocks.{l}", f"{hf_prefix}decoders.{L}.level_blocks.{l}"
            rows += decoder_block_rows(("vqvae", f"decoders_{L}", f"block_{l}"), o, h, cfg.downs_t[l], depth)
        rows += _conv(("vqvae", f"decoders_{L}", "proj_out"), f"decoders.{L}.out", f"{hf_prefix}decoders.{L}.out")
        rows.append(Row(("vqvae", f"codebook_{L}"), f"bottleneck.level_blocks.{L}.k", f"{hf_prefix}bottleneck.level_blocks.{L}.codebook"))
    return rows
