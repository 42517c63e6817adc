"""Block-wise pull fusion: one output block from the tiles that overlap it.

For each tile overlapping the block, read only the overlapping region, subtract the dark,
divide by the normalised flat, multiply by the blending weight, and accumulate ``sum(w * x)``
and ``sum(w)``; then divide, round and clip to the output dtype. Memory is bounded by the block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ngff_tiles.errors import MetadataError
from ngff_tiles.fusion.blend import WEIGHTED_MODES, weight_2d
from ngff_tiles.options import BLEND_MODES, SUBPIXEL_MODES, FusionOptions
from ngff_tiles.tiles import Tile

__all__ = ["BlockTile", "Corrections", "fuse_block", "make_corrections"]


@dataclass(frozen=True, slots=True)
class BlockTile:
    """A tile as a fusion task sees it.

    Attributes
    ----------
    tile
        The tile.
    offset
        (z, y, x) integer offset of its pixel (0, 0, 0) in output pixels.
    shift
        (y, x) fractional part of the exact offset, in [-0.5, 0.5]; used by sub-pixel modes.
    """

    tile: Tile
    offset: tuple[int, int, int]
    shift: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Corrections:
    """Dark and flat per channel, ready for the kernel.

    ``dark`` maps channel to a float or a float32 (y, x) image; ``inv_flat`` maps channel to the
    float32 reciprocal of the mean-normalised flat (``None``: no flat correction).
    """

    dark: Mapping[str, float | np.ndarray]
    inv_flat: Mapping[str, np.ndarray | None]
    blend: str
    blend_width: float | None
    subpixel: str = "round"


def _per_channel(value: Any, channels: Sequence[str]) -> dict[str, Any]:
    if isinstance(value, Mapping):
        missing = [c for c in channels if c not in value]
        if missing:
            raise MetadataError(f"no dark/flat given for channel(s) {', '.join(missing)}")
        return {c: value[c] for c in channels}
    return dict.fromkeys(channels, value)


def make_corrections(
    options: FusionOptions,
    channels: Sequence[str],
    tile_shapes_yx: Sequence[tuple[int, int]],
    subpixel: str = "round",
) -> Corrections:
    """Check dark/flat against the tiles and precompute what the kernel needs."""
    if options.blend not in BLEND_MODES:
        raise ValueError(f"Expected a blend mode in {BLEND_MODES}, got {options.blend!r} instead")
    shapes = set(tile_shapes_yx)
    darks: dict[str, float | np.ndarray] = {}
    for ch, d in _per_channel(0.0 if options.dark is None else options.dark, channels).items():
        if np.ndim(d) == 0:
            darks[ch] = float(d)
            continue
        arr = np.asarray(d, dtype=np.float32).squeeze()
        if arr.ndim != 2 or shapes != {arr.shape}:
            raise MetadataError(
                f"dark image of shape {arr.shape} does not match the tile shape(s) {sorted(shapes)}"
            )
        darks[ch] = arr
    flats: dict[str, np.ndarray | None] = {}
    for ch, f in _per_channel(options.flat, channels).items():
        if f is None:
            flats[ch] = None
            continue
        flat64 = np.asarray(f, dtype=np.float64).squeeze()
        if flat64.ndim != 2 or shapes != {flat64.shape}:
            raise MetadataError(
                f"flat image of shape {flat64.shape} does not match the tile shape(s) {sorted(shapes)}"
            )
        if not np.all(np.isfinite(flat64)) or flat64.min() <= 0:
            raise MetadataError("flat image must be finite and strictly positive")
        flats[ch] = (flat64.mean() / flat64).astype(np.float32)
    if subpixel not in SUBPIXEL_MODES:
        raise ValueError(f"Expected a sub-pixel mode in {SUBPIXEL_MODES}, got {subpixel!r} instead")
    return Corrections(darks, flats, options.blend, options.blend_width, subpixel)


def _intersect(
    offset: tuple[int, int, int], shape: tuple[int, int, int], start: Sequence[int], stop: Sequence[int]
) -> tuple[tuple[slice, slice, slice], tuple[slice, slice, slice]] | None:
    src, dst = [], []
    for o, n, b0, b1 in zip(offset, shape, start, stop, strict=True):
        lo, hi = max(o, b0), min(o + n, b1)
        if lo >= hi:
            return None
        src.append(slice(lo - o, hi - o))
        dst.append(slice(lo - b0, hi - b0))
    return (src[0], src[1], src[2]), (dst[0], dst[1], dst[2])


def _taps(shift: float, kind: str) -> tuple[int, list[float]]:
    """Return the first tap offset and the tap weights that sample position ``i - shift``."""
    x = -shift
    base = math.floor(x)
    t = x - base
    if kind == "linear":
        return base, [1.0 - t, t]
    a = -0.5  # Keys' cubic convolution, as in most image libraries' "cubic"

    def w(s: float) -> float:
        s = abs(s)
        if s <= 1:
            return (a + 2) * s**3 - (a + 3) * s**2 + 1
        if s < 2:
            return a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a
        return 0.0

    return base - 1, [w(t + 1), w(t), w(1 - t), w(2 - t)]


def _resample(a: np.ndarray, axis: int, out: slice, lo: int, n: int, shift: float, kind: str) -> np.ndarray:
    """Sample ``a`` (tile indices ``lo ..``) at ``i - shift`` for ``i`` in ``out``; edges clamped."""
    first, weights = _taps(shift, kind)
    idx = np.arange(out.start, out.stop)
    result: np.ndarray | None = None
    for k, wk in enumerate(weights):
        if wk == 0.0:
            continue
        take = np.take(a, np.clip(idx + first + k, 0, n - 1) - lo, axis=axis)
        take *= np.float32(wk)
        result = take if result is None else np.add(result, take, out=result)
    assert result is not None
    return result


def _read_corrected(
    bt: BlockTile,
    src: tuple[slice, slice, slice],
    corrections: Corrections,
    weight: np.ndarray | None,
    raw: np.ndarray | None = None,
) -> np.ndarray:
    """Read ``src`` of a tile as float32, corrected, resampled if asked, and weighted.

    Dark is subtracted and flat divided out; the blending ``weight`` (a (y, x) array for ``src``)
    is applied when given. Without resampling, flat and weight are applied in one multiply (the
    common, fast path). ``raw``: the tile's pixels of ``src`` when the caller already read them
    (ignored when resampling, which needs a margin around ``src``).
    """
    t = bt.tile
    kind = corrections.subpixel
    sy, sx = bt.shift if kind != "round" else (0.0, 0.0)
    moving = abs(sy) > 1e-9 or abs(sx) > 1e-9
    if moving:
        margin = 2
        ry = slice(max(src[1].start - margin, 0), min(src[1].stop + margin, t.shape[1]))
        rx = slice(max(src[2].start - margin, 0), min(src[2].stop + margin, t.shape[2]))
        region = (src[0], ry, rx)
    else:
        region = src
    if moving or raw is None:
        raw = t.source.read(region)
    dark = corrections.dark[t.channel]
    # Converting and subtracting in one pass gives the same float32 values as astype-then-subtract.
    data: np.ndarray
    if isinstance(dark, np.ndarray):
        data = np.subtract(raw, dark[region[1], region[2]], dtype=np.float32)
    elif dark:
        data = np.subtract(raw, np.float32(dark), dtype=np.float32)
    else:
        data = raw.astype(np.float32)
    inv_flat = corrections.inv_flat[t.channel]
    if not moving:
        if weight is not None:
            data *= weight if inv_flat is None else weight * inv_flat[src[1], src[2]]
        elif inv_flat is not None:
            data *= inv_flat[src[1], src[2]]
        return data
    if inv_flat is not None:
        data *= inv_flat[region[1], region[2]]
    if abs(sy) > 1e-9:
        data = _resample(data, 1, src[1], region[1].start, t.shape[1], sy, kind)
    else:
        data = data[:, src[1].start - region[1].start : src[1].stop - region[1].start]
    if abs(sx) > 1e-9:
        data = _resample(data, 2, src[2], region[2].start, t.shape[2], sx, kind)
    else:
        data = data[:, :, src[2].start - region[2].start : src[2].stop - region[2].start]
    if weight is not None:
        data *= weight
    return data


def _cast_into(out: np.ndarray, values: np.ndarray) -> None:
    """Round and clip float32 ``values`` (in place) to ``out``'s dtype and store them in ``out``."""
    if out.dtype.kind in "ui":
        info = np.iinfo(out.dtype)
        np.rint(values, out=values)
        np.clip(values, info.min, info.max, out=values)
    np.copyto(out, values, casting="unsafe")


