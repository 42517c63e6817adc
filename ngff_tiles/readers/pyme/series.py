"""PYME cluster series (``.pcs``): local folders, globs of them, and the shared series logic.

A ``.pcs`` ("PYME cluster series") is a directory: ``metadata.json`` (flat, dotted keys),
``frameNNNNN.pzf`` (one PZF frame each), and at the end ``final_metadata.json`` and
``events.json`` (``reference/pyme.md`` §2). On a cluster, its files are spread over data servers;
on local disk, the union of the server roots holds the same tree. This module reads a series
through a :class:`~ngff_tiles.readers.pyme.cluster.ClusterClient` either way (a local folder is a
``file://`` server root), so local and remote series behave the same.

Source convention
-----------------
- Frames are PYME ``[x, y]`` arrays; tiles are (z, y, x) (see :mod:`.pzf`). Stage x runs along
  image columns, stage y along rows (PYME's primary-camera convention).
- A frame's stage position (µm) is the position of its pixel (0, 0): from ``Tiling.XPositions`` /
  ``Tiling.YPositions`` (one per T index, frames mapped to (c, z, t) by ``DimOrder``) when
  present, else from ``ScannerXPos`` / ``ScannerYPos`` events with PYME's frame mapping
  (:mod:`.events`), defaulting to ``Positioning.x/y``.
- The camera ROI origin (``Camera.ROIOriginX/Y``; legacy 1-based ``Camera.ROIPosX/Y``;
  ``Multiview.ROI0Origin`` for multiview cameras) × pixel size is added, so positions refer to
  the camera chip origin (PYME's ``Pyramid.x0/y0``) and series with different ROIs line up.
- ``CameraOrientation.Rotate`` swaps x and y of the tile centres, then ``FlipX`` / ``FlipY``
  mirror them (the camera runs against the stage); pixel data are never flipped. PYME's own
  tiling ignores these keys; they are all false for a primary camera.
- Pixel size from ``voxelsize.x/y`` (µm, or nm when ``voxelsize.units`` says so); z spacing of
  stacks from ``voxelsize.z``.
- Frames before ``Protocol.DataStartsAt`` and inside ``Protocol.DarkFrameRange`` are not tiles.
- The camera offset ``Camera.ADOffset`` is subtracted in the reader (saturating at 0) unless
  ``ReaderOptions.subtract_camera_offset`` is off.
- Series whose last frames or ``events.json`` are missing (PYME's finalise race) load with a
  warning naming what is missing; event-positioned series without ``events.json`` cannot be
  placed and are refused.
- Several series: each series's name (or its folder's name) that names a well (``B3``,
  ``B03_1``, ``Well_C4``...) becomes the tiles' well hint (all series or none); otherwise the plate
  layer can snap series to wells from stage positions (``--plate 96``).

Pixels are read lazily, one whole PZF frame at a time (``region_reads = False``), through the
process-wide decoded-frame cache.
"""

from __future__ import annotations

import glob as globmod
import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np

from ngff_tiles.errors import MetadataError, SourceError
from ngff_tiles.options import ReaderOptions
from ngff_tiles.readers._base import FRAME_CACHE, BaseReader, file_identity
from ngff_tiles.readers.pyme import events as ev
from ngff_tiles.readers.pyme import pzf
from ngff_tiles.readers.pyme.cluster import ClientSettings, ClusterClient, get_client
from ngff_tiles.tiles import FrameSource, Region, Tile, Well

__all__ = [
    "PZFSource",
    "PymeSeriesReader",
    "Series",
    "find_series",
    "load_series",
    "series_tiles",
]

log = logging.getLogger(__name__)

FRAME_NAME = re.compile(r"^frame(\d{5,9})\.pzf$")
SERIES_SUFFIX = ".pcs"
_GLOB_CHARS = frozenset("*?[")
_MAX_JSON = 64 << 20


# ---------------------------------------------------------------------------------------------
# pixels


def _plane_display(server: str, path: str) -> str:
    if server.startswith("file://"):
        return os.path.join(server[len("file://") :], *path.split("/"))
    return f"{server}/{path}"


