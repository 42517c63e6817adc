"""Micro-Manager NDTiff datasets (v2 and v3, with or without ``Full resolution/`` pyramids).

NDTiff is what pycromanager, Micro-Manager's AcqEngJ and Magellan write: a folder with an
``NDTiff.index`` and ``*_NDTiffStack.tif`` files (pyramids keep full resolution in
``Full resolution/``). Metadata (index, summary and per-image JSON) is read through the field's own
library, ``ndtiff`` (extra ``ngff-tiles[ndtiff]``); it is imported only by ``tiles()``.

Source convention
-----------------
- Stage positions are **tile centres**. ``XPosition_um_Intended``/``YPosition_um_Intended`` (AcqEngJ;
  MM 2.0 keys ``XPositionUm``/``YPositionUm`` as fall-back) are the stage set-point of the event,
  which AcqEngJ treats as the centre of the camera image: its ``CameraTilingStageTranslator`` maps
  stitched pixel ``(column + 0.5) × (width - overlap)`` (the tile centre) to the position's stage
  coordinates, and computes neighbouring positions from the centre of tile 0. ndtiff's own
  ``as_array(stitched=True)`` crops ``floor(overlap / 2)`` from each tile's top/left, which puts the
  centre pixel ``width / 2`` of every tile exactly on that grid centre for even overlaps. So
  ``Tile.position_um`` (the corner, pixel (0, 0)) = centre − (width / 2, height / 2) × pixel size.
  (A constant shift between all tiles cannot change a fused image; it only moves the NGFF
  translation. The tests check that fusing ndtiff's stitched samples by position equals
  ``as_array(stitched=True)`` pixel for pixel.)
- Orientation: the pixel-to-stage affine (per-image ``PixelSizeAffine``, MMCore row-major
  ``a00;a01;a02;a10;a11;a12``, else the summary ``AffineTransform``, AcqEngJ's column-major
  ``m00_m10_m01_m11``) is reduced to its nearest signed permutation R (flips/swap; a residual
  rotation is recorded in ``Tile.extra`` only). Positions are reported in the image-aligned frame
  R^T · stage, so that +x of a tile's pixels is +x of ``position_um``. All samples here have the
  identity, where this is the stage coordinate itself.
- z: ``ZPosition_um_Intended`` (else ``ZPositionUm``) of a stack's first plane, else the z index ×
  summary ``z-step_um``; z spacing from ``z-step_um`` (else the first two planes' z positions).
- Pixel size: summary ``PixelSize_um`` (else the image's ``PixelSize_um``/``PixelSizeUm``);
  ``ReaderOptions.pixel_size_um`` overrides.
- Axes: ``position`` (names or numbers), ``row``/``column`` (any integers, negative allowed),
  ``z`` (or ``Z``), ``time``, ``channel`` (names or numbers; numbers are named from ``ChNames`` or the
  images' ``Channel``). Any other axis with more than one value is kept apart by suffixing the
  channel name (``DAPI/SecondaryZ=1``). A z-stack with gaps becomes one tile per contiguous run.
- Named positions become tile names; names like ``A1-Site_0``, ``A01`` or ``Plate_A01_0000``
  become well/field hints (only when every position's name parses).
- RGB (pixel type 2) becomes three channels (``R``, ``G``, ``B``, or ``<name>-R`` …); 10/11/12/14-bit
  data stay uint16 (the bit depth is in ``Tile.extra``).
- Without stage positions: one position is placed at the origin; several are an error unless
  ``ReaderOptions.grid_layout`` (``--grid``) asks for placement by row/column × tile size ×
  (1 − ``GridPixelOverlapY/X`` / tile size).

Pixels are read lazily, by region: NDTiff pixels are uncompressed by specification, so
:class:`~ngff_tiles.readers._base.RawFileSource` reads just the rows of a region at the offset
the index gives (one ``pread`` per plane). The tests check its pixels against ndtiff's
``read_image`` for every sample.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import math
import os
import re
import struct
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ngff_tiles.errors import MetadataError, MissingDependencyError, NgffTilesError, SourceError
from ngff_tiles.options import ReaderOptions
from ngff_tiles.readers._base import BaseReader, RawFileSource
from ngff_tiles.tiles import Tile, Well

__all__ = [
    "INDEX_NAME",
    "NDTIFF_MAGIC",
    "NDTiffReader",
    "nearest_signed_permutation",
    "parse_well_name",
    "well_hints",
]

log = logging.getLogger(__name__)

NDTIFF_MAGIC = 483729
"""uint32 at bytes 8..12 of every NDTiff TIFF (distinguishes it from Micro-Manager MMStack files)."""
INDEX_NAME = "NDTiff.index"
FULL_RES = "Full resolution"
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")
_INSTALL = "pip install 'ngff-tiles[ndtiff]'"

# index pixel_type -> (dtype without byte order, samples per pixel, bit depth)
_PIXEL_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("u1", 1, 8),
    1: ("u2", 1, 16),
    2: ("u1", 3, 8),  # RGB, 3 bytes per pixel (stored R, G, B)
    3: ("u2", 1, 10),
    4: ("u2", 1, 12),
    5: ("u2", 1, 14),
    6: ("u2", 1, 11),
}
_RGB = ("R", "G", "B")

# Position names that name a well: A1-Site_0, A01, A01_0000, Plate_A01_0000, WellB12.
_WELL_NAME = re.compile(
    r"^(?:.*?[_\-\s])?(?:Well)?(?P<row>[A-Z]{1,2})0*(?P<col>[1-9][0-9]{0,2})"
    r"(?:(?:-Site_|_Site_|-|_)(?P<field>[0-9]+))?$"
)


# --------------------------------------------------------------------------------------------
# helpers shared with the ND2 reader


def parse_well_name(name: str) -> tuple[Well, int | None] | None:
    """Return (well, field or None) if ``name`` looks like a well position name, else None.

    Accepts ``A1-Site_0`` (Micro-Manager HCS), ``A01`` and ``<plate>_A01_0000`` (NIS-Elements
    JOBS/well plates), ``WellB12``.
    """
    m = _WELL_NAME.match(name.strip())
    if m is None:
        return None
    well = Well(m.group("row"), str(int(m.group("col"))))
    return well, (int(m.group("field")) if m.group("field") is not None else None)


def well_hints(names: Sequence[str]) -> dict[str, tuple[Well, int]]:
    """Well and field hints for position ``names``: all of them or none.

    Fields come from the names where given, else count up per well in the order given. If any
    name does not parse, or two positions would claim the same well and field, there are no hints.
    """
    parsed = {n: parse_well_name(n) for n in dict.fromkeys(names)}
    if not parsed or any(p is None for p in parsed.values()):
        return {}
    out: dict[str, tuple[Well, int]] = {}
    counters: dict[Well, int] = {}
    for name, p in parsed.items():
        assert p is not None
        well, fld = p
        if fld is None:
            fld = counters.get(well, 0)
        counters[well] = max(counters.get(well, 0), fld + 1)
        out[name] = (well, fld)
    if len({v for v in out.values()}) != len(out):
        log.warning("position names %s give duplicate well/field pairs; no well hints", list(out)[:4])
        return {}
    return out


def nearest_signed_permutation(matrix: Any) -> np.ndarray | None:
    """The 2×2 signed permutation (flips and/or swap) closest to ``matrix``; None if degenerate.

    ``matrix`` maps image (x, y) to stage (x, y) and may include scale and a small rotation.
    """
    a = np.asarray(matrix, dtype=float).reshape(2, 2)
    if not np.all(np.isfinite(a)) or float(np.abs(a).max()) == 0.0:
        return None
    candidates = []
    for sx in (1, -1):
        for sy in (1, -1):
            candidates.append(np.array([[sx, 0], [0, sy]]))
            candidates.append(np.array([[0, sx], [sy, 0]]))
    best: np.ndarray = max(candidates, key=lambda r: float(np.sum(r * a)))
    return best


def residual_rotation_deg(matrix: Any, perm: np.ndarray) -> float:
    """Angle (degrees) left in ``matrix`` after removing the signed permutation ``perm``."""
    m = perm.T @ np.asarray(matrix, dtype=float).reshape(2, 2)
    return float(math.degrees(math.atan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1])))


def option_pixel_size(options: ReaderOptions) -> tuple[float | None, float, float] | None:
    """``ReaderOptions.pixel_size_um`` as (z or None, y, x), validated."""
    given = options.pixel_size_um
    if given is None:
        return None
    values = tuple(float(v) for v in given)
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
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


def _number(value: Any) -> float | None:
    """A finite float from a JSON value (numbers or numeric strings), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


