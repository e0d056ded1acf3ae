"""KV-cached sampling speed: decode ms/token and prefill tokens/s, ours against transformers
4.40.2 on the same random weights, and ours against the memory-bandwidth floor.

    python benchmarks/decode.py [--parts mid 1b upsampler layout] [--tokens 128] [--batches 1 16]
                                [--full-tokens 16] [--hf-full] [--repeats 3]

Parts:
- `mid`: a 5b-like top prior (width 512, 8 layers of block/transpose/prev attention, 1024-token
  window in 16 blocks, no lyrics, untied head, l_bins 2048, tiny VQ-VAE) built in HF with every
  weight redrawn, written with `save_pretrained(safe_serialization=False)` and read back by
  `convert_checkpoint`. Half-window prompt. HF: `JukeboxPrior.sample` (its own KV-cached loop,
  the prompt prefilled in one chunk) timed at `sample_tokens = P + 1` and `P + 1 + N`: decode is
  the difference / N, prefill the first time less one decode step. Ours: `prefill` (one chunk)
  then `decode(..., N)`, both timed after a warm-up call, with the stacked params (the stacks
  sliced per layer, unrolled) and in `prior.decode_params` (one buffer per layer, what
  `Jukebox.sample` uses on a CPU).
- `1b`, `upsampler`: the full-size `1b_lyrics` top prior and `upsampler_level_0`, ours only
  (random weights), batch 1; `--hf-full` adds HF's own 1b decode (its own random weights) at a
  few tokens.
- `formats` (not run by default): the full-size `1b_lyrics` and `upsampler_level_0` per weight
  format (float32; bfloat16; int8 weights with float32 compute) at `--batches`, one buffer per
  layer, each against its own floor (`run_formats`).
- `layout` (not run by default): the 1b top prior's matmuls alone at batch 1, weights stacked
  (unrolled or scanned) vs one buffer per layer: what the stacked layout costs a decode step.

Fairness (REFERENCE.md): `torch.set_flush_denormal(True)`, both sides warmed up, the best of
steady-state repeats (medians printed too); each part waits for other processes to go idle
first and reports the CPU they used meanwhile (a busy neighbour slows PyTorch's threads badly).
Ours is timed as HF's: calls of N steps and of 1 step, the difference per extra step (the
call's fixed cost is printed apart). The floor is the bytes one decode step must read (the
transformer's weights, the output head, and the KV cache entries it attends to) over this
machine's memory bandwidth: the best of a large copy (read + write bytes, numpy and torch) and
a large torch sum (read), each best of several.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # HF's sampling loops draw progress bars

import jax
import jax.numpy as jnp
import numpy as np
import torch

from jukebox_jax import Jukebox, JukeboxConfig
from jukebox_jax import prior as jbprior
from jukebox_jax.config import AttnKind, PriorConfig, preset
from jukebox_jax.prior.attention import attention
from jukebox_jax.prior.prior import geometry
from jukebox_jax.sampling import Temperature, decode, prefill
from jukebox_jax.sampling.decode import SampleState, init_buffers, row_keys

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

METHOD = Temperature(1.0)  # HF's default (temp 1, no top-k/top-p): a draw from the softmax


# ----------------------------------------------------------------------------------------
# Machine, bandwidth, floors


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{platform.system()} {cpu}, {os.cpu_count()} cores"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _busy() -> tuple[float, float, float]:
    """(now, CPU seconds of every process, CPU seconds of this one)."""
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    total = (sum(fields) - fields[3] - fields[4]) / hz  # all but idle and iowait
    with open("/proc/self/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()
    return time.perf_counter(), total, (int(own[11]) + int(own[12]) + int(own[13]) + int(own[14])) / hz


class Others:
    """The CPU other processes used (in cores) between `start()` and `cores()`."""

    def start(self) -> Others:
        self.t0 = _busy()
        return self

    def cores(self) -> float:
        t1 = _busy()
        return max(0.0, ((t1[1] - self.t0[1]) - (t1[2] - self.t0[2])) / (t1[0] - self.t0[0]))


def wait_idle(max_wait: float, threshold: float = 0.15, window: float = 2.0) -> str:
    """Waits (up to `max_wait` s) until other processes use under `threshold` cores over a
    `window`; returns what it saw."""
    start = time.perf_counter()
    while True:
        probe = Others().start()
        time.sleep(window)
        used = probe.cores()
        waited = time.perf_counter() - start
        if used < threshold or waited >= max_wait:
            return f"others {used:.2f} cores after waiting {waited:.0f} s"


def bandwidth(mib: int = 1024, repeats: int = 11) -> dict[str, float]:
    """GB/s of a large copy (read + write bytes), numpy (one thread) and torch (all threads),
    and of a read-only torch sum; best of `repeats`."""
    n = mib * 2**20 // 4
    src, dst = np.ones(n, np.float32), np.zeros(n, np.float32)
    tsrc, tdst = torch.from_numpy(src), torch.from_numpy(dst)

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    out = {
        "numpy copy": 2 * src.nbytes / best(lambda: np.copyto(dst, src)) / 1e9,
        "torch copy": 2 * src.nbytes / best(lambda: tdst.copy_(tsrc)) / 1e9,
        "torch sum (read)": src.nbytes / best(lambda: tsrc.sum()) / 1e9,
    }
    del src, dst, tsrc, tdst
    gc.collect()
    return out


def decode_bytes(cfg: PriorConfig, params, batch: int) -> tuple[int, int]:
    """(weight bytes, KV-cache bytes) one decode step must read at `batch`: every transformer
    weight but the enc-dec key/value projections (their outputs are cached once), the output
    head (the tied embedding for untied-off priors); the keys and values each layer attends to
    (a block for BLOCK, the previous and current block for PREV_BLOCK, one column for
    TRANSPOSE_BLOCK, the window for DENSE, the prefix for PRIME, the encoder for ENC_DEC), in
    the cache dtype."""
    flat = jax.tree_util.tree_flatten_with_path(params["transformer"])[0]
    weights = sum(leaf.nbytes for path, leaf in flat if "c_enc_kv" not in jax.tree_util.keystr(path))
    head = params["x_out_kernel"] if cfg.merged_decoder else params["x_emb"]["embedding"]
    weights += head.nbytes
    t = cfg.transformer
    c = cfg.block_ctx
    kv = 0
    for kind in t.pattern:
        if kind is AttnKind.TRANSPOSE_BLOCK:
            keys = cfg.n_positions // c
        elif kind is AttnKind.SUMMARY or kind is AttnKind.SUMMARY_SPREAD:
            keys = cfg.n_positions
        else:
            keys = int(np.prod(attention(kind, geometry(cfg)).cache_positions()))
        kv += 2 * keys * t.attn_width * cfg.precision.cache.jnp.itemsize * batch
    return weights, kv


# ----------------------------------------------------------------------------------------
# Timing helpers


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    """(first call seconds, steady seconds of `repeats` more calls); `fn` blocks itself."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, times


