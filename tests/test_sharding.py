"""Sharding (`jukebox_jax/sharding.py`): meshes and rules on the host, then every sharded
check of `sharded_checks.py` on 8 CPU devices in a process of its own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from cli_process import cpu_env
from jax.sharding import AxisType, Mesh
from jax.sharding import PartitionSpec as P
from zero_models import zero_model

from jukebox_jax import Jukebox, preset, sharding
from jukebox_jax.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "spec, n, want",
    [
        ("data=2,model=4", 8, (2, 4)),
        (" model = 4 , data=2 ", 8, (2, 4)),
        ("data=2", 8, (2, 4)),
        ("model=8", 8, (1, 8)),
        ({"data": 8}, 8, (8, 1)),
        ({"data": np.int64(2)}, 8, (2, 4)),  # numpy ints are whole numbers too
        (None, 4, (1, 4)),
    ],
)
def test_mesh_shapes(spec, n, want):
    assert tuple(sharding.mesh_shape(spec, n).values()) == want


@pytest.mark.parametrize(
    "spec, match",
    [
        ("data=2,model=2", "holds 4 devices, but there are 8"),
        ("data=3", "data=3 does not divide the 8 devices"),
        ("batch=8", r"unknown axes \['batch'\]"),
        ("data:2", "'data:2' is not AXIS=SIZE"),
        ("data=2,data=4", "names data twice"),
        ("model=0", "whole numbers >= 1"),
        ({"data": 2.0}, "whole numbers >= 1"),
        (8, "a string like 'data=2,model=4'"),
    ],
)
def test_bad_meshes_are_refused(spec, match):
    with pytest.raises(InputError, match=match):
        sharding.mesh_shape(spec, 8)


def test_bad_rules_are_refused():
    with pytest.raises(InputError, match="unknown logical axis 'head'"):
        sharding.part_rules(preset("5b"), {"data": 1, "model": 4}, (("head", "model"),))
    with pytest.raises(InputError, match="'heads' -> 'tensor', not an axis of the mesh"):
        sharding.part_rules(preset("5b"), {"data": 1, "model": 4}, (("heads", "tensor"),))


def test_meshes_the_model_cannot_run_on_are_refused(tmp_path):
    """`jax.make_mesh` makes Explicit axes unless told: `shard` and `load(mesh=)` took such a
    mesh and the first prior call failed inside Flax ("with_sharding_constraint acts as an
    assert"); a mesh without data/model axes was blamed on rules the caller never gave."""
    jb = zero_model("tiny_5b")
    jb.save(tmp_path / "ckpt")
    explicit = jax.make_mesh((1, 1), sharding.MESH_AXES)
    odd_names = jax.make_mesh((1,), ("x",), axis_types=(AxisType.Auto,))
    for mesh, match in (
        (explicit, r"mesh axes \{'data': 'Explicit', 'model': 'Explicit'\} are not AxisType.Auto .*sharding.make_mesh"),
        (odd_names, r"mesh axes \(x\): sharding.RULES split the model over axes named data and model; .*or give rules="),
        ("data=1", r"mesh must be a jax.sharding.Mesh \(sharding.make_mesh\), got str"),
    ):
        with pytest.raises(InputError, match=match):
            jb.shard(mesh)
        with pytest.raises(InputError, match=match):
            Jukebox.load(tmp_path / "ckpt", mesh=mesh)
    auto = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), sharding.MESH_AXES)  # Mesh's own default: Auto
    assert jb.shard(auto).mesh is auto
    assert jb.shard(odd_names, (("batch", "x"),)).mesh is odd_names  # its own rules


def test_a_parts_rules_leave_out_the_axes_it_cannot_divide():
    """1b_lyrics' 2 heads cannot split over model=4: its caches and activations split the head
    width (kv) instead; 5b's 8 heads split (the 2-second test of `part_rules`' filter, which
    otherwise only the eight-device run checks)."""
    rules = lambda name: dict(sharding.part_rules(preset(name), {"data": 1, "model": 4}))
    assert "heads" not in rules("1b_lyrics") and rules("1b_lyrics")["kv"] == "model"
    assert rules("5b")["heads"] == "model" and rules("5b")["mlp"] == "model"


