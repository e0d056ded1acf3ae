"""The two training tasks the loop runs, each a `step` `(state, batch) -> (state, metrics)`:
`VQVAETask` (reconstruction, commitment and spectral losses; the codebooks learned by their
EMA) and `PriorTask` (next-token and lyric losses in bits). Each also has an `init` and an
`evaluate` (the loss on held-out batches, no update), and a `check_batch` that refuses, on
the host, a batch it cannot train on (`loop.fit` runs it on every batch; `step` and
`evaluate` run it on a concrete batch, outside jit). Batches are dicts of arrays:

    VQ-VAE: audio [b, t, 1] float32
    prior:  tokens [b, n_ctx] int32, labels [b, n_labels] int32, upper [b, n_ctx / down] int32
            (upsamplers only)

Both steps draw every random number from the state's key, so a step is a pure function.
Metrics: the losses, `grad_norm` (before clipping), `lr` (of this step), and for the VQ-VAE the
codebook usage; the original's names.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jukebox_jax import checks
from jukebox_jax.config import DType, JukeboxConfig, PriorConfig, TransformerConfig, VQVAEConfig, WeightFormat
from jukebox_jax.errors import InputError, shown
from jukebox_jax.layers import Params
from jukebox_jax.params import abstract_params, check_params
from jukebox_jax.prior.transformer import Remat
from jukebox_jax.train import codebook, optim
from jukebox_jax.train import prior as prior_train
from jukebox_jax.train import vqvae as vqvae_train
from jukebox_jax.train.loop import KeyUse, Metrics, TrainState, new_key, run_key
from jukebox_jax.vqvae import VQVAE


def _split(state: TrainState) -> tuple[jax.Array, jax.Array]:
    """(the state's next raw key, a typed key for this step's draws)."""
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    return jax.random.key_data(key), sub


_BATCH_DTYPES = {"audio": jnp.floating, "tokens": jnp.integer, "labels": jnp.integer, "upper": jnp.integer}


def _check_batch(batch: dict[str, jax.Array], need: tuple[str, ...]) -> None:
    """Refuses a batch that is not a dict holding the keys `need` (it was a bare KeyError), or
    whose arrays are of the wrong kind (integer PCM audio trained on values 32768 times too
    large, without a word)."""
    if not isinstance(batch, dict) or any(k not in batch for k in need):
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise InputError(f"a batch is a dict holding {list(need)} (module docstring), got {got}")
    for name, kind in _BATCH_DTYPES.items():
        if batch.get(name) is not None and not jnp.issubdtype(dtype := jnp.result_type(batch[name]), kind):
            fix = "float audio in [-1, 1] (integer PCM over its full scale, e.g. / 32768)" if name == "audio" else "integer ids"
            raise InputError(f"the batch's {name!r} is {dtype}: give {fix}")


def _concrete(batch: dict[str, jax.Array]) -> bool:
    """Whether a batch holds values (not the tracers of a jitted step) to check."""
    return not any(isinstance(x, jax.core.Tracer) for x in batch.values())


def weights(state: TrainState) -> Params:
    """The weights a run evaluates and writes as its model: with `--ema`, the EMA of the trained
    weights in their place (the original's `ema.swap()` around evaluation and saving), else the
    params. The checkpoints keep both, so a resumed run goes on from the raw weights."""
    checks.alive(state)
    ema = state.opt_state.ema
    if ema is None:
        return state.params
    return {**state.params, **jax.tree.map(lambda e, p: e.astype(p.dtype), ema, {k: state.params[k] for k in ema})}


def _check_state(state: TrainState, expected: Params, optim_cfg: optim.OptimConfig) -> None:
    """`state` is not consumed, holds params of `expected`'s paths and shapes (a `ParamsError`
    naming those that differ: another model's state), and an EMA of the weights exactly
    where the task's optimizer keeps one."""
    checks.alive(state)
    check_params(expected, state.params)
    if (state.opt_state.ema is None) != (optim_cfg.ema_mu is None):
        has = "no EMA of the weights" if state.opt_state.ema is None else "an EMA of the weights"
        raise InputError(
            f"the state holds {has}, and this task's OptimConfig.ema_mu is {optim_cfg.ema_mu}: make the state with "
            "this task's init, or give the task the OptimConfig the state was made with"
        )


def _optimizer_metrics(tx_cfg: optim.OptimConfig, grads: Params, count: jax.Array) -> Metrics:
    return {"grad_norm": optim.global_norm(grads), "lr": optim.lr_schedule(tx_cfg)(count)}


# -- VQ-VAE ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VQVAETask:
    """Trains a VQ-VAE: `params` holds every level's encoder, decoder and codebook; the
    optimizer sees the encoders and decoders only (`vqvae.trainable_params`) and the codebooks
    follow their EMA (`TrainState.aux`: one `CodebookState` per level)."""

    config: VQVAEConfig
    optim: optim.OptimConfig
    bandwidth: vqvae_train.Bandwidth
    loss: vqvae_train.VQVAELoss = dataclasses.field(default_factory=vqvae_train.VQVAELoss)

    @property
    def tx(self) -> optax.GradientTransformation:
        return optim.original_adam(self.optim)

    @property
    def expected(self) -> Params:
        """The VQ-VAE's params as `jax.ShapeDtypeStruct`s."""
        return abstract_params(JukeboxConfig(vqvae=self.config))["vqvae"]

    def init(self, params: Params, audio: jax.Array, seed: int, trained: bool) -> TrainState:
        """The state before step 0. `trained` params keep their codebooks (original
        `restore_k`, usage counted for windows of `audio`'s length); new ones draw each codebook
        from the encoder outputs of the first batch `audio [b, t, 1]` (original `init_k`). The
        state holds copies: `params` stay the caller's when `loop.fit` donates the state."""
        cfg = self.config
        check_params(self.expected, params)
        _check_float32(params)
        audio = checks.audio(audio)
        params = jax.tree.map(jnp.copy, params)
        if trained:
            states = vqvae_train.restore_states(cfg, params, audio.shape[1])
        else:
            keys = jax.random.split(run_key(seed, KeyUse.CODEBOOKS), cfg.levels)
            codebooks, states = [], []
            for level, key in enumerate(keys):
                x = VQVAE(cfg).apply({"params": params}, audio, level, method=VQVAE.encode_continuous)  # [b, s, d]
                k, state = codebook.init_state(x.reshape(-1, cfg.emb_width), key, cfg.l_bins)
                codebooks.append(k)
                states.append(jax.tree.map(jnp.copy, state))  # not the codebook's buffer: the step donates both
            params = vqvae_train.with_codebooks(params, codebooks)
        trainable = vqvae_train.trainable_params(params)
        return TrainState(jnp.zeros((), jnp.int32), params, self.tx.init(trainable), states, new_key(seed))

    def check_batch(self, batch: dict[str, jax.Array]) -> None:
        """Refuses a batch that is not float audio `[b, t, 1]`, full scale 1 (`checks.audio`:
        integer PCM scaled as floats trained on values 32768 times too large)."""
        checks.float32_mode()
        _check_batch(batch, ("audio",))
        if _concrete(batch):
            checks.audio(batch["audio"])

    def check_state(self, state: TrainState) -> None:
        """`_check_state`, and one codebook state per level."""
        _check_state(state, self.expected, self.optim)
        if not isinstance(state.aux, list | tuple) or len(state.aux) != self.config.levels:
            raise InputError(f"the state holds {shown(state.aux)} as its codebook states, not one per level ({self.config.levels}): make it with this task's init")

    def step(self, state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, Metrics]:
        self.check_batch(batch)
        self.check_state(state)
        key, sub = _split(state)
        _, grads, codebooks, states, metrics = vqvae_train.vqvae_step(
            self.config, self.loss, state.params, state.aux, batch["audio"], self.bandwidth, sub
        )
        trainable = vqvae_train.trainable_params(state.params)
        updates, opt_state = self.tx.update(grads, state.opt_state, trainable)
        params = vqvae_train.with_codebooks({**state.params, **optax.apply_updates(trainable, updates)}, codebooks)
        metrics.update(_optimizer_metrics(self.optim, grads, state.opt_state.count))
        return TrainState(state.step + 1, params, opt_state, states, key), metrics

    def evaluate(self, state: TrainState, batch: dict[str, jax.Array]) -> Metrics:
        """The held-out losses of `weights` (codes picked by the current codebooks; no update)."""
        self.check_batch(batch)
        self.check_state(state)
        loss, aux = vqvae_train.vqvae_loss(self.config, self.loss, weights(state), batch["audio"], self.bandwidth)
        return dict(aux["metrics"], loss=loss)


# -- Priors ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PriorTask:
    """Trains one prior on its canonical params. `remat` recomputes layers in the backward
    pass; `compute` other than float32 is mixed precision (float32 weights and optimizer,
    activations in 16 bits)."""

    config: PriorConfig
    optim: optim.OptimConfig
    remat: Remat = Remat.NONE
    compute: DType = DType.FLOAT32

    def __post_init__(self):  # their names too, as elsewhere ('full', 'bfloat16')
        object.__setattr__(self, "remat", Remat(self.remat))
        object.__setattr__(self, "compute", DType.parse(self.compute))

    @property
    def model(self) -> PriorConfig:
        """The config the step runs: the prior's, computing in `compute`."""
        p = self.config.precision
        return dataclasses.replace(
            self.config, precision=dataclasses.replace(p, compute=self.compute, cache=self.compute)
        )

    @property
    def tx(self) -> optax.GradientTransformation:
        return optim.original_adam(self.optim)

    @property
    def expected(self) -> Params:
        """The prior's params as `jax.ShapeDtypeStruct`s."""
        return abstract_params(JukeboxConfig(priors=(self.config,)))[f"prior_level_{self.config.level}"]

    def init(self, params: Params, seed: int) -> TrainState:
        """The state before step 0, holding a copy of `params` (`loop.fit` donates the state)."""
        if self.config.precision.weights is not WeightFormat.FLOAT:
            raise InputError("int8 weights cannot be trained (no gradient through integers): fine-tune the float model, then quantize it")
        check_params(self.expected, params)
        _check_float32(params, self.config.precision.params)
        params = jax.tree.map(jnp.copy, params)
        return TrainState(jnp.zeros((), jnp.int32), params, self.tx.init(params), None, new_key(seed))

    def check_batch(self, batch: dict[str, jax.Array]) -> None:
        """Refuses a batch the prior cannot read (`checks.prior_inputs`): tokens outside its
        codebook, artist, genre or lyric ids outside its tables (a negative id read the
        table's last row). Songs of any length train: their timing labels saturate."""
        checks.float32_mode()
        _check_batch(batch, ("tokens", "labels"))
        if _concrete(batch):
            checks.prior_inputs(self.config, batch["tokens"], batch["labels"], batch.get("upper"), timing=False)

    def check_state(self, state: TrainState) -> None:
        """`_check_state`: a live state of this prior, with an EMA where the optimizer keeps one."""
        _check_state(state, self.expected, self.optim)

    def step(self, state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, Metrics]:
        self.check_batch(batch)
        self.check_state(state)
        key, sub = _split(state)
        dropout = sub if _has_dropout(self.config) else None
        (_, metrics), grads = prior_train.prior_value_and_grad(
            self.model, state.params, batch["tokens"], batch["labels"], batch.get("upper"), rng=dropout, remat=self.remat
        )
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        metrics.update(_optimizer_metrics(self.optim, grads, state.opt_state.count))
        return TrainState(state.step + 1, optax.apply_updates(state.params, updates), opt_state, None, key), metrics

    def evaluate(self, state: TrainState, batch: dict[str, jax.Array]) -> Metrics:
        """The held-out losses of `weights`."""
        self.check_batch(batch)
        self.check_state(state)
        _, metrics = prior_train.prior_loss(
            self.model, weights(state), batch["tokens"], batch["labels"], batch.get("upper")
        )
        return metrics


def _check_float32(params: Params, declared: DType = DType.FLOAT32) -> None:
    """The weights to train are float32, as the config declares them."""
    if declared is not DType.FLOAT32 or any(x.dtype != jnp.float32 for x in jax.tree.leaves(params)):
        raise InputError(
            "the weights are trained in float32 (16-bit weights lose Adam's small updates to rounding): give the "
            "float32 model's config and params (Jukebox.load without dtype), and compute='bfloat16' for mixed precision"
        )


def _has_dropout(cfg: PriorConfig) -> bool:
    """Whether any dropout rate of the prior's stack or its lyric encoder is above 0."""
    stacks: tuple[TransformerConfig | None, ...] = (cfg.transformer, cfg.lyric_encoder)
    return any(t.attn_dropout or t.resid_dropout or t.emb_dropout for t in stacks if t is not None)
