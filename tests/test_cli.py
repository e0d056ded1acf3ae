"""`jukebox-jax sample`: every bad argument or file is a one-line error (exit code 2) made
before any model is loaded and before anything is written; a job knows what it is, so a
resume with other arguments is refused naming what differs; a resume removes what a kill
left; the README's examples run. Models are loaded once per (name, seed) for the module."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from damage import flip

from jukebox_jax import Jukebox, JukeboxConfig, cli_sample, cli_train, preset, quantize, tokenizer
from jukebox_jax.cli import main
from jukebox_jax.config import MODEL_PRESETS, DType, Precision, WeightFormat
from jukebox_jax.errors import InputError, Interrupted
from jukebox_jax.generation.inputs import read_codes, read_prompt
from jukebox_jax.generation.job import Mode
from jukebox_jax.integrity import file_digest
from jukebox_jax.io import exclusive

README = Path(__file__).resolve().parents[1] / "README.md"
SR = 44100
_MODELS: dict = {}  # (name, seed) -> Jukebox, shared by the module's tests
_LOAD = cli_sample.load_model
_WITH_PRECISION = cli_sample.with_precision


def _shared_load(name: str, config: JukeboxConfig, seed: int, mesh=None) -> Jukebox:
    """`load_model`, run once per preset and seed (or folder): building is deterministic."""
    if mesh is not None:
        return _LOAD(name, config, seed, mesh)
    key = (name, seed if name in MODEL_PRESETS else None)
    if key not in _MODELS:
        _MODELS[key] = _LOAD(name, config, seed)
    return _MODELS[key]


@pytest.fixture(autouse=True)
def shared_models(monkeypatch):
    monkeypatch.setattr(cli_sample, "load_model", _shared_load)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Good and bad inputs, made once."""
    d = tmp_path_factory.mktemp("inputs")
    codes = {f"level_{i}": np.zeros((1, n), np.int64) for i, n in enumerate((16, 4, 1))}
    np.savez(d / "good.npz", **codes)
    np.savez(d / "long.npz", **{**codes, "level_2": np.zeros((1, 400), np.int64)})
    np.savez(d / "overlong.npz", **{**codes, "level_2": np.zeros((1, 210_000), np.int64)})  # 609.5 s, past the timing's 600
    np.savez(d / "top.npz", **{**codes, "level_0": np.zeros((1, 0), np.int64), "level_1": np.zeros((1, 0), np.int64)})  # a --levels 2 job's
    np.savez(d / "float.npz", **{**codes, "level_1": np.zeros((1, 4))})
    np.savez(d / "rank1.npz", **{**codes, "level_0": np.zeros(5, np.int64)})
    np.savez(d / "object.npz", level_2=np.array([{"a": 1}], dtype=object))
    np.savez(d / "batch.npz", **{**codes, "level_2": np.zeros((2, 1), np.int64)})
    np.savez(d / "nolevels.npz", codes=np.zeros((1, 4), np.int64))
    np.savez(d / "range.npz", **{**codes, "level_2": np.full((1, 1), 64)})
    np.savez(d / "level3.npz", **codes, level_3=np.zeros((1, 1), np.int64))
    np.savez(d / "padded.npz", **codes, level_02=np.zeros((1, 1), np.int64))  # read as level 2, over level_2
    (d / "text.npz").write_text("not a zip")
    soundfile.write(d / "prompt.wav", 0.1 * np.sin(np.arange(SR) / 10.0), SR)  # 1 s
    soundfile.write(d / "empty.wav", np.zeros(0), 22050)
    (d / "text.wav").write_text("not audio")
    (d / "lyrics.txt").write_text("la la la", encoding="utf-8")
    int8 = quantize.config_with_weights(JukeboxConfig.from_preset("tiny_5b"), "int8")
    for name, text in [
        ("noconfig", None),
        ("badjson", "{"),
        ("nokey", "{}"),
        ("vqonly", _config_json(JukeboxConfig(vqvae=preset("tiny_vqvae")))),
        ("int8", _config_json(int8)),
        ("toponly", _config_json(JukeboxConfig(preset("tiny_vqvae"), (JukeboxConfig.from_preset("tiny_5b").prior(2),)))),
    ]:
        (d / name).mkdir()
        if text is not None:
            (d / name / "config.json").write_text(text)
    (d / "run" / "model").mkdir(parents=True)  # a training run's --out: its checkpoint is model/
    (d / "run" / "model" / "config.json").write_text(_config_json(JukeboxConfig.from_preset("tiny_5b")))
    (d / "run" / "run.json").write_text("{}")
    (d / "run" / "checkpoints" / "40").mkdir(parents=True)  # a training state (orbax): no config.json
    (d / "job").mkdir()
    (d / "job" / "job.json").write_text("{}")
    (d / "readonly").mkdir(mode=0o555)
    (d / "dangling").symlink_to(d / "gone")
    return d


def _config_json(config: JukeboxConfig) -> str:
    return json.dumps({"format": "jukebox-jax/2", "config": config.to_dict()})


