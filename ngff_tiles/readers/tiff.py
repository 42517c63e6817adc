"""TIFF-family readers: OME-TIFF, Micro-Manager MMStack OME-TIFF and Fiji TileConfiguration folders.

Conventions shared by every reader here (see ``Tile``):

- A stage position is the physical coordinate of pixel (0, 0) of the frame, i.e. the tile's corner
  (OME/Bio-Formats semantics: ``PositionX`` is the position of the image origin). The readers
  therefore copy the file's numbers to ``Tile.position_um`` as (z, y, x), converted to µm.
- One tile is one (z, y, x) stack of one channel at one time point of one position; channels and
  time points are separate tiles. Tile ids run from 0 in the order position, time, channel.
- Pixels are read lazily. Uncompressed, contiguous single-sample planes become a
  :class:`~ngff_tiles.readers._base.RawFileSource` (region reads by ``pread``); everything else a
  :class:`TiffPageSource`, which decodes whole pages with tifffile and slices.

``tifffile`` is imported only when tiles or pixels are read; sniffing looks at names and magic bytes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import struct
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from ngff_tiles.errors import MetadataError, NgffTilesError, SourceError
from ngff_tiles.options import ReaderOptions
from ngff_tiles.readers._base import FRAME_CACHE, BaseReader, RawFileSource, file_identity
from ngff_tiles.tiles import FrameSource, Region, Tile, Well

__all__ = [
    "MMStackReader",
    "OmeTiffReader",
    "TiffImage",
    "TiffPageSource",
    "TiffStack",
    "TileConfigReader",
    "describe_tiff",
    "is_tiff_file",
    "length_to_um",
]

log = logging.getLogger(__name__)

TIFF_MAGICS: tuple[bytes, ...] = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
"""First four bytes of classic and BigTIFF files, little and big endian."""

_MM_INDEX_MAP_HEADER = 54773648  # Micro-Manager multipage TIFF: bytes 8..12 (tifffile, MM docs)
_MMSTACK_NAME = re.compile(r"^(?P<prefix>.+?)_MMStack(?:_.*)?\.ome\.tiff?$", re.IGNORECASE)
_TILECONFIG_NAMES = ("TileConfiguration.registered.txt", "TileConfiguration.txt")

# µm per unit, for the OME ``UnitsLength`` enumeration and common spellings.
_UM_PER_UNIT: dict[str, float] = {
    "Ym": 1e30,
    "Zm": 1e27,
    "Em": 1e24,
    "Pm": 1e21,
    "Tm": 1e18,
    "Gm": 1e15,
    "Mm": 1e12,
    "km": 1e9,
    "hm": 1e8,
    "dam": 1e7,
    "m": 1e6,
    "dm": 1e5,
    "cm": 1e4,
    "mm": 1e3,
    "µm": 1.0,  # micro sign U+00B5
    "μm": 1.0,  # greek mu U+03BC
    "um": 1.0,
    "nm": 1e-3,
    "pm": 1e-6,
    "fm": 1e-9,
    "am": 1e-12,
    "zm": 1e-15,
    "ym": 1e-18,
    "Å": 1e-4,
    "thou": 25.4,
    "li": 25400.0 / 12,
    "in": 25400.0,
    "ft": 304800.0,
    "yd": 914400.0,
    "mi": 1609344e3,
    "ua": 1.495978707e17,
    "ly": 9.4607304725808e21,
    "pc": 3.0856775814913673e22,
    "pt": 25400.0 / 72,
}
# Case-insensitive spellings that are unambiguous (``Mm`` is a megametre, so ``mm`` is exact only).
_UM_PER_UNIT_LOWER: dict[str, float] = {
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "micrometers": 1.0,
    "micrometres": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "nanometre": 1e-3,
    "millimeter": 1e3,
    "millimetre": 1e3,
    "centimeter": 1e4,
    "centimetre": 1e4,
    "meter": 1e6,
    "metre": 1e6,
    "angstrom": 1e-4,
    "å": 1e-4,
    "inch": 25400.0,
}


def length_to_um(unit: str) -> float | None:
    r"""Return how many µm one ``unit`` is, or ``None`` if ``unit`` is not a known length.

    Accepts the OME ``UnitsLength`` symbols (``m``, ``mm``, ``µm``, ``nm``, ``Å``...) and common
    spellings (``um``, ``micron``, ImageJ's ``\u00B5m``). ``"pixel"`` and ``"reference frame"`` are
    not lengths.
    """
    text = unit.strip()
    if "\\u" in text:
        with contextlib.suppress(UnicodeDecodeError):
            text = text.encode("ascii", "backslashreplace").decode("unicode_escape")
    if text in _UM_PER_UNIT:
        return _UM_PER_UNIT[text]
    return _UM_PER_UNIT_LOWER.get(text.lower())


def _position_to_um(value: float, unit: str, options: ReaderOptions, where: str) -> float:
    factor = length_to_um(unit)
    if factor is None:
        if options.position_unit is None:
            raise MetadataError(
                f"{where}: stage position unit is {unit!r}, not a length; if the numbers are in a "
                f'known unit, say so with ReaderOptions(position_unit="µm") (--position-unit µm)'
            )
        factor = length_to_um(options.position_unit)
        if factor is None:
            raise MetadataError(
                f"Expected a length unit for ReaderOptions.position_unit, got "
                f"{options.position_unit!r} instead"
            )
    return value * factor


def _option_pixel_size(options: ReaderOptions) -> tuple[float | None, float, float] | None:
    """ReaderOptions.pixel_size_um as (z or None, y, x)."""
    given = options.pixel_size_um
    if given is None:
        return None
    values = tuple(float(v) for v in given)
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise MetadataError(f"Expected positive pixel sizes in ReaderOptions.pixel_size_um, got {given!r}")
    if len(values) == 1:
        return (None, values[0], values[0])
    if len(values) == 2:
        return (None, values[0], values[1])
    if len(values) == 3:
        return (values[0], values[1], values[2])
    raise MetadataError(
        f"Expected 1, 2 (y, x) or 3 (z, y, x) numbers in ReaderOptions.pixel_size_um, got {given!r}"
    )


# --------------------------------------------------------------------------------------------
# sniffing helpers (no tifffile)


def _head(path: str | os.PathLike[str], size: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def is_tiff_file(path: str | os.PathLike[str]) -> bool:
    """Return True if ``path`` is a file starting with a TIFF or BigTIFF magic number."""
    return os.path.isfile(path) and _head(path, 4) in TIFF_MAGICS


def _is_ome_name(name: str) -> bool:
    return name.lower().endswith((".ome.tif", ".ome.tiff"))


def _has_mm_header(path: str | os.PathLike[str]) -> bool:
    head = _head(path, 12)
    if len(head) < 12 or head[:4] not in TIFF_MAGICS[:2]:
        return False
    order = "<" if head[:2] == b"II" else ">"
    return bool(struct.unpack(order + "I", head[8:12])[0] == _MM_INDEX_MAP_HEADER)


def _has_tileconfig(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TILECONFIG_NAMES)


# --------------------------------------------------------------------------------------------
# tifffile access, with every failure turned into a SourceError naming the file

_TIFF_FAILURES: tuple[type[Exception], ...] = (
    struct.error,
    ValueError,  # includes tifffile.TiffFileError
    OSError,
    IndexError,
    KeyError,
    EOFError,
    TypeError,
    ZeroDivisionError,
    RuntimeError,
    MemoryError,
    OverflowError,
)


class _TifffileLog(logging.Handler):
    """Collects what tifffile logs in this thread (it logs, rather than raises, on many corruptions)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread:
            self.records.append(record)


@contextlib.contextmanager
def _reading(path: str, what: str = "cannot read TIFF") -> Iterator[None]:
    """Turn errors of tifffile (and of a truncated file) into a SourceError naming ``path``.

    Errors tifffile only logs (an unreadable tag, an IFD offset past the end of the file) count as
    failures too; its warnings are passed on to this module's logger.
    """
    capture = _TifffileLog()
    tifffile_log = logging.getLogger("tifffile")
    tifffile_log.addHandler(capture)
    try:
        yield
    except NgffTilesError:
        raise
    except _TIFF_FAILURES as exc:
        raise SourceError(f"{path}: {what}: {type(exc).__name__}: {exc}") from exc
    finally:
        tifffile_log.removeHandler(capture)
    errors = [r.getMessage() for r in capture.records if r.levelno >= logging.ERROR]
    if errors:
        raise SourceError(f"{path}: {what}: corrupt or truncated TIFF: {errors[0]}")
    for record in capture.records:
        log.warning("%s: tifffile: %s", path, record.getMessage())


def _page_at(tif: Any, index: int, offset: int | None) -> Any:
    """Return page ``index`` of an open TiffFile; seek straight to its IFD when its offset is known."""
    import tifffile

    if offset is not None and offset > 0:
        tif.filehandle.seek(offset)
        return tifffile.TiffPage(tif, index=index)
    return tif.pages[index]


class _OpenTiffs:
    """A few TiffFiles kept open while ``tiles()`` reads metadata; all closed on exit."""

    def __init__(self, max_open: int = 4) -> None:
        self._open: OrderedDict[str, Any] = OrderedDict()
        self._max_open = max_open

    def __enter__(self) -> _OpenTiffs:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        while self._open:
            _, tif = self._open.popitem()
            tif.close()

    def get(self, path: str) -> Any:
        if path in self._open:
            self._open.move_to_end(path)
            return self._open[path]
        if not os.path.isfile(path):
            raise SourceError(f"{path}: file not found")
        import tifffile

        tif: Any = None
        try:
            with _reading(path, "not a readable TIFF"):
                tif = tifffile.TiffFile(path)
        except BaseException:
            if tif is not None:
                tif.close()
            raise
        self._open[path] = tif
        while len(self._open) > self._max_open:
            _, old = self._open.popitem(last=False)
            old.close()
        return tif

    def page(self, path: str, index: int) -> Any:
        tif = self.get(path)
        with _reading(path, f"cannot read IFD {index}"):
            npages = len(tif.pages)
            if index >= npages:
                raise SourceError(f"{path}: expected at least {index + 1} IFDs, found {npages} (truncated?)")
            return tif.pages[index]

    def description(self, path: str) -> str:
        tif = self.get(path)
        with _reading(path):
            desc = tif.pages.first.description
        return str(desc or "")


# --------------------------------------------------------------------------------------------
# pixel sources


def _plane_from_page(page: Any, sample: int) -> np.ndarray:
    data = page.asarray()
    shaped = page.keyframe.shaped  # (separate samples, depth, length, width, contig samples)
    data = np.asarray(data).reshape(shaped)
    if shaped[0] > 1:
        return data[sample, 0, :, :, 0]
    return data[0, 0, :, :, sample]


class TiffPageSource(FrameSource):
    """A (z, y, x) stack of TIFF pages decoded by tifffile, one page per z plane.

    Used for compressed, tiled, predicted or multi-sample pages. Whole pages are decoded and the
    region sliced, hence ``region_reads = False``. Pickles as paths and page indices only; each
    read opens and closes the file(s).

    Parameters
    ----------
    planes
        ``(file, page index, IFD offset or None)`` for each z plane.
    shape
        (y, x) plane shape.
    dtype
        Pixel type (returned in native byte order).
    sample
        Sample (e.g. RGB component) of multi-sample pages.
    """

    region_reads = False

    def __init__(
        self,
        planes: Sequence[tuple[str, int, int | None]],
        shape: tuple[int, int],
        dtype: Any,
        sample: int = 0,
    ) -> None:
        if not planes:
            raise ValueError("Expected at least one plane, got none")
        self._planes = [(os.fspath(f), int(i), None if o is None else int(o)) for f, i, o in planes]
        self._plane = (int(shape[0]), int(shape[1]))
        self._dtype = np.dtype(dtype).newbyteorder("=")
        self._sample = int(sample)

    @property
    def path(self) -> str:
        """The file holding the first plane."""
        return self._planes[0][0]

    def shape_hint(self) -> tuple[int, int, int]:
        """The (z, y, x) shape of the stack."""
        return (len(self._planes), *self._plane)

    def _decode(self, z: int) -> np.ndarray:
        import tifffile

        file, index, offset = self._planes[z]
        with _reading(file, f"cannot decode page {index}"), tifffile.TiffFile(file) as tif:
            page = _page_at(tif, index, offset)
            plane = _plane_from_page(page, self._sample)
            if plane.shape != self._plane:
                raise SourceError(f"{file}: page {index}: expected a {self._plane} plane, got {plane.shape}")
            return np.ascontiguousarray(plane, dtype=self._dtype)

    def _read(self, region: Region) -> np.ndarray:
        zs, ys, xs = region
        out = np.empty((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), dtype=self._dtype)
        for k, z in enumerate(range(zs.start, zs.stop)):
            file, index, offset = self._planes[z]
            try:
                ident = file_identity(file)
            except OSError as exc:
                raise SourceError(f"{file}: cannot open: {exc.strerror}") from None
            key = ("tiff", *ident, index, offset, self._sample)
            plane = FRAME_CACHE.get_or_decode(key, lambda z=z: self._decode(z))  # type: ignore[misc]
            out[k] = plane[ys, xs]
        return out

    def __repr__(self) -> str:
        return f"TiffPageSource({self.path!r}, {len(self._planes)} pages, sample={self._sample})"


def _raw_offset(page: Any) -> int | None:
    """Offset of the pixels of ``page`` if stored raw and contiguous as one single-sample plane."""
    kf = page.keyframe
    dtype = kf.dtype
    if dtype is None or kf.samplesperpixel != 1 or kf.imagedepth != 1:
        return None
    if not kf.is_final or kf.bitspersample != np.dtype(dtype).itemsize * 8:
        return None
    offsets = tuple(page.dataoffsets)
    counts = tuple(page.databytecounts)
    if not offsets or len(offsets) != len(counts):
        return None
    nbytes = int(kf.imagelength) * int(kf.imagewidth) * np.dtype(dtype).itemsize
    for i in range(len(offsets) - 1):
        if counts[i] == 0 or offsets[i] + counts[i] != offsets[i + 1]:
            return None
    if sum(counts) < nbytes:
        return None
    return int(offsets[0])


def _make_source(
    planes: Sequence[tuple[str, int]], sample: int, files: _OpenTiffs, where: str
) -> tuple[FrameSource, np.dtype[Any], tuple[int, int, int]]:
    """Build the source of a stack of pages; checks their shapes and dtypes agree."""
    pages = [files.page(f, i) for f, i in planes]
    plane_shape: tuple[int, int] | None = None
    dtype: np.dtype[Any] | None = None
    byteorder = "<"
    raw_offsets: list[int | None] = []
    ifd_offsets: list[int | None] = []
    for (file, index), page in zip(planes, pages, strict=True):
        with _reading(file, f"cannot read IFD {index}"):
            kf = page.keyframe
            shaped = tuple(int(s) for s in kf.shaped)
            page_dtype = kf.dtype
            byteorder = files.get(file).byteorder
            raw = _raw_offset(page)
            size = int(files.get(file).filehandle.size)
            end = max(
                (int(o) + int(n) for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)),
                default=0,
            )
            if raw is not None:
                end = max(end, raw + shaped[2] * shaped[3] * np.dtype(page_dtype).itemsize)
            if end > size:
                raise SourceError(
                    f"{file}: truncated: IFD {index} has pixel data up to byte {end}, but the file "
                    f"has {size} bytes"
                )
            offset = int(page.offset) if getattr(page, "offset", 0) else None
        if page_dtype is None:
            raise MetadataError(f"{where}: {file}: IFD {index}: unsupported pixel type")
        if shaped[1] != 1:
            raise MetadataError(
                f"{where}: {file}: IFD {index}: volumetric (ImageDepth) pages are not supported"
            )
        if sample >= shaped[0] * shaped[4]:
            raise MetadataError(
                f"{where}: {file}: IFD {index}: expected sample {sample}, page has {shaped[0] * shaped[4]}"
            )
        this_shape = (shaped[2], shaped[3])
        if min(this_shape) < 1:
            raise SourceError(f"{file}: IFD {index}: image is {shaped[3]}×{shaped[2]} pixels")
        this_dtype = np.dtype(page_dtype).newbyteorder("=")
        if plane_shape is None:
            plane_shape, dtype = this_shape, this_dtype
        elif this_shape != plane_shape or this_dtype != dtype:
            raise MetadataError(
                f"{where}: expected every plane of a stack to be {plane_shape} {dtype}, got "
                f"{this_shape} {this_dtype} in {file} IFD {index} instead"
            )
        raw_offsets.append(raw)
        ifd_offsets.append(offset)
    assert plane_shape is not None
    assert dtype is not None
    shape = (len(planes), plane_shape[0], plane_shape[1])
    one_file = len({f for f, _ in planes}) == 1
    if one_file and all(o is not None for o in raw_offsets):
        stored = dtype.newbyteorder("<" if byteorder == "<" else ">") if dtype.itemsize > 1 else dtype
        offsets = [int(o) for o in raw_offsets if o is not None]
        return RawFileSource(planes[0][0], offsets, plane_shape, stored), dtype, shape
    source = TiffPageSource(
        [(f, i, o) for (f, i), o in zip(planes, ifd_offsets, strict=True)], plane_shape, dtype, sample
    )
    return source, dtype, shape


