"""Compile and run time of a teacher-forced prior pass with the layer stack scanned vs
unrolled, for the full-size released structures (random weights, batch 1, a short window).

    python benchmarks/prior_stack.py [--presets 1b_lyrics upsampler_level_0] [--tokens 256]

Prints one markdown table row per (preset, mode); paste them into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp

from jukebox_jax import prior
from jukebox_jax.config import preset
from jukebox_jax.prior import Execution, layer_groups


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", nargs="+", default=["1b_lyrics", "upsampler_level_0"])
    parser.add_argument("--tokens", type=int, default=256, help="music tokens in the pass")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {jax.devices()[0].device_kind} ({platform.processor() or platform.machine()}), jax {jax.__version__}")
    print("| structure | layers compiled | stack | compile (s) | pass (ms) |")
    print("|---|---|---|---|---|")
    for name in args.presets:
        cfg = preset(name)
        tokens, labels, upper = prior.prior.dummy_inputs(cfg)
        tokens = jnp.zeros((1, args.tokens), jnp.int32)
        if upper is not None:
            upper = jnp.zeros((1, cfg.n_ctx // cfg.cond_downsample), jnp.int32)
        labels = labels.at[:, 0].set(int(cfg.labels.t_ranges[0][0]) + 1).at[:, 2].set(cfg.n_ctx * cfg.raw_to_tokens)
        params = jax.jit(prior.init_params, static_argnums=0)(cfg, jax.random.key(0))
        compiled_layers = sum(len(u) for u, _ in layer_groups(cfg.transformer.pattern))
        for unroll in (False, True):
            execution = Execution.UNROLLED if unroll else Execution.SCAN
            fn = jax.jit(lambda p, t, y, u, execution=execution: prior.forward(cfg, p, t, y, u, frozenset(), execution).logits)
            start = time.perf_counter()
            compiled = fn.lower(params, tokens, labels, upper).compile()
            compile_s = time.perf_counter() - start
            compiled(params, tokens, labels, upper).block_until_ready()
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                compiled(params, tokens, labels, upper).block_until_ready()
                times.append(time.perf_counter() - start)
            layers = cfg.transformer.depth if unroll else compiled_layers
            mode = "unrolled" if unroll else "scanned"
            print(f"| {name} ({cfg.transformer.depth} layers, {args.tokens} tokens) | {layers} | {mode} | {compile_s:.1f} | {1e3 * statistics.median(times):.0f} |", flush=True)
        del params


if __name__ == "__main__":
    main()
