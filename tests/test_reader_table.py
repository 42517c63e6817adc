"""The tile-table reader (CSV/JSON), its JSON Schema and the schema's examples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import tifffile

from ngff_tiles.errors import MetadataError, SourceError
from ngff_tiles.options import ReaderOptions
from ngff_tiles.readers.table import COLUMNS, TileTableReader, load_document
from ngff_tiles.testing.conformance import ReaderConformance
from ngff_tiles.tiles import Well

ROOT = Path(__file__).resolve().parents[1]
BF_SAMPLE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "sample-data"
    / "ome-tiff"
    / "bioformats_czi_export"
    / "s_1_t_1_c_1_z_1.ome.tiff"
)
SCHEMA_PATH = ROOT / "schemas" / "tile-table.schema.json"
EXAMPLES = ROOT / "schemas" / "examples" / "tile-table"
OPTS = ReaderOptions()


def write_plain(
    path: Path, value: int = 0, shape: tuple[int, ...] = (16, 20), dtype: Any = np.uint16
) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (np.arange(int(np.prod(shape))).reshape(shape) + value).astype(dtype)
    tifffile.imwrite(path, data, photometric="minisblack")
    return data


def write_ome(
    path: Path, nz: int = 1, channels: tuple[str, ...] = ("DAPI",), pixel_size: float = 0.25
) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(len(path.name)).integers(
        0, 1000, (len(channels), nz, 16, 20), dtype=np.uint16
    )
    tifffile.imwrite(
        path,
        data,
        ome=True,
        photometric="minisblack",
        metadata={
            "axes": "CZYX",
            "PhysicalSizeX": pixel_size,
            "PhysicalSizeY": pixel_size,
            "PhysicalSizeZ": 1.5,
            "Channel": {"Name": list(channels)},
        },
    )
    return data


def materialise(table: Path) -> None:
    """Write a small TIFF for every path a table refers to (OME z-stacks for ``stack*.ome.tif``)."""
    doc = load_document(table)
    rows = doc["tiles"] if isinstance(doc, dict) else doc
    for i, row in enumerate(rows):
        target = table.parent / row["path"]
        if target.name.endswith(".ome.tif"):
            write_ome(target, nz=3 if target.name.startswith("stack") else 1)
        else:
            write_plain(target, value=i)


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# conformance


class TestTileTableCsvConformance(ReaderConformance):
    reader_name = "tile-table"
    expected_tiles = 4

    def make_input(self, tmp_path: Path) -> str:
        table = tmp_path / "tiles.csv"
        if not table.exists():
            rows = []
            for i in range(4):
                write_plain(tmp_path / "img" / f"t{i}.tif", value=i, shape=(2, 24, 30))
                rows.append(f"img/t{i}.tif,{30 * (i % 2)},{24 * (i // 2)},,0.5,2")
            write_csv(table, "path,x_um,y_um,channel,pixel_size_um,pixel_size_z_um", rows)
        return str(table)

    def make_negative(self, tmp_path: Path) -> str:
        return str(write_csv(tmp_path / "other.csv", "path,x,y", ["a.tif,0,0"]))


class TestTileTableJsonConformance(ReaderConformance):
    reader_name = "tile-table"
    expected_tiles = 4  # two 2-channel OME files, channels taken from the files

    def make_input(self, tmp_path: Path) -> str:
        table = tmp_path / "tiles.json"
        if not table.exists():
            for i in range(2):
                write_ome(tmp_path / f"p{i}.ome.tif", nz=2, channels=("DAPI", "GFP"))
            rows = [{"path": f"p{i}.ome.tif", "x_um": 5.0 * i, "y_um": 0, "z_um": 1.0} for i in range(2)]
            table.write_text(json.dumps({"tiles": rows}))
        return str(table)

    def make_negative(self, tmp_path: Path) -> str:
        path = tmp_path / "config.json"
        path.write_text(json.dumps({"positions": [{"x": 1, "y": 2}]}))
        return str(path)


# --------------------------------------------------------------------------------------------
# schema and examples


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _examples(kind: str) -> list[Path]:
    return sorted(p for p in (EXAMPLES / kind).iterdir() if p.suffix in (".csv", ".json"))


def test_examples_exist() -> None:
    assert len(_examples("valid")) >= 4
    assert len(_examples("invalid")) >= 10
    assert {p.suffix for p in _examples("valid")} == {".csv", ".json"}
    assert {p.suffix for p in _examples("invalid")} == {".csv", ".json"}


def test_schema_documents_every_column() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert set(schema["$defs"]["row"]["properties"]) == set(COLUMNS)
    for column in COLUMNS:
        assert column in schema["description"]


@pytest.mark.parametrize("example", _examples("valid"), ids=lambda p: p.name)
def test_valid_example(example: Path, tmp_path: Path, validator: jsonschema.Draft202012Validator) -> None:
    doc = load_document(example)
    errors = list(validator.iter_errors(doc))
    assert not errors, [e.message for e in errors]
    table = tmp_path / example.name
    shutil.copy(example, table)
    materialise(table)
    reader = TileTableReader()
    assert reader.sniff(str(table))
    tiles = reader.tiles(str(table), OPTS)
    rows = doc["tiles"] if isinstance(doc, dict) else doc
    assert len(tiles) == len(rows)
    for tile, row in zip(tiles, rows, strict=True):
        assert tile.position_um == (float(row.get("z_um", 0.0)), float(row["y_um"]), float(row["x_um"]))
        assert tile.read().shape == tile.shape


@pytest.mark.parametrize("example", _examples("invalid"), ids=lambda p: p.name)
def test_invalid_example(example: Path, tmp_path: Path, validator: jsonschema.Draft202012Validator) -> None:
    doc = load_document(example)
    assert list(validator.iter_errors(doc)), f"{example.name} passes the schema"
    table = tmp_path / example.name
    shutil.copy(example, table)
    for name in ("a.tif", "b.tif"):
        write_plain(tmp_path / name)
    with pytest.raises(MetadataError) as info:
        TileTableReader().tiles(str(table), OPTS)
    assert str(table) in str(info.value)


def test_valid_examples_values(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "valid" / "plate.json", tmp_path / "plate.json")
    materialise(tmp_path / "plate.json")
    tiles = TileTableReader().tiles(str(tmp_path / "plate.json"), OPTS)
    assert [(t.well, t.field_index, t.channel) for t in tiles] == [
        (Well("A", "1"), 0, "DAPI"),
        (Well("A", "1"), 0, "GFP"),
        (Well("A", "1"), 1, "DAPI"),
        (Well("B", "3"), 0, "DAPI"),
    ]
    assert all(t.pixel_size_um == (1.0, 0.5, 0.5) for t in tiles)
    shutil.copy(EXAMPLES / "valid" / "stacks.json", tmp_path / "stacks.json")
    materialise(tmp_path / "stacks.json")
    tiles = TileTableReader().tiles(str(tmp_path / "stacks.json"), OPTS)
    assert [t.name for t in tiles] == ["a", "b"]
    assert all(t.shape == (3, 16, 20) for t in tiles)
    assert all(t.pixel_size_um == (1.5, 0.25, 0.25) for t in tiles)  # from the OME-XML
    assert all(t.channel == "DAPI" for t in tiles)
    shutil.copy(EXAMPLES / "valid" / "minimal.csv", tmp_path / "minimal.csv")
    materialise(tmp_path / "minimal.csv")
    tiles = TileTableReader().tiles(str(tmp_path / "minimal.csv"), OPTS)
    assert [t.position_um for t in tiles] == [(0.0, 0.0, 0.0), (1.5, -30.0, 100.5)]
    assert [t.time_index for t in tiles] == [0, 1]
    assert all(t.pixel_size_um == (2.0, 1.0, 1.0) for t in tiles)


# --------------------------------------------------------------------------------------------
# errors


def test_missing_file_names_table_row_and_path(tmp_path: Path) -> None:
    write_plain(tmp_path / "a.tif")
    table = write_csv(
        tmp_path / "t.csv", "path,x_um,y_um,pixel_size_um", ["a.tif,0,0,1", "sub/gone.tif,5,0,1"]
    )
    with pytest.raises(SourceError) as info:
        TileTableReader().tiles(str(table), OPTS)
    msg = str(info.value)
    assert str(table) in msg
    assert "row 2" in msg
    assert "sub/gone.tif" in msg


def test_no_positions(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "t.csv", "path,channel", ["a.tif,DAPI"])
    with pytest.raises(MetadataError, match="no stage positions") as info:
        TileTableReader().tiles(str(table), OPTS)
    assert str(table) in str(info.value)
    table = tmp_path / "t.json"
    table.write_text(json.dumps([{"path": "a.tif"}]))
    with pytest.raises(MetadataError, match="no stage positions"):
        TileTableReader().tiles(str(table), OPTS)


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "abc", "1,5"])
def test_bad_csv_position_has_row_number(tmp_path: Path, value: str) -> None:
    table = tmp_path / "t.csv"
    table.write_text(f'path,x_um,y_um\na.tif,0,0\nb.tif,0,0\nc.tif,"{value}",0\n')
    with pytest.raises(MetadataError, match="row 3") as info:
        TileTableReader().tiles(str(table), OPTS)
    assert "x_um" in str(info.value)


@pytest.mark.parametrize("value", ["NaN", "Infinity", '"12"', "null", "[1]"])
def test_bad_json_position_has_row_number(tmp_path: Path, value: str) -> None:
    table = tmp_path / "t.json"
    table.write_text(
        f'[{{"path": "a.tif", "x_um": 0, "y_um": 0}}, {{"path": "b.tif", "x_um": 1, "y_um": {value}}}]'
    )
    with pytest.raises(MetadataError, match="row 2") as info:
        TileTableReader().tiles(str(table), OPTS)
    assert "y_um" in str(info.value)


def test_duplicate_rows(tmp_path: Path) -> None:
    write_plain(tmp_path / "a.tif")
    table = write_csv(
        tmp_path / "t.csv",
        "path,x_um,y_um,channel,pixel_size_um",
        ["a.tif,0,0,DAPI,1", "./a.tif,10,0,DAPI,1"],
    )
    with pytest.raises(MetadataError, match="duplicate of row 1"):
        TileTableReader().tiles(str(table), OPTS)
    table = write_csv(
        tmp_path / "t.csv", "path,x_um,y_um,channel,pixel_size_um", ["a.tif,0,0,DAPI,1", "a.tif,10,0,GFP,1"]
    )
    assert len(TileTableReader().tiles(str(table), OPTS)) == 2


def test_mixed_pixel_sizes(tmp_path: Path) -> None:
    write_plain(tmp_path / "a.tif")
    write_ome(tmp_path / "b.ome.tif", pixel_size=0.3)
    table = write_csv(
        tmp_path / "t.csv", "path,x_um,y_um,pixel_size_um", ["a.tif,0,0,0.5", "b.ome.tif,10,0,"]
    )
    with pytest.raises(MetadataError, match="different pixel sizes") as info:
        TileTableReader().tiles(str(table), OPTS)
    msg = str(info.value)
    assert "0.5" in msg
    assert "0.3" in msg
    assert "a.tif" in msg
    assert "b.ome.tif" in msg
    # the option overrides both
    tiles = TileTableReader().tiles(str(table), ReaderOptions(pixel_size_um=(0.4, 0.4)))
    assert {t.pixel_size_um for t in tiles} == {(1.0, 0.4, 0.4)}


def test_mixed_dtypes(tmp_path: Path) -> None:
    write_plain(tmp_path / "a.tif", dtype=np.uint16)
    write_plain(tmp_path / "b.tif", dtype=np.uint8)
    table = write_csv(tmp_path / "t.csv", "path,x_um,y_um,pixel_size_um", ["a.tif,0,0,1", "b.tif,10,0,1"])
    with pytest.raises(MetadataError, match="pixel types") as info:
        TileTableReader().tiles(str(table), OPTS)
    assert "uint8" in str(info.value)
    assert "uint16" in str(info.value)


def test_no_pixel_size_anywhere(tmp_path: Path) -> None:
    write_plain(tmp_path / "a.tif")
    table = write_csv(tmp_path / "t.csv", "path,x_um,y_um", ["a.tif,0,0"])
    with pytest.raises(MetadataError, match="no pixel size") as info:
        TileTableReader().tiles(str(table), OPTS)
    assert "row 1" in str(info.value)
    (tile,) = TileTableReader().tiles(str(table), ReaderOptions(pixel_size_um=(0.7, 0.7)))
    assert tile.pixel_size_um == (1.0, 0.7, 0.7)


def test_zstack_needs_z_spacing(tmp_path: Path) -> None:
    write_plain(tmp_path / "s.tif", shape=(3, 8, 8))
    table = write_csv(tmp_path / "t.csv", "path,x_um,y_um,pixel_size_um", ["s.tif,0,0,1"])
    with pytest.raises(MetadataError, match="z spacing"):
        TileTableReader().tiles(str(table), OPTS)
    table.write_text(
        json.dumps(
            {"pixel_size_um": 1, "pixel_size_z_um": 4, "tiles": [{"path": "s.tif", "x_um": 0, "y_um": 0}]}
        )
    )
    table = table.rename(tmp_path / "t.json")
    (tile,) = TileTableReader().tiles(str(table), OPTS)
    assert tile.shape == (3, 8, 8)
    assert tile.pixel_size_um == (4.0, 1.0, 1.0)


def test_absolute_paths_and_multichannel_expansion(tmp_path: Path) -> None:
    data = write_ome(tmp_path / "img" / "m.ome.tif", channels=("A", "B"))
    table = tmp_path / "tables" / "t.json"
    table.parent.mkdir()
    table.write_text(json.dumps([{"path": str(tmp_path / "img" / "m.ome.tif"), "x_um": 1, "y_um": 2}]))
    tiles = TileTableReader().tiles(str(table), OPTS)
    assert [t.channel for t in tiles] == ["A", "B"]
    np.testing.assert_array_equal(tiles[1].read(), data[1])
    table.write_text(
        json.dumps([{"path": str(tmp_path / "img" / "m.ome.tif"), "x_um": 1, "y_um": 2, "channel": "X"}])
    )
    with pytest.raises(MetadataError, match="2 channels"):
        TileTableReader().tiles(str(table), OPTS)


def test_malformed_json_and_sniff(tmp_path: Path) -> None:
    table = tmp_path / "t.json"
    table.write_text('[{"path": "a.tif", "x_um": 0,')
    assert TileTableReader().sniff(str(table))
    with pytest.raises(MetadataError, match="invalid JSON"):
        TileTableReader().tiles(str(table), OPTS)
    other = tmp_path / "package.json"
    other.write_text('{"name": "x"}')
    assert not TileTableReader().sniff(str(other))
    txt = tmp_path / "t.txt"
    txt.write_text("path,x_um,y_um\n")
    assert not TileTableReader().sniff(str(txt))


def test_ome_file_with_reference_frame_positions_is_fine_in_a_table(tmp_path: Path) -> None:
    """The table gives the position; the file's 'reference frame' stage position is not used."""
    if not BF_SAMPLE.is_file():
        pytest.skip(f"Bio-Formats sample absent: {BF_SAMPLE}")
    table = tmp_path / "t.json"
    table.write_text(json.dumps([{"path": str(BF_SAMPLE), "x_um": 3, "y_um": 4}]))
    (tile,) = TileTableReader().tiles(str(table), OPTS)
    assert tile.position_um == (0.0, 4.0, 3.0)
    assert tile.pixel_size_um == pytest.approx((1.0, 1.0833333333333333, 1.0833333333333333))
    assert tile.channel == "Bright"
    np.testing.assert_array_equal(tile.read()[0], tifffile.imread(BF_SAMPLE))
