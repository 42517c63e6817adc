"""HCS plates: geometries, well assignment, field grouping, and the plate map.

Wells come from, in order of precedence: an explicit mapping file (``PlateOptions.well_map``), the
readers' well hints (``Tile.well``: Micro-Manager/NDTiff names such as ``A1-Site_0``, ND2 plate
metadata, OME ``Plate/Well``, tile-table ``well`` columns), or snapping each tile's centre to the
nearest well centre of a plate geometry (``PlateOptions.snap``, or when there are no hints but a
geometry is given).

Snapping convention: rows (A, B, ...) run along +y and columns (1, 2, ...) along +x of the stage,
after the layout's orientation options; the pitch is the geometry's. A tile whose centre lies more
than ``AMBIGUOUS_FRACTION`` of a pitch from the nearest well centre along x or y is refused: it sits
between wells and no well can be claimed for it.
"""

from __future__ import annotations

import csv
import json
import math
import string
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ngff_tiles.errors import LayoutError, MetadataError
from ngff_tiles.options import LayoutOptions, PlateOptions
from ngff_tiles.tiles import Tile, Well

__all__ = [
    "AMBIGUOUS_FRACTION",
    "GEOMETRIES",
    "PlateGeometry",
    "PlateLayout",
    "WellImage",
    "assign_plate",
    "parse_well",
    "plate_map",
    "row_name",
]

AMBIGUOUS_FRACTION = 0.4


@dataclass(frozen=True, slots=True)
class PlateGeometry:
    """A standard (ANSI/SLAS 1-2004 footprint) plate.

    Attributes
    ----------
    wells
        Number of wells.
    rows, columns
        Grid size.
    pitch_um
        Centre-to-centre well distance.
    a1_offset_um
        (x, y) of the A1 centre from the plate's top-left corner (typical values; vendors differ
        by a few hundred µm, so give ``a1_um`` for snapping when wells are small).
    """

    wells: int
    rows: int
    columns: int
    pitch_um: float
    a1_offset_um: tuple[float, float]


GEOMETRIES: dict[int, PlateGeometry] = {
    g.wells: g
    for g in (
        PlateGeometry(6, 2, 3, 39120.0, (24760.0, 23160.0)),
        PlateGeometry(12, 3, 4, 26010.0, (24940.0, 16680.0)),
        PlateGeometry(24, 4, 6, 19300.0, (17460.0, 13780.0)),
        PlateGeometry(48, 6, 8, 13080.0, (18160.0, 10080.0)),
        PlateGeometry(96, 8, 12, 9000.0, (14380.0, 11240.0)),
        PlateGeometry(384, 16, 24, 4500.0, (12130.0, 8990.0)),
        PlateGeometry(1536, 32, 48, 2250.0, (11005.0, 7865.0)),
    )
}