class PZFSource(FrameSource):
    """One tile's PZF frames (one per z plane), each held by one of several servers.

    Parameters
    ----------
    servers
        The client's server list (the source re-creates its pooled client in each process).
    planes
        ``(server, path)`` of each z plane's frame.
    shape
        (z, y, x) of the tile.
    dtype
        Pixel type.
    dark
        Camera offset subtracted from every pixel (saturating at 0 for integer types); 0: none.
    settings
        Network settings.
    mirrors
        Per plane, other servers holding the same frame, tried in order when the first fails.
    """

    region_reads = False

    def __init__(
        self,
        servers: Sequence[str],
        planes: Sequence[tuple[str, str]],
        shape: tuple[int, int, int],
        dtype: Any,
        dark: float = 0.0,
        settings: ClientSettings | None = None,
        mirrors: Sequence[Sequence[str]] | None = None,
    ) -> None:
        self._servers = tuple(servers)
        self._planes = tuple((str(s), str(p)) for s, p in planes)
        self._mirrors = tuple(tuple(m) for m in mirrors) if mirrors else tuple(() for _ in self._planes)
        self._shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self._dtype = np.dtype(dtype)
        self._dark = float(dark)
        self._settings = settings or ClientSettings()

    @property
    def path(self) -> str:
        """The first plane's file or URL."""
        return _plane_display(*self._planes[0])

    def shape_hint(self) -> tuple[int, int, int]:
        """The tile's (z, y, x) shape."""
        return self._shape

    def _fetch(self, z: int) -> tuple[str, bytes]:
        server, path = self._planes[z]
        client = get_client(self._servers, self._settings)
        problems = []
        for candidate in (server, *self._mirrors[z]):
            try:
                body = client.get(candidate, path)
            except SourceError as exc:
                problems.append(str(exc))
                continue
            if body is not None:
                return _plane_display(candidate, path), body
            problems.append(f"{_plane_display(candidate, path)}: frame not found")
        raise SourceError("; ".join(problems))

    def _decode(self, z: int) -> np.ndarray:
        where, body = self._fetch(z)
        plane = pzf.decode_frame(body, where)
        if plane.shape != (1, *self._shape[1:]) or plane.dtype != self._dtype:
            raise SourceError(
                f"{where}: frame is {plane.shape[1:]} {plane.dtype}, the series' frames are "
                f"{self._shape[1:]} {self._dtype}"
            )
        out: np.ndarray = plane[0]
        return out

    def _plane(self, z: int) -> np.ndarray:
        server, path = self._planes[z]
        if server.startswith("file://"):
            key: Any = ("pzf", file_identity(_plane_display(server, path)))
        else:  # data servers refuse to overwrite a file: the URL identifies the bytes
            key = ("pzf", server, path)
        return FRAME_CACHE.get_or_decode(key, lambda: self._decode(z))

    def _read(self, region: Region) -> np.ndarray:
        zs, ys, xs = region
        out = np.stack([self._plane(z)[ys, xs] for z in range(zs.start, zs.stop)])
        dark = self._dark
        if dark:
            if out.dtype.kind in "ui":
                if float(dark).is_integer():
                    d = out.dtype.type(min(int(dark), int(np.iinfo(out.dtype).max)))
                    out = np.maximum(out, d) - d
                else:
                    f = np.rint(out.astype(np.float32) - np.float32(dark))
                    out = np.clip(f, 0, np.iinfo(out.dtype).max).astype(out.dtype)
            else:
                out = out - out.dtype.type(dark)
        return out

    def __repr__(self) -> str:
        return f"PZFSource({self.path!r}, {len(self._planes)} plane(s), dark={self._dark:g})"


# ---------------------------------------------------------------------------------------------
# series


@dataclass(frozen=True)
class Series:
    """A series' metadata and where its files are.

    Attributes
    ----------
    path
        Root-relative path (``user/2026_11_21/series_A.pcs``).
    where
        Display name: the local folder or the ``pyme-cluster://`` URL.
    metadata
        ``metadata.json`` updated with ``final_metadata.json``.
    events
        Parsed ``events.json``; None when the file is missing.
    frames
        Frame number -> servers holding ``frameNNNNN.pzf``.
    frame_names
        Frame number -> file name.
    has_final
        Whether ``final_metadata.json`` exists.
    """

    path: str
    where: str
    metadata: Mapping[str, Any]
    events: list[ev.Event] | None
    frames: Mapping[int, tuple[str, ...]]
    frame_names: Mapping[int, str]
    has_final: bool

    @property
    def name(self) -> str:
        """The series' folder name without ``.pcs``."""
        base = PurePosixPath(self.path).name
        return base[: -len(SERIES_SUFFIX)] if base.endswith(SERIES_SUFFIX) else base


