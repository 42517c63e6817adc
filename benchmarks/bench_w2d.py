"""Whole-slide 2-D benchmark: ngff-tiles convert vs the hand-written tifffile + ome-zarr baseline.

    .venv/bin/python benchmarks/bench_w2d.py [--grid 8] [--tile 2048] [--overlap 0.10]
                                             [--workdir benchmarks/_work] [--repeat 1]
                                             [--baseline-chunks N] [--profile] [--json PATH]

Generates (once, cached under ``<workdir>/data`` by parameters) a grid of uint16 tiles with
``synthetic.write_dataset`` (uncompressed OME-TIFF, dark.tif, flat.tif), warms the page cache by
reading every file once, then runs each approach in a fresh child process and prints a table:
wall seconds (reading included, interpreter start-up and imports excluded), input MB/s (input
bytes = sum of tile pixel bytes, 10^6 B per MB), peak RSS of the child, output size on disk and
the speed-up over the baseline. The best of ``--repeat`` runs is reported. The page cache cannot
be dropped here, so every run reads the tiles warm from memory.

Approaches
    ``ngff-tiles 0.5``: ``convert()`` with linear blending, dark + flat correction, full pyramid,
    default writer options (NGFF 0.5, sharded, blosc-zstd).
    ``ngff-tiles 0.4``: the same with ``ngff_version="0.4"``.
    ``baseline``: tifffile reads each tile, numpy pastes it at its rounded OME position into one
    full array (last tile wins, no correction, no blending), then
    ``ome_zarr.writer.write_image(image, group, axes="yx")`` with ome-zarr's defaults.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DEFAULT_WORKDIR,
    Run,
    ensure_dataset,
    machine_lines,
    measure,
    pick,
    profile_summary,
    run_child,
    table,
    warm_page_cache,
)

APPROACHES = ("ngff-0.5", "ngff-0.4", "baseline")
LABELS = {
    "ngff-0.5": "ngff-tiles 0.5",
    "ngff-0.4": "ngff-tiles 0.4",
    "baseline": "baseline (tifffile+ome-zarr)",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--grid", type=int, default=8, help="tiles per side (default 8)")
    p.add_argument("--tile", type=int, default=2048, help="tile size in pixels (default 2048)")
    p.add_argument("--overlap", type=float, default=0.10, help="overlap fraction (default 0.10)")
    p.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="data and outputs (default benchmarks/_work)"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per approach; the fastest is reported")
    p.add_argument("--workers", type=int, default=None, help="ngff-tiles threads (default: one per core)")
    p.add_argument(
        "--approaches",
        default=",".join(APPROACHES),
        help=f"comma-separated subset of {','.join(APPROACHES)}",
    )
    p.add_argument(
        "--baseline-chunks",
        type=int,
        default=None,
        help="also run the baseline with storage_options chunks=(N, N) (ome-zarr's default is one chunk)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, profile one ngff-tiles 0.5 run (cProfile, synchronous scheduler) and summarise it",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    approaches = pick(args.approaches, APPROACHES, "approaches")
    workdir = args.workdir.resolve()
    data, bytes_in = ensure_dataset(workdir, (args.grid, args.grid), args.tile, args.overlap)
    out_dir = workdir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)

    for line in machine_lines():
        print(line)
    print(
        f"data: {args.grid}x{args.grid} tiles of {args.tile}x{args.tile} uint16, overlap {args.overlap:g}, "
        f"{bytes_in / 1e6:.1f} MB of pixels, uncompressed OME-TIFF in {data}"
    )
    warm = warm_page_cache(data)
    print(
        f"warm-up read of all files: {warm:.2f} s; every run reads the tiles warm from the page cache "
        f"(dropping it needs root), best of {args.repeat} run(s), each in a fresh process"
    )

    runs: list[Run] = []
    for name in approaches:
        if name.startswith("ngff"):
            version = name.split("-", 1)[1]
            cfg = {
                "mode": "ngff",
                "data": str(data),
                "out": str(out_dir / f"ngff-{version}.ome.zarr"),
                "version": version,
                "workers": args.workers,
            }
        else:
            cfg = {"mode": "baseline", "data": str(data), "out": str(out_dir / "baseline.ome.zarr")}
        print(f"running {LABELS[name]} ...", flush=True)
        runs.append(measure(LABELS[name], cfg, args.repeat))
        if name == "baseline" and args.baseline_chunks:
            n = args.baseline_chunks
            cfg = {**cfg, "out": str(out_dir / f"baseline-{n}.ome.zarr"), "chunks": [n, n]}
            print(f"running baseline with {n}x{n} chunks ...", flush=True)
            runs.append(measure(f"baseline, chunks {n}x{n}", cfg, args.repeat))

    base = next((r for r in runs if r.label == LABELS["baseline"]), None)
    rows = []
    for r in runs:
        ratio = f"{base.seconds / r.seconds:.2f}x" if base else "-"
        rows.append(
            [
                r.label,
                f"{r.seconds:.2f}",
                f"{r.mb_per_s:.1f}",
                f"{r.peak_rss_mb:.0f}",
                f"{r.out_bytes / 1e6:.1f}",
                ratio,
            ]
        )
    print()
    print(
        table(
            ["approach", "seconds", "input MB/s", "peak RSS MB", "output MB", "speed vs baseline"],
            rows,
        )
    )
    print()
    for r in runs:
        print(f"{r.label}: all runs " + ", ".join(f"{t:.2f}" for t in r.extra["all_seconds"]) + " s")
    for r in runs:
        if "level_shapes" in r.extra:
            shapes = ", ".join("x".join(str(v) for v in s[3:]) for s in r.extra["level_shapes"])
            print(
                f"{r.label}: {len(r.extra['level_shapes'])} levels ({shapes}), "
                f"{r.extra['blocks']} block tasks"
            )
        elif "read_paste_seconds" in r.extra:
            print(
                f"{r.label}: read + paste {r.extra['read_paste_seconds']:.2f} s, "
                f"write_image {r.seconds - r.extra['read_paste_seconds']:.2f} s, "
                f"image {r.extra['shape'][0]}x{r.extra['shape'][1]}"
            )
    if args.profile:
        out = out_dir / "profile.ome.zarr"
        if out.exists():
            shutil.rmtree(out)
        stats = workdir / "convert.prof"
        cfg = {"mode": "ngff", "data": str(data), "out": str(out), "version": "0.5", "profile": str(stats)}
        res = run_child(cfg)
        print()
        print(
            f"profiled ngff-tiles 0.5 run: {res['seconds']:.2f} s with one task at a time (stats in {stats})"
        )
        for line in profile_summary(stats, res["seconds"], res["pipeline_file"]):
            print(line)
    if args.json:
        args.json.write_text(
            json.dumps(
                [r.to_dict() for r in runs],
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
