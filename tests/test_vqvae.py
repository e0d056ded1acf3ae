"""VQ-VAE parity: against the original code's fixture, and against tiny transformers 4.40.2
VQ-VAEs of other sizes and seeds, converted from HF directories and original-format files."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from convert import convert_checkpoint
from jukebox_jax.config import VQVAEConfig
from jukebox_jax.vqvae import VQVAE

# Float32 encoders differ by ~1e-5 relative, which moves codebook distances far less than this;
# codes whose distances are this close count as tied (against HF's encoders).
MARGIN = 1e-4
# Against the original's own encoder outputs our distances differ by at most 2.2e-7 of |x|^2 +
# |k|^2 (measured): codes closer than this share of it count as tied. The absolute MARGIN
# left 54 of 64 top-level codes uncompared, and a bfloat16 rounding before the argmin passed.
FIXTURE_MARGIN = 1e-6


def sq_distances(x_enc: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """`|x - k|^2` from each encoder output `[B, T, D]` to each code `[bins, D]`, in float64:
    `[B, T, bins]`."""
    x, k = np.asarray(x_enc, np.float64), np.asarray(codebook, np.float64)
    return (x**2).sum(-1)[..., None] - 2 * x @ k.T + (k**2).sum(-1)


def code_margin(x_enc: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Second-smallest minus smallest codebook distance, `[B, T]`."""
    d = np.sort(sq_distances(x_enc, codebook), axis=-1)
    return d[..., 1] - d[..., 0]


def check_codes(ours, ref, x_ref: np.ndarray, codebook: np.ndarray, margin: float | np.ndarray = MARGIN) -> np.ndarray:
    """Our codes `[B, T]` against the reference's at every position: each must be one of the
    codes nearest the reference encoder output `x_ref` (its distance within `margin`, a number
    or one per position `[B, T]`, of the smallest), so where the reference's best code beats the
    runner-up by more than `margin` it must be that code. Returns where that is so (the clear positions)."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    d = sq_distances(x_ref, codebook)
    gap = np.take_along_axis(d, ours[..., None], axis=-1)[..., 0] - d.min(-1)
    far = gap > margin
    assert not far.any(), f"{far.sum()} of {far.size} codes are not among the nearest to the reference encoder output (gaps {gap[far][:5]})"
    clear = code_margin(x_ref, codebook) > margin
    np.testing.assert_array_equal(ours[clear], ref[clear])  # implied by the above; stated plainly
    return clear


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_fixture_parity(fixtures):
    """The original code's tiny VQ-VAE: codes, encoder outputs and decodes per level."""
    jb = convert_checkpoint(fixtures / "vqvae.pth.tar")
    ref = np.load(fixtures / "vqvae.reference.npz")
    zs = jb.encode(ref["x"])
    vq = VQVAE(jb.config.vqvae)
    for level in range(3):
        x_enc = vq.apply({"params": jb.params["vqvae"]}, ref["x"], level, method=VQVAE.encode_continuous)
        x_ref = ref[f"x_enc_{level}"].transpose(0, 2, 1)
        assert rel_err(x_enc, x_ref) < 1e-5
        codebook = np.asarray(jb.params["vqvae"][f"codebook_{level}"])
        np.testing.assert_allclose(code_margin(x_ref, codebook), ref[f"code_margin_{level}"], rtol=0, atol=1e-5)  # as the original's
        scale = (x_ref.astype(np.float64) ** 2).sum(-1) + (codebook.astype(np.float64) ** 2).sum(-1).max()  # [B, T]
        clear = check_codes(zs[level], ref[f"zs_{level}"], x_ref, codebook, FIXTURE_MARGIN * scale)
        assert clear.mean() > 0.9, f"level {level}: only {clear.sum()} of {clear.size} codes clear of ties"
        audio = jb.decode([ref[f"zs_{level}"]], start_level=level)
        assert audio.shape == ref[f"x_out_{level}"].shape
        assert rel_err(audio, ref[f"x_out_{level}"]) < 1e-5
    np.testing.assert_array_equal(np.asarray(jb.params["vqvae"]["codebook_0"]), ref["k_0"])