# --------------------------------------------------------------------------------------------
# sniffing (no ndtiff import)


def _header(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(20)
    except OSError:
        return b""


def _is_ndtiff_tif(path: Path) -> bool:
    head = _header(path)
    if len(head) < 12 or head[:4] not in _TIFF_HEADERS:
        return False
    order = "<" if head[:2] == b"II" else ">"
    return bool(struct.unpack(order + "I", head[8:12])[0] == NDTIFF_MAGIC)


def _ndtiff_tifs(folder: Path, limit: int | None = None) -> list[Path]:
    """NDTiff TIFF files directly in ``folder`` (checking at most ``limit`` ``.tif`` names)."""
    found: list[Path] = []
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.name.lower().endswith((".tif", ".tiff")))
    except OSError:
        return found
    for name in names[:limit] if limit else names:
        if _is_ndtiff_tif(folder / name):
            found.append(folder / name)
    return found


# --------------------------------------------------------------------------------------------
# pixels


# --------------------------------------------------------------------------------------------
# the dataset, through ndtiff


@dataclass(frozen=True)
class _Frame:
    """One index entry: its axes and where its pixels and metadata are."""

    axes: Mapping[str, Any]
    file: str
    pixel_offset: int
    width: int
    height: int
    pixel_type: int
    metadata_offset: int
    metadata_length: int

    @property
    def kind(self) -> tuple[int, int, int]:
        """(width, height, pixel type): planes of one stack must agree on it."""
        return (self.width, self.height, self.pixel_type)


