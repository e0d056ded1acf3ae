"""Sharded runs on 8 CPU devices, against the same model on one device. Not collected by the
suite: `test_sharding.py` runs this file in a pytest process of its own, whose XLA_FLAGS
give the CPU 8 devices (the flag is read once, when JAX first starts its CPU backend).

Every tiny structure (5b, 5b_lyrics, 1b_lyrics, both upsamplers; random weights) on meshes
8x1, 1x8 and 2x4 (data x model), batch 8 so that `data` splits it on every mesh: logits and
weights everywhere; sampling (greedy tokens, sharded caches) on 2x4 for every structure but
upsampler level 0 (level 1's transformer) and on every mesh for tiny_5b, since compiling a
sharded sampler costs 5-30 s here (JUKEBOX_FULL_CHECKS=1 samples every structure on every mesh)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from cli_process import cpu_env

from jukebox_jax import Jukebox, JukeboxConfig, preset, sharding
from jukebox_jax.prior import condition, sequence
from jukebox_jax.sampling import Greedy, decode, prefill

STRUCTURES = ["tiny_5b", "tiny_5b_lyrics", "tiny_1b_lyrics", "tiny_upsampler_level_1", "tiny_upsampler_level_0"]
MESHES = ["data=8", "model=8", "data=2,model=4"]
BATCH, N_TOKENS = 8, 10  # N_TOKENS crosses a block boundary of every tiny prior (blocks of <= 9 positions)
SAMPLED = {(s, m) for s in STRUCTURES for m in MESHES if (m == "data=2,model=4" and s != "tiny_upsampler_level_0") or s == "tiny_5b"}
if os.environ.get("JUKEBOX_FULL_CHECKS") == "1":
    SAMPLED = {(s, m) for s in STRUCTURES for m in MESHES}
RTOL = 1e-5  # sharded logits: float32 sums in another order (observed ~3e-7 of the largest logit)


def test_eight_devices():
    assert jax.device_count() == 8, "run me with XLA_FLAGS=--xla_force_host_platform_device_count=8 (test_sharding.py does)"


def trim(spec) -> tuple:
    """A `PartitionSpec` as a tuple without trailing Nones (JAX may write them or not)."""
    spec = tuple(spec)
    while spec and spec[-1] is None:
        spec = spec[:-1]
    return spec


@pytest.fixture(scope="module", params=STRUCTURES)
def case(request):
    """The unsharded model (random weights at init scale 1: the presets' smaller scales leave
    near-ties of 1e-7 in the logits), its inputs, greedy tokens and logits on them."""
    cfg = preset(request.param)
    cfg = dataclasses.replace(cfg, transformer=dataclasses.replace(cfg.transformer, init_scale=1.0))
    jb = Jukebox.init(JukeboxConfig(priors=(cfg,)), jax.random.key(0))
    labels = jb.labels(cfg.level, total_seconds=30.0, lyrics="the sharded song", n_samples=BATCH)
    labels[:, 3] = np.arange(BATCH)  # a different artist per sample
    upper = np.random.default_rng(0).integers(0, cfg.l_bins, (BATCH, cfg.n_ctx // cfg.cond_downsample)) if cfg.conditioner else None
    tokens = np.asarray(jb.sample(cfg.level, jax.random.key(1), labels, N_TOKENS, upper, top_k=1))
    logits = np.asarray(jb.prior_forward(cfg.level, tokens, labels, upper).logits)
    return request.param, jb, cfg, (labels, upper), tokens, logits


@pytest.mark.parametrize("mesh_spec", MESHES)
def test_sharded_runs_equal_unsharded(case, mesh_spec):
    """On the mesh: teacher-forced logits within `RTOL` of the largest; greedy tokens equal
    (each sampled position's top-2 margin is over 10x what `RTOL` lets a logit move, so the
    demand is fair); each device holds 1/model of every weight split over `model`, and every
    attention and MLP kernel is split where `model` > 1; the token buffer and every KV cache,
    after prefill and after decode steps, split as `sharding.cache_specs` says."""
    name, jb, cfg, (labels, upper), tokens, logits = case
    mesh = sharding.make_mesh(mesh_spec)
    shape = sharding.shape_of(mesh)
    sj = jb.shard(mesh)

    out = sj.prior_forward(cfg.level, tokens, labels, upper).logits
    assert trim(out.sharding.spec)[:1] == (("data",) if shape["data"] > 1 else ())
    err = np.abs(np.asarray(out) - logits).max() / np.abs(logits).max()
    assert err < RTOL, f"{mesh_spec}: sharded logits differ by {err:.2e} of the largest"
    split = {}
    for path, x in jax.tree_util.tree_flatten_with_path(sj.params[f"prior_level_{cfg.level}"])[0]:
        split[jax.tree_util.keystr(path)] = "model" in trim(x.sharding.spec)
        if split[jax.tree_util.keystr(path)]:
            assert {s.data.size for s in x.addressable_shards} == {x.size // shape["model"]}, path
    kernels = [name for name in split if name.startswith("['transformer']") and name.endswith("kernel']")]
    assert len(kernels) >= 4 and all(split[k] == (shape["model"] > 1) for k in kernels), split
    if (name, mesh_spec) not in SAMPLED:
        return

    top2 = np.sort(logits[:, -N_TOKENS:], axis=-1)[..., -2:]
    assert (top2[..., 1] - top2[..., 0]).min() > 10 * RTOL * np.abs(logits).max(), "near-ties in the reference"
    got = np.asarray(sj.sample(cfg.level, jax.random.key(1), labels, N_TOKENS, upper, top_k=1))
    np.testing.assert_array_equal(got, tokens, err_msg=f"{mesh_spec}: sharded greedy tokens differ")

    want = jax.tree.map(trim, sharding.cache_specs(cfg, shape, BATCH), is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    for spec in jax.tree.leaves(want, is_leaf=lambda x: isinstance(x, tuple)):
        assert ("data" in spec) == (shape["data"] > 1) and ("model" in spec) == (shape["model"] > 1), spec
    params, batch = sj.decode_params(cfg.level), ("data",) if shape["data"] > 1 else ()
    with sharding.use(mesh, sharding.part_rules(cfg, shape)):  # as `sample` runs them
        ctx = condition(cfg, sj.params[f"prior_level_{cfg.level}"], labels, upper)
        state, _ = prefill(cfg, params, ctx, sequence(cfg, np.zeros((BATCH, 0), np.int32), labels), jax.random.key(1))
        states = [state]
        states.append(decode(cfg, params, ctx, state, Greedy(), N_TOKENS)[0])
    for state in states:
        assert jax.tree.map(lambda x: trim(x.sharding.spec), state.cache) == want
        assert trim(state.tokens.sharding.spec) == batch


def test_rules_key_the_jit_caches():
    """The same model, mesh and shapes under two rules tables: the second run is traced anew
    (its caches split by its own rules), not served from the first's jit cache."""
    cfg = preset("tiny_5b")
    jb = Jukebox.init(JukeboxConfig(priors=(cfg,)), jax.random.key(0))
    mesh = sharding.make_mesh("data=2,model=4")
    labels = jb.labels(2, total_seconds=30.0, n_samples=2)
    specs = []
    for rules in (sharding.RULES, (("batch", "data"),)):  # the second splits no weight
        sj = jb.shard(mesh, rules)
        with sharding.use(mesh, sharding.part_rules(cfg, sharding.shape_of(mesh), rules)):
            ctx = condition(cfg, sj.params["prior_level_2"], labels)
            state, _ = prefill(cfg, sj.params["prior_level_2"], ctx, np.zeros((2, 0), np.int32), jax.random.key(0))
        specs.append(trim(state.cache["layers_0"]["k"].sharding.spec))
    assert specs == [("data", "model"), ("data",)]


