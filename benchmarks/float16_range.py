"""float16's range on one full-size layer of each released prior structure (random weights at
the preset's init scale): the largest |activation| of the residual stream, the query/key/value
projections, the MLP hidden layer and the layer's output, in float16, against float16's largest
value (65504), for residual streams of rms 1 and 100 (the embeddings give ~0.01; a trained
model's stream may grow along its depth), and the error of the layer's float16 output against
float32's from the same (float16-representable) stream, relative to the layer's update
max |y - x|.

    python benchmarks/float16_range.py   # ~1 min on 2 CPU cores; figures in RESULTS.md
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from jukebox_jax.config import DType, Precision, preset
from jukebox_jax.prior.attention import Geometry
from jukebox_jax.prior.transformer import Layer, LayerSpec

STRUCTURES = ("5b_lyrics", "1b_lyrics", "upsampler_level_1")
F16_MAX = float(jnp.finfo(jnp.float16).max)


def layer_ranges(name: str, rms: float) -> dict[str, float]:
    cfg = preset(name)
    t = cfg.transformer
    geometry = Geometry(2 * cfg.block_ctx, cfg.block_ctx)
    x = rms * jax.random.normal(jax.random.key(1), (1, 2 * cfg.block_ctx, t.width))  # [b, t, w]
    x32 = x.astype(jnp.float16).astype(jnp.float32)  # the same stream for both
    f16 = Precision(DType.FLOAT16, DType.FLOAT16, DType.FLOAT16)
    layer32, layer16 = Layer(t.pattern[0], LayerSpec(t, geometry)), Layer(t.pattern[0], LayerSpec(t, geometry, f16))
    params32 = jax.jit(layer32.init)(jax.random.key(0), x32, None)
    params16 = jax.tree.map(lambda a, p: p.astype(a.dtype), jax.eval_shape(layer16.init, jax.random.key(0), x32, None), params32)

    @jax.jit
    def run(params16, params32, x32):
        (y16, _), state = layer16.apply(params16, x32.astype(jnp.float16), None, capture_intermediates=True)
        (y32, _) = layer32.apply(params32, x32, None)
        inter = state["intermediates"]
        p = nn.unbox(params16["params"])
        ln0 = inter["ln_0"]["__call__"][0].astype(jnp.float16)
        qkv = ln0 @ p["attn"]["c_attn_kernel"].reshape(t.width, -1) + p["attn"]["c_attn_bias"].reshape(-1)
        h = inter["ln_1"]["__call__"][0].astype(jnp.float16) @ p["mlp"]["c_fc_kernel"] + p["mlp"]["c_fc_bias"]
        hidden = h * jax.nn.sigmoid(1.702 * h)
        out = {"residual out": y16, "qkv": qkv, "mlp hidden": hidden, "mlp out": inter["mlp"]["__call__"][0]}
        ranges = {k: jnp.abs(v.astype(jnp.float32)).max() for k, v in out.items()}
        finite = jnp.all(jnp.array([jnp.isfinite(v).all() for v in out.values()]))
        rel = jnp.abs(y16.astype(jnp.float32) - y32).max() / jnp.abs(y32 - x32).max()  # of the layer's update
        return ranges, finite, rel

    ranges, finite, rel = run(params16, params32, x32)
    return {k: float(v) for k, v in ranges.items()} | {"finite": bool(finite), "rel err of update": float(rel)}


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; float16 max {F16_MAX:g}")
    print("| structure | width | stream rms | residual out | qkv | MLP hidden | MLP out | headroom | finite | rel err of update |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in STRUCTURES:
        for rms in (1.0, 100.0):
            t0 = time.time()
            r = layer_ranges(name, rms)
            peak = max(r[k] for k in ("residual out", "qkv", "mlp hidden", "mlp out"))
            print(
                f"| {name} | {preset(name).transformer.width} | {rms:g} | {r['residual out']:.3g} | {r['qkv']:.3g} | "
                f"{r['mlp hidden']:.3g} | {r['mlp out']:.3g} | {F16_MAX / peak:.0f}x | {r['finite']} | {r['rel err of update']:.2g} |",
                f"({time.time() - t0:.0f} s)" if rms == 100.0 else "",
                flush=True,
            )


if __name__ == "__main__":
    main()
