"""A synthetic segmented specimen cut into overlapping label tiles, with its ground truth.

:func:`make_truth` draws ``n_objects`` disjoint ellipses (2-D) or ellipsoids (z-stacks) at random
positions, orientations and sizes, at least one background pixel apart, on the mosaic's grid:
the ground-truth label image, ids ``1 .. n``. :func:`write_label_dataset` cuts it into a grid of
overlapping tiles (tile ``(row, col)`` has index ``row * cols + col`` and its corner at
``(row, col) * (tile - overlap)`` pixels) and writes, per tile:

- ``labels_<i>.tif``: the tile's segmentation as a per-tile pipeline would give it: the ids
  renumbered by a random permutation starting at 1 (so nothing links tiles but the pixels), and,
  with ``boundary_noise > 0``, every object's boundary pixels dropped independently with that
  probability, so neighbouring tiles disagree slightly in their overlap as real segmentations do;
- ``image_<i>.tif``: a uint16 image of the same pixels (objects bright over a dim, noisy background);

and ``tiles.csv``, a tile table with a ``labels`` column, stage positions in µm. Objects cut by
tile borders and objects lying wholly inside overlaps (seen whole by two or four tiles) both occur;
:class:`LabelDataset` says how many.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["LabelDataset", "LabelSpec", "make_truth", "match_objects", "tile_offsets", "write_label_dataset"]


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """A segmented specimen and its tiling.

    Attributes
    ----------
    grid
        (rows, columns) of tiles.
    tile_shape
        (z, y, x) of every tile; ``z > 1`` makes a z-stack of ellipsoids.
    overlap_px
        Overlap of neighbouring tiles in y and x, in pixels.
    n_objects
        Objects to place (fewer only if the mosaic is too full: :func:`make_truth` says so).
    radius_px
        (min, max) semi-axis length in y and x, in pixels.
    radius_z_px
        (min, max) semi-axis length in z (z-stacks).
    boundary_noise
        Probability that each boundary pixel of an object is dropped in a tile's segmentation.
    pixel_size_um
        (z, y, x) pixel size written to the tile table.
    origin_um
        (z, y, x) stage position of tile 0's corner.
    seed
        Seed of everything random.
    """

    grid: tuple[int, int] = (4, 4)
    tile_shape: tuple[int, int, int] = (1, 384, 384)
    overlap_px: int = 64
    n_objects: int = 2000
    radius_px: tuple[float, float] = (5.0, 10.0)
    radius_z_px: tuple[float, float] = (2.0, 5.0)
    boundary_noise: float = 0.02
    pixel_size_um: tuple[float, float, float] = (1.0, 0.5, 0.5)
    origin_um: tuple[float, float, float] = (0.0, 250.0, -120.0)
    seed: int = 0

    @property
    def mosaic_shape(self) -> tuple[int, int, int]:
        """(z, y, x) of the whole specimen."""
        z, y, x = self.tile_shape
        step = (y - self.overlap_px, x - self.overlap_px)
        return (z, step[0] * (self.grid[0] - 1) + y, step[1] * (self.grid[1] - 1) + x)


def tile_offsets(spec: LabelSpec) -> list[tuple[int, int, int]]:
    """(z, y, x) pixel offset of every tile's corner in the mosaic, tile index order."""
    _, ty, tx = spec.tile_shape
    return [
        (0, r * (ty - spec.overlap_px), c * (tx - spec.overlap_px))
        for r in range(spec.grid[0])
        for c in range(spec.grid[1])
    ]


def _object_mask(rng: np.random.Generator, spec: LabelSpec, three_d: bool) -> np.ndarray:
    """A random ellipse/ellipsoid mask in its bounding box."""
    ry, rx = rng.uniform(*spec.radius_px, size=2)
    rz = rng.uniform(*spec.radius_z_px) if three_d else 0.5
    angle = rng.uniform(0, np.pi)
    r = int(np.ceil(max(ry, rx)))
    hz = int(np.ceil(rz)) if three_d else 0
    z, y, x = np.mgrid[-hz : hz + 1, -r : r + 1, -r : r + 1].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * y + s * x, -s * y + c * x
    inside: np.ndarray = (u / ry) ** 2 + (v / rx) ** 2 + ((z / rz) ** 2 if three_d else 0) <= 1.0
    return inside


