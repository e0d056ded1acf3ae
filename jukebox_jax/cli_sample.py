"""`jukebox-jax sample`: its options, the checks of every argument and file (made before any
model is built, so a mistake costs milliseconds, and before anything is written, so a
corrected retry works), and the run. A problem is a `JukeboxError`; `cli.main` prints it
argparse-style (one line, exit code 2)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from jax.sharding import Mesh

from jukebox_jax import checkpoint, checks, default, tokenizer
from jukebox_jax.config import MODEL_PRESETS, DType, JukeboxConfig, WeightFormat
from jukebox_jax.errors import CheckpointError, InputError, Interrupted, shown
from jukebox_jax.generation.inputs import AUDIO_FORMATS, Prompt, max_seconds, read_codes, read_prompt
from jukebox_jax.generation.job import CODES_FILE, JobSource, Mode, Placement, SampleRequest, check_job, job_record
from jukebox_jax.generation.levels import Codes, LevelSettings
from jukebox_jax.generation.windows import level_windows
from jukebox_jax.io import check_memory, check_not_in_use, dangling_link
from jukebox_jax.jukebox import Jukebox, check_method
from jukebox_jax.labels import int32_seconds
from jukebox_jax.quantize import config_with_weights
from jukebox_jax.sharding import mesh_shape

DESCRIPTION = (
    "Sample music window by window, from the top level down, into --out: a job folder that --resume continues after an "
    "interruption. Every argument and file is checked before the model is loaded."
)
DEFAULT_SECONDS = 20.0
DEFAULT_SONG_SECONDS = 240.0
DEFAULT_PROMPT_SECONDS = 12.0
PRESET_WEIGHTS = 2**31  # a preset's random weights draw from fold_in(key(seed), PRESET_WEIGHTS), apart from
# the job's draws (level L's from fold_in(key(seed), L), `generation.levels`)
TOP_HOP_FRACTION, HOP_FRACTION = 0.125, 0.5  # window hops of the top prior and of the upsamplers (the original's)


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a number") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a finite number")
    return x


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    x = finite_float(text)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not positive")
    return x


def _whole(text: str, rule: str, ok: Callable[[int], bool] = lambda x: True) -> int:
    """`text` as an int if it is a sign and at most 20 ASCII digits, and `ok`; else an
    `ArgumentTypeError` saying it is not `rule`."""
    if not re.fullmatch(r"[+-]?[0-9]{1,20}", text.strip()) or not ok(x := int(text.strip())):
        raise argparse.ArgumentTypeError(f"{shown(text)} is not {rule}")
    return x


def integer(text: str) -> int:
    """argparse type: a whole number (checked against its bounds later)."""
    return _whole(text, "a whole number (of at most 20 digits)")


def level(text: str) -> int:
    """argparse type: a VQ-VAE level, a whole number >= 0 (checked against the model's later)."""
    return _whole(text, "a level (a whole number >= 0; 0 is the finest)", lambda x: x >= 0)


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _whole(text, "a whole number >= 1 (of at most 20 digits)", lambda x: x >= 1)


def folder_to_write(value: str) -> Path:
    """argparse type: a folder to write (every `--out`), so neither it nor any folder above it
    may be a file, nor may it be empty (that is the working folder: give `.` for it)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path; give a folder (. for this one)")
    path = Path(value)
    if (link := dangling_link(path)) is not None:
        raise argparse.ArgumentTypeError(f"{link} is a link to nothing ({os.readlink(link)}); give a folder")
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise argparse.ArgumentTypeError(f"{p} is a file; give a folder")
    return path


def parse_mode(text: str) -> Mode:
    """argparse type: a sampling `Mode` by its value."""
    try:
        return Mode(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid choice: {shown(text)} (choose from {', '.join(map(str, Mode))})") from None


def seed(text: str) -> int:
    """argparse type: a PRNG seed in `0..checks.MAX_SEED` (`jax.random.key` keeps a seed's low
    32 bits: 2**32 would draw as 0)."""
    return _whole(text, "a whole number in [0, 2**32)", lambda x: 0 <= x <= checks.MAX_SEED)


def host_port(text: str) -> str:
    """argparse type: HOST:PORT, the port in 1..65535."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not HOST:PORT (e.g. 10.0.0.1:8476)")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `sample` command's options."""
    p.add_argument(
        "--model",
        default=str(default.PATH),
        help="a checkpoint folder (`jukebox-jax convert -o`, `jukebox-jax train`), or a preset with RANDOM weights for a dry "
        f"run: {', '.join(MODEL_PRESETS)} (default: the small model trained on the synthetic songs that ships in the package; "
        "artists lark, ember, tide, quartz; genres pop, folk, electronic)",
    )
    p.add_argument(
        "--mode",
        type=parse_mode,
        choices=list(Mode),
        default=Mode.ANCESTRAL,
        help="ancestral: from nothing; continue: extend --codes to --seconds; upsample: sample the levels below the top of "
        "--codes; primed: continue --prompt-audio (default: %(default)s)",
    )
    p.add_argument(
        "--artist",
        help="artist name as in the model's tables, e.g. 'Alan Jackson' (default: 'unknown', or for a model whose own "
        "table lacks it, the table's first name)",
    )
    p.add_argument(
        "--genre", help="genre, e.g. 'Country Rock' (a bag of words for the v2 label set; default: as for --artist)"
    )
    p.add_argument("--lyrics", help="the song's lyrics (priors with lyrics pick each window's part; default: none)")
    p.add_argument("--lyrics-file", type=Path, help="the song's lyrics from a UTF-8 text file")
    p.add_argument(
        "--seconds",
        type=positive_float,
        help=f"length to sample, at most what the model's timing conditioning covers (600 s for the released models) "
        f"(default: {DEFAULT_SECONDS:g}; --mode upsample: the length of --codes)",
    )
    p.add_argument(
        "--song-seconds",
        type=positive_float,
        help=f"the song length the timing labels describe, at least --seconds (default: {DEFAULT_SONG_SECONDS:g}, or the longest the model's timing covers; "
        "the default model was trained on 20 s songs)",
    )
    p.add_argument("--n-samples", type=positive_int, help="samples to draw (default: 1; --mode continue/upsample: as many as --codes holds)")
    p.add_argument("--levels", type=integer, nargs="*", help="levels to sample, e.g. 2 1 (default: every prior of the model; --mode upsample: those below the top)")
    p.add_argument("--temperature", type=finite_float, default=0.99, help="sampling temperature, 1e-6 to 1e6 (default: %(default)g)")
    p.add_argument("--top-k", type=integer, default=0, help="sample from the k likeliest tokens; 1 is greedy, 0 off (default: %(default)s)")
    p.add_argument("--top-p", type=finite_float, default=0.0, help="sample from the smallest set of tokens holding this probability; 0 off (default: %(default)g)")
    p.add_argument("--max-batch-size", type=positive_int, default=16, help="samples per model call: bounds memory; the same keys, the logits changed by float rounding, which may flip a near-tie draw (README) (default: %(default)s)")
    p.add_argument("--prompt-audio", type=Path, help=f"audio to continue (--mode primed): {AUDIO_FORMATS}, any rate and channels (resampled, mixed to mono)")
    p.add_argument("--prompt-seconds", type=positive_float, help=f"seconds of --prompt-audio to continue (default: {DEFAULT_PROMPT_SECONDS:g})")
    p.add_argument("--codes", type=Path, help="codes.npz of an earlier run (--mode continue/upsample)")
    p.add_argument("--seed", type=seed, default=0, help="random seed of the sampling (and of a preset's weights) (default: %(default)s)")
    p.add_argument("--out", type=folder_to_write, default=Path("jukebox_samples"), help="the job's folder (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the job already in --out (it must have been started with the same arguments)")
    p.add_argument(
        "--dtype",
        choices=[d.value for d in DType],
        help="the priors' transformer weights, activations and KV caches in this dtype, applied after loading; LayerNorm, "
        "softmax and logits stay float32, the VQ-VAE and conditioners too (16 bits: half the memory and bandwidth on a "
        "GPU or TPU, slower on a CPU) (default: as --model stores them; float32 for a preset)",
    )
    p.add_argument(
        "--weights",
        choices=[w.value for w in WeightFormat],
        help="int8: the priors' attention and MLP matrices quantized to int8 per output channel after loading (a quarter "
        "of float32's bytes; for a GPU or TPU) (default: as --model stores them; float for a preset)",
    )
    g = p.add_argument_group("several devices and hosts (README: 'Several devices and hosts')")
    g.add_argument(
        "--mesh",
        help="shard the model over every device: 'data=2,model=4' (data splits the samples, model each prior's attention "
        "and MLP; an axis left out takes the rest); 'model=8' for one sample on 8 devices (default: one device)",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run first (jax.distributed.initialize): on a TPU slice, under Slurm or Open MPI no "
        "more is needed; elsewhere give --coordinator, --num-processes and --process-id. Start the same command in "
        "every process; only process 0 writes --out, which every process must see",
    )
    g.add_argument("--coordinator", type=host_port, help="with --distributed: HOST:PORT of process 0 (or set JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=positive_int, help="with --distributed: how many processes run")
    g.add_argument("--process-id", type=integer, help="with --distributed: this process's index, 0 .. num-processes - 1")


@dataclasses.dataclass(frozen=True)
class Plan:
    """A checked `sample` command: everything but the model, which is built or loaded last."""

    config: JukeboxConfig
    request: SampleRequest
    start: Codes | None  # the codes to continue; None when they are `prompt`'s, encoded once the model is loaded
    prompt: Prompt | None
    notices: tuple[str, ...] = ()  # what the user should know before the run


def plan(args: argparse.Namespace) -> Plan:
    """Checks every argument and file of `args` against the model's config; raises
    `InputError` or `JobError` naming the first problem. Builds no model and writes nothing."""
    lyrics = read_lyrics(args.lyrics, args.lyrics_file)
    check_mode(args)
    config = model_config(args.model)
    check_weights(args.weights, config)
    vq = config.vqvae
    levels = check_levels(args.levels, config, args.mode)
    codes = read_codes(args.codes, vq.levels, vq.l_bins) if args.mode.reads_codes else None
    n = n_samples(args.n_samples, codes)
    start = start_codes(args.mode, codes, n, levels, vq.levels)
    sample_length = check_length(args.seconds, args.mode, config, levels, start)
    check_job_memory(n, sample_length, config)
    prompt, notices = None, []
    if args.mode is Mode.PRIMED:
        prompt = read_prompt(args.prompt_audio, vq.sample_rate, vq.hop_lengths[-1], args.prompt_seconds or DEFAULT_PROMPT_SECONDS)
        notices += check_prompt(prompt, args.prompt_audio, sample_length, vq.sample_rate)
    lengths = [len(prompt.audio) // hop for hop in vq.hop_lengths] if prompt else [z.shape[1] for z in start]
    check_upper_codes(config, levels, lengths, sample_length, args.mode)
    song_seconds = args.song_seconds or min(DEFAULT_SONG_SECONDS, max_seconds(config) or DEFAULT_SONG_SECONDS)
    exact = check_seconds("--song-seconds", song_seconds, config) * vq.sample_rate
    if round(exact) < sample_length:  # rounded, as `check_length` rounds --seconds (8.008 s was "not 8.008")
        seconds = sample_length / vq.sample_rate
        notices.append(f"note: the song is {seconds:g} s, not {song_seconds:g} (--song-seconds): the timing labels describe {seconds:g} s")
    song_length = max(int(exact), sample_length)  # truncated, as the job records of earlier runs hold it
    artist, genre, named = label_names(config, levels, args.artist, args.genre)
    notices += named
    reads_lyrics = any(config.prior(level).n_tokens for level in levels)
    if args.mode in (Mode.CONTINUE, Mode.UPSAMPLE) and any(config.prior(level).labels for level in levels):
        given = {"--artist": args.artist, "--genre": args.genre, "--song-seconds": args.song_seconds}
        given |= {"--lyrics": lyrics or None} if reads_lyrics else {}
        if missing := [flag for flag, value in given.items() if value is None]:
            notices.append(
                f"note: --codes holds codes, not the labels they were sampled with: {', '.join(missing)} "
                f"{'takes its default' if len(missing) == 1 else 'take the defaults'}; give those of the job that made them"
            )
    if lyrics and not reads_lyrics:
        notices.append("note: no sampled level of this model reads lyrics; --lyrics goes unused")
    songs = song_labels(config, levels, song_length, artist, genre, lyrics, n)  # first: names a missing Unidecode
    for lab in {config.prior(level).labels for level in levels if config.prior(level).n_tokens}:
        if dropped := tokenizer.dropped_chars(lyrics, lab.v3, tokenizer.lyric_chars(lab)):
            notices.append(f"note: --lyrics holds characters the model's lyric vocabulary lacks, dropped as the original drops them: {shown(dropped, 80)}")
    mesh = None if args.mesh is None else mesh_shape(args.mesh, _device_count())
    placement = Placement.of(precision_config(config, args.dtype, args.weights), mesh)
    request = SampleRequest(
        levels, sample_length, args.seed, songs, level_settings(args, config, levels), job_source(args, prompt), placement
    )
    if not check_out(args.out, args.resume, job_record(request, start_codes=start), args.mode) and args.resume:
        notices.append(f"note: {args.out} holds no job to resume: starting one")
    return Plan(config, request, start, prompt, tuple(notices))


def read_lyrics(lyrics: str | None, lyrics_file: Path | None) -> str:
    """The lyrics of --lyrics or --lyrics-file (none: empty)."""
    if lyrics is not None and lyrics_file:
        raise InputError("give --lyrics or --lyrics-file, not both")
    if not lyrics_file:
        return lyrics or ""
    try:
        return lyrics_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--lyrics-file {lyrics_file} cannot be read: {e}") from None


def check_mode(args: argparse.Namespace) -> None:
    """Each mode's own inputs are given, and no other mode's."""
    if args.mode.reads_codes and not args.codes:
        raise InputError(f"--mode {args.mode} needs --codes (a codes.npz of an earlier run)")
    if args.mode is Mode.PRIMED and not args.prompt_audio:
        raise InputError("--mode primed needs --prompt-audio")
    if args.codes and not args.mode.reads_codes:
        raise InputError(f"--codes is read by --mode continue or upsample, not {args.mode}")
    for given, flag in ((args.prompt_audio, "--prompt-audio"), (args.prompt_seconds, "--prompt-seconds")):
        if given is not None and args.mode is not Mode.PRIMED:
            raise InputError(f"{flag} is read by --mode primed, not {args.mode}")


def model_config(name: str) -> JukeboxConfig:
    """The config of a preset or of a checkpoint folder, read without its weights."""
    if not name.strip():  # "" was the working folder
        raise InputError("--model is empty; give a checkpoint folder or a preset, or leave it out for the default model")
    if name in MODEL_PRESETS:
        if (Path(name) / checkpoint.CONFIG).is_file():  # it sampled the preset's random weights beside a model of that name
            raise InputError(
                f"--model {name} names a preset and a folder here: give ./{name} for the folder, or move the folder "
                "away for the preset (random weights)"
            )
        return JukeboxConfig.from_preset(name)
    try:
        with default.reading(name):
            config = checkpoint.read_config(Path(name))  # recovers an interrupted save first
    except CheckpointError:
        if not Path(name).exists() and not default.is_default(name):
            raise InputError(f"--model {name!r} is neither a checkpoint folder nor a preset ({', '.join(MODEL_PRESETS)})") from None
        raise  # names the file and the fix
    if config.vqvae is None or not config.priors:
        raise InputError(f"--model {name} needs a VQ-VAE and priors to sample; it holds {'only a VQ-VAE' if config.vqvae else 'no VQ-VAE'}")
    return config


def check_weights(weights: str | None, config: JukeboxConfig) -> None:
    """`--weights float` cannot undo int8 weights."""
    if weights == WeightFormat.FLOAT.value and int8_weights(config):
        raise InputError("--weights float: --model holds int8 weights, which cannot become float again; give its float checkpoint")


def int8_weights(config: JukeboxConfig) -> bool:
    return any(p.precision.weights is WeightFormat.INT8 for p in config.priors)


def check_levels(levels: list[int] | None, config: JukeboxConfig, mode: Mode) -> tuple[int, ...]:
    """The levels to sample, top first: priors the model has, and below the top for upsampling."""
    have = sorted(p.level for p in config.priors)
    top = config.vqvae.levels - 1
    default = [level for level in have if not (mode is Mode.UPSAMPLE and level == top)]
    levels = tuple(sorted(set(levels or default), reverse=True))
    if not levels:
        raise InputError(f"--mode {mode}: the model has no prior {'below the top level' if have else 'at all'} to sample with")
    if not set(levels) <= set(have):
        raise InputError(f"--levels {' '.join(map(str, levels))}: the model has priors for levels {' '.join(map(str, have))}")
    if mode is Mode.UPSAMPLE and top in levels:
        raise InputError(f"--mode upsample samples the levels below the top: give --levels without {top}, e.g. --levels {' '.join(map(str, range(top - 1, -1, -1)))}")
    return levels


def n_samples(asked: int | None, codes: dict[int, np.ndarray] | None) -> int:
    """The samples to draw: as asked (default 1), or as many as the codes continued hold."""
    if asked is not None:  # 2**63 failed in numpy, unnamed; fewer are bounded by memory (`check_job_memory`)
        checks.integer("--n-samples", asked, 1)
    if codes is None:
        return asked or 1
    n = len(next(iter(codes.values())))
    if asked is not None and asked != n:
        held = "1 sample" if n == 1 else f"{n} samples"
        raise InputError(f"--n-samples {asked}: --codes holds {held}; leave --n-samples out to continue all of them")
    return n


def start_codes(mode: Mode, codes: dict[int, np.ndarray] | None, n: int, levels: tuple[int, ...], n_levels: int) -> Codes | None:
    """The codes the job continues: empty for ancestral, `codes` for continue, for upsample
    those of `codes` above the sampled `levels`; None for primed (the prompt's, known once
    the model is loaded)."""
    if mode is Mode.PRIMED:
        return None
    empty = np.zeros((n, 0), np.int64)
    if mode is Mode.ANCESTRAL:
        return [empty] * n_levels
    if mode is Mode.UPSAMPLE:
        above = max(levels) + 1
        if above not in codes:
            raise InputError(f"--codes holds no level_{above}: upsampling level {max(levels)} reads the level-{above} codes")
        return [codes.get(level, empty) if level >= above else empty for level in range(n_levels)]
    return [codes.get(level, empty) for level in range(n_levels)]


def check_seconds(option: str, seconds: float, config: JukeboxConfig) -> float:
    """`seconds`, if within what the model's timing conditioning covers (without timing: what
    int32 audio samples count, the labels' and codes' lengths)."""
    limit, why = max_seconds(config), "the model's timing conditioning covers"
    if limit is None:
        limit, why = int32_seconds(config.vqvae.sample_rate), "audio lengths count in int32 samples"
    if seconds > limit:
        raise InputError(f"{option} {seconds:g} is past the {limit:g} s {why}; give at most {limit:g}")
    return seconds


def check_job_memory(n: int, sample_length: int, config: JukeboxConfig, memory: int | None = None) -> None:
    """Refuses a job whose codes (int64, every level) and one level's decoded audio (float32)
    would fill more than half of `memory` (default: this machine's), before anything is built."""
    per_sample = sum(-(-sample_length // hop) for hop in config.vqvae.hop_lengths) * 8 + sample_length * 4
    seconds = sample_length / config.vqvae.sample_rate
    what = f"--n-samples {n}: {n} samples of {seconds:g} s keep their codes and audio in"
    check_memory(n * per_sample, 0.5, what, "draw fewer at a time (several jobs, each with its own --out)", memory)


def check_length(seconds: float | None, mode: Mode, config: JukeboxConfig, levels: tuple[int, ...], start: Codes | None) -> int:
    """The job's length in audio samples: a multiple of the VQ-VAE top level's hop, within
    the model's timing range, longer than the codes it continues."""
    vq = config.vqvae
    hop = vq.hop_lengths[-1]  # an upsampler's windows start on whole tokens of the level above
    if seconds is None and mode is Mode.UPSAMPLE:
        above = max(levels) + 1
        if not start[above].shape[1]:  # a job of the levels above it alone left it empty
            have = [level for level, z in enumerate(start) if z.shape[1]]
            raise InputError(
                f"--codes holds no level-{above} codes (only levels {have}) for level {max(levels)} to upsample: "
                f"give --levels {' '.join(map(str, range(min(have) - 1, min(levels) - 1, -1)))}"
                if have and min(have) > 0
                else f"--codes holds no level-{above} codes for level {max(levels)} to upsample; give codes of an earlier run"
            )
        length = start[above].shape[1] * vq.hop_lengths[above] // hop * hop
        seconds = check_seconds("--seconds", length / vq.sample_rate, config)
        asked, more = f"--codes (level {above}: {seconds:g} s)", "give longer codes"
    else:
        seconds = check_seconds("--seconds", DEFAULT_SECONDS if seconds is None else seconds, config)
        length = round(seconds * vq.sample_rate) // hop * hop  # round: 8.008 s x 16 kHz is 128127.99...
        asked, more = f"--seconds {seconds:g}", "give at least that"
    if length <= 0:
        raise InputError(f"{asked} is shorter than one level-{vq.levels - 1} token ({hop} samples, {hop / vq.sample_rate:.4f} s)")
    for level in levels:
        prior = config.prior(level)
        span = prior.n_ctx * prior.raw_to_tokens  # an upsampler's window reads the level above over all of it
        if prior.conditioner is not None and length < span:
            raise InputError(
                f"{asked}: the level-{level} upsampler samples windows of {math.ceil(span / vq.sample_rate * 1e4) / 1e4:g} s; "
                f"{more} (or leave level {level} out with --levels)"
            )
    if mode is Mode.CONTINUE:
        for level in levels:
            have = start[level].shape[1] * vq.hop_lengths[level]
            if have >= length:
                limit = max_seconds(config)
                fix = (
                    f"the model's timing covers songs up to {limit:g} s, so nothing is left to continue: trim the codes"
                    if limit is not None and have >= limit * vq.sample_rate
                    else "give a longer --seconds to continue them"
                )
                raise InputError(f"--codes already holds {have / vq.sample_rate:.2f} s at level {level}, --seconds {seconds:g} no more: {fix}")
    return length


def check_prompt(prompt: Prompt, path: Path, sample_length: int, sample_rate: int) -> list[str]:
    """Refuses a prompt as long as the job; notes a file shorter than `--prompt-seconds` and
    audio above full scale (a float file's samples beyond +-1, which the VQ-VAE never saw)."""
    used = len(prompt.audio) / sample_rate
    if len(prompt.audio) >= sample_length:
        raise InputError(
            f"--prompt-audio {path}: priming with {used:.2f} s of it leaves nothing to sample in --seconds "
            f"{sample_length / sample_rate:.2f}; give a longer --seconds or a shorter --prompt-seconds"
        )
    notices = []
    if prompt.file_seconds < prompt.seconds:
        notices.append(
            f"note: {path} holds {prompt.file_seconds:.2f} s, less than --prompt-seconds {prompt.seconds:g}: priming with {used:.2f} s of it"
        )
    peak = float(np.abs(prompt.audio).max())
    if peak > 1:
        notices.append(f"note: {path} peaks at {peak:.3g}, above full scale (1): it is encoded as is; scale it to +-1 if the prime sounds distorted")
    return notices


def check_upper_codes(config: JukeboxConfig, levels: tuple[int, ...], lengths: list[int], sample_length: int, mode: Mode) -> None:
    """Each sampled upsampler has the codes of the level above for the whole length: that
    level is sampled too, or its start codes (`lengths`, in tokens) cover the length."""
    vq = config.vqvae
    for level in levels:
        upper = level + 1
        if config.prior(level).conditioner is None or upper in levels:
            continue
        have = lengths[upper] * vq.hop_lengths[upper]
        if have < sample_length:
            fix = {
                Mode.UPSAMPLE: "give a shorter --seconds, or leave it out to upsample the whole of --codes",
                Mode.PRIMED: f"sample level {upper} too",
            }.get(mode, f"sample level {upper} too, or give --codes that hold it")
            raise InputError(
                f"--levels {' '.join(map(str, levels))}: level {level} reads the level-{upper} codes, which cover "
                f"{have / vq.sample_rate:.2f} s of the {sample_length / vq.sample_rate:.2f} s asked; {fix}"
            )


def label_names(config: JukeboxConfig, levels: tuple[int, ...], artist: str | None, genre: str | None) -> tuple[str, str, list[str]]:
    """--artist and --genre, each defaulting to 'unknown' or, where the sampled priors' own
    table lacks it (a model trained on its own artists), to the table's first name; with a
    notice naming what was chosen."""
    labels = [config.prior(level).labels for level in levels if config.prior(level).labels]
    names, notices = [], []
    for kind, given in (("artist", artist), ("genre", genre)):
        table = getattr(labels[0], f"{kind}s") if labels else None
        if given is None:
            given = "unknown" if not table or "unknown" in table else table[0]
            if given != "unknown":
                notices.append(f"note: no --{kind}: the model's first, {given!r} (it knows {', '.join(map(repr, table))})")
        names.append(given)
    return names[0], names[1], notices


def song_labels(config: JukeboxConfig, levels: tuple[int, ...], song_length: int, artist: str, genre: str, lyrics: str, n: int) -> dict:
    """Each sampled level's labels of the song, `n` times. A name one prior knows and another does
    not (a fine-tune of the top prior alone on new artists) is named with the level lacking it."""
    songs, failed = {}, {}
    for level in levels:
        try:
            songs[level] = (tokenizer.song_labels(config.prior(level), song_length, artist, genre, lyrics),) * n
        except (ValueError, ImportError) as e:
            failed[level] = str(e)
    if not failed:
        return songs
    lacking = sorted(failed, reverse=True)
    if not songs:
        raise InputError(failed[lacking[0]])
    knowing = sorted(songs, reverse=True)
    fix = f"fine-tune the {_levels(lacking)} on the same songs too (train prior --level N --init, for each)"
    if knowing[0] == max(levels):  # the levels that know it can be sampled alone
        fix += f", or sample --levels {' '.join(map(str, knowing))}"
    know = "knows" if len(knowing) == 1 else "know"
    raise InputError(f"the {_levels(lacking)}: {failed[lacking[0]]} The {_levels(knowing)} {know} it: {fix}")


def _levels(levels: list[int]) -> str:
    """`prior of level 2`, `priors of levels 1 and 0`."""
    if len(levels) == 1:
        return f"prior of level {levels[0]}"
    return f"priors of levels {', '.join(map(str, levels[:-1]))} and {levels[-1]}"


def level_settings(args: argparse.Namespace, config: JukeboxConfig, levels: tuple[int, ...]) -> dict[int, LevelSettings]:
    """Each level's sampling method, window hop and batch limit."""
    from jukebox_jax.sampling import sampling_method

    try:
        method = sampling_method(args.temperature, args.top_k, args.top_p)
    except ValueError as e:  # named by `sampling_method`'s arguments: said in flags
        flags = {"top_k=1": "--top-k 1", "top_k": "--top-k", "top_p": "--top-p", "temperature": "--temperature"}
        raise InputError(re.sub(r"\b(top_k=1|top_k|top_p|temperature)\b", lambda m: flags[m[0]], str(e))) from None
    top = config.vqvae.levels - 1
    for level in levels:
        try:
            check_method(config.prior(level), method)
        except InputError as e:
            raise InputError(f"--top-k: {e}") from None
    return {
        level: LevelSettings(method, hop_fraction=TOP_HOP_FRACTION if level == top else HOP_FRACTION, max_batch_size=args.max_batch_size)
        for level in levels
    }


def job_source(args: argparse.Namespace, prompt: Prompt | None) -> JobSource:
    """Where the start codes come from, for `job.json`."""
    if prompt is None:
        return JobSource(args.mode)
    return JobSource(args.mode, prompt.digest, prompt.seconds)


def check_out(out: Path, resume: bool, record: dict, mode: Mode) -> bool:
    """Whether `out` holds this job (of `mode`) to resume; raises unless `out` is (or can
    become) a writable folder holding no other job."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder")
    check_not_in_use(out, "sampling job")  # before the model loads (minutes for a 5b model)
    return check_job(out, record, resume, job_flags(mode))  # `check_output_folder`: that it can be written


# The flag that sets each field of a job record (`job_record`), by the path's first and last
# names; the songs' field `offset` follows from the mode and --codes.
_FLAGS = {
    "seed": "--seed",
    "sample_length": "--seconds",
    "levels": "--levels",
    "model": "--model",
    "songs.artist": "--artist",
    "songs.genres": "--genre",
    "songs.lyrics": "--lyrics or --lyrics-file",
    "songs.total_length": "--song-seconds",
    "settings.temperature": "--temperature",
    "settings.k": "--top-k",
    "settings.p": "--top-p",
    "settings.method": "--temperature, --top-k or --top-p",
    "source.mode": "--mode",
    "source.prompt": "--prompt-audio",
    "source.prompt_seconds": "--prompt-seconds",
    "placement.dtype": "--dtype",
    "placement.weights": "--weights",
    "placement.mesh": "--mesh",
}


def job_flags(mode: Mode) -> Callable[[str], str | None]:
    """For a job of `mode`: the flag that sets the field of a job record a difference names
    (`job_differences`: `"songs.2.0.artist: 0 -> 1"` -> `--artist`; `"songs.2: 1 -> 2 records"`
    -> `--n-samples`; the start codes: --codes, the prompt's, or, empty, their count's)."""
    start = "--codes" if mode.reads_codes else "--prompt-audio" if mode is Mode.PRIMED else "--n-samples"

    def flag_of(difference: str) -> str | None:
        parts = difference.split(": ")[0].split(".")
        if difference.endswith(" records"):
            return "--n-samples"
        if parts[0] == "start_codes":
            return start
        return _FLAGS.get(parts[0] if len(parts) == 1 else f"{parts[0]}.{parts[-1]}")

    return flag_of


def start_distributed(args: argparse.Namespace) -> None:
    """`jax.distributed.initialize` for --distributed (before anything touches a device)."""
    given = {"--coordinator": args.coordinator, "--num-processes": args.num_processes, "--process-id": args.process_id}
    if not args.distributed:
        if named := [k for k, v in given.items() if v is not None]:
            raise InputError(f"{', '.join(named)} configure --distributed: add it")
        return
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices only (a test cluster on one machine)
    where = f" via {args.coordinator}" if args.coordinator else ""
    print(f"--distributed: joining the run{where} (this waits for every process to start)", flush=True)
    try:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    except (ValueError, RuntimeError) as e:
        raise InputError(
            f"--distributed: cannot join the run ({e}); outside a TPU slice, Slurm or Open MPI give --coordinator HOST:PORT, "
            "--num-processes and --process-id"
        ) from None


def device_mesh(spec: str | None) -> Mesh | None:
    """The mesh of --mesh over every device of every process, or None."""
    if spec is None:
        return None
    from jukebox_jax.sharding import make_mesh

    mesh = make_mesh(spec)
    print(f"mesh: {dict(mesh.shape)} over {mesh.devices.size} devices", flush=True)
    return mesh


def load_model(name: str, config: JukeboxConfig, seed: int, mesh: Mesh | None = None) -> Jukebox:
    """The preset `name` with random weights from `seed`, or the checkpoint folder `name`,
    placed on `mesh` if given (a checkpoint restored straight into its shards)."""
    import jax

    if name in MODEL_PRESETS:
        print(f"building --model {name}: a preset with RANDOM weights (seed {seed}); the samples are not music", flush=True)
        try:
            jb = Jukebox.init(config, jax.random.fold_in(jax.random.key(seed), PRESET_WEIGHTS))
        except jax.errors.JaxRuntimeError as e:  # else "lower --max-batch-size", which does not help
            if "RESOURCE_EXHAUSTED" not in str(e):
                raise
            from jukebox_jax.params import abstract_params

            gb = sum(x.size for x in jax.tree.leaves(abstract_params(config))) * 4 / 1e9
            raise InputError(
                f"--model {name}: drawing its random weights ({gb:.1f} GB in float32) takes about five times that in "
                "memory, more than this device has; a dry run takes a tiny preset (tiny_5b, tiny_5b_lyrics, "
                "tiny_1b_lyrics), real weights a converted checkpoint"
            ) from None
        return jb if mesh is None else jb.shard(mesh)
    print(f"loading --model {name} ...", flush=True)
    with default.reading(name):
        return Jukebox.load(name, mesh=mesh)


def with_precision(jb: Jukebox, dtype: str | None, weights: str | None) -> Jukebox:
    """The loaded model with `--weights` int8 (quantized from its float weights, before any
    cast) and `--dtype`; either left out keeps what the model stores (`precision_config`)."""
    if weights == WeightFormat.INT8.value and not int8_weights(jb.config):
        jb = jb.quantize(weights)
    return jb if dtype is None else jb.astype(dtype)


def precision_config(config: JukeboxConfig, dtype: str | None, weights: str | None) -> JukeboxConfig:
    """The config `with_precision` gives a model of `config`."""
    if weights == WeightFormat.INT8.value and not int8_weights(config):
        config = config_with_weights(config, weights)
    return config if dtype is None else config.astype(dtype)


def _device_count() -> int:
    import jax

    return jax.device_count()


def encode_prompt(jb: Jukebox, prompt: Prompt, n: int) -> Codes:
    """The prompt's codes at every level, `n` times: level L's `[n, T / hop_L]` int64."""
    audio = np.broadcast_to(prompt.audio, (n, *prompt.audio.shape))  # [n, T, 1]
    return [np.asarray(z, np.int64) for z in jb.encode(audio)]


def count_windows(config: JukeboxConfig, request: SampleRequest) -> int:
    """The windows the job samples over its levels (placed as `sample_level` places them)."""
    priors = {level: config.prior(level) for level in request.levels}
    return sum(
        len(level_windows(cfg, request.sample_length // cfg.raw_to_tokens, request.settings[level].hop_fraction))
        for level, cfg in priors.items()
    )


class Progress:
    """Two bars: windows over the job, tokens within a window. The windows' rate and ETA
    leave out each level's first sampled window (it pays for compiling) and windows a
    resume finds done. Hidden unless `shown` (in a run of several processes, process 0's);
    the tokens' bar also where stderr is no terminal (a log would get its cursor moves)."""

    def __init__(self, n_windows: int, shown: bool = True):
        from tqdm import tqdm

        self.windows = tqdm(total=n_windows, unit="window", desc="sampling", smoothing=0, disable=not shown)
        self.tokens = tqdm(unit="token", desc="window", leave=False, disable=None if shown else True)
        self.warm: set[int] = set()  # levels whose first sampled window is done
        self.sampled = False  # whether the window in flight sampled tokens

    def on_tokens(self, done: int, total: int) -> None:
        if done <= self.tokens.n or self.tokens.total != total:  # a new window (or batch chunk): counts restart
            self.tokens.reset(total)
        self.tokens.update(done - self.tokens.n)
        self.sampled = True

    def on_window(self, level: int, start: int, zs: Codes) -> None:
        self.windows.set_postfix(level=level, start=str(start), refresh=False)  # a number: tqdm showed 20000 as 2e+4
        if level not in self.warm:  # restart the clock, this window left out: tqdm's rate (smoothing 0) is
            self.windows.initial, self.windows.start_t = self.windows.n + 1, time.time()  # (n - initial) / (now - start_t)
            if self.sampled:
                self.warm.add(level)
        self.windows.update()  # drawn after the restart (drawn before, it showed the compile's ETA)
        self.sampled = False

    def close(self) -> None:
        self.tokens.close()
        # tqdm's `close` draws the final count only if it drew the bar since `start_t`, which
        # `on_window` moves on (a finished job's resume went by in one redraw interval)
        if not self.windows.disable:
            self.windows.last_print_t = max(self.windows.last_print_t, self.windows.start_t)
        self.windows.close()


def run(args: argparse.Namespace) -> None:
    """The `sample` command: checks, then loads the model, then runs the job."""
    import jax

    from jukebox_jax.generation.job import run_job

    start_distributed(args)
    checked = plan(args)
    for notice in checked.notices:
        print(notice)
    mesh = device_mesh(args.mesh)
    jb = with_precision(load_model(args.model, checked.config, args.seed, mesh), args.dtype, args.weights)
    n = checked.request.n_samples
    start = checked.start if checked.prompt is None else encode_prompt(jb, checked.prompt, n)
    first = jax.process_index() == 0  # in a run of several processes, only process 0 reports
    progress = Progress(count_windows(checked.config, checked.request), shown=first)
    try:
        zs = run_job(
            jb, args.out, checked.request, start, resume=args.resume, on_window=progress.on_window,
            on_tokens=progress.on_tokens, flag_of=job_flags(args.mode),
        )
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {args.out} keeps every finished window; the same command with --resume continues it") from None
    finally:
        progress.close()
    if first:
        print(f"codes {[z.shape for z in zs]} -> {args.out / CODES_FILE}; audio per level in {args.out}/level_*/")
