"""HCS plate benchmark: ngff-tiles (fused wells, or fields kept) vs iohub writing one field per tile.

    .venv/bin/python benchmarks/bench_plate.py [--wells 96] [--grid 2] [--tile 1024] [--overlap 0.15]
                                               [--workdir benchmarks/_work] [--repeat 1]
                                               [--approaches fuse,keep,iohub,iohub-pyramid]
                                               [--no-peers] [--no-install]
                                               [--psnr-wells 8] [--peer-python PY] [--keep]
                                               [--json PATH]

Generates (once, cached under ``<workdir>/data`` by parameters) a synthetic 96-well plate with
``ngff_tiles.testing.plate.write_plate``: the first ``--wells`` wells in row-major order (A1, A2,
...), each a ``--grid`` x ``--grid`` grid of overlapping uint16 fields (uncompressed OME-TIFF, one
folder per well, the same dark.tif and flat.tif in each). Warms the page cache by reading every
file once, then runs each approach in a fresh child process and prints a table: wall seconds
(reading included, interpreter start-up and imports excluded), input MB/s (sum of tile pixel
bytes, 10^6 B per MB), peak RSS of the child, output size on disk, the speed-up over iohub and,
for fused wells, the PSNR against the ground truth. The best of ``--repeat`` runs is reported.

Approaches
    ``ngff-tiles fuse``: ``convert(well folders, plate=PlateOptions(geometry=96))``: wells snapped
    from stage positions, each well's fields fused into one image (linear blending, dark + flat
    correction), full pyramid, default writer (NGFF 0.5, sharded, blosc-zstd).
    ``ngff-tiles keep``: the same with ``PlateOptions(geometry=96, fields="keep")``: every field its
    own image, unfused (dark + flat corrected), full pyramid.
    ``iohub (fields)``: what a user of iohub writes: for every tile, tifffile reads the pixels and
    OME-XML, ``plate.create_position(row, col, field)`` and ``position.create_image("0", tile,
    transform=[scale, translation])`` on ``open_ome_zarr(out, layout="hcs", mode="w-",
    channel_names=...)``; wells from the folder names; no fusion, no correction, one level, iohub's
    defaults (NGFF 0.5, zarrs codec pipeline, blosc zstd level 1 bitshuffle, one chunk per field).
    ``iohub (fields) + pyramid``: the same plus ``position.compute_pyramid(levels, method="mean",
    dims={"y", "x"})`` per field, with as many levels as ngff-tiles keep writes (down to one 512²
    chunk: 2 levels for 1024² fields).
    iohub runs in its own venv (``benchmarks/_venvs/iohub``), created on first use with a Python
    >= 3.12 (iohub 0.3 requires it) when one is found; ``--no-peers`` skips it, ``--no-install``
    skips it when that venv is not there.

PSNR dB (floor)
    Mean over ``--psnr-wells`` wells spread over the plate of the PSNR (data range = the specimen's
    peak photons) of the fused level 0 against ``SyntheticDataset.ground_truth`` over the image's
    shape, on pixels covered by a tile; in brackets the mean of ``noise_floor_psnr(against="grid")``
    (single corrected tiles at their rounded offsets, the best a rounding converter can do).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DEFAULT_WORKDIR,
    HERE,
    Run,
    machine_lines,
    measure,
    pick,
    table,
    warm_page_cache,
)

APPROACHES = ("fuse", "keep", "iohub", "iohub-pyramid")
PEERS = ("iohub", "iohub-pyramid")
LABELS = {
    "fuse": "ngff-tiles fuse",
    "keep": "ngff-tiles keep",
    "iohub": "iohub (fields)",
    "iohub-pyramid": "iohub (fields) + pyramid",
}
CHUNK = 512  # ngff-tiles' default chunk side: its pyramid stops at the level that fits one chunk
GEOMETRY = 96
DEFAULT_PEER_VENV = HERE / "_venvs" / "iohub"
PEER_PACKAGES = ("iohub", "tifffile")


# ---------------------------------------------------------------------------------------------
# data


def well_names(n: int, geometry: int = GEOMETRY) -> list[str]:
    """The first ``n`` wells of the plate in row-major order (``A1``, ``A2``, ...)."""
    from ngff_tiles.layout.plate import GEOMETRIES, row_name

    g = GEOMETRIES[geometry]
    names = [f"{row_name(r)}{c + 1}" for r in range(g.rows) for c in range(g.columns)]
    if not 1 <= n <= len(names):
        raise SystemExit(f"--wells must be in 1..{len(names)} for a {geometry}-well plate, got {n}")
    return names[:n]


def plate_name(n_wells: int, grid: int, tile: int, overlap: float) -> str:
    """Folder name of a cached plate: every generating parameter is in it."""
    return f"plate{GEOMETRY}_w{n_wells}_f{grid}x{grid}_t{tile}_o{overlap:.3f}"


def ensure_plate(workdir: Path, n_wells: int, grid: int, tile: int, overlap: float) -> tuple[Path, int]:
    """Write the synthetic plate once (cached by parameters); return its folder and input bytes.

    The cache is valid when ``spec.json`` in the plate folder holds the same spec; it is written
    after every well, so an interrupted generation is redone.
    """
    from ngff_tiles.testing.plate import PlateSpec, write_plate

    spec = PlateSpec(
        geometry=GEOMETRY,
        wells=tuple(well_names(n_wells)),
        fields=(grid, grid),
        tile_shape=(1, tile, tile),
        overlap=overlap,
    )
    folder = workdir / "data" / plate_name(n_wells, grid, tile, overlap)
    marker = folder / "spec.json"
    wanted = json.dumps(dataclasses.asdict(spec), sort_keys=True, default=list)
    if not (marker.is_file() and marker.read_text() == wanted):
        if folder.exists():
            shutil.rmtree(folder)
        print(
            f"generating {n_wells} wells x {grid * grid} fields of {tile}x{tile} uint16 into {folder} ...",
            flush=True,
        )
        t0 = time.perf_counter()
        write_plate(spec, folder)
        marker.write_text(wanted)
        print(f"  generated in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder, n_wells * grid * grid * tile * tile * 2


def pyramid_levels(tile: int) -> int:
    """Levels ngff-tiles writes for one ``tile``² field: halve until it fits one chunk."""
    levels, side = 1, tile
    while side > CHUNK:
        side = (side + 1) // 2
        levels += 1
    return levels


def well_folders(folder: Path) -> list[Path]:
    """The per-well folders of a plate (``A01``, ``A02``, ...), in name order."""
    return sorted(d for d in folder.iterdir() if d.is_dir() and re.fullmatch(r"[A-Z]+\d+", d.name))


# ---------------------------------------------------------------------------------------------
# the peer's venv


def _py_version(python: str) -> tuple[int, int] | None:
    """(major, minor) of an interpreter that runs and has ``venv``; ``None`` otherwise."""
    try:
        proc = subprocess.run(
            [python, "-c", "import sys, venv; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    major, minor = proc.stdout.split()
    return int(major), int(minor)


def find_peer_base(explicit: str | None) -> tuple[str, str]:
    """Pick the interpreter for iohub's venv: the first Python >= 3.12 found; return it and a note."""
    if explicit:
        return explicit, f"--peer-python {explicit}"
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = [
        sys.executable,
        *(shutil.which(n) or "" for n in ("python3.14", "python3.13", "python3.12")),
        *sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.1[2-9]*", "bin", "python3")), reverse=True),
    ]
    for cand in dict.fromkeys(c for c in candidates if c):
        version = _py_version(cand)
        if version is not None and version >= (3, 12):
            return cand, f"Python {version[0]}.{version[1]} ({cand})"
    return (
        sys.executable,
        "no Python >= 3.12 found (iohub 0.3 needs it): pip picks the newest iohub for this one",
    )


