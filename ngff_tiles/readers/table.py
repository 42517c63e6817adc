"""The tile table: a CSV or JSON list of image files and their stage positions in µm.

The format is ngff-tiles' own (JSON Schema: ``schemas/tile-table.schema.json``). Each row names a
TIFF (OME or plain; its first series, 2-D or a z-stack) and the stage position of its pixel
(0, 0), i.e. the tile's corner, in µm::

    path,x_um,y_um,z_um,channel,time,well,field,pixel_size_um
    A01_f0.tif,0,0,0,DAPI,0,A1,0,0.65
    A01_f1.tif,600,0,0,DAPI,0,A1,1,0.65

The JSON form is either a list of such rows or ``{"pixel_size_um": ..., "tiles": [rows]}``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ngff_tiles.errors import MetadataError, SourceError
from ngff_tiles.options import ReaderOptions
from ngff_tiles.readers._base import BaseReader
from ngff_tiles.tiles import Tile, Well

__all__ = ["COLUMNS", "TileTableReader", "label_tiles", "load_document"]

COLUMNS: dict[str, str] = {
    "path": "image file, relative to the table's folder or absolute (required)",
    "x_um": "stage x of the tile's pixel (0, 0) in µm (required)",
    "y_um": "stage y of the tile's pixel (0, 0) in µm (required)",
    "z_um": "stage z of the first plane in µm (default 0)",
    "channel": "channel name (default: from the file, else '0')",
    "time": "time point index >= 0 (default 0)",
    "well": "plate well such as 'B3' (row letters, column number)",
    "field": "field index within the well >= 0 (default 0)",
    "pixel_size_um": "pixel size in y and x in µm (default: the table's, else the file's)",
    "pixel_size_z_um": "z spacing in µm (default: the table's, else the file's)",
    "name": "tile name (default: the file name)",
    "labels": "label image (integer ids, 0 = background) of the tile: a TIFF of its shape (optional)",
}
"""Columns (CSV) and row keys (JSON) of a tile table."""

_TOP_LEVEL = ("$schema", "pixel_size_um", "pixel_size_z_um", "tiles")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_WELL = re.compile(r"^([A-Za-z]+)0*([0-9]+)$")
_FLOAT_COLUMNS = ("x_um", "y_um", "z_um", "pixel_size_um", "pixel_size_z_um")
_INT_COLUMNS = ("time", "field")


def _csv_value(column: str, text: str) -> Any:
    """Convert a CSV cell as JSON would hold it; values that do not parse stay strings."""
    text = text.strip()
    if column in _FLOAT_COLUMNS and _NUMBER.match(text):
        return float(text)
    if column in _INT_COLUMNS and _INTEGER.match(text):
        return int(text)
    return text


def _read_csv(path: Path) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, skipinitialspace=True)
            rows: list[dict[str, Any]] = []
            lines: list[int] = []
            header: list[str] | None = None
            for cells in reader:
                if not cells or all(not c.strip() for c in cells):
                    continue
                if header is None:
                    header = [c.strip() for c in cells]
                    continue
                if len(cells) > len(header):
                    raise MetadataError(
                        f"{path}: line {reader.line_num}: expected at most {len(header)} cells, "
                        f"got {len(cells)}"
                    )
                row = {
                    name: _csv_value(name, cell)
                    for name, cell in zip(header, cells, strict=False)
                    if cell.strip() != ""
                }
                rows.append(row)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path}: cannot read the tile table: {exc}") from None
    return rows, lines, header or []


def _reject_constant(name: str) -> str:
    return name  # NaN / Infinity stay strings, so they fail as "not a number"


def load_document(path: str | os.PathLike[str]) -> Any:
    """Return a tile table in its JSON form (CSV rows become a list of objects).

    CSV cells of the numeric columns become numbers when they parse as finite numbers, and stay
    strings otherwise; JSON ``NaN``/``Infinity`` become strings. The result can be checked against
    ``schemas/tile-table.schema.json``.
    """
    p = Path(path)
    if p.suffix.lower() == ".csv":
        return _read_csv(p)[0]
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{p}: cannot read the tile table: {exc}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MetadataError(f"{p}: invalid JSON: {exc}") from None
    except RecursionError:
        raise MetadataError(f"{p}: invalid tile table: JSON nested too deeply") from None


def _number(value: Any, where: str, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MetadataError(f"{where}: expected a number for {name}, got {value!r} instead")
    out = float(value)
    if not math.isfinite(out):
        raise MetadataError(f"{where}: expected a finite number for {name}, got {value!r} instead")
    if positive and out <= 0:
        raise MetadataError(f"{where}: expected a positive {name}, got {value!r} instead")
    return out


def _index(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MetadataError(f"{where}: expected a non-negative integer for {name}, got {value!r} instead")
    return value


def _text(value: Any, where: str, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise MetadataError(f"{where}: expected a non-empty string for {name}, got {value!r} instead")
    return str(value).strip()


def _well(value: Any, where: str) -> Well:
    text = _text(value, where, "well")
    m = _WELL.match(text)
    if m is None:
        raise MetadataError(f"{where}: expected a well like 'B3' (row letters, column number), got {text!r}")
    return Well(m.group(1).upper(), str(int(m.group(2))))


class _Row:
    """One validated table row."""

    __slots__ = (
        "channel",
        "field",
        "labels",
        "name",
        "number",
        "path",
        "pixel_size",
        "pixel_size_z",
        "position",
        "time",
        "well",
        "where",
    )

    def __init__(self, row: Any, number: int, where: str) -> None:
        self.number = number
        self.where = where
        if not isinstance(row, Mapping):
            raise MetadataError(f"{where}: expected an object with path, x_um, y_um, got {row!r} instead")
        unknown = sorted(set(row) - set(COLUMNS))
        if unknown:
            raise MetadataError(
                f"{where}: unknown column(s) {', '.join(map(repr, unknown))}; expected some of "
                f"{', '.join(COLUMNS)}"
            )
        for required in ("path", "x_um", "y_um"):
            if required not in row:
                raise MetadataError(f"{where}: missing {required}")
        self.path = _text(row["path"], where, "path")
        x = _number(row["x_um"], where, "x_um")
        y = _number(row["y_um"], where, "y_um")
        z = _number(row["z_um"], where, "z_um") if "z_um" in row else 0.0
        self.position = (z, y, x)
        self.channel = _text(row["channel"], where, "channel") if "channel" in row else None
        self.time = _index(row["time"], where, "time") if "time" in row else None
        self.field = _index(row["field"], where, "field") if "field" in row else 0
        self.well = _well(row["well"], where) if "well" in row else None
        self.name = _text(row["name"], where, "name") if "name" in row else None
        self.labels = _text(row["labels"], where, "labels") if "labels" in row else None
        self.pixel_size = (
            _number(row["pixel_size_um"], where, "pixel_size_um", positive=True)
            if "pixel_size_um" in row
            else None
        )
        self.pixel_size_z = (
            _number(row["pixel_size_z_um"], where, "pixel_size_z_um", positive=True)
            if "pixel_size_z_um" in row
            else None
        )


def _parse(path: Path) -> tuple[list[_Row], float | None, float | None]:
    """Validate a table; return its rows and the table-wide pixel sizes (y/x, z)."""
    table_xy: float | None = None
    table_z: float | None = None
    if path.suffix.lower() == ".csv":
        raw_rows, lines, header = _read_csv(path)
        if "x_um" not in header or "y_um" not in header:
            raise MetadataError(
                f"{path}: no stage positions: expected columns x_um and y_um, found "
                f"{', '.join(header) or 'no header'}"
            )
        wheres = [f"{path}: row {i + 1} (line {line})" for i, line in enumerate(lines)]
    else:
        doc = load_document(path)
        if isinstance(doc, Mapping):
            unknown = sorted(set(doc) - set(_TOP_LEVEL))
            if unknown:
                raise MetadataError(
                    f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; expected "
                    f"{', '.join(_TOP_LEVEL[1:])}"
                )
            if "tiles" not in doc:
                raise MetadataError(f"{path}: expected a 'tiles' list, found none")
            if "pixel_size_um" in doc:
                table_xy = _number(doc["pixel_size_um"], str(path), "pixel_size_um", positive=True)
            if "pixel_size_z_um" in doc:
                table_z = _number(doc["pixel_size_z_um"], str(path), "pixel_size_z_um", positive=True)
            doc = doc["tiles"]
        if not isinstance(doc, list):
            raise MetadataError(
                f"{path}: expected a list of rows or an object with 'tiles', got {type(doc).__name__}"
            )
        raw_rows = doc
        if raw_rows and all(isinstance(r, Mapping) and "x_um" not in r and "y_um" not in r for r in raw_rows):
            raise MetadataError(
                f"{path}: no stage positions: expected x_um and y_um in every row, found none"
            )
        wheres = [f"{path}: row {i + 1}" for i in range(len(raw_rows))]
    if not raw_rows:
        raise MetadataError(f"{path}: the tile table has no rows")
    rows = [_Row(r, i + 1, where) for i, (r, where) in enumerate(zip(raw_rows, wheres, strict=True))]
    return rows, table_xy, table_z


class TileTableReader(BaseReader):
    """A CSV or JSON tile table: TIFF files with stage positions in µm.

    Source convention: ``x_um``/``y_um``/``z_um`` are the stage position of pixel (0, 0) of the
    frame (the tile's corner), already in µm; they become ``position_um`` (z, y, x) unchanged.
    Paths are relative to the table's folder (or absolute). Each row's image is the first series of
    a TIFF (OME or plain, 2-D or a z-stack); a file with several channels or time points yields one
    tile per channel/time point unless the row names them. Pixel size: ``ReaderOptions.pixel_size_um``
    overrides the row's ``pixel_size_um``, then the table's, then the file's; none is an error, as
    are mixed pixel sizes or pixel types, duplicate (path, channel, time) rows and non-finite
    positions. Tiles keep the row order.
    """

    name: ClassVar[str] = "tile-table"
    description: ClassVar[str] = "CSV/JSON tile table (path, x_um, y_um, ...) of TIFF files"
    priority: ClassVar[int] = 30

    def sniff(self, path: str) -> bool:
        """Claim ``*.csv`` whose header names x_um, or ``*.json`` (list/object) that mentions x_um."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix not in (".csv", ".json"):
            return False
        try:
            if not p.is_file():
                return False
            with open(p, "rb") as fh:
                head = fh.read(1 << 20)
        except OSError:
            return False
        if suffix == ".csv":
            first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
            return b"x_um" in first
        text = head.lstrip(b"\xef\xbb\xbf").lstrip()
        return text[:1] in (b"[", b"{") and b"x_um" in head

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:
        """Return one tile per row (and per channel/time point of multi-channel files)."""
        from ngff_tiles.readers.tiff import _OpenTiffs, _option_pixel_size, describe_tiff

        table = Path(path)
        if not table.is_file():
            raise SourceError(f"{path}: file not found")
        rows, table_xy, table_z = _parse(table)
        override = _option_pixel_size(options)
        folder = table.resolve().parent
        tiles: list[Tile] = []
        seen: dict[tuple[str, str, int], int] = {}
        placed: dict[tuple[Any, ...], int] = {}
        sizes: list[tuple[tuple[float, float, float], str]] = []
        with _OpenTiffs() as files:
            for row in rows:
                file = _row_file(folder, row.path, row.where, "image")
                image = describe_tiff(str(file), 0, options=options, _files=files)
                channels = {s.channel for s in image.stacks}
                times = {s.time_index for s in image.stacks}
                if row.channel is not None and len(channels) > 1:
                    raise MetadataError(
                        f"{row.where}: {row.path} has {len(channels)} channels; leave 'channel' empty to "
                        "take them all, or give one single-channel file per row"
                    )
                if row.time is not None and len(times) > 1:
                    raise MetadataError(
                        f"{row.where}: {row.path} has {len(times)} time points; leave 'time' empty to "
                        "take them all, or give one file per time point"
                    )
                file_size = image.pixel_size_um
                yx = row.pixel_size or table_xy
                if override is not None:
                    y, x = override[1], override[2]
                elif yx is not None:
                    y = x = yx
                elif file_size is not None:
                    y, x = file_size[1], file_size[2]
                else:
                    raise MetadataError(
                        f"{row.where}: no pixel size for {row.path}: the table has no pixel_size_um and "
                        "the file states none; add a pixel_size_um column or pass "
                        "ReaderOptions(pixel_size_um=...) (--pixel-size)"
                    )
                nz = max(s.shape[0] for s in image.stacks)
                z = override[0] if override is not None and override[0] is not None else None
                if z is None:
                    z = row.pixel_size_z or table_z
                if z is None and file_size is not None:
                    z = file_size[0]
                if z is None:
                    if nz > 1:
                        raise MetadataError(
                            f"{row.where}: {row.path} is a z-stack of {nz} planes without a z spacing; "
                            "add pixel_size_z_um"
                        )
                    z = 1.0
                pixel_size = (z, y, x)
                for stack in image.stacks:
                    channel = row.channel if row.channel is not None else stack.channel
                    time = row.time if row.time is not None else stack.time_index
                    key = (str(file.resolve()), channel, time)
                    if key in seen:
                        raise MetadataError(
                            f"{row.where}: duplicate of row {seen[key]}: same path {row.path!r}, "
                            f"channel {channel!r} and time {time}"
                        )
                    seen[key] = row.number
                    spot = (row.position, channel, time, row.well, row.field)
                    if placed.setdefault(spot, row.number) != row.number:
                        raise MetadataError(
                            f"{row.where}: {row.path} is at the same position as row {placed[spot]} "
                            f"({', '.join(f'{v:g}' for v in row.position)} µm (z, y, x), channel "
                            f"{channel!r}, time {time}); two images cannot occupy one place"
                        )
                    sizes.append((pixel_size, row.path))
                    tiles.append(
                        Tile(
                            tile_id=len(tiles),
                            source=stack.source,
                            shape=stack.shape,
                            dtype=stack.dtype,
                            position_um=row.position,
                            pixel_size_um=pixel_size,
                            channel=channel,
                            time_index=time,
                            well=row.well,
                            field_index=row.field,
                            name=row.name or image.name,
                            extra={
                                "reader": self.name,
                                "table": str(table),
                                "row": row.number,
                                "file": str(file),
                            },
                        )
                    )
        return _check_consistent(tiles, sizes, table)


def _check_consistent(
    tiles: Sequence[Tile], sizes: Sequence[tuple[tuple[float, float, float], str]], table: Path
) -> list[Tile]:
    """Check one (y, x) pixel size, one z spacing among z-stacks and one pixel type.

    The z spacing of single-plane tiles is meaningless; they take the z-stacks' spacing (or the
    first tile's), so all tiles end up with one pixel size.
    """
    first_size, first_file = sizes[0]
    for size, file in sizes[1:]:
        if any(not math.isclose(a, b, rel_tol=1e-9) for a, b in zip(size[1:], first_size[1:], strict=True)):
            raise MetadataError(
                f"{table}: tiles have different pixel sizes (y, x): {first_size[1:]} µm ({first_file}) "
                f"and {size[1:]} µm ({file}); a tile table needs one pixel size"
            )
    stacks = [(size, file) for (size, file), tile in zip(sizes, tiles, strict=True) if tile.shape[0] > 1]
    z = stacks[0][0][0] if stacks else first_size[0]
    for size, file in stacks[1:]:
        if not math.isclose(size[0], z, rel_tol=1e-9):
            raise MetadataError(
                f"{table}: z-stacks have different z spacings: {z} µm ({stacks[0][1]}) and "
                f"{size[0]} µm ({file})"
            )
    first = tiles[0]
    for tile in tiles[1:]:
        if tile.dtype != first.dtype:
            raise MetadataError(
                f"{table}: tiles have different pixel types: {first.dtype} ({first.extra['file']}) and "
                f"{tile.dtype} ({tile.extra['file']})"
            )
    pixel_size = (z, first_size[1], first_size[2])
    return [
        t if t.pixel_size_um == pixel_size else dataclasses.replace(t, pixel_size_um=pixel_size)
        for t in tiles
    ]


def _row_file(folder: Path, name: str, where: str, what: str) -> Path:
    """The file a row names (relative to the table's ``folder`` or absolute); SourceError if none."""
    file = Path(name) if os.path.isabs(name) else folder / name
    try:
        found = file.is_file()
    except OSError as exc:  # e.g. a name too long
        raise SourceError(f"{where}: {what} file {name!r}: {exc.strerror}") from None
    if not found:
        raise SourceError(f"{where}: {what} file {name!r} not found ({file})")
    return file


def label_tiles(path: str | os.PathLike[str], options: ReaderOptions | None = None) -> list[Tile]:
    """Return the label tiles a table names in its ``labels`` column (empty when it has none).

    Each label tile sits at its row's position (time from the row, else the file's) with the
    pixel size of the row or table (else the file's, else 1 µm): label tiles are placed where
    the image tile at the same position goes, so only the position matters. Tile ids follow the
    row order. A row without ``labels`` has no label tile (its pixels get no object).
    """
    from ngff_tiles.readers.tiff import _OpenTiffs, describe_tiff

    options = options or ReaderOptions()
    table = Path(path)
    rows, table_xy, table_z = _parse(table)
    folder = table.resolve().parent
    tiles: list[Tile] = []
    with _OpenTiffs() as files:
        for row in rows:
            if row.labels is None:
                continue
            file = _row_file(folder, row.labels, row.where, "label")
            image = describe_tiff(str(file), 0, options=options, _files=files)
            if len(image.stacks) > 1:
                raise MetadataError(
                    f"{row.where}: label file {row.labels} has several channels or time points; "
                    "give one single-channel label image per row"
                )
            stack = image.stacks[0]
            file_size = image.pixel_size_um
            yx = row.pixel_size or table_xy or (file_size[1] if file_size is not None else 1.0)
            z = row.pixel_size_z or table_z or (file_size[0] if file_size is not None else None) or 1.0
            tiles.append(
                Tile(
                    tile_id=len(tiles),
                    source=stack.source,
                    shape=stack.shape,
                    dtype=stack.dtype,
                    position_um=row.position,
                    pixel_size_um=(z, yx, yx),
                    channel="labels",
                    time_index=row.time if row.time is not None else stack.time_index,
                    name=row.name or file.name,
                    extra={"reader": "tile-table", "table": str(table), "row": row.number, "file": str(file)},
                )
            )
    return tiles
