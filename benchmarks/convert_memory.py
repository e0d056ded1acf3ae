"""Peak host memory of `jukebox-jax convert` on a full-size prior file in the original format,
against the size of what it writes (issue 10: "converting the released files must not need
twice their size in host RAM").

    python benchmarks/convert_memory.py [--preset 1b_lyrics] [--source float32] [--dtype float32 bfloat16] [--old-format] [--dir /tmp]

Writes a random-weight `prior_level_{L}.pth.tar` of the preset's structure, tensor by tensor
from the converter's name table (each tensor a slice of a memory-mapped scratch file, so this
process never holds the weights), then runs `jukebox-jax convert FILE --config PRESET -o OUT
--dtype D` once per target dtype in a child process and reports the child's peak resident set
(its own `VmHWM` at exit: `ru_maxrss` would count this parent's memory, which the child's
exec inherits as its high-water mark) beside the converted weights' size. Deletes everything
it wrote.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from convert.table_prior import prior_rows
from jukebox_jax.config import DType, JukeboxConfig, preset
from jukebox_jax.params import abstract_params, flatten

ROOT = Path(__file__).resolve().parents[1]


def write_original(path: Path, level_preset: str, source: torch.dtype, scratch: Path, zip_format: bool = True) -> int:
    """A random-weight original checkpoint of the prior `level_preset` at `path` (weights in
    `source`; in torch's zip format, or the older one the converter reads whole); returns the
    weights' bytes."""
    cfg = preset(level_preset)
    template = flatten(abstract_params(JukeboxConfig(priors=(cfg,))))
    rows = prior_rows(cfg, 0)
    shapes = {}
    for r in rows:
        ours = tuple(template[r.path].shape)
        shapes[r.original] = r.torch_shape(ours[1:] if r.index is not None else ours)
    owned = [r for r in rows if not r.tied]
    sizes = [math.prod(shapes[r.original]) for r in owned]
    np_dtype = torch.empty(0, dtype=source).numpy().dtype
    pool = np.memmap(scratch, np_dtype, "w+", shape=(sum(sizes),))  # file-backed: reclaimable page cache, not anonymous memory
    rng, state, start = np.random.default_rng(0), {}, 0
    for r, n in zip(owned, sizes):
        view = pool[start : start + n]
        view[:] = rng.standard_normal(n, np.float32) * 0.02
        state[r.original] = torch.from_numpy(view).view(shapes[r.original])  # its own storage: saved as its own record
        start += n
    for r in rows:
        if r.tied:  # the original saves a tied weight's two names as one storage
            state[r.original] = state[next(o.original for o in owned if o.path == r.path)]
    torch.save({"model": state, "hps": {"level": cfg.level, "sr": 44100}}, path, _use_new_zipfile_serialization=zip_format)
    return start * pool.itemsize


_REPORT_PEAK = """
import atexit, runpy, sys
atexit.register(lambda: print("VmHWM", open("/proc/self/status").read().split("VmHWM:")[1].split()[0], file=sys.stderr))
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def peak_rss(module: str, *args: str) -> tuple[int, float, int]:
    """Runs `python -m module args` in a child; its exit status, seconds, and peak resident set in bytes."""
    start = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", _REPORT_PEAK, module, *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    peak = [int(line.split()[1]) * 1024 for line in child.stderr.splitlines() if line.startswith("VmHWM ")]
    sys.stderr.write("".join(line + "\n" for line in child.stderr.splitlines() if not line.startswith("VmHWM ")))
    return child.returncode, time.perf_counter() - start, peak[-1]


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="1b_lyrics", help="the prior's preset (default: %(default)s)")
    p.add_argument("--source", default="float32", choices=["float32", "float16"], help="dtype of the file's weights")
    p.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"], help="target dtypes, one conversion each")
    p.add_argument("--old-format", action="store_true", help="write the file in torch's pre-1.6 (non-zip) format")
    p.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where to write the file and the checkpoints")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(dir=args.dir, prefix="convert_memory_"))
    try:
        start = time.perf_counter()
        source = work / f"prior_level_{preset(args.preset).level}.pth.tar"
        weights = write_original(source, args.preset, getattr(torch, args.source), work / "scratch.bin", not args.old_format)
        (work / "scratch.bin").unlink()
        print(f"# {datetime.date.today()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB, torch {torch.__version__}")  # fmt: skip
        print(f"{args.preset} ({args.source}{', pre-1.6 format' if args.old_format else ''}): {source.stat().st_size / 1e9:.2f} GB file, weights {weights / 1e9:.2f} GB, "
              f"written in {time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
        baseline = peak_rss("convert.convert")[2]
        print(f"baseline (python with jax, torch and the converter imported): peak RSS {baseline / 1e9:.2f} GB", flush=True)
        for dtype in args.dtype:
            out = work / f"out_{dtype}"
            rc, seconds, peak = peak_rss("jukebox_jax.cli", "convert", str(source), "--config", args.preset, "-o", str(out), "--dtype", dtype)
            if rc != 0:
                sys.exit(f"convert to {dtype} failed with exit status {rc}")
            size = sum(math.prod(x.shape) * x.dtype.itemsize for x in flatten(abstract_params(JukeboxConfig(priors=(preset(args.preset),)).astype(DType.parse(dtype)))).values())  # fmt: skip
            print(f"-> {dtype}: {seconds:.0f} s, peak RSS {peak / 1e9:.2f} GB = {(peak - baseline) / size:.2f} x the converted "
                  f"weights ({size / 1e9:.2f} GB; checkpoint on disk {folder_bytes(out) / 1e9:.2f} GB) + baseline", flush=True)  # fmt: skip
            shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
