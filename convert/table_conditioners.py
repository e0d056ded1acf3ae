"""Name-table rows of a prior's conditioners (`jukebox_jax.prior.conditioners`).

Original and HF key prefixes differ by module: labels under `y_emb` / `priors.N.metadata_embedding`,
the upsampler conditioner under `conditioner_blocks.0` / `priors.N.conditioner_blocks`.
"""

from __future__ import annotations

from convert.table import Row, decoder_block_rows
from jukebox_jax.config import PriorConfig


def label_rows(cfg: PriorConfig, path: tuple[str, ...], original: str, hf: str) -> list[Row]:
    """A `LabelConditioner` under `path`. The original wraps every embedding in a module
    (`.emb.weight`); HF keeps that only for the three timing embeddings."""
    names = [("artist_emb", "artist_emb", ""), ("genre_emb", "bow_genre_emb", "")]
    if cfg.labels.timing:
        names += [(name, name, ".emb") for name in ("total_length_emb", "absolute_pos_emb", "relative_pos_emb")]
    return [
        Row((*path, ours, "embedding"), f"{original}.{theirs}.emb.weight", f"{hf}.{theirs}{hf_emb}.weight")
        for ours, theirs, hf_emb in names
    ]


def music_conditioner_rows(cfg: PriorConfig, path: tuple[str, ...], original: str, hf: str) -> list[Row]:
    """A `MusicTokenConditioner` under `path`. The released upsamplers were built with
    `cond_c_res=1`, which names their residual stacks `blocks` in the original files."""
    down_t, depth = cfg.downs_t[cfg.level + 1], cfg.conditioner.depth
    return [
        Row((*path, "x_emb", "embedding"), f"{original}.x_emb.weight", f"{hf}.embed_tokens.weight"),
        *decoder_block_rows(
            (*path, "block"), f"{original}.cond", f"{hf}.upsampler", down_t, depth, resnet_list="blocks"
        ),
        Row((*path, "ln", "scale"), f"{original}.ln.weight", f"{hf}.layer_norm.weight"),
        Row((*path, "ln", "bias"), f"{original}.ln.bias", f"{hf}.layer_norm.bias"),
    ]
