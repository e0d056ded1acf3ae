"""Name-table rows of a prior: embeddings, heads, the lyric encoder, and the transformer
layers mapped onto the canonical layer stacks (`jukebox_jax/prior/layout.py`)."""

from __future__ import annotations

from collections.abc import Iterator

from convert.table import LINEAR, Row
from convert.table_conditioners import label_rows, music_conditioner_rows
from jukebox_jax.config import AttnKind, Lyrics, PriorConfig, TransformerConfig
from jukebox_jax.prior.layout import slots


def _layer_rows(cfg: TransformerConfig, path: tuple[str, ...], original: str, hf: str) -> Iterator[Row]:
    """Every layer of a transformer: original layer d is entry i of our stack (`slots`)."""
    h, d = cfg.heads, cfg.attn_width // cfg.heads
    for layer, (kind, (stack, i)) in enumerate(zip(cfg.pattern, slots(cfg.pattern))):
        o, f = f"{original}._attn_mods.{layer}", f"{hf}._attn_mods.{layer}"
        row = lambda name, orig, hfk, **kw: Row((*path, stack, *name), f"{o}.{orig}", f"{f}.{hfk}", index=i, **kw)
        for ln, hf_ln in (("ln_0", "layer_norm_0"), ("ln_1", "layer_norm_1")):
            yield row((ln, "scale"), f"{ln}.weight", f"{hf_ln}.weight")
            yield row((ln, "bias"), f"{ln}.bias", f"{hf_ln}.bias")
        qkv = (h, d) if kind is AttnKind.ENC_DEC else (3, h, d)
        yield row(("attn", "c_attn_kernel"), "attn.c_attn.w", "attn.c_attn.weight", split=(1, qkv))
        yield row(("attn", "c_attn_bias"), "attn.c_attn.b", "attn.c_attn.bias", split=(0, qkv))
        if kind is AttnKind.ENC_DEC:
            yield row(("attn", "c_enc_kv_kernel"), "attn.c_enc_kv.w", "attn.c_enc_kv.weight", split=(1, (2, h, d)))
            yield row(("attn", "c_enc_kv_bias"), "attn.c_enc_kv.b", "attn.c_enc_kv.bias", split=(0, (2, h, d)))
        yield row(("attn", "c_proj_kernel"), "attn.c_proj.w", "attn.c_proj.weight", split=(0, (h, d)))
        yield row(("attn", "c_proj_bias"), "attn.c_proj.b", "attn.c_proj.bias")
        for name in ("c_fc", "c_proj"):
            yield row(("mlp", f"{name}_kernel"), f"mlp.{name}.w", f"mlp.{name}.weight")
            yield row(("mlp", f"{name}_bias"), f"mlp.{name}.b", f"mlp.{name}.bias")


def prior_rows(cfg: PriorConfig, hf_index: int) -> list[Row]:
    """Rows of the prior of `cfg.level`, under our `prior_level_{L}`; `hf_index` is its index
    in HF's reversed `priors` list."""
    p = (f"prior_level_{cfg.level}",)
    hf = f"priors.{hf_index}"
    rows = [
        Row((*p, "x_emb", "embedding"), "prior.x_emb.weight", f"{hf}.prior.embed_tokens.weight"),
        Row((*p, "pos_emb"), "prior.pos_emb.pos_emb", f"{hf}.prior.pos_emb.pos_emb"),
        *_layer_rows(cfg.transformer, (*p, "transformer"), "prior.transformer", f"{hf}.prior.transformer"),
    ]
    if cfg.merged_decoder:
        rows.append(Row((*p, "x_out_kernel"), "prior.x_out.weight", f"{hf}.prior.fc_proj_out.weight", LINEAR))
    else:  # the output head is the token embedding
        rows.append(Row((*p, "x_emb", "embedding"), "prior.x_out.weight", f"{hf}.prior.fc_proj_out.weight", tied=True))
    if cfg.labels is not None:
        rows += label_rows(cfg, (*p, "labels"), "y_emb", f"{hf}.metadata_embedding")
    else:
        rows.append(Row((*p, "start_token"), "prior.start_token", f"{hf}.prior.start_token"))
    if cfg.conditioner is not None:
        rows += music_conditioner_rows(cfg, (*p, "conditioner"), "conditioner_blocks.0", f"{hf}.conditioner_blocks")
    if cfg.lyrics is Lyrics.SEPARATE_ENCODER:
        e = (*p, "lyric_encoder")
        rows += [
            Row((*e, "x_emb", "embedding"), "prime_prior.x_emb.weight", f"{hf}.encoder.embed_tokens.weight"),
            Row((*e, "start_token"), "prime_prior.start_token", f"{hf}.encoder.start_token"),
            Row((*e, "pos_emb"), "prime_prior.pos_emb.pos_emb", f"{hf}.encoder.pos_emb.pos_emb"),
            *_layer_rows(cfg.lyric_encoder, (*e, "transformer"), "prime_prior.transformer", f"{hf}.encoder.transformer"),
            Row((*e, "proj_kernel"), "prime_state_proj.w", f"{hf}.encoder.proj_in.weight"),
            Row((*e, "proj_bias"), "prime_state_proj.b", f"{hf}.encoder.proj_in.bias"),
            Row((*e, "ln", "scale"), "prime_state_ln.weight", f"{hf}.encoder.final_layer_norm.weight"),
            Row((*e, "ln", "bias"), "prime_state_ln.bias", f"{hf}.encoder.final_layer_norm.bias"),
            Row((*e, "head_kernel"), "prime_x_out.weight", f"{hf}.encoder.lm_head.weight", LINEAR),
        ]
    return rows
