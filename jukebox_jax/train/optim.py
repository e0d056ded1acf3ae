"""The original's optimizer (`train.py` with `fp16=False`, `utils/fp16.py`, `utils/ema.py`):
its learning-rate schedule, its Adam (`FusedAdam`'s pure-PyTorch `adam_step`) with global-norm
clipping and step skipping, and an optional EMA of the weights, as one optax transformation.

Per step, with `g` the gradients of the trainable leaves and `t` the steps taken so far + 1:

    gn = ||g||_2 (all trainable leaves together);  skip the step if 0 < ignore_grad_norm < gn
    g = g / max(1, gn / clip);  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    step_size = lr(t - 1) * sqrt(1 - b2^t) / (1 - b1^t)
    p = p - step_size * (m / (sqrt(v) + eps) + weight_decay * p)

This is not `optax.adamw`: eps is added to the square root of the uncorrected `v` (the bias
corrections are folded into `step_size`), and the decay is scaled by `step_size` (so by the bias
correction too) where AdamW scales it by the learning rate alone. A skipped step changes
nothing: no moment, no schedule step, no EMA step (the original `continue`s before all three).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from numbers import Real
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jukebox_jax.errors import ConfigError

_FLOAT32_MAX = float(jnp.finfo(jnp.float32).max)

Params = Any  # a pytree of float arrays
Trainable = Params | Callable[[Params], Params] | None  # a pytree of Python bools over the params


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """The original's optimizer hps (`hparams.py` "opt" and "ema"), its defaults.

    `weight_decay` defaults to the original's 0.0; the training commands of its README pass
    0.01. `lr_warmup` 0 means no warmup (the original would divide by zero). `ema_mu`: decay of
    the EMA of the weights, None for no EMA; the original keeps one with
    `mu = original_ema_mu(global_batch)` unless `hps.mu` is given."""

    lr: float = 3e-4
    lr_warmup: float = 100.0
    lr_decay: float = 1e10
    lr_gamma: float = 1.0
    lr_scale: float = 1.0
    lr_use_linear_decay: bool = False
    lr_start_linear_decay: int = 0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip: float = 1.0  # max global gradient norm
    ignore_grad_norm: float = 0.0  # skip steps whose gradient norm exceeds this (0: never)
    ema_mu: float | None = None

    def __post_init__(self):
        for field in dataclasses.fields(self):  # a string failed as a TypeError in the comparisons below
            name, value = field.name, getattr(self, field.name)
            if name == "lr_use_linear_decay":
                if not isinstance(value, bool):
                    raise ConfigError(f"OptimConfig.{name}={value!r}: not a bool")
            elif not (isinstance(value, Real) and not isinstance(value, bool)) and not (name == "ema_mu" and value is None):
                raise ConfigError(f"OptimConfig.{name}={value!r}: not a number")
        checks = [
            ("lr", 0 <= self.lr <= _FLOAT32_MAX, f"a learning rate in [0, {_FLOAT32_MAX:.3g}] (it is float32)"),
            ("lr_scale", 0 <= self.lr_scale and self.lr * self.lr_scale <= _FLOAT32_MAX, "a factor >= 0 of lr, with lr x lr_scale float32's"),
            ("lr_gamma", 0 < self.lr_gamma <= 1, "in (0, 1] (the learning rate's factor every lr_decay steps; 1: no decay)"),
            ("lr_start_linear_decay", self.lr_start_linear_decay >= 0, "a step >= 0"),
            ("lr_warmup", 0 <= self.lr_warmup <= _FLOAT32_MAX, "a number of steps >= 0 (0: no warmup), float32's"),
            ("lr_decay", 0 < self.lr_decay <= _FLOAT32_MAX, "a number of steps > 0 (1e10: no decay), float32's"),
            ("beta1", 0 <= self.beta1 < 1, "in [0, 1)"),
            ("beta2", 0 <= self.beta2 < 1, "in [0, 1)"),
            ("eps", 0 < self.eps <= _FLOAT32_MAX, "> 0 and finite"),
            (
                "weight_decay",
                self.weight_decay >= 0 and self.weight_decay * self.lr * self.lr_scale < 1,
                (
                    f">= 0 with lr x weight_decay < 1 (lr {self.lr * self.lr_scale:g}; a step scales every weight"
                    " by 1 - lr x weight_decay)"
                ),
            ),
            ("clip", 0 < self.clip <= _FLOAT32_MAX, "a finite gradient norm > 0"),
            ("ignore_grad_norm", self.ignore_grad_norm >= 0, "a gradient norm >= 0 (0: never skip)"),
            ("ema_mu", self.ema_mu is None or 0 < self.ema_mu < 1, "None (no EMA) or in (0, 1)"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise ConfigError(f"OptimConfig.{name}={getattr(self, name)!r}: must be {want}")


def original_ema_mu(global_batch: int) -> float:
    """The original's EMA decay when `hps.mu` is not given: `1 - global_batch / 8000`."""
    return 1.0 - global_batch / 8.0 / 1000.0


