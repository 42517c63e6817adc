"""BDV reader: real BDV-H5 files (npy2bdv/Fiji kidney, Mastodon), npy2bdv-written projects, the
``bdv.multimg.zarr`` layouts 1.0 and 3.0 written with zarr-python, and N5 written by hand per the
N5 specification; plus the reader conformance suite."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from ngff_tiles.errors import MetadataError, SourceError
from ngff_tiles.options import ExecutionOptions, ReaderOptions
from ngff_tiles.readers import get_reader, guess_reader, read_tiles
from ngff_tiles.testing.conformance import ReaderConformance

h5py = pytest.importorskip("h5py")

SHARED = Path(__file__).parents[1] / ".." / "shared"
EXAMPLES = SHARED / "bdv-xml-examples"
KIDNEY = SHARED / "sample-data" / "bdv-h5" / "npy2bdv_kidney"
FAKE = SHARED / "sample-data" / "bdv-h5" / "mastodon_faketracks"
QUIET = ExecutionOptions(progress=False)

needs_samples = pytest.mark.skipif(not KIDNEY.is_dir(), reason="shared/sample-data/bdv-h5 not present")


def _copy_kidney_example(tmp_path: Path) -> Path:
    """The bdv-xml-examples copy: its XML names ``kidney.h5``, the file is ``npy2bdv_kidney_hdf5.h5``."""
    shutil.copy(EXAMPLES / "npy2bdv_kidney_hdf5.xml", tmp_path / "kidney.xml")
    shutil.copy(EXAMPLES / "npy2bdv_kidney_hdf5.h5", tmp_path / "kidney.h5")
    return tmp_path / "kidney.xml"


@needs_samples
@pytest.mark.parametrize("where", ["sample-data", "bdv-xml-examples"])
def test_kidney_reads_as_uint16_of_its_int16_cells(tmp_path: Path, where: str) -> None:
    xml = KIDNEY / "kidney.xml" if where == "sample-data" else _copy_kidney_example(tmp_path)
    tiles = read_tiles(str(xml))
    assert len(tiles) == 3
    with h5py.File(xml.with_suffix(".h5"), "r") as f:
        for s, t in enumerate(tiles):
            cells = f[f"t00000/s{s:02d}/0/cells"][()]
            assert cells.dtype == np.int16
            assert "dataType" not in f[f"s{s:02d}"].attrs
            assert t.shape == (32, 172, 111)
            assert t.dtype == np.uint16
            data = t.read()
            assert data.dtype == np.uint16
            np.testing.assert_array_equal(data, cells.view(np.uint16))
            assert t.channel == str(s)
            assert t.position_um == (0.0, 0.0, 0.0)
            assert t.affine_um is None
            np.testing.assert_allclose(
                t.pixel_size_um, (160.0, 65.603883749918, 65.62110374696502), rtol=1e-12
            )
    # SOURCES.md reference value, read independently with h5py 3.16
    assert int(tiles[0].read().astype(np.uint64).sum()) == 227110889


def test_legacy_int16_cells_with_high_values_and_native_datatype(tmp_path: Path) -> None:
    """BDV's two dtype conventions: int16 cells without ``dataType`` are uint16 bit patterns;
    with ``dataType`` the cells are read as stored."""
    npy2bdv = pytest.importorskip("npy2bdv")
    high = np.arange(40000, 40000 + 2 * 8 * 8, dtype=np.uint16).reshape(2, 8, 8)
    w = npy2bdv.BdvWriter(str(tmp_path / "ds.h5"), overwrite=True)
    w.append_view(high)
    w.write_xml()
    w.close()
    with h5py.File(tmp_path / "ds.h5", "r+") as f:
        del f["t00000/s00/0/cells"]
        f["t00000/s00/0/cells"] = high.view(np.int16)  # BDV's legacy layout
        f["s00"].attrs.pop("dataType", None)
    (tile,) = read_tiles(str(tmp_path / "ds.xml"))
    assert tile.dtype == np.uint16
    np.testing.assert_array_equal(tile.read(), high)
    with h5py.File(tmp_path / "ds.h5", "r+") as f:
        del f["t00000/s00/0/cells"]
        f["t00000/s00/0/cells"] = high.astype(np.float32)
        f["s00"].attrs["dataType"] = "float32"
    (tile,) = read_tiles(str(tmp_path / "ds.xml"))
    assert tile.dtype == np.float32
    np.testing.assert_array_equal(tile.read(), high.astype(np.float32))


@needs_samples
def test_mastodon_faketracks_has_50_timepoints(tmp_path: Path) -> None:
    from ngff_tiles.pipeline import convert

    tiles = read_tiles(str(FAKE / "FakeTracksBDV.xml"))
    assert len(tiles) == 50
    assert [t.time_index for t in tiles] == list(range(50))
    assert {t.shape for t in tiles} == {(1, 128, 128)}
    assert int(tiles[0].read().astype(np.uint64).sum()) == 84255394
    assert len({t.tile_id for t in tiles}) == 50
    res = convert(str(FAKE / "FakeTracksBDV.xml"), tmp_path / "f.ome.zarr", execution=QUIET)
    assert res.level_shapes[0] == (50, 1, 1, 128, 128)
    import zarr

    fused = zarr.open_group(str(res.output), mode="r")["0"]
    with h5py.File(FAKE / "FakeTracksBDV.h5", "r") as f:
        for t in (0, 17, 49):
            np.testing.assert_array_equal(fused[t, 0], f[f"t{t:05d}/s00/0/cells"][()].view(np.uint16))


def test_npy2bdv_written_tiles_with_affines(tmp_path: Path) -> None:
    """A 2×2 tile set written by npy2bdv (GPL, test only): translations in calibrated units."""
    npy2bdv = pytest.importorskip("npy2bdv")
    rng = np.random.default_rng(1)
    stacks = [rng.integers(0, 65535, (3, 20, 30), dtype=np.uint16) for _ in range(4)]
    shifts = [(0.0, 0.0, 0.0), (27.0, 0.0, 0.0), (0.0, 18.0, 0.0), (27.5, 18.25, 0.0)]  # x, y, z world
    w = npy2bdv.BdvWriter(str(tmp_path / "ds.h5"), ntiles=4, overwrite=True)
    for i, (stack, (x, y, z)) in enumerate(zip(stacks, shifts, strict=True)):
        m = np.array([[1.0, 0, 0, x], [0, 1.0, 0, y], [0, 0, 1.0, z]])
        w.append_view(
            stack, tile=i, m_affine=m, name_affine="stage", voxel_size_xyz=(0.5, 0.5, 2.0),
            voxel_units="um", calibration=(1.0, 1.0, 4.0),
        )  # fmt: skip
    w.write_xml()
    w.close()
    tiles = read_tiles(str(tmp_path / "ds.xml"))
    assert len(tiles) == 4
    for t, stack, (x, y, z) in zip(tiles, stacks, shifts, strict=True):
        assert t.pixel_size_um == (2.0, 0.5, 0.5)
        # world unit 0.5 µm (voxel / calibration): position = 0.5 · translation
        np.testing.assert_allclose(t.position_um, (0.5 * z, 0.5 * y, 0.5 * x), atol=1e-12)
        assert t.affine_um is None
        np.testing.assert_array_equal(t.read(), stack)


def _write_ngff_image(group: object, data: np.ndarray, levels: int = 2) -> None:
    """An NGFF 0.4 multiscale image as BigStitcher's resave writes it (5-D, levels 0, 1)."""
    g = group
    datasets = []
    for k in range(levels):
        level = data[..., :: 2**k, :: 2**k]
        g.create_array(str(k), data=level, chunks=(1, 1, *level.shape[2:3], 16, 16))  # type: ignore[attr-defined]
        datasets.append(
            {"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1, 2**k, 2**k]}]}
        )
    axes = [{"name": n, "type": "time" if n == "t" else "channel" if n == "c" else "space"} for n in "tczyx"]
    g.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]  # type: ignore[attr-defined]