def spec_of(part: str, model: int, *path: str) -> P:
    specs = sharding.partition_specs(preset(part), {"data": 2, "model": model})
    for key in path:
        specs = specs[key]
    return specs


@pytest.mark.parametrize("model", [2, 4, 8])
def test_released_priors_split_heads_where_they_can_else_the_head_width(model):
    """5b (8 heads) splits heads; 1b_lyrics (2 heads) splits heads on 2, the head width (256)
    beyond; the upsamplers (1 head of 480) the head width. The MLP width is split everywhere;
    embeddings, LayerNorms and the layers axis never are. No devices are needed."""
    attn = ("transformer", "layers", "attn", "c_attn_kernel")  # [layers, embed, qkv, heads, kv]
    assert spec_of("5b", model, *attn) == P(None, None, None, "model", None)
    assert spec_of("1b_lyrics", model, *attn) == (P(None, None, None, "model", None) if model == 2 else P(None, None, None, None, "model"))
    assert spec_of("upsampler_level_0", model, *attn) == P(None, None, None, None, "model")
    assert spec_of("5b", model, "transformer", "layers", "mlp", "c_fc_kernel") == P(None, None, "model")
    assert spec_of("5b", model, "transformer", "layers", "ln_0", "scale") == P(None, None)
    assert spec_of("5b", model, "x_emb", "embedding") == P(None, None)


def test_an_axis_the_mesh_does_not_divide_stays_replicated():
    """The 5b_lyrics lyric encoder (4 heads of 80) on model=8 splits its head width; on
    model=7 nothing divides the heads (8, 4), head widths (150, 80) or MLP widths: all replicated."""
    enc = ("lyric_encoder", "transformer", "layers", "attn", "c_attn_kernel")
    assert spec_of("5b_lyrics", 8, *enc) == P(None, None, None, None, "model")
    assert spec_of("5b_lyrics", 8, "transformer", "layers", "attn", "c_attn_kernel") == P(None, None, None, "model", None)
    assert spec_of("5b_lyrics", 7, *enc) == P(None, None, None, None, None)
    assert spec_of("5b_lyrics", 7, "transformer", "layers", "mlp", "c_proj_kernel") == P(None, None, None)


def test_kv_caches_split_batch_and_heads():
    specs = sharding.cache_specs(preset("5b_lyrics"), {"data": 2, "model": 4}, batch=4)
    assert {tuple(s) for s in jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))} <= {
        ("data", "model", None, None),
        ("data", "model", None, None, None),
    }


def test_sharded_runs_on_eight_devices():
    """`sharded_checks.py` in a pytest process whose CPU has 8 devices."""
    env = cpu_env(8)
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "tests/sharded_checks.py"]
    run = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"sharded checks failed:\n{run.stdout[-8000:]}\n{run.stderr[-3000:]}"


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--mesh", "data=2,model=4"], "mesh 'data=2,model=4' holds 8 devices, but there are 1"),
        (["--mesh", "tensor=2"], r"unknown axes \['tensor'\]"),
        (["--process-id", "1"], "--process-id configure --distributed: add it"),
        (["--distributed", "--coordinator", "node0"], r"argument --coordinator: 'node0' is not HOST:PORT"),
        (["--distributed", "--coordinator", "node0:99999"], r"'node0:99999' is not HOST:PORT"),
    ],
)
def test_the_cli_refuses_bad_mesh_and_cluster_options(args, pattern, tmp_path, monkeypatch, capsys):
    """One-line errors, before any model is built (this process has 1 device)."""
    from jukebox_jax import cli_sample
    from jukebox_jax.cli import main

    monkeypatch.setattr(cli_sample, "load_model", lambda *_: pytest.fail("the model was built"))
    with pytest.raises(SystemExit) as e:
        main(["sample", "--model", "tiny_5b", "--out", str(tmp_path / "out"), *args])
    assert e.value.code == 2
    assert re.search(pattern, capsys.readouterr().err)
