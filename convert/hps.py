"""Reads the `hps` dict stored in an original `*.pth.tar` (openai/jukebox at commit 08efbbc)
into our configs. Every field of the original `Hyperparams` is known: the structural ones are
read, the training/data/logging ones are ignored, anything else is an error, as are values we
do not implement. Pure Python: importing this needs no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jukebox_jax.config import (
    ConditionerConfig,
    ConfigError,
    LabelConfig,
    Lyrics,
    PriorConfig,
    TransformerConfig,
    VQVAEConfig,
)


def vqvae_config_from_hps(hps: Mapping[str, Any]) -> VQVAEConfig:
    """Reads the `hps` dict stored in an original `vqvae.pth.tar`."""
    _check_hps_keys(hps)
    if not hps.get("use_bottleneck", True):
        raise ConfigError("use_bottleneck=False (a plain autoencoder) is not supported")
    levels = _size(hps, "levels")
    multipliers = _sizes(hps, "hvqvae_multipliers") if hps["hvqvae_multipliers"] else (1,) * levels
    _check_dilation(hps, "", layers=_size(hps, "depth") * max(multipliers))
    return VQVAEConfig(
        levels=levels,
        downs_t=_sizes(hps, "downs_t"),
        strides_t=_sizes(hps, "strides_t"),
        emb_width=_size(hps, "emb_width"),
        l_bins=_size(hps, "l_bins"),
        width=_size(hps, "width"),
        depth=_size(hps, "depth"),
        m_conv=_number(hps, "m_conv"),
        dilation_growth_rate=_size(hps, "dilation_growth_rate"),
        dilation_cycle=_size(hps, "dilation_cycle", optional=True),
        multipliers=multipliers,
        reverse_decoder_dilation=_flag(hps, "vqvae_reverse_decoder_dilation"),
        commit=_number(hps, "commit", positive=False),
        mu=_number(hps, "l_mu", positive=False),
        sample_rate=_size(hps, "sr"),
    )


def prior_config_from_hps(hps: Mapping[str, Any], vqvae: VQVAEConfig) -> PriorConfig:
    """Reads an original prior's `hps`; the VQ-VAE fields come from `vqvae`, as the original
    `make_prior` takes them from the VQ-VAE object (a prior file stores only defaults)."""
    _check_hps_keys(hps)
    unsupported = {
        k: hps[k]
        for k, ok in [("y_cond_as_bias", False), ("copy_input", False), ("prime_rel_attn", False), ("cond_levels", None)]
        if hps.get(k, ok) != ok
    }
    if unsupported:
        raise ConfigError(f"unsupported prior settings: {unsupported}")
    level = _size(hps, "level", minimum=0)
    if level >= vqvae.levels:
        raise ConfigError(f"hps level={level}: the VQ-VAE has levels 0 to {vqvae.levels - 1}")
    top = level == vqvae.levels - 1
    if _flag(hps, "single_enc_dec"):
        lyrics = Lyrics.JOINT_SEQUENCE
    elif _flag(hps, "use_tokens"):
        lyrics = Lyrics.SEPARATE_ENCODER
    else:
        lyrics = Lyrics.NONE
    labels = None
    if _flag(hps, "labels"):
        genre_bins, artist_bins = _sizes(hps, "y_bins")
        min_duration, max_duration = _durations(hps) if top else (LabelConfig.min_duration, LabelConfig.max_duration)
        labels = LabelConfig(
            genre_bins=genre_bins,
            artist_bins=artist_bins,
            max_bow_genre_size=_size(hps, "max_bow_genre_size"),
            t_bins=_size(hps, "t_bins"),
            timing=top,
            min_duration=min_duration,
            max_duration=max_duration,
            sample_rate=_size(hps, "sr"),
            v3=_flag(hps, "labels_v3"),
        )
    conditioner = None
    if not top:
        if hps.get("cond_c_res", 1) != 1:  # 0 names the conditioner's residual stacks otherwise (`table_conditioners`)
            raise ConfigError(f"unsupported prior settings: {{'cond_c_res': {hps['cond_c_res']!r}}}")
        _check_dilation(hps, "cond_", layers=_size(hps, "cond_depth"))
        conditioner = ConditionerConfig(
            width=_size(hps, "cond_width"),
            depth=_size(hps, "cond_depth"),
            m_conv=_number(hps, "cond_m_conv"),
            dilation_growth_rate=_size(hps, "cond_dilation_growth_rate"),
            dilation_cycle=_size(hps, "cond_dilation_cycle", optional=True),
            res_scale=_flag(hps, "cond_res_scale"),
            zero_out=_flag(hps, "cond_zero_out"),
        )
    lyric_encoder = None
    if lyrics is Lyrics.SEPARATE_ENCODER:
        lyric_encoder = _transformer_from_hps(hps, prefix="prime_", width="prime_width", depth="prime_depth", heads="prime_heads")
    return PriorConfig(
        level=level,
        n_ctx=_size(hps, "n_ctx"),
        transformer=_transformer_from_hps(hps, prefix="", width="prior_width", depth="prior_depth", heads="heads"),
        l_bins=vqvae.l_bins,
        downs_t=vqvae.downs_t,
        strides_t=vqvae.strides_t,
        labels=labels,
        conditioner=conditioner,
        lyrics=lyrics,
        n_vocab=_size(hps, "n_vocab"),
        n_tokens=_size(hps, "n_tokens", minimum=0) if lyrics is not Lyrics.NONE else 0,
        lyric_encoder=lyric_encoder,
        prime_loss_fraction=_number(hps, "prime_loss_fraction", positive=False),
        merged_decoder=_flag(hps, "merged_decoder"),
        alignment_layer=_size(hps, "alignment_layer", minimum=0, optional=True),
        alignment_head=_size(hps, "alignment_head", minimum=0, optional=True),
    )


def _durations(hps: Mapping[str, Any]) -> tuple[float, float]:
    """The top prior's (min, max) duration in seconds: from `min_duration`/`max_duration`, or
    from `t_ranges` (in samples), which some versions of the original store instead."""
    if hps.get("min_duration") is not None and hps.get("max_duration") is not None:
        lo, hi = float(hps["min_duration"]), float(hps["max_duration"])
    else:
        ranges, sr = hps.get("t_ranges"), hps["sr"]
        if ranges is None:
            raise ConfigError("the top prior's hps give neither min/max_duration nor t_ranges; pass a preset config")
        (lo, hi), absolute, relative = ranges
        if tuple(absolute) != (0.0, hi) or tuple(relative) != (0.0, 1.0):
            raise ConfigError(f"unsupported t_ranges {ranges}: expected ((min, max), (0, max), (0, 1)) in samples")
        lo, hi = lo / sr, hi / sr
    if not 0 <= lo < hi < math.inf:
        raise ConfigError(f"the top prior's durations ({lo}, {hi}) s: expected 0 <= min < max, both finite")
    return lo, hi


# Upper bounds on hps sizes, far beyond every released model (its largest value in the
# comment): past them a corrupt size would make building the model take minutes or GBs (the
# layers are traced one by one; attention masks are n_ctx squared). Widths and vocabularies
# cost nothing to trace and are bounded by _MAX_SIZE. A real model beyond them: pass config=.
_MAX = {"levels": 8, "depth": 64, "cond_depth": 64, "prior_depth": 256, "prime_depth": 256,  # 3, 4, 16, 79, 18
        "dilation_growth_rate": 16, "cond_dilation_growth_rate": 16, "dilation_cycle": 256,  # 3, 3, None
        "cond_dilation_cycle": 256, "downs_t": 16, "strides_t": 16, "hvqvae_multipliers": 16,  # 8, 3, 2, 2
        "n_ctx": 16384, "n_tokens": 4096, "heads": 256, "prime_heads": 256, "alignment_layer": 256,  # 8192, 512, 8, 4, 68
        "alignment_head": 256, "level": 7}  # fmt: skip
_MAX_SIZE = 2**24


def _size(hps: Mapping[str, Any], key: str, *, minimum: int = 1, optional: bool = False) -> int | None:
    """`hps[key]`, a structural size: an integer from `minimum` to its bound in `_MAX`, or None
    where `optional`."""
    value, maximum = hps[key], _MAX.get(key, _MAX_SIZE)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigError(f"hps {key}={value!r}: expected an integer from {minimum} to {maximum}")
    return value


def _check_dilation(hps: Mapping[str, Any], prefix: str, layers: int) -> None:
    """Refuses a residual stack whose largest dilation, `growth ** (layer % cycle)`, passes
    int32 (the released models' largest is 3**7): larger paddings overflow when traced."""
    growth, cycle = _size(hps, prefix + "dilation_growth_rate"), _size(hps, prefix + "dilation_cycle", optional=True)
    largest = growth ** (min(layers, cycle or layers) - 1)
    if largest >= 2**31:
        raise ConfigError(f"hps {prefix}dilation_growth_rate={growth} over {layers} layers (cycle {cycle}) gives dilation {largest}")


def _sizes(hps: Mapping[str, Any], key: str) -> tuple[int, ...]:
    """`hps[key]`, a list of integer sizes from 1 to its bound in `_MAX`."""
    value, maximum = hps[key], _MAX.get(key, _MAX_SIZE)
    if not isinstance(value, (list, tuple)) or not all(type(v) is int and 1 <= v <= maximum for v in value):
        raise ConfigError(f"hps {key}={value!r}: expected a list of integers from 1 to {maximum}")
    return tuple(value)


def _flag(hps: Mapping[str, Any], key: str) -> bool:
    """`hps[key]`, a switch: a bool, 0 or 1, or None (off), as a bool (the config's fields are bools)."""
    value = hps[key]
    if not (value is None or isinstance(value, bool) or (type(value) is int and value in (0, 1))):
        raise ConfigError(f"hps {key}={value!r}: expected true or false")
    return bool(value)


def _number(hps: Mapping[str, Any], key: str, *, positive: bool = True) -> float:
    """`hps[key]`, a finite number above zero (or at least zero where not `positive`)."""
    value = hps[key]
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value < 0 or (positive and value == 0):
        raise ConfigError(f"hps {key}={value!r}: expected a {'positive' if positive else 'non-negative'} number")
    return float(value)


def _transformer_from_hps(hps: Mapping[str, Any], *, prefix: str, width: str, depth: str, heads: str) -> TransformerConfig:
    return TransformerConfig(
        width=_size(hps, width),
        depth=_size(hps, depth),
        heads=_size(hps, heads),
        attn_order=_size(hps, prefix + "attn_order", minimum=0),
        blocks=_size(hps, prefix + "blocks", optional=True),
        spread=_size(hps, prefix + "spread", optional=True),
        m_attn=_number(hps, prefix + "m_attn"),
        m_mlp=_number(hps, prefix + "m_mlp"),
        res_scale=_flag(hps, prefix + "res_scale"),
        init_scale=_number(hps, prefix + "init_scale"),
        zero_out=_flag(hps, prefix + "zero_out"),
        attn_dropout=float(hps.get(prefix + "attn_dropout", 0.0)),
        resid_dropout=float(hps.get(prefix + "resid_dropout", 0.0)),
        emb_dropout=float(hps.get(prefix + "emb_dropout", 0.0)),
    )


# Every field of the original `Hyperparams` (jukebox/hparams.py at commit 08efbbc). The ones
# the readers above use are structural; the rest only steer training, data loading, logging
# or the sampling script, and are accepted and ignored. Anything else is an error.
_HPS_STRUCTURAL = frozenset(
    """levels downs_t strides_t emb_width l_bins width depth m_conv dilation_growth_rate
    dilation_cycle hvqvae_multipliers vqvae_reverse_decoder_dilation commit l_mu sr use_bottleneck
    level n_ctx prior_width prior_depth heads attn_order blocks spread m_attn m_mlp res_scale
    init_scale zero_out labels y_bins t_bins max_bow_genre_size min_duration max_duration labels_v3
    cond_width cond_depth cond_m_conv cond_dilation_growth_rate cond_dilation_cycle cond_res_scale
    cond_zero_out cond_c_res single_enc_dec use_tokens n_vocab n_tokens prime_width prime_depth
    prime_heads prime_attn_order prime_blocks prime_spread prime_m_attn prime_m_mlp prime_res_scale
    prime_init_scale prime_zero_out prime_loss_fraction merged_decoder alignment_layer
    alignment_head y_cond_as_bias copy_input prime_rel_attn cond_levels attn_dropout resid_dropout
    emb_dropout prime_attn_dropout prime_resid_dropout prime_emb_dropout""".split()
)
_HPS_IGNORED = frozenset(
    """rcall_command git_commit name debug_mem debug_eval_files debug_speed debug_iters debug_batch
    debug_grad_accum debug_inputs local_path local_logdir max_len max_log save save_iters seed prior
    log_steps func audio_files_dir finetune english_only bs bs_sample nworkers aug_shift aug_blend
    train_test_split train_shrink_factor test_shrink_factor p_unk curr_epoch restore_vqvae
    revival_threshold spectral multispectral loss_fn linf_k lmix_l1 lmix_l2 lmix_linf restore_prior
    restore_prior_ddp pos_init c_res c_attn c_mlp
    primed_chunk_size selected_artists temp_top temp_rest sample_length_in_seconds
    total_sample_length_in_seconds restore_decoder prime_pos_init prime_c_res prime_c_attn prime_c_mlp prime_posemb_timescale
    epochs lr clip beta1 beta2 ignore_grad_norm weight_decay eps lr_warmup lr_decay lr_gamma lr_scale
    lr_use_linear_decay lr_start_linear_decay lr_use_cosine_decay fp16 fp16_params fp16_loss_scale
    fp16_scale_window fp16_opt dump ema ema_fused cpu_ema cpu_ema_freq reset_best_loss reset_step
    reset_opt reset_shd train test sample sampler codes_logdir date labeller label_line
    iters_before_update grad_accum_iters mu piped pipe_depth break_train break_test exit_train n_fft
    hop_length window_size channels wav n_inps n_hops n_segment n_total_segment n_segment_each
    prime_chunks sample_length sample_hop_length max_silence_pad_length ignore_boundaries
    use_nonrelative_specloss multispec_loss_n_fft multispec_loss_hop_length
    multispec_loss_window_size bucket t_ranges""".split()
)


def _check_hps_keys(hps: Mapping[str, Any]) -> None:
    unknown = sorted(set(hps) - _HPS_STRUCTURAL - _HPS_IGNORED)
    if unknown:
        raise ConfigError(f"unknown hps fields {unknown}: not an original Jukebox checkpoint, or a newer one")
