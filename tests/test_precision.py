"""Reduced precision and int8 weights (`Jukebox.astype`, `Jukebox.quantize`): on every fixture
structure (the converted original-code fixtures, random weights at the released init scales),
bfloat16, float16 and int8 teacher-forced logits against float32 within a tolerance derived
from each format's rounding error and the depth, and greedy tokens equal to float32's wherever
float32's top-2 margin exceeds it; which arrays are 16-bit or int8 and which stay float32;
int8 values, checkpoints and errors. (float16's range on full-size layers of the released
structures: `benchmarks/float16_range.py`.)

The tolerance (`tolerance`): each matmul of a layer (query/key/value, output projection, the
MLP's two) sees its weights, and at 16 bits its inputs too, rounded with a relative error of
rms `delta`: for a 16-bit float u/sqrt(3) (u = 2^-8 for bfloat16, 2^-11 for float16: the unit
roundoff, errors uniform in +-u), for int8 rms(scale)/sqrt(12) / rms(w) (errors uniform in
+-scale/2, the quantizer's bound, relative to the weights' size; read from the kernels). Taken
as independent, these add in quadrature over the 4 matmuls of each of the `depth` layers and
the head and over the `k` rounded operands of each (2 at 16 bits, 1 for int8 with float32
activations): relative error delta * sqrt(4 k (depth + 1)) of the logits' scale. We allow
twice that (the worst of ~10^4 logits), in units of max |float32 logits|. Measured errors sit
2.5-5x under it at 16 bits and 4-8x for int8; float16's tolerance is below bfloat16's measured
errors on every structure, so float16 silently computing at bfloat16's precision would fail.
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from convert import convert_checkpoint
from jukebox_jax import Jukebox, JukeboxConfig, checkpoint, prior
from jukebox_jax.config import DType, Lyrics, Precision, WeightFormat, preset
from jukebox_jax.errors import CheckpointError, ConfigError, DivergedError, InputError, ParamsError
from jukebox_jax.params import abstract_params, flatten
from jukebox_jax.quantize import config_with_weights, quantize_int8
from jukebox_jax.sampling import decode, prefill, sampling_method

STRUCTURES = {  # fixture stem: (preset, level)
    "prior_5b_level2": ("tiny_5b", 2),
    "prior_5b_lyrics_level2": ("tiny_5b_lyrics", 2),
    "prior_1b_lyrics_level2": ("tiny_1b_lyrics", 2),
    "upsampler_level1": ("tiny_upsampler_level_1", 1),
    "upsampler_level0": ("tiny_upsampler_level_0", 0),
}
# Greedy sampling compiles a whole decode program per structure and format: run on the three
# structures that hold every layer kind (5b's block/transpose/previous-block layers are also
# 5b_lyrics'), both heads (untied 5b_lyrics, tied 1b_lyrics and upsamplers), the lyric encoder,
# the joint sequence and a conditioner; upsampler_level0 is upsampler_level1's structure.
# JUKEBOX_FULL_CHECKS=1 samples all five (as tests/sharded_checks.py samples every mesh).
SAMPLED = {"prior_5b_lyrics_level2", "prior_1b_lyrics_level2", "upsampler_level1"}
if os.environ.get("JUKEBOX_FULL_CHECKS") == "1":
    SAMPLED = set(STRUCTURES)
UNIT_ROUNDOFF = {DType.BFLOAT16: 2.0**-8, DType.FLOAT16: 2.0**-11}
VARIANTS = ("bfloat16", "float16", "int8")
PROJECTIONS = {"c_attn_kernel", "c_enc_kv_kernel", "c_proj_kernel", "c_fc_kernel"}  # attention and MLP matrices


@dataclasses.dataclass
class Case:
    jb: Jukebox
    level: int
    inputs: tuple  # (tokens, labels, upper_codes)
    sampled: bool  # whether to check greedy sampling (SAMPLED)
    variants: dict = dataclasses.field(default_factory=dict)

    def variant(self, name: str) -> Jukebox:
        if name not in self.variants:
            self.variants[name] = self.jb.quantize(name) if name == "int8" else self.jb.astype(name)
        return self.variants[name]


@pytest.fixture(scope="module", params=list(STRUCTURES))
def case(request, fixtures) -> Case:
    name, level = STRUCTURES[request.param]
    jb = convert_checkpoint(fixtures / f"{request.param}.pth.tar", config=name)
    ref = np.load(fixtures / f"{request.param}.reference.npz")
    return Case(jb, level, (ref["z"], ref["y"], ref.get("z_cond")), request.param in SAMPLED)


def greedy_ids(jb: Jukebox, level: int, labels, n: int, upper) -> np.ndarray:
    """`jb.sample(..., top_k=1)` of `n` tokens `[b, n]`, as ids of the vocabulary sampling
    draws from. For 1b_lyrics that is the joint one, whose lyric ids `sample` returns as 0 (the
    random fixture often draws them): its own steps (`prefill`, `decode`), kept unmapped."""
    cfg = jb.config.prior(level)
    if cfg.lyrics is not Lyrics.JOINT_SEQUENCE:
        return np.asarray(jb.sample(level, jax.random.key(0), labels, n, upper, top_k=1))
    ctx = prior.condition(cfg, jb.params[f"prior_level_{level}"], labels, upper)
    state, _ = prefill(cfg, jb.decode_params(level), ctx, prior.sequence(cfg, np.zeros((len(labels), 0), np.int32), labels), jax.random.key(0))
    state, _ = decode(cfg, jb.decode_params(level), ctx, state, sampling_method(top_k=1), n)
    return np.asarray(state.tokens[:, cfg.n_tokens : cfg.n_tokens + n])


def sampled_logits(jb: Jukebox, level: int, ids: np.ndarray, labels, upper) -> jax.Array:
    """Float logits `[b, t, V]` of the music positions, teacher-forced on `greedy_ids`, over
    the vocabulary sampling draws from. (1b_lyrics: `prior.forward` adds `n_vocab` to music
    tokens, so joint ids pass as `ids - n_vocab`, lyric ids negative.)"""
    cfg = jb.config.prior(level)
    if cfg.lyrics is not Lyrics.JOINT_SEQUENCE:
        return jb.prior_forward(level, ids, labels, upper).logits
    logits = prior.forward(cfg, jb.params[f"prior_level_{level}"], jnp.asarray(ids - cfg.n_vocab), jnp.asarray(labels), upper).logits
    return logits[:, cfg.n_tokens :]


def scale_of(path: tuple[str, ...]) -> tuple[str, ...]:
    """The path of an int8 kernel's scale."""
    return (*path[:-1], path[-1].replace("_kernel", "_scale"))


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(x, np.float64)))))


