"""PYME .pcs series: positions vs PYME's own, fusion vs ground truth and PYME's fusion, quirks, plates."""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from ngff_tiles import convert
from ngff_tiles.errors import MetadataError, SourceError
from ngff_tiles.options import ExecutionOptions, PlateOptions, ReaderOptions
from ngff_tiles.readers import guess_reader
from ngff_tiles.readers.pyme import events as ev
from ngff_tiles.readers.pyme.series import PymeSeriesReader
from ngff_tiles.testing.conformance import ReaderConformance

SERIES = Path(__file__).parents[1] / ".." / "shared" / "sample-data" / "pyme" / "series"
pytestmark = pytest.mark.skipif(
    not (SERIES / "ground_truth.npy").is_file(), reason=f"PYME sample series not found at {SERIES}"
)
QUANT = SERIES / "tiles_quant_2servers"
QUANT_PCS = "ngfftest/2026_11_21/tiles_quant.pcs"
QUANT_SERVERS = (f"file://{(QUANT / 'server_a').resolve()}", f"file://{(QUANT / 'server_b').resolve()}")
PCS = {
    "tiles_events": SERIES / "tiles_events" / "tiles_events.pcs",
    "tiles_xyztc": SERIES / "tiles_xyztc" / "tiles_xyztc.pcs",
    "tiles_quant_2servers": QUANT / "server_a" / QUANT_PCS,
}
QUIET = ExecutionOptions(progress=False, max_workers=2)


@pytest.fixture
def warnings_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """Capture ngff_tiles warnings even after a CLI run configured (and detached) its logger."""
    logger = logging.getLogger("ngff_tiles")
    monkeypatch.setattr(logger, "propagate", True)
    caplog.set_level(logging.WARNING, logger="ngff_tiles")
    return caplog


def _expected(name: str) -> tuple[np.ndarray, np.ndarray]:
    rows = list(csv.DictReader((SERIES / name / "expected_positions.csv").read_text().splitlines()))
    return np.array([float(r["x_um"]) for r in rows]), np.array([float(r["y_um"]) for r in rows])


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _tiles(name: str, **opts: object) -> list:
    if name == "tiles_quant_2servers":
        from ngff_tiles.readers.pyme.cluster import PymeClusterReader

        return PymeClusterReader().tiles(
            f"pyme-cluster:///{QUANT_PCS}", ReaderOptions(pyme_servers=QUANT_SERVERS, **opts)
        )
    return PymeSeriesReader().tiles(str(PCS[name]), ReaderOptions(**opts))


# ---------------------------------------------------------------------------------------------
# conformance


class TestPymeSeriesConformance(ReaderConformance):
    reader_name = "pyme"
    expected_tiles = 9

    def make_input(self, tmp_path: Path) -> str:
        dst = tmp_path / "acq" / "tiles_events.pcs"
        if not dst.exists():
            shutil.copytree(PCS["tiles_events"], dst)
        return str(dst)

    def make_negative(self, tmp_path: Path) -> str:
        folder = tmp_path / "not_a_series"
        folder.mkdir()
        (folder / "metadata.json").write_text("{}")  # metadata but no frames, no .pcs name
        (folder / "frame.tif").write_bytes(b"II*\x00")
        return str(folder)


class TestPymeClusterConformance(ReaderConformance):
    """The same series through ``pyme-cluster://`` on two ``file://`` server roots."""

    reader_name = "pyme-cluster"
    expected_tiles = 6
    options = ReaderOptions(pyme_servers=QUANT_SERVERS)

    def make_input(self, tmp_path: Path) -> str:
        return f"pyme-cluster:///{QUANT_PCS}"

    def make_negative(self, tmp_path: Path) -> str:
        return str(tmp_path)


# ---------------------------------------------------------------------------------------------
# positions: PYME's get_position_from_events is the oracle


