"""Configs: the readers (`convert.hps`, `convert.hf_config`), the presets, the attention layouts, and the
JSON round trip, against the original code's own numbers and transformers 4.40.2 configs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from convert.hf_config import config_from_hf
from convert.hps import prior_config_from_hps, vqvae_config_from_hps
from jukebox_jax.config import (
    MODEL_PRESETS,
    AttnKind,
    ConfigError,
    JukeboxConfig,
    Lyrics,
    PriorConfig,
    TransformerConfig,
    attn_pattern,
    preset,
)

STEMS = ["vqvae", "prior_5b_level2", "prior_5b_lyrics_level2", "prior_1b_lyrics_level2", "upsampler_level1",
         "upsampler_level0"]  # fmt: skip


def _hparams(fixtures: Path, stem: str) -> dict:
    return json.loads((fixtures / f"{stem}.hparams.json").read_text())


# ----------------------------------------------------------------------------------------
# The original `hps` reader against the fixtures' derived values


@pytest.mark.parametrize("stem", STEMS)
def test_from_hps_matches_original_derived_values_and_tiny_presets(fixtures, stem):
    j = _hparams(fixtures, stem)
    derived, tiny = j["derived"], preset("tiny_" + j["preset"].removeprefix("prior_"))
    vq = vqvae_config_from_hps(_hparams(fixtures, "vqvae")["hps"])
    if j["kind"] == "vqvae":
        assert vq == tiny
        assert list(vq.hop_lengths) == derived["hop_lengths"]
        assert list(vq.downsamples) == derived["downsamples"]
        assert [[j["hps"]["sample_length"] // h] for h in vq.hop_lengths] == derived["z_shapes"]
        return
    cfg = prior_config_from_hps(j["hps"], vq)
    assert cfg == tiny
    assert (cfg.level, cfg.l_bins, cfg.n_ctx) == (derived["level"], derived["l_bins"], derived["n_ctx"])
    assert cfg.n_tokens == derived["n_tokens"]
    assert [int(k) for k in cfg.transformer.pattern] == derived["attn_funcs"]
    assert cfg.block_ctx == derived["block_ctx"]
    assert cfg.n_positions == derived["transformer_n_ctx"]
    assert cfg.raw_to_tokens == derived["raw_to_tokens"]
    assert cfg.n_ctx * cfg.raw_to_tokens == derived["sample_length"]
    assert [cfg.n_ctx] == derived["z_shapes"][cfg.level]
    assert cfg.cond_downsample == derived["cond_downsample"]
    assert cfg.bins == derived["prior_bins"]
    assert (cfg.lyrics is Lyrics.JOINT_SEQUENCE) == derived["single_enc_dec"]
    untied = cfg.merged_decoder  # untied output head, x_cond not re-added after the transformer
    assert (not untied, not untied) == (derived["share_x_emb_x_out"], derived["add_cond_after_transformer"])
    if "prior_bins_split" in derived:  # 1b: [lyric vocabulary, music codes]
        assert [cfg.n_vocab, cfg.l_bins] == derived["prior_bins_split"]
        assert cfg.prime_len == derived["prime_len_attended"]
    if "prime_attn_funcs" in derived:  # 5b_lyrics: the lyric encoder runs over the n_tokens lyrics
        enc = cfg.lyric_encoder
        assert [int(k) for k in enc.pattern] == derived["prime_attn_funcs"]
        assert cfg.n_tokens // enc.blocks == derived["prime_block_ctx"]
    else:
        assert cfg.lyric_encoder is None
    with np.load(fixtures / f"{stem}.reference.npz") as ref:
        assert ref["y"].shape[1] == cfg.n_labels


def test_from_hps_rejects_unknown_fields_and_unsupported_values(fixtures):
    vq_hps, prior_hps = _hparams(fixtures, "vqvae")["hps"], _hparams(fixtures, "upsampler_level1")["hps"]
    with pytest.raises(ConfigError, match="made_up_field"):
        vqvae_config_from_hps({**vq_hps, "made_up_field": 1})
    with pytest.raises(ConfigError, match="use_bottleneck"):
        vqvae_config_from_hps({**vq_hps, "use_bottleneck": False})
    vq = vqvae_config_from_hps(vq_hps)
    with pytest.raises(ConfigError, match="another_field"):
        prior_config_from_hps({**prior_hps, "another_field": 0}, vq)
    with pytest.raises(ConfigError, match="copy_input"):
        prior_config_from_hps({**prior_hps, "copy_input": True}, vq)
    with pytest.raises(ConfigError, match=r"unsupported prior settings: \{'cond_c_res': 0\}"):  # was a tensor-name mismatch later
        prior_config_from_hps({**prior_hps, "cond_c_res": 0}, vq)
    top_hps = _hparams(fixtures, "prior_5b_level2")["hps"]
    assert top_hps["cond_c_res"] == 0 and prior_config_from_hps(top_hps, vq).conditioner is None  # no conditioner: not read


# ----------------------------------------------------------------------------------------
# Released presets against the original `jukebox/hparams.py`


def _summary(p: PriorConfig) -> dict:
    t, lab = p.transformer, p.labels
    return dict(
        width=t.width, depth=t.depth, heads=t.heads, attn_width=t.attn_width, mlp_width=t.mlp_width,
        blocks=t.blocks, block_ctx=p.block_ctx, n_ctx=p.n_ctx, n_positions=p.n_positions, attn_order=t.attn_order,
        init_scale=t.init_scale, lyrics=p.lyrics, n_tokens=p.n_tokens,
        labels=(lab.genre_bins, lab.artist_bins, lab.max_bow_genre_size, lab.v3, lab.timing),
        timing=(lab.t_bins, lab.min_duration, lab.max_duration) if lab.timing else None,
        merged_decoder=p.merged_decoder,
    )  # fmt: skip


_V2, _V3 = (120, 4111, 5, False), (604, 7898, 1, True)
_UPSAMPLER = dict(
    width=1920, depth=72, heads=1, attn_width=480, mlp_width=1920, blocks=128, block_ctx=64, n_ctx=8192,
    n_positions=8192, attn_order=2, init_scale=0.4, lyrics=Lyrics.NONE, n_tokens=0, labels=(*_V2, False),
    timing=None, merged_decoder=False,
)  # fmt: skip
RELEASED = {
    "5b": dict(
        width=4800, depth=72, heads=8, attn_width=1200, mlp_width=4800, blocks=128, block_ctx=64, n_ctx=8192,
        n_positions=8192, attn_order=2, init_scale=0.1, lyrics=Lyrics.NONE, n_tokens=0, labels=(*_V2, True),
        timing=(128, 60.0, 600.0), merged_decoder=True,
    ),
    "5b_lyrics": dict(
        width=4800, depth=79, heads=8, attn_width=1200, mlp_width=4800, blocks=128, block_ctx=64, n_ctx=8192,
        n_positions=8192, attn_order=10, init_scale=0.1, lyrics=Lyrics.SEPARATE_ENCODER, n_tokens=512,
        labels=(*_V2, True), timing=(128, 23.8, 600.0), merged_decoder=True,
    ),
    "1b_lyrics": dict(
        width=2048, depth=72, heads=2, attn_width=512, mlp_width=2048, blocks=64, block_ctx=102, n_ctx=6144,
        n_positions=6528, attn_order=12, init_scale=0.2, lyrics=Lyrics.JOINT_SEQUENCE, n_tokens=384,
        labels=(*_V3, True), timing=(64, 17.84, 600.0), merged_decoder=False,
    ),
    "upsampler_level_1": _UPSAMPLER,
    "upsampler_level_0": _UPSAMPLER,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_prior_presets(name):
    p = preset(name)
    assert _summary(p) == RELEASED[name]
    assert p.level == {"upsampler_level_1": 1, "upsampler_level_0": 0}.get(name, 2)
    assert (p.l_bins, p.downs_t, p.strides_t) == (2048, (3, 2, 2), (2, 2, 2))
    if name == "5b_lyrics":
        e = p.lyric_encoder
        assert (e.width, e.depth, e.heads, e.blocks, e.attn_order, e.init_scale) == (1280, 18, 4, 32, 2, 0.7)
        assert (p.n_vocab, p.prime_loss_fraction, p.alignment_layer, p.alignment_head) == (80, 0.4, 68, 2)
    if name == "1b_lyrics":
        assert (p.n_vocab, p.bins, p.prime_len) == (79, 79 + 2048, 448)
        assert (p.prime_loss_fraction, p.alignment_layer, p.alignment_head) == (0.4, 63, 0)
    if name.startswith("upsampler"):
        c = p.conditioner
        assert (c.width, c.depth, c.dilation_growth_rate, c.dilation_cycle) == (1024, 16, 3, 8)
        assert c.res_scale == (p.level == 1)
        assert p.cond_downsample == 4 and p.raw_to_tokens == (8, 32)[p.level]
    else:
        assert p.conditioner is None and p.raw_to_tokens == 128


def test_released_vqvae_preset():
    v = preset("vqvae")
    assert (v.levels, v.downs_t, v.strides_t, v.multipliers) == (3, (3, 2, 2), (2, 2, 2), (2, 1, 1))
    assert (v.width, v.depth) == (32, 4)
    assert (v.l_bins, v.emb_width, v.dilation_growth_rate, v.commit, v.mu) == (2048, 64, 3, 0.02, 0.99)
    assert v.hop_lengths == (8, 32, 128) and (v.level_width(0), v.level_depth(0)) == (64, 8)


# ----------------------------------------------------------------------------------------
# Attention layouts against a transcription of the original `Transformer.__init__`


def _original_attn_func(order: int, d: int) -> int:
    """`attn_func(d)` of jukebox/transformer/transformer.py, written as rules, not tables."""
    row = [1, 2, 3][d % 3]
    if order == 10:  # 79-layer cycle: 18 (1,2,3) layers, then [6, 1,2,3 x3] seven times
        k = d % 79
        return [1, 2, 3][k % 3] if k < 18 else (6 if (k - 18) % 10 == 0 else [1, 2, 3][((k - 18) % 10 - 1) % 3])
    if order in (11, 12):  # every 16th layer (d % 16 == 15) is special
        return ([6, 6, 0] if order == 11 else [7, 7, 0])[d % 3] if d % 16 == 15 else row
    return {
        0: 0,
        1: [1, 2][d % 2],
        2: row,
        3: [1, 4][d % 2],
        4: [1, 5][d % 2],
        5: 4 if d % 4 == 1 else 1,
        6: 6 if d % 4 == 3 else [1, 2, 3][d % 4 % 3],
        7: 6 if d % 16 == 15 else [1, 2, 3][d % 16 % 3],
        8: 6 if d % 10 == 9 else [1, 2, 3][d % 10 % 3],
        9: [1, 2, 3, 0][d % 4],
    }[order]


@pytest.mark.parametrize("order", range(13))
def test_attn_pattern_matches_original(order):
    depth = 2 * 79 + 5
    assert [int(k) for k in attn_pattern(order, depth)] == [_original_attn_func(order, d) for d in range(depth)]


def test_attn_pattern_special_layers():
    p10 = attn_pattern(10, 79)
    assert [d for d, k in enumerate(p10) if k == 6] == list(range(18, 79, 10))
    p12 = [int(k) for k in attn_pattern(12, 64)]
    assert [p12[d] for d in (15, 31, 47, 63)] == [7, 7, 0, 7]  # [prime, prime, dense][d % 3]
    assert p12[14] == 3 and p12[16] == 2  # the (1,2,3) cycle runs on d % 3 across them
    p11 = [int(k) for k in attn_pattern(11, 48)]
    assert [p11[d] for d in (15, 31, 47)] == [6, 6, 0]


def test_invalid_attn_order_raises():
    with pytest.raises(ConfigError, match="13"):
        attn_pattern(13, 4)
    with pytest.raises(ConfigError, match="-1"):
        TransformerConfig(width=8, depth=1, heads=1, attn_order=-1, blocks=None)


def test_odd_lyric_token_count_is_refused():
    """A window's lyric tokens lie n_tokens / 2 either side of its midpoint (the original asserts
    the count): an odd n_tokens gave label rows one column short."""
    top = JukeboxConfig.from_preset("tiny_5b_lyrics").prior(2)
    with pytest.raises(ConfigError, match="n_tokens=33 must be even"):
        dataclasses.replace(top, n_tokens=33)


def test_lyric_tokens_go_with_lyrics_and_fit_the_encoders_blocks():
    """A prior has lyric tokens exactly when it has lyrics (no tokens gave a lyric encoder of
    zero positions, which divided by None when built); the encoder's blocks divide them."""
    top = JukeboxConfig.from_preset("tiny_5b_lyrics").prior(2)
    with pytest.raises(ConfigError, match="n_tokens=0 with lyrics SEPARATE_ENCODER"):
        dataclasses.replace(top, n_tokens=0)
    with pytest.raises(ConfigError, match="n_tokens=32 with lyrics NONE"):
        dataclasses.replace(top, lyrics=Lyrics.NONE, lyric_encoder=None)
    with pytest.raises(ConfigError, match="n_tokens=30 is not a multiple of the lyric encoder's blocks=4"):
        dataclasses.replace(top, n_tokens=30)