def test_a_model_on_another_device_samples_there(monkeypatch):
    """Params on device 3 (no mesh): the token buffer and the caches are made there, not on
    device 0 and copied (a 5b top prior's cache at batch 16 is 29 GiB), and the samples come
    back there, equal to the model's on device 0."""
    jb = Jukebox.init(JukeboxConfig(priors=(preset("tiny_5b"),)), jax.random.key(0))
    there = Jukebox(jb.config, jax.device_put(jb.params, jax.devices()[3]))
    labels = jb.labels(2, total_seconds=30.0, n_samples=2)
    cfg, params = jb.config.prior(2), there.decode_params(2)
    made, module = [], sys.modules["jukebox_jax.sampling.decode"]  # the package's `decode` is the function
    monkeypatch.setattr(module, "init_buffers", lambda *a, made_by=module.init_buffers: made.append(made_by(*a)) or made[-1])
    state, _ = prefill(cfg, params, condition(cfg, params, labels), np.zeros((2, 3), np.int32), jax.random.key(0))
    assert made and all(x.sharding.device_set == {jax.devices()[3]} for x in jax.tree.leaves((made, state.tokens, state.cache)))
    out = there.sample(2, jax.random.key(1), labels, 9, temperature=0.9)
    assert out.sharding.device_set == {jax.devices()[3]}
    np.testing.assert_array_equal(np.asarray(out), np.asarray(jb.sample(2, jax.random.key(1), labels, 9, temperature=0.9)))


