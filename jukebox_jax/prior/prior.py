"""One prior (original `prior/prior.py` + `prior/autoregressive.py`): token and position
embeddings, the start embedding from artist and genres, the conditioning signal `x_cond`
(timing at the top level, the codes above for upsamplers), the lyric scheme, the transformer
and the output head.

Param tree (canonical): `x_emb`, `pos_emb`, `start_token` (only without labels), `labels`,
`conditioner` (upsamplers), `lyric_encoder` (5b_lyrics, with its own `transformer`),
`transformer` (`layout.py`), `x_out_kernel` (untied head only). The Flax `Prior` module sees
its transformers in an execution layout; the functions at the bottom (`init_params`,
`forward`, `condition`, `sequence`, `init_cache`, `fill_encoder_cache`, `extend`) take
canonical params (or, for the cached passes, `decode_params`) and convert.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jukebox_jax.config import AttnKind, Lyrics, PriorConfig
from jukebox_jax.layers import Params, cpu_device, draw, embed, layer_norm, normal, zeros
from jukebox_jax.prior import layout
from jukebox_jax.prior.attention import Cache, Geometry
from jukebox_jax.prior.conditioners import LabelConditioner, MusicTokenConditioner
from jukebox_jax.prior.transformer import Captured, Execution, LayerSpec, Remat, Transformer, init_caches


def _shift_in(start: jax.Array, x: jax.Array) -> jax.Array:
    """`[b, 1, w]`, `[b, t, w]` -> `[b, t, w]`: inputs shifted right by one, `start` first."""
    return jnp.concatenate([start.astype(x.dtype), x[:, :-1]], axis=1)


def geometry(cfg: PriorConfig) -> Geometry:
    """The music (or joint lyrics+music) sequence the prior's layers attend over."""
    return Geometry(cfg.n_positions, cfg.block_ctx, cfg.transformer.spread, cfg.prime_len, cfg.n_tokens)


