"""Short-time Fourier transform and its inverse (numpy, Hann window, frames centred on
multiples of `hop`), shared by the vocals and the measures."""

from __future__ import annotations

import numpy as np


def stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """The complex spectrogram of `x` [n]; [frames, n_fft // 2 + 1], frames = n // hop + 1."""
    padded = np.pad(x, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # [frames, n_fft]
    return np.fft.rfft(frames * np.hanning(n_fft), axis=-1)


def istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """The signal [length] whose `stft` is closest to `spec` [frames, bins] (weighted
    overlap-add)."""
    window = np.hanning(n_fft)
    frames = np.fft.irfft(spec, n_fft, axis=-1) * window  # [frames, n_fft]
    index = hop * np.arange(len(frames))[:, None] + np.arange(n_fft)[None, :]
    out = np.zeros(hop * len(frames) + n_fft)
    norm = np.zeros_like(out)
    np.add.at(out, index, frames)
    np.add.at(norm, index, np.broadcast_to(window**2, frames.shape))
    out = out / np.maximum(norm, 1e-3 * norm.max())
    return out[n_fft // 2 : n_fft // 2 + length]


def power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|stft|^2 of `x` [n]; [frames, n_fft // 2 + 1]."""
    return np.abs(stft(x, n_fft, hop)) ** 2
