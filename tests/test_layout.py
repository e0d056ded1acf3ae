"""The saved parameter layout: a golden list of every parameter's path, shape and logical axis
names for each released file's structure, so no change of code can silently change what
checkpoints hold (the format string and reading format-1 checkpoints: tests/test_checkpoint.py).

The shapes themselves are checked against the PyTorch reference elsewhere (the converter's
name table must fill every one: tests/test_hf_priors.py on torch's meta device, and the
fixture conversions); this file pins the layout's *names and order of stacking*.

Regenerate the golden file only for an intended, versioned layout change:
    python tests/test_layout.py --write
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jukebox_jax import JukeboxConfig, preset
from jukebox_jax.config import AttnKind, PriorConfig
from jukebox_jax.params import abstract_params, flatten, param_axes
from jukebox_jax.prior import layout

GOLDEN = Path(__file__).parent / "golden" / "param_layout.txt"
RELEASED = ["vqvae", "5b", "5b_lyrics", "1b_lyrics", "upsampler_level_1", "upsampler_level_0"]


def describe(name: str) -> list[str]:
    """One line per parameter: `preset path shape names`."""
    part = preset(name)
    config = JukeboxConfig(priors=(part,)) if isinstance(part, PriorConfig) else JukeboxConfig(vqvae=part)
    shapes, axes = flatten(abstract_params(config)), flatten(param_axes(config))
    return [f"{name} {'/'.join(p)} {list(shapes[p].shape)} {list(axes[p])}" for p in sorted(shapes)]


@pytest.mark.parametrize("name", RELEASED)
def test_released_layouts_are_the_golden_ones(name):
    golden = [line for line in GOLDEN.read_text().splitlines() if line.startswith(f"{name} ")]
    assert golden, f"{name} is missing from {GOLDEN}"
    assert describe(name) == golden


def test_canonical_stacks_follow_the_original_layer_order():
    """5b_lyrics: 72 self-attention layers in `layers`, the 7 enc-dec layers (18, 28, ..., 78)
    in `cross_layers`, each in original order; every other released prior has one stack with
    entry i = layer i."""
    pattern = preset("5b_lyrics").transformer.pattern
    slots = layout.slots(pattern)
    assert [d for d, (stack, _) in enumerate(slots) if stack == layout.CROSS] == list(range(18, 79, 10))
    assert [i for stack, i in slots if stack == layout.CROSS] == list(range(7))
    assert [i for stack, i in slots if stack == layout.SELF] == list(range(72))
    for name in ("5b", "1b_lyrics", "upsampler_level_0"):
        p = preset(name).transformer.pattern
        assert AttnKind.ENC_DEC not in p and layout.slots(p) == [(layout.SELF, d) for d in range(len(p))]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.parent.mkdir(exist_ok=True)
    header = ["# Every parameter of each released structure: preset, path, shape, logical axis names.",
              "# The saved layout of format jukebox-jax/2 (jukebox_jax/prior/layout.py). Regenerate: python tests/test_layout.py --write"]  # fmt: skip
    GOLDEN.write_text("\n".join(header + [line for name in RELEASED for line in describe(name)]) + "\n")
    print(f"wrote {GOLDEN}")
