"""TIFF-family readers: OME-TIFF, Micro-Manager MMStack and Fiji TileConfiguration folders."""

from __future__ import annotations

import gzip
import logging
import pickle
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from ngff_tiles.errors import MetadataError, SourceError
from ngff_tiles.options import ReaderOptions
from ngff_tiles.readers import get_reader, guess_reader
from ngff_tiles.readers._base import RawFileSource
from ngff_tiles.readers.tiff import (
    MMStackReader,
    OmeTiffReader,
    TiffPageSource,
    TileConfigReader,
    _mm_summary_position,
    describe_tiff,
    length_to_um,
)
from ngff_tiles.testing.conformance import ReaderConformance

SHARED = Path(__file__).resolve().parents[2] / "shared"
MM_SAMPLE = SHARED / "sample-data" / "ome-tiff" / "mm14_multipos_grid"
BF_SAMPLE = SHARED / "sample-data" / "ome-tiff" / "bioformats_czi_export" / "s_1_t_1_c_1_z_1.ome.tiff"
OPTS = ReaderOptions()

POSITIONS = [(100.0, 200.0), (165.0, 200.0), (100.0, 265.0), (165.0, 265.0)]


def write_ome_tiles(
    path: Path, positions: list[tuple[float, float]] = POSITIONS, **kwargs: Any
) -> list[np.ndarray]:
    """The formats.md §3.5 recipe: one multi-series OME-TIFF, C2 Z3 per position."""
    rng = np.random.default_rng(1)
    arrays = []
    with tifffile.TiffWriter(path, ome=True, byteorder=kwargs.pop("byteorder", None)) as tw:
        for i, (x, y) in enumerate(positions):
            data = rng.integers(0, 4000, (2, 3, 64, 80), dtype=np.uint16)  # C, Z, Y, X
            n = 2 * 3
            tw.write(
                data,
                photometric="minisblack",
                metadata={
                    "axes": "CZYX",
                    "Name": f"tile{i}",
                    "PhysicalSizeX": 0.65,
                    "PhysicalSizeXUnit": "µm",
                    "PhysicalSizeY": 0.65,
                    "PhysicalSizeYUnit": "µm",
                    "PhysicalSizeZ": 2.0,
                    "PhysicalSizeZUnit": "µm",
                    "Channel": {"Name": ["DAPI", "GFP"]},
                    "Plane": {
                        "PositionX": [x] * n,
                        "PositionXUnit": ["µm"] * n,
                        "PositionY": [y] * n,
                        "PositionYUnit": ["µm"] * n,
                        "PositionZ": [10.0 + 2 * (k % 3) for k in range(n)],
                        "PositionZUnit": ["µm"] * n,
                    },
                },
                **kwargs,
            )
            arrays.append(data)
    return arrays


def write_single_ome(path: Path, x: float, y: float, seed: int = 0, **kwargs: Any) -> np.ndarray:
    """One 2-D single-channel OME-TIFF with positions in µm."""
    data = np.random.default_rng(seed).integers(0, 60000, (48, 56), dtype=np.uint16)
    tifffile.imwrite(
        path,
        data,
        ome=True,
        photometric="minisblack",
        metadata={
            "axes": "YX",
            "Name": path.name.split(".")[0],
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.5,
            "Plane": {"PositionX": [x], "PositionXUnit": ["µm"], "PositionY": [y], "PositionYUnit": ["µm"]},
        },
        **kwargs,
    )
    return data


def ome_xml(images: str, uuid_attr: str = "") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"'
        f"{uuid_attr}>{images}</OME>"
    )


def image_xml(
    index: int,
    *,
    size: tuple[int, int] = (32, 40),
    pixels_attrs: str = 'PhysicalSizeX="0.5" PhysicalSizeY="0.5"',
    plane: str = "",
    stage: str = "",
    tiffdata: str = '<TiffData IFD="0" PlaneCount="1"/>',
    extra: str = "",
) -> str:
    return (
        f'<Image ID="Image:{index}" Name="img{index}">{stage}'
        f'<Pixels ID="Pixels:{index}" DimensionOrder="XYZCT" Type="uint16" SizeX="{size[1]}" '
        f'SizeY="{size[0]}" SizeZ="1" SizeC="1" SizeT="1" {pixels_attrs}>'
        f'<Channel ID="Channel:{index}:0" SamplesPerPixel="1"/>{tiffdata}{plane}{extra}</Pixels></Image>'
    )


def write_custom_ome(path: Path, xml: str, planes: list[np.ndarray]) -> None:
    """Write ``planes`` as IFDs with ``xml`` as the first ImageDescription (no tifffile metadata)."""
    with tifffile.TiffWriter(path) as tw:
        for i, plane in enumerate(planes):
            tw.write(
                plane, photometric="minisblack", description=xml.encode() if i == 0 else None, metadata=None
            )


