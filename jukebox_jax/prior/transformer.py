"""The prior's transformer: pre-LN blocks `h = x + a + m`, `a = attn(ln_0(x))`,
`m = mlp(ln_1(x + a))`, with no final LayerNorm (original `transformer/transformer.py`).

Layers are stacked to compile quickly: the attention pattern is cut into segments, each a
short unit of layers repeated `r` times (e.g. [BLOCK, TRANSPOSE, PREV] x 24 for the 72-layer
priors), whose params carry a leading `layers` axis of length `r`. A segment runs as a
`lax.scan` over its repeats, or unrolled (same params) when asked or when one of its layers'
activations must be captured.

Decoding wants the other layout: `unstack_layers` turns each segment into a tuple of its `r`
repeats, one buffer per layer (XLA on CPU copies a stacked slice before every matmul, which
triples a decode step's weight traffic; benchmarks/RESULTS.md). `apply_transformer` runs such
a segment unrolled, and its KV cache (`init_cache(..., stacked=False)`) is per layer too, so
a step writes one entry in place.

Axis names on weights: embed (model width), heads, kv (head width), qkv (the 3 projections),
mlp, layers (stacked repeats). Param tree: `segment_{s}/layer_{j}/{ln_0, attn, ln_1, mlp}`.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jukebox_jax.config import AttnKind, TransformerConfig
from jukebox_jax.layers import layer_norm, normal, zeros
from jukebox_jax.prior import attention

Segment = tuple[tuple[AttnKind, ...], int]  # (unit of layer kinds, repeats)


def layer_groups(pattern: tuple[AttnKind, ...]) -> tuple[Segment, ...]:
    """Cuts `pattern` into consecutive (unit, repeats) segments covering it exactly, with the
    fewest distinct layers to compile (the sum of unit lengths), then the fewest segments."""
    n = len(pattern)
    best: list[tuple[int, int, tuple[Segment, ...]]] = [(0, 0, ())] * (n + 1)
    for i in range(n - 1, -1, -1):
        options = []
        for u in range(1, n - i + 1):
            unit = pattern[i : i + u]
            r = 1
            while pattern[i + r * u : i + (r + 1) * u] == unit:
                r += 1
            for reps in range(1, r + 1):
                cost, count, rest = best[i + u * reps]
                options.append((cost + u, count + 1, ((unit, reps), *rest)))
        best[i] = min(options, key=lambda o: o[:2])
    return best[0][2]


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """What one layer needs beyond its kind: sizes and the sequence geometry."""

    config: TransformerConfig
    block_ctx: int | None  # positions per block
    prime_len: int | None = None  # keys a PRIME layer may see
    n_positions: int | None = None  # the window (needed by cached attention only)


def _project(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`x [..., w] @ kernel [w, *out]` -> `[..., *out]`, the kernel seen as 2-D (a free
    reshape; an einsum over the split axes makes XLA transpose-copy the weights every step)."""
    return (x @ kernel.reshape(kernel.shape[0], -1)).reshape(*x.shape[:-1], *kernel.shape[1:])


class Attention(nn.Module):
    """Projections around one attention kind (original `FactoredAttention`).

    Full pass: `cache=None`. Cached pass (`cache` of this layer, chunk at positions
    `t0..`): returns the updated cache; ENC_DEC layers fill theirs from `encoder_kv` when
    it is given (the first chunk) and read it otherwise."""

    kind: AttnKind
    spec: LayerSpec

    @nn.compact
    def __call__(self, x: jax.Array, encoder_kv: jax.Array | None, cache=None, t0=None):
        cfg, spec = self.spec.config, self.spec
        w, h = cfg.width, cfg.heads
        d = cfg.attn_width // h
        std = 0.02 * cfg.init_scale
        probs = None
        if self.kind is AttnKind.ENC_DEC:  # queries from x, keys and values from the encoder
            q = _project(x, self.param("c_attn_kernel", normal(std, ("embed", "heads", "kv")), (w, h, d)))
            q = q + self.param("c_attn_bias", zeros(("heads", "kv")), (h, d))
            kv_kernel = self.param("c_enc_kv_kernel", normal(std, ("embed", None, "heads", "kv")), (w, 2, h, d))
            kv_bias = self.param("c_enc_kv_bias", zeros((None, "heads", "kv")), (2, h, d))
            if encoder_kv is not None:
                kv = _project(encoder_kv, kv_kernel) + kv_bias
                k, v = kv[:, :, 0], kv[:, :, 1]
                cache = None if cache is None else {"k": attention.to_cache(k), "v": attention.to_cache(v)}
            if cache is None:
                out, probs = attention.enc_dec(q, k, v)
            else:
                out = attention.attend_cache(q, cache["k"], cache["v"], None)
        else:
            qkv = _project(x, self.param("c_attn_kernel", normal(std, ("embed", "qkv", "heads", "kv")), (w, 3, h, d)))
            qkv = qkv + self.param("c_attn_bias", zeros(("qkv", "heads", "kv")), (3, h, d))
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
            geometry = dict(block_ctx=spec.block_ctx, spread=cfg.spread, prime_len=spec.prime_len)
            if cache is None:
                out, probs = attention.self_attention(self.kind, q, k, v, **geometry)
            else:
                out, cache = attention.cached_self_attention(self.kind, q, k, v, cache, t0, n_positions=spec.n_positions, **geometry)
        proj_init = zeros(("heads", "kv", "embed")) if cfg.zero_out or self.kind is AttnKind.ENC_DEC else normal(std, ("heads", "kv", "embed"))
        a = out.reshape(*out.shape[:2], h * d) @ self.param("c_proj_kernel", proj_init, (h, d, w)).reshape(h * d, w)
        return a + self.param("c_proj_bias", zeros(("embed",)), (w,)), probs, cache


