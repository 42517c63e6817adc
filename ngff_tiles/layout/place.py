"""Stage positions (µm) to output pixels: orientation, bounding box, origin, rounding.

Convention. A tile's ``position_um`` is the physical coordinate of its pixel (0, 0, 0). The
orientation options act on tile *centres*: ``flip_x`` mirrors centre x (the stage x axis runs
against the camera x axis), ``flip_y`` likewise, ``swap_xy`` exchanges centre x and y (applied
before the flips). Pixel data are never flipped: they are as the camera saw them.

Sub-pixel positions are rounded to the nearest output pixel (``round`` mode): no resampling, so
pixel values pass through untouched; the worst-case placement error is half a pixel. The output
origin is the minimum tile corner over all tiles; it is written as the NGFF ``translation`` of
level 0, so positions survive in physical units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ngff_tiles.errors import LayoutError, MetadataError
from ngff_tiles.options import LayoutOptions
from ngff_tiles.tiles import Tile

__all__ = ["Layout", "PlacedTile", "check_uniform", "place_tiles"]

_REL_TOL = 1e-6


@dataclass(frozen=True, slots=True)
class PlacedTile:
    """A tile with its integer offset in the output grid.

    Attributes
    ----------
    tile
        The tile as the reader gave it.
    offset_px
        (z, y, x) offset of the tile's pixel (0, 0, 0) in output pixels.
    position_um
        The (z, y, x) corner position used, after orientation options.
    channel_index, time_index
        Indices into the output's c and t axes.
    fraction_px
        Exact offset minus ``offset_px``, in [-0.5, 0.5] per axis: what rounding discarded.
    """

    tile: Tile
    offset_px: tuple[int, int, int]
    position_um: tuple[float, float, float]
    channel_index: int
    time_index: int
    fraction_px: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def stop_px(self) -> tuple[int, int, int]:
        """Exclusive (z, y, x) end of the tile in output pixels."""
        o, s = self.offset_px, self.tile.shape
        return (o[0] + s[0], o[1] + s[1], o[2] + s[2])


@dataclass(frozen=True, slots=True)
class Layout:
    """Where every tile goes in one output image.

    Attributes
    ----------
    tiles
        Placed tiles, in tile-id order.
    shape
        (t, c, z, y, x) of the output at level 0.
    pixel_size_um
        (z, y, x) output pixel size.
    origin_um
        (z, y, x) physical coordinate of output pixel (0, 0, 0): the NGFF translation of level 0.
    channels
        Channel names in output order.
    time_indices
        The reader's time indices in output order.
    dtype
        Output dtype (the tiles' common dtype).
    """

    tiles: tuple[PlacedTile, ...]
    shape: tuple[int, int, int, int, int]
    pixel_size_um: tuple[float, float, float]
    origin_um: tuple[float, float, float]
    channels: tuple[str, ...]
    time_indices: tuple[int, ...]
    dtype: np.dtype

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """(z, y, x) of the output at level 0."""
        return (self.shape[2], self.shape[3], self.shape[4])


def check_uniform(tiles: Sequence[Tile]) -> tuple[tuple[float, float, float], np.dtype]:
    """Return the tiles' common pixel size and dtype; refuse mixed ones with a MetadataError."""
    if not tiles:
        raise LayoutError("no tiles to place")
    dtypes = {t.dtype for t in tiles}
    if len(dtypes) > 1:
        names = ", ".join(sorted(str(d) for d in dtypes))
        raise MetadataError(f"{tiles[0].source.path}: tiles have different dtypes ({names})")
    return _common_pixel_size(tiles), tiles[0].dtype


def _common_pixel_size(tiles: Sequence[Tile]) -> tuple[float, float, float]:
    first = tiles[0]
    for t in tiles[1:]:
        for a, b in zip(first.pixel_size_um, t.pixel_size_um, strict=True):
            if not math.isclose(a, b, rel_tol=_REL_TOL):
                raise MetadataError(
                    f"{t.source.path}: pixel size {t.pixel_size_um} µm differs from "
                    f"{first.pixel_size_um} µm of {first.source.path}; mixed pixel sizes are not supported"
                )
    return first.pixel_size_um


def _oriented_corner(tile: Tile, options: LayoutOptions) -> tuple[float, float, float]:
    cz, cy, cx = tile.center_um
    if options.swap_xy:
        cy, cx = cx, cy
    if options.flip_x:
        cx = -cx
    if options.flip_y:
        cy = -cy
    ez, ey, ex = tile.extent_um
    return (cz - ez / 2, cy - ey / 2, cx - ex / 2)


def place_tiles(
    tiles: Sequence[Tile],
    options: LayoutOptions | None = None,
    *,
    channels: Sequence[str] | None = None,
    time_indices: Sequence[int] | None = None,
) -> Layout:
    """Place ``tiles`` in one output grid.

    Parameters
    ----------
    tiles
        Tiles of one image (one well, or a whole slide); several channels and time points allowed.
    options
        Orientation and pixel-size options.
    channels, time_indices
        The output's channel and time axes, when several images must share them (plate wells);
        by default those of ``tiles`` (channels in order of appearance, times sorted).

    Returns
    -------
    Layout
        Integer placement of every tile, output shape, origin and axes.
    """
    options = options or LayoutOptions()
    pixel, _ = check_uniform(tiles)
    ids = [t.tile_id for t in tiles]
    if len(set(ids)) != len(ids):
        raise LayoutError("tile ids are not unique")
    if options.pixel_size_um is not None and not all(
        math.isclose(a, b, rel_tol=_REL_TOL) for a, b in zip(options.pixel_size_um, pixel, strict=True)
    ):
        raise LayoutError(
            f"output pixel size {options.pixel_size_um} µm differs from the input's {pixel} µm; "
            "resampling is not supported yet"
        )
    ordered = sorted(tiles, key=lambda t: t.tile_id)
    corners = [_oriented_corner(t, options) for t in ordered]
    origin = tuple(min(c[i] for c in corners) for i in range(3))
    if channels is None:
        channels = list(dict.fromkeys(t.channel for t in ordered))
    channels = list(channels)
    times = sorted({t.time_index for t in ordered}) if time_indices is None else list(time_indices)
    for t in ordered:
        if t.channel not in channels or t.time_index not in times:
            raise LayoutError(
                f"{t.source.path}: channel {t.channel!r} / time {t.time_index} not in the output axes"
            )
    placed: list[PlacedTile] = []
    for t, corner in zip(ordered, corners, strict=True):
        # Python's round() rounds half to even; offsets are >= 0 by construction of the origin.
        exact = [(corner[i] - origin[i]) / pixel[i] for i in range(3)]
        offset = tuple(round(e) for e in exact)
        placed.append(
            PlacedTile(
                tile=t,
                offset_px=(offset[0], offset[1], offset[2]),
                position_um=corner,
                channel_index=channels.index(t.channel),
                time_index=times.index(t.time_index),
                fraction_px=(exact[0] - offset[0], exact[1] - offset[1], exact[2] - offset[2]),
            )
        )
    stop = [max(p.stop_px[i] for p in placed) for i in range(3)]
    total = math.prod(stop)
    if total > 2**50:
        axis = max(range(3), key=lambda i: stop[i])
        near = min(placed, key=lambda p: p.offset_px[axis]).tile
        far = max(placed, key=lambda p: p.stop_px[axis]).tile
        raise LayoutError(
            f"{far.source.path}: the tiles span {stop[2]}×{stop[1]}×{stop[0]} pixels; positions are "
            f"probably not in µm ({'zyx'[axis]} = {far.position_um[axis]:g} µm here, "
            f"{near.position_um[axis]:g} µm in {near.source.path})"
        )
    return Layout(
        tiles=tuple(placed),
        shape=(len(times), len(channels), stop[0], stop[1], stop[2]),
        pixel_size_um=pixel,
        origin_um=(origin[0], origin[1], origin[2]),
        channels=tuple(channels),
        time_indices=tuple(times),
        dtype=ordered[0].dtype,
    )
