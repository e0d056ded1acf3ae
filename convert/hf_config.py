"""Reads a transformers 4.40.2 Jukebox `config.json` into our `JukeboxConfig`.

Field meanings were checked against the 4.40.2 modeling code, not the docstrings. Neither
transformers nor torch is imported: the HF defaults and the generic `PretrainedConfig` fields
are written out.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from jukebox_jax.config import (
    ConditionerConfig,
    ConfigError,
    JukeboxConfig,
    LabelConfig,
    Lyrics,
    PriorConfig,
    TransformerConfig,
    VQVAEConfig,
)

# The keys of `transformers.PretrainedConfig().to_dict()` (4.40.2): generation, output and
# export settings that do not change the model. Accepted and ignored at every level.
_GENERIC = frozenset(
    """_name_or_path add_cross_attention architectures bad_words_ids begin_suppress_tokens
    bos_token_id chunk_size_feed_forward cross_attention_hidden_size decoder_start_token_id
    diversity_penalty do_sample early_stopping encoder_no_repeat_ngram_size eos_token_id
    exponential_decay_length_penalty finetuning_task forced_bos_token_id forced_eos_token_id
    id2label is_decoder is_encoder_decoder label2id length_penalty max_length min_length model_type
    no_repeat_ngram_size num_beam_groups num_beams num_return_sequences output_attentions
    output_hidden_states output_scores pad_token_id prefix problem_type pruned_heads
    remove_invalid_values repetition_penalty return_dict return_dict_in_generate sep_token_id
    suppress_tokens task_specific_params temperature tf_legacy_loss tie_encoder_decoder
    tie_word_embeddings tokenizer_class top_k top_p torch_dtype torchscript transformers_version
    typical_p use_bfloat16""".split()
)

# HF's constructor defaults. HF fills missing fields from them, and `JukeboxModel.save_pretrained`
# writes only the `vqvae_config` fields that differ from them, so we must fill them too.
_TOP = dict(vqvae_config=None, prior_config_list=None, nb_priors=3, sampling_rate=44100, timing_dims=64,
            min_duration=0, max_duration=600.0, max_nb_genres=5, metadata_conditioning=True, hop_fraction=None,
            vqvae_config_dict=None)  # fmt: skip
_VQVAE = dict(act_fn="relu", nb_discrete_codes=2048, commit=0.02, conv_input_shape=1, conv_res_scale=False,
              embed_dim=64, hop_fraction=[0.125, 0.5, 0.5], levels=3, lmu=0.99, multipliers=[2, 1, 1],
              res_conv_depth=4, res_conv_width=32, res_convolution_multiplier=1, res_dilation_cycle=None,
              res_dilation_growth_rate=3, res_downs_t=[3, 2, 2], res_strides_t=[2, 2, 2], sample_length=1058304,
              init_scale=0.2, zero_out=False)  # fmt: skip
_PRIOR = dict(act_fn="quick_gelu", level=0, alignment_head=2, alignment_layer=68, attention_multiplier=0.25,
              attention_pattern="enc_dec_with_lyrics", attn_dropout=0, attn_res_scale=False, blocks=64,
              conv_res_scale=None, num_layers=72, emb_dropout=0, encoder_config=None, encoder_loss_fraction=0.4,
              hidden_size=2048, init_scale=0.2, is_encoder_decoder=True, lyric_vocab_size=80, mask=False,
              max_duration=600, max_nb_genres=1, merged_decoder=True, metadata_conditioning=True,
              metadata_dims=[604, 7898], min_duration=0, mlp_multiplier=1.0, music_vocab_size=2048, n_ctx=6144,
              n_heads=2, nb_relevant_lyric_tokens=384, res_conv_depth=3, res_conv_width=128,
              res_convolution_multiplier=1, res_dilation_cycle=None, res_dilation_growth_rate=1,
              res_downs_t=[3, 2, 2], res_strides_t=[2, 2, 2], resid_dropout=0, sampling_rate=44100, spread=None,
              timing_dims=64, zero_out=False)  # fmt: skip
# Fields read nowhere below: the top-level `hop_fraction` (a sampling schedule) and
# `max_nb_genres` (see `_labels`); the priors' `level` (`JukeboxModel` passes the list index
# instead), `embed_dim` (the conditioner writes `music_vocab_size` there), the label fields that `set_shared_params` overwrites with the top-level ones, and
# `mask`: HF's False (its default) drops the causal mask from full-sequence passes, but every
# original prior was trained causal (`mask=True`) and our attention always is.
_PRIOR_KEYS = frozenset(_PRIOR) | {"embed_dim"}

# HF `attention_pattern` -> original `attn_order` (layouts checked layer by layer in the tests).
_ATTN_ORDERS = {
    "full_dense_attention": 0,
    "raw_column_previous_row_attention": 2,
    "large_separated_enc_dec_w_lyrics": 10,
    "enc_dec_with_lyrics": 12,
}
_V3_GENRES = 604  # the 1b_lyrics (v3) label set; the v2 set has 120 genres


def config_from_hf(d: Mapping[str, Any]) -> JukeboxConfig:
    """Our config from a `JukeboxConfig.to_dict()` / `config.json` (model_type "jukebox"), or
    from a standalone `JukeboxVQVAEConfig` one (model_type "jukebox_vqvae"; no priors)."""
    kind = d.get("model_type")
    if kind == "jukebox_vqvae":
        _check_keys([("", d, frozenset(_VQVAE))])
        return JukeboxConfig(vqvae=_vqvae({**_VQVAE, **d}, sample_rate=_TOP["sampling_rate"]))
    if kind != "jukebox":
        raise ConfigError(f"model_type {kind!r}: expected 'jukebox' or 'jukebox_vqvae'")
    top = {**_TOP, **d}
    n, vq_dict = top["nb_priors"], top["vqvae_config"] or {}
    # HF lists the priors top first: entry i models original level `levels - 1 - i`.
    raw = top["prior_config_list"] or [top.get(f"prior_{i}") or {} for i in range(n)]
    top_keys = frozenset(_TOP) | {f"prior_{i}" for i in range(n)}
    checks = [("", d, top_keys), ("vqvae_config.", vq_dict, frozenset(_VQVAE))]
    if top["vqvae_config_dict"] is not None:
        checks.append(("vqvae_config_dict.", top["vqvae_config_dict"], frozenset(_VQVAE)))
    for i, p in enumerate(raw):
        checks.append((f"prior_config_list[{i}].", p, _PRIOR_KEYS))
        if p.get("encoder_config") is not None:
            checks.append((f"prior_config_list[{i}].encoder_config.", p["encoder_config"], _PRIOR_KEYS))
    _check_keys(checks)
    if top["vqvae_config_dict"] is not None:
        _warn_if_vqvae_config_dict_differs(vq_dict, top["vqvae_config_dict"])
    vq = _vqvae({**_VQVAE, **vq_dict}, sample_rate=top["sampling_rate"])
    if len(raw) != n or n > vq.levels:
        raise ConfigError(f"nb_priors {n} with {len(raw)} prior configs and a {vq.levels}-level VQ-VAE")
    priors = [_prior({**_PRIOR, **p}, f"prior_config_list[{i}]", vq.levels - 1 - i, vq, top) for i, p in enumerate(raw)]
    return JukeboxConfig(vqvae=vq, priors=tuple(priors))


def _check_keys(checks: list[tuple[str, Mapping[str, Any], frozenset[str]]]) -> None:
    """Raises naming every field, of any of the (prefix, dict, known fields) `checks`, that HF does not know."""
    unknown = [prefix + k for prefix, d, known in checks for k in sorted(set(d) - known - _GENERIC)]
    if unknown:
        raise ConfigError(f"unknown Jukebox config fields {unknown}: not a transformers 4.40.2 config")


def _warn_if_vqvae_config_dict_differs(vq_dict: Mapping[str, Any], vq_dict_ignored: Mapping[str, Any]) -> None:
    """HF's documented `JukeboxConfig.from_configs(priors, vqvae_config)` stores the VQ-VAE it
    is given as `vqvae_config_dict`, which `JukeboxModel` never reads: the model is built from
    `vqvae_config`, left at HF's defaults. We read what HF built, and say so when the two differ."""
    built, ignored = {**_VQVAE, **vq_dict}, {**_VQVAE, **vq_dict_ignored}
    differ = {k: (built[k], ignored[k]) for k in _VQVAE if _plain(built[k]) != _plain(ignored[k])}
    if differ:
        fields = ", ".join(f"{k}={b!r} (vqvae_config_dict: {i!r})" for k, (b, i) in differ.items())
        warnings.warn(
            f"config.json: vqvae_config differs from vqvae_config_dict in {fields}. transformers builds the VQ-VAE "
            "from vqvae_config and ignores vqvae_config_dict (as written by JukeboxConfig.from_configs); so do we",
            stacklevel=3,
        )