def _json(client: ClusterClient, path: str, servers: Sequence[str], where: str) -> Any:
    server, body = client.get_any(path, servers, _MAX_JSON)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise SourceError(f"{_plane_display(server, path)}: not valid JSON: {exc}") from None


def load_series(
    client: ClusterClient,
    path: str,
    where: str,
    listing: Mapping[str, tuple[bool, tuple[str, ...]]] | None = None,
) -> Series:
    """Read a series' listing (unless given), metadata and events (no pixels).

    Raises
    ------
    SourceError
        No server holds the series, or it has neither metadata nor frames.
    """
    if listing is None:
        listing = client.listdir(path)
    if not listing:
        raise SourceError(f"{where}: no such series (not found on {', '.join(client.servers)})")
    frames: dict[int, tuple[str, ...]] = {}
    names: dict[int, str] = {}
    for name, (is_dir, servers) in listing.items():
        m = FRAME_NAME.match(name)
        if m and not is_dir:
            frames[int(m.group(1))] = servers
            names[int(m.group(1))] = name
    md: dict[str, Any] = {}
    for meta in ("metadata.json", "final_metadata.json"):
        if meta in listing and not listing[meta][0]:
            doc = _json(client, f"{path}/{meta}", listing[meta][1], where)
            if not isinstance(doc, dict):
                raise MetadataError(f"{where}/{meta}: expected a JSON object")
            md.update(doc)
    if not md:
        hint = (
            " (its files may be spread over several data-server roots: read them together as "
            "pyme-cluster:///<path> with --pyme-server file:///<root> for each root)"
            if frames and all(s.startswith("file://") for s in client.servers)
            else ""
        )
        raise SourceError(f"{where}: not a PYME series: no metadata.json{hint}")
    events = None
    if "events.json" in listing and not listing["events.json"][0]:
        events = ev.parse_events(
            _json(client, f"{path}/events.json", listing["events.json"][1], where), f"{where}/events.json"
        )
    return Series(
        path=path,
        where=where,
        metadata=md,
        events=events,
        frames=dict(sorted(frames.items())),
        frame_names=names,
        has_final="final_metadata.json" in listing,
    )


def _md_number(md: Mapping[str, Any], key: str, where: str, default: float | None = None) -> float | None:
    value = md.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool):
        raise MetadataError(f"{where}: metadata {key} is not a number ({value!r})")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise MetadataError(f"{where}: metadata {key} is not a number ({value!r})") from None
    if not math.isfinite(out):
        raise MetadataError(f"{where}: metadata {key} is not finite ({value!r})")
    return out


def _md_int(md: Mapping[str, Any], key: str, where: str, default: int) -> int:
    value = _md_number(md, key, where, default)
    assert value is not None
    if not value.is_integer():
        raise MetadataError(f"{where}: metadata {key} is not an integer ({md.get(key)!r})")
    return int(value)


def _pixel_size(md: Mapping[str, Any], options: ReaderOptions, where: str) -> tuple[float, float, float]:
    from ngff_tiles.readers.ndtiff import option_pixel_size

    override = option_pixel_size(options)
    units = str(md.get("voxelsize.units", "um")).strip().lower()
    factor = {"um": 1.0, "µm": 1.0, "micrometer": 1.0, "nm": 1e-3, "nanometer": 1e-3}.get(units)
    if factor is None:
        raise MetadataError(f"{where}: voxelsize.units {units!r} is not a length unit (um or nm)")
    pz = _md_number(md, "voxelsize.z", where)
    z = pz * factor if pz and pz > 0 else 1.0
    if override is not None:
        return (override[0] or z, override[1], override[2])
    px = _md_number(md, "voxelsize.x", where)
    py = _md_number(md, "voxelsize.y", where, px)
    if px is None or py is None or px <= 0 or py <= 0:
        raise MetadataError(
            f"{where}: no pixel size (voxelsize.x/voxelsize.y missing or not positive); give --pixel-size"
        )
    return (z, py * factor, px * factor)


