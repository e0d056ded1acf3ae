"""Decode speed of the full-size priors on one accelerator, against its bandwidth floor, per
weight format (float32, bfloat16, int8 weights with bfloat16 compute) and with both weight
layouts: one buffer per layer (`prior.decode_params`, what `Jukebox.sample` uses on a CPU) and
the canonical stacks sliced inside the jitted step (what it uses elsewhere). Random weights; one
process; a short budget. Ends with the time 60 s of audio would take through all three levels.

    python benchmarks/gpu_decode.py [--presets 5b_lyrics upsampler_level_0 1b_lyrics]
                                    [--formats bfloat16 int8 float32] [--batches 1 16]
                                    [--tokens 32] [--hf] [--out rows.json] [--deadline 480]

A step's cost is timed as calls of N steps and of 1 step, the difference per extra step,
best of a few steady repeats after a warm-up; prefill is timed on a full window's prompt less
one hop. The floor is the bytes a step must read (every transformer weight but the enc-dec
key/value projections, the output head, and the cached keys and values each layer attends to,
in the cache dtype) over the card's bandwidth, measured as the best of large device-to-device
copies (read + write bytes).

The 60 s estimate (`estimate_song`): the windows the job samples per level (`level_windows` with
the released hop fractions, 1/8 at the top and 1/2 for the upsamplers), each a prefill of the
window's codes already there plus its new tokens at the measured decode rate, batch 1. The
upsampler's figures stand for both upsampler levels (the same structure).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jukebox_jax import Jukebox, JukeboxConfig, prior
from jukebox_jax.config import AttnKind, PriorConfig, preset
from jukebox_jax.generation.levels import LevelSettings
from jukebox_jax.generation.windows import level_windows
from jukebox_jax.params import abstract_params
from jukebox_jax.sampling import Temperature, decode, prefill

METHOD = Temperature(1.0)


def bandwidth(gib: float = 2.0, repeats: int = 10) -> float:
    """GB/s of a device-to-device copy, counting bytes read and written."""
    x = jnp.ones(int(gib * 2**30) // 4, jnp.float32)
    copy = jax.jit(lambda a: a + 0.0)
    copy(x).block_until_ready()
    best = min(_time(lambda: copy(x).block_until_ready()) for _ in range(repeats))
    return 2 * x.nbytes / best / 1e9


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def random_model(name: str, fmt: str, key: jax.Array) -> Jukebox:
    """The prior `name` alone with random weights (a normal draw of std 0.02 per leaf: no Flax
    init compile) in format `fmt` ('float32', 'bfloat16', or 'int8': int8 weights, bfloat16
    compute)."""
    config = JukeboxConfig(priors=(preset(name),))
    leaves, tree = jax.tree.flatten(abstract_params(config))
    draw = jax.jit(lambda k, shape: 0.02 * jax.random.normal(k, shape, jnp.float32), static_argnums=1)
    params = jax.tree.unflatten(tree, [draw(jax.random.fold_in(key, i), leaf.shape) for i, leaf in enumerate(leaves)])
    jb = Jukebox(config, params)
    if fmt == "float32":
        return jb
    jb = jb.astype("bfloat16")
    return jb.quantize("int8") if fmt == "int8" else jb


def step_bytes(cfg: PriorConfig, params, batch: int) -> int:
    """Bytes one decode step reads: weights (but the enc-dec key/value projections), the head,
    and the KV entries each layer attends to, in the cache dtype."""
    flat = jax.tree_util.tree_flatten_with_path(params["transformer"])[0]
    weights = sum(leaf.nbytes for path, leaf in flat if "c_enc_kv" not in jax.tree_util.keystr(path))
    weights += (params["x_out_kernel"] if cfg.merged_decoder else params["x_emb"]["embedding"]).nbytes
    t, c = cfg.transformer, cfg.block_ctx
    keys = {AttnKind.BLOCK: c, AttnKind.PREV_BLOCK: 2 * c, AttnKind.TRANSPOSE_BLOCK: cfg.n_positions // c,
            AttnKind.DENSE: cfg.n_positions, AttnKind.PRIME: cfg.prime_len or 0, AttnKind.ENC_DEC: cfg.n_tokens}  # fmt: skip
    kv = sum(2 * keys[kind] * t.attn_width * cfg.precision.cache.jnp.itemsize * batch for kind in t.pattern)
    return weights + kv


def labels_for(cfg: PriorConfig, batch: int) -> jax.Array:
    lab = cfg.labels
    length = cfg.n_ctx * cfg.raw_to_tokens
    row = [int(240 * lab.sample_rate), 0, length, 1, *([1] + [-1] * (lab.max_bow_genre_size - 1))]
    row += [5] * cfg.n_tokens
    return jnp.asarray(np.tile(row, (batch, 1)), jnp.int32)


HOP_FRACTION = {2: 0.125, 1: 0.5, 0: 0.5}  # the released sampling settings
CHUNK = LevelSettings().chunk_size  # prompt positions per prefill call, as the job


def run(name: str, jb: Jukebox, batch: int, fmt: str, tokens: int, bw: float, layouts: tuple[str, ...]) -> list[dict]:
    cfg = jb.config.priors[0]
    params = jb.params[f"prior_level_{cfg.level}"]
    labels = labels_for(cfg, batch)
    upper = jnp.zeros((batch, cfg.n_ctx // cfg.cond_downsample), jnp.int32) if cfg.conditioner else None
    ctx = jax.block_until_ready(prior.condition(cfg, params, labels, upper))
    prompt_len = cfg.n_ctx - int(cfg.n_ctx * HOP_FRACTION[cfg.level])  # a later window's codes already there
    seq = prior.sequence(cfg, jnp.zeros((batch, prompt_len), jnp.int32), labels)
    floor = step_bytes(cfg, params, batch) / (bw * 1e9)
    rows = []
    for layout in layouts:
        weights = prior.decode_params(cfg, params) if layout == "per_layer" else params
        start = time.perf_counter()
        state, _ = prefill(cfg, weights, ctx, seq, jax.random.key(1), CHUNK)
        jax.block_until_ready(state)
        prefill_first = time.perf_counter() - start
        prefill_s = min(_time(lambda: jax.block_until_ready(prefill(cfg, weights, ctx, seq, jax.random.key(1), CHUNK)[0])) for _ in range(2))

        def call(n: int) -> float:
            state, _ = prefill(cfg, weights, ctx, seq[:, :64], jax.random.key(1), None)
            jax.block_until_ready(state)
            return _time(lambda: jax.block_until_ready(decode(cfg, weights, ctx, state, METHOD, n)[0]))

        first = call(tokens)
        call(1)
        long = min(call(tokens) for _ in range(3))
        short = min(call(1) for _ in range(3))
        step = (long - short) / (tokens - 1)
        row = dict(preset=name, batch=batch, format=fmt, layout=layout, ms_per_token=1e3 * step, floor_ms=1e3 * floor,
                   ratio=step / floor, compile_s=first - long, prefill_tokens_per_s=seq.shape[1] * batch / prefill_s,
                   prefill_compile_s=prefill_first - prefill_s)  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
        del weights
    return rows


def estimate_song(rows: list[dict], seconds: float = 60.0, top: str = "5b_lyrics", upsampler: str = "upsampler_level_0") -> list[dict]:
    """Per format: minutes for `seconds` of audio through the three levels at batch 1, from the
    best layout's decode ms/token and prefill tokens/s of `top` and `upsampler` (module doc)."""
    out = []
    for fmt in sorted({r["format"] for r in rows if "format" in r}):
        best = {}
        for r in rows:
            if r.get("format") == fmt and r["batch"] == 1 and r["preset"] in (top, upsampler):
                if r["preset"] not in best or r["ms_per_token"] < best[r["preset"]]["ms_per_token"]:
                    best[r["preset"]] = r
        if len(best) < 2:
            continue
        total, levels = 0.0, {}
        for level, name, timed_as in ((2, top, top), (1, "upsampler_level_1", upsampler), (0, "upsampler_level_0", upsampler)):
            cfg, r = preset(name), best[timed_as]
            length = int(seconds * cfg.labels.sample_rate) // cfg.raw_to_tokens
            done, secs = 0, 0.0
            for start, n_tokens in level_windows(cfg, length, HOP_FRACTION[level]):
                there = max(done - start, 0)  # codes of the window sampled by earlier windows
                new = n_tokens - there
                secs += there / r["prefill_tokens_per_s"] + new * r["ms_per_token"] / 1e3
                done = start + there + new
            levels[level] = secs
            total += secs
        row = dict(estimate=f"{seconds:g} s of {top}", format=fmt, minutes=total / 60, per_level_minutes={k: v / 60 for k, v in levels.items()})
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def hf_1b(tokens: int, prompt_len: int = 64) -> dict:
    """HF 4.40.2's own 1b_lyrics top prior on the card (its own random weights), batch 1,
    built as benchmarks/decode.py builds it for the CPU."""
    import torch
    from transformers import JukeboxConfig as HFJukeboxConfig
    from transformers import JukeboxModel

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from hf_reference import redraw_jukebox

    prior_cfg = dict(hidden_size=2048, num_layers=72, n_heads=2, attention_pattern="enc_dec_with_lyrics", blocks=64,
                     n_ctx=6144, merged_decoder=False, is_encoder_decoder=True, nb_relevant_lyric_tokens=384,
                     lyric_vocab_size=79, metadata_dims=[604, 7898])  # fmt: skip
    cfg = HFJukeboxConfig(prior_config_list=[prior_cfg], nb_priors=1, timing_dims=64, min_duration=17.84, max_nb_genres=1)
    torch.manual_seed(0)
    model = JukeboxModel(cfg).eval()
    redraw_jukebox(model, 7)  # HF leaves some weights uninitialised
    prior = model.priors[0].cuda()
    labels = torch.from_numpy(np.asarray(labels_for(preset("1b_lyrics"), 1))).long().cuda()
    prompt = torch.randint(0, 2048, (1, prompt_len)).cuda()

    def call(total: int) -> float:
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            prior.sample(1, music_tokens=prompt, metadata=labels, sample_tokens=total)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    call(prompt_len + 2)
    long = min(call(prompt_len + 1 + tokens) for _ in range(2))
    short = min(call(prompt_len + 1) for _ in range(2))
    row = dict(preset="1b_lyrics (HF 4.40.2, its own weights)", batch=1, dtype="float32", ms_per_token=1e3 * (long - short) / tokens)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=["5b_lyrics", "upsampler_level_0", "1b_lyrics"])
    p.add_argument("--formats", nargs="+", default=["bfloat16", "int8", "float32"], choices=["float32", "bfloat16", "int8"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--layouts", nargs="+", default=["canonical", "per_layer"], choices=["canonical", "per_layer"])
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--hf", action="store_true")
    p.add_argument("--out", default=None, help="write the rows as JSON here (after every row)")
    p.add_argument("--deadline", type=float, default=1e9, help="seconds after which no new measurement starts")
    args = p.parse_args()
    device = jax.devices()[0]
    bw = bandwidth()
    print(f"# {datetime.date.today()} {device.device_kind} ({device.platform}), jax {jax.__version__}; copy bandwidth {bw:.0f} GB/s", flush=True)
    rows = [dict(device=device.device_kind, bandwidth_gbs=bw, jax=jax.__version__, date=str(datetime.date.today()))]
    began = time.perf_counter()

    def save() -> None:
        if args.out:
            with open(args.out, "w") as f:
                json.dump(rows, f, indent=1)

    if args.hf:
        try:
            rows.append(hf_1b(args.tokens))
        except Exception as e:
            print(f"HF: {type(e).__name__}: {str(e)[:500]}", file=sys.stderr, flush=True)
        save()
    for name in args.presets:
        for fmt in args.formats:
            if time.perf_counter() - began > args.deadline:
                print(f"deadline: skipped {name} {fmt}", flush=True)
                continue
            start = time.perf_counter()
            jb = jax.block_until_ready(random_model(name, fmt, jax.random.key(0)))
            print(f"# {name} {fmt}: random weights in {time.perf_counter() - start:.0f} s", flush=True)
            for batch in args.batches:
                try:
                    rows.extend(run(name, jb, batch, fmt, args.tokens, bw, tuple(args.layouts)))
                except Exception as e:  # one failure (e.g. memory) must not lose the other rows
                    print(f"{name} {fmt} batch {batch}: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr, flush=True)
                save()
            del jb
    rows.extend(estimate_song(rows))
    save()


if __name__ == "__main__":
    main()