@pytest.mark.parametrize("name", list(PCS))
def test_event_positions_equal_pyme(name: str) -> None:
    md = _json(PCS[name] / "metadata.json")
    events = ev.parse_events(_json(PCS[name] / "events.json"), name)
    want_x, want_y = _expected(name)
    x, y, last = ev.frame_positions(events, md, len(want_x), name)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
    assert last == len(want_x) - 1


@pytest.mark.parametrize("name", list(PCS))
def test_tile_positions_equal_pyme(name: str) -> None:
    """Every tile's stage position is PYME's for its frame (Tiling metadata or events)."""
    want_x, want_y = _expected(name)
    tiles = _tiles(name)
    frames = [t.extra["frames"][0] for t in tiles]
    start = _json(PCS[name] / "metadata.json").get("Protocol.DataStartsAt", 0)
    assert frames == list(range(start, len(want_x)))
    for t, f in zip(tiles, frames, strict=True):
        sx, sy = t.extra["stage_xy_um"]
        assert sx == pytest.approx(want_x[f], abs=1e-9)
        assert sy == pytest.approx(want_y[f], abs=1e-9)
    if name == "tiles_xyztc":
        assert tiles[0].extra["positions_from"].startswith("Tiling")


def test_dark_frames_before_data_start_are_not_tiles() -> None:
    tiles = _tiles("tiles_events")
    assert len(tiles) == 9
    assert all(t.extra["frames"][0] >= 2 for t in tiles)


def test_roi_origin_is_added() -> None:
    md = _json(PCS["tiles_quant_2servers"] / "metadata.json")
    px = md["voxelsize.x"]
    for t in _tiles("tiles_quant_2servers"):
        sx, sy = t.extra["stage_xy_um"]
        assert t.position_um[2] == pytest.approx(sx + md["Camera.ROIOriginX"] * px)
        assert t.position_um[1] == pytest.approx(sy + md["Camera.ROIOriginY"] * px)


def test_pixel_size_and_offset_from_metadata() -> None:
    t = _tiles("tiles_xyztc")[0]
    assert t.pixel_size_um[1:] == (0.65, 0.65)
    assert t.shape == (1, 120, 160)
    assert t.extra["camera_offset_subtracted"] == 100
    raw = _tiles("tiles_xyztc", subtract_camera_offset=False)[0].read()
    np.testing.assert_array_equal(t.read().astype(np.int64), raw.astype(np.int64) - 100)


# ---------------------------------------------------------------------------------------------
# pixels and fusion


def test_quantized_frames_equal_pymes_decoding() -> None:
    want = np.load(QUANT / "pyme_decoded_frames_yx.npy")
    tiles = _tiles("tiles_quant_2servers", subtract_camera_offset=False)
    got = np.stack([t.read()[0] for t in tiles])
    np.testing.assert_array_equal(got, want)


def _fuse(inp: str, out: Path, servers: tuple[str, ...] = ()) -> tuple[np.ndarray, list[float]]:
    convert(inp, out, reader_options=ReaderOptions(pyme_servers=servers), execution=QUIET)
    group = zarr.open_group(str(out), mode="r")
    ms = group.attrs["ome"]["multiscales"][0]
    translation = next(
        c["translation"] for c in ms["datasets"][0]["coordinateTransformations"] if c["type"] == "translation"
    )
    return np.asarray(group["0"])[0, 0, 0].astype(np.float64), translation


def _gt_window(name: str, translation: list[float], shape: tuple[int, ...]) -> np.ndarray:
    gt = np.load(SERIES / "ground_truth.npy").astype(np.float64)
    info = _json(SERIES / name / "series.json")
    x_ref, y_ref = info["ground_truth"]["stage_um_of_gt_pixel_row0_col0"]
    md = _json(PCS[name] / "metadata.json")
    px = md["voxelsize.x"]
    col0 = round((translation[-1] - md.get("Camera.ROIOriginX", 0) * px - x_ref) / px)
    row0 = round((translation[-2] - md.get("Camera.ROIOriginY", 0) * px - y_ref) / px)
    return gt[row0 : row0 + shape[0], col0 : col0 + shape[1]]


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return math.sqrt(float(np.mean((a - b) ** 2)))


