"""Reader registry: built-in readers load, sniffing picks the most specific, errors say why."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
import tifffile

from ngff_tiles.errors import UnsupportedFormatError
from ngff_tiles.options import ReaderOptions
from ngff_tiles.readers import Reader, available_readers, get_reader, guess_reader, read_tiles
from ngff_tiles.readers._base import BaseReader
from ngff_tiles.testing.conformance import ReaderConformance
from ngff_tiles.tiles import ArraySource, Tile

SHARED = Path(__file__).resolve().parents[2] / "shared"
MM_SAMPLE = SHARED / "sample-data" / "ome-tiff" / "mm14_multipos_grid"
BUILTIN = {"tile-table", "tileconfig", "mmstack", "ome-tiff"}


def _ome(path: Path, x: float = 0.0) -> None:
    tifffile.imwrite(
        path,
        np.zeros((16, 16), np.uint16),
        ome=True,
        photometric="minisblack",
        metadata={
            "axes": "YX",
            "PhysicalSizeX": 1.0,
            "PhysicalSizeY": 1.0,
            "Plane": {"PositionX": [x], "PositionXUnit": ["µm"], "PositionY": [0.0], "PositionYUnit": ["µm"]},
        },
    )


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """One small input per built-in reader (MM from the shared sample when present)."""
    out: dict[str, Path] = {}
    _ome(tmp_path / "one.ome.tif")
    out["ome-tiff"] = tmp_path / "one.ome.tif"
    folder = tmp_path / "ome_folder"
    folder.mkdir()
    for i in range(2):
        _ome(folder / f"t{i}.ome.tif", 16.0 * i)
    out["ome-tiff-folder"] = folder
    tc = tmp_path / "tc"
    tc.mkdir()
    for i in range(2):
        _ome(tc / f"t{i}.ome.tif")  # OME files, but the TileConfiguration makes it a tileconfig folder
    (tc / "TileConfiguration.txt").write_text("dim = 2\nt0.ome.tif; ; (0, 0)\nt1.ome.tif; ; (16, 0)\n")
    out["tileconfig"] = tc
    table = tmp_path / "tiles.csv"
    table.write_text("path,x_um,y_um\none.ome.tif,0,0\n")
    out["tile-table"] = table
    jtable = tmp_path / "tiles.json"
    jtable.write_text(json.dumps({"tiles": [{"path": "one.ome.tif", "x_um": 0, "y_um": 0}]}))
    out["tile-table-json"] = jtable
    if MM_SAMPLE.is_dir():
        mm = tmp_path / "mm"
        mm.mkdir()
        for gz in MM_SAMPLE.glob("*.ome.tif.gz"):
            with gzip.open(gz, "rb") as src, open(mm / gz.name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst)
        out["mmstack"] = mm
        out["mmstack-file"] = mm / "1.4compatTest_3_MMStack_1-Pos_001_000.ome.tif"
    return out


def test_builtin_readers_load() -> None:
    infos = {i.name: i for i in available_readers()}
    assert set(infos) >= BUILTIN
    for name in BUILTIN:
        info = infos[name]
        assert info.error is None, info.error
        assert info.origin == "builtin"
        assert isinstance(info.reader, Reader)
        reader = get_reader(name)
        assert reader.name == name
        assert reader.description
        assert reader.extra is None
    assert get_reader("mmstack").priority > get_reader("ome-tiff").priority
    assert get_reader("tileconfig").priority > get_reader("ome-tiff").priority


def test_get_reader_unknown() -> None:
    with pytest.raises(UnsupportedFormatError, match="ome-tiff"):
        get_reader("no-such-reader")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("ome-tiff", "ome-tiff"),
        ("ome-tiff-folder", "ome-tiff"),
        ("tileconfig", "tileconfig"),
        ("tile-table", "tile-table"),
        ("tile-table-json", "tile-table"),
        ("mmstack", "mmstack"),
        ("mmstack-file", "mmstack"),
    ],
)
def test_guess_reader(inputs: dict[str, Path], key: str, expected: str) -> None:
    if key not in inputs:
        pytest.skip(f"Micro-Manager sample absent: {MM_SAMPLE}")
    assert guess_reader(str(inputs[key])).name == expected


def test_mm_is_claimed_by_both_and_mmstack_wins(inputs: dict[str, Path]) -> None:
    if "mmstack" not in inputs:
        pytest.skip(f"Micro-Manager sample absent: {MM_SAMPLE}")
    for key in ("mmstack", "mmstack-file"):
        assert get_reader("ome-tiff").sniff(str(inputs[key]))
        assert get_reader("mmstack").sniff(str(inputs[key]))


def test_unsupported_input_lists_readers(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(UnsupportedFormatError) as info:
        guess_reader(str(junk))
    for name in BUILTIN:
        assert name in str(info.value)
    plain = tmp_path / "plain.tif"  # a TIFF nobody claims: no OME name, no config, no table
    tifffile.imwrite(plain, np.zeros((4, 4), np.uint8), photometric="minisblack")
    with pytest.raises(UnsupportedFormatError):
        guess_reader(str(plain))
    with pytest.raises(UnsupportedFormatError):
        guess_reader(str(tmp_path / "missing.ome.tif"))


def test_sniffing_imports_no_format_library(inputs: dict[str, Path]) -> None:
    paths = [str(p) for p in inputs.values()]
    code = (
        "import sys, json\n"
        "from ngff_tiles.readers import guess_reader\n"
        f"for p in json.loads({json.dumps(json.dumps(paths))}):\n"
        "    guess_reader(p)\n"
        "heavy = [m for m in ('tifffile', 'imagecodecs', 'jsonschema', 'zarr', 'dask') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"sniffing imported {out.stdout.strip()}"


def test_read_tiles_several_inputs_renumbers(inputs: dict[str, Path]) -> None:
    tiles = read_tiles([str(inputs["ome-tiff"]), str(inputs["ome-tiff-folder"])])
    assert [t.tile_id for t in tiles] == [0, 1, 2]
    assert [t.position_um[2] for t in tiles] == [0.0, 0.0, 16.0]
    forced = read_tiles(str(inputs["tileconfig"]), reader="ome-tiff", options=ReaderOptions())
    assert len(forced) == 2
    assert read_tiles(str(inputs["tileconfig"]))[1].position_um == (0.0, 0.0, 16.0)


# --------------------------------------------------------------------------------------------
# the conformance suite itself catches misbehaving readers


class _BadReader(BaseReader):
    name = "bad"

    def __init__(self, *, read_pixels: bool = False, leak: bool = False) -> None:
        self.read_pixels = read_pixels
        self.leak = leak
        self.handles: list[BinaryIO] = []

    def sniff(self, path: str) -> bool:
        return path.endswith(".bad")

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:
        tile = Tile(
            tile_id=0,
            source=ArraySource(np.zeros((1, 4, 4), np.uint8)),
            shape=(1, 4, 4),
            dtype=np.uint8,
            position_um=(0.0, 0.0, 0.0),
            pixel_size_um=(1.0, 1.0, 1.0),
        )
        if self.read_pixels:
            tile.read()
        if self.leak:
            self.handles.append(open(path, "rb"))  # noqa: SIM115 - the leak under test
        return [tile]


class _Suite(ReaderConformance):
    reader_name = "bad"
    expected_tiles = 1

    def __init__(self, reader: _BadReader) -> None:
        self.bad = reader

    @property
    def reader(self) -> Reader:
        return self.bad

    def make_input(self, tmp_path: Path) -> str:
        path = tmp_path / "x.bad"
        path.write_bytes(b"bad")
        return str(path)

    def make_negative(self, tmp_path: Path) -> str:
        return str(tmp_path)


def test_conformance_catches_pixel_reads_in_tiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _Suite(_BadReader()).test_tiles_reads_no_pixels(tmp_path, monkeypatch)
    with pytest.raises(AssertionError, match="metadata only"):
        _Suite(_BadReader(read_pixels=True)).test_tiles_reads_no_pixels(tmp_path, monkeypatch)


def test_conformance_catches_leaked_handles(tmp_path: Path) -> None:
    _Suite(_BadReader()).test_no_leaked_file_handles(tmp_path)
    reader = _BadReader(leak=True)
    try:
        with pytest.raises(AssertionError, match="files left open"):
            _Suite(reader).test_no_leaked_file_handles(tmp_path)
    finally:
        for handle in reader.handles:
            handle.close()