def _roi_origin(md: Mapping[str, Any], where: str) -> tuple[float, float]:
    views = md.get("Multiview.ActiveViews")
    if views and md.get("Multiview.ROI0Origin") is not None:
        origin = md["Multiview.ROI0Origin"]
        try:
            mx, my = (float(v) for v in origin)
        except (TypeError, ValueError):
            raise MetadataError(f"{where}: Multiview.ROI0Origin is not an (x, y) pair: {origin!r}") from None
        return mx, my
    ox = _md_number(md, "Camera.ROIOriginX", where)
    oy = _md_number(md, "Camera.ROIOriginY", where)
    px = _md_number(md, "Camera.ROIPosX", where)  # legacy, 1-based
    py = _md_number(md, "Camera.ROIPosY", where)
    x = ox if ox is not None else (px - 1 if px is not None else 0.0)
    y = oy if oy is not None else (py - 1 if py is not None else 0.0)
    return x, y


def _frame_indices(md: Mapping[str, Any], where: str) -> tuple[str, int, int, int]:
    """DimOrder beyond XY and the sizes (SizeC, SizeZ, SizeT; SizeT -1 = unknown)."""
    order = str(md.get("DimOrder", "XYZTC")).upper()
    if sorted(order) != sorted("XYZTC") or not order.startswith("XY"):
        raise MetadataError(f"{where}: unsupported DimOrder {order!r}")
    size_c = max(1, _md_int(md, "SizeC", where, 1))
    size_z = max(1, _md_int(md, "SizeZ", where, 1))
    size_t = _md_int(md, "SizeT", where, -1)
    return order[2:], size_c, size_z, size_t


