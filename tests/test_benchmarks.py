"""The benchmark scripts run end to end on tiny data and print tables that parse."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

from _common import parse_table  # noqa: E402


def run_script(name: str, *args: str, timeout: float = 300) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def numbers(row: dict[str, str], columns: list[str]) -> list[float]:
    return [float(row[c].rstrip("x")) for c in columns]


def test_compression_tiny_runs_fast_and_parses(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    out = run_script(
        "bench_compression.py",
        "--grid", "2", "--tile", "256", "--workdir", str(tmp_path), "--codecs", "blosc-zstd:3,none",
        timeout=60,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    assert elapsed < 20, f"tiny compression benchmark took {elapsed:.1f} s"
    assert "machine:" in out
    rows = parse_table(out)
    assert [r["codec"].split(" ")[0] for r in rows] == ["blosc-zstd", "none"]
    for row in rows:
        cols = ["seconds", "input MB/s", "output MB", "ratio vs none", "peak RSS MB"]
        assert all(v > 0 for v in numbers(row, cols)), row
    assert float(rows[1]["ratio vs none"]) == 1.0
    assert float(rows[0]["ratio vs none"]) > 1.0  # the synthetic image compresses
    assert (tmp_path / "data" / "g2x2_t256_o0.100" / "spec.json").is_file()


@pytest.mark.slow
def test_w2d_tiny_prints_both_approaches(tmp_path: Path) -> None:
    args = ["--grid", "2", "--tile", "256", "--workdir", str(tmp_path)]
    out = run_script("bench_w2d.py", *args, "--profile")
    rows = parse_table(out)
    assert [r["approach"] for r in rows] == [
        "ngff-tiles 0.5",
        "ngff-tiles 0.4",
        "baseline (tifffile+ome-zarr)",
    ]
    for row in rows:
        cols = ["seconds", "input MB/s", "peak RSS MB", "output MB", "speed vs baseline"]
        assert all(v > 0 for v in numbers(row, cols))
    assert rows[2]["speed vs baseline"] == "1.00x"
    assert "where the time goes" in out
    # the dataset is cached: a second run does not generate it again
    again = run_script("bench_w2d.py", *args, "--approaches", "ngff-0.5")
    assert "generating" not in again
    assert [r["approach"] for r in parse_table(again)] == ["ngff-tiles 0.5"]


@pytest.mark.slow
def test_memory_tiny_parses(tmp_path: Path) -> None:
    out = run_script("bench_memory.py", "--grids", "1,2", "--tile", "256", "--workdir", str(tmp_path))
    rows = parse_table(out)
    assert [r["grid"] for r in rows] == ["1x1", "2x2"]
    for row in rows:
        assert all(v > 0 for v in numbers(row, ["input GB", "seconds", "input MB/s", "peak RSS MB"]))
    assert not list((tmp_path / "out").iterdir())  # outputs removed unless --keep


def test_plate_tiny_runs_fast_and_parses(tmp_path: Path) -> None:
    """bench_plate.py on 2 wells of 2×2 fields of 128²; iohub only when its venv is already there."""
    t0 = time.perf_counter()
    out = run_script(
        "bench_plate.py",
        "--wells", "2", "--tile", "128", "--workdir", str(tmp_path), "--psnr-wells", "2", "--no-install",
        timeout=120,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    assert elapsed < 20, f"tiny plate benchmark took {elapsed:.1f} s"
    assert "machine:" in out
    rows = parse_table(out)
    labels = [r["approach"] for r in rows]
    assert labels[:2] == ["ngff-tiles fuse", "ngff-tiles keep"]
    if labels[2:]:  # its venv was there
        assert labels[2:] == ["iohub (fields)", "iohub (fields) + pyramid"]
        assert rows[2]["speed vs iohub"] == "1.00x"
        assert "iohub (fields): 8 images (one per field), 1 level each" in out
    else:
        assert "iohub: NOT RUN" in out
    for row in rows:
        assert all(v > 0 for v in numbers(row, ["seconds", "input MB/s", "peak RSS MB", "output MB"])), row
    # the fused wells are scored against the ground truth: at the rounding noise floor
    psnr, floor = (float(v) for v in rows[0]["PSNR dB (floor)"].replace("(", " ").rstrip(")").split())
    assert psnr >= floor - 1.5, rows[0]
    assert rows[1]["PSNR dB (floor)"] == "-"
    assert "ngff-tiles fuse: 2 images" in out
    assert "ngff-tiles keep: 8 images" in out
    assert (tmp_path / "data" / "plate96_w2_f2x2_t128_o0.150" / "spec.json").is_file()
    assert not list((tmp_path / "out").iterdir())  # outputs removed unless --keep


def test_peers_tiny_no_peers_runs_fast_and_parses(tmp_path: Path) -> None:
    """bench_peers.py on tiny W2D and W3D grids without the peers' venvs: tables, ratios, PSNR."""
    t0 = time.perf_counter()
    out = run_script(
        "bench_peers.py",
        "--grid", "2", "--tile", "256", "--workdir", str(tmp_path), "--no-peers",
        "--w3d", "--w3d-grid", "2", "--w3d-tile", "128", "--w3d-z", "4", "--w3d-peer-grids", "baseline=1",
        timeout=120,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    assert elapsed < 20, f"tiny peers benchmark took {elapsed:.1f} s"
    assert "machine:" in out
    assert "ngff-zarr: skipped (--no-peers)" in out
    assert "multiview-stitcher: skipped (--no-peers)" in out
    w2d, w3d = out.split("## W2D", 1)[1].split("## W3D", 1)
    rows = parse_table(w2d)
    assert [(r["approach"], r["grid"]) for r in rows] == [
        ("ngff-tiles", "2x2"),
        ("baseline (tifffile+ome-zarr)", "2x2"),
    ]
    for row in rows:
        cols = ["input MB", "seconds", "input MB/s", "peak RSS MB", "output MB", "ngff-tiles faster by"]
        assert all(v > 0 for v in numbers(row, cols)), row
    assert rows[0]["ngff-tiles faster by"] == "1.00x"
    # ngff-tiles blends overlaps: at or above the single-tile floor on the same windows
    psnr, floor = (float(v) for v in rows[0]["PSNR dB (floor)"].replace("(", " ").rstrip(")").split())
    assert psnr >= floor - 0.5, rows[0]
    # the baseline does no dark/flat correction: far below
    assert float(rows[1]["PSNR dB (floor)"].split()[0]) < floor - 5
    # W3D: the baseline on a 1x1 grid is compared with ngff-tiles on the same 1x1 grid
    rows3 = parse_table(w3d)
    assert [(r["approach"], r["grid"]) for r in rows3] == [
        ("ngff-tiles", "2x2"),
        ("baseline (tifffile+ome-zarr)", "1x1"),
        ("ngff-tiles", "1x1"),
    ]
    assert rows3[2]["ngff-tiles faster by"] == "1.00x"
    assert not list((tmp_path / "out").iterdir())  # outputs removed unless --keep