def test_a_saved_checkpoint_loads_into_a_mesh(tmp_path):
    """`Jukebox.load(mesh=...)` restores every array into the sharding `shard` gives it
    (verified against its checksums), equal to the saved one; `dtype=` casts keeping them;
    `quantize` keeps the mesh."""
    config = JukeboxConfig(priors=(preset("tiny_5b_lyrics"),))
    jb = Jukebox.init(config, jax.random.key(2))
    jb.save(tmp_path / "ckpt")
    mesh = sharding.make_mesh("data=2,model=4")
    want = jax.tree.leaves(sharding.shardings(config, mesh))
    for dtype in (None, "bfloat16"):
        loaded = Jukebox.load(tmp_path / "ckpt", mesh=mesh, dtype=dtype)
        assert loaded.mesh is mesh
        cast = jb.astype(dtype) if dtype else jb
        for a, b, s in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(cast.params), want, strict=True):
            assert a.sharding.mesh == mesh and trim(a.sharding.spec) == trim(s.spec)
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        if dtype is None:
            assert loaded.fingerprint() == jb.fingerprint()
    int8 = loaded.quantize("int8")  # stays on the mesh, each int8 kernel and its scale split alike
    want = sharding.shardings(int8.config, mesh)
    assert int8.mesh is mesh and jax.tree.map(lambda a: trim(a.sharding.spec), int8.params) == jax.tree.map(lambda s: trim(s.spec), want)
    fc = int8.params["prior_level_2"]["transformer"]["layers"]["mlp"]
    assert fc["c_fc_kernel"].dtype == np.int8 and trim(fc["c_fc_scale"].sharding.spec) == (None, "model")


def test_a_sharded_save_loads_on_one_device(tmp_path):
    """A model saved from a mesh of 8 devices loads in a process that has one (orbax refuses the
    saved topology unless told where each array goes), equal to the model saved."""
    jb = Jukebox.init(JukeboxConfig(priors=(preset("tiny_5b"),)), jax.random.key(3))
    jb.shard(sharding.make_mesh("data=2,model=4")).save(tmp_path / "ckpt")
    code = f"from jukebox_jax import Jukebox; print(Jukebox.load({str(tmp_path / 'ckpt')!r}).fingerprint())"
    env = cpu_env()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[-1] == jb.fingerprint()


def test_the_cli_samples_on_a_mesh(tmp_path, capsys):
    """`jukebox-jax sample --mesh data=2,model=4` on a tiny preset runs its job: one window of
    the top level for 2 samples, codes and audio written (the numbers are checked above)."""
    from jukebox_jax.cli import main

    out = tmp_path / "run"
    main(["sample", "--model", "tiny_5b", "--levels", "2", "--seconds", "0.1", "--n-samples", "2", "--mesh", "data=2,model=4", "--out", str(out)])
    assert "mesh: {'data': 2, 'model': 4} over 8 devices" in capsys.readouterr().out
    codes = np.load(out / "codes.npz")["level_2"]
    assert codes.shape == (2, 4410 // 128) and 0 <= codes.min() and codes.max() < preset("tiny_5b").l_bins
    assert sorted(p.name for p in out.iterdir()) == ["codes.npz", "job.json", "level_2"]
    assert sorted(p.name for p in (out / "level_2").iterdir()) == ["sample_0.wav", "sample_1.wav"]


def test_the_cli_samples_the_shipped_model_on_a_mesh(tmp_path):
    """The default model (a saved checkpoint, no --model) through all three levels on a 2x4
    mesh gives the one-device run's codes: the top level's equal, each level below at least
    95% equal (an upsampler's batch split across `data` computes with other kernels, so a draw
    at a near-tie may flip: RESULTS.md, "A sample and its batch")."""
    from jukebox_jax.cli import main

    job = ["sample", "--seconds", "1.1", "--n-samples", "2", "--seed", "3", "--artist", "tide", "--genre", "folk"]
    main([*job, "--out", str(tmp_path / "one")])
    main([*job, "--mesh", "data=2,model=4", "--out", str(tmp_path / "mesh")])
    one, meshed = (np.load(tmp_path / run / "codes.npz") for run in ("one", "mesh"))
    np.testing.assert_array_equal(meshed["level_2"], one["level_2"])
    for level in ("level_1", "level_0"):
        assert meshed[level].shape == one[level].shape and (meshed[level] == one[level]).mean() >= 0.95, level
    assert sorted(p.name for p in (tmp_path / "mesh" / "level_0").iterdir()) == ["sample_0.wav", "sample_1.wav"]
