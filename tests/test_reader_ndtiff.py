"""NDTiff reader: the shared samples against ndtiff's own reader, datasets written with ndtiff's writer."""

from __future__ import annotations

import contextlib
import io
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from ngff_tiles.cli import main
from ngff_tiles.errors import MetadataError, MissingDependencyError, NgffTilesError, SourceError
from ngff_tiles.options import ExecutionOptions, ReaderOptions, WriterOptions
from ngff_tiles.pipeline import convert
from ngff_tiles.readers import get_reader, guess_reader
from ngff_tiles.readers.ndtiff import NDTiffReader, nearest_signed_permutation, parse_well_name, well_hints
from ngff_tiles.testing.conformance import ReaderConformance
from ngff_tiles.tiles import Tile, Well

ndtiff = pytest.importorskip("ndtiff", reason="the ndtiff reader's tests need ndtiff (ngff-tiles[ndtiff])")

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "sample-data" / "ndtiff"
OPTS = ReaderOptions()
QUIET = ExecutionOptions(progress=False)
SMALL = WriterOptions(chunks=(1, 64, 64), shards=(1, 128, 128))


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.is_dir():
        pytest.skip(f"NDTiff sample absent: {path} (../shared not checked out)")
    return path


# --------------------------------------------------------------------------------------------
# writing with ndtiff's own writer


def write_ndtiff(
    path: Path, images: list[tuple[dict[str, Any], np.ndarray, dict[str, Any]]], summary: dict[str, Any]
) -> Path:
    """Write ``(axes, uint16 image, metadata)`` triples with ``NDTiffDataset(..., writable=True)``.

    ndtiff 3.1.0's writer reads its own file header back before its 8 KiB write buffer is flushed,
    so the first image must be at least 8 KiB (e.g. 64 × 64 uint16). It also leaves its read
    handles open; they are closed here.
    """
    assert images[0][1].nbytes >= 8192, "ndtiff 3.1.0's writer needs a first image of at least 8 KiB"
    ds = ndtiff.NDTiffDataset(str(path), summary_metadata=summary, writable=True)
    for axes, image, md in images:
        ds.put_image(axes, np.ascontiguousarray(image, dtype=np.uint16), md)
    writer = ds.current_writer
    ds.finish()
    if writer is not None:
        writer.reader.close()
    ds.close()
    return path


def mda_dataset(path: Path) -> Path:
    """2 named positions × 2 times × 2 channels × 3 z, 64 × 72 px, 0.5 µm, z step 2 µm."""
    rng = np.random.default_rng(1)
    summary = {"PixelSize_um": 0.5, "PixelType": "GRAY16", "z-step_um": 2.0, "Core-XYStage": "XY"}
    images = []
    for pos, (x, y) in (("Pos0", (100.0, 200.0)), ("Pos1", (130.0, 200.0))):
        for t in range(2):
            for ch in ("DAPI", "FITC"):
                for z in range(3):
                    axes = {"position": pos, "time": t, "channel": ch, "z": z}
                    md = {
                        "Axes": axes,
                        "PositionName": pos,
                        "Channel": ch,
                        "XPosition_um_Intended": x,
                        "YPosition_um_Intended": y,
                        "ZPosition_um_Intended": 10.0 + 2.0 * z,
                        "PixelSize_um": 0.5,
                    }
                    images.append((axes, rng.integers(0, 4000, (64, 72), dtype=np.uint16), md))
    return write_ndtiff(path, images, summary)


@contextlib.contextmanager
def ndtiff_dataset(path: Path) -> Iterator[Any]:
    """ndtiff's own reader, quiet, closed afterwards (ndtiff 3.1's pyramid close() is broken)."""
    with contextlib.redirect_stdout(io.StringIO()):
        ds = ndtiff.Dataset(str(path))
    try:
        yield ds
    finally:
        for level in getattr(ds, "res_levels", {0: ds}).values():
            level.close()


# --------------------------------------------------------------------------------------------
# conformance


