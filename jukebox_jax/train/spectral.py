"""Spectral losses of VQ-VAE training (original `utils/audio_utils.py`).

Axes: b batch, t samples, f frames, q frequency bins (n_fft // 2 + 1).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jukebox_jax.errors import ConfigError, InputError


@dataclasses.dataclass(frozen=True)
class Resolution:
    """One STFT setting: FFT size, hop and Hann window length (window <= n_fft)."""

    n_fft: int
    hop: int
    window: int

    def __post_init__(self):
        if not (0 < self.window <= self.n_fft and self.hop > 0):
            raise ConfigError(f"STFT resolution {self}: need 0 < window <= n_fft and hop > 0")


# The original's `DefaultSTFTValues`: the single spectral loss, spectral convergence and the bandwidth.
SPECTRAL = Resolution(n_fft=2048, hop=256, window=1536)


@dataclasses.dataclass(frozen=True)
class MultiResolution:
    """The resolutions of the multispectral loss; defaults are the original's
    `multispec_loss_{n_fft, hop_length, window_size}`."""

    resolutions: tuple[Resolution, ...] = (
        Resolution(n_fft=2048, hop=240, window=1200),
        Resolution(n_fft=1024, hop=120, window=600),
        Resolution(n_fft=512, hop=50, window=240),
    )

    def __post_init__(self):
        object.__setattr__(self, "resolutions", tuple(self.resolutions))  # a list too; hashable, so a task shares its compile
        if not self.resolutions:
            raise ConfigError("MultiResolution needs at least one resolution")


def _hann(window: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window of `window` samples, zero-padded on both sides to `n_fft` (as torch.stft)."""
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    left = (n_fft - window) // 2
    return np.pad(w, (left, n_fft - window - left)).astype(np.float32)


def _safe_norm(x: jax.Array, axis) -> jax.Array:
    """L2 norm over `axis` whose gradient at 0 is 0 (as torch's), not NaN."""
    sq = jnp.sum(x * x, axis=axis)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def stft_magnitude(x: jax.Array, n_fft: int, hop: int, window: int) -> jax.Array:
    """|STFT| `[b, f, q]` of `x [b, t]`, as the original's `torch.stft`: centred (reflect
    padding of n_fft // 2 each side), periodic Hann window, one-sided, unnormalised;
    `|S| = sqrt(re^2 + im^2)`. Frames f = 1 + t // hop."""
    if x.ndim != 2:
        raise InputError(f"stft_magnitude takes audio [batch, samples], got shape {x.shape}; squeeze the channel axis")
    pad = n_fft // 2
    if x.shape[1] <= pad:
        raise InputError(f"{x.shape[1]} samples are too few for n_fft {n_fft} (reflect padding needs more than {pad})")
    padded = jnp.pad(x.astype(jnp.float32), ((0, 0), (pad, pad)), mode="reflect")  # [b, t + 2 pad]
    frames = 1 + (padded.shape[1] - n_fft) // hop
    index = hop * np.arange(frames)[:, None] + np.arange(n_fft)  # [f, n_fft]
    spec = jnp.fft.rfft(padded[:, index] * _hann(window, n_fft), axis=-1)  # [b, f, q] complex
    return _safe_norm(jnp.stack([spec.real, spec.imag], axis=-1), axis=-1)


def mono_spectrogram(x: jax.Array, res: Resolution) -> jax.Array:
    """|STFT| `[b, f, q]` of audio `[b, t, c]`, mixed to mono (the original's `squeeze`)."""
    return stft_magnitude(jnp.mean(x, axis=-1), res.n_fft, res.hop, res.window)


def spectral_distance(x: jax.Array, x_out: jax.Array, res: Resolution) -> jax.Array:
    """`|| |S(x)| - |S(x_out)| ||_F` per item `[b]` of audio `[b, t, c]`."""
    return _safe_norm(mono_spectrogram(x, res) - mono_spectrogram(x_out, res), axis=(1, 2))


def spectral_loss(x: jax.Array, x_out: jax.Array, spec_bandwidth: float, res: Resolution = SPECTRAL) -> jax.Array:
    """Mean over items of the spectral distance of audio `x, x_out [b, t, c]`, over
    `spec_bandwidth` (non-relative spectral loss); a scalar."""
    return jnp.mean(spectral_distance(x, x_out, res) / spec_bandwidth)


def multispectral_loss(
    x: jax.Array, x_out: jax.Array, spec_bandwidth: float, multi: MultiResolution = MultiResolution()
) -> jax.Array:
    """Mean over items of the spectral distance of audio `x, x_out [b, t, c]` averaged over
    `multi`'s resolutions, over `spec_bandwidth`; a scalar."""
    per_item = sum(spectral_distance(x, x_out, res) for res in multi.resolutions) / len(multi.resolutions)  # [b]
    return jnp.mean(per_item / spec_bandwidth)


def spectral_convergence(x: jax.Array, x_out: jax.Array, res: Resolution = SPECTRAL, eps: float = 2e-3) -> jax.Array:
    """Mean over items of audio `x, x_out [b, t, c]` of `||S(x) - S(x_out)|| / max(||S(x)||, eps)`,
    0 for items with `||S(x)|| <= eps`; a scalar."""
    spec = mono_spectrogram(x, res)  # [b, f, q]
    gt_norm = _safe_norm(spec, axis=(1, 2))  # [b]
    residual = _safe_norm(spec - mono_spectrogram(x_out, res), axis=(1, 2))  # [b]
    return jnp.mean(residual * (gt_norm > eps) / jnp.maximum(gt_norm, eps))