def test_an_upsampler_with_timing_labels_is_refused():
    """An upsampler's conditioner output replaces the timing signal (the original's upsamplers
    have none): timing tables on one were drawn, checked against and never read."""
    up = JukeboxConfig.from_preset("tiny_5b").prior(1)
    assert not up.labels.timing
    with pytest.raises(ConfigError, match=r"the level-1 upsampler reads no timing .*LabelConfig\(timing=False"):
        dataclasses.replace(up, labels=dataclasses.replace(up.labels, timing=True))


@pytest.mark.parametrize("order", range(13))
def test_block_sparse_layers_need_blocks(order):
    """Only dense (and encoder-decoder) layers run without `blocks`: the others split the
    context into blocks (a converted file with `blocks` None built a model that divided by None)."""
    kinds = set(attn_pattern(order, 72))
    if kinds <= {AttnKind.DENSE, AttnKind.ENC_DEC}:
        assert TransformerConfig(width=8, depth=72, heads=1, attn_order=order, blocks=None).blocks is None
    else:
        with pytest.raises(ConfigError, match=f"attn_order {order} has .* layers, which need blocks: give blocks"):
            TransformerConfig(width=8, depth=72, heads=1, attn_order=order, blocks=None)


# ----------------------------------------------------------------------------------------
# Our own JSON form


