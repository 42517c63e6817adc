"""Codec benchmark: ngff-tiles convert with each compression codec and level.

    .venv/bin/python benchmarks/bench_compression.py [--grid 8] [--tile 2048] [--overlap 0.10]
        [--workdir benchmarks/_work] [--repeat 1] [--version 0.5]
        [--codecs blosc-zstd:1,blosc-zstd:3,...,none]

Same synthetic data as ``bench_w2d.py`` (shared cache). Every codec runs ``convert()`` with linear
blending, dark + flat correction and the full pyramid in a fresh child process; the table gives
wall seconds, input MB/s, output size on disk (all levels) and the compression ratio, i.e. the
size of the uncompressed (``none``) store over this store's size. This is the evidence for the
default codec and level. Tiles are read warm from the page cache.
"""

from __future__ import annotations

import argparse
import json
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
    table,
    warm_page_cache,
)

DEFAULT_CODECS = (
    "blosc-zstd:1,blosc-zstd:2,blosc-zstd:3,blosc-zstd:5,blosc-lz4:5,zstd:1,zstd:3,gzip:1,gzip:5,none"
)


def parse_codecs(text: str) -> list[tuple[str, int | None]]:
    """Parse ``"blosc-zstd:3,none"`` into ``[("blosc-zstd", 3), ("none", None)]``."""
    out: list[tuple[str, int | None]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, level = item.partition(":")
        out.append((name, int(level) if level else None))
    return out


def default_marker(codec: str, level: int | None) -> str:
    """``" (default)"`` when ``codec``/``level`` is what WriterOptions() writes."""
    try:
        from ngff_tiles.options import WriterOptions
        from ngff_tiles.writers.ome_zarr import DEFAULT_LEVELS
    except ImportError:
        return ""
    opts = WriterOptions()
    default_level = (
        opts.compression_level if opts.compression_level is not None else DEFAULT_LEVELS.get(opts.compression)
    )
    return " (default)" if codec == opts.compression and level == default_level else ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--grid", type=int, default=8, help="tiles per side (default 8)")
    p.add_argument("--tile", type=int, default=2048, help="tile size in pixels (default 2048)")
    p.add_argument("--overlap", type=float, default=0.10, help="overlap fraction (default 0.10)")
    p.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="data and outputs (default benchmarks/_work)"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per codec; the fastest is reported")
    p.add_argument("--version", default="0.5", choices=("0.4", "0.5"), help="NGFF version (default 0.5)")
    p.add_argument("--workers", type=int, default=None, help="ngff-tiles threads (default: one per core)")
    p.add_argument("--codecs", default=DEFAULT_CODECS, help=f"codec:level list (default {DEFAULT_CODECS})")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    codecs = parse_codecs(args.codecs)
    workdir = args.workdir.resolve()
    data, bytes_in = ensure_dataset(workdir, (args.grid, args.grid), args.tile, args.overlap)
    out_dir = workdir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    for line in machine_lines():
        print(line)
    print(
        f"data: {args.grid}x{args.grid} tiles of {args.tile}x{args.tile} uint16, overlap {args.overlap:g}, "
        f"{bytes_in / 1e6:.1f} MB of pixels; NGFF {args.version}, linear blend, dark+flat, full pyramid"
    )
    warm = warm_page_cache(data)
    print(
        f"warm-up read: {warm:.2f} s; tiles are read warm from the page cache; best of {args.repeat} run(s)"
    )

    runs: list[tuple[str, int | None, Run]] = []
    for codec, level in codecs:
        label = codec if level is None else f"{codec}:{level}"
        cfg = {
            "mode": "ngff",
            "data": str(data),
            "out": str(out_dir / f"codec-{label.replace(':', '-')}.ome.zarr"),
            "version": args.version,
            "compression": codec,
            "level": level,
            "workers": args.workers,
        }
        print(f"running {label} ...", flush=True)
        runs.append((codec, level, measure(label, cfg, args.repeat)))

    raw = next((r.out_bytes for c, _, r in runs if c == "none"), None)
    rows = []
    for codec, level, r in runs:
        rows.append(
            [
                codec + default_marker(codec, level),
                "-" if level is None else str(level),
                f"{r.seconds:.2f}",
                f"{r.mb_per_s:.1f}",
                f"{r.out_bytes / 1e6:.1f}",
                f"{raw / r.out_bytes:.2f}" if raw else "-",
                f"{r.peak_rss_mb:.0f}",
            ]
        )
    print()
    print(
        table(
            ["codec", "level", "seconds", "input MB/s", "output MB", "ratio vs none", "peak RSS MB"],
            rows,
        )
    )
    if args.repeat > 1:
        print()
        for _, _, r in runs:
            print(f"{r.label}: all runs " + ", ".join(f"{t:.2f}" for t in r.extra["all_seconds"]) + " s")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "codec": c,
                        "level": lv,
                        "seconds": r.seconds,
                        "mb_per_s": r.mb_per_s,
                        "output_bytes": r.out_bytes,
                        "peak_rss_mb": r.peak_rss_mb,
                    }
                    for c, lv, r in runs
                ],
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
