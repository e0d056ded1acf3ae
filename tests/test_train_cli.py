"""`jukebox-jax train`: a VQ-VAE and the three priors train from the command line into one
model that samples; a killed run resumes to bit-identical parameters; a converted prior
fine-tunes on songs by artists it has never seen; bad settings are refused."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import soundfile
from cli_process import cpu_env, run_cli

from jukebox_jax import Jukebox, JukeboxConfig, default, preset, tokenizer
from jukebox_jax.cli import main
from jukebox_jax.errors import InputError
from jukebox_jax.io import exclusive
from jukebox_jax.labels import window_labels
from jukebox_jax.synth.dataset import SynthConfig, generate
from jukebox_jax.train import data

FAST = ["--batch-size", "2", "--save-every", "2", "--eval-every", "2"]


def cli(command: str) -> None:
    main(shlex.split(command))


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, SynthConfig(songs=6, seconds=2.0, sample_rate=16000, vocals=False))
    return out


@pytest.fixture(scope="module")
def vqvae(songs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "vqvae"
    cli(f"train vqvae --data {songs} --out {out} --config tiny_vqvae --steps 3 --seconds 0.05 {' '.join(FAST)}")
    return out / "model"


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_vqvae_run(vqvae):
    run = vqvae.parent
    rows = metrics(run)
    steps = [r for r in rows if "eval" not in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for key in ("loss", "recons_loss", "commit_loss", "grad_norm", "lr", "usage", "entropy"):
        assert all(np.isfinite(r[key]) for r in steps), key
    assert [r["lr"] for r in steps] == pytest.approx([0, 3e-6, 6e-6])  # the original's warmup
    assert [r["step"] for r in rows if "eval" in r] == [2, 3]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["2", "3"]
    jb = Jukebox.load(vqvae)
    assert jb.config.vqvae.l_bins == 64 and not jb.config.priors


@pytest.mark.slow
def test_hierarchy_trains_into_one_model_that_samples(songs, vqvae, tmp_path):
    """Top prior from the VQ-VAE (the audio encoded once), each upsampler from the model
    before, then `sample` with the synthetic set's own artist and genre names."""
    cli(
        f"train prior --level 2 --data {songs} --vqvae {vqvae} --out {tmp_path / 'top'} --config tiny_5b --steps 2 {' '.join(FAST)}"
    )
    cli(
        f"train prior --level 1 --data {tmp_path / 'top' / 'codes'} --vqvae {tmp_path / 'top' / 'model'} --out {tmp_path / 'up1'} --config tiny_upsampler_level_1 --steps 2 {' '.join(FAST)}"
    )
    cli(
        f"train prior --level 0 --data {tmp_path / 'top' / 'codes'} --vqvae {tmp_path / 'up1' / 'model'} --out {tmp_path / 'up0'} --config tiny_upsampler_level_0 --steps 2 {' '.join(FAST)}"
    )
    jb = Jukebox.load(tmp_path / "up0" / "model")
    assert [p.level for p in jb.config.priors] == [0, 1, 2]
    meta = json.loads((songs / "metadata.json").read_text())
    for p in jb.config.priors:
        assert p.labels.artists == tuple(meta["artists"]) and p.labels.genres == tuple(meta["genres"])
        assert p.l_bins == jb.config.vqvae.l_bins and p.labels.sample_rate == jb.config.vqvae.sample_rate
    top = metrics(tmp_path / "top")
    assert abs(top[0]["gen_loss"] - np.log2(64)) < 0.1  # a new prior starts near uniform over the codebook
    run_cli(  # as a user samples: in a process of its own (cli_process.py)
        f"sample --model {tmp_path / 'up0' / 'model'} --seconds 0.15 --song-seconds 2 --artist {meta['artists'][1]} --genre {meta['genres'][0]} --out {tmp_path / 'song'}"
    )
    codes = np.load(tmp_path / "song" / "codes.npz")
    assert codes["level_0"].shape[1] == 4 * codes["level_1"].shape[1] > 0