@pytest.mark.parametrize("name", MODEL_PRESETS)
def test_to_dict_from_dict_round_trip(name):
    cfg = JukeboxConfig.from_preset(name)
    assert JukeboxConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_from_dict_rejects_extra_fields():
    d = JukeboxConfig.from_preset("tiny_5b_lyrics").to_dict()
    d["priors"][0]["transformer"]["extra_knob"] = 1
    with pytest.raises(ConfigError, match="extra_knob"):
        JukeboxConfig.from_dict(d)
    with pytest.raises(ConfigError, match="top_knob"):
        JukeboxConfig.from_dict({**JukeboxConfig.from_preset("tiny_5b").to_dict(), "top_knob": 0})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(vqvae=3), r"VQVAEConfig must be a JSON object, got int 3"),
        (lambda d: d["vqvae"].update(width="abc"), r"VQVAEConfig.width = 'abc': not of type int"),
        (lambda d: d["vqvae"].update(l_bins=2.5), r"VQVAEConfig.l_bins = 2.5: not of type int"),
        (lambda d: d["vqvae"].update(levels=True), r"VQVAEConfig.levels = True: not of type int"),
        (lambda d: d["vqvae"].update(downs_t=3), r"VQVAEConfig.downs_t = 3: not a list"),
        (lambda d: d["priors"][0].update(level=[1]), r"PriorConfig.level = \[1\]: not of type int"),
        (lambda d: d["priors"][0]["labels"].update(max_duration="long"), r"LabelConfig.max_duration = 'long': not of type float"),
        (lambda d: d["priors"][0].pop("transformer"), r"PriorConfig: a value of the wrong type \(.*'transformer'"),
        (lambda d: d["vqvae"].update(l_bins=None), r"VQVAEConfig.l_bins = None: null where a value is needed"),  # an AttributeError on a mesh
        (lambda d: d["vqvae"].update(precision=None), r"VQVAEConfig.precision = None: null where a value is needed"),
    ],
)
def test_from_dict_names_a_value_of_the_wrong_type(edit, message):
    """A hand-edited config (`train --config FILE`, a checkpoint's config.json) fails here,
    naming the field, not later inside JAX (width 'abc' reached a layer; a list level a TypeError)."""
    d = JukeboxConfig.from_preset("tiny_5b").to_dict()
    edit(d)
    with pytest.raises(ConfigError, match=message):
        JukeboxConfig.from_dict(d)


