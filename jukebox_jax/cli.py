"""The `jukebox-jax` command line: `demo` (the main job on a built-in model), `convert` and `sample`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jukebox_jax.audio import test_signal
from jukebox_jax.io import write_npz, write_wav
from jukebox_jax.jukebox import Jukebox

DEMO_SECONDS = 2.0


def demo(out: Path, seconds: float, seed: int) -> None:
    """Encodes a test signal to codes at every level and decodes each level back to audio.

    There is no trained default model yet (no weights can ship with the package), so this
    runs the tiny VQ-VAE structure with random weights: the round trip exercises the whole
    path, but the reconstructions are noise-like, not music."""
    from jukebox_jax import preset

    cfg = preset("tiny_vqvae")
    hop = cfg.hop_lengths[-1]
    n = max(hop, int(seconds * cfg.sample_rate) // hop * hop)
    audio = test_signal(n, cfg.sample_rate, seed)  # [1, n, 1]
    jb = demo_model(audio, seed)
    codes = jb.encode(audio)
    out.mkdir(parents=True, exist_ok=True)
    write_wav(out / "input.wav", audio[0], cfg.sample_rate)
    print(
        "jukebox-jax demo: no trained model ships with the package, so this is the tiny VQ-VAE\n"
        f"structure with RANDOM weights (seed {seed}): the round trip is real, the sound is not music."
    )
    print(f"input: {n} samples ({n / cfg.sample_rate:.2f} s at {cfg.sample_rate} Hz) -> {out / 'input.wav'}")
    for level, z in enumerate(codes):
        recon = np.asarray(jb.decode([z], start_level=level))[0]
        write_wav(out / f"recon_level{level}.wav", recon, cfg.sample_rate)
        used = len(np.unique(np.asarray(z)))
        print(f"level {level}: hop {cfg.hop_lengths[level]:>3}, {z.shape[1]:>5} codes ({used} distinct) -> {out / f'recon_level{level}.wav'}")
    write_npz(out / "codes.npz", {f"level_{level}": np.asarray(z) for level, z in enumerate(codes)})
    print(f"codes -> {out / 'codes.npz'}")


def demo_model(audio: np.ndarray, seed: int) -> Jukebox:
    """The demo's `Jukebox`: the tiny VQ-VAE structure with random weights from `seed`, each
    level's codebook drawn from its encoder outputs on `audio` (so codes spread over it)."""
    import jax

    from jukebox_jax import Jukebox, JukeboxConfig, preset
    from jukebox_jax.vqvae import VQVAE, codebook_from_samples

    cfg = preset("tiny_vqvae")
    init_key, *code_keys = jax.random.split(jax.random.key(seed), 1 + cfg.levels)
    params = dict(Jukebox.init(JukeboxConfig(vqvae=cfg), init_key).params["vqvae"])
    for level, key in enumerate(code_keys):
        x = VQVAE(cfg).apply({"params": params}, audio, level, method=VQVAE.encode_continuous)
        params[f"codebook_{level}"] = codebook_from_samples(x, cfg.l_bins, key)
    return Jukebox(JukeboxConfig(vqvae=cfg), {"vqvae": params})


def _checkpoint_folder(value: str) -> Path:
    """`convert -o`: a folder to write, so neither it nor any folder above it may be a file."""
    path = Path(value)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise argparse.ArgumentTypeError(f"{p} is a file; give a folder for the converted checkpoint")
    return path


def convert(sources: Sequence[str], out: Path, config: str | None) -> None:
    try:
        from convert import ConversionError, convert_checkpoint
    except ImportError as e:
        sys.exit(f"jukebox-jax convert needs PyTorch: pip install 'jukebox-jax[convert]' ({e})")
    try:
        jb = convert_checkpoint(*sources, config=config)
    except ConversionError as e:
        sys.exit(f"jukebox-jax convert: {e}")
    try:
        jb.save(out)
    except OSError as e:
        sys.exit(f"jukebox-jax convert: cannot write {out}: {e}")
    parts = (["vqvae"] if jb.config.vqvae else []) + [f"prior_level_{p.level}" for p in jb.config.priors]
    print(f"converted {', '.join(parts)} -> {out}")


MODES = ("ancestral", "continue", "upsample", "primed")


