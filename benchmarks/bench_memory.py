"""Memory benchmark: peak RSS of ngff-tiles convert for datasets of increasing size.

    .venv/bin/python benchmarks/bench_memory.py [--grids 4,8,16] [--tile 2048] [--z 1]
        [--overlap 0.10] [--workdir benchmarks/_work] [--max-levels N] [--repeat 1]
        [--baseline] [--baseline-max-gb 2.5] [--drop-data-above-gb X]

For each grid size a synthetic dataset is generated tile by tile (cached under ``<workdir>/data``)
and converted in a fresh child process (linear blending, dark + flat, full pyramid, default
writer options); the table gives input GB, wall seconds (best of ``--repeat``), input MB/s,
seconds per GB of input and the child's peak resident set size (``ru_maxrss``; the interpreter
and its imports included). The claims it checks: the peak is bounded by the block size and the
number of threads, not by the size of the dataset; the time per GB is flat. After the table it
prints the spread of ngff-tiles' seconds per GB and peak RSS over the sizes (max/min and the
largest deviation from their median).
``--baseline`` also runs the hand-written tifffile + ome-zarr baseline of ``bench_w2d.py`` on each
size up to ``--baseline-max-gb``; its peak grows with the fused image. Outputs are deleted after
each size unless ``--keep``; ``--drop-data-above-gb X`` also deletes the cached input of every
size above X GB once it is measured (a 32x32 grid of 2048² tiles is 8.6 GB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DEFAULT_WORKDIR,
    ensure_dataset,
    machine_lines,
    measure,
    table,
    warm_page_cache,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--grids", default="4,8,16", help="comma-separated tiles per side (default 4,8,16)")
    p.add_argument("--tile", type=int, default=2048, help="tile size in pixels (default 2048)")
    p.add_argument("--z", type=int, default=1, help="planes per tile (default 1)")
    p.add_argument("--overlap", type=float, default=0.10, help="overlap fraction (default 0.10)")
    p.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="data and outputs (default benchmarks/_work)"
    )
    p.add_argument("--workers", type=int, default=None, help="ngff-tiles threads (default: one per core)")
    p.add_argument(
        "--max-levels",
        type=int,
        default=None,
        help="ngff-tiles PyramidOptions(max_levels=N) (default: the full pyramid, down to one chunk)",
    )
    p.add_argument("--baseline", action="store_true", help="also run the tifffile + ome-zarr baseline")
    p.add_argument(
        "--baseline-max-gb",
        type=float,
        default=2.5,
        help="skip the baseline above this input size (its peak RSS is several times the input)",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per size; the fastest is reported")
    p.add_argument(
        "--drop-data-above-gb",
        type=float,
        default=None,
        help="delete the cached input of sizes above this many GB after measuring them",
    )
    p.add_argument("--keep", action="store_true", help="keep the outputs")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    grids = [int(g) for g in args.grids.split(",") if g.strip()]
    workdir = args.workdir.resolve()
    out_dir = workdir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    for line in machine_lines():
        print(line)
    print(
        f"tiles of {args.z}x{args.tile}x{args.tile} uint16, overlap {args.overlap:g}; ngff-tiles: "
        "NGFF 0.5, linear blend, dark+flat, "
        + ("full pyramid" if args.max_levels is None else f"max_levels={args.max_levels}")
        + "; peak RSS of a fresh process per run"
    )
    rows = []
    results = []
    for g in grids:
        data, bytes_in = ensure_dataset(workdir, (g, g), args.tile, args.overlap, args.z)
        warm_page_cache(data)
        ngff = {"mode": "ngff", "version": "0.5", "workers": args.workers, "max_levels": args.max_levels}
        approaches = [("ngff-tiles", ngff)]
        if args.baseline and bytes_in / 1e9 <= args.baseline_max_gb:
            approaches.append(("baseline", {"mode": "baseline"}))
        for label, cfg in approaches:
            out = out_dir / f"memory-{label}-{g}x{g}.ome.zarr"
            print(f"running {label} on {g}x{g} ({bytes_in / 1e9:.2f} GB) ...", flush=True)
            run = measure(label, {**cfg, "data": str(data), "out": str(out)}, args.repeat)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
            rows.append(
                [
                    label,
                    f"{g}x{g}",
                    f"{bytes_in / 1e9:.3g}",
                    f"{run.seconds:.1f}",
                    f"{run.mb_per_s:.1f}",
                    f"{run.seconds / (bytes_in / 1e9):.2f}",
                    f"{run.peak_rss_mb:.0f}",
                ]
            )
            results.append(
                {
                    "approach": label,
                    "grid": g,
                    "bytes_in": bytes_in,
                    "seconds": run.seconds,
                    "mb_per_s": run.mb_per_s,
                    "peak_rss_mb": run.peak_rss_mb,
                    "all_seconds": run.extra["all_seconds"],
                }
            )
            if args.repeat > 1:
                print(f"  all runs: {', '.join(f'{t:.2f}' for t in run.extra['all_seconds'])} s", flush=True)
        if args.drop_data_above_gb is not None and bytes_in / 1e9 > args.drop_data_above_gb:
            shutil.rmtree(data, ignore_errors=True)
            print(f"  deleted the cached input {data}", flush=True)
    print()
    print(table(["approach", "grid", "input GB", "seconds", "input MB/s", "s per GB", "peak RSS MB"], rows))
    ours = [r for r in results if r["approach"] == "ngff-tiles"]
    if len(ours) > 1:
        per_gb = [r["seconds"] / (r["bytes_in"] / 1e9) for r in ours]
        peaks = [r["peak_rss_mb"] for r in ours]
        print()
        for name, values, unit in (("seconds per GB", per_gb, "s/GB"), ("peak RSS", peaks, "MB")):
            mid = statistics.median(values)
            worst = max(abs(v / mid - 1) for v in values)
            print(
                f"ngff-tiles {name}: {min(values):.2f}-{max(values):.2f} {unit} over "
                f"{ours[0]['bytes_in'] / 1e9:.2f}-{ours[-1]['bytes_in'] / 1e9:.2f} GB; max/min "
                f"{max(values) / min(values):.2f}, largest deviation from the median {100 * worst:.0f} %"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