@pytest.mark.parametrize(
    ("edit", "message"),
    [  # each failed later (a ZeroDivisionError in a layer or the CLI, a "damaged" checkpoint, 3.47 PiB) or was taken
        (lambda d: d["vqvae"].update(sample_rate=0), r"VQVAEConfig.sample_rate = 0: expected integers at least 1"),
        (lambda d: d["vqvae"].update(width=0), r"VQVAEConfig.width = 0: expected integers at least 1"),
        (lambda d: d["vqvae"].update(l_bins=0), r"VQVAEConfig.l_bins = 0: expected integers at least 1"),
        (lambda d: d["vqvae"].update(emb_width=-4), r"VQVAEConfig.emb_width = -4: expected integers at least 1"),
        (lambda d: d["vqvae"].update(downs_t=[3, 0, 2]), r"VQVAEConfig.downs_t = \(3, 0, 2\): expected integers at least 1"),
        (lambda d: d["vqvae"].update(mu=float("nan")), r"VQVAEConfig.mu = nan: expected a finite number in \[0, 1\)"),
        (lambda d: d["vqvae"].update(commit=float("inf")), r"VQVAEConfig.commit = inf: expected a finite number"),
        (lambda d: d["priors"][0].update(n_ctx=0), r"PriorConfig.n_ctx = 0: expected integers from 1 to 65536"),
        (lambda d: d["priors"][0].update(n_ctx=10**9), r"PriorConfig.n_ctx = 1000000000: expected integers from 1 to 65536"),
        (lambda d: d["priors"][0].update(level=-1), r"PriorConfig.level = -1: expected integers at least 0"),
        (lambda d: d["priors"][0]["transformer"].update(width=0), r"TransformerConfig.width = 0: expected integers at least 1"),
        (lambda d: d["priors"][0]["transformer"].update(depth=0), r"TransformerConfig.depth = 0: expected integers at least 1"),
        (lambda d: d["priors"][0]["transformer"].update(heads=0), r"TransformerConfig.heads = 0: expected integers at least 1"),
        (lambda d: d["priors"][0]["transformer"].update(blocks=0), r"TransformerConfig.blocks = 0: expected integers at least 1"),
        (lambda d: d["priors"][0]["transformer"].update(attn_dropout=1.0), r"TransformerConfig.attn_dropout = 1.0: expected a finite number in \[0, 1\)"),
        (lambda d: d["priors"][0]["transformer"].update(m_attn=0.001), r"m_attn 0.001 and m_mlp 1.0 of width \d+ leave no width"),
        (lambda d: d["priors"][0]["labels"].update(t_bins=0), r"LabelConfig.t_bins = 0: expected integers at least 1"),
        (lambda d: d["priors"][0]["labels"].update(max_duration=0.0), r"LabelConfig.max_duration = 0.0: expected a finite number in \(60, inf\)"),
        (lambda d: d["priors"][0]["labels"].update(artists=["", "a"]), r"artists: '' is not a name \(each must be a non-blank string\)"),
        (lambda d: d["priors"][0]["labels"].update(sample_rate=16000), r"the level-0 prior does not fit the VQ-VAE: its sample_rate 16000 \(the VQ-VAE's 44100\)"),
        (lambda d: d["priors"][0].update(l_bins=32), r"the level-0 prior does not fit the VQ-VAE: its l_bins 32 \(the VQ-VAE's 64\)"),
    ],
)
def test_from_dict_names_a_value_out_of_range(edit, message):
    d = JukeboxConfig.from_preset("tiny_5b").to_dict()
    edit(d)
    with pytest.raises(ConfigError, match=message):
        JukeboxConfig.from_dict(d)