# --------------------------------------------------------------------------------------------
# OME-XML

_MAX_PLANES = 1 << 24
"""More planes than this in one OME image is taken for corrupt (lying) metadata, not a dataset."""

_MIN_PLANE_BYTES = 16
"""Fewer bytes than this per plane in a folder's TIFF files: the plane count is a lie (an IFD
alone takes over 100 bytes)."""


def _tiff_bytes(folder: str) -> int:
    """Total size of the TIFF files in ``folder`` and its subfolders."""
    total = 0
    for base, _, names in os.walk(folder):
        for name in names:
            if name.lower().endswith((".tif", ".tiff", ".btf", ".tf8")):
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(base, name)).st_size
    return total


_PROLOG_ITEM = re.compile(r"\s*(?:<\?.*?\?>|<!--.*?-->)", re.DOTALL)


def _parse_xml(text: str, path: str) -> ET.Element:
    """Parse XML, refusing documents that declare a DOCTYPE or entities."""
    text = text.lstrip("\ufeff")
    pos = 0
    while (m := _PROLOG_ITEM.match(text, pos)) is not None:
        pos = m.end()
    if text[pos:].lstrip().startswith("<!DOCTYPE") or "<!ENTITY" in text:
        raise SourceError(f"{path}: refusing XML with a DOCTYPE or ENTITY declaration")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise SourceError(f"{path}: malformed OME-XML: {exc}") from None


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _kids(element: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in element if _local(c.tag) == name]


