"""Random init: `init_params` draws a whole model at once from the `Init` each param carries
(`layers.draw`); these tests check the values have the distributions the initialisers name."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest

from jukebox_jax import prior
from jukebox_jax.config import JukeboxConfig, preset
from jukebox_jax.layers import InitKind, is_param
from jukebox_jax.params import abstract_params, boxed_shapes, check_params, init_params

CONFIG = JukeboxConfig.from_preset("tiny_5b_lyrics")


@pytest.fixture(scope="module")
def drawn():
    """(Param leaves of the config, their drawn values), in the same order."""
    specs = jax.tree.leaves(boxed_shapes(CONFIG), is_leaf=is_param)
    values = jax.tree.leaves(init_params(CONFIG, jax.random.key(0)))
    return specs, [np.asarray(v) for v in values]


def _pooled(drawn, kind: InitKind) -> np.ndarray:
    """Every value drawn from `kind`, divided by its param's scale."""
    specs, values = drawn
    return np.concatenate([v.ravel() / s.init.scale for s, v in zip(specs, values) if s.init.kind is kind])


def test_tree_and_dtypes_are_the_configs(drawn):
    params = init_params(CONFIG, jax.random.key(0))
    check_params(abstract_params(CONFIG), params)
    want = jax.tree.leaves(abstract_params(CONFIG))
    assert [x.dtype for x in jax.tree.leaves(params)] == [x.dtype for x in want]


def test_constant_inits_are_exact(drawn):
    specs, values = drawn
    for s, v in zip(specs, values):
        if s.init.kind in (InitKind.ZEROS, InitKind.ONES):
            np.testing.assert_array_equal(v, np.full(v.shape, float(s.init.kind is InitKind.ONES)))
    assert {s.init.kind for s in specs} == set(InitKind)  # every kind is exercised


def test_normal_inits_are_standard_normal_times_their_scale(drawn):
    z = _pooled(drawn, InitKind.NORMAL)
    assert z.size > 200_000
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) > 2) - 0.0455) < 0.003  # the tails of a normal, not of a truncated one


def test_truncated_inits_have_flaxs_lecun_variance(drawn):
    z = _pooled(drawn, InitKind.TRUNCATED_NORMAL)
    assert np.abs(z).max() <= 2 and abs(z.mean()) < 0.01
    assert abs(z.std() - 0.8796) < 0.01  # N(0, 1) truncated to [-2, 2]
    specs, values = drawn
    for s, v in zip(specs, values):  # variance 1 / fan-in, as nn.initializers.lecun_normal()
        if s.init.kind is InitKind.TRUNCATED_NORMAL and v.size >= 20_000:
            assert abs(v.var() * math.prod(v.shape[:-1]) - 1) < 0.05, s.names


def test_params_of_one_group_are_independent(drawn):
    """Params of one kind and shape come from one stacked draw: no two are alike."""
    specs, values = drawn
    seen: dict[tuple, list[np.ndarray]] = {}
    for s, v in zip(specs, values):
        if s.init.kind in (InitKind.NORMAL, InitKind.TRUNCATED_NORMAL):
            seen.setdefault((s.init.kind, v.shape), []).append(v.ravel() / s.init.scale)
    assert max(len(g) for g in seen.values()) > 10
    for group in seen.values():
        for a, b in zip(group, group[1:]):
            assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(a.size) + 1e-6


def test_deterministic_in_the_key_and_jittable():
    cfg = preset("tiny_1b_lyrics")
    a = prior.init_params(cfg, jax.random.key(3))
    b = jax.jit(prior.init_params, static_argnums=0)(cfg, jax.random.key(3))
    c = prior.init_params(cfg, jax.random.key(4))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    random = [s.init.kind is InitKind.NORMAL for s in jax.tree.leaves(prior.boxed_shapes(cfg), is_leaf=is_param)]
    assert sum(random) > 5
    for x, y, r in zip(jax.tree.leaves(a), jax.tree.leaves(c), random):
        assert not r or not np.array_equal(x, y)


def test_module_init_draws_from_the_same_inits():
    """Flax's own `Module.init` (per-param draws) gives Params carrying the `Init` the fast
    path draws from, with values of that distribution."""
    cfg = preset("tiny_upsampler_level_1")
    boxed = prior.Prior(cfg).init(jax.random.key(0), *prior.prior.dummy_inputs(cfg))["params"]
    leaves = jax.tree.leaves(boxed, is_leaf=is_param)
    assert all(is_param(b) and b.init is not None for b in leaves)
    table = boxed["x_emb"]["embedding"]  # [bins, width]
    assert table.init.kind is InitKind.NORMAL and table.init.scale == pytest.approx(0.02 * cfg.transformer.init_scale)
    assert abs(np.asarray(table.value).std() / table.init.scale - 1) < 0.05


@pytest.mark.parametrize("zero_out", [False, True])
def test_conditioner_zero_out_starts_each_residual_block_at_zero(zero_out):
    """`ConditionerConfig.zero_out` (init only), as the original's `ResConv1DBlock`: each
    residual block's last conv (kernel and bias) starts at zero; without it the kernel is drawn."""
    cfg = preset("tiny_upsampler_level_1")
    cfg = dataclasses.replace(cfg, conditioner=dataclasses.replace(cfg.conditioner, zero_out=zero_out))
    block = init_params(JukeboxConfig(priors=(cfg,)), jax.random.key(0))["prior_level_1"]["conditioner"]["block"]
    convs = [b[name] for r in ("resnet_0", "resnet_1") for b in block[r].values() for name in ("conv_1", "conv_2")]
    assert len(convs) == 2 * 2 * cfg.conditioner.depth
    for i, conv in enumerate(convs):
        last = i % 2 == 1
        assert (np.abs(np.asarray(conv["kernel"])).max() == 0) == (zero_out and last)
        assert np.abs(np.asarray(conv["bias"])).max() == 0  # biases start at zero either way