def test_a_prior_and_a_vqvae_of_other_models_are_refused_together():
    """A 44.1 kHz prior of 64 codes with a 16 kHz VQ-VAE of 256 was built, saved and sampled:
    its codes used a quarter of the codebook, its timing read the wrong rate."""
    with pytest.raises(ConfigError, match=r"its l_bins 64 \(the VQ-VAE's 256\), sample_rate 44100 \(the VQ-VAE's 16000\)"):
        JukeboxConfig(vqvae=preset("small_vqvae"), priors=(preset("tiny_5b"),))


# ----------------------------------------------------------------------------------------
# transformers 4.40.2 config.json


@pytest.fixture(scope="module")
def hf():
    return pytest.importorskip("transformers")


_HF_VQVAE = dict(res_conv_width=16, res_conv_depth=3, embed_dim=16, nb_discrete_codes=64)  # tiny_vqvae
_HF_LABELS_V2 = dict(metadata_dims=[12, 30], mask=True, music_vocab_size=64)


def _hf_upsampler(level: int) -> dict:  # tiny_upsampler_level_{level}
    return dict(
        hidden_size=64, num_layers=6, n_heads=1, attention_pattern="raw_column_previous_row_attention", blocks=4,
        n_ctx=64, init_scale=0.4, is_encoder_decoder=False, nb_relevant_lyric_tokens=0, lyric_vocab_size=80,
        merged_decoder=False, res_conv_width=32, res_conv_depth=10, res_dilation_growth_rate=3, res_dilation_cycle=8,
        conv_res_scale=level == 1, **_HF_LABELS_V2,
    )  # fmt: skip


