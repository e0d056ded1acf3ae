"""The `jukebox-jax data` command: `data synth` writes the synthetic music dataset
(`jukebox_jax.synth`; folder layout in `jukebox_jax.synth.dataset`)."""

from __future__ import annotations

import argparse

from jukebox_jax.cli_sample import folder_to_write, positive_float, positive_int, seed
from jukebox_jax.errors import InputError
from jukebox_jax.synth.dataset import MAX_SONGS, SAMPLE_RATES, SCALE_NAMES
from jukebox_jax.synth.score import GENRES, KEY_NAMES, Comping

# Below it, FM sidebands of the highest notes alias (a 1.5 kHz bell: in-tune share 0.77 at 8 kHz).
MIN_IN_TUNE_RATE = 16000
SYNTH_DESCRIPTION = (
    "Write a synthetic music dataset to --out: songs with a key, chords, a melody on the scale, synthesised instruments "
    "and drums on a tempo grid, by 4 artists in 3 genres, with lyrics (sung by espeak-ng when it is installed), and "
    "metadata.json. Deterministic from --seed; rerunning the same command resumes an interrupted run."
)


def add_arguments(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The `data` command's subcommands and their options; their parsers by name."""
    sub = p.add_subparsers(dest="data_command", required=True)
    synth = sub.add_parser("synth", help="write the synthetic music dataset", description=SYNTH_DESCRIPTION)
    synth.add_argument("--out", type=folder_to_write, required=True, help="dataset folder (created; an interrupted run resumes)")
    synth.add_argument("--songs", type=positive_int, default=200, help=f"number of songs, at most {MAX_SONGS} (default: %(default)s)")
    synth.add_argument(
        "--seconds", type=positive_float, default=20.0, help="length of each song (default: %(default)g)"
    )
    synth.add_argument("--seed", type=seed, default=0, help="seed of the whole dataset (default: %(default)s)")
    synth.add_argument(
        "--sample-rate",
        type=positive_int,
        default=16000,
        help=f"Hz, {SAMPLE_RATES[0]} to {SAMPLE_RATES[1]}; {MIN_IN_TUNE_RATE} or more for every instrument in tune "
        "(default: %(default)s)",
    )
    synth.add_argument(
        "--comping",
        choices=[c.value for c in Comping],
        default=Comping.BAR.value,
        help="bar: chords held a bar, bass on beats 1 and 3; beat: chord and bass struck on every beat, a beat a "
        "coarse VQ-VAE keeps (the default model's songs; benchmarks/RESULTS.md) (default: %(default)s)",
    )
    synth.add_argument(
        "--key", choices=KEY_NAMES, help="every song in this key: the same songs, transposed (default: each song its own)"
    )
    synth.add_argument(
        "--scale",
        choices=SCALE_NAMES,
        help="every song in this scale (default: each song one of its genre's: "
        + "; ".join(f"{g.name} {' or '.join(s.name.lower() for s in g.scales)}" for g in GENRES)
        + ")",
    )
    synth.add_argument(
        "--vocals",
        action=argparse.BooleanOptionalAction,
        help="sing the lyrics with espeak-ng; --vocals without it is an error (default: on where espeak-ng is "
        "installed, else instrumental songs)",
    )
    return {"synth": synth}


def run(args: argparse.Namespace) -> None:
    """`data synth`: prints what it makes, writes the dataset, prints where."""
    from tqdm import tqdm

    from jukebox_jax.synth import vocals
    from jukebox_jax.synth.dataset import METADATA_FILE, SynthConfig, check_folder, generate, song_path

    sing = args.vocals is not False and vocals.available()
    if args.vocals and not sing:
        raise InputError("--vocals: espeak-ng is not installed (apt-get install espeak-ng); or leave out --vocals for instrumental songs")
    if args.vocals is None and not sing:
        print(
            "espeak-ng is not installed (apt-get install espeak-ng), so the songs are instrumental (their lyrics are in the metadata)"
        )
    if args.sample_rate < MIN_IN_TUNE_RATE:
        print(
            f"note: below {MIN_IN_TUNE_RATE} Hz the FM instruments' high notes (bell, brass, FM bass) alias: their "
            "overtones fold back off the tempered pitches, and those songs are less in tune"
        )
    config = SynthConfig(args.songs, args.seconds, args.seed, args.sample_rate, sing, Comping(args.comping), args.key, args.scale)
    check_folder(args.out, config)
    found = sum((args.out / song_path(i)).exists() for i in range(args.songs))
    if found:
        print(f"resuming: {found} of {args.songs} songs are already in {args.out}")
    metadata = generate(args.out, config, lambda it: tqdm(it, desc="songs", unit="song"))
    kind = "with vocals" if sing else "instrumental"
    print(
        f"{len(metadata['songs'])} songs of {args.seconds:g} s at {args.sample_rate} Hz ({kind}) -> {args.out / METADATA_FILE}"
    )
