"""Sampling one window of a prior: a chunked prefill of the prompt, then a jitted
`lax.fori_loop` of single-position steps over an explicit `SampleState` (`decode`, compiled
once for every step count; in calls of a few steps with `decode_chunks`). Params may be
canonical or `prior.decode_params` (one buffer per layer on a CPU, where it decodes 3-4 times
faster; the canonical stacks on an accelerator, where slicing them in the step is faster:
benchmarks/RESULTS.md).

Each sample has its own key (`row_keys`) and each step's draw `fold_in(that key, position)`,
so a sample's draws depend neither on how the work was split into calls (progress-bar
chunks, or a run resumed after an interruption) nor on the samples batched with it (the logits
do change by float rounding with the batch's size, which flips a near-tie draw now and then).

Under a mesh and logical axis rules (`sharding.use`), the state is made sharded (the token
buffer's batch over `data`, the caches' batch and heads as `attention.constrain` names them)
and every step keeps it so.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from typing import TypeVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jukebox_jax import checks, prior
from jukebox_jax.config import PriorConfig
from jukebox_jax.errors import InputError
from jukebox_jax.layers import Params
from jukebox_jax.prior import Context
from jukebox_jax.prior.attention import Cache, constrain
from jukebox_jax.sampling.methods import Method, check_is_method

Tree = TypeVar("Tree")  # a pytree of arrays

BROKEN = -1  # the token drawn from logits holding NaN or +inf (activations past float16's range): `Jukebox.sample` refuses it


@dataclasses.dataclass(frozen=True)
class SampleState:
    """`tokens [b, n_positions]` (the transformer's ids; positions >= `step` are not yet
    sampled), the KV `cache` of positions < `step`, `step` the next position (int32), and
    `key [b]`, each sample's key."""

    tokens: jax.Array
    cache: dict[str, Cache]
    step: jax.Array
    key: jax.Array


jax.tree_util.register_dataclass(SampleState, data_fields=["tokens", "cache", "step", "key"], meta_fields=[])


def broken_rows(logits: jax.Array) -> jax.Array:
    """`[b, v] -> [b]`: the rows holding a NaN or +inf logit, whose draw would be no draw (an
    argmax or inverse CDF over them gives an arbitrary token); -inf is a token ruled out, not broken."""
    return ~jnp.all(logits < jnp.inf, axis=-1)