# preset -> (top-level HF fields, the HF top prior); HF lists the priors top first.
_HF_TOPS = {
    "tiny_5b": (
        dict(timing_dims=128, min_duration=60.0, max_nb_genres=5),
        dict(hidden_size=128, num_layers=6, n_heads=8, attention_pattern="raw_column_previous_row_attention", blocks=4,
             n_ctx=48, init_scale=0.1, is_encoder_decoder=False, nb_relevant_lyric_tokens=0, merged_decoder=True,
             **_HF_LABELS_V2),
    ),
    "tiny_5b_lyrics": (
        dict(timing_dims=128, min_duration=23.8, max_nb_genres=5),
        dict(hidden_size=64, num_layers=19, n_heads=8, attention_pattern="large_separated_enc_dec_w_lyrics",
             blocks=4, n_ctx=48, init_scale=0.1, is_encoder_decoder=False, nb_relevant_lyric_tokens=32,
             lyric_vocab_size=80, encoder_loss_fraction=0.4, merged_decoder=True, alignment_layer=18,
             alignment_head=2, **_HF_LABELS_V2,
             encoder_config=dict(hidden_size=32, num_layers=3, n_heads=4, blocks=4, init_scale=0.7, mask=True,
                                 attention_pattern="raw_column_previous_row_attention")),
    ),
    "tiny_1b_lyrics": (
        dict(timing_dims=64, min_duration=17.84, max_nb_genres=1),
        dict(hidden_size=64, num_layers=16, n_heads=2, attention_pattern="enc_dec_with_lyrics", blocks=8, n_ctx=72,
             init_scale=0.2, is_encoder_decoder=True, nb_relevant_lyric_tokens=24, lyric_vocab_size=79,
             encoder_loss_fraction=0.4, merged_decoder=False, alignment_layer=15, alignment_head=0, mask=True,
             music_vocab_size=64, metadata_dims=[604, 7898]),  # the v3 label set
    ),
}  # fmt: skip


def _hf_json(hf, name: str, layout: str = "to_dict", **top_prior: object) -> dict:
    """The config.json of a tiny HF model of the `name` preset's structure, after
    `JukeboxModel.__init__`'s `set_shared_params` (a saved model's config has run it)."""
    top, prior = _HF_TOPS[name]
    priors = [{**prior, **top_prior}, _hf_upsampler(1), _hf_upsampler(0)]
    cfg = hf.JukeboxConfig(vqvae_config=_HF_VQVAE, prior_config_list=priors, **top)
    hf.JukeboxModel.set_shared_params(None, cfg)
    # `save_pretrained` writes `to_json_string(use_diff=True)`: `vqvae_config` only where it
    # differs from HF's defaults; a hand-written file may list the priors as `prior_{i}`.
    d = json.loads(cfg.to_json_string(use_diff=layout == "saved"))
    if layout == "prior_i":
        d |= {f"prior_{i}": p for i, p in enumerate(d.pop("prior_config_list"))}
    return d


def _expected(name: str) -> JukeboxConfig:
    cfg = JukeboxConfig.from_preset(name)
    if name == "tiny_1b_lyrics":  # HF knows the label set only by its size: use the real v3 sizes
        top = cfg.prior(2)
        labels = dataclasses.replace(top.labels, genre_bins=604, artist_bins=7898)
        cfg = dataclasses.replace(cfg, priors=(*cfg.priors[:2], dataclasses.replace(top, labels=labels)))
    return cfg


@pytest.mark.parametrize("layout", ["to_dict", "saved", "prior_i"])
@pytest.mark.parametrize("name", sorted(_HF_TOPS))
def test_from_hf_reads_each_structure(hf, name, layout):
    d = _hf_json(hf, name, layout)
    ours = config_from_hf(d)
    assert ours == _expected(name)
    top = ours.prior(2)
    lyrics = dict(tiny_5b=Lyrics.NONE, tiny_5b_lyrics=Lyrics.SEPARATE_ENCODER, tiny_1b_lyrics=Lyrics.JOINT_SEQUENCE)
    assert top.lyrics is lyrics[name]
    if name == "tiny_1b_lyrics":
        assert (top.n_positions, top.bins, top.n_vocab) == (96, 143, 79)
    if name == "tiny_5b_lyrics":
        assert (top.lyric_encoder.width, top.lyric_encoder.depth, top.n_tokens) == (32, 3, 32)