ZARR_XML = """<?xml version="1.0" encoding="UTF-8"?>
<SpimData version="0.2">
  <BasePath type="relative">.</BasePath>
  <SequenceDescription>
    {loader}
    <ViewSetups>
      <ViewSetup><id>0</id><name>a</name><size>40 24 2</size>
        <voxelSize><unit>µm</unit><size>0.5 0.5 1.0</size></voxelSize>
        <attributes><illumination>0</illumination><channel>0</channel><tile>0</tile><angle>0</angle></attributes>
      </ViewSetup>
      <ViewSetup><id>1</id><name>b</name><size>40 24 2</size>
        <voxelSize><unit>µm</unit><size>0.5 0.5 1.0</size></voxelSize>
        <attributes><illumination>0</illumination><channel>1</channel><tile>0</tile><angle>0</angle></attributes>
      </ViewSetup>
      <ViewSetup><id>2</id><name>c</name><size>40 24 2</size>
        <voxelSize><unit>µm</unit><size>0.5 0.5 1.0</size></voxelSize>
        <attributes><illumination>0</illumination><channel>0</channel><tile>1</tile><angle>0</angle></attributes>
      </ViewSetup>
      <Attributes name="illumination"><Illumination><id>0</id><name>0</name></Illumination></Attributes>
      <Attributes name="channel"><Channel><id>0</id><name>DAPI</name></Channel>
        <Channel><id>1</id><name>GFP</name></Channel></Attributes>
      <Attributes name="tile"><Tile><id>0</id><name>t0</name></Tile>
        <Tile><id>1</id><name>t1</name></Tile></Attributes>
      <Attributes name="angle"><Angle><id>0</id><name>0</name></Angle></Attributes>
    </ViewSetups>
    <Timepoints type="pattern"><integerpattern>0</integerpattern></Timepoints>
    <MissingViews />
  </SequenceDescription>
  <ViewRegistrations>
    <ViewRegistration timepoint="0" setup="0"><ViewTransform type="affine"><Name>calibration</Name>
      <affine>1.0 0.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 0.0 2.0 0.0</affine></ViewTransform></ViewRegistration>
    <ViewRegistration timepoint="0" setup="1"><ViewTransform type="affine"><Name>calibration</Name>
      <affine>1.0 0.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 0.0 2.0 0.0</affine></ViewTransform></ViewRegistration>
    <ViewRegistration timepoint="0" setup="2">
      <ViewTransform type="affine"><Name>Translation to Regular Grid</Name>
        <affine>1.0 0.0 0.0 36.0 0.0 1.0 0.0 0.0 0.0 0.0 1.0 0.0</affine></ViewTransform>
      <ViewTransform type="affine"><Name>calibration</Name>
        <affine>1.0 0.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 0.0 2.0 0.0</affine></ViewTransform></ViewRegistration>
  </ViewRegistrations>
</SpimData>
"""

