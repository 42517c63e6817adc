"""Fusion of tiles under a general affine (rotation, shear, scaling refinements).

Tiles whose :attr:`~ngff_tiles.tiles.Tile.affine_um` is ``None`` (translations, the common case)
never come here: they keep the integer-offset fast path of :mod:`ngff_tiles.fusion.kernel`.

Placement (:func:`place_affine`). The footprint of a tile is the box ``[-0.5, n - 0.5]`` of pixel
indices (every pixel's full extent) mapped by its affine; a translation tile's footprint starts at
``position_um - pixel / 2``, so the "corner" of any tile is its footprint's minimum plus half an
output pixel. The output origin is the minimum corner over all tiles; when translation tiles are
present their placement is exactly the one :func:`~ngff_tiles.layout.place.place_tiles` makes
(the origin moves by whole pixels only, so their rounding and sub-pixel fractions are unchanged).

Resampling (:func:`accumulate`). Output pixel ``o`` (index, z, y, x) is at physical
``origin + o * pixel``; its tile coordinate is ``A⁻¹ · (origin + o * pixel)``. The tile covers
the output pixels whose coordinate lies in ``[-0.5, n - 0.5)`` on every axis (for an integer
translation exactly the pixels the fast path covers). Values are sampled after dark/flat
correction, tri-linearly with edges clamped (``interpolation="linear"``) or from the nearest
pixel (``"nearest"``, for integer label images). Blending uses the same modes and the same
weight profiles as the translation path, evaluated at the (fractional) tile coordinate, so a
weight is identical to ``weight_2d`` wherever the coordinate is an integer.

Memory is bounded by the output block: the tile region under a block is read once, and samples
are computed in strips of at most :data:`STRIP` output pixels.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import numpy as np

from ngff_tiles.errors import LayoutError
from ngff_tiles.fusion.blend import EPS, WEIGHTED_MODES
from ngff_tiles.fusion.kernel import BlockTile, Corrections, _read_corrected
from ngff_tiles.layout.place import Layout, PlacedTile, check_uniform, place_tiles
from ngff_tiles.options import LayoutOptions
from ngff_tiles.tiles import Tile

__all__ = [
    "INTERPOLATIONS",
    "STRIP",
    "AffineBlockTile",
    "AffinePlacedTile",
    "accumulate",
    "footprint_um",
    "place_affine",
]

INTERPOLATIONS: tuple[str, ...] = ("linear", "nearest")
STRIP = 1 << 18
"""Output pixels per resampling strip: bounds the float64 coordinate temporaries (~10 MB)."""


@dataclasses.dataclass(frozen=True, slots=True)
class AffinePlacedTile(PlacedTile):
    """A tile under a general affine, placed: its output bounding box and inverse mapping.

    Attributes
    ----------
    stop
        Exclusive (z, y, x) end of the output box that may hold samples of the tile.
    out_to_tile
        Row-major 3×4 matrix mapping the output index (z, y, x, 1) to the tile index (z, y, x).
    interpolation
        ``linear`` or ``nearest``.
    """

    stop: tuple[int, int, int] = (0, 0, 0)
    out_to_tile: tuple[float, ...] = ()
    interpolation: str = "linear"

    @property
    def stop_px(self) -> tuple[int, int, int]:
        """Exclusive (z, y, x) end of the tile's output bounding box."""
        return self.stop

    def block_tile(self) -> AffineBlockTile:
        """Return the tile as a fusion task sees it."""
        return AffineBlockTile(
            self.tile, self.offset_px, (0.0, 0.0), self.stop, self.out_to_tile, self.interpolation
        )


@dataclasses.dataclass(frozen=True, slots=True)
class AffineBlockTile(BlockTile):
    """A tile under a general affine as a fusion task sees it (see :class:`AffinePlacedTile`)."""

    stop: tuple[int, int, int] = (0, 0, 0)
    out_to_tile: tuple[float, ...] = ()
    interpolation: str = "linear"