@pytest.mark.slow
def test_killed_run_resumes_bit_identical(songs, vqvae, tmp_path):
    """SIGKILL mid-run, then `--resume`: the parameters equal those of a run never stopped."""
    top = tmp_path / "top"
    cli(
        f"train prior --level 2 --data {songs} --vqvae {vqvae} --out {top} --config tiny_5b --steps 1 {' '.join(FAST)}"
    )  # encodes the codes once
    codes = top / "codes"
    command = f"train prior --level 2 --data {codes} --vqvae {vqvae} --config tiny_5b --steps 8 {' '.join(FAST)}"
    cli(f"{command} --out {tmp_path / 'straight'}")
    argv = [sys.executable, "-m", "jukebox_jax.cli", *shlex.split(f"{command} --out {tmp_path / 'killed'}")]
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cpu_env()
    )
    log = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while (
        time.time() < deadline and proc.poll() is None and not (log.is_file() and log.read_text().count('"loss"') >= 5)
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert log.read_text().count('"loss"') < 8, "the run finished before it was killed"
    with pytest.raises(SystemExit):  # the folder holds a run: it must be resumed, not restarted
        cli(f"{command} --out {tmp_path / 'killed'}")
    cli(f"{command} --out {tmp_path / 'killed'} --resume")
    a, b = (Jukebox.load(tmp_path / run / "model").params["prior_level_2"] for run in ("straight", "killed"))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    steps = [r["step"] for r in metrics(tmp_path / "killed") if "eval" not in r]
    assert steps == list(range(1, 9))
    # codes without --vqvae, fine-tuning --init: the model holds --init's VQ-VAE, a model to sample (it held the prior alone)
    cli(f"train prior --level 2 --data {codes} --init {top / 'model'} --out {tmp_path / 'tuned'} --steps 1 {' '.join(FAST)}")
    tuned, made = Jukebox.load(tmp_path / "tuned" / "model"), Jukebox.load(top / "model")
    assert tuned.config.vqvae == made.config.vqvae and tuned.vqvae_fingerprint() == made.vqvae_fingerprint()


def test_fine_tune_a_converted_prior_on_new_artists(songs, fixtures, tmp_path, monkeypatch, capsys):
    """The original code's tiny 5b prior, converted, learns the synthetic set's artists and
    genres as new ids after its own; its old label rows are untouched. The checkpoint given as
    both --vqvae and --init is loaded once (twice, and kept so, it held two 5b models), and
    nothing is loaded before the arguments are checked."""
    from convert import convert_checkpoint

    base = convert_checkpoint(fixtures / "vqvae.pth.tar", fixtures / "prior_5b_level2.pth.tar")
    base.save(tmp_path / "base")
    loaded, load = [], Jukebox.load
    monkeypatch.setattr(Jukebox, "load", lambda path, **kw: loaded.append(path) or load(path, **kw))
    command = f"train prior --data {songs} --vqvae {tmp_path / 'base'} --init {tmp_path / 'base'} --out {tmp_path / 'ft'}"
    with pytest.raises(SystemExit):
        cli(f"{command} --level 1")
    assert loaded == [] and "holds no level-1 prior" in capsys.readouterr().err  # from its config
    cli(f"{command} --level 2 --steps 1 {' '.join(FAST)}")
    assert loaded == [tmp_path / "base"]
    tuned = Jukebox.load(tmp_path / "ft" / "model")
    old, new = base.config.prior(2).labels, tuned.config.prior(2).labels
    meta = json.loads((songs / "metadata.json").read_text())
    assert new.artists[old.artist_bins :] == tuple(meta["artists"]) and new.artist_bins == old.artist_bins + len(
        meta["artists"]
    )
    released = tokenizer.id_table("artist", False)
    assert all(released[name] == i for i, name in enumerate(new.artists[: old.artist_bins]))  # the released names by id
    before, after = base.params["prior_level_2"]["labels"], tuned.params["prior_level_2"]["labels"]
    np.testing.assert_array_equal(
        np.asarray(after["artist_emb"]["embedding"])[: old.artist_bins], np.asarray(before["artist_emb"]["embedding"])
    )
    ids = tokenizer.song_labels(tuned.config.prior(2), 1000, meta["artists"][0], meta["genres"][0])
    assert ids.artist == old.artist_bins and ids.genres == (old.genre_bins,)
    assert (
        tokenizer.song_labels(tuned.config.prior(2), 1000, "unknown", "unknown").artist == 0
    )  # released names keep their ids
    for genre in ("Hard Rock", "Blues Rock"):  # a v2 genre of words: each word's id ("not in the model's table")
        assert tokenizer.song_labels(tuned.config.prior(2), 1000, "unknown", genre).genres == tokenizer.genre_ids(genre, False)


def test_nothing_held_out_trains_without_evaluation_and_resumes_on_its_songs_only(songs, tmp_path, capsys):
    """`--eval-fraction 0` (or a one-song folder) holds no song out: the run says so, trains to
    its last step and writes its model, without evaluation rows (it crashed at the first; a
    prior's run goes through the same `_fit` and `loop.fit`). `--resume` without a checkpoint
    starts over and says so; it refuses a folder whose songs changed since (here a plain folder
    of audio files, one of them then deleted)."""
    plain = tmp_path / "plain"
    plain.mkdir()
    for song in sorted((songs / "songs").iterdir()):
        (plain / song.name).write_bytes(song.read_bytes())
    out = tmp_path / "vqvae"
    command = f"train vqvae --config tiny_vqvae --seconds 0.05 --data {plain} --out {out} --eval-fraction 0 --beta2 0.925 {' '.join(FAST)}"
    cli(f"{command} --steps 2")
    spec = json.loads((out / "run.json").read_text())["spec"]
    assert spec["beta2"] == 0.925 and json.loads(spec["task"])["optim"]["beta2"] == 0.925  # the original 5b top prior's
    out_text = capsys.readouterr().out
    assert f"note: no song of --data {plain} is held out (--eval-fraction 0): no evaluation" in out_text
    assert "note: --warmup 100 is not shorter than --steps 2: the learning rate never reaches --lr 0.0003 (the last step's is 1% of it)" in out_text
    assert [r["step"] for r in metrics(out)] == [1, 2] and (out / "model" / "config.json").is_file()
    shutil.rmtree(out / "checkpoints")  # as if killed before its first checkpoint: --resume starts over, and says so
    cli(f"{command} --steps 2 --resume")
    assert f"note: {out} holds no checkpoint to resume from (killed before its first, or its checkpoints removed): training from step 0" in capsys.readouterr().out
    assert [r["step"] for r in metrics(out)] == [1, 2]
    early = tmp_path / "early"  # killed (or out of room) before run.json: the --resume the error asked for starts it
    early.mkdir()
    cli(f"{command.replace(str(out), str(early))} --steps 1 --resume")
    assert f"note: {early} holds no checkpoint to resume from" in capsys.readouterr().out
    assert [r["step"] for r in metrics(early)] == [1]
    record = json.loads((out / "run.json").read_text())
    for old in (2, 3):  # they held out songs by their names with suffix: resumed, they would train on others
        (out / "run.json").write_text(json.dumps({**record, "format": old}))
        with pytest.raises(SystemExit):
            cli(f"{command} --steps 3 --resume")
        assert f"begun by another version of jukebox-jax (run format {old}, this one writes 4)" in capsys.readouterr().err
    (out / "run.json").write_text(json.dumps(record))
    cli(f"{command} --steps 3 --resume")
    assert [r["step"] for r in metrics(out)] == [1, 2, 3] and json.loads((out / "run.json").read_text())["format"] == 4
    gone = min(plain.iterdir())
    gone.unlink()
    with pytest.raises(SystemExit):
        cli(f"{command} --steps 4 --resume")
    err = capsys.readouterr().err  # the song by name, then the bandwidth its windows gave
    assert f"was started with other settings and songs (songs in --data: {gone.name}, " in err
    assert "bring back the songs it began on, each with its audio, length and labels (or train into another --out)" in err


def test_bad_settings_are_refused(songs, vqvae, tmp_path, capsys):
    codes = tmp_path / "codes"
    data.encode_folder(Jukebox.load(vqvae), songs, codes)
    damaged = tmp_path / "damaged"
    shutil.copytree(songs, damaged, ignore=shutil.ignore_patterns("*.json"))  # songs without labels
    soundfile.write(damaged / "nan.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    silent = tmp_path / "silent"
    silent.mkdir()
    for name in ("a.wav", "b.wav"):
        soundfile.write(silent / name, np.zeros(32000, np.float32), 16000)
    priors_only = tmp_path / "priors_only"
    top = JukeboxConfig.from_preset("tiny_5b").prior(2)
    Jukebox.init(JukeboxConfig(priors=(top,)), jax.random.key(0)).save(priors_only)  # no VQ-VAE
    at_16k = tmp_path / "at_16k"
    Jukebox.init(JukeboxConfig(priors=(preset("small_top"),)), jax.random.key(0)).save(at_16k)  # no VQ-VAE, 16 kHz timing
    other_vq = tmp_path / "other_vq"  # the default's VQ-VAE's structure, other weights
    Jukebox.init(JukeboxConfig(vqvae=preset("small_vqvae")), jax.random.key(5)).save(other_vq)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)  # a RecursionError's traceback
    fix = "--config takes a preset or a JukeboxConfig JSON file; fine-tune a checkpoint with --init"
    cases = [
        (  # named before the first step, not when a window first falls in it
            f"train vqvae --data {damaged} --out {tmp_path / 'g'} --config tiny_vqvae",
            f"audio {damaged / 'nan.wav'} holds NaN or infinite samples; repair the file or leave it out",
        ),
        (  # the losses' normalisers were 0: "diverged" at step 1, advising a lower --lr
            f"train vqvae --data {silent} --out {tmp_path / 'g'} --config tiny_vqvae --eval-fraction 0 --batch-size 2",
            f"--data {silent}: the 128 windows drawn from its songs are all silent (silent songs, or channels that cancel",
        ),
        (f"train vqvae --data {songs} --out {tmp_path / 'a'}", "give --config"),
        (f"train vqvae --data {songs} --out {tmp_path / 'b'} --config tiny_5b", "is not a VQ-VAE"),
        (
            f"train vqvae --data {songs} --out {tmp_path / 'b'} --config tiny_vqvae --seconds 0.01",
            "--seconds 0.01: windows of 384 samples are shorter than the losses take (2048); give --seconds 0.046 or more",
        ),
        (f"train prior --level 2 --data {songs} --out {tmp_path / 'c'} --config tiny_5b", "holds audio: give --vqvae"),
        (  # it said "holds audio: give --vqvae"
            f"train prior --level 2 --data {tmp_path / 'none'} --out {tmp_path / 'c'} --config tiny_5b",
            f"--data {tmp_path / 'none'} does not exist; give a folder of songs, or of their codes",
        ),
        (
            f"train prior --level 2 --data {songs} --vqvae {priors_only} --init {priors_only} --out {tmp_path / 'c'}",
            f"--vqvae {priors_only} holds no VQ-VAE to encode --data {songs}; give a checkpoint with one",
        ),
        (
            f"train prior --level 1 --data {songs} --vqvae {vqvae} --init {vqvae} --out {tmp_path / 'd'}",
            "holds no level-1 prior",
        ),
        (f"train vqvae --data {tmp_path / 'none'} --out {tmp_path / 'e'} --config tiny_vqvae", str(tmp_path / "none")),
        (
            f"train prior --level 2 --data {codes} --vqvae {default.PATH} --out {tmp_path / 'f'} --config small_top",
            f"--data {codes} holds codes another VQ-VAE made than --vqvae {default.PATH}'s",
        ),
        (  # without --vqvae, codes of another VQ-VAE fine-tuned --init's prior (its timing read at the wrong rate)
            f"train prior --level 2 --data {codes} --init {default.PATH} --out {tmp_path / 'f'}",
            f"--data {codes} holds codes another VQ-VAE made than --init {default.PATH}'s; give --vqvae",
        ),
        (  # a prior-only --init: its hop and sample rate
            f"train prior --level 2 --data {codes} --init {at_16k} --out {tmp_path / 'f'}",
            f"--data {codes} holds codes that --init {at_16k}'s level-2 prior does not read (sample_rate 44100 against 16000)",
        ),
        (  # refused before the songs are encoded (minutes for a real folder)
            f"train prior --level 2 --data {songs} --vqvae {vqvae} --out {tmp_path / 'g'} --config tiny_upsampler_level_1",
            (
                "--config tiny_upsampler_level_1 is an upsampler (it reads the codes of the level above), but --level 2 is the top "
                "level; give a top-level structure (e.g. small_top), or another --level"
            ),
        ),
        (
            f"train prior --level 0 --data {songs} --vqvae {vqvae} --out {tmp_path / 'g'} --config tiny_5b",
            "--config tiny_5b is a top-level prior, but --level 0 is below the top level (2); give an upsampler structure",
        ),
        (f"train prior --level 3 --data {songs} --vqvae {vqvae} --out {tmp_path / 'g'} --config tiny_5b", "--level 3: --vqvae"),
        (  # it said "--init ... holds no level--1 prior"
            f"train prior --level -1 --data {songs} --init {default.PATH} --out {tmp_path / 'g'}",
            "argument --level: '-1' is not a level (a whole number >= 0; 0 is the finest)",
        ),
        (  # --config went unread: the run took --init's structure
            f"train prior --level 2 --data {songs} --vqvae {vqvae} --init {vqvae} --out {tmp_path / 'g'} --config tiny_5b",
            f"give --config (a new model's structure) or --init (fine-tune {vqvae} in its own structure), not both",
        ),
        (  # 1e306 s of samples is inf: checked before it is multiplied
            f"train vqvae --data {songs} --out {tmp_path / 'g'} --config tiny_vqvae --seconds 1e306",
            "--seconds 1e+306: windows longer than the longest song of --data (",
        ),
        (  # a billion windows grew until the OS killed the process
            f"train vqvae --data {songs} --out {tmp_path / 'g'} --config tiny_vqvae --batch-size 1000000000",
            "--batch-size 1000000000: a batch of 1000000000 windows of 44032 samples takes about 176.1 TB of memory, "
            "more than 12.5% of this machine's",
        ),
        *(  # refused before the songs are encoded (they were after it), led by the flag, not OptimConfig's field
            (f"train prior --level 2 --data {songs} --vqvae {vqvae} --out {tmp_path / 'g'} --config tiny_5b {extra}", message)
            for extra, message in (
                ("--ema 1.5", "--ema: OptimConfig.ema_mu=1.5: must be None (no EMA) or in (0, 1)"),
                ("--beta2 1", "--beta2: OptimConfig.beta2=1.0: must be in [0, 1)"),
                ("--eval-every -1", "--eval-every: eval_every must be 0 (never) or positive, got -1"),
                ("--eval-fraction 1", "--eval-fraction: eval_fraction 1 must lie in [0, 1)"),
            )
        ),
        (  # the fine-tuned model paired a 256-code prior with a 64-code VQ-VAE: found when sampling, blaming the codes
            f"train prior --level 2 --data {songs} --vqvae {vqvae} --init {default.PATH} --out {tmp_path / 'g'}",
            f"--init {default.PATH}'s level-2 prior does not read the codes of --vqvae {vqvae} (l_bins 256 against 64;",
        ),
        (f"train vqvae --data {songs} --out {tmp_path / 'g'} --config {vqvae}", f"--config {vqvae} is a folder; {fix}"),  # "unknown preset"
        (
            f"train vqvae --data {songs} --out {tmp_path / 'g'} --config {vqvae / 'config.json'}",
            f"--config {vqvae / 'config.json'} is a checkpoint's config.json; {fix} (its folder)",  # "unknown fields"
        ),
        (
            f"train prior --level 2 --data {songs} --vqvae {vqvae} --out {tmp_path / 'g'} --config {deep}",
            f"--config {deep}: not a readable JukeboxConfig JSON file (maximum recursion depth exceeded",
        ),
        (  # it trained on the other VQ-VAE's codes, unsaid, from a loss worse than uniform
            f"train prior --level 2 --data {songs} --vqvae {other_vq} --init {default.PATH} --out {tmp_path / 'g'}",
            (
                f"--init {default.PATH} holds another VQ-VAE than --vqvae {other_vq} (the same structure, other weights): "
                f"its level-2 prior reads the codes of its own; give --vqvae {default.PATH}"
            ),
        ),
        (  # refused before the songs are encoded
            f"train prior --level 2 --data {songs} --vqvae {vqvae} --out {tmp_path / 'g'} --config tiny_5b --batch-size 1000000000",
            "--batch-size 1000000000: a batch of 1000000000 windows of ",
        ),
        (  # a folder that is not a run of ours: nothing is written into it
            f"train vqvae --data {songs} --out {songs} --config tiny_vqvae",
            f"--out {songs} holds other files (",
        ),
        (  # a run inside its data: the next run would read this one's codes as songs
            f"train vqvae --data {songs} --out {songs / 'run'} --config tiny_vqvae",
            f"--out {songs / 'run'} is inside --data {songs}: the next run",
        ),
    ]
    before = sorted(p.relative_to(songs) for p in songs.rglob("*"))
    for command, message in cases:
        with pytest.raises(SystemExit):
            cli(command)
        err = capsys.readouterr().err
        assert message in err and f"jukebox-jax {' '.join(command.split()[:2])}: error: " in err, command  # the subcommand's usage
    assert not (tmp_path / "g").exists() and sorted(p.relative_to(songs) for p in songs.rglob("*")) == before


def test_a_prior_run_is_checked_before_its_songs_are_encoded_again(songs, vqvae, tmp_path, capsys, monkeypatch):
    """A prior's run encodes --data into its folder. A resume with another --vqvae (its codes
    were encoded again and the run went on with them, unsaid), or a new run over it (its codes
    were rewritten, then it was refused), is refused before a song is encoded; a resume given
    the same folder by another path goes on (it was refused as other settings, "data"), and
    one with another --seconds names it (it named the bandwidth the windows gave), and one of
    songs changed since is refused before they are encoded again (it trained on the old codes)."""
    other = tmp_path / "other_vqvae"
    Jukebox.init(JukeboxConfig(vqvae=Jukebox.load(vqvae).config.vqvae), jax.random.key(5)).save(other)
    out = tmp_path / "top"
    run = f"train prior --level 2 --out {out} --config tiny_5b --steps 2 {' '.join(FAST)}"
    cli(f"{run} --data {songs} --vqvae {vqvae}")
    codes = {p: p.read_bytes() for p in (out / "codes").rglob("*") if p.is_file()}
    capsys.readouterr()
    for extra, message in [
        (f"--data {songs} --vqvae {other} --resume", f"{out} was started with other settings (vqvae); resume with the same ones"),
        (f"--data {songs} --vqvae {other}", f"{out} holds a training run already: pass --resume"),
    ]:
        with pytest.raises(SystemExit):
            cli(f"{run} {extra}")
        assert message in capsys.readouterr().err, extra
        assert {p: p.read_bytes() for p in (out / "codes").rglob("*") if p.is_file()} == codes
    changed = tmp_path / "changed"  # the same songs, one of them since changed (the same length)
    shutil.copytree(songs, changed)
    first = min((changed / "songs").iterdir())
    soundfile.write(first, np.full(soundfile.info(first).frames, 0.1), 16000)
    with pytest.raises(SystemExit):
        cli(f"{run} --data {changed} --vqvae {vqvae} --resume")
    assert (
        f"{out} was started with other songs (songs in --data: songs/{first.name}); bring back the songs"
        in capsys.readouterr().err
    )
    assert {p: p.read_bytes() for p in (out / "codes").rglob("*") if p.is_file()} == codes
    monkeypatch.chdir(songs.parent)
    cli(f"{run} --data {songs.name} --vqvae {vqvae} --resume")  # at its last step already: writes its model again
    assert "trained to step 2" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli(f"train vqvae --data {songs} --out {vqvae.parent} --config tiny_vqvae --steps 3 --seconds 0.06 {' '.join(FAST)} --resume")
    err = capsys.readouterr().err  # a short value is shown, old and new
    assert f"{vqvae.parent} was started with other settings (seconds 0.05 -> 0.06, task.bandwidth" in err


def test_songs_shorter_than_the_window_are_named_before_encoding(songs, vqvae, tmp_path, capsys):
    """They were named only after every song was encoded (into a codes folder left behind),
    though the CLI checks its files before the long work."""
    short = tmp_path / "short"
    shutil.copytree(songs, short)
    first = min((short / "songs").iterdir())
    top = Jukebox.load(vqvae).config.vqvae.hop_lengths[-1]
    soundfile.write(first, np.full(3 * top, 0.1), 16000)  # 8 top-level tokens at the model's 44.1 kHz; the window 48
    out = tmp_path / "top"
    with pytest.raises(SystemExit):
        cli(f"train prior --level 2 --data {short} --vqvae {vqvae} --out {out} --config tiny_5b --steps 2 {' '.join(FAST)}")
    assert f"1 song is shorter than the window of 48 level-2 tokens: songs/{first.name} (8); remove them" in capsys.readouterr().err
    assert not (out / "codes").exists()


def test_a_released_prior_trains_on_every_word_of_a_genre():
    """The released v2 tables give a genre one id per word: "Hip Hop" trains as (hip, hop), as
    `sample --genre "Hip Hop"` conditions (it trained as hip alone)."""
    from jukebox_jax.train.labels import label_ids

    cfg = JukeboxConfig.from_preset("5b").prior(2)
    folder = data.Folder(Path("."), 44100, (data.Song("a.wav", 10**5, 0, 0, ""),), ("Alan Jackson",), ("Hip Hop",))
    ids = label_ids(cfg, folder)
    assert ids["genre"] == [tokenizer.song_labels(cfg, 1, genre="Hip Hop").genres] and len(ids["genre"][0]) == 2
    assert ids["artist"] == [tokenizer.song_labels(cfg, 1, artist="Alan Jackson").artist]


def test_prior_arrays_label_each_window_in_the_priors_ids():
    """`train.labels.prior_arrays`, the batches `train prior` trains on (and a notebook's
    fine-tune can): each window's row is `window_labels` of its song in the prior's ids, the
    folder's index mapped to them; names the prior lacks are refused until `with_labels_of`."""
    import jax

    from jukebox_jax.train.labels import prior_arrays, with_labels_of

    cfg = JukeboxConfig.from_preset("tiny_5b_lyrics").prior(2)
    songs = (data.Song("a.wav", 10**6, 1, 0, "la la"), data.Song("b.wav", 2 * 10**6, 0, 1, "oh"))
    folder = data.Folder(Path("."), 44100, songs, ("Zz Unheard", "Alan Jackson"), ("Hip Hop", "blues"))
    batch = data.Batch(
        np.zeros((2, cfg.n_ctx), np.int32), None, ("b.wav", "a.wav"), np.int32([0, 1]), np.int32([1, 0]),
        np.int64([5 * 128, 0]), np.int64([2 * 10**6, 10**6]), ("oh", "la la"),
    )
    with pytest.raises(InputError, match="Zz Unheard"):
        prior_arrays(cfg, folder)
    with pytest.raises(InputError, match=r"key must be one PRNG key, jax.random.key\(seed\)"):  # an int seed: JAX's TypeError
        with_labels_of(cfg, {}, folder, 0)
    tuned, _ = with_labels_of(cfg, Jukebox.init(JukeboxConfig(priors=(cfg,)), jax.random.key(0)).params["prior_level_2"], folder, jax.random.key(1))
    got = prior_arrays(tuned, folder)(batch)
    want = [
        window_labels(tuned, tokenizer.song_labels(tuned, 2 * 10**6, "Zz Unheard", "blues", "oh", offset=5 * 128), 0),
        window_labels(tuned, tokenizer.song_labels(tuned, 10**6, "Alan Jackson", "Hip Hop", "la la"), 0),
    ]
    np.testing.assert_array_equal(got["labels"], np.stack(want))
    assert got["labels"][0, 3] == cfg.labels.artist_bins and got["tokens"] is batch.x and "upper" not in got
    # windows of another folder (the audio folder's names for the codes'): their indices would be another table's
    with pytest.raises(InputError, match=r"the batch's songs \['b.npz', 'a.npz'\] are not \.'s: give prior_arrays the codes folder"):
        prior_arrays(tuned, folder)(dataclasses.replace(batch, songs=("b.npz", "a.npz")))


def test_a_16_bit_checkpoint_fine_tunes_in_float32():
    """`train prior --init` of a checkpoint stored at 16 bits (convert --dtype, Jukebox.astype)
    trains float32 weights, as `PriorTask` needs (it refuses 16-bit master weights)."""
    from jukebox_jax.cli_train import _float32_prior
    from jukebox_jax.config import DType

    jb = Jukebox.init(JukeboxConfig.from_preset("tiny_5b"), jax.random.key(0))
    half = jb.astype("bfloat16")
    cfg, params = _float32_prior(half.config.prior(2), half.params["prior_level_2"])
    assert cfg == jb.config.prior(2) and cfg.precision.params is DType.FLOAT32
    for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(half.params["prior_level_2"]), strict=True):
        assert x.dtype == np.float32 and np.array_equal(np.asarray(x), np.asarray(y, np.float32))
    assert _float32_prior(jb.config.prior(2), jb.params["prior_level_2"])[1] is jb.params["prior_level_2"]