def lyric_geometry(cfg: PriorConfig) -> Geometry:
    enc = cfg.lyric_encoder
    return Geometry(cfg.n_tokens, None if enc.blocks is None else cfg.n_tokens // enc.blocks, enc.spread)


class LyricEncoder(nn.Module):
    """The 5b_lyrics lyric transformer (original `prime_prior`, `prime_state_proj`,
    `prime_state_ln`, `prime_x_out`): lyrics `[b, n_tokens]` -> (encoder states
    `[b, n_tokens, w]` read by the ENC_DEC layers, lyric logits `[b, n_tokens, n_vocab]`)."""

    config: PriorConfig
    execution: Execution = Execution.SCAN
    remat: Remat = Remat.NONE
    deterministic: bool = True

    @nn.compact
    def __call__(self, lyrics: jax.Array) -> tuple[jax.Array, jax.Array]:
        cfg, enc = self.config, self.config.lyric_encoder
        precision = cfg.precision
        std = 0.01 * enc.init_scale
        x = embed(cfg.n_vocab, enc.width, 0.02 * enc.init_scale, "x_emb")(lyrics)
        start = self.param("start_token", normal(std, ("length", "embed")), (1, enc.width))
        x = _shift_in(jnp.broadcast_to(start, (x.shape[0], 1, enc.width)), x)
        pos = self.param("pos_emb", normal(std, ("length", "embed")), (cfg.n_tokens, enc.width))[: x.shape[1]]
        dropout = nn.Dropout(enc.emb_dropout, deterministic=self.deterministic)
        x = dropout(x) + dropout(pos)
        spec = LayerSpec(enc, lyric_geometry(cfg), precision, self.deterministic)
        x, _ = Transformer(spec, self.execution, self.remat, name="transformer")(x)
        w = cfg.transformer.width
        x = x @ self.param("proj_kernel", normal(0.02 * enc.init_scale, ("lyric_embed", "embed")), (enc.width, w)).astype(x.dtype)
        x = x + self.param("proj_bias", zeros(("embed",)), (w,)).astype(x.dtype)
        states = layer_norm("ln")(x)  # float32
        head = self.param("head_kernel", normal(0.02 * cfg.transformer.init_scale, ("embed", "vocab")), (w, cfg.n_vocab))
        return states.astype(precision.compute.jnp), jnp.matmul(states, head, preferred_element_type=jnp.float32)


@dataclasses.dataclass(frozen=True)
class PriorOutput:
    """`logits [b, t, bins]` (float32) over the prior's whole vocabulary (for 1b_lyrics the
    joint [lyrics ; music] sequence and vocabulary); `lyric_logits [b, n_tokens, n_vocab]` from
    the 5b_lyrics lyric encoder (else None); `captured` layers."""

    logits: jax.Array
    lyric_logits: jax.Array | None
    captured: Captured


@dataclasses.dataclass(frozen=True)
class Context:
    """What a window is conditioned on, computed once: the start embedding `[b, 1, w]`,
    `x_cond [b, n_positions, w]` (None without conditioning), the lyric encoder's states
    `[b, n_tokens, w]` (5b_lyrics, else None) and its lyric logits."""

    start: jax.Array
    x_cond: jax.Array | None
    encoder_kv: jax.Array | None
    lyric_logits: jax.Array | None


for _cls, _fields in ((PriorOutput, ["logits", "lyric_logits", "captured"]), (Context, ["start", "x_cond", "encoder_kv", "lyric_logits"])):
    jax.tree_util.register_dataclass(_cls, data_fields=_fields, meta_fields=[])


class Prior(nn.Module):
    """Methods: `__call__` (teacher-forced full pass), `condition` (the window's `Context`),
    `extend` (positions against a KV cache: prefill and decode) and
    `encoder_caches`. Its transformers' variables are in the `execution` layout."""

    config: PriorConfig
    execution: Execution = Execution.SCAN
    remat: Remat = Remat.NONE
    deterministic: bool = True

    def setup(self):
        cfg = self.config
        w, init_scale = cfg.transformer.width, cfg.transformer.init_scale
        if cfg.labels is not None:
            self.labels = LabelConditioner(cfg)
        else:
            self.start_token = self.param("start_token", normal(0.01 * init_scale, ("length", "embed")), (1, w))
        if cfg.conditioner is not None:
            self.conditioner = MusicTokenConditioner(cfg)
        if cfg.lyrics is Lyrics.SEPARATE_ENCODER:
            self.lyric_encoder = LyricEncoder(cfg, self.execution, self.remat, self.deterministic)
        self.x_emb = embed(cfg.bins, w, 0.02 * init_scale)
        self.pos_emb = self.param("pos_emb", normal(0.01 * init_scale, ("length", "embed")), (cfg.n_positions, w))
        self.emb_dropout = nn.Dropout(cfg.transformer.emb_dropout, deterministic=self.deterministic)
        self.transformer = Transformer(LayerSpec(cfg.transformer, geometry(cfg), cfg.precision, self.deterministic), self.execution, self.remat)
        if cfg.merged_decoder:
            self.x_out_kernel = self.param("x_out_kernel", normal(0.02 * init_scale, ("embed", "vocab")), (w, cfg.bins))

    def condition(self, labels: jax.Array, upper_codes: jax.Array | None = None) -> Context:
        """`labels [b, n_labels]`, `upper_codes [b, n_ctx // cond_downsample]` (upsamplers)."""
        cfg = self.config
        b, w = labels.shape[0], cfg.transformer.width
        if cfg.labels is not None:
            start, x_cond = self.labels(labels[:, : cfg.lyric_start])
        else:
            start, x_cond = jnp.broadcast_to(self.start_token, (b, 1, w)), None
        if cfg.conditioner is not None:
            x_cond = self.conditioner(upper_codes)  # [b, n_ctx, w]
        encoder_kv = lyric_logits = None
        if cfg.lyrics is Lyrics.SEPARATE_ENCODER:
            encoder_kv, lyric_logits = self.lyric_encoder(labels[:, cfg.lyric_start :])
        if cfg.lyrics is Lyrics.JOINT_SEQUENCE and x_cond is not None:  # no conditioning over the lyric prefix
            x_cond = jnp.pad(x_cond, ((0, 0), (cfg.n_tokens, 0), (0, 0)))
        return Context(start, x_cond, encoder_kv, lyric_logits)

    def _embed(self, x: jax.Array, pos: jax.Array, x_cond: jax.Array | None) -> jax.Array:
        x = self.emb_dropout(x) + self.emb_dropout(pos)
        return x if x_cond is None else x + x_cond

    def _head(self, h: jax.Array, x_cond: jax.Array | None) -> jax.Array:
        """Float32 logits `[b, t, bins]`."""
        if self.config.merged_decoder:
            return jnp.matmul(h, self.x_out_kernel.astype(h.dtype), preferred_element_type=jnp.float32)
        h = h if x_cond is None else h + x_cond.astype(h.dtype)  # tied head: x_cond added again after the transformer
        return jnp.matmul(h, self.x_emb.embedding.T.astype(h.dtype), preferred_element_type=jnp.float32)

    def __call__(
        self, tokens: jax.Array, labels: jax.Array, upper_codes: jax.Array | None = None, capture: frozenset[int] = frozenset()
    ) -> PriorOutput:
        """Teacher-forced pass: music `tokens [b, t]` (t <= n_ctx) -> `PriorOutput`; position i
        predicts token i."""
        ctx = self.condition(labels, upper_codes)
        seq = sequence(self.config, tokens, labels)
        t = seq.shape[1]
        x_cond = None if ctx.x_cond is None else ctx.x_cond[:, :t]
        x = self._embed(_shift_in(ctx.start, self.x_emb(seq)), self.pos_emb[:t], x_cond)
        h, captured = self.transformer(x, ctx.encoder_kv, capture)
        return PriorOutput(self._head(h, x_cond), ctx.lyric_logits, captured)

    def extend(
        self, inputs: jax.Array, t0: jax.Array, ctx: Context, caches: dict[str, Cache], step: bool = False
    ) -> tuple[jax.Array, dict[str, Cache]]:
        """Positions `t0..t0+L-1` against `caches` of the earlier ones: `inputs [b, L]` are the
        sequence ids at positions `t0-1..t0+L-2` (position 0 takes the start embedding
        instead) -> `(logits [b, L, bins], updated caches)`. `step`: one position, decoding."""
        length = inputs.shape[1]
        pos = t0 + jnp.arange(length)
        x = jnp.where((pos == 0)[None, :, None], ctx.start, self.x_emb(inputs))
        x_cond = None if ctx.x_cond is None else jax.lax.dynamic_slice_in_dim(ctx.x_cond, t0, length, axis=1)
        x = self._embed(x, jax.lax.dynamic_slice_in_dim(self.pos_emb, t0, length), x_cond)
        h, caches = self.transformer.extend(x, caches, t0, step)
        return self._head(h, x_cond), caches

    def encoder_caches(self, ctx: Context, caches: dict[str, Cache]) -> dict[str, Cache]:
        """`caches` with the ENC_DEC layers' filled from `ctx.encoder_kv` (once per window)."""
        return self.transformer.encoder_caches(ctx.encoder_kv, caches)


def bits_per_token(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean cross-entropy in bits, `logits [b, t, v]` in float32, `targets [b, t]`."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets).mean() / np.log(2.0)


def prior_losses(cfg: PriorConfig, out: PriorOutput, tokens: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """The original `z_forward` losses in bits per token: `gen_loss` (music), `prime_loss`
    (lyrics; 0 without), and their training mix `loss`."""
    tokens, labels = jnp.asarray(tokens, jnp.int32), jnp.asarray(labels, jnp.int32)  # int8 ids + n_vocab would wrap
    lyrics = labels[:, cfg.lyric_start :]
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


# -- The functional API over canonical params ---------------------------------------------


def map_transformers(cfg: PriorConfig, params: Params, convert: Callable[[Params, tuple[AttnKind, ...]], Params]) -> Params:
    """`params` with each transformer's tree (the prior's, and the 5b_lyrics lyric encoder's)
    passed through `convert(tree, pattern)`."""
    out = {**params, "transformer": convert(params["transformer"], cfg.transformer.pattern)}
    if cfg.lyrics is Lyrics.SEPARATE_ENCODER:
        enc = params["lyric_encoder"]
        out["lyric_encoder"] = {**enc, "transformer": convert(enc["transformer"], cfg.lyric_encoder.pattern)}
    return out


def to_execution(cfg: PriorConfig, params: Params, execution: Execution) -> Params:
    """Canonical params (or `decode_params`) -> what `Prior(cfg, execution)` applies to
    (inside jit: slices, and for per-layer params asked to scan, a stack that XLA drops
    wherever the transformer is not used, as in `condition`)."""

    def convert(tree, pattern):
        if layout.layout_of(tree) is layout.EXECUTION_LAYOUT[execution]:
            return tree
        return layout.to_execution(layout.to_canonical(tree, pattern), pattern, execution)

    return map_transformers(cfg, params, convert)


def dummy_inputs(cfg: PriorConfig) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Shortest valid (tokens, labels, upper_codes) for `Prior(cfg).init`."""
    down = cfg.cond_downsample or 1
    labels = jnp.zeros((1, cfg.n_labels), jnp.int32)
    upper = jnp.zeros((1, 1), jnp.int32) if cfg.conditioner is not None else None
    return jnp.zeros((1, down), jnp.int32), labels, upper


@functools.cache
def boxed_shapes(cfg: PriorConfig) -> Params:
    """Canonical params as abstract `layers.Param`s (shape, dtype, logical axis names, init;
    the scan's stacked leaves lead with `layers`, which the canonical stacks keep), traced
    once per config without allocating."""
    shapes = [None if x is None else jax.ShapeDtypeStruct(x.shape, x.dtype) for x in dummy_inputs(cfg)]

    def init(*inputs):
        boxed = Prior(cfg, Execution.SCAN).init(jax.random.key(0), *inputs)["params"]
        return map_transformers(cfg, boxed, layout.to_canonical)

    return jax.eval_shape(init, *shapes)


def init_params(cfg: PriorConfig, key: jax.Array) -> Params:
    """Random canonical params of the prior (unboxed), deterministic in `key`."""
    return draw(boxed_shapes(cfg), key)


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def forward(
    cfg: PriorConfig,
    params: Params,
    tokens: jax.Array,
    labels: jax.Array,
    upper_codes: jax.Array | None,
    capture: frozenset[int] = frozenset(),
    execution: Execution = Execution.SCAN,
) -> PriorOutput:
    """Teacher-forced pass (`Prior.__call__`) on canonical params; capturing layers runs the
    stack unrolled."""
    execution = Execution.UNROLLED if capture else execution
    return Prior(cfg, execution).apply({"params": to_execution(cfg, params, execution)}, tokens, labels, upper_codes, capture)


@functools.partial(jax.jit, static_argnums=0)
def condition(cfg: PriorConfig, params: Params, labels: jax.Array, upper_codes: jax.Array | None = None) -> Context:
    """The window's `Context` (`Prior.condition`): labels `[b, n_labels]`, upper codes."""
    return Prior(cfg, Execution.SCAN).apply({"params": to_execution(cfg, params, Execution.SCAN)}, labels, upper_codes, method=Prior.condition)


def sequence(cfg: PriorConfig, tokens: jax.Array, labels: jax.Array) -> jax.Array:
    """The transformer's token ids `[b, t']` for music `tokens [b, t]`: the tokens, or for
    1b_lyrics the window's lyric tokens then the music tokens shifted past the lyric vocabulary."""
    tokens, labels = jnp.asarray(tokens, jnp.int32), jnp.asarray(labels, jnp.int32)  # int8 ids + n_vocab would wrap
    if cfg.lyrics is not Lyrics.JOINT_SEQUENCE:
        return tokens
    return jnp.concatenate([labels[:, cfg.lyric_start :], tokens + cfg.n_vocab], axis=1)


def decode_params(cfg: PriorConfig, params: Params) -> Params:
    """The params cached passes run fastest on, without a second copy of the weights: on a
    CPU the transformer one buffer per layer (`layout.per_layer`, views of the stacks: XLA on
    CPU copies a stacked layer's slice before each matmul, 3-4x slower); elsewhere the
    canonical params themselves (on an H100 the jitted step's static slices of the stacks cost
    nothing: 3.39 ms/token for 1b_lyrics against 3.85 with per-layer copies,
    benchmarks/RESULTS.md). The lyric encoder, run once per window, stays canonical."""
    if layout.layout_of(params["transformer"]) is layout.Layout.UNROLLED or cpu_device(params) is None:
        return params
    return {**params, "transformer": layout.per_layer(params["transformer"], cfg.transformer.pattern)}


def init_cache(cfg: PriorConfig, batch: int) -> dict[str, Cache]:
    """Zeros in every layer's KV-cache layout (`attention.py`), for `extend`."""
    return init_caches(LayerSpec(cfg.transformer, geometry(cfg), cfg.precision), batch)


@functools.partial(jax.jit, static_argnums=0, donate_argnums=3)
def fill_encoder_cache(cfg: PriorConfig, params: Params, ctx: Context, caches: dict[str, Cache]) -> dict[str, Cache]:
    """`caches` with the ENC_DEC layers' keys and values of `ctx.encoder_kv` (5b_lyrics);
    `caches` is donated (its untouched layers are reused, not copied)."""
    return Prior(cfg, Execution.UNROLLED).apply({"params": to_execution(cfg, params, Execution.UNROLLED)}, ctx, caches, method=Prior.encoder_caches)


def extend(
    cfg: PriorConfig, params: Params, inputs: jax.Array, t0: jax.Array, ctx: Context, caches: dict[str, Cache], step: bool = False
) -> tuple[jax.Array, dict[str, Cache]]:
    """`Prior.extend` on canonical or per-layer params (not jitted: callers jit around it)."""
    return Prior(cfg, Execution.UNROLLED).apply({"params": to_execution(cfg, params, Execution.UNROLLED)}, inputs, t0, ctx, caches, step, method=Prior.extend)
