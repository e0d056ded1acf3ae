"""`jukebox-jax train vqvae|prior`: train a VQ-VAE or one prior on a folder of songs, or
fine-tune one from a checkpoint, into a run folder that `--resume` continues.

    OUT/run.json, OUT/checkpoints/N/, OUT/metrics.jsonl   the run (`train/loop.py`)
    OUT/codes/                                           a prior's training codes, encoded once
    OUT/model/                                           the trained model (`Jukebox.load`), written
                                                         with every checkpoint

A prior's model holds the parts of the `--vqvae` checkpoint it was trained with (the VQ-VAE
and any priors) plus itself, so training the top prior from a VQ-VAE, then each upsampler
from the model before, ends in one model that `jukebox-jax sample --model` reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from jukebox_jax import checkpoint, tokenizer
from jukebox_jax.cli_sample import (
    device_mesh,
    finite_float,
    folder_to_write,
    integer,
    level,
    positive_float,
    positive_int,
    seed,
)
from jukebox_jax.config import PRESETS, DType, JukeboxConfig, Lyrics, PriorConfig, VQVAEConfig, misfits, preset
from jukebox_jax.errors import ConfigError, InputError, Interrupted, shown
from jukebox_jax.io import check_memory, check_output_folder, exclusive
from jukebox_jax.jukebox import Jukebox
from jukebox_jax.prior.transformer import Remat
from jukebox_jax.train import data, loop, optim, steps
from jukebox_jax.train import labels as train_labels
from jukebox_jax.train import vqvae as vqvae_train

MODEL = "model"
CODES = "codes"
EVAL_BATCHES = 8  # held-out batches per evaluation
SILENT_BATCHES = 64  # batches drawn, at most, to find sound for the VQ-VAE's loss normalisers


def add_arguments(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The `train` command's subcommands and their options; their parsers by name."""
    sub = p.add_subparsers(dest="part", required=True)
    songs = "a folder of songs (wav, flac, ogg, opus, mp3, aiff; metadata.json for labels)"
    parts = {  # what, --data, a --config preset
        "vqvae": ("train a VQ-VAE on a folder of audio", songs, "small_vqvae"),
        "prior": (
            "train one prior on a folder of audio (encoded once) or of codes",
            f"{songs}, or of their codes (a prior run's OUT/codes)",
            "small_top",
        ),
    }
    v, q = (sub.add_parser(part, help=what, description=what) for part, (what, _, _) in parts.items())
    for x, (_, data_help, example) in zip((v, q), parts.values()):
        x.add_argument("--data", type=Path, required=True, help=data_help)
        x.add_argument("--out", type=folder_to_write, required=True, help="the run folder")
        x.add_argument(
            "--config",
            help=f"the structure of a new model: a preset (e.g. {example}) or a JukeboxConfig JSON file",
        )
        x.add_argument(
            "--init", type=Path, help="fine-tune: start from this checkpoint's part instead of random weights"
        )
        x.add_argument("--steps", type=positive_int, default=1000, help="optimizer steps in all (default: %(default)s)")
        x.add_argument("--batch-size", type=positive_int, default=8, help="windows per step (default: %(default)s)")
        x.add_argument("--lr", type=positive_float, default=3e-4, help="peak learning rate (default: %(default)g)")
        x.add_argument(
            "--warmup", type=finite_float, default=100.0, help="learning-rate warmup steps (default: %(default)g)"
        )
        x.add_argument(
            "--linear-decay",
            type=positive_int,
            help="decay the learning rate linearly to 0 over this many steps, after the warmup",
        )
        x.add_argument(
            "--weight-decay",
            type=finite_float,
            default=0.0,
            help="the original's weight decay (its README trains with 0.01; default: %(default)g)",
        )
        x.add_argument(
            "--beta2",
            type=finite_float,
            default=0.999,
            help="Adam's second-moment decay (the original's default; its 5b top prior trained with 0.925, which "
            "fine-tuning it may want; default: %(default)g)",
        )
        x.add_argument(
            "--ema",
            type=finite_float,
            help="keep an EMA of the weights with this decay, e.g. 0.999: the model written and the held-out "
            "evaluation use it, as the original's (the checkpoints keep both)",
        )
        x.add_argument(
            "--save-every", type=positive_int, default=200, help="checkpoint every N steps (default: %(default)s)"
        )
        x.add_argument(
            "--eval-every",
            type=integer,
            default=200,
            help="evaluate on the held-out songs every N steps; 0 never (default: %(default)s)",
        )
        x.add_argument(
            "--eval-fraction", type=finite_float, default=0.1, help="share of the songs held out (default: %(default)g)"
        )
        x.add_argument(
            "--seed", type=seed, default=0, help="seed of the init, the windows and every draw (default: %(default)s)"
        )
        x.add_argument(
            "--resume", action="store_true", help="continue the run in --out (same settings; --steps may grow)"
        )
        x.add_argument(
            "--mesh", help="data-parallel over devices: 'data=N' (the batch splits over data; a multiple of N; --resume keeps it)"
        )
    v.add_argument(
        "--seconds", type=positive_float, default=1.0, help="window length in seconds (default: %(default)g)"
    )
    q.add_argument("--level", type=level, required=True, help="the prior's level: 2 the top, 1 and 0 the upsamplers")
    q.add_argument(
        "--vqvae",
        type=Path,
        help="a checkpoint with the VQ-VAE that encodes --data (and any priors): they join the model",
    )
    q.add_argument(
        "--remat",
        choices=[r.value for r in Remat],
        default="none",
        help="recompute layers in the backward pass (default: %(default)s)",
    )
    q.add_argument(
        "--compute-dtype",
        choices=[d.value for d in DType],
        default="float32",
        help="mixed precision: activations in this dtype, weights and optimizer float32 (default: %(default)s)",
    )
    return {"vqvae": v, "prior": q}