def peer_versions(venv: Path) -> dict[str, str] | None:
    """Versions of the peer venv's packages, or ``None`` when it cannot import iohub."""
    python = venv / "bin" / "python"
    if not python.is_file():
        return None
    code = (
        "import json, platform; from importlib import metadata; import iohub, tifffile\n"
        "v = {'python': platform.python_version()}\n"
        "for d in ('iohub', 'zarr', 'zarrs', 'numpy', 'tifffile'):\n"
        "    try: v[d] = metadata.version(d)\n"
        "    except metadata.PackageNotFoundError: pass\n"
        "print(json.dumps(v))"
    )
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        return None
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def ensure_peer_venv(venv: Path, base_python: str | None) -> tuple[str | None, dict[str, str], str]:
    """Create iohub's venv once (``python -m venv`` + ``pip install iohub tifffile``).

    Returns the venv's interpreter (``None`` when iohub could not be installed), the installed
    versions and a note saying what happened.
    """
    versions = peer_versions(venv)
    if versions is not None:
        return str(venv / "bin" / "python"), versions, f"existing venv {venv}"
    base, why = find_peer_base(base_python)
    print(f"creating {venv} with {why} and installing {' '.join(PEER_PACKAGES)} (once) ...", flush=True)
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
            *PEER_PACKAGES,
        ],
    )
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            shutil.rmtree(venv, ignore_errors=True)
            return None, {}, f"iohub could not be installed ({' '.join(cmd[:4])} ... failed: {tail})"
    versions = peer_versions(venv)
    if versions is None:
        shutil.rmtree(venv, ignore_errors=True)
        return None, {}, "iohub was installed but cannot be imported"
    print(f"  installed in {time.perf_counter() - t0:.0f} s", flush=True)
    return str(venv / "bin" / "python"), versions, f"new venv {venv} from {why}"


