"""One prior (original `prior/prior.py` + `prior/autoregressive.py`): token and position
embeddings, the start embedding from artist and genres, the conditioning signal `x_cond`
(timing at the top level, the codes above for upsamplers), the lyric scheme, the transformer
and the output head.

Param tree: `x_emb`, `pos_emb`, `start_token` (only without labels), `labels`,
`conditioner` (upsamplers), `lyric_encoder` (5b_lyrics), `transformer`, `x_out_kernel`
(untied head only).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jukebox_jax.config import Lyrics, PriorConfig
from jukebox_jax.layers import embed, layer_norm, normal, zeros
from jukebox_jax.prior.conditioners import LabelConditioner, MusicTokenConditioner
from jukebox_jax.prior.transformer import Captured, LayerSpec, apply_transformer, init_transformer


def _shift_in(start: jax.Array, x: jax.Array) -> jax.Array:
    """`[b, 1, w]`, `[b, t, w]` -> `[b, t, w]`: inputs shifted right by one, `start` first."""
    return jnp.concatenate([start, x[:, :-1]], axis=1)


class LyricEncoder(nn.Module):
    """The 5b_lyrics lyric transformer (original `prime_prior`, `prime_state_proj`,
    `prime_state_ln`, `prime_x_out`): lyrics `[b, n_tokens]` -> (encoder states
    `[b, n_tokens, w]` read by the ENC_DEC layers, lyric logits `[b, n_tokens, n_vocab]`)."""

    config: PriorConfig
    unroll: bool = False

    @nn.compact
    def __call__(self, lyrics: jax.Array) -> tuple[jax.Array, jax.Array]:
        cfg, enc = self.config, self.config.lyric_encoder
        spec = LayerSpec(enc, cfg.n_tokens // enc.blocks)
        std = 0.01 * enc.init_scale
        x = embed(cfg.n_vocab, enc.width, 0.02 * enc.init_scale, "x_emb")(lyrics)
        start = self.param("start_token", normal(std, (None, "embed")), (1, enc.width))
        x = _shift_in(jnp.broadcast_to(start, (x.shape[0], 1, enc.width)), x)
        x = x + self.param("pos_emb", normal(std, (None, "embed")), (cfg.n_tokens, enc.width))[: x.shape[1]]
        x, _ = apply_transformer(self.param("transformer", init_transformer, spec), x, None, spec, unroll=self.unroll)
        w = cfg.transformer.width
        x = x @ self.param("proj_kernel", normal(0.02 * enc.init_scale, (None, "embed")), (enc.width, w))
        x = x + self.param("proj_bias", zeros(("embed",)), (w,))
        states = layer_norm("ln")(x)
        head = self.param("head_kernel", normal(0.02 * cfg.transformer.init_scale, ("embed", "vocab")), (w, cfg.n_vocab))
        return states, states @ head


@dataclasses.dataclass(frozen=True)
class PriorOutput:
    """`logits [b, t, bins]` over the prior's whole vocabulary (for 1b_lyrics the joint
    [lyrics ; music] sequence and vocabulary); `lyric_logits [b, n_tokens, n_vocab]` from the
    5b_lyrics lyric encoder (else None); `captured` layers."""

    logits: jax.Array
    lyric_logits: jax.Array | None
    captured: Captured


jax.tree_util.register_dataclass(PriorOutput, data_fields=["logits", "lyric_logits", "captured"], meta_fields=[])


class Prior(nn.Module):
    config: PriorConfig
    unroll: bool = False

    @nn.compact
    def __call__(
        self, tokens: jax.Array, labels: jax.Array, upper_codes: jax.Array | None = None, capture: frozenset[int] = frozenset()
    ) -> PriorOutput:
        """Teacher-forced forward: music `tokens [b, t]` (t <= n_ctx), `labels [b, n_labels]`,
        `upper_codes [b, n_ctx // cond_downsample]` (upsamplers) -> `PriorOutput`; position i
        predicts token i."""
        cfg = self.config
        w = cfg.transformer.width
        b = tokens.shape[0]
        std = 0.01 * cfg.transformer.init_scale
        n_y = cfg.n_labels - cfg.n_tokens
        if cfg.labels is not None:
            start, x_cond = LabelConditioner(cfg, name="labels")(labels[:, :n_y])
        else:
            start, x_cond = jnp.broadcast_to(self.param("start_token", normal(std, (None, "embed")), (1, w)), (b, 1, w)), None
        if cfg.conditioner is not None:
            x_cond = MusicTokenConditioner(cfg, name="conditioner")(upper_codes)  # [b, n_ctx, w]
        lyrics = labels[:, n_y:]
        encoder_kv = lyric_logits = None
        if cfg.lyrics is Lyrics.SEPARATE_ENCODER:
            encoder_kv, lyric_logits = LyricEncoder(cfg, self.unroll, name="lyric_encoder")(lyrics)
        seq = tokens
        if cfg.lyrics is Lyrics.JOINT_SEQUENCE:  # [lyrics ; music], music ids after the lyric vocabulary
            seq = jnp.concatenate([lyrics, tokens + cfg.n_vocab], axis=1)
            x_cond = jnp.zeros((b, cfg.n_positions, w)) if x_cond is None else jnp.pad(x_cond, ((0, 0), (cfg.n_tokens, 0), (0, 0)))
        t = seq.shape[1]
        x_cond = jnp.zeros((b, 1, w)) if x_cond is None else x_cond[:, :t]

        x_emb = embed(cfg.bins, w, 0.02 * cfg.transformer.init_scale, "x_emb")
        x = _shift_in(start, x_emb(seq))
        x = x + self.param("pos_emb", normal(std, (None, "embed")), (cfg.n_positions, w))[:t] + x_cond
        spec = LayerSpec(cfg.transformer, cfg.block_ctx, cfg.prime_len)
        enc_width = w if cfg.lyrics is Lyrics.SEPARATE_ENCODER else None
        params = self.param("transformer", init_transformer, spec, enc_width)
        h, captured = apply_transformer(params, x, encoder_kv, spec, unroll=self.unroll, capture=capture)
        if cfg.merged_decoder:
            logits = h @ self.param("x_out_kernel", normal(0.02 * cfg.transformer.init_scale, ("embed", "vocab")), (w, cfg.bins))
        else:  # tied head, and x_cond added again after the transformer
            logits = x_emb.attend(h + x_cond)
        return PriorOutput(logits, lyric_logits, captured)


def bits_per_token(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean cross-entropy in bits, `logits [b, t, v]` in float32, `targets [b, t]`."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets).mean() / np.log(2.0)


def prior_losses(cfg: PriorConfig, out: PriorOutput, tokens: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """The original `z_forward` losses in bits per token: `gen_loss` (music), `prime_loss`
    (lyrics; 0 without), and their training mix `loss`."""
    lyrics = labels[:, cfg.n_labels - cfg.n_tokens :]
    if cfg.lyrics is Lyrics.JOINT_SEQUENCE:
        n = cfg.n_tokens
        prime_loss = bits_per_token(out.logits[:, :n], lyrics)
        gen_loss = bits_per_token(out.logits[:, n:], tokens + cfg.n_vocab)
    else:
        gen_loss = bits_per_token(out.logits, tokens)
        prime_loss = bits_per_token(out.lyric_logits, lyrics) if out.lyric_logits is not None else jnp.zeros(())
    prime_dims = cfg.n_tokens if cfg.lyrics is not Lyrics.NONE else 0
    gen_dims = tokens.shape[1]
    total = prime_dims + gen_dims
    loss = cfg.prime_loss_fraction * prime_loss * prime_dims / total + gen_loss * gen_dims / total
    return {"loss": loss, "gen_loss": gen_loss, "prime_loss": prime_loss}