@dataclass
class _Located:
    root: Path
    level: Path
    index: Path
    major: int
    minor: int | None
    byteorder: str


def _index_files(index: Path) -> dict[str, int]:
    """File name -> number of images, as ``index`` lists them (ndtiff's index parser)."""
    from ndtiff.ndtiff_index import read_ndtiff_index

    with _library(str(index)):
        entries = read_ndtiff_index(index.read_bytes(), verbose=False)
    counts: dict[str, int] = {}
    for entry in entries.values():
        counts[str(entry.filename)] = counts.get(str(entry.filename), 0) + 1
    return counts


def _locate(path: str) -> _Located:
    """Find the dataset root, its full-resolution folder and index; check the file version."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{path}: no such file or folder")
    if p.is_file():
        p = p.parent
    if p.name == FULL_RES:
        p = p.parent
    root = p
    level = root / FULL_RES if (root / FULL_RES).is_dir() else root
    index = level / INDEX_NAME
    tifs = _ndtiff_tifs(level)
    if not index.is_file():
        what = f"{len(tifs)} NDTiff TIFF file(s)" if tifs else "no NDTiff TIFF files"
        raise SourceError(
            f"{index}: missing: the NDTiff dataset {root} has no index ({what} found); NDTiff v1 "
            "datasets (no index) are not supported"
        )
    if not tifs:
        listed = _index_files(index)
        if listed:
            name, count = next(iter(listed.items()))
            raise SourceError(
                f"{level / name}: missing: {index} lists {count} image(s) in this file, which does not exist"
            )
        raise SourceError(f"{level}: {index.name} found but no NDTiff TIFF files next to it")
    head = _header(tifs[0])
    order = "<" if head[:2] == b"II" else ">"
    major = struct.unpack(order + "I", head[12:16])[0]
    minor = struct.unpack(order + "I", head[16:20])[0] if major >= 3 and len(head) >= 20 else None
    if major not in (2, 3):
        raise SourceError(f"{tifs[0]}: NDTiff major version {major}; only versions 2 and 3 are supported")
    if major == 2 and level == root:
        raise SourceError(f"{root}: an NDTiff v2 dataset keeps its data in '{FULL_RES}/', found none")
    return _Located(root, level, index, int(major), None if minor is None else int(minor), order)


@contextlib.contextmanager
def _library(where: str) -> Iterator[None]:
    """Silence ndtiff's progress prints, log its warnings, turn its errors into SourceError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        except NgffTilesError:
            raise
        except Exception as exc:
            raise SourceError(f"{where}: ndtiff cannot read it: {type(exc).__name__}: {exc}") from exc
    for w in caught:
        log.warning("%s: ndtiff: %s", where, w.message)