ROOT = os.geteuid() == 0  # root writes in read-only folders
PROC = Path("/proc/1")  # a folder even root cannot write in (procfs)
BAD = [
    # (arguments after `sample --model tiny_5b --out {d}/out`, the message's pattern)
    (["--seconds", "nan"], r"argument --seconds: 'nan' is not a finite number"),
    (["--seconds", "inf"], r"argument --seconds: 'inf' is not a finite number"),
    (["--seconds", "0"], r"argument --seconds: '0' is not positive"),
    (["--seconds", "-1"], r"argument --seconds: '-1' is not positive"),
    (["--seconds", "1e7"], r"--seconds 1e\+07 is past the 600 s the model's timing conditioning covers; give at most 600"),
    (["--seconds", "1e306"], r"--seconds 1e\+306 is past the 600 s"),  # checked before it is multiplied: inf samples
    (["--seconds", "0.001"], r"--seconds 0.001 is shorter than one level-2 token \(128 samples"),
    (["--song-seconds", "601"], r"--song-seconds 601 is past the 600 s"),
    (["--seconds", "0.02"], r"--seconds 0.02: the level-1 upsampler samples windows of 0.0465 s; give at least that"),
    (["--n-samples", "0"], r"argument --n-samples: '0' is not a whole number >= 1"),
    (  # refused before the plan holds a billion of anything
        ["--n-samples", "1000000000"],
        r"--n-samples 1000000000: 1000000000 samples of [\d.]+ s keep their codes and audio in about [\d,]+\.\d TB of "
        r"memory, more than 50.0% of this machine's [\d,.]+ GB; draw fewer at a time \(several jobs, each with its own --out\)",
    ),
    (["--max-batch-size", "x"], r"argument --max-batch-size: 'x' is not a whole number >= 1"),
    (["--seed", "-1"], r"argument --seed: '-1' is not a whole number in \[0, 2\*\*32\)"),
    (["--n-samples", "\u0663"], r"argument --n-samples: '\u0663' is not a whole number >= 1"),  # a digit, but not ASCII
    (["--seed", str(2**32)], r"argument --seed: '4294967296' is not a whole number in \[0, 2\*\*32\)"),  # drew as seed 0
    (["--seed", "9" * 5000], r"argument --seed: '9+\.\.\. is not a whole number in \[0, 2\*\*32\)$"),  # cut, not a traceback
    (["--n-samples", "9" * 5000], r"argument --n-samples: '9+\.\.\. is not a whole number >= 1 \(of at most 20 digits\)$"),
    (["--model", ""], r"--model is empty; give a checkpoint folder or a preset, or leave it out for the default model"),  # the working folder
    (["--n-samples", str(2**63)], r"--n-samples must be in 1..2147483647, got 9223372036854775808"),  # numpy's "Maximum allowed dimension"
    (["--seconds", "x" * 5000], r"argument --seconds: 'x+\.\.\. is not a number$"),
    (["--top-k", "1" * 5000], r"argument --top-k: '1+\.\.\. is not a whole number \(of at most 20 digits\)$"),
    (["--temperature", "0"], r": --temperature must be at least 1e-06 .* use --top-k 1$"),  # it named top_k=1
    (["--temperature", "1e308", "--top-k", "5"], r"temperature must be at most 1e\+06 .* got 1e\+308$"),  # drew as if no top-k
    (["--top-k", "3", "--top-p", "0.5"], r"give --top-k or --top-p, not both"),
    (["--levels", "5"], r"--levels 5: the model has priors for levels 0 1 2"),
    (["--levels", "1"], r"level 1 reads the level-2 codes, which cover 0.00 s of the 20.00 s asked; sample level 2 too"),
    (["--artist", "Nobody Zzz"], r"artist 'Nobody Zzz' .* not in the v2 artist table.*Use 'unknown'"),
    (["--artist", "Alan Jackson"], r"beyond the level-\d prior's 30 artists .*use 'unknown'"),
    (["--lyrics", "la", "--lyrics-file", "{d}/lyrics.txt"], r"give --lyrics or --lyrics-file, not both"),
    (["--lyrics-file", "{d}/missing.txt"], r"--lyrics-file {d}/missing.txt cannot be read"),
    (["--mode", "upsample"], r"--mode upsample needs --codes"),
    (["--mode", "primed"], r"--mode primed needs --prompt-audio"),
    (["--codes", "{d}/good.npz"], r"--codes is read by --mode continue or upsample, not ancestral"),
    (["--prompt-audio", "{d}/prompt.wav"], r"--prompt-audio is read by --mode primed, not ancestral"),
    (["--prompt-seconds", "3"], r"--prompt-seconds is read by --mode primed, not ancestral"),
    (["--mode", "continue", "--codes", "{d}/missing.npz"], r"codes file {d}/missing.npz does not exist"),
    (["--mode", "continue", "--codes", "{d}"], r"codes file {d} is a folder"),
    (["--mode", "continue", "--codes", "{d}/text.npz"], r"codes file {d}/text.npz is not an .npz archive"),
    (["--mode", "continue", "--codes", "{d}/object.npz"], r"codes file {d}/object.npz cannot be read \(Object arrays"),
    (["--mode", "continue", "--codes", "{d}/rank1.npz"], r"level_0 is int64 of shape \(5,\), not integer codes \[samples >= 1, tokens\]; give the codes.npz"),
    (["--mode", "continue", "--codes", "{d}/float.npz"], r"level_1 is float64 of shape \(1, 4\), not integer codes"),
    (["--mode", "continue", "--codes", "{d}/batch.npz"], r"different numbers of samples per level \(\{0: 1, 1: 1, 2: 2\}\)"),
    (["--mode", "continue", "--codes", "{d}/nolevels.npz"], r"holds no level_\* arrays \(it has \['codes'\]\)"),
    (["--mode", "continue", "--codes", "{d}/range.npz"], r"level_2 holds codes in \[64, 64\], not in \[0, 64\); give the codes.npz"),
    (["--mode", "continue", "--codes", "{d}/level3.npz"], r"holds level_3, but the model has levels 0..2"),
    (["--mode", "continue", "--codes", "{d}/padded.npz"], r"holds level_02: name each level's codes level_0, level_1, \.\.\.; give"),
    (["--mode", "continue", "--codes", "{d}/long.npz", "--seconds", "0.5"], r"--codes already holds 1.16 s at level 2, --seconds 0.5 no more"),
    (  # it said "give a longer --seconds", which the model's timing does not allow
        ["--mode", "continue", "--codes", "{d}/overlong.npz", "--seconds", "600"],
        (
            r"--codes already holds 609.52 s at level 2, --seconds 600 no more: the model's timing covers songs up to 600 s, so "
            r"nothing is left to continue: trim the codes$"
        ),
    ),
    (["--mode", "continue", "--codes", "/dev/null"], r"codes file /dev/null is not a regular file \(a device, pipe or socket\); give a file"),
    (["--mode", "continue", "--codes", "{d}/good.npz", "--n-samples", "3"], r"--n-samples 3: --codes holds 1 sample;"),
    (["--mode", "upsample", "--codes", "{d}/good.npz", "--levels", "2", "1"], r"--mode upsample samples the levels below the top: give --levels without 2"),
    (
        ["--mode", "upsample", "--codes", "{d}/good.npz", "--levels", "1", "--seconds", "1"],
        r"level 1 reads the level-2 codes, which cover 0.00 s of the 1.00 s asked; give a shorter --seconds, or leave it out",
    ),
    (  # upsampling level 0 reads --codes' level 1 (it threw them away: "cover 0.00 s") and blames no --seconds
        ["--mode", "upsample", "--codes", "{d}/good.npz", "--levels", "0"],
        r"--codes \(level 1: 0.0029\d* s\): the level-0 upsampler samples windows of 0.0117 s; give longer codes",
    ),
    (  # it said: "--codes (level 1: 0 s) is shorter than one level-2 token"
        ["--mode", "upsample", "--codes", "{d}/top.npz", "--levels", "0"],
        r"--codes holds no level-1 codes \(only levels \[2\]\) for level 0 to upsample: give --levels 1 0",
    ),
    (["--mode", "upsample", "--codes", "{d}/good.npz", "--model", "{d}/toponly"], r"--mode upsample: the model has no prior below the top level"),
    (["--top-k", "300"], r"--top-k: top_k must be at most 64 \(the level-2 prior's vocabulary\), got 300"),  # refused after job.json was written
    (
        ["--mode", "primed", "--prompt-audio", "{d}/prompt.wav", "--seconds", "3", "--levels", "1", "0"],
        r"level 1 reads the level-2 codes, which cover 1.00 s of the 3.00 s asked; sample level 2 too$",
    ),
    (["--mode", "primed", "--prompt-audio", "{d}/missing.wav"], r"prompt audio {d}/missing.wav does not exist"),
    (["--mode", "primed", "--prompt-audio", "{d}"], r"prompt audio {d} is a folder; give a file"),
    (["--mode", "primed", "--prompt-audio", "/dev/zero"], r"prompt audio /dev/zero is not a regular file"),  # was "does not exist"
    (["--mode", "primed", "--prompt-audio", "{d}/text.wav"], r"prompt audio {d}/text.wav is not audio soundfile can read \(wav, flac, ogg \(Vorbis, Opus\), mp3 or aiff\)"),
    (["--mode", "primed", "--prompt-audio", "{d}/empty.wav"], r"prompt audio {d}/empty.wav holds no samples; give a file with audio in it"),
    (["--mode", "primed", "--prompt-audio", "{d}/prompt.wav", "--prompt-seconds", "-1"], r"argument --prompt-seconds: '-1' is not positive"),
    (["--mode", "primed", "--prompt-audio", "{d}/prompt.wav", "--prompt-seconds", "0.001"], r"priming needs at least 128"),
    (["--mode", "primed", "--prompt-audio", "{d}/prompt.wav", "--seconds", "0.5"], r"priming with 1.00 s of it leaves nothing to sample in --seconds 0.50; give a longer --seconds"),
    (["--model", "{d}/missing"], r"--model '{d}/missing' is neither a checkpoint folder nor a preset \(5b, "),
    (["--model", "{d}/noconfig"], r"noconfig/config.json is missing: not a jukebox-jax checkpoint"),
    (["--model", "{d}/run"], r"{d}/run is a training run, not a checkpoint: give its model, {d}/run/model$"),
    (  # it said "config.json is missing: not a jukebox-jax checkpoint ... convert the original again"
        ["--model", "{d}/run/checkpoints/40"],
        r"{d}/run/checkpoints/40 is a training state of the run {d}/run, not a model: give its model, {d}/run/model ",
    ),
    (["--model", "{d}/badjson"], r"badjson/config.json is not readable JSON .*convert the original again"),
    (["--model", "{d}/nokey"], r"nokey/config.json: format None; this version reads"),
    (["--model", "{d}/vqonly"], r"needs a VQ-VAE and priors to sample; it holds only a VQ-VAE"),
    (["--dtype", "float64"], r"argument --dtype: invalid choice: 'float64' \(choose from .*float32.*bfloat16.*float16"),
    (["--weights", "int4"], r"argument --weights: invalid choice: 'int4' \(choose from .*float.*int8"),
    (["--model", "{d}/int8", "--weights", "float"], r"--weights float: --model holds int8 weights, which cannot become float again"),
    (["--out", "{d}/lyrics.txt"], r"--out: {d}/lyrics.txt is a file; give a folder"),
    (["--out", "{d}/dangling"], r"argument --out: {d}/dangling is a link to nothing \({d}/gone\); give a folder"),  # was "File exists" after loading
    (["--out", "{d}/dangling/run"], r"argument --out: {d}/dangling is a link to nothing"),
    (["--out", ""], r"argument --out: an empty path; give a folder \(\. for this one\)"),  # it wrote into the working folder
    (["--out", "{d}/lyrics.txt/run"], r"--out: {d}/lyrics.txt is a file; give a folder"),
    pytest.param(["--out", "{d}/readonly/run"], r"cannot write in {d}/readonly ", marks=pytest.mark.skipif(ROOT, reason="root ignores permissions")),
    pytest.param(["--out", "/proc/1/run"], r"cannot write in /proc/1 ", marks=pytest.mark.skipif(not PROC.is_dir(), reason="no procfs")),
    pytest.param(["--out", "/proc/run"], r"cannot write in /proc ", marks=pytest.mark.skipif(not PROC.is_dir(), reason="no procfs")),
    (["--out", "{d}/job"], r"{d}/job already holds a sampling job: resume it \(--resume\) or choose another output folder"),
    (["--out", "{d}"], r"--out {d} holds other files \(.+\), not a sampling job; give a new or empty folder"),
]


