"""Shared helpers of the benchmark scripts: cached synthetic data, child runs, tables, machine line.

Every measured run happens in a fresh child process (``_child.py``) so that its peak resident set
size (``ru_maxrss`` of that process, read by the child itself at the end) belongs to that run
alone. The parent only prepares data, warms the page cache, deletes old outputs and prints.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHILD = HERE / "_child.py"
DEFAULT_WORKDIR = HERE / "_work"
RESULT_PREFIX = "BENCH_RESULT "


# ---------------------------------------------------------------------------------------------
# data


def dataset_name(grid: tuple[int, int], tile: int, overlap: float, z: int = 1) -> str:
    """Folder name of a cached dataset: every generating parameter is in it."""
    zs = f"_z{z}" if z != 1 else ""
    return f"g{grid[0]}x{grid[1]}_t{tile}{zs}_o{overlap:.3f}"


def specimen_fingerprint(spec: Any) -> str:
    """A digest of the synthetic specimen the current code draws for ``spec``.

    The ground truth is recomputed from ``ngff_tiles.testing.synthetic`` at comparison time, so
    cached tiles are only valid while that code draws the same specimen: a coarse sample over
    about 6 mm and a fine patch at the pixel size, rounded to 0.01 photons.
    """
    import hashlib

    import numpy as np

    from ngff_tiles.testing.synthetic import sample

    nz = spec.tile_shape[0]
    zs = min(nz, 4)
    coarse = sample(
        spec,
        spec.origin_um,
        (zs, 256, 256),
        step_um=(spec.pixel_size_um[0] * max(1, nz // zs), 23.0, 23.0),
    )
    fine = sample(spec, spec.origin_um, (1, 128, 128))
    values = np.round(np.concatenate([coarse.ravel(), fine.ravel()]).astype(np.float64), 2)
    return hashlib.sha256(values.tobytes()).hexdigest()[:16]


def ensure_dataset(
    workdir: Path, grid: tuple[int, int], tile: int, overlap: float, z: int = 1, *, quiet: bool = False
) -> tuple[Path, int]:
    """Write the synthetic dataset once (cached by parameters); return its folder and input bytes.

    The cache is valid when ``spec.json`` next to the tiles holds the same spec and
    ``specimen.txt`` the :func:`specimen_fingerprint` of the current code (so that tiles and the
    ground truth computed later agree); both are written after every tile, so an interrupted
    generation is redone.
    """
    from ngff_tiles.testing.synthetic import SyntheticSpec, write_dataset

    spec = SyntheticSpec(
        grid=grid, tile_shape=(z, tile, tile), overlap=overlap, dtype="uint16", compression=None
    )
    folder = workdir / "data" / dataset_name(grid, tile, overlap, z)
    marker = folder / "spec.json"
    specimen = folder / "specimen.txt"
    wanted = json.dumps(spec.to_dict(), sort_keys=True)
    fingerprint = specimen_fingerprint(spec)
    valid = marker.is_file() and marker.read_text() == wanted
    if valid and not (specimen.is_file() and specimen.read_text() == fingerprint):
        valid = False
        if not quiet:
            print(f"the synthetic specimen changed since {folder} was written: regenerating", flush=True)
    if not valid:
        if folder.exists():
            shutil.rmtree(folder)
        if not quiet:
            print(
                f"generating {spec.n_tiles} tiles of {z}x{tile}x{tile} uint16 into {folder} ...", flush=True
            )
        t0 = time.perf_counter()
        write_dataset(spec, folder)
        specimen.write_text(fingerprint)
        marker.write_text(wanted)
        if not quiet:
            print(f"  generated in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder, spec.n_tiles * z * tile * tile * 2


def tile_files(folder: Path) -> list[Path]:
    """The tile files of a synthetic dataset, in name order."""
    return sorted(folder.glob("tile_*.ome.tif"))


def pick(text: str, allowed: Sequence[str], what: str) -> list[str]:
    """Parse a comma-separated ``--approaches``/``--modes`` value; exit naming unknown entries."""
    chosen = [a.strip() for a in text.split(",") if a.strip()]
    unknown = set(chosen) - set(allowed)
    if unknown:
        raise SystemExit(f"unknown {what} {sorted(unknown)}; expected some of {tuple(allowed)}")
    return chosen


def warm_page_cache(folder: Path) -> float:
    """Read every file of ``folder`` once so all runs read it warm from the page cache; return s."""
    t0 = time.perf_counter()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            with open(path, "rb", buffering=0) as f:
                while f.read(1 << 24):
                    pass
    return time.perf_counter() - t0


def disk_bytes(path: Path) -> int:
    """Sum of the sizes of all files under ``path`` (what ``du --apparent-size`` counts)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            total += os.stat(os.path.join(dirpath, name)).st_size
    return total


# ---------------------------------------------------------------------------------------------
# child runs