def test_from_hf_does_not_copy_shared_label_fields_onto_upsamplers(hf):
    """HF's `set_shared_params` gives the 1b upsamplers the top prior's 1 genre slot, timing
    bins and durations; the original trained them with the v2 labels (5 slots), no timing."""
    d = _hf_json(hf, "tiny_1b_lyrics")
    assert [p["max_nb_genres"] for p in d["prior_config_list"]] == [1, 1, 1]  # the HF defect is in the input
    assert d["prior_config_list"][1]["min_duration"] == 17.84
    ours = config_from_hf(d)
    top = ours.prior(2).labels
    assert (top.v3, top.max_bow_genre_size, top.timing, top.t_bins, top.min_duration) == (True, 1, True, 64, 17.84)
    for level in (1, 0):
        lab = ours.prior(level).labels
        assert (lab.v3, lab.max_bow_genre_size, lab.timing) == (False, 5, False)
        assert lab == preset(f"tiny_upsampler_level_{level}").labels


def test_from_hf_without_metadata_conditioning(hf):
    d = _hf_json(hf, "tiny_5b") | {"metadata_conditioning": False}
    assert all(p.labels is None for p in config_from_hf(d).priors)


@pytest.mark.parametrize("pattern", ["full_dense_attention", "raw_column_previous_row_attention",
                                     "large_separated_enc_dec_w_lyrics", "enc_dec_with_lyrics"])  # fmt: skip
def test_from_hf_attention_patterns_match_hf_layers(hf, pattern):
    from transformers.models.jukebox.configuration_jukebox import ATTENTION_PATTERNS

    # HF's names per layer; its "dense_attention" (full_dense_attention) is a typo its own
    # attention lookup rejects, meant as dense.
    kinds = dict(dense_attn=0, dense_attention=0, block_attn=1, transpose_block_attn=2, prev_block_attn=3,
                 cross_attention=6, prime_attn=7)  # fmt: skip
    depth = 2 * 79 + 5
    ours = config_from_hf(_hf_json(hf, "tiny_5b", attention_pattern=pattern, num_layers=depth))
    hf_layers = [kinds[ATTENTION_PATTERNS[pattern](d)] for d in range(depth)]
    assert [int(k) for k in ours.prior(2).transformer.pattern] == hf_layers


def test_from_hf_standalone_vqvae(hf):
    d = json.loads(hf.JukeboxVQVAEConfig(**_HF_VQVAE).to_json_string())
    assert d["model_type"] == "jukebox_vqvae"
    assert config_from_hf(d) == JukeboxConfig(vqvae=preset("tiny_vqvae"))


def test_from_hf_reads_the_dropout_rates(hf):
    """HF's priors and lyric encoder read `attn_dropout`, `resid_dropout` and `emb_dropout`."""
    d = _hf_json(hf, "tiny_5b_lyrics", attn_dropout=0.1, resid_dropout=0.2, emb_dropout=0.3)
    d["prior_config_list"][0]["encoder_config"] |= dict(attn_dropout=0.4, resid_dropout=0.5, emb_dropout=0.6)
    cfg = config_from_hf(d)
    t, e = cfg.prior(2).transformer, cfg.prior(2).lyric_encoder
    assert (t.attn_dropout, t.resid_dropout, t.emb_dropout) == (0.1, 0.2, 0.3)
    assert (e.attn_dropout, e.resid_dropout, e.emb_dropout) == (0.4, 0.5, 0.6)
    up = cfg.prior(1).transformer
    assert (up.attn_dropout, up.resid_dropout, up.emb_dropout) == (0.0, 0.0, 0.0)


