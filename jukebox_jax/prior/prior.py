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
from jukebox_jax.prior.transformer import Captured, LayerSpec, apply_transformer, init_cache, init_transformer, unstack_layers


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
        x, _, _ = apply_transformer(self.param("transformer", init_transformer, spec), x, None, spec, unroll=self.unroll)
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


@dataclasses.dataclass(frozen=True)
class Context:
    """What a window is conditioned on, computed once: the start embedding `[b, 1, w]`,
    `x_cond` (`[b, n_positions, w]`, or `[b, 1, w]` of zeros without conditioning), the lyric
    encoder's states `[b, n_tokens, w]` (5b_lyrics, else None) and its lyric logits."""

    start: jax.Array
    x_cond: jax.Array
    encoder_kv: jax.Array | None
    lyric_logits: jax.Array | None


for _cls, _fields in ((PriorOutput, ["logits", "lyric_logits", "captured"]), (Context, ["start", "x_cond", "encoder_kv", "lyric_logits"])):
    jax.tree_util.register_dataclass(_cls, data_fields=_fields, meta_fields=[])


class Prior(nn.Module):
    """Methods: `__call__` (teacher-forced full pass), `condition` (the window's `Context`)
    and `extend` (a chunk of positions against a KV cache, for prefill and sampling)."""

    config: PriorConfig
    unroll: bool = False

    def setup(self):
        cfg = self.config
        w, init_scale = cfg.transformer.width, cfg.transformer.init_scale
        if cfg.labels is not None:
            self.labels = LabelConditioner(cfg)
        else:
            self.start_token = self.param("start_token", normal(0.01 * init_scale, (None, "embed")), (1, w))
        if cfg.conditioner is not None:
            self.conditioner = MusicTokenConditioner(cfg)
        if cfg.lyrics is Lyrics.SEPARATE_ENCODER:
            self.lyric_encoder = LyricEncoder(cfg, self.unroll)
        self.x_emb = embed(cfg.bins, w, 0.02 * init_scale)
        self.pos_emb = self.param("pos_emb", normal(0.01 * init_scale, (None, "embed")), (cfg.n_positions, w))
        enc_width = w if cfg.lyrics is Lyrics.SEPARATE_ENCODER else None
        if self.is_initializing():
            self.transformer = self.param("transformer", init_transformer, self.spec, enc_width)
        else:  # read without flax's shape check, which would refuse `decode_layout`
            self.transformer = self.get_variable("params", "transformer")
        if cfg.merged_decoder:
            self.x_out_kernel = self.param("x_out_kernel", normal(0.02 * init_scale, ("embed", "vocab")), (w, cfg.bins))

    @property
    def spec(self) -> LayerSpec:
        cfg = self.config
        return LayerSpec(cfg.transformer, cfg.block_ctx, cfg.prime_len, cfg.n_positions)

    def condition(self, labels: jax.Array, upper_codes: jax.Array | None = None) -> Context:
        """`labels [b, n_labels]`, `upper_codes [b, n_ctx // cond_downsample]` (upsamplers)."""
        cfg = self.config
        b, w = labels.shape[0], cfg.transformer.width
        n_y = cfg.n_labels - cfg.n_tokens
        if cfg.labels is not None:
            start, x_cond = self.labels(labels[:, :n_y])
        else:
            start, x_cond = jnp.broadcast_to(self.start_token, (b, 1, w)), None
        if cfg.conditioner is not None:
            x_cond = self.conditioner(upper_codes)  # [b, n_ctx, w]
        encoder_kv = lyric_logits = None
        if cfg.lyrics is Lyrics.SEPARATE_ENCODER:
            encoder_kv, lyric_logits = self.lyric_encoder(labels[:, n_y:])
        if cfg.lyrics is Lyrics.JOINT_SEQUENCE:  # no conditioning signal over the lyric prefix
            x_cond = jnp.zeros((b, cfg.n_positions, w)) if x_cond is None else jnp.pad(x_cond, ((0, 0), (cfg.n_tokens, 0), (0, 0)))
        return Context(start, jnp.zeros((b, 1, w)) if x_cond is None else x_cond, encoder_kv, lyric_logits)

    def sequence(self, tokens: jax.Array, labels: jax.Array) -> jax.Array:
        """The transformer's token ids `[b, t']`: the music tokens, or for 1b_lyrics the lyric
        tokens then the music tokens shifted past the lyric vocabulary."""
        cfg = self.config
        if cfg.lyrics is not Lyrics.JOINT_SEQUENCE:
            return tokens
        return jnp.concatenate([labels[:, cfg.n_labels - cfg.n_tokens :], tokens + cfg.n_vocab], axis=1)

    def _head(self, h: jax.Array, x_cond: jax.Array) -> jax.Array:
        if self.config.merged_decoder:
            return h @ self.x_out_kernel
        return self.x_emb.attend(h + x_cond)  # tied head, x_cond added again after the transformer

    def __call__(
        self, tokens: jax.Array, labels: jax.Array, upper_codes: jax.Array | None = None, capture: frozenset[int] = frozenset()
    ) -> PriorOutput:
        """Teacher-forced pass: music `tokens [b, t]` (t <= n_ctx) -> `PriorOutput`; position i
        predicts token i."""
        ctx = self.condition(labels, upper_codes)
        seq = self.sequence(tokens, labels)
        t = seq.shape[1]
        x_cond = ctx.x_cond[:, :t]
        x = _shift_in(ctx.start, self.x_emb(seq)) + self.pos_emb[:t] + x_cond
        h, captured, _ = apply_transformer(self.transformer, x, ctx.encoder_kv, self.spec, unroll=self.unroll, capture=capture)
        return PriorOutput(self._head(h, x_cond), ctx.lyric_logits, captured)

    def extend(self, inputs: jax.Array, t0: jax.Array, ctx: Context, cache) -> tuple[jax.Array, dict]:
        """Positions `t0..t0+L-1` against the `cache` of the earlier ones: `inputs [b, L]` are
        the sequence ids at positions `t0-1..t0+L-2` (position 0 takes the start embedding
        instead) -> `(logits [b, L, bins], updated cache)`. ENC_DEC layers fill their cache
        from `ctx.encoder_kv` when it is given and read it when it is None."""
        length = inputs.shape[1]
        pos = t0 + jnp.arange(length)
        x = jnp.where((pos == 0)[None, :, None], ctx.start, self.x_emb(inputs))
        x = x + jax.lax.dynamic_slice_in_dim(self.pos_emb, t0, length)
        x_cond = ctx.x_cond if ctx.x_cond.shape[1] == 1 else jax.lax.dynamic_slice_in_dim(ctx.x_cond, t0, length, axis=1)
        h, _, cache = apply_transformer(self.transformer, x + x_cond, ctx.encoder_kv, self.spec, unroll=self.unroll, cache=cache, t0=t0)
        return self._head(h, x_cond), cache


def init_prior_cache(cfg: PriorConfig, batch: int, dtype=jnp.float32, stacked: bool = True):
    """An empty KV cache for `Prior(cfg).extend` (layout in `attention.py`), stacked per
    segment or per layer (`stacked=False`) like the params it will run with."""
    spec = LayerSpec(cfg.transformer, cfg.block_ctx, cfg.prime_len, cfg.n_positions)
    return init_cache(spec, batch, cfg.n_tokens, dtype, stacked)


@jax.jit
def decode_layout(params):
    """Prior params with the transformer's layers one buffer each (`unstack_layers`): the
    layout sampling runs fastest on. A copy of the transformer's weights."""
    return {**params, "transformer": unstack_layers(params["transformer"])}


def is_stacked(params) -> bool:
    """Whether prior `params` have the stacked (checkpoint) layout, not `decode_layout`."""
    return not isinstance(params["transformer"]["segment_0"], tuple)


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