def tolerance(case: Case, variant: str, logits32: np.ndarray) -> float:
    """The largest |logit - float32 logit| `variant` may make (module docstring): from the rms
    relative rounding error `delta` of one weight or activation and the operands rounded per
    matmul `k`."""
    if variant == "int8":
        q, w = flatten(case.variant("int8").params), flatten(case.jb.params)
        delta, k = max(rms(q[scale_of(p)]) / math.sqrt(12) / rms(w[p]) for p, x in q.items() if x.dtype == jnp.int8), 1
    else:
        delta, k = UNIT_ROUNDOFF[DType.parse(variant)] / math.sqrt(3), 2
    depth = case.jb.config.prior(case.level).transformer.depth
    return 2 * delta * math.sqrt(4 * k * (depth + 1)) * float(np.abs(logits32).max())


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_and_greedy_tokens_follow_float32(case, variant):
    """Teacher-forced logits within `tolerance` of float32's. On the SAMPLED structures, greedy
    tokens (`sample`, top_k=1) equal float32's greedy choice after the same prefix at every
    position whose float32 top-2 margin exceeds the tolerance: float32's choices and margins
    are read from its teacher-forced logits on the sampled tokens, so every position is
    compared, also after a low-margin one where the two may part (float32's own greedy window
    would continue another prefix from there; up to that position the two windows agree)."""
    jb, level, (tokens, labels, upper) = case.jb, case.level, case.inputs
    low = case.variant(variant)
    logits32 = np.asarray(jb.prior_logits(level, tokens, labels, upper), np.float64)
    logits = low.prior_logits(level, tokens, labels, upper)
    assert logits.dtype == jnp.float32
    tol = tolerance(case, variant, logits32)
    err = float(np.abs(np.asarray(logits, np.float64) - logits32).max())
    assert err < tol, f"{variant}: max |logit error| {err:.4g} >= tolerance {tol:.4g}"
    if not case.sampled:
        return
    greedy = greedy_ids(low, level, labels, tokens.shape[1], upper)
    ref = np.asarray(sampled_logits(jb, level, greedy, labels, upper), np.float64)  # float32 after the variant's prefixes
    top2 = np.sort(ref, -1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > tol
    np.testing.assert_array_equal(greedy[clear], ref.argmax(-1)[clear], err_msg=f"{variant} greedy != float32 where its margin > {tol:.3g}")
    assert clear.mean() > 0.25, f"only {clear.sum()} of {clear.size} positions have a float32 margin above {tol:.3g}"


def test_what_is_16_bit_and_what_stays_float32():
    """`astype`: the priors' transformer projection matrices and their biases (the lyric
    encoder's too) are 16-bit; LayerNorms, embeddings, the head, the conditioners and the
    VQ-VAE stay float32; `quantize` makes exactly the projection matrices int8, each with a
    float32 scale, and `astype` after it keeps them int8."""
    config = JukeboxConfig.from_preset("tiny_5b_lyrics")  # a VQ-VAE, a lyric encoder, both upsamplers' conditioners
    for dtype in (DType.BFLOAT16, DType.FLOAT16):
        for path, x in flatten(abstract_params(config.astype(dtype))).items():
            in_layer = "transformer" in path and path[-2] in ("attn", "mlp")
            assert x.dtype == (dtype.jnp if in_layer else jnp.float32), "/".join(path)
    int8 = config_with_weights(config, WeightFormat.INT8).astype("bfloat16")
    for path, x in flatten(abstract_params(int8)).items():
        in_layer = "transformer" in path and path[-2] in ("attn", "mlp")
        want = jnp.int8 if in_layer and path[-1] in PROJECTIONS else jnp.bfloat16 if in_layer and path[-1].endswith("_bias") else jnp.float32
        assert x.dtype == want, "/".join(path)
    for p in int8.priors:
        assert p.precision == Precision(DType.BFLOAT16, DType.BFLOAT16, DType.BFLOAT16, weights=WeightFormat.INT8)


def test_scores_logits_and_int8_sums_are_float32_in_16_bit_compute():
    """What the fixtures' small random weights cannot show (their scores and logits are too small
    for 16-bit rounding to pass the tolerances): attention scores and softmax, the head's logits
    and an int8 matmul's sums stay float32 on 16-bit operands, against float64. Rounded to 16
    bits they were 0.02 off in probability, 2e-3 in logits, and an int8 sum overflowed float16."""
    from jukebox_jax.prior.attention import attend
    from jukebox_jax.prior.transformer import _matmul

    q, k, v = (3 * jax.random.normal(jax.random.key(i), (2, 7, 16)).astype(jnp.bfloat16) for i in range(3))
    _, probs = attend(q, k, v, None)
    scores = np.einsum("btd,bsd->bts", np.asarray(q, np.float64), np.asarray(k, np.float64)) / 4
    want = np.exp(scores - scores.max(-1, keepdims=True))
    np.testing.assert_allclose(np.asarray(probs), want / want.sum(-1, keepdims=True), rtol=0, atol=1e-5)

    for name in ("tiny_5b", "tiny_1b_lyrics"):  # the untied head and the tied one
        cfg = dataclasses.replace(preset(name), precision=Precision(DType.BFLOAT16, DType.BFLOAT16, DType.BFLOAT16))
        params = prior.init_params(cfg, jax.random.key(0))
        h = (50 * jax.random.normal(jax.random.key(1), (2, 5, cfg.transformer.width))).astype(jnp.bfloat16)
        logits = prior.Prior(cfg).apply({"params": params}, h, None, method=prior.Prior._head)
        w = params["x_out_kernel"] if cfg.merged_decoder else params["x_emb"]["embedding"].T
        want = np.asarray(h, np.float64) @ np.asarray(jnp.asarray(w).astype(jnp.bfloat16), np.float64)
        assert cfg.merged_decoder == (name == "tiny_5b") and logits.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(logits), want, rtol=0, atol=1e-6 * np.abs(want).max())

    x, kernel, scale = jnp.full((1, 256), 4.0), jnp.full((256, 1), 127, jnp.int8), jnp.full((1,), 1e-3)
    out = _matmul(x, kernel, scale, Precision(compute=DType.FLOAT16, weights=WeightFormat.INT8))
    assert out.dtype == jnp.float16
    np.testing.assert_allclose(np.asarray(out, np.float64), [[4 * 127 * 256 * 1e-3]], rtol=1e-3)  # the raw sum 130048 is past float16's 65504


