"""Label fusion: per-tile segmentations (ids restart at 1 in every tile) into one label image.

The work is split so that memory never depends on the size of the mosaic:

1. **Scan** (one task per tile): read the tile in slabs and list its object ids, and the ids it
   shows in the pixels it *owns*: a pixel covered by several tiles belongs to the tile whose
   centre is closest (ties: the lower tile id), the rule the writer applies.
2. **Match** (one task per overlapping pair): read only the overlap region of both tiles and
   compare every pair of objects there (intersection over union, or intersection over the
   smaller object); pairs at or above the threshold are the same object.
3. **Resolve** (one small task): union-find over all (tile, local id) nodes, so chains through
   several tiles become one object; every object that has pixels in the fused image gets a global
   id, consecutive from 1 (objects in tile order, then by local id). The result is a sorted
   local -> global table per tile: its size is the number of objects, not of pixels.
4. **Write** (one task per output block): each pixel takes the id of its owning tile, mapped to
   the global id (no averaging of ids, ever); pyramid levels are the 2x mode of the level below
   (ties go to an object over background, then to the first pixel of the 2x2(x2) cell).

An object seen only where another tile's pixels are kept (and matched to nothing there) has no
pixel in the output; it maps to 0 in the table and is not counted.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ngff_tiles.errors import LayoutError, MetadataError, NgffTilesError, SourceError
from ngff_tiles.layout.place import Layout
from ngff_tiles.options import LABEL_MATCHES, LabelOptions, WriterOptions
from ngff_tiles.tiles import Region, Tile
from ngff_tiles.writers.ome_zarr import (
    PROVENANCE_KEY,
    build_multiscales,
    finalize_label_image,
    write_labels_group,
    write_table_array,
)

__all__ = [
    "ID_TABLE",
    "LABEL_DTYPE",
    "LabelPlan",
    "LabelResult",
    "LabelSummary",
    "LabelTile",
    "PairMatches",
    "Resolution",
    "TileMap",
    "TileScan",
    "check_label_options",
    "combine_label_results",
    "downsample_mode",
    "finish_labels",
    "label_colours",
    "level_factors",
    "match_pair",
    "owners",
    "place_label_tiles",
    "place_label_tiles_in",
    "plan_labels",
    "relabel_block",
    "resolve",
    "scan_tile",
]

LABEL_DTYPE = np.dtype(np.uint32)
"""Data type of the fused label image: read by napari, Neuroglancer, vizarr and Fiji alike."""
SLAB_PIXELS = 1 << 24
"""Pixels a scan reads at once (64 MB of uint32): bounds a scan task's memory whatever the tile."""
_DENSE_LUT = 1 << 22
"""Tiles whose largest local id is below this are relabelled through a dense lookup table."""


@dataclass(frozen=True, slots=True)
class LabelTile:
    """A label tile placed in the output grid.

    Attributes
    ----------
    tile
        The label tile (integer pixels; 0 is background).
    offset
        (z, y, x) offset of its pixel (0, 0, 0) in output pixels: that of the image tile at its position.
    time
        Index on the output's t axis.
    index
        Position in the list of label tiles of the image (the node namespace of the union-find).
    image_tile_id
        ``tile_id`` of the image tile at the same position (its first channel): how the id table
        and the metadata name tiles.
    """

    tile: Tile
    offset: tuple[int, int, int]
    time: int
    index: int
    image_tile_id: int

    @property
    def stop(self) -> tuple[int, int, int]:
        """Exclusive (z, y, x) end in output pixels."""
        o, s = self.offset, self.tile.shape
        return (o[0] + s[0], o[1] + s[1], o[2] + s[2])

    def intersect(
        self, start: Sequence[int], stop: Sequence[int]
    ) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        """Return the output-pixel box shared with ``[start, stop)``, or ``None`` when empty."""
        lo = tuple(max(a, b) for a, b in zip(self.offset, start, strict=True))
        hi = tuple(min(a, b) for a, b in zip(self.stop, stop, strict=True))
        if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
            return None
        return (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])

    def region(self, lo: Sequence[int], hi: Sequence[int]) -> Region:
        """Return the tile region of the output box ``[lo, hi)``."""
        o = self.offset
        return (
            slice(lo[0] - o[0], hi[0] - o[0]),
            slice(lo[1] - o[1], hi[1] - o[1]),
            slice(lo[2] - o[2], hi[2] - o[2]),
        )

    def read(self, lo: Sequence[int], hi: Sequence[int]) -> np.ndarray:
        """Read the output box ``[lo, hi)`` of this tile; refuse negative ids."""
        data = np.asarray(self.tile.source.read(self.region(lo, hi)))
        if data.dtype.kind == "i" and data.size and data.min() < 0:
            raise SourceError(
                f"{self.tile.source.path}: negative label id {int(data.min())}; ids must be >= 0"
            )
        return data


