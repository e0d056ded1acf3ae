"""What fits where: per-device bytes of each released prior's weights and KV cache, computed
with `jax.eval_shape` (nothing is allocated, no devices needed).

    python benchmarks/memory.py [--models 1 2 4 8] [--batches 1 16] [--compact]

For every released prior, weight format (float32, bfloat16, int8 weights with bfloat16
compute) and tensor-parallel size `model` (a mesh `data=1,model=M`; batch sharding over `data`
divides the cache further), the bytes one device holds: the weights sharded by the default
rules of `jukebox_jax.sharding` (attention over heads or head width, MLP over its width; the
rest replicated), and one window's KV cache at batch 1 and 16 in the compute dtype. Activations
and compiled code are left out: a decode step's are small next to these (a few MB); a
teacher-forced pass or training needs more.
"""

from __future__ import annotations

import argparse

import jax

from jukebox_jax import params as jparams
from jukebox_jax import prior, sharding
from jukebox_jax.config import JukeboxConfig, preset
from jukebox_jax.quantize import config_with_weights

PRIORS = ("5b", "5b_lyrics", "1b_lyrics", "upsampler_level_1", "upsampler_level_0")
GiB = 2**30


def formats(cfg) -> dict[str, JukeboxConfig]:
    """The weight formats compared: name -> a whole-model config holding only this prior."""
    whole = JukeboxConfig(priors=(cfg,))
    return {"float32": whole, "bfloat16": whole.astype("bfloat16"), "int8": config_with_weights(whole.astype("bfloat16"), "int8")}


def per_device(shapes, specs, mesh_shape: dict[str, int]) -> int:
    """Bytes one device holds of arrays `shapes` sharded as `specs` (PartitionSpecs) over a
    mesh of `mesh_shape`."""
    total = 0
    for x, spec in zip(jax.tree.leaves(shapes), jax.tree.leaves(specs, is_leaf=lambda s: isinstance(s, jax.sharding.PartitionSpec))):
        split = 1
        for axes in spec:
            for axis in (axes,) if isinstance(axes, str) else axes or ():
                split *= mesh_shape[axis]
        total += x.size * x.dtype.itemsize // split
    return total


def row(name: str, fmt: str, config: JukeboxConfig, model: int, batches: tuple[int, ...]) -> dict:
    cfg = config.priors[0]
    mesh_shape = {"data": 1, "model": model}
    weights = per_device(jparams.abstract_params(config)[f"prior_level_{cfg.level}"], sharding.partition_specs(cfg, mesh_shape), mesh_shape)
    out = {"prior": name, "format": fmt, "model": model, "weights": weights}
    for b in batches:
        cache = jax.eval_shape(lambda b=b: prior.init_cache(cfg, b))
        out[f"cache_b{b}"] = per_device(cache, sharding.cache_specs(cfg, mesh_shape, b), mesh_shape)
    return out


def fits(total: int) -> str:
    """Which common memories hold `total` bytes with 10% left for activations and runtime."""
    sizes = [(16, "16 GB"), (24, "24 GB"), (40, "40 GB"), (80, "80 GB")]
    return next((label for gb, label in sizes if total <= 0.9 * gb * 1e9), "> 80 GB")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--compact", action="store_true", help="one row per prior and format: weights + cache per model size (the README table)")
    args = p.parse_args()
    batches = tuple(args.batches)
    if args.compact:
        head = ["prior", "format"] + [f"model={m}" for m in args.models]
        print(f"GiB per device: weights + KV cache at batch {' / '.join(map(str, batches))}\n")
    else:
        head = ["prior", "format", "model", "weights GiB"] + [f"cache b={b} GiB" for b in batches] + [f"fits (b={b})" for b in batches]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name in PRIORS:
        for fmt, config in formats(preset(name)).items():
            rows = [row(name, fmt, config, model, batches) for model in args.models]
            if args.compact:
                caches = lambda r: " / ".join(f"{r[f'cache_b{b}'] / GiB:.1f}" for b in batches)
                cells = [f"{r['weights'] / GiB:.1f} + {caches(r)}" for r in rows]
                print("| " + " | ".join([name, fmt, *cells]) + " |")
                continue
            for model, r in zip(args.models, rows):
                cells = [name, fmt, str(model), f"{r['weights'] / GiB:.2f}"]
                cells += [f"{r[f'cache_b{b}'] / GiB:.2f}" for b in batches]
                cells += [fits(r["weights"] + r[f"cache_b{b}"]) for b in batches]
                print("| " + " | ".join(cells) + " |")
    if not args.compact:
        print("\n(bytes per device; GiB = 2^30 bytes; 'fits' leaves 10% of the card for activations and runtime)")


if __name__ == "__main__":
    main()