def test_kv_caches_are_in_the_compute_dtype(fixtures):
    """Every layer's cache, the 5b_lyrics encoder keys and values filled from float32 states
    included, is in the compute dtype."""
    jb = convert_checkpoint(fixtures / "prior_5b_lyrics_level2.pth.tar", config="tiny_5b_lyrics").astype("float16")
    cfg = jb.config.prior(2)
    labels = np.load(fixtures / "prior_5b_lyrics_level2.reference.npz")["y"]
    ctx = prior.condition(cfg, jb.params["prior_level_2"], labels, None)
    caches = prior.fill_encoder_cache(cfg, jb.params["prior_level_2"], ctx, prior.init_cache(cfg, labels.shape[0]))
    assert {x.dtype for x in jax.tree.leaves(caches)} == {jnp.dtype(jnp.float16)}


def test_quantized_values(fixtures):
    """Per output channel: q in [-127, 127], the channel's largest |w| at +-127, and
    q * scale within scale / 2 of w, up to float32's rounding of scale and of w / scale (each
    2^-24 relative, times |q| <= 127: under 2^-16 of a scale; we allow 2^-15); every other
    array unchanged."""
    jb = convert_checkpoint(fixtures / "prior_5b_lyrics_level2.pth.tar", config="tiny_5b_lyrics")
    q = flatten(jb.quantize(WeightFormat.INT8).params)
    w = flatten(jb.params)
    quantized = {p for p, x in q.items() if x.dtype == jnp.int8}
    assert {p[-1] for p in quantized} == PROJECTIONS
    assert {p[1] for p in quantized} == {"transformer", "lyric_encoder"}  # prior_level_2/{transformer, lyric_encoder/transformer}
    for p in quantized:
        kernel, scale = np.asarray(q[p], np.int32), np.asarray(q[scale_of(p)])
        out = scale.shape[1:]  # the output axes, after the stacked layers
        n_in = kernel.ndim - 1 - len(out)
        s = scale.reshape(scale.shape[0], *[1] * n_in, *out)
        assert np.abs(kernel).max() <= 127
        assert (np.abs(kernel).max(axis=tuple(range(1, 1 + n_in))) == 127).all(), "/".join(p)
        err = np.abs(kernel * s.astype(np.float64) - np.asarray(w[p], np.float64))  # [layers, *in, *out]
        assert (err <= s * (0.5 + 2.0**-15)).all(), "/".join(p)
    for p in w.keys() - quantized:
        np.testing.assert_array_equal(np.asarray(q[p]), np.asarray(w[p]))