@pytest.mark.parametrize("args,pattern", BAD)
def test_bad_input_is_a_one_line_error_before_loading(files, args, pattern, monkeypatch, capsys):
    def no_model(*_):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(cli_sample, "load_model", no_model)
    d = str(files)
    argv = ["sample", "--model", "tiny_5b", "--out", f"{d}/out"] + [a.replace("{d}", d) for a in args]
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert message.startswith("jukebox-jax sample: error: ")
    assert re.search(pattern.replace("{d}", re.escape(d)), message), message
    assert not (files / "out").exists()  # nothing was written


def test_a_preset_name_that_is_also_a_folder_is_refused(tmp_path, monkeypatch, capsys):
    """A model converted or saved as `-o tiny_5b` was passed over for the preset's random weights."""
    monkeypatch.chdir(tmp_path)
    Path("tiny_5b").mkdir()
    Path("tiny_5b", "config.json").write_text("{}")  # a checkpoint's (a folder of songs of that name is not one)
    with pytest.raises(SystemExit):
        main(["sample", "--model", "tiny_5b", "--out", str(tmp_path / "out")])
    assert "--model tiny_5b names a preset and a folder here: give ./tiny_5b for the folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ctrl_c_while_the_model_loads_is_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_sample, "load_model", interrupted)
    with pytest.raises(Interrupted) as e:
        main(["sample", "--model", "tiny_5b", "--seconds", "0.05", "--out", str(tmp_path / "out")])
    assert e.value.code == 130 and str(e.value) == "jukebox-jax sample: interrupted"


def test_the_program_leaves_at_once_after_ctrl_c(monkeypatch, capsys):
    """`jukebox-jax` prints what an interrupted command keeps and leaves without Python's
    teardown, which XLA's threads, stopped mid-computation, crashed (SIGSEGV) half the time."""
    from jukebox_jax import cli

    def interrupted():
        raise Interrupted("interrupted: out keeps every finished window")

    def leave(code):
        raise SystemExit(f"os._exit({code})")

    monkeypatch.setattr(cli, "main", interrupted)
    monkeypatch.setattr(cli.os, "_exit", leave)
    with pytest.raises(SystemExit, match=r"os._exit\(130\)"):
        cli.program()
    assert capsys.readouterr().err.strip() == "interrupted: out keeps every finished window"