# ---------------------------------------------------------------------------------------------
# correctness of the fused wells


def sample_wells(wells: list[Path], k: int) -> list[Path]:
    """``k`` wells spread evenly over ``wells`` (first and last included)."""
    n = len(wells)
    if k <= 0:
        return []
    if k >= n:
        return list(wells)
    if k == 1:
        return [wells[0]]
    return [wells[i] for i in sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})]


def fused_psnr(store: Path, wells: list[Path]) -> list[tuple[str, float, float]]:
    """(well, PSNR, grid noise floor) of each fused well image (level 0) vs its ground truth."""
    import numpy as np
    import zarr

    from ngff_tiles.testing.synthetic import coverage, load_dataset, psnr

    root = zarr.open_group(str(store), mode="r")
    out = []
    for folder in wells:
        data = load_dataset(folder)
        row = folder.name.rstrip("0123456789")
        col = str(int(folder.name[len(row) :]))
        fused = np.asarray(root[f"{row}/{col}/0/0"][0, 0], dtype=np.float32)  # (z, y, x) of channel 0
        region = (slice(0, fused.shape[0]), slice(0, fused.shape[1]), slice(0, fused.shape[2]))
        truth = data.ground_truth(region)
        cover = coverage(data.spec, region) > 0
        value = psnr(fused[cover], truth[cover], data.spec.photons)
        out.append((f"{row}{col}", value, data.noise_floor_psnr(against="grid")))
    return out


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument(
        "--wells", type=int, default=96, help="wells of the 96-well plate to fill, row-major (default 96)"
    )
    p.add_argument("--grid", type=int, default=2, help="fields per well side (default 2: 2x2 fields)")
    p.add_argument("--tile", type=int, default=1024, help="field size in pixels (default 1024)")
    p.add_argument(
        "--overlap", type=float, default=0.15, help="overlap fraction of the fields (default 0.15)"
    )
    p.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="data and outputs (default benchmarks/_work)"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per approach; the fastest is reported")
    p.add_argument("--workers", type=int, default=None, help="ngff-tiles threads (default: one per core)")
    p.add_argument(
        "--approaches", default=",".join(APPROACHES), help=f"comma-separated subset of {','.join(APPROACHES)}"
    )
    p.add_argument("--no-peers", action="store_true", help="skip iohub (and creating its venv)")
    p.add_argument(
        "--no-install",
        action="store_true",
        help="use iohub's venv if it is there, never create it (else skip iohub)",
    )
    p.add_argument(
        "--peer-venv", type=Path, default=DEFAULT_PEER_VENV, help="iohub's venv (created if missing)"
    )
    p.add_argument(
        "--peer-python",
        default=None,
        help="interpreter to create iohub's venv with (default: a Python >= 3.12)",
    )
    p.add_argument(
        "--psnr-wells", type=int, default=8, help="fused wells scored against the ground truth (0: none)"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the output stores (default: removed after measuring)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    approaches = pick(args.approaches, APPROACHES, "approaches")
    if args.no_peers:
        approaches = [a for a in approaches if a not in PEERS]
    workdir = args.workdir.resolve()
    data, bytes_in = ensure_plate(workdir, args.wells, args.grid, args.tile, args.overlap)
    wells = well_folders(data)
    out_dir = workdir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)

    peer_python: str | None = None
    peer_note = "iohub: skipped (--no-peers)" if args.no_peers else "iohub: not requested"
    if any(a in PEERS for a in approaches):
        venv = args.peer_venv.resolve()
        if args.no_install and peer_versions(venv) is None:
            peer_python, versions, how = None, {}, f"no usable venv at {venv} and --no-install"
        else:
            peer_python, versions, how = ensure_peer_venv(venv, args.peer_python)
        if peer_python is None:
            peer_note = f"iohub: NOT RUN: {how}"
            approaches = [a for a in approaches if a not in PEERS]
        else:
            libs = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python")
            peer_note = f"iohub venv: python {versions.get('python', '?')}; {libs} ({how})"

    for line in machine_lines():
        print(line)
    print(peer_note)
    print(
        f"data: {len(wells)} wells of a {GEOMETRY}-well plate x {args.grid}x{args.grid} fields of "
        f"{args.tile}x{args.tile} uint16, overlap {args.overlap:g}, {bytes_in / 1e6:.1f} MB of pixels, "
        f"uncompressed OME-TIFF in {data}"
    )
    warm = sum(warm_page_cache(w) for w in wells)
    print(
        f"warm-up read of all files: {warm:.2f} s; every run reads the tiles warm from the page cache "
        f"(dropping it needs root), best of {args.repeat} run(s), each in a fresh process"
    )

    runs: list[Run] = []
    scores: list[tuple[str, float, float]] = []
    for name in approaches:
        out = out_dir / f"plate-{name}.ome.zarr"
        python = None
        if name in PEERS:
            cfg: dict[str, Any] = {"mode": "iohub", "data": str(data), "out": str(out)}
            if name == "iohub-pyramid":
                cfg["levels"] = pyramid_levels(args.tile)
            python = peer_python
        else:
            cfg = {
                "mode": "ngff-plate",
                "data": str(data),
                "out": str(out),
                "geometry": GEOMETRY,
                "fields": name,
                "workers": args.workers,
            }
        print(f"running {LABELS[name]} ...", flush=True)
        runs.append(measure(LABELS[name], cfg, args.repeat, python=python))
        if name == "fuse" and args.psnr_wells > 0:
            scores = fused_psnr(out, sample_wells(wells, args.psnr_wells))
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)

    iohub = next((r for r in runs if r.label == LABELS["iohub"]), None)
    rows = []
    for r in runs:
        quality = "-"
        if r.label == LABELS["fuse"] and scores:
            mean_psnr = sum(s[1] for s in scores) / len(scores)
            mean_floor = sum(s[2] for s in scores) / len(scores)
            quality = f"{mean_psnr:.1f} ({mean_floor:.1f})"
        rows.append(
            [
                r.label,
                f"{r.seconds:.2f}",
                f"{r.mb_per_s:.1f}",
                f"{r.peak_rss_mb:.0f}",
                f"{r.out_bytes / 1e6:.1f}",
                f"{iohub.seconds / r.seconds:.2f}x" if iohub else "-",
                quality,
            ]
        )
    print()
    print(
        table(
            [
                "approach",
                "seconds",
                "input MB/s",
                "peak RSS MB",
                "output MB",
                "speed vs iohub",
                "PSNR dB (floor)",
            ],
            rows,
        )
    )
    print()
    for r in runs:
        print(f"{r.label}: all runs " + ", ".join(f"{t:.2f}" for t in r.extra["all_seconds"]) + " s")
    for r in runs:
        if "level_shapes" in r.extra:
            shapes = ", ".join("x".join(str(v) for v in s[3:]) for s in r.extra["level_shapes"])
            n = len(r.extra["level_shapes"])
            print(
                f"{r.label}: {r.extra['images']} images, {n} level{'s' * (n > 1)} each "
                f"(first image {shapes}), {r.extra['blocks']} block tasks"
            )
        else:
            n = r.extra.get("levels", 1)
            print(f"{r.label}: {r.extra['images']} images (one per field), {n} level{'s' * (n > 1)} each")
    if scores:
        print(
            "PSNR of fused wells vs ground truth (grid noise floor), dB: "
            + ", ".join(f"{w} {p:.1f} ({f:.1f})" for w, p, f in scores)
        )
    if not any(a in PEERS for a in approaches):
        print(peer_note)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "runs": [r.to_dict() for r in runs],
                    "psnr": [{"well": w, "psnr": p, "grid_floor": f} for w, p, f in scores],
                    "peer": peer_note,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
