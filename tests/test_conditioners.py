"""Conditioner parity: the label conditioner (start embedding, timing signal) and the
upsamplers' music-token conditioner, against the original code's fixtures and against tiny
transformers 4.40.2 conditioners of other sizes and seeds, loaded through the name table."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch
from flax import traverse_util
from jax.sharding import PartitionSpec as P
from transformers import JukeboxPriorConfig
from transformers.models.jukebox.modeling_jukebox import JukeboxLabelConditioner, JukeboxMusicTokenConditioner

from convert.hps import prior_config_from_hps, vqvae_config_from_hps
from convert.table import Row
from convert.table_conditioners import label_rows, music_conditioner_rows
from jukebox_jax.config import ConditionerConfig, LabelConfig, PriorConfig, TransformerConfig, preset
from jukebox_jax.prior.conditioners import LabelConditioner, MusicTokenConditioner

PRIORS = ["prior_5b_level2", "prior_5b_lyrics_level2", "prior_1b_lyrics_level2", "upsampler_level1", "upsampler_level0"]
ORIGINAL, HF = operator.attrgetter("original"), operator.attrgetter("hf")  # a row's key in each format


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def load(
    module: nn.Module, rows: list[Row], state: Mapping[str, torch.Tensor], key: Callable[[Row], str], *inputs
) -> dict:
    """`module`'s params from a PyTorch state dict through `rows`, checked to have exactly the
    paths and shapes that `module.init(*inputs)` makes."""
    flat = {r.path: r.transform(np.asarray(state[key(r)], np.float32)) for r in rows}
    template = traverse_util.flatten_dict(nn.unbox(jax.eval_shape(module.init, jax.random.key(0), *inputs)["params"]))
    assert {p: v.shape for p, v in flat.items()} == {p: v.shape for p, v in template.items()}
    return traverse_util.unflatten_dict(flat)


def apply(module: nn.Module, params: dict, *inputs):
    return jax.jit(module.apply)({"params": params}, *inputs)


# ----------------------------------------------------------------------------------------
# The original code's fixtures


@pytest.fixture(scope="module", params=PRIORS)
def case(request, fixtures):
    stem = request.param
    hps = json.loads((fixtures / f"{stem}.hparams.json").read_text())["hps"]
    vqvae = vqvae_config_from_hps(json.loads((fixtures / "vqvae.hparams.json").read_text())["hps"])
    state = torch.load(fixtures / f"{stem}.pth.tar", weights_only=True)["model"]
    return prior_config_from_hps(hps, vqvae), state, np.load(fixtures / f"{stem}.reference.npz")


def _rows(cfg: PriorConfig) -> tuple[list[Row], list[Row]]:
    hf = f"priors.{2 - cfg.level}"
    labels = label_rows(cfg, (), "y_emb", f"{hf}.metadata_embedding")
    if cfg.conditioner is None:
        return labels, []
    return labels, music_conditioner_rows(cfg, (), "conditioner_blocks.0", f"{hf}.conditioner_blocks")


def test_rows_name_every_conditioner_tensor(case):
    cfg, state, _ = case
    labels, music = _rows(cfg)
    assert {r.original for r in labels} == {k for k in state if k.startswith("y_emb.")}
    assert {r.original for r in music} == {k for k in state if k.startswith("conditioner_blocks.")}


def test_fixture_parity(case):
    cfg, state, ref = case
    label_table, music_table = _rows(cfg)
    labels = ref["y"][:, : 4 + cfg.labels.max_bow_genre_size]
    conditioner = LabelConditioner(cfg)
    start, timing = apply(conditioner, load(conditioner, label_table, state, ORIGINAL, labels), labels)
    assert start.shape == ref["y_cond"].shape
    assert rel_err(start, ref["y_cond"]) < 1e-5
    if cfg.conditioner is None:  # the top prior's x_cond is the timing signal
        assert timing.shape == ref["x_cond"].shape
        assert rel_err(timing, ref["x_cond"]) < 1e-5
    else:
        assert timing is None
        music = MusicTokenConditioner(cfg)
        x_cond = apply(music, load(music, music_table, state, ORIGINAL, ref["z_cond"]), ref["z_cond"])
        assert x_cond.shape == ref["x_cond"].shape
        assert rel_err(x_cond, ref["x_cond"]) < 1e-5


def test_weights_carry_logical_axis_names():
    cfg = preset("tiny_5b")  # a top prior: all five label embeddings
    labels = np.zeros((1, 4 + cfg.labels.max_bow_genre_size), np.int32)
    specs = nn.get_partition_spec(jax.eval_shape(LabelConditioner(cfg).init, jax.random.key(0), labels))["params"]
    assert len(specs) == 5
    assert all(emb["embedding"] == P("vocab", "embed") for emb in specs.values())
    cfg = preset("tiny_upsampler_level_1")
    codes = np.zeros((1, 2), np.int32)
    specs = nn.get_partition_spec(jax.eval_shape(MusicTokenConditioner(cfg).init, jax.random.key(0), codes))["params"]
    assert specs["x_emb"]["embedding"] == P("vocab", "embed")
    assert specs["ln"]["scale"] == specs["ln"]["bias"] == P("embed")


# ----------------------------------------------------------------------------------------
# Tiny HF conditioners of other sizes


def _prior(level: int, n_ctx: int, width: int, labels: LabelConfig, **kw) -> PriorConfig:
    """A prior config with only what the conditioners read (a 1-layer dense transformer)."""
    transformer = TransformerConfig(width=width, depth=1, heads=1, attn_order=0, blocks=None, m_attn=1.0)  # any width
    return PriorConfig(level, n_ctx, transformer, labels=labels, **kw)


LABEL_CONFIGS = {
    # t_bins not a power of two, so `bins * normalised position` rounds too.
    "48_bins": _prior(2, 40, 24, LabelConfig(genre_bins=9, artist_bins=13, max_bow_genre_size=3, t_bins=48,
                                             min_duration=7.3, max_duration=95.0, sample_rate=22050)),
    "one_genre_slot": _prior(2, 33, 16, LabelConfig(genre_bins=5, artist_bins=7, max_bow_genre_size=1, t_bins=100,
                                                    min_duration=2.5, max_duration=31.0, sample_rate=16000)),
    "no_timing": _prior(1, 32, 20, LabelConfig(genre_bins=6, artist_bins=4, max_bow_genre_size=4, timing=False),
                        conditioner=ConditionerConfig()),
}  # fmt: skip
MUSIC_CONFIGS = {
    # (downs_t, strides_t) of the level above: (1, 4) upsamples by 4, (3, 2) by 8.
    "level0_x4": _prior(0, 36, 20, LabelConfig(timing=False), l_bins=11, downs_t=(1, 1, 2), strides_t=(2, 4, 2),
                        conditioner=ConditionerConfig(width=12, depth=5, m_conv=2.0, dilation_growth_rate=2,
                                                      dilation_cycle=3, res_scale=True)),
    "level1_x8": _prior(1, 24, 16, LabelConfig(timing=False), l_bins=17, downs_t=(2, 2, 3), strides_t=(2, 2, 2),
                        conditioner=ConditionerConfig(width=8, depth=4, dilation_growth_rate=3, dilation_cycle=None)),
}  # fmt: skip


def hf_prior_config(cfg: PriorConfig) -> JukeboxPriorConfig:
    lab, cond = cfg.labels, cfg.conditioner or ConditionerConfig()
    return JukeboxPriorConfig(
        hidden_size=cfg.transformer.width,
        n_ctx=cfg.n_ctx,
        music_vocab_size=cfg.l_bins,
        metadata_dims=[lab.genre_bins, lab.artist_bins],
        max_nb_genres=lab.max_bow_genre_size,
        timing_dims=lab.t_bins,
        min_duration=lab.min_duration,
        max_duration=lab.max_duration,
        sampling_rate=lab.sample_rate,
        res_downs_t=list(cfg.downs_t),
        res_strides_t=list(cfg.strides_t),
        res_conv_width=cond.width,
        res_conv_depth=cond.depth,
        res_convolution_multiplier=int(cond.m_conv),  # HF needs an int here
        res_dilation_growth_rate=cond.dilation_growth_rate,
        res_dilation_cycle=cond.dilation_cycle,
        conv_res_scale=cond.res_scale,
    )


@torch.no_grad()
def redraw(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Every parameter of `module` drawn from a seeded generator (as the fixtures: embeddings
    0.3 n, convs n / sqrt(fan_in), biases 0.1 n, LayerNorm weights 1 + 0.1 n); its state dict."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        n = torch.randn(p.shape, generator=g)
        if p.ndim == 1:
            p.copy_(1 + 0.1 * n if name.endswith("layer_norm.weight") else 0.1 * n)
        else:
            p.copy_(0.3 * n if p.ndim == 2 else n / np.sqrt(p[0].numel()))
    return module.eval().state_dict()


def random_labels(cfg: PriorConfig, n: int, seed: int) -> np.ndarray:
    """`[n, 4 + genre slots]` labels over the whole timing range: every other row's window
    starts in the song's last half-window and ends past its end (the original clamps the
    relative end at 1); each row leaves a random number of genre slots empty (-1)."""
    lab, rng = cfg.labels, np.random.default_rng(seed)
    sr, hop = lab.sample_rate, cfg.raw_to_tokens
    length = cfg.n_ctx * hop
    total = rng.integers(int(lab.min_duration * sr), int(lab.max_duration * sr) - length, n)
    late = np.arange(n) % 2 == 1
    offset = np.where(late, total - rng.integers(length // 2, length - hop, n), rng.integers(0, total - length))
    offset = offset // hop * hop
    genres = rng.integers(0, lab.genre_bins, (n, lab.max_bow_genre_size))
    genres[np.arange(lab.max_bow_genre_size) >= rng.integers(0, lab.max_bow_genre_size + 1, (n, 1))] = -1
    columns = [total, offset, np.full(n, length), rng.integers(0, lab.artist_bins, n)]
    return np.concatenate([np.stack(columns, 1), genres], 1)


@pytest.mark.parametrize("seed", [1, 7])
@pytest.mark.parametrize("name", LABEL_CONFIGS)
@torch.no_grad()
def test_label_conditioner_matches_hf(name, seed):
    cfg = LABEL_CONFIGS[name]
    # HF's forward is the original's. Its departure is in the config: `set_shared_params` gives
    # every prior the top prior's genre slots; we build it with the original's.
    reference = JukeboxLabelConditioner(hf_prior_config(cfg), include_time_signal=cfg.labels.timing)
    hf = "priors.0.metadata_embedding"
    state = {f"{hf}.{k}": v for k, v in redraw(reference, seed).items()}
    rows = label_rows(cfg, (), "y_emb", hf)
    assert {r.hf for r in rows} == state.keys()
    labels = random_labels(cfg, 16, seed)
    ours = LabelConditioner(cfg)
    start, timing = apply(ours, load(ours, rows, state, HF, labels), labels)
    ref_start, ref_timing = reference(torch.from_numpy(labels))
    assert rel_err(start, ref_start) < 1e-5
    if cfg.labels.timing:
        assert rel_err(timing, ref_timing) < 1e-5
    else:
        assert timing is None and ref_timing is None


@pytest.mark.parametrize("seed", [2, 5])
@pytest.mark.parametrize("name", MUSIC_CONFIGS)
@torch.no_grad()
def test_music_conditioner_matches_hf(name, seed):
    cfg = MUSIC_CONFIGS[name]
    # HF picks the upsampling factors by its own (reversed) prior index, which agrees with the
    # original's (the VQ-VAE level above) only for equal factors; we pass the original's.
    reference = JukeboxMusicTokenConditioner(hf_prior_config(cfg), cfg.level + 1)
    hf = f"priors.{2 - cfg.level}.conditioner_blocks"
    state = {f"{hf}.{k}": v for k, v in redraw(reference, seed).items()}
    rows = music_conditioner_rows(cfg, (), "conditioner_blocks.0", hf)
    assert {r.hf for r in rows} == state.keys()
    codes = np.random.default_rng(seed).integers(0, cfg.l_bins, (3, cfg.n_ctx // cfg.cond_downsample))
    ours = MusicTokenConditioner(cfg)
    out = apply(ours, load(ours, rows, state, HF, codes), codes)
    ref = reference(torch.from_numpy(codes)).numpy()
    assert out.shape == ref.shape == (3, cfg.n_ctx, cfg.transformer.width)
    assert rel_err(out, ref) < 1e-5


@pytest.mark.parametrize("name", ["5b_lyrics", "1b_lyrics"])
@torch.no_grad()
def test_timing_bins_match_the_original_at_full_size(name):
    """Every timing bin of 1024 windows at the released top priors' context, range and bins.
    Embedding tables holding their own row index make the signal read back the bins (total
    length, absolute, relative position in channels 0, 1, 2). Without the guards in
    `conditioners.py`, XLA's FMA contraction and its division by a constant's reciprocal
    each move a few of these bins under jit (about 20 and 3 of the 5b ones)."""
    cfg = _prior(2, preset(name).n_ctx, 3, preset(name).labels)
    reference = JukeboxLabelConditioner(hf_prior_config(cfg), include_time_signal=True)
    for p in reference.parameters():
        p.zero_()
    timing_embs = (reference.total_length_emb, reference.absolute_pos_emb, reference.relative_pos_emb)
    for channel, emb in enumerate(timing_embs):
        emb.emb.weight[:, channel] = torch.arange(cfg.labels.t_bins)
    hf = "metadata_embedding"
    state = {f"{hf}.{k}": v for k, v in reference.state_dict().items()}
    labels = random_labels(cfg, 1024, 0)
    ours = LabelConditioner(cfg)
    _, timing = apply(ours, load(ours, label_rows(cfg, (), "y_emb", hf), state, HF, labels), labels)
    np.testing.assert_array_equal(np.asarray(timing), reference(torch.from_numpy(labels))[1].numpy())