def test_fused_events_series_equals_ground_truth_and_pyme(tmp_path: Path) -> None:
    fused, tr = _fuse(str(PCS["tiles_events"]), tmp_path / "e.ome.zarr")
    assert fused.shape == (346, 346)  # 3 tiles of 128 at a 109 px step
    gt = _gt_window("tiles_events", tr, fused.shape)
    assert gt.shape == fused.shape
    np.testing.assert_array_equal(fused, gt)  # noise-free data: exact
    pyme = np.load(SERIES / "tiles_events" / "pyme_fused_level0.npy").astype(np.float64)
    covered = pyme[:346, :346] != 0  # PYME blanks occupancy <= 0.1 (the outermost pixels)
    assert covered.mean() > 0.9
    np.testing.assert_array_equal(fused[covered], pyme[:346, :346][covered])


def test_fused_xyztc_series_equals_ground_truth_and_pyme_detile(tmp_path: Path) -> None:
    fused, tr = _fuse(str(PCS["tiles_xyztc"]), tmp_path / "x.ome.zarr")
    assert fused.shape == (324, 296)
    np.testing.assert_array_equal(fused, _gt_window("tiles_xyztc", tr, fused.shape))
    pyme = np.load(SERIES / "tiles_xyztc" / "pyme_detile_xyztc.npy").astype(np.float64)
    covered = pyme != 0
    np.testing.assert_array_equal(fused[covered], pyme[covered])


def test_fused_quantized_series_within_quantization_noise(tmp_path: Path) -> None:
    fused, tr = _fuse(f"pyme-cluster:///{QUANT_PCS}", tmp_path / "q.ome.zarr", QUANT_SERVERS)
    assert fused.shape == (178, 388)
    gt = _gt_window("tiles_quant_2servers", tr, fused.shape)
    # the noise level: PYME's own decoded frames against the ground truth
    decoded = np.load(QUANT / "pyme_decoded_frames_yx.npy").astype(np.float64)
    rows = list(csv.DictReader((QUANT / "frames_truth.csv").read_text().splitlines()))
    gt_all = np.load(SERIES / "ground_truth.npy").astype(np.float64)
    err = []
    for i, r in enumerate(rows):
        r0, c0 = int(r["gt_row0"]), int(r["gt_col0"])
        err.append(decoded[i] - 100 - gt_all[r0 : r0 + 96, c0 : c0 + 144])
    noise = math.sqrt(float(np.mean(np.square(err))))
    assert 5 < noise < 20
    assert _rmse(fused, gt) <= noise
    assert np.abs(fused - gt).max() <= 64  # the largest single-frame quantization error


# ---------------------------------------------------------------------------------------------
# incomplete series (PYME's finalise race)