def _matrix(tile: Tile) -> np.ndarray:
    if tile.affine_um is None:
        m = np.diag([*tile.pixel_size_um, 1.0])
        m[:3, 3] = tile.position_um
        return m
    return np.array(tile.affine_um, dtype=np.float64)


def footprint_um(tile: Tile) -> tuple[np.ndarray, np.ndarray]:
    """Return the physical (z, y, x) minimum and maximum of a tile's footprint.

    The footprint is the box of pixel extents ``[-0.5, n - 0.5]`` per axis, mapped by the affine.
    """
    m = _matrix(tile)
    box = [(-0.5, n - 0.5) for n in tile.shape]
    corners = np.array([[*c, 1.0] for c in itertools.product(*box)])
    phys = (m @ corners.T)[:3]
    lo: np.ndarray = phys.min(axis=1)
    hi: np.ndarray = phys.max(axis=1)
    return lo, hi


def place_affine(
    tiles: Sequence[Tile],
    options: LayoutOptions | None = None,
    *,
    channels: Sequence[str] | None = None,
    time_indices: Sequence[int] | None = None,
) -> Layout:
    """Place tiles of which some carry a general affine; :func:`place_tiles` when none does.

    Parameters are those of :func:`~ngff_tiles.layout.place.place_tiles`. The orientation options
    (flips, swap) apply to stage positions and are refused with affine tiles, whose affine
    already says where every pixel goes.
    """
    options = options or LayoutOptions()
    if all(t.affine_um is None for t in tiles):
        return place_tiles(tiles, options, channels=channels, time_indices=time_indices)
    affine = [t for t in tiles if t.affine_um is not None]
    plain = [t for t in tiles if t.affine_um is None]
    if options.flip_x or options.flip_y or options.swap_xy:
        raise LayoutError(
            f"{affine[0].source.path}: --flip-x/--flip-y/--swap-xy do not apply to tiles "
            "with an affine transform"
        )
    interpolation = options.interpolation
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"Expected an interpolation in {INTERPOLATIONS}, got {interpolation!r} instead")
    pixel, dtype = check_uniform(tiles)
    ids = [t.tile_id for t in tiles]
    if len(set(ids)) != len(ids):
        raise LayoutError("tile ids are not unique")
    if options.pixel_size_um is not None and not all(
        math.isclose(a, b, rel_tol=1e-6) for a, b in zip(options.pixel_size_um, pixel, strict=True)
    ):
        raise LayoutError(
            f"output pixel size {options.pixel_size_um} µm differs from the input's {pixel} µm; "
            "resampling is not supported yet"
        )
    ordered = sorted(tiles, key=lambda t: t.tile_id)
    chans = list(dict.fromkeys(t.channel for t in ordered)) if channels is None else list(channels)
    times = sorted({t.time_index for t in ordered}) if time_indices is None else list(time_indices)
    for t in ordered:
        if t.channel not in chans or t.time_index not in times:
            raise LayoutError(
                f"{t.source.path}: channel {t.channel!r} / time {t.time_index} not in the output axes"
            )
    px = np.asarray(pixel, dtype=np.float64)
    boxes = {t.tile_id: footprint_um(t) for t in affine}
    corner = np.min([lo for lo, _ in boxes.values()], axis=0) + px / 2
    placed: list[PlacedTile] = []
    if plain:
        base = place_tiles(plain, options, channels=chans, time_indices=times)
        origin0 = np.asarray(base.origin_um)
        # move the origin down by whole pixels only: the plain tiles' rounding stays the same
        k = np.maximum(0, np.ceil((origin0 - corner) / px - 1e-9)).astype(np.int64)
        origin = origin0 - k * px
        for p in base.tiles:
            o = p.offset_px
            placed.append(
                dataclasses.replace(p, offset_px=(o[0] + int(k[0]), o[1] + int(k[1]), o[2] + int(k[2])))
            )
    else:
        origin = corner
    out_grid = np.diag([*px, 1.0])
    out_grid[:3, 3] = origin
    for t in affine:
        lo_um, hi_um = boxes[t.tile_id]
        lo = np.ceil((lo_um - origin) / px - 1e-9).astype(np.int64)
        hi = np.floor((hi_um - origin) / px + 1e-9).astype(np.int64) + 1
        lo = np.maximum(lo, 0)
        hi = np.maximum(hi, lo + 1)
        inv = np.linalg.inv(_matrix(t)) @ out_grid
        placed.append(
            AffinePlacedTile(
                tile=t,
                offset_px=(int(lo[0]), int(lo[1]), int(lo[2])),
                position_um=t.position_um,
                channel_index=chans.index(t.channel),
                time_index=times.index(t.time_index),
                stop=(int(hi[0]), int(hi[1]), int(hi[2])),
                out_to_tile=tuple(float(v) for v in inv[:3].ravel()),
                interpolation=interpolation,
            )
        )
    placed.sort(key=lambda p: p.tile.tile_id)
    stop = [max(p.stop_px[i] for p in placed) for i in range(3)]
    if math.prod(stop) > 2**50:
        raise LayoutError(
            f"the tiles span {stop[2]}×{stop[1]}×{stop[0]} pixels; positions are probably not in µm"
        )
    return Layout(
        tiles=tuple(placed),
        shape=(len(times), len(chans), stop[0], stop[1], stop[2]),
        pixel_size_um=pixel,
        origin_um=(float(origin[0]), float(origin[1]), float(origin[2])),
        channels=tuple(chans),
        time_indices=tuple(times),
        dtype=dtype,
    )


