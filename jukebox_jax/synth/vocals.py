"""Sung lyrics: each word is spoken by espeak-ng (when installed), and its spectral envelope
(the formants: what makes it that word) is imposed, stretched to the note's length, on a
pulse train at the melody note's pitch plus a little noise for the consonants: a channel
vocoder, so the voice sings the melody rather than speaking over it."""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
from collections.abc import Sequence

import numpy as np

from jukebox_jax.errors import InputError
from jukebox_jax.synth.instruments import VOICE, add_at, midi_hz, tone
from jukebox_jax.synth.spectrum import istft, stft

ESPEAK = "espeak-ng"
SPEECH_WPM = 140  # espeak-ng's speaking rate; the vocoder stretches each word to its note anyway
ENVELOPE_QUEFRENCIES = 24  # cepstral coefficients kept: the formants, not the speaker's pitch
NOISE = 0.08  # breath noise in the carrier, relative to the pulse train's peak


def available() -> bool:
    """Whether espeak-ng is installed, so songs can have vocals."""
    return shutil.which(ESPEAK) is not None


def require() -> None:
    """Raises `InputError` if espeak-ng is not installed."""
    if not available():
        raise InputError("vocals need espeak-ng (apt-get install espeak-ng), or make instrumental songs (--no-vocals; SynthConfig(vocals=False))")


@functools.lru_cache(maxsize=4096)
def speak(word: str, voice: str) -> tuple[np.ndarray, int]:
    """`word` spoken by espeak-ng's `voice`, silence trimmed; ([n] float, its sample rate)."""
    import soundfile

    require()
    fix = "repair it (apt-get install --reinstall espeak-ng), or make instrumental songs (--no-vocals; SynthConfig(vocals=False))"
    try:
        run = subprocess.run([ESPEAK, "-v", voice, "-s", str(SPEECH_WPM), "--stdout", word], capture_output=True, check=False)
    except OSError as e:
        raise InputError(f"espeak-ng cannot be run ({e}); {fix}") from None
    try:
        if run.returncode:
            raise RuntimeError(f"exit code {run.returncode}")
        speech, rate = soundfile.read(io.BytesIO(run.stdout), dtype="float64")
    except RuntimeError as e:  # or soundfile's LibsndfileError: no wav on its stdout
        why = (run.stderr.decode(errors="replace").strip().splitlines() or [str(e)])[0]
        raise InputError(f"espeak-ng did not speak {word!r} in voice {voice!r} ({why}); {fix}") from None
    loud = np.flatnonzero(np.abs(speech) > 0.02 * np.abs(speech).max()) if speech.size else speech
    if not loud.size:
        raise InputError(f"espeak-ng spoke {word!r} in voice {voice!r} as silence; {fix}")
    return speech[loud[0] : loud[-1] + 1], rate


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`x` [n] at `target` Hz by band-limited (FFT) resampling; [round(n * target / rate)]."""
    n = round(len(x) * target / rate)
    spec = np.fft.rfft(x)[: n // 2 + 1]
    return np.fft.irfft(spec, n) * n / len(x)


def spectral_envelope(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """The smooth magnitude envelope of each frame of `x` [n] (cepstral liftering of the log
    magnitude); [frames, n_fft // 2 + 1]."""
    log_mag = np.log(np.abs(stft(x, n_fft, hop)) + 1e-6)
    cepstrum = np.fft.irfft(log_mag, n_fft, axis=-1)
    cepstrum[:, ENVELOPE_QUEFRENCIES:-ENVELOPE_QUEFRENCIES] = 0
    return np.exp(np.fft.rfft(cepstrum, axis=-1).real)


def sing_word(
    word: str, voice: str, pitch: float, seconds: float, rng: np.random.Generator, sample_rate: int
) -> np.ndarray:
    """`word` sung on MIDI `pitch` for `seconds`, peak 1; [n]."""
    n_fft = 1 << int(np.ceil(np.log2(0.032 * sample_rate)))  # ~32 ms frames
    hop = n_fft // 4
    speech, rate = speak(word, voice)
    envelope = spectral_envelope(resample(speech, rate, sample_rate), n_fft, hop)  # [f, bins]
    carrier = tone(VOICE, float(midi_hz(pitch)), seconds, sample_rate)
    carrier = carrier + NOISE * rng.standard_normal(len(carrier)) * (np.abs(carrier) > 0)
    spec = stft(carrier, n_fft, hop)  # [frames, bins]
    at = np.linspace(0, len(envelope) - 1, len(spec))  # the word's frames stretched to the note
    lo = np.floor(at).astype(int)
    hi = np.minimum(lo + 1, len(envelope) - 1)
    frac = (at - lo)[:, None]
    sung = istft(spec * (envelope[lo] * (1 - frac) + envelope[hi] * frac), n_fft, hop, len(carrier))
    return sung / max(np.abs(sung).max(), 1e-9)


def sing(
    words: Sequence[tuple[float, float, float, str]],
    voice: str,
    n_samples: int,
    rng: np.random.Generator,
    sample_rate: int,
) -> np.ndarray:
    """The words (start s, length s, MIDI pitch, word) sung in `voice`; [n_samples]."""
    track = np.zeros(n_samples)
    for start, seconds, pitch, word in words:
        add_at(track, round(start * sample_rate), sing_word(word, voice, pitch, seconds, rng, sample_rate))
    return track
