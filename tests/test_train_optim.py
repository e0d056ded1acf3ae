"""The original's optimizer (`jukebox_jax.train.optim`): the learning-rate schedule against
the original's own values (`*.training.json`, `lr_schedule`), and several Adam steps against a
float64 NumPy transcription of the original `train.py` + `FusedAdam.adam_step` + `EMA` (the
one-step fixtures of the five priors are in `test_train_prior.py`)."""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jukebox_jax.errors import ConfigError
from jukebox_jax.train.optim import OptimConfig, global_norm, lr_schedule, original_adam, original_ema_mu

ULP = lambda x: np.spacing(np.abs(np.asarray(x, np.float32))).astype(np.float64)  # float32 spacing at |x|


@pytest.fixture(scope="module")
def schedules(fixtures):
    """The original `get_lr_scheduler` values of the three variants (the same in every prior's json)."""
    return json.loads((fixtures / "prior_5b_level2.training.json").read_text())["lr_schedule"]


@pytest.mark.parametrize("variant", ["preset", "step_decay", "linear_decay"])
def test_lr_schedule_matches_the_original(schedules, variant):
    hps = dict(schedules[variant]["hps"])
    assert hps.pop("lr_use_cosine_decay") is False  # the original ignores it
    cfg = OptimConfig(**hps)
    if variant == "preset":
        assert cfg == OptimConfig()  # no prior preset overrides the defaults
    steps, ref = np.array(schedules[variant]["steps"]), np.array(schedules[variant]["lr"])
    ours = np.asarray(jax.vmap(lr_schedule(cfg))(jnp.asarray(steps)), np.float64)
    assert ours[0] == ref[0] == 0.0  # the first step only fills the moments
    assert np.all(np.abs(ours - ref) <= 2 * ULP(ref)), np.abs(ours - ref) / ULP(ref)  # float32 rounding


def test_original_ema_decay():
    assert original_ema_mu(8) == pytest.approx(0.999)  # `1 - bs * ngpus / 8 / 1000`, bs 1 on 8 GPUs


def test_no_warmup_gives_the_learning_rate_from_step_0():
    assert float(lr_schedule(OptimConfig(lr=1e-3, lr_warmup=0))(0)) == np.float32(1e-3)


@pytest.mark.parametrize(
    "field, value",
    [("lr", -1.0), ("lr", 1e308), ("lr_warmup", -1.0), ("lr_warmup", 1e300), ("lr_decay", 0.0), ("lr_decay", 1e300), ("beta1", 1.0), ("beta2", -0.1), ("eps", 0.0),
     ("clip", 0.0), ("ignore_grad_norm", -1.0), ("weight_decay", -0.1), ("weight_decay", 1e4), ("ema_mu", 1.0),
     ("lr", "1e-3"), ("ema_mu", "0.9"), ("lr_use_linear_decay", 1),  # strings were a TypeError
     # unchecked until 2026-12-07: gradient ascent, a sign flipping each decay, no training at all, NaN
     ("lr_scale", -1.0), ("lr_scale", float("nan")), ("lr_gamma", -1.0), ("lr_gamma", 0.0), ("lr_gamma", float("nan")),
     ("lr_start_linear_decay", -10), ("eps", float("inf")), ("clip", float("inf"))],
)  # fmt: skip
def test_bad_config_is_refused(field, value):
    with pytest.raises(ConfigError, match=f"OptimConfig.{field}="):
        OptimConfig(**{field: value})


# -- Several steps against float64 NumPy -----------------------------------------------------


