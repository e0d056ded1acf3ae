"""Where the default's songs leave the scale: the top prior's pitch (benchmarks/RESULTS.md, "Where
the scale is lost").

    python benchmarks/top_prior_pitch.py --work /tmp/jukebox_default [--model DIR] [--data DIR] [--songs 8]

Takes the first 512 top-level tokens (4.1 s) of the last `--songs` held-out songs the priors
learnt (WORK/data_c, or --data; the split training used) and decodes, at the top level alone:
  - real: the songs' own codes;
  - teacher-forced: every token drawn from the top prior given the real codes before it;
  - primed: the first half real, the second half sampled from the prior;
  - free: sampled from nothing (the songs' artist and genre labels);
and measures each on its second half (2 s): the scale share (best key), the share on the song's
own scale (its metadata's key), and the in-tune share. Draws at temperature 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np
from default_model import PRIOR_SONGS, training_folder  # a sibling script (benchmarks/ is on the path when run)

from jukebox_jax import Jukebox, audio, default
from jukebox_jax.synth import measures
from jukebox_jax.synth.score import KEY_NAMES, Scale
from jukebox_jax.train import data

SR = 16000
LEVEL = 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=training_folder, required=True, help="the folder scripts/train_default.sh trained in")
    ap.add_argument("--model", default=str(default.PATH), help="the model to measure (default: the shipped default)")
    ap.add_argument("--data", type=Path, help=f"the songs the top prior trained on (default: WORK/{PRIOR_SONGS})")
    ap.add_argument("--songs", type=int, default=8, help="held-out songs (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    jb = Jukebox.load(args.model)
    cfg = jb.config.prior(LEVEL)
    hop = cfg.raw_to_tokens
    songs_folder = args.data or args.work / PRIOR_SONGS
    meta = json.loads((songs_folder / "metadata.json").read_text())["songs"]
    _, held = data.audio_folder(songs_folder).split(0.1)
    songs = [s.name for s in held[-args.songs :]]
    x = np.stack([audio.load(songs_folder / name, SR)[: cfg.n_ctx * hop] for name in songs])  # [b, t, 1]
    real = jb.encode(x, start_level=LEVEL, end_level=LEVEL + 1)[0]  # [b, n_ctx]
    labels = np.concatenate(
        [
            jb.labels(LEVEL, total_seconds=meta[n]["seconds"], artist=meta[n]["artist"], genre=meta[n]["genre"])
            for n in songs
        ]
    )
    half = cfg.n_ctx // 2
    key = jax.random.key(args.seed)
    logits = jb.prior_logits(LEVEL, real, labels)  # [b, n_ctx, bins]
    codes = {
        "real": real,
        "teacher-forced": jax.random.categorical(jax.random.fold_in(key, 0), logits),
        "primed": jb.sample(LEVEL, jax.random.fold_in(key, 1), labels, cfg.n_ctx, prompt=real[:, :half]),
        "free": jb.sample(LEVEL, jax.random.fold_in(key, 2), labels, cfg.n_ctx),
    }
    report = {}
    for name, z in codes.items():
        second = np.asarray(jb.decode([z], start_level=LEVEL))[:, half * hop :, 0]  # [b, t / 2]
        hists = [measures.chroma(a, SR) for a in second]  # [12] each
        masks = [measures.scale_mask(Scale[meta[n]["scale"].upper()], KEY_NAMES.index(meta[n]["key"])) for n in songs]
        report[name] = {
            "scale_share": float(np.mean([measures.best_scale(h)[2] for h in hists])),
            "own_scale_share": float(np.mean([h @ m for h, m in zip(hists, masks)])),
            "in_tune_share": float(np.mean([measures.in_tune_share(a, SR) for a in second])),
        }
        print(f"{name:15s}", "  ".join(f"{k} {v:.3f}" for k, v in report[name].items()))
    print(json.dumps({"songs": songs, "measures": report}, indent=1))


if __name__ == "__main__":
    main()