class _Dataset:
    """The full-resolution level of an NDTiff dataset, opened with ndtiff; close() when done."""

    def __init__(self, loc: _Located) -> None:
        try:
            import ndtiff  # noqa: F401
        except ImportError as exc:  # pragma: no cover - checked by check_dependencies
            raise MissingDependencyError(f"the ndtiff reader needs ndtiff: {_INSTALL} ({exc})") from exc
        self.loc = loc
        self._ds: Any = None
        # parse the index on its own first, so that a corrupt one is reported as such
        for name in _index_files(loc.index):
            if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
                raise SourceError(
                    f"{loc.index}: lists image file {name!r}, which is not a file name in {loc.level}"
                )
        with _library(str(loc.root)):
            if loc.major >= 3:
                from ndtiff import NDTiffDataset

                self._ds = NDTiffDataset(dataset_path=str(loc.level))
                self._level: Any = self._ds
            else:
                from ndtiff.old_format_version_readers.nd_tiff_v2 import NDTiff_v2_0

                self._ds = NDTiff_v2_0(str(loc.root), full_res_only=True)
                self._level = self._ds.res_levels[0]
            self.summary: dict[str, Any] = dict(self._ds.summary_metadata or {})
            index = dict(self._level.index)
        self.frames: list[_Frame] = []
        for key, entry in index.items():
            axes = dict(key)
            get = entry.__getitem__
            offset = entry.pix_offset if loc.major >= 3 else get("pixel_offset")
            self.frames.append(
                _Frame(
                    axes=axes,
                    file=str(loc.level / str(get("filename"))),
                    pixel_offset=int(offset),
                    width=int(get("image_width")),
                    height=int(get("image_height")),
                    pixel_type=int(get("pixel_type")),
                    metadata_offset=int(get("metadata_offset")),
                    metadata_length=int(get("metadata_length")),
                )
            )

    def metadata(self, frame: _Frame) -> dict[str, Any]:
        """The per-image JSON metadata of ``frame``."""
        with _library(f"{frame.file}: image metadata of {dict(frame.axes)}"):
            if self.loc.major >= 3:
                md = self._level.read_metadata(**frame.axes)
            else:
                md = self._level.read_metadata(dict(frame.axes))
        if not isinstance(md, dict):
            raise SourceError(f"{frame.file}: image metadata of {dict(frame.axes)} is not a JSON object")
        return md

    def close(self) -> None:
        """Close every file ndtiff opened (ndtiff 3.1's pyramid ``close()`` is broken; not used)."""
        level = getattr(self, "_level", None)
        if level is not None:
            with contextlib.suppress(Exception):
                level.close()


# --------------------------------------------------------------------------------------------
# tiles


_POSITION_AXES = ("position", "row", "column")


def _order_key(value: Any) -> tuple[Any, ...]:
    """Sort key for axis values: None first, then numbers, then strings in natural order."""
    if value is None:
        return (0,)
    if isinstance(value, int):
        return (1, value)
    parts = re.split(r"([0-9]+)", str(value))
    return (2, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts))


def _position_key(pos: tuple[Any, Any, Any]) -> tuple[Any, ...]:
    """Positions in row, column, then position order."""
    position, row, col = pos
    return (_order_key(row), _order_key(col), _order_key(position))


def _affine_orientation(summary: Mapping[str, Any], md: Mapping[str, Any]) -> tuple[np.ndarray, str, float]:
    """(R, where from, residual rotation in degrees) of the pixel-to-stage affine; identity if none."""
    matrix: np.ndarray | None = None
    source = "none"
    text = md.get("PixelSizeAffine")
    if isinstance(text, str) and text.count(";") == 5:
        vals = [_number(v) for v in text.split(";")]
        if all(v is not None for v in vals):
            a = [float(v) for v in vals if v is not None]
            matrix, source = np.array([[a[0], a[1]], [a[3], a[4]]]), "PixelSizeAffine"
    if matrix is None or nearest_signed_permutation(matrix) is None:
        text = summary.get("AffineTransform")
        if isinstance(text, str) and text.count("_") == 3:
            vals = [_number(v) for v in text.split("_")]
            if all(v is not None for v in vals):
                m = [float(v) for v in vals if v is not None]  # Java getMatrix: m00, m10, m01, m11
                matrix, source = np.array([[m[0], m[2]], [m[1], m[3]]]), "AffineTransform"
    perm = nearest_signed_permutation(matrix) if matrix is not None else None
    if perm is None or matrix is None:
        return np.eye(2, dtype=int), "none", 0.0
    return perm, source, residual_rotation_deg(matrix, perm)


