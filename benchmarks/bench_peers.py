"""Peers benchmark: ngff-tiles beside the naive baseline, ngff-zarr and multiview-stitcher (W2D, W3D).

    .venv/bin/python benchmarks/bench_peers.py [--grid 8] [--tile 2048] [--overlap 0.10]
        [--peer-grids multiview-stitcher=N] [--w3d] [--w3d-grid 4] [--w3d-tile 1024] [--w3d-z 64]
        [--w3d-peer-grids baseline=2,multiview-stitcher=2]
        [--approaches ngff-tiles,baseline,ngff-zarr,multiview-stitcher] [--repeat 1]
        [--no-peers] [--no-install] [--peer-python PY] [--mvs-batch 16] [--no-correct]
        [--workdir benchmarks/_work] [--keep] [--json PATH]

W2D (default): 8x8 tiles of 2048² uint16, 10 % overlap (536.9 MB). W3D (``--w3d``, after W2D):
4x4 tiles of 64x1024² (2147.5 MB). Data are generated once and cached under ``<workdir>/data``
(``synthetic.write_dataset``: uncompressed OME-TIFF, dark.tif, flat.tif), the page cache is
warmed by reading every file once, then every approach runs in a fresh child process
(``_child.py``) and the script prints one Markdown table per workload: grid, input MB, wall seconds
(reading included, interpreter start-up and imports excluded), input MB/s (10^6 B per MB), peak
RSS of the child (its ``VmHWM``, imports included), output size on disk, pyramid levels, PSNR
against the ground truth, and how many times faster ngff-tiles is (ratio of input MB/s against
the ngff-tiles run on the same grid). Best of ``--repeat`` runs, every run's time printed.

Approaches
    ``ngff-tiles``: ``convert()`` with linear blending, dark + flat correction, full pyramid,
    default writer (NGFF 0.5, sharded, blosc-zstd), threads = cores.
    ``baseline``: the hand-written tifffile + numpy paste (last tile wins, no correction) +
    ``ome_zarr.writer.write_image`` of ``bench_w2d.py`` (project venv).
    ``ngff-zarr``: the same paste (dark + flat corrected) into one array, then
    ``ngff_zarr.to_ngff_image(mosaic, dims, scale, translation)``, ``to_multiscales(image)``,
    ``to_ngff_zarr(out, multiscales)``, all with ngff-zarr's defaults (it does not fuse).
    ``multiview-stitcher``: every tile (dark + flat corrected) as a spatial image with its OME
    pixel size and stage position (``transform_key="stage_metadata"``), then ``fusion.fuse(...,
    output_zarr_url=out, zarr_options={"ome_zarr": True})``: its weighted-average fusion with
    blending (linear interpolation at the sub-pixel positions), written chunk by chunk, then its
    pyramid; ``--mvs-batch`` blocks at a time on dask's threaded scheduler (its
    ``misc_utils.process_batch_using_dask``; 0 = its default, one block after the other).

The peers run in their own venvs (``benchmarks/_venvs/ngff-zarr``, ``benchmarks/_venvs/
multiview-stitcher``, gitignored), created on first use with ``python -m venv`` (this interpreter's
Python, or ``--peer-python``) and ``pip install <peer> tifffile``; a peer that cannot be installed
is reported as ``NOT RUN: reason``. Before its measured runs each peer converts a tiny dataset once
(not timed): ngff-zarr's ITK-Wasm downsampler compiles its WebAssembly on first use.

PSNR dB (floor)
    Level 0 of each output, read back with zarr-python, against the ground truth sampled at the
    output's own pixel positions (its ``scale`` and ``translation``; the synthetic output grid when
    the store has no physical coordinates, as the baseline's), in 512² windows (256² x all planes
    for z-stacks) centred on every tile centre and on every point where four tiles overlap, on pixels
    a tile covers; squared errors pooled over the windows. In brackets the floor: the same
    windows filled with single dark/flat-corrected tiles at their rounded offsets (last tile
    wins), what a converter that rounds positions and does not blend reaches on these pixels;
    ``noise_floor_psnr(n_tiles=4, against="grid")`` over whole tiles is printed below the table.
    The baseline does no dark/flat correction, so its PSNR shows that and not its placement.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DEFAULT_WORKDIR,
    HERE,
    Run,
    ensure_dataset,
    machine_lines,
    measure,
    pick,
    table,
    warm_page_cache,
)

APPROACHES = ("ngff-tiles", "baseline", "ngff-zarr", "multiview-stitcher")
PEERS = ("ngff-zarr", "multiview-stitcher")
LABELS = {
    "ngff-tiles": "ngff-tiles",
    "baseline": "baseline (tifffile+ome-zarr)",
    "ngff-zarr": "ngff-zarr (paste + to_multiscales)",
    "multiview-stitcher": "multiview-stitcher (fuse)",
}
PEER_PACKAGES = {
    "ngff-zarr": ("ngff-zarr", "tifffile"),
    "multiview-stitcher": ("multiview-stitcher", "tifffile"),
}
PEER_IMPORTS = {"ngff-zarr": "ngff_zarr", "multiview-stitcher": "multiview_stitcher"}
PEER_VERSIONS = {
    "ngff-zarr": ("ngff-zarr", "zarrista", "itkwasm-downsample", "dask", "numpy", "tifffile"),
    "multiview-stitcher": ("multiview-stitcher", "zarr", "dask", "xarray", "ngff-zarr", "numpy", "tifffile"),
}
VENVS = HERE / "_venvs"
WINDOW = 512  # side of the PSNR windows (z-stacks: WINDOW_3D, all planes)
WINDOW_3D = 256


@dataclass
class Workload:
    """One benchmark workload: a tile grid and, per approach, the grid it runs on."""

    name: str
    grid: int
    tile: int
    z: int
    overlap: float
    grids: dict[str, int]  # approach -> tiles per side


# ---------------------------------------------------------------------------------------------
# the peers' venvs


def venv_versions(venv: Path, peer: str) -> dict[str, str] | None:
    """Versions of a peer venv's packages, or ``None`` when it cannot import the peer."""
    python = venv / "bin" / "python"
    if not python.is_file():
        return None
    code = (
        "import json, platform; from importlib import metadata\n"
        f"import {PEER_IMPORTS[peer]}, tifffile\n"
        "v = {'python': platform.python_version()}\n"
        f"for d in {PEER_VERSIONS[peer]!r}:\n"
        "    try: v[d] = metadata.version(d)\n"
        "    except metadata.PackageNotFoundError: pass\n"
        "print(json.dumps(v))"
    )
    try:
        proc = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=300, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        return None
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def ensure_venv(peer: str, base_python: str | None, install: bool) -> tuple[str | None, dict[str, str], str]:
    """Create the peer's venv once; return its interpreter (``None``: not usable), versions, a note."""
    venv = VENVS / peer
    versions = venv_versions(venv, peer)
    if versions is not None:
        return str(venv / "bin" / "python"), versions, f"existing venv {venv.relative_to(HERE.parent)}"
    if not install:
        return None, {}, f"no usable venv at {venv.relative_to(HERE.parent)} and --no-install"
    base = base_python or sys.executable
    packages = PEER_PACKAGES[peer]
    print(f"creating {venv} with {base} and installing {' '.join(packages)} (once) ...", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    t0 = time.perf_counter()
    steps = (
        [base, "-m", "venv", str(venv)],
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *packages,
        ],
    )
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if "is ignored" not in ln]
            shutil.rmtree(venv, ignore_errors=True)
            return (
                None,
                {},
                f"could not be installed ({' '.join(cmd[:4])} ... failed: {' | '.join(lines[-3:])})",
            )
    versions = venv_versions(venv, peer)
    if versions is None:
        shutil.rmtree(venv, ignore_errors=True)
        return None, {}, f"{peer} was installed but cannot be imported"
    print(f"  installed in {time.perf_counter() - t0:.0f} s", flush=True)
    return str(venv / "bin" / "python"), versions, f"new venv {venv.relative_to(HERE.parent)} from {base}"


