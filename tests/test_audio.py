"""`jukebox_jax.audio`: files of every format the CLI names round-trip at their rate, stereo
mixes to the mean, resampling keeps a sine's frequency and amplitude, a segment is the same
part of the whole file, every bad file is an `InputError` naming it, and `--prompt-audio`
takes a 48 kHz stereo file."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
import soundfile

from jukebox_jax import audio, cli_sample
from jukebox_jax.cli import main
from jukebox_jax.errors import InputError

RATES = [22050, 44100, 48000]
PCM16 = 2.0**-15  # a 16-bit sample's step


def _noise(n: int, channels: int, seed: int = 0) -> np.ndarray:
    """`[n, channels]` float64 white noise at 0.3 RMS, low-passed by a 3-tap mean so lossy codecs keep it."""
    x = 0.3 * np.random.default_rng(seed).standard_normal((n + 2, channels))
    return (x[:-2] + x[1:-1] + x[2:]) / 3


def _fit_sine(y: np.ndarray, f: float, sample_rate: int) -> float:
    """The amplitude of the sine of frequency `f` in `y` (least squares, float64)."""
    t = np.arange(len(y)) / sample_rate
    basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y.astype(np.float64), rcond=None)
    return float(np.hypot(*coef))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_round_trip_at_the_files_rate(tmp_path, fmt, rate):
    """Read at its own rate, a file is what was written: to one 16-bit step for wav and flac,
    and at > 20 dB SNR for (lossy) ogg; the header gives rate, channels and length."""
    t = np.arange(rate // 4)[:, None] / rate
    x = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)  # [n, 1] tonal, as Vorbis expects
    path = tmp_path / f"x.{fmt}"
    soundfile.write(path, x, rate)
    header = audio.info(path)
    assert (header.sample_rate, header.channels, header.frames) == (rate, 1, len(x))
    assert header.seconds == len(x) / rate
    y = audio.load(path, rate)
    assert y.shape == x.shape and y.dtype == np.float32
    if fmt == "ogg":
        assert 10 * np.log10(np.sum(x**2) / np.sum((y - x) ** 2)) > 20
    else:
        np.testing.assert_allclose(y, x, atol=PCM16, rtol=0)


def test_stereo_mixes_to_the_mean(tmp_path):
    x = _noise(4000, 2)
    x[:, 1] *= -0.5  # channels unlike each other
    path = tmp_path / "stereo.wav"
    soundfile.write(path, x, 44100, subtype="FLOAT")
    np.testing.assert_allclose(audio.load(path, 44100), x.mean(axis=1, keepdims=True), atol=1e-7, rtol=0)
    np.testing.assert_allclose(audio.load(path, 44100, mono=False), x, atol=1e-7, rtol=0)


@pytest.mark.parametrize(("rate", "sample_rate"), [(48000, 44100), (22050, 44100), (44100, 22050), (44100, 16000)])
def test_resampling_keeps_a_sines_frequency_and_amplitude(tmp_path, rate, sample_rate):
    """A 1 s, 0.5-amplitude 1 kHz sine (plus a weaker 3 kHz one) resampled: its spectrum peaks
    at 1 kHz (1 Hz bins), both amplitudes within 1e-5 (measured: < 2e-7), the samples are the
    sines at the new instants to 1e-5 (measured: < 4e-7), and its length is `frames *
    sample_rate // rate`."""
    t = np.arange(rate) / rate
    x = 0.5 * np.sin(2 * np.pi * 1000 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)
    path = tmp_path / "sine.wav"
    soundfile.write(path, x, rate, subtype="FLOAT")
    y = audio.load(path, sample_rate)[:, 0]
    assert len(y) == sample_rate
    spectrum = np.abs(np.fft.rfft(y.astype(np.float64)))
    assert np.argmax(spectrum) == 1000  # bin k is k Hz for one second
    middle = y[sample_rate // 10 : -sample_rate // 10]  # away from the filter's edges
    offset = sample_rate // 10 / sample_rate
    for f, amplitude in [(1000, 0.5), (3000, 0.2)]:
        assert _fit_sine(middle, f, sample_rate) == pytest.approx(amplitude, rel=1e-5)
    u = offset + np.arange(len(middle)) / sample_rate
    np.testing.assert_allclose(
        middle, 0.5 * np.sin(2 * np.pi * 1000 * u) + 0.2 * np.sin(2 * np.pi * 3000 * u), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("fmt", ["wav", "ogg", "mp3"])
@pytest.mark.parametrize(("rate", "sample_rate"), [(44100, 44100), (48000, 44100), (22050, 44100), (44100, 22050)])
def test_a_segment_is_that_part_of_the_whole_file(tmp_path, fmt, rate, sample_rate):
    """`load_segment` decodes only its part, yet equals the whole file loaded and sliced (to
    1e-6, resampled or not), at the start, inside and at the end."""
    path = tmp_path / f"x.{fmt}"
    soundfile.write(path, _noise(rate, 2), rate)
    whole = audio.load(path, sample_rate)
    assert len(whole) == sample_rate
    for start, length in [(0, 100), (5000, 3001), (12345, 1), (sample_rate - 700, 700)]:
        part = audio.load_segment(path, start, length, sample_rate)
        assert part.shape == (length, 1)
        np.testing.assert_allclose(part, whole[start : start + length], atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "text.wav").write_text("not audio")
    soundfile.write(d / "empty.wav", np.zeros((0, 1)), 44100)
    soundfile.write(d / "short.wav", np.zeros(100), 22050)
    nan = np.zeros(1000)
    nan[500] = np.nan
    soundfile.write(d / "nan.wav", nan, 44100, subtype="FLOAT")
    loud = np.zeros(1000)
    loud[600] = 9.0  # past audio.MAX_AUDIO_PEAK: integer PCM never scaled
    soundfile.write(d / "loud.wav", loud, 44100, subtype="FLOAT")
    for fmt in ("wav", "aiff"):  # a third of the file: libsndfile counts only the frames present
        soundfile.write(d / f"whole.{fmt}", 0.1 * np.ones(3000), 16000)
        (d / f"cut.{fmt}").write_bytes((d / f"whole.{fmt}").read_bytes()[: (d / f"whole.{fmt}").stat().st_size // 3])
    soundfile.write(d / "whole.ogg", 0.3 * np.sin(np.arange(160000) * 0.05), 16000, format="OGG")
    (d / "cut.ogg").write_bytes((d / "whole.ogg").read_bytes()[: (d / "whole.ogg").stat().st_size // 2])  # no last page: no length
    header = bytearray((d / "whole.wav").read_bytes())
    header[24:32] = struct.pack("<II", 1, 2)  # the rate field damaged: 3000 frames at 1 Hz, 48 million samples at 16 kHz
    (d / "rate_1.wav").write_bytes(header)
    return d


BAD = [
    # (file, call, message pattern; {d} is the folder)
    ("missing.wav", lambda p: audio.load(p, 44100), r"audio {d}/missing.wav does not exist"),
    (".", lambda p: audio.info(p), r"audio {d} is a folder; give a file"),
    (
        "text.wav",
        lambda p: audio.load(p, 44100),
        r"audio {d}/text.wav is not audio soundfile can read \(wav, flac, ogg \(Vorbis, Opus\), mp3 or aiff\): ",
    ),
    (
        "empty.wav",
        lambda p: audio.load(p, 44100),
        r"audio {d}/empty.wav holds no samples; give a file with audio in it",
    ),
    (
        "short.wav",
        lambda p: audio.load(p, 44100, min_samples=441),
        r"audio {d}/short.wav is 0.005 s \(200 samples at 44100 Hz\); at least 441 samples \(0.010 s\)",
    ),
    ("nan.wav", lambda p: audio.load(p, 44100), r"audio {d}/nan.wav holds NaN or infinite samples; repair the file or leave it out"),
    (
        "nan.wav",
        lambda p: audio.load_segment(p, 900, 200, 44100),
        r"samples \[900, 1100\) asked for, but it holds 1000 at 44100 Hz",
    ),
    ("nan.wav", lambda p: audio.load_segment(p, 0, 0, 44100), r"samples \[0, 0\) asked for"),
    ("nan.wav", lambda p: audio.load(p, 44100, what="prompt audio"), r"^prompt audio {d}/nan.wav holds NaN"),
    (
        "loud.wav",
        lambda p: audio.load(p, 44100),
        r"audio {d}/loud.wav peaks at 9: its samples are not scaled as audio \(full scale 1; a float file may go up "
        r"to 8\); normalise it",
    ),
    *[
        (f"cut.{fmt}", audio.scan, rf"audio {{d}}/cut.{fmt} holds \d+ bytes of audio where its header gives 600[08]: it is cut short")
        for fmt in ("wav", "aiff")
    ],
    ("cut.ogg", audio.info, r"audio {d}/cut.ogg holds \d+ bytes but no samples libsndfile can count: it may be cut short"),
    ("rate_1.wav", lambda p: audio.load(p, 16000), r"its header gives a sample rate of 1 Hz, outside 1000 to 768000 Hz"),
]


@pytest.mark.parametrize(("name", "call", "pattern"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_files_are_named(bad, name, call, pattern):
    with pytest.raises(InputError, match=pattern.replace("{d}", re.escape(str(bad)))):
        call(bad / name)


def test_files_a_writer_left_open_or_padded_read(tmp_path):
    """Not cut short: WAVs whose data size is a streaming writer's placeholder (ffmpeg's
    0xFFFFFFFF, SoX's 0x7ffff000, GStreamer's 0x7fff0000), and an odd-length 8-bit one with no
    pad byte, all read whole."""
    soundfile.write(tmp_path / "whole.wav", 0.1 * np.ones(3000), 16000)
    names = []
    for size in (0xFFFFFFFF, 0x7FFFF000, 0x7FFF0000):
        stream = bytearray((tmp_path / "whole.wav").read_bytes())
        at = stream.find(b"data") + 4
        stream[at : at + 4] = struct.pack("<I", size)
        (tmp_path / f"stream_{size:x}.wav").write_bytes(stream)
        names.append((f"stream_{size:x}.wav", 3000))
    soundfile.write(tmp_path / "odd.wav", 0.1 * np.ones(1001), 16000, subtype="PCM_U8")
    for name, n in (*names, ("odd.wav", 1001)):
        audio.scan(tmp_path / name)
        assert audio.load(tmp_path / name, 16000).shape == (n, 1)


def test_resampling_keeps_a_loud_file_within_the_bound(tmp_path):
    """A square wave peaking at 7.9 (accepted) rings past 8 when resampled: held to 8, as
    `encode` takes it (it was refused there, after the model loaded, naming no file)."""
    t = np.arange(44100)
    soundfile.write(tmp_path / "square.wav", 7.9 * np.sign(np.sin(2 * np.pi * 1000 * t / 44100)), 44100, subtype="FLOAT")
    x = audio.load(tmp_path / "square.wav", 16000)
    assert 7.9 < np.abs(x).max() <= audio.MAX_AUDIO_PEAK


def test_a_segment_clear_of_bad_samples_reads(bad):
    """Only the decoded part is checked: the samples before the NaN or the loud one are usable."""
    for name in ("nan.wav", "loud.wav"):
        assert np.array_equal(audio.load_segment(bad / name, 0, 400, 44100), np.zeros((400, 1), np.float32))


@pytest.mark.slow  # ~25 s cold: builds and samples tiny_5b
@pytest.mark.skipif("MP3" not in soundfile.available_formats(), reason="this libsndfile has no mp3")
def test_a_file_cut_short_is_named(tmp_path):
    """An mp3 cut short (an unfinished download) keeps its header's length: reading past what
    it holds returned fewer samples than asked, and training crashed on the short window.
    `scan` (what training checks every song with) and `load_segment` name it; the part it
    holds reads."""
    whole, cut = tmp_path / "whole.mp3", tmp_path / "cut.mp3"
    soundfile.write(whole, 0.3 * np.sin(np.arange(32000) * 0.05), 16000, format="MP3")
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert audio.info(cut).frames == 32000
    short = rf"audio {re.escape(str(cut))} decodes to \d+ of the 32000 frames its header gives: it is cut short"
    with pytest.raises(InputError, match=short):
        audio.scan(cut)
    with pytest.raises(InputError, match=short):
        audio.load_segment(cut, 30000, 1000, 16000)
    assert audio.load_segment(cut, 0, 1000, 16000).shape == (1000, 1)
    audio.scan(whole)


def test_primed_sampling_takes_a_48khz_stereo_prompt(tmp_path, monkeypatch):
    """`--prompt-audio` at 48 kHz in stereo primes tiny_5b (44.1 kHz): the codes continued are
    those of the prompt resampled and mixed (which is the mean of the two sines at 44.1 kHz, to 1e-4: the file is 16-bit)."""
    t = np.arange(4800) / 48000  # 0.1 s
    left, right = 0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)
    prompt = tmp_path / "prompt.wav"
    soundfile.write(prompt, np.stack([left, right], axis=1), 48000)
    loaded, load = [], cli_sample.load_model
    monkeypatch.setattr(cli_sample, "load_model", lambda *a: loaded.append(load(*a)) or loaded[-1])
    argv = ["sample", "--model", "tiny_5b", "--levels", "2", "--seconds", "0.05", "--mode", "primed"]
    main(argv + ["--prompt-audio", str(prompt), "--prompt-seconds", "0.03", "--out", str(tmp_path / "p")])
    used = int(0.03 * 44100) // 128 * 128  # 1280 samples: 10 top-level tokens
    mono = audio.load_segment(prompt, 0, used, 44100)
    u = np.arange(used)[200:-200] / 44100  # away from the file's start and the segment's end
    np.testing.assert_allclose(
        mono[200:-200, 0],
        (0.3 * np.sin(2 * np.pi * 440 * u) + 0.2 * np.sin(2 * np.pi * 660 * u)) / 2,
        atol=1e-4,
        rtol=0,
    )
    codes = np.load(tmp_path / "p" / "codes.npz")["level_2"]
    assert codes.shape == (1, int(0.05 * 44100) // 128)
    np.testing.assert_array_equal(codes[:, : used // 128], np.asarray(loaded[0].encode(mono[None], start_level=2)[0]))