def lr_schedule(cfg: OptimConfig) -> optax.Schedule:
    """The original `get_lr_scheduler` (a `LambdaLR`): optimizer step `i` (0-based) uses
    `lr * lambda(i)`, with `lambda(i) = lr_scale * min(1, i / lr_warmup) * decay(i)` and
    `decay(i) = lr_gamma ** (i // lr_decay)`, or with `lr_use_linear_decay`
    `max(0, 1 - max(0, i - lr_start_linear_decay) / lr_decay)` (written as
    `(lr_decay - d) / lr_decay`, which float32 rounds without cancellation). Step 0 has lr 0
    unless `lr_warmup` is 0. Float32: exact step counts up to 2^24."""

    def schedule(count: jax.Array) -> jax.Array:
        i = jnp.asarray(count, jnp.float32)
        warmup = jnp.minimum(1.0, i / cfg.lr_warmup) if cfg.lr_warmup else jnp.ones_like(i)
        if cfg.lr_use_linear_decay:
            done = jnp.maximum(0.0, i - cfg.lr_start_linear_decay)
            decay = jnp.maximum(0.0, (cfg.lr_decay - done) / cfg.lr_decay)
        else:
            decay = jnp.power(jnp.float32(cfg.lr_gamma), jnp.floor(i / cfg.lr_decay))
        return cfg.lr * (cfg.lr_scale * warmup * decay)

    return schedule


class OriginalAdamState(NamedTuple):
    """`count`: steps taken (skipped ones not counted); `mu`, `nu`: float32 first and second
    moments (zero on frozen leaves); `ema`: the EMA of the weights after each step (frozen
    leaves: their current value), None without `ema_mu`."""

    count: jax.Array  # [] int32
    mu: Params
    nu: Params
    ema: Params | None


def global_norm(grads: Params, trainable: Params | None = None) -> jax.Array:
    """The original `grad_norm`: the L2 norm of all (trainable) gradients together, float32 `[]`."""
    leaves = jax.tree.leaves(
        grads if trainable is None else jax.tree.map(lambda t, g: g if t else None, trainable, grads)
    )
    return jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32))) for g in leaves))


def _one_minus_power(beta: float, t: jax.Array) -> jax.Array:
    """`1 - beta ** t` in float32 without rounding `beta` first (its log is taken in float64)."""
    return -jnp.expm1(t.astype(jnp.float32) * math.log(beta)) if beta else jnp.ones((), jnp.float32)


def original_adam(cfg: OptimConfig, trainable: Trainable = None) -> optax.GradientTransformation:
    """The original optimizer step as an optax transformation over float params (`update`
    needs `params`, for the decay and the EMA). `trainable`: a pytree of bools over the params
    (or a function of the params giving one); False leaves (e.g. codebooks learned by their own
    EMA) get zero updates and are left out of the gradient norm. Apply the updates with
    `optax.apply_updates`; the next step's learning rate is `lr_schedule(cfg)(state.count)`."""
    schedule = lr_schedule(cfg)
    b1, b2, wd = cfg.beta1, cfg.beta2, cfg.weight_decay

    def mask_of(params: Params) -> Params:
        mask = trainable(params) if callable(trainable) else trainable
        return jax.tree.map(lambda _: True, params) if mask is None else mask

    def init(params: Params) -> OriginalAdamState:
        # Separate buffers (never the params' own), so that a step may donate the whole state.
        zeros = lambda: jax.tree.map(lambda p: jnp.zeros_like(p, jnp.float32), params)
        ema = None if cfg.ema_mu is None else jax.tree.map(lambda p: jnp.array(p, jnp.float32, copy=True), params)
        return OriginalAdamState(jnp.zeros([], jnp.int32), zeros(), zeros(), ema)

    def update(
        grads: Params, state: OriginalAdamState, params: Params | None = None
    ) -> tuple[Params, OriginalAdamState]:
        if params is None:
            raise ValueError(
                "original_adam needs the params in update(grads, state, params): weight decay and EMA read them"
            )
        mask = mask_of(params)
        gn = global_norm(grads, mask)
        scale = jnp.maximum(1.0, gn / cfg.clip)
        t = state.count + 1
        step_size = schedule(state.count) * jnp.sqrt(_one_minus_power(b2, t)) / _one_minus_power(b1, t)

        def trained(f, *trees, frozen=lambda x: x):
            """`f` on the trainable leaves of `trees`; a frozen leaf is `frozen` of its leaf in `trees[0]`."""
            return jax.tree.map(lambda on, *x: f(*x) if on else frozen(x[0]), mask, *trees)

        g = trained(lambda g: g.astype(jnp.float32) / scale, grads)
        mu = trained(lambda m, g: b1 * m + (1 - b1) * g, state.mu, g)
        nu = trained(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, g)
        decayed = lambda p, m, v: -step_size * (m / (jnp.sqrt(v) + cfg.eps) + wd * p.astype(jnp.float32))
        updates = trained(lambda p, m, v: decayed(p, m, v).astype(p.dtype), params, mu, nu, frozen=jnp.zeros_like)
        ema = state.ema
        if ema is not None:
            new = jax.tree.map(lambda p: p.astype(jnp.float32), optax.apply_updates(params, updates))
            ema = trained(lambda p, e: cfg.ema_mu * e + (1 - cfg.ema_mu) * p, new, ema)  # frozen: the current value
        new_state = OriginalAdamState(t, mu, nu, ema)
        if cfg.ignore_grad_norm:
            skip = gn > cfg.ignore_grad_norm
            updates = jax.tree.map(lambda u: jnp.where(skip, jnp.zeros_like(u), u), updates)
            new_state = jax.tree.map(lambda old, new: jnp.where(skip, old, new), state, new_state)
        return updates, new_state

    return optax.GradientTransformation(init, update)