class _NegativeTiff:
    def make_negative(self, tmp_path: Path) -> str:
        # an NDTiff-like name, but a plain TIFF without the NDTiff magic and no index
        tifffile.imwrite(
            tmp_path / "x_NDTiffStack.tif", np.zeros((8, 8), np.uint16), photometric="minisblack"
        )
        (tmp_path / "NDTiff.idx").write_bytes(b"\x00" * 16)
        return str(tmp_path)


class TestNDTiffWrittenConformance(_NegativeTiff, ReaderConformance):
    reader_name = "ndtiff"
    expected_tiles = 8

    def make_input(self, tmp_path: Path) -> str:
        path = tmp_path / "mda"
        if not path.exists():
            mda_dataset(path)
        return str(path)


class TestNDTiffPyramidRGBConformance(_NegativeTiff, ReaderConformance):
    reader_name = "ndtiff"
    expected_tiles = 9

    def make_input(self, tmp_path: Path) -> str:
        return str(sample("ndtiff3.2_magellan_explore_rgb"))


class TestNDTiffV2Conformance(_NegativeTiff, ReaderConformance):
    reader_name = "ndtiff"
    expected_tiles = 2

    def make_input(self, tmp_path: Path) -> str:
        return str(sample("v2/ndtiffv2.0_stitched_test"))


# --------------------------------------------------------------------------------------------
# the shared samples (values from ../shared/sample-data/SOURCES.md)

