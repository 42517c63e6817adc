"""BigDataViewer / BigStitcher datasets: SpimData XML with HDF5, OME-Zarr or N5 pixels.

The XML is parsed by :mod:`ngff_tiles.metadata.bdv` (hardened; loader paths must stay inside the
XML's folder unless ``ReaderOptions.allow_absolute_paths``). One tile per present view
(timepoint, setup). Loaders read here:

``bdv.hdf5``
    ``t{tp:05d}/s{setup:02d}/0/cells`` (z, y, x) in the HDF5 file, or in the ``<partition>`` file
    that holds the view. The dtype is the setup group's ``dataType`` attribute; without it the
    file is BDV's legacy layout, uint16 stored as int16, read back as uint16 (bit patterns kept).
    External links inside the HDF5 file are not followed (they could point anywhere); partitioned
    datasets are read from the partition files the XML lists.
``bdv.multimg.zarr`` (versions 1.0 and 3.0 and the attribute form)
    ``<zarr root>/<zgroup path>/0``: a 3-D (z, y, x) array, or 5-D (t, c, z, y, x) hyper-sliced at
    the zgroup's ``indicies`` (c, t), or at (0, 0) without them. Zarr v2 and v3.
``bdv.n5``
    ``setup{s}/timepoint{t}/s0`` of the N5 container (N5 lists dimensions x, y, z).

Source convention
-----------------
The view's model ``M`` (the product of its transforms in document order) maps pixel (x, y, z) to
world coordinates; the world unit comes from :meth:`SpimData.world_scale_um` (our own export's
record, BigStitcher's ``calibration``, or the voxel size). Physical µm are ``diag(s) · M``,
reordered to (z, y, x). ``position_um`` is the image of pixel (0, 0, 0); a view whose model is a
translation above ``diag(voxel size)`` is a plain tile, any other (rotation, shear, scaling
refinements) carries its full matrix as ``Tile.affine_um`` and is resampled by fusion. Tile ids
are the setup ids (single timepoint) or ``timepoint index * (max setup id + 1) + setup id``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ngff_tiles.errors import MetadataError, MissingDependencyError, SourceError
from ngff_tiles.metadata.bdv import SpimData, _voxel_um, parse_spimdata, unit_to_um
from ngff_tiles.options import ReaderOptions
from ngff_tiles.readers._base import BaseReader
from ngff_tiles.tiles import FrameSource, Region, Tile

__all__ = ["BdvReader", "H5Source", "N5Source", "ZarrSource", "bdv_tiles", "view_affine_zyx"]

log = logging.getLogger(__name__)

_INSTALL = "pip install 'ngff-tiles[bdv]'"
SWAP_XZ = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
"""Permutation between (x, y, z) and (z, y, x) homogeneous coordinates (its own inverse)."""

_LOCK = threading.Lock()
_TS: dict[tuple[int, str], Any] = {}  # opened tensorstores (they hold no file descriptors)


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise MissingDependencyError(f"reading BDV HDF5 needs h5py: {_INSTALL}") from None
    return h5py


class H5Source(FrameSource):
    """One view's level-0 ``cells`` dataset in a BDV HDF5 file (opened for each read).

    Parameters
    ----------
    file
        The HDF5 file.
    dataset
        Path of the dataset inside it.
    shape
        (z, y, x).
    legacy_uint16
        Reinterpret on-disk int16 as uint16 (BDV files without ``dataType``).
    """

    def __init__(self, file: str, dataset: str, shape: tuple[int, int, int], legacy_uint16: bool) -> None:
        self._file = file
        self._dataset = dataset
        self._shape = shape
        self._legacy = legacy_uint16

    @property
    def path(self) -> str:
        """The HDF5 file and dataset, for messages."""
        return f"{self._file}:{self._dataset}"

    def shape_hint(self) -> tuple[int, int, int]:
        """The (z, y, x) shape."""
        return self._shape

    def _read(self, region: Region) -> np.ndarray:
        # opened per read: HDF5 opens in well under a millisecond, and no descriptor outlives a read
        try:
            with _h5py().File(self._file, "r") as f:
                data = np.asarray(f[self._dataset][region])
        except (OSError, KeyError, ValueError) as exc:
            raise SourceError(f"{self.path}: cannot read {region}: {exc}") from None
        return data.view(np.uint16) if self._legacy and data.dtype == np.int16 else data

    def __repr__(self) -> str:
        return f"H5Source({self._file!r}, {self._dataset!r})"


class _TensorStoreSource(FrameSource):
    """A (z, y, x) view of an array opened with tensorstore, per process."""

    def __init__(
        self, spec: dict[str, Any], index: tuple[int, ...], shape: tuple[int, int, int], xyz: bool
    ) -> None:
        self._spec = json.dumps(spec, sort_keys=True)
        self._path = str(spec["kvstore"]["path"])
        self._index = index
        self._shape = shape
        self._xyz = xyz  # the array lists dimensions x, y, z (N5)

    @property
    def path(self) -> str:
        return self._path

    def shape_hint(self) -> tuple[int, int, int]:
        return self._shape

    def _store(self) -> Any:
        key = (os.getpid(), self._spec)
        with _LOCK:
            store = _TS.get(key)
        if store is None:
            import tensorstore as ts

            try:
                store = ts.open(json.loads(self._spec), open=True, read=True).result()
            except Exception as exc:
                raise SourceError(f"{self.path}: cannot open: {exc}") from None
            with _LOCK:
                _TS[key] = store
        return store

    def _read(self, region: Region) -> np.ndarray:
        z, y, x = region
        sel = (*self._index, x, y, z) if self._xyz else (*self._index, z, y, x)
        try:
            data = np.asarray(self._store()[sel].read().result())
        except Exception as exc:
            raise SourceError(f"{self.path}: cannot read {region}: {exc}") from None
        return np.ascontiguousarray(data.transpose(2, 1, 0)) if self._xyz else data


class ZarrSource(_TensorStoreSource):
    """A view in a ``bdv.multimg.zarr`` container: a 3-D or 5-D (t, c, z, y, x) level-0 array."""

    def __repr__(self) -> str:
        return f"ZarrSource({self.path!r}, index={self._index})"


class N5Source(_TensorStoreSource):
    """A view in a ``bdv.n5`` container (dimensions x, y, z on disk)."""

    def __repr__(self) -> str:
        return f"N5Source({self.path!r})"


# ---------------------------------------------------------------------------------------------
# geometry


def view_affine_zyx(
    sd: SpimData, timepoint: int, setup: int, scale: tuple[float, float, float] | None = None
) -> np.ndarray:
    """Return the 4×4 matrix mapping pixel (z, y, x, 1) of a view to physical (z, y, x, 1) µm.

    ``scale`` is :meth:`SpimData.world_scale_um` (computed when not given; pass it for many views).
    """
    if scale is None:
        scale, _ = sd.world_scale_um()
    a_xyz = np.diag([*scale, 1.0]) @ sd.model(timepoint, setup)
    out: np.ndarray = SWAP_XZ @ a_xyz @ SWAP_XZ
    return out


def _voxel_zyx(sd: SpimData, setup: int) -> tuple[float, float, float]:
    s = sd.setups[setup]
    if s.voxel_size_xyz is not None and unit_to_um(s.voxel_unit) is None:
        log.warning(
            "%s: setup %d has voxel size in %r; taking one unit as 1 µm", sd.source, setup, s.voxel_unit
        )
    x, y, z = _voxel_um(sd, s)  # the one conversion world_scale_um uses too
    return (z, y, x)


# ---------------------------------------------------------------------------------------------
# loaders


def _read_json(path: Path, source: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or exc}); referenced by {source}") from None
    except ValueError as exc:
        raise SourceError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SourceError(f"{path}: expected a JSON object")
    return doc


def _zarr_source(
    sd: SpimData, view: tuple[int, int]
) -> tuple[FrameSource, tuple[int, int, int], np.dtype[Any]]:
    loader = sd.loader
    assert loader.path is not None
    zg = loader.zgroups[view]
    image = (loader.path / zg.path).resolve()
    if loader.path not in image.parents and image != loader.path:
        raise MetadataError(f"{sd.source}: zgroup path {zg.path!r} leaves the zarr container {loader.path}")
    level = image / "0"
    try:
        if (level / "zarr.json").is_file():
            meta = _read_json(level / "zarr.json", sd.source)
            shape = [int(v) for v in meta.get("shape", [])]
            dtype = np.dtype(str(meta.get("data_type")))
            driver = "zarr3"
        elif (level / ".zarray").is_file():
            meta = _read_json(level / ".zarray", sd.source)
            shape = [int(v) for v in meta.get("shape", [])]
            dtype = np.dtype(meta.get("dtype")).newbyteorder("=")
            driver = "zarr"
        else:
            raise SourceError(f"{level}: no zarr array (level 0 of setup {view[1]}, timepoint {view[0]})")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"{level}: unreadable array metadata: {exc}") from None
    if min(shape, default=0) < 1:
        raise SourceError(f"{level}: empty array of shape {shape}")
    if len(shape) == 3:
        index: tuple[int, ...] = ()
        if zg.indices:
            raise SourceError(f"{level}: a 3-D array cannot be indexed by indicies {zg.indices}")
    elif len(shape) == 5:
        c, t = (*zg.indices, 0, 0)[:2] if zg.indices else (0, 0)
        if not zg.indices and (shape[0] != 1 or shape[1] != 1):
            raise SourceError(f"{level}: 5-D array with t={shape[0]}, c={shape[1]} needs zgroup indicies")
        if not (0 <= t < shape[0] and 0 <= c < shape[1]):
            raise SourceError(
                f"{level}: indicies (c={c}, t={t}) outside the array's t={shape[0]}, c={shape[1]}"
            )
        index = (t, c)
    else:
        raise SourceError(
            f"{level}: expected a 3-D (z, y, x) or 5-D (t, c, z, y, x) array, got {len(shape)}-D"
        )
    zyx = (shape[-3], shape[-2], shape[-1])
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(level)}}
    return ZarrSource(spec, index, zyx, xyz=False), zyx, dtype


_N5_TYPES = {"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64"}


def _n5_source(
    sd: SpimData, view: tuple[int, int]
) -> tuple[FrameSource, tuple[int, int, int], np.dtype[Any]]:
    assert sd.loader.path is not None
    tp, setup = view
    ds = (sd.loader.path / f"setup{setup}" / f"timepoint{tp}" / "s0").resolve()
    if sd.loader.path not in ds.parents:
        raise MetadataError(f"{sd.source}: N5 dataset {ds} leaves the container {sd.loader.path}")
    meta = _read_json(ds / "attributes.json", sd.source)
    dims = meta.get("dimensions")
    dtype_name = meta.get("dataType")
    if not isinstance(dims, list) or len(dims) != 3 or dtype_name not in _N5_TYPES:
        raise SourceError(
            f"{ds}: expected a 3-D N5 dataset, got dimensions {dims!r}, dataType {dtype_name!r}"
        )
    try:
        x, y, z = (int(v) for v in dims)
    except (TypeError, ValueError):
        raise SourceError(f"{ds}: dimensions {dims!r} are not integers") from None
    if min(x, y, z) < 1:
        raise SourceError(f"{ds}: empty dataset {dims!r}")
    spec = {"driver": "n5", "kvstore": {"driver": "file", "path": str(ds)}}
    return N5Source(spec, (), (z, y, x), xyz=True), (z, y, x), np.dtype(str(dtype_name))


def _h5_dataset(sd: SpimData, view: tuple[int, int]) -> str:
    return f"t{view[0]:05d}/s{view[1]:02d}/0/cells"


def _h5_file_for(sd: SpimData, view: tuple[int, int]) -> Path:
    tp, setup = view
    for path, tps, setups in sd.loader.partitions:
        if (tps is None or tp in tps) and (setups is None or setup in setups):
            return path
    assert sd.loader.path is not None
    return sd.loader.path


def _h5_sources(
    sd: SpimData, views: list[tuple[int, int]]
) -> dict[tuple[int, int], tuple[FrameSource, tuple[int, int, int], np.dtype[Any]]]:
    h5py = _h5py()
    assert sd.loader.path is not None
    master = str(sd.loader.path)
    for path in [sd.loader.path, *(p for p, _, _ in sd.loader.partitions)]:
        if not path.is_file():
            raise SourceError(f"{path}: HDF5 file not found (named by {sd.source})")
    out: dict[tuple[int, int], tuple[FrameSource, tuple[int, int, int], np.dtype[Any]]] = {}
    try:
        with h5py.File(master, "r") as mf:
            for view in views:
                setup_group = f"s{view[1]:02d}"
                data_type = mf[setup_group].attrs.get("dataType") if setup_group in mf else None
                if isinstance(data_type, bytes):
                    data_type = data_type.decode("utf-8", "replace")
                file = _h5_file_for(sd, view)
                name = _h5_dataset(sd, view)
                with h5py.File(str(file), "r") as f:
                    link = f.get(name, getlink=True)
                    if link is None:
                        raise SourceError(f"{file}: no dataset {name} (setup {view[1]}, timepoint {view[0]})")
                    if isinstance(link, h5py.ExternalLink):
                        raise SourceError(
                            f"{file}: {name} is an external link to {link.filename!r}; "
                            "external links are not followed (list partitions in the XML)"
                        )
                    ds = f[name]
                    if not isinstance(ds, h5py.Dataset) or ds.ndim != 3:
                        raise SourceError(f"{file}: {name} is not a 3-D dataset")
                    shape = (int(ds.shape[0]), int(ds.shape[1]), int(ds.shape[2]))
                    stored = np.dtype(ds.dtype)
                if min(shape) < 1:
                    raise SourceError(f"{file}: {name} is empty {shape}")
                legacy = data_type is None and stored == np.int16
                dtype = np.dtype(np.uint16) if legacy else stored
                if data_type is not None and np.dtype(str(data_type)) != stored:
                    raise SourceError(
                        f"{file}: {name} is {stored}, but {setup_group} says dataType {data_type!r}"
                    )
                out[view] = (H5Source(str(file), name, shape, legacy), shape, dtype)
    except OSError as exc:
        raise SourceError(f"{master}: cannot read as HDF5: {exc}") from None
    except TypeError as exc:
        raise SourceError(f"{master}: unexpected HDF5 content: {exc}") from None
    return out


# ---------------------------------------------------------------------------------------------
# tiles


def bdv_tiles(sd: SpimData) -> list[Tile]:
    """Return one tile per present view of a parsed SpimData document (metadata only)."""
    fmt = sd.loader.format
    views = sd.views()
    if not views:
        raise MetadataError(f"{sd.source}: every view is declared missing")
    if fmt == "bdv.hdf5":
        sources = _h5_sources(sd, views)
    elif fmt == "bdv.multimg.zarr":
        sources = {v: _zarr_source(sd, v) for v in views}
    elif fmt == "bdv.n5":
        sources = {v: _n5_source(sd, v) for v in views}
    else:
        raise MetadataError(
            f"{sd.source}: image loader {fmt!r} is not supported (bdv.hdf5, bdv.multimg.zarr and bdv.n5 are)"
        )
    scale, how = sd.world_scale_um()
    log.info("%s: world unit %s µm (x, y, z) from %s", sd.source, scale, how)
    voxels = {s: _voxel_zyx(sd, s) for s in sorted({s for _, s in views})}
    single_tp = len(sd.timepoints) == 1
    stride = max(sd.setups) + 1
    tiles: list[Tile] = []
    for view in views:
        tp, setup = view
        source, shape, dtype = sources[view]
        s = sd.setups[setup]
        if s.size_xyz is not None and tuple(reversed(s.size_xyz)) != shape:
            log.warning(
                "%s: setup %d <size> %s (x,y,z) differs from the data's %s (z,y,x); using the data's",
                sd.source,
                setup,
                s.size_xyz,
                shape,
            )
        a = view_affine_zyx(sd, tp, setup, scale)
        pos = (float(a[0, 3]), float(a[1, 3]), float(a[2, 3]))
        # the tile's name (shared by its channels), as other readers name positions
        name = sd.attribute_name("tile", setup) if "tile" in sd.attributes else None
        name = name or s.name or f"setup {setup}"
        tid = setup if single_tp else sd.timepoints.index(tp) * stride + setup
        try:
            tiles.append(
                Tile(
                    tile_id=tid,
                    source=source,
                    shape=shape,
                    dtype=dtype,
                    position_um=pos,
                    pixel_size_um=voxels[setup],
                    channel=sd.attribute_name("channel", setup) or "0",
                    time_index=tp,
                    name=name,
                    extra={
                        "bdv_setup": setup,
                        "bdv_timepoint": tp,
                        "bdv_transforms": [t.name or "" for t in sd.registrations.get(view, ())],
                        **{
                            f"bdv_{k}": sd.attribute_name(k, setup)
                            for k in ("tile", "illumination", "angle")
                            if k in s.attributes
                        },
                    },
                    affine_um=tuple((float(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in a),
                )
            )
        except ValueError as exc:
            raise MetadataError(f"{sd.source}: view (timepoint {tp}, setup {setup}): {exc}") from None
    return tiles


class BdvReader(BaseReader):
    """BigDataViewer / BigStitcher SpimData XML (HDF5, OME-Zarr and N5 loaders); see the module docstring."""

    name: ClassVar[str] = "bdv"
    description: ClassVar[str] = "BigDataViewer/BigStitcher XML (bdv.hdf5, bdv.multimg.zarr 1.0/3.0, bdv.n5)"
    extra: ClassVar[str | None] = "bdv"
    priority: ClassVar[int] = 20

    def sniff(self, path: str) -> bool:
        """Claim an ``.xml`` file whose first 4 KiB hold a ``<SpimData`` element."""
        p = Path(path)
        try:
            if p.suffix.lower() != ".xml" or not p.is_file():
                return False
            with open(p, "rb") as f:
                head = f.read(4096)
        except OSError:
            return False
        return b"<SpimData" in head

    def check_dependencies(self) -> None:
        """Raise MissingDependencyError if defusedxml (XML) or h5py (HDF5) is missing."""
        for module in ("defusedxml", "h5py"):
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError(f"the bdv reader needs {module}: {_INSTALL}")

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:
        """Return one tile per present view (timepoint, setup), metadata only."""
        self.check_dependencies()
        sd = parse_spimdata(path, allow_absolute_paths=options.allow_absolute_paths)
        return bdv_tiles(sd)
