"""The `Jukebox` container: save/load round trips, clear errors on bad input, and the CLI's
`demo` and `convert` (`sample` is in test_cli.py)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import pytest
import soundfile

from jukebox_jax import Jukebox, JukeboxConfig, default, preset
from jukebox_jax.cli import demo_song, main
from jukebox_jax.errors import InputError
from jukebox_jax.params import flatten


@pytest.fixture(scope="module")
def tiny() -> Jukebox:
    return Jukebox.init(JukeboxConfig(vqvae=preset("tiny_vqvae")), jax.random.key(0))


def test_encode_decode_shapes_and_errors(tiny):
    hop = tiny.config.vqvae.hop_lengths
    audio = np.zeros((2, 4 * hop[-1], 1), np.float32)
    codes = tiny.encode(audio)
    assert [z.shape for z in codes] == [(2, 4 * hop[-1] // h) for h in hop]
    assert all(z.dtype == np.int32 for z in codes)
    assert tiny.decode(codes[2:], start_level=2).shape == audio.shape
    with pytest.raises(ValueError, match="multiple of 128"):
        tiny.encode(np.zeros((1, 100, 1), np.float32))
    with pytest.raises(ValueError, match="mono"):
        tiny.encode(np.zeros((1, 128, 2), np.float32))
    with pytest.raises(ValueError, match="float"):
        tiny.encode(np.zeros((1, 128, 1), np.int16))
    with pytest.raises(ValueError, match="end_level"):
        tiny.encode(audio, start_level=2, end_level=1)
    with pytest.raises(ValueError, match=r"\[0, 64\)"):
        tiny.decode([np.full((1, 4), 64)], start_level=2)
    with pytest.raises(InputError, match="list"):
        tiny.decode(codes[0])
    with pytest.raises(ValueError, match="do not fit"):
        tiny.decode(codes, start_level=1)


def test_a_model_without_vqvae_says_so():
    jb = Jukebox(JukeboxConfig(), {})
    with pytest.raises(ValueError, match="no VQ-VAE"):
        jb.encode(np.zeros((1, 128, 1), np.float32))


PCM16 = 2 / 32768  # a float -> 16-bit wav -> float round trip moves a sample by at most this
DEMO_SNR_DB = 10.0  # the default VQ-VAE gives 15-16 dB at level 0 on synthetic songs (RESULTS.md); a random one < 0 dB


@pytest.mark.parametrize("seconds,message", [("1e9", "the demo's song takes 1 to 600 s"), ("0.5", "the demo's song takes 1 to 600 s"), ("nan", "not a finite number"), ("0", "not positive")])
def test_cli_demo_refuses_absurd_lengths(tmp_path, capsys, seconds, message):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--out", str(tmp_path / "demo"), "--seconds", seconds])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_cli_demo_refuses_a_file_for_its_folder(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    with pytest.raises(SystemExit) as e:
        main(["demo", "--out", str(taken / "demo")])
    assert e.value.code == 2 and f"{taken} is a file; give a folder" in capsys.readouterr().err
    assert taken.read_text() == "mine"
    with pytest.raises(SystemExit) as e:  # a folder of other files, e.g. a sampling job's (its codes.npz would go)
        main(["demo", "--out", str(tmp_path)])
    assert e.value.code == 2 and f"--out {tmp_path} holds other files (taken), not a demo's folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
    mine = tmp_path / "project"  # an input.wav of the user's among other files: it was replaced, as was codes.npz
    mine.mkdir()
    for name in ("input.wav", "mix_final.wav"):
        (mine / name).write_bytes(b"mine")
    with pytest.raises(SystemExit) as e:
        main(["demo", "--out", str(mine)])
    assert e.value.code == 2 and f"--out {mine} holds other files (mix_final.wav), not a demo's folder" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == {"input.wav": b"mine", "mix_final.wav": b"mine"}


def test_cli_demo_writes_a_round_trip(tmp_path, capsys):
    """The demo's files agree with each other: input.wav is the synthetic song, codes.npz its
    codes under the default model, and recon_level{L}.wav that model's decode of codes.npz's
    level L, decoded here on its own; the trained VQ-VAE reconstructs the song (a random one
    gives an SNR below 0 dB)."""
    main(["demo", "--out", str(tmp_path), "--seconds", "1", "--seed", "3"])
    assert "default model" in capsys.readouterr().out
    wav, sr = soundfile.read(tmp_path / "input.wav")
    song = demo_song(1.0, 3, 16000, 128)
    assert sr == 16000 and wav.shape == (16000 // 128 * 128,)
    np.testing.assert_allclose(wav, song[0, :, 0], rtol=0, atol=PCM16)
    jb = default.load()
    saved = np.load(tmp_path / "codes.npz")
    assert sorted(saved) == ["level_0", "level_1", "level_2"]
    for level, want in enumerate(jb.encode(song)):
        codes = saved[f"level_{level}"]
        np.testing.assert_array_equal(codes, np.asarray(want))
        recon, _ = soundfile.read(tmp_path / f"recon_level{level}.wav")
        decoded = np.clip(np.asarray(jb.decode([codes], start_level=level))[0, :, 0], -1, 1)
        np.testing.assert_allclose(recon, decoded, rtol=0, atol=PCM16)
        if level == 0:
            snr = 10 * np.log10(np.sum(wav**2) / np.sum((wav - recon) ** 2))
            assert snr > DEMO_SNR_DB, snr


def test_cli_convert(fixtures, tmp_path, capsys):
    from convert import convert_checkpoint

    main(["convert", str(fixtures / "vqvae.pth.tar"), "-o", str(tmp_path / "out")])
    assert "converted vqvae" in capsys.readouterr().out
    loaded = Jukebox.load(tmp_path / "out")
    assert loaded.config.vqvae == preset("tiny_vqvae")
    want = flatten(convert_checkpoint(fixtures / "vqvae.pth.tar").params)
    got = flatten(loaded.params)
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]))
    with pytest.raises(SystemExit) as e:
        main(["convert", str(fixtures / "prior_5b_level2.pth.tar"), "-o", str(tmp_path / "x")])
    assert e.value.code == 2 and "vqvae.pth.tar" in capsys.readouterr().err


def test_equal_configs_share_compiled_kernels(tiny, tmp_path):
    """Jitted kernels take the config as a static argument: a config read back from disk is a
    new object that must hit the kernel compiled for the original (equal, same hash), and a
    different config must compile its own."""
    tiny.save(tmp_path / "ckpt")
    loaded = Jukebox.load(tmp_path / "ckpt").config
    assert loaded is not tiny.config and loaded == tiny.config and hash(loaded) == hash(tiny.config)
    traces = []

    @functools.partial(jax.jit, static_argnums=0)
    def kernel(cfg, x):
        traces.append(cfg)
        return x * cfg.vqvae.l_bins

    assert float(kernel(tiny.config, 1.0)) == float(kernel(loaded, 1.0)) == 64.0
    assert len(traces) == 1
    other = dataclasses.replace(tiny.config, vqvae=dataclasses.replace(tiny.config.vqvae, l_bins=32))
    assert other != tiny.config and float(kernel(other, 1.0)) == 32.0 and len(traces) == 2