def _cells(
    boxes: Sequence[tuple[slice, slice, slice]], shape: Sequence[int], limit: int
) -> list[tuple[tuple[slice, slice, slice], list[int]]] | None:
    """Cut a block into boxes of constant coverage by the tiles' destination ``boxes``.

    Returns each covered cell with the indices of the boxes covering it, in the given order. The
    cells come from the boxes' edges, so a block touched by ``n`` tiles has at most ``(2n+1)^3``.
    """
    cuts = []
    for axis in range(3):
        edges = {0, int(shape[axis])}
        for box in boxes:
            edges.update((box[axis].start, box[axis].stop))
        cuts.append(sorted(edges))
    if math.prod(len(c) - 1 for c in cuts) > limit:
        return None
    cells = []
    for z0, z1 in zip(cuts[0], cuts[0][1:], strict=False):
        for y0, y1 in zip(cuts[1], cuts[1][1:], strict=False):
            for x0, x1 in zip(cuts[2], cuts[2][1:], strict=False):
                cover = [
                    i
                    for i, (bz, by, bx) in enumerate(boxes)
                    if bz.start <= z0
                    and z1 <= bz.stop
                    and by.start <= y0
                    and y1 <= by.stop
                    and bx.start <= x0
                    and x1 <= bx.stop
                ]
                if cover:
                    cells.append(((slice(z0, z1), slice(y0, y1), slice(x0, x1)), cover))
    return cells