@dataclass
class _Group:
    """The frames of one tile before z runs are split: one position, time, channel (+ others)."""

    pos: tuple[Any, Any, Any]
    time: Any
    channel: Any
    others: tuple[tuple[str, Any], ...]
    planes: dict[Any, _Frame] = field(default_factory=dict)  # z value -> frame


class NDTiffReader(BaseReader):
    """Micro-Manager NDTiff datasets (v2, v3), read through ``ndtiff``; see the module docstring."""

    name: ClassVar[str] = "ndtiff"
    description: ClassVar[str] = "Micro-Manager NDTiff v2/v3 (pycromanager, AcqEngJ, Magellan)"
    extra: ClassVar[str | None] = "ndtiff"
    priority: ClassVar[int] = 20

    def sniff(self, path: str) -> bool:
        """Claim a folder with ``NDTiff.index`` (or ``Full resolution/NDTiff.index``) or NDTiff TIFFs."""
        p = Path(path)
        try:
            if p.is_dir():
                for folder in (p, p / FULL_RES):
                    if (folder / INDEX_NAME).is_file():
                        return True
                return bool(_ndtiff_tifs(p, limit=4) or _ndtiff_tifs(p / FULL_RES, limit=4))
            if p.is_file():
                if p.name == INDEX_NAME:
                    return True
                return p.suffix.lower() in (".tif", ".tiff") and _is_ndtiff_tif(p)
        except OSError:
            return False
        return False

    def check_dependencies(self) -> None:
        """Raise MissingDependencyError naming the extra if ``ndtiff`` is not installed."""
        if importlib.util.find_spec("ndtiff") is None:
            raise MissingDependencyError(f"the ndtiff reader needs the ndtiff package: {_INSTALL}")

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:
        """Return one tile per position, time point, channel (and RGB sample), metadata only."""
        self.check_dependencies()
        loc = _locate(path)
        ds = _Dataset(loc)
        try:
            return self._build(loc, ds, options)
        finally:
            ds.close()

    # -- building -------------------------------------------------------------------------------

    def _build(self, loc: _Located, ds: _Dataset, options: ReaderOptions) -> list[Tile]:
        where = str(loc.root)
        if not ds.frames:
            raise MetadataError(f"{loc.index}: the index lists no images")
        self._check_files(loc, ds.frames)
        names: set[str] = set()
        for fr in ds.frames:
            names.update(fr.axes)
        z_axis = "z" if "z" in names else ("Z" if "Z" in names else None)
        known = {*_POSITION_AXES, "time", "channel", z_axis}
        values: dict[str, set[Any]] = {}
        for fr in ds.frames:
            for n, v in fr.axes.items():
                values.setdefault(n, set()).add(v)
        others = sorted(n for n in names - known if len(values[n]) > 1)

        groups: dict[tuple[Any, ...], _Group] = {}
        for fr in ds.frames:
            a = fr.axes
            pos = (a.get("position"), a.get("row"), a.get("column"))
            oth = tuple((n, a.get(n)) for n in others)
            key = (pos, a.get("time"), a.get("channel"), oth)
            g = groups.get(key)
            if g is None:
                g = groups[key] = _Group(pos, a.get("time"), a.get("channel"), oth)
            z = a.get(z_axis, 0) if z_axis else 0
            if not isinstance(z, int):
                raise MetadataError(f"{where}: expected integer z axis values, got {z!r}")
            g.planes[z] = fr

        pos_order = {p: i for i, p in enumerate(sorted({g.pos for g in groups.values()}, key=_position_key))}
        ch_order = {c: i for i, c in enumerate(dict.fromkeys(g.channel for g in groups.values()))}
        times = sorted({g.time for g in groups.values()}, key=_order_key)
        if all(isinstance(t, int) for t in times):
            low = min(times)
            time_index = {t: (t if low >= 0 else t - low) for t in times}
        else:
            time_index = {t: i for i, t in enumerate(times)}
        ordered = sorted(
            groups.values(),
            key=lambda g: (pos_order[g.pos], time_index[g.time], ch_order[g.channel], g.others),
        )

        # split z runs; one representative metadata read per (position, time, first z)
        runs: list[tuple[_Group, list[Any]]] = []
        for g in ordered:
            zs = sorted(g.planes)
            run: list[Any] = [zs[0]]
            for z in zs[1:]:
                if z == run[-1] + 1 and g.planes[run[-1]].kind == g.planes[z].kind:
                    run.append(z)
                else:
                    runs.append((g, run))
                    run = [z]
            runs.append((g, run))
        cache: dict[tuple[Any, ...], dict[str, Any]] = {}

        def md_of(g: _Group, z: Any) -> dict[str, Any]:
            key = (g.pos, g.time, z)
            if key not in cache:
                cache[key] = ds.metadata(g.planes[z])
            return cache[key]

        summary = ds.summary
        channel_names = self._channel_names(groups, ch_order, summary, ds.metadata)
        position_names = self._position_names(groups, pos_order, md_of)
        hints = well_hints([position_names[p] for p in pos_order])
        override = option_pixel_size(options)
        ov_y = _number(summary.get("GridPixelOverlapY")) or 0.0
        ov_x = _number(summary.get("GridPixelOverlapX")) or 0.0
        z_step = _number(summary.get("z-step_um"))
        z_step = z_step if z_step is not None and z_step > 0 else None
        version = f"{loc.major}" if loc.minor is None else f"{loc.major}.{loc.minor}"

        pending: list[dict[str, Any]] = []
        for g, run in runs:
            first = g.planes[run[0]]
            md = md_of(g, run[0])
            dtype_code, samples, bits = self._pixel_type(first, where)
            pixel = self._pixel_size(summary, md, override, where)
            z_size, z0 = self._z(g, run, md, md_of, z_step, override, where)
            xy = self._stage_xy(md)
            perm, affine_from, rotation = _affine_orientation(summary, md)
            row = g.pos[1] if g.pos[1] is not None else md.get("GridRowIndex")
            col = g.pos[2] if g.pos[2] is not None else md.get("GridColumnIndex")
            pname = position_names[g.pos]
            well, fld = hints.get(pname, (None, 0))
            for sample in range(samples):
                label = channel_names[g.channel]
                if samples == 3:
                    label = _RGB[sample] if label in ("", "0") else f"{label}-{_RGB[sample]}"
                if g.others:
                    label += "/" + ",".join(f"{n}={v}" for n, v in g.others)
                pending.append(
                    {
                        "group": g,
                        "run": run,
                        "sample": sample,
                        "samples": samples,
                        "dtype": dtype_code,
                        "bits": bits,
                        "pixel": (z_size, pixel[0], pixel[1]),
                        "z0": z0,
                        "xy": xy,
                        "perm": perm,
                        "affine_from": affine_from,
                        "rotation": rotation,
                        "row": row,
                        "col": col,
                        "name": pname,
                        "well": well,
                        "field": fld,
                        "channel": label,
                        "time": time_index[g.time],
                    }
                )
        return self._place(loc, pending, options, (ov_y, ov_x), version, len(pos_order))

    def _place(
        self,
        loc: _Located,
        pending: list[dict[str, Any]],
        options: ReaderOptions,
        overlap: tuple[float, float],
        version: str,
        n_positions: int,
    ) -> list[Tile]:
        where = str(loc.root)
        tiles: list[Tile] = []
        missing = [p for p in pending if p["xy"] is None]
        if options.grid_layout:
            bad = [p for p in pending if _number(p["row"]) is None or _number(p["col"]) is None]
            if bad:
                raise MetadataError(
                    f"{where}: --grid needs row/column indices (axes 'row'/'column' or "
                    f"GridRowIndex/GridColumnIndex), but position {bad[0]['name']!r} has none"
                )
        elif missing and n_positions > 1:
            has_grid = all(_number(p["row"]) is not None and _number(p["col"]) is not None for p in pending)
            hint = (
                "; the dataset has row/column indices: pass ReaderOptions(grid_layout=True) (--grid) to "
                "place tiles on a grid"
                if has_grid
                else ""
            )
            raise MetadataError(
                f"{where}: no stage position (XPosition_um_Intended/YPosition_um_Intended or "
                f"XPositionUm/YPositionUm) for position {missing[0]['name']!r} of {n_positions}{hint}"
            )
        for p in pending:
            g: _Group = p["group"]
            run: list[Any] = p["run"]
            first: _Frame = g.planes[run[0]]
            height, width = first.height, first.width
            pz, py, px = p["pixel"]
            extra: dict[str, object] = {
                "format": "ndtiff",
                "ndtiff_version": version,
                "axes": {str(k): v for k, v in first.axes.items()},
                "bit_depth": p["bits"],
            }
            if p["row"] is not None and p["col"] is not None:
                extra["grid_row_column"] = [p["row"], p["col"]]
            if options.grid_layout:
                y = float(p["row"]) * (height - overlap[0]) * py
                x = float(p["col"]) * (width - overlap[1]) * px
                extra["position_source"] = "grid"
            elif p["xy"] is None:
                y = x = 0.0
                extra["position_source"] = "none (single position placed at the origin)"
            else:
                sx, sy, key = p["xy"]
                perm: np.ndarray = p["perm"]
                fx, fy = (perm.T @ np.array([sx, sy], dtype=float)).tolist()
                x = fx - width / 2 * px
                y = fy - height / 2 * py
                extra["stage_xy_um"] = [sx, sy]
                extra["position_source"] = f"{key} (image centre)"
                if p["affine_from"] != "none":
                    extra["orientation"] = {
                        "from": p["affine_from"],
                        "stage_from_image": perm.tolist(),
                        "residual_rotation_deg": round(p["rotation"], 4),
                    }
            sample = p["sample"]
            dtype = np.dtype(p["dtype"]) if p["dtype"] == "u1" else np.dtype(loc.byteorder + p["dtype"])
            if len({g.planes[z].file for z in run}) == 1:
                sources = [(run, first.file)]
            else:  # a stack split across files: one tile per file part
                sources = []
                for z in run:
                    f = g.planes[z].file
                    if sources and sources[-1][1] == f:
                        sources[-1][0].append(z)
                    else:
                        sources.append(([z], f))
            for part, file in sources:
                z_first = part[0]
                source = RawFileSource(
                    file,
                    [g.planes[z].pixel_offset for z in part],
                    (height, width),
                    dtype,
                    samples=p["samples"],
                    sample=sample,
                )
                tiles.append(
                    Tile(
                        tile_id=len(tiles),
                        source=source,
                        shape=(len(part), height, width),
                        dtype=dtype.newbyteorder("="),
                        position_um=(p["z0"] + (z_first - run[0]) * pz, y, x),
                        pixel_size_um=(pz, py, px),
                        channel=p["channel"],
                        time_index=p["time"],
                        well=p["well"],
                        field_index=p["field"],
                        name=p["name"],
                        extra=extra,
                    )
                )
        return tiles

    @staticmethod
    def _check_files(loc: _Located, frames: Sequence[_Frame]) -> None:
        sizes: dict[str, int] = {}
        for fr in frames:
            if fr.file not in sizes:
                try:
                    sizes[fr.file] = os.stat(fr.file).st_size
                except OSError:
                    count = sum(1 for f in frames if f.file == fr.file)
                    raise SourceError(
                        f"{fr.file}: missing: {loc.index} lists {count} image(s) in this file, which "
                        "does not exist"
                    ) from None
            spec = _PIXEL_TYPES.get(fr.pixel_type)
            bpp = (np.dtype(spec[0]).itemsize * spec[1]) if spec else 0
            end = max(fr.pixel_offset + fr.width * fr.height * bpp, fr.metadata_offset + fr.metadata_length)
            if end > sizes[fr.file]:
                raise SourceError(
                    f"{fr.file}: truncated: image {dict(fr.axes)} needs bytes up to {end}, the file has "
                    f"{sizes[fr.file]}"
                )

    @staticmethod
    def _pixel_type(frame: _Frame, where: str) -> tuple[str, int, int]:
        spec = _PIXEL_TYPES.get(frame.pixel_type)
        if spec is None:
            raise SourceError(
                f"{frame.file}: image {dict(frame.axes)} has unknown pixel type {frame.pixel_type}"
            )
        if frame.width < 1 or frame.height < 1:
            raise SourceError(
                f"{frame.file}: image {dict(frame.axes)} is {frame.width}×{frame.height} pixels"
            )
        return spec

    @staticmethod
    def _channel_names(
        groups: Mapping[tuple[Any, ...], _Group],
        ch_order: Mapping[Any, int],
        summary: Mapping[str, Any],
        read_md: Any,
    ) -> dict[Any, str]:
        names: dict[Any, str] = {}
        ch_names = summary.get("ChNames")
        from_md: dict[Any, str] = {}
        first_of: dict[Any, _Group] = {}
        for g in groups.values():
            first_of.setdefault(g.channel, g)
        for value in ch_order:
            if isinstance(value, str):
                continue
            g = first_of[value]
            md = read_md(g.planes[min(g.planes)])  # not the (position, time, z) cache: per channel
            text = md.get("Channel")
            from_md[value] = text.strip() if isinstance(text, str) else ""
        md_unique = len(set(from_md.values())) == len(from_md) and all(from_md.values())
        for value in ch_order:
            if isinstance(value, str):
                names[value] = value
            elif value is None:
                names[value] = from_md.get(value) or "0"
            elif isinstance(ch_names, list) and 0 <= value < len(ch_names) and str(ch_names[value]):
                names[value] = str(ch_names[value])
            elif md_unique:
                names[value] = from_md[value]
            else:
                names[value] = str(value)
        return names

    @staticmethod
    def _position_names(
        groups: Mapping[tuple[Any, ...], _Group], pos_order: Mapping[Any, int], md_of: Any
    ) -> dict[Any, str]:
        out: dict[Any, str] = {}
        first_at: dict[Any, _Group] = {}
        for g in groups.values():
            first_at.setdefault(g.pos, g)
        for pos in pos_order:
            position, row, col = pos
            if isinstance(position, str) and position:
                out[pos] = position
                continue
            g = first_at[pos]
            md = md_of(g, min(g.planes))
            pname = md.get("PositionName")
            if isinstance(pname, str) and pname.strip():
                out[pos] = pname.strip()
            elif position is not None:
                out[pos] = f"Pos{position}"
            elif row is not None or col is not None:
                out[pos] = f"row{row}_col{col}"
            else:
                out[pos] = ""
        if len(set(out.values())) != len(out):  # names must tell positions apart
            for pos in out:
                position, row, col = pos
                parts = [out[pos]] if out[pos] else []
                parts += [f"{n}{v}" for n, v in zip(("pos", "row", "col"), pos, strict=True) if v is not None]
                out[pos] = "_".join(parts)
        return out

    @staticmethod
    def _pixel_size(
        summary: Mapping[str, Any],
        md: Mapping[str, Any],
        override: tuple[float | None, float, float] | None,
        where: str,
    ) -> tuple[float, float]:
        if override is not None:
            return (override[1], override[2])
        for source in (summary.get("PixelSize_um"), md.get("PixelSize_um"), md.get("PixelSizeUm")):
            value = _number(source)
            if value is not None and value > 0:
                return (value, value)
        raise MetadataError(
            f"{where}: no pixel size (summary PixelSize_um is missing or 0); pass "
            "ReaderOptions(pixel_size_um=(y, x)) (--pixel-size)"
        )

    @staticmethod
    def _stage_xy(md: Mapping[str, Any]) -> tuple[float, float, str] | None:
        for kx, ky in (("XPosition_um_Intended", "YPosition_um_Intended"), ("XPositionUm", "YPositionUm")):
            x, y = _number(md.get(kx)), _number(md.get(ky))
            if x is not None and y is not None:
                return (x, y, f"{kx}/{ky}")
        return None

    @staticmethod
    def _z(
        g: _Group,
        run: list[Any],
        md: Mapping[str, Any],
        md_of: Any,
        z_step: float | None,
        override: tuple[float | None, float, float] | None,
        where: str,
    ) -> tuple[float, float]:
        """(z pixel size, z position of the run's first plane)."""

        def z_of(m: Mapping[str, Any]) -> float | None:
            for key in ("ZPosition_um_Intended", "ZPositionUm"):
                v = _number(m.get(key))
                if v is not None:
                    return v
            return None

        step = override[0] if override is not None and override[0] is not None else z_step
        if step is None and len(run) > 1:
            z_a, z_b = z_of(md), z_of(md_of(g, run[1]))
            if z_a is not None and z_b is not None and z_b != z_a:
                step = abs(z_b - z_a)
        if step is None:
            if len(run) > 1:
                raise MetadataError(
                    f"{where}: a z-stack of {len(run)} planes without a z step (z-step_um); pass "
                    "ReaderOptions(pixel_size_um=(z, y, x)) (--pixel-size Z Y X)"
                )
            step = 1.0
        z0 = z_of(md)
        if z0 is None:
            z0 = float(run[0]) * step if z_step is not None or len(run) > 1 else 0.0
        return step, z0
