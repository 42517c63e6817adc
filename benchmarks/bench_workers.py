"""Distributed speed-up: ngff-tiles on a dask.distributed LocalCluster of 1 and 2 workers vs threads.

    .venv/bin/python benchmarks/bench_workers.py [--grid 8] [--tile 2048] [--z 1] [--overlap 0.10]
        [--modes threads,threads-1,workers-1,workers-2] [--repeat 3] [--workdir benchmarks/_work]
        [--json PATH]

The W2D data of ``bench_w2d.py`` (cached under ``<workdir>/data``), page cache warmed, then the
same conversion (linear blending, dark + flat unless ``--no-correction``, full pyramid, default
writer) in a fresh child process per run with:

- ``threads``: the default, ``ExecutionOptions()``: dask's threaded scheduler, one thread per core.
- ``threads-1``: ``ExecutionOptions(max_workers=1)``.
- ``workers-N``: ``ExecutionOptions(workers=N)``: ngff-tiles starts a ``LocalCluster`` of N worker
  processes with one thread each on 127.0.0.1, runs the graph there and closes it. The wall time
  includes starting the cluster (spawning and importing in each worker) and shipping results.
  ngff-tiles leaves dask's ``MALLOC_TRIM_THRESHOLD_`` out of the workers' environment.
- ``workers-N-trim``: the same with dask's default ``MALLOC_TRIM_THRESHOLD_=65536`` put back
  (``ExecutionOptions(worker_malloc_trim=65536)``): it turns off glibc's adaptive reuse of large
  freed blocks, so every block-sized array becomes a fresh mmap whose pages fault in again.

Peak RSS: ``main`` is the child's ``ru_maxrss`` (the client, for workers-N); ``largest worker``
the ``ru_maxrss`` of its largest reaped child process; ``all processes`` the peak of the summed
RSS of the child and its descendants, sampled every 50 ms (may miss short spikes). The table
also says whether the output's arrays are byte-identical to the ``threads`` run (every file but
the ``zarr.json``/``.zattrs`` metadata, which holds the start time), and prints the speed-up of
2 workers over 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DEFAULT_WORKDIR,
    Run,
    ensure_dataset,
    machine_lines,
    measure,
    pick,
    table,
    warm_page_cache,
)

MODES = ("threads", "threads-1", "workers-1", "workers-2", "workers-1-trim", "workers-2-trim")
LABELS = {
    "threads": "threads (default, 1 per core)",
    "threads-1": "threads, max_workers=1",
    "workers-1": "LocalCluster, 1 worker x 1 thread",
    "workers-2": "LocalCluster, 2 workers x 1 thread",
    "workers-1-trim": "1 worker, dask's MALLOC_TRIM_THRESHOLD_",
    "workers-2-trim": "2 workers, dask's MALLOC_TRIM_THRESHOLD_",
}


def array_digest(store: Path) -> str:
    """SHA-256 over the relative paths and bytes of every file but the group/array metadata."""
    h = hashlib.sha256()
    for dirpath, dirnames, files in os.walk(store):
        dirnames.sort()
        for name in sorted(files):
            if name in ("zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata"):
                continue
            path = Path(dirpath) / name
            h.update(str(path.relative_to(store)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def config(mode: str, data: Path, out: Path, correct: bool = True) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "mode": "ngff",
        "data": str(data),
        "out": str(out),
        "version": "0.5",
        "correct": correct,
    }
    if mode == "threads-1":
        cfg["workers"] = 1
    elif mode.startswith("workers-"):
        cfg["distributed"] = int(mode.split("-")[1])
        cfg["threads"] = 1
        if mode.endswith("-trim"):
            cfg["malloc_trim"] = 65536
    return cfg


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--grid", type=int, default=8, help="tiles per side (default 8)")
    p.add_argument("--tile", type=int, default=2048, help="tile size in pixels (default 2048)")
    p.add_argument("--z", type=int, default=1, help="planes per tile (default 1)")
    p.add_argument("--overlap", type=float, default=0.10, help="overlap fraction (default 0.10)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument("--repeat", type=int, default=3, help="runs per mode; the fastest is reported (default 3)")
    p.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="data and outputs (default benchmarks/_work)"
    )
    p.add_argument(
        "--no-correction",
        action="store_true",
        help="convert without the dark and flat images (they travel inside every level-0 task)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modes = pick(args.modes, MODES, "modes")
    workdir = args.workdir.resolve()
    data, bytes_in = ensure_dataset(workdir, (args.grid, args.grid), args.tile, args.overlap, args.z)
    out_dir = workdir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    for line in machine_lines():
        print(line)
    try:
        from importlib import metadata

        print(f"distributed {metadata.version('distributed')}")
    except Exception:  # informative only
        print("distributed: not installed (workers-N modes will fail)")
    print(
        f"data: {args.grid}x{args.grid} tiles of {args.z}x{args.tile}x{args.tile} uint16, overlap "
        f"{args.overlap:g}, {bytes_in / 1e6:.1f} MB of pixels in {data}"
    )
    warm = warm_page_cache(data)
    print(f"warm-up read {warm:.2f} s; best of {args.repeat} run(s), each in a fresh process")
    print(
        "linear blend, full pyramid, "
        + ("no dark/flat correction" if args.no_correction else "dark + flat correction")
    )

    runs: list[tuple[str, Run, str]] = []
    for mode in modes:
        out = out_dir / f"workers-{mode}.ome.zarr"
        print(f"running {LABELS[mode]} ...", flush=True)
        run = measure(LABELS[mode], config(mode, data, out, not args.no_correction), args.repeat)
        digest = array_digest(out)  # of the last run (every run writes the same bytes)
        shutil.rmtree(out, ignore_errors=True)
        runs.append((mode, run, digest))

    ref = next((d for m, _, d in runs if m == "threads"), None)
    one = next((r for m, r, _ in runs if m == "workers-1"), None)
    rows = []
    for _, r, digest in runs:
        tree = r.extra.get("tree_peak_rss_mb")
        worker = r.extra.get("largest_worker_rss_mb")
        rows.append(
            [
                r.label,
                f"{r.seconds:.2f}",
                f"{r.mb_per_s:.1f}",
                f"{r.peak_rss_mb:.0f}",
                f"{worker:.0f}" if worker is not None else "-",
                f"{tree:.0f}" if tree is not None else f"{r.peak_rss_mb:.0f}",
                f"{one.seconds / r.seconds:.2f}x" if one else "-",
                "-" if ref is None else ("yes" if digest == ref else "NO"),
            ]
        )
    print()
    print(
        table(
            [
                "execution",
                "seconds",
                "input MB/s",
                "peak RSS MB (main)",
                "largest worker MB",
                "all processes MB",
                "vs 1 worker",
                "same arrays as threads",
            ],
            rows,
        )
    )
    print()
    for _, r, _ in runs:
        print(f"{r.label}: all runs " + ", ".join(f"{t:.2f}" for t in r.extra["all_seconds"]) + " s")
    for suffix, what in (("", ""), ("-trim", " with dask's MALLOC_TRIM_THRESHOLD_")):
        a = next((r for m, r, _ in runs if m == f"workers-1{suffix}"), None)
        b = next((r for m, r, _ in runs if m == f"workers-2{suffix}"), None)
        if a and b:
            print(
                f"2-worker vs 1-worker speed-up{what}: {a.seconds / b.seconds:.2f}x "
                f"({a.seconds:.2f} s -> {b.seconds:.2f} s, best of {args.repeat})"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "mode": m,
                        "label": r.label,
                        "seconds": r.seconds,
                        "mb_per_s": r.mb_per_s,
                        "peak_rss_mb": r.peak_rss_mb,
                        "bytes_in": r.bytes_in,
                        "array_digest": d,
                        **{
                            k: v
                            for k, v in r.extra.items()
                            if k not in ("seconds", "peak_rss_mb", "bytes_in")
                        },
                    }
                    for m, r, d in runs
                ],
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