def _sub(
    src: tuple[slice, slice, slice], dst: tuple[slice, slice, slice], cell: tuple[slice, slice, slice]
) -> tuple[slice, slice, slice]:
    """Return the part of a tile's ``src`` region that lands on ``cell`` (a part of its ``dst``)."""
    z, y, x = (
        slice(s.start + c.start - d.start, s.start + c.stop - d.start)
        for s, d, c in zip(src, dst, cell, strict=True)
    )
    return z, y, x


def fuse_block(
    tiles: Sequence[BlockTile],
    start: Sequence[int],
    stop: Sequence[int],
    dtype: np.dtype,
    corrections: Corrections,
) -> np.ndarray | None:
    """Fuse the output block ``[start, stop)`` (z, y, x) of one channel and time point.

    Parameters
    ----------
    tiles
        Tiles of this channel and time point that may overlap the block, in blending order.
    start, stop
        Block bounds in output pixels.
    dtype
        Output dtype.
    corrections
        Dark, flat and blending settings from :func:`make_corrections`.

    Returns
    -------
    numpy.ndarray or None
        The block, or ``None`` when no tile touches it (nothing to write).
    """
    shape = tuple(b - a for a, b in zip(start, stop, strict=True))
    ordered = list(reversed(tiles)) if corrections.blend == "first" else list(tiles)
    if any(bt.tile.affine_um is not None for bt in ordered):
        return _fuse_whole(ordered, start, stop, np.dtype(dtype), corrections)
    hits = []
    for bt in ordered:
        hit = _intersect(bt.offset, bt.tile.shape, start, stop)
        if hit is not None:
            hits.append((bt, hit[0], hit[1]))
    if not hits:
        return None
    cells = _cells([h[2] for h in hits], shape, limit=64 + 8 * len(hits))
    if cells is None:
        return _fuse_whole(ordered, start, stop, np.dtype(dtype), corrections)
    out = np.zeros(shape, dtype=dtype)
    reads = _BlockReads(hits, corrections)
    for cell, cover in cells:
        _cast_into(out[cell], _fuse_cell(reads, cover, cell))
    return out


_Hit = tuple[BlockTile, tuple[slice, slice, slice], tuple[slice, slice, slice]]


