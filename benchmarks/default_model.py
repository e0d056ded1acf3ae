"""The shipped default model, measured (benchmarks/RESULTS.md, "The default model").

    python benchmarks/default_model.py --work /tmp/jukebox_default [--model DIR] [--out benchmarks]

Reads the run folders `scripts/train_default.sh` wrote into WORK (data, data_c, vqvae, top, up1,
up0; given a VQ-VAE, the script makes no data or vqvae: the curves then leave the VQ-VAE out,
and it is measured on data_c's held-out songs) and reports, on the held-out songs (the split
training used):
  - training curves (PNG: `default_model_curves.png`): loss per step and held-out loss;
  - the VQ-VAE per level: reconstruction SNR (dB), spectral convergence, codebook usage;
  - each prior's held-out bits/token (the run's last evaluation) against the uniform
    log2(bins) and the unigram of the training codes;
  - the music measures (`synth.measures`) of the default's samples, of the priors' training
    songs (data_c) and of a random-weight model of the same structure, and the time to sample them.
Needs matplotlib (`pip install matplotlib`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from jukebox_jax import Jukebox, audio, default
from jukebox_jax.synth import measures
from jukebox_jax.train import data
from jukebox_jax.train.spectral import spectral_convergence

RUNS = {"vqvae": "VQ-VAE", "top": "top prior (level 2)", "up1": "upsampler level 1", "up0": "upsampler level 0"}
LEVEL_OF = {"top": 2, "up1": 1, "up0": 0}
SECONDS = 10.0
PRIOR_SONGS = "data_c"  # the songs the priors learnt, in one key (scripts/train_default.sh); the VQ-VAE's: data


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def plot_curves(work: Path, out: Path) -> None:
    """Each run's curves that WORK holds (no VQ-VAE run where the script was given one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {run: title for run, title in RUNS.items() if (work / run / "metrics.jsonl").is_file()}
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.6))
    for ax, (run, title) in zip(axes, runs.items()):
        r = rows(work / run)
        key = "recons_loss" if run == "vqvae" else "gen_loss"
        train = [(x["step"], x[key]) for x in r if key in x]
        held = [(x["step"], x["eval"][key]) for x in r if "eval" in x]
        steps, values = zip(*train)
        smooth = np.convolve(values, np.ones(20) / 20, mode="valid")
        ax.plot(steps, values, alpha=0.25, color="C0")
        ax.plot(steps[19:], smooth, color="C0", label="train (20-step mean)")
        if held:
            ax.plot(*zip(*held), "o-", color="C1", label="held out")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel("reconstruction loss" if run == "vqvae" else "bits / token")
        ax.set_yscale("log" if run == "vqvae" else "linear")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def vqvae_report(jb: Jukebox, folder: data.Folder, held: tuple[data.Song, ...]) -> list[dict]:
    cfg = jb.config.vqvae
    top = cfg.hop_lengths[-1]
    songs = [audio.load(folder.root / s.name, cfg.sample_rate) for s in held]
    songs = [x[: len(x) // top * top][None] for x in songs]  # [1, t, 1]
    out = []
    for level in range(cfg.levels):
        snr, sc, codes = [], [], []
        for x in songs:
            z = jb.encode(x, start_level=level, end_level=level + 1)[0]
            y = np.asarray(jb.decode([z], start_level=level))
            snr.append(10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2)))
            sc.append(float(spectral_convergence(x, y)))  # [1, t, 1] each
            codes.append(np.asarray(z).ravel())
        counts = np.bincount(np.concatenate(codes), minlength=cfg.l_bins)
        p = counts[counts > 0] / counts.sum()
        out.append(
            {
                "level": level,
                "snr_db": float(np.mean(snr)),
                "spectral_convergence": float(np.mean(sc)),
                "codes_used": int((counts > 0).sum()),
                "perplexity": float(np.exp(-(p * np.log(p)).sum())),
            }
        )
    return out