class Ours:
    """Prefill and decode timings of one prior in jukebox-jax."""

    def __init__(self, cfg: PriorConfig, params, labels, upper, prompt, seed: int = 0):
        self.cfg, self.params = cfg, params
        self.layered = jax.block_until_ready(jbprior.decode_params(cfg, params))  # what `Jukebox.sample` decodes with
        self.ctx = jax.block_until_ready(jbprior.condition(cfg, params, labels, upper))
        self.seq = jax.block_until_ready(jbprior.sequence(cfg, prompt, labels))
        self.seed = seed

    def prefill(self, per_layer: bool = False):
        # A fresh key each time: the state holds the key array itself and `decode` donates it.
        state, logits = prefill(self.cfg, self.weights(per_layer), self.ctx, self.seq, jax.random.key(self.seed), return_logits=True)
        return jax.block_until_ready(state), logits

    def weights(self, per_layer: bool):
        return self.layered if per_layer else self.params

    def time_prefill(self, repeats: int, per_layer: bool = False) -> tuple[float, list[float]]:
        return timed(lambda: self.prefill(per_layer), repeats)

    def time_decode(self, n_steps: int, repeats: int, per_layer: bool) -> tuple[float, list[float]]:
        """(first call s, steady s per call) of `decode(..., n_steps)` from a fresh prefill each
        time (the prefill untimed)."""
        times = []
        first = None
        for i in range(repeats + 1):
            state, _ = self.prefill(per_layer)
            start = time.perf_counter()
            state, _ = decode(self.cfg, self.weights(per_layer), self.ctx, state, METHOD, n_steps, False)
            jax.block_until_ready(state)
            elapsed = time.perf_counter() - start
            if i == 0:
                first = elapsed
            else:
                times.append(elapsed)
            del state
        return first, times

    def decode_rate(self, n_steps: int, repeats: int, per_layer: bool) -> dict[str, float]:
        """Steady ms per step as HF's is measured: calls of `n_steps` and of 1 step, the
        difference per extra step (so a call's fixed cost, e.g. fresh output buffers, is left
        out and reported apart). Also the compile time (first call less a steady one)."""
        first, times = self.time_decode(n_steps, repeats, per_layer)
        _, ones = self.time_decode(1, repeats, per_layer)
        step = _steady((STAT(times) - STAT(ones)) / (n_steps - 1))
        return dict(step=step, median=(med(times) - med(ones)) / (n_steps - 1), per_call=STAT(ones) - step,
                    plain=STAT(times) / n_steps, compile=first - STAT(times))  # fmt: skip


