"""The console script end to end: subcommands, one-line errors, exit codes, plugins, the README."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from ngff_tiles.cli import main
from ngff_tiles.testing.synthetic import SyntheticSpec, write_dataset

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("small") / "tiles"
    write_dataset(SyntheticSpec(grid=(2, 2), tile_shape=(1, 128, 128), overlap=0.2), d)
    return d


def assert_not_complete(out: Path) -> None:
    """No output, or one that is visibly incomplete (no multiscales, status incomplete)."""
    if not out.exists():
        return
    attrs = json.loads((out / "zarr.json").read_text())["attributes"]
    assert "ome" not in attrs
    assert attrs["ngff_tiles"]["status"] == "incomplete"


def test_convert_info_validate_readers(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.ome.zarr"
    code, _, err = run(
        [
            "convert",
            str(small_set),
            "-o",
            str(out),
            "--dark",
            str(small_set / "dark.tif"),
            "--flat",
            str(small_set / "flat.tif"),
            "--validate",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    assert run(["validate", str(out)], capsys)[0] == 0
    code, text, _ = run(["info", str(small_set)], capsys)
    assert code == 0
    assert "reader ome-tiff, 4 tile(s)" in text
    code, text, _ = run(["readers"], capsys)
    assert code == 0
    assert {"ome-tiff", "mmstack", "tileconfig", "tile-table"} <= set(re.findall(r"^(\S+)", text, re.M))
    code, text, _ = run(["readers", str(small_set)], capsys)
    assert re.search(r"^ome-tiff\s+builtin\s+claims it", text, re.M)

    # exists: refused with one line and exit 2, store untouched
    before = (out / "zarr.json").read_bytes()
    code, _, err = run(["convert", str(small_set), "-o", str(out)], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"ngff-tiles: error: {out}: output exists")
    assert (out / "zarr.json").read_bytes() == before


def test_validate_fails_on_a_broken_store(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.ome.zarr"
    assert (
        run(
            ["convert", str(small_set), "-o", str(out), "-q", "--chunks", "64,64", "--shards", "128,128"],
            capsys,
        )[0]
        == 0
    )
    shutil.rmtree(out / "1")
    code, _, err = run(["validate", str(out)], capsys)
    assert code == 1
    assert "1" in err


def test_mm_sample_lands_at_stage_positions(
    shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = shared / "sample-data" / "ome-tiff" / "mm14_multipos_grid"
    mm = tmp_path / "mm"
    mm.mkdir()
    for gz in src.glob("*.gz"):
        with gzip.open(gz) as f_in, open(mm / gz.name[:-3], "wb") as f_out:
            shutil.copyfileobj(f_in, f_out)
    out = tmp_path / "mm.ome.zarr"
    code, _, err = run(["convert", str(mm), "-o", str(out), "-q"], capsys)
    assert code == 0, err
    level0 = zarr.open_group(str(out), mode="r")["0"][:]
    assert level0.shape == (2, 2, 2, 128, 128)  # T2 C2 Z2, 2×2 positions of 64² at 64 µm spacing
    attrs = json.loads((out / "zarr.json").read_text())["attributes"]["ome"]
    assert attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][1]["translation"] == [
        0.0,
        0.0,
        0.0,
        -64.0,  # stage positions are frame centres: corner = stage - 32
        -64.0,
    ]
    with tifffile.TiffFile(next(mm.glob("*Pos_000_000.ome.tif"))) as tf:
        series = tf.series[0].asarray()  # (R, T, Z, C, Y, X)
        index = tf.micromanager_metadata["Summary"]["InitialPositionList"]
    channel_order = ["Cy5", "DAPI"]
    assert attrs["omero"]["channels"][0]["label"] in channel_order
    labels = [ch["label"] for ch in attrs["omero"]["channels"]]
    for r, pos in enumerate(index):
        x, y = pos["DeviceCoordinatesUm"]["XY"]
        oy, ox = int(y + 32), int(x + 32)  # 1 µm pixels: corner (stage - 32) minus origin (-64)
        for t in range(2):
            for c, name in enumerate(labels):
                src_c = channel_order.index(name)
                np.testing.assert_array_equal(
                    level0[t, c, :, oy : oy + 64, ox : ox + 64], series[r, t, :, src_c], err_msg=pos["Label"]
                )


def _truncated_tiff(tmp: Path) -> tuple[Path, str]:
    d = tmp / "trunc"
    write_dataset(SyntheticSpec(grid=(1, 2), tile_shape=(1, 64, 64)), d)
    victim = sorted(d.glob("*.ome.tif"))[1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return d, victim.name


def _missing_file_table(tmp: Path) -> tuple[Path, str]:
    d = tmp / "table"
    d.mkdir()
    tifffile.imwrite(d / "a.tif", np.zeros((8, 8), np.uint16))
    (d / "tiles.csv").write_text("path,x_um,y_um,pixel_size_um\na.tif,0,0,1\nb.tif,8,0,1\n")
    return d / "tiles.csv", "b.tif"


def _no_positions_table(tmp: Path) -> tuple[Path, str]:
    d = tmp / "nopos"
    d.mkdir()
    tifffile.imwrite(d / "a.tif", np.zeros((8, 8), np.uint16))
    (d / "tiles.csv").write_text("path,channel,x_um\na.tif,0,\n")
    return d / "tiles.csv", "tiles.csv"


def _mixed_pixel_sizes(tmp: Path) -> tuple[Path, str]:
    d = tmp / "mixed"
    d.mkdir()
    tifffile.imwrite(d / "a.tif", np.zeros((8, 8), np.uint16))
    tifffile.imwrite(d / "b.tif", np.zeros((8, 8), np.uint16))
    (d / "tiles.csv").write_text("path,x_um,y_um,pixel_size_um\na.tif,0,0,1\nb.tif,8,0,0.5\n")
    return d / "tiles.csv", "b.tif"


@pytest.mark.parametrize(
    "make",
    [_truncated_tiff, _missing_file_table, _no_positions_table, _mixed_pixel_sizes],
    ids=lambda f: f.__name__,
)
def test_bad_input_is_one_line_naming_the_file(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src, named = make(tmp_path)
    out = tmp_path / "out.ome.zarr"
    proc = subprocess.run(
        [sys.executable, "-m", "ngff_tiles.cli", "convert", str(src), "-o", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ngff-tiles: error: ")
    assert named in lines[0]
    assert "Traceback" not in proc.stderr
    assert_not_complete(out)


def test_entry_point_plugin_is_listed_and_used(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "fakeplug-0.1.dist-info").mkdir(parents=True)
    (site / "fakeplug-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n"
    )
    (site / "fakeplug-0.1.dist-info" / "entry_points.txt").write_text(
        "[ngff_tiles.readers]\nfake = fakeplug_mod:FakeReader\n"
    )
    (site / "fakeplug_mod.py").write_text(
        "import numpy as np\n"
        "from ngff_tiles.tiles import ArraySource, Tile\n"
        "class FakeReader:\n"
        "    name = 'fake'; description = 'test plugin'; extra = None; priority = 5\n"
        "    def sniff(self, path): return path.endswith('.fake')\n"
        "    def check_dependencies(self): pass\n"
        "    def tiles(self, path, options):\n"
        "        a = np.full((1, 16, 16), 7, np.uint16)\n"
        "        return [Tile(tile_id=0, source=ArraySource(a), shape=a.shape, dtype=a.dtype,\n"
        "                     position_um=(0, 0, 0), pixel_size_um=(1, 1, 1))]\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run(
        [sys.executable, "-m", "ngff_tiles.cli", "readers"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert re.search(r"^fake\s+fakeplug\s+test plugin", listed, re.M), listed
    out = tmp_path / "o.ome.zarr"
    proc = subprocess.run(
        [sys.executable, "-m", "ngff_tiles.cli", "convert", str(tmp_path / "x.fake"), "-o", str(out), "-q"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert np.all(zarr.open_group(str(out), mode="r")["0"][:] == 7)


def test_demo_command(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ngff_tiles.cli", "demo", "-o", str(tmp_path / "demo"), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Output:" in proc.stdout
    assert main(["validate", str(tmp_path / "demo" / "demo.ome.zarr")]) == 0


def test_readme_commands_and_python_block(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .venv[^\n]*)\n```", readme)
    assert len(commands) == 2
    assert "ngff-tiles demo" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "grep -m1" in ci  # .ci/run extracts and runs the README's test command
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks
    for block in blocks:
        subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, check=True, capture_output=True, timeout=300
        )
    assert (tmp_path / "out.ome.zarr" / "zarr.json").is_file()


def test_examples_run(tmp_path: Path) -> None:
    for script in sorted((ROOT / "examples").glob("*.py")):
        proc = subprocess.run(
            [sys.executable, str(script), str(tmp_path / script.stem)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert "PSNR" in proc.stdout


def test_progress_bar_on_stderr_unless_quiet(small_set: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "ngff_tiles.cli", "convert", str(small_set), "-o"]
    loud = subprocess.run([*cmd, str(tmp_path / "a.ome.zarr")], capture_output=True, text=True, check=True)
    assert re.search(r"fusing: 100%.*\d+/\d+ \[", loud.stderr), loud.stderr
    assert "wrote " in loud.stderr
    quiet = subprocess.run(
        [*cmd, str(tmp_path / "b.ome.zarr"), "-q"], capture_output=True, text=True, check=True
    )
    assert quiet.stderr == ""