def _plain(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x


def _unsupported(where: str, field: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"{where}{field}={value!r} is not supported: {why}")


def _vqvae(v: Mapping[str, Any], sample_rate: int) -> VQVAEConfig:
    # `act_fn`, `hop_fraction`, `sample_length`, `init_scale` and `zero_out` do not change the
    # model (HF's VQ-VAE always uses ReLU; the others steer sampling or init).
    if v["conv_input_shape"] != 1:
        raise _unsupported("vqvae_config.", "conv_input_shape", v["conv_input_shape"], "audio is mono")
    if v["conv_res_scale"]:
        raise _unsupported("vqvae_config.", "conv_res_scale", v["conv_res_scale"], "the original VQ-VAE has none")
    return VQVAEConfig(
        levels=v["levels"],
        downs_t=tuple(v["res_downs_t"]),
        strides_t=tuple(v["res_strides_t"]),
        emb_width=v["embed_dim"],
        l_bins=v["nb_discrete_codes"],
        width=v["res_conv_width"],
        depth=v["res_conv_depth"],
        m_conv=float(v["res_convolution_multiplier"]),
        dilation_growth_rate=v["res_dilation_growth_rate"],
        dilation_cycle=v["res_dilation_cycle"],
        multipliers=tuple(v["multipliers"] or (1,) * v["levels"]),
        reverse_decoder_dilation=True,  # HF's decoder always reverses
        commit=float(v["commit"]),
        mu=float(v["lmu"]),
        sample_rate=sample_rate,
    )


def _transformer(p: Mapping[str, Any], where: str) -> TransformerConfig:
    if p["act_fn"] != "quick_gelu":
        raise _unsupported(where, "act_fn", p["act_fn"], "the original priors use quick_gelu")
    if p["attention_pattern"] not in _ATTN_ORDERS:
        raise _unsupported(where, "attention_pattern", p["attention_pattern"], f"choose from {sorted(_ATTN_ORDERS)}")
    return TransformerConfig(
        width=p["hidden_size"],
        depth=p["num_layers"],
        heads=p["n_heads"],
        attn_order=_ATTN_ORDERS[p["attention_pattern"]],
        blocks=p["blocks"],
        spread=p["spread"],
        m_attn=float(p["attention_multiplier"]),
        m_mlp=float(p["mlp_multiplier"]),
        res_scale=bool(p["attn_res_scale"]),
        init_scale=float(p["init_scale"]),
        zero_out=bool(p["zero_out"]),
        attn_dropout=float(p["attn_dropout"]),
        resid_dropout=float(p["resid_dropout"]),
        emb_dropout=float(p["emb_dropout"]),
    )


def _prior(p: Mapping[str, Any], name: str, level: int, vq: VQVAEConfig, top: Mapping[str, Any]) -> PriorConfig:
    where, is_top = name + ".", level == vq.levels - 1
    for field, want in [("music_vocab_size", vq.l_bins), ("res_downs_t", vq.downs_t), ("res_strides_t", vq.strides_t)]:
        if (tuple(p[field]) if isinstance(p[field], list) else p[field]) != want:
            raise _unsupported(where, field, p[field], f"the VQ-VAE's is {want}")
    conditioner = None
    if not is_top:
        # HF's conditioner upsamples by `res_*_t[HF index]`, the original by the factors of
        # the level above; they agree for the released (3, 2, 2) but not in general.
        i = vq.levels - 1 - level
        if (vq.downs_t[i], vq.strides_t[i]) != (vq.downs_t[level + 1], vq.strides_t[level + 1]):
            raise ConfigError(f"{name}: HF would upsample level {level + 1} codes by the factors of VQ-VAE level {i}")
        conditioner = ConditionerConfig(
            width=p["res_conv_width"],
            depth=p["res_conv_depth"],
            m_conv=float(p["res_convolution_multiplier"]),
            dilation_growth_rate=p["res_dilation_growth_rate"],
            dilation_cycle=p["res_dilation_cycle"],
            res_scale=bool(p["conv_res_scale"]),
            zero_out=bool(p["zero_out"]),
        )
    # As HF's `JukeboxPrior`: a joint sequence if `is_encoder_decoder`, else a lyric encoder
    # whenever there are lyric tokens.
    n_tokens, encoder = p["nb_relevant_lyric_tokens"], None
    if p["is_encoder_decoder"]:
        lyrics = Lyrics.JOINT_SEQUENCE
    elif n_tokens > 0:
        if p["encoder_config"] is None:
            raise ConfigError(f"{name}: {n_tokens} lyric tokens but no encoder_config")
        lyrics = Lyrics.SEPARATE_ENCODER
        encoder = _transformer({**_PRIOR, **p["encoder_config"]}, where + "encoder_config.")
    else:
        lyrics = Lyrics.NONE
    with_lyrics = lyrics is not Lyrics.NONE
    return PriorConfig(
        level=level,
        n_ctx=p["n_ctx"],
        transformer=_transformer(p, where),
        l_bins=vq.l_bins,
        downs_t=vq.downs_t,
        strides_t=vq.strides_t,
        labels=_labels(p["metadata_dims"], top, is_top),
        conditioner=conditioner,
        lyrics=lyrics,
        n_vocab=p["lyric_vocab_size"],
        n_tokens=n_tokens if with_lyrics else 0,
        lyric_encoder=encoder,
        prime_loss_fraction=float(p["encoder_loss_fraction"]) if with_lyrics else 0.0,
        merged_decoder=bool(p["merged_decoder"]),
        alignment_layer=p["alignment_layer"] if with_lyrics else None,
        alignment_head=p["alignment_head"] if with_lyrics else None,
    )


def _labels(metadata_dims: list[int], top: Mapping[str, Any], is_top: bool) -> LabelConfig | None:
    """HF 4.40.2 `set_shared_params` copies the top-level `max_nb_genres`, timing and duration
    fields onto every prior, so its 1b upsamplers get the top prior's 1 genre slot. We follow
    the original instead: the label set (604 genres: v3, else v2) fixes the genre slots (v3: 1,
    v2: 5), and only the top prior has timing, with the top-level `timing_dims` and durations."""
    if not top["metadata_conditioning"]:  # HF copies this switch onto every prior too
        return None
    genre_bins, artist_bins = metadata_dims
    v3 = genre_bins == _V3_GENRES
    timing = dict(t_bins=top["timing_dims"], min_duration=float(top["min_duration"]),
                  max_duration=float(top["max_duration"]))
    return LabelConfig(
        genre_bins=genre_bins,
        artist_bins=artist_bins,
        max_bow_genre_size=1 if v3 else 5,
        timing=is_top,
        sample_rate=top["sampling_rate"],
        v3=v3,
        **(timing if is_top else {}),
    )