# ---------------------------------------------------------------------------------------------
# resampling


def _profile(t: np.ndarray, n: int, mode: str, width: float | None) -> np.ndarray:
    """The blending profile of ``ngff_tiles.fusion.blend`` at fractional pixel coordinates ``t``."""
    if mode == "mean":
        return np.ones(t.shape, dtype=np.float32)
    d = np.minimum(t + 0.5, n - t - 0.5)
    w = (n / 2.0) if width is None else max(float(width), 0.5)
    r = np.clip(d / w, 0.0, 1.0)
    if mode == "cosine":
        r = 0.5 - 0.5 * np.cos(np.pi * r)
    return np.maximum(r, EPS).astype(np.float32)


def _sample(data: np.ndarray, coords: Sequence[np.ndarray], interpolation: str) -> np.ndarray:
    """Sample ``data`` (z, y, x) at fractional indices ``coords``, edges clamped."""
    flat = data.reshape(-1)
    strides = (data.shape[1] * data.shape[2], data.shape[2], 1)
    if interpolation == "nearest":
        lin = np.zeros(coords[0].shape, dtype=np.intp)
        for c, n, st in zip(coords, data.shape, strides, strict=True):
            if n > 1:
                lin += np.clip(np.rint(c), 0, n - 1).astype(np.intp) * st
        out: np.ndarray = flat.take(lin)
        return out
    # linear: one flat base index, the 2 (2-D tiles: z has one plane) or 8 corners as offsets
    base = np.zeros(coords[0].shape, dtype=np.intp)
    axes: list[tuple[np.ndarray, int]] = []
    for c, n, st in zip(coords, data.shape, strides, strict=True):
        if n == 1:
            continue
        cc = np.clip(c, 0.0, n - 1.0)
        i0 = np.minimum(cc.astype(np.intp), n - 2)  # cc >= 0: truncation is floor
        base += i0 * st
        axes.append(((cc - i0).astype(np.float32), st))
    result = np.zeros(coords[0].shape, dtype=np.float32)
    for corner in itertools.product((0, 1), repeat=len(axes)):
        offset = sum(st for d, (_, st) in zip(corner, axes, strict=True) if d)
        weight: np.ndarray | None = None
        for d, (f, _) in zip(corner, axes, strict=True):
            wa = f if d else np.float32(1) - f
            weight = wa if weight is None else weight * wa
        vals = flat.take(base + offset if offset else base)
        result += vals if weight is None else vals * weight
    return result