def _optim(args: argparse.Namespace) -> optim.OptimConfig:
    linear = args.linear_decay is not None
    return optim.OptimConfig(
        lr=args.lr,
        lr_warmup=args.warmup,
        lr_use_linear_decay=linear,
        lr_start_linear_decay=math.ceil(args.warmup) if linear else 0,  # the first step at the peak
        lr_decay=float(args.linear_decay) if linear else 1e10,
        weight_decay=args.weight_decay,
        beta2=args.beta2,
        ema_mu=args.ema,
    )


_FLAGS = {  # the option that sets each field of OptimConfig and RunConfig
    "lr": "--lr", "lr_warmup": "--warmup", "lr_decay": "--linear-decay", "weight_decay": "--weight-decay", "beta2": "--beta2",
    "ema_mu": "--ema", "steps": "--steps", "save_every": "--save-every", "eval_every": "--eval-every",
    "eval_fraction": "--eval-fraction",
}


def _run_config(args: argparse.Namespace) -> loop.RunConfig:
    return loop.RunConfig(args.steps, args.save_every, args.eval_every, seed=args.seed)


def _check_settings(args: argparse.Namespace) -> None:
    """The training options, checked before any song is read (encoding a dataset takes hours),
    each error led by its flag."""
    try:
        data.check_eval_fraction(args.eval_fraction)
        _optim(args)
        _run_config(args)
    except (ConfigError, InputError) as e:
        field = re.match(r"(?:OptimConfig\.)?(\w+)", str(e)).group(1)
        raise InputError(f"{_FLAGS.get(field, field)}: {e}") from None


