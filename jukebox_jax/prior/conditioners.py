"""What a prior is conditioned on besides its own tokens (original `prior/conditioners.py`):
the start embedding from artist and genres, the top prior's timing signal, and the
upsamplers' embedding of the codes of the level above.

Both store and compute in float32 whatever the prior's `PriorConfig.precision` (the
convolutions at HIGHEST matmul precision, `FULL_PRECISION`): they are cheap next to the
transformer, and the prior casts their outputs to its compute dtype.

Axis names on weights (glossary in `jukebox_jax/layers.py`): vocab (embedding rows), embed
(prior width), conv_width/conv_in/conv_out (the conditioner's convolutions). Param trees:
`LabelConditioner`: `{artist,genre,total_length,absolute_pos,relative_pos}_emb/embedding`
(the last three only with timing); `MusicTokenConditioner`: `x_emb/embedding`, `block` (a
`DecoderBlock`), `ln/{scale,bias}`.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jukebox_jax.config import FULL_PRECISION, PriorConfig
from jukebox_jax.layers import embed, layer_norm
from jukebox_jax.vqvae.encdec import DecoderBlock


def _interpolate(start: jax.Array, end: jax.Array, n: int) -> jax.Array:
    """`start + (end - start) * (k / n)` for k < n, `[b, 1]` -> `[b, n]`, rounded to float32
    after every op, as the original's separate PyTorch ops."""
    fraction = np.arange(n, dtype=np.float32) / np.float32(n)  # [n]
    step = (end - start) * fraction  # [b, n]
    # XLA fuses `start + step` into one FMA, which skips the rounding of `step` and moves a
    # few positions across a bin edge. It cannot see through this select (positions are
    # never NaN), so `step` stays rounded.
    step = jnp.where(jnp.isnan(step), 0.0, step)
    return start + step


@functools.cache
def _bin_edges(bins: int, lo: float, hi: float) -> np.ndarray:
    """`[bins - 1]` float32 edges: entry m - 1 is the least float32 position that the original
    puts in bin m or above, so a position's bin is the number of edges <= it.

    The original bins a position in [lo, hi) (lo >= 0) with the float32 ops
    `floor(bins * ((position - lo) / (hi - lo)))`. Under jit, XLA turns that division by a
    constant into a multiplication by its reciprocal, which moves some positions into the
    neighbouring bin; comparing with these edges reproduces the original exactly.
    """
    f32 = np.float32

    def original_bin(position: np.ndarray) -> np.ndarray:  # [bins - 1] -> [bins - 1]
        # NumPy's float32 ops round as PyTorch's; both cast each Python scalar to float32.
        return np.floor(f32(bins) * ((position - f32(lo)) / f32(hi - lo)))

    # Bisection on bit patterns: non-negative float32s sort as their int32 bit patterns do.
    target = np.arange(1, bins)
    below = np.full(bins - 1, f32(lo).view(np.int32))  # in a bin < target
    above = np.full(bins - 1, f32(hi).view(np.int32))  # in a bin >= target
    while np.any(above - below > 1):
        mid = below + (above - below) // 2
        up = original_bin(mid.view(f32)) >= target
        below, above = np.where(up, below, mid), np.where(up, mid, above)
    return above.view(f32)


def _bin(position: jax.Array, bins: int, value_range: tuple[float, float]) -> jax.Array:
    """Float32 positions `[b, t]` -> their int bins `[b, t]` in `value_range` (original
    `RangeEmbedding`). Positions outside the range, which the original rejects, get the end bins."""
    return jnp.searchsorted(_bin_edges(bins, *value_range), position, side="right")


class LabelConditioner(nn.Module):
    """Labels -> the start embedding and, at the top level, the timing signal (original
    `LabelConditioner`).

    `labels` `[b, 4 + max_bow_genre_size]` int: `[total_length, offset, sample_length, artist,
    genre_0, ...]`, lengths in audio samples, -1 in empty genre slots. Returns (start
    `[b, 1, w]` = artist embedding + the sum of the genre embeddings, timing `[b, n_ctx, w]`
    or None without timing), float32 from float32 tables. Ids are not range-checked, as the
    original asserts.
    """

    config: PriorConfig

    @nn.compact
    def __call__(self, labels: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        cfg, lab = self.config, self.config.labels
        w, std = cfg.transformer.width, 0.01 * cfg.transformer.init_scale
        if labels.shape[-1] != 4 + lab.max_bow_genre_size:
            raise ValueError(f"labels {labels.shape}: expected [b, {4 + lab.max_bow_genre_size}] (4 + genre slots)")
        total_length, offset, length, artist = (labels[:, i : i + 1] for i in range(4))  # [b, 1] each
        genres = labels[:, 4:]  # [b, g]
        genre_emb = embed(lab.genre_bins, w, std, "genre_emb")(jnp.maximum(genres, 0))  # [b, g, w]
        genre_emb = jnp.where(genres[..., None] >= 0, genre_emb, 0.0).sum(axis=1, keepdims=True)  # [b, 1, w]
        start = genre_emb + embed(lab.artist_bins, w, std, "artist_emb")(artist)  # [b, 1, w]
        if not lab.timing:
            return start, None

        total_range, absolute_range, relative_range = lab.t_ranges
        total, begin, end = (x.astype(jnp.float32) for x in (total_length, offset, offset + length))  # [b, 1] each
        absolute = _interpolate(begin, end, cfg.n_ctx)  # [b, n_ctx]
        relative = _interpolate(begin / total, jnp.clip(end / total, *relative_range), cfg.n_ctx)  # [b, n_ctx]
        timing = (
            embed(lab.t_bins, w, std, "total_length_emb")(_bin(total, lab.t_bins, total_range))  # [b, 1, w]
            + embed(lab.t_bins, w, std, "absolute_pos_emb")(_bin(absolute, lab.t_bins, absolute_range))
            + embed(lab.t_bins, w, std, "relative_pos_emb")(_bin(relative, lab.t_bins, relative_range))
        )  # [b, n_ctx, w]
        return start, timing


class MusicTokenConditioner(nn.Module):
    """An upsampler's conditioning on the codes of the level above (original `Conditioner`):
    embed, upsample by `cond_downsample` with a `DecoderBlock`, LayerNorm.
    `upper_codes` `[b, t]` int -> `[b, t * cond_downsample, w]` (t = n_ctx // cond_downsample).

    Always float32 at `FULL_PRECISION` (params, activations, output), whatever the prior's
    `precision`: the prior casts the output to its compute dtype."""

    config: PriorConfig

    @nn.compact
    def __call__(self, upper_codes: jax.Array) -> jax.Array:
        cfg, cond = self.config, self.config.conditioner
        w, above = cfg.transformer.width, cfg.level + 1
        x = embed(cfg.l_bins, w, 0.02 * cfg.transformer.init_scale, "x_emb")(upper_codes)  # [b, t, w]
        x = DecoderBlock(
            out_width=w,
            width=cond.width,
            depth=cond.depth,
            down_t=cfg.downs_t[above],
            stride=cfg.strides_t[above],
            m_conv=cond.m_conv,
            dilation_growth_rate=cond.dilation_growth_rate,
            dilation_cycle=cond.dilation_cycle,
            res_scale=cond.res_scale,
            reverse_dilation=False,
            zero_out=cond.zero_out,
            precision=FULL_PRECISION,
            name="block",
        )(x)  # [b, t * cond_downsample, w]
        return layer_norm("ln")(x)  # [b, t * cond_downsample, w]