V3_LOADER = """<ImageLoader format="bdv.multimg.zarr" version="3.0">
      <zarr type="relative">data.ome.zarr</zarr>
      <zgroups>
        <zgroup setup="0" tp="0" path="tile0.zarr" indicies="0 0" />
        <zgroup setup="1" tp="0" path="tile0.zarr" indicies="1 0" />
        <zgroup setup="2" tp="0" path="tile1.zarr" indicies="[]" />
      </zgroups>
    </ImageLoader>"""

V1_LOADER = """<ImageLoader format="bdv.multimg.zarr" version="1.0">
      <zarr type="relative">data.ome.zarr</zarr>
      <zgroups>
        <zgroup setup="0" timepoint="0"><path>s0.zarr</path></zgroup>
        <zgroup setup="1" timepoint="0"><path>s1.zarr</path></zgroup>
        <zgroup setup="2" timepoint="0"><path>tile1.zarr</path></zgroup>
      </zgroups>
    </ImageLoader>"""


def _pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, (2, 24, 40), dtype=np.uint16)


def write_zarr_project(tmp_path: Path, version: str, zarr_format: int = 2) -> Path:
    """Write a bdv.multimg.zarr project with zarr-python: tile 0 with two channels, tile 1."""
    import zarr

    root = zarr.open_group(str(tmp_path / "data.ome.zarr"), mode="w", zarr_format=zarr_format)
    if version == "3.0":
        both = np.stack([_pixels(0), _pixels(1)])[None]  # (t=1, c=2, z, y, x)
        _write_ngff_image(root.create_group("tile0.zarr"), both)
    else:
        _write_ngff_image(root.create_group("s0.zarr"), _pixels(0)[None, None])
        _write_ngff_image(root.create_group("s1.zarr"), _pixels(1)[None, None])
    g = root.create_group("tile1.zarr")
    g.create_array("0", data=_pixels(2), chunks=(1, 16, 16))  # a plain 3-D level array
    xml = tmp_path / "project.xml"
    xml.write_text(ZARR_XML.format(loader=V3_LOADER if version == "3.0" else V1_LOADER), encoding="utf-8")
    return xml