def place_label_tiles(labels: Sequence[Tile], layout: Layout) -> list[LabelTile]:
    """Put every label tile where the image tile at the same stage position went.

    A label tile matches an image tile of the same time point whose ``position_um`` agrees within
    half a pixel on every axis, and must have its shape. Label tiles must hold integers.

    Raises
    ------
    MetadataError
        For non-integer labels, a label tile at no image tile's position, a shape that differs
        from the image tile's, or two label tiles at one position and time point.
    """
    return place_label_tiles_in(labels, [("", layout)]).get("", [])


def place_label_tiles_in(
    labels: Sequence[Tile], images: Sequence[tuple[str, Layout]]
) -> dict[str, list[LabelTile]]:
    """Like :func:`place_label_tiles` for several images (plate wells or fields), by image path.

    Each label tile goes to the image holding the image tile at its position; images without
    label tiles are left out of the result.
    """

    def cell(pixel: Sequence[float], time: int, pos: Sequence[float]) -> tuple[int, int, int, int]:
        z, y, x = (math.floor(v / p) for v, p in zip(pos, pixel, strict=True))
        return (time, z, y, x)

    # image tiles by (time, position in whole pixels): a lookup per label tile, not a scan
    by_cell: list[dict[tuple[int, int, int, int], list[Any]]] = []
    for _, layout in images:
        cells: dict[tuple[int, int, int, int], list[Any]] = defaultdict(list)
        for pt in layout.tiles:
            cells[cell(layout.pixel_size_um, pt.tile.time_index, pt.tile.position_um)].append(pt)
        by_cell.append(cells)
    placed: dict[str, list[LabelTile]] = {}
    taken: dict[tuple[str, int, tuple[int, int, int]], str] = {}
    for tile in sorted(labels, key=lambda t: t.tile_id):
        path = tile.source.path
        if tile.dtype.kind not in "ui":
            raise MetadataError(f"{path}: label tiles must hold integer ids, found pixel type {tile.dtype}")
        match = None
        for (image, layout), cells in zip(images, by_cell, strict=True):
            pixel = layout.pixel_size_um
            t0, z0, y0, x0 = cell(pixel, tile.time_index, tile.position_um)
            near = [  # within half a pixel: this cell or a neighbour
                (t0, z0 + dz, y0 + dy, x0 + dx) for dz, dy, dx in itertools.product((-1, 0, 1), repeat=3)
            ]
            for pt in sorted(
                (pt for key in near for pt in cells.get(key, [])), key=lambda pt: pt.tile.tile_id
            ):
                if all(
                    abs(a - b) <= 0.5 * p
                    for a, b, p in zip(tile.position_um, pt.tile.position_um, pixel, strict=True)
                ):
                    match = (image, pt)
                    break
            if match is not None:
                break
        if match is None:
            pos = ", ".join(f"{v:g}" for v in tile.position_um)
            raise MetadataError(
                f"{path}: label tile at (z, y, x) {pos} µm, time {tile.time_index}, matches no image "
                "tile's position; label tiles must share the image tiles' positions"
            )
        image, pt = match
        if tile.shape != pt.tile.shape:
            raise MetadataError(
                f"{path}: label tile shape {tile.shape} differs from the image tile's {pt.tile.shape} "
                f"({pt.tile.source.path})"
            )
        key = (image, pt.time_index, pt.offset_px)
        if key in taken:
            raise MetadataError(
                f"{path}: a second label tile at the position of {taken[key]} (time {tile.time_index}); "
                "give one single-channel label tile per position"
            )
        taken[key] = path
        mine = placed.setdefault(image, [])
        mine.append(LabelTile(tile, pt.offset_px, pt.time_index, len(mine), pt.tile.tile_id))
    return placed


# ---------------------------------------------------------------------------------------------
# ownership: the closest tile centre


def owners(
    start: Sequence[int], stop: Sequence[int], tiles: Sequence[LabelTile], pixel_size_um: Sequence[float]
) -> np.ndarray:
    """Return, per pixel of the output box ``[start, stop)``, which of ``tiles`` owns it.

    The owner is the covering tile whose centre is closest to the pixel centre in physical
    distance; ties go to the earlier tile in ``tiles``. Pixels no tile covers get -1. The value
    of a pixel depends only on its coordinates and the tiles, never on the box asked for, so
    scans and block writes agree.
    """
    shape = tuple(b - a for a, b in zip(start, stop, strict=True))
    owner = np.full(shape, -1, dtype=np.int32)
    hits = [(k, lt.intersect(start, stop)) for k, lt in enumerate(tiles)]
    covering = [(k, hit) for k, hit in hits if hit is not None]
    # where one tile covers alone it owns; distances are computed only where tiles overlap
    for k, (lo, hi) in reversed(covering):
        owner[tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))] = k
    for (_, (alo, ahi)), (_, (blo, bhi)) in itertools.combinations(covering, 2):
        both_lo = [max(a, b) for a, b in zip(alo, blo, strict=True)]
        both_hi = [min(a, b) for a, b in zip(ahi, bhi, strict=True)]
        if all(h > low for low, h in zip(both_lo, both_hi, strict=True)):
            sl = tuple(slice(a - s, b - s) for a, b, s in zip(both_lo, both_hi, start, strict=True))
            owner[sl] = _closest(both_lo, both_hi, tiles, pixel_size_um)
    return owner