def med(xs: list[float]) -> float:
    return statistics.median(xs)


STAT = min  # steady state: best of the repeats (other processes only ever add time)


def describe(d: dict[str, float], n: int) -> str:
    return (f"{1e3 * d['step']:.3f} ms/step (medians {1e3 * d['median']:.3f}; a {n}-step call "
            f"{1e3 * d['plain']:.3f} ms/step all in), fixed {d['per_call']:.3f} s per call, compile ~{d['compile']:.2f} s")  # fmt: skip


# ----------------------------------------------------------------------------------------
# Mid-size top prior: ours against HF on the same weights


def hf_mid_model(width: int, depth: int, n_ctx: int, heads: int, blocks: int, seed: int = 5):
    from hf_reference import redraw_jukebox  # tests/: the parity tests' weight redraw
    from transformers import JukeboxConfig as HFJukeboxConfig
    from transformers import JukeboxModel

    vqvae = dict(res_downs_t=[3, 2, 2], res_strides_t=[2, 2, 2], embed_dim=16, nb_discrete_codes=2048, res_conv_width=16,
                 res_conv_depth=2, multipliers=[1, 1, 1])  # fmt: skip
    prior = dict(hidden_size=width, num_layers=depth, n_heads=heads, attention_pattern="raw_column_previous_row_attention",
                 blocks=blocks, n_ctx=n_ctx, merged_decoder=True, metadata_dims=[120, 4111], is_encoder_decoder=False,
                 nb_relevant_lyric_tokens=0, encoder_config=None, music_vocab_size=2048, res_downs_t=[3, 2, 2],
                 res_strides_t=[2, 2, 2], mask=True)  # fmt: skip
    cfg = HFJukeboxConfig(vqvae_config=vqvae, prior_config_list=[prior], nb_priors=1, sampling_rate=44100, timing_dims=64,
                          min_duration=17.84, max_duration=600.0, max_nb_genres=5)  # fmt: skip
    model = JukeboxModel(cfg).eval()
    redraw_jukebox(model, seed)
    return model


def top_labels(cfg: PriorConfig, batch: int, seed: int = 0) -> np.ndarray:
    """Windowed labels in the original layout: a song of 3 minutes, a window inside it."""
    lab, rng = cfg.labels, np.random.default_rng(seed)
    length = cfg.n_ctx * cfg.raw_to_tokens
    total = np.full(batch, int(max(180 * lab.sample_rate, lab.min_duration * lab.sample_rate + length)))
    offset = rng.integers(0, total - length) // cfg.raw_to_tokens * cfg.raw_to_tokens
    genres = rng.integers(0, lab.genre_bins, (batch, lab.max_bow_genre_size))
    columns = np.stack([total, offset, np.full(batch, length), rng.integers(0, lab.artist_bins, batch)], 1)
    lyrics = rng.integers(0, max(cfg.n_vocab, 1), (batch, cfg.n_tokens))
    return np.concatenate([columns, genres, lyrics], 1).astype(np.int64)