@pytest.mark.parametrize(("version", "zarr_format"), [("3.0", 2), ("1.0", 2), ("3.0", 3)])
def test_multimg_zarr_layouts(tmp_path: Path, version: str, zarr_format: int) -> None:
    tiles = read_tiles(str(write_zarr_project(tmp_path, version, zarr_format)))
    assert [t.channel for t in tiles] == ["DAPI", "GFP", "DAPI"]
    assert [t.name for t in tiles] == ["t0", "t0", "t1"]
    for t, seed in zip(tiles, (0, 1, 2), strict=True):
        assert t.shape == (2, 24, 40)
        assert t.pixel_size_um == (1.0, 0.5, 0.5)
        np.testing.assert_array_equal(t.read(), _pixels(seed))
        region = (slice(1, 2), slice(3, 20), slice(5, 33))
        np.testing.assert_array_equal(t.read(region), _pixels(seed)[region])
    # world unit 0.5 µm; the grid translation of 36 units is 18 µm along x
    assert tiles[2].position_um == (0.0, 0.0, 18.0)


def test_zarr_errors(tmp_path: Path) -> None:
    xml = write_zarr_project(tmp_path, "3.0")
    text = xml.read_text()
    bad = tmp_path / "bad.xml"
    bad.write_text(text.replace('indicies="1 0"', 'indicies="5 0"'))
    with pytest.raises(SourceError, match="outside"):
        read_tiles(str(bad))
    bad.write_text(text.replace('path="tile1.zarr" indicies="[]"', 'path="../../x.zarr" indicies="[]"'))
    with pytest.raises(MetadataError, match="leaves the zarr container"):
        read_tiles(str(bad))
    bad.write_text(text.replace('path="tile1.zarr"', 'path="nothing.zarr"'))
    with pytest.raises(SourceError, match="no zarr array"):
        read_tiles(str(bad))
    bad.write_text(text.replace('<zgroup setup="2" tp="0" path="tile1.zarr" indicies="[]" />', ""))
    with pytest.raises(MetadataError, match="no <zgroup>"):
        read_tiles(str(bad))
    zarray = tmp_path / "data.ome.zarr" / "tile1.zarr" / "0" / ".zarray"
    meta = json.loads(zarray.read_text())
    for broken in ({**meta, "shape": ["a", 2, 3]}, {**meta, "dtype": "<q9"}, {**meta, "shape": [0, 24, 40]}):
        zarray.write_text(json.dumps(broken))
        with pytest.raises(SourceError, match=r"tile1\.zarr"):
            read_tiles(str(xml))


def write_n5_block(path: Path, block: np.ndarray, compression: str) -> None:
    """One N5 block per the specification: big-endian header (mode, ndim, dims x,y,z), data."""
    z, y, x = block.shape
    header = struct.pack(">HH", 0, 3) + struct.pack(">III", x, y, z)
    raw = block.astype(block.dtype.newbyteorder(">")).tobytes()  # C order (z,y,x) = N5's x-fastest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + (gzip.compress(raw) if compression == "gzip" else raw))