def make_truth(spec: LabelSpec) -> np.ndarray:
    """Return the ground-truth (z, y, x) uint32 label image: ``n_objects`` disjoint objects, ids from 1.

    Objects are at least one pixel apart (8/26-connected background between them) and wholly
    inside the mosaic. Raises ``ValueError`` when the mosaic cannot hold them.
    """
    rng = np.random.default_rng(spec.seed)
    shape = spec.mosaic_shape
    three_d = shape[0] > 1
    truth = np.zeros(shape, dtype=np.uint32)
    placed = 0
    attempts = 0
    while placed < spec.n_objects:
        attempts += 1
        if attempts > 50 * spec.n_objects:
            raise ValueError(f"only {placed} of {spec.n_objects} objects fit a mosaic of {shape}")
        mask = _object_mask(rng, spec, three_d)
        mz, my, mx = mask.shape
        if mz > shape[0] or my >= shape[1] or mx >= shape[2]:
            continue
        z0 = int(rng.integers(0, shape[0] - mz + 1))
        y0 = int(rng.integers(1, shape[1] - my))
        x0 = int(rng.integers(1, shape[2] - mx))
        # the box grown by one pixel must be empty where the grown mask is
        lo = (max(z0 - 1, 0), y0 - 1, x0 - 1)
        hi = (min(z0 + mz + 1, shape[0]), y0 + my + 1, x0 + mx + 1)
        around = truth[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        grown = np.zeros((mz + 2, my + 2, mx + 2), dtype=bool)
        for dz, dy, dx in np.ndindex(3, 3, 3):
            grown[dz : dz + mz, dy : dy + my, dx : dx + mx] |= mask
        gz = slice(lo[0] - (z0 - 1), lo[0] - (z0 - 1) + around.shape[0])
        if np.any(around[grown[gz]] != 0):
            continue
        placed += 1
        view = truth[z0 : z0 + mz, y0 : y0 + my, x0 : x0 + mx]
        view[mask] = placed
    out: np.ndarray = truth
    return out


def _boundary(labels: np.ndarray) -> np.ndarray:
    """Pixels of an object with a 4/6-neighbour (in y, x; and z for stacks) not of that object."""
    edge = np.zeros(labels.shape, dtype=bool)
    for axis in range(labels.ndim):
        if labels.shape[axis] < 2:
            continue
        a = np.swapaxes(labels, 0, axis)
        e = np.swapaxes(edge, 0, axis)
        diff = a[1:] != a[:-1]
        e[1:] |= diff
        e[:-1] |= diff
    out: np.ndarray = edge & (labels != 0)
    return out


@dataclass(frozen=True, slots=True)
class LabelDataset:
    """A written label dataset.

    Attributes
    ----------
    table
        The tile table (``tiles.csv``): image paths, positions, ``labels`` column.
    truth
        The ground-truth label image (z, y, x), ids ``1 .. n_objects``.
    n_in_overlaps
        Objects lying wholly inside an overlap region (seen whole by at least two tiles).
    n_cut
        Objects cut by a tile border (not whole in at least one tile that sees them).
    n_in_four
        Objects wholly inside a region where four tiles overlap.
    """

    table: Path
    truth: np.ndarray
    n_in_overlaps: int
    n_cut: int
    n_in_four: int


def _object_boxes(truth: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per id: (min, max) index per axis."""
    idx = np.nonzero(truth)
    ids = truth[idx]
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    coords = np.stack([i[order] for i in idx], axis=1)
    uniq, first = np.unique(ids, return_index=True)
    lo = np.minimum.reduceat(coords, first, axis=0)
    hi = np.maximum.reduceat(coords, first, axis=0)
    return {int(u): (lo[k], hi[k]) for k, u in enumerate(uniq)}


def write_label_dataset(spec: LabelSpec, folder: str | os.PathLike[str]) -> LabelDataset:
    """Write the label tiles, image tiles and tile table of ``spec`` into ``folder`` (created)."""
    import tifffile

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    truth = make_truth(spec)
    rng = np.random.default_rng(spec.seed + 1)
    offsets = tile_offsets(spec)
    tz, ty, tx = spec.tile_shape
    n_truth = int(truth.max())
    rows = []
    for i, (z0, y0, x0) in enumerate(offsets):
        cut = truth[z0 : z0 + tz, y0 : y0 + ty, x0 : x0 + tx].copy()
        if spec.boundary_noise > 0:
            drop = _boundary(cut) & (rng.random(cut.shape) < spec.boundary_noise)
            cut[drop] = 0
        ids = np.unique(cut)
        ids = ids[ids != 0]
        lut = np.zeros(n_truth + 1, dtype=np.uint32)
        lut[ids] = rng.permutation(ids.size).astype(np.uint32) + 1
        local = lut[cut]
        dtype = np.uint16 if ids.size < 65536 else np.uint32
        tifffile.imwrite(out / f"labels_{i}.tif", local.astype(dtype).squeeze())
        image = 100 + rng.poisson(20, size=cut.shape) + np.where(cut != 0, 1000, 0)
        tifffile.imwrite(out / f"image_{i}.tif", image.astype(np.uint16).squeeze())
        pz, py, px = spec.pixel_size_um
        oz, oy, ox = spec.origin_um
        rows.append(
            {
                "path": f"image_{i}.tif",
                "x_um": ox + x0 * px,
                "y_um": oy + y0 * py,
                "z_um": oz + z0 * pz,
                "labels": f"labels_{i}.tif",
                "pixel_size_um": py,
                "pixel_size_z_um": pz,
                "name": f"tile_{i}",
            }
        )
    table = out / "tiles.csv"
    with open(table, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # how objects lie relative to the tiles
    boxes = _object_boxes(truth)
    in_overlaps = cut_objects = in_four = 0
    for lo, hi in boxes.values():
        whole = touching = 0
        for _, y0, x0 in offsets:
            inside = lo[1] >= y0 and hi[1] < y0 + ty and lo[2] >= x0 and hi[2] < x0 + tx
            touches = hi[1] >= y0 and lo[1] < y0 + ty and hi[2] >= x0 and lo[2] < x0 + tx
            whole += inside
            touching += touches
        in_overlaps += whole >= 2
        in_four += whole >= 4
        cut_objects += touching > whole
    return LabelDataset(table, truth, in_overlaps, cut_objects, in_four)


def match_objects(truth: np.ndarray, fused: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Match every ground-truth object with the fused object it overlaps most.

    Returns
    -------
    tuple
        ``(iou, fused_id, n_fused)``: per ground-truth id ``1 .. n`` (index ``id - 1``), the IoU
        with its best fused object and that object's id (0: none), and the number of distinct
        fused objects.
    """
    t = truth.ravel().astype(np.uint64)
    f = fused.ravel().astype(np.uint64)
    n_truth = int(t.max())
    area_t = np.bincount(t, minlength=n_truth + 1)
    fused_ids, area_f_compact = np.unique(f, return_counts=True)
    both = (t != 0) & (f != 0)
    keys, inter = np.unique((t[both] << np.uint64(32)) | f[both], return_counts=True)
    kt = (keys >> np.uint64(32)).astype(np.int64)
    kf = keys & np.uint64(0xFFFFFFFF)
    area_f = area_f_compact[np.searchsorted(fused_ids, kf)]
    iou = inter / (area_t[kt] + area_f - inter)
    best_iou = np.zeros(n_truth + 1)
    best_id = np.zeros(n_truth + 1, dtype=np.int64)
    order = np.argsort(iou, kind="stable")  # later (larger) wins
    best_iou[kt[order]] = iou[order]
    best_id[kt[order]] = kf[order].astype(np.int64)
    n_fused = int(np.count_nonzero(fused_ids))
    return best_iou[1:], best_id[1:], n_fused
