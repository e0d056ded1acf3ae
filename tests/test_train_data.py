"""`jukebox_jax.train.data`: batch `step` is a pure function of `(seed, step)`; each window is
the part of its song at its offset (the songs' samples spell their index and position) with
that song's labels; windows are uniform over (song, start); the held-out split is stable and
disjoint; a codes folder `encode_folder` writes (resumably) holds the VQ-VAE's codes of each
song; bad folders are `InputError`s naming the problem."""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile

from jukebox_jax import Jukebox, JukeboxConfig, audio, preset
from jukebox_jax.errors import InputError
from jukebox_jax.generation.inputs import read_codes
from jukebox_jax.io import TEMP_PREFIX
from jukebox_jax.train import data

SR = 16000
LENGTHS = [3000, 3500, 4000, 6000, 2000]  # samples of songs 0..4
ARTISTS, GENRES = ["ann", "bob", "cy"], ["jazz", "rock"]


def _spell(song: int, n: int) -> np.ndarray:
    """`[n]` float32 samples spelling `song` and each position, exactly (dyadic values)."""
    return ((song + 1) / 16 + np.arange(n) / 2**20).astype(np.float32)


def _read(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (song, position) that each sample of `_spell` output spells."""
    song = np.floor(x.astype(np.float64) * 16).astype(int) - 1
    return song, np.rint((x - (song + 1) / 16) * 2**20).astype(int)


def _meta(name: str, i: int) -> dict:
    return {
        "artist": ARTISTS[i % 3],
        "genre": GENRES[i % 2],
        "lyrics": f"song {i} goes la",
        "key": "C",
    }  # extra keys are ignored


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Five songs in two subfolders (float wav, exact), with metadata.json."""
    d = tmp_path_factory.mktemp("songs")
    names = [f"{'a' if i % 2 else 'b/c'}/song{i}.wav" for i in range(len(LENGTHS))]
    for i, (name, n) in enumerate(zip(names, LENGTHS)):
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(d / name, _spell(i, n), SR, subtype="FLOAT")
    meta = {
        "sample_rate": SR,
        "seed": 0,
        "artists": ARTISTS,
        "genres": GENRES,
        "songs": {n: _meta(n, i) for i, n in enumerate(names)},
    }
    (d / "metadata.json").write_text(json.dumps(meta))
    (d / "notes.txt").write_text("not a song")
    return d


def test_folder_lists_songs_and_labels(folder):
    f = data.audio_folder(folder)
    assert f.sample_rate == SR and f.artists == tuple(ARTISTS) and f.genres == tuple(GENRES)
    assert [s.name for s in f.songs] == sorted(s.name for s in f.songs) and len(f.songs) == len(LENGTHS)
    for s in f.songs:
        i = int(re.search(r"song(\d)", s.name).group(1))
        assert (s.length, s.artist, s.genre, s.lyrics) == (LENGTHS[i], i % 3, i % 2, f"song {i} goes la")
    assert [s.length for s in data.audio_folder(folder, 8000).songs] == [
        s.length // 2 for s in f.songs
    ]  # at the rate asked


def test_batches_are_a_pure_function_of_seed_and_step(folder):
    windows = data.AudioWindows(data.audio_folder(folder), data.audio_folder(folder).songs, 1000)
    later = windows.batch(7, 3, 6)
    first = windows.batch(7, 0, 6)
    again = windows.batch(7, 3, 6)  # after another step: the same
    assert (
        np.array_equal(later.x, again.x) and later.songs == again.songs and np.array_equal(later.offset, again.offset)
    )
    assert not np.array_equal(later.offset, first.offset)
    assert not np.array_equal(windows.batch(8, 3, 6).offset, later.offset)
    with pytest.raises(InputError, match="seed must be in 0..4294967295"):  # numpy's words: step 0 of 2**32 + 7 drew step 1 of 7
        windows.batch(2**32 + 7, 0, 6)


def test_windows_are_their_song_at_their_offset_with_its_labels(folder):
    f = data.audio_folder(folder)
    windows = data.AudioWindows(f, f.songs, 1000)
    by_name = {s.name: s for s in f.songs}
    for step in range(3):
        b = windows.batch(0, step, 8)
        assert b.x.shape == (8, 1000, 1) and b.x.dtype == np.float32 and b.upper is None
        for k, name in enumerate(b.songs):
            song, position = _read(b.x[k, :, 0])
            i = int(re.search(r"song(\d)", name).group(1))
            assert (song == i).all()
            np.testing.assert_array_equal(position, b.offset[k] + np.arange(1000))
            s = by_name[name]
            assert (b.artist[k], b.genre[k], b.total_length[k], b.lyrics[k]) == (s.artist, s.genre, s.length, s.lyrics)
            assert 0 <= b.offset[k] <= s.length - 1000


def test_resampled_windows_are_that_part_of_the_resampled_song(folder):
    """Read at 8 kHz, a window is the part of `audio.load` of the song at 8 kHz at its offset."""
    f = data.audio_folder(folder, 8000)
    b = data.AudioWindows(f, f.songs, 400).batch(1, 0, 4)
    for k, name in enumerate(b.songs):
        whole = audio.load(folder / name, 8000)
        np.testing.assert_allclose(b.x[k], whole[b.offset[k] : b.offset[k] + 400], atol=1e-6, rtol=0)


def test_eval_batches_tile_every_song(folder):
    """Whole batches of the songs' windows back to back (18 windows: 4 batches of 4), at most
    `most` of them spread evenly; fewer windows than a batch: one batch of them all, cut to a
    multiple of the mesh's data axis (it crashed a mesh run at its first evaluation)."""
    windows = data.AudioWindows(f := data.audio_folder(folder), f.songs, 1000)
    tiles = [(s.name, k * 1000) for s in f.songs for k in range(s.length // 1000)]
    assert len(tiles) == 18

    def got(batches):
        return [[(name, int(o)) for name, o in zip(b.songs, b.offset)] for b in batches]

    assert got(windows.eval_batches(4)) == [tiles[k : k + 4] for k in (0, 4, 8, 12)]
    assert got(windows.eval_batches(4, most=2)) == [tiles[0:4], tiles[12:16]]
    assert got(windows.eval_batches(20)) == [tiles]
    assert got(windows.eval_batches(20, multiple=4)) == [tiles[:16]]
    assert got(windows.eval_batches(40, multiple=32)) == []


def test_windows_are_uniform_over_song_and_start():
    """Song i is drawn with probability (its starts) / (all starts), within 5 sigma over 20000
    draws, and starts cover [0, length - window]."""
    lengths = [100, 300, 1000]
    songs = tuple(data.Song(f"s{i}", n * 8, 0, 0, "") for i, n in enumerate(lengths))
    w = data.CodesWindows(songs, 50, 8, tuple(np.arange(n, dtype=np.int32) for n in lengths))
    b = [w.batch(0, step, 1000) for step in range(20)]
    names = np.concatenate([np.array(x.songs) for x in b])
    p = np.array([n - 50 + 1 for n in lengths]) / sum(n - 50 + 1 for n in lengths)
    counts = np.array([(names == f"s{i}").sum() for i in range(3)])
    assert (np.abs(counts - 20000 * p) < 5 * np.sqrt(20000 * p * (1 - p))).all(), counts
    starts = np.concatenate([x.offset for x in b])[names == "s0"] // 8
    assert starts.min() == 0 and starts.max() == 50  # every start of song 0 is drawn


def test_window_draws_of_no_windows_or_a_negative_step_are_refused():
    """`batch(0, 0, 0)` failed in numpy ("need at least one array to stack"), a negative batch
    size or step as "negative dimensions" / "expected non-negative integer", `eval_batches(0)`
    as range()'s "arg 3 must not be zero"."""
    songs = (data.Song("s0", 100 * 8, 0, 0, ""),)
    w = data.CodesWindows(songs, 50, 8, (np.arange(100, dtype=np.int32),))
    for use, why in (
        (lambda: w.batch(0, 0, 0), r"batch_size must be"),
        (lambda: w.batch(0, 0, -1), r"batch_size must be"),
        (lambda: w.batch(0, -1, 1), r"step must be"),
        (lambda: w.eval_batches(0), r"batch_size must be"),
    ):
        with pytest.raises(InputError, match=why):
            use()


def test_audio_windows_reach_every_start_of_a_song(tmp_path):
    """A song as long as the window has one start, one a sample longer two; both are drawn
    (a song one window long was refused, the last start of each never drawn)."""
    for name, n in (("a.wav", 2000), ("b.wav", 2001)):
        soundfile.write(tmp_path / name, np.zeros(n, np.float32), SR, subtype="FLOAT")
    folder = data.audio_folder(tmp_path, SR)
    drawn = set()
    for step in range(20):
        b = data.AudioWindows(folder, folder.songs, 2000).batch(0, step, 8)
        drawn |= {(name, int(o)) for name, o in zip(b.songs, b.offset)}
    assert drawn == {("a.wav", 0), ("b.wav", 0), ("b.wav", 1)}


def test_split_is_stable_disjoint_and_near_its_fraction():
    songs = tuple(data.Song(f"songs/{i:04d}.flac", 1, 0, 0, "") for i in range(1000))
    train, held = data.Folder(Path("."), SR, songs).split(0.1)
    assert set(train).isdisjoint(held) and set(train) | set(held) == set(songs)
    assert abs(len(held) - 100) < 3 * np.sqrt(1000 * 0.1 * 0.9)
    fewer_train, fewer_held = data.Folder(Path("."), SR, songs[:500]).split(0.1)  # a song's side is its own
    assert set(fewer_held) == set(held) & set(songs[:500]) and set(fewer_train) == set(train) & set(songs[:500])
    assert data.Folder(Path("."), SR, songs).split(0.1) == (train, held)
    for n in (2, 3):  # at least one of each, whatever the hashes
        t, h = data.Folder(Path("."), SR, songs[:n]).split(0.1)
        assert len(h) >= 1 and len(t) >= 1 and len(t) + len(h) == n
        assert data.Folder(Path("."), SR, songs[:n]).split(0.99)[0]  # still one to train on
    assert data.Folder(Path("."), SR, songs[:1]).split(0.5) == (songs[:1], ())
    assert data.Folder(Path("."), SR, songs[:5]).split(0.0) == (songs[:5], ())


def test_a_song_and_its_codes_are_held_out_alike():
    """A VQ-VAE trained on a folder and the priors trained on its codes hold out the same songs
    (the hash was of the name with its suffix: of the default's 800 songs the VQ-VAE held out 97,
    the priors 93 others but 11)."""
    names = [f"songs/song_{i:05d}{suffix}" for i in range(800) for suffix in (".flac", ".v2.wav")]
    audio_songs = tuple(data.Song(n, 1, 0, 0, "") for n in names)
    codes_songs = tuple(data.Song(data.codes_name(n), 1, 0, 0, "") for n in names)
    _, held_audio = data.Folder(Path("."), SR, audio_songs).split(0.1)
    _, held_codes = data.Folder(Path("."), SR, codes_songs).split(0.1)
    assert 100 < len(held_audio) < 220
    assert [data.codes_name(s.name) for s in held_audio] == [s.name for s in held_codes]


def test_codes_windows_with_the_level_above():
    """Level-1 windows start on level-2 tokens; their upper codes are that same audio's."""
    ratio, n = 4, 4000
    songs = (data.Song("x.npz", n * 32, 2, 1, "la"),)
    w = data.CodesWindows(
        songs, 64, 32, (np.arange(n, dtype=np.int32),), ratio, (np.arange(n // ratio, dtype=np.int32) * 10,)
    )
    b = w.batch(3, 1, 16)
    assert b.x.shape == (16, 64) and b.upper.shape == (16, 16)
    np.testing.assert_array_equal(b.x, b.offset[:, None] // 32 + np.arange(64))
    np.testing.assert_array_equal(b.upper, b.x[:, ::ratio] // ratio * 10)
    assert (b.offset % (32 * ratio) == 0).all() and (b.artist == 2).all() and b.lyrics == ("la",) * 16


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """The tiny VQ-VAE (44.1 kHz) and three 0.2 s songs encoded with it: 48 kHz stereo, 16 kHz
    and 44.1 kHz mono (one length at 44.1 kHz: one compile)."""
    import jax

    source = tmp_path_factory.mktemp("encode_songs")
    rng = np.random.default_rng(0)
    names = {"a/one.wav": (48000, 2), "a/two.flac": (16000, 1), "three.ogg": (44100, 1)}
    for name, (rate, channels) in names.items():
        (source / name).parent.mkdir(exist_ok=True)
        soundfile.write(source / name, 0.3 * rng.standard_normal((rate // 5, channels)), rate)
    meta = {
        "sample_rate": 44100,
        "artists": ARTISTS,
        "genres": GENRES,
        "songs": {n: _meta(n, i) for i, n in enumerate(names)},
    }
    (source / "metadata.json").write_text(json.dumps(meta))
    jb = Jukebox.init(JukeboxConfig(vqvae=preset("tiny_vqvae")), jax.random.key(0))
    out = tmp_path_factory.mktemp("codes")
    seen = []
    codes = data.encode_folder(jb, source, out, lambda name, skipped: seen.append((name, skipped)))
    return jb, source, out, codes, seen


def test_encode_folder_writes_each_songs_codes(encoded):
    jb, source, out, codes, seen = encoded
    assert seen == [(s.name, False) for s in data.audio_folder(source).songs]
    assert codes.sample_rate == 44100 and codes.artists == tuple(ARTISTS)
    songs = data.audio_folder(source, 44100).songs
    assert [(s.name, s.length, s.artist, s.lyrics) for s in codes.songs] == [
        (data.codes_name(s.name), s.length, s.artist, s.lyrics) for s in songs
    ]
    for s in songs:
        x = audio.load(source / s.name, 44100)  # [t, 1] resampled and mixed
        assert len(x) == s.length == 8820
        expect = jb.encode(x[None, : len(x) // 128 * 128])
        got = read_codes(out / data.codes_name(s.name), 3, 64)  # `sample --codes` reads it
        for level in range(3):
            np.testing.assert_array_equal(got[level], np.asarray(expect[level]))
    w = data.CodesWindows.load(codes, codes.songs, 1, 16, upper=True)
    b = w.batch(0, 0, 4)
    assert b.x.shape == (4, 16) and b.upper.shape == (4, 4) and w.hop == 32 and w.ratio == 4
    for k, name in enumerate(b.songs):  # the windows are those codes at their offsets
        got = read_codes(out / name, 3, 64)
        t = b.offset[k] // 32
        np.testing.assert_array_equal(b.x[k], got[1][0, t : t + 16])
        np.testing.assert_array_equal(b.upper[k], got[2][0, t // 4 : t // 4 + 4])


def test_codes_windows_refuse_what_does_not_fit(encoded):
    _, _, _, codes, _ = encoded
    with pytest.raises(
        InputError,
        match=r"n_tokens 18 of level 1 is not a whole number of level-2 tokens \(4 each\); give a multiple of 4",
    ):
        data.CodesWindows.load(codes, codes.songs, 1, 18, upper=True)
    with pytest.raises(InputError, match=r"level 2 and the level above: the codes have levels 0..2"):
        data.CodesWindows.load(codes, codes.songs, 2, 16, upper=True)
    with pytest.raises(
        InputError, match=r"3 songs are shorter than the window of 100 level-2 tokens: a/one.npz \(68\).*; remove them, or train a prior of a shorter n_ctx$"
    ):
        data.CodesWindows.load(codes, codes.songs, 2, 100)
    source = data.audio_folder(encoded[1], 44100)  # the audio folder's split given for its codes': named, not "not an .npz"
    with pytest.raises(InputError, match=r"songs \['a/one.wav', .* are not the codes folder .*'s: split that folder \(codes_folder\(root\).split\(\)"):
        data.CodesWindows.load(codes, source.songs, 2, 32)
    eval_windows = data.CodesWindows.load(codes, codes.songs, 2, 32).eval_batches(3)
    assert [(name, int(o)) for b in eval_windows for name, o in zip(b.songs, b.offset)] == [
        (s.name, k * 32 * 128) for s in codes.songs for k in range(2)
    ]


@pytest.mark.parametrize("damage", ["truncated", "bad CRC", "not npz", "no header"])
def test_a_damaged_codes_file_is_named(encoded, tmp_path, damage):
    """A killed copy, a flipped bit or a stray file among the codes: `codes_folder` names it
    and the fix (it raised zipfile's BadZipFile for a truncated file)."""
    _, _, out, _, _ = encoded
    folder = tmp_path / "codes"
    shutil.copytree(out, folder)
    path = folder / "three.npz"
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "bad CRC":  # the last byte of total_length, stored just before hop_lengths' 30-byte header
        at = raw.index(b"hop_lengths.npy") - 31
        path.write_bytes(raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :])
    elif damage == "not npz":
        path.write_bytes(b"\x93NUMPY" + bytes(100))
    else:
        np.savez(path, level_0=np.zeros((1, 4), np.int32))
    why = {"truncated": "is not an .npz archive", "bad CRC": r"cannot be read \(Bad CRC-32", "not npz": "is not an .npz archive",
           "no header": r"lacks the arrays \['total_length', 'hop_lengths', 'sample_rate'\] \(it has \['level_0'\]\)"}[damage]  # fmt: skip
    with pytest.raises(InputError, match=rf"codes file {re.escape(str(path))} {why}.*; delete it and encode it again"):
        data.codes_folder(folder)


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda z: {**z, "hop_lengths": np.array(8)}, r"not what encode_folder writes \(.*'hop_lengths': '8'"),  # a traceback
        (lambda z: {**z, "total_length": np.array("long")}, r"not what encode_folder writes"),
        (lambda z: {**z, "total_length": np.array(-5)}, r"not what encode_folder writes \(\{'total_length': '-5'"),  # wrong timing
        (lambda z: {**z, "level_2": -z["level_2"] - 1}, r"level_2 holds codes in \[-\d+, -\d+\], not in \[0, 64\)"),  # wrapped round
        (lambda z: {**z, "level_2": z["level_2"] + 64}, r"level_2 holds codes in \[\d+, \d+\], not in \[0, 64\)"),  # "diverged"
        (lambda z: {**z, "level_2": z["level_2"][0]}, r"level_2 is int32 of shape \(\d+,\), not integer codes \[1, tokens\]"),
        (lambda z: {**z, "level_2": z["level_2"].astype(np.float32)}, r"level_2 is float32 of shape"),
        (lambda z: {**z, "level_1": z["level_1"][:, :-4]}, r"level_1 \(\d+ tokens\) and level_2 \(\d+\) do not cover the same audio"),
        (lambda z: {**z, "level_2": np.concatenate([z["level_2"]] * 2, 1)}, r"level_2: \d+ tokens of 128 samples, past the song's"),
    ],
)
def test_codes_that_encode_folder_did_not_write_are_named(encoded, tmp_path, edit, why):
    """Codes edited by hand: each is named with the fix before training (they trained as other
    codes, ended in a traceback mid-run, or were blamed on the learning rate)."""
    _, _, out, _, _ = encoded
    folder = tmp_path / "codes"
    shutil.copytree(out, folder)
    path = folder / "three.npz"
    with np.load(path) as z:
        np.savez(path, **edit(dict(z)))
    with pytest.raises(InputError, match=rf"codes file {re.escape(str(path))}: {why}.*; delete it and encode it again"):
        codes = data.codes_folder(folder)
        data.CodesWindows.load(codes, codes.songs, 1, 8, upper=True, bins=64)
        data.CodesWindows.load(codes, codes.songs, 2, 2, bins=64)


def test_encode_folder_resumes(encoded):
    jb, source, out, _, _ = encoded
    first = data.codes_name(data.audio_folder(source).songs[0].name)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    (out / first).unlink()
    (out / "a" / f"{TEMP_PREFIX}x.npz").write_bytes(b"killed")
    seen = []
    data.encode_folder(jb, source, out, lambda name, skipped: seen.append(skipped))
    assert seen == [False, True, True]  # only the missing song is encoded again
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    assert after.keys() == before.keys() and all(after[p] == before[p] for p in before if p != out / first)


def test_encode_folder_follows_its_songs(encoded, tmp_path):
    """A song changed since is encoded again, the codes of a song gone and a metadata.json
    the songs no longer have are removed (they stayed: a resumed prior trained on old codes
    and labels); a folder of songs and codes together is refused (one .npz among the songs
    made it a codes folder of that one song)."""
    jb, source, out, _, _ = encoded
    songs, codes = tmp_path / "songs", tmp_path / "codes"
    shutil.copytree(source, songs)
    shutil.copytree(out, codes)
    names = [s.name for s in data.audio_folder(songs).songs]  # a/one.wav, a/two.flac, three.ogg
    rate = soundfile.info(songs / names[0]).samplerate
    soundfile.write(songs / names[0], 0.1 * np.ones((rate // 5, 2)), rate)  # the same length, other sound
    (songs / names[1]).unlink()
    (songs / "metadata.json").unlink()
    seen = []
    data.encode_folder(jb, songs, codes, lambda name, skipped: seen.append((name, skipped)))
    assert seen == [(names[0], False), (names[2], True)]
    assert sorted(p.relative_to(codes).as_posix() for p in codes.rglob("*")) == ["a", "a/one.npz", "three.npz"]
    assert data.holds_codes(codes) and not data.holds_codes(songs)
    # files it did not write are the caller's: named, not removed (a user's results .npz and metadata.json went)
    np.savez(codes / "results.npz", loss=np.zeros(3))
    (codes / "metadata.json").write_text('{"artists": ["mine"]}')
    with pytest.raises(InputError, match=r"holds files encode_folder did not write \(results.npz, metadata.json\); give an empty"):
        data.encode_folder(jb, songs, codes)
    assert (codes / "results.npz").exists() and (codes / "metadata.json").exists()
    shutil.copy(codes / "three.npz", songs / "a" / "stray.npz")
    with pytest.raises(InputError, match=rf"data folder {re.escape(str(songs))} holds audio \(a/one.wav, ...\) and codes \(a/stray.npz, ...\)"):
        data.holds_codes(songs)


def test_codes_record_their_vqvae_and_another_vqvae_encodes_again(encoded, tmp_path):
    """Codes carry the fingerprint of the VQ-VAE that made them; the same VQ-VAE beside other
    priors has the same one; a VQ-VAE with other weights re-encodes every song (a VQ-VAE
    retrained in place must not train a prior on stale codes), and a folder that mixes them
    is refused."""
    import jax

    jb, source, out, codes, _ = encoded
    assert codes.vqvae == jb.vqvae_fingerprint()
    with_prior = Jukebox.init(JukeboxConfig(vqvae=jb.config.vqvae, priors=(preset("tiny_5b"),)), jax.random.key(1))
    assert Jukebox(with_prior.config, {**with_prior.params, "vqvae": jb.params["vqvae"]}).vqvae_fingerprint() == codes.vqvae
    other = Jukebox.init(JukeboxConfig(vqvae=jb.config.vqvae), jax.random.key(2))
    assert other.vqvae_fingerprint() != codes.vqvae
    copy = tmp_path / "codes"
    shutil.copytree(out, copy)
    (copy / data.codes_name(data.audio_folder(source).songs[0].name)).unlink()
    data.encode_folder(other, source, copy.parent / "other")  # another folder: the fixture's stays
    shutil.copy(copy.parent / "other" / "three.npz", copy / "three.npz")
    with pytest.raises(InputError, match=r"mixes the codes of 2 VQ-VAEs"):
        data.codes_folder(copy)
    seen = []
    again = data.encode_folder(other, source, copy, lambda name, skipped: seen.append(skipped))
    assert seen == [False, False, True] and again.vqvae == other.vqvae_fingerprint()


def _write(d: Path, songs: dict[str, int], meta: dict | str | None = None) -> Path:
    for name, n in songs.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(d / name, np.zeros(n), SR)
    if meta is not None:
        (d / "metadata.json").write_text(json.dumps(meta) if isinstance(meta, dict) else meta)
    return d


def _meta_of(songs: dict[str, dict]) -> dict:
    return {"sample_rate": SR, "artists": ARTISTS, "genres": GENRES, "songs": songs}


def _windows(length: int, *, songs: bool = True):
    def call(d: Path) -> data.AudioWindows:
        f = data.audio_folder(d, SR)
        return data.AudioWindows(f, f.songs if songs else (), length)

    return call


OK = {"artist": "ann", "genre": "rock", "lyrics": ""}
BAD = [
    # (songs, metadata, call on the folder, message pattern; {d} is the folder)
    ({}, None, lambda d: data.audio_folder(d, SR), r"data folder {d} holds no audio files \(wav, flac, ogg \(Vorbis, Opus\), mp3 or aiff\)"),
    ({"x.wav": 100}, None, data.audio_folder, r"data folder {d}: no sample rate to read it at; give sample_rate"),
    (
        {"x.wav": 100},
        _meta_of({"x.wav": {**OK, "artist": "zed"}}),
        data.audio_folder,
        r"song 'x.wav' has artist 'zed' and genre 'rock'; each must be one of",
    ),
    (
        {"x.wav": 100},
        _meta_of({"x.wav": {**OK, "genre": "pop"}}),
        data.audio_folder,
        r"song 'x.wav' has artist 'ann' and genre 'pop'",
    ),
    (
        {"x.wav": 100, "y.wav": 100},
        _meta_of({"x.wav": OK, "z.wav": OK}),
        data.audio_folder,
        r"songs not listed \['y.wav'\], listed but not found \['z.wav'\]",
    ),
    (
        {"x.wav": 100},
        _meta_of({"x.wav": OK, "z.wav": OK}),
        data.audio_folder,
        r"does not match the folder: listed but not found \['z.wav'\]; list each",
    ),
    (
        {"x.wav": 100},
        _meta_of({"x.wav": {**OK, "lyrics": 3}}),
        data.audio_folder,
        r"song 'x.wav' has lyrics of type int; give a string",
    ),
    ({"x.wav": 100}, "{", data.audio_folder, r"{d}/metadata.json cannot be read as JSON"),
    (  # json.loads would keep the second entry silently
        {"x.wav": 100},
        '{"sample_rate": 16000, "songs": {"x.wav": {}, "x.wav": {}}}',
        data.audio_folder,
        r"{d}/metadata.json gives 'x.wav' twice in one object \(JSON keeps only the last\); give each once",
    ),
    (  # a name is looked up case-insensitively: "Ann" and "ann" would be one artist of two ids
        {"x.wav": 100},
        {**_meta_of({"x.wav": OK}), "artists": ["ann", "bo", "Ann"]},
        data.audio_folder,
        r"{d}/metadata.json: \"artists\" names 'Ann' more than once \(names are compared case-insensitively\)",
    ),
    (
        {"x.wav": 100},
        {"songs": {}},
        lambda d: data.audio_folder(d, SR),
        r"needs \"artists\" and \"genres\" \(lists of names, none blank\) and \"songs\"",
    ),
    (  # a model's label table refuses a blank name: it failed when the prior was built
        {"x.wav": 100},
        {**_meta_of({"x.wav": OK}), "artists": ["ann", " ", "cy"]},
        lambda d: data.audio_folder(d, SR),
        r"needs \"artists\" and \"genres\" \(lists of names, none blank\)",
    ),
    (
        {"x.wav": 900, "y.wav": 1200},
        None,
        _windows(1000),
        r"1 song is shorter than the window of 1000 samples \(0.06 s at 16000 Hz\): x.wav \(900\); remove them, or give shorter windows \(train vqvae --seconds\)$",
    ),
    ({"x.wav": 900}, None, _windows(100, songs=False), r"no songs to draw windows from"),
    ({}, None, data.codes_folder, r"codes folder {d} holds no .npz files; encode an audio folder into it"),
]


def test_hidden_folders_are_left_out_and_a_name_not_utf8_is_named(tmp_path):
    """A desktop's `.Trash-1000/` was trained on (only hidden files were left out); a file name
    that is not UTF-8 ended in a UnicodeEncodeError traceback."""
    d = _write(tmp_path / "d", {"x.wav": 100, ".Trash-1000/y.wav": 100, "a/.cache/z.wav": 100})
    assert [s.name for s in data.audio_folder(d, SR).songs] == ["x.wav"]
    soundfile.write(d / "w.wav", np.zeros(100), SR)
    os.rename(os.fsencode(d / "w.wav"), os.fsencode(d) + b"/\xff.wav")
    with pytest.raises(InputError, match=r"the file name '\\udcff.wav' is not UTF-8; rename it"):
        data.audio_folder(d, SR)


def test_links_to_folders_are_followed_and_a_link_to_nothing_is_named(tmp_path):
    """A dataset of links to song folders trained on the songs outside them only (`rglob`
    follows no links); a dangling link was left out unsaid. A link back up is read once."""
    d = _write(tmp_path / "d", {"x.wav": 100})
    _write(tmp_path / "elsewhere", {"y.wav": 100, "z.aiff": 100})
    (d / "linked").symlink_to(tmp_path / "elsewhere")
    (d / "up").symlink_to(d)
    assert [s.name for s in data.audio_folder(d, SR).songs] == ["linked/y.wav", "linked/z.aiff", "x.wav"]
    (d / "loop1").symlink_to(d / "loop2")  # no audio suffix: left out (it was an ELOOP OSError)
    (d / "loop2").symlink_to(d / "loop1")
    assert len(data.audio_folder(d, SR).songs) == 3
    for bad in ("gone.wav", "loop.wav"):
        (d / bad).symlink_to(tmp_path / "nowhere.wav" if bad == "gone.wav" else d / bad)
        with pytest.raises(InputError, match=rf"{bad} is a link to nothing \(or a loop of links\); remove it or mend it"):
            data.audio_folder(d, SR)
        (d / bad).unlink()
    os.mkfifo(d / "live.wav")  # was called "a link to nothing"
    with pytest.raises(InputError, match=r"live.wav is not a regular file \(a device, pipe or socket\); give a file"):
        data.audio_folder(d, SR)


def test_metadata_names_a_song_in_either_unicode_form(tmp_path):
    """macOS writes file names decomposed (NFD); metadata.json written by hand has them composed
    (NFC): the two were 'not listed' and 'not found', printed alike."""
    nfd = unicodedata.normalize("NFD", "café.wav")
    d = _write(tmp_path, {nfd: 100}, _meta_of({"café.wav": {**OK, "artist": "bob"}}))
    (song,) = data.audio_folder(d, SR).songs
    assert song.name == nfd and song.artist == ARTISTS.index("bob")


def test_audio_of_other_formats_is_named(tmp_path):
    """They were left out unsaid: a folder half of m4a trained on the other half."""
    d = _write(tmp_path, {"a.wav": 100})
    (d / "sub").mkdir()
    for name in ("b.m4a", "sub/c.wma"):
        (d / name).write_bytes(b"not read")
    with pytest.raises(InputError, match=r"holds audio of formats not read \(b.m4a, sub/c.wma\): convert them to one of wav, .*\(ffmpeg -i"):
        data.audio_folder(d, SR)


def test_encode_folder_takes_either_unicode_form(encoded, tmp_path):
    """The same folder encoded: a KeyError where encode_folder carried the labels over."""
    jb = encoded[0]
    nfd = unicodedata.normalize("NFD", "café.wav")
    d = _write(tmp_path / "songs", {nfd: 4 * jb.config.vqvae.hop_lengths[-1]}, _meta_of({"café.wav": {**OK, "artist": "bob"}}))
    (song,) = data.encode_folder(jb, d, tmp_path / "codes").songs
    assert song.name == unicodedata.normalize("NFD", "café.npz") and song.artist == ARTISTS.index("bob")


@pytest.mark.parametrize(("songs", "meta", "call", "pattern"), BAD, ids=[re.sub(r"\W+", "_", b[3][:40]) for b in BAD])
def test_bad_folders_are_named(tmp_path, songs, meta, call, pattern):
    d = _write(tmp_path, songs, meta)
    with pytest.raises(InputError, match=pattern.replace("{d}", re.escape(str(d)))):
        call(d)