# ---------------------------------------------------------------------------------------------
# reading the outputs back


def _multiscale(store: Path) -> tuple[Any, list[str], list[float], list[float], int]:
    """Level 0 of an OME-Zarr image (0.4 or 0.5): array, axis names, scale, translation, levels."""
    import zarr

    root = zarr.open_group(str(store), mode="r")
    attrs = root.attrs.asdict()
    ms = dict(attrs.get("ome", attrs))["multiscales"][0]
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in ms["axes"]]
    ds = ms["datasets"][0]
    scale = [1.0] * len(axes)
    translation = [0.0] * len(axes)
    for t in ds.get("coordinateTransformations", []):
        if t["type"] == "scale":
            scale = [float(v) for v in t["scale"]]
        elif t["type"] == "translation":
            translation = [float(v) for v in t["translation"]]
    return root[ds["path"]], axes, scale, translation, len(ms["datasets"])


def windows(data: Any) -> list[tuple[int, int, int, int, int, int]]:
    """(z0, z1, y0, y1, x0, x1) on the output grid: boxes at tile centres and 4-tile overlaps."""
    spec = data.spec
    nz, ny, nx = spec.tile_shape
    side = WINDOW if nz == 1 else WINDOW_3D
    offs = data.offsets_px
    rows, cols = spec.grid
    half = side // 2
    centres = [(o[1] + ny // 2, o[2] + nx // 2) for o in offs]
    for r in range(rows - 1):
        for c in range(cols - 1):
            a, b = offs[r * cols + c], offs[(r + 1) * cols + c + 1]
            # the overlap of four tiles spans b's corner to a's far corner: take its middle
            centres.append(((b[1] + a[1] + ny) // 2, (b[2] + a[2] + nx) // 2))
    out_shape = data.output_shape
    boxes = []
    for cy, cx in centres:
        y0 = min(max(cy - half, 0), max(out_shape[1] - side, 0))
        x0 = min(max(cx - half, 0), max(out_shape[2] - side, 0))
        boxes.append((0, nz, y0, min(y0 + side, out_shape[1]), x0, min(x0 + side, out_shape[2])))
    return boxes


def output_psnr(store: Path, folder: Path) -> tuple[float, int, tuple[int, ...]]:
    """PSNR (dB) of level 0 vs the ground truth in :func:`windows`; also the levels and level-0 shape."""
    import numpy as np

    from ngff_tiles.testing.synthetic import coverage, load_dataset, sample

    data = load_dataset(folder)
    spec = data.spec
    arr, axes, scale, translation, n_levels = _multiscale(store)
    where = {a: i for i, a in enumerate(axes)}
    pixel = list(spec.pixel_size_um)
    origin = list(data.output_origin_um)
    step, start = list(pixel), list(origin)
    physical = all(
        a not in where or math.isclose(scale[where[a]], pixel[k], rel_tol=1e-6) for k, a in enumerate("zyx")
    )
    if physical:  # the store says where its pixels are
        for k, a in enumerate("zyx"):
            if a in where:
                start[k] = translation[where[a]]
    shift = [round((start[k] - origin[k]) / pixel[k]) for k in range(3)]  # output index + shift = grid index
    spatial = [arr.shape[where[a]] if a in where else 1 for a in "zyx"]
    sse, count = 0.0, 0
    for box in windows(data):
        lo = [max(box[2 * k] - shift[k], 0) for k in range(3)]
        hi = [min(box[2 * k + 1] - shift[k], spatial[k]) for k in range(3)]
        if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
            continue
        index: list[Any] = []
        for a in axes:
            k = "zyx".find(a)
            index.append(slice(lo[k], hi[k]) if k >= 0 else 0)
        block = np.asarray(arr[tuple(index)], dtype=np.float64).reshape(
            [h - lo_ for lo_, h in zip(lo, hi, strict=True)]
        )
        truth = sample(
            spec,
            [start[k] + lo[k] * step[k] for k in range(3)],
            [h - lo_ for lo_, h in zip(lo, hi, strict=True)],
            step_um=step,
        )
        grid_box = tuple(slice(max(lo[k] + shift[k], 0), hi[k] + shift[k]) for k in range(3))
        cover = coverage(spec, (grid_box[0], grid_box[1], grid_box[2])) > 0
        if cover.shape != block.shape:  # the output starts before the grid: no tile there
            continue
        diff = block[cover] - truth[cover]
        sse += float(np.sum(diff * diff))
        count += int(diff.size)
    value = math.inf if sse == 0 else 20 * math.log10(spec.photons / math.sqrt(sse / max(count, 1)))
    return value, n_levels, tuple(int(s) for s in arr.shape)


def window_floor(folder: Path) -> tuple[float, float]:
    """PSNR of the same windows filled with single corrected tiles (last tile wins), and of 4 tiles.

    The first is what a converter that rounds positions and does not blend reaches on exactly
    the pixels :func:`output_psnr` scores; the second is ``noise_floor_psnr(n_tiles=4,
    against="grid")`` (whole tiles), the floor quoted by ``bench_plate.py``.
    """
    import numpy as np

    from ngff_tiles.testing.synthetic import coverage, load_dataset

    data = load_dataset(folder)
    spec = data.spec
    boxes = windows(data)
    filled = [np.zeros((b[1] - b[0], b[3] - b[2], b[5] - b[4]), dtype=np.float32) for b in boxes]
    for t, off in enumerate(data.offsets_px):
        tile = None
        for box, buf in zip(boxes, filled, strict=True):
            lo = [max(box[2 * k], off[k]) for k in range(3)]
            hi = [min(box[2 * k + 1], off[k] + spec.tile_shape[k]) for k in range(3)]
            if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
                continue
            if tile is None:
                tile = data.corrected_tile(t)
            buf[tuple(slice(lo[k] - box[2 * k], hi[k] - box[2 * k]) for k in range(3))] = tile[
                tuple(slice(lo[k] - off[k], hi[k] - off[k]) for k in range(3))
            ]
    sse, count = 0.0, 0
    for box, buf in zip(boxes, filled, strict=True):
        region = (slice(box[0], box[1]), slice(box[2], box[3]), slice(box[4], box[5]))
        cover = coverage(spec, region) > 0
        diff = buf[cover].astype(np.float64) - data.ground_truth(region)[cover]
        sse += float(np.sum(diff * diff))
        count += int(diff.size)
    value = math.inf if sse == 0 else 20 * math.log10(spec.photons / math.sqrt(sse / max(count, 1)))
    tiles = float(data.noise_floor_psnr(n_tiles=min(4, spec.n_tiles), against="grid"))
    return value, tiles


# ---------------------------------------------------------------------------------------------


def parse_grids(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in text.split(","):
        if item.strip():
            name, _, value = item.partition("=")
            if name.strip() not in APPROACHES or not value.strip().isdigit():
                raise SystemExit(f"expected APPROACH=N with APPROACH in {APPROACHES}, got {item!r}")
            out[name.strip()] = int(value)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--grid", type=int, default=8, help="W2D tiles per side (default 8)")
    p.add_argument("--tile", type=int, default=2048, help="W2D tile size in pixels (default 2048)")
    p.add_argument("--overlap", type=float, default=0.10, help="overlap fraction (default 0.10)")
    p.add_argument(
        "--peer-grids",
        default="",
        help="W2D grid of some approaches, e.g. multiview-stitcher=4 (default: all on --grid)",
    )
    p.add_argument("--w3d", action="store_true", help="also run W3D (z-stack tiles) after W2D")
    p.add_argument("--w2d", dest="w2d", action="store_true", default=True, help=argparse.SUPPRESS)
    p.add_argument("--no-w2d", dest="w2d", action="store_false", help="skip W2D (with --w3d)")
    p.add_argument("--w3d-grid", type=int, default=4, help="W3D tiles per side (default 4)")
    p.add_argument("--w3d-tile", type=int, default=1024, help="W3D tile size in pixels (default 1024)")
    p.add_argument("--w3d-z", type=int, default=64, help="W3D planes per tile (default 64)")
    p.add_argument(
        "--w3d-peer-grids",
        default="baseline=2,multiview-stitcher=2",
        help="W3D grid of some approaches (default baseline=2,multiview-stitcher=2: "
        "the baseline's peak RSS is ~7x its mosaic, multiview-stitcher runs at a few MB/s)",
    )
    p.add_argument(
        "--approaches", default=",".join(APPROACHES), help=f"comma-separated subset of {','.join(APPROACHES)}"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per approach; the fastest is reported")
    p.add_argument("--workers", type=int, default=None, help="ngff-tiles threads (default: one per core)")
    p.add_argument("--no-peers", action="store_true", help="skip ngff-zarr and multiview-stitcher")
    p.add_argument(
        "--no-install", action="store_true", help="use the peers' venvs if there, never create them"
    )
    p.add_argument("--peer-python", default=None, help="interpreter to create the peers' venvs with")
    p.add_argument(
        "--mvs-batch",
        type=int,
        default=16,
        help="multiview-stitcher blocks per batch on dask threads (0: its default, sequential)",
    )
    p.add_argument(
        "--no-correct", action="store_true", help="the peers skip dark/flat correction (default: they do it)"
    )
    p.add_argument("--no-psnr", action="store_true", help="skip reading the outputs back for PSNR")
    p.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="data and outputs (default benchmarks/_work)"
    )
    p.add_argument("--keep", action="store_true", help="keep the output stores")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


def config(name: str, data: Path, out: Path, args: argparse.Namespace, z: int) -> dict[str, Any]:
    if name == "ngff-tiles":
        return {"mode": "ngff", "data": str(data), "out": str(out), "version": "0.5", "workers": args.workers}
    if name == "baseline":
        return {"mode": "baseline", "data": str(data), "out": str(out), "ndim": 3 if z > 1 else 2}
    cfg: dict[str, Any] = {"mode": name, "data": str(data), "out": str(out), "correct": not args.no_correct}
    if name == "multiview-stitcher":
        cfg["n_batch"] = args.mvs_batch
    return cfg


def warm_up_peer(name: str, python: str, workdir: Path, args: argparse.Namespace, z: int) -> None:
    """Convert a tiny dataset once, untimed (ITK-Wasm compiles and caches its module on first use)."""
    data, _ = ensure_dataset(workdir, (2, 2), 256, args.overlap, z=min(z, 8), quiet=True)
    out = workdir / "out" / f"warmup-{name}.ome.zarr"
    shutil.rmtree(out, ignore_errors=True)
    from _common import run_child

    run_child(config(name, data, out, args, z), python=python)
    shutil.rmtree(out, ignore_errors=True)


def run_workload(
    wl: Workload, approaches: list[str], pythons: dict[str, str | None], args: argparse.Namespace
) -> dict[str, Any]:
    workdir = args.workdir.resolve()
    out_dir = workdir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    # every approach on its grid; ngff-tiles also on each smaller grid a peer runs on
    plan: list[tuple[str, int]] = []
    for name in approaches:
        plan.append((name, wl.grids.get(name, wl.grid)))
    if "ngff-tiles" in approaches:
        for g in sorted({g for _, g in plan if g != wl.grid}, reverse=True):
            plan.append(("ngff-tiles", g))
    datasets: dict[int, tuple[Path, int]] = {}
    for _, g in plan:
        if g not in datasets:
            datasets[g] = ensure_dataset(workdir, (g, g), wl.tile, wl.overlap, wl.z)
    print()
    print(f"## {wl.name}")
    for g, (folder, nbytes) in sorted(datasets.items(), reverse=True):
        warm = warm_page_cache(folder)
        print(
            f"data {g}x{g}: tiles of {wl.z}x{wl.tile}x{wl.tile} uint16, overlap {wl.overlap:g}, "
            f"{nbytes / 1e6:.1f} MB of pixels in {folder} (warm-up read {warm:.1f} s; "
            f"specimen {(folder / 'specimen.txt').read_text()})"
        )
    runs: list[tuple[str, int, Run, dict[str, Any]]] = []
    floors: dict[int, tuple[float, float]] = {}
    for name, g in plan:
        folder, _ = datasets[g]
        python = pythons.get(name)
        if name in PEERS and python is None:
            continue
        if name in PEERS:
            warm_up_peer(name, python or sys.executable, workdir, args, wl.z)
        out = out_dir / f"peers-{wl.name}-{name}-{g}x{g}.ome.zarr"
        label = LABELS[name]
        print(f"running {label} on {g}x{g} ...", flush=True)
        run = measure(label, config(name, folder, out, args, wl.z), args.repeat, python=python)
        quality: dict[str, Any] = {}
        if not args.no_psnr:
            try:
                value, levels, shape = output_psnr(out, folder)
                quality = {"psnr": value, "levels": levels, "shape": shape}
            except Exception as exc:  # report it, do not stop the other approaches
                quality = {"psnr_error": f"{type(exc).__name__}: {exc}"}
            if g not in floors:
                floors[g] = window_floor(folder)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
        runs.append((name, g, run, quality))

    ref = {g: r for n, g, r, _ in runs if n == "ngff-tiles"}
    rows = []
    for _, g, r, q in runs:
        base = ref.get(g)
        psnr = "-"
        if "psnr" in q:
            psnr = f"{q['psnr']:.1f} ({floors[g][0]:.1f})"
        elif "psnr_error" in q:
            psnr = "unreadable"
        rows.append(
            [
                r.label,
                f"{g}x{g}",
                f"{r.bytes_in / 1e6:.1f}",
                f"{r.seconds:.2f}",
                f"{r.mb_per_s:.1f}",
                f"{r.peak_rss_mb:.0f}",
                f"{r.out_bytes / 1e6:.1f}",
                str(q.get("levels", "-")),
                psnr,
                f"{base.mb_per_s / r.mb_per_s:.2f}x" if base else "-",
            ]
        )
    print()
    print(
        table(
            [
                "approach",
                "grid",
                "input MB",
                "seconds",
                "input MB/s",
                "peak RSS MB",
                "output MB",
                "levels",
                "PSNR dB (floor)",
                "ngff-tiles faster by",
            ],
            rows,
        )
    )
    print()
    for _, g, r, q in runs:
        extra = ""
        if "read_paste_seconds" in r.extra:
            extra = f"; read + paste {r.extra['read_paste_seconds']:.2f} s"
        elif "read_seconds" in r.extra:
            extra = f"; read (+ correct) {r.extra['read_seconds']:.2f} s"
        shape = "x".join(str(v) for v in q.get("shape", ()))
        print(
            f"{r.label} {g}x{g}: all runs "
            + ", ".join(f"{t:.2f}" for t in r.extra["all_seconds"])
            + f" s{extra}"
            + (f"; level 0 {shape}" if shape else "")
            + (f"; PSNR not computed: {q['psnr_error']}" if "psnr_error" in q else "")
        )
    for g, (win, whole) in sorted(floors.items(), reverse=True):
        print(
            f"floor {g}x{g}: {win:.2f} dB in the PSNR windows (single corrected tiles, last wins); "
            f"{whole:.2f} dB over 4 whole tiles (noise_floor_psnr(against='grid'))"
        )
    return {
        "workload": wl.name,
        "runs": [
            {
                "approach": r.label,
                "grid": g,
                "seconds": r.seconds,
                "mb_per_s": r.mb_per_s,
                "peak_rss_mb": r.peak_rss_mb,
                "output_bytes": r.out_bytes,
                "bytes_in": r.bytes_in,
                "all_seconds": r.extra["all_seconds"],
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in q.items()},
                "floor": floors[g][0] if g in floors else None,
                "floor_whole_tiles": floors[g][1] if g in floors else None,
            }
            for name, g, r, q in runs
        ],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    approaches = pick(args.approaches, APPROACHES, "approaches")
    if args.no_peers:
        approaches = [a for a in approaches if a not in PEERS]
    pythons: dict[str, str | None] = {}
    notes = []
    for peer in PEERS:
        if peer not in approaches:
            notes.append(f"{peer}: skipped" + (" (--no-peers)" if args.no_peers else ""))
            continue
        python, versions, how = ensure_venv(peer, args.peer_python, not args.no_install)
        pythons[peer] = python
        if python is None:
            notes.append(f"{peer}: NOT RUN: {how}")
        else:
            libs = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python")
            notes.append(f"{peer} venv: python {versions.get('python', '?')}; {libs} ({how})")
    for line in machine_lines():
        print(line)
    for note in notes:
        print(note)
    print(
        f"best of {args.repeat} run(s), each in a fresh process; tiles read warm from the page cache; "
        + ("peers without" if args.no_correct else "peers with")
        + " dark/flat correction"
    )
    workloads = []
    if args.w2d:
        workloads.append(Workload("W2D", args.grid, args.tile, 1, args.overlap, parse_grids(args.peer_grids)))
    if args.w3d:
        workloads.append(
            Workload(
                "W3D",
                args.w3d_grid,
                args.w3d_tile,
                args.w3d_z,
                args.overlap,
                parse_grids(args.w3d_peer_grids),
            )
        )
    results = [run_workload(wl, approaches, pythons, args) for wl in workloads]
    for note in notes:
        if "NOT RUN" in note:
            print(note)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "peers": notes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