class MLP(nn.Module):
    config: TransformerConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, w] -> [b, t, w]
        cfg = self.config
        std = 0.02 * cfg.init_scale
        m = x @ self.param("c_fc_kernel", normal(std, ("embed", "mlp")), (cfg.width, cfg.mlp_width))
        m = m + self.param("c_fc_bias", zeros(("mlp",)), (cfg.mlp_width,))
        m = m * jax.nn.sigmoid(1.702 * m)  # quick_gelu
        out_init = zeros(("mlp", "embed")) if cfg.zero_out else normal(std, ("mlp", "embed"))
        return m @ self.param("c_proj_kernel", out_init, (cfg.mlp_width, cfg.width)) + self.param("c_proj_bias", zeros(("embed",)), (cfg.width,))


class Block(nn.Module):
    kind: AttnKind
    spec: LayerSpec

    @nn.compact
    def __call__(self, x: jax.Array, encoder_kv: jax.Array | None, cache=None, t0=None):
        """`x [b, t, w]` -> `(x [b, t, w], attention probs (full pass), cache (cached pass))`."""
        a, probs, cache = Attention(self.kind, self.spec, name="attn")(layer_norm("ln_0")(x).astype(x.dtype), encoder_kv, cache, t0)
        m = MLP(self.spec.config, name="mlp")(layer_norm("ln_1")(x + a).astype(x.dtype))
        cfg = self.spec.config
        return (x + (1.0 / cfg.depth) * (a + m) if cfg.res_scale else x + a + m), probs, cache


class Unit(nn.Module):
    """One repeat of a segment: consecutive blocks `layer_{j}`. Returns the activations and
    attention probs of the positions in `capture` (static)."""

    kinds: tuple[AttnKind, ...]
    spec: LayerSpec

    @nn.compact
    def __call__(self, x: jax.Array, encoder_kv: jax.Array | None, capture: tuple[int, ...] = (), cache=None, t0=None):
        captured, new_cache = [], None if cache is None else {}
        for j, kind in enumerate(self.kinds):
            name = f"layer_{j}"
            x, probs, layer_cache = Block(kind, self.spec, name=name)(x, encoder_kv, None if cache is None else cache[name], t0)
            if cache is not None:
                new_cache[name] = layer_cache
            if j in capture:
                captured.append((x, probs))
        return x, captured, new_cache


@dataclasses.dataclass(frozen=True)
class Captured:
    """Per captured layer index: the residual stream after that layer `[b, t, w]` and its
    attention probs (layout of its kind, see `attention`)."""

    activations: dict[int, jax.Array]
    attn_probs: dict[int, jax.Array]


jax.tree_util.register_dataclass(Captured, data_fields=["activations", "attn_probs"], meta_fields=[])


def init_transformer(key: jax.Array, spec: LayerSpec, encoder_width: int | None = None):
    """Params `{segment_s: {layer_j: ...}}` with a leading `layers` axis per segment (boxed
    with logical axis names)."""
    cfg = spec.config
    t = spec.block_ctx or 1
    x = jnp.zeros((1, t, cfg.width), jnp.float32)
    enc = None if encoder_width is None else jnp.zeros((1, 1, encoder_width), jnp.float32)
    params = {}
    for s, (unit, reps) in enumerate(layer_groups(cfg.pattern)):
        init_one = lambda k, unit=unit: Unit(unit, spec, parent=None).init(k, x, enc if AttnKind.ENC_DEC in unit else None)["params"]
        stacked = jax.vmap(init_one)(jax.random.split(jax.random.fold_in(key, s), reps))
        params[f"segment_{s}"] = jax.tree.map(
            lambda b: b.replace(names=("layers", *b.names)), stacked, is_leaf=lambda b: isinstance(b, nn.LogicallyPartitioned)
        )
    return params


