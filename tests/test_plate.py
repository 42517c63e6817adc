"""HCS plates: wells from snapping, hints and maps; fused or kept fields; NGFF plate metadata."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from ngff_tiles.cli import main
from ngff_tiles.errors import LayoutError, MetadataError
from ngff_tiles.layout.plate import GEOMETRIES, parse_well, row_name
from ngff_tiles.metadata.validate import validate_attributes, validate_store
from ngff_tiles.options import ExecutionOptions, FusionOptions, PlateOptions, WriterOptions
from ngff_tiles.pipeline import convert
from ngff_tiles.testing.plate import PlateSpec, write_plate
from ngff_tiles.testing.synthetic import coverage, psnr
from ngff_tiles.tiles import Well

QUIET = ExecutionOptions(progress=False)
SMALL = WriterOptions(chunks=(1, 64, 64), shards=(1, 128, 128))


def attrs(path: Path) -> dict:
    if (path / "zarr.json").is_file():
        return json.loads((path / "zarr.json").read_text())["attributes"]
    return json.loads((path / ".zattrs").read_text())


def test_well_names_and_geometries() -> None:
    assert parse_well("B03") == Well("B", "3")
    assert parse_well("h/12") == Well("H", "12")
    assert parse_well("AF48") == Well("AF", "48")
    with pytest.raises(MetadataError, match="well name"):
        parse_well("3B")
    assert [row_name(i) for i in (0, 7, 25, 26, 31)] == ["A", "H", "Z", "AA", "AF"]
    assert {g: (GEOMETRIES[g].rows, GEOMETRIES[g].columns) for g in (96, 384, 1536)} == {
        96: (8, 12),
        384: (16, 24),
        1536: (32, 48),
    }


@pytest.fixture(scope="module")
def plate96(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """96 wells × 4 overlapping fields (2×2) on a 9 mm grid with ±300 µm stage jitter."""
    root = tmp_path_factory.mktemp("plate96")
    plate = write_plate(PlateSpec(), root / "tiles")
    any_well = next(iter(plate.wells.values()))
    fusion = FusionOptions(dark=any_well.dark, flat=tifffile.imread(any_well.flat_path))
    out = root / "plate.ome.zarr"
    # padded to one shape: ome-zarr-py's (and napari's, vizarr's) plate view tiles wells of equal shape
    res = convert(
        plate.inputs,
        out,
        plate=PlateOptions(geometry=96, pad_wells=True),
        fusion=fusion,
        writer=SMALL,
        execution=QUIET,
    )
    return plate, out, res


def test_96_well_plate_lands_in_the_right_wells(plate96) -> None:  # type: ignore[no-untyped-def]
    plate, out, res = plate96
    assert len(res.images) == 96
    assert set(res.images) == {f"{w.path}/0" for w in plate.wells}
    # each well's image carries the tiles of that well's folder (snapped, not by name)
    for well, data in plate.wells.items():
        record = attrs(out / well.path / "0")["ngff_tiles"]
        assert {Path(t["path"]).parent.name for t in record["tiles"]} == {data.directory.name}


def test_96_well_plate_metadata_is_valid_everywhere(plate96) -> None:  # type: ignore[no-untyped-def]
    _, out, _ = plate96
    root = attrs(out)
    plate = root["ome"]["plate"]
    assert [r["name"] for r in plate["rows"]] == list("ABCDEFGH")
    assert [c["name"] for c in plate["columns"]] == [str(i) for i in range(1, 13)]
    assert plate["field_count"] == 1
    assert {"path": "B/3", "rowIndex": 1, "columnIndex": 2} in plate["wells"]
    assert [p for p in validate_attributes(root, "plate", "0.5", strict=True) if p.severity == "error"] == []
    well = attrs(out / "B" / "3")
    assert [p for p in validate_attributes(well, "well", "0.5", strict=True) if p.severity == "error"] == []
    assert [p for p in validate_store(out, strict=True) if p.severity == "error"] == []
    # identical pyramids in every well (napari / vizarr assume it)
    levels = {len(attrs(out / w["path"] / "0")["ome"]["multiscales"][0]["datasets"]) for w in plate["wells"]}
    assert len(levels) == 1

    with warnings.catch_warnings():
        # ome-zarr-models 1.7's own model classes use pydantic's deprecated json_encoders
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr_models.v05.hcs import HCS

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "fixing" of our metadata on load
        hcs = HCS.from_zarr(zarr.open_group(str(out), mode="r"))
    assert len(hcs.ome_attributes.plate.wells) == 96

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Plate, Reader

    node = next(iter(Reader(parse_url(str(out)))()))
    assert any(isinstance(spec, Plate) for spec in node.specs)


def test_every_well_matches_its_ground_truth(plate96) -> None:  # type: ignore[no-untyped-def]
    plate, out, _ = plate96
    group = zarr.open_group(str(out), mode="r")
    for well, data in list(plate.wells.items())[::8]:  # 12 wells across the plate
        padded = group[f"{well.path}/0/0"][0, 0].astype(np.float32)
        z, y, x = data.output_shape
        assert padded.shape[0] == z
        assert padded.shape[1] >= y
        assert padded.shape[2] >= x
        assert np.all(padded[:, y:, :] == 0)
        assert np.all(padded[:, :, x:] == 0)
        fused = padded[:z, :y, :x]
        region = tuple(slice(0, s) for s in fused.shape)
        truth = data.ground_truth(region)  # type: ignore[arg-type]
        cover = coverage(data.spec, region)  # type: ignore[arg-type]
        score = psnr(fused[cover > 0], truth[cover > 0], data.spec.photons)
        floor = data.noise_floor_psnr(against="grid")
        assert score >= floor - 1.5, (well, score, floor)


def test_fields_keep_writes_each_field_with_its_position(tmp_path: Path) -> None:
    plate = write_plate(PlateSpec(wells=["A1", "C5"]), tmp_path / "tiles")
    out = tmp_path / "keep.ome.zarr"
    res = convert(
        plate.inputs, out, plate=PlateOptions(geometry=96, fields="keep"), writer=SMALL, execution=QUIET
    )
    assert res.images == tuple(f"{w}/{f}" for w in ("A/1", "C/5") for f in "0123")
    assert attrs(out)["ome"]["plate"]["field_count"] == 4
    for well, data in plate.wells.items():
        w = attrs(out / well.path)
        assert [im["path"] for im in w["ome"]["well"]["images"]] == ["0", "1", "2", "3"]
        table = w["ngff_tiles"]["fields"]
        recorded = sorted(tuple(f["tile_positions_um"][0][1:]) for f in table)
        assert recorded == sorted(tuple(p[1:]) for p in data.positions_um)
        group = zarr.open_group(str(out / well.path), mode="r")
        for f in table:
            ms = attrs(out / well.path / f["path"])["ome"]["multiscales"][0]
            assert ms["datasets"][0]["coordinateTransformations"][1]["translation"][2:] == f["origin_um"]
            i = next(k for k, p in enumerate(data.positions_um) if list(p) == f["tile_positions_um"][0])
            np.testing.assert_array_equal(group[f"{f['path']}/0"][0, 0], data.read_tile(i))  # unfused, raw


def test_halfway_between_wells_is_refused_naming_the_tile(tmp_path: Path) -> None:
    plate = write_plate(
        PlateSpec(wells=["A1", "B3"], well_jitter_um=0, extra_offset_um={"B3": (4500.0, 0.0)}), tmp_path / "t"
    )
    with pytest.raises(LayoutError, match=r"B03.*between wells") as err:
        convert(
            plate.inputs,
            tmp_path / "o.ome.zarr",
            plate=PlateOptions(geometry=96, a1_um=(14380.0, 11240.0)),
            writer=SMALL,
            execution=QUIET,
        )
    assert "tile_r00_c00" in str(err.value)
    assert not (tmp_path / "o.ome.zarr").exists()


def test_a1_given_places_a_partial_plate(tmp_path: Path) -> None:
    plate = write_plate(PlateSpec(wells=["C4", "D7"]), tmp_path / "t")
    inferred = convert(plate.inputs, tmp_path / "i.ome.zarr", plate=PlateOptions(geometry=96), dry_run=True)
    assert inferred.images == ("A/1/0", "B/4/0")  # without A1 the top-left occupied well is taken as A1
    given = convert(
        plate.inputs,
        tmp_path / "g.ome.zarr",
        plate=PlateOptions(geometry=96, a1_um=(14380.0, 11240.0)),
        writer=SMALL,
        execution=QUIET,
    )
    assert given.images == ("C/4/0", "D/7/0")


def test_wells_from_tile_table_hints_and_from_a_map(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.full((16, 16), ord(name), np.uint16))
    (tmp_path / "t.csv").write_text(
        "path,x_um,y_um,pixel_size_um,well\na.tif,0,0,1,B03\nb.tif,10,0,1,B03\nc.tif,0,0,1,H12\n"
    )
    res = convert(str(tmp_path / "t.csv"), tmp_path / "h.ome.zarr", writer=SMALL, execution=QUIET)
    assert res.images == ("B/3/0", "H/12/0")
    plate = attrs(tmp_path / "h.ome.zarr")["ome"]["plate"]
    assert len(plate["rows"]) == 8  # smallest standard plate holding H12: 96 wells, all rows listed
    assert len(plate["columns"]) == 12
    fused = zarr.open_group(str(tmp_path / "h.ome.zarr"), mode="r")["B/3/0/0"][0, 0, 0]
    assert fused.shape == (16, 26)

    (tmp_path / "map.csv").write_text("name,well\na.tif,A1\nb.tif,A2\nc.tif,A2\n")
    res = convert(
        str(tmp_path / "t.csv"),
        tmp_path / "m.ome.zarr",
        plate=PlateOptions(well_map=str(tmp_path / "map.csv")),
        writer=SMALL,
        execution=QUIET,
    )
    assert res.images == ("A/1/0", "A/2/0")


def test_wells_of_different_sizes_share_level_count_and_pad_on_request(tmp_path: Path) -> None:
    a = write_plate(PlateSpec(wells=["A1"], fields=(1, 1)), tmp_path / "a")
    b = write_plate(PlateSpec(wells=["A2"], fields=(3, 3)), tmp_path / "b")
    inputs = a.inputs + b.inputs
    opts = PlateOptions(geometry=96, a1_um=(14380.0, 11240.0))
    res = convert(inputs, tmp_path / "p.ome.zarr", plate=opts, writer=SMALL, execution=QUIET)
    levels = [attrs(tmp_path / "p.ome.zarr" / p)["ome"]["multiscales"][0]["datasets"] for p in res.images]
    assert len(levels[0]) == len(levels[1]) > 1
    g = zarr.open_group(str(tmp_path / "p.ome.zarr"), mode="r")
    assert g["A/1/0/0"].shape != g["A/2/0/0"].shape
    padded = PlateOptions(geometry=96, a1_um=(14380.0, 11240.0), pad_wells=True)
    convert(inputs, tmp_path / "q.ome.zarr", plate=padded, writer=SMALL, execution=QUIET)
    g = zarr.open_group(str(tmp_path / "q.ome.zarr"), mode="r")
    assert g["A/1/0/0"].shape == g["A/2/0/0"].shape


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plate_in_both_ngff_versions_validates_strictly(tmp_path: Path, version: str) -> None:
    plate = write_plate(PlateSpec(wells=["A1", "B2"]), tmp_path / "t")
    out = tmp_path / "p.ome.zarr"
    convert(
        plate.inputs,
        out,
        plate=PlateOptions(geometry=96),
        writer=WriterOptions(ngff_version=version, chunks=(1, 64, 64), shards=(1, 128, 128)),
        execution=QUIET,
    )
    assert [p for p in validate_store(out, strict=True) if p.severity == "error"] == []
    kind_attrs = attrs(out)
    assert [
        p for p in validate_attributes(kind_attrs, "plate", version, strict=True) if p.severity == "error"
    ] == []


def test_cli_info_plate_map_and_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plate = write_plate(PlateSpec(wells=["A1", "B3"]), tmp_path / "t")
    assert main(["info", *plate.inputs, "--plate", "96", "--a1-um", "14380,11240"]) == 0
    text = capsys.readouterr().out
    assert "plate map (2 well(s)" in text
    assert "  B  .  .  1" in text
    out = tmp_path / "dry.ome.zarr"
    assert (
        main(["convert", *plate.inputs, "-o", str(out), "--plate", "96", "--fields", "keep", "--dry-run"])
        == 0
    )
    text = capsys.readouterr().out
    assert "A/1/3: 1 tile(s)" in text
    assert "dry run: nothing written" in text
    assert not out.exists()