def _kid(element: ET.Element, name: str) -> ET.Element | None:
    for c in element:
        if _local(c.tag) == name:
            return c
    return None


def _int_attr(element: ET.Element, name: str, default: int, where: str) -> int:
    value = element.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise MetadataError(f"{where}: expected an integer {name}, got {value!r} instead") from None


def _float_attr(element: ET.Element | None, name: str, where: str) -> float | None:
    if element is None:
        return None
    value = element.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        out = float(value)
    except ValueError:
        raise MetadataError(f"{where}: expected a number for {name}, got {value!r} instead") from None
    if not math.isfinite(out):
        raise MetadataError(f"{where}: expected a finite number for {name}, got {value!r} instead")
    return out


@dataclass
class _OmeImage:
    """One OME ``Image`` with its planes mapped to (file, IFD)."""

    xml_file: str
    index: int
    image_id: str
    name: str
    size_z: int
    size_t: int
    channels: list[str]  # one per tile channel
    samples: int  # samples per pixel (channels per IFD)
    pixel_size: tuple[float | None, float | None, float | None]
    pixel_size_note: str
    planes: dict[tuple[int, int, int], tuple[str, int]]  # (z, plane channel, t) -> (file, ifd)
    position: tuple[float, float, float] | None
    position_note: str  # why position is None: the error to raise where positions are needed
    well: Well | None = None
    field_index: int = 0
    size_yx: tuple[int, int] | None = None  # SizeY, SizeX as the XML states them

    @property
    def where(self) -> str:
        return f"{self.xml_file}: Image {self.image_id!r}"

    @property
    def first_plane(self) -> tuple[str, int]:
        return self.planes[min(self.planes, key=lambda k: (k[2], k[1], k[0]))]


def _physical_size(pixels: ET.Element, axis: str, where: str) -> tuple[float | None, str]:
    value = _float_attr(pixels, f"PhysicalSize{axis}", where)
    if value is None:
        return None, f"PhysicalSize{axis} missing"
    unit = pixels.get(f"PhysicalSize{axis}Unit") or "µm"
    factor = length_to_um(unit)
    if factor is None:
        return None, f"PhysicalSize{axis}Unit {unit!r} is not a length"
    if value <= 0:
        return None, f"PhysicalSize{axis} is {value}"
    return value * factor, ""


def _ome_position(
    image: ET.Element, pixels: ET.Element, where: str, options: ReaderOptions
) -> tuple[tuple[float, float, float] | None, str]:
    """Stage position (z, y, x) in µm of the image origin, or None and why."""
    planes = []
    for plane in _kids(pixels, "Plane"):
        key = (
            _int_attr(plane, "TheT", 0, where),
            _int_attr(plane, "TheC", 0, where),
            _int_attr(plane, "TheZ", 0, where),
        )
        planes.append((key, plane))
    planes.sort(key=lambda kp: kp[0])
    first_z = [p for k, p in planes if k[2] == 0]

    def coord(element: ET.Element | None, attr: str, unit_attr: str) -> float | None:
        value = _float_attr(element, attr, where)
        if value is None or element is None:
            return None
        unit = element.get(unit_attr) or "reference frame"  # the OME schema's default
        return _position_to_um(value, unit, options, f"{where}: {_local(element.tag)}@{attr}")

    def given(element: ET.Element, *attrs: str) -> bool:
        return all((element.get(a) or "").strip() for a in attrs)

    xy_plane = next((p for p in first_z if given(p, "PositionX", "PositionY")), None)
    stage = _kid(image, "StageLabel")
    x: float | None
    y: float | None
    z: float | None = None
    if xy_plane is not None:
        x = coord(xy_plane, "PositionX", "PositionXUnit")
        y = coord(xy_plane, "PositionY", "PositionYUnit")
        z = coord(xy_plane, "PositionZ", "PositionZUnit")
    elif stage is not None and given(stage, "X", "Y"):
        x = coord(stage, "X", "XUnit")
        y = coord(stage, "Y", "YUnit")
    else:
        return None, "no Plane@PositionX/Y and no StageLabel@X/Y"
    if z is None:
        z_plane = next((p for p in first_z if given(p, "PositionZ")), None)
        if z_plane is not None:
            z = coord(z_plane, "PositionZ", "PositionZUnit")
        elif stage is not None and given(stage, "Z"):
            z = coord(stage, "Z", "ZUnit")
    if x is None or y is None:
        return None, "no Plane@PositionX/Y and no StageLabel@X/Y"
    return (z if z is not None else 0.0, y, x), ""


def _plate_index_name(index: int, convention: str) -> str:
    """Name of a 0-based plate row/column: ``letter`` (A, B, ..., AA) or ``number`` (1, 2, ...)."""
    if convention == "letter":
        out = ""
        i = index + 1
        while i > 0:
            i, rem = divmod(i - 1, 26)
            out = chr(65 + rem) + out
        return out
    return str(index + 1)


def _plate_map(root: ET.Element, where: str) -> dict[str, tuple[Well, int]]:
    """Image ID -> (well, field index) from OME ``Plate/Well/WellSample/ImageRef``."""
    found: dict[str, tuple[Well, int]] = {}
    for plate in _kids(root, "Plate"):
        row_conv = (plate.get("RowNamingConvention") or "letter").lower()
        col_conv = (plate.get("ColumnNamingConvention") or "number").lower()
        for well in _kids(plate, "Well"):
            r = _int_attr(well, "Row", 0, where)
            c = _int_attr(well, "Column", 0, where)
            try:
                w = Well(_plate_index_name(r, row_conv), _plate_index_name(c, col_conv))
            except ValueError as exc:
                raise MetadataError(f"{where}: Plate well row {r} column {c}: {exc}") from None
            samples = sorted(_kids(well, "WellSample"), key=lambda s: _int_attr(s, "Index", 0, where))
            for field_index, sample in enumerate(samples):
                ref = _kid(sample, "ImageRef")
                if ref is not None and ref.get("ID"):
                    found[str(ref.get("ID"))] = (w, field_index)
    return found