def row_keys(key: jax.Array, batch: int) -> jax.Array:
    """One key per sample `[batch]`: `key` itself if it is already `batch` typed keys, else
    `fold_in(key, row)` for each row (so sample `row` draws the same whatever the batch size)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == (batch,):
        return key
    return jax.vmap(jax.random.fold_in, (None, 0))(key, np.arange(batch, dtype=np.uint32))


def _inputs(tokens: jax.Array, t0, length: int) -> jax.Array:
    """Ids fed at positions t0..t0+length-1: those of the positions before (any at 0)."""
    if length == 1:  # a decode step: no copy of the whole buffer
        return jax.lax.dynamic_slice_in_dim(tokens, jnp.maximum(t0 - 1, 0), 1, axis=1)
    return jax.lax.dynamic_slice_in_dim(jnp.pad(tokens, ((0, 0), (1, 0))), t0, length, axis=1)


@functools.partial(jax.jit, static_argnums=0)
def init_buffers(cfg: PriorConfig, prompt: jax.Array) -> tuple[jax.Array, dict[str, Cache]]:
    """The token buffer `[b, n_positions]` starting with `prompt [b, p]`, and zero caches,
    both named for sharding (made in place, on their devices, under a mesh). Compiled per
    prompt length: `prefill` passes the prompt padded to the window on the host."""
    b, p = prompt.shape
    tokens = jnp.zeros((b, cfg.n_positions), jnp.int32).at[:, :p].set(prompt)
    cache = {name: constrain(c) for name, c in prior.init_cache(cfg, b).items()}
    return nn.with_logical_constraint(tokens, ("batch", "length")), cache


@functools.partial(jax.jit, static_argnums=(0, 5, 7), donate_argnums=6)
def _extend(
    cfg: PriorConfig,
    params: Params,
    tokens: jax.Array,
    t0: jax.Array,
    ctx: Context,
    length: int,
    cache: dict[str, Cache],
    with_logits: bool,
) -> tuple[jax.Array | None, dict[str, Cache]]:
    """One prefill chunk -> `(its logits [b, length, bins] or None, cache)`; without logits the
    output head is not computed. `cache` is donated (updated in place: one cache in memory, not two)."""
    logits, cache = prior.extend(cfg, params, _inputs(tokens, t0, length), t0, ctx, cache)
    return (logits if with_logits else None), cache


def prefill(
    cfg: PriorConfig,
    params: Params,
    ctx: Context,
    prompt: jax.Array,
    key: jax.Array,
    chunk_size: int | None = None,
    return_logits: bool = False,
) -> tuple[SampleState, jax.Array | None]:
    """Fills the cache with `prompt [b, p]` (transformer ids) in chunks of `chunk_size` (any
    positive size; default one chunk) -> `(SampleState at step p, the prompt's logits
    [b, p, bins] if return_logits else None)` (sampling needs none: the first decode step
    computes position p's).
    The ENC_DEC layers' caches are filled from `ctx.encoder_kv` first, once. `key`: one key,
    or one per sample (`row_keys`); the state holds its own copy, so `decode` may donate it
    and the caller's key stays usable."""
    if chunk_size is not None:
        checks.integer("chunk_size", chunk_size, 1)
    prompt = _checked_prompt(cfg, ctx, prompt)
    b, p = prompt.shape
    tokens, cache = init_buffers(cfg, placed_like(params, _padded(prompt, cfg.n_positions)))  # made on the params' device
    if ctx.encoder_kv is not None:
        cache = prior.fill_encoder_cache(cfg, params, ctx, cache)
    ctx = dataclasses.replace(ctx, encoder_kv=None)  # read from the caches from here on
    logits = []
    for t0 in range(0, p, chunk_size or max(p, 1)):
        length = min(chunk_size or p, p - t0)
        chunk_logits, cache = _extend(cfg, params, tokens, np.int32(t0), ctx, length, cache, return_logits)  # host ints: no device-to-device copies
        logits.append(chunk_logits)
    if return_logits:
        logits = jnp.concatenate(logits, axis=1) if logits else jnp.zeros((b, 0, cfg.bins))
    state = SampleState(tokens, cache, jnp.int32(p), jnp.copy(row_keys(checks.key(key, b), b)))
    return placed_like(params, state), (logits if return_logits else None)


def _on_device_only(prompt: jax.Array | np.ndarray) -> bool:
    """Whether `prompt`'s values cannot be read on this host: traced, or spread over processes."""
    return isinstance(prompt, jax.core.Tracer) or (isinstance(prompt, jax.Array) and not prompt.is_fully_addressable)


def _checked_prompt(cfg: PriorConfig, ctx: Context, prompt: jax.Array) -> jax.Array | np.ndarray:
    """`prompt`, checked to be `[b, p]` transformer ids in `[0, cfg.bins)`, one row per row of
    `ctx`, that fit the window, as a host array (`_padded` fills its buffer from it: one read
    from the device); one whose values are on devices only is returned as it is, its shape
    checked alone."""
    b = ctx.start.shape[0]
    if _on_device_only(prompt):
        if prompt.ndim != 2 or prompt.shape[0] != b:
            raise InputError(f"prompt must be [{b}, p] (the batch of ctx), got shape {prompt.shape}")
        return prompt
    ids = checks.int_array("prompt", prompt, 2, f"[{b}, p] of transformer ids", empty_ok=True)
    if ids.shape[0] != b or ids.shape[1] > cfg.n_positions:
        raise InputError(f"prompt must be [{b}, p <= {cfg.n_positions}] (the batch of ctx; the window), got shape {ids.shape}")
    checks.in_range("prompt", ids, 0, cfg.bins, f"the level-{cfg.level} prior reads {cfg.bins} ids")
    return ids


def _padded(prompt: jax.Array | np.ndarray, n: int) -> jax.Array | np.ndarray:
    """`prompt [b, p]` as the first p ids of a zero buffer `[b, n]` made on the host, so that
    one `init_buffers` program serves every prompt length; a traced prompt, or one spread over
    processes, as it is."""
    if _on_device_only(prompt):
        return prompt
    buffer = np.zeros((prompt.shape[0], n), np.int32)
    buffer[:, : prompt.shape[1]] = np.asarray(prompt)
    return buffer


def placed_like(params: Params, tree: Tree) -> Tree:
    """`tree` committed to the device of `params` when they sit on one: freshly made arrays are
    not committed, and jit keys its programs by placement (each decode and prefill program
    compiled twice, for a first and a later call); arrays there already are not copied. Under
    a mesh, or traced, `tree` as it is."""
    leaf = jax.tree.leaves(params)[0]
    if isinstance(leaf, jax.core.Tracer) or not isinstance(getattr(leaf, "sharding", None), jax.sharding.SingleDeviceSharding):
        return tree
    return jax.device_put(tree, leaf.sharding)


def decode(
    cfg: PriorConfig, params: Params, ctx: Context, state: SampleState, method: Method, n_steps: int, return_logits: bool = False
) -> tuple[SampleState, jax.Array | None]:
    """Samples the next `n_steps` positions -> `(state, logits [b, n_steps, bins] or None)`.
    The cache is updated in place (`state` is donated: pass a state you own, as `prefill`
    and `decode` return). Without logits the step count is traced, and a method's temperature
    and `p` are (`methods`), so one compiled program serves every count and setting (windows
    of any length, a co-composer's requests)."""
    check_is_method(method)
    _check_steps(state, n_steps)
    if return_logits:
        return _decode_with_logits(cfg, params, ctx, state, method, n_steps)
    return _decode(cfg, params, ctx, state, method, jnp.int32(n_steps)), None


def _check_steps(state: SampleState, n_steps: int) -> None:
    """`state` is not one an earlier call consumed, and `n_steps` fit in the positions left
    after `state.step` (unchecked under a caller's jit, where the step is not known)."""
    if checks.donated(state):
        raise InputError(
            "this SampleState was consumed by an earlier decode (its arrays are donated to the next state); "
            "to decode one state twice, copy it first: jax.tree.map(jnp.copy, state)"
        )
    if isinstance(state.step, jax.core.Tracer):
        checks.integer("n_steps", n_steps, 0)
    else:
        step = int(state.step)
        checks.integer("n_steps", n_steps, 0, state.tokens.shape[1] - step, f" (the positions left in the window after step {step})")


def _step(cfg: PriorConfig, params: Params, ctx: Context, method: Method, state: SampleState) -> tuple[SampleState, jax.Array]:
    """One position: its logits `[b, 1, bins]` and the state with its token drawn."""
    t = state.step
    logits, cache = prior.extend(cfg, params, _inputs(state.tokens, t, 1), t, ctx, state.cache, step=True)
    keys = jax.vmap(jax.random.fold_in, (0, None))(state.key, t)  # [b]
    token = method.next_token(logits[:, 0], keys)  # [b]
    token = jnp.where(broken_rows(logits[:, 0]), BROKEN, token)
    tokens = jax.lax.dynamic_update_slice_in_dim(state.tokens, token[:, None], t, axis=1)
    return SampleState(tokens, cache, t + 1, state.key), logits


@functools.partial(jax.jit, static_argnums=0, donate_argnums=(3,))
def _decode(cfg: PriorConfig, params: Params, ctx: Context, state: SampleState, method: Method, n_steps: jax.Array) -> SampleState:
    ctx = dataclasses.replace(ctx, encoder_kv=None)  # enc-dec layers read their filled cache
    return jax.lax.fori_loop(0, n_steps, lambda _, s: _step(cfg, params, ctx, method, s)[0], state)


@functools.partial(jax.jit, static_argnums=(0, 5), donate_argnums=(3,))
def _decode_with_logits(
    cfg: PriorConfig, params: Params, ctx: Context, state: SampleState, method: Method, n_steps: int
) -> tuple[SampleState, jax.Array]:
    ctx = dataclasses.replace(ctx, encoder_kv=None)

    def body(i, carry):
        state, all_logits = carry
        state, logits = _step(cfg, params, ctx, method, state)
        return state, jax.lax.dynamic_update_slice_in_dim(all_logits, logits.astype(all_logits.dtype), i, axis=1)

    return jax.lax.fori_loop(0, n_steps, body, (state, jnp.zeros((state.tokens.shape[0], n_steps, cfg.bins))))


def decode_chunks(
    cfg: PriorConfig, params: Params, ctx: Context, state: SampleState, method: Method, n_steps: int, steps_per_call: int
) -> Iterator[SampleState]:
    """`decode` in calls of `steps_per_call` steps (the last may be shorter), yielding the
    state after each, so a host progress bar can advance during a long window. The tokens
    equal one `decode(..., n_steps)` call's. Each yielded state is consumed by the next call:
    copy what you keep of it (`jnp.copy(state.tokens)`)."""
    checks.integer("steps_per_call", steps_per_call, 1)
    check_is_method(method)
    _check_steps(state, n_steps)  # once, before the first call donates the state
    for done in range(0, n_steps, steps_per_call):
        state = _decode(cfg, params, ctx, state, method, jnp.int32(min(steps_per_call, n_steps - done)))
        yield state
