"""The prior's transformer: pre-LN blocks `h = x + a + m`, `a = attn(ln_0(x))`,
`m = mlp(ln_1(x + a))`, with no final LayerNorm (original `transformer/transformer.py`).

One Flax module, `Transformer`, in two execution forms over the same weights:
- `Execution.SCAN`: the attention pattern cut into segments, each a short unit of layers
  repeated `r` times (`layer_groups`; e.g. [BLOCK, TRANSPOSE, PREV] x 24 for the 72-layer
  priors), run with `nn.scan` (optionally under `nn.remat`): few layers to compile.
- `Execution.UNROLLED`: one submodule per layer. Same numbers; what cached passes (prefill,
  decode) and captures use; on a CPU decode is fastest with one buffer per layer
  (`prior.decode_params`), on a GPU with the canonical stacks sliced per layer.
The weights are stored in neither form but in the canonical layout of `prior/layout.py`;
`layout.to_execution` / `layout.to_canonical` convert (inside jit, or zero-copy on CPU).

Execution param trees: SCAN `segments_{s}/layers_{j}/...` (leading axis: the segment's
repeats), UNROLLED `layers_{d}/...` (d the original layer index); each layer
`{ln_0, attn, ln_1, mlp}`. KV caches (cached passes): `{layers_{d}: {"k", "v"}}`, see
`attention.py`.

Axis names on weights: embed (model width), heads, kv (head width), qkv (the 3 projections),
mlp (MLP width), layers (stacked layers). Activations: batch, length, embed.

Projection matrices (`c_attn`, `c_enc_kv`, `c_proj`, `c_fc`) are `{name}_kernel` in
`Precision.params`, or with `Precision.weights` INT8 an int8 `{name}_kernel` plus a float32
`{name}_scale` over its output axes (e.g. `c_fc_kernel [embed, mlp]`, `c_fc_scale [mlp]`;
`quantize.py` makes them from float weights).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jukebox_jax.config import AttnKind, Precision, TransformerConfig, WeightFormat
from jukebox_jax.layers import _TRUNCATED_STD, Init, InitKind, initializer, layer_norm, normal, zeros
from jukebox_jax.prior import attention
from jukebox_jax.prior.attention import Cache, Geometry

Segment = tuple[tuple[AttnKind, ...], int]  # (unit of layer kinds, repeats)


class Execution(enum.Enum):
    SCAN = "scan"
    UNROLLED = "unrolled"


class Remat(enum.Enum):
    """What a scanned unit keeps for the backward pass (`nn.remat` policies)."""

    NONE = "none"  # keep everything (no recomputation)
    FULL = "full"  # keep only the unit's input: recompute the unit (the original's `checkpoint_res`)
    DOTS = "dots"  # keep matmul outputs without batch dims, recompute the rest

    def policy(self) -> Callable | None:
        return {Remat.FULL: None, Remat.DOTS: jax.checkpoint_policies.dots_with_no_batch_dims_saveable}.get(self)


def layer_groups(pattern: tuple[AttnKind, ...]) -> tuple[Segment, ...]:
    """Cuts `pattern` into consecutive (unit, repeats) segments covering it exactly, with the
    fewest distinct layers to compile (the sum of unit lengths), then the fewest segments.
    The SCAN execution form depends on it, and so does reading format-1 checkpoints, whose
    layer stacks were cut by it (`checkpoint._from_v1`): changing it breaks loading those."""
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


def _matmul(x: jax.Array, kernel: jax.Array, scale: jax.Array | None, precision: Precision) -> jax.Array:
    """`x [..., w] @ kernel [w, *out]` -> `[..., *out]` in the compute dtype, the kernel seen
    as 2-D (a free reshape; an einsum over the split axes makes XLA transpose-copy the
    weights every step). An int8 kernel is converted to the compute dtype inside the matmul
    and its float32 `scale [*out]` multiplies the output, accumulated in float32 (the raw
    int8 products are ~1/scale times the true ones: past float16's range)."""
    k2 = kernel.reshape(kernel.shape[0], -1).astype(precision.compute.jnp)
    x = x.astype(precision.compute.jnp)
    if scale is None:
        out = jnp.matmul(x, k2, precision=precision.matmul.lax)
    else:
        out = jnp.matmul(x, k2, precision=precision.matmul.lax, preferred_element_type=jnp.float32)
        out = (out * scale.reshape(-1)).astype(x.dtype)
    return out.reshape(*x.shape[:-1], *kernel.shape[1:])


# A random int8 kernel: N(0, 1) truncated to [-2, 2] times 63.5 fills [-127, 127]; its scale
# makes the weights' standard deviation the float init's `std` (`quantize.py` makes real ones).
_INT8_DRAW = Init(InitKind.TRUNCATED_NORMAL, 127 / 2)
_INT8_DRAW_STD = 127 / 2 * _TRUNCATED_STD


def _projection(module: nn.Module, name: str, shape: tuple[int, ...], names: tuple[str, ...], n_in: int, std: float, precision: Precision):
    """Declares the projection matrix `{name}_kernel [*in, *out]` (the first `n_in` axes are
    contracted), normal(`std`) or zeros (`std` 0) in `precision.params` -> `(kernel, None)`;
    with INT8 weights, an int8 kernel and its float32 per-output-channel `{name}_scale [*out]`
    (axes `names[n_in:]`) -> `(kernel, scale)`."""
    if precision.weights is WeightFormat.FLOAT:
        init = normal(std, names) if std else zeros(names)
        return module.param(f"{name}_kernel", init, shape, precision.params.jnp), None
    kernel = module.param(f"{name}_kernel", initializer(_INT8_DRAW if std else Init(InitKind.ZEROS), names), shape, jnp.int8)
    scale_init = initializer(Init(InitKind.ONES, std / _INT8_DRAW_STD), names[n_in:])
    return kernel, module.param(f"{name}_scale", scale_init, shape[n_in:], jnp.float32)


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """What every layer of one stack shares: sizes, geometry, precision, training mode."""

    config: TransformerConfig
    geometry: Geometry
    precision: Precision = Precision()
    deterministic: bool = True  # False: dropout on (needs a "dropout" rng)

    @property
    def std(self) -> float:
        return 0.02 * self.config.init_scale

    @property
    def head_width(self) -> int:
        return self.config.attn_width // self.config.heads


class Attention(nn.Module):
    """Projections around one attention kind (original `FactoredAttention`)."""

    kind: AttnKind
    spec: LayerSpec

    def setup(self):
        s, cfg = self.spec, self.spec.config
        w, h, d, dtype = cfg.width, cfg.heads, s.head_width, s.precision.params.jnp
        self.attn = attention.attention(self.kind, s.geometry)
        proj = lambda name, shape, names, n_in, std: _projection(self, name, shape, names, n_in, std, s.precision)
        if self.kind is AttnKind.ENC_DEC:  # queries from x, keys and values from the encoder
            self.c_attn = proj("c_attn", (w, h, d), ("embed", "heads", "kv"), 1, s.std)
            self.c_attn_bias = self.param("c_attn_bias", zeros(("heads", "kv")), (h, d), dtype)
            self.c_enc_kv = proj("c_enc_kv", (w, 2, h, d), ("embed", "qkv", "heads", "kv"), 1, s.std)
            self.c_enc_kv_bias = self.param("c_enc_kv_bias", zeros(("qkv", "heads", "kv")), (2, h, d), dtype)
        else:
            self.c_attn = proj("c_attn", (w, 3, h, d), ("embed", "qkv", "heads", "kv"), 1, s.std)
            self.c_attn_bias = self.param("c_attn_bias", zeros(("qkv", "heads", "kv")), (3, h, d), dtype)
        zero_proj = cfg.zero_out or self.kind is AttnKind.ENC_DEC
        self.c_proj = proj("c_proj", (h, d, w), ("heads", "kv", "embed"), 2, 0.0 if zero_proj else s.std)
        self.c_proj_bias = self.param("c_proj_bias", zeros(("embed",)), (w,), dtype)
        self.attn_dropout = nn.Dropout(cfg.attn_dropout, deterministic=s.deterministic)
        self.resid_dropout = nn.Dropout(cfg.resid_dropout, deterministic=s.deterministic)

    def _qkv(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:  # [b, t, w] -> 3 x [b, t, h, d]
        qkv = _matmul(x, *self.c_attn, self.spec.precision) + self.c_attn_bias.astype(x.dtype)
        return qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]

    def _encoder_kv(self, encoder_kv: jax.Array) -> tuple[jax.Array, jax.Array]:  # [b, s, w] -> 2 x [b, s, h, d]
        kv = _matmul(encoder_kv, *self.c_enc_kv, self.spec.precision) + self.c_enc_kv_bias.astype(self.spec.precision.compute.jnp)
        return kv[:, :, 0], kv[:, :, 1]

    def _out(self, out: jax.Array) -> jax.Array:  # [b, t, h, d] -> [b, t, w]
        kernel, scale = self.c_proj
        a = _matmul(out.reshape(*out.shape[:2], -1), kernel.reshape(-1, kernel.shape[-1]), scale, self.spec.precision)
        return self.resid_dropout(a + self.c_proj_bias.astype(a.dtype))

    def _queries(self, x: jax.Array) -> jax.Array:  # ENC_DEC: [b, t, w] -> [b, t, h, d]
        return _matmul(x, *self.c_attn, self.spec.precision) + self.c_attn_bias.astype(self.spec.precision.compute.jnp)

    def __call__(self, x: jax.Array, encoder_kv: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        """Full pass: `x [b, t, w]`, `encoder_kv [b, s, w]` (ENC_DEC) -> `(out [b, t, w], probs)`."""
        dropout = None if self.spec.deterministic or not self.spec.config.attn_dropout else self.attn_dropout
        if self.kind is AttnKind.ENC_DEC:
            out, probs = self.attn.full(self._queries(x), *self._encoder_kv(encoder_kv), dropout)
        else:
            out, probs = attention.self_attention(self.kind, *self._qkv(x), self.attn.geometry, dropout)
        return self._out(out), probs

    def extend(self, x: jax.Array, cache: Cache, t0: jax.Array, step: bool) -> tuple[Cache, jax.Array]:
        """Cached pass over positions `t0..` (`step`: exactly one) -> `(new cache, out [b, L, w])`."""
        if self.kind is AttnKind.ENC_DEC:
            cache, out = self.attn.extend(self._queries(x), cache)
        else:
            cache, out = (self.attn.step if step else self.attn.extend)(*self._qkv(x), cache, t0)
        return cache, self._out(out)

    def encoder_cache(self, encoder_kv: jax.Array) -> Cache:
        """ENC_DEC: the cache of the encoder's keys and values, computed once per window."""
        return self.attn.fill(*self._encoder_kv(encoder_kv), self.spec.precision.cache.jnp)


class MLP(nn.Module):
    spec: LayerSpec

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, w] -> [b, t, w]
        s, cfg = self.spec, self.spec.config
        dtype = s.precision.params.jnp
        m = _matmul(x, *_projection(self, "c_fc", (cfg.width, cfg.mlp_width), ("embed", "mlp"), 1, s.std, s.precision), s.precision)
        m = m + self.param("c_fc_bias", zeros(("mlp",)), (cfg.mlp_width,), dtype).astype(m.dtype)
        m = m * jax.nn.sigmoid(1.702 * m)  # quick_gelu
        out_std = 0.0 if cfg.zero_out else s.std
        m = _matmul(m, *_projection(self, "c_proj", (cfg.mlp_width, cfg.width), ("mlp", "embed"), 1, out_std, s.precision), s.precision)
        m = m + self.param("c_proj_bias", zeros(("embed",)), (cfg.width,), dtype).astype(m.dtype)
        return nn.Dropout(cfg.resid_dropout, deterministic=s.deterministic)(m)


def _residual(x: jax.Array) -> jax.Array:
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class Layer(nn.Module):
    """One pre-LN block (original `ResAttnBlock`)."""

    kind: AttnKind
    spec: LayerSpec

    def setup(self):
        self.ln_0 = layer_norm()  # float32 scale and bias (tiny), float32 statistics
        self.attn = Attention(self.kind, self.spec)
        self.ln_1 = layer_norm()
        self.mlp = MLP(self.spec)

    def _finish(self, x: jax.Array, a: jax.Array) -> jax.Array:
        compute = self.spec.precision.compute.jnp
        m = self.mlp(self.ln_1(x + a).astype(compute))
        cfg = self.spec.config
        return _residual(x + (1.0 / cfg.depth) * (a + m) if cfg.res_scale else x + a + m)

    def __call__(self, x: jax.Array, encoder_kv: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        """Full pass `x [b, t, w]` -> `(x [b, t, w], attention probs)`."""
        a, probs = self.attn(self.ln_0(x).astype(self.spec.precision.compute.jnp), encoder_kv)
        return self._finish(x, a), probs

    def extend(self, x: jax.Array, cache: Cache, t0: jax.Array, step: bool) -> tuple[jax.Array, Cache]:
        cache, a = self.attn.extend(self.ln_0(x).astype(self.spec.precision.compute.jnp), cache, t0, step)
        return self._finish(x, a), cache

    def encoder_cache(self, encoder_kv: jax.Array) -> Cache:
        return self.attn.encoder_cache(encoder_kv)


class Unit(nn.Module):
    """One repeat of a scanned segment: consecutive layers of `kinds` (the scan body)."""

    kinds: tuple[AttnKind, ...]
    spec: LayerSpec

    @nn.compact
    def __call__(self, x: jax.Array, encoder_kv: jax.Array | None) -> tuple[jax.Array, None]:
        for j, kind in enumerate(self.kinds):
            x, _ = Layer(kind, self.spec, name=f"layers_{j}")(x, encoder_kv)
        return x, None


@dataclasses.dataclass(frozen=True)
class Captured:
    """Per captured layer index: the residual stream after that layer `[b, t, w]` and its
    attention probs (layout of its kind, see `attention`)."""

    activations: dict[int, jax.Array]
    attn_probs: dict[int, jax.Array]


jax.tree_util.register_dataclass(Captured, data_fields=["activations", "attn_probs"], meta_fields=[])


class Transformer(nn.Module):
    """The stack. `__call__` is the full pass (either execution form); `extend` a cached pass
    and `encoder_caches` the ENC_DEC layers' caches (UNROLLED only)."""

    spec: LayerSpec
    execution: Execution = Execution.UNROLLED
    remat: Remat = Remat.NONE

    def setup(self):
        s = self.spec
        pattern = s.config.pattern
        if self.execution is Execution.UNROLLED:
            self.layers = [Layer(kind, s) for kind in pattern]
            return
        unit_cls = Unit if self.remat is Remat.NONE else nn.remat(Unit, policy=self.remat.policy(), prevent_cse=False)
        self.segments = [
            nn.scan(
                unit_cls,
                variable_axes={"params": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=nn.broadcast,
                length=reps,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )(unit, s)
            for unit, reps in layer_groups(pattern)
        ]

    def __call__(self, x: jax.Array, encoder_kv: jax.Array | None = None, capture: frozenset[int] = frozenset()) -> tuple[jax.Array, Captured]:
        """Full pass `x [b, t, w]` (any `t` up to the window), `encoder_kv [b, s, w]` (stacks
        with ENC_DEC layers) -> `(x [b, t, w], Captured)`. Capturing needs UNROLLED."""
        x = _residual(x.astype(self.spec.precision.compute.jnp))
        activations, probs = {}, {}
        if self.execution is Execution.SCAN:
            if capture:
                raise ValueError("capturing layers needs the UNROLLED execution form")
            for segment in self.segments:
                x, _ = segment(x, encoder_kv)
            return x, Captured(activations, probs)
        for d, layer in enumerate(self.layers):
            x, p = layer(x, encoder_kv)
            if d in capture:
                activations[d], probs[d] = x, p
        return x, Captured(activations, probs)

    def extend(self, x: jax.Array, caches: dict[str, Cache], t0: jax.Array, step: bool = False) -> tuple[jax.Array, dict[str, Cache]]:
        """Positions `t0..t0+L-1` (`x [b, L, w]`) against `caches` of the earlier ones ->
        `(x [b, L, w], updated caches)`. `step`: L is 1 and a decode step is wanted."""
        x = x.astype(self.spec.precision.compute.jnp)
        new = {}
        for d, layer in enumerate(self.layers):
            x, new[f"layers_{d}"] = layer.extend(x, caches[f"layers_{d}"], t0, step)
        return x, new

    def encoder_caches(self, encoder_kv: jax.Array, caches: dict[str, Cache]) -> dict[str, Cache]:
        """`caches` with every ENC_DEC layer's filled from the encoder states `[b, s, w]`."""
        new = dict(caches)
        for d, (kind, layer) in enumerate(zip(self.spec.config.pattern, self.layers)):
            if kind is AttnKind.ENC_DEC:
                new[f"layers_{d}"] = layer.encoder_cache(encoder_kv)
        return new


def init_caches(spec: LayerSpec, batch: int) -> dict[str, Cache]:
    """Zeros in every layer's cache layout (`attention.init_cache`), for `Transformer.extend`."""
    cfg = spec.config
    return {
        f"layers_{d}": attention.init_cache(kind, spec.geometry, batch, cfg.heads, spec.head_width, spec.precision.cache.jnp)
        for d, kind in enumerate(cfg.pattern)
    }