class _UuidIndex:
    """Lazily maps OME root UUIDs to the OME-TIFF files of a folder."""

    def __init__(self, files: _OpenTiffs) -> None:
        self._files = files
        self._by_dir: dict[str, dict[str, str]] = {}

    def lookup(self, folder: str, uuid: str) -> str | None:
        if folder not in self._by_dir:
            table: dict[str, str] = {}
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.is_file() and _is_ome_name(entry.name):
                    with contextlib.suppress(NgffTilesError):
                        root = _parse_xml(self._files.description(entry.path), entry.path)
                        if root.get("UUID"):
                            table[str(root.get("UUID"))] = entry.path
            self._by_dir[folder] = table
        return self._by_dir[folder].get(uuid)


def _parse_images(
    root: ET.Element, xml_file: str, options: ReaderOptions, uuids: _UuidIndex
) -> list[_OmeImage]:
    folder = os.path.dirname(os.path.abspath(xml_file))
    own_uuid = root.get("UUID")
    wells = _plate_map(root, xml_file)
    images: list[_OmeImage] = []
    held: int | None = None  # bytes of the folder's TIFF files, counted once when first needed
    for index, image in enumerate(_kids(root, "Image")):
        image_id = image.get("ID") or f"Image:{index}"
        where = f"{xml_file}: Image {image_id!r}"
        pixels = _kid(image, "Pixels")
        if pixels is None:
            raise MetadataError(f"{where}: expected a Pixels element, found none")
        order = (pixels.get("DimensionOrder") or "XYZCT").upper()
        if len(order) != 5 or not order.startswith("XY") or sorted(order[2:]) != ["C", "T", "Z"]:
            raise MetadataError(f"{where}: expected a DimensionOrder like XYZCT, got {order!r} instead")
        size = {ax: _int_attr(pixels, f"Size{ax}", 1, where) for ax in "XYZCT"}
        if min(size.values()) < 1:
            raise MetadataError(f"{where}: expected positive SizeX/Y/Z/C/T, got {size}")
        total = size["Z"] * size["C"] * size["T"]
        if total > _MAX_PLANES:
            raise MetadataError(
                f"{where}: SizeZ × SizeC × SizeT = {total} planes; more than {_MAX_PLANES} is not a "
                "plausible OME-TIFF (corrupt metadata?)"
            )
        if total > 4096:
            if held is None:
                held = _tiff_bytes(folder)
            if total * _MIN_PLANE_BYTES > held:
                # every plane needs an IFD: the files cannot hold them (and mapping them would cost
                # time and memory in proportion to the lie)
                raise MetadataError(
                    f"{where}: SizeZ × SizeC × SizeT = {total} planes, but the TIFF files in {folder} "
                    f"hold only {held} bytes (corrupt metadata?)"
                )
        channel_elements = _kids(pixels, "Channel")
        samples = _int_attr(channel_elements[0], "SamplesPerPixel", 1, where) if channel_elements else 1
        if samples < 1 or size["C"] % samples:
            samples = 1
        plane_channels = size["C"] // samples
        names: list[str] = []
        for k in range(size["C"]):
            if samples == 1:
                ch = channel_elements[k] if k < len(channel_elements) else None
                names.append((ch.get("Name") if ch is not None else None) or str(k))
            else:
                ch = channel_elements[k // samples] if k // samples < len(channel_elements) else None
                base = ch.get("Name") if ch is not None else None
                names.append(f"{base}-{k % samples}" if base else str(k))
        if len(set(names)) != len(names):
            names = [f"{n}#{k}" if names.count(n) > 1 else n for k, n in enumerate(names)]

        dims = order[2:]
        dim_size = {"Z": size["Z"], "C": plane_channels, "T": size["T"]}
        nplanes = size["Z"] * plane_channels * size["T"]

        def linear(z: int, c: int, t: int, dims: str = dims, dim_size: dict[str, int] = dim_size) -> int:
            idx = {"Z": z, "C": c, "T": t}
            out = 0
            for ax in reversed(dims):
                out = out * dim_size[ax] + idx[ax]
            return out

        def unlinear(i: int, dims: str = dims, dim_size: dict[str, int] = dim_size) -> tuple[int, int, int]:
            idx = {}
            for ax in dims:
                i, idx[ax] = divmod(i, dim_size[ax])
            return (idx["Z"], idx["C"], idx["T"])

        planes: dict[tuple[int, int, int], tuple[str, int]] = {}
        tiffdata = _kids(pixels, "TiffData")
        if not tiffdata:
            planes = {unlinear(i): (os.path.abspath(xml_file), i) for i in range(nplanes)}
        for td in tiffdata:
            ifd = _int_attr(td, "IFD", 0, where)
            first = linear(
                _int_attr(td, "FirstZ", 0, where),
                _int_attr(td, "FirstC", 0, where),
                _int_attr(td, "FirstT", 0, where),
            )
            default_count = 1 if td.get("IFD") is not None else nplanes - first
            count = _int_attr(td, "PlaneCount", default_count, where)
            uuid = _kid(td, "UUID")
            if uuid is None:
                file = os.path.abspath(xml_file)
            elif uuid.get("FileName"):
                name = str(uuid.get("FileName"))
                if os.path.isabs(name) or ".." in Path(name).parts:
                    raise SourceError(
                        f"{xml_file}: TiffData names file {name!r}, outside the folder {folder}; "
                        "OME-TIFF filesets reference files beside the XML"
                    )
                file = os.path.join(folder, name)
            else:
                text = (uuid.text or "").strip()
                found = os.path.abspath(xml_file) if text and text == own_uuid else uuids.lookup(folder, text)
                if found is None:
                    raise MetadataError(
                        f"{where}: TiffData refers to UUID {text!r} without FileName and no OME-TIFF in "
                        f"{folder} has that UUID"
                    )
                file = found
            for k in range(count):
                if first + k >= nplanes or ifd + k < 0:
                    break
                planes[unlinear(first + k)] = (file, ifd + k)
        if not planes:
            raise MetadataError(f"{where}: no TiffData maps its planes to IFDs")
        ps = [_physical_size(pixels, ax, where) for ax in "ZYX"]
        pixel_size = (ps[0][0], ps[1][0], ps[2][0])
        note = "; ".join(n for _, n in ps if n)
        if pixel_size[0] is None and size["Z"] > 1:
            # Fall back to the spacing of the first two planes' PositionZ.
            zpos = {
                _int_attr(p, "TheZ", 0, where): _float_attr(p, "PositionZ", where)
                for p in _kids(pixels, "Plane")
                if _int_attr(p, "TheC", 0, where) == 0 and _int_attr(p, "TheT", 0, where) == 0
            }
            z0, z1 = zpos.get(0), zpos.get(1)
            if z0 is not None and z1 is not None and z1 != z0:
                unit = next(
                    (p.get("PositionZUnit") for p in _kids(pixels, "Plane") if p.get("PositionZUnit")),
                    None,
                )
                factor = length_to_um(unit) if unit else None
                if factor is not None:
                    pixel_size = (abs(z1 - z0) * factor, pixel_size[1], pixel_size[2])
        try:
            position, why = _ome_position(image, pixels, where, options)
            position_note = f"{where}: no stage position ({why})" if position is None else ""
        except MetadataError as exc:  # e.g. a non-length unit: only an error where positions are used
            position, position_note = None, str(exc)
        stage = _kid(image, "StageLabel")
        name = image.get("Name") or (stage.get("Name") if stage is not None else None) or image_id
        well, field_index = wells.get(image_id, (None, 0))
        images.append(
            _OmeImage(
                xml_file=xml_file,
                index=index,
                image_id=image_id,
                name=str(name),
                size_z=size["Z"],
                size_t=size["T"],
                channels=names,
                samples=samples,
                pixel_size=pixel_size,
                pixel_size_note=note,
                planes=planes,
                position=position,
                position_note=position_note,
                well=well,
                field_index=field_index,
                size_yx=(size["Y"], size["X"]),
            )
        )
    return images


@dataclass
class _OmeDocument:
    """The OME-XML of one file: its images, or the metadata file a BinaryOnly stub points to."""

    path: str
    images: list[_OmeImage] = field(default_factory=list)
    metadata_file: str | None = None


def _read_ome(path: str, files: _OpenTiffs, options: ReaderOptions, uuids: _UuidIndex) -> _OmeDocument:
    """Read the OME-XML of an OME-TIFF (first IFD's ImageDescription) or of a companion XML file."""
    if is_tiff_file(path):
        text = files.description(path)
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: cannot read OME-XML: {exc}") from None
    if "<OME" not in text:
        raise MetadataError(f"{path}: expected OME-XML in the first ImageDescription, found none")
    root = _parse_xml(text, path)
    if _local(root.tag) != "OME":
        raise MetadataError(f"{path}: expected an OME root element, got {_local(root.tag)!r} instead")
    binary = _kid(root, "BinaryOnly")
    if binary is not None:
        target = binary.get("MetadataFile")
        if not target:
            raise MetadataError(f"{path}: BinaryOnly stub without a MetadataFile")
        return _OmeDocument(path, metadata_file=os.path.join(os.path.dirname(os.path.abspath(path)), target))
    return _OmeDocument(path, images=_parse_images(root, os.path.abspath(path), options, uuids))


def _collect_ome_images(paths: Sequence[str], files: _OpenTiffs, options: ReaderOptions) -> list[_OmeImage]:
    """Every Image of the filesets the files belong to, each once, in file then document order."""
    uuids = _UuidIndex(files)
    queue = [os.path.abspath(p) for p in paths]
    done: set[str] = set()
    seen: set[tuple[str, int]] = set()
    images: list[_OmeImage] = []
    while queue:
        path = queue.pop(0)
        if path in done:
            continue
        done.add(path)
        doc = _read_ome(path, files, options, uuids)
        if doc.metadata_file is not None:
            if not os.path.isfile(doc.metadata_file):
                raise SourceError(
                    f"{path}: BinaryOnly stub points to metadata file {doc.metadata_file}, "
                    "which does not exist"
                )
            if doc.metadata_file not in done:
                queue.insert(0, doc.metadata_file)
            continue
        for image in doc.images:
            key = image.first_plane
            if key in seen:
                continue  # the same fileset described again (Bio-Formats writes it into every file)
            seen.add(key)
            images.append(image)
    return images


def _resolve_pixel_size(
    found: tuple[float | None, float | None, float | None],
    nz: int,
    options: ReaderOptions,
    where: str,
    note: str = "",
) -> tuple[float, float, float]:
    """File pixel size, overridden by ReaderOptions.pixel_size_um; z defaults to 1 for 2-D tiles."""
    override = _option_pixel_size(options)
    z, y, x = found
    if override is not None:
        z = override[0] if override[0] is not None else z
        y, x = override[1], override[2]
    if y is None or x is None:
        why = f" ({note})" if note else ""
        raise MetadataError(
            f"{where}: no pixel size{why}; pass ReaderOptions(pixel_size_um=(y, x)) (--pixel-size)"
        )
    if z is None:
        if nz > 1:
            raise MetadataError(
                f"{where}: z-stack of {nz} planes without a z step; pass "
                f"ReaderOptions(pixel_size_um=(z, y, x)) (--pixel-size)"
            )
        z = 1.0
    return (z, y, x)


def _ome_stacks(
    image: _OmeImage, files: _OpenTiffs
) -> list[tuple[int, int, FrameSource, np.dtype[Any], tuple[int, int, int], str]]:
    """(time, channel index, source, dtype, shape, first file) for every stack of an image."""
    out = []
    for t in range(image.size_t):
        for c in range(len(image.channels)):
            plane_c, sample = divmod(c, image.samples)
            planes = []
            for z in range(image.size_z):
                plane = image.planes.get((z, plane_c, t))
                if plane is None:
                    raise MetadataError(
                        f"{image.where}: no TiffData maps plane Z={z} C={plane_c} T={t} to an IFD"
                    )
                if not os.path.isfile(plane[0]):
                    raise SourceError(
                        f"{image.where}: TiffData refers to file {plane[0]}, which does not exist"
                    )
                planes.append(plane)
            source, dtype, shape = _make_source(planes, sample, files, image.where)
            if image.size_yx is not None and shape[1:] != image.size_yx:
                raise MetadataError(
                    f"{planes[0][0]}: IFD {planes[0][1]} is {shape[2]}×{shape[1]} pixels, but the OME-XML "
                    f"({image.where}) says SizeX × SizeY = {image.size_yx[1]}×{image.size_yx[0]}"
                )
            out.append((t, c, source, dtype, shape, planes[0][0]))
    return out


# --------------------------------------------------------------------------------------------
# Generic TIFF description (for tile tables and TileConfiguration folders)


@dataclass(frozen=True)
class TiffStack:
    """One (z, y, x) stack of a TIFF image: one channel at one time point."""

    channel: str
    time_index: int
    shape: tuple[int, int, int]
    dtype: np.dtype[Any]
    source: FrameSource


@dataclass(frozen=True)
class TiffImage:
    """A TIFF series as stacks, with the pixel size the file states (``None`` where it does not).

    Attributes
    ----------
    path
        The file described.
    name
        Series name (OME ``Image@Name``) or the file's stem.
    stacks
        One per (time, channel), time-major.
    pixel_size_um
        (z, y, x) in µm; z is ``None`` when the file does not say; the whole tuple is ``None``
        when the file has no physical pixel size.
    kind
        ``"ome"``, ``"imagej"`` or tifffile's series kind.
    """

    path: str
    name: str
    stacks: tuple[TiffStack, ...]
    pixel_size_um: tuple[float | None, float, float] | None
    kind: str


def _resolution_pixel_size(
    page: Any, imagej: dict[str, Any] | None
) -> tuple[float | None, float, float] | None:
    """Pixel size from ImageJ metadata or the X/YResolution tags, in µm; None if uncalibrated."""
    tags = page.tags
    xres = tags.get("XResolution")
    yres = tags.get("YResolution")
    if xres is None or yres is None:
        return None

    def ratio(value: Any) -> float:
        if isinstance(value, tuple) and len(value) == 2:
            return float(value[0]) / float(value[1]) if value[1] else 0.0
        return float(value)

    px_per_x, px_per_y = ratio(xres.value), ratio(yres.value)
    if not (px_per_x > 0 and px_per_y > 0 and math.isfinite(px_per_x) and math.isfinite(px_per_y)):
        return None
    z: float | None = None
    if imagej is not None:
        unit = str(imagej.get("unit", "") or "")
        factor = length_to_um(unit) if unit else None
        if factor is None:
            return None
        spacing = imagej.get("spacing")
        if spacing is not None:
            with contextlib.suppress(TypeError, ValueError):
                z = abs(float(spacing)) * factor or None
        return (z, factor / px_per_y, factor / px_per_x)
    unit_tag = tags.get("ResolutionUnit")
    resunit = int(unit_tag.value) if unit_tag is not None else 2
    per_unit = {2: 25400.0, 3: 1e4, 4: 1e3, 5: 1.0}.get(resunit)
    if per_unit is None:
        return None
    if resunit == 2 and px_per_x == px_per_y and px_per_x in (72.0, 96.0, 150.0, 300.0, 600.0):
        return None  # screen/print dpi written by generic software, not a microscope calibration
    return (None, per_unit / px_per_y, per_unit / px_per_x)


def _generic_stacks(tif: Any, path: str, series_index: int, files: _OpenTiffs) -> TiffImage:
    with _reading(path):
        all_series = tif.series
        if series_index >= len(all_series):
            raise MetadataError(
                f"{path}: expected series {series_index}, the file has {len(all_series)} series"
            )
        series = all_series[series_index]
        pages = list(series.pages)
        keyframe = series.keyframe
        axes = str(series.axes)
        shape = tuple(int(s) for s in series.shape)
        page_ndim = len(keyframe.shape)
        kind = str(series.kind)
        imagej = tif.imagej_metadata if tif.is_imagej else None
        pixel_size = _resolution_pixel_size(keyframe, imagej)
        spp = int(keyframe.shaped[0]) * int(keyframe.shaped[4])
    if any(p is None for p in pages):
        raise MetadataError(f"{path}: series {series_index} has missing pages")
    lead_axes, lead_shape = axes[: len(axes) - page_ndim], shape[: len(shape) - page_ndim]
    if math.prod(lead_shape) != len(pages):
        lead_axes, lead_shape = "Z", (len(pages),)
    nt = lead_shape[lead_axes.index("T")] if "T" in lead_axes else 1
    nc = lead_shape[lead_axes.index("C")] if "C" in lead_axes else 1
    nz = len(pages) // (nt * nc)
    groups: dict[tuple[int, int], list[tuple[str, int]]] = {}
    for i, idx in enumerate(np.ndindex(*lead_shape) if lead_shape else [()]):
        t = idx[lead_axes.index("T")] if "T" in lead_axes else 0
        c = idx[lead_axes.index("C")] if "C" in lead_axes else 0
        page = pages[i]
        file = os.path.abspath(page.parent.filehandle.path)
        groups.setdefault((t, c), []).append(
            (file, int(page.index if isinstance(page.index, int) else page.index[0]))
        )
    stacks = []
    for t in range(nt):
        for c in range(nc):
            planes = groups[(t, c)]
            if len(planes) != nz:
                raise MetadataError(f"{path}: series {series_index}: uneven stacks")
            for s in range(spp):
                source, dtype, tshape = _make_source(planes, s, files, path)
                stacks.append(TiffStack(str(c * spp + s), t, tshape, dtype, source))
    name = Path(path).name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return TiffImage(path, name, tuple(stacks), pixel_size, "imagej" if imagej is not None else kind)


def describe_tiff(
    path: str, series: int = 0, *, options: ReaderOptions | None = None, _files: _OpenTiffs | None = None
) -> TiffImage:
    """Describe one series of any TIFF as stacks of lazily read pixels.

    OME-TIFFs are described through their OME-XML (series = the n-th ``Image`` stored in this file);
    other TIFFs through tifffile's series, where ImageJ ``C`` and ``T`` axes become channels and
    time points, samples (RGB) become channels, and every other page axis becomes z.

    Parameters
    ----------
    path
        The TIFF file.
    series
        Index of the series (0: the first).
    options
        Reader options (position unit, used when the OME-XML is parsed).
    """
    options = options or ReaderOptions()
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise SourceError(f"{path}: file not found")
    with contextlib.ExitStack() as stack:
        files = _files if _files is not None else stack.enter_context(_OpenTiffs())
        tif = files.get(path)
        with _reading(path):
            is_ome = bool(tif.is_ome)
        if is_ome and "<OME" in files.description(path):
            images = [im for im in _collect_ome_images([path], files, options) if im.first_plane[0] == path]
            if series >= len(images):
                raise MetadataError(
                    f"{path}: expected OME Image {series} with pixels in this file, found {len(images)}"
                )
            image = images[series]
            stacks = tuple(
                TiffStack(image.channels[c], t, shape, dtype, source)
                for t, c, source, dtype, shape, _ in _ome_stacks(image, files)
            )
            z, y, x = image.pixel_size
            pixel_size = None if y is None or x is None else (z, y, x)
            return TiffImage(path, image.name, stacks, pixel_size, "ome")
        return _generic_stacks(tif, path, series, files)


# --------------------------------------------------------------------------------------------
# Readers


class OmeTiffReader(BaseReader):
    """OME-TIFF files (one file, several series, or a folder/multi-file fileset).

    Source convention: stage position = pixel (0, 0) of the frame. ``Plane@PositionX/Y`` of the
    image's first z plane (lowest T, C with ``TheZ=0`` carrying a position), else
    ``StageLabel@X/Y``, is taken as the corner (index 0) of the tile, as in Bio-Formats/OME where
    ``PositionX`` is the position of the image origin. z is that plane's ``PositionZ`` (else the
    StageLabel's, else 0). All channels and time points of an ``Image`` share its position. Units
    are converted to µm; a unit that is not a length (``"reference frame"``, which is also the OME
    schema's default when the unit is absent) is an error unless ``ReaderOptions.position_unit``
    says what the numbers are. Pixel size: ``PhysicalSizeX/Y/Z`` (unit default µm), overridden by
    ``ReaderOptions.pixel_size_um``. Planes are mapped to IFDs with ``DimensionOrder`` and
    ``TiffData`` (``IFD``, ``FirstZ/C/T``, ``PlaneCount``, ``UUID@FileName``); a fileset spread
    over several files (full OME-XML in one or all files, ``BinaryOnly`` stubs in others) yields
    each image once. ``Plate/Well/WellSample`` sets the tiles' well and field.
    """

    name: ClassVar[str] = "ome-tiff"
    description: ClassVar[str] = "OME-TIFF (single file, multi-series, multi-file filesets)"
    priority: ClassVar[int] = 10

    def sniff(self, path: str) -> bool:
        """Claim ``*.ome.tif(f)`` TIFF files and folders holding them (but no TileConfiguration)."""
        p = Path(path)
        try:
            if p.is_file():
                return _is_ome_name(p.name) and is_tiff_file(p)
            if p.is_dir():
                if _has_tileconfig(p):
                    return False
                with os.scandir(p) as it:
                    return any(_is_ome_name(e.name) and is_tiff_file(e.path) for e in it)
        except OSError:
            return False
        return False

    def _inputs(self, path: str) -> list[str]:
        p = Path(path)
        if p.is_dir():
            found = sorted(
                str(e) for e in p.iterdir() if _is_ome_name(e.name) and e.is_file() and is_tiff_file(e)
            )
            if not found:
                raise SourceError(f"{path}: expected OME-TIFF files (*.ome.tif) in this folder, found none")
            return found
        if not p.is_file():
            raise SourceError(f"{path}: file not found")
        return [str(p)]

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:
        """Return one tile per image, time point and channel, reading metadata only."""
        tiles: list[Tile] = []
        with _OpenTiffs() as files:
            images = _collect_ome_images(self._inputs(path), files, options)
            if not images:
                raise MetadataError(f"{path}: the OME-XML describes no images")
            for image in images:
                if image.position is None:
                    raise MetadataError(image.position_note)
                pixel_size = _resolve_pixel_size(
                    image.pixel_size, image.size_z, options, image.where, image.pixel_size_note
                )
                for t, c, source, dtype, shape, file in _ome_stacks(image, files):
                    tiles.append(
                        Tile(
                            tile_id=len(tiles),
                            source=source,
                            shape=shape,
                            dtype=dtype,
                            position_um=image.position,
                            pixel_size_um=pixel_size,
                            channel=image.channels[c],
                            time_index=t,
                            well=image.well,
                            field_index=image.field_index,
                            name=image.name,
                            extra={
                                "reader": self.name,
                                "file": file,
                                "xml_file": image.xml_file,
                                "series": image.index,
                                "image_id": image.image_id,
                            },
                        )
                    )
        return tiles


def _mm_dataset_files(path: str) -> list[str]:
    """The files of the MMStack dataset ``path`` (a file of it, or its folder)."""
    p = Path(path)
    if p.is_file():
        m = _MMSTACK_NAME.match(p.name)
        if m is None:
            return [str(p.resolve())]
        prefix = m.group("prefix")
        folder = p.resolve().parent
    elif p.is_dir():
        folder = p.resolve()
        prefixes = sorted(
            {
                m.group("prefix")
                for e in folder.iterdir()
                if (m := _MMSTACK_NAME.match(e.name)) and e.is_file()
            }
        )
        if not prefixes:
            raise SourceError(f"{path}: expected Micro-Manager *_MMStack_*.ome.tif files, found none")
        if len(prefixes) > 1:
            raise MetadataError(
                f"{path}: the folder holds several Micro-Manager acquisitions ({', '.join(prefixes)}); "
                "pass one of their files instead"
            )
        prefix = prefixes[0]
    else:
        raise SourceError(f"{path}: file not found")
    return sorted(
        str(e)
        for e in folder.iterdir()
        if (m := _MMSTACK_NAME.match(e.name)) and m.group("prefix") == prefix and e.is_file()
    )


def _mm_summary_position(
    summary: dict[str, Any], index: int
) -> tuple[str | None, tuple[float, float, float] | None]:
    """Label and (z, y, x) of position ``index`` from the Summary (MM 1.4 or 2.0 position lists)."""
    xy_device = summary.get("Core-XYStage")
    z_device = summary.get("Core-Focus")
    listing = summary.get("InitialPositionList") or summary.get("StagePositions") or []
    if not isinstance(listing, list) or index >= len(listing) or not isinstance(listing[index], dict):
        return None, None
    entry = listing[index]
    label = entry.get("Label") or entry.get("label")
    xy: list[float] | None = None
    z: float | None = None
    devices: dict[str, Any] = {}
    if isinstance(entry.get("DeviceCoordinatesUm"), dict):  # MM 1.4
        devices = dict(entry["DeviceCoordinatesUm"])
    elif isinstance(entry.get("DevicePositions"), list):  # MM 2.0
        for dev in entry["DevicePositions"]:
            if isinstance(dev, dict) and "Device" in dev:
                devices[str(dev["Device"])] = dev.get("Position_um")
        xy_device = entry.get("DefaultXYStage") or xy_device
        z_device = entry.get("DefaultZStage") or z_device
    elif isinstance(entry.get("subpositions"), list):  # MM 2.0 alpha
        for sub in entry["subpositions"]:
            if isinstance(sub, dict):
                n = sub.get("numAxes", 2)
                devices[str(sub.get("stageName"))] = (
                    [sub.get("x"), sub.get("y")] if n == 2 else [sub.get("x")]
                )
    for name, value in devices.items():
        if not isinstance(value, list):
            continue
        if len(value) == 2 and (xy is None or name == xy_device):
            xy = value
        elif len(value) == 1 and (z is None or name == z_device):
            z = value[0]
    if xy is None:
        return (str(label) if label else None), None
    try:
        return (str(label) if label else None), (float(z or 0.0), float(xy[1]), float(xy[0]))
    except (TypeError, ValueError):
        return (str(label) if label else None), None


class MMStackReader(BaseReader):
    """Micro-Manager multi-position "MMStack" OME-TIFF datasets (MM 1.4 and 2.0).

    Source convention: Micro-Manager's stage position is the centre of the frame (the stage
    position at which the optical axis meets the image centre, as AcqEngJ's tiling and the NDTiff
    reader assume), so the tile's corner (index 0) is the position minus half the frame in x and y.
    Each position's ``XPositionUm``/``YPositionUm``/``ZPositionUm`` from the per-plane
    MicroManagerMetadata tag (51123) of its first stored plane (lowest time, channel, slice) is
    used, in µm; all channels and time points of a position share it. Without those keys the
    Summary's ``InitialPositionList`` (1.4) or ``StagePositions`` (2.0) is used. Frames are matched
    to positions by the index map's position index (the ``PositionIndex``), never by file order;
    names come from the position list's ``Label`` (else the plane's ``PositionName``). Pixel size:
    Summary ``PixelSize_um`` (else the plane's ``PixelSizeUm``), z step ``z-step_um``;
    ``ReaderOptions.pixel_size_um`` overrides both. Channel names: Summary ``ChNames``. Stacks with
    missing planes (aborted acquisitions) are skipped with a warning.
    """

    name: ClassVar[str] = "mmstack"
    description: ClassVar[str] = "Micro-Manager MMStack OME-TIFF (multi-position, multi-file)"
    priority: ClassVar[int] = 20

    def sniff(self, path: str) -> bool:
        """Claim a TIFF with Micro-Manager's index-map header, or a folder of ``*_MMStack*.ome.tif``."""
        p = Path(path)
        try:
            if p.is_file():
                return p.name.lower().endswith((".tif", ".tiff")) and _has_mm_header(p)
            if p.is_dir():
                if _has_tileconfig(p):
                    return False
                with os.scandir(p) as it:
                    for e in it:
                        if _MMSTACK_NAME.match(e.name) and e.is_file():
                            return _has_mm_header(e.path)
        except OSError:
            return False
        return False

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:
        """Return one tile per position, time point and channel, reading metadata only."""
        import tifffile

        files_list = _mm_dataset_files(path)
        frames: dict[tuple[int, int, int, int], tuple[str, int]] = {}  # (pos, t, c, z) -> (file, page)
        summary: dict[str, Any] | None = None
        with _OpenTiffs(max_open=2) as files:
            for file in files_list:
                tif = files.get(file)
                with _reading(file, "cannot read the Micro-Manager header"):
                    meta = tifffile.read_micromanager_metadata(tif.filehandle, {"Summary", "IndexMap"})
                    index_map = meta.get("IndexMap")
                    if index_map is None or "Summary" not in meta:
                        raise SourceError(
                            f"{file}: expected a Micro-Manager index map and summary, found none"
                        )
                    if summary is None:
                        summary = meta["Summary"]
                    page_at_offset = {int(page.offset): int(page.index) for page in tif.pages}
                    size = int(tif.filehandle.size)
                for c, z, t, pos, offset in np.asarray(index_map).tolist():
                    page = page_at_offset.get(int(offset))
                    if page is None and offset >= size:
                        # not an aborted acquisition (its map lists only what was written): data lost
                        raise SourceError(
                            f"{file}: truncated: the index map lists image (c={c}, z={z}, t={t}, p={pos}) "
                            f"at byte {offset}, but the file has {size} bytes"
                        )
                    if page is None:
                        log.warning(
                            "%s: index map points to IFD offset %d, which is not in the file", file, offset
                        )
                        continue
                    frames.setdefault((int(pos), int(t), int(c), int(z)), (file, page))
            if not frames or summary is None:
                raise MetadataError(f"{path}: the Micro-Manager index maps list no frames")
            return self._build(path, frames, summary, files, options)

    def _build(
        self,
        path: str,
        frames: dict[tuple[int, int, int, int], tuple[str, int]],
        summary: dict[str, Any],
        files: _OpenTiffs,
        options: ReaderOptions,
    ) -> list[Tile]:
        nz = max(k[3] for k in frames) + 1
        ch_names = summary.get("ChNames")
        positions = sorted({k[0] for k in frames})
        pixel_xy = summary.get("PixelSize_um")
        z_step = summary.get("z-step_um")
        tiles: list[Tile] = []
        for pos in positions:
            keys = sorted(k for k in frames if k[0] == pos)
            first_file, first_page = frames[keys[0]]
            with _reading(first_file, "cannot read the MicroManagerMetadata tag"):
                tag = files.page(first_file, first_page).tags.get(51123)
                plane_meta: dict[str, Any] = (
                    tag.value if tag is not None and isinstance(tag.value, dict) else {}
                )
            label, listed = _mm_summary_position(summary, pos)
            name = label or str(plane_meta.get("PositionName") or f"Pos{pos}")
            where = f"{first_file}: position {pos} ({name})"
            position: tuple[float, float, float] | None = None
            try:
                if plane_meta.get("XPositionUm") is not None and plane_meta.get("YPositionUm") is not None:
                    position = (
                        float(plane_meta.get("ZPositionUm") or 0.0),
                        float(plane_meta["YPositionUm"]),
                        float(plane_meta["XPositionUm"]),
                    )
            except (TypeError, ValueError):
                position = None
            if position is None:
                position = listed
            if position is None or not all(math.isfinite(v) for v in position):
                raise MetadataError(
                    f"{where}: no stage position (no XPositionUm/YPositionUm in the plane metadata and "
                    "none in the Summary position list)"
                )
            xy = pixel_xy if isinstance(pixel_xy, int | float) and pixel_xy > 0 else None
            if xy is None:
                page_xy = plane_meta.get("PixelSizeUm")
                xy = page_xy if isinstance(page_xy, int | float) and page_xy > 0 else None
            zs = abs(float(z_step)) if isinstance(z_step, int | float) and z_step else None
            pixel_size = _resolve_pixel_size(
                (zs, None if xy is None else float(xy), None if xy is None else float(xy)),
                nz,
                options,
                where,
                "Summary PixelSize_um missing or 0",
            )
            for t in sorted({k[1] for k in keys}):
                for c in sorted({k[2] for k in keys if k[1] == t}):
                    planes = [frames.get((pos, t, c, z)) for z in range(nz)]
                    if any(p is None for p in planes):
                        log.warning("%s: time %d channel %d has missing planes; skipped", where, t, c)
                        continue
                    stack = [p for p in planes if p is not None]
                    source, dtype, shape = _make_source(stack, 0, files, where)
                    corner = (  # the stage position is the frame centre
                        position[0],
                        position[1] - shape[1] * pixel_size[1] / 2,
                        position[2] - shape[2] * pixel_size[2] / 2,
                    )
                    channel = str(ch_names[c]) if isinstance(ch_names, list) and c < len(ch_names) else str(c)
                    tiles.append(
                        Tile(
                            tile_id=len(tiles),
                            source=source,
                            shape=shape,
                            dtype=dtype,
                            position_um=corner,
                            pixel_size_um=pixel_size,
                            channel=channel,
                            time_index=t,
                            name=name,
                            extra={
                                "reader": self.name,
                                "file": stack[0][0],
                                "position_index": pos,
                                "micromanager_version": str(summary.get("MicroManagerVersion", "")),
                            },
                        )
                    )
        if not tiles:
            raise MetadataError(f"{path}: no complete stack in the Micro-Manager dataset")
        return tiles


@dataclass(frozen=True)
class _ConfigEntry:
    line: int
    file: str
    series: int
    coords: tuple[float, ...]


def _parse_tileconfig(config: Path) -> tuple[int, list[_ConfigEntry]]:
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SourceError(f"{config}: cannot read: {exc.strerror}") from None
    dim: int | None = None
    multiseries = False
    entries: list[_ConfigEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#") or len(line) < 4:
            continue
        key, sep, value = line.partition("=")
        if sep and ";" not in line:
            key, value = key.strip().lower(), value.strip().lower()
            if key == "dim":
                if value not in ("2", "3"):
                    raise MetadataError(
                        f"{config}: line {number}: expected 'dim = 2' or 'dim = 3', got {line!r}"
                    )
                dim = int(value)
            elif key == "multiseries":
                multiseries = value == "true"
            else:
                log.warning("%s: line %d: ignoring unknown setting %r", config, number, line)
            continue
        if dim is None:
            raise MetadataError(f"{config}: line {number}: expected 'dim = 2|3' before the first entry")
        fields = line.split(";")
        if len(fields) != 3:
            raise MetadataError(
                f"{config}: line {number}: expected 'file; series; (x, y[, z])', got {line!r}"
            )
        file, series_text, coords_text = (f.strip() for f in fields)
        coords_text = coords_text.strip()
        if not (coords_text.startswith("(") and coords_text.endswith(")")):
            raise MetadataError(
                f"{config}: line {number}: expected coordinates in parentheses, got {coords_text!r}"
            )
        try:
            coords = tuple(float(v) for v in coords_text[1:-1].split(","))
        except ValueError:
            raise MetadataError(f"{config}: line {number}: expected numbers, got {coords_text!r}") from None
        if len(coords) != dim or not all(math.isfinite(v) for v in coords):
            raise MetadataError(
                f"{config}: line {number}: expected {dim} finite coordinates (dim = {dim}), "
                f"got {coords_text!r}"
            )
        series = 0
        if multiseries and series_text:
            try:
                series = int(series_text)
            except ValueError:
                raise MetadataError(
                    f"{config}: line {number}: expected an integer series, got {series_text!r}"
                ) from None
        if not file:
            raise MetadataError(f"{config}: line {number}: empty file name")
        entries.append(_ConfigEntry(number, file, series, coords))
    if dim is None or not entries:
        raise MetadataError(
            f"{config}: expected 'dim = 2|3' and at least one 'file; ; (x, y)' entry, found none"
        )
    return dim, entries


class TileConfigReader(BaseReader):
    """Folders of plain TIFF tiles placed by a Fiji ``TileConfiguration.txt``.

    Source convention: the coordinates are the tiles' top-left offsets in **pixels** (Fiji Grid/
    Collection stitching), i.e. pixel (0, 0) of each tile; they are multiplied by the pixel size
    to give ``position_um`` (z in z-pixels times the z spacing for ``dim = 3``). The pixel size is
    ``ReaderOptions.pixel_size_um``, else the TIFFs' own (OME ``PhysicalSize``, ImageJ
    ``unit``/``spacing`` + resolution, or a centimetre/micrometre ``ResolutionUnit``); if neither
    says, 1 µm per pixel is assumed, a warning logged and ``extra["pixel_size_assumed"]`` set.
    Accepts the folder (``TileConfiguration.registered.txt`` is preferred over
    ``TileConfiguration.txt`` when both exist) or the configuration file itself. Each TIFF is read
    whole: pages are z (ImageJ hyperstack C/T become channels/time points; RGB samples channels).
    """

    name: ClassVar[str] = "tileconfig"
    description: ClassVar[str] = "Fiji TileConfiguration.txt + plain TIFF tiles"
    priority: ClassVar[int] = 20

    def sniff(self, path: str) -> bool:
        """Claim a folder with ``TileConfiguration(.registered).txt`` or such a file itself."""
        p = Path(path)
        try:
            if p.is_dir():
                return _has_tileconfig(p)
            if p.is_file() and p.name.startswith("TileConfiguration") and p.suffix.lower() == ".txt":
                return b"dim" in _head(p, 65536)
        except OSError:
            return False
        return False

    @staticmethod
    def _config_file(path: str) -> Path:
        p = Path(path)
        if p.is_dir():
            for name in _TILECONFIG_NAMES:
                if (p / name).is_file():
                    return p / name
            raise SourceError(f"{path}: expected TileConfiguration.txt in this folder, found none")
        if not p.is_file():
            raise SourceError(f"{path}: file not found")
        return p

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:
        """Return one tile per configuration entry (and channel/time point of its TIFF)."""
        config = self._config_file(path)
        dim, entries = _parse_tileconfig(config)
        folder = config.parent
        override = _option_pixel_size(options)
        described: list[tuple[_ConfigEntry, TiffImage]] = []
        with _OpenTiffs() as files:
            for entry in entries:
                file = Path(entry.file) if os.path.isabs(entry.file) else folder / entry.file
                try:
                    exists = file.is_file()
                except OSError as exc:  # e.g. a name too long
                    raise SourceError(
                        f"{config}: line {entry.line}: tile file {entry.file!r}: {exc.strerror}"
                    ) from None
                if not exists:
                    raise SourceError(
                        f"{config}: line {entry.line}: tile file {entry.file!r} not found ({file})"
                    )
                image = describe_tiff(str(file), entry.series, options=options, _files=files)
                described.append((entry, image))
        found = [(e, im.pixel_size_um) for e, im in described if im.pixel_size_um is not None]
        file_size: tuple[float | None, float, float] | None = None
        if found:
            first_entry, file_size = found[0]
            assert file_size is not None
            for e, ps in found[1:]:
                assert ps is not None
                if override is None and not np.allclose(ps[1:], file_size[1:], rtol=1e-6):
                    raise MetadataError(
                        f"{config}: tiles have different pixel sizes: {file_size[1:]} µm "
                        f"({first_entry.file}) and {ps[1:]} µm ({e.file})"
                    )
        assumed = False
        ps_z: float | None = None
        if override is not None:
            ps_yx = (override[1], override[2])
            ps_z = override[0]
        elif file_size is not None:
            ps_yx = (file_size[1], file_size[2])
        else:
            ps_yx = (1.0, 1.0)
            assumed = True
            log.warning(
                "%s: no pixel size in the TIFFs or options; assuming 1 µm per pixel "
                "(pass ReaderOptions(pixel_size_um=...) / --pixel-size)",
                config,
            )
        if ps_z is None and file_size is not None:
            ps_z = file_size[0]
        nz_max = max(s.shape[0] for _, im in described for s in im.stacks)
        if ps_z is None:
            ps_z = 1.0
            if nz_max > 1 and not assumed:
                log.warning("%s: z-stacks without a z spacing; assuming %g µm", config, ps_z)
        pixel_size = (ps_z, ps_yx[0], ps_yx[1])
        tiles: list[Tile] = []
        for entry, image in described:
            x, y = entry.coords[0], entry.coords[1]
            z = entry.coords[2] if dim == 3 else 0.0
            position = (z * pixel_size[0], y * pixel_size[1], x * pixel_size[2])
            for stack in image.stacks:
                extra: dict[str, object] = {
                    "reader": self.name,
                    "file": image.path,
                    "config": str(config),
                    "line": entry.line,
                    "series": entry.series,
                    "position_px": entry.coords,
                }
                if assumed:
                    extra["pixel_size_assumed"] = True
                tiles.append(
                    Tile(
                        tile_id=len(tiles),
                        source=stack.source,
                        shape=stack.shape,
                        dtype=stack.dtype,
                        position_um=position,
                        pixel_size_um=pixel_size,
                        channel=stack.channel,
                        time_index=stack.time_index,
                        name=image.name,
                        extra=extra,
                    )
                )
        _check_uniform_dtype(tiles, str(config))
        return tiles


def _check_uniform_dtype(tiles: Sequence[Tile], where: str) -> None:
    dtypes = {t.dtype for t in tiles}
    if len(dtypes) > 1:
        first = tiles[0]
        other = next(t for t in tiles if t.dtype != first.dtype)
        raise MetadataError(
            f"{where}: tiles have different pixel types: {first.dtype} ({first.source.path}) and "
            f"{other.dtype} ({other.source.path})"
        )