def test_fine_tuning_a_model_of_its_own_names_on_unlabelled_songs():
    """Songs without metadata are artist and genre 'unknown': a prior whose own tables lack it
    (the default model's) gets it as a new name (it refused 'unknown', a name the user never gave)."""
    import jax

    from jukebox_jax.train.labels import label_ids, with_labels_of

    jb = default.load()
    cfg, params = jb.config.prior(2), jb.params["prior_level_2"]
    assert "unknown" not in cfg.labels.artists
    folder = data.Folder(Path("."), 16000, (data.Song("a.wav", 10**5, 0, 0, ""),))
    tuned, _ = with_labels_of(cfg, params, folder, jax.random.key(0))
    assert tuned.labels.artists == (*cfg.labels.artists, "unknown") and tuned.labels.genres == (*cfg.labels.genres, "unknown")
    assert label_ids(tuned, folder) == {"artist": [len(cfg.labels.artists)], "genre": [(len(cfg.labels.genres),)]}


def test_a_linear_decay_begins_at_the_peak_of_a_fractional_warmup():
    """`--warmup 2.5 --linear-decay 2`: step 3 is the first at the full rate, and the decay
    begins there (it began at step int(2.5) = 2: 0, 4e-4, 8e-4, 5e-4, 0, the peak never met)."""
    import argparse

    from jukebox_jax.cli_train import _optim
    from jukebox_jax.train.optim import lr_schedule

    args = argparse.Namespace(lr=1e-3, warmup=2.5, linear_decay=2, weight_decay=0.0, beta2=0.999, ema=None)
    lrs = [float(lr_schedule(_optim(args))(i)) for i in range(6)]
    np.testing.assert_allclose(lrs, [0, 4e-4, 8e-4, 1e-3, 5e-4, 0], rtol=1e-6, atol=1e-12)