def test_quantize_int8_maps_channel_maxima_and_zero_channels():
    """Worked by hand: scales max|w| / 127 per output column, q = round(w / scale); an all-zero
    column gets scale 0 and q 0 (no division by zero)."""
    w = jnp.array([[1.0, 0.0, -0.3], [-2.54, 0.0, 0.2]])  # [in, out]
    q, scale = quantize_int8(w, (0,))
    np.testing.assert_allclose(np.asarray(scale), [2.54 / 127, 0.0, 0.3 / 127], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(q), [[50, 0, -127], [-127, 0, 85]])


def test_int8_checkpoint_round_trip_and_refusals(fixtures, tmp_path):
    """A saved int8 model (bfloat16 biases and compute) loads back bit-identical with its
    config; a float array where the config declares int8 (and an int8 one where it declares
    float) is refused, naming it."""
    jb = convert_checkpoint(fixtures / "upsampler_level0.pth.tar", config="tiny_upsampler_level_0").quantize("int8").astype("bfloat16")
    jb.save(tmp_path / "int8")
    loaded = Jukebox.load(tmp_path / "int8")
    assert loaded.config == jb.config
    for path, x in flatten(jb.params).items():
        y = flatten(loaded.params)[path]
        assert y.dtype == x.dtype and np.array_equal(np.asarray(y), np.asarray(x)), "/".join(path)
    stack = jb.params["prior_level_0"]["transformer"]["layers"]
    fc = ("prior_level_0", "transformer", "layers", "mlp", "c_fc_kernel")
    as_float = {**stack, "mlp": {**stack["mlp"], "c_fc_kernel": stack["mlp"]["c_fc_kernel"].astype(jnp.float32)}}
    params = {"prior_level_0": {**jb.params["prior_level_0"], "transformer": {"layers": as_float}}}
    assert checkpoint.bad_weights(params, jb.config) == ["/".join(fc) + ": float32, where the config stores int8 (Jukebox.astype and quantize change both)"]
    assert checkpoint.bad_weights(jb.params, jb.config) == []
    float_config = convert_checkpoint(fixtures / "upsampler_level0.pth.tar", config="tiny_upsampler_level_0").config
    assert "/".join(fc) + ": int8, where the config stores float32 (Jukebox.astype and quantize change both)" in checkpoint.bad_weights(jb.params, float_config)
    with pytest.raises(CheckpointError, match="c_fc_kernel: float32, where the config stores int8"):
        Jukebox(jb.config, params).save(tmp_path / "bad")


