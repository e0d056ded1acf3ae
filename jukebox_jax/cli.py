"""The `jukebox-jax` command line: `demo` (an audio round trip through the default model), `sample`, `train`,
`data`, `convert`."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from jukebox_jax import checkpoint, cli_data, cli_sample, cli_train, default
from jukebox_jax.config import DType
from jukebox_jax.errors import ConfigError, ConversionError, InputError, Interrupted, JukeboxError
from jukebox_jax.io import exclusive, full_disk, write_audio, write_npz
from jukebox_jax.synth.dataset import SONG_SECONDS

DEMO_SECONDS = 2.0
DEMO_OUT = Path(tempfile.gettempdir()) / "jukebox_demo"  # not the working directory, which may be a repository
DEMO_FILES = ("input.wav", "codes.npz", *(f"recon_level{level}.wav" for level in range(8)))  # what a demo writes


def demo(out: Path, seconds: float, seed: int) -> None:
    """Encodes a song of the synthetic set to codes at every level with the default model's
    VQ-VAE and decodes each level back to audio, printing each level's SNR. `out` may hold
    only a demo's files (another folder's input.wav or codes.npz would be replaced)."""
    with exclusive(out, DEMO_FILES, "demo's folder", only=True):
        _demo(out, seconds, seed)


def _demo(out: Path, seconds: float, seed: int) -> None:
    jb = default.load()
    cfg = jb.config.vqvae
    audio = demo_song(seconds, seed, cfg.sample_rate, cfg.hop_lengths[-1])  # [1, n, 1]
    codes = jb.encode(audio)
    write_audio(out / "input.wav", audio[0], cfg.sample_rate)
    n = audio.shape[1]
    print(f"jukebox-jax demo: a synthetic song (seed {seed}) through the default model's VQ-VAE (jukebox_jax.default)")
    print(f"input: {n} samples ({n / cfg.sample_rate:.2f} s at {cfg.sample_rate} Hz) -> {out / 'input.wav'}")
    for level, z in enumerate(codes):
        recon = np.asarray(jb.decode([z], start_level=level))[0]
        write_audio(out / f"recon_level{level}.wav", recon, cfg.sample_rate)
        snr = 10 * np.log10(np.sum(audio[0] ** 2) / max(np.sum((audio[0] - recon) ** 2), 1e-12))
        used = len(np.unique(np.asarray(z)))
        print(
            f"level {level}: hop {cfg.hop_lengths[level]:>3}, {z.shape[1]:>5} codes ({used} distinct), "
            f"SNR {snr:5.1f} dB -> {out / f'recon_level{level}.wav'}"
        )
    write_npz(out / "codes.npz", {f"level_{level}": np.asarray(z) for level, z in enumerate(codes)})
    print(f"codes -> {out / 'codes.npz'}")


def demo_song(seconds: float, seed: int, sample_rate: int, hop: int) -> np.ndarray:
    """`[1, n, 1]` float32: song `seed` of a synthetic set (`synth`), n a multiple of `hop`."""
    from jukebox_jax.synth.dataset import SynthConfig, make_song

    x = make_song(SynthConfig(songs=1, seconds=seconds, seed=seed, sample_rate=sample_rate, vocals=False), 0)[0]
    n = max(hop, len(x) // hop * hop)
    return np.pad(x, (0, max(0, n - len(x))))[:n].astype(np.float32)[None, :, None]


def convert(sources: Sequence[str], out: Path, config: str | None, dtype: str | None) -> None:
    try:
        from convert import convert_checkpoint
    except ImportError as e:
        raise ConversionError(
            f"converting needs PyTorch: pip install torch==2.13.0 (its CPU wheel; an unpinned torch pulls CUDA), then "
            f"pip install -e '.[convert]' in the repository ({e})"
        ) from None
    checkpoint.check_target(out)  # before a conversion that may take minutes
    try:
        jb = convert_checkpoint(*sources, config=config, dtype=dtype)
    except ConversionError as e:  # it names `convert_checkpoint`'s argument
        raise ConversionError(str(e).replace("config= ", "--config ")) from None
    replacing = (out / checkpoint.CONFIG).is_file()
    jb.save(out)
    parts = (["vqvae"] if jb.config.vqvae else []) + [f"prior_level_{p.level}" for p in jb.config.priors]
    replaced = " (replacing the checkpoint that was there)" if replacing else ""
    print(f"converted {', '.join(parts)}{f' (priors in {dtype})' if dtype and jb.config.priors else ''} -> {out}{replaced}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jukebox-jax", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    what = "a synthetic song's round trip through the default model's VQ-VAE"
    demo_parser = sub.add_parser("demo", help=what, description=what)
    demo_parser.add_argument("--out", type=cli_sample.folder_to_write, default=DEMO_OUT, help="output folder (default: %(default)s)")
    demo_parser.add_argument(
        "--seconds", type=cli_sample.positive_float, default=DEMO_SECONDS, help="length of the synthetic song (default: %(default)g)"
    )
    demo_parser.add_argument("--seed", type=cli_sample.seed, default=0, help="which synthetic song (default: %(default)s)")
    convert_parser = sub.add_parser("convert", help="convert PyTorch Jukebox weights (original files or an HF directory)")
    convert_parser.add_argument("sources", nargs="+", help="vqvae.pth.tar / prior_level_*.pth.tar files, or one HF model directory")
    convert_parser.add_argument("-o", "--out", type=cli_sample.folder_to_write, required=True, help="folder for the jukebox-jax checkpoint")
    convert_parser.add_argument(
        "--config",
        help="a preset giving the structure instead of the files' own: a whole model (e.g. 5b_lyrics; the parts the "
        "files hold are converted) or one part (vqvae, upsampler_level_1, ...)",
    )
    convert_parser.add_argument(
        "--dtype",
        choices=[d.value for d in DType],
        help="the priors' weight and compute dtype (default: float32; the VQ-VAE and the upsamplers' conditioners stay "
        "float32); each weight is cast once, from the file's dtype",
    )
    sample = sub.add_parser("sample", help="windowed multi-level sampling (resumable)", description=cli_sample.DESCRIPTION)
    cli_sample.add_arguments(sample)
    data_parsers = cli_data.add_arguments(sub.add_parser("data", help="make datasets (`data synth`: the synthetic music)"))
    train = sub.add_parser("train", help="train or fine-tune a VQ-VAE or a prior (resumable)", description=cli_train.__doc__.split("\n\n")[0])
    train_parsers = cli_train.add_arguments(train)
    args = parser.parse_args(argv)
    if args.command == "demo":
        shortest, longest = SONG_SECONDS
        if not shortest <= args.seconds <= longest:
            demo_parser.error(f"--seconds {args.seconds:g}: the demo's song takes {shortest:g} to {longest:g} s")
        _reporting(demo_parser, lambda a: demo(a.out, a.seconds, a.seed), args)
    elif args.command == "sample":
        _reporting(sample, cli_sample.run, args, "lower --max-batch-size (the same keys: a near-tie draw may flip) or sample with --dtype bfloat16")
    elif args.command == "data":
        _reporting(data_parsers[args.data_command], cli_data.run, args)
    elif args.command == "train":
        if args.part == "prior":
            less = "a lower --batch-size" + ("" if args.remat == "full" else ", or --remat full")
        else:
            less = "a lower --batch-size or --seconds"
        again = "; a run resumes only with the settings it began with: train again into another --out (its checkpoints stay)"
        _reporting(train_parsers[args.part], cli_train.run, args, f"train with {less}{again}", resumes=False)
    else:
        _reporting(convert_parser, lambda a: convert(a.sources, a.out, a.config, a.dtype), args)


def _reporting(
    parser: argparse.ArgumentParser,
    command: Callable[[argparse.Namespace], None],
    args: argparse.Namespace,
    less_memory: str = "",
    *,
    resumes: bool = True,
) -> None:
    """Runs a long command: a bad argument is a usage error naming the problem; a file or folder that
    cannot be used (a damaged checkpoint, another job's folder) the same one line, without the
    usage; a failed read or write names the file, and running out of device memory says so with
    `less_memory`, the command's way to need less (what the command had already written stays,
    and where `resumes`, `--resume` with the new arguments goes on from it). All exit with status 2 but a failed write (1) and Ctrl-C
    (130, a line rather than a traceback)."""
    try:
        command(args)
    except KeyboardInterrupt:  # outside the loops that say how to go on (e.g. while a model loads)
        raise Interrupted(f"{parser.prog}: interrupted") from None
    except (InputError, ConfigError) as e:
        parser.error(str(e))
    except JukeboxError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    except OSError as e:
        resume = " with --resume" if hasattr(args, "resume") else ""
        again = f"; free some space, then the same command{resume} goes on" if full_disk(e) else ""
        sys.exit(f"{parser.prog}: {e.filename or args.out}: {e.strerror or e}{again}")
    except Exception as e:
        import jax  # loaded by the command already

        if not isinstance(e, jax.errors.JaxRuntimeError) or "RESOURCE_EXHAUSTED" not in str(e):
            raise
        first = str(e).strip().splitlines()[0]
        resume = "; what was written stays, and --resume goes on from it" if resumes and hasattr(args, "resume") else ""
        parser.exit(2, f"{parser.prog}: error: out of memory ({first}): {less_memory or 'ask for less'}{resume}\n")


def package_version() -> str:
    """The installed distribution's version."""
    from importlib import metadata

    try:
        return metadata.version("jukebox-jax")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def program() -> None:
    """The `jukebox-jax` console script: `main` on `sys.argv`. After Ctrl-C it prints what
    stays and how to go on, then leaves at once (`os._exit`): Python's teardown, with XLA's
    threads stopped mid-computation, could crash (SIGSEGV after the message, half the time)."""
    try:
        main()
    except Interrupted as e:
        print(f"\n{e.message}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(e.code)


if __name__ == "__main__":
    program()
