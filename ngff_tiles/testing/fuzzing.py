"""Fuzz targets: feed arbitrary bytes to a reader; anything but a :class:`NgffTilesError` is a crash.

A :class:`FuzzTarget` prepares a scratch folder once (:meth:`FuzzTarget.setup`), then each
:meth:`FuzzTarget.run` writes the fuzzed bytes where the reader expects its file (a tile table,
an NDTiff index, the OME-XML of an OME-TIFF, a TileConfiguration.txt), calls the reader's
``sniff`` and ``tiles`` and, when they succeed, checks what every reader promises (positive
shapes and pixel sizes, finite positions) and reads a small region of the first tile. Used by the
hypothesis tests (``tests/test_fuzz_*.py``) and by ``benchmarks/fuzz.py`` (atheris or a built-in
mutator, for long runs).

Further targets (e.g. the PZF decoder, BigDataViewer XML) register with :func:`register`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ngff_tiles.errors import NgffTilesError
from ngff_tiles.options import ReaderOptions
from ngff_tiles.tiles import Tile

if TYPE_CHECKING:
    from ngff_tiles.readers import Reader

__all__ = ["TARGETS", "Crash", "FuzzTarget", "check_tiles", "mutate", "register", "sample_data_dir"]


class Crash(AssertionError):
    """A reader broke a promise on a fuzzed input (the fuzzed exception is its ``__cause__``)."""


@dataclass
class FuzzTarget:
    """One fuzzed parser.

    Attributes
    ----------
    name
        Registry name (``benchmarks/fuzz.py --target NAME``).
    description
        One line.
    prepare
        ``prepare(folder) -> state``: writes what every run needs (tiles, a dataset copy).
    feed
        ``feed(state, data) -> tiles``: writes ``data`` where the reader reads it and reads it.
    seeds
        ``seeds() -> [bytes]``: valid inputs to start mutating from (none where sample data
        they come from is absent).
    """

    name: str
    description: str
    prepare: Callable[[Path], Any]
    feed: Callable[[Any, bytes], list[Tile]]
    seeds: Callable[[], list[bytes]]
    _state: Any = field(default=None, repr=False)
    _folder: Path | None = field(default=None, repr=False)

    def setup(self, folder: str | os.PathLike[str] | None = None) -> None:
        """Prepare the scratch folder (a new temporary one by default); idempotent."""
        if self._folder is not None:
            return
        base = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix=f"fuzz-{self.name}-"))
        base.mkdir(parents=True, exist_ok=True)
        self._state = self.prepare(base)
        self._folder = base

    def teardown(self) -> None:
        """Remove the scratch folder."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
        self._folder = None
        self._state = None

    def seed_inputs(self) -> list[bytes]:
        """The seed corpus."""
        return self.seeds()

    def run(self, data: bytes) -> bool:
        """Feed ``data``; True if the reader accepted it, False if it raised a NgffTilesError.

        Raises
        ------
        Crash
            For any other exception, or accepted tiles that break the readers' promises.
        """
        self.setup()
        try:
            tiles = self.feed(self._state, data)
        except NgffTilesError as exc:
            _refuse_memory_errors(self.name, exc)
            return False
        except RecursionError as exc:  # before Exception: a crash all the same, said plainly
            raise Crash(f"{self.name}: RecursionError: {exc}") from exc
        except Exception as exc:
            raise Crash(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        try:
            check_tiles(tiles)
        except NgffTilesError as exc:
            _refuse_memory_errors(self.name, exc)
            return False
        return True


def _refuse_memory_errors(name: str, exc: BaseException) -> None:
    """A NgffTilesError that wraps a MemoryError still means something tried to allocate a lie."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, MemoryError):
            raise Crash(f"{name}: an allocation failed (lying size?): {exc}") from exc
        cause = cause.__cause__ or cause.__context__


def check_tiles(tiles: list[Tile]) -> None:
    """Check what every reader promises of its tiles; read one small region of the first.

    Raises
    ------
    Crash
        On a broken promise or an exception other than NgffTilesError while reading pixels.
    """
    for t in tiles:
        if min(t.shape) < 1:
            raise Crash(f"tile {t.tile_id}: shape {t.shape}")
        if not all(math.isfinite(v) for v in t.position_um):
            raise Crash(f"tile {t.tile_id}: position {t.position_um}")
        if not all(math.isfinite(v) and v > 0 for v in t.pixel_size_um):
            raise Crash(f"tile {t.tile_id}: pixel size {t.pixel_size_um}")
    if tiles:
        t = tiles[0]
        region = (slice(0, 1), slice(0, min(2, t.shape[1])), slice(0, min(2, t.shape[2])))
        try:
            block = t.source.read(region)
        except NgffTilesError:
            raise
        except Exception as exc:
            raise Crash(f"tile 0: reading {region}: {type(exc).__name__}: {exc}") from exc
        if block.shape != (1, region[1].stop, region[2].stop):
            raise Crash(f"tile 0: read {block.shape} for region {region}")


TARGETS: dict[str, FuzzTarget] = {}
"""Every fuzz target, by name."""


def register(target: FuzzTarget) -> FuzzTarget:
    """Add a target to :data:`TARGETS`."""
    TARGETS[target.name] = target
    return target


def sample_data_dir() -> Path:
    """``shared/sample-data`` beside the checkout (``NGFF_TILES_SAMPLE_DATA`` overrides)."""
    env = os.environ.get("NGFF_TILES_SAMPLE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "sample-data"


def _read(reader: Reader, path: Path) -> list[Tile]:
    """What a conversion does with ``path``: the reader's ``sniff``, then its ``tiles``."""
    reader.sniff(str(path))
    return reader.tiles(str(path), ReaderOptions())


def _tiny_tiffs(folder: Path) -> None:
    import tifffile

    rng = np.random.default_rng(0)
    tifffile.imwrite(folder / "a.tif", rng.integers(0, 99, (24, 32)).astype("uint16"), metadata=None)
    tifffile.imwrite(folder / "b.tif", rng.integers(0, 99, (24, 32)).astype("uint16"), metadata=None)
    tifffile.imwrite(folder / "c.tif", rng.integers(0, 99, (24, 32)).astype("uint8"), metadata=None)
    tifffile.imwrite(
        folder / "z.tif",
        rng.integers(0, 99, (3, 24, 32)).astype("uint16"),
        metadata=None,
        photometric="minisblack",
    )


# --------------------------------------------------------------------------------------------
# tile table (CSV / JSON)


def _table_prepare(folder: Path) -> Path:
    _tiny_tiffs(folder)
    return folder


def _table_feed(folder: Path, data: bytes) -> list[Tile]:
    from ngff_tiles.readers.table import TileTableReader

    name = "tiles.json" if data[:1] in (b"[", b"{", b" ") else "tiles.csv"
    for other in ("tiles.json", "tiles.csv"):
        (folder / other).unlink(missing_ok=True)
    path = folder / name
    path.write_bytes(data)
    return _read(TileTableReader(), path)


def _table_seeds() -> list[bytes]:
    rows = [
        {"path": "a.tif", "x_um": 0.0, "y_um": 0.0, "pixel_size_um": 0.5, "channel": "DAPI"},
        {"path": "b.tif", "x_um": 12.0, "y_um": 0.0, "pixel_size_um": 0.5, "channel": "DAPI", "time": 0},
        {"path": "z.tif", "x_um": 0.0, "y_um": 10.0, "z_um": 2, "pixel_size_um": 0.5, "pixel_size_z_um": 1},
    ]
    csv = (
        "path,x_um,y_um,z_um,channel,time,well,field,pixel_size_um,name\n"
        "a.tif,0,0,0,DAPI,0,A1,0,0.5,first\n"
        "b.tif,12.5,0,0,DAPI,0,A1,1,0.5,second\n"
    )
    return [
        csv.encode(),
        json.dumps(rows).encode(),
        json.dumps({"pixel_size_um": 0.5, "tiles": rows[:2]}).encode(),
        b"path,x_um,y_um\na.tif,0,0\nb.tif,1e3,-4\n",
    ]


register(
    FuzzTarget(
        "tile-table", "CSV/JSON tile table parser and checks", _table_prepare, _table_feed, _table_seeds
    )
)


# --------------------------------------------------------------------------------------------
# TileConfiguration.txt


def _tc_feed(folder: Path, data: bytes) -> list[Tile]:
    from ngff_tiles.readers.tiff import TileConfigReader

    (folder / "TileConfiguration.txt").write_bytes(data)
    return _read(TileConfigReader(), folder)


def _tc_seeds() -> list[bytes]:
    return [
        b"# Define the number of dimensions we are working on\ndim = 2\n\n"
        b"# Define the image coordinates\na.tif; ; (0.0, 0.0)\nb.tif; ; (20.5, 3.25)\n",
        b"dim = 3\nz.tif; ; (0.0, 0.0, 0.0)\nz.tif; ; (30.0, 0.0, 1.5)\n",
        b"dim=2\nmultiseries = true\na.tif; 0; (0, 0)\n",
    ]


register(FuzzTarget("tileconfig", "Fiji TileConfiguration.txt parser", _table_prepare, _tc_feed, _tc_seeds))


# --------------------------------------------------------------------------------------------
# NDTiff index (in a copy of a real dataset)


def _ndtiff_prepare(folder: Path) -> Path:
    src = sample_data_dir() / "ndtiff" / "labeled_positions_1"
    if not src.is_dir():
        raise FileNotFoundError(f"the ndtiff-index target needs the sample {src}")
    ds = folder / "ds"
    shutil.copytree(src, ds)
    for p in [ds, *ds.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return ds


def _ndtiff_feed(ds: Path, data: bytes) -> list[Tile]:
    from ngff_tiles.readers.ndtiff import NDTiffReader

    (ds / "NDTiff.index").write_bytes(data)
    return _read(NDTiffReader(), ds)


def _ndtiff_seeds() -> list[bytes]:
    index = sample_data_dir() / "ndtiff" / "labeled_positions_1" / "NDTiff.index"
    if not index.is_file():
        return []
    real = index.read_bytes()
    seeds = [real, real[: len(real) // 2]]
    # one entry rebuilt field by field (axes JSON, file name, 8 uint32), to splice from
    axes = b'{"position":"Pos0"}'
    name = b"labeled_positions_NDTiffStack.tif"
    fields = struct.pack("<8I", 1000, 16, 16, 1, 0, 900, 10, 0)
    seeds.append(struct.pack("<I", len(axes)) + axes + struct.pack("<I", len(name)) + name + fields)
    return seeds


register(
    FuzzTarget(
        "ndtiff-index",
        "NDTiff.index parser (ndtiff's) and our checks, in a copy of a real dataset",
        _ndtiff_prepare,
        _ndtiff_feed,
        _ndtiff_seeds,
    )
)


# --------------------------------------------------------------------------------------------
# OME-XML (the ImageDescription of an OME-TIFF)

OME_TEMPLATE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
    'UUID="urn:uuid:6a1a5b0c-0000-4000-8000-000000000001">'
    '<Image ID="Image:0" Name="tile"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" '
    'SizeX="32" SizeY="24" SizeZ="2" SizeC="1" SizeT="1" PhysicalSizeX="0.5" PhysicalSizeY="0.5" '
    'PhysicalSizeZ="1.5" PhysicalSizeXUnit="µm">'
    '<Channel ID="Channel:0:0" Name="DAPI" SamplesPerPixel="1"/>'
    '<TiffData IFD="0" PlaneCount="2"/>'
    '<Plane TheZ="0" TheC="0" TheT="0" PositionX="10" PositionY="-20.5" PositionZ="3" '
    'PositionXUnit="µm" PositionYUnit="µm" PositionZUnit="µm"/>'
    '<Plane TheZ="1" TheC="0" TheT="0" PositionX="10" PositionY="-20.5" PositionZ="4.5"/>'
    "</Pixels></Image></OME>"
)


def _ome_prepare(folder: Path) -> Path:
    return folder


def _ome_feed(folder: Path, data: bytes) -> list[Tile]:
    import tifffile

    from ngff_tiles.readers.tiff import OmeTiffReader

    path = folder / "t.ome.tif"
    planes = np.arange(2 * 24 * 32, dtype="uint16").reshape(2, 24, 32)
    try:
        with tifffile.TiffWriter(path) as tw:
            for k in range(2):
                tw.write(planes[k], description=data if k == 0 else None, metadata=None)
    except Exception:  # tifffile refuses to write some descriptions: not the reader's business
        return []
    return _read(OmeTiffReader(), path)


def _ome_seeds() -> list[bytes]:
    two_images = (
        OME_TEMPLATE.replace(
            "</Image>",
            '</Image><Image ID="Image:1"><Pixels ID="Pixels:1" DimensionOrder="XYCZT" '
            'Type="uint16" SizeX="32" SizeY="24" SizeZ="1" SizeC="1" SizeT="1" PhysicalSizeX="0.5" '
            'PhysicalSizeY="0.5"><TiffData IFD="1"/><Plane TheZ="0" TheC="0" TheT="0" PositionX="30" '
            'PositionY="-20.5" PositionXUnit="µm" PositionYUnit="µm"/></Pixels></Image>',
        )
        .replace('SizeZ="2"', 'SizeZ="1"')
        .replace('PlaneCount="2"', 'PlaneCount="1"')
    )
    return [OME_TEMPLATE.encode(), two_images.encode()]


register(
    FuzzTarget(
        "ome-xml", "OME-XML of an OME-TIFF (parser, planes, positions)", _ome_prepare, _ome_feed, _ome_seeds
    )
)


# --------------------------------------------------------------------------------------------
# pzf: the PYME frame decoder (header checks, Huffman stream, quantization)


def _pzf_prepare(folder: Path) -> Path:
    from ngff_tiles.readers.pyme.pzf import decode_frame
    from ngff_tiles.testing.bad_pzf import valid_frames

    decode_frame(valid_frames()["huffman"])  # compile the decoder before the clock matters
    return folder


def _pzf_feed(folder: Path, data: bytes) -> list[Tile]:
    from ngff_tiles.readers.pyme.pzf import decode_frame, read_header

    name = str(folder / "frame00000.pzf")
    header = read_header(data, name)
    img = decode_frame(data, name)
    if img.shape != header.shape_zyx:
        raise Crash(f"decoded {img.shape}, header says {header.shape_zyx}")
    return []


def _pzf_seeds() -> list[bytes]:
    from ngff_tiles.testing.bad_pzf import valid_frames

    seeds = list(valid_frames().values())
    frames = sample_data_dir() / "pyme" / "pzf-frames"
    if frames.is_dir():
        seeds += [p.read_bytes() for p in sorted(frames.glob("*.pzf"))]
    return seeds


register(
    FuzzTarget(
        "pzf", "PYME PZF frame decoder (headers, Huffman, quantization)", _pzf_prepare, _pzf_feed, _pzf_seeds
    )
)


# --------------------------------------------------------------------------------------------
# bdv-xml: a SpimData XML beside a real BDV-H5 file, read by the bdv reader


def _bdv_prepare(folder: Path) -> Path:
    src = sample_data_dir() / "bdv-h5" / "npy2bdv_kidney" / "kidney.h5"
    if src.is_file():
        shutil.copyfile(src, folder / "kidney.h5")
    return folder


def _bdv_feed(folder: Path, data: bytes) -> list[Tile]:
    from ngff_tiles.readers import read_tiles

    xml = folder / "project.xml"
    xml.write_bytes(data)
    return read_tiles(str(xml), reader="bdv")


def _bdv_seeds() -> list[bytes]:
    seeds = []
    for xml in (sample_data_dir() / "bdv-h5" / "npy2bdv_kidney" / "kidney.xml",):
        if xml.is_file():
            seeds.append(xml.read_bytes())
    shared = sample_data_dir().parent / "bdv-xml-examples"
    seeds += [p.read_bytes() for p in sorted(shared.glob("*.xml"))]
    return seeds


register(
    FuzzTarget(
        "bdv-xml", "BigDataViewer SpimData XML read by the bdv reader", _bdv_prepare, _bdv_feed, _bdv_seeds
    )
)


# --------------------------------------------------------------------------------------------
# a small mutator (for runs without atheris)

_INTERESTING = (
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\xf0\xff\xff\x7f",
    b"NaN",
    b"-1",
    b"1e308",
    b"Infinity",
    b"..",
    b"/",
    b'"',
    b"<!ENTITY",
    b"&a;",
    b"[[[[[[[[",
    b",",
    b";",
    b"\n",
)


def mutate(data: bytes, rng: np.random.Generator, others: list[bytes] | None = None) -> bytes:
    """Return ``data`` with 1-4 random edits.

    The edits: bit flips, byte sets, insertions of interesting tokens, deletions, truncation,
    duplication of a slice, 32-bit boundary values, or a splice with one of ``others``.
    """
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        op = int(rng.integers(0, 8))
        n = len(buf)
        at = int(rng.integers(0, n + 1))
        if op == 0 and n:
            i = min(at, n - 1)
            buf[i] ^= 1 << int(rng.integers(0, 8))
        elif op == 1 and n:
            buf[min(at, n - 1)] = int(rng.integers(0, 256))
        elif op == 2:
            buf[at:at] = _INTERESTING[int(rng.integers(0, len(_INTERESTING)))]
        elif op == 3 and n:
            del buf[at : at + int(rng.integers(1, 17))]
        elif op == 4:
            del buf[at:]
        elif op == 5 and n:
            stop = min(n, at + int(rng.integers(1, 65)))
            buf[at:at] = buf[at:stop]
        elif op == 6 and n >= 4:
            i = min(at, n - 4)
            buf[i : i + 4] = struct.pack("<I", int(rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, n, n + 1])))
        elif op == 7 and others:
            other = others[int(rng.integers(0, len(others)))]
            cut = int(rng.integers(0, len(other) + 1))
            buf = buf[:at] + bytearray(other[cut:])
    return bytes(buf)


# --------------------------------------------------------------------------------------------
# ND2 (a whole file: cluster.nd2 mutated)


def _nd2_prepare(folder: Path) -> Path:
    return folder / "f.nd2"


def _nd2_feed(path: Path, data: bytes) -> list[Tile]:
    from ngff_tiles.readers.nd2 import ND2Reader

    path.write_bytes(data)
    return _read(ND2Reader(), path)


def _nd2_seeds() -> list[bytes]:
    src = sample_data_dir() / "nd2" / "cluster.nd2"
    return [src.read_bytes()] if src.is_file() else []


register(
    FuzzTarget("nd2", "a whole ND2 file (nd2's parser and our checks)", _nd2_prepare, _nd2_feed, _nd2_seeds)
)