def test_quantize_errors_and_astype_after_it(fixtures):
    """'float' leaves a float model alone; an unknown format and quantizing int8 weights again
    are errors; `astype` after `quantize` keeps the int8 arrays themselves and sets the compute
    and cache dtype."""
    jb = convert_checkpoint(fixtures / "upsampler_level1.pth.tar", config="tiny_upsampler_level_1")
    assert jb.quantize("float") is jb
    with pytest.raises(ConfigError, match="weight format 'int4' is not one of float, int8"):
        jb.quantize("int4")
    q = jb.quantize("int8")
    for again in ("int8", "float"):
        with pytest.raises(InputError, match="already int8"):
            q.quantize(again)
    half = q.astype("float16")
    assert half.config.prior(1).precision == Precision(DType.FLOAT16, DType.FLOAT16, DType.FLOAT16, weights=WeightFormat.INT8)
    kernels = lambda m: {p: x for p, x in flatten(m.params).items() if x.dtype == jnp.int8}
    assert kernels(half).keys() == kernels(q).keys() and all(kernels(half)[p] is x for p, x in kernels(q).items())


def test_float16_out_of_range_is_refused_not_turned_into_infinities_or_token_0():
    """A weight past float16's 65504 is named when cast (it became inf, silently); weights in
    range whose activations overflow float16 give NaN logits, which sampling refuses (argmax of
    NaN drew token 0 at every step)."""
    top = JukeboxConfig.from_preset("tiny_5b").prior(2)
    jb = Jukebox.init(JukeboxConfig(priors=(top,)), jax.random.key(0))
    mlp = ("prior_level_2", "transformer", "layers", "mlp")

    def edited(scale: float, first: float | None = None) -> Jukebox:
        flat = dict(flatten(jb.params))
        for name in ("c_fc_kernel", "c_proj_kernel"):
            flat[(*mlp, name)] = flat[(*mlp, name)] * scale
        if first is not None:
            flat[(*mlp, "c_fc_bias")] = flat[(*mlp, "c_fc_bias")].at[0, 0].set(first)
        return Jukebox(jb.config, traverse_util.unflatten_dict(flat))

    with pytest.raises(ParamsError, match=r"1 weights would overflow: prior_level_2/transformer/layers/mlp/c_fc_bias \(\|x\| up to 1e\+05, beyond float16's 65504\); use bfloat16"):
        edited(1.0, 1e5).astype("float16")
    assert edited(1.0, 1e5).astype("bfloat16").config.prior(2).precision.compute is DType.BFLOAT16
    loud = edited(4e4).astype("float16")  # kernels of |w| up to a few hundred: in range, their products are not
    assert float(max(jnp.abs(x).max() for x in jax.tree.leaves(loud.params))) < 65504
    labels = loud.labels(2, total_seconds=60, artist=1, genre=1)
    with pytest.raises(DivergedError, match=r"level-2 prior's logits became NaN or infinite .*float16's range.*--dtype bfloat16"):
        loud.sample(2, jax.random.key(0), labels, 4, top_k=1)
    assert np.asarray(edited(4e4).sample(2, jax.random.key(0), labels, 4, top_k=1)).min() >= 0  # float32 holds them


def test_weight_format_round_trips_through_config_json():
    """`Precision.weights` is saved in config.json, and a config.json written before it
    existed loads as float weights."""
    config = config_with_weights(JukeboxConfig.from_preset("tiny_5b"), "int8")
    assert JukeboxConfig.from_dict(config.to_dict()) == config
    old = JukeboxConfig.from_preset("tiny_5b").to_dict()
    for p in old["priors"]:
        del p["precision"]["weights"]
    assert JukeboxConfig.from_dict(old) == JukeboxConfig.from_preset("tiny_5b")
    assert WeightFormat.parse("int8") is WeightFormat.INT8


def test_random_int8_weights_have_the_float_init_scale():
    """`Jukebox.init` of an int8 config draws int8 kernels whose dequantised weights have the
    float init's standard deviation (0.02 * init_scale) within 3%: on c_fc's 6x64x64 weights a
    sample standard deviation is off by ~0.5%, and the int8 cast (toward zero) lowers it ~1%."""
    config = config_with_weights(JukeboxConfig(priors=(preset("tiny_upsampler_level_0"),)), "int8")
    params = flatten(Jukebox.init(config, jax.random.key(0)).params)
    mlp = ("prior_level_0", "transformer", "layers", "mlp")
    w = np.asarray(params[(*mlp, "c_fc_kernel")], np.float64) * np.asarray(params[(*mlp, "c_fc_scale")])[:, None, :]
    assert abs(w.std() / (0.02 * preset("tiny_upsampler_level_0").transformer.init_scale) - 1) < 0.03
