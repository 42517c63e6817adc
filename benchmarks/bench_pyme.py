"""End to end: a PYME cluster series of 2048² uint16 Huffman frames to fused OME-Zarr.

A synthetic tile scan (``--grid`` × ``--grid`` frames, ``--overlap``, Poisson noise on an analytic
specimen, camera offset 100, positions as ``ScannerXPos``/``ScannerYPos`` events) is written once
as a ``.pcs`` with ``ngff_tiles.testing.pyme_series`` under ``benchmarks/_work/pyme/`` and converted

- from local disk (``ngff-tiles convert series.pcs``), and
- over HTTP from a data server on 127.0.0.1 (``pyme-cluster://`` against
  ``ngff_tiles.testing.pyme_server``, the PYMEDataServer read API),

reporting seconds, frames/s and MB/s of raw pixels, and the PSNR of the fused image against the
noise-free specimen next to a single frame's. For scale, ``reference/pyme.md`` §4.5 measured PYME's
own ``tile_pyramid`` at 0.131 s/frame just to fetch and decode 2048² frames from a loopback server,
plus 0.02-0.08 s/frame to accumulate base tiles (not re-measured here: it needs pymecompress,
which does not build on this project's Python).

    .venv/bin/python benchmarks/bench_pyme.py [--grid 4] [--overlap 0.1] [--repeat 1] [--workdir DIR] \
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ngff_tiles import convert
from ngff_tiles.options import ExecutionOptions, ReaderOptions
from ngff_tiles.readers._base import FRAME_CACHE
from ngff_tiles.readers.pyme.pzf import decode_frame
from ngff_tiles.testing.pyme_series import write_series
from ngff_tiles.testing.pyme_server import PymeTestServer

HERE = Path(__file__).resolve().parent
TILE = 2048
PIXEL = 0.65


def specimen(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Noise-free signal (counts above the offset) at global pixel coordinates."""
    return (300 + 200 * np.sin(x / 70.0) * np.cos(y / 90.0) + 0.01 * (x + y)).astype(np.float32)


def series_path(workdir: Path, grid: int, overlap: float) -> Path:
    return workdir / "pyme" / f"g{grid}_t{TILE}_o{overlap:g}" / "scan.pcs"


def make_series(workdir: Path, grid: int, overlap: float) -> tuple[Path, int]:
    step = round(TILE * (1 - overlap))
    path = series_path(workdir, grid, overlap)
    if (path / "events.json").is_file():
        return path, step
    if path.exists():
        shutil.rmtree(path)
    rng = np.random.default_rng(0)
    frames, positions = [], []
    yy, xx = np.mgrid[:TILE, :TILE].astype(np.float32)
    for r in range(grid):
        cols = range(grid) if r % 2 == 0 else range(grid - 1, -1, -1)  # PYME's serpentine
        for c in cols:
            sig = specimen(yy + r * step, xx + c * step)
            frames.append((100 + rng.poisson(sig)).astype(np.uint16))
            positions.append((1000.0 + c * step * PIXEL, 2000.0 + r * step * PIXEL))
    t = time.perf_counter()
    write_series(path, frames, positions, dark_frames=2)
    print(f"wrote {path} ({len(frames)} frames) in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return path, step


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * math.log10(peak**2 / mse) if mse else float("inf")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", type=int, default=4)
    ap.add_argument("--overlap", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=HERE / "_work", help="where the series is cached")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    path, _ = make_series(args.workdir, args.grid, args.overlap)
    t = time.perf_counter()
    decode_frame((path / "frame00000.pzf").read_bytes())  # compile the decoder outside the timings
    compile_s = time.perf_counter() - t
    n = args.grid**2
    raw_mb = n * TILE * TILE * 2 / 1e6
    results: dict[str, object] = {
        "frames": n,
        "frame": "2048x2048 uint16 HUFFCODE",
        "raw_MB": raw_mb,
        "decoder_compile_s": compile_s,
    }
    rows = []
    with tempfile.TemporaryDirectory() as work, PymeTestServer(path.parent) as server:
        runs = {
            "local .pcs": (str(path), ReaderOptions()),
            "pyme-cluster:// over HTTP": (
                f"pyme-cluster:///{path.name}",
                ReaderOptions(pyme_servers=(server.url,)),
            ),
        }
        fused = None
        for label, (inp, opts) in runs.items():
            times = []
            for k in range(args.repeat):
                FRAME_CACHE.clear()
                out = Path(work) / f"{len(times)}_{k}_{label[:5].strip()}.ome.zarr"
                t = time.perf_counter()
                convert(inp, out, reader_options=opts, execution=ExecutionOptions(progress=False))
                times.append(time.perf_counter() - t)
                if fused is None:
                    import zarr

                    fused = np.asarray(zarr.open_group(str(out), mode="r")["0"])[0, 0, 0]
                shutil.rmtree(out)
            s = statistics.median(times)
            rows.append((label, s))
            results[label] = {"s": s, "s_per_frame": s / n, "MB_per_s": raw_mb / s}
    assert fused is not None
    h, w = fused.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    truth = specimen(yy, xx)
    inner = (slice(64, h - 64), slice(64, w - 64))
    fused_psnr = psnr(fused[inner], truth[inner], float(truth.max()))
    one = np.random.default_rng(1).poisson(truth[inner]).astype(np.float64)  # one frame's noise there
    single_psnr = psnr(one, truth[inner], float(truth.max()))
    results.update(fused_psnr_db=fused_psnr, single_frame_psnr_db=single_psnr)
    print(
        f"# PYME series → OME-Zarr: {args.grid}×{args.grid} frames of 2048² uint16 ({raw_mb:.0f} MB raw), "
        f"{100 * args.overlap:g} % overlap; decoder compiled once per process "
        f"({compile_s:.1f} s, not counted)"
    )
    print()
    print("| input | s | s / frame | frames/s | MB/s |")
    print("|---|---:|---:|---:|---:|")
    for label, s in rows:
        print(f"| {label} | {s:.1f} | {s / n:.3f} | {n / s:.1f} | {raw_mb / s:.0f} |")
    print(
        f"\nfused PSNR vs the noise-free specimen: {fused_psnr:.1f} dB "
        f"(one frame's Poisson noise on the same region: {single_psnr:.1f} dB)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
