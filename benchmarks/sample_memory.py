"""Peak host memory of sampling one window of a full-size prior on the CPU, against what it
must hold: the weights once, plus the KV cache (issue 8: "weights + caches + a small overhead,
not two copies").

    python benchmarks/sample_memory.py [--preset 1b_lyrics] [--batch 1] [--tokens 16] [--calls 2]

Random weights. The process's resident-set high-water mark (`VmHWM`) is reset after the
weights exist (`/proc/self/clear_refs`), so the peak is that of sampling (the first call
includes compilation), split into weights, cache and everything else (runtime, compiled code,
allocator slack). A second call shows the per-layer weights are made
once per `Jukebox` (it adds nothing).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import time

import jax
import numpy as np

from jukebox_jax import Jukebox, JukeboxConfig, preset
from jukebox_jax.prior import init_cache, init_params


def rss() -> tuple[int, int]:
    """(current, peak) resident set size in bytes."""
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    kib = lambda name: int(fields[name].split()[0]) * 1024
    return kib("VmRSS"), kib("VmHWM")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="1b_lyrics")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--tokens", type=int, default=16, help="new tokens sampled per call")
    p.add_argument("--calls", type=int, default=2)
    args = p.parse_args()
    cfg = preset(args.preset)
    start = time.perf_counter()
    params = jax.block_until_ready(jax.jit(init_params, static_argnums=0)(cfg, jax.random.key(0)))
    jb = Jukebox(JukeboxConfig(priors=(cfg,)), {f"prior_level_{cfg.level}": params})
    del params
    gc.collect()
    weights = sum(x.nbytes for x in jax.tree.leaves(jb.params))
    cache = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(jax.eval_shape(lambda: init_cache(cfg, args.batch))))
    print(f"# {datetime.date.today()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}")
    print(f"{args.preset}: weights {weights / 1e9:.2f} GB (made in {time.perf_counter() - start:.0f} s), "
          f"KV cache at batch {args.batch} {cache / 1e9:.3f} GB")  # fmt: skip
    reset_peak()
    labels = np.zeros((args.batch, cfg.n_labels), np.int64)
    labels[:, 0], labels[:, 2] = int(cfg.labels.t_ranges[0][0]) + 1, cfg.n_ctx * cfg.raw_to_tokens
    upper = np.zeros((args.batch, cfg.n_ctx // cfg.cond_downsample), np.int64) if cfg.conditioner else None
    for call in range(args.calls):
        start = time.perf_counter()
        tokens = jb.sample(cfg.level, jax.random.key(call), labels, args.tokens, upper)
        jax.block_until_ready(tokens)
        now, peak = rss()
        print(f"call {call}: {time.perf_counter() - start:.1f} s; RSS {now / 1e9:.2f} GB, peak since the weights existed "
              f"{peak / 1e9:.2f} GB = weights {weights / 1e9:.2f} + cache {cache / 1e9:.2f} + other {(peak - weights - cache) / 1e9:.2f} "
              f"(a second copy of the weights would need {weights / 1e9:.2f} more)", flush=True)  # fmt: skip
    decode = jb.decode_params(cfg.level)["transformer"]
    stacked = jb.params[f"prior_level_{cfg.level}"]["transformer"]["layers"]["mlp"]["c_fc_kernel"]
    shared = decode["layers_1"]["mlp"]["c_fc_kernel"].unsafe_buffer_pointer() - stacked.unsafe_buffer_pointer()
    print(f"per-layer weights are views of the stacked ones: layer 1's MLP kernel sits {shared} bytes into the stack "
          f"({stacked[0].nbytes} per layer)")  # fmt: skip


if __name__ == "__main__":
    main()