def prior_report(work: Path, bins: int) -> list[dict]:
    folder = data.codes_folder(work / "top" / "codes")
    train, held = folder.split(0.1)
    out = []
    for run, level in LEVEL_OF.items():
        evals = [x for x in rows(work / run) if "eval" in x]
        z_train = np.concatenate([np.load(folder.root / s.name)[f"level_{level}"].ravel() for s in train])
        z_held = np.concatenate([np.load(folder.root / s.name)[f"level_{level}"].ravel() for s in held])
        p = (np.bincount(z_train, minlength=bins) + 1) / (len(z_train) + bins)  # add-one unigram
        out.append(
            {
                "prior": RUNS[run],
                "held_out_bits": evals[-1]["eval"]["gen_loss"] if evals else None,
                "train_bits_last_50": float(np.mean([x["gen_loss"] for x in rows(work / run) if "gen_loss" in x][-50:])),
                "unigram_bits": float(-np.log2(p[z_held]).mean()),
                "uniform_bits": float(np.log2(bins)),
            }
        )
    return out


def sample(model: str, out: Path, artist: str, genre: str, seed: int) -> tuple[np.ndarray, float]:
    """One song of SECONDS from the CLI (the README's first command), and its wall time."""
    command = [sys.executable, "-m", "jukebox_jax.cli", "sample", "--model", model, "--seconds", str(SECONDS), "--song-seconds", "20"]
    command += ["--artist", artist, "--genre", genre, "--seed", str(seed), "--out", str(out)]
    t = time.time()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.time() - t
    wav = min((out / "level_0").glob("*.wav"))
    return audio.load(wav, 16000)[:, 0], wall


def training_folder(value: str) -> Path:
    """argparse type: a folder `scripts/train_default.sh WORK` trained in (its songs and runs)."""
    work = Path(value)
    needed = (f"{PRIOR_SONGS}/metadata.json", *(f"{run}/metrics.jsonl" for run in LEVEL_OF))
    if missing := [name for name in needed if not (work / name).is_file()]:
        raise argparse.ArgumentTypeError(
            f"{work} lacks {', '.join(missing)}: give the folder scripts/train_default.sh trained in (run it first)"
        )
    return work


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=training_folder, required=True, help="the folder scripts/train_default.sh trained in")
    ap.add_argument("--model", default=str(default.PATH), help="the model to measure (default: the shipped default)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--songs", type=int, default=2, help="samples per model (default: %(default)s)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plot_curves(args.work, args.out / "default_model_curves.png")
    jb = Jukebox.load(args.model)
    songs = data.audio_folder(args.work / PRIOR_SONGS)
    folder = data.audio_folder(args.work / "data") if (args.work / "data").is_dir() else songs  # the VQ-VAE's songs
    _, held = folder.split(0.1)
    report = {"vqvae": vqvae_report(jb, folder, held), "priors": prior_report(args.work, jb.config.vqvae.l_bins)}
    artists, genres = jb.config.prior(2).labels.artists, jb.config.prior(2).labels.genres
    tmp = args.work / "report_samples"
    shutil.rmtree(tmp, ignore_errors=True)  # a rerun samples afresh
    ours, random, walls = [], [], []
    for i in range(args.songs):
        x, wall = sample(args.model, tmp / f"default_{i}", artists[i % len(artists)], genres[i % len(genres)], i)
        ours.append(x)
        walls.append(wall)
        random.append(sample("small", tmp / f"random_{i}", "unknown", "unknown", i)[0])
    train, _ = songs.split(0.1)
    reference = [audio.load(songs.root / s.name, 16000)[:, 0] for s in train[:: max(1, len(train) // 24)]]
    got = measures.compare(ours, reference, 16000)
    report["measures"] = {
        "default": got["samples"],
        "random_weights": measures.compare(random, reference, 16000)["samples"],
        "training_songs": got["reference"],
    }
    report["sample_seconds"] = {"audio": SECONDS, "wall_per_song": walls}
    (args.out / "default_model.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