def write_n5_project(tmp_path: Path, compression: str = "gzip") -> tuple[Path, list[np.ndarray]]:
    """A bdv.n5 project (BDV N5 format.md layout) written by hand, 2 setups, odd edge blocks."""
    n5 = tmp_path / "dataset.n5"
    n5.mkdir()
    (n5 / "attributes.json").write_text(json.dumps({"n5": "2.0.0"}))
    arrays = []
    bz, by, bx = 2, 8, 16
    for s in (0, 1):
        data = np.random.default_rng(10 + s).integers(0, 65535, (3, 21, 37), dtype=np.uint16)
        arrays.append(data)
        setup = n5 / f"setup{s}"
        setup.mkdir()
        (setup / "attributes.json").write_text(
            json.dumps({"downsamplingFactors": [[1, 1, 1]], "dataType": "uint16"})
        )
        ds = setup / "timepoint0" / "s0"
        ds.mkdir(parents=True)
        attrs = {
            "dimensions": [37, 21, 3],
            "blockSize": [bx, by, bz],
            "dataType": "uint16",
            "compression": {"type": "gzip", "level": -1} if compression == "gzip" else {"type": "raw"},
        }
        (ds / "attributes.json").write_text(json.dumps(attrs))
        for k in range(0, 3, bz):
            for j in range(0, 21, by):
                for i in range(0, 37, bx):
                    write_n5_block(
                        ds / str(i // bx) / str(j // by) / str(k // bz),
                        data[k : k + bz, j : j + by, i : i + bx],
                        compression,
                    )
    text = ZARR_XML.format(
        loader='<ImageLoader format="bdv.n5" version="1.1"><n5 type="relative">dataset.n5</n5></ImageLoader>'
    )
    # two setups only
    start = text.index("<ViewSetup><id>2</id>")
    text = text[:start] + text[text.index("</ViewSetup>", start) + len("</ViewSetup>") :]
    start = text.index('<ViewRegistration timepoint="0" setup="2">')
    text = text[:start] + text[text.index("</ViewRegistration>", start) + len("</ViewRegistration>") :]
    xml = tmp_path / "n5project.xml"
    xml.write_text(text, encoding="utf-8")
    return xml, arrays


@pytest.mark.parametrize("compression", ["gzip", "raw"])
def test_n5_loader(tmp_path: Path, compression: str) -> None:
    xml, arrays = write_n5_project(tmp_path, compression)
    tiles = read_tiles(str(xml))
    assert len(tiles) == 2
    for t, data in zip(tiles, arrays, strict=True):
        assert t.shape == (3, 21, 37)
        np.testing.assert_array_equal(t.read(), data)
        region = (slice(1, 3), slice(5, 19), slice(7, 36))
        np.testing.assert_array_equal(t.read(region), data[region])


def test_h5_problems(tmp_path: Path) -> None:
    npy2bdv = pytest.importorskip("npy2bdv")
    w = npy2bdv.BdvWriter(str(tmp_path / "ds.h5"), overwrite=True)
    w.append_view(np.ones((2, 8, 8), np.uint16))
    w.write_xml()
    w.close()
    xml = tmp_path / "ds.xml"
    (tmp_path / "ds.h5").rename(tmp_path / "moved.h5")
    with pytest.raises(SourceError, match="not found"):
        read_tiles(str(xml))
    # an external link inside the HDF5 file is not followed
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with h5py.File(outside / "target.h5", "w") as f:
        f["cells"] = np.zeros((2, 8, 8), np.int16)
    with h5py.File(tmp_path / "ds.h5", "w") as f:
        f.create_group("s00")
        f["t00000/s00/0/cells"] = h5py.ExternalLink(str(outside / "target.h5"), "cells")
    with pytest.raises(SourceError, match="external link"):
        read_tiles(str(xml))
    (tmp_path / "ds.h5").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(SourceError):
        read_tiles(str(xml))


def test_h5_partitions_are_read_from_the_partition_files(tmp_path: Path) -> None:
    """A partitioned dataset (BDV's WriteSequenceToHdf5): the master holds no cells of its own."""
    npy2bdv = pytest.importorskip("npy2bdv")
    data = [np.full((2, 8, 8), 1000 * (i + 1), np.uint16) for i in range(2)]
    w = npy2bdv.BdvWriter(str(tmp_path / "ds.h5"), ntiles=2, overwrite=True)
    for i, d in enumerate(data):
        w.append_view(d, tile=i)
    w.write_xml()
    w.close()
    with h5py.File(tmp_path / "ds.h5", "r+") as master:
        for i in range(2):
            with h5py.File(tmp_path / f"ds-{i:02d}.h5", "w") as part:
                part[f"t00000/s{i:02d}/0/cells"] = master[f"t00000/s{i:02d}/0/cells"][()]
            del master[f"t00000/s{i:02d}/0/cells"]
    xml = tmp_path / "ds.xml"
    text = xml.read_text()
    parts = "".join(
        f'<partition><path type="relative">ds-{i:02d}.h5</path><timepoints>0</timepoints><setups>{i}</setups>'
        "</partition>"
        for i in range(2)
    )
    xml.write_text(text.replace("</hdf5>", "</hdf5>" + parts, 1))
    tiles = read_tiles(str(xml))
    for t, d in zip(tiles, data, strict=True):
        np.testing.assert_array_equal(t.read(), d)
    remapped = parts.replace("<setups>1</setups>", "<setups>1</setups><setupsMapped>0</setupsMapped>")
    xml.write_text(text.replace("</hdf5>", "</hdf5>" + remapped, 1))
    with pytest.raises(MetadataError, match="remapped"):
        read_tiles(str(xml))


@needs_samples
def test_unsupported_loader_and_sniffing(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="not supported"):
        read_tiles(str(EXAMPLES / "multiview_tiff_filemap2_rotations.xml"))
    assert guess_reader(str(KIDNEY / "kidney.xml")).name == "bdv"
    other = tmp_path / "other.xml"
    other.write_text('<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"/>')
    assert get_reader("bdv").sniff(str(other)) is False


def test_allow_absolute_paths_reaches_the_reader(tmp_path: Path) -> None:
    xml = write_zarr_project(tmp_path / "data", "1.0")
    project = tmp_path / "project"
    project.mkdir()
    moved = project / "project.xml"
    moved.write_text(
        xml.read_text().replace(
            'type="relative">data.ome.zarr', f'type="absolute">{xml.parent}/data.ome.zarr'
        )
    )
    with pytest.raises(MetadataError, match="allow-absolute-paths"):
        read_tiles(str(moved))
    tiles = read_tiles(str(moved), options=ReaderOptions(allow_absolute_paths=True))
    np.testing.assert_array_equal(tiles[0].read(), _pixels(0))


# ---------------------------------------------------------------------------------------------
# conformance


@needs_samples
class TestBdvH5Conformance(ReaderConformance):
    reader_name = "bdv"
    expected_tiles = 3

    def make_input(self, tmp_path: Path) -> str:
        d = tmp_path / "kidney"
        if not d.is_dir():
            d.mkdir()
            _copy_kidney_example(d)
        return str(d / "kidney.xml")

    def make_negative(self, tmp_path: Path) -> str:
        p = tmp_path / "notes.xml"
        p.write_text('<?xml version="1.0"?><notes><SpimDatum/></notes>')
        return str(p)


class TestBdvZarrConformance(ReaderConformance):
    reader_name = "bdv"
    expected_tiles = 3

    def make_input(self, tmp_path: Path) -> str:
        d = tmp_path / "zarrproject"
        if not d.is_dir():
            d.mkdir()
            write_zarr_project(d, "3.0")
        return str(d / "project.xml")

    def make_negative(self, tmp_path: Path) -> str:
        p = tmp_path / "project.txt"
        p.write_text("<SpimData>")
        return str(p)


class TestBdvN5Conformance(ReaderConformance):
    reader_name = "bdv"
    expected_tiles = 2

    def make_input(self, tmp_path: Path) -> str:
        d = tmp_path / "n5project"
        if not d.is_dir():
            d.mkdir()
            write_n5_project(d)
        return str(d / "n5project.xml")

    def make_negative(self, tmp_path: Path) -> str:
        p = tmp_path / "x.xml"
        p.write_bytes(os.urandom(16))
        return str(p)