def test_a_job_is_whole_top_level_tokens_to_the_nearest_sample():
    """`--seconds` rounds to the VQ-VAE top level's hop whatever levels are sampled (rounded to
    level 1's, an upsampling job's last level-1 window began between level-2 tokens: a
    traceback after job.json was written), from the nearest sample (8.008 s at 16 kHz is
    128127.99...: it lost a token)."""
    config = JukeboxConfig.from_preset("tiny_5b")
    start = cli_sample.start_codes(Mode.UPSAMPLE, {2: np.zeros((1, 800), np.int64)}, 1, (1, 0), 3)
    assert cli_sample.check_length(2.0021, Mode.UPSAMPLE, config, (1, 0), start) == 88288 // 128 * 128
    small = JukeboxConfig.from_preset("small")
    assert small.vqvae.sample_rate == 16000 and small.vqvae.hop_lengths[-1] == 128
    assert cli_sample.check_length(8.008, Mode.ANCESTRAL, small, (2, 1, 0), None) == 1001 * 128


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3"])
def test_prompt_formats_the_help_names_are_read(tmp_path, suffix):
    """`--prompt-audio` reads what its help says: the first 0.05 s, cut to whole top-level
    tokens, mixed to mono; the prompt's digest is the file's."""
    path = tmp_path / f"prompt.{suffix}"
    soundfile.write(path, 0.1 * np.sin(np.arange(SR // 10)[:, None] / [10.0, 20.0]), SR)  # 0.1 s stereo
    prompt = read_prompt(path, SR, 128, 0.05)
    assert prompt.audio.shape == (int(0.05 * SR) // 128 * 128, 1) and prompt.audio.dtype == np.float32
    assert read_prompt(path, SR, 128, 1e306).audio.shape == (SR // 10 // 128 * 128, 1)  # all of it, not inf samples
    assert abs(prompt.file_seconds - 0.1) < 0.01 and prompt.seconds == 0.05 and prompt.digest == file_digest(path)
    assert np.abs(prompt.audio).max() > 0.01


def test_a_float_prompt_above_full_scale_is_noted(tmp_path):
    """A float file may hold samples beyond +-1: read as they are (no silent rescaling), with a
    note; past `audio.MAX_AUDIO_PEAK` it is refused, naming the file."""
    path = tmp_path / "loud.wav"
    soundfile.write(path, 3.0 * np.sin(np.arange(SR // 10) / 10.0), SR, subtype="FLOAT")
    prompt = read_prompt(path, SR, 128, 0.05)
    assert 2.9 < np.abs(prompt.audio).max() <= 3.0
    notices = cli_sample.check_prompt(prompt, path, SR, SR)
    assert notices == [f"note: {path} peaks at 3, above full scale (1): it is encoded as is; scale it to +-1 if the prime sounds distorted"]
    quiet = dataclasses.replace(prompt, audio=prompt.audio / 3)
    assert cli_sample.check_prompt(quiet, path, SR, SR) == []
    soundfile.write(path, 300.0 * np.sin(np.arange(SR // 10) / 10.0), SR, subtype="FLOAT")  # never scaled
    with pytest.raises(InputError, match=rf"^prompt audio {re.escape(str(path))} peaks at 300: its samples are not scaled as audio"):
        read_prompt(path, SR, 128, 0.05)


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and re.fullmatch(r"jukebox-jax \S+\n", capsys.readouterr().out)


@pytest.mark.parametrize(("mode", "levels"), [(Mode.ANCESTRAL, (2, 1, 0)), (Mode.UPSAMPLE, (1, 0))])
def test_levels_default_to_every_prior_and_upsample_to_those_below_the_top(mode, levels):
    assert cli_sample.check_levels(None, JukeboxConfig.from_preset("tiny_5b"), mode) == levels


def test_sample_help_describes_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    text = capsys.readouterr().out
    options = re.findall(r"^  (--[a-z-]+)", text, re.MULTILINE)
    assert len(options) == 27
    for option in options:
        block = text.split(f"  {option}", 1)[1].split("\n  --", 1)[0]
        assert len(block.split()) > 3, f"{option} has no help"
    for name in MODEL_PRESETS:
        assert name in text
    for default in ["(default: ancestral)", "(default: 0.99)", "(default: 0)", "(default: 240, or the longest", "(default: 16)", "(default: 12)", "mp3"]:
        assert default in " ".join(text.split())


@pytest.mark.parametrize(
    "args,usage",
    [(["--artist", "Nobody Zzz"], True), (["--model", "{d}/noconfig"], False), (["--out", "{d}/job"], False)],
    ids=["argument", "checkpoint", "job-folder"],
)
def test_usage_is_shown_for_a_bad_argument_only(files, args, usage, capsys):
    """A bad argument prints the usage before its one-line error; a file or folder that cannot be
    used (a broken checkpoint, another job's folder) only the line: the arguments were fine."""
    d = str(files)
    with pytest.raises(SystemExit) as e:
        main(["sample", "--model", "tiny_5b", "--out", f"{d}/fresh"] + [a.replace("{d}", d) for a in args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage: jukebox-jax sample") == usage, err
    assert err.strip().splitlines()[-1].startswith("jukebox-jax sample: error: ")


def test_out_of_memory_is_one_line_saying_what_to_lower(tmp_path, monkeypatch, capsys):
    """Device memory running out mid-command (XLA's RESOURCE_EXHAUSTED) ends in one line naming
    the command's way to need less, not a traceback; other runtime errors still raise."""
    import jax

    def exhausted(message: str):
        def run(args):
            raise jax.errors.JaxRuntimeError(message)

        return run

    monkeypatch.setattr(cli_sample, "run", exhausted("RESOURCE_EXHAUSTED: Out of memory allocating 290020450384 bytes."))
    with pytest.raises(SystemExit) as e:
        main(["sample", "--out", str(tmp_path / "job")])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        "jukebox-jax sample: error: out of memory (RESOURCE_EXHAUSTED: Out of memory allocating 290020450384 bytes.): "
        "lower --max-batch-size (the same keys: a near-tie draw may flip) or sample with --dtype bfloat16; what was written stays, "
        "and --resume goes on from it\n"
    )
    monkeypatch.setattr(cli_sample, "run", exhausted("INTERNAL: something else"))
    with pytest.raises(jax.errors.JaxRuntimeError, match="INTERNAL"):
        main(["sample", "--out", str(tmp_path / "job")])
    # a training run resumes only with its own settings: the way to need less is another --out
    monkeypatch.setattr(cli_train, "run", exhausted("RESOURCE_EXHAUSTED: Out of memory."))
    with pytest.raises(SystemExit) as e:
        main(["train", "prior", "--level", "2", "--data", str(tmp_path), "--out", str(tmp_path / "run")])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        "jukebox-jax train prior: error: out of memory (RESOURCE_EXHAUSTED: Out of memory.): train with a lower "
        "--batch-size, or --remat full; a run resumes only with the settings it began with: train again into another "
        "--out (its checkpoints stay)\n"
    )
    with pytest.raises(SystemExit):  # --remat full already: not advised again
        main(["train", "prior", "--level", "2", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--remat", "full"])
    assert "train with a lower --batch-size; a run resumes only" in capsys.readouterr().err


def _differences(message: str) -> set[str]:
    """The fields a 'holds another job' message names."""
    listed = re.search(r"this request differs in (.*)\. Resume it", message).group(1)
    return {part.split(":")[0] for part in listed.split("; ")}


def _refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    """tiny_5b (seed 0) with one weight changed: the same config, another fingerprint."""
    jb = _shared_load("tiny_5b", JukeboxConfig.from_preset("tiny_5b"), 0)
    vq = dict(jb.params["vqvae"])
    vq["codebook_2"] = vq["codebook_2"] + 1.0
    folder = tmp_path_factory.mktemp("other") / "model"
    Jukebox(jb.config, {**jb.params, "vqvae": vq}).save(folder)
    return folder


def test_resume_refuses_other_arguments_naming_what_differs(files, other_model, tmp_path, capsys, monkeypatch):
    base = ["sample", "--model", "tiny_5b", "--seconds", "0.05", "--levels", "2"]
    job = ["--out", str(tmp_path / "job"), "--resume"]
    main(base + job[:2])
    with monkeypatch.context() as m:  # how the model runs: at 16 bits another mesh draws otherwise; refused before loading
        m.setattr(cli_sample, "load_model", lambda *a: pytest.fail("the model was loaded before the job was refused"))
        assert _differences(_refused(base + ["--dtype", "bfloat16"] + job, capsys)) == {"placement.dtype"}
        assert _differences(_refused(base + ["--weights", "int8"] + job, capsys)) == {"placement.weights"}
        assert _differences(_refused(base + ["--mesh", "data=1"] + job, capsys)) == {"placement.mesh"}
    record = json.loads((tmp_path / "job" / "job.json").read_text())
    assert record["placement"] == {"dtype": "float32", "weights": "float", "mesh": None}
    del record["placement"]  # a job begun before placements were recorded resumes
    (tmp_path / "job" / "job.json").write_text(json.dumps(record))
    main(base + job)
    codes = np.load(tmp_path / "job" / "codes.npz")
    np.savez(tmp_path / "codes.npz", **codes)
    primed = ["--mode", "primed", "--prompt-audio", str(files / "prompt.wav"), "--prompt-seconds", "0.01"]

    assert _differences(_refused(base + ["--seed", "1"] + job, capsys)) == {"seed"}
    assert cli_sample.job_flags(Mode.ANCESTRAL)("songs.2.0.lyrics: [] -> [1]") == "--lyrics or --lyrics-file"
    # each difference says which flag sets it; a level's songs and settings missing on one side follow from --levels
    message = _refused(base[:-2] + ["--levels", "2", "1", "--seed", "1", "--temperature", "0.5"] + job, capsys)
    assert "levels: [2] -> [2, 1] (--levels); seed: 0 -> 1 (--seed); settings.1: (none) -> " in message
    assert "settings.2.method.temperature: 0.99 -> 0.5 (--temperature); songs.1: (none) -> " in message
    assert message.count("(--") == 3
    # the songs, a list of records, are compared record by record (shown whole, both sides were cut alike)
    message = _refused(base + ["--song-seconds", "30"] + job, capsys)
    assert _differences(message) == {"songs.2.0.total_length"} and "total_length: 10584000 -> 1323000" in message  # 240 s -> 30 s at 44.1 kHz
    assert "total_length: 10584000 -> 1323000 (--song-seconds)" in message
    message = _refused(base + ["--n-samples", "2"] + job, capsys)  # the empty start codes: their count's flag
    assert "songs.2: 1 -> 2 records (--n-samples)" in message and re.search(r"start_codes: '\w+\.\.\. -> '\w+\.\.\. \(--n-samples\)", message)
    assert _differences(_refused(base + primed + job, capsys)) == {"source.mode", "source.prompt", "source.prompt_seconds"}
    message = _refused(["sample", "--model", str(other_model), "--seconds", "0.05", "--levels", "2"] + job, capsys)
    assert _differences(message) == {"model"} and message.endswith("(--model). Resume it with the arguments it was started with, or choose another output folder")

    main(base + primed + ["--out", str(tmp_path / "primed")])
    soundfile.write(tmp_path / "other.wav", 0.2 * np.sin(np.arange(SR) / 7.0), SR)
    other_prompt = base + ["--mode", "primed", "--prompt-audio", str(tmp_path / "other.wav"), "--prompt-seconds", "0.01"]
    assert _differences(_refused(other_prompt + ["--out", str(tmp_path / "primed"), "--resume"], capsys)) == {"source.prompt"}

    cont = ["sample", "--model", "tiny_5b", "--seconds", "0.08", "--levels", "2", "--mode", "continue", "--codes"]
    main(cont + [str(tmp_path / "codes.npz"), "--out", str(tmp_path / "cont")])
    np.savez(tmp_path / "codes2.npz", **{**codes, "level_2": (codes["level_2"] + 1) % 64})
    message = _refused(cont + [str(tmp_path / "codes2.npz"), "--out", str(tmp_path / "cont"), "--resume"], capsys)
    assert _differences(message) == {"start_codes"} and "(--codes)" in message
    np.testing.assert_array_equal(np.load(tmp_path / "job" / "codes.npz")["level_2"], codes["level_2"])  # nothing was rewritten


def test_resume_refuses_a_job_of_an_older_format(tmp_path, capsys):
    """A job begun before the per-sample keys (no "format" in job.json) would continue with other
    draws: refused, saying so, and nothing in the folder changes."""
    base = ["sample", "--model", "tiny_5b", "--seconds", "0.05", "--levels", "2", "--out", str(tmp_path / "job")]
    main(base)
    job = tmp_path / "job" / "job.json"
    record = json.loads(job.read_text())
    assert record.pop("format") == 2
    for saved_format, shown in ((None, "1"), ("2", "'2'")):  # a string: it read "of format 2 ... (format 2)"
        job.write_text(json.dumps(record if saved_format is None else {**record, "format": saved_format}))
        before = {p.name: p.read_bytes() for p in (tmp_path / "job").rglob("*") if p.is_file()}
        message = _refused(base + ["--resume"], capsys)
        assert re.search(rf"holds a job of format {shown}, begun by another version of jukebox-jax.*\(format 2\).*Sample again", message)
        assert {p.name: p.read_bytes() for p in (tmp_path / "job").rglob("*") if p.is_file()} == before


def test_resume_removes_what_a_kill_left(tmp_path):
    args = ["sample", "--model", "tiny_5b", "--seconds", "0.05", "--levels", "2", "--out", str(tmp_path / "job")]
    with pytest.raises(SystemExit):
        main(args + ["--artist", "Nobody Zzz"])
    main(args)  # the corrected command runs: the refused one left nothing behind
    before = np.load(tmp_path / "job" / "codes.npz")["level_2"]
    left = [tmp_path / "job" / ".partial-k1l2m3.npz", tmp_path / "job" / "level_2" / ".partial-x9y8.wav"]
    for path in left:
        path.write_bytes(b"half a file")
    left.append(tmp_path / "job" / ".partial-dir")  # a folder by that name: unlink's "Is a directory" after loading
    (left[-1] / "inner").mkdir(parents=True)
    (left[-1] / "inner" / ".partial-y.wav").write_bytes(b"half a file")
    main(args + ["--resume"])
    assert not any(path.exists() for path in left)
    np.testing.assert_array_equal(np.load(tmp_path / "job" / "codes.npz")["level_2"], before)


def test_a_preset_too_large_to_draw_says_so(monkeypatch):
    """Out of memory drawing a full-size preset said to lower --max-batch-size or the dtype
    (neither helps), and that what was written stays (nothing was)."""
    import jax

    def exhausted(config, key):
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 42788905472 bytes.")

    monkeypatch.setattr(cli_sample.Jukebox, "init", exhausted)
    with pytest.raises(InputError, match=r"--model 1b_lyrics: drawing its random weights \(\d+\.\d GB in float32\) takes about five times"):
        _LOAD("1b_lyrics", JukeboxConfig.from_preset("1b_lyrics"), 0)


def test_seconds_of_a_model_without_timing_are_bounded_by_int32_samples():
    config = JukeboxConfig.from_preset("tiny_5b")
    top = config.prior(2)
    untimed = dataclasses.replace(config, priors=(dataclasses.replace(top, labels=dataclasses.replace(top.labels, timing=False)),))
    assert cli_sample.check_seconds("--seconds", 48000.0, untimed) == 48000.0
    with pytest.raises(InputError, match=r"--seconds 1e\+306 is past the 48695 s audio lengths count in int32 samples"):
        cli_sample.check_seconds("--seconds", 1e306, untimed)


def test_codes_that_unpack_past_half_the_memory_are_refused_unread(tmp_path, monkeypatch):
    """A codes file is sized by its zip directory before np.load unpacks it (a small .npz of
    zeros may unpack to more than the machine holds)."""
    path = tmp_path / "codes.npz"
    np.savez_compressed(path, level_2=np.zeros((1, 100_000), np.int64))  # 800 kB unpacked, a few kB packed
    monkeypatch.setattr("jukebox_jax.io.physical_memory", lambda: 1_000_000)
    with pytest.raises(InputError, match=rf"codes file {re.escape(str(path))} unpacks to about 800.1 kB of memory, more than 50.0% of this machine's 1.0 MB; give the codes.npz"):
        read_codes(path, 3, 64)
    monkeypatch.setattr("jukebox_jax.io.physical_memory", lambda: 2_000_000)
    assert read_codes(path, 3, 64)[2].shape == (1, 100_000)


def test_the_jobs_memory_is_bounded_by_half_the_machines():
    """Codes of every level (int64) and one level's audio (float32): tiny_5b's hops 8, 32 and
    128 give 8 / 8 + 8 / 32 + 8 / 128 + 4 = 5.3125 bytes per sample of audio."""
    config = JukeboxConfig.from_preset("tiny_5b")
    length = 128 * 1000
    per_sample = 5.3125 * length
    cli_sample.check_job_memory(100, length, config, memory=int(2 * 100 * per_sample))
    with pytest.raises(InputError, match=r"--n-samples 101: 101 samples of 2.90249 s keep their codes and audio in about 68.7 MB of memory, more than 50.0% of"):
        cli_sample.check_job_memory(101, length, config, memory=int(2 * 100 * per_sample))


def test_a_song_shorter_than_the_sample_is_lengthened_and_said():
    """--song-seconds below --seconds: the timing labels describe the sampled length, with a note."""
    args = ["sample", "--model", "tiny_5b", "--seconds", "2", "--song-seconds", "1", "--levels", "2"]
    plan = cli_sample.plan(_parse(args))
    length = plan.request.sample_length
    seconds = length / plan.config.vqvae.sample_rate
    assert 1.99 < seconds <= 2
    assert plan.notices == (f"note: the song is {seconds:g} s, not 1 (--song-seconds): the timing labels describe {seconds:g} s",)
    assert [song.total_length for song in plan.request.songs[2]] == [length]


@pytest.mark.parametrize("seconds, rate_of, want", [(8.008, "small", 128128), (4.1, "tiny_5b", 180809)])
def test_song_seconds_are_truncated_as_job_records_hold_them_and_noted_only_when_short(seconds, rate_of, want):
    """--song-seconds 8.008 with --seconds 8.008 at 16 kHz (128127.99... samples) was noted as
    "the song is 8.008 s, not 8.008": the note now compares the rounded length; the length
    recorded stays the truncated one earlier jobs hold (4.1 s at 44.1 kHz: 180809.99... ->
    180809), so their --resume still finds the same request."""
    args = ["sample", "--model", rate_of, "--seconds", str(seconds), "--song-seconds", str(seconds), "--levels", "2"]
    plan = cli_sample.plan(_parse(args))
    assert not any("the song is" in n for n in plan.notices), plan.notices
    assert {song.total_length for song in plan.request.songs[2]} == {max(want, plan.request.sample_length)}


def test_lyric_characters_a_model_lacks_are_named():
    """They are dropped, as the original drops them, but were dropped unsaid (a fine-tuned
    prior's own vocabulary holds only its first songs' characters)."""
    base = ["sample", "--model", "tiny_5b_lyrics", "--seconds", "1", "--levels", "2"]
    assert cli_sample.plan(_parse([*base, "--lyrics", "Hello (world)!"])).notices == ()
    assert cli_sample.plan(_parse([*base, "--lyrics", "one + two = 3 {x} & y"])).notices == (
        "note: --lyrics holds characters the model's lyric vocabulary lacks, dropped as the original drops them: '&={}'",
    )


def test_non_ascii_lyrics_without_unidecode_are_one_line(monkeypatch, capsys, tmp_path):
    """The lyric note transliterated before the labels named the missing package: a traceback."""
    monkeypatch.setitem(sys.modules, "unidecode", None)  # as if not installed
    argv = ["sample", "--model", "tiny_5b_lyrics", "--lyrics", "café au lait", "--seconds", "1", "--levels", "2"]
    message = _refused([*argv, "--out", str(tmp_path / "job")], capsys)
    assert message.startswith("jukebox-jax sample: error: the lyrics contain non-ASCII characters") and "jukebox-jax[lyrics]" in message


def test_continue_and_upsample_name_the_labels_left_to_defaults(files):
    """A codes file holds no labels: the README's own upsample example left out the job's
    artist and genre, and a model without its own tables took 'unknown' unsaid."""
    base = ["sample", "--model", "tiny_5b", "--codes", str(files / "long.npz")]
    plan = cli_sample.plan(_parse([*base, "--mode", "upsample", "--artist", "nelly"]))
    assert plan.notices == ("note: --codes holds codes, not the labels they were sampled with: --genre, --song-seconds take the defaults; give those of the job that made them",)
    given = ["--artist", "nelly", "--genre", "blues", "--song-seconds", "30"]
    assert cli_sample.plan(_parse([*base, "--mode", "continue", "--seconds", "2", *given])).notices == ()
    lyric = ["sample", "--model", "tiny_5b_lyrics", "--codes", str(files / "long.npz"), "--mode", "continue", "--seconds", "2"]
    assert "--lyrics takes its default" in cli_sample.plan(_parse([*lyric, *given])).notices[0]


def test_an_interrupted_run_says_how_to_resume(tmp_path, monkeypatch):
    """--resume of an empty folder starts the job (and says so); Ctrl-C says how to go on."""
    args = ["sample", "--model", "tiny_5b", "--seconds", "0.05", "--levels", "2", "--out", str(tmp_path / "job"), "--resume"]
    assert cli_sample.plan(_parse(args)).notices == (f"note: {tmp_path / 'job'} holds no job to resume: starting one",)

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr("jukebox_jax.generation.job.run_job", interrupted)
    with pytest.raises(SystemExit, match=r"interrupted: .* keeps every finished window; the same command with --resume continues it"):
        main(args)


def test_a_job_folder_another_process_writes_is_refused(tmp_path, capsys):
    """Two `sample` commands given one folder: the second is refused, not interleaved (the
    lock: `io.exclusive`, tests/test_io.py); once the first ends, the same command runs."""
    out = tmp_path / "job"
    args = ["sample", "--model", "tiny_5b", "--seconds", "0.05", "--levels", "2", "--out", str(out)]
    with exclusive(out, ("job.json",), "sampling job"), pytest.MonkeyPatch.context() as m:
        m.setattr(cli_sample, "load_model", lambda *a: pytest.fail("the model was loaded before the folder was refused"))
        message = _refused(args, capsys)
    assert message == f"jukebox-jax sample: error: --out {out} is in use: another process is writing a sampling job there; wait for it to end, or give another folder"
    main(args)
    assert (out / "codes.npz").is_file()


def test_kill_and_resume_is_exact(tmp_path, monkeypatch):
    """Ctrl-C after the second of four windows, then --resume: the codes and audio of an
    uninterrupted run."""
    args = ["sample", "--model", "tiny_5b", "--seconds", "0.18", "--levels", "2", "--n-samples", "2"]
    main(args + ["--out", str(tmp_path / "whole")])
    on_window = cli_sample.Progress.on_window

    def interrupt_second(self, level, start, zs):
        on_window(self, level, start, zs)
        if self.windows.n == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_sample.Progress, "on_window", interrupt_second)
    with pytest.raises(SystemExit, match="interrupted"):
        main(args + ["--out", str(tmp_path / "killed")])
    monkeypatch.setattr(cli_sample.Progress, "on_window", on_window)
    main(args + ["--out", str(tmp_path / "killed"), "--resume"])
    whole, resumed = np.load(tmp_path / "whole" / "codes.npz"), np.load(tmp_path / "killed" / "codes.npz")
    assert whole["level_2"].shape == (2, 62)
    np.testing.assert_array_equal(resumed["level_2"], whole["level_2"])
    for wav in ("level_2/sample_0.wav", "level_2/sample_1.wav"):
        np.testing.assert_array_equal(soundfile.read(tmp_path / "killed" / wav)[0], soundfile.read(tmp_path / "whole" / wav)[0])


def _parse(argv: list[str]) -> argparse.Namespace:
    """The `sample` arguments of a command line `sample ...`."""
    parser = argparse.ArgumentParser()
    cli_sample.add_arguments(parser)
    return parser.parse_args(argv[1:])


def _readme_commands() -> list[list[str]]:
    """The `jukebox-jax sample` commands of the README, continuation lines joined."""
    text = README.read_text(encoding="utf-8").replace("\\\n", " ")
    return [shlex.split(line.split("#")[0]) for line in text.splitlines() if line.startswith("jukebox-jax sample --model")]


@pytest.mark.slow  # ~30 s: builds and samples tiny_1b_lyrics as a new user would
def test_readme_dry_run_runs(tmp_path, monkeypatch):
    """The README's dry run, exactly as written (in an empty folder)."""
    dry = [argv for argv in _readme_commands() if argv[3] in MODEL_PRESETS]
    assert len(dry) == 1
    monkeypatch.chdir(tmp_path)
    main(dry[0][1:])
    out = Path(dry[0][dry[0].index("--out") + 1])
    assert sorted(np.load(out / "codes.npz")) == ["level_0", "level_1", "level_2"]
    assert all((out / f"level_{level}" / "sample_0.wav").exists() for level in range(3))


def test_readme_examples_pass_the_checks(tmp_path, monkeypatch):
    """The README's other sample commands, with the released preset's config standing in for
    the converted model folder they name (no weights are built: `plan` stops before)."""
    monkeypatch.chdir(tmp_path)
    Path("lyrics.txt").write_text("Hello, it's me", encoding="utf-8")
    soundfile.write("intro.wav", np.zeros(13 * SR), SR)
    checked = 0
    for argv in _readme_commands():
        model = argv[3].removeprefix("jukebox_")
        if model not in MODEL_PRESETS or argv[3] == model or "..." in argv:
            continue
        args = _parse(argv[1:3] + [model] + argv[4:])
        if args.codes:
            args.codes.parent.mkdir(exist_ok=True)
            np.savez(args.codes, **{f"level_{i}": np.zeros((2, int(20 * SR) // h), np.int64) for i, h in enumerate((8, 32, 128))})
        plan = cli_sample.plan(args)
        assert plan.request.levels and plan.request.sample_length > 0
        checked += 1
    assert checked == 4


def test_sample_with_names_and_lyrics(tmp_path):
    """Names become each prior's ids (v3 at the 1b top, v2 below); the top window's labels hold
    the lyric tokens."""
    lyrics = tmp_path / "lyrics.txt"
    lyrics.write_text("old town road\nla la la", encoding="utf-8")
    out = tmp_path / "run"
    args = ["sample", "--model", "tiny_1b_lyrics", "--seconds", "0.05", "--levels", "2", "1", "--out", str(out)]
    main(args + ["--artist", "unknown", "--genre", "unknown", "--lyrics-file", str(lyrics)])
    job = json.loads((out / "job.json").read_text())
    top, up = job["songs"]["2"][0], job["songs"]["1"][0]
    assert top["lyrics"] == list(tokenizer.lyric_tokens(lyrics.read_text(), v3=True))
    assert up["lyrics"] == [] and top["genres"] == [0] and up["genres"] == [0]
    assert job["source"] == {"mode": "ancestral", "prompt": None, "prompt_seconds": None}
    assert re.fullmatch("[0-9a-f]{64}", job["model"]) and re.fullmatch("[0-9a-f]{64}", job["start_codes"])
    assert np.load(out / "codes.npz")["level_1"].shape[1] > 0
    assert [job["settings"][level]["hop_fraction"] for level in ("2", "1")] == [0.125, 0.5]  # the original's window hops


def test_sample_continue_upsample_and_primed(tmp_path, capsys):
    base = ["sample", "--model", "tiny_5b", "--levels", "2"]
    main(base + ["--seconds", "0.05", "--out", str(tmp_path / "short")])
    short = np.load(tmp_path / "short" / "codes.npz")["level_2"]
    assert short.shape == (1, int(0.05 * SR) // 128)
    main(base + ["--mode", "continue", "--codes", str(tmp_path / "short" / "codes.npz"), "--seconds", "0.1", "--out", str(tmp_path / "long")])
    longer = np.load(tmp_path / "long" / "codes.npz")["level_2"]
    assert longer.shape == (1, int(0.1 * SR) // 128)
    np.testing.assert_array_equal(longer[:, : short.shape[1]], short)  # the saved codes are continued, not redrawn
    assert (tmp_path / "long" / "level_2" / "sample_0.wav").exists()

    # upsample takes its length from --codes (the top level's 0.1 s), not from the --seconds default
    main(["sample", "--model", "tiny_5b", "--mode", "upsample", "--codes", str(tmp_path / "long" / "codes.npz"), "--levels", "1", "--out", str(tmp_path / "up")])
    up = np.load(tmp_path / "up" / "codes.npz")
    np.testing.assert_array_equal(up["level_2"], longer)  # upsampling leaves the top codes alone
    assert up["level_1"].shape == (1, 4 * longer.shape[1])

    prompt = tmp_path / "prompt.wav"
    soundfile.write(prompt, 0.1 * np.sin(np.arange(1000) / 10.0), SR)
    capsys.readouterr()
    main(base + ["--seconds", "0.05", "--mode", "primed", "--prompt-audio", str(prompt), "--out", str(tmp_path / "p")])
    assert "note: " in capsys.readouterr().out  # the file is shorter than --prompt-seconds (12): it says so
    primed = np.load(tmp_path / "p" / "codes.npz")["level_2"]
    assert primed.shape == short.shape
    jb = _MODELS[("tiny_5b", 0)]  # the CLI's model (seed 0)
    audio, _ = soundfile.read(prompt, dtype="float32")
    np.testing.assert_array_equal(primed[:, :7], np.asarray(jb.encode(audio[None, :896, None], start_level=2)[0]))


def test_sample_in_bfloat16_with_int8_weights(tmp_path, monkeypatch):
    """--weights int8 --dtype bfloat16: the model sampled is the loaded one quantized, then cast."""
    sampled = []
    monkeypatch.setattr(cli_sample, "with_precision", lambda *a: sampled.append(_WITH_PRECISION(*a)) or sampled[-1])
    out = tmp_path / "run"
    main(["sample", "--model", "tiny_5b", "--seconds", "0.05", "--levels", "2", "--dtype", "bfloat16", "--weights", "int8", "--out", str(out)])
    bf16 = DType.BFLOAT16
    assert [p.precision for p in sampled[0].config.priors] == [Precision(bf16, bf16, bf16, weights=WeightFormat.INT8)] * 3
    codes = np.load(out / "codes.npz")["level_2"]
    assert codes.shape == (1, int(0.05 * SR) // 128) and 0 <= codes.min() and codes.max() < 64


def test_the_eta_leaves_out_each_levels_first_sampled_window(capsys):
    """tqdm's rate (smoothing 0) counts the windows after `initial`: the clock restarts after
    windows a resume finds done and after each level's first sampled window, before the bar
    is drawn (drawn first, it showed an ETA of the compile's pace)."""
    progress = cli_sample.Progress(6)
    progress.on_window(2, 0, [])  # done before a resume: no tokens sampled
    assert progress.windows.initial == 1
    progress.on_tokens(3, 6)
    progress.on_tokens(6, 6)
    time.sleep(0.2)  # a slow first window
    progress.on_window(2, 6, [])  # the first sampled window of level 2 (it compiles)
    assert progress.windows.initial == 2
    assert capsys.readouterr().err.split("\r")[-1].startswith("sampling:  33%|███▎      | 2/6 [00:00<?, ?window/s")
    progress.on_tokens(6, 6)
    progress.on_window(2, 12, [])
    assert progress.windows.initial == 2  # counted
    progress.on_tokens(6, 6)
    progress.on_window(1, 0, [])  # level 1 compiles its own kernels
    assert progress.windows.initial == 4
    progress.close()
    assert capsys.readouterr().err.endswith("4/6 [00:00<?, ?window/s, level=1, start=0]\n")


def test_a_finished_jobs_bar_ends_full(capsys):
    """A resume of a finished job went through its windows inside tqdm's redraw interval and
    left the bar at 0/6 on a line the summary then followed: `close` drew nothing after the
    clock's restart."""
    progress = cli_sample.Progress(6)
    for start in range(6):
        progress.on_window(0, start, [])
    progress.close()
    assert capsys.readouterr().err.split("\r")[-1].startswith("sampling: 100%|██████████| 6/6 ")
    hidden = cli_sample.Progress(6, shown=False)  # another process's: draws nothing, and closes
    hidden.on_window(0, 0, [])
    hidden.close()
    assert capsys.readouterr().err == ""


def test_a_name_only_the_top_prior_knows_is_named_with_the_level_lacking_it():
    """After a fine-tune of the top prior alone on a new artist (the README's recipe is one level
    at a time), sampling every level said the model did not know the artist, naming no level."""
    def relabelled(p, artists):
        return dataclasses.replace(p, labels=dataclasses.replace(p.labels, artists=artists, artist_bins=len(artists)))

    config = JukeboxConfig.from_preset("small")
    config = dataclasses.replace(config, priors=tuple(relabelled(p, ("lark", "zed")[: 1 + (p.level == 2)]) for p in config.priors))
    with pytest.raises(InputError, match=(
        r"^the priors of levels 1 and 0: artist 'zed' \(as 'zed'\) is not in the model's artist table\. .* The prior of level 2 "
        r"knows it: fine-tune the priors of levels 1 and 0 on the same songs too \(train prior --level N --init, for each\), "
        r"or sample --levels 2$"
    )):
        cli_sample.song_labels(config, (2, 1, 0), 16000 * 20, "zed", "unknown", "", 1)
    assert set(cli_sample.song_labels(config, (2,), 16000 * 20, "zed", "unknown", "", 1)) == {2}
    upsamplers_only = dataclasses.replace(config, priors=tuple(relabelled(p, ("lark", "zed")[: 1 + (p.level < 2)]) for p in config.priors))
    with pytest.raises(InputError, match=r"^the prior of level 2: .* The priors of levels 1 and 0 know it: fine-tune the prior of level 2 .* for each\)$"):
        cli_sample.song_labels(upsamplers_only, (2, 1, 0), 16000 * 20, "zed", "unknown", "", 1)  # no --levels 1 0: they need level 2's codes
    with pytest.raises(InputError, match=r"^artist 'nobody' .* This model knows 'lark', 'zed'\.$"):  # no level knows it
        cli_sample.song_labels(config, (2, 1, 0), 16000 * 20, "nobody", "unknown", "", 1)


@pytest.mark.skipif(not PROC.is_dir(), reason="no procfs")
@pytest.mark.parametrize(
    "command",
    [["demo"], ["data", "synth", "--songs", "1", "--no-vocals"], ["train", "prior", "--level", "2", "--data", "{tmp}"]],
    ids=["demo", "data synth", "train"],
)
def test_every_command_refuses_an_out_it_cannot_write_in(command, tmp_path, capsys):
    """`--out` where nothing can be written (procfs: even root cannot) is a usage error naming
    the fix, before any work, for every command that writes a folder (`demo`, `data synth` and
    `train` exited 1 with the bare OS error, not saying what to do; `sample`: `BAD`)."""
    with pytest.raises(SystemExit) as e:
        main([a.replace("{tmp}", str(tmp_path)) for a in command] + ["--out", "/proc/run"])
    assert e.value.code == 2
    assert "--out /proc/run: cannot write in /proc (" in (err := capsys.readouterr().err) and "choose a folder you can write in" in err, err


def test_a_damaged_codes_file_is_named_before_the_model_loads(tmp_path, capsys, monkeypatch):
    """`--resume` of a job whose codes.npz a kill or a disk fault damaged: refused before the
    model loads (minutes for a 5b model), as it was after (`job._saved_codes` checks the rest)."""
    args = ["sample", "--model", "tiny_5b", "--seconds", "0.05", "--levels", "2", "--out", str(tmp_path / "job")]
    main(args)
    codes = tmp_path / "job" / "codes.npz"
    good = codes.read_bytes()
    monkeypatch.setattr(cli_sample, "load_model", lambda *a: pytest.fail("the model was loaded before the job was refused"))
    # cut short; a byte flipped inside level_2's codes (bytes 547 to 683 of the 896: 0.7 is byte 627)
    for damage, problem in ((lambda: codes.write_bytes(good[:-20]), "is not an .npz archive"), (lambda: flip(codes, 0.7), "cannot be read (Bad CRC-32")):
        codes.write_bytes(good)
        damage()
        message = _refused([*args, "--resume"], capsys)
        assert f"{tmp_path / 'job'} cannot be resumed: codes file {codes} {problem}" in message, message
        assert message.endswith("a kill or a disk fault damaged it. Sample again into a new folder (without --resume)")