def _check_fits(args: argparse.Namespace, prior: PriorConfig, vq: VQVAEConfig) -> None:
    """`--init`'s prior reads codes of `--vqvae`'s VQ-VAE: its codebook, hops and sample rate
    (from the configs, before either is loaded)."""
    if differ := [f"{name} {ours} against {theirs}" for name, ours, theirs in misfits(prior, vq)]:
        raise InputError(
            f"--init {args.init}'s level-{args.level} prior does not read the codes of --vqvae {args.vqvae} "
            f"({'; '.join(differ)}): give the --vqvae it was trained with (one holding its VQ-VAE, e.g. --init's own)"
        )


def _check_same_vqvae(args: argparse.Namespace, init: Jukebox, base: Jukebox) -> None:
    """Where `--init` holds a VQ-VAE, it is `--vqvae`'s (on another's codes, of the same
    structure, its prior's loss began worse than uniform)."""
    if init.config.vqvae is not None and init.vqvae_fingerprint() != base.vqvae_fingerprint():
        raise InputError(
            f"--init {args.init} holds another VQ-VAE than --vqvae {args.vqvae} (the same structure, other weights): "
            f"its level-{args.level} prior reads the codes of its own; give --vqvae {args.init}"
        )


def _check_codes_fit(args: argparse.Namespace, init: Jukebox, folder: data.Folder) -> None:
    """Without `--vqvae`: the codes of `--data` are `--init`'s VQ-VAE's where both record one,
    and of its level-`--level` prior's hop and sample rate (trained on another VQ-VAE's codes,
    it learnt nothing it can use, its timing labels at the wrong rate)."""
    prior = init.config.prior(args.level)
    if init.config.vqvae is not None and folder.vqvae not in (None, init.vqvae_fingerprint()):
        raise InputError(
            f"--data {args.data} holds codes another VQ-VAE made than --init {args.init}'s; give --vqvae, the "
            "checkpoint with the VQ-VAE that made them, or the audio folder as --data with --vqvae --init's checkpoint"
        )
    hops = folder.hop_lengths
    pairs = {"hop": (hops[args.level] if args.level < len(hops) else None, prior.raw_to_tokens)}
    if prior.labels is not None:
        pairs["sample_rate"] = (folder.sample_rate, prior.labels.sample_rate)
    differ = [f"{name} {theirs} against {ours}" for name, (theirs, ours) in pairs.items() if theirs != ours]
    if differ:
        raise InputError(
            f"--data {args.data} holds codes that --init {args.init}'s level-{args.level} prior does not read "
            f"({'; '.join(differ)}): give the codes of the VQ-VAE it was trained with, or their audio with that --vqvae"
        )


def _structure(name: str | None) -> JukeboxConfig:
    """`--config`: a preset or a JukeboxConfig JSON file."""
    if name is None:
        raise InputError("give --config (the structure of a new model) or --init (a checkpoint to fine-tune)")
    path = Path(name)
    fix = "--config takes a preset or a JukeboxConfig JSON file; fine-tune a checkpoint with --init"
    if path.is_dir() and name not in PRESETS:
        raise InputError(f"--config {path} is a folder; {fix}")
    if path.suffix == ".json" or path.is_file():
        try:
            d = json.loads(path.read_text())
            saved = isinstance(d, dict) and {"format", "config"} <= d.keys()  # what `checkpoint.save` writes
            config = None if saved else JukeboxConfig.from_dict(d)
        except (OSError, ValueError, RecursionError) as e:
            raise InputError(f"--config {path}: not a readable JukeboxConfig JSON file ({e})") from None
        if config is None:
            raise InputError(f"--config {path} is a checkpoint's config.json; {fix} (its folder)")
        return config
    part = preset(name)
    return JukeboxConfig(vqvae=part) if isinstance(part, VQVAEConfig) else JukeboxConfig(priors=(part,))