def _closest(
    start: Sequence[int], stop: Sequence[int], tiles: Sequence[LabelTile], pixel_size_um: Sequence[float]
) -> np.ndarray:
    """:func:`owners` by distance for every pixel of the box (the rule itself; no shortcut)."""
    shape = tuple(b - a for a, b in zip(start, stop, strict=True))
    owner = np.full(shape, -1, dtype=np.int32)
    best = np.full(shape, np.inf, dtype=np.float64)
    for k, lt in enumerate(tiles):
        hit = lt.intersect(start, stop)
        if hit is None:
            continue
        lo, hi = hit
        axes = []
        for i in range(3):
            centre = lt.offset[i] + lt.tile.shape[i] / 2.0
            coord = (np.arange(lo[i], hi[i], dtype=np.float64) + 0.5 - centre) * float(pixel_size_um[i])
            axes.append(coord * coord)
        d = axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]
        sl = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))
        closer = d < best[sl]
        best[sl][closer] = d[closer]
        owner[sl][closer] = k
    return owner


# ---------------------------------------------------------------------------------------------
# 1. scan


@dataclass(frozen=True, slots=True)
class TileScan:
    """The object ids of one tile: all of them, and those in the pixels it owns (sorted, no 0)."""

    index: int
    ids: np.ndarray
    owned: np.ndarray


