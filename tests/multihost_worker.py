"""One process of `test_multihost.py` (not collected by the suite): joins a 2-process JAX
cluster on this machine (CPU collectives over gloo), loads a checkpoint into a mesh over both
processes' devices (model=4, then data=2,model=2), samples greedily on each and runs a
sampling job on the second, saves the model split over both processes (model=4) to SAVED (and, refused, over a file
beside it), and
prints its results as one JSON line.

    python tests/multihost_worker.py PROCESS_ID PORT CHECKPOINT OUT_FOLDER SAVED
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np

BATCH, N_TOKENS = 4, 10  # as test_multihost.py's


def main(process_id: int, port: int, checkpoint: Path, out: Path, saved: Path) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id)
    from jukebox_jax import Jukebox, sharding
    from jukebox_jax.errors import CheckpointError
    from jukebox_jax.generation import LevelSettings, SampleRequest, run_job
    from jukebox_jax.sampling import Greedy
    from jukebox_jax.tokenizer import song_labels

    tokens, held, refused = {}, {}, None
    for spec in ("model=4", "data=2,model=2"):  # heads split across the processes; then batch
        jb = Jukebox.load(checkpoint, mesh=sharding.make_mesh(spec))
        cfg = jb.config.prior(2)
        labels = jb.labels(2, total_seconds=30.0, n_samples=BATCH)
        labels[:, 3] = np.arange(BATCH)
        tokens[spec] = np.asarray(jb.sample(2, jax.random.key(1), labels, N_TOKENS, top_k=1)).tolist()
        kernel = jb.params["prior_level_2"]["transformer"]["layers"]["mlp"]["c_fc_kernel"]
        held[spec] = sum(s.data.size for s in kernel.addressable_shards) / kernel.size  # of the MLP kernel, here
        if spec == "model=4":
            try:
                jb.save(saved.with_name("taken"))  # a file: refused on process 0, so on both
            except CheckpointError as e:
                refused = str(e)
            jb.save(saved)  # each process writes the halves it holds
    song = song_labels(cfg, 30 * 44100, 1)
    request = SampleRequest((2,), N_TOKENS * cfg.raw_to_tokens, 0, {2: (song,) * BATCH}, {2: LevelSettings(Greedy())})
    codes = run_job(jb, out, request, [np.zeros((BATCH, 0), np.int64)] * 3)
    print(json.dumps({"devices": jax.device_count(), "local": jax.local_device_count(), "held": held, "tokens": tokens, "job": codes[2].tolist(), "refused": refused}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
