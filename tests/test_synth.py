"""The synthetic music dataset (`jukebox_jax.synth`, `jukebox-jax data synth`) and the measures
that tell its music from noise."""

from __future__ import annotations

import dataclasses
import errno
import itertools
import json
import shutil

import numpy as np
import pytest
import soundfile

from jukebox_jax.cli import main
from jukebox_jax.errors import InputError, JobError
from jukebox_jax.io import TEMP_PREFIX, exclusive
from jukebox_jax.synth import SynthConfig, compare, describe, generate, make_song, song_path, vocals
from jukebox_jax.synth.dataset import song_score, timed_notes
from jukebox_jax.synth.instruments import midi_hz, render_notes
from jukebox_jax.synth.measures import (
    best_scale,
    chroma,
    in_tune_share,
    onset_autocorrelation,
    scale_mask,
    spectral_flatness,
)
from jukebox_jax.synth.score import (
    ARTISTS,
    GENRES,
    KEY_NAMES,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    WORDS,
    WORDS_PER_LINE,
    Comping,
    Scale,
)
from jukebox_jax.synth.spectrum import power_spectrogram

SR = 16000
CONFIG = SynthConfig(songs=12, seconds=6.0, seed=3, sample_rate=SR, vocals=False)
needs_espeak = pytest.mark.skipif(not vocals.available(), reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def songs() -> list[tuple[np.ndarray, dict]]:
    """One song of every (artist, genre) pair."""
    return [make_song(CONFIG, i) for i in range(CONFIG.songs)]


def noises(n: int, count: int = 3) -> dict[str, list[np.ndarray]]:
    """White noise; noise through a random decaying FIR filter, like a random-weight
    convolutional decoder; and integrated (brown) noise."""
    rng = np.random.default_rng(0)
    fir = [
        np.convolve(rng.standard_normal(n), rng.standard_normal(64) * np.exp(-np.arange(64) / 16), "same")
        for _ in range(count)
    ]
    brown = [np.cumsum(rng.standard_normal(n)) for _ in range(count)]
    brown = [x - np.convolve(x, np.ones(401) / 401, "same") for x in brown]
    return {"white": [rng.standard_normal(n) for _ in range(count)], "filtered": fir, "brown": brown}


@pytest.mark.parametrize("pitch", [45, 52, 58, 61, 67, 74, 83])
def test_pure_tone_lands_in_its_pitch_class(pitch):
    t = np.arange(3 * SR) / SR
    hist = chroma(np.sin(2 * np.pi * float(midi_hz(pitch)) * t), SR)
    assert np.argmax(hist) == pitch % 12
    assert hist[pitch % 12] > 0.9


def test_best_scale_of_a_played_scale():
    """The tones of A harmonic minor, played one after the other, fit that scale on A (and no
    mode of the major scale holds as much of them)."""
    t = np.arange(SR // 2) / SR
    x = np.concatenate([np.sin(2 * np.pi * float(midi_hz(57 + s)) * t) for s in Scale.HARMONIC_MINOR.value])
    scale, tonic, share = best_scale(chroma(x, SR))
    assert (scale, KEY_NAMES[tonic]) == (Scale.HARMONIC_MINOR, "A")
    assert share > 0.95


@pytest.mark.parametrize("cents,low,high", [(0, 0.99, 1.0), (5, 0.99, 1.0), (20, 0.0, 0.01), (50, 0.0, 0.01)])
def test_in_tune_share_of_harmonic_tones(cents, low, high):
    """Harmonic tones on equal-tempered pitches (low, middle and high, overtones included) are in
    tune; moved up by 20 cents or more, not: the peaks' interpolated frequencies are that precise."""
    t = np.arange(3 * SR) / SR
    x = sum(
        np.sin(2 * np.pi * float(midi_hz(p)) * 2 ** (cents / 1200) * k * t) / k for p in (45, 60, 76) for k in (1, 2, 3)
    )
    assert low <= in_tune_share(x, SR) <= high


def test_in_tune_share_tells_detuned_notes(songs):
    """Songs are in tune (>= 0.9), noise is not (peaks anywhere: about 2 x 10 / 100), and neither are
    the songs' notes each played 30 to 50 cents off, up or down at random (below 0.05), which the
    scale share hardly sees (each note still rounds to its own pitch class): a measure of its own."""
    rng = np.random.default_rng(0)
    for index, (audio, meta) in enumerate(songs):  # song `index` of CONFIG
        score, _ = song_score(CONFIG, index)
        parts = ((score.genre.chords, score.chords), (score.genre.bass, score.bass), (score.artist.lead, score.melody))
        off = [
            [(t, d, p + rng.choice([-1, 1]) * rng.uniform(0.3, 0.5), v) for t, d, p, v in timed_notes(score, notes)]
            for _, notes in parts
        ]
        detuned = sum(render_notes(instrument, notes, len(audio), SR) for (instrument, _), notes in zip(parts, off))
        assert in_tune_share(audio, SR) > 0.9, meta
        assert in_tune_share(detuned, SR) < 0.05, meta
        assert describe(detuned, SR)["scale_share"] > 0.7, meta
    for name, xs in noises(3 * SR).items():
        assert all(0.1 < in_tune_share(x, SR) < 0.35 for x in xs), name


def test_measures_separate_songs_from_noise(songs):
    audio = [a for a, _ in songs]
    ours = [describe(a, SR) for a in audio]
    for name, xs in noises(len(audio[0])).items():
        theirs = [describe(x, SR) for x in xs]
        assert min(d["scale_share"] for d in ours) > max(d["scale_share"] for d in theirs) + 0.2, name
        assert min(d["onset_regularity"] for d in ours) > 0.5, name
        assert min(d["chroma_change"] for d in ours) > 0.3 > max(d["chroma_change"] for d in theirs) + 0.05, name
        assert max(d["onset_regularity"] for d in theirs) < 0.2, name
        assert 10 * max(d["spectral_flatness"] for d in ours) < min(d["spectral_flatness"] for d in theirs), name
        summary = compare(xs, audio, SR)
        assert summary["samples"]["chroma_distance"] > summary["reference"]["chroma_distance"] + 0.15, name
        assert summary["samples"]["scale_share"] < summary["reference"]["scale_share"] - 0.2, name


def test_measures_separate_songs_from_a_random_vqvae():
    """Random codes decoded by the tiny VQ-VAE structure with random weights (what an untrained
    model makes) at each level: no beat, flat spectra, stationary pitch classes. Their scale
    share and histogram profile are not a tell: the decoder buzzes at its code rate (44100 / 128
    Hz at the top level, near F4), a harmonic tone whose overtones lie on a major scale."""
    import jax

    from jukebox_jax import Jukebox, JukeboxConfig, preset

    config = preset("tiny_vqvae")
    sr = config.sample_rate
    reference = [make_song(SynthConfig(seconds=3.0, sample_rate=sr, vocals=False), i)[0] for i in range(12)]
    jb = Jukebox.init(JukeboxConfig(vqvae=config), jax.random.key(0))
    rng = np.random.default_rng(0)
    for level, hop in enumerate(config.hop_lengths):
        codes = rng.integers(config.l_bins, size=(2, 3 * sr // hop)).astype(np.int32)
        decoded = list(np.asarray(jb.decode([codes], start_level=level))[:, :, 0])
        summary = compare(decoded, reference, sr)
        ours, theirs = summary["reference"], summary["samples"]
        assert theirs["onset_regularity"] < 0.3 and ours["onset_regularity"] > 0.5, level
        assert theirs["spectral_flatness"] > 10 * ours["spectral_flatness"], level
        assert theirs["chroma_change"] < 0.15 and ours["chroma_change"] > 0.3, level


def test_compare_of_songs_with_songs_is_close(songs):
    """Held-out songs of the same dataset sit with the reference, measure by measure."""
    summary = compare([make_song(CONFIG, i)[0] for i in range(12, 24)], [a for a, _ in songs], SR)
    close = (
        ("scale_share", 0.05),
        ("in_tune_share", 0.05),
        ("chroma_distance", 0.05),
        ("chroma_change", 0.1),
        ("onset_regularity", 0.15),
    )
    for measure, tolerance in close:
        assert abs(summary["samples"][measure] - summary["reference"][measure]) < tolerance, measure


def test_notes_are_on_the_scale(songs):
    for index, (audio, meta) in enumerate(songs):
        score, _ = song_score(CONFIG, index)
        allowed = set((score.tonic + np.array(score.scale.value)) % 12)
        assert {n.pitch % 12 for n in score.melody + score.chords + score.bass} <= allowed
        melody = render_notes(score.artist.lead, timed_notes(score, score.melody), len(audio), SR)
        mask = scale_mask(score.scale, KEY_NAMES.index(meta["key"]))
        assert chroma(melody, SR) @ mask > 0.9, meta  # FM and higher harmonics put a little power off the scale
        assert chroma(audio, SR) @ mask > 0.8, meta


def test_beat_comping_strikes_chords_and_bass_on_every_beat():
    """`Comping.BEAT`: every beat of every bar starts the bar's chord (three notes) and its root in the bass, so
    the beat is in the low and middle bands too, which a coarse top level keeps (RESULTS.md)."""
    for index in range(12):
        score, _ = song_score(dataclasses.replace(CONFIG, comping=Comping.BEAT), index)
        beats = set(range(0, score.bars * STEPS_PER_BAR, STEPS_PER_BEAT))
        chord_starts = [n.start for n in score.chords]
        assert set(chord_starts) == beats and all(chord_starts.count(b) == 3 for b in beats)
        assert sorted(n.start for n in score.bass) == sorted(beats)
        assert all(n.steps < STEPS_PER_BEAT for n in score.chords + score.bass)  # a gap before the next beat


def test_a_fixed_key_and_scale_give_the_same_songs_transposed():
    """`key` and `scale` fix every song's key and scale; the rest of each song (tempo, rhythm,
    chord degrees, melody contour, drums, lyrics) is the song drawn without them, moved to
    that key: each part's pitches by one interval where the scale is the song's own."""
    fixed = dataclasses.replace(CONFIG, key="D", scale="major")
    for index in range(12):
        own, _ = song_score(CONFIG, index)
        moved, _ = song_score(fixed, index)
        assert (moved.key, moved.scale) == ("D", Scale.MAJOR), index
        assert (moved.tempo_bpm, moved.drums, moved.lyrics) == (own.tempo_bpm, own.drums, own.lyrics)
        mask = scale_mask(Scale.MAJOR, KEY_NAMES.index("D"))
        for a, b in ((own.chords, moved.chords), (own.bass, moved.bass), (own.melody, moved.melody)):
            assert [(n.start, n.steps, n.velocity) for n in a] == [(n.start, n.steps, n.velocity) for n in b]
            assert all(mask[n.pitch % 12] for n in b), index
            if own.scale is Scale.MAJOR:
                assert len({m.pitch - n.pitch for n, m in zip(a, b)}) == 1, index


def test_onsets_follow_the_tempo_grid(songs):
    """The onset strength repeats at the song's own beat (or half or twice it)."""
    for audio, meta in songs:
        corr = onset_autocorrelation(audio, SR)
        beat = 60 / meta["tempo_bpm"] / 0.01  # in onset frames
        at_beat = max(corr[round(f * beat) - 1 : round(f * beat) + 2].max() for f in (0.5, 1, 2))
        assert at_beat > 0.5, meta
        assert describe(audio, SR)["onset_regularity"] > 0.5, meta


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("echo 'Error: no voice' >&2; exit 1", r"espeak-ng did not speak 'la' in voice 'en' \(Error: no voice\); repair it .* make instrumental songs \(--no-vocals; SynthConfig\(vocals=False\)\)"),
        ("printf 'RIFF'", r"espeak-ng did not speak 'la' in voice 'en' \(.+\); repair it"),
    ],
)
def test_a_broken_espeak_is_named(tmp_path, monkeypatch, script, message):
    """An espeak-ng that fails or writes no wav: a one-line error (a CalledProcessError traceback)."""
    fake = tmp_path / "espeak-ng"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(vocals, "ESPEAK", str(fake))
    vocals.speak.cache_clear()
    with pytest.raises(InputError, match=message):
        vocals.speak("la", "en")
    vocals.speak.cache_clear()


def test_pitch_measures_read_the_same_seconds_at_every_rate():
    """The same song rendered at 22050 and 24000 Hz measures alike: frames of fixed seconds
    (rounded to powers of two, they were 0.37 s at one rate and 0.68 s at the other: chroma
    change 0.405 against 0.481 over four songs). The tempo search stays in 60 to 180 bpm
    (its fastest lag was 181.8 bpm)."""
    config = SynthConfig(songs=4, seconds=6.0, seed=1, vocals=False)
    for i in range(2):
        a, b = (describe(make_song(dataclasses.replace(config, sample_rate=sr), i)[0], sr) for sr in (22050, 24000))
        for key in ("scale_share", "in_tune_share", "chroma_change"):
            assert abs(a[key] - b[key]) < 0.01, (i, key, a[key], b[key])
    assert 60 <= describe(np.zeros(32000), 16000)["tempo_bpm"] <= 180


def _accuracy(features: np.ndarray, labels: np.ndarray, train: np.ndarray) -> float:
    """Nearest class mean's accuracy on the songs not in `train`."""
    classes = sorted(set(labels))
    means = np.array([features[train & (labels == c)].mean(0) for c in classes])
    guess = np.array([classes[np.argmin(((means - f) ** 2).sum(1))] for f in features[~train]])
    return float((guess == labels[~train]).mean())


def test_artists_and_genres_differ_measurably():
    """A nearest-mean classifier fitted on 24 songs names the artist of 24 others from their
    spectrum (log power in 24 bands), and the genre from their rhythm (onset
    autocorrelation), far above chance (1/4 and 1/3)."""
    config = SynthConfig(songs=48, seconds=6.0, seed=7, vocals=False)
    made = [make_song(config, i) for i in range(config.songs)]
    hz = np.fft.rfftfreq(1024, 1 / SR)
    edges = np.geomspace(50, 7000, 25)
    spectra = []
    for audio, _ in made:
        power = power_spectrogram(audio, 1024, 512).mean(0)
        bands = np.array([power[(hz >= lo) & (hz < hi)].sum() for lo, hi in itertools.pairwise(edges)])
        spectra.append(np.log(bands / bands.sum() + 1e-9))
    rhythm = np.array([onset_autocorrelation(audio, SR)[20:150] for audio, _ in made])
    train = np.arange(len(made)) < 24
    artists = np.array([m["artist"] for _, m in made])
    genres = np.array([m["genre"] for _, m in made])
    assert _accuracy(np.array(spectra), artists, train) >= 0.6
    assert _accuracy(rhythm, genres, train) >= 0.6
    tempi = {g.name: [m["tempo_bpm"] for _, m in made if m["genre"] == g.name] for g in GENRES}
    for genre in GENRES:
        assert genre.tempo_bpm[0] <= min(tempi[genre.name]) <= max(tempi[genre.name]) <= genre.tempo_bpm[1]


def test_same_seed_same_song_whatever_the_count(tmp_path):
    config = SynthConfig(songs=3, seconds=2.0, seed=11, vocals=False)
    generate(tmp_path / "a", config)
    generate(str(tmp_path / "b"), config)  # a str path too (it was an AttributeError)
    generate(tmp_path / "c", SynthConfig(songs=5, seconds=2.0, seed=11, vocals=False))
    for i in range(3):
        a = (tmp_path / "a" / song_path(i)).read_bytes()
        assert a == (tmp_path / "b" / song_path(i)).read_bytes() == (tmp_path / "c" / song_path(i)).read_bytes()
    np.testing.assert_array_equal(make_song(config, 2)[0], make_song(config, 2)[0])
    assert not np.array_equal(
        make_song(config, 2)[0], make_song(SynthConfig(songs=3, seconds=2.0, seed=12, vocals=False), 2)[0]
    )
    assert (tmp_path / "a" / song_path(0)).read_bytes() != (tmp_path / "a" / song_path(1)).read_bytes()


def test_metadata_schema_and_audio(tmp_path, songs):
    config = SynthConfig(songs=12, seconds=2.5, seed=5, vocals=False)
    metadata = generate(tmp_path, config)
    assert json.loads((tmp_path / "metadata.json").read_text()) == metadata
    assert set(metadata) == {"sample_rate", "seed", "artists", "genres", "songs"}
    assert (metadata["sample_rate"], metadata["seed"]) == (SR, 5)
    assert metadata["artists"] == [a.name for a in ARTISTS] and metadata["genres"] == [g.name for g in GENRES]
    assert list(metadata["songs"]) == [song_path(i) for i in range(12)]
    assert {(m["artist"], m["genre"]) for m in metadata["songs"].values()} == {
        (a.name, g.name) for a in ARTISTS for g in GENRES
    }
    for path, meta in metadata["songs"].items():
        assert set(meta) == {"artist", "genre", "lyrics", "key", "scale", "tempo_bpm", "vocals", "seconds"}
        assert meta["key"] in KEY_NAMES and meta["scale"] in {s.name.lower() for s in Scale}
        assert meta["vocals"] is False and meta["seconds"] == 2.5
        lines = meta["lyrics"].split("\n")
        assert lines and all(1 <= len(line.split()) <= WORDS_PER_LINE for line in lines)
        assert set(meta["lyrics"].split()) <= set(WORDS)
        audio, rate = soundfile.read(tmp_path / path)
        assert rate == SR and audio.shape == (int(2.5 * SR),)
        assert 0.8 < np.abs(audio).max() <= 1.0  # loud, never clipped
    for audio, _ in songs:
        assert np.abs(audio).max() <= 1.0


def test_lyrics_stop_where_the_song_does():
    """A longer song sings more of the same words: its lyrics start with the shorter one's."""
    short, long = (make_song(SynthConfig(seconds=s, seed=2, vocals=False), 0)[1]["lyrics"] for s in (3.0, 12.0))
    assert long.startswith(short) and len(long.split()) > len(short.split())


def test_a_dataset_past_the_free_space_is_refused_before_a_song(tmp_path, monkeypatch):
    """Its FLAC songs take at least half of their 16-bit PCM (`FLAC_SHARE`): a rerun counts
    only the songs still missing."""
    config = SynthConfig(songs=3, seconds=2.0, seed=1, sample_rate=SR, vocals=False)
    generate(tmp_path, config)
    (tmp_path / song_path(2)).unlink()
    pcm = 2 * SR * 2  # bytes of one song's 16-bit PCM
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=pcm // 2 - 1))
    with pytest.raises(OSError, match=rf"writing 1 song of 2 s at {SR} Hz .* needs about 32.0 kB, 32.0 kB are free") as e:
        generate(tmp_path, config)
    assert e.value.errno == errno.ENOSPC and not (tmp_path / song_path(2)).exists()
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=pcm // 2))
    generate(tmp_path, config)
    assert (tmp_path / song_path(2)).exists()


def test_resume_and_refuse(tmp_path):
    config = SynthConfig(songs=3, seconds=2.0, seed=1, vocals=False)
    generate(tmp_path, config)
    first = {i: (tmp_path / song_path(i)).read_bytes() for i in range(3)}
    kept = (tmp_path / song_path(0)).stat().st_mtime_ns
    (tmp_path / song_path(1)).unlink()
    leftover = tmp_path / "songs" / f"{TEMP_PREFIX}x.flac"
    leftover.write_bytes(b"half a song")
    generate(tmp_path, config)
    assert (tmp_path / song_path(1)).read_bytes() == first[1]
    for damage in ("garbage", "another length", "cut short"):  # cut short, its header said it whole: it was kept
        if damage == "garbage":
            (tmp_path / song_path(2)).write_bytes(b"not audio")
        elif damage == "another length":
            soundfile.write(tmp_path / song_path(2), np.zeros(SR // 2), SR)
        else:
            (tmp_path / song_path(2)).write_bytes(first[2][: len(first[2]) // 3])
        generate(tmp_path, config)  # made again: it was skipped as there
        assert (tmp_path / song_path(2)).read_bytes() == first[2]
    assert (tmp_path / song_path(0)).stat().st_mtime_ns == kept and not leftover.exists()
    with pytest.raises(JobError, match=r"seed 1 \(asked 2\)"):
        generate(tmp_path, SynthConfig(songs=3, seconds=2.0, seed=2, vocals=False))
    with pytest.raises(JobError, match=r"songs 3 \(asked 4\)"):
        generate(tmp_path, SynthConfig(songs=4, seconds=2.0, seed=1, vocals=False))
    with pytest.raises(JobError, match=r"comping 'bar' \(asked 'beat'\)"):
        generate(tmp_path, dataclasses.replace(config, comping=Comping.BEAT))
    with pytest.raises(JobError, match=r"key None \(asked 'C'\), scale None \(asked 'major'\)"):
        generate(tmp_path, dataclasses.replace(config, key="C", scale="major"))
    run = json.loads((tmp_path / "synth.json").read_text())
    old = ("comping", "key", "scale")
    (tmp_path / "synth.json").write_text(json.dumps({k: v for k, v in run.items() if k not in old}))
    generate(tmp_path, config)  # a dataset from before these had a choice is bar-comped, in each song's key: it resumes
    for damaged, why in (("{", "cannot be read"), ("[]", "is not what `data synth` writes there")):
        (tmp_path / "synth.json").write_text(damaged)
        with pytest.raises(JobError, match=rf"synth.json {why}.*; give another --out"):
            generate(tmp_path, config)
    (tmp_path / "synth.json").write_text(json.dumps(run))
    with exclusive(tmp_path, ("synth.json",), "synthetic dataset"), pytest.raises(InputError, match="is in use"):
        generate(tmp_path, config)  # a second process on the same folder (io.exclusive)
    other = tmp_path / "other"
    other.mkdir()
    (other / "metadata.json").write_text("{}")
    with pytest.raises(InputError, match=r"holds other files \(metadata.json\), not a synthetic dataset"):
        generate(other, config)


def test_bad_input():
    cases = {
        "songs": (0, r"songs 0 \(give 1 to 99999\)"),
        "seconds": (0.5, r"seconds 0.5 \(give 1 to 600\)"),
        "sample_rate": (100, r"sample_rate 100 \(give 4000 to 48000\)"),
        "seed": (-1, r"seed -1 \(give 0 to 4294967295\)"),
    }
    for name, (value, message) in cases.items():  # only what is out of range is named
        with pytest.raises(InputError, match=rf"^synth: {message}$"):
            SynthConfig(**{name: value})
    with pytest.raises(InputError, match=r"^synth: seed 4294967296 \(give 0 to 4294967295\)$"):
        SynthConfig(seed=2**32)  # numpy splits seeds into 32-bit words: song 0 of seed 2**32 + 7 drew song 1 of seed 7
    with pytest.raises(InputError, match=r"^synth: songs 100000000 \(give 1 to 99999\); seconds 1e\+306 \(give 1 to 600\)$"):
        SynthConfig(songs=10**8, seconds=1e306)
    with pytest.raises(InputError, match=r"^synth: comping 'bars' \(give one of bar, beat\)$"):  # was a KeyError after synth.json
        SynthConfig(comping="bars")
    assert SynthConfig(comping="beat").comping is Comping.BEAT
    with pytest.raises(InputError, match=r"^synth: key 'H' \(give one of C, C#, D, .*, B\)$"):
        SynthConfig(key="H")
    with pytest.raises(InputError, match=r"^synth: scale 'Major' \(give one of major, mixolydian, dorian, minor, harmonic_minor\)$"):
        SynthConfig(scale="Major")
    with pytest.raises(InputError, match="at least 2 s"):
        describe(np.zeros(SR), SR)
    with pytest.raises(InputError, match="at least one"):
        compare([], [np.zeros(3 * SR)], SR)


def test_vocals_without_espeak_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(vocals.shutil, "which", lambda name: None)
    vocals.speak.cache_clear()
    with pytest.raises(InputError, match="apt-get install espeak-ng"):
        generate(tmp_path, SynthConfig(songs=1, seconds=2.0))
    with pytest.raises(InputError, match="apt-get install espeak-ng"):
        make_song(SynthConfig(songs=1, seconds=2.0), 0)
    assert not (tmp_path / "synth.json").exists()


def test_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(vocals, "available", lambda: False)
    main(
        [
            "data",
            "synth",
            "--out",
            str(tmp_path),
            "--songs",
            "2",
            "--seconds",
            "2",
            "--seed",
            "4",
            "--sample-rate",
            "8000",
        ]
    )
    out = capsys.readouterr().out
    assert "espeak-ng is not installed" in out and "2 songs of 2 s at 8000 Hz (instrumental)" in out
    assert "note: below 16000 Hz the FM instruments' high notes (bell, brass, FM bass) alias" in out
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["sample_rate"] == 8000 and len(metadata["songs"]) == 2
    main(
        [
            "data",
            "synth",
            "--out",
            str(tmp_path),
            "--songs",
            "2",
            "--seconds",
            "2",
            "--seed",
            "4",
            "--sample-rate",
            "8000",
            "--no-vocals",
        ]
    )
    assert "resuming: 2 of 2 songs" in capsys.readouterr().out
    main(["data", "synth", "--out", str(tmp_path / "c"), "--songs", "2", "--seconds", "2", "--key", "C", "--scale", "dorian"])
    songs = json.loads((tmp_path / "c" / "metadata.json").read_text())["songs"].values()
    assert {(s["key"], s["scale"]) for s in songs} == {("C", "dorian")}
    with pytest.raises(SystemExit) as refused:
        main(
            [
                "data",
                "synth",
                "--out",
                str(tmp_path),
                "--songs",
                "2",
                "--seconds",
                "2",
                "--seed",
                "5",
                "--sample-rate",
                "8000",
            ]
        )
    # a usage error of `data synth` (exit 2), as sample's and train's are
    assert refused.value.code == 2 and "jukebox-jax data synth: error: " in (err := capsys.readouterr().err), err
    assert "other arguments: seed 4 (asked 5)" in err
    with pytest.raises(SystemExit):
        main(["data", "synth", "--out", str(tmp_path), "--seconds", "0"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["data", "synth", "--out", str(tmp_path / "metadata.json"), "--songs", "1", "--no-vocals"])  # a file
    assert refused.value.code == 2 and f"error: argument --out: {tmp_path / 'metadata.json'} is a file; give a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # below a file: it was "Not a directory", exit code 1
        main(["data", "synth", "--out", str(tmp_path / "metadata.json" / "sub"), "--songs", "1", "--no-vocals"])
    assert refused.value.code == 2 and f"error: argument --out: {tmp_path / 'metadata.json'} is a file; give a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # a folder of other files: nothing is written into it
        main(["data", "synth", "--out", str(tmp_path / "songs"), "--songs", "1", "--no-vocals"])
    assert refused.value.code == 2 and "holds other files (song_00000.flac, song_00001.flac), not a synthetic dataset" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "songs").iterdir()) == ["song_00000.flac", "song_00001.flac"]
    monkeypatch.setattr("jukebox_jax.synth.vocals.available", lambda: False)  # asked for, vocals are not left out unsaid
    with pytest.raises(SystemExit) as refused:
        main(["data", "synth", "--out", str(tmp_path / "sung"), "--songs", "1", "--vocals"])
    assert refused.value.code == 2 and "error: --vocals: espeak-ng is not installed" in capsys.readouterr().err
    assert not (tmp_path / "sung").exists()
    killed = tmp_path / "killed"  # killed while writing synth.json: only its temporary file is there
    killed.mkdir()
    (killed / f"{TEMP_PREFIX}synth.json").write_text("{")
    main(["data", "synth", "--out", str(killed), "--songs", "1", "--seconds", "1", "--no-vocals"])
    assert sorted(p.name for p in killed.iterdir()) == ["metadata.json", "songs", "synth.json"]


def test_a_full_disk_is_one_line_saying_how_to_go_on(tmp_path, monkeypatch, capsys):
    def full(path, *_):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("jukebox_jax.synth.dataset.write_audio", full)
    with pytest.raises(SystemExit) as stopped:
        main(["data", "synth", "--out", str(tmp_path / "d"), "--songs", "2", "--seconds", "1", "--no-vocals"])
    song = tmp_path / "d" / song_path(0)
    assert stopped.value.code == f"jukebox-jax data synth: {song}: No space left on device; free some space, then the same command goes on"


@needs_espeak
def test_vocals_sing_the_melody():
    """With espeak-ng the songs are sung: the vocals change the audio, stay deterministic, and
    a sung word lands on its note's pitch class."""
    from jukebox_jax.synth.vocals import sing_word

    sung = SynthConfig(songs=1, seconds=4.0, seed=3, vocals=True)
    audio, meta = make_song(sung, 0)
    assert meta["vocals"] is True and np.abs(audio).max() <= 1.0
    measures = describe(audio, SR)
    assert measures["scale_share"] > 0.8 and measures["onset_regularity"] > 0.5 and measures["spectral_flatness"] < 0.02
    np.testing.assert_array_equal(audio, make_song(sung, 0)[0])
    assert not np.array_equal(audio, make_song(SynthConfig(songs=1, seconds=4.0, seed=3, vocals=False), 0)[0])
    for pitch in (57, 62, 64):
        word = np.concatenate(
            [sing_word(w, ARTISTS[1].voice, pitch, 0.6, np.random.default_rng(0), SR) for w in WORDS[:4]]
        )
        assert np.argmax(chroma(word, SR)) == pitch % 12


def _tones(midis, seconds: float = 3.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(amp * np.sin(2 * np.pi * midi_hz(m) * t) for m in midis)


def test_the_reference_distance_of_identical_songs_is_zero():
    """Each reference song is measured against the mean of the others (leave one out)."""
    x = make_song(dataclasses.replace(CONFIG, songs=1, seconds=4.0), 0)[0]
    got = compare([x], [x, x], SR)
    assert got["reference"]["chroma_distance"] == pytest.approx(0, abs=1e-12)
    assert got["samples"]["chroma_distance"] == pytest.approx(0, abs=1e-12)


def test_describe_names_the_key_its_chroma_begins_at_and_the_centroid():
    d = describe(_tones([62, 64, 66, 67, 69, 71, 73]), SR)  # D major
    assert d["key"] == "D"
    assert np.dot(d["chroma"], scale_mask(Scale[d["scale"].upper()], 0)) == pytest.approx(d["scale_share"], abs=1e-9)
    t = np.arange(3 * SR) / SR
    assert describe(0.5 * np.sin(2 * np.pi * 1000 * t), SR)["spectral_centroid_hz"] == pytest.approx(1000, rel=0.03)


def test_flatness_reads_the_frames_within_40_db_of_the_loudest():
    """A tone, then noise 30 dB under it: the noise's frames count (a 20 dB gate gave about 0)."""
    tone = np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    noise = np.random.default_rng(0).normal(0, 0.0224, 2 * SR)
    assert spectral_flatness(np.concatenate([tone, noise]), SR) > 0.2


def test_the_modes_are_rotations_of_the_major_scale():
    major = Scale.MAJOR.value
    mode = lambda k: tuple(sorted((s - major[k]) % 12 for s in major))
    assert (Scale.DORIAN.value, Scale.MIXOLYDIAN.value, Scale.MINOR.value) == (mode(1), mode(4), mode(5))
    assert Scale.HARMONIC_MINOR.value == Scale.MINOR.value[:6] + (11,)


def test_each_seed_draws_its_own_songs_and_genres_cycle_every_four():
    """Song i of a seed draws from a stream of (seed, i): seed 1 is not seed 0 shifted by a
    song (as `default_rng(seed + i)` would make it); artists change every song and genres every
    four, as the module says."""
    score = lambda seed, i: song_score(dataclasses.replace(CONFIG, seed=seed), i)[0]
    drawn = lambda s: (s.key, s.scale, s.tempo_bpm)
    assert all(drawn(score(1, i)) != drawn(score(0, i + 1)) for i in range(4))
    assert [score(0, i).genre for i in range(12)] == [GENRES[(i // len(ARTISTS)) % len(GENRES)] for i in range(12)]
    assert [score(0, i).artist for i in range(8)] == [ARTISTS[i % len(ARTISTS)] for i in range(8)]
