"""Priors against transformers 4.40.2: teacher-forced logits and the conditioning they are
built from, for tiny HF `JukeboxModel`s of every released prior structure (5b, 5b_lyrics and
1b_lyrics top priors, both upsamplers) saved with `save_pretrained` and read back by
`convert_checkpoint`; our param shapes and counts for the released presets against HF modules
built on torch's meta device; and the converter's strictness on prior tensors.

HF 4.40.2 departs from the original code in places; the original is the truth (the weights
were trained with it), so these tests avoid or undo each departure:
- HF lists the priors top first (`priors.0` models VQ-VAE level 2): we compare our level L
  with HF's `priors[2 - L]`.
- HF's `mask` flag defaults to False, which makes full-sequence passes attend to later
  positions; the original is always causal. The parity models are built with `mask=True`;
  `test_hf_mask_flag_is_ignored` and `test_logits_are_causal` show that ours is causal
  whatever the config says.
- `set_shared_params` gives every prior the top prior's genre slots (1 for 1b_lyrics); the
  upsamplers were trained with 5. We feed labels with the original's slot count, which HF's
  label conditioner sums just the same.
- `get_metadata` rewrites the labels' offset and takes every row's lyrics from row 0: we feed
  windowed labels directly.
- `forward_tokens` crashes for priors without lyrics and, for 5b_lyrics, at batch > 1: there
  we run the pieces it calls (`get_cond`, `get_encoder_states`, `prior(..., get_preds=True)`).
- `save_pretrained` refuses safetensors for priors whose output head is tied to the token
  embedding (1b_lyrics top, upsamplers); such files, written by other tools, lack the tied
  `fc_proj_out.weight`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
import torch
from hf_reference import redraw_jukebox
from safetensors.torch import load_file, save_model
from transformers import JukeboxConfig as HFJukeboxConfig
from transformers import JukeboxModel
from transformers.models.jukebox.modeling_jukebox import JukeboxAttention, JukeboxPrior

from convert import ConversionError, convert_checkpoint
from convert.table import Row
from convert.table_prior import prior_rows
from jukebox_jax import Jukebox
from jukebox_jax.config import JukeboxConfig, Lyrics, PriorConfig, preset
from jukebox_jax.params import abstract_params, flatten
from jukebox_jax.prior import condition
from jukebox_jax.prior.conditioners import LabelConditioner, MusicTokenConditioner

LEVELS = [2, 1, 0]
BATCH = 3
Shape = tuple[int, ...]


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


# ----------------------------------------------------------------------------------------
# Tiny HF models, in HF's own terms

# A VQ-VAE with hops 4, 16, 64: the upsamplers' conditioners upsample by one stride-4
# transposed conv (the released model: two of stride 2). HF's conditioner at list index i
# upsamples by `res_*_t[i]`, the original's at level l by the factors of level l + 1; equal
# factors at levels 1 and 2 make both agree.
_VQVAE = dict(res_downs_t=[2, 1, 1], res_strides_t=[2, 4, 4], embed_dim=8, nb_discrete_codes=40, res_conv_width=8,
              res_conv_depth=2, multipliers=[1, 1, 1])  # fmt: skip
# What every prior repeats of the VQ-VAE, and the original's causal attention (see above).
_SHARED = dict(music_vocab_size=40, res_downs_t=[2, 1, 1], res_strides_t=[2, 4, 4], mask=True)
_NO_LYRICS = dict(is_encoder_decoder=False, nb_relevant_lyric_tokens=0, encoder_config=None)


def _upsampler(level: int, **fields: Any) -> dict:
    """An HF upsampler config of the released structure (output head tied to the embedding)."""
    return dict(attention_pattern="raw_column_previous_row_attention", merged_decoder=False, res_dilation_growth_rate=3,
                conv_res_scale=level == 1, **_NO_LYRICS, **_SHARED, **fields)  # fmt: skip


# name -> (top-level HF fields, [top prior, level-1 upsampler, level-0 upsampler], seed)
MODELS: dict[str, tuple[dict, list[dict], int]] = {
    "5b": (
        dict(sampling_rate=2000, timing_dims=24, min_duration=3.5, max_duration=40.0, max_nb_genres=5),
        [
            dict(hidden_size=40, num_layers=7, n_heads=2, attention_pattern="raw_column_previous_row_attention",
                 blocks=5, n_ctx=40, merged_decoder=True, metadata_dims=[9, 13], **_NO_LYRICS, **_SHARED),
            _upsampler(1, hidden_size=24, num_layers=4, n_heads=1, blocks=4, n_ctx=32, metadata_dims=[9, 13],
                       res_conv_width=8, res_conv_depth=3, res_dilation_cycle=2),
            _upsampler(0, hidden_size=16, num_layers=5, n_heads=2, blocks=2, n_ctx=24, metadata_dims=[9, 13],
                       res_conv_width=12, res_conv_depth=2, res_dilation_cycle=None),
        ],
        11,
    ),
    "5b_lyrics": (
        dict(sampling_rate=3000, timing_dims=20, min_duration=2.0, max_duration=30.0, max_nb_genres=5),
        [
            # 29 layers: enc-dec attention at layers 18 and 28.
            dict(hidden_size=32, num_layers=29, n_heads=4, attention_pattern="large_separated_enc_dec_w_lyrics",
                 blocks=3, n_ctx=30, merged_decoder=True, metadata_dims=[7, 10], is_encoder_decoder=False,
                 nb_relevant_lyric_tokens=14, lyric_vocab_size=23, **_SHARED,
                 encoder_config=dict(hidden_size=20, num_layers=4, n_heads=1, blocks=2, mask=True,
                                     attention_pattern="raw_column_previous_row_attention")),
            _upsampler(1, hidden_size=16, num_layers=3, n_heads=2, blocks=2, n_ctx=16, metadata_dims=[7, 10],
                       res_conv_width=6, res_conv_depth=4, res_dilation_cycle=3),
            _upsampler(0, hidden_size=20, num_layers=4, n_heads=1, blocks=4, n_ctx=32, metadata_dims=[7, 10],
                       res_conv_width=10, res_conv_depth=3, res_dilation_cycle=2),
        ],
        23,
    ),
    "1b_lyrics": (
        dict(sampling_rate=1600, timing_dims=16, min_duration=5.0, max_duration=50.0, max_nb_genres=1),
        [
            # 48 layers: prime layers at 15 and 31, a dense one at 47. 72 positions (20 lyrics + 52
            # music) in 6 blocks.
            dict(hidden_size=24, num_layers=48, n_heads=2, attention_pattern="enc_dec_with_lyrics", blocks=6, n_ctx=52,
                 merged_decoder=False, metadata_dims=[604, 37], is_encoder_decoder=True, nb_relevant_lyric_tokens=20,
                 lyric_vocab_size=19, **_SHARED),  # 604 genres: the v3 label set
            _upsampler(1, hidden_size=12, num_layers=5, n_heads=3, blocks=3, n_ctx=24, metadata_dims=[11, 17],
                       res_conv_width=4, res_conv_depth=2, res_dilation_cycle=None),
            _upsampler(0, hidden_size=16, num_layers=3, n_heads=1, blocks=2, n_ctx=16, metadata_dims=[11, 17],
                       res_conv_width=8, res_conv_depth=5, res_dilation_cycle=4),
        ],
        37,
    ),
}  # fmt: skip


def hf_model(name: str, nb_priors: int = 3) -> JukeboxModel:
    """The `name` model (its first `nb_priors` priors) with every weight re-drawn."""
    top, priors, seed = MODELS[name]
    cfg = HFJukeboxConfig(vqvae_config=_VQVAE, prior_config_list=priors[:nb_priors], nb_priors=nb_priors, **top)
    model = JukeboxModel(cfg).eval()
    redraw_jukebox(model, seed)
    return model


@dataclasses.dataclass(frozen=True)
class Built:
    """A tiny HF model, the directory `save_pretrained(safe_serialization=False)` wrote, and
    our conversion of that directory."""

    name: str
    model: JukeboxModel
    path: Path
    jb: Jukebox

    def hf_prior(self, level: int) -> JukeboxPrior:
        return self.model.priors[2 - level]  # HF lists the priors top first


@pytest.fixture(scope="module", params=sorted(MODELS))
def built(request, tmp_path_factory) -> Built:
    model = hf_model(request.param)
    path = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(path, safe_serialization=False)
    return Built(request.param, model, path, convert_checkpoint(path))


def window_inputs(cfg: PriorConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`BATCH` rows of (tokens [b, n_ctx], labels [b, n_labels], upper codes or None): the
    labels in the original layout with the original's genre slots, windows inside their songs,
    a random number of empty (-1) genre slots, random lyrics."""
    lab, rng = cfg.labels, np.random.default_rng(seed)
    length, sr = cfg.n_ctx * cfg.raw_to_tokens, lab.sample_rate
    total = rng.integers(int(lab.min_duration * sr) + length, int(lab.max_duration * sr), BATCH)
    offset = rng.integers(0, total - length) // cfg.raw_to_tokens * cfg.raw_to_tokens
    genres = rng.integers(0, lab.genre_bins, (BATCH, lab.max_bow_genre_size))
    genres[np.arange(lab.max_bow_genre_size) >= rng.integers(1, lab.max_bow_genre_size + 1, (BATCH, 1))] = -1
    columns = np.stack([total, offset, np.full(BATCH, length), rng.integers(0, lab.artist_bins, BATCH)], 1)
    labels = np.concatenate([columns, genres, rng.integers(0, cfg.n_vocab, (BATCH, cfg.n_tokens))], 1)
    tokens = rng.integers(0, cfg.l_bins, (BATCH, cfg.n_ctx))
    upper = rng.integers(0, cfg.l_bins, (BATCH, cfg.n_ctx // cfg.cond_downsample)) if cfg.conditioner else None
    return tokens, labels, upper


def _same_params(a: Jukebox, b: Jukebox) -> None:
    assert a.config == b.config
    jax.tree.map(np.testing.assert_array_equal, a.params, b.params)


@torch.no_grad()
def hf_forward(
    prior: JukeboxPrior, tokens: np.ndarray, labels: np.ndarray, upper: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """HF's teacher-forced pass: (logits over the prior's whole vocabulary, the 5b_lyrics
    lyric logits or None). `forward_tokens` is HF's call for this and serves the joint 1b
    sequence; it crashes elsewhere (see the module docstring), so there we run the pieces it
    calls."""
    conds = [] if upper is None else [torch.from_numpy(upper)]
    tokens_t, labels_t = torch.from_numpy(tokens), torch.from_numpy(labels)
    if prior.is_encoder_decoder:
        _, metrics = prior.forward_tokens(tokens_t, conds, labels_t, get_preds=True)
        return metrics["preds"].numpy(), None
    x_cond, start, lyrics = prior.get_cond(conds, labels_t)
    encoder_states = prior.get_encoder_states(lyrics)  # None without lyrics
    _, logits = prior.prior(tokens_t, x_cond, start, encoder_states, get_preds=True)
    lyric_logits = None if encoder_states is None else prior.encoder.lm_head(encoder_states).numpy()
    return logits.numpy(), lyric_logits


# ----------------------------------------------------------------------------------------
# Parity


@pytest.mark.parametrize("level", LEVELS)
def test_logits_match_hf(built, level):
    cfg = built.jb.config.prior(level)
    tokens, labels, upper = window_inputs(cfg, seed=level)
    ref, ref_lyric_logits = hf_forward(built.hf_prior(level), tokens, labels, upper)
    out = built.jb.prior_forward(level, tokens, labels, upper)
    assert out.logits.shape == ref.shape == (BATCH, cfg.n_positions, cfg.bins)
    assert rel_err(out.logits, ref) < 1e-5
    music = ref[:, cfg.n_tokens :, cfg.n_vocab :] if cfg.lyrics is Lyrics.JOINT_SEQUENCE else ref
    assert rel_err(built.jb.prior_logits(level, tokens, labels, upper), music) < 1e-5
    if cfg.lyrics is Lyrics.SEPARATE_ENCODER:
        assert rel_err(out.lyric_logits, ref_lyric_logits) < 1e-5
    else:
        assert out.lyric_logits is None and ref_lyric_logits is None


@pytest.mark.parametrize("level", LEVELS)
@torch.no_grad()
def test_conditioning_matches_hf(built, level):
    """The start embedding, `x_cond` (timing at the top, the upper codes below) and, for
    5b_lyrics, the lyric encoder states, each from our modules with the converted params."""
    cfg, prior = built.jb.config.prior(level), built.hf_prior(level)
    params = built.jb.params[f"prior_level_{level}"]
    _, labels, upper = window_inputs(cfg, seed=level)
    conds = [] if upper is None else [torch.from_numpy(upper)]
    ref_x_cond, ref_start, lyrics = prior.get_cond(conds, torch.from_numpy(labels))
    n_y = cfg.lyric_start
    start, timing = LabelConditioner(cfg).apply({"params": params["labels"]}, labels[:, :n_y])
    assert rel_err(start, ref_start) < 1e-5
    if cfg.conditioner is None:
        x_cond = timing
    else:
        assert timing is None
        x_cond = MusicTokenConditioner(cfg).apply({"params": params["conditioner"]}, upper)
    assert x_cond.shape == ref_x_cond.shape == (BATCH, cfg.n_ctx, cfg.transformer.width)
    assert rel_err(x_cond, ref_x_cond) < 1e-5
    if cfg.lyrics is Lyrics.SEPARATE_ENCODER:
        states = condition(cfg, params, labels, None).encoder_kv
        assert rel_err(states, prior.get_encoder_states(lyrics)) < 1e-5


def changed_at(tokens: np.ndarray, k: int, l_bins: int) -> np.ndarray:
    """`tokens` with the music token at position `k` replaced in every row."""
    changed = tokens.copy()
    changed[:, k] = (tokens[:, k] + 1) % l_bins
    return changed


@pytest.mark.parametrize("level", LEVELS)
def test_logits_are_causal(built, level):
    """Changing one music token changes the logits after it, never those at or before it."""
    cfg = built.jb.config.prior(level)
    tokens, labels, upper = window_inputs(cfg, seed=level)
    k = cfg.n_ctx // 2
    before = np.asarray(built.jb.prior_logits(level, tokens, labels, upper))
    after = np.asarray(built.jb.prior_logits(level, changed_at(tokens, k, cfg.l_bins), labels, upper))
    np.testing.assert_array_equal(after[:, : k + 1], before[:, : k + 1])
    assert np.abs(after[:, k + 1 :] - before[:, k + 1 :]).max() > 1e-3 * np.abs(before).max()


def test_hf_mask_flag_is_ignored(built, tmp_path):
    """HF's `mask=False` lets full-sequence passes see later tokens; the original, and ours,
    are causal whatever the config says: a config.json with `mask: false` converts to the
    same model as the `mask: true` one."""
    cfg = built.jb.config.prior(2)
    tokens, labels, _ = window_inputs(cfg, seed=5)
    unmasked = copy.deepcopy(built.hf_prior(2))
    for module in unmasked.modules():
        if isinstance(module, JukeboxAttention):
            module.mask = False
    before, _ = hf_forward(unmasked, tokens, labels, None)
    after, _ = hf_forward(unmasked, changed_at(tokens, cfg.n_ctx // 2, cfg.l_bins), labels, None)
    assert np.abs(after[:, 0] - before[:, 0]).max() > 1e-3 * np.abs(before).max()  # the first position sees it

    path = tmp_path / "unmasked"
    shutil.copytree(built.path, path)
    config = json.loads((path / "config.json").read_text())
    for prior in config["prior_config_list"]:
        assert prior["mask"] is True
        prior["mask"] = False
    (path / "config.json").write_text(json.dumps(config))
    _same_params(convert_checkpoint(path), built.jb)


def test_upsamplers_keep_the_original_genre_slots(built):
    """HF's `set_shared_params` copies the top prior's genre slots onto the upsamplers (1 in
    the 1b_lyrics model); the converted config keeps the original's 5 (the v2 label set),
    which the parity tests above feed to HF too."""
    top_slots = MODELS[built.name][0]["max_nb_genres"]
    for level in (1, 0):
        assert built.hf_prior(level).config.max_nb_genres == top_slots
        assert built.jb.config.prior(level).labels.max_bow_genre_size == 5


# ----------------------------------------------------------------------------------------
# safetensors


def test_safetensors_without_the_tied_heads(built, tmp_path):
    """HF refuses to write these models as safetensors (their upsamplers tie the output head
    to the token embedding). safetensors' own `save_model` keeps one name per shared tensor,
    `embed_tokens.weight`: the converter takes the head from it."""
    with pytest.raises(RuntimeError, match=r"shared tensors.*fc_proj_out"):
        built.model.save_pretrained(tmp_path, safe_serialization=True)
    save_model(built.model, str(tmp_path / "model.safetensors"))
    shutil.copy(built.path / "config.json", tmp_path)
    keys = load_file(tmp_path / "model.safetensors").keys()
    for level in LEVELS:
        i = 2 - level
        tied = not built.jb.config.prior(level).merged_decoder
        assert (f"priors.{i}.prior.fc_proj_out.weight" not in keys) == tied
        assert f"priors.{i}.prior.embed_tokens.weight" in keys
    _same_params(convert_checkpoint(tmp_path), built.jb)


def test_top_prior_alone_through_hf_safetensors(built, tmp_path):
    """A model of the top prior alone: HF's own `save_pretrained` writes safetensors exactly
    when its head is untied (merged_decoder), and that file converts to the same prior."""
    top_only = hf_model(built.name, nb_priors=1)
    state = built.model.state_dict()
    top_only.load_state_dict({k: v for k, v in state.items() if not k.startswith(("priors.1.", "priors.2."))})
    if not built.jb.config.prior(2).merged_decoder:
        with pytest.raises(RuntimeError, match=r"shared tensors.*fc_proj_out"):
            top_only.save_pretrained(tmp_path, safe_serialization=True)
    else:
        top_only.save_pretrained(tmp_path, safe_serialization=True)
        assert [f.name for f in tmp_path.glob("*.safetensors")] == ["model.safetensors"]
        config = JukeboxConfig(vqvae=built.jb.config.vqvae, priors=(built.jb.config.prior(2),))
        params = {k: built.jb.params[k] for k in ("vqvae", "prior_level_2")}
        _same_params(convert_checkpoint(tmp_path), Jukebox(config, params))


# ----------------------------------------------------------------------------------------
# The converter's strictness on prior tensors


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """The 1b_lyrics model's config.json and state dict (the top prior has a tied head)."""
    model = hf_model("1b_lyrics")
    path = tmp_path_factory.mktemp("1b_lyrics_config")
    model.config.to_json_file(path / "config.json")
    return path, model.state_dict()


def _write(base: Path, state: dict[str, torch.Tensor], tmp_path: Path) -> Path:
    shutil.copy(base / "config.json", tmp_path)
    torch.save(state, tmp_path / "pytorch_model.bin")
    return tmp_path


# defect -> (the tensor it concerns, what the error calls it); all in the 1b_lyrics model.
_DEFECTS = {
    "extra": ("priors.0.prior.transformer._attn_mods.3.attn.c_attn.scale", "1 unexpected"),
    "missing": ("priors.1.prior.transformer._attn_mods.2.mlp.c_fc.bias", "1 missing"),
    "misshaped_split": ("priors.0.prior.transformer._attn_mods.15.attn.c_attn.weight", "1 mis-shaped"),  # prime layer
    "tied_differs": ("priors.0.prior.fc_proj_out.weight", "should be the same tensor"),  # tied to embed_tokens
}


@pytest.mark.parametrize("defect", sorted(_DEFECTS))
def test_prior_defects_are_named(prior_dir, tmp_path, defect):
    base, state = prior_dir
    (key, what), state = _DEFECTS[defect], dict(state)
    if defect == "extra":
        state[key] = torch.ones(1)
    elif defect == "missing":
        del state[key]
    elif defect == "misshaped_split":  # one projection's width (an enc-dec layer's c_attn): no 3-way split
        state[key] = state[key][:, : state[key].shape[1] // 3].clone()
    else:  # an untied copy that differs
        state[key] = state[key] + 1e-3
    with pytest.raises(ConversionError) as e:
        convert_checkpoint(_write(base, state, tmp_path))
    assert key in str(e.value) and what in str(e.value)


def test_the_unmutated_state_converts(prior_dir, tmp_path):
    """The defects above are the only cause of those errors."""
    base, state = prior_dir
    jb = convert_checkpoint(_write(base, dict(state), tmp_path))
    assert [p.level for p in jb.config.priors] == [0, 1, 2]


# ----------------------------------------------------------------------------------------
# Released structures: our param shapes against HF modules on the meta device

_V2 = dict(metadata_dims=[120, 4111])
_HF_TOPS: dict[str, tuple[dict, dict]] = {
    "5b": (
        dict(timing_dims=128, min_duration=60.0, max_nb_genres=5),
        dict(hidden_size=4800, num_layers=72, n_heads=8, attention_pattern="raw_column_previous_row_attention",
             blocks=128, n_ctx=8192, merged_decoder=True, is_encoder_decoder=False, nb_relevant_lyric_tokens=0, **_V2),
    ),
    "5b_lyrics": (
        dict(timing_dims=128, min_duration=23.8, max_nb_genres=5),
        dict(hidden_size=4800, num_layers=79, n_heads=8, attention_pattern="large_separated_enc_dec_w_lyrics",
             blocks=128, n_ctx=8192, merged_decoder=True, is_encoder_decoder=False, nb_relevant_lyric_tokens=512,
             lyric_vocab_size=80, **_V2,
             encoder_config=dict(hidden_size=1280, num_layers=18, n_heads=4, blocks=32,
                                 attention_pattern="raw_column_previous_row_attention")),
    ),
    "1b_lyrics": (
        dict(timing_dims=64, min_duration=17.84, max_nb_genres=1),
        dict(hidden_size=2048, num_layers=72, n_heads=2, attention_pattern="enc_dec_with_lyrics", blocks=64,
             n_ctx=6144, merged_decoder=False, is_encoder_decoder=True, nb_relevant_lyric_tokens=384,
             lyric_vocab_size=79, metadata_dims=[604, 7898]),
    ),
}  # fmt: skip


def _released_upsampler(level: int) -> dict:
    return dict(hidden_size=1920, num_layers=72, n_heads=1, attention_pattern="raw_column_previous_row_attention",
                blocks=128, n_ctx=8192, merged_decoder=False, is_encoder_decoder=False, nb_relevant_lyric_tokens=0,
                res_conv_width=1024, res_conv_depth=16, res_dilation_growth_rate=3, res_dilation_cycle=8,
                conv_res_scale=level == 1, **_V2)  # fmt: skip


@functools.cache
def released_hf_shapes(top: str) -> dict[str, Shape]:
    """State-dict shapes of the released `top` model (VQ-VAE, that top prior, both
    upsamplers) in HF terms, built on the meta device (no memory)."""
    fields, prior = _HF_TOPS[top]
    cfg = HFJukeboxConfig(prior_config_list=[prior, _released_upsampler(1), _released_upsampler(0)], **fields)
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in JukeboxModel(cfg).state_dict().items()}


def reference_shapes(rows: Iterable[Row], torch_shapes: dict[str, Shape]) -> dict[tuple[str, ...], Shape]:
    """Our param shapes implied by the reference tensors through the name table: a stacked
    row fills one slot of a param whose leading axis counts the slots; tied rows must agree."""
    slots: dict[tuple[str, ...], dict[int | None, Shape | None]] = {}
    for r in rows:
        shape = r.our_shape(torch_shapes[r.hf])
        previous = slots.setdefault(r.path, {}).setdefault(r.index, shape)
        assert previous == shape, f"{r.hf} gives {shape} for {r.path}, another row {previous}"
    shapes = {}
    for path, by_index in slots.items():
        distinct = set(by_index.values())
        assert len(distinct) == 1, f"{path}: slots of shapes {distinct}"
        shape = distinct.pop()
        if None in by_index:
            assert len(by_index) == 1, f"{path} is both stacked and whole"
            shapes[path] = shape
        else:
            assert sorted(by_index) == list(range(len(by_index))), f"{path} has slots {sorted(by_index)}"
            shapes[path] = (len(by_index), *shape)
    return shapes


# name -> (the released model whose HF build holds it, params from REFERENCE.md)
RELEASED = {
    "5b": ("5b", 5.06e9),
    "5b_lyrics": ("5b_lyrics", 5.64e9),
    "1b_lyrics": ("1b_lyrics", 0.947e9),
    "upsampler_level_1": ("5b", 0.985e9),
    "upsampler_level_0": ("5b", 0.985e9),
}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_prior_shapes_match_hf_on_meta(name):
    cfg = preset(name)
    top, n_params = RELEASED[name]
    hf_index = 2 - cfg.level
    theirs = {k: s for k, s in released_hf_shapes(top).items() if k.startswith(f"priors.{hf_index}.")}
    rows = prior_rows(cfg, hf_index)
    assert {r.hf for r in rows} == theirs.keys()
    prefix = f"prior_level_{cfg.level}"
    ours = {
        path: tuple(leaf.shape)
        for path, leaf in flatten(abstract_params(JukeboxConfig(vqvae=preset("vqvae"), priors=(cfg,)))).items()
        if path[0] == prefix
    }
    assert ours == reference_shapes(rows, theirs)
    # REFERENCE.md counts as a state dict does: a tied output head a second time.
    tied_head = 0 if cfg.merged_decoder else int(np.prod(ours[(prefix, "x_emb", "embedding")]))
    total = sum(int(np.prod(s)) for s in ours.values()) + tied_head
    assert abs(total / n_params - 1) < 0.01, f"{name}: {total / 1e9:.4f} B params"
