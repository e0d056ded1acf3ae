"""The saved parameter layout: a golden list of every parameter's path, shape and logical axis
names for each released file's structure, so no change of code can silently change what
checkpoints hold; the format string; and reading format-1 checkpoints.

The shapes themselves are checked against the PyTorch reference elsewhere (the converter's
name table must fill every one: tests/test_hf_priors.py on torch's meta device, and the
fixture conversions); this file pins the layout's *names and order of stacking*.

Regenerate the golden file only for an intended, versioned layout change:
    python tests/test_layout.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest

from jukebox_jax import Jukebox, JukeboxConfig, preset
from jukebox_jax.config import AttnKind, PriorConfig
from jukebox_jax.params import abstract_params, flatten, param_axes
from jukebox_jax.prior import Execution, layout

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


def test_save_writes_format_2(tmp_path):
    jb = Jukebox.init(JukeboxConfig(priors=(preset("tiny_5b"),)), __import__("jax").random.key(0))
    jb.save(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["format"] == "jukebox-jax/2"


def test_format_1_checkpoints_load(tmp_path):
    """A checkpoint in the issue-4 layout (`segment_{s}/layer_{j}` stacked over each
    segment's repeats) loads into the canonical layout, every weight in its place."""
    import jax

    config = JukeboxConfig(priors=(preset("tiny_5b_lyrics"),))
    jb = Jukebox.init(config, jax.random.key(3))
    cfg = config.prior(2)
    old = dict(jb.params["prior_level_2"])

    def v1(tree, pattern):
        scan = layout.to_execution(tree, pattern, Execution.SCAN)
        return {
            name.replace("segments_", "segment_"): {layer.replace("layers_", "layer_"): sub for layer, sub in seg.items()}
            for name, seg in scan.items()
        }

    old["transformer"] = v1(old["transformer"], cfg.transformer.pattern)
    old["lyric_encoder"] = {**old["lyric_encoder"], "transformer": v1(old["lyric_encoder"]["transformer"], cfg.lyric_encoder.pattern)}
    path = tmp_path / "v1"
    path.mkdir()
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path / "params", {"prior_level_2": old})
    (path / "config.json").write_text(json.dumps({"format": "jukebox-jax/1", "config": config.to_dict()}))
    loaded = Jukebox.load(path)
    jax.tree.map(np.testing.assert_array_equal, loaded.params, jb.params)


def test_unknown_format_is_refused(tmp_path):
    import jax

    jb = Jukebox.init(JukeboxConfig(priors=(preset("tiny_5b"),)), jax.random.key(0))
    jb.save(tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(meta | {"format": "jukebox-jax/9"}))
    with pytest.raises(ValueError, match="jukebox-jax/9.*reads 'jukebox-jax/2' and 'jukebox-jax/1'"):
        Jukebox.load(tmp_path / "ckpt")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.parent.mkdir(exist_ok=True)
    header = ["# Every parameter of each released structure: preset, path, shape, logical axis names.",
              "# The saved layout of format jukebox-jax/2 (jukebox_jax/prior/layout.py). Regenerate: python tests/test_layout.py --write"]  # fmt: skip
    GOLDEN.write_text("\n".join(header + [line for name in RELEASED for line in describe(name)]) + "\n")
    print(f"wrote {GOLDEN}")