# name -> (tiles, (H, W), dtype, channels, {tile name: stage (x, y)} or None)
EXPECTED: dict[str, tuple[int, tuple[int, int], str, list[str], dict[str, tuple[float, float]] | None]] = {
    "labeled_positions_1": (
        3,
        (512, 512),
        "uint16",
        ["DAPI"],
        {"Pos0": (0, 1), "Pos1": (0, 2), "Pos2": (0, 0)},
    ),
    "no_magellan_explore_multi_channel": (
        20,
        (64, 64),
        "uint16",
        ["Cy5", "DAPI", "FITC", "Rhodamine"],
        {
            "row3_col4": (0, 0),
            "row4_col3": (-64, 64),
            "row4_col5": (64, 64),
            "row5_col3": (-64, 128),
            "row5_col5": (64, 128),
            "row6_col3": (-64, 192),
            "row6_col5": (64, 192),
        },
    ),
    "ndtiffv3.0_stitched_test": (
        2,
        (32, 32),
        "uint16",
        ["0"],
        {"row0_col0": (-28, -28), "row1_col1": (0, 0)},
    ),
    "v2/ndtiffv2.0_stitched_test": (
        2,
        (32, 32),
        "uint16",
        ["0"],
        {"row0_col0": (-28, -28), "row1_col1": (0, 0)},
    ),
    "ndtiff3.2_magellan_explore_rgb": (
        9,
        (32, 32),
        "uint8",
        ["R", "G", "B"],
        {"row11_col11": (0, 0), "row12_col12": (31, 31), "row13_col13": (62, 62)},
    ),
    "12_bit_pycromanager_mda": (8, (64, 64), "uint16", ["DAPI", "FITC"], None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_samples_match_sources(name: str) -> None:
    count, (h, w), dtype, channels, stage = EXPECTED[name]
    tiles = get_reader("ndtiff").tiles(str(sample(name)), OPTS)
    assert len(tiles) == count
    assert {t.shape for t in tiles} == {(1, h, w)}
    assert {str(t.dtype) for t in tiles} == {dtype}
    assert list(dict.fromkeys(t.channel for t in tiles)) == channels
    assert {t.pixel_size_um[1:] for t in tiles} == {(1.0, 1.0)}
    if stage is None:
        assert {t.position_um for t in tiles} == {(0.0, 0.0, 0.0)}
        assert all("stage_xy_um" not in t.extra for t in tiles)
        return
    assert {t.name for t in tiles} == set(stage)
    for t in tiles:
        sx, sy = stage[t.name]
        assert t.extra["stage_xy_um"] == [sx, sy]
        # stage position = image centre: the corner is half a tile up and left of it
        assert t.position_um[1:] == (sy - h / 2, sx - w / 2)


def test_written_mda_names_z_time_channels(tmp_path: Path) -> None:
    tiles = get_reader("ndtiff").tiles(str(mda_dataset(tmp_path / "mda")), OPTS)
    assert [(t.name, t.time_index, t.channel) for t in tiles[:4]] == [
        ("Pos0", 0, "DAPI"),
        ("Pos0", 0, "FITC"),
        ("Pos0", 1, "DAPI"),
        ("Pos0", 1, "FITC"),
    ]
    pos1 = next(t for t in tiles if t.name == "Pos1")
    assert pos1.shape == (3, 64, 72)
    # z from ZPosition_um_Intended of the first plane, step from z-step_um; xy centre -> corner
    assert pos1.position_um == (10.0, 200.0 - 32 * 0.5, 130.0 - 36 * 0.5)
    assert pos1.pixel_size_um == (2.0, 0.5, 0.5)
    assert {t.well for t in tiles} == {None}  # "Pos0" is no well name


def test_12_bit_sample_is_uint16_with_bit_depth() -> None:
    tiles = get_reader("ndtiff").tiles(str(sample("12_bit_pycromanager_mda")), OPTS)
    assert {t.extra["bit_depth"] for t in tiles} == {12}
    assert sorted({t.time_index for t in tiles}) == [0, 1, 2, 3]
    data = tiles[0].read()
    assert data.dtype == np.uint16
    assert int(data.max()) < 4096


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pixels_equal_ndtiff_read_image(name: str) -> None:
    path = sample(name)
    tiles = get_reader("ndtiff").tiles(str(path), OPTS)
    with ndtiff_dataset(path) as ds:
        for t in tiles:
            axes = dict(t.extra["axes"])  # type: ignore[call-overload]
            md = ds.read_metadata(**axes)
            if "stage_xy_um" in t.extra:
                assert t.extra["stage_xy_um"] == [md["XPosition_um_Intended"], md["YPosition_um_Intended"]]
            expect = np.asarray(ds.read_image(**axes))
            if expect.ndim == 3:  # RGB
                expect = expect[..., "RGB".index(t.channel[-1])]
            np.testing.assert_array_equal(t.read()[0], expect)
            region = (slice(0, 1), slice(3, t.shape[1] - 5), slice(7, t.shape[2] - 2))
            np.testing.assert_array_equal(t.read(region)[0], expect[3:-5, 7:-2])


def stitched_reference(path: Path, channel: Any) -> np.ndarray:
    with ndtiff_dataset(path) as ds:
        fixed = {a: next(iter(v)) for a, v in ds.axes.items() if a not in ("row", "column", "channel")}
        if isinstance(ds, ndtiff.NDTiffPyramidDataset):
            fixed["res_level"] = 0  # v3 pyramids; the v2 reader has full resolution only
        return np.asarray(ds.as_array(axes=[], stitched=True, channel=channel, **fixed))


def _stitched_test(path: Path, tmp_path: Path) -> tuple[int, int, int]:
    """Fuse by position and compare with ``as_array(stitched=True)``; return (compared, total, overlap)."""
    tiles = get_reader("ndtiff").tiles(str(path), OPTS)
    res = convert(str(path), tmp_path / "out.ome.zarr", execution=QUIET, writer=SMALL)
    fused_all = zarr.open_group(str(tmp_path / "out.ome.zarr"), mode="r")["0"]
    with ndtiff_dataset(path) as ds:
        ov_y, ov_x = (int(v) for v in ds.overlap)
    h, w = tiles[0].shape[1:]
    dh, dw = h - ov_y, w - ov_x
    rmin = min(t.extra["grid_row_column"][0] for t in tiles)  # type: ignore[index]
    cmin = min(t.extra["grid_row_column"][1] for t in tiles)  # type: ignore[index]
    oy, ox = res.layout.origin_um[1:]
    compared = total = overlap_px = 0
    for c, channel in enumerate(res.layout.channels):
        fused = np.asarray(fused_all[0, c, 0])
        mine = [t for t in tiles if t.channel == channel]
        axis_value = mine[0].extra["axes"].get("channel", 0)  # type: ignore[attr-defined]
        ref = stitched_reference(path, axis_value)
        shifts = set()
        defined = np.zeros(ref.shape, bool)
        cover = np.zeros(fused.shape, np.int32)
        for t in mine:
            r, col = t.extra["grid_row_column"]  # type: ignore[misc]
            fy, fx = round(t.position_um[1] - oy), round(t.position_um[2] - ox)
            sy, sx = (r - rmin) * dh - ov_y // 2, (col - cmin) * dw - ov_x // 2
            shifts.add((fy - sy, fx - sx))
            defined[(r - rmin) * dh : (r - rmin + 1) * dh, (col - cmin) * dw : (col - cmin + 1) * dw] = True
            cover[fy : fy + h, fx : fx + w] += 1
        assert len(shifts) == 1, f"positions disagree with the row/column grid: {shifts}"
        (dy, dx) = shifts.pop()
        yy, xx = np.nonzero(defined)
        fyy, fxx = yy + dy, xx + dx
        inside = (fyy >= 0) & (fyy < fused.shape[0]) & (fxx >= 0) & (fxx < fused.shape[1])
        yy, xx, fyy, fxx = yy[inside], xx[inside], fyy[inside], fxx[inside]
        single = cover[fyy, fxx] == 1
        np.testing.assert_array_equal(fused[fyy[single], fxx[single]], ref[yy[single], xx[single]])
        compared += int(single.sum())
        total += int(defined.sum())
        overlap_px += int((~single).sum())
    return compared, total, overlap_px


@pytest.mark.parametrize("name", ["ndtiffv3.0_stitched_test", "v2/ndtiffv2.0_stitched_test"])
def test_fused_equals_ndtiff_stitched_with_overlap(name: str, tmp_path: Path) -> None:
    # 2 of 2×2 tiles, 32 px, overlap 4: everything ndtiff defines equals the fusion except the
    # 2×(2×2) pixels of the diagonal overlap that ndtiff crops and the fusion blends.
    compared, total, overlap = _stitched_test(sample(name), tmp_path)
    assert total == 2 * 28 * 28
    assert overlap == 8
    assert compared == total - overlap


def test_fused_equals_ndtiff_stitched_zero_overlap(tmp_path: Path) -> None:
    path = sample("no_magellan_explore_multi_channel")
    compared, total, overlap = _stitched_test(path, tmp_path)
    assert overlap == 0
    assert compared == total == 20 * 64 * 64
    # and the whole arrays agree, empty grid cells (zeros in ndtiff) included
    fused = zarr.open_group(str(tmp_path / "out.ome.zarr"), mode="r")["0"]
    assert fused.shape == (1, 4, 1, 256, 192)
    with ndtiff_dataset(path) as ds:
        channels = list(ds.axes["channel"])
    for c, name in enumerate(["Cy5", "DAPI", "FITC", "Rhodamine"]):
        assert name in channels
        np.testing.assert_array_equal(np.asarray(fused[0, c, 0]), stitched_reference(path, name))


# --------------------------------------------------------------------------------------------
# datasets written with ndtiff's writer


def texture(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A smooth, strongly structured field (sums of random sinusoids), 500..3500."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]].astype(float)
    out = np.zeros(shape)
    for _ in range(12):
        wavelength = rng.uniform(8, 60)
        angle = rng.uniform(0, math.pi)
        phase = rng.uniform(0, 2 * math.pi)
        out += np.sin(2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / wavelength + phase)
    out = (out - out.min()) / (out.max() - out.min())
    return 500 + 3000 * out


def test_jittered_grid_fuses_within_noise(tmp_path: Path) -> None:
    # 4 columns × 3 rows of 80 px tiles, 10 % overlap (8 px), positions jittered by up to ±3 px,
    # cut from a ground truth, independent Gaussian noise (sigma 8) on every tile.
    tile, overlap, px, sigma, margin = 80, 8, 0.65, 8.0, 6
    step = tile - overlap
    truth = texture((2 * margin + 2 * step + tile, 2 * margin + 3 * step + tile))
    rng = np.random.default_rng(7)
    summary = {
        "PixelSize_um": px,
        "PixelType": "GRAY16",
        "GridPixelOverlapX": overlap,
        "GridPixelOverlapY": overlap,
    }
    images, corners = [], []
    for r in range(3):
        for c in range(4):
            y0 = margin + r * step + int(rng.integers(-3, 4))
            x0 = margin + c * step + int(rng.integers(-3, 4))
            corners.append((y0, x0))
            noisy = truth[y0 : y0 + tile, x0 : x0 + tile] + rng.normal(0, sigma, (tile, tile))
            md = {
                "GridRowIndex": r,
                "GridColumnIndex": c,
                "XPosition_um_Intended": 1000.0 + (x0 + tile / 2) * px,  # stage = tile centre
                "YPosition_um_Intended": -500.0 + (y0 + tile / 2) * px,
                "PixelSize_um": px,
            }
            images.append(({"row": r, "column": c}, np.rint(noisy).astype(np.uint16), md))
    path = write_ndtiff(tmp_path / "grid", images, summary)

    res = convert(str(path), tmp_path / "grid.ome.zarr", execution=QUIET, writer=SMALL)
    ymin, xmin = min(y for y, _ in corners), min(x for _, x in corners)
    ymax, xmax = max(y for y, _ in corners) + tile, max(x for _, x in corners) + tile
    assert res.layout.shape == (1, 1, 1, ymax - ymin, xmax - xmin)
    assert res.layout.origin_um[1:] == pytest.approx((-500.0 + ymin * px, 1000.0 + xmin * px))
    fused = np.asarray(zarr.open_group(str(tmp_path / "grid.ome.zarr"), mode="r")["0"][0, 0, 0], float)
    expect = truth[ymin:ymax, xmin:xmax]
    cover = np.zeros(fused.shape, bool)
    for y0, x0 in corners:
        cover[y0 - ymin : y0 - ymin + tile, x0 - xmin : x0 - xmin + tile] = True
    # inside the bounding box only the jittered outer edges are uncovered (fill value 0)
    assert cover.mean() > 0.97
    assert not fused[~cover].any()
    err = (fused - expect)[cover]
    rms = float(np.sqrt(np.mean(err**2)))
    noise = math.sqrt(sigma**2 + 1 / 12)  # per-tile noise plus rounding to integers
    assert rms <= 1.02 * noise, (rms, noise)
    assert abs(float(err.mean())) < 0.5
    assert float(np.abs(err).max()) < 6 * sigma
    # a one-pixel misplacement would be far outside the noise: the test can tell
    inner = cover[:, 1:] & cover[:, :-1]
    shifted = float(np.sqrt(np.mean((fused[:, 1:] - expect[:, :-1])[inner] ** 2)))
    assert shifted > 5 * noise


def test_plate_like_positions_carry_well_hints(tmp_path: Path) -> None:
    names = ["A1-Site_0", "A1-Site_1", "A2-Site_0", "B1-Site_0", "B1-Site_1"]
    images = []
    for i, name in enumerate(names):
        axes = {"position": name, "channel": "DAPI"}
        md = {"PositionName": name, "XPosition_um_Intended": 9000.0 * i, "YPosition_um_Intended": 0.0}
        images.append((axes, np.full((64, 64), i, np.uint16), md))
    path = write_ndtiff(tmp_path / "plate", images, {"PixelSize_um": 0.5, "PixelType": "GRAY16"})
    tiles = get_reader("ndtiff").tiles(str(path), OPTS)
    got = {t.name: (t.well, t.field_index) for t in tiles}
    assert got == {
        "A1-Site_0": (Well("A", "1"), 0),
        "A1-Site_1": (Well("A", "1"), 1),
        "A2-Site_0": (Well("A", "2"), 0),
        "B1-Site_0": (Well("B", "1"), 0),
        "B1-Site_1": (Well("B", "1"), 1),
    }
    assert [int(t.read().max()) for t in tiles] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("name", "expect"),
    [
        ("A1-Site_0", (Well("A", "1"), 0)),
        ("B12-Site_3", (Well("B", "12"), 3)),
        ("A01", (Well("A", "1"), None)),
        ("Platename_H07_0002", (Well("H", "7"), 2)),
        ("WellC03", (Well("C", "3"), None)),
        ("AF48", (Well("AF", "48"), None)),
        ("Pos0", None),
        ("1-Pos_000_001", None),
        ("XYPos:3", None),
        ("", None),
    ],
)
def test_parse_well_name(name: str, expect: tuple[Well, int | None] | None) -> None:
    assert parse_well_name(name) == expect


def test_well_hints_all_or_nothing() -> None:
    assert well_hints(["A01", "A01", "B02"]) == {"A01": (Well("A", "1"), 0), "B02": (Well("B", "2"), 0)}
    assert well_hints(["A01", "Pos1"]) == {}
    assert well_hints(["A1-Site_0", "A01_0"]) == {}  # same well and field twice
    assert well_hints(["A01", "A01_1", "A01_5"])["A01"] == (Well("A", "1"), 0)


def test_axes_numbers_names_negative_and_others(tmp_path: Path) -> None:
    # int positions named by PositionName, negative rows, int channels named from ChNames, a time
    # axis with a gap, a z axis with a gap (two runs), and an extra axis with two values.
    summary = {"PixelSize_um": 1.0, "PixelType": "GRAY16", "ChNames": ["GFP", "RFP"], "z-step_um": 1.5}
    images = []
    for p, row in ((0, -2), (1, -1)):
        for t in (0, 3):
            for ch in (0, 1):
                for z in (-1, 0, 2):
                    for cam in (0, 1):
                        axes = {"position": p, "row": row, "column": 0, "time": t, "channel": ch, "z": z}
                        axes["camera"] = cam
                        md = {"PositionName": f"Site{p}", "XPositionUm": 10.0 * p, "YPositionUm": -5.0}
                        images.append((axes, np.full((64, 64), 100 * p + 10 * ch + z + 1, np.uint16), md))
    path = write_ndtiff(tmp_path / "axes", images, summary)
    tiles = get_reader("ndtiff").tiles(str(path), OPTS)
    # 2 positions × 2 times × 2 channels × 2 cameras × 2 z runs
    assert len(tiles) == 32
    assert {t.name for t in tiles} == {"Site0", "Site1"}
    assert sorted({t.time_index for t in tiles}) == [0, 3]
    assert {t.channel for t in tiles} == {"GFP/camera=0", "GFP/camera=1", "RFP/camera=0", "RFP/camera=1"}
    runs = sorted({(t.shape[0], t.position_um[0]) for t in tiles})
    assert runs == [(1, 3.0), (2, -1.5)]  # z -1..0 (z index × z-step), and z 2 alone
    t0 = next(t for t in tiles if t.name == "Site1" and t.channel == "RFP/camera=1" and t.shape[0] == 2)
    assert t0.position_um[1:] == (-5.0 - 32, 10.0 - 32)
    assert t0.extra["position_source"] == "XPositionUm/YPositionUm (image centre)"
    np.testing.assert_array_equal(t0.read()[:, 0, 0], [100 + 10 + 0, 100 + 10 + 1])


def test_numbered_channels_named_from_image_metadata(tmp_path: Path) -> None:
    # AcqEngJ before NDTiff 3.2: integer channel axis, names only in each image's "Channel"
    images = []
    for ch, name in enumerate(("DAPI", "GFP")):
        md = {"Channel": name, "XPosition_um_Intended": 0.0, "YPosition_um_Intended": 0.0}
        images.append(({"channel": ch}, np.full((64, 64), ch, np.uint16), md))
    path = write_ndtiff(tmp_path / "chan", images, {"PixelSize_um": 1.0, "PixelType": "GRAY16"})
    tiles = get_reader("ndtiff").tiles(str(path), OPTS)
    assert [(t.channel, int(t.read().max())) for t in tiles] == [("DAPI", 0), ("GFP", 1)]


def test_affine_flip_and_swap(tmp_path: Path) -> None:
    # AcqEngJ summary AffineTransform (Java getMatrix order m00_m10_m01_m11): stage x = -image x
    images = []
    for i, x in enumerate((0.0, 32.0)):
        md = {"XPosition_um_Intended": x, "YPosition_um_Intended": 0.0}
        images.append(({"position": i}, np.full((64, 64), i, np.uint16), md))
    summary = {"PixelSize_um": 1.0, "PixelType": "GRAY16", "AffineTransform": "-1.0_0.0_0.0_1.0"}
    tiles = get_reader("ndtiff").tiles(str(write_ndtiff(tmp_path / "flip", images, summary)), OPTS)
    # the tile further along stage x sits further to the left of the image-aligned frame
    assert tiles[1].position_um[2] == tiles[0].position_um[2] - 32
    assert tiles[0].extra["orientation"]["stage_from_image"] == [[-1, 0], [0, 1]]  # type: ignore[index]

    assert nearest_signed_permutation([[0.0, 0.2], [0.2, 0.0]]).tolist() == [[0, 1], [1, 0]]
    assert nearest_signed_permutation([[-0.1678, 0.0009], [0.0009, 0.1678]]).tolist() == [[-1, 0], [0, 1]]
    assert nearest_signed_permutation([[0.0, 0.0], [0.0, 0.0]]) is None


def test_mm_pixel_size_affine_swap(tmp_path: Path) -> None:
    # MMCore PixelSizeAffine (row-major a00;a01;a02;a10;a11;a12): stage x = image y, stage y = image x
    images = []
    for i, (x, y) in enumerate(((0.0, 0.0), (0.0, 40.0))):
        md = {"XPosition_um_Intended": x, "YPosition_um_Intended": y, "PixelSizeAffine": "0;1;0;1;0;0"}
        images.append(({"position": i}, np.full((64, 64), i, np.uint16), md))
    path = write_ndtiff(tmp_path / "swap", images, {"PixelSize_um": 1.0, "PixelType": "GRAY16"})
    tiles = get_reader("ndtiff").tiles(str(path), OPTS)
    # moving the stage in y moves the tile along image x
    assert tiles[1].position_um[1:] == (tiles[0].position_um[1], tiles[0].position_um[2] + 40)


# --------------------------------------------------------------------------------------------
# paths, sniffing, dependencies


def test_sniff_and_guess_on_paths_inside_a_dataset(tmp_path: Path) -> None:
    reader = get_reader("ndtiff")
    pyramid = sample("ndtiffv3.0_stitched_test")
    full = pyramid / "Full resolution"
    tif = next(full.glob("*.tif"))
    for p in (pyramid, full, full / "NDTiff.index", tif):
        assert reader.sniff(str(p))
        assert guess_reader(str(p)).name == "ndtiff"
        assert len(reader.tiles(str(p), OPTS)) == 2
    assert not reader.sniff(str(SAMPLES.parent / "nd2" / "cluster.nd2"))


def test_missing_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match=r"ngff-tiles\[ndtiff\]"):
        NDTiffReader().check_dependencies()


# --------------------------------------------------------------------------------------------
# bad input


def copy_sample(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / Path(name).name
    shutil.copytree(sample(name), dest)
    for p in dest.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def test_missing_index(tmp_path: Path) -> None:
    path = copy_sample("ndtiffv3.0_stitched_test", tmp_path)
    (path / "Full resolution" / "NDTiff.index").unlink()
    assert get_reader("ndtiff").sniff(str(path))  # still recognised by its TIFFs
    with pytest.raises(SourceError, match=r"Full resolution/NDTiff.index: missing"):
        get_reader("ndtiff").tiles(str(path), OPTS)


def test_missing_tiff(tmp_path: Path) -> None:
    path = copy_sample("labeled_positions_1", tmp_path)
    (path / "labeled_positions_NDTiffStack.tif").unlink()
    with pytest.raises(SourceError, match=r"labeled_positions_NDTiffStack.tif: missing: .* lists 3 image"):
        get_reader("ndtiff").tiles(str(path), OPTS)


def test_truncated_tiff(tmp_path: Path) -> None:
    path = copy_sample("labeled_positions_1", tmp_path)
    tif = path / "labeled_positions_NDTiffStack.tif"
    with open(tif, "r+b") as fh:
        fh.truncate(tif.stat().st_size // 2)
    with pytest.raises(SourceError, match=r"labeled_positions_NDTiffStack.tif: truncated"):
        get_reader("ndtiff").tiles(str(path), OPTS)


def test_truncated_index_is_reported_cleanly(tmp_path: Path) -> None:
    path = copy_sample("labeled_positions_1", tmp_path)
    index = path / "NDTiff.index"
    index.write_bytes(index.read_bytes()[:-30])
    with pytest.raises(NgffTilesError, match=str(path)):
        get_reader("ndtiff").tiles(str(path), OPTS)


def grid_without_positions(tmp_path: Path) -> Path:
    summary = {"PixelSize_um": 0.5, "PixelType": "GRAY16", "GridPixelOverlapX": 8, "GridPixelOverlapY": 4}
    images = [
        ({"row": r, "column": c}, np.full((64, 72), 10 * r + c, np.uint16), {})
        for r in (0, 1)
        for c in (0, 1)
    ]
    return write_ndtiff(tmp_path / "nopos", images, summary)


def test_no_positions_is_an_error_unless_grid(tmp_path: Path) -> None:
    path = grid_without_positions(tmp_path)
    with pytest.raises(MetadataError, match=r"no stage position .*\(--grid\)"):
        get_reader("ndtiff").tiles(str(path), OPTS)
    tiles = get_reader("ndtiff").tiles(str(path), ReaderOptions(grid_layout=True))
    # (row, column) × tile size × (1 - overlap / tile size), in µm
    assert {(t.name, t.position_um) for t in tiles} == {
        ("row0_col0", (0.0, 0.0, 0.0)),
        ("row0_col1", (0.0, 0.0, 32.0)),
        ("row1_col0", (0.0, 30.0, 0.0)),
        ("row1_col1", (0.0, 30.0, 32.0)),
    }
    assert {t.extra["position_source"] for t in tiles} == {"grid"}


def test_grid_needs_rows_and_columns(tmp_path: Path) -> None:
    images = [({"position": p}, np.zeros((64, 64), np.uint16), {}) for p in ("a", "b")]
    path = write_ndtiff(tmp_path / "named", images, {"PixelSize_um": 1.0, "PixelType": "GRAY16"})
    with pytest.raises(MetadataError, match="no stage position"):
        get_reader("ndtiff").tiles(str(path), OPTS)
    with pytest.raises(MetadataError, match="--grid needs row/column"):
        get_reader("ndtiff").tiles(str(path), ReaderOptions(grid_layout=True))


def test_cli_one_line_errors_and_grid_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = grid_without_positions(tmp_path)
    assert main(["convert", str(path), "-o", str(tmp_path / "a.ome.zarr"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ngff-tiles: error: ")
    assert str(path) in err
    assert main(["convert", str(path), "-o", str(tmp_path / "b.ome.zarr"), "-q", "--grid"]) == 0
    fused = zarr.open_group(str(tmp_path / "b.ome.zarr"), mode="r")["0"]
    assert fused.shape[-2:] == (64 + 60, 72 + 64)

    broken = copy_sample("labeled_positions_1", tmp_path)
    (broken / "NDTiff.index").unlink()
    assert main(["info", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "NDTiff.index: missing" in err


def test_tiles_pickle_small() -> None:
    import pickle

    tiles = get_reader("ndtiff").tiles(str(sample("labeled_positions_1")), OPTS)
    blob = pickle.dumps(tiles[0])
    assert len(blob) < 4000  # paths and offsets, not pixels or open files
    assert isinstance(pickle.loads(blob), Tile)