@dataclass
class Run:
    """One measured child run."""

    label: str
    seconds: float
    peak_rss_mb: float
    bytes_in: int
    out_bytes: int
    extra: dict[str, Any]

    @property
    def mb_per_s(self) -> float:
        return self.bytes_in / 1e6 / self.seconds

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data: the measured figures, then the child's extra results."""
        return {
            "approach": self.label,
            "seconds": self.seconds,
            "mb_per_s": self.mb_per_s,
            "peak_rss_mb": self.peak_rss_mb,
            "output_bytes": self.out_bytes,
            "bytes_in": self.bytes_in,
            **{k: v for k, v in self.extra.items() if k not in ("seconds", "peak_rss_mb", "bytes_in")},
        }


def run_child(
    config: dict[str, Any], *, timeout: float | None = None, python: str | None = None
) -> dict[str, Any]:
    """Run ``_child.py`` with ``config`` in a fresh interpreter; return the result it printed.

    ``python``: the interpreter (a peer's own venv); this one when ``None``.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [python or sys.executable, str(CHILD), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX) :]))
    raise RuntimeError(
        f"benchmark child failed (exit {proc.returncode}) for {config}:\n"
        f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )


def measure(label: str, config: dict[str, Any], repeat: int, *, python: str | None = None) -> Run:
    """Run ``config`` ``repeat`` times (output deleted and ``sync`` before each); keep the fastest.

    Peak RSS is reported from that same fastest run. ``python``: as in :func:`run_child`.
    """
    out = Path(config["out"])
    best: dict[str, Any] | None = None
    out_bytes = 0
    times: list[float] = []
    for _ in range(max(1, repeat)):
        if out.exists():
            shutil.rmtree(out)
        # flush dirty pages (earlier outputs, fresh data) so their writeback does not land in this run
        os.sync()
        res = run_child(config, python=python)
        times.append(float(res["seconds"]))
        if best is None or res["seconds"] < best["seconds"]:
            best = res
            out_bytes = disk_bytes(out)
    assert best is not None
    return Run(
        label=label,
        seconds=float(best["seconds"]),
        peak_rss_mb=float(best["peak_rss_mb"]),
        bytes_in=int(best["bytes_in"]),
        out_bytes=out_bytes,
        extra={**best, "all_seconds": times},
    )


# ---------------------------------------------------------------------------------------------
# reporting


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def machine_lines() -> list[str]:
    """Describe the machine and the library versions, one fact per line."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        pass
    libs = ", ".join(
        f"{name} {_version(name)}"
        for name in ("ngff-tiles", "numpy", "tensorstore", "zarr", "tifffile", "dask", "ome-zarr")
    )
    return [
        f"machine: {os.cpu_count()} cores, {cpu}, {mem} RAM, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}; {libs}",
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
    ]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render a Markdown table with columns padded to equal width."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    sep = "|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def parse_table(text: str) -> list[dict[str, str]]:
    """Parse the first Markdown table in ``text`` back into rows (for the tests)."""
    lines: list[str] = []
    for ln in text.splitlines():
        if ln.strip().startswith("|"):
            lines.append(ln.strip())
        elif lines:
            break
    if len(lines) < 2:
        return []
    headers = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if len(cells) == len(headers):
            rows.append(dict(zip(headers, cells, strict=True)))
    return rows


def profile_summary(
    stats_path: str | os.PathLike[str], total_seconds: float, pipeline_file: str
) -> list[str]:
    """Summarise a cProfile of ``convert()`` run on dask's synchronous scheduler.

    Returns lines giving the inclusive time of each pipeline stage (as the share of the convert
    call) and the functions with the most own time. ``pipeline_file`` is the source file of the
    module defining ``convert`` and its block tasks.
    """
    import pstats

    stats = pstats.Stats(str(stats_path))
    pipe = "ngff_tiles/" + Path(pipeline_file).name
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    stages = (
        ("convert() total", pipe, "convert"),
        ("  reading metadata (readers)", pipe, "_tiles_from"),
        ("  level-0 block tasks (_fuse_task)", pipe, "_fuse_task"),
        ("    fuse_block: read + correct + blend", "ngff_tiles/fusion/kernel.py", "fuse_block"),
        ("      pixel reads (FrameSource.read)", "ngff_tiles/tiles.py", "read"),
        ("  pyramid block tasks (_gather_task)", pipe, "_gather_task"),
        ("  2x mean downsampling (all levels)", "ngff_tiles/fusion/pyramid.py", "downsample_mean"),
        ("  encode + compress + write (LevelArray.write)", "ngff_tiles/writers/ome_zarr.py", "write"),
    )
    total = next(
        (v[3] for (f, _, fn), v in raw.items() if f.endswith(pipe) and fn == "convert"),
        total_seconds,
    )
    lines = ["where the time goes (cProfile, block tasks run one at a time on the main thread):"]
    for label, suffix, func in stages:
        cum = sum(v[3] for (f, _, fn), v in raw.items() if f.endswith(suffix) and fn == func)
        lines.append(f"  {label:<48} {cum:7.2f} s  {100 * cum / total:5.1f} %")
    lines.append("  most own time:")
    top = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:8]
    for (f, ln, fn), v in top:
        where = fn if f == "~" else f"{Path(f).name}:{ln}({fn})"
        lines.append(f"    {v[2]:7.2f} s  {v[1]:6d} calls  {where}")
    return lines