def row_name(index: int) -> str:
    """Return the row name of a 0-based row index: A..Z, then AA, AB, ... (1536-well plates)."""
    if index < 26:
        return string.ascii_uppercase[index]
    return string.ascii_uppercase[index // 26 - 1] + string.ascii_uppercase[index % 26]


def _row_index(name: str) -> int:
    name = name.upper()
    if len(name) == 1:
        return string.ascii_uppercase.index(name)
    return (string.ascii_uppercase.index(name[0]) + 1) * 26 + string.ascii_uppercase.index(name[1])


def parse_well(text: str) -> Well:
    """Parse ``"B3"``, ``"B03"``, ``"b/3"`` or ``"AF48"`` into a :class:`Well` (column without zeros)."""
    s = text.strip().replace("/", "").replace("-", "").replace("_", "")
    letters = "".join(ch for ch in s if ch.isalpha())
    digits = s[len(letters) :]
    if not letters or len(letters) > 2 or not digits.isdigit() or not s.startswith(letters):
        raise MetadataError(f"Expected a well name like B3 or B03, got {text!r} instead")
    return Well(letters.upper(), str(int(digits)))


@dataclass(frozen=True, slots=True)
class WellImage:
    """One image of the plate: a well's fused tiles, or one field of it.

    Attributes
    ----------
    well
        The well.
    field
        Field path inside the well (``"0"``, ``"1"``, ...).
    tiles
        The tiles of this image.
    """

    well: Well
    field: str
    tiles: tuple[Tile, ...]

    @property
    def path(self) -> str:
        """Store path of the image: ``"<row>/<column>/<field>"``."""
        return f"{self.well.path}/{self.field}"


@dataclass(frozen=True, slots=True)
class PlateLayout:
    """Which tiles go to which well and field, and the plate's full row and column lists.

    Attributes
    ----------
    images
        Every image, ordered by row, column, field.
    rows, columns
        Every row and column name of the physical plate (the metadata lists them all).
    geometry
        The plate geometry, when known.
    how
        How wells were assigned: ``"hints"``, ``"map"`` or ``"snap"``.
    """

    images: tuple[WellImage, ...]
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    geometry: PlateGeometry | None
    how: str

    @property
    def wells(self) -> list[Well]:
        """The occupied wells, in plate order."""
        out: list[Well] = []
        for im in self.images:
            if im.well not in out:
                out.append(im.well)
        return out

    def field_count(self) -> int:
        """The largest number of fields in any well."""
        counts: dict[Well, int] = defaultdict(int)
        for im in self.images:
            counts[im.well] += 1
        return max(counts.values())


def _load_well_map(path: str) -> dict[str, Well]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read well map: {exc.strerror}") from None
    pairs: list[tuple[str, str]] = []
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise MetadataError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
            raise MetadataError(f'{path}: expected an object {{"tile name": "B3", ...}}')
        pairs = [(str(k), v) for k, v in doc.items()]
    else:
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or not {"name", "well"} <= set(rows[0]):
            raise MetadataError(f"{path}: expected CSV columns 'name,well'")
        pairs = [(r["name"], r["well"]) for r in rows]
    out: dict[str, Well] = {}
    for line, (name, well) in enumerate(pairs, start=2):
        try:
            out[name.strip()] = parse_well(well)
        except MetadataError as exc:
            raise MetadataError(f"{path}: entry {line}: {exc}") from None
    return out


def _centre_xy(tile: Tile, layout: LayoutOptions) -> tuple[float, float]:
    _, cy, cx = tile.center_um
    if layout.swap_xy:
        cy, cx = cx, cy
    return (-cx if layout.flip_x else cx, -cy if layout.flip_y else cy)


def _circular_phase(values: Sequence[float], pitch: float) -> float:
    ang = [2 * math.pi * (v / pitch) for v in values]
    s = sum(math.sin(a) for a in ang)
    c = sum(math.cos(a) for a in ang)
    return (math.atan2(s, c) / (2 * math.pi)) * pitch


def _snap(
    tiles: Sequence[Tile], geometry: PlateGeometry, options: PlateOptions, layout: LayoutOptions
) -> dict[int, Well]:
    pitch = geometry.pitch_um
    centres = {t.tile_id: _centre_xy(t, layout) for t in tiles}
    if options.a1_um is not None:
        ox, oy = options.a1_um
        inferred = False
    else:
        ox = _circular_phase([c[0] for c in centres.values()], pitch)
        oy = _circular_phase([c[1] for c in centres.values()], pitch)
        inferred = True
    index: dict[int, tuple[int, int]] = {}
    for t in tiles:
        x, y = centres[t.tile_id]
        fc, fr = (x - ox) / pitch, (y - oy) / pitch
        c, r = round(fc), round(fr)
        if abs(fc - c) > AMBIGUOUS_FRACTION or abs(fr - r) > AMBIGUOUS_FRACTION:
            raise LayoutError(
                f"{t.source.path}: tile {t.name or t.tile_id} at stage ({x:.1f}, {y:.1f}) µm lies "
                f"between wells (offset {abs(fc - c):.2f}, {abs(fr - r):.2f} of the {pitch:g} µm pitch "
                "from the nearest well centre); give --a1-um or a --well-map"
            )
        index[t.tile_id] = (r, c)
    if inferred:
        r0 = min(r for r, _ in index.values())
        c0 = min(c for _, c in index.values())
        index = {k: (r - r0, c - c0) for k, (r, c) in index.items()}
    out: dict[int, Well] = {}
    for t in tiles:
        r, c = index[t.tile_id]
        if not (0 <= r < geometry.rows and 0 <= c < geometry.columns):
            raise LayoutError(
                f"{t.source.path}: tile {t.name or t.tile_id} snaps to row {r + 1}, column {c + 1}, "
                f"outside a {geometry.wells}-well plate; check --a1-um and the orientation options"
            )
        out[t.tile_id] = Well(row_name(r), str(c + 1))
    return out


def _smallest_geometry(wells: Sequence[Well]) -> PlateGeometry | None:
    """The smallest standard plate holding ``wells`` (None for non-numeric column names)."""
    if not all(w.column.isdigit() for w in wells):
        return None
    rows = max(_row_index(w.row) for w in wells) + 1
    cols = max(int(w.column) for w in wells)
    for g in sorted(GEOMETRIES.values(), key=lambda g: g.wells):
        if rows <= g.rows and cols <= g.columns:
            return g
    return None


def _fields(tiles: Sequence[Tile], keep: bool) -> list[tuple[str, tuple[Tile, ...]]]:
    if not keep:
        return [("0", tuple(sorted(tiles, key=lambda t: t.tile_id)))]
    groups: dict[tuple[float, ...], list[Tile]] = defaultdict(list)
    hinted = any(t.field_index for t in tiles)
    for t in tiles:
        key: tuple[float, ...] = (
            (float(t.field_index),) if hinted else tuple(round(v, 2) for v in t.position_um[1:])
        )
        groups[key].append(t)
    ordered = sorted(groups.items(), key=lambda kv: kv[0])
    return [(str(i), tuple(sorted(g, key=lambda t: t.tile_id))) for i, (_, g) in enumerate(ordered)]


def assign_plate(
    tiles: Sequence[Tile], options: PlateOptions, layout: LayoutOptions | None = None
) -> PlateLayout:
    """Group ``tiles`` into wells and fields.

    Parameters
    ----------
    tiles
        All tiles of the plate.
    options
        Geometry, snapping, mapping and field options.
    layout
        Orientation options (snapping uses oriented stage coordinates).

    Returns
    -------
    PlateLayout
        Images per well/field and the plate's row and column names.
    """
    layout = layout or LayoutOptions()
    if not tiles:
        raise LayoutError("no tiles to place on a plate")
    geometry = GEOMETRIES.get(options.geometry) if options.geometry is not None else None
    if options.geometry is not None and geometry is None:
        raise LayoutError(f"unknown plate type {options.geometry}; expected one of {sorted(GEOMETRIES)}")
    wells: dict[int, Well]
    if options.well_map is not None:
        mapping = _load_well_map(options.well_map)
        wells = {}
        for t in tiles:
            key = next((k for k in (t.name, Path(t.source.path).name, t.source.path) if k in mapping), None)
            if key is None:
                raise LayoutError(f"{options.well_map}: no well given for tile {t.name!r} ({t.source.path})")
            wells[t.tile_id] = mapping[key]
        how = "map"
    elif options.snap or (geometry is not None and any(t.well is None for t in tiles)):
        if geometry is None:
            raise LayoutError("snapping to wells needs a plate type (--plate 96, 384, ...)")
        wells = _snap(tiles, geometry, options, layout)
        how = "snap"
    else:
        missing = [t for t in tiles if t.well is None]
        if missing:
            t = missing[0]
            raise LayoutError(
                f"{t.source.path}: tile {t.name or t.tile_id} has no well; give --plate N to snap "
                "positions to wells, or a --well-map"
            )
        wells = {t.tile_id: t.well for t in tiles if t.well is not None}
        how = "hints"
    by_well: dict[Well, list[Tile]] = defaultdict(list)
    for t in tiles:
        w = wells[t.tile_id]
        by_well[w].append(replace(t, well=w) if t.well != w else t)
    if geometry is None:
        geometry = _smallest_geometry(list(by_well))
    if geometry is not None:
        rows = tuple(row_name(i) for i in range(geometry.rows))
        columns = tuple(str(i + 1) for i in range(geometry.columns))
        for w in by_well:
            if w.row not in rows or w.column not in columns:
                raise LayoutError(f"well {w} is outside a {geometry.wells}-well plate")
    else:  # non-numeric columns: list what is there
        rows = tuple(sorted({w.row for w in by_well}, key=_row_index))
        columns = tuple(sorted({w.column for w in by_well}))
    images: list[WellImage] = []
    for w in sorted(by_well, key=lambda w: (rows.index(w.row), columns.index(w.column))):
        for field, group in _fields(by_well[w], options.fields == "keep"):
            images.append(WellImage(w, field, group))
    return PlateLayout(tuple(images), rows, columns, geometry, how)


def plate_map(plate: PlateLayout, counts: Mapping[Well, int] | None = None) -> str:
    """Return a text map of the plate: fields (or tiles) per occupied well, ``.`` for empty wells."""
    if counts is None:
        per: dict[Well, int] = defaultdict(int)
        for im in plate.images:
            per[im.well] += 1
        counts = per
    width = max(3, *(len(c) + 1 for c in plate.columns))
    lines = [" " * 3 + "".join(f"{c:>{width}}" for c in plate.columns)]
    for r in plate.rows:
        cells = []
        for c in plate.columns:
            n = counts.get(Well(r, c), 0)
            cells.append(f"{n if n else '.':>{width}}")
        lines.append(f"{r:>3}" + "".join(cells))
    return "\n".join(lines)