def numpy_original(cfg: OptimConfig, params: dict, grads_seq: list[dict], trainable: dict) -> tuple[dict, dict, int]:
    """The original's loop body in float64: `grad_norm` over `model.parameters()` (the frozen
    leaf stands for a buffer), `continue` when `grad_norm > ignore_grad_norm > 0`, then
    `FusedAdam.step(scale=clipped_grad_scale(...))` with the `LambdaLR` lr, then `EMA.step()`.
    Returns (params, ema, optimizer steps taken)."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    ema = {k: v.copy() for k, v in p.items()}
    b1, b2 = cfg.beta1, cfg.beta2
    step = 0
    for grads in grads_seq:
        gn = float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for k, g in grads.items() if trainable[k])))
        if gn > cfg.ignore_grad_norm > 0:
            continue
        scale = max(1.0, gn / cfg.clip)
        warm = min(1.0, step / cfg.lr_warmup) if cfg.lr_warmup else 1.0
        lr = cfg.lr * cfg.lr_scale * cfg.lr_gamma ** (step // cfg.lr_decay) * warm
        t = step + 1
        for k in [k for k in p if trainable[k]]:
            g = grads[k] / scale
            m[k] = b1 * m[k] + (1 - b1) * g
            v2[k] = b2 * v2[k] + (1 - b2) * g * g
            step_size = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
            p[k] = p[k] - step_size * (m[k] / (np.sqrt(v2[k]) + cfg.eps) + cfg.weight_decay * p[k])
            ema[k] = cfg.ema_mu * ema[k] + (1 - cfg.ema_mu) * p[k]
        step += 1
    return p, {k: ema[k] if trainable[k] else p[k] for k in p}, step


def test_steps_match_float64_numpy():
    """Six steps exercising everything the original does: warmup and step decay, bias
    correction past t = 1, clipping (steps with norm above and below `clip`), one skipped step,
    weight decay scaled by the step size, eps outside the root (tiny gradients), EMA of the
    weights, and a frozen leaf that neither moves nor counts in the norm. lr and decay are large
    so that each of these moves the params far more than float32 rounding."""
    cfg = OptimConfig(
        lr=2e-2, lr_scale=0.5, lr_warmup=2, lr_decay=3, lr_gamma=0.5, beta2=0.925, weight_decay=0.1, clip=2.0,
        ignore_grad_norm=50.0, ema_mu=0.8,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(8, 5)).astype(np.float32), "b": rng.normal(size=(5,)).astype(np.float32)}
    params["codebook"] = rng.normal(size=(4, 3)).astype(np.float32)
    trainable = {"w": True, "b": True, "codebook": False}
    sizes = [0.3, 5.0, 100.0, 1.0, 0.1, 3.0]  # global norms around 1-20, one above ignore_grad_norm
    grads_seq = []
    for size in sizes:
        g = {k: (size * rng.normal(size=v.shape)).astype(np.float32) for k, v in params.items()}
        g["b"][:2] *= 1e-8  # eps dominates here
        g["codebook"] *= 100  # would dominate the norm if counted
        grads_seq.append(g)

    tx = original_adam(cfg, trainable=lambda tree: {k: trainable[k] for k in tree})
    state = tx.init(params)

    @jax.jit
    def step(grads, state, params):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    ours = {k: jnp.asarray(v) for k, v in params.items()}
    for g in grads_seq:
        ours, state = step(g, state, ours)

    ref, ref_ema, taken = numpy_original(cfg, params, grads_seq, trainable)
    assert int(state.count) == taken == len(sizes) - 1
    np.testing.assert_array_equal(ours["codebook"], params["codebook"])
    for k in ref:
        # float32 against float64: a few ulps of the param scale after six steps.
        assert np.abs(np.asarray(ours[k], np.float64) - ref[k]).max() <= 2 * ULP(np.abs(ref[k]).max()), k
        assert np.abs(np.asarray(state.ema[k], np.float64) - ref_ema[k]).max() <= 2 * ULP(np.abs(ref_ema[k]).max()), k
    moved = max(np.abs(ref[k] - params[k]).max() for k in ("w", "b"))
    assert moved > 1e3 * ULP(1.0)  # the steps are far above the tolerance


def test_the_defaults_are_the_originals(fixtures):
    """`OptimConfig()` is what every CLI run trains with (no flags for betas, eps, clip): the
    original's `hparams.py` defaults, as the fixture run recorded them."""
    hps = json.loads((fixtures / "vqvae.hparams.json").read_text())["hps"]
    ours = dataclasses.asdict(OptimConfig())
    assert ours.pop("ema_mu") is None  # the original's EMA: `original_ema_mu`, from the batch
    assert ours == {name: hps[name] for name in ours}


def test_global_norm_leaves_out_frozen_leaves():
    grads = {"a": jnp.full((3,), 2.0), "b": jnp.full((4,), 1.0)}
    assert float(global_norm(grads)) == pytest.approx(4.0)
    assert float(global_norm(grads, {"a": False, "b": True})) == pytest.approx(2.0)


def test_without_ema_the_state_holds_none_and_update_needs_params():
    tx = original_adam(dataclasses.replace(OptimConfig(), ema_mu=None))
    state = tx.init({"w": jnp.ones(3)})
    assert state.ema is None
    with pytest.raises(ValueError, match="needs the params"):
        tx.update({"w": jnp.ones(3)}, state)


def test_a_step_may_donate_params_and_state():
    """The state holds no buffer twice and none of the params' (a donated step would fail)."""
    tx = original_adam(OptimConfig(lr_warmup=0, ema_mu=0.9))
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    state = tx.init(params)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    grads = {"w": jnp.full((3, 2), 0.5), "b": jnp.ones(2)}
    for _ in range(2):
        params, state = step(params, state, grads)
    assert int(state.count) == 2 and float(params["w"][0, 0]) < 1