def accumulate(
    bt: AffineBlockTile,
    start: Sequence[int],
    stop: Sequence[int],
    corrections: Corrections,
    acc: np.ndarray,
    aux: np.ndarray,
) -> bool:
    """Add one affine tile's contribution to the output block ``[start, stop)``.

    Parameters
    ----------
    bt
        The tile.
    start, stop
        Block bounds in output pixels.
    corrections
        Dark, flat and blending settings (the blend mode decides how values combine).
    acc
        The block's accumulator (weighted sum, running maximum, or overwritten values).
    aux
        The sum of weights (weighted modes) or the boolean coverage (``max``, ``first``, ``last``).

    Returns
    -------
    bool
        Whether the tile covers any pixel of the block.
    """
    t = bt.tile
    lo = [max(a, b) for a, b in zip(start, bt.offset, strict=True)]
    hi = [min(a, b) for a, b in zip(stop, bt.stop, strict=True)]
    if any(h <= low for low, h in zip(lo, hi, strict=True)):
        return False
    m = np.asarray(bt.out_to_tile, dtype=np.float64).reshape(3, 4)
    # the tile region this box needs: the affine's extremes are at the box corners
    corners = np.array(
        [[*c, 1.0] for c in itertools.product(*[(a, b - 1) for a, b in zip(lo, hi, strict=True)])]
    )
    tc = m @ corners.T
    region_lo = [max(0, math.floor(tc[a].min()) - 1) for a in range(3)]
    region_hi = [min(t.shape[a], math.ceil(tc[a].max()) + 2) for a in range(3)]
    if any(b <= a for a, b in zip(region_lo, region_hi, strict=True)):
        return False
    region = (
        slice(region_lo[0], region_hi[0]),
        slice(region_lo[1], region_hi[1]),
        slice(region_lo[2], region_hi[2]),
    )
    data: np.ndarray | None = None
    mode = corrections.blend
    weighted = mode in WEIGHTED_MODES
    touched = False
    nx = hi[2] - lo[2]
    rows = max(1, STRIP // nx)
    oz_all = np.arange(lo[0], hi[0], dtype=np.float64)
    ox = np.arange(lo[2], hi[2], dtype=np.float64)
    for z in oz_all:
        for y0 in range(lo[1], hi[1], rows):
            y1 = min(y0 + rows, hi[1])
            oy = np.arange(y0, y1, dtype=np.float64)
            coords = [m[a, 0] * z + m[a, 1] * oy[:, None] + m[a, 2] * ox[None, :] + m[a, 3] for a in range(3)]
            inside = np.ones(coords[0].shape, dtype=bool)
            for a in range(3):
                inside &= (coords[a] >= -0.5) & (coords[a] < t.shape[a] - 0.5)
            if not inside.any():
                continue
            if data is None:
                data = _read_corrected(BlockTile(t, (0, 0, 0)), region, corrections, None)
            # dense over the strip (outside samples are clamped, then masked): no boolean gathers
            local = [coords[a] - region_lo[a] for a in range(3)]
            vals = _sample(data, local, bt.interpolation)
            full = bool(inside.all())
            zi = int(z) - start[0]
            dst = (zi, slice(y0 - start[1], y1 - start[1]), slice(lo[2] - start[2], hi[2] - start[2]))
            acc_v = acc[dst]
            aux_v = aux[dst]
            if weighted:
                w = _profile(coords[1], t.shape[1], mode, corrections.blend_width)
                w *= _profile(coords[2], t.shape[2], mode, corrections.blend_width)
                if not full:
                    w *= inside
                vals *= w
                acc_v += vals
                aux_v += w
            elif mode == "max":
                if not full:
                    vals[~inside] = -np.inf
                np.maximum(acc_v, vals, out=acc_v)
                aux_v |= inside
            else:
                np.copyto(acc_v, vals, where=inside)
                aux_v |= inside
            touched = True
    return touched