def _spec(args: argparse.Namespace, **extra) -> dict:
    """What `--resume` must find unchanged: the options that shape the run, `--init` by its
    absolute path (a run resumes from any working folder), and `extra` (the task, the songs'
    fingerprint, the `--vqvae`'s; `--data` and `--config` count by what they hold)."""
    keep = (
        "part",
        "init",
        "batch_size",
        "lr",
        "warmup",
        "linear_decay",
        "weight_decay",
        "beta2",
        "ema",
        "eval_fraction",
        "seed",
        "seconds",
    )
    spec = {k: str(v.resolve()) if isinstance(v, Path) else v for k, v in vars(args).items() if k in keep}
    # the devices the batch splits over: another split sums in another order, so a resume would not be bit-identical
    spec["data devices"] = _check_mesh(args.mesh, args.batch_size)
    return {**spec, **extra}


def _progress(total: int, done: int) -> tuple[Any, Callable[[int, dict[str, float]], None]]:
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, unit="step", desc="training", smoothing=0.1)

    def on_step(i: int, metrics: dict[str, float]) -> None:
        bar.set_postfix(loss=f"{metrics['loss']:.4g}", refresh=False)
        bar.update(i - bar.n)

    return bar, on_step


def _fit(
    args: argparse.Namespace,
    task: steps.VQVAETask | steps.PriorTask,
    state_of: Callable[[], Any],
    batches: Iterator[dict],
    eval_batches: list[dict] | None,
    save_model: Callable[[Any], None],
    **spec_extra: Any,
) -> None:
    """Starts or resumes the run, trains, and writes the model with every checkpoint.
    `spec_extra`: more of what a resume must find unchanged (`_spec`: the songs, ...)."""
    import jax

    run = loop.Run(args.out, _run_config(args))
    task_json = json.dumps(dataclasses.asdict(task), default=str)
    spec = _spec(args, task=task_json, **spec_extra)
    start = run.start(spec, args.resume)
    if args.resume and not start:
        print(f"note: {args.out} holds no checkpoint to resume from (killed before its first, or its checkpoints removed): training from step 0, its metrics logged again")
    state = run.restore(state_of()) if start else state_of()
    if args.warmup and (args.steps - 1) / args.warmup < 1:  # step i (0-based) warms up to i / warmup of --lr
        print(
            f"note: --warmup {args.warmup:g} is not shorter than --steps {args.steps}: the learning rate never reaches "
            f"--lr {args.lr:g} (the last step's is {(args.steps - 1) / args.warmup:.0%} of it)"
        )
    bar, on_step = _progress(args.steps, int(state.step))
    held = eval_batches if args.eval_every else None  # --eval-every 0: no evaluation
    try:
        state = loop.fit(
            task.step,
            state,
            batches,
            run,
            evaluate=task.evaluate if held is not None else None,
            eval_batches=held,
            mesh=device_mesh(args.mesh),
            on_step=on_step,
            on_save=lambda s: save_model(jax.device_get(steps.weights(s))),  # the model follows every checkpoint
        )
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {args.out} keeps its newest checkpoint; the same command with --resume continues") from None
    finally:
        bar.close()
    save_model(jax.device_get(steps.weights(state)))  # again: a finished run rerun picks up the --vqvae model's newer parts
    print(f"trained to step {args.steps} -> {args.out / MODEL} (metrics: {args.out / loop.METRICS})")


def _check_batch(batch_size: int, windows: str, window_bytes: int) -> None:
    """Refuses a batch whose windows alone take an eighth of the machine's memory: the loop
    holds a few batches at once (the VQ-VAE's bandwidth reads four) and a step's activations
    are many times its batch, so such a run could only end killed for memory."""
    what = f"--batch-size {batch_size}: a batch of {batch_size} {windows} takes"
    check_memory(batch_size * window_bytes, 1 / 8, what, "give a smaller --batch-size")