def run_mid(args, bw: float, rows: list[str]) -> dict:
    from convert import convert_checkpoint

    torch.manual_seed(0)
    hf = hf_mid_model(args.mid_width, args.mid_depth, args.mid_ctx, args.mid_heads, args.mid_blocks)
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d, safe_serialization=False)
        jb = convert_checkpoint(d)
    prior = hf.priors[0]
    cfg, params = jb.config.prior(2), jb.params["prior_level_2"]
    n_params = sum(p.numel() for p in prior.prior.parameters())
    p_len = args.prompt or cfg.n_ctx // 2
    n = min(args.tokens, cfg.n_ctx - p_len - 1)
    print(f"\n## mid: width {cfg.transformer.width}, {cfg.transformer.depth} layers, {cfg.transformer.heads} heads, "
          f"n_ctx {cfg.n_ctx}, block_ctx {cfg.block_ctx}, attn width {cfg.transformer.attn_width}, "
          f"{n_params / 1e6:.1f} M params in the HF prior's transformer+embeddings; prompt {p_len}, {n} decode tokens", flush=True)  # fmt: skip
    results = {}
    rng = np.random.default_rng(1)
    for batch in args.batches:
        labels = top_labels(cfg, batch)
        prompt = rng.integers(0, cfg.l_bins, (batch, p_len))
        # Parity check of the prompt's logits (ours from the prefill, HF teacher-forced).
        ours = Ours(cfg, params, jnp.asarray(labels, jnp.int32), None, jnp.asarray(prompt, jnp.int32))
        _, our_logits = ours.prefill()
        with torch.no_grad():
            x_cond, start, _ = prior.get_cond([], torch.from_numpy(labels))
            window = np.concatenate([prompt, rng.integers(0, cfg.l_bins, (batch, cfg.n_ctx - p_len))], 1)
            _, ref = prior.prior(torch.from_numpy(window), x_cond, start, None, get_preds=True)  # HF wants a whole window
            ref = ref[:, :p_len]
        err = float(np.abs(np.asarray(our_logits) - ref.numpy()).max() / np.abs(ref.numpy()).max())

        # HF: whole sample calls at P+1 and P+1+N sampled positions.
        def hf_call(total: int) -> None:
            with torch.no_grad():
                prior.sample(batch, music_tokens=torch.from_numpy(prompt), metadata=torch.from_numpy(labels), sample_tokens=total)

        idle = wait_idle(args.max_wait)
        others = Others().start()
        hf_call(p_len + 2)  # warm-up
        hf_short, hf_long = [], []
        for _ in range(args.repeats):
            for total, acc in ((p_len + 1, hf_short), (p_len + 1 + n, hf_long)):
                start = time.perf_counter()
                hf_call(total)
                acc.append(time.perf_counter() - start)
        hf_others = others.cores()
        hf_step = _steady((STAT(hf_long) - STAT(hf_short)) / n)
        hf_prefill = STAT(hf_short) - hf_step
        time.sleep(0.5)  # let torch's worker threads go idle

        others = Others().start()
        pf_first, pf_times = ours.time_prefill(args.repeats, per_layer=True)
        dec = {per_layer: ours.decode_rate(n, args.repeats, per_layer) for per_layer in (False, True)}
        our_others = others.cores()
        w_bytes, kv_bytes = decode_bytes(cfg, params, batch)
        floor = (w_bytes + kv_bytes) / (bw * 1e9)
        best = min(dec[False]["step"], dec[True]["step"])
        r = dict(hf_step=hf_step, hf_prefill_tps=batch * p_len / hf_prefill, ours_prefill_tps=batch * p_len / STAT(pf_times),
                 stacked=dec[False], per_layer=dec[True], floor=floor, best=best, err=err, w_bytes=w_bytes, kv_bytes=kv_bytes)  # fmt: skip
        results[batch] = r
        print(f"batch {batch}: prompt-logit rel err vs HF {err:.1e}; before: {idle}; other processes used "
              f"{hf_others:.2f} cores during HF's timing, {our_others:.2f} during ours; load {load()}")  # fmt: skip
        print(f"  HF: short {[round(x, 4) for x in hf_short]} s, long {[round(x, 4) for x in hf_long]} s -> "
              f"{1e3 * hf_step:.2f} ms/step (medians: {1e3 * (med(hf_long) - med(hf_short)) / n:.2f}), prefill {hf_prefill:.3f} s")  # fmt: skip
        print(f"  ours prefill {[round(x, 4) for x in pf_times]} s (first call {pf_first:.2f} s)")
        for per_layer in (False, True):
            print(f"  ours decode {'per layer' if per_layer else 'stacked'}: " + describe(dec[per_layer], n))
        rows.append(
            f"| mid ({cfg.transformer.width}w, {cfg.transformer.depth}L) | {batch} | {1e3 * hf_step:.2f} | {1e3 * dec[False]['step']:.2f} | "
            f"{1e3 * dec[True]['step']:.2f} | {hf_step / best:.1f}x | {1e3 * floor:.2f} ({(w_bytes + kv_bytes) / 1e6:.0f} MB) | "
            f"{best / floor:.2f} | {r['hf_prefill_tps']:.0f} | {r['ours_prefill_tps']:.0f} | "
            f"{dec[False]['compile']:.1f} / {dec[True]['compile']:.1f} | {hf_others:.2f} / {our_others:.2f} |"
        )
        print(rows[-1], flush=True)
    del hf, prior, jb, params
    gc.collect()
    return results