def _decompose(i: int, order: str, sizes: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for axis in order:  # first axis varies fastest
        n = sizes[axis]
        if n > 0:
            out[axis] = i % n
            i //= n
        else:
            out[axis] = i
            i = 0
    return out


def _data_frames(md: Mapping[str, Any], frames: Sequence[int], where: str) -> list[int]:
    start = _md_int(md, "Protocol.DataStartsAt", where, 0)
    dark = md.get("Protocol.DarkFrameRange")
    lo = hi = 0
    if isinstance(dark, (list, tuple)) and len(dark) == 2:
        try:
            lo, hi = int(dark[0]), int(dark[1])
        except (TypeError, ValueError):
            lo = hi = 0
    return [f for f in frames if f >= start and not lo <= f < hi]


def _orient(md: Mapping[str, Any], cx: float, cy: float) -> tuple[float, float]:
    if md.get("CameraOrientation.Rotate") is True:
        cx, cy = cy, cx
    if md.get("CameraOrientation.FlipX") is True:
        cx = -cx
    if md.get("CameraOrientation.FlipY") is True:
        cy = -cy
    return cx, cy


def series_tiles(
    series: Series,
    client: ClusterClient,
    options: ReaderOptions,
    *,
    first_id: int = 0,
    well: tuple[Well, int] | None = None,
) -> list[Tile]:
    """The tiles of one series (metadata and one frame header only).

    Parameters
    ----------
    series
        The loaded series.
    client
        The client that loaded it (its servers go into the frame sources).
    options
        Reader options (pixel size override, camera offset).
    first_id
        Tile id of the first tile.
    well
        Well and field hint for every tile of the series.
    """
    md, where = series.metadata, series.where
    if not series.frames:
        raise SourceError(f"{where}: the series has no frames (frameNNNNN.pzf)")
    missing_notes: list[str] = []
    if series.events is None:
        missing_notes.append("events.json")
    if not series.has_final:
        missing_notes.append("final_metadata.json")
    # shape and type from the first frame's header (local roots read only its 64 bytes)
    f0 = next(iter(series.frames))
    frame0 = f"{series.path}/{series.frame_names[f0]}"
    server0, head0 = client.get_any(frame0, series.frames[f0], head=64)
    head = pzf.read_header(head0, _plane_display(server0, frame0))
    dtype = head.dtype.newbyteorder("=")
    fz, fy, fx = head.shape_zyx
    pixel = _pixel_size(md, options, where)
    order, size_c, size_z, size_t = _frame_indices(md, where)
    if fz > 1 and size_z > 1:
        raise MetadataError(f"{where}: frames are 3-D ({fz} planes) and SizeZ is {size_z}: not supported")
    tiling = ev.tiling_positions(md, where)
    present = list(series.frames)
    n_known = max(present) + 1
    if tiling is not None:
        n_t = size_t if size_t > 0 else len(tiling[0])
        if len(tiling[0]) < n_t:
            raise MetadataError(
                f"{where}: Tiling.XPositions has {len(tiling[0])} positions for SizeT = {n_t} tiles"
            )
        expected = n_t * size_c * size_z
        how = "Tiling.XPositions/YPositions"
    else:
        if series.events is None:
            raise MetadataError(
                f"{where}: events.json is missing (the series was not finalised, a known PYME race) and "
                "there are no Tiling.XPositions: the stage positions of its frames are unknown"
            )
        n_t = 0
        xs, ys, last_event = ev.frame_positions(series.events, md, max(n_known, 1), where)
        expected = max(n_known, last_event + 1)
        if size_t > 0:
            expected = max(expected, size_t * size_c * size_z)
        how = "ScannerXPos/ScannerYPos events"
    missing = sorted(set(range(expected)) - set(present))
    if missing:
        shown = ", ".join(f"frame{m:05d}.pzf" for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        missing_notes.insert(0, f"{len(missing)} frame(s) ({shown})")
    if missing_notes:
        log.warning(
            "%s: incomplete series, missing %s; reading what is there", where, "; ".join(missing_notes)
        )
    dark = 0.0
    if options.subtract_camera_offset:
        dark = _md_number(md, "Camera.ADOffset", where, 0.0) or 0.0
    ox, oy = _roi_origin(md, where)
    sizes = {"C": size_c, "Z": size_z, "T": n_t if tiling is not None else -1}
    data = set(_data_frames(md, present, where))
    # group frames into tiles: (t, c) -> {z: frame}
    groups: dict[tuple[int, int], dict[int, int]] = {}
    for f in sorted(data):
        idx = _decompose(f, order, sizes) if (size_c > 1 or size_z > 1 or tiling is not None) else {}
        t, c, z = idx.get("T", f), idx.get("C", 0), idx.get("Z", 0)
        if tiling is None:
            t = f  # one tile per frame, placed by its own event position
            z = 0
        groups.setdefault((t, c), {})[z] = f
    tiles: list[Tile] = []
    nz = size_z if tiling is not None else 1
    for (t, c), planes in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if len(planes) < nz:
            log.warning(
                "%s: tile t=%d c=%d lacks %d of its %d z planes; skipped", where, t, c, nz - len(planes), nz
            )
            continue
        frame_list = [planes[z] for z in sorted(planes)]
        if tiling is not None:
            if t >= len(tiling[0]):
                raise MetadataError(f"{where}: frame {frame_list[0]} is tile {t}, beyond Tiling.XPositions")
            x_um, y_um = float(tiling[0][t]), float(tiling[1][t])
        else:
            x_um, y_um = float(xs[t]), float(ys[t])
        x_um += ox * pixel[2]
        y_um += oy * pixel[1]
        cx, cy = _orient(md, x_um + fx * pixel[2] / 2, y_um + fy * pixel[1] / 2)
        shape = (len(frame_list) * fz, fy, fx)
        source = PZFSource(
            client.servers,
            [(series.frames[f][0], f"{series.path}/{series.frame_names[f]}") for f in frame_list],
            shape,
            dtype,
            dark,
            client.settings,
            [series.frames[f][1:] for f in frame_list],
        )
        label = f"frame{frame_list[0]:05d}" if nz == 1 else f"t{t:04d}"
        tiles.append(
            Tile(
                tile_id=first_id + len(tiles),
                source=source,
                shape=shape,
                dtype=dtype,
                position_um=(0.0, cy - fy * pixel[1] / 2, cx - fx * pixel[2] / 2),
                pixel_size_um=pixel,
                channel=str(c),
                well=well[0] if well else None,
                field_index=well[1] if well else 0,
                name=f"{series.name}/{label}" + (f"/c{c}" if size_c > 1 else ""),
                extra={
                    "series": where,
                    "frames": frame_list,
                    "positions_from": how,
                    "stage_xy_um": (x_um - ox * pixel[2], y_um - oy * pixel[1]),
                    "camera_offset_subtracted": dark,
                },
            )
        )
    if not tiles:
        raise SourceError(f"{where}: no data frames (all frames are before Protocol.DataStartsAt or dark)")
    return tiles


def well_hints_for(series: Sequence[Series]) -> dict[str, tuple[Well, int]]:
    """Well hints keyed by series path: from the series names, else their folders' names."""
    from ngff_tiles.readers.ndtiff import well_hints

    for key in ("name", "folder"):
        names = [s.name if key == "name" else PurePosixPath(s.path).parent.name for s in series]
        hints = well_hints(names)
        if hints:
            return {s.path: hints[n] for s, n in zip(series, names, strict=True)}
    return {}


def tiles_of(
    client: ClusterClient,
    paths: Sequence[str],
    display: Sequence[str],
    options: ReaderOptions,
    listings: Mapping[str, Mapping[str, tuple[bool, tuple[str, ...]]]] | None = None,
) -> list[Tile]:
    """Load every series of ``paths`` (root-relative) and return their tiles, ids in order."""
    known = listings or {}
    loaded = [load_series(client, p, d, known.get(p)) for p, d in zip(paths, display, strict=True)]
    hints = well_hints_for(loaded) if len(loaded) > 1 else {}
    tiles: list[Tile] = []
    for s in loaded:
        tiles.extend(series_tiles(s, client, options, first_id=len(tiles), well=hints.get(s.path)))
    return tiles


# ---------------------------------------------------------------------------------------------
# local reader


def _entries(folder: str | os.PathLike[str]) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _is_series_dir(path: Path) -> bool:
    if not path.is_dir():
        return False
    if path.name.endswith(SERIES_SUFFIX):
        return True
    return (path / "metadata.json").is_file() and any(FRAME_NAME.match(e.name) for e in _entries(path))


def find_series(path: str, max_depth: int = 4) -> list[Path]:
    """The series a local input names: a series folder, a folder of them, or a glob pattern."""
    if _GLOB_CHARS & set(path):
        return [Path(p) for p in sorted(globmod.glob(path)) if _is_series_dir(Path(p))]
    root = Path(path)
    if _is_series_dir(root):
        return [root]
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        for e in _entries(folder):
            if not e.is_dir():
                continue
            p = Path(e.path)
            if _is_series_dir(p):
                found.append(p)
            elif depth < max_depth:
                walk(p, depth + 1)

    if root.is_dir():
        walk(root, 1)
    return found


class PymeSeriesReader(BaseReader):
    """PYME cluster series on local disk: a ``.pcs`` folder, a folder of them, or a glob."""

    name: ClassVar[str] = "pyme"
    description: ClassVar[str] = "PYME cluster series (.pcs folders of PZF frames) on local disk"
    extra: ClassVar[str | None] = None
    priority: ClassVar[int] = 20

    def sniff(self, path: str) -> bool:
        """Claim a ``.pcs`` folder, a glob matching some, or a folder holding them (two levels)."""
        if _GLOB_CHARS & set(path):
            return any(_is_series_dir(Path(p)) for p in globmod.glob(path)[:64])
        p = Path(path)
        if not p.is_dir():
            return False
        if _is_series_dir(p):
            return True
        for depth_one in _entries(p)[:256]:
            if not depth_one.is_dir():
                continue
            if depth_one.name.endswith(SERIES_SUFFIX):
                return True
            if any(e.name.endswith(SERIES_SUFFIX) and e.is_dir() for e in _entries(depth_one.path)):
                return True
        return False

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:
        """Return the tiles of every series ``path`` names."""
        found = find_series(path)
        if not found:
            raise SourceError(f"{path}: no PYME series (.pcs folder with metadata.json and frames) found")
        resolved = [p.resolve() for p in found]
        root = os.path.commonpath([str(p.parent) for p in resolved])
        rel = [p.relative_to(root).as_posix() for p in resolved]
        client = get_client(["file://" + root])
        return tiles_of(client, rel, [str(p) for p in found], options)
