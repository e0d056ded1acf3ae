"""The canonical parameter layout of a transformer stack, and the execution layouts derived
from it. This is the one place that says how layers are stored.

Canonical (what checkpoints hold, `Jukebox.params`, the converter writes; a pure function of
the config): layers are stacked by original layer index, one stack per layer shape,

    transformer/layers/{ln_0, attn, ln_1, mlp}/...        [n_self, ...]   every layer but ENC_DEC
    transformer/cross_layers/{ln_0, attn, ln_1, mlp}/...  [n_cross, ...]  ENC_DEC layers (5b_lyrics)

where original layer `d` is entry `i` of its stack, `i` counting the layers of that stack
before `d` (so for every released prior but 5b_lyrics, entry `i` is layer `i`). Axis names:
`layers` first, then the layer's own (`transformer.py`).

Execution layouts (what the Flax `Transformer` module's variables look like):
- UNROLLED: `layers_{d}/...`, one subtree per layer, `d` the original index;
- SCAN: `segments_{s}/layers_{j}/...`, stacked over the segment's repeats (`layer_groups`).
They are derived with `to_execution` (inside jit: slices; from concrete arrays on a CPU,
`per_layer` makes the UNROLLED layout without copying a byte) and converted back with
`to_canonical` (at init).
"""

from __future__ import annotations

import enum
from typing import Any

import jax
import jax.numpy as jnp

from jukebox_jax.config import AttnKind
from jukebox_jax.layers import cpu_device, unstack
from jukebox_jax.prior.transformer import Execution, layer_groups

Tree = dict[str, Any]
SELF, CROSS = "layers", "cross_layers"


class Layout(enum.Enum):
    """How a transformer's params are laid out."""

    CANONICAL = "canonical"
    UNROLLED = "unrolled"
    SCAN = "scan"


EXECUTION_LAYOUT = {Execution.SCAN: Layout.SCAN, Execution.UNROLLED: Layout.UNROLLED}  # what each form applies


def layout_of(tree: Tree) -> Layout:
    if SELF in tree or CROSS in tree:
        return Layout.CANONICAL
    return Layout.UNROLLED if "layers_0" in tree else Layout.SCAN


def slots(pattern: tuple[AttnKind, ...]) -> list[tuple[str, int]]:
    """`(stack, entry)` of each original layer."""
    count = {SELF: 0, CROSS: 0}
    out = []
    for kind in pattern:
        stack = CROSS if kind is AttnKind.ENC_DEC else SELF
        out.append((stack, count[stack]))
        count[stack] += 1
    return out


def stack_sizes(pattern: tuple[AttnKind, ...]) -> dict[str, int]:
    """Entries per canonical stack (stacks with no layer are absent)."""
    sizes: dict[str, int] = {}
    for stack, _ in slots(pattern):
        sizes[stack] = sizes.get(stack, 0) + 1
    return sizes


def _take(tree: Tree, index) -> Tree:
    return jax.tree.map(lambda x: x[index], tree)


def _stack(trees: list[Tree]) -> Tree:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def to_execution(tree: Tree, pattern: tuple[AttnKind, ...], execution: Execution) -> Tree:
    """Canonical -> the `execution` layout (slices; meant for inside jit)."""
    where = slots(pattern)
    if execution is Execution.UNROLLED:
        return {f"layers_{d}": _take(tree[stack], i) for d, (stack, i) in enumerate(where)}
    out, first = {}, 0
    for s, (unit, reps) in enumerate(layer_groups(pattern)):
        out[f"segments_{s}"] = {
            f"layers_{j}": _strided(tree, where[first + j], where[first + j + len(unit) * (reps - 1)], reps)
            for j in range(len(unit))
        }
        first += len(unit) * reps
    return out


def _strided(tree: Tree, start: tuple[str, int], last: tuple[str, int], reps: int) -> Tree:
    """Entries `start..last` of one stack, `reps` of them evenly spaced (a segment's layer j)."""
    stack, i0 = start
    step = (last[1] - i0) // (reps - 1) if reps > 1 else 1
    return jax.tree.map(lambda x: x[i0 : last[1] + 1 : step], tree[stack])


def to_canonical(tree: Tree, pattern: tuple[AttnKind, ...]) -> Tree:
    """An execution layout -> canonical (stacks the layers; used at init)."""
    if layout_of(tree) is Layout.CANONICAL:
        return tree
    if layout_of(tree) is Layout.UNROLLED:
        layers = [tree[f"layers_{d}"] for d in range(len(pattern))]
    else:
        layers = []
        for s, (unit, reps) in enumerate(layer_groups(pattern)):
            seg = tree[f"segments_{s}"]
            layers += [_take(seg[f"layers_{j}"], r) for r in range(reps) for j in range(len(unit))]
    out = {}
    for stack in stack_sizes(pattern):
        out[stack] = _stack([layer for layer, (s, _) in zip(layers, slots(pattern)) if s == stack])
    return out


def per_layer(tree: Tree, pattern: tuple[AttnKind, ...]) -> Tree:
    """Canonical concrete arrays -> the UNROLLED layout, one buffer per layer, computed
    eagerly (what decoding runs on a CPU). On a single CPU device each layer's buffer is a
    view of the stacked one (no copy); elsewhere each is a device copy of its slice."""
    device = cpu_device(tree)
    cut = {stack: jax.tree.map(lambda x: unstack(x, device, copy=False), tree[stack]) for stack in stack_sizes(pattern)}
    return {
        f"layers_{d}": jax.tree.map(lambda xs, i=i: xs[i], cut[stack], is_leaf=lambda x: isinstance(x, list))
        for d, (stack, i) in enumerate(slots(pattern))
    }