def test_from_hf_reads_vqvae_config_not_vqvae_config_dict(hf):
    """HF's documented `JukeboxConfig.from_configs(priors, vqvae)` stores the VQ-VAE as
    `vqvae_config_dict`, which `JukeboxModel` never reads: it builds `vqvae_config`. We read
    `vqvae_config` too, warn when the two differ once HF's defaults are filled in, and check
    `vqvae_config_dict`'s fields like any other."""
    d = _hf_json(hf, "tiny_5b", "saved")  # vqvae_config: only the fields that differ from HF's defaults
    full = hf.JukeboxVQVAEConfig(**_HF_VQVAE).to_dict()  # as from_configs stores it: every field
    want = config_from_hf(d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert config_from_hf(d | {"vqvae_config_dict": full}) == want  # the same VQ-VAE spelled out: no warning
    other = full | {"nb_discrete_codes": 32, "embed_dim": 8}
    with pytest.warns(UserWarning, match="ignores vqvae_config_dict") as record:
        assert config_from_hf(d | {"vqvae_config_dict": other}) == want
    message = str(record[0].message)
    assert "nb_discrete_codes=64 (vqvae_config_dict: 32)" in message and "embed_dim=16 (vqvae_config_dict: 8)" in message
    assert "res_conv_width" not in message  # only the differing fields
    with pytest.raises(ConfigError, match=r"vqvae_config_dict\.made_up"):
        config_from_hf(d | {"vqvae_config_dict": full | {"made_up": 1}})


def test_from_hf_rejects_unknown_fields(hf):
    d = _hf_json(hf, "tiny_5b_lyrics")
    d["top_extra"] = 1
    d["vqvae_config"]["vq_extra"] = 2
    d["prior_config_list"][1]["prior_extra"] = 3
    d["prior_config_list"][0]["encoder_config"]["enc_extra"] = 4
    with pytest.raises(ConfigError) as e:
        config_from_hf(d)
    for field in ["top_extra", "vqvae_config.vq_extra", "prior_config_list[1].prior_extra", "encoder_config.enc_extra"]:
        assert field in str(e.value)
    with pytest.raises(ConfigError, match="vq_only_extra"):
        config_from_hf({**hf.JukeboxVQVAEConfig().to_dict(), "vq_only_extra": 0})
    with pytest.raises(ConfigError, match="model_type"):
        config_from_hf({"model_type": "bert"})


@pytest.mark.parametrize(
    "where, field, value",
    [
        ("prior", "act_fn", "gelu"),
        ("prior", "attention_pattern", "summary_attention"),
        ("prior", "music_vocab_size", 2048),  # not the VQ-VAE's 64 codes
        ("prior", "res_downs_t", [3, 2, 3]),
        ("encoder", "act_fn", "relu"),
        ("vqvae", "conv_input_shape", 2),
        ("vqvae", "conv_res_scale", True),
    ],
)
def test_from_hf_rejects_unsupported_values(hf, where, field, value):
    d = _hf_json(hf, "tiny_5b_lyrics")
    target = {"prior": d["prior_config_list"][0], "encoder": d["prior_config_list"][0]["encoder_config"],
              "vqvae": d["vqvae_config"]}[where]  # fmt: skip
    target[field] = value
    with pytest.raises(ConfigError, match=field) as e:
        config_from_hf(d)
    assert repr(value) in str(e.value)


def test_from_hf_rejects_upsampling_factors_hf_would_swap(hf):
    """HF's conditioner at list index i upsamples by `res_downs_t[i]`; the original's at level
    l by `downs_t[l + 1]`. Equal for (3, 2, 2); for (2, 3, 2) the weights would not fit."""
    d = _hf_json(hf, "tiny_5b")
    for c in [d["vqvae_config"], *d["prior_config_list"]]:
        c["res_downs_t"] = [2, 3, 2]
    with pytest.raises(ConfigError, match="HF would upsample"):
        config_from_hf(d)


def test_library_and_config_readers_import_neither_transformers_nor_torch():
    """`jukebox_jax` never needs torch; the config readers in `convert/` are pure Python too."""
    code = "import sys, jukebox_jax.cli, convert.hps, convert.hf_config; print(sorted({'transformers', 'torch'} & set(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_durations_from_t_ranges(fixtures):
    """Some versions of the original store the top prior's timing ranges as `t_ranges` (in
    samples) with min/max_duration None; both spellings give the same config."""
    vq = vqvae_config_from_hps(json.loads((fixtures / "vqvae.hparams.json").read_text())["hps"])
    hps = json.loads((fixtures / "prior_5b_level2.hparams.json").read_text())["hps"]
    want = prior_config_from_hps(hps, vq)
    sr, lo, hi = hps["sr"], hps["min_duration"], hps["max_duration"]
    hps.update(min_duration=None, max_duration=None, t_ranges=((lo * sr, hi * sr), (0.0, hi * sr), (0.0, 1.0)))
    assert prior_config_from_hps(hps, vq) == want
    hps["t_ranges"] = None
    with pytest.raises(ConfigError, match="t_ranges"):
        prior_config_from_hps(hps, vq)
