"""The currency between stages: :class:`Tile`, :class:`Well` and :class:`FrameSource`.

No I/O happens here. A reader yields tiles; layout places them; fusion reads their pixels through
``tile.source.read(region)``, possibly on another process, so sources pickle.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["FrameSource", "Region", "Tile", "Well", "full_region", "region_shape"]

Region = tuple[slice, slice, slice]
"""A (z, y, x) box of a tile, as three slices with explicit, non-negative start and stop."""


def full_region(shape: tuple[int, int, int]) -> Region:
    """Return the region covering a whole tile of ``shape`` (z, y, x)."""
    return (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))


def region_shape(region: Region) -> tuple[int, int, int]:
    """Return the (z, y, x) shape of a normalised region."""
    z, y, x = region
    return (z.stop - z.start, y.stop - y.start, x.stop - x.start)


class FrameSource(abc.ABC):
    """Where a tile's pixels live; picklable, opens files lazily in the reading process.

    Subclasses implement :meth:`_read`. Sources that can only decode whole frames still accept a
    region (they decode and slice) and set ``region_reads = False`` so the scheduler can plan.
    """

    region_reads: bool = True

    @property
    @abc.abstractmethod
    def path(self) -> str:
        """The file (or URL) the pixels come from, for messages and provenance."""

    @abc.abstractmethod
    def _read(self, region: Region) -> np.ndarray:
        """Read ``region`` (normalised) and return a (z, y, x) array."""

    def read(self, region: Region | None = None, *, shape: tuple[int, int, int] | None = None) -> np.ndarray:
        """Read the (z, y, x) ``region`` of the tile (the whole tile when ``None``).

        Parameters
        ----------
        region
            Three slices with explicit start and stop, in tile pixel coordinates.
        shape
            The tile's shape, needed only when ``region`` is ``None``.
        """
        if region is None:
            if shape is None:
                shape = self.shape_hint()
            region = full_region(shape)
        try:
            return self._read(region)
        except OSError as exc:  # an I/O error, a file gone or unreadable mid-run: name the file
            from ngff_tiles.errors import SourceError

            raise SourceError(f"{exc.filename or self.path}: cannot read: {exc.strerror or exc}") from exc

    def shape_hint(self) -> tuple[int, int, int]:
        """Return the tile shape when a source knows it; used by ``read()`` without a region."""
        raise TypeError(f"{type(self).__name__}.read() needs a region or shape")


class ArraySource(FrameSource):
    """An in-memory (z, y, x) array; for tests and for pipelines that already hold pixels."""

    def __init__(self, array: np.ndarray, name: str = "<array>") -> None:
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise ValueError(f"Expected a 2-D or 3-D array, got {array.ndim}-D instead")
        self._array = array
        self._name = name

    @property
    def path(self) -> str:
        return self._name

    def shape_hint(self) -> tuple[int, int, int]:
        z, y, x = self._array.shape
        return (z, y, x)

    def _read(self, region: Region) -> np.ndarray:
        return self._array[region]


@dataclass(frozen=True, slots=True)
class Well:
    """A well of a plate: row name (``"B"``) and column name (``"3"``)."""

    row: str
    column: str

    def __post_init__(self) -> None:
        for what, value in (("row", self.row), ("column", self.column)):
            if not value or not value.isalnum():
                raise ValueError(f"Expected an alphanumeric well {what}, got {value!r} instead")

    @property
    def path(self) -> str:
        """The NGFF well path ``"<row>/<column>"``."""
        return f"{self.row}/{self.column}"

    def __str__(self) -> str:
        return f"{self.row}{self.column}"


_EMPTY: Mapping[str, object] = MappingProxyType({})


def _check_triplet(name: str, value: Any, positive: bool) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"Expected three numbers for {name}, got {value!r} instead") from None
    if len(out) != 3:
        raise ValueError(f"Expected three numbers (z, y, x) for {name}, got {len(out)} instead")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"Expected finite numbers for {name}, got {out} instead")
    if positive and not all(v > 0 for v in out):
        raise ValueError(f"Expected positive numbers for {name}, got {out} instead")
    return (out[0], out[1], out[2])


def _check_affine(
    value: Any, position: tuple[float, float, float], pixel: tuple[float, float, float]
) -> tuple[tuple[float, float, float, float], ...] | None:
    """Validate a 4×4 (z, y, x) pixel-to-µm affine; ``None`` when it is a plain translation."""
    try:
        m = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"Expected a 4x4 matrix of numbers for affine_um, got {value!r} instead") from None
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise ValueError(f"Expected a finite 4x4 matrix for affine_um, got shape {m.shape} instead")
    if not np.array_equal(m[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"Expected the last row of affine_um to be (0, 0, 0, 1), got {m[3].tolist()}")
    scale = float(np.abs(m[:3, :3]).max())
    # the determinant of the matrix scaled to a largest entry of 1: no overflow for huge entries
    if scale == 0 or abs(float(np.linalg.det(m[:3, :3] / scale))) < 1e-12:
        raise ValueError("Expected an invertible affine_um, got a singular matrix")
    if not np.allclose(m[:3, 3], position, rtol=1e-9, atol=1e-9):
        raise ValueError(
            f"Expected the translation of affine_um {m[:3, 3].tolist()} to equal position_um {position}"
        )
    if np.allclose(m[:3, :3], np.diag(pixel), rtol=0.0, atol=1e-9 * scale):
        return None
    rows = tuple((float(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in m)
    return rows


@dataclass(frozen=True, slots=True, kw_only=True)
class Tile:
    """One frame (or z-stack) of one channel at one time point, placed in stage space.

    Attributes
    ----------
    tile_id
        Stable integer id; the BDV ViewSetup id and the key of refined transforms on import.
    source
        Where the pixels are; ``source.read(region)`` returns a (z, y, x) array.
    shape
        (z, y, x) in pixels; 2-D frames have ``z == 1``.
    dtype
        Pixel type as stored.
    position_um
        Physical (z, y, x) coordinate in µm of pixel index (0, 0, 0) (its corner, not its centre).
    pixel_size_um
        (z, y, x) pixel size in µm.
    channel
        Channel name.
    time_index
        Time point index.
    well, field_index
        Plate membership, when the reader knows it.
    name
        Human-readable tile name (position label), for ``info`` and provenance.
    extra
        Provenance only; nothing downstream branches on it.
    affine_um
        Optional 4×4 matrix (nested tuples) mapping the homogeneous pixel index (z, y, x, 1) to
        physical (z, y, x, 1) in µm, for tiles under a general affine (rotation, shear, scale
        refinements from BigStitcher). Its translation column must equal ``position_um``. An affine
        that is only ``diag(pixel_size_um)`` plus a translation is stored as ``None``: such tiles
        stay on the translation fast path. ``None`` (default): pixel (z, y, x) lies at
        ``position_um + (z, y, x) * pixel_size_um``.
    """

    tile_id: int
    source: FrameSource
    shape: tuple[int, int, int]
    dtype: np.dtype[Any]
    position_um: tuple[float, float, float]
    pixel_size_um: tuple[float, float, float]
    channel: str = "0"
    time_index: int = 0
    well: Well | None = None
    field_index: int = 0
    name: str = ""
    extra: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    affine_um: tuple[tuple[float, float, float, float], ...] | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"Expected a positive (z, y, x) shape, got {self.shape!r} instead")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "position_um", _check_triplet("position_um", self.position_um, False))
        object.__setattr__(self, "pixel_size_um", _check_triplet("pixel_size_um", self.pixel_size_um, True))
        if not isinstance(self.extra, MappingProxyType):
            object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        if self.affine_um is not None:
            affine = _check_affine(self.affine_um, self.position_um, self.pixel_size_um)
            object.__setattr__(self, "affine_um", affine)

    def __getstate__(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name in self.__dataclass_fields__}
        state["extra"] = dict(self.extra)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, MappingProxyType(value) if name == "extra" else value)

    @property
    def extent_um(self) -> tuple[float, float, float]:
        """Physical (z, y, x) size of the tile in µm."""
        return (
            self.shape[0] * self.pixel_size_um[0],
            self.shape[1] * self.pixel_size_um[1],
            self.shape[2] * self.pixel_size_um[2],
        )

    @property
    def center_um(self) -> tuple[float, float, float]:
        """Physical (z, y, x) coordinate of the tile's centre in µm."""
        e = self.extent_um
        p = self.position_um
        return (p[0] + e[0] / 2, p[1] + e[1] / 2, p[2] + e[2] / 2)

    def read(self, region: Region | None = None) -> np.ndarray:
        """Read ``region`` of this tile (the whole tile when ``None``) as a (z, y, x) array."""
        return self.source.read(region if region is not None else full_region(self.shape))