def _held_out(
    args: argparse.Namespace, windows: data.AudioWindows | data.CodesWindows | None, arrays: Callable[[data.Batch], Any] = lambda b: b
) -> list | None:
    """The held-out batches (`eval_batches`: at most `EVAL_BATCHES`, each a multiple of the
    mesh's data axis), or None, saying why, when there are none to evaluate."""
    if windows is None:
        if args.eval_every:
            print(
                f"note: no song of --data {args.data} is held out (--eval-fraction {args.eval_fraction:g}): no evaluation"
            )
        return None
    import jax

    from jukebox_jax.sharding import mesh_shape

    multiple = mesh_shape(args.mesh, jax.device_count()).get("data", 1) if args.mesh else 1
    held = [arrays(b) for b in windows.eval_batches(args.batch_size, EVAL_BATCHES, multiple)]
    if not held:
        print(f"note: the held-out songs hold fewer windows than --mesh's data axis ({multiple}): no evaluation")
        return None
    return lambda: iter(held)


# -- VQ-VAE -------------------------------------------------------------------------------


def train_vqvae(args: argparse.Namespace) -> None:
    if args.init is not None:
        base = Jukebox.load(args.init)
        if base.config.vqvae is None:
            raise InputError(f"--init {args.init} holds no VQ-VAE")
        cfg, params = base.config.vqvae, base.params["vqvae"]
    else:
        cfg = _structure(args.config).vqvae
        if cfg is None:
            raise InputError(f"--config {args.config} is not a VQ-VAE")
        params = Jukebox.init(JukeboxConfig(vqvae=cfg), loop.run_key(args.seed, loop.KeyUse.INIT)).params["vqvae"]
    folder = data.audio_folder(args.data, cfg.sample_rate)
    data.check_audio(folder)
    train, held = folder.split(args.eval_fraction)
    hop = cfg.hop_lengths[-1]
    longest = max(s.length for s in train)
    if args.seconds * cfg.sample_rate > longest:
        raise InputError(
            f"--seconds {args.seconds:g}: windows longer than the longest song of --data ({longest / cfg.sample_rate:.2f} s); "
            "give a shorter --seconds"
        )
    length = max(hop, round(args.seconds * cfg.sample_rate) // hop * hop)
    loss = vqvae_train.VQVAELoss()
    if length < loss.min_samples:
        shortest = -(-loss.min_samples // hop) * hop
        raise InputError(
            f"--seconds {args.seconds:g}: windows of {length} samples are shorter than the losses take "
            f"({loss.min_samples}); give --seconds {shortest / cfg.sample_rate:.3f} or more"
        )
    _check_batch(args.batch_size, f"windows of {length} samples", length * 4)
    windows, held_windows = (
        data.AudioWindows(folder, train, length),
        data.AudioWindows(folder, held, length) if held else None,
    )
    first = windows.batch(args.seed, 0, args.batch_size).x
    bandwidth = _bandwidth(args, windows)
    task = steps.VQVAETask(cfg, _optim(args), bandwidth, loss)
    out = args.out / MODEL

    _fit(
        args,
        task,
        lambda: task.init(params, first, args.seed, trained=args.init is not None),
        lambda i: {"audio": windows.batch(args.seed, i, args.batch_size).x},
        _held_out(args, held_windows, lambda b: {"audio": b.x}),
        lambda p: checkpoint.save(out, JukeboxConfig(vqvae=cfg), {"vqvae": p}),
        **{"songs in --data": folder.fingerprint()},
    )


# -- Priors -------------------------------------------------------------------------------


def _bandwidth(args: argparse.Namespace, windows: data.AudioWindows) -> vqvae_train.Bandwidth:
    """The losses' normalisers from the first 4 batches, or more while every window drawn is
    silent (or constant), up to `SILENT_BATCHES`: a zero normaliser divides the losses by 0."""
    drawn = [windows.batch(args.seed, i, args.batch_size).x for i in range(4)]
    while np.ptp(np.concatenate(drawn)) == 0:
        if len(drawn) == SILENT_BATCHES:
            raise InputError(
                f"--data {args.data}: the {len(drawn) * args.batch_size} windows drawn from its songs are all silent "
                "(silent songs, or channels that cancel in the mono mix); give songs with sound"
            )
        drawn.append(windows.batch(args.seed, len(drawn), args.batch_size).x)
    return vqvae_train.calculate_bandwidth(np.concatenate(drawn))


def _adapted(prior: PriorConfig, vq: VQVAEConfig, folder: data.Folder) -> PriorConfig:
    """A new prior's preset fitted to the VQ-VAE (codebook, hops, sample rate) and to the
    data's own label tables (artists, genres, lyric characters)."""
    prior = dataclasses.replace(prior, l_bins=vq.l_bins, downs_t=vq.downs_t, strides_t=vq.strides_t)
    if prior.labels is None:
        return prior
    lab = dataclasses.replace(
        prior.labels,
        sample_rate=vq.sample_rate,
        artists=folder.artists or ("unknown",),
        genres=folder.genres or ("unknown",),
        artist_bins=max(1, len(folder.artists)),
        genre_bins=max(1, len(folder.genres)),
        max_bow_genre_size=1,
    )
    if prior.lyrics is Lyrics.NONE:
        return dataclasses.replace(prior, labels=lab)
    chars = "".join(sorted({c for s in folder.songs for c in tokenizer.transliterate(s.lyrics)}))
    return dataclasses.replace(prior, labels=dataclasses.replace(lab, lyric_chars=chars), n_vocab=len(chars) + 1)


def _source(args: argparse.Namespace, base: Jukebox | None, init: Jukebox | None) -> data.Folder:
    """`--data`, checked: a codes folder the `--vqvae` made (without one, codes `--init`'s prior
    reads), or an audio folder the `--vqvae` can encode."""
    if not args.data.is_dir():
        what = "is a file" if args.data.exists() else "does not exist"
        raise InputError(f"--data {args.data} {what}; give a folder of songs, or of their codes")
    vq = base.config.vqvae if base else None
    if data.holds_codes(args.data):
        folder = data.codes_folder(args.data)
        if vq is not None and (
            folder.sample_rate != vq.sample_rate or folder.vqvae not in (None, base.vqvae_fingerprint())
        ):
            raise InputError(
                f"--data {args.data} holds codes another VQ-VAE made than --vqvae {args.vqvae}'s; give the audio "
                "folder as --data to encode it with this one, or the --vqvae the codes were made with"
            )
        if base is None and init is not None:
            _check_codes_fit(args, init, folder)
        return folder
    if base is None:
        raise InputError(f"--data {args.data} holds audio: give --vqvae, a checkpoint with the VQ-VAE that encodes it")
    if vq is None:
        raise InputError(
            f"--vqvae {args.vqvae} holds no VQ-VAE to encode --data {args.data}; give a checkpoint with one"
        )
    return data.audio_folder(args.data, vq.sample_rate)


def _check_songs_fit(source: data.Folder, vq: VQVAEConfig, level: int, n_ctx: int) -> None:
    """Every song of an audio --data holds a window of `n_ctx` codes at `level` (as encoded: cut
    to whole top-level hops), refused before the songs are encoded, as they would be after."""
    top, hop = vq.hop_lengths[-1], vq.hop_lengths[level]
    lengths = [song.length // top * top // hop for song in source.songs]
    data.check_fit(source.songs, lengths, n_ctx, f"level-{level} tokens", ", or train a prior of a shorter n_ctx")


def _codes(args: argparse.Namespace, base: Jukebox | None, source: data.Folder) -> data.Folder:
    """The codes of `source` (`_source`): itself if it is a codes folder, else encoded into
    OUT/codes (what is there already and still of its songs is kept)."""
    if data.holds_codes(source.root):
        return source
    from tqdm import tqdm

    with tqdm(total=len(source.songs), unit="song", desc="encoding") as bar:
        return data.encode_folder(base, args.data, args.out / CODES, on_song=lambda name, skipped: bar.update())


def _new_prior(args: argparse.Namespace, vq: VQVAEConfig | None) -> PriorConfig:
    """`--config`'s prior at `--level`: an upsampler below the top level of --vqvae's VQ-VAE
    `vq`, a top-level prior (no conditioner) at it."""
    priors = _structure(args.config).priors
    if not priors:
        raise InputError(f"--config {args.config} is not a prior")
    if vq is not None:
        top = vq.levels - 1
        if not 0 <= args.level <= top:
            raise InputError(f"--level {args.level}: --vqvae {args.vqvae} has levels 0 to {top}")
        if (priors[0].conditioner is None) != (args.level == top):
            kind = (
                "an upsampler (it reads the codes of the level above)" if priors[0].conditioner else "a top-level prior"
            )
            if args.level == top:
                where, want = "the top level", "a top-level structure (e.g. small_top)"
            else:
                where, want = f"below the top level ({top})", "an upsampler structure (e.g. small_upsampler_level_1)"
            raise InputError(
                f"--config {args.config} is {kind}, but --level {args.level} is {where}; give {want}, or another --level"
            )
    return dataclasses.replace(priors[0], level=args.level)


def train_prior(args: argparse.Namespace) -> None:
    from jukebox_jax import prior as prior_lib

    # the arguments checked against the checkpoints' configs before their weights are loaded
    vq = checkpoint.read_config(args.vqvae).vqvae if args.vqvae else None
    init_config = None if args.init is None else checkpoint.read_config(args.init)
    if init_config is not None and args.level not in [p.level for p in init_config.priors]:
        raise InputError(f"--init {args.init} holds no level-{args.level} prior")
    if init_config is not None and vq is not None:
        _check_fits(args, init_config.prior(args.level), vq)
    new = None if init_config is not None else _new_prior(args, vq)  # checked before the songs are encoded
    n_ctx = (new or init_config.prior(args.level)).n_ctx
    _check_batch(args.batch_size, f"windows of {n_ctx} tokens", n_ctx * 8)  # codes and those of the level above
    base = Jukebox.load(args.vqvae) if args.vqvae else None
    same = base is not None and args.init is not None and Path(args.init).resolve() == Path(args.vqvae).resolve()
    init = base if same else None if args.init is None else Jukebox.load(args.init)  # one checkpoint loaded once
    if init is not None and vq is not None:
        _check_same_vqvae(args, init, base)
    source = _source(args, base, init)
    given = {
        "vqvae": base.vqvae_fingerprint() if vq is not None else None,
        "songs in --data": source.fingerprint(),
    }
    loop.check_start(args.out, _spec(args, **given), args.resume, partial=True)  # before songs are encoded
    if vq is not None and not data.holds_codes(source.root):
        _check_songs_fit(source, vq, args.level, n_ctx)
    if init is not None:  # the prior and its label ids from the songs' labels, before they are encoded
        cfg, params = _float32_prior(init.config.prior(args.level), init.params[f"prior_level_{args.level}"])
        cfg, params = train_labels.with_labels_of(cfg, params, source, loop.run_key(args.seed, loop.KeyUse.INIT))
    else:
        if vq is None:
            raise InputError("a new prior needs --vqvae (its codebook size, hops and sample rate)")
        cfg = _adapted(new, vq, source)
        params = prior_lib.init_params(cfg, loop.run_key(args.seed, loop.KeyUse.INIT))
    train_labels.label_ids(cfg, source)  # names the prior does not know, refused before the songs are encoded
    folder = _codes(args, base, source)
    upper = cfg.conditioner is not None
    train, held = folder.split(args.eval_fraction)
    windows = data.CodesWindows.load(folder, train, args.level, cfg.n_ctx, upper=upper, bins=cfg.l_bins)
    held_windows = (
        data.CodesWindows.load(folder, held, args.level, cfg.n_ctx, upper=upper, bins=cfg.l_bins) if held else None
    )
    if dropped := train_labels.dropped_lyric_chars(cfg, folder):
        print(
            f"note: the songs' lyrics hold characters the prior's lyric vocabulary lacks, dropped as the original drops "
            f"them: {shown(dropped, 80)} (a new prior, without --init, takes the songs' characters)"
        )
    arrays = train_labels.prior_arrays(cfg, folder)

    task = steps.PriorTask(cfg, _optim(args), Remat(args.remat), DType(args.compute_dtype))
    # the model it writes: this prior beside --vqvae's parts, or without one --init's (its VQ-VAE made the
    # codes: `_check_codes_fit`), so that `sample --model` reads it
    home = base if base is not None else init if init is not None and init.config.vqvae is not None else None
    if home is None:
        print(f"note: no --vqvae (nor one in --init): {args.out / MODEL} will hold this prior alone, not a model to sample")
    parts = home.config if home else JukeboxConfig()
    model_cfg = parts.with_prior(cfg)
    others = {} if home is None else {k: v for k, v in home.params.items() if k != f"prior_level_{args.level}"}
    out = args.out / MODEL
    _fit(
        args,
        task,
        lambda: task.init(params, args.seed),
        lambda i: arrays(windows.batch(args.seed, i, args.batch_size)),
        _held_out(args, held_windows, arrays),
        lambda p: checkpoint.save(out, model_cfg, {**others, f"prior_level_{args.level}": p}),
        **given,
        **{"codes trained on": folder.fingerprint()},
    )


def _float32_prior(cfg: PriorConfig, params: dict) -> tuple[PriorConfig, dict]:
    """A prior stored at 16 bits (`convert --dtype`, `Jukebox.astype`) as float32, which it
    trains in (`--compute-dtype` for 16-bit activations); a float32 one as it is."""
    from jukebox_jax.params import cast

    if cfg.precision.params is DType.FLOAT32:
        return cfg, params
    config = JukeboxConfig(priors=(cfg,)).astype(DType.FLOAT32)
    return config.prior(cfg.level), cast(config, {f"prior_level_{cfg.level}": params})[f"prior_level_{cfg.level}"]


def _check_mesh(spec: str | None, batch_size: int) -> int:
    """`--mesh` for training: data parallel only (a `model` axis would compute each step on
    every device of it alike), the batch a multiple of its `data` axis. Returns that axis's
    size (1 without a mesh)."""
    if spec is None:
        return 1
    import jax

    from jukebox_jax.sharding import mesh_shape

    shape = mesh_shape(spec, jax.device_count())
    if shape["model"] != 1:
        raise InputError(
            f"--mesh {spec}: training is data parallel only, but this gives model={shape['model']}; "
            f"give --mesh data={jax.device_count()} (for fewer devices, hide the others, e.g. CUDA_VISIBLE_DEVICES)"
        )
    if batch_size % shape["data"]:
        raise InputError(f"--batch-size {batch_size} must be a multiple of the mesh's data axis ({shape['data']})")
    return shape["data"]


def run(args: argparse.Namespace) -> None:
    if args.init is not None and args.config is not None:
        raise InputError(
            f"give --config (a new model's structure) or --init (fine-tune {args.init} in its own structure), not both"
        )
    _check_mesh(args.mesh, args.batch_size)
    _check_settings(args)
    ours = (loop.RUN, loop.CHECKPOINTS, CODES)
    check_output_folder(args.out, ours, "training run")  # before anything is written
    data_folder = args.data.resolve()
    if data_folder == args.out.resolve() or data_folder in args.out.resolve().parents:
        raise InputError(
            f"--out {args.out} is inside --data {args.data}: the next run on that data would read this run's files "
            "(its codes, its model) as songs; give a folder outside it"
        )
    with exclusive(args.out, ours, "training run"):
        (train_vqvae if args.part == "vqvae" else train_prior)(args)