def plane_xml(x: float, y: float, unit: str | None = "µm", z: float | None = None) -> str:
    u = "" if unit is None else f' PositionXUnit="{unit}" PositionYUnit="{unit}"'
    zz = "" if z is None else f' PositionZ="{z}" PositionZUnit="µm"'
    return f'<Plane TheZ="0" TheC="0" TheT="0" PositionX="{x}" PositionY="{y}"{u}{zz}/>'


@pytest.fixture(scope="module")
def mm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MM 1.4 MMStack sample, gunzipped once per module."""
    if not MM_SAMPLE.is_dir():
        pytest.skip(f"Micro-Manager sample absent: {MM_SAMPLE} (../shared not checked out)")
    out = tmp_path_factory.mktemp("mm14")
    for gz in sorted(MM_SAMPLE.glob("*.gz")):
        with gzip.open(gz, "rb") as src, open(out / gz.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return out


# --------------------------------------------------------------------------------------------
# conformance


class TestOmeTiffMultiSeriesConformance(ReaderConformance):
    reader_name = "ome-tiff"
    expected_tiles = 8

    def make_input(self, tmp_path: Path) -> str:
        path = tmp_path / "tiles.ome.tif"
        if not path.exists():
            write_ome_tiles(path)
        return str(path)

    def make_negative(self, tmp_path: Path) -> str:
        path = tmp_path / "plain.tif"  # OME content, but not an .ome.tif name
        write_ome_tiles(path)
        return str(path)


class TestOmeTiffFolderCompressedConformance(ReaderConformance):
    """A folder of single-image OME-TIFFs, zlib-compressed (TiffPageSource), plus a stray dark.tif."""

    reader_name = "ome-tiff"
    expected_tiles = 3

    def make_input(self, tmp_path: Path) -> str:
        folder = tmp_path / "folder"
        if not folder.exists():
            folder.mkdir()
            for i in range(3):
                write_single_ome(folder / f"t{i}.ome.tif", 20.0 * i, 5.0, seed=i, compression="zlib")
            tifffile.imwrite(folder / "dark.tif", np.zeros((8, 8), np.uint16), photometric="minisblack")
        return str(folder)

    def make_negative(self, tmp_path: Path) -> str:
        write_single_ome(tmp_path / "t0.ome.tif", 0.0, 0.0)
        (tmp_path / "TileConfiguration.txt").write_text("dim = 2\nt0.ome.tif; ; (0, 0)\n")
        return str(tmp_path)


class TestMMStackConformance(ReaderConformance):
    reader_name = "mmstack"
    expected_tiles = 16

    @pytest.fixture(autouse=True)
    def _sample(self, mm_dir: Path) -> None:
        self.mm_dir = mm_dir

    def make_input(self, tmp_path: Path) -> str:
        return str(self.mm_dir)

    def make_negative(self, tmp_path: Path) -> str:
        path = tmp_path / "x_MMStack_Pos0.ome.tif"  # MM-like name, but tifffile's OME, no MM header
        write_ome_tiles(path, POSITIONS[:1])
        return str(path)


class TestTileConfigConformance(ReaderConformance):
    reader_name = "tileconfig"
    expected_tiles = 4

    def make_input(self, tmp_path: Path) -> str:
        folder = tmp_path / "grid"
        if not folder.exists():
            write_tileconfig_folder(folder)
        return str(folder)

    def make_negative(self, tmp_path: Path) -> str:
        tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint16), photometric="minisblack")
        (tmp_path / "Tiles.txt").write_text("dim = 2\na.tif; ; (0, 0)\n")
        return str(tmp_path)


def write_tileconfig_folder(folder: Path, pixel_size: float | None = 0.5, nz: int = 1) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    arrays = []
    coords = [(0.0, 0.0), (90.0, 0.0), (0.0, 70.0), (90.5, 70.25)]
    lines = ["# Define the number of dimensions we are working on", "dim = 2", "", "# coordinates"]
    for i, (x, y) in enumerate(coords):
        data = rng.integers(0, 255, (nz, 80, 100), dtype=np.uint8)
        kwargs: dict[str, Any] = {}
        if pixel_size is not None:
            kwargs = {
                "imagej": True,
                "resolution": (1 / pixel_size, 1 / pixel_size),
                "metadata": {"unit": "um", "axes": "ZYX" if nz > 1 else "YX", "spacing": 3.0},
            }
        tifffile.imwrite(
            folder / f"tile_{i:03}.tif", data if nz > 1 else data[0], photometric="minisblack", **kwargs
        )
        lines.append(f"tile_{i:03}.tif; ; ({x}, {y})")
        arrays.append(data)
    (folder / "TileConfiguration.txt").write_text("\n".join(lines) + "\n")
    return arrays


# --------------------------------------------------------------------------------------------
# OME-TIFF


def test_ome_multiseries_tiles(tmp_path: Path) -> None:
    path = tmp_path / "tiles.ome.tif"
    arrays = write_ome_tiles(path)
    tiles = OmeTiffReader().tiles(str(path), OPTS)
    assert len(tiles) == 8
    assert [t.tile_id for t in tiles] == list(range(8))
    assert [(t.name, t.channel) for t in tiles[:4]] == [
        ("tile0", "DAPI"),
        ("tile0", "GFP"),
        ("tile1", "DAPI"),
        ("tile1", "GFP"),
    ]
    for k, tile in enumerate(tiles):
        i, c = divmod(k, 2)
        x, y = POSITIONS[i]
        assert tile.position_um == (10.0, y, x)  # z: PositionZ of TheZ=0
        assert tile.pixel_size_um == (2.0, 0.65, 0.65)
        assert tile.shape == (3, 64, 80)
        assert tile.dtype == np.uint16
        assert tile.time_index == 0
        assert isinstance(tile.source, RawFileSource)
        assert tile.extra["series"] == i
        np.testing.assert_array_equal(tile.read(), arrays[i][c])
    with tifffile.TiffFile(path) as tf:
        np.testing.assert_array_equal(tiles[5].read(), tf.series[2].asarray()[1])


def test_ome_compressed_tiled_and_big_endian(tmp_path: Path) -> None:
    for name, kwargs, kind in [
        ("zlib.ome.tif", {"compression": "zlib"}, TiffPageSource),
        ("tiled.ome.tif", {"tile": (32, 32)}, TiffPageSource),
        ("be.ome.tif", {"byteorder": ">"}, RawFileSource),
    ]:
        arrays = write_ome_tiles(tmp_path / name, POSITIONS[:2], **kwargs)
        tiles = OmeTiffReader().tiles(str(tmp_path / name), OPTS)
        assert len(tiles) == 4
        for k, tile in enumerate(tiles):
            assert isinstance(tile.source, kind), name
            data = tile.read()
            assert data.dtype == np.dtype("uint16")
            assert data.dtype.isnative
            np.testing.assert_array_equal(data, arrays[k // 2][k % 2])
            region = (slice(1, 3), slice(5, 40), slice(17, 80))
            np.testing.assert_array_equal(tile.read(region), arrays[k // 2][k % 2][region])
        if kind is TiffPageSource:
            assert tiles[0].source.region_reads is False


def test_ome_position_units_converted(tmp_path: Path) -> None:
    xml = ome_xml(
        image_xml(
            0,
            pixels_attrs='PhysicalSizeX="250" PhysicalSizeXUnit="nm" PhysicalSizeY="0.25" '
            'PhysicalSizeYUnit="µm"',
            plane='<Plane TheZ="0" TheC="0" TheT="0" PositionX="1.5" PositionXUnit="mm" PositionY="-20000" '
            'PositionYUnit="nm" PositionZ="0.001" PositionZUnit="m"/>',
        )
    )
    path = tmp_path / "units.ome.tif"
    write_custom_ome(path, xml, [np.zeros((32, 40), np.uint16)])
    (tile,) = OmeTiffReader().tiles(str(path), OPTS)
    assert tile.position_um == pytest.approx((1000.0, -20.0, 1500.0))
    assert tile.pixel_size_um == pytest.approx((1.0, 0.25, 0.25))
    assert length_to_um("Å") == pytest.approx(1e-4)
    assert length_to_um("micron") == 1.0
    assert length_to_um("\\u00B5m") == 1.0
    assert length_to_um("reference frame") is None
    assert length_to_um("pixel") is None


def test_ome_reference_frame_needs_position_unit(tmp_path: Path) -> None:
    path = tmp_path / "rf.ome.tif"
    xml = ome_xml(image_xml(0, plane=plane_xml(12.0, 34.0, unit=None)))  # unit absent: reference frame
    write_custom_ome(path, xml, [np.zeros((32, 40), np.uint16)])
    with pytest.raises(MetadataError, match="position_unit") as info:
        OmeTiffReader().tiles(str(path), OPTS)
    assert str(path) in str(info.value)
    assert "reference frame" in str(info.value)
    assert "--position-unit" in str(info.value)
    (tile,) = OmeTiffReader().tiles(str(path), ReaderOptions(position_unit="mm"))
    assert tile.position_um == (0.0, 34000.0, 12000.0)
    with pytest.raises(MetadataError, match="length unit"):
        OmeTiffReader().tiles(str(path), ReaderOptions(position_unit="parsec-ish"))


def test_ome_bioformats_sample_reference_frame() -> None:
    if not BF_SAMPLE.is_file():
        pytest.skip(f"Bio-Formats sample absent: {BF_SAMPLE}")
    with pytest.raises(MetadataError, match="reference frame"):
        OmeTiffReader().tiles(str(BF_SAMPLE), OPTS)
    (tile,) = OmeTiffReader().tiles(str(BF_SAMPLE), ReaderOptions(position_unit="µm"))
    assert tile.position_um == pytest.approx((9801.29, 42720.296, 43427.982))
    assert tile.pixel_size_um == pytest.approx((1.0, 1.0833333333333333, 1.0833333333333333))
    assert tile.shape == (1, 325, 475)
    assert tile.channel == "Bright"
    assert isinstance(tile.source, TiffPageSource)  # LZW strips
    np.testing.assert_array_equal(tile.read()[0], tifffile.imread(BF_SAMPLE))


def test_ome_stagelabel_fallback_and_missing_position(tmp_path: Path) -> None:
    path = tmp_path / "stage.ome.tif"
    stage = '<StageLabel Name="p" X="7" XUnit="µm" Y="8" YUnit="µm" Z="9" ZUnit="µm"/>'
    write_custom_ome(path, ome_xml(image_xml(0, stage=stage)), [np.zeros((32, 40), np.uint16)])
    (tile,) = OmeTiffReader().tiles(str(path), OPTS)
    assert tile.position_um == (9.0, 8.0, 7.0)
    path2 = tmp_path / "none.ome.tif"
    write_custom_ome(path2, ome_xml(image_xml(0)), [np.zeros((32, 40), np.uint16)])
    with pytest.raises(MetadataError, match="no stage position"):
        OmeTiffReader().tiles(str(path2), OPTS)


def test_ome_missing_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "nops.ome.tif"
    xml = ome_xml(image_xml(0, pixels_attrs="", plane=plane_xml(1.0, 2.0)))
    write_custom_ome(path, xml, [np.zeros((32, 40), np.uint16)])
    with pytest.raises(MetadataError, match="pixel size") as info:
        OmeTiffReader().tiles(str(path), OPTS)
    assert str(path) in str(info.value)
    (tile,) = OmeTiffReader().tiles(str(path), ReaderOptions(pixel_size_um=(0.3, 0.4)))
    assert tile.pixel_size_um == (1.0, 0.3, 0.4)


def test_ome_refuses_doctype(tmp_path: Path) -> None:
    path = tmp_path / "evil.ome.tif"
    xml = ome_xml(image_xml(0, plane=plane_xml(1.0, 2.0)))
    xml = xml.replace("<OME", '<!DOCTYPE OME [<!ENTITY x "boom">]><OME', 1)
    write_custom_ome(path, xml, [np.zeros((32, 40), np.uint16)])
    with pytest.raises(SourceError, match="DOCTYPE"):
        OmeTiffReader().tiles(str(path), OPTS)


@pytest.mark.parametrize("keep", [100, 3000, 60000, -200])
def test_ome_truncated_is_source_error(tmp_path: Path, keep: int) -> None:
    full = tmp_path / "full.ome.tif"
    write_ome_tiles(full)
    data = full.read_bytes()
    path = tmp_path / "cut.ome.tif"
    path.write_bytes(data[:keep])

    def read_all() -> None:
        for tile in OmeTiffReader().tiles(str(path), OPTS):
            tile.read()

    with pytest.raises(SourceError) as info:
        read_all()
    assert str(path) in str(info.value)


def test_ome_truncated_pixels_detected_at_metadata_time(tmp_path: Path) -> None:
    """OME-XML at the start of the file (as Bio-Formats writes it) but pixel data cut off."""
    path = tmp_path / "cut.ome.tif"
    xml = ome_xml(image_xml(0, plane=plane_xml(1.0, 2.0), tiffdata='<TiffData IFD="0" PlaneCount="1"/>'))
    write_custom_ome(path, xml, [np.ones((32, 40), np.uint16)])
    with tifffile.TiffFile(path) as tf:
        end = tf.pages[0].dataoffsets[0] + 100
    path.write_bytes(path.read_bytes()[:end])
    with pytest.raises(SourceError, match="truncated") as info:
        OmeTiffReader().tiles(str(path), OPTS)
    assert str(path) in str(info.value)


def test_ome_garbage_is_source_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.ome.tif"
    path.write_bytes(b"II*\x00" + bytes(np.random.default_rng(3).integers(0, 256, 2000, dtype=np.uint8)))
    assert OmeTiffReader().sniff(str(path))
    with pytest.raises(SourceError) as info:
        OmeTiffReader().tiles(str(path), OPTS)
    assert str(path) in str(info.value)


def _two_file_fileset(folder: Path, full_in_both: bool) -> list[np.ndarray]:
    """Two images, one per file; the OME-XML lists both with UUID FileName."""
    folder.mkdir()
    names = ["set_0.ome.tif", "set_1.ome.tif"]
    uuids = [f"urn:uuid:{uuid.uuid4()}" for _ in names]
    images = "".join(
        image_xml(
            i,
            plane=plane_xml(50.0 * i, 0.0),
            tiffdata=f'<TiffData IFD="0" PlaneCount="1"><UUID FileName="{n}">{u}</UUID></TiffData>',
        )
        for i, (n, u) in enumerate(zip(names, uuids, strict=True))
    )
    planes = [np.full((32, 40), i + 1, np.uint16) for i in range(2)]
    write_custom_ome(folder / names[0], ome_xml(images, f' UUID="{uuids[0]}"'), [planes[0]])
    if full_in_both:
        second = ome_xml(images, f' UUID="{uuids[1]}"')
    else:
        second = ome_xml(f'<BinaryOnly MetadataFile="{names[0]}" UUID="{uuids[0]}"/>', f' UUID="{uuids[1]}"')
    write_custom_ome(folder / names[1], second, [planes[1]])
    return planes


@pytest.mark.parametrize("full_in_both", [False, True])
def test_ome_multifile_fileset_no_duplicates(tmp_path: Path, full_in_both: bool) -> None:
    folder = tmp_path / "set"
    planes = _two_file_fileset(folder, full_in_both)
    for given in (folder, folder / "set_0.ome.tif", folder / "set_1.ome.tif"):
        tiles = OmeTiffReader().tiles(str(given), OPTS)
        assert [t.name for t in tiles] == ["img0", "img1"], given
        assert [t.position_um[2] for t in tiles] == [0.0, 50.0]
        assert [Path(t.source.path).name for t in tiles] == ["set_0.ome.tif", "set_1.ome.tif"]
        for tile, plane in zip(tiles, planes, strict=True):
            np.testing.assert_array_equal(tile.read()[0], plane)


def test_ome_multifile_missing_member(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    _two_file_fileset(folder, False)
    (folder / "set_0.ome.tif").rename(folder / "renamed.ome.tif")
    with pytest.raises(SourceError, match=r"set_0\.ome\.tif"):
        OmeTiffReader().tiles(str(folder / "set_1.ome.tif"), OPTS)


def test_ome_tiffdata_ifd_mapping_and_dimension_order(tmp_path: Path) -> None:
    """XYCZT with explicit per-plane TiffData in reverse IFD order."""
    rng = np.random.default_rng(5)
    planes = [rng.integers(0, 1000, (16, 24), dtype=np.uint16) for _ in range(4)]  # IFD k
    # plane (z, c) stored at IFD 3 - (z * 2 + c)
    tds = "".join(
        f'<TiffData IFD="{3 - (z * 2 + c)}" FirstZ="{z}" FirstC="{c}" PlaneCount="1"/>'
        for z in range(2)
        for c in range(2)
    )
    image = (
        '<Image ID="Image:0" Name="m"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" '
        'SizeX="24" SizeY="16" SizeZ="2" SizeC="2" SizeT="1" PhysicalSizeX="1" PhysicalSizeY="1" '
        'PhysicalSizeZ="3"><Channel ID="Channel:0:0" Name="a"/><Channel ID="Channel:0:1" Name="b"/>'
        f"{tds}{plane_xml(0.0, 0.0, z=4.0)}</Pixels></Image>"
    )
    path = tmp_path / "order.ome.tif"
    write_custom_ome(path, ome_xml(image), planes)
    tiles = OmeTiffReader().tiles(str(path), OPTS)
    assert [t.channel for t in tiles] == ["a", "b"]
    assert tiles[0].position_um == (4.0, 0.0, 0.0)
    for c, tile in enumerate(tiles):
        assert tile.shape == (2, 16, 24)
        np.testing.assert_array_equal(tile.read(), np.stack([planes[3 - (z * 2 + c)] for z in range(2)]))


def test_ome_plate_wells(tmp_path: Path) -> None:
    images = "".join(
        image_xml(i, plane=plane_xml(10.0 * i, 0.0), tiffdata=f'<TiffData IFD="{i}" PlaneCount="1"/>')
        for i in range(3)
    )
    plate = (
        '<Plate ID="Plate:0"><Well ID="Well:0" Row="1" Column="2">'
        '<WellSample ID="WS:0" Index="0"><ImageRef ID="Image:0"/></WellSample>'
        '<WellSample ID="WS:1" Index="1"><ImageRef ID="Image:1"/></WellSample></Well>'
        '<Well ID="Well:1" Row="0" Column="0"><WellSample ID="WS:2" Index="2"><ImageRef ID="Image:2"/>'
        "</WellSample></Well></Plate>"
    )
    path = tmp_path / "plate.ome.tif"
    write_custom_ome(path, ome_xml(images + plate), [np.zeros((32, 40), np.uint16)] * 3)
    tiles = OmeTiffReader().tiles(str(path), OPTS)
    assert [(str(t.well), t.field_index) for t in tiles] == [("B3", 0), ("B3", 1), ("A1", 0)]


def test_ome_reader_on_mm_sample_dedups_fileset(mm_dir: Path) -> None:
    """Forced through the OME reader, the MM dataset (full XML + BinaryOnly stubs) yields 16 tiles."""
    tiles = OmeTiffReader().tiles(str(mm_dir), OPTS)
    assert len(tiles) == 16
    mm = {(t.name, t.channel, t.time_index): t.position_um for t in MMStackReader().tiles(str(mm_dir), OPTS)}
    for tile in tiles:
        label = tile.name.split("_MMStack_")[1]
        # OME positions are taken as corners, Micro-Manager's as frame centres (64 px of 1 µm)
        z, y, x = tile.position_um
        assert mm[(label, tile.channel, tile.time_index)] == (z, y - 32.0, x - 32.0)
    assert tiles[0].pixel_size_um == (5.0, 1.0, 1.0)


# --------------------------------------------------------------------------------------------
# Micro-Manager


def test_mm_sample_tiles(mm_dir: Path) -> None:
    tiles = MMStackReader().tiles(str(mm_dir), OPTS)
    assert len(tiles) == 16
    expected = {
        "1-Pos_000_000": (-32.0, -32.0),
        "1-Pos_001_000": (32.0, -32.0),
        "1-Pos_001_001": (32.0, 32.0),
        "1-Pos_000_001": (-32.0, 32.0),
    }
    assert {t.name for t in tiles} == set(expected)
    assert {t.channel for t in tiles} == {"Cy5", "DAPI"}
    assert {t.time_index for t in tiles} == {0, 1}
    for tile in tiles:
        x, y = expected[tile.name]  # the stage position is the centre of the 64×64 µm frame
        assert tile.position_um == (0.0, y - 32.0, x - 32.0)
        assert tile.shape == (2, 64, 64)
        assert tile.dtype == np.uint16
        assert tile.pixel_size_um == (5.0, 1.0, 1.0)
        assert isinstance(tile.source, RawFileSource)
        assert tile.name in Path(tile.source.path).name  # each position's pixels in its own file
    # order: position index, then time, then channel
    assert [(t.extra["position_index"], t.time_index, t.channel) for t in tiles[:4]] == [
        (0, 0, "Cy5"),
        (0, 0, "DAPI"),
        (0, 1, "Cy5"),
        (0, 1, "DAPI"),
    ]


def test_mm_pixels_match_tifffile_series(mm_dir: Path) -> None:
    tiles = MMStackReader().tiles(str(mm_dir), OPTS)
    first = mm_dir / "1.4compatTest_3_MMStack_1-Pos_000_000.ome.tif"
    with tifffile.TiffFile(first) as tf:
        series = tf.series[0]
        assert series.axes == "RTZCYX"
        ref = series.asarray()
    assert ref.shape == (4, 2, 2, 2, 64, 64)
    channels = ["Cy5", "DAPI"]
    for tile in tiles:
        p = tile.extra["position_index"]
        assert isinstance(p, int)
        np.testing.assert_array_equal(tile.read(), ref[p, tile.time_index, :, channels.index(tile.channel)])


def test_mm_single_file_gives_whole_dataset_matched_by_index(mm_dir: Path) -> None:
    one = mm_dir / "1.4compatTest_3_MMStack_1-Pos_000_001.ome.tif"  # PositionIndex 3
    reader = MMStackReader()
    assert reader.sniff(str(one))
    assert guess_reader(str(one)).name == "mmstack"
    tiles = reader.tiles(str(one), OPTS)
    assert len(tiles) == 16
    pos3 = [t for t in tiles if t.extra["position_index"] == 3]
    assert {t.name for t in pos3} == {"1-Pos_000_001"}
    assert all(t.position_um == (0.0, 32.0 - 32.0, -32.0 - 32.0) for t in pos3)  # centre -> corner
    assert all(Path(t.source.path) == one for t in pos3)


def test_mm_pixel_size_override(mm_dir: Path) -> None:
    tiles = MMStackReader().tiles(str(mm_dir), ReaderOptions(pixel_size_um=(0.5, 0.5)))
    assert tiles[0].pixel_size_um == (5.0, 0.5, 0.5)
    tiles = MMStackReader().tiles(str(mm_dir), ReaderOptions(pixel_size_um=(2.0, 0.5, 0.5)))
    assert tiles[0].pixel_size_um == (2.0, 0.5, 0.5)


def test_mm_missing_member_skips_its_position(mm_dir: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in mm_dir.glob("*.ome.tif"):
        if "Pos_001_001" not in f.name:
            (partial / f.name).symlink_to(f)
    tiles = MMStackReader().tiles(str(partial), OPTS)
    assert len(tiles) == 12
    assert "1-Pos_001_001" not in {t.name for t in tiles}


def test_mm_sniff_rejects_non_mm(tmp_path: Path) -> None:
    path = tmp_path / "a.ome.tif"
    write_ome_tiles(path, POSITIONS[:1])
    assert not MMStackReader().sniff(str(path))
    assert OmeTiffReader().sniff(str(path))


# --------------------------------------------------------------------------------------------
# TileConfiguration


def test_tileconfig_positions_in_um(tmp_path: Path) -> None:
    arrays = write_tileconfig_folder(tmp_path / "g", pixel_size=0.5)
    tiles = TileConfigReader().tiles(str(tmp_path / "g"), OPTS)
    assert [t.position_um for t in tiles] == [
        (0.0, 0.0, 0.0),
        (0.0, 0.0, 45.0),
        (0.0, 35.0, 0.0),
        (0.0, 35.125, 45.25),
    ]
    assert all(t.pixel_size_um == (3.0, 0.5, 0.5) for t in tiles)  # ImageJ spacing = z
    assert [t.name for t in tiles] == ["tile_000", "tile_001", "tile_002", "tile_003"]
    assert all("pixel_size_assumed" not in t.extra for t in tiles)
    for tile, data in zip(tiles, arrays, strict=True):
        assert tile.shape == (1, 80, 100)
        assert tile.dtype == np.uint8
        np.testing.assert_array_equal(tile.read(), data)


def test_tileconfig_config_file_path_and_override(tmp_path: Path) -> None:
    write_tileconfig_folder(tmp_path / "g", pixel_size=0.5)
    tiles = TileConfigReader().tiles(
        str(tmp_path / "g" / "TileConfiguration.txt"), ReaderOptions(pixel_size_um=(2.0,))
    )
    assert tiles[1].position_um == (0.0, 0.0, 180.0)
    assert tiles[1].pixel_size_um == (3.0, 2.0, 2.0)


def test_tileconfig_assumes_one_um_without_pixel_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_tileconfig_folder(tmp_path / "g", pixel_size=None)
    with caplog.at_level(logging.WARNING, logger="ngff_tiles"):
        tiles = TileConfigReader().tiles(str(tmp_path / "g"), OPTS)
    assert "assuming 1 µm per pixel" in caplog.text
    assert tiles[3].position_um == (0.0, 70.25, 90.5)
    assert all(t.pixel_size_um == (1.0, 1.0, 1.0) for t in tiles)
    assert all(t.extra["pixel_size_assumed"] is True for t in tiles)


def test_tileconfig_registered_preferred_and_3d(tmp_path: Path) -> None:
    folder = tmp_path / "g"
    write_tileconfig_folder(folder, pixel_size=0.5, nz=4)
    (folder / "TileConfiguration.registered.txt").write_text(
        "# registered\ndim=3\n" + "".join(f"tile_{i:03}.tif; ; ({10 * i}.5, {i}, {-i})\n" for i in range(4))
    )
    tiles = TileConfigReader().tiles(str(folder), OPTS)
    assert all(t.shape == (4, 80, 100) for t in tiles)
    assert tiles[2].pixel_size_um == (3.0, 0.5, 0.5)
    assert tiles[2].position_um == (-6.0, 1.0, 10.25)


def test_tileconfig_missing_file_names_config_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "g"
    write_tileconfig_folder(folder)
    (folder / "tile_002.tif").unlink()
    with pytest.raises(SourceError) as info:
        TileConfigReader().tiles(str(folder), OPTS)
    msg = str(info.value)
    assert "TileConfiguration.txt" in msg
    assert "line 7" in msg
    assert "tile_002.tif" in msg


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a.tif; ; (0, 0)\n", "dim"),
        ("dim = 2\na.tif; (0, 0)\n", "line 2"),
        ("dim = 2\na.tif; ; (0, 0, 5)\n", "2 finite coordinates"),
        ("dim = 3\na.tif; ; (0, x, 5)\n", "numbers"),
        ("dim = 4\n", "dim = 2"),
        ("# nothing\n", "at least one"),
    ],
)
def test_tileconfig_malformed(tmp_path: Path, text: str, match: str) -> None:
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint16), photometric="minisblack")
    (tmp_path / "TileConfiguration.txt").write_text(text)
    with pytest.raises(MetadataError, match=match):
        TileConfigReader().tiles(str(tmp_path), OPTS)


def test_tileconfig_mixed_pixel_sizes(tmp_path: Path) -> None:
    folder = tmp_path / "g"
    write_tileconfig_folder(folder, pixel_size=0.5)
    tifffile.imwrite(
        folder / "tile_001.tif",
        np.zeros((80, 100), np.uint8),
        imagej=True,
        resolution=(1 / 0.6, 1 / 0.6),
        metadata={"unit": "um"},
    )
    with pytest.raises(MetadataError, match="different pixel sizes") as info:
        TileConfigReader().tiles(str(folder), OPTS)
    assert "tile_000.tif" in str(info.value)
    assert "tile_001.tif" in str(info.value)


def test_tileconfig_rgb_and_multiseries(tmp_path: Path) -> None:
    rgb = np.random.default_rng(2).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    with tifffile.TiffWriter(tmp_path / "multi.tif") as tw:
        tw.write(np.full((20, 30), 1, np.uint8), photometric="minisblack")
        tw.write(np.full((20, 30), 2, np.uint8), photometric="minisblack")
    (tmp_path / "TileConfiguration.txt").write_text(
        "dim = 2\nmultiseries = true\nrgb.tif; ; (0, 0)\nmulti.tif; 1; (25, 0)\n"
    )
    tiles = TileConfigReader().tiles(str(tmp_path), ReaderOptions(pixel_size_um=(1.0, 1.0)))
    assert [t.channel for t in tiles] == ["0", "1", "2", "0"]
    for c in range(3):
        np.testing.assert_array_equal(tiles[c].read()[0], rgb[..., c])
    assert tiles[3].position_um == (0.0, 0.0, 25.0)
    np.testing.assert_array_equal(tiles[3].read()[0], np.full((20, 30), 2, np.uint8))


# --------------------------------------------------------------------------------------------
# describe_tiff and sources


def test_describe_tiff_imagej_hyperstack(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 2 * 8 * 9, dtype=np.uint16).reshape(2, 3, 2, 8, 9)  # T Z C Y X
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(4.0, 4.0),
        metadata={"axes": "TZCYX", "unit": "micron", "spacing": 1.5},
    )
    image = describe_tiff(str(path))
    assert image.kind == "imagej"
    assert image.pixel_size_um == (1.5, 0.25, 0.25)
    assert [(s.time_index, s.channel, s.shape) for s in image.stacks] == [
        (0, "0", (3, 8, 9)),
        (0, "1", (3, 8, 9)),
        (1, "0", (3, 8, 9)),
        (1, "1", (3, 8, 9)),
    ]
    for s in image.stacks:
        np.testing.assert_array_equal(s.source.read(shape=s.shape), data[s.time_index, :, int(s.channel)])


def test_describe_tiff_resolution_units(tmp_path: Path) -> None:
    path = tmp_path / "cm.tif"
    tifffile.imwrite(
        path,
        np.zeros((8, 8), np.uint16),
        photometric="minisblack",
        resolution=(20000.0, 10000.0),
        resolutionunit="CENTIMETER",
    )
    assert describe_tiff(str(path)).pixel_size_um == (None, 1.0, 0.5)
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(
        path,
        np.zeros((8, 8), np.uint16),
        photometric="minisblack",
        resolution=(72.0, 72.0),
        resolutionunit="INCH",
    )
    assert describe_tiff(str(path)).pixel_size_um is None
    path = tmp_path / "none.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16), photometric="minisblack")
    assert describe_tiff(str(path)).pixel_size_um is None


def test_tiff_page_source_pickles_without_handles(tmp_path: Path) -> None:
    arrays = write_ome_tiles(tmp_path / "z.ome.tif", POSITIONS[:1], compression="zlib")
    tile = OmeTiffReader().tiles(str(tmp_path / "z.ome.tif"), OPTS)[1]
    source = pickle.loads(pickle.dumps(tile.source))
    assert isinstance(source, TiffPageSource)
    assert source.shape_hint() == (3, 64, 80)
    np.testing.assert_array_equal(source.read(), arrays[0][1])
    assert len(pickle.dumps(source)) < 2000


def test_registry_names() -> None:
    assert isinstance(get_reader("ome-tiff"), OmeTiffReader)
    assert isinstance(get_reader("mmstack"), MMStackReader)
    assert isinstance(get_reader("tileconfig"), TileConfigReader)
    assert MMStackReader.priority > OmeTiffReader.priority


def test_mm_summary_position_lists() -> None:
    mm14 = {
        "Core-XYStage": "XY",
        "InitialPositionList": [
            {"Label": "1-Pos_000_000", "DeviceCoordinatesUm": {"XY": [-32, -31], "Z": [4]}},
            {"Label": "1-Pos_001_000", "DeviceCoordinatesUm": {"XY": [32, -31]}},
        ],
    }
    assert _mm_summary_position(mm14, 1) == ("1-Pos_001_000", (0.0, -31.0, 32.0))
    assert _mm_summary_position(mm14, 0) == ("1-Pos_000_000", (4.0, -31.0, -32.0))
    assert _mm_summary_position(mm14, 2) == (None, None)
    mm20 = {
        "StagePositions": [
            {
                "Label": "Pos0",
                "DefaultXYStage": "XYStage",
                "DefaultZStage": "Z",
                "DevicePositions": [
                    {"Device": "Other", "Position_um": [1, 1]},
                    {"Device": "XYStage", "Position_um": [10.5, -2]},
                    {"Device": "Z", "Position_um": [7]},
                ],
            }
        ]
    }
    assert _mm_summary_position(mm20, 0) == ("Pos0", (7.0, -2.0, 10.5))
    alpha = {
        "StagePositions": [
            {"label": "A", "subpositions": [{"stageName": "XY", "x": 1, "y": 2, "numAxes": 2}]}
        ]
    }
    assert _mm_summary_position(alpha, 0) == ("A", (0.0, 2.0, 1.0))


def test_compressed_pages_are_decoded_once_across_blocks(tmp_path: Path) -> None:
    """A whole-frame source overlapping several output blocks decodes each page about once."""
    from ngff_tiles.options import ExecutionOptions, WriterOptions
    from ngff_tiles.pipeline import convert
    from ngff_tiles.readers._base import FRAME_CACHE

    data = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)
    tifffile.imwrite(tmp_path / "a.tif", data, compression="zlib")
    (tmp_path / "t.csv").write_text("path,x_um,y_um,pixel_size_um\na.tif,0,0,1\n")
    FRAME_CACHE.clear()
    misses = FRAME_CACHE.misses
    convert(
        str(tmp_path / "t.csv"),
        tmp_path / "o.ome.zarr",
        writer=WriterOptions(chunks=(1, 32, 32), shards=(1, 64, 64)),  # 16 blocks over one tile
        execution=ExecutionOptions(progress=False, max_workers=1),
    )
    assert FRAME_CACHE.misses - misses == 1
    import zarr

    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="r")["0"][0, 0, 0], data)
