"""The `jukebox-jax` command line: `demo` (the main job on a built-in model) and `convert`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jukebox_jax.io import write_npz, write_wav

DEMO_SECONDS = 2.0


def demo(out: Path, seconds: float, seed: int) -> None:
    """Encodes a test signal to codes at every level and decodes each level back to audio.

    There is no trained default model yet (no weights can ship with the package), so this
    runs the tiny VQ-VAE structure with random weights: the round trip exercises the whole
    path, but the reconstructions are noise-like, not music."""
    import jax

    from jukebox_jax import Jukebox, JukeboxConfig, preset
    from jukebox_jax.vqvae import VQVAE, codebook_from_samples

    cfg = preset("tiny_vqvae")
    hop = cfg.hop_lengths[-1]
    n = max(hop, int(seconds * cfg.sample_rate) // hop * hop)
    audio = test_signal(n, cfg.sample_rate, seed)  # [1, n, 1]

    init_key, *code_keys = jax.random.split(jax.random.key(seed), 1 + cfg.levels)
    jb = Jukebox.init(JukeboxConfig(vqvae=cfg), init_key)
    params = dict(jb.params["vqvae"])
    for level, key in enumerate(code_keys):
        x = VQVAE(cfg).apply({"params": params}, audio, level, method=VQVAE.encode_continuous)
        params[f"codebook_{level}"] = codebook_from_samples(x, cfg.l_bins, key)
    jb = Jukebox(jb.config, {"vqvae": params})

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


def test_signal(n: int, sample_rate: int, seed: int) -> np.ndarray:
    """`[1, n, 1]` float32: four sines (110-3300 Hz) and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    x = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(110, 3300, 4)) / 4 + 0.02 * rng.standard_normal(n)
    return np.clip(x, -1, 1).astype(np.float32)[None, :, None]


def convert(sources: Sequence[str], out: Path, config: str | None) -> None:
    try:
        import convert as converter
    except ImportError as e:
        sys.exit(f"jukebox-jax convert needs PyTorch: pip install 'jukebox-jax[convert]' ({e})")
    try:
        jb = converter.convert_checkpoint(*sources, config=config)
    except converter.ConversionError as e:
        sys.exit(f"jukebox-jax convert: {e}")
    jb.save(out)
    parts = (["vqvae"] if jb.config.vqvae else []) + [f"prior_level_{p.level}" for p in jb.config.priors]
    print(f"converted {', '.join(parts)} -> {out}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jukebox-jax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="audio round trip through a built-in VQ-VAE (random weights)")
    p.add_argument("--out", type=Path, default=Path("jukebox_demo"), help="output folder (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=DEMO_SECONDS, help="length of the test signal")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("convert", help="convert PyTorch Jukebox weights (original files or an HF directory)")
    p.add_argument("sources", nargs="+", help="vqvae.pth.tar / prior_level_*.pth.tar files, or one HF model directory")
    p.add_argument("-o", "--out", type=Path, required=True, help="folder for the jukebox-jax checkpoint")
    p.add_argument("--config", help="preset name giving the structure (e.g. 5b_lyrics), instead of the files' own")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.seconds <= 0:
            parser.error("--seconds must be positive")
        demo(args.out, args.seconds, args.seed)
    else:
        convert(args.sources, args.out, args.config)


if __name__ == "__main__":
    main()