# ----------------------------------------------------------------------------------------
# Full-size structures: ours only (and HF's 1b with --hf-full)


def full_inputs(cfg: PriorConfig, batch: int = 1):
    labels = jnp.asarray(top_labels(cfg, batch), jnp.int32)
    upper = None
    if cfg.conditioner is not None:  # the window's codes of the level above
        upper = jax.random.randint(jax.random.key(3), (batch, cfg.n_ctx // cfg.cond_downsample), 0, cfg.l_bins)
    return labels, upper


def run_full(name: str, args, bw: float, rows: list[str]) -> dict:
    cfg = preset(name)
    start = time.perf_counter()
    params = jax.jit(jbprior.init_params, static_argnums=0)(cfg, jax.random.key(0))
    params = jax.block_until_ready(params)
    init_s = time.perf_counter() - start
    n_params = sum(x.size for x in jax.tree.leaves(params))
    labels, upper = full_inputs(cfg)
    p_len = args.full_prompt
    prompt = jax.random.randint(jax.random.key(4), (1, p_len), 0, cfg.l_bins)
    ours = Ours(cfg, params, labels, upper, prompt)
    n = args.full_tokens
    print(f"\n## {name}: {n_params / 1e9:.3f} B params ({init_s:.0f} s to init), {cfg.transformer.depth} layers, "
          f"prefill {ours.seq.shape[1]} positions, {n} decode tokens; load {load()}", flush=True)  # fmt: skip
    print(f"  {wait_idle(args.max_wait)}", flush=True)
    others = Others().start()
    pf_first, pf_times = ours.time_prefill(max(1, args.repeats - 1), per_layer=True)
    print(f"  prefill {[round(x, 2) for x in pf_times]} s (first {pf_first:.1f} s): {ours.seq.shape[1] / STAT(pf_times):.0f} tokens/s")
    dec = {}
    for per_layer in (False, True):
        dec[per_layer] = ours.decode_rate(n, args.repeats, per_layer)
        print(f"  decode {'per layer' if per_layer else 'stacked'}: " + describe(dec[per_layer], n), flush=True)
    our_others = others.cores()
    print(f"  other processes used {our_others:.2f} cores meanwhile")
    w_bytes, kv_bytes = decode_bytes(cfg, params, 1)
    floor = (w_bytes + kv_bytes) / (bw * 1e9)
    best = min(dec[False]["step"], dec[True]["step"])
    rows.append(
        f"| {name} | {n_params / 1e9:.2f} B | {1e3 * dec[False]['step']:.0f} | {1e3 * dec[True]['step']:.0f} | "
        f"{1e3 * floor:.0f} ({(w_bytes + kv_bytes) / 1e9:.2f} GB) | {best / floor:.2f} | "
        f"{dec[False]['compile']:.1f} / {dec[True]['compile']:.1f} | {dec[False]['per_call']:.2f} / {dec[True]['per_call']:.2f} | {our_others:.2f} |"
    )
    print(rows[-1], flush=True)
    result = dict(stacked=dec[False], per_layer=dec[True], floor=floor, best=best)
    del ours, params
    gc.collect()
    return result


def run_formats(name: str, args, bw: float, rows: list[str]) -> None:
    """Decode ms/token of the full-size prior `name` (random weights) per weight format
    (`--formats`: float32; bfloat16 weights and compute; int8 weights with float32 compute) at
    each of `--batches`, one buffer per layer (`Jukebox.sample`'s layout), against each format's
    own floor (its weight bytes, the head, and the KV entries in its cache dtype). Decoding
    starts after the lyric prefix and 8 music tokens from a zero cache (what the cache holds
    does not change a step's cost; a 16-bit prefill at batch 16 takes minutes on this CPU),
    in timed calls of N and of 1 steps continuing the same state (nor does the position;
    copying the state for each call would need a second batch-16 cache, 10 GB here). One format's
    model exists at a time, beside the float32 one it is made from."""
    cfg = preset(name)
    f32 = Jukebox(JukeboxConfig(priors=(cfg,)), {f"prior_level_{cfg.level}": jax.jit(jbprior.init_params, static_argnums=0)(cfg, jax.random.key(0))})
    make = {"float32": lambda: f32, "bfloat16": lambda: f32.astype("bfloat16"), "int8": lambda: f32.quantize("int8")}
    for fmt in args.formats:
        jb = make[fmt]()
        c = jb.config.priors[0]
        params = jb.params[f"prior_level_{c.level}"]
        weights = jax.block_until_ready(jbprior.decode_params(c, params))
        for batch in args.batches:
            labels, upper = full_inputs(c, batch)
            ctx = jbprior.condition(c, params, labels, upper)
            seq = jbprior.sequence(c, jax.random.randint(jax.random.key(4), (batch, 8), 0, c.l_bins), labels)
            tokens, cache = init_buffers(c, seq)  # a step costs the same whatever the cache holds: no prefill
            state = jax.block_until_ready(SampleState(tokens, cache, jnp.int32(seq.shape[1]), row_keys(jax.random.key(0), batch)))
            print(f"\n## {name} {fmt} batch {batch}: {wait_idle(args.max_wait)}", flush=True)
            others = Others().start()

            def call(n: int) -> float:
                nonlocal state
                start = time.perf_counter()
                state = jax.block_until_ready(decode(c, weights, ctx, state, METHOD, n)[0])
                return time.perf_counter() - start

            n = args.format_tokens
            first = call(n)
            call(1)
            long = STAT([call(n) for _ in range(args.repeats)])
            short = STAT([call(1) for _ in range(args.repeats)])
            step = (long - short) / (n - 1)
            w_bytes, kv_bytes = decode_bytes(c, weights, batch)
            floor = (w_bytes + kv_bytes) / (bw * 1e9)
            rows.append(f"| {name} | {fmt} | {batch} | {1e3 * step:.1f} | {1e3 * floor:.1f} ({(w_bytes + kv_bytes) / 1e9:.2f} GB) | "
                        f"{step / floor:.2f} | {first - long:.1f} | {others.cores():.2f} |")  # fmt: skip
            print(rows[-1], flush=True)
            del state
        del weights, params, jb
        gc.collect()
    del f32
    gc.collect()


def run_hf_full(args) -> float:
    """HF's own 1b_lyrics top prior (random weights, not ours), ms/token at batch 1."""
    from transformers import JukeboxConfig as HFJukeboxConfig
    from transformers import JukeboxModel

    prior_cfg = dict(hidden_size=2048, num_layers=72, n_heads=2, attention_pattern="enc_dec_with_lyrics", blocks=64,
                     n_ctx=6144, merged_decoder=False, is_encoder_decoder=True, nb_relevant_lyric_tokens=384,
                     lyric_vocab_size=79, metadata_dims=[604, 7898])  # fmt: skip
    cfg = HFJukeboxConfig(prior_config_list=[prior_cfg], nb_priors=1, timing_dims=64, min_duration=17.84, max_nb_genres=1)
    from hf_reference import redraw_jukebox

    start = time.perf_counter()
    model = JukeboxModel(cfg).eval()
    redraw_jukebox(model, 7)  # HF leaves some weights uninitialised (NaN logits otherwise)
    prior = model.priors[0]
    print(f"\n## HF 1b_lyrics ({time.perf_counter() - start:.0f} s to build); load {load()}", flush=True)
    ours_cfg = preset("1b_lyrics")
    labels = torch.from_numpy(top_labels(ours_cfg, 1))
    p_len, n = args.full_prompt, args.full_tokens
    prompt = torch.randint(0, ours_cfg.l_bins, (1, p_len))

    def call(total: int) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            prior.sample(1, music_tokens=prompt, metadata=labels, sample_tokens=total)
        return time.perf_counter() - start

    print(f"  {wait_idle(args.max_wait)}", flush=True)
    others = Others().start()
    call(p_len + 2)
    short, long = [], []
    for _ in range(max(1, args.repeats - 1)):
        short.append(call(p_len + 1))
        long.append(call(p_len + 1 + n))
    step = (STAT(long) - STAT(short)) / n
    prefill_s = STAT(short) - step
    print(f"  short {[round(x, 2) for x in short]} s, long {[round(x, 2) for x in long]} s: {1e3 * step:.0f} ms/token, "
          f"prefill {(p_len + ours_cfg.n_tokens) / prefill_s:.0f} tokens/s; others used {others.cores():.2f} cores", flush=True)  # fmt: skip
    del model, prior
    gc.collect()
    return step


# ----------------------------------------------------------------------------------------
# Layout: what stacking the layers' weights costs a decode step on this backend


def run_layout(args, bw: float, rows: list[str]) -> None:
    """A chain of the 1b top prior's per-layer matmuls at batch 1 (`--layout-layers` layers of
    x @ [w, 3 * attn], [attn, w], [w, mlp], [mlp, w]), `fori_loop` of 8 steps, with the weights
    (a) stacked `[layers, ...]` and the layers unrolled (static slices), (b) stacked and
    `lax.scan`ned, (c) one buffer per layer. No attention, no cache: the weight stream alone."""
    t = preset("1b_lyrics").transformer
    w, a, m, n_layers, steps = t.width, t.attn_width, t.mlp_width, args.layout_layers, 8
    shapes = [(w, 3 * a), (a, w), (w, m), (m, w)]
    stacked = [0.02 * jax.random.normal(jax.random.key(i), (n_layers, *s), jnp.float32) for i, s in enumerate(shapes)]
    nbytes = sum(x.nbytes for x in stacked)

    def layer(x, ws):
        qkv, proj, fc, out = ws
        x = x + (x @ qkv)[:, :a] @ proj
        return x + jax.nn.gelu(x @ fc) @ out

    def unrolled(x, st):
        return jax.lax.fori_loop(0, steps, lambda i, x: functools.reduce(lambda x, r: layer(x, [s[r] for s in st]), range(n_layers), x), x)

    def scanned(x, st):
        return jax.lax.fori_loop(0, steps, lambda i, x: jax.lax.scan(lambda x, ws: (layer(x, ws), None), x, st)[0], x)

    def separate(x, per_layer):
        return jax.lax.fori_loop(0, steps, lambda i, x: functools.reduce(layer, per_layer, x), x)

    x = jnp.ones((1, w), jnp.float32)
    print(f"\n## layout: {n_layers} layers of the 1b top prior's matmuls, {nbytes / 1e9:.2f} GB; {wait_idle(args.max_wait)}", flush=True)
    for name, fn in (("stacked, unrolled", unrolled), ("stacked, scanned", scanned), ("one buffer per layer", separate)):
        if fn is separate:
            stacked = jax.block_until_ready([[s[r] + 0 for s in stacked] for r in range(n_layers)])
        f = jax.jit(fn)
        others = Others().start()
        first, times = timed(lambda: jax.block_until_ready(f(x, stacked)), args.repeats)
        ms = 1e3 * STAT(times) / steps
        floor = 1e3 * nbytes / (bw * 1e9)
        rows.append(f"| {name} | {n_layers} | {ms:.1f} | {nbytes / (ms / 1e3) / 1e9:.1f} | {ms / floor:.2f} | {others.cores():.2f} |")
        print(rows[-1], flush=True)
    del stacked
    gc.collect()


# ----------------------------------------------------------------------------------------



def _steady(step: float) -> float:
    """A per-step time from a difference of timings; NaN where the timings' noise exceeds it
    (too few steps or repeats: a negative time was reported, and met its target)."""
    return step if step > 0 else math.nan


def _met(value: float, ok: bool) -> str:
    return "NOT MEASURED (timing noise: give more tokens or --repeats)" if math.isnan(value) else "MET" if ok else "NOT MET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["mid", "1b", "upsampler"], choices=["mid", "1b", "upsampler", "layout", "formats"])
    parser.add_argument("--tokens", type=int, default=128, help="decode tokens timed (mid)")
    parser.add_argument("--prompt", type=int, default=0, help="prompt tokens (mid; default half the window)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--full-tokens", type=int, default=16, help="decode tokens timed (1b, upsampler)")
    parser.add_argument("--full-prompt", type=int, default=64, help="music prompt tokens (1b, upsampler)")
    parser.add_argument("--hf-full", action="store_true", help="also HF's own 1b_lyrics decode")
    parser.add_argument("--layout-layers", type=int, default=72, help="layers in the layout part")
    parser.add_argument("--tiny", action="store_true", help="the tiny test twins of 1b_lyrics and upsampler_level_0 (smoke test)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--formats", nargs="+", default=["float32", "bfloat16", "int8"], choices=["float32", "bfloat16", "int8"])
    parser.add_argument("--format-tokens", type=int, default=4, help="decode tokens per timed call (formats)")
    parser.add_argument("--mid-width", type=int, default=512)
    parser.add_argument("--mid-depth", type=int, default=8)
    parser.add_argument("--mid-ctx", type=int, default=1024)
    parser.add_argument("--mid-blocks", type=int, default=16)
    parser.add_argument("--mid-heads", type=int, default=2)
    parser.add_argument("--bandwidth-mib", type=int, default=1024)
    parser.add_argument("--max-wait", type=float, default=300, help="seconds to wait for other processes to go idle")
    args = parser.parse_args()

    torch.set_flush_denormal(True)
    today = datetime.date.today().isoformat()
    print(f"# {today}, {machine()}, jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); load {load()}")  # fmt: skip
    print(f"# {' '.join(sys.argv)}")
    idle = wait_idle(args.max_wait)
    others = Others().start()
    bws = bandwidth(args.bandwidth_mib)
    print(f"# bandwidth measured with {others.cores():.2f} other cores busy ({idle} before)")
    bw = max(bws.values())  # each is a lower bound on what the memory can stream; the floor takes the best
    print("# memory bandwidth (GB/s): " + ", ".join(f"{k} {v:.1f}" for k, v in bws.items()) + f"; floor uses {bw:.1f}", flush=True)

    mid_rows, full_rows, verdicts = [], [], []
    if "mid" in args.parts:
        res = run_mid(args, bw, mid_rows)
        for batch, target in ((1, 4.0), (16, 3.0)):
            if batch in res:
                r = res[batch]
                speedup = r["hf_step"] / r["best"]
                verdicts.append(f"mid decode batch {batch}: {speedup:.1f}x HF's tokens/s (target >= {target:.0f}x): "
                                f"{_met(speedup, speedup >= target)}")  # fmt: skip
                ratio = r["ours_prefill_tps"] / r["hf_prefill_tps"]
                verdicts.append(f"mid prefill batch {batch}: {ratio:.1f}x HF's tokens/s (target >= 1x): {_met(ratio, ratio >= 1)}")
    full = {}
    prefix = "tiny_" if args.tiny else ""
    for part, name in (("1b", "1b_lyrics"), ("upsampler", "upsampler_level_0")):
        if part in args.parts:
            full[name] = run_full(prefix + name, args, bw, full_rows)
            gc.collect()
    if "1b_lyrics" in full:
        r = full["1b_lyrics"]
        verdicts.append(f"1b_lyrics decode batch 1: {r['best'] / r['floor']:.2f}x the floor (target <= 1.3x): "
                        f"{_met(r['best'], r['best'] / r['floor'] <= 1.3)}")  # fmt: skip
    hf_full = run_hf_full(args) if args.hf_full else None
    format_rows = []
    if "formats" in args.parts:
        for name in ("1b_lyrics", "upsampler_level_0"):
            run_formats(prefix + name, args, bw, format_rows)
    layout_rows = []
    if "layout" in args.parts:
        run_layout(args, bw, layout_rows)
    if hf_full is not None and "1b_lyrics" in full:
        verdicts.append(f"1b_lyrics decode batch 1: HF {1e3 * hf_full:.0f} ms/token, ours {1e3 * full['1b_lyrics']['best']:.0f} "
                        f"({hf_full / full['1b_lyrics']['best']:.1f}x)")  # fmt: skip

    print(f"\n# {today}, {machine()}, jax {jax.__version__}, torch {torch.__version__}; load at the end {load()}")
    if mid_rows:
        print("\n| model | batch | HF ms/step | ours stacked | ours per layer | speedup | floor ms (bytes) | ours / floor "
              "| HF prefill tok/s | ours prefill tok/s | our decode compile s (stacked / per layer) | others' cores (HF / ours) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(mid_rows))
    if full_rows:
        print("\n| structure | params | ours stacked ms/token | ours per layer ms/token | floor ms (bytes) | ours / floor | compile s (stacked / per layer) | fixed s per call (stacked / per layer) | others' cores |")
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(full_rows))
    if format_rows:
        print("\n| structure | format | batch | ms/token | floor ms (bytes) | / floor | compile s | others' cores |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(format_rows))
    if layout_rows:
        print("\n| weights (1b matmuls only, batch 1) | layers | ms/step | GB/s | / floor | others' cores |")
        print("|---|---|---|---|---|---|")
        print("\n".join(layout_rows))
    if verdicts:
        print("\n" + "\n".join(f"- {v}" for v in verdicts))


if __name__ == "__main__":
    main()