class _BlockReads:
    """Each tile's pixels of one block, read once and shared by the cells they cover.

    A tile's region is read whole on first use (one ``pread`` per plane for raw files, where a
    cell narrower than the tile would still read whole rows) and cells take views of it.
    Resampled tiles read their own margins per cell.
    """

    def __init__(self, hits: Sequence[_Hit], corrections: Corrections) -> None:
        self.hits = hits
        self.corrections = corrections
        self._raw: dict[int, np.ndarray] = {}

    def corrected(self, i: int, sub: tuple[slice, slice, slice], weight: np.ndarray | None) -> np.ndarray:
        """Hit ``i``'s corrected (and weighted) pixels of its tile region ``sub`` (within its src)."""
        bt, src, _ = self.hits[i]
        if self.corrections.subpixel != "round":
            return _read_corrected(bt, sub, self.corrections, weight)
        raw = self._raw.get(i)
        if raw is None:
            raw = self._raw[i] = bt.tile.source.read(src)
        view = raw[tuple(slice(a.start - s.start, a.stop - s.start) for a, s in zip(sub, src, strict=True))]
        return _read_corrected(bt, sub, self.corrections, weight, view)


def _fuse_cell(reads: _BlockReads, cover: Sequence[int], cell: tuple[slice, slice, slice]) -> np.ndarray:
    """Fuse one cell of constant coverage; returns float32 values (a buffer the caller may reuse).

    Where one tile covers the cell its corrected pixels are the result (the blending weights cancel),
    and so are those of the winning tile of ``first``/``last``: only overlaps pay for blending.
    """
    mode = reads.corrections.blend
    subs = {i: _sub(reads.hits[i][1], reads.hits[i][2], cell) for i in cover}
    if len(cover) == 1 or mode in ("first", "last"):
        return reads.corrected(cover[-1], subs[cover[-1]], None)
    if mode not in WEIGHTED_MODES:  # max
        acc: np.ndarray | None = None
        for i in cover:
            data = reads.corrected(i, subs[i], None)
            acc = data if acc is None else np.maximum(acc, data, out=acc)
        assert acc is not None
        return acc
    acc = wsum = None
    for i in cover:
        sub, t = subs[i], reads.hits[i][0].tile
        w = weight_2d((t.shape[1], t.shape[2]), mode, reads.corrections.blend_width)[sub[1], sub[2]]
        data = reads.corrected(i, sub, w)
        if acc is None or wsum is None:
            acc, wsum = data, w.copy()
        else:
            acc += data
            wsum += w
    assert acc is not None
    assert wsum is not None
    np.divide(acc, wsum, out=acc)
    return acc


def _fuse_whole(
    ordered: Sequence[BlockTile],
    start: Sequence[int],
    stop: Sequence[int],
    dtype: np.dtype,
    corrections: Corrections,
) -> np.ndarray | None:
    """Fuse a block by accumulating every tile over all of it.

    Used for blocks with affine tiles and for blocks touched by so many tiles that cutting them
    into cells would cost more than it saves.
    """
    shape = tuple(b - a for a, b in zip(start, stop, strict=True))
    mode = corrections.blend
    weighted = mode in WEIGHTED_MODES
    acc = np.zeros(shape, dtype=np.float32)
    if weighted:
        wsum = np.zeros(shape, dtype=np.float32)
    else:
        covered = np.zeros(shape, dtype=bool)
        if mode == "max":
            acc.fill(-np.inf)
    touched = False
    for bt in ordered:
        t = bt.tile
        if t.affine_um is not None:  # a general affine: resampled by ngff_tiles.fusion.affine
            from ngff_tiles.fusion.affine import AffineBlockTile, accumulate

            if not isinstance(bt, AffineBlockTile):
                raise TypeError(f"{t.source.path}: a tile with an affine needs place_affine() placement")
            touched |= accumulate(bt, start, stop, corrections, acc, wsum if weighted else covered)
            continue
        hit = _intersect(bt.offset, t.shape, start, stop)
        if hit is None:
            continue
        src, dst = hit
        touched = True
        if weighted:
            w = weight_2d((t.shape[1], t.shape[2]), mode, corrections.blend_width)[src[1], src[2]]
        data = _read_corrected(bt, src, corrections, w if weighted else None)
        if weighted:
            acc[dst] += data
            wsum[dst] += w
        else:
            if mode == "max":
                np.maximum(acc[dst], data, out=acc[dst])
            else:
                acc[dst] = data
            covered[dst] = True
    if not touched:
        return None
    if weighted:
        np.divide(acc, wsum, out=acc, where=wsum > 0)
    else:
        acc[~covered] = 0
    out = np.empty(shape, dtype=dtype)
    _cast_into(out, acc)
    return out