def test_a_new_lyric_prior_knows_every_character_of_its_cleaned_lyrics():
    """The vocabulary is made of the lyrics as they are tokenized (transliterated, `\\` a new
    line): made of the raw text, "don’t stop\\café" trained as "dont stopcaf"."""
    from jukebox_jax.cli_train import _adapted
    from jukebox_jax.config import preset
    from jukebox_jax.train.labels import dropped_lyric_chars

    folder = data.Folder(Path("."), 16000, (data.Song("a.wav", 10**5, 0, 0, "don’t stop\\café"),), ("x",), ("y",))
    cfg = _adapted(preset("tiny_5b_lyrics"), preset("tiny_vqvae"), folder)
    chars = cfg.labels.lyric_chars
    assert chars == "\n 'acdefnopst" and cfg.n_vocab == len(chars) + 1
    tokens = tokenizer.lyric_tokens(folder.songs[0].lyrics, cfg.labels.v3, chars)
    assert "".join(chars[t - 1] for t in tokens) == "don't stop\ncafe"
    # fine-tuned on other songs, it keeps its characters: train prior names the ones it lacks (they were dropped unsaid)
    assert dropped_lyric_chars(cfg, folder) == ""
    other = dataclasses.replace(folder, songs=(data.Song("b.wav", 10**5, 0, 0, "jazz quiz, café"),))
    assert dropped_lyric_chars(cfg, other) == ",ijquz"
    assert dropped_lyric_chars(preset("tiny_5b"), other) == ""  # no lyrics read


