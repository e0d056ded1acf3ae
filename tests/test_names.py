"""Logical axis names: every weight of the VQ-VAE, the conditioners and the priors carries one
name per axis, drawn from the glossary in `jukebox_jax/layers.py`; and the precision policy
of the layers that are always float32 (LayerNorm statistics, the conditioners)."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jukebox_jax import JukeboxConfig
from jukebox_jax.config import DType, Precision, preset
from jukebox_jax.layers import AXES, CONV_BIAS, CONV_KERNEL, layer_norm, logical_axes
from jukebox_jax.params import abstract_params, flatten, param_axes
from jukebox_jax.prior import Prior
from jukebox_jax.prior.conditioners import LabelConditioner, MusicTokenConditioner
from jukebox_jax.prior.prior import dummy_inputs as prior_dummy_inputs
from jukebox_jax.vqvae import VQVAE

BF16 = Precision(params=DType.BFLOAT16, compute=DType.BFLOAT16)


def names_and_shapes(module: nn.Module, *inputs) -> dict[str, tuple[P, tuple[int, ...]]]:
    """`{path: (logical names, shape)}` for every param of `module`, without allocating."""
    flat = jax.tree_util.tree_flatten_with_path
    axes = flat(logical_axes(module, *inputs), is_leaf=lambda x: isinstance(x, P))[0]
    shapes = flat(nn.unbox(jax.eval_shape(module.init, jax.random.key(0), *inputs)["params"]))[0]
    assert [p for p, _ in axes] == [p for p, _ in shapes]
    return {jax.tree_util.keystr(p, simple=True, separator="/"): (a, s.shape) for (p, a), (_, s) in zip(axes, shapes)}


def check_named(leaves: dict[str, tuple[P, tuple[int, ...]]], allow_none: bool = False) -> None:
    for path, (names, shape) in leaves.items():
        assert len(names) == len(shape), f"{path}: names {names} for shape {shape}"
        assert all(n in AXES or (allow_none and n is None) for n in names), f"{path}: {names} not in the glossary"


def audio(cfg):
    return jax.ShapeDtypeStruct((1, cfg.hop_lengths[-1], 1), jnp.float32)  # one top-level code


def labels(cfg):
    return jax.ShapeDtypeStruct((1, 4 + cfg.labels.max_bow_genre_size), jnp.int32)


def test_full_size_vqvae_names():
    cfg = preset("vqvae")
    leaves = names_and_shapes(VQVAE(cfg), audio(cfg))
    assert len(leaves) == 669
    check_named(leaves)
    for path, (names, _) in leaves.items():
        kind = path.rsplit("/", 1)[-1]
        want = {"kernel": CONV_KERNEL, "bias": CONV_BIAS}.get(kind, ("codes", "code_width"))
        assert names == P(*want), path


@pytest.mark.parametrize("name", ["5b", "5b_lyrics", "1b_lyrics", "upsampler_level_1", "upsampler_level_0"])
def test_full_size_label_conditioner_names(name):
    cfg = preset(name)
    leaves = names_and_shapes(LabelConditioner(cfg), labels(cfg))
    assert len(leaves) == (5 if cfg.labels.timing else 2)
    check_named(leaves)
    assert all(names == P("vocab", "embed") for names, _ in leaves.values())


@pytest.mark.parametrize("name", ["upsampler_level_1", "upsampler_level_0"])
def test_full_size_music_conditioner_names(name):
    cfg = preset(name)
    leaves = names_and_shapes(MusicTokenConditioner(cfg), jax.ShapeDtypeStruct((1, 1), jnp.int32))
    assert len(leaves) == 137
    check_named(leaves)
    assert leaves["x_emb/embedding"][0] == P("vocab", "embed")
    assert leaves["ln/scale"][0] == leaves["ln/bias"][0] == P("embed")
    convs = {p: names for p, (names, _) in leaves.items() if p.startswith("block/")}
    assert len(convs) == 134 and all(names in (P(*CONV_KERNEL), P(*CONV_BIAS)) for names in convs.values())


@pytest.mark.parametrize("name", ["tiny_5b", "tiny_5b_lyrics", "tiny_1b_lyrics", "tiny_upsampler_level_1"])
def test_prior_names_are_in_the_glossary(name):
    """Every prior weight, conditioners included, is named from the glossary (None marks an
    axis never sharded)."""
    cfg = preset(name)
    check_named(names_and_shapes(Prior(cfg), *prior_dummy_inputs(cfg)))


@pytest.mark.parametrize("name", ["5b_lyrics", "1b_lyrics"])
def test_every_param_of_a_released_model_is_named(name):
    """`param_axes` (the names sharding reads) covers every leaf of the canonical tree that
    checkpoints hold, one glossary name per axis, for a whole released model (VQ-VAE, top
    prior, both upsamplers), without allocating."""
    config = JukeboxConfig.from_preset(name)
    axes, shapes = param_axes(config), abstract_params(config)
    flat_axes = flatten(axes)
    flat_shapes = flatten(shapes)
    assert flat_axes.keys() == flat_shapes.keys()
    check_named({"/".join(p): (names, flat_shapes[p].shape) for p, names in flat_axes.items()})
    stacks = {p: names for p, names in flat_axes.items() if "transformer" in p}
    assert stacks and all(names[0] == "layers" for names in stacks.values())


def test_logical_axes_rejects_unnamed_and_misranked_params():
    class Partly(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(3, name="plain")(x)
            init = nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",))
            return x + self.param("wrong_rank", init, (2, 3))

    with pytest.raises(ValueError, match=r"3 params of Partly(.|\n)*plain(.|\n)*wrong_rank"):
        logical_axes(Partly(), jax.ShapeDtypeStruct((2, 4), jnp.float32))


def test_layer_norm_statistics_are_float32():
    """bfloat16 input and params: statistics and output in float32. The input sits on a large
    mean (1000 + O(1) noise), where bfloat16 statistics would lose the noise entirely: its
    spacing at 1000 is 4."""
    x = (1000 + jax.random.normal(jax.random.key(0), (2, 5, 64))).astype(jnp.bfloat16)
    ln = layer_norm()
    params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), nn.unbox(ln.init(jax.random.key(1), x)))  # as `Jukebox.astype` may store them
    assert all(v.dtype == jnp.bfloat16 for v in jax.tree.leaves(nn.unbox(params)))
    y = ln.apply(params, x)
    assert y.dtype == jnp.float32
    x64 = np.asarray(x, np.float64)
    ref = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4)


def test_conditioners_stay_float32_under_a_bfloat16_prior():
    cfg = dataclasses.replace(preset("tiny_upsampler_level_1"), precision=BF16)
    codes = jnp.zeros((1, 2), jnp.int32)
    music = MusicTokenConditioner(cfg)
    params = nn.unbox(music.init(jax.random.key(0), codes))
    assert {v.dtype for v in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    assert music.apply(params, codes).dtype == jnp.float32
    top = dataclasses.replace(preset("tiny_5b"), precision=BF16)  # with the timing signal
    genres = [2] + [-1] * (top.labels.max_bow_genre_size - 1)
    lab = jnp.asarray([[10 * 44100, 44100, 2 * 44100, 1, *genres]], jnp.int32)  # 10 s song, 2 s window at 1 s
    params = nn.unbox(LabelConditioner(top).init(jax.random.key(0), lab))
    assert {v.dtype for v in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    start, timing = LabelConditioner(top).apply(params, lab)
    assert start.dtype == timing.dtype == jnp.float32