def test_partial_levels_and_decode_uses_first_code_level(fixtures):
    jb = convert_checkpoint(fixtures / "vqvae.pth.tar")
    x = np.load(fixtures / "vqvae.reference.npz")["x"]
    full = jb.encode(x)
    upper = jb.encode(x, start_level=1)
    assert len(upper) == 2
    for a, b in zip(upper, full[1:]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(jb.encode(x, end_level=1)[0], full[0])
    np.testing.assert_allclose(jb.decode(full[1:], start_level=1), jb.decode(full[1:2], start_level=1), rtol=0, atol=0)


# Sizes unlike the fixture's: other widths, depths, multipliers, strides, a dilation cycle.
CONFIGS = {
    "two_levels_stride3": VQVAEConfig(levels=2, downs_t=(2, 1), strides_t=(2, 3), emb_width=8, l_bins=32, width=12, depth=2, multipliers=(1, 2), dilation_cycle=2),
    "three_levels": VQVAEConfig(downs_t=(2, 1, 2), emb_width=12, l_bins=48, width=8, depth=3, multipliers=(3, 1, 1), m_conv=2.0),
}


@pytest.fixture(scope="module", params=[("two_levels_stride3", 3), ("three_levels", 11)], ids=lambda p: f"{p[0]}-seed{p[1]}")
def hf_case(request, tmp_path_factory):
    from hf_reference import calibration_audio, tiny_hf_vqvae

    name, seed = request.param
    cfg = CONFIGS[name]
    model = tiny_hf_vqvae(cfg, seed)
    directory = tmp_path_factory.mktemp(name)
    model.save_pretrained(directory)
    audio = calibration_audio(2, 16 * cfg.hop_lengths[-1], seed + 100)
    return cfg, model, directory, audio


@torch.no_grad()
def _check_against_hf(jb, cfg: VQVAEConfig, model, audio: torch.Tensor) -> None:
    x = audio.numpy()
    zs_ref = model.encode(audio)
    zs = jb.encode(x)
    for level in range(cfg.levels):
        x_enc = np.asarray(VQVAE(cfg).apply({"params": jb.params["vqvae"]}, x, level, method=VQVAE.encode_continuous))
        x_ref = model.encoders[level](audio.permute(0, 2, 1))[-1].permute(0, 2, 1).numpy()
        assert rel_err(x_enc, x_ref) < 1e-5
        clear = check_codes(zs[level], zs_ref[level].numpy(), x_ref, np.asarray(jb.params["vqvae"][f"codebook_{level}"]))
        assert clear.mean() > 0.25  # a good share of the codes are clear of float32 ties
        out = jb.decode([zs_ref[level].numpy()], start_level=level)
        ref = model.decode(zs_ref[level:], start_level=level).numpy()
        assert rel_err(out, ref) < 1e-5


def test_hf_directory_parity(hf_case):
    cfg, model, directory, audio = hf_case
    jb = convert_checkpoint(directory)
    assert jb.config.vqvae == dataclasses.replace(cfg, sample_rate=44100)
    _check_against_hf(jb, cfg, model, audio)


def test_original_format_parity(hf_case, fixtures, tmp_path):
    """The same weights written in the original layout, with an hps dict of these sizes."""
    from hf_reference import save_original

    cfg, model, _, audio = hf_case
    hps = json.loads((fixtures / "vqvae.hparams.json").read_text())["hps"]
    hps.update(
        levels=cfg.levels, downs_t=list(cfg.downs_t), strides_t=list(cfg.strides_t), emb_width=cfg.emb_width,
        l_bins=cfg.l_bins, width=cfg.width, depth=cfg.depth, m_conv=cfg.m_conv, hvqvae_multipliers=list(cfg.multipliers),
        dilation_cycle=cfg.dilation_cycle,
    )
    save_original(model, cfg, tmp_path / "vqvae.pth.tar", hps)
    jb = convert_checkpoint(tmp_path / "vqvae.pth.tar")
    assert jb.config.vqvae == cfg
    _check_against_hf(jb, cfg, model, audio)


# ----------------------------------------------------------------------------------------
# Precision policy


def test_bfloat16_policy_stores_bf16_and_stays_close_to_float32():
    """A bfloat16 policy: every param is stored in bfloat16, encode and decode run, and they
    stay close to float32 with the same weights (rounded).

    Tolerance: each conv rounds its weights and its output to bfloat16, relative errors of at
    most 2^-9 each (half of bfloat16's epsilon 2^-8), so about 2^-8 per layer. Such errors are
    uncorrelated, so along a chain of `depth` convs they add in quadrature: the relative RMS
    error is about 2^-8 * sqrt(depth) (depth 37 to 53 here: 0.024 to 0.028; measured 0.011 to
    0.015). Codes must agree wherever the float32 runner-up code is farther than the best by
    more than twice what bfloat16 moved the encoder output plus the codebook (the triangle
    inequality then rules a flip out); the codes are quantised in float32 either way."""
    import functools

    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from jukebox_jax.config import DType, Precision, preset

    cfg = preset("tiny_vqvae")
    cfg16 = dataclasses.replace(cfg, precision=Precision(params=DType.BFLOAT16, compute=DType.BFLOAT16))
    x = (0.3 * np.random.default_rng(0).standard_normal((2, 16 * cfg.hop_lengths[-1], 1))).astype(np.float32)  # [B, T, 1]
    shapes, shapes16 = (nn.unbox(jax.eval_shape(VQVAE(c).init, jax.random.key(0), x[:, : cfg.hop_lengths[-1]])["params"]) for c in (cfg, cfg16))
    assert {v.dtype for v in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float32)}
    assert {v.dtype for v in jax.tree.leaves(shapes16)} == {jnp.dtype(jnp.bfloat16)}
    assert jax.tree.map(np.shape, shapes16) == jax.tree.map(np.shape, shapes)

    rng = np.random.default_rng(1)

    def draw(path, leaf):  # Flax's init (fan-in scaled kernels, N(0, 1) codes) plus small biases, in NumPy: fast
        scale = {"kernel": 1 / np.sqrt(np.prod(leaf.shape[:-1])), "bias": 0.1}.get(path[-1].key, 1.0)
        return (scale * rng.standard_normal(leaf.shape)).astype(np.float32)

    params = jax.tree_util.tree_map_with_path(draw, shapes)
    params16 = jax.tree.map(lambda v: v.astype(jnp.bfloat16), params)  # the float32 weights, rounded

    @functools.partial(jax.jit, static_argnums=0)
    def run(vq, params, codes):  # -> (codes, encoder outputs, decodes of `codes`) per level
        apply = functools.partial(vq.apply, {"params": params})
        levels = range(vq.config.levels)
        enc = [apply(x, level, method=VQVAE.encode_continuous) for level in levels]
        return apply(x, method=VQVAE.encode), enc, [apply(codes[level], level, method=VQVAE.decode) for level in levels]

    def rms_err(a, b) -> float:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    def depth(tree) -> int:  # convs in a chain: every kernel lies on its longest path
        return sum(path[-1].key == "kernel" for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0])

    codes = VQVAE(cfg).apply({"params": params}, x, method=VQVAE.encode)
    _, x_enc, audio = run(VQVAE(cfg), params, codes)
    codes16, x_enc16, audio16 = run(VQVAE(cfg16), params16, codes)  # decodes the float32 codes
    for level in range(cfg.levels):
        assert x_enc16[level].dtype == jnp.bfloat16
        assert rms_err(x_enc16[level], x_enc[level]) < 2**-8 * np.sqrt(depth(params[f"encoders_{level}"]))
        assert audio16[level].dtype == jnp.float32 and audio16[level].shape == audio[level].shape
        assert rms_err(audio16[level], audio[level]) < 2**-8 * np.sqrt(depth(params[f"decoders_{level}"]))

        k, k16 = (np.asarray(p[f"codebook_{level}"], np.float64) for p in (params, params16))  # [K, D]
        e, e16 = np.asarray(x_enc[level], np.float64), np.asarray(x_enc16[level], np.float64)  # [B, T_l, D]
        dist = np.sort(np.sqrt(np.maximum(sq_distances(e, k), 0)), axis=-1)  # [B, T_l, K]
        moved = np.linalg.norm(e16 - e, axis=-1) + np.linalg.norm(k16 - k, axis=-1).max()  # [B, T_l]
        sure = dist[..., 1] - dist[..., 0] > 2 * moved + MARGIN  # MARGIN: float32 rounding of the distances
        assert sure.mean() > 0.1  # a fair share of the codes is checked
        np.testing.assert_array_equal(np.asarray(codes16[level])[sure], np.asarray(codes[level])[sure])