def _slabs(
    lo: Sequence[int], hi: Sequence[int], limit: int
) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """Split the box into slabs along z, then y, of at most ``limit`` pixels (at least one row)."""
    ny, nx = hi[1] - lo[1], hi[2] - lo[2]
    plane = ny * nx
    out = []
    if plane <= limit:
        step = max(1, limit // plane)
        for z in range(lo[0], hi[0], step):
            out.append(((z, lo[1], lo[2]), (min(z + step, hi[0]), hi[1], hi[2])))
        return out
    rows = max(1, limit // nx)
    for z in range(lo[0], hi[0]):
        for y in range(lo[1], hi[1], rows):
            out.append(((z, y, lo[2]), (z + 1, min(y + rows, hi[1]), hi[2])))
    return out


def scan_tile(
    lt: LabelTile,
    neighbours: Sequence[LabelTile],
    pixel_size_um: Sequence[float],
    slab_pixels: int = SLAB_PIXELS,
) -> TileScan:
    """List the ids of tile ``lt`` and those it shows in the pixels it owns, slab by slab.

    ``neighbours`` are the tiles overlapping it (itself included), in tile order.
    """
    ids: list[np.ndarray] = []
    owned: list[np.ndarray] = []
    me = next(i for i, n in enumerate(neighbours) if n.index == lt.index)
    for lo, hi in _slabs(lt.offset, lt.stop, slab_pixels):
        data = lt.read(lo, hi)
        u = np.unique(data)
        ids.append(u[u != 0])
        if len(neighbours) > 1:
            mine = owners(lo, hi, neighbours, pixel_size_um) == me  # distances only in overlaps
            u = np.unique(data[mine])
            owned.append(u[u != 0])
        else:
            owned.append(ids[-1])
    dtype = lt.tile.dtype
    return TileScan(
        lt.index,
        np.unique(np.concatenate(ids)).astype(dtype, copy=False) if ids else np.zeros(0, dtype),
        np.unique(np.concatenate(owned)).astype(dtype, copy=False) if owned else np.zeros(0, dtype),
    )


# ---------------------------------------------------------------------------------------------
# 2. match


@dataclass(frozen=True, slots=True)
class PairMatches:
    """Objects of tile ``a`` and tile ``b`` found to be one (parallel arrays), and the pair count."""

    a: int
    b: int
    ids_a: np.ndarray
    ids_b: np.ndarray
    scores: np.ndarray
    candidates: int


def match_pair(a: LabelTile, b: LabelTile, match: str, threshold: float) -> PairMatches:
    """Compare the objects of two tiles over their overlap only; return the pairs that are one object.

    For every pair of ids ``(i, j)`` sharing pixels in the overlap, with ``n`` shared pixels and
    ``A``, ``B`` the pixels of ``i`` and ``j`` in the overlap: ``"iou"`` scores ``n / (A + B - n)``,
    ``"overlap"`` scores ``n / min(A, B)``. Pairs scoring at least ``threshold`` match.
    """
    hit = a.intersect(b.offset, b.stop)
    empty = np.zeros(0, dtype=np.uint64)
    if hit is None:
        return PairMatches(a.index, b.index, empty, empty, np.zeros(0), 0)
    lo, hi = hit
    da = a.read(lo, hi).ravel()
    db = b.read(lo, hi).ravel()
    in_a, in_b = da != 0, db != 0
    both = in_a & in_b
    if not both.any():
        return PairMatches(a.index, b.index, empty, empty, np.zeros(0), 0)
    ua, ca = np.unique(da[in_a], return_counts=True)
    ub, cb = np.unique(db[in_b], return_counts=True)
    pa = da[both].astype(np.uint64)
    pb = db[both].astype(np.uint64)
    if int(pa.max()) < 1 << 32 and int(pb.max()) < 1 << 32:
        keys, n = np.unique((pa << np.uint64(32)) | pb, return_counts=True)
        ia, ib = keys >> np.uint64(32), keys & np.uint64(0xFFFFFFFF)
    else:
        pairs, n = np.unique(np.stack([pa, pb], axis=1), axis=0, return_counts=True)
        ia, ib = pairs[:, 0], pairs[:, 1]
    area_a = ca[np.searchsorted(ua, ia)]
    area_b = cb[np.searchsorted(ub, ib)]
    if match == "iou":
        score = n / (area_a + area_b - n)
    elif match == "overlap":
        score = n / np.minimum(area_a, area_b)
    else:
        raise ValueError(f"Expected a match measure in ('iou', 'overlap'), got {match!r} instead")
    keep = score >= threshold
    return PairMatches(a.index, b.index, ia[keep], ib[keep], score[keep], int(ia.size))


# ---------------------------------------------------------------------------------------------
# 3. resolve


@dataclass(frozen=True, slots=True)
class TileMap:
    """Local -> global ids of one tile: sorted local ids and their global ids (0: not in the output)."""

    local: np.ndarray
    glob: np.ndarray

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Map a block of local ids to global ids (0 stays 0; unknown ids become 0)."""
        if self.local.size == 0:
            return np.zeros(data.shape, LABEL_DTYPE)
        top = int(self.local[-1])
        if top < _DENSE_LUT:
            lut = np.zeros(top + 2, LABEL_DTYPE)
            lut[self.local.astype(np.int64)] = self.glob
            clipped = np.minimum(data, top + 1) if data.size and int(data.max()) > top else data
            out: np.ndarray = lut[clipped]
            return out
        pos = np.searchsorted(self.local, data)
        pos = np.minimum(pos, self.local.size - 1)
        return np.where(self.local[pos] == data, self.glob[pos], 0).astype(LABEL_DTYPE)


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of the union-find: one :class:`TileMap` per label tile and counts.

    Attributes
    ----------
    maps
        Per label tile (by ``LabelTile.index``).
    n_objects
        Global ids are ``1 .. n_objects``.
    n_tile_objects
        Objects over all tiles before merging (the nodes of the union-find).
    n_matches
        Matched pairs found in the overlaps (the edges).
    n_unseen
        Objects with no pixel in the output (seen only where another tile's pixels are kept).
    """

    maps: tuple[TileMap, ...]
    n_objects: int
    n_tile_objects: int
    n_matches: int
    n_unseen: int


def _find_all(parent: np.ndarray) -> np.ndarray:
    """Return every node's root by pointer jumping (the forest is already fully linked)."""
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            return parent
        parent = nxt


def resolve(scans: Sequence[TileScan], matches: Sequence[PairMatches]) -> Resolution:
    """Union-find over every (tile, local id); global ids consecutive from 1 for objects in the output.

    Components are numbered in the order of their first node (tiles in order, then local ids);
    a component gets an id only when one of its nodes has pixels in the pixels its tile owns.
    """
    scans = sorted(scans, key=lambda s: s.index)
    sizes = [s.ids.size for s in scans]
    base = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(base[-1])
    parent = np.arange(n, dtype=np.int64)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = int(parent[root])
        while parent[x] != root:  # path compression
            parent[x], x = root, int(parent[x])
        return root

    n_matches = 0
    for m in matches:
        if m.ids_a.size == 0:
            continue
        na = base[m.a] + np.searchsorted(scans[m.a].ids, m.ids_a.astype(scans[m.a].ids.dtype))
        nb = base[m.b] + np.searchsorted(scans[m.b].ids, m.ids_b.astype(scans[m.b].ids.dtype))
        for x, y in zip(na.tolist(), nb.tolist(), strict=True):
            rx, ry = find(x), find(y)
            if rx != ry:
                parent[max(rx, ry)] = min(rx, ry)  # the root is always the component's first node
        n_matches += int(m.ids_a.size)
    root = _find_all(parent)
    present = np.zeros(n, dtype=bool)
    for s, b0 in zip(scans, base[:-1], strict=True):
        present[b0 + np.searchsorted(s.ids, s.owned)] = True
    root_present = np.zeros(n, dtype=bool)
    root_present[root[present]] = True
    is_root = root == np.arange(n)
    numbered = is_root & root_present  # roots are first nodes: numbering them in node order is the rule
    gid_of_root = np.zeros(n, dtype=np.int64)
    gid_of_root[numbered] = np.arange(1, int(numbered.sum()) + 1)
    gid = gid_of_root[root]
    n_objects = int(numbered.sum())
    if n_objects > np.iinfo(LABEL_DTYPE).max:
        raise MetadataError(f"{n_objects} objects do not fit the label image's {LABEL_DTYPE} ids")
    maps = tuple(
        TileMap(s.ids, gid[b0 : b0 + s.ids.size].astype(LABEL_DTYPE))
        for s, b0 in zip(scans, base[:-1], strict=True)
    )
    n_unseen = int((gid == 0).sum())
    return Resolution(maps, n_objects, n, n_matches, n_unseen)


# ---------------------------------------------------------------------------------------------
# 4. write


def relabel_block(
    tiles: Sequence[LabelTile],
    resolution: Resolution,
    start: Sequence[int],
    stop: Sequence[int],
    pixel_size_um: Sequence[float],
) -> np.ndarray:
    """Return the output block ``[start, stop)``: each pixel the global id from its owning tile."""
    shape = tuple(b - a for a, b in zip(start, stop, strict=True))
    out = np.zeros(shape, dtype=LABEL_DTYPE)
    owner = owners(start, stop, tiles, pixel_size_um)
    for k, lt in enumerate(tiles):
        mine = owner == k
        if not mine.any():
            continue
        # read only the bounding box of the pixels this tile owns here
        lo, hi = [], []
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            hits = np.flatnonzero(mine.any(axis=other))
            lo.append(start[axis] + int(hits[0]))
            hi.append(start[axis] + int(hits[-1]) + 1)
        sl = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))
        mapped = resolution.maps[lt.index].apply(lt.read(lo, hi))
        np.copyto(out[sl], mapped, where=mine[sl])
    return out


