"""ND2 reader: cluster.nd2 against nd2's own reader; multi-position logic from nd2.structures."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from ngff_tiles.cli import _parser, _reader_options, main
from ngff_tiles.errors import MetadataError, MissingDependencyError, SourceError
from ngff_tiles.layout.place import place_tiles
from ngff_tiles.options import ExecutionOptions, ReaderOptions, WriterOptions
from ngff_tiles.pipeline import convert
from ngff_tiles.readers import get_reader, guess_reader
from ngff_tiles.readers._base import FRAME_CACHE
from ngff_tiles.readers.nd2 import JP2_MAGIC, ND2Description, ND2Reader, nd2_tiles
from ngff_tiles.testing.conformance import ReaderConformance
from ngff_tiles.tiles import Well

nd2 = pytest.importorskip("nd2", reason="the ND2 reader's tests need nd2 (ngff-tiles[nd2])")
from nd2.structures import (  # noqa: E402
    PeriodDiff,
    Position,
    StagePosition,
    TimeLoop,
    TimeLoopParams,
    Volume,
    XYPosLoop,
    XYPosLoopParams,
    ZStackLoop,
    ZStackLoopParams,
)

CLUSTER = Path(__file__).resolve().parents[2] / "shared" / "sample-data" / "nd2" / "cluster.nd2"
CHANNELS = ["5-FAM/pH 9.0", "FM 4-64/2% CHAPS"]  # SOURCES.md
OPTS = ReaderOptions()
QUIET = ExecutionOptions(progress=False)


@pytest.fixture
def cluster() -> Path:
    if not CLUSTER.is_file():
        pytest.skip(f"ND2 sample absent: {CLUSTER} (../shared not checked out)")
    return CLUSTER


# --------------------------------------------------------------------------------------------
# conformance


class TestND2Conformance(ReaderConformance):
    reader_name = "nd2"
    expected_tiles = 6  # T3 × C2, each a 10-plane z-stack

    def make_input(self, tmp_path: Path) -> str:
        if not CLUSTER.is_file():
            pytest.skip(f"ND2 sample absent: {CLUSTER}")
        return str(CLUSTER)

    def make_negative(self, tmp_path: Path) -> str:
        # a JPEG 2000 image: the legacy ND2 container's signature, but not an .nd2 file
        path = tmp_path / "image.jp2"
        path.write_bytes(JP2_MAGIC + b"\x00" * 500)
        return str(path)


# --------------------------------------------------------------------------------------------
# cluster.nd2 (values from ../shared/sample-data/SOURCES.md)


def test_cluster_sizes_pixel_size_stage_and_channels(cluster: Path) -> None:
    tiles = get_reader("nd2").tiles(str(cluster), OPTS)
    assert len(tiles) == 6
    assert {t.shape for t in tiles} == {(10, 31, 38)}  # Z10, 31 × 38 px
    assert sorted({t.time_index for t in tiles}) == [0, 1, 2]  # T3
    assert [t.channel for t in tiles[:2]] == CHANNELS  # C2
    assert {t.dtype for t in tiles} == {np.dtype("uint16")}
    for t in tiles:
        assert t.pixel_size_um == pytest.approx((0.5, 0.1678, 0.1678), abs=1e-4)
        assert t.extra["stage_xy_um"] == pytest.approx([-26056.95, -4155.46], abs=0.01)
        assert t.extra["requested_xy_um"] == pytest.approx([-26056.95, -4155.46], abs=0.01)
        assert t.extra["position_source"] == "events X/Y Coord (recorded), image centre"
        assert t.position_um[0] == pytest.approx(3912.3375)  # bottom plane: dZPos - homeIndex × step
    # orientation: pixelToStage A ≈ diag(-0.1678, 0.1678): image x runs against stage X
    t = tiles[0]
    assert t.extra["orientation"]["stage_from_image"] == [[-1, 0], [0, 1]]  # type: ignore[index]
    assert t.extra["orientation"]["residual_rotation_deg"] == pytest.approx(0.32, abs=0.01)  # type: ignore[index]
    # corner = R^T · (b + P), b = (3.1738, -2.6188) µm = -A · (19, 15.5): the stage position is the centre
    b = np.array([3.173794086342146, -2.6188058019293114])
    corner = np.diag([-1, 1]) @ (b + np.array([-26056.951209195162, -4155.462732842248]))
    assert t.position_um[1:] == pytest.approx((corner[1], corner[0]))
    assert t.position_um[1:] == pytest.approx((-4158.0815, 26053.7774), abs=1e-3)


def test_cluster_pixels_equal_nd2(cluster: Path) -> None:
    tiles = get_reader("nd2").tiles(str(cluster), OPTS)
    expect = nd2.imread(str(cluster))  # (T, Z, C, Y, X)
    assert expect.shape == (3, 10, 2, 31, 38)
    for t in tiles:
        c = CHANNELS.index(t.channel)
        np.testing.assert_array_equal(t.read(), expect[t.time_index, :, c])
    assert int(expect[0, 0, 0].sum()) == 243  # SOURCES.md


def test_cluster_converts_to_5d_ome_zarr_equal_to_imread(cluster: Path, tmp_path: Path) -> None:
    out = tmp_path / "cluster.ome.zarr"
    res = convert(str(cluster), out, execution=QUIET, writer=WriterOptions(chunks=(1, 32, 32)))
    assert res.level_shapes[0] == (3, 2, 10, 31, 38)
    data = np.asarray(zarr.open_group(str(out), mode="r")["0"])
    expect = nd2.imread(str(cluster)).transpose(0, 2, 1, 3, 4)  # (T, Z, C, Y, X) -> (t, c, z, y, x)
    np.testing.assert_array_equal(data, expect)
    ome = json.loads((out / "zarr.json").read_text())["attributes"]["ome"]
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "c", "z", "y", "x"]
    scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale[2:] == pytest.approx([0.5, 0.16780898, 0.16780898])
    assert [c["label"] for c in ome["omero"]["channels"]] == CHANNELS


def test_frames_decoded_once_for_all_channels(cluster: Path) -> None:
    tiles = get_reader("nd2").tiles(str(cluster), OPTS)
    FRAME_CACHE.clear()
    before = (FRAME_CACHE.hits, FRAME_CACHE.misses)
    tiles[0].read()
    tiles[1].read()  # the other channel of the same 10 frames
    assert (FRAME_CACHE.hits - before[0], FRAME_CACHE.misses - before[1]) == (10, 10)


def test_positions_option_and_cli_flags(cluster: Path) -> None:
    requested = get_reader("nd2").tiles(str(cluster), ReaderOptions(positions="requested"))
    assert requested[0].extra["position_source"] == "global position (requested), image centre"
    args = _parser().parse_args(
        ["convert", str(cluster), "-o", "x.ome.zarr", "--positions", "requested", "--grid"]
    )
    assert _reader_options(args) == ReaderOptions(positions="requested", grid_layout=True)
    assert _reader_options(_parser().parse_args(["info", str(cluster)])) == ReaderOptions()
    assert main(["info", str(cluster), "--positions", "requested"]) == 0


def test_sniff(cluster: Path, tmp_path: Path) -> None:
    reader = get_reader("nd2")
    renamed = tmp_path / "cluster.bin"  # content, not the name, decides for modern files
    shutil.copyfile(cluster, renamed)
    assert reader.sniff(str(renamed))
    assert guess_reader(str(cluster)).name == "nd2"
    legacy = tmp_path / "old.nd2"
    legacy.write_bytes(JP2_MAGIC + b"\x00" * 100)
    assert reader.sniff(str(legacy))
    assert not reader.sniff(str(tmp_path))


def test_missing_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match=r"ngff-tiles\[nd2\]"):
        ND2Reader().check_dependencies()


@pytest.mark.parametrize("keep", [10, 4096, 300_000, -100])
def test_truncated_nd2_is_a_source_error(cluster: Path, tmp_path: Path, keep: int) -> None:
    data = cluster.read_bytes()
    path = tmp_path / "truncated.nd2"
    path.write_bytes(data[:keep])
    assert get_reader("nd2").sniff(str(path))
    with pytest.raises(SourceError, match=str(path)):
        get_reader("nd2").tiles(str(path), OPTS)


def test_truncated_nd2_cli_one_line(
    cluster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "truncated.nd2"
    path.write_bytes(cluster.read_bytes()[:200_000])
    assert main(["convert", str(path), "-o", str(tmp_path / "out.ome.zarr"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"ngff-tiles: error: {path}: cannot read ND2")


# --------------------------------------------------------------------------------------------
# multi-position logic, from nd2's own metadata structures (no multi-position file is available)

W, H, PX = 64, 48, 0.65


def volume(pixel_to_stage: tuple[float, ...] | None, calibrated: bool = True) -> Volume:
    return Volume(
        axesCalibrated=(calibrated, calibrated, True),
        axesCalibration=(PX, PX, 0.5),
        axesInterpretation=("distance", "distance", "distance"),
        bitsPerComponentInMemory=16,
        bitsPerComponentSignificant=16,
        cameraTransformationMatrix=(-1.0, 0.0, 0.0, -1.0),
        componentCount=2,
        componentDataType="unsigned",
        voxelCount=(W, H, 3),
        pixelToStageTransformationMatrix=pixel_to_stage,
    )


# pixel -> stage as NIS writes it: image x runs against stage X, b = -A · (w/2, h/2)
FLIP_X = (-PX, 0.0, PX * W / 2, 0.0, PX, -PX * H / 2)
STAGE = [
    (1000.0, 500.0),
    (1000.0 - W * PX, 500.0),
    (1000.0, 500.0 + H * PX),
    (1000.0 - W * PX, 500.0 + H * PX),
]


def multipos(
    names: list[str | None] | None = None,
    events: bool = True,
    bottom_to_top: bool = True,
    matrix: tuple[float, ...] | None = FLIP_X,
    **changes: Any,
) -> ND2Description:
    """T2 × P4 × Z3 × C2, 48 × 64 px: a 2 × 2 grid of points, abutting, with recorded drift."""
    names = names or [f"point {i}" for i in range(4)]
    points = [
        Position(stagePositionUm=StagePosition(x, y, 100.0 + i), pfsOffset=None, name=n)
        for i, ((x, y), n) in enumerate(zip(STAGE, names, strict=True))
    ]
    experiment = (
        TimeLoop(
            count=2,
            nestingLevel=0,
            parameters=TimeLoopParams(startMs=0.0, periodMs=60000.0, durationMs=0.0, periodDiff=PeriodDiff()),
        ),
        XYPosLoop(count=4, nestingLevel=1, parameters=XYPosLoopParams(isSettingZ=True, points=points)),
        ZStackLoop(
            count=3,
            nestingLevel=2,
            parameters=ZStackLoopParams(
                homeIndex=1, stepUm=0.5, bottomToTop=bottom_to_top, deviceName="Ti ZDrive"
            ),
        ),
    )
    records: list[dict[str, Any]] | None = None
    if events:  # recorded stage: the requested point plus a drift of 1 µm per time point
        records = []
        for i in range(24):
            t, p = divmod(i, 12)[0], (i % 12) // 3
            x, y = STAGE[p]
            records.append({"Index": i, "Time [s]": i * 0.1, "X Coord [µm]": x + t, "Y Coord [µm]": y - t})
        records.insert(5, {"Time [s]": 0.45, "Events": "stimulation"})  # an event row, not a frame
    desc = ND2Description(
        path="/nonexistent/multipos.nd2",
        sizes={"T": 2, "P": 4, "Z": 3, "C": 2, "Y": H, "X": W},
        dtype=np.dtype("uint16"),
        voxel_size_um=(PX, PX, 0.5),
        calibrated=True,
        channel_names=("DAPI", "GFP"),
        experiment=experiment,
        frame0_position=(1000.0, 500.0, 99.5),
        volume=volume(matrix),
        events=tuple(records) if records is not None else None,
        sequence_count=24,
        loop_indices=None,  # derived from the experiment, as nd2 does
        version=(3, 0),
    )
    return dataclasses.replace(desc, **changes)


def test_multiposition_tiles_frames_and_z() -> None:
    tiles = nd2_tiles(multipos(), OPTS)
    assert len(tiles) == 2 * 4 * 2  # T × P × C, each a 3-plane stack
    t = next(t for t in tiles if t.time_index == 1 and t.name == "point 2" and t.channel == "GFP")
    assert t.extra["frames"] == [1 * 12 + 2 * 3 + z for z in range(3)]  # T outermost, then P, then Z
    assert t.shape == (3, H, W)
    assert t.position_um[0] == pytest.approx(102.0 - 1 * 0.5)  # point z - homeIndex × stepUm
    assert t.pixel_size_um == pytest.approx((0.5, PX, PX))
    assert [t.tile_id for t in tiles] == list(range(16))


def test_multiposition_orientation_places_the_grid() -> None:
    # stage X grows to the left of the image: point 1 (smaller X) lies right of point 0
    tiles = [t for t in nd2_tiles(multipos(), ReaderOptions(positions="requested")) if t.time_index == 0]
    layout = place_tiles(tiles)
    offsets = {(p.tile.name, p.tile.channel): p.offset_px[1:] for p in layout.tiles}
    assert offsets[("point 0", "DAPI")] == (0, 0)
    assert offsets[("point 1", "DAPI")] == (0, W)
    assert offsets[("point 2", "DAPI")] == (H, 0)
    assert offsets[("point 3", "GFP")] == (H, W)
    assert layout.spatial_shape[1:] == (2 * H, 2 * W)
    # points sit at z 100, 101, 102, 103 (minus home × step): 1 µm = 2 planes apart
    assert [p.offset_px[0] for p in layout.tiles if p.tile.channel == "DAPI"] == [0, 2, 4, 6]
    # and without the flip in the matrix the same points would overlap in mirror order
    plain = (PX, 0.0, -PX * W / 2, 0.0, PX, -PX * H / 2)
    tiles = [t for t in nd2_tiles(multipos(matrix=plain), OPTS) if t.time_index == 0]
    offsets = {p.tile.name: p.offset_px[1:] for p in place_tiles(tiles).tiles}
    assert offsets["point 1"] == (0, 0)
    assert offsets["point 0"] == (0, W)


def test_recorded_versus_requested_positions() -> None:
    recorded = nd2_tiles(multipos(), OPTS)
    requested = nd2_tiles(multipos(), ReaderOptions(positions="requested"))
    for rec, req in zip(recorded, requested, strict=True):
        t = rec.time_index
        assert rec.extra["position_source"] == "events X/Y Coord (recorded), image centre"
        assert req.extra["position_source"] == "XYPosLoop point (requested), image centre"
        assert rec.extra["requested_xy_um"] == req.extra["stage_xy_um"]
        # drift (+t, -t) µm in stage (X, Y); image x is mirrored, so corner x moves by -t
        assert rec.position_um[1] - req.position_um[1] == pytest.approx(-t)
        assert rec.position_um[2] - req.position_um[2] == pytest.approx(-t)
    # without recorded data, "recorded" falls back to the loop points
    fallback = nd2_tiles(multipos(events=False), OPTS)
    assert [t.position_um for t in fallback] == [t.position_um for t in requested]


def test_well_names_become_hints() -> None:
    names: list[str | None] = ["Plate_A01_0000", "Plate_A01_0001", "Plate_B02_0000", "Plate_B02_0001"]
    tiles = nd2_tiles(multipos(names=names), OPTS)
    got = {(t.name, t.well, t.field_index) for t in tiles}
    assert got == {
        ("Plate_A01_0000", Well("A", "1"), 0),
        ("Plate_A01_0001", Well("A", "1"), 1),
        ("Plate_B02_0000", Well("B", "2"), 0),
        ("Plate_B02_0001", Well("B", "2"), 1),
    }
    unnamed = nd2_tiles(multipos(names=[None, None, None, None]), OPTS)
    assert sorted({t.name for t in unnamed}) == ["XYPos:0", "XYPos:1", "XYPos:2", "XYPos:3"]
    assert {t.well for t in unnamed} == {None}


def test_top_to_bottom_stacks_are_reversed() -> None:
    tiles = nd2_tiles(multipos(bottom_to_top=False), OPTS)
    t = tiles[0]
    assert t.extra["frames"] == [2, 1, 0]  # index 0 is now the lowest plane
    # planes at z_home - (k - home) × step for k = 0, 1, 2 with z_home = 100.0 (point 0, home 1):
    # 100.5, 100.0, 99.5; the lowest is 99.5
    assert t.position_um[0] == pytest.approx(99.5)


def test_no_pixel_to_stage_matrix_means_identity_and_centre() -> None:
    tiles = nd2_tiles(multipos(matrix=None), ReaderOptions(positions="requested"))
    t = tiles[0]
    assert t.extra["orientation"]["from"].startswith("none")  # type: ignore[index]
    assert t.position_um[1:] == pytest.approx((500.0 - H / 2 * PX, 1000.0 - W / 2 * PX))


def test_uncalibrated_needs_pixel_size() -> None:
    desc = multipos(calibrated=False)
    with pytest.raises(MetadataError, match="not calibrated"):
        nd2_tiles(desc, OPTS)
    tiles = nd2_tiles(desc, ReaderOptions(pixel_size_um=(0.3, 0.3)))
    assert tiles[0].pixel_size_um == pytest.approx((0.5, 0.3, 0.3))


def test_stopped_acquisition_skips_incomplete_stacks() -> None:
    tiles = nd2_tiles(multipos(sequence_count=12 + 3 + 2), OPTS)  # T1: P0 complete, P1 has 2 of 3 planes
    assert sorted({(t.time_index, t.name) for t in tiles}) == [
        (0, "point 0"),
        (0, "point 1"),
        (0, "point 2"),
        (0, "point 3"),
        (1, "point 0"),
    ]


def test_rgb_components_become_channels() -> None:
    desc = multipos(
        sizes={"T": 2, "P": 4, "Z": 3, "C": 1, "Y": H, "X": W, "S": 3}, channel_names=("Brightfield",)
    )
    tiles = nd2_tiles(desc, OPTS)
    assert [t.channel for t in tiles[:3]] == ["Brightfield-R", "Brightfield-G", "Brightfield-B"]
    source = tiles[1].source
    assert source._frame_shape == (1, H, W, 3)  # type: ignore[attr-defined]
    assert source._component == 1  # type: ignore[attr-defined]