def sample(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Windowed multi-level sampling into `args.out`, resumable (see `generation.job`)."""
    import jax
    from tqdm import tqdm

    from jukebox_jax import Jukebox, JukeboxConfig
    from jukebox_jax.config import MODEL_PRESETS
    from jukebox_jax.generation.job import SampleRequest, run_job
    from jukebox_jax.generation.levels import LevelSettings
    from jukebox_jax.generation.windows import get_starts
    from jukebox_jax.sampling import sampling_method
    from jukebox_jax.tokenizer import song_labels

    if args.lyrics is not None and args.lyrics_file:
        parser.error("give --lyrics or --lyrics-file, not both")
    lyrics = args.lyrics or ""
    if args.lyrics_file:
        try:
            lyrics = Path(args.lyrics_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            parser.error(f"--lyrics-file: {e}")
    if args.mode in ("continue", "upsample") and not args.codes:
        parser.error(f"--mode {args.mode} needs --codes (a codes.npz of an earlier run)")
    if args.mode == "primed" and not args.prompt_audio:
        parser.error("--mode primed needs --prompt-audio")
    if args.model in MODEL_PRESETS:
        jb = Jukebox.init(JukeboxConfig.from_preset(args.model), jax.random.key(args.seed))
        print(f"--model {args.model}: a preset with RANDOM weights (seed {args.seed}); the samples are not music")
    elif Path(args.model).is_dir():
        jb = Jukebox.load(args.model)
    else:
        parser.error(f"--model {args.model!r} is neither a converted checkpoint folder nor a preset ({', '.join(MODEL_PRESETS)})")
    if jb.config.vqvae is None or not jb.config.priors:
        parser.error(f"{args.model} needs a VQ-VAE and priors to sample")
    have = [p.level for p in jb.config.priors]
    levels = tuple(args.levels or have)
    if not set(levels) <= set(have):
        parser.error(f"--levels {list(levels)}: the model has priors for levels {have}")
    vq = jb.config.vqvae
    top = max(levels)
    hop = jb.config.prior(top).raw_to_tokens
    sample_length = int(args.seconds * vq.sample_rate) // hop * hop
    if sample_length <= 0:
        parser.error(f"--seconds {args.seconds} is shorter than one top-level token ({hop} samples)")

    start = [np.zeros((args.n_samples, 0), np.int64) for _ in range(vq.levels)]
    if args.mode in ("continue", "upsample"):
        saved = np.load(args.codes)
        start = [saved[f"level_{level}"] if f"level_{level}" in saved else start[level] for level in range(vq.levels)]
        if args.mode == "upsample":
            if vq.levels - 1 in levels:
                parser.error("--mode upsample samples the levels below the top: give --levels without the top level")
            start = [np.zeros((len(start[-1]), 0), np.int64)] * (vq.levels - 1) + [start[-1]]
    elif args.mode == "primed":
        start = [np.asarray(z, np.int64) for z in jb.encode(load_prompt(args.prompt_audio, args.prompt_seconds, args.n_samples, vq, parser))]
    n = len(start[-1]) if args.mode in ("continue", "upsample") else args.n_samples
    song_length = max(sample_length, int(args.song_seconds * vq.sample_rate))
    try:
        songs = {level: (song_labels(jb.config.prior(level), song_length, args.artist, args.genre, lyrics),) * n for level in levels}
    except (ValueError, ImportError) as e:
        parser.error(str(e))
    try:
        method = sampling_method(args.temperature, args.top_k, args.top_p)
    except ValueError as e:
        parser.error(f"--temperature/--top-k/--top-p: {e}")
    settings = {
        level: LevelSettings(method, hop_fraction=0.125 if level == vq.levels - 1 else 0.5, max_batch_size=args.max_batch_size)
        for level in levels
    }
    request = SampleRequest(levels, sample_length, args.seed, songs, settings)
    n_windows = 0
    for level in levels:
        cfg = jb.config.prior(level)
        total = sample_length // cfg.raw_to_tokens
        n_windows += len(get_starts(total, cfg.n_ctx, int(settings[level].hop_fraction * cfg.n_ctx))) if total >= cfg.n_ctx else 1
    with tqdm(total=n_windows, unit="window", desc="sampling") as bar, tqdm(unit="token", desc="window", leave=False) as tokens:
        def progress(level: int, window: int, zs) -> None:
            bar.set_postfix(level=level, start=window)
            bar.update()

        def token_progress(done: int, total: int) -> None:
            if done <= tokens.n or tokens.total != total:  # a new window (or batch chunk): counts restart
                tokens.reset(total)
            tokens.update(done - tokens.n)

        try:
            zs = run_job(jb, args.out, request, start, resume=args.resume, on_window=progress, on_tokens=token_progress)
        except (FileExistsError, ValueError) as e:
            sys.exit(f"jukebox-jax sample: {e}")
    print(f"codes {[z.shape for z in zs]} -> {args.out / 'codes.npz'}; audio per level in {args.out}/level_*/")


def load_prompt(path: str, seconds: float, n: int, vq, parser) -> np.ndarray:
    """`[n, T, 1]` float32 mono prompt at the model's rate, T a multiple of the top hop."""
    import soundfile

    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if rate != vq.sample_rate:
        parser.error(f"--prompt-audio {path} is at {rate} Hz; the model needs {vq.sample_rate} Hz (resample it first)")
    hop = vq.hop_lengths[-1]
    length = min(int(seconds * rate), len(audio)) // hop * hop
    if length == 0:
        parser.error(f"--prompt-audio {path}: need at least {hop} samples of prompt")
    mono = audio[:length].mean(axis=1, keepdims=True)
    return np.broadcast_to(mono, (n, length, 1)).copy()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jukebox-jax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="audio round trip through a built-in VQ-VAE (random weights)")
    p.add_argument("--out", type=Path, default=Path("jukebox_demo"), help="output folder (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=DEMO_SECONDS, help="length of the test signal")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("convert", help="convert PyTorch Jukebox weights (original files or an HF directory)")
    p.add_argument("sources", nargs="+", help="vqvae.pth.tar / prior_level_*.pth.tar files, or one HF model directory")
    p.add_argument("-o", "--out", type=_checkpoint_folder, required=True, help="folder for the jukebox-jax checkpoint")
    p.add_argument(
        "--config",
        help="a preset giving the structure instead of the files' own: a whole model (e.g. 5b_lyrics; the parts the "
        "files hold are converted) or one part (vqvae, upsampler_level_1, ...)",
    )
    p = sub.add_parser("sample", help="windowed multi-level sampling (resumable)")
    p.add_argument("--model", required=True, help="a converted checkpoint folder, or a model preset (random weights)")
    p.add_argument("--mode", choices=MODES, default="ancestral")
    p.add_argument("--artist", default="unknown", help="artist name as in the id tables, e.g. 'Alan Jackson' (default: %(default)s)")
    p.add_argument("--genre", default="unknown", help="genre, e.g. 'Country Rock' (a bag of words for the v2 label set)")
    p.add_argument("--lyrics", help="the song's lyrics (priors with lyrics pick each window's part)")
    p.add_argument("--lyrics-file", help="the song's lyrics from a UTF-8 text file")
    p.add_argument("--seconds", type=float, default=20.0, help="length to sample")
    p.add_argument("--song-seconds", type=float, default=240.0, help="the song length the timing labels describe")
    p.add_argument("--n-samples", type=int, default=1)
    p.add_argument("--levels", type=int, nargs="*", help="levels to sample (default: every prior of the model)")
    p.add_argument("--temperature", type=float, default=0.99)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=0.0)
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--prompt-audio", help="wav/flac to continue (--mode primed)")
    p.add_argument("--prompt-seconds", type=float, default=12.0)
    p.add_argument("--codes", help="codes.npz of an earlier run (--mode continue/upsample)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("jukebox_samples"))
    p.add_argument("--resume", action="store_true", help="continue the job already in --out")
    args = parser.parse_args(argv)
    if args.command in ("demo", "sample") and args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.command == "demo":
        demo(args.out, args.seconds, args.seed)
    elif args.command == "sample":
        if args.n_samples < 1 or args.max_batch_size < 1:
            parser.error("--n-samples and --max-batch-size must be at least 1")
        sample(args, parser)
    else:
        convert(args.sources, args.out, args.config)


if __name__ == "__main__":
    main()