def test_a_run_folder_another_process_writes_is_refused(songs, tmp_path, capsys):
    """A second `train` into a run in progress is refused before it reads or writes a thing
    (two runs interleaved their checkpoints and metrics; `io.exclusive`)."""
    out = tmp_path / "run"
    with exclusive(out, ("run.json",), "training run"), pytest.raises(SystemExit):
        cli(f"train vqvae --data {songs} --out {out} --config tiny_vqvae --steps 1 {' '.join(FAST)}")
    assert f"--out {out} is in use: another process is writing a training run there" in capsys.readouterr().err
    assert list(out.iterdir()) == []  # the holder wrote nothing, nor did the refused run


@pytest.mark.slow
def test_data_parallel_remat_and_mixed_precision(songs, vqvae, tmp_path):
    """`--mesh data=2` (2 CPU devices) with `--remat full` trains the same parameters as the
    plain run (to float32 reduction order); `--compute-dtype bfloat16 --ema 0.99` trains and
    writes its EMA as the model (the original's `ema.swap()` before saving): after 3 steps at
    decay 0.99 the EMA has moved a few hundredths of the way the weights have."""
    cli(f"train prior --level 2 --data {songs} --vqvae {vqvae} --out {tmp_path / 'codes'} --config tiny_5b --steps 1 {' '.join(FAST)}")
    command = f"train prior --level 2 --data {tmp_path / 'codes' / 'codes'} --vqvae {vqvae} --config tiny_5b --steps 3 {' '.join(FAST)}"
    env = cpu_env(2)
    runs = {"plain": "", "mesh": "--mesh data=2 --remat full", "bf16": "--compute-dtype bfloat16 --ema 0.99"}
    for name, extra in runs.items():
        argv = [sys.executable, "-m", "jukebox_jax.cli", *shlex.split(f"{command} --out {tmp_path / name} {extra}")]
        subprocess.run(argv, check=True, env=env, capture_output=True)
    params = {name: jax.tree.leaves(Jukebox.load(tmp_path / name / "model").params["prior_level_2"]) for name in runs}
    start = jax.tree.leaves(Jukebox.load(tmp_path / "codes" / "model").params["prior_level_2"])
    moved = {name: np.concatenate([np.abs(np.asarray(x) - np.asarray(p0)).ravel() for x, p0 in zip(params[name], start)]) for name in runs}
    for x, y, p0 in zip(params["mesh"], params["plain"], start):
        step = np.abs(np.asarray(y) - np.asarray(p0)).max()  # how far 3 steps moved it
        assert np.abs(np.asarray(x) - np.asarray(y)).max() <= 1e-3 * step + 1e-7
    assert 0 < moved["bf16"].max() < 0.1 * moved["plain"].max()
    bf16 = [r for r in metrics(tmp_path / "bf16") if "loss" in r]
    assert len(bf16) == 3 and all(np.isfinite(r["loss"]) for r in bf16)
    plain = [r for r in metrics(tmp_path / "plain") if "loss" in r]
    assert abs(bf16[-1]["gen_loss"] - plain[-1]["gen_loss"]) < 0.05  # 16-bit activations, same model
    refused = {  # before anything is written (a batch the mesh could not split was found at step 1, after run.json)
        "--mesh model=2": "--mesh model=2: training is data parallel only, but this gives model=2",  # it ran, each step twice
        "--mesh data=2 --batch-size 3": "--batch-size 3 must be a multiple of the mesh's data axis (2)",
    }
    for extra, message in refused.items():
        argv = [sys.executable, "-m", "jukebox_jax.cli", *shlex.split(f"{command} --out {tmp_path / 'refused'} {extra}")]
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr and not (tmp_path / "refused").exists(), done.stderr
    argv = [sys.executable, "-m", "jukebox_jax.cli", *shlex.split(f"{command} --steps 4 --resume --out {tmp_path / 'mesh'}")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)  # the batch on one device: sums in another order
    assert done.returncode == 2 and "was started with other settings (data devices 2 -> 1); resume with the same ones" in done.stderr


@pytest.mark.slow
def test_the_readmes_python_fine_tune_runs_as_written(tmp_path, monkeypatch):
    """The README's fine-tune in Python, run as written in an empty folder: it writes a model
    whose level-1 prior moved and which samples."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = text.split("runs this block as written", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 (the README's own code)
    tuned, jb = Jukebox.load("my_model"), default.load()
    assert tuned.config == jb.config  # the synthetic songs' names are the default's: no table grew
    same = {
        part: all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(tuned.params[part]), jax.tree.leaves(jb.params[part]), strict=True))
        for part in ("vqvae", "prior_level_2", "prior_level_1", "prior_level_0")
    }
    assert same == {"vqvae": True, "prior_level_2": True, "prior_level_1": False, "prior_level_0": True}
    rows = [json.loads(line) for line in Path("my_run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval" not in r] == [1, 2, 3, 4] and any("eval" in r for r in rows)
    labels = tuned.labels(1, artist="tide", genre="electronic", total_seconds=3)
    upper = np.zeros((1, tuned.config.prior(1).n_ctx // tuned.config.prior(1).cond_downsample), np.int32)
    assert tuned.sample(1, jax.random.key(0), labels, 8, upper).shape == (1, 8)