def downsample_mode(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Downsample a label block by 2 along the axes whose factor is 2, by the mode of each cell.

    Each output pixel is the most frequent id of its 2x2 (or 2x2x2) cell; a tie goes to an
    object over background, then to the first pixel of the cell in C order. At odd edges the cell
    holds the pixels that exist (the last row/column is its own cell of one). Ids are never averaged.
    """
    if len(factors) != block.ndim or any(f not in (1, 2) for f in factors):
        raise ValueError(f"Expected factors of 1 or 2 per axis, got {factors} for a {block.ndim}-D block")
    if all(f == 1 for f in factors):
        return block.copy()
    pad = [(0, n % 2 if f == 2 else 0) for n, f in zip(block.shape, factors, strict=True)]
    padded = np.pad(block, pad, mode="edge") if any(p[1] for p in pad) else block
    cells = [
        padded[tuple(slice(o, None, f) for o, f in zip(offs, factors, strict=True))]
        for offs in itertools.product(*[range(f) for f in factors])
    ]
    # how many cells equal each cell: every pair compared once (6 comparisons for 2x2, 28 for 2x2x2)
    counts = [np.ones(cells[0].shape, dtype=np.int8) for _ in cells]
    for i, j in itertools.combinations(range(len(cells)), 2):
        eq = cells[i] == cells[j]
        counts[i] += eq
        counts[j] += eq
    best = cells[0].copy()
    best_score = 2 * counts[0] + (cells[0] != 0)
    for c, n in zip(cells[1:], counts[1:], strict=True):
        score = 2 * n + (c != 0)  # twice the count, +1 for an object: ties go to objects
        better = score > best_score
        best[better] = c[better]
        best_score[better] = score[better]
    return best


# ---------------------------------------------------------------------------------------------
# the task graph


@dataclass(frozen=True, slots=True)
class LabelSummary:
    """What the label tasks computed, for the metadata and the id table.

    Attributes
    ----------
    resolution
        The local -> global maps and counts.
    tile_ids
        ``LabelTile.image_tile_id`` of every label tile (by ``LabelTile.index``).
    areas
        Pixels of every global id at level 0 (index ``g - 1``), summed over time points.
    """

    resolution: Resolution
    tile_ids: tuple[int, ...]
    areas: np.ndarray

    def table(self) -> np.ndarray:
        """Return the (tile id, local id, global id) rows of every tile object, as uint64 (n, 3)."""
        parts = [
            np.stack(
                [np.full(m.local.size, tid, np.uint64), m.local.astype(np.uint64), m.glob.astype(np.uint64)],
                axis=1,
            )
            for tid, m in zip(self.tile_ids, self.resolution.maps, strict=True)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, 3), np.uint64)

    def sources(self) -> list[list[int]]:
        """Return, per global id (index ``g - 1``), the ids of the tiles the object was seen in."""
        out: list[set[int]] = [set() for _ in range(self.resolution.n_objects)]
        for tid, m in zip(self.tile_ids, self.resolution.maps, strict=True):
            for g in np.unique(m.glob[m.glob != 0]).tolist():
                out[g - 1].add(tid)
        return [sorted(s) for s in out]


@dataclass(frozen=True, slots=True)
class LabelPlan:
    """The label image's part of the conversion graph."""

    graph: dict[str, Any]
    summary_key: str

    @property
    def n_tasks(self) -> int:
        """Tasks in the graph."""
        return len(self.graph)


Counts = tuple[np.ndarray, np.ndarray]


def _merge_counts(parts: Sequence[Counts]) -> Counts:
    parts = [p for p in parts if p[0].size]
    if not parts:
        return np.zeros(0, LABEL_DTYPE), np.zeros(0, np.int64)
    ids = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    order = np.argsort(ids, kind="stable")
    ids, counts = ids[order], counts[order]
    uniq, first = np.unique(ids, return_index=True)
    return uniq, np.add.reduceat(counts, first)


def _write_up(
    array: Any,
    t: int,
    start: tuple[int, int, int],
    block: np.ndarray,
    nxt: tuple[int, int, int] | None,
    counts: Counts,
) -> tuple[np.ndarray | None, Counts]:
    array.write(t, 0, start, block)
    return (None if nxt is None else downsample_mode(block, nxt)), counts


def _block_task(
    array: Any,
    t: int,
    start: tuple[int, int, int],
    stop: tuple[int, int, int],
    tiles: tuple[LabelTile, ...],
    pixel_size_um: tuple[float, float, float],
    nxt: tuple[int, int, int] | None,
    resolution: Resolution,
) -> tuple[np.ndarray | None, Counts]:
    block = relabel_block(tiles, resolution, start, stop, pixel_size_um)
    ids, n = np.unique(block, return_counts=True)
    keep = ids != 0
    return _write_up(array, t, start, block, nxt, (ids[keep], n[keep].astype(np.int64)))


def _gather_task(
    array: Any,
    t: int,
    start: tuple[int, int, int],
    stop: tuple[int, int, int],
    offsets: tuple[tuple[int, int, int], ...],
    nxt: tuple[int, int, int] | None,
    *children: tuple[np.ndarray | None, Counts],
) -> tuple[np.ndarray | None, Counts]:
    block = np.zeros(tuple(b - a for a, b in zip(start, stop, strict=True)), dtype=LABEL_DTYPE)
    for off, (ch, _) in zip(offsets, children, strict=True):
        if ch is not None:
            block[
                off[0] : off[0] + ch.shape[0], off[1] : off[1] + ch.shape[1], off[2] : off[2] + ch.shape[2]
            ] = ch
    return _write_up(array, t, start, block, nxt, _merge_counts([c for _, c in children]))


def _summary_task(
    tile_ids: tuple[int, ...], resolution: Resolution, *tops: tuple[np.ndarray | None, Counts]
) -> LabelSummary:
    ids, counts = _merge_counts([c for _, c in tops])
    areas = np.zeros(resolution.n_objects, dtype=np.int64)
    areas[ids.astype(np.int64) - 1] = counts
    return LabelSummary(resolution, tile_ids, areas)


def _resolve_task(n_scans: int, *parts: Any) -> Resolution:
    return resolve(parts[:n_scans], parts[n_scans:])


def plan_labels(
    tiles: Sequence[LabelTile],
    arrays: Sequence[Any],
    pixel_size_um: tuple[float, float, float],
    *,
    match: str,
    threshold: float,
    downsample_z: bool,
    prefix: str = "labels/",
) -> LabelPlan:
    """Build the dask graph that fuses ``tiles`` into the label level ``arrays`` (level 0 first).

    Keys are namespaced by ``prefix``. The result of ``summary_key`` is a :class:`LabelSummary`;
    it depends on every write, so computing it runs the label image's whole graph.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"Expected a match threshold in (0, 1], got {threshold} instead")
    if match not in ("iou", "overlap"):
        raise ValueError(f"Expected a match measure in ('iou', 'overlap'), got {match!r} instead")
    graph: dict[str, Any] = {}
    block = arrays[0].block
    # spatial index: which tiles touch which level-0 block (per t); overlapping tiles share a block
    index: dict[tuple[int, int, int, int], list[LabelTile]] = defaultdict(list)
    for lt in tiles:
        ranges = [range(lt.offset[i] // block[i], (lt.stop[i] - 1) // block[i] + 1) for i in range(3)]
        for bz, by, bx in itertools.product(*ranges):
            index[(lt.time, bz, by, bx)].append(lt)
    pairs: set[tuple[int, int]] = set()
    for members in index.values():
        for a, b in itertools.combinations(members, 2):
            if a.intersect(b.offset, b.stop) is not None:
                pairs.add((min(a.index, b.index), max(a.index, b.index)))
    neighbours: dict[int, set[int]] = {lt.index: {lt.index} for lt in tiles}
    for i, j in pairs:
        neighbours[i].add(j)
        neighbours[j].add(i)
    by_index = {lt.index: lt for lt in tiles}
    scan_keys = []
    for lt in tiles:
        key = f"{prefix}scan-{lt.index}"
        near = tuple(by_index[i] for i in sorted(neighbours[lt.index]))
        graph[key] = (functools.partial(scan_tile, lt, near, pixel_size_um),)
        scan_keys.append(key)
    pair_keys = []
    for i, j in sorted(pairs):
        key = f"{prefix}match-{i}-{j}"
        graph[key] = (functools.partial(match_pair, by_index[i], by_index[j], match, threshold),)
        pair_keys.append(key)
    resolve_key = f"{prefix}resolve"
    graph[resolve_key] = (functools.partial(_resolve_task, len(scan_keys)), *scan_keys, *pair_keys)

    fz = 2 if downsample_z else 1
    step = (fz, 2, 2)
    n_levels = len(arrays)

    def bounds(level: int, b: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        shape = arrays[level].shape[2:]
        start = (b[0] * block[0], b[1] * block[1], b[2] * block[2])
        stop = tuple(min(s + n, lim) for s, n, lim in zip(start, block, shape, strict=True))
        return start, (stop[0], stop[1], stop[2])

    below: dict[tuple[int, int, int, int], str] = {}
    nxt = step if n_levels > 1 else None
    for (t, bz, by, bx), members in sorted(index.items()):
        start, stop = bounds(0, (bz, by, bx))
        name = f"{prefix}L0-t{t}-{bz}-{by}-{bx}"
        func = functools.partial(_block_task, arrays[0], t, start, stop, tuple(members), pixel_size_um, nxt)
        graph[name] = (func, resolve_key)
        below[(t, bz, by, bx)] = name
    for k in range(1, n_levels):
        parents: dict[tuple[int, int, int, int], list[tuple[tuple[int, int, int], str]]] = defaultdict(list)
        for (t, bz, by, bx), name in below.items():
            off = ((bz % step[0]) * block[0] // step[0], (by % 2) * block[1] // 2, (bx % 2) * block[2] // 2)
            parents[(t, bz // step[0], by // 2, bx // 2)].append((off, name))
        nxt = step if k < n_levels - 1 else None
        current: dict[tuple[int, int, int, int], str] = {}
        for (t, bz, by, bx), kids in sorted(parents.items()):
            start, stop = bounds(k, (bz, by, bx))
            name = f"{prefix}L{k}-t{t}-{bz}-{by}-{bx}"
            func = functools.partial(_gather_task, arrays[k], t, start, stop, tuple(o for o, _ in kids), nxt)
            graph[name] = (func, *[n for _, n in kids])
            current[(t, bz, by, bx)] = name
        below = current
    summary_key = f"{prefix}summary"
    graph[summary_key] = (
        functools.partial(_summary_task, tuple(lt.image_tile_id for lt in tiles)),
        resolve_key,
        *sorted(below.values()),
    )
    return LabelPlan(graph, summary_key)


def level_factors(n_levels: int, downsample_z: bool) -> tuple[tuple[int, int, int], ...]:
    """Cumulative (z, y, x) downsampling of each level, as for the image."""
    fz = 2 if downsample_z else 1
    return tuple((fz**k, 2**k, 2**k) for k in range(n_levels))


def label_colours(n: int) -> list[list[int]]:
    """Return ``n`` RGBA colours, distinct neighbours, spread by the golden angle in hue (alpha 255)."""
    out = []
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0
        s = 0.65 + 0.35 * ((i * 7) % 3) / 2
        v = 0.75 + 0.25 * ((i * 5) % 2)
        r, g, b = _hsv(h, s, v)
        out.append([r, g, b, 255])
    return out


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    i = math.floor(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return round(r * 255), round(g * 255), round(b * 255)


# ---------------------------------------------------------------------------------------------
# metadata


ID_TABLE = "id_map"
"""Array inside the label image group: (tile id, local id, global id) of every tile object."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_label_options(options: LabelOptions) -> None:
    """Refuse an unsafe label name (it becomes ``labels/<name>``) or a threshold outside (0, 1]."""
    name = options.name
    if not _NAME.match(name) or ".." in name:
        raise LayoutError(
            f"label name {name!r}: expected letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    if not 0 < options.threshold <= 1:
        raise NgffTilesError(f"label match threshold {options.threshold}: expected a number in (0, 1]")
    if options.match not in LABEL_MATCHES:
        raise NgffTilesError(f"label match {options.match!r}: expected 'iou' or 'overlap'")


@dataclass(frozen=True, slots=True)
class LabelResult:
    """What a conversion wrote for the label tiles.

    Attributes
    ----------
    path
        Store path of the label image (``labels/<name>``).
    n_objects
        Objects in the fused label image (ids ``1 .. n_objects``).
    n_tile_objects
        Objects over all label tiles before merging.
    n_matches
        Pairs of tile objects matched in overlaps.
    n_unseen
        Tile objects with no pixel in the output (only where another tile's pixels are kept).
    paths
        Every label image written (plates: one per well or field image); the counts above are
        their sums (ids restart at 1 in each label image).
    """

    path: str
    n_objects: int
    n_tile_objects: int
    n_matches: int
    n_unseen: int
    paths: tuple[str, ...] = ()


def combine_label_results(results: Sequence[LabelResult]) -> LabelResult:
    """One :class:`LabelResult` for several label images: the first's path, summed counts."""
    return LabelResult(
        results[0].path,
        sum(r.n_objects for r in results),
        sum(r.n_tile_objects for r in results),
        sum(r.n_matches for r in results),
        sum(r.n_unseen for r in results),
        tuple(r.path for r in results),
    )


def finish_labels(
    root: Path,
    image_path: str,
    summary: LabelSummary,
    tiles: Sequence[LabelTile],
    layout: Layout,
    *,
    name: str,
    n_levels: int,
    downsample_z: bool,
    writer: WriterOptions,
    record: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> LabelResult:
    """Write the id table, the label image's metadata and the ``labels`` group (in that order).

    ``root / image_path`` is the image; its own metadata is written after this, last.
    """
    version = writer.ngff_version
    image_root = root / image_path if image_path else root
    label_root = image_root / "labels" / name
    write_table_array(
        label_root / ID_TABLE,
        summary.table(),
        writer,
        {
            PROVENANCE_KEY: {
                "columns": ["tile_id", "local_id", "global_id"],
                "description": (
                    "every object of every label tile: the image tile it belongs to (its id in the "
                    "image's ngff_tiles.tiles), its id in that tile, and its id in the fused label "
                    "image (0: no pixel of it is in the output)"
                ),
            }
        },
    )
    ms = build_multiscales(
        name=name,
        n_levels=n_levels,
        pixel_size_um=layout.pixel_size_um,
        origin_um=layout.origin_um,
        factors=level_factors(n_levels, downsample_z),
        version=version,
    )
    ms["type"] = "mode"
    ms["metadata"] = {
        "method": "ngff_tiles.fusion.labels.downsample_mode",
        "description": "2x mode (ties: object over background, then the first pixel); ids never averaged",
    }
    sources = summary.sources()
    colours = label_colours(summary.resolution.n_objects)
    image_label = {
        # colours and properties list the same values (ome-zarr-models checks it); 0 is background
        "colors": [
            {"label-value": g, "rgba": colours[g - 1]} for g in range(1, summary.resolution.n_objects + 1)
        ]
        or [{"label-value": 0, "rgba": [0, 0, 0, 0]}],  # strict schema: at least one colour
        "properties": [
            {
                "label-value": g,
                # a string, not a list: napari turns properties into table columns of scalars
                "source_tiles": ",".join(str(t) for t in sources[g - 1]),
                "area_px": int(summary.areas[g - 1]),
            }
            for g in range(1, summary.resolution.n_objects + 1)
        ],
        "source": {"image": "../../"},
    }
    if not image_label["properties"]:
        del image_label["properties"]  # the schema wants at least one entry when present
    res = summary.resolution
    finalize_label_image(
        label_root,
        multiscales=ms,
        image_label=image_label,
        record={
            **record,
            "labels": dict(settings),
            "objects": res.n_objects,
            "tile_objects": res.n_tile_objects,
            "matches": res.n_matches,
            "unseen_tile_objects": res.n_unseen,
            "id_table": ID_TABLE,
            "tiles": [
                {
                    "id": lt.image_tile_id,
                    "path": lt.tile.source.path,
                    "channel": "labels",
                    "time_index": lt.tile.time_index,
                    "shape": list(lt.tile.shape),
                    "offset_px": list(lt.offset),
                }
                for lt in tiles
            ],
        },
        version=version,
    )
    write_labels_group(image_root / "labels", [name], version)
    rel = f"{image_path}/labels/{name}" if image_path else f"labels/{name}"
    return LabelResult(rel, res.n_objects, res.n_tile_objects, res.n_matches, res.n_unseen, (rel,))
