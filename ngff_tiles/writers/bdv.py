"""Export tiles as a BigDataViewer / BigStitcher project: SpimData XML plus per-view pixels.

``ngff-tiles bdv export INPUT -o project.xml`` writes, next to ``project.xml``:

``--format zarr`` (default)
    ``project.ome.zarr/``, a Zarr v2 group holding one NGFF 0.4 image per view
    (``s{setup}-t{timepoint}.zarr``; axes t, c, z, y, x with t = c = 1; levels ``0``, ``1``, …
    halving y and x; ``translation`` = the stage position, so BigStitcher's own OME-Zarr importer
    places the tiles too), referenced with the ``bdv.multimg.zarr`` version 1.0 element form
    (``<zgroup setup timepoint><path>``), which both BigStitcher and bigdataviewer-omezarr read.
``--format h5``
    ``project.h5`` in the BDV HDF5 layout: ``t{tp:05d}/s{setup:02d}/{level}/cells`` (z, y, x),
    gzip, chunked by ``s{setup:02d}/subdivisions``; ``resolutions`` (x, y, z) per level; the
    pixel type is stored natively and named in the setup group's ``dataType`` attribute
    (bigdataviewer-core ≥ 10.4.7 convention, no int16 reinterpretation).

The XML follows BigStitcher's habits (``shared/reference/bdv.md`` §1, §7): world unit ``u`` = the
smallest voxel size over all tiles; per view two transforms, first ``ngff_tiles stage position``
(the stage translation in world units, or the tile's full affine for affine tiles), last
``calibration`` = ``diag(voxel / u)`` (BigStitcher's "Move Tiles to Regular Grid" and "Load Tile
Configuration" keep only the last transform). One ViewSetup per (tile, channel) that has data;
a setup absent at some timepoint is listed in ``<MissingViews>``. ``u`` and the tool version are
recorded in an ``<ngffTiles>`` element, which BigStitcher keeps when it saves.

Nothing is written over an existing file or folder unless ``overwrite``; pixels are written
first and the XML last, so a project without its XML is visibly incomplete.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ngff_tiles.errors import (
    LayoutError,
    MetadataError,
    MissingDependencyError,
    NgffTilesError,
    OutputExistsError,
)
from ngff_tiles.fusion.pyramid import downsample_mean, level_shapes
from ngff_tiles.metadata.bdv import (
    AttributeEntry,
    ViewSetup,
    ViewTransform,
    build_spimdata_xml,
)
from ngff_tiles.options import WriterOptions
from ngff_tiles.readers.bdv import SWAP_XZ
from ngff_tiles.tiles import Tile

__all__ = ["BdvExportResult", "export_bdv", "plan_views"]

STAGE_TRANSFORM = "ngff_tiles stage position"
MIN_LEVEL_SIZE = 256
"""Pyramid levels halve y and x until both fit this many pixels."""
SLAB_BYTES = 128 * 2**20
"""Tiles are copied a slab of z planes at a time, at most this many bytes."""


@dataclass(frozen=True, slots=True)
class BdvExportResult:
    """What an export wrote.

    Attributes
    ----------
    xml
        The SpimData XML.
    data
        The pixel container (``.ome.zarr`` folder or ``.h5`` file).
    setups
        Number of ViewSetups.
    views
        Number of views written (setups × timepoints present).
    world_unit_um
        The world unit ``u`` (smallest voxel size), µm.
    """

    xml: Path
    data: Path
    setups: int
    views: int
    world_unit_um: float


@dataclass(frozen=True, slots=True)
class _View:
    setup: int
    timepoint: int
    tile: Tile


def plan_views(tiles: Sequence[Tile]) -> tuple[list[ViewSetup], list[_View], list[str], list[int], float]:
    """Group tiles into ViewSetups (one per tile position and channel) and views.

    Returns the setups, the views, the channel names (attribute ids are their indices), the
    timepoints and the world unit ``u`` in µm.
    """
    if not tiles:
        raise LayoutError("no tiles to export")
    ordered = sorted(tiles, key=lambda t: t.tile_id)
    channels = list(dict.fromkeys(t.channel for t in ordered))
    places: dict[tuple[Any, ...], int] = {}
    place_of = [
        places.setdefault((t.name, t.position_um, t.shape, t.affine_um), len(places)) for t in ordered
    ]
    u = min(min(t.pixel_size_um) for t in ordered)
    # setup ids channel-major (channel * n_places + place), as npy2bdv numbers full grids
    first: dict[tuple[int, str], Tile] = {}
    for t, place in zip(ordered, place_of, strict=True):
        first.setdefault((place, t.channel), t)
    keys = sorted(first, key=lambda k: (channels.index(k[1]), k[0]))
    setup_of = {k: i for i, k in enumerate(keys)}
    setups: list[ViewSetup] = []
    for (place, channel), t in sorted(first.items(), key=lambda kv: setup_of[kv[0]]):
        base = t.name or f"tile_{place:04d}"
        pz, py, px = t.pixel_size_um
        setups.append(
            ViewSetup(
                id=setup_of[(place, channel)],
                name=base if len(channels) == 1 else f"{base}_{channel}",
                size_xyz=(t.shape[2], t.shape[1], t.shape[0]),
                voxel_size_xyz=(px, py, pz),
                voxel_unit="µm",
                attributes={"illumination": 0, "channel": channels.index(channel), "tile": place, "angle": 0},
            )
        )
    views: list[_View] = []
    seen: set[tuple[int, int]] = set()
    for t, place in zip(ordered, place_of, strict=True):
        sid = setup_of[(place, t.channel)]
        if (sid, t.time_index) in seen:
            raise LayoutError(
                f"{t.source.path}: two tiles at the same position, "
                f"channel {t.channel!r} and time {t.time_index}"
            )
        seen.add((sid, t.time_index))
        views.append(_View(sid, t.time_index, t))
    timepoints = sorted({v.timepoint for v in views})
    return setups, views, channels, timepoints, u


def _registration(tile: Tile, u: float) -> list[ViewTransform]:
    pz, py, px = tile.pixel_size_um
    cal = np.diag([px / u, py / u, pz / u, 1.0])
    calibration = ViewTransform.from_matrix(cal, "calibration")
    if tile.affine_um is None:
        z, y, x = tile.position_um
        return [ViewTransform.translation((x / u, y / u, z / u), STAGE_TRANSFORM), calibration]
    a_xyz = SWAP_XZ @ np.array(tile.affine_um, dtype=np.float64) @ SWAP_XZ
    top = np.diag([1 / u, 1 / u, 1 / u, 1.0]) @ a_xyz @ np.linalg.inv(cal)
    return [ViewTransform.from_matrix(top, STAGE_TRANSFORM), calibration]


def _levels(shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    return level_shapes(shape, (1, MIN_LEVEL_SIZE, MIN_LEVEL_SIZE), downsample_z=False, max_levels=None)


def _slab_depth(tile: Tile) -> int:
    plane = tile.shape[1] * tile.shape[2] * tile.dtype.itemsize
    return max(1, min(tile.shape[0], SLAB_BYTES // max(plane, 1)))


def _slabs(tile: Tile, depth: int) -> Any:
    """Yield (z0, [level0, level1, ...]) slabs of a tile, each level downsampled in y and x."""
    n_levels = len(_levels(tile.shape))
    for z0 in range(0, tile.shape[0], depth):
        z1 = min(z0 + depth, tile.shape[0])
        block = tile.read((slice(z0, z1), slice(0, tile.shape[1]), slice(0, tile.shape[2])))
        if block.shape != (z1 - z0, tile.shape[1], tile.shape[2]):
            raise NgffTilesError(
                f"{tile.source.path}: read {block.shape}, expected {(z1 - z0, *tile.shape[1:])}"
            )
        block = np.ascontiguousarray(block, dtype=tile.dtype)
        out = [block]
        for _ in range(1, n_levels):
            out.append(downsample_mean(out[-1], (1, 2, 2)))
        yield z0, out


# ---------------------------------------------------------------------------------------------
# OME-Zarr (bdv.multimg.zarr 1.0)


def _write_zarr_view(root: Path, view: _View, compression: str) -> None:
    from ngff_tiles.writers.ome_zarr import (
        build_multiscales,
        build_omero,
        create_level_arrays,
        finalize_image,
        percentile_window,
    )

    tile = view.tile
    image = root / f"s{view.setup}-t{view.timepoint}.zarr"
    image.mkdir(parents=True)
    shapes = _levels(tile.shape)
    depth = _slab_depth(tile)
    chunk_z = min(tile.shape[0], 32)
    # y and x chunks even (the OME-Zarr writer's block rule); a chunk may overhang the array
    chunks = (
        chunk_z,
        min(tile.shape[1] + tile.shape[1] % 2, 256),
        min(tile.shape[2] + tile.shape[2] % 2, 256),
    )
    options = WriterOptions(ngff_version="0.4", chunks=chunks, shards=chunks, compression=compression)  # type: ignore[arg-type]
    arrays = create_level_arrays(image, shapes, (1, 1), tile.dtype, options, threads=2)
    sample: np.ndarray | None = None
    for z0, levels in _slabs(tile, depth):
        for arr, block in zip(arrays, levels, strict=True):
            arr.write(0, 0, (z0, 0, 0), block)
        sample = levels[-1] if sample is None else sample
    factors = tuple((1, 2**k, 2**k) for k in range(len(shapes)))
    multiscales = build_multiscales(
        name=image.name,
        n_levels=len(shapes),
        pixel_size_um=tile.pixel_size_um,
        origin_um=tile.position_um,
        factors=factors,
        version="0.4",
    )
    window = percentile_window(sample) if sample is not None else (0.0, 1.0)
    omero = build_omero([tile.channel], tile.dtype, [window], "0.4", image.name)
    record = {"source": tile.source.path, "tile_id": tile.tile_id, "position_um": list(tile.position_um)}
    finalize_image(image, multiscales=multiscales, omero=omero, record=record, version="0.4")


def _zarr_loader(container: str, views: Sequence[_View]) -> ET.Element:
    loader = ET.Element("ImageLoader", {"format": "bdv.multimg.zarr", "version": "1.0"})
    ET.SubElement(loader, "zarr", {"type": "relative"}).text = container
    zgroups = ET.SubElement(loader, "zgroups")
    for v in sorted(views, key=lambda v: (v.timepoint, v.setup)):
        zg = ET.SubElement(zgroups, "zgroup", {"setup": str(v.setup), "timepoint": str(v.timepoint)})
        ET.SubElement(zg, "path").text = f"s{v.setup}-t{v.timepoint}.zarr"
    return loader


# ---------------------------------------------------------------------------------------------
# BDV HDF5


def _write_h5(path: Path, setups: Sequence[ViewSetup], views: Sequence[_View]) -> None:
    try:
        import h5py
    except ImportError:
        raise MissingDependencyError("BDV HDF5 export needs h5py: pip install 'ngff-tiles[bdv]'") from None
    with h5py.File(path, "w") as f:
        f.attrs[MARKER] = "bdv export"
        first: dict[int, Tile] = {}
        for v in views:
            first.setdefault(v.setup, v.tile)
        for s in setups:
            tile = first[s.id]
            shapes = _levels(tile.shape)
            g = f.create_group(f"s{s.id:02d}")
            res = np.array([[2.0**k, 2.0**k, 1.0] for k in range(len(shapes))], dtype=np.float64)
            sub = np.array([[min(64, x), min(64, y), min(z, 16)] for z, y, x in shapes], dtype=np.int32)
            g.create_dataset("resolutions", data=res)
            g.create_dataset("subdivisions", data=sub)
            g.attrs["dataType"] = np.dtype(tile.dtype).name
        for v in views:
            tile = v.tile
            shapes = _levels(tile.shape)
            dsets = []
            for k, shape in enumerate(shapes):
                chunk = (min(shape[0], 16), min(shape[1], 64), min(shape[2], 64))
                dsets.append(
                    f.create_dataset(
                        f"t{v.timepoint:05d}/s{v.setup:02d}/{k}/cells",
                        shape=shape,
                        dtype=tile.dtype,
                        chunks=chunk,
                        compression="gzip",
                        compression_opts=1,
                    )
                )
            for z0, levels in _slabs(tile, _slab_depth(tile)):
                for ds, block in zip(dsets, levels, strict=True):
                    ds[z0 : z0 + block.shape[0]] = block


def _h5_loader(name: str) -> ET.Element:
    loader = ET.Element("ImageLoader", {"format": "bdv.hdf5"})
    ET.SubElement(loader, "hdf5", {"type": "relative"}).text = name
    return loader


# ---------------------------------------------------------------------------------------------


MARKER = "ngff_tiles"
"""Attribute (Zarr container, HDF5 root) and XML element (``<ngffTiles>``) marking our exports."""


def _ours(path: Path) -> bool:
    """Whether ``path`` is an export of ours (only those are replaced by ``overwrite``)."""
    try:
        if path.is_dir():
            if not any(path.iterdir()):
                return True
            attrs = path / ".zattrs"
            return attrs.is_file() and MARKER in json.loads(attrs.read_text(encoding="utf-8"))
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if path.suffix == ".xml":
            return b"<ngffTiles " in head
        if head.startswith(b"\x89HDF\r\n\x1a\n"):
            import h5py

            with h5py.File(path, "r") as h5:
                return MARKER in h5.attrs
    except (OSError, ValueError):
        return False
    return False


def _check_replaceable(path: Path, overwrite: bool) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise OutputExistsError(f"{path}: exists; pass --overwrite to replace it")
    if path.is_symlink() or not _ours(path):
        raise OutputExistsError(
            f"{path}: exists and was not written by ngff-tiles bdv export; refusing to delete it"
        )


def _remove(path: Path) -> None:
    if path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def export_bdv(
    tiles: Sequence[Tile],
    xml: str | os.PathLike[str],
    *,
    format: Literal["zarr", "h5"] = "zarr",
    compression: str = "gzip",
    overwrite: bool = False,
    max_workers: int | None = None,
) -> BdvExportResult:
    """Write ``tiles`` as a BigStitcher project: pixels per view, then the SpimData XML.

    Parameters
    ----------
    tiles
        Tiles from any reader.
    xml
        The XML to write; the pixels go next to it (``<stem>.ome.zarr`` or ``<stem>.h5``).
    format
        ``zarr`` (OME-Zarr 0.4 per view, ``bdv.multimg.zarr`` 1.0) or ``h5`` (BDV HDF5).
    compression
        Zarr codec (``gzip`` default: every Fiji reads it; ``blosc-zstd``, ``zstd``, ``none``).
    overwrite
        Replace an existing XML and container.
    max_workers
        Views written in parallel (zarr only); one per core by default.
    """
    xml_path = Path(xml)
    if xml_path.suffix.lower() != ".xml":
        raise NgffTilesError(f"{xml_path}: the project file must end in .xml")
    if format not in ("zarr", "h5"):
        raise ValueError(f"Expected format 'zarr' or 'h5', got {format!r} instead")
    setups, views, channels, timepoints, u = plan_views(tiles)
    if not (u > 0 and math.isfinite(u)):
        raise MetadataError(f"{tiles[0].source.path}: bad pixel size {u}")
    stem = xml_path.name[: -len(".xml")]
    data = xml_path.with_name(f"{stem}.ome.zarr" if format == "zarr" else f"{stem}.h5")
    for path in (xml_path, data):  # both checked before either is touched
        _check_replaceable(path, overwrite)
    for path in (xml_path, data):
        _remove(path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    if format == "zarr":
        data.mkdir()
        (data / ".zgroup").write_text('{\n  "zarr_format": 2\n}\n', encoding="utf-8")
        (data / ".zattrs").write_text(
            json.dumps({MARKER: {"bdv_export": xml_path.name}}) + "\n", encoding="utf-8"
        )
        workers = max_workers or os.cpu_count() or 1
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            for fut in [pool.submit(_write_zarr_view, data, v, compression) for v in views]:
                fut.result()
        loader = _zarr_loader(data.name, views)
    else:
        _write_h5(data, setups, views)
        loader = _h5_loader(data.name)
    present = {(v.timepoint, v.setup) for v in views}
    missing = [(t, s.id) for t in timepoints for s in setups if (t, s.id) not in present]
    places: dict[int, AttributeEntry] = {}
    for v in views:
        place = setups[v.setup].attributes["tile"]
        z, y, x = v.tile.position_um
        places.setdefault(place, AttributeEntry(place, v.tile.name or f"tile_{place:04d}", (x, y, z)))
    from ngff_tiles import __version__

    doc = build_spimdata_xml(
        loader=loader,
        setups=setups,
        attributes={
            "illumination": [AttributeEntry(0, "0")],
            "channel": [AttributeEntry(i, c) for i, c in enumerate(channels)],
            "tile": [places[k] for k in sorted(places)],
            "angle": [AttributeEntry(0, "0")],
        },
        timepoints=timepoints,
        missing=missing,
        registrations={(v.timepoint, v.setup): _registration(v.tile, u) for v in views},
        provenance={"version": __version__, "worldUnitUm": repr(float(u))},
        # H5: npy2bdv's ecosystem (its editor needs "range"); Zarr: BigStitcher's own "pattern"
        timepoints_form="range" if format == "h5" else "pattern",
    )
    tmp = xml_path.with_name(f".{xml_path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(doc)
    os.replace(tmp, xml_path)
    return BdvExportResult(xml_path, data, len(setups), len(views), float(u))