def unstack_layers(tree):
    """Params or caches `{segment_s: stacked tree}` -> `{segment_s: (tree of repeat 0, ...)}`:
    one buffer per layer (the decode layout). Stacked trees are what `init_transformer`,
    checkpoints and training use."""
    return {name: _unstack(seg) for name, seg in tree.items()}


def _unstack(seg) -> tuple:
    if isinstance(seg, tuple):
        return seg
    reps = jax.tree.leaves(seg)[0].shape[0]
    return tuple(jax.tree.map(lambda a, r=r: a[r], seg) for r in range(reps))


def apply_transformer(
    params,
    x: jax.Array,
    encoder_kv: jax.Array | None,
    spec: LayerSpec,
    *,
    unroll: bool = False,
    capture: frozenset[int] = frozenset(),
    cache=None,
    t0: jax.Array | None = None,
):
    """Full pass: `x [b, t, w]` (any `t` up to the window) -> `(x, Captured, None)`.
    Cached pass: `x` holds positions `t0..t0+t-1`; `cache` (see `init_cache`, in the params'
    layout) holds the earlier ones -> `(x, Captured, updated cache)`. `params` may be stacked
    or per layer (`unstack_layers`)."""
    activations, attn_probs = {}, {}
    new_cache = None if cache is None else {}
    first = 0
    for s, (unit, reps) in enumerate(layer_groups(spec.config.pattern)):
        name = f"segment_{s}"
        seg, seg_cache = params[name], None if cache is None else cache[name]
        module = Unit(unit, spec, parent=None)  # a free-standing module, applied per repeat
        enc = encoder_kv if AttnKind.ENC_DEC in unit else None
        layers = range(first, first + len(unit) * reps)
        if isinstance(seg, tuple) or unroll or capture.intersection(layers):
            caches = []
            for r, (p, c) in enumerate(zip(_unstack(seg), [None] * reps if cache is None else _unstack(seg_cache))):
                base = first + r * len(unit)
                wanted = tuple(j for j in range(len(unit)) if base + j in capture)
                x, captured, c = module.apply({"params": p}, x, enc, wanted, c, t0)
                caches.append(c)
                for j, (act, probs) in zip(wanted, captured):
                    activations[base + j], attn_probs[base + j] = act, probs
            if cache is not None:
                new_cache[name] = tuple(caches) if isinstance(seg_cache, tuple) else jax.tree.map(lambda *a: jnp.stack(a), *caches)
        else:
            def step(x, p_c, module=module, enc=enc):
                x, _, c = module.apply({"params": p_c[0]}, x, enc, (), p_c[1], t0)
                return x, c

            x, c = jax.lax.scan(step, x, (seg, seg_cache))
            if cache is not None:
                new_cache[name] = c
        first = layers.stop
    return x, Captured(activations, attn_probs), new_cache


def init_cache(spec: LayerSpec, batch: int, n_tokens: int = 0, dtype=jnp.float32, stacked: bool = True):
    """Zeros in the cache layout of every layer (see `attention.cache_shape`):
    `{segment_s: {layer_j: {"k", "v"}}}` with the segments' leading repeats axis, or with
    `stacked=False` `{segment_s: ({layer_j: ...} per repeat)}` (for per-layer params)."""
    cfg = spec.config
    h, d = cfg.heads, cfg.attn_width // cfg.heads
    cache = {}
    for s, (unit, reps) in enumerate(layer_groups(cfg.pattern)):
        shapes = {
            f"layer_{j}": (batch * h, *attention.cache_shape(kind, n_positions=spec.n_positions, block_ctx=spec.block_ctx, prime_len=spec.prime_len, n_tokens=n_tokens), d)
            for j, kind in enumerate(unit)
        }
        zeros = lambda lead: {name: {"k": jnp.zeros((*lead, *shape), dtype), "v": jnp.zeros((*lead, *shape), dtype)} for name, shape in shapes.items()}
        cache[f"segment_{s}"] = zeros((reps,)) if stacked else tuple(zeros(()) for _ in range(reps))
    return cache
