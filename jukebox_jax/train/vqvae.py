"""One VQ-VAE training step (original `VQVAE.forward(x, hps, loss_fn='lmix')` in train mode).

Per level: encode, pick codes with the old codebook, decode the straight-through value
`x_e + stop_gradient(k[z] - x_e)` with level l's decoder alone; the loss sums over levels the
reconstruction (`lmix`), the spectral losses and the commitment loss. The codebooks are
`codebook_{l}` leaves of the param tree but are NOT trained by gradients: `vqvae_step` returns
gradients for the encoders and decoders only (codebook leaves absent, see `trainable_params`)
and the new codebooks from the EMA update (`codebook.ema_update`).

Axes: b batch, t samples, c channels (1), s codes of a level (t / hop), d code width.
Metric suffix `_l{l+1}` is level l (the original's naming: `_l1` is the finest level).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from numbers import Real

import jax
import jax.numpy as jnp

from jukebox_jax.config import VQVAEConfig
from jukebox_jax.errors import InputError
from jukebox_jax.layers import Params
from jukebox_jax.train.codebook import CodebookState, ema_update, restart_candidates, restore_state
from jukebox_jax.train.spectral import (
    SPECTRAL,
    MultiResolution,
    mono_spectrogram,
    multispectral_loss,
    spectral_convergence,
    spectral_loss,
)
from jukebox_jax.vqvae.bottleneck import dequantise, quantise
from jukebox_jax.vqvae.encdec import Decoder, Encoder


@dataclasses.dataclass(frozen=True)
class VQVAELoss:
    """Loss hps; defaults are the original's (`vqvae` preset plus defaults). The commitment
    weight and the codebook EMA decay are `VQVAEConfig.commit` and `.mu` (read from a
    checkpoint's hps with the rest of the model)."""

    lmix_l2: float = 1.0
    lmix_linf: float = 0.02
    lmix_l1: float = 0.0
    linf_k: int = 2048  # linf: mean of the linf_k largest squared errors of each item
    multispectral: float = 1.0
    spectral: float = 0.0  # weight of the single-resolution spectral loss (reported either way)
    revival_threshold: float = 1.0  # codes whose EMA count falls below this restart
    resolutions: MultiResolution = dataclasses.field(default_factory=MultiResolution)

    @property
    def min_samples(self) -> int:
        """The shortest audio the losses take: the STFTs' reflect padding and linf's top-k."""
        return max(self.linf_k, max(r.n_fft for r in (SPECTRAL, *self.resolutions.resolutions)) // 2 + 1)


@dataclasses.dataclass(frozen=True)
class Bandwidth:
    """Normalisers of the losses (original `hps.bandwidth`): sample variance `l2`, mean |x| `l1`,
    mean |STFT| Frobenius norm `spec`."""

    l2: float
    l1: float
    spec: float

    def __post_init__(self):  # numbers given by hand; traced ones (inside a step) are calculate_bandwidth's
        for name in ("l2", "l1", "spec"):
            value = getattr(self, name)
            if isinstance(value, Real) and not (math.isfinite(value) and value > 0):
                raise InputError(
                    f"Bandwidth.{name}={value!r}: must be finite and > 0 (it divides the loss); use calculate_bandwidth(audio)"
                )


jax.tree_util.register_dataclass(Bandwidth, data_fields=["l2", "l1", "spec"], meta_fields=[])


def calculate_bandwidth(x: jax.Array) -> Bandwidth:
    """`Bandwidth` of audio `x [b, t, c]` (original `calculate_bandwidth`, over these items):
    l2 and l1 over every sample, spec the mean over items of `|| |S(mono x)| ||_F` at `SPECTRAL`."""
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 3:
        raise InputError(f"calculate_bandwidth takes audio [batch, samples, channels], got shape {x.shape}")
    spectrogram = mono_spectrogram(x, SPECTRAL)  # [b, f, q]
    l2, l1 = float(jnp.mean(x**2) - jnp.mean(x) ** 2), float(jnp.mean(jnp.abs(x)))
    spec = float(jnp.mean(jnp.linalg.norm(spectrogram, axis=(1, 2))))
    if not all(v > 0 for v in (l2, l1, spec)):  # the losses are divided by them: NaN at step 1
        raise InputError(f"calculate_bandwidth: Bandwidth(l2={l2}, l1={l1}, spec={spec}) from silent (or constant) audio; give windows with sound")
    return Bandwidth(l2, l1, spec)


def expected_usage(cfg: VQVAEConfig, sample_length: int, level: int) -> float:
    """Tokens per code in one training sample of `level`: the EMA count `restore_state` starts from."""
    return (sample_length // cfg.hop_lengths[level]) / cfg.l_bins  # the original's times its world size: one here


def restore_states(cfg: VQVAEConfig, params: Params, sample_length: int) -> list[CodebookState]:
    """EMA states of every level to train on from trained `params` (original `restore_k` in `make_vqvae`)."""
    return [
        restore_state(params[f"codebook_{l}"], expected_usage(cfg, sample_length, l))
        for l in range(cfg.levels)
    ]


def trainable_params(params: Params) -> Params:
    """The encoder and decoder params (every top-level entry but the `codebook_{l}`): the tree the
    optimizer must be built on and that `vqvae_step`'s gradients have (an optimizer over the
    codebooks would move them, e.g. by weight decay, although their gradient is zero)."""
    return {name: p for name, p in params.items() if not name.startswith("codebook_")}


def with_codebooks(params: Params, codebooks: Sequence[jax.Array]) -> Params:
    """`params` with `codebook_{l}` replaced by `codebooks[l]` `[l_bins, emb_width]`."""
    return {**params, **{f"codebook_{l}": k.astype(params[f"codebook_{l}"].dtype) for l, k in enumerate(codebooks)}}


def _recons_loss(loss: VQVAELoss, bw: Bandwidth, x: jax.Array, x_out: jax.Array) -> dict[str, jax.Array]:
    """l2, l1, linf and their `lmix` sum for audio `[b, t, c]`."""
    sq = (x_out - x) ** 2  # [b, t, c]
    terms = {
        "l2": jnp.mean(sq) / bw.l2,
        "l1": jnp.mean(jnp.abs(x_out - x)) / bw.l1,
        "linf": jnp.mean(jax.lax.top_k(sq.reshape(sq.shape[0], -1), loss.linf_k)[0]) / bw.l2,
    }
    weights = {"l1": loss.lmix_l1, "l2": loss.lmix_l2, "linf": loss.lmix_linf}
    terms["lmix"] = sum(w * terms[name] for name, w in weights.items() if w)
    return terms


def _check_audio(cfg: VQVAEConfig, loss: VQVAELoss, x: jax.Array) -> None:
    hop = cfg.hop_lengths[-1]
    if x.ndim != 3 or x.shape[-1] != 1 or x.shape[1] % hop:
        raise InputError(
            f"VQ-VAE training takes mono audio [batch, samples, 1] with samples a multiple of {hop}, got {x.shape}"
        )
    if loss.linf_k > x.shape[1]:
        raise InputError(f"linf_k {loss.linf_k} exceeds the {x.shape[1]} samples per item; lower VQVAELoss.linf_k")


def vqvae_loss(
    cfg: VQVAEConfig,
    loss: VQVAELoss,
    params: Params,
    x: jax.Array,
    bandwidth: Bandwidth,
    codes: Sequence[jax.Array] | None = None,
) -> tuple[jax.Array, dict]:
    """The training loss of audio `x [b, t, 1]` -> (loss, aux). `codes` (per level `[b, s]`)
    replace the argmin codes when given (e.g. a reference's, where distance margins are ~1e-6).
    Gradients reach the encoders (straight-through and commitment) and decoders; the codebooks
    are read under `stop_gradient`.

    aux: `x_enc` (per level `[b, s, d]` float32), `codes` (per level `[b, s]`) and `metrics`:
    `recons_loss_l{l+1}`, `spectral_loss_l{l+1}`, `multispectral_loss_l{l+1}`, their sums
    `recons_loss`, `spectral_loss`, `multispectral_loss`, `commit_loss`, and of the level-0
    reconstruction `l2_loss`, `l1_loss`, `linf_loss`, `spectral_convergence`."""
    _check_audio(cfg, loss, x)
    x = x.astype(jnp.float32)
    x_encs, all_codes, x_outs, commit_losses = [], [], [], []
    for l in range(cfg.levels):
        x_e = Encoder(cfg, l).apply({"params": params[f"encoders_{l}"]}, x).astype(jnp.float32)  # [b, s, d]
        codebook = jax.lax.stop_gradient(params[f"codebook_{l}"]).astype(jnp.float32)  # [k, d]
        z = quantise(x_e, codebook, cfg.precision) if codes is None else jnp.asarray(codes[l], jnp.int32)  # [b, s]
        if z.shape != x_e.shape[:2]:
            raise InputError(f"codes of level {l} must have shape {x_e.shape[:2]}, got {z.shape}")
        x_d = dequantise(z, codebook)  # [b, s, d]
        commit_losses.append(jnp.sum((x_d - x_e) ** 2) / x_e.size)
        x_st = x_e + jax.lax.stop_gradient(x_d - x_e)  # straight-through: the value of x_d, the gradient of x_e
        x_outs.append(Decoder(cfg, l).apply({"params": params[f"decoders_{l}"]}, x_st).astype(jnp.float32))  # [b, t, 1]
        x_encs.append(x_e)
        all_codes.append(z)

    metrics = {}
    for l in reversed(range(cfg.levels)):  # the original's order of summation
        metrics[f"recons_loss_l{l + 1}"] = _recons_loss(loss, bandwidth, x, x_outs[l])["lmix"]
        metrics[f"spectral_loss_l{l + 1}"] = spectral_loss(x, x_outs[l], bandwidth.spec)
        metrics[f"multispectral_loss_l{l + 1}"] = multispectral_loss(x, x_outs[l], bandwidth.spec, loss.resolutions)
    for name in ("recons_loss", "spectral_loss", "multispectral_loss"):
        metrics[name] = sum(metrics[f"{name}_l{l + 1}"] for l in reversed(range(cfg.levels)))
    metrics["commit_loss"] = sum(commit_losses)
    total = (
        metrics["recons_loss"]
        + loss.spectral * metrics["spectral_loss"]
        + loss.multispectral * metrics["multispectral_loss"]
        + cfg.commit * metrics["commit_loss"]
    )
    finest = jax.lax.stop_gradient(x_outs[0])
    terms = _recons_loss(loss, bandwidth, x, finest)
    metrics.update(
        l2_loss=terms["l2"],
        l1_loss=terms["l1"],
        linf_loss=terms["linf"],
        spectral_convergence=spectral_convergence(x, finest),
    )
    return total, {"x_enc": x_encs, "codes": all_codes, "metrics": jax.lax.stop_gradient(metrics)}


def vqvae_step(
    cfg: VQVAEConfig,
    loss: VQVAELoss,
    params: Params,
    states: Sequence[CodebookState],
    x: jax.Array,
    bandwidth: Bandwidth,
    key: jax.Array | None,
    codes: Sequence[jax.Array] | None = None,
    k_rand: Sequence[jax.Array] | None = None,
) -> tuple[jax.Array, Params, list[jax.Array], list[CodebookState], dict[str, jax.Array]]:
    """The loss, its gradients and the codebook EMA update for audio `x [b, t, 1]`:
    -> (loss, grads, new codebooks per level `[k, d]`, new EMA states, metrics).

    `grads` has the tree of `trainable_params(params)`: the codebooks get no gradient and must
    stay out of the optimizer; put the new codebooks back with `with_codebooks`. `key` draws the
    restart candidates (split per level); `k_rand` (per level `[k, d]`) replaces them (then `key`
    may be None). `codes` as in `vqvae_loss`. Metrics: `loss`, those of `vqvae_loss`, and
    `entropy`, `used_curr`, `usage`, `dk`, `fit`, `pn` averaged over levels. Jit with `cfg` and
    `loss` static."""
    if k_rand is None and key is None:
        raise InputError("vqvae_step needs a key to draw the restart candidates, or k_rand")
    codebooks = {name: p for name, p in params.items() if name.startswith("codebook_")}

    def objective(trainable: Params) -> tuple[jax.Array, dict]:
        return vqvae_loss(cfg, loss, {**trainable, **codebooks}, x, bandwidth, codes)

    (value, aux), grads = jax.value_and_grad(objective, has_aux=True)(trainable_params(params))
    keys = jax.random.split(key, cfg.levels) if k_rand is None else [None] * cfg.levels
    new_codebooks, new_states, level_metrics = [], [], []
    for l in range(cfg.levels):
        x_flat = aux["x_enc"][l].reshape(-1, cfg.emb_width)  # [b * s, d], item-major
        candidates = restart_candidates(x_flat, cfg.l_bins, keys[l]) if k_rand is None else k_rand[l]
        k, state, m = ema_update(
            params[f"codebook_{l}"],
            states[l],
            x_flat,
            aux["codes"][l].reshape(-1),
            cfg.mu,
            loss.revival_threshold,
            candidates,
        )
        new_codebooks.append(k)
        new_states.append(state)
        level_metrics.append(m)
    metrics = dict(aux["metrics"], loss=value)
    metrics.update({name: sum(m[name] for m in level_metrics) / cfg.levels for name in level_metrics[0]})
    return value, grads, new_codebooks, new_states, metrics