def _copy(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / PCS[name].name
    shutil.copytree(PCS[name], dst)
    return dst


def test_missing_last_frame_loads_with_warning(
    tmp_path: Path, warnings_log: pytest.LogCaptureFixture
) -> None:
    caplog = warnings_log
    pcs = _copy("tiles_events", tmp_path)
    (pcs / "frame00010.pzf").unlink()
    tiles = PymeSeriesReader().tiles(str(pcs), ReaderOptions())
    assert len(tiles) == 8
    assert "frame00010.pzf" in caplog.text
    assert "incomplete series" in caplog.text


def test_missing_events_with_tiling_metadata_loads_with_warning(
    tmp_path: Path, warnings_log: pytest.LogCaptureFixture
) -> None:
    caplog = warnings_log
    pcs = _copy("tiles_xyztc", tmp_path)
    (pcs / "events.json").unlink()
    (pcs / "final_metadata.json").unlink()
    tiles = PymeSeriesReader().tiles(str(pcs), ReaderOptions())
    assert len(tiles) == 6
    assert "events.json" in caplog.text
    assert "final_metadata.json" in caplog.text


def test_missing_events_without_tiling_is_refused(tmp_path: Path) -> None:
    pcs = _copy("tiles_events", tmp_path)
    (pcs / "events.json").unlink()
    with pytest.raises(MetadataError, match=r"events\.json is missing"):
        PymeSeriesReader().tiles(str(pcs), ReaderOptions())


def test_missing_metadata_is_a_source_error(tmp_path: Path) -> None:
    pcs = _copy("tiles_events", tmp_path)
    (pcs / "metadata.json").unlink()
    (pcs / "final_metadata.json").unlink()
    with pytest.raises(SourceError, match=r"no metadata\.json"):
        PymeSeriesReader().tiles(str(pcs), ReaderOptions())


def test_corrupt_frame_names_the_file(tmp_path: Path) -> None:
    pcs = _copy("tiles_events", tmp_path)
    frame = pcs / "frame00005.pzf"
    frame.write_bytes(frame.read_bytes()[:100])
    tiles = PymeSeriesReader().tiles(str(pcs), ReaderOptions())
    bad = next(t for t in tiles if t.extra["frames"] == [5])
    with pytest.raises(SourceError, match=r"frame00005\.pzf: Huffman (tree|stream) truncated"):
        bad.read()


def test_frame_of_another_shape_is_refused(tmp_path: Path) -> None:
    pcs = _copy("tiles_events", tmp_path)
    other = SERIES / "tiles_xyztc" / "tiles_xyztc.pcs" / "frame00000.pzf"
    shutil.copy(other, pcs / "frame00004.pzf")
    tiles = PymeSeriesReader().tiles(str(pcs), ReaderOptions())
    bad = next(t for t in tiles if t.extra["frames"] == [4])
    with pytest.raises(SourceError, match=r"frame00004\.pzf: frame is \(120, 160\)"):
        bad.read()


def test_input_is_not_modified(tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in PCS["tiles_events"].iterdir()}
    _fuse(str(PCS["tiles_events"]), tmp_path / "out.ome.zarr")
    assert {p.name: p.read_bytes() for p in PCS["tiles_events"].iterdir()} == before


# ---------------------------------------------------------------------------------------------
# orientation


def test_camera_orientation_flips_tile_centres(tmp_path: Path) -> None:
    pcs = _copy("tiles_events", tmp_path)
    md = _json(pcs / "metadata.json")
    md["CameraOrientation.FlipX"] = True
    (pcs / "metadata.json").write_text(json.dumps(md))
    (pcs / "final_metadata.json").unlink()
    plain = _tiles("tiles_events")
    flipped = PymeSeriesReader().tiles(str(pcs), ReaderOptions())
    for a, b in zip(plain, flipped, strict=True):
        assert b.center_um[2] == pytest.approx(-a.center_um[2])
        assert b.center_um[1] == pytest.approx(a.center_um[1])


# ---------------------------------------------------------------------------------------------
# several series: a folder, a glob, a plate


def test_folder_and_glob_of_series(tmp_path: Path) -> None:
    root = tmp_path / "user" / "2026_11_21"
    root.mkdir(parents=True)
    for name in ("tiles_events", "tiles_xyztc"):
        shutil.copytree(PCS[name], root / PCS[name].name)
    assert guess_reader(str(tmp_path / "user")).name == "pyme"
    by_folder = PymeSeriesReader().tiles(str(tmp_path / "user"), ReaderOptions())
    by_glob = PymeSeriesReader().tiles(str(tmp_path / "user" / "*" / "*.pcs"), ReaderOptions())
    assert len(by_folder) == len(by_glob) == 15
    assert [t.name for t in by_folder] == [t.name for t in by_glob]
    assert [t.tile_id for t in by_glob] == list(range(15))


def _shifted_series(src: Path, dst: Path, dx: float, dy: float) -> None:
    shutil.copytree(src, dst)
    for meta in ("metadata.json", "final_metadata.json"):
        md = _json(dst / meta)
        md["Tiling.XPositions"] = [x + dx for x in md["Tiling.XPositions"]]
        md["Tiling.YPositions"] = [y + dy for y in md["Tiling.YPositions"]]
        (dst / meta).write_text(json.dumps(md))


def test_plate_wells_snapped_from_stage_positions(tmp_path: Path) -> None:
    acq = tmp_path / "acq"
    acq.mkdir()
    # three series 9 mm apart (the 96-well pitch): wells A1, A2 and B1 relative to the first
    for name, dx, dy in (("s_first", 0, 0), ("s_right", 9000, 0), ("s_below", 0, 9000)):
        _shifted_series(PCS["tiles_xyztc"], acq / f"{name}.pcs", dx, dy)
    out = tmp_path / "plate.ome.zarr"
    convert(
        str(acq),
        out,
        plate=PlateOptions(geometry=96, snap=True),
        execution=QUIET,
    )
    plate = zarr.open_group(str(out), mode="r").attrs["ome"]["plate"]
    wells = sorted(w["path"] for w in plate["wells"])
    assert wells == ["A/1", "A/2", "B/1"]
    assert len(plate["rows"]) == 8
    assert len(plate["columns"]) == 12
    a2 = np.asarray(zarr.open_group(str(out / "A" / "2" / "0"), mode="r")["0"])[0, 0, 0]
    a1 = np.asarray(zarr.open_group(str(out / "A" / "1" / "0"), mode="r")["0"])[0, 0, 0]
    np.testing.assert_array_equal(a1, a2)  # the same series content in each well


def test_plate_wells_from_series_names(tmp_path: Path) -> None:
    acq = tmp_path / "acq"
    acq.mkdir()
    for name in ("B03", "C11"):
        shutil.copytree(PCS["tiles_events"], acq / f"{name}.pcs")
    tiles = PymeSeriesReader().tiles(str(acq), ReaderOptions())
    assert {str(t.well) for t in tiles} == {"B3", "C11"}
    out = tmp_path / "plate.ome.zarr"
    convert(str(acq), out, execution=QUIET)
    plate = zarr.open_group(str(out), mode="r").attrs["ome"]["plate"]
    assert sorted(w["path"] for w in plate["wells"]) == ["B/3", "C/11"]
    b3 = np.asarray(zarr.open_group(str(out / "B" / "3" / "0"), mode="r")["0"])[0, 0, 0]
    assert b3.shape == (346, 346)


# ---------------------------------------------------------------------------------------------
# synthetic series (ngff_tiles.testing.pyme_series) at sizes the samples do not have


@pytest.mark.parametrize("mode", ["events", "tiling"])
def test_synthetic_series_round_trip(tmp_path: Path, mode: str) -> None:
    from ngff_tiles.testing.pyme_series import write_series

    rng = np.random.default_rng(11)
    y, x = np.mgrid[:260, :420]
    smooth = 400 + 300 * np.sin(x / 23.0) * np.cos(y / 17.0)
    truth = (smooth + rng.integers(0, 50, (260, 420))).astype(np.uint16)
    frames, positions = [], []
    for r in range(2):
        for c in range(3):
            r0, c0 = r * 110, c * 130
            frames.append(truth[r0 : r0 + 150, c0 : c0 + 160] + np.uint16(100))
            positions.append((5000.0 + c0 * 0.65, -300.0 + r0 * 0.65))
    pcs = write_series(tmp_path / "acq" / "synth.pcs", frames, positions, mode=mode, dark_frames=2)
    tiles = PymeSeriesReader().tiles(str(pcs), ReaderOptions())
    assert len(tiles) == 6
    for t, (px, py) in zip(tiles, positions, strict=True):
        assert t.extra["stage_xy_um"] == pytest.approx((px, py), abs=1e-6)
    fused, _ = _fuse(str(pcs), tmp_path / "out.ome.zarr")
    np.testing.assert_array_equal(fused, truth[: 110 + 150, : 260 + 160])


def test_end_to_end_benchmark_runs(tmp_path: Path) -> None:
    """benchmarks/bench_pyme.py converts a one-frame 2048² series from disk and over HTTP."""
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "benchmarks" / "bench_pyme.py"
    out = tmp_path / "bench.json"
    res = subprocess.run(
        [sys.executable, str(script), "--grid", "1", "--workdir", str(tmp_path), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    result = json.loads(out.read_text())
    assert result["frames"] == 1
    assert result["local .pcs"]["s"] > 0
    assert result["pyme-cluster:// over HTTP"]["s"] > 0
    assert result["fused_psnr_db"] > 25


def test_cli_corrupt_frame_exits_2_naming_the_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ngff_tiles.cli import main

    logger = logging.getLogger("ngff_tiles")
    for attr in ("handlers", "level", "propagate"):  # main() configures the logger: restore it after
        monkeypatch.setattr(logger, attr, getattr(logger, attr) if attr != "handlers" else logger.handlers[:])
    pcs = _copy("tiles_events", tmp_path)
    frame = pcs / "frame00006.pzf"
    frame.write_bytes(frame.read_bytes()[:-50])
    out = tmp_path / "out.ome.zarr"
    assert main(["convert", str(pcs), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "frame00006.pzf: Huffman stream truncated" in err[0]
    if out.exists():  # never passed off as complete
        meta = json.loads((out / "zarr.json").read_text())
        assert "multiscales" not in meta.get("attributes", {}).get("ome", {})


def _with_metadata(tmp_path: Path, name: str, changes: dict, drop: tuple[str, ...] = ()) -> Path:
    pcs = _copy(name, tmp_path)
    md = _json(pcs / "metadata.json")
    for key in drop:
        md.pop(key, None)
    md.update(changes)
    (pcs / "metadata.json").write_text(json.dumps(md))
    (pcs / "final_metadata.json").write_text(json.dumps(md))
    return pcs


@pytest.mark.parametrize(
    ("changes", "drop", "offset_px"),
    [
        ({"Camera.ROIPosX": 11, "Camera.ROIPosY": 21}, ("Camera.ROIOriginX", "Camera.ROIOriginY"), (10, 20)),
        ({"Multiview.ActiveViews": [0, 1], "Multiview.ROI0Origin": [512, 64]}, (), (512, 64)),
        ({"Camera.ROIOriginX": 7, "Camera.ROIOriginY": 3}, (), (7, 3)),
        ({}, ("Camera.ROIOriginX", "Camera.ROIOriginY"), (0, 0)),
    ],
    ids=["legacy-ROIPos-1-based", "multiview", "ROIOrigin", "none"],
)
def test_roi_origin_variants(tmp_path: Path, changes: dict, drop: tuple, offset_px: tuple) -> None:
    pcs = _with_metadata(tmp_path, "tiles_events", changes, drop)
    tile = PymeSeriesReader().tiles(str(pcs), ReaderOptions())[0]
    sx, sy = tile.extra["stage_xy_um"]
    assert tile.position_um[2] == pytest.approx(sx + offset_px[0] * 0.65)
    assert tile.position_um[1] == pytest.approx(sy + offset_px[1] * 0.65)


def test_voxelsize_in_nm_and_rotation(tmp_path: Path) -> None:
    pcs = _with_metadata(
        tmp_path,
        "tiles_events",
        {
            "voxelsize.units": "nm",
            "voxelsize.x": 650.0,
            "voxelsize.y": 650.0,
            "CameraOrientation.Rotate": True,
        },
    )
    plain = _tiles("tiles_events")
    rotated = PymeSeriesReader().tiles(str(pcs), ReaderOptions())
    assert rotated[0].pixel_size_um[1:] == pytest.approx((0.65, 0.65))
    for a, b in zip(plain, rotated, strict=True):  # Rotate swaps the centres' x and y
        assert b.center_um[2] == pytest.approx(a.center_um[1])
        assert b.center_um[1] == pytest.approx(a.center_um[2])


def test_channels_and_z_from_dim_order(tmp_path: Path) -> None:
    """Tiling series with SizeC=2, SizeZ=1 (XYCZT): frames alternate channels at each position."""
    from ngff_tiles.testing.pyme_series import write_series

    frames = [np.full((20, 30), 100 + k, dtype=np.uint16) for k in range(4)]
    pcs = write_series(
        tmp_path / "c.pcs",
        frames,
        [(0.0, 0.0)] * 4,
        mode="tiling",
        extra_metadata={
            "SizeC": 2,
            "SizeT": 2,
            "Tiling.XPositions": [0.0, 13.0],
            "Tiling.YPositions": [0.0, 0.0],
        },
    )
    tiles = PymeSeriesReader().tiles(str(pcs), ReaderOptions())
    assert [(t.channel, t.extra["frames"]) for t in tiles] == [("0", [0]), ("1", [1]), ("0", [2]), ("1", [3])]
    assert [t.extra["stage_xy_um"][0] for t in tiles] == [0.0, 0.0, 13.0, 13.0]
    assert [int(t.read()[0, 0, 0]) for t in tiles] == [0, 1, 2, 3]


def test_half_of_a_split_series_points_to_the_cluster_reader() -> None:
    half = QUANT / "server_b" / QUANT_PCS  # frames 0-3 only; metadata is on server_a
    with pytest.raises(SourceError, match=r"no metadata\.json \(its files may be spread .* file:///"):
        PymeSeriesReader().tiles(str(half), ReaderOptions())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"Camera.CycleTime": 0}, "CycleTime must be positive"),
        ({"Camera.CycleTime": 5e-324}, "cannot be mapped to a frame"),
        ({"StartTime": "soon"}, "StartTime is missing or not a number"),
        ({"voxelsize.x": -1}, "no pixel size"),
        ({"voxelsize.units": "furlong"}, "not a length unit"),
        ({"Positioning.x": "left"}, r"Positioning\.x is missing or not a number"),
        ({"DimOrder": "XYQQQ"}, "unsupported DimOrder"),
        ({"Tiling.XPositions": [1.0], "Tiling.YPositions": [1.0, 2.0]}, "equally long"),
    ],
)
def test_bad_metadata_is_a_metadata_error(tmp_path: Path, change: dict, match: str) -> None:
    pcs = _with_metadata(tmp_path, "tiles_events", change)
    with pytest.raises(MetadataError, match=match) as info:
        PymeSeriesReader().tiles(str(pcs), ReaderOptions())
    assert str(pcs) in str(info.value)


def test_bad_events_are_a_metadata_error(tmp_path: Path) -> None:
    pcs = _copy("tiles_events", tmp_path)
    for doc, match in (
        ({"not": "a list"}, "expected a JSON list"),
        ([["ScannerXPos", "10.0"]], "not a \\[name, description, time\\] triple"),
        ([["ScannerXPos", "ten", 1.8e9]], "non-numeric position"),
        ([["StartAq", "x", 1.8e9], ["ScannerXPos", "1.0", 1.8e9]], "non-integer frame"),
    ):
        (pcs / "events.json").write_text(json.dumps(doc))
        with pytest.raises(MetadataError, match=match):
            PymeSeriesReader().tiles(str(pcs), ReaderOptions())
    (pcs / "events.json").write_text("[not json")
    with pytest.raises(SourceError, match=r"events\.json: not valid JSON"):
        PymeSeriesReader().tiles(str(pcs), ReaderOptions())
