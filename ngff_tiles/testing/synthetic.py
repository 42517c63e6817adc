"""Synthetic tiled acquisitions with a known ground truth.

A :class:`SyntheticSpec` describes a grid of overlapping tiles with jittered (sub-pixel) stage
positions over a procedural specimen. :func:`write_dataset` writes it as one OME-TIFF per tile
plus ``dark.tif``, ``flat.tif`` and ``ground_truth.json``, one tile at a time and one plane
chunk at a time, so datasets of many GB are written with a few hundred MB of memory.

The specimen
    A deterministic, continuous function of the physical (z, y, x) coordinate in µm: a sum of
    axis-aligned Gaussian blobs and ellipses at three scales (σ from 1 to 40 pixels) and of
    rectangles and thin lines with sharp (about one pixel wide) edges, for z-stacks also
    varying along z. Features are generated procedurally per cell of a spatial grid (a hash of
    seed, channel, scale and cell index), so evaluating any box costs in proportion to the box,
    never to the size of the specimen. The summed feature density ``v`` is mapped to photons by
    ``bg + (photons - bg) * (1 - exp(-v))`` with ``bg = 0.05 * photons``: the brightest areas
    approach ``photons`` and the background is a low, nonzero level. Channel ``k`` is the same
    kind of specimen drawn with a different seed.

Tiles
    Tile ``(row, col)`` (index ``row * cols + col``) has its true corner at
    ``origin_um + (0, row * step_y, col * step_x) + jitter`` with ``step = tile size in µm * (1 -
    overlap)`` and jitter uniform in ``±jitter_um`` along y and x (none along z), rounded to
    1e-4 µm so the value written to the OME-XML is exact. Tile pixel ``(z, y, x)`` samples the
    specimen analytically at ``position_um + (z, y, x) * pixel_size_um`` (point sampling, no
    raster shifting). Raw pixels are ``Poisson(truth * flat) + Normal(0, read_noise) + dark``,
    rounded and clipped to the dtype (one ADU per photon).

Output grid and comparisons
    The output grid has the tiles' pixel size and its origin at the minimum true tile corner
    (:func:`output_geometry`). A converter that rounds tile offsets to whole output pixels
    (``offset_px = rint((position - min_position) / pixel_size)``) places each tile up to half a
    pixel away from where it was sampled. Compare a fused image with :func:`ground_truth` on the
    output grid (the continuous specimen, ``snapped=False``), and judge the PSNR against
    :meth:`SyntheticDataset.noise_floor_psnr` computed the same way (``against="grid"``: single
    corrected tiles at their rounded offsets vs the same ground truth). ``against="tile"`` is the
    pure noise floor (tiles vs the specimen at exactly their own sample points).
    ``ground_truth(..., snapped=True)`` is what a perfect rounding converter with unweighted
    averaging in overlaps would produce from noise-free tiles (0 where no tile lands).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "SyntheticDataset",
    "SyntheticSpec",
    "coverage",
    "dark_image",
    "demo_spec",
    "flat_image",
    "ground_truth",
    "load_dataset",
    "output_geometry",
    "psnr",
    "sample",
    "tile_offsets_px",
    "tile_positions",
    "write_dataset",
    "zstack_spec",
]

FORMAT = "ngff-tiles-synthetic/1"
BACKGROUND_FRACTION = 0.05
"""Background level of the specimen as a fraction of ``SyntheticSpec.photons``."""

Region = tuple[slice, slice, slice]
FloatArray = npt.NDArray[np.float32]
Triplet = tuple[float, float, float]

_DTYPES = ("uint8", "uint16", "uint32", "int16", "int32", "float32", "float64")
_NOISE_CHUNK = 1 << 20  # pixels per noise chunk: fixes the RNG stream, bounds temporaries
_GT_CHUNK = 1 << 22  # voxels per ground-truth evaluation chunk of a tile


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of a synthetic tiled acquisition.

    Attributes
    ----------
    grid
        (rows, cols) of tiles; rows run along y, columns along x.
    tile_shape
        (z, y, x) pixels per tile.
    overlap
        Nominal overlap of neighbouring tiles as a fraction of the tile size.
    jitter_um
        Stage positions deviate from the nominal grid by a uniform ``±jitter_um`` along y and x.
    pixel_size_um
        (z, y, x) pixel size in µm.
    origin_um
        Nominal (z, y, x) corner of tile (0, 0) in µm.
    channels
        Channel names; each channel is a differently seeded specimen.
    dtype
        Pixel type of the tiles.
    dark
        Camera offset in ADU, added to every pixel.
    vignetting
        The flat field is ``1 - vignetting * r**2`` (``r`` = 1 at the tile corners), normalised
        to mean 1.
    photons
        Peak signal in photons (the brightest areas approach it); also the PSNR data range.
    read_noise
        Standard deviation of the Gaussian read noise in ADU.
    seed
        Seed of the specimen, the jitter and the noise.
    compression
        tifffile compression of the tiles (``None`` = uncompressed).
    """

    grid: tuple[int, int] = (4, 5)
    tile_shape: tuple[int, int, int] = (1, 512, 512)
    overlap: float = 0.12
    jitter_um: float = 2.0
    pixel_size_um: tuple[float, float, float] = (1.0, 0.65, 0.65)
    origin_um: tuple[float, float, float] = (0.0, 1000.0, -500.0)
    channels: tuple[str, ...] = ("DAPI",)
    dtype: str = "uint16"
    dark: float = 100.0
    vignetting: float = 0.3
    photons: float = 1000.0
    read_noise: float = 2.0
    seed: int = 0
    compression: str | None = None

    def __post_init__(self) -> None:
        def ints(name: str, value: Any, n: int) -> tuple[int, ...]:
            try:
                out = tuple(int(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"Expected {n} integers for {name}, got {value!r} instead") from None
            if len(out) != n or min(out) < 1:
                raise ValueError(f"Expected {n} positive integers for {name}, got {value!r} instead")
            return out

        def floats(name: str, value: Any, positive: bool) -> tuple[float, ...]:
            try:
                out = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"Expected three numbers for {name}, got {value!r} instead") from None
            if len(out) != 3 or not all(math.isfinite(v) and (v > 0 or not positive) for v in out):
                what = "positive numbers" if positive else "finite numbers"
                raise ValueError(f"Expected three {what} (z, y, x) for {name}, got {value!r} instead")
            return out

        object.__setattr__(self, "grid", ints("grid", self.grid, 2))
        object.__setattr__(self, "tile_shape", ints("tile_shape", self.tile_shape, 3))
        object.__setattr__(self, "pixel_size_um", floats("pixel_size_um", self.pixel_size_um, True))
        object.__setattr__(self, "origin_um", floats("origin_um", self.origin_um, False))
        channels = tuple(str(c) for c in self.channels)
        if not channels or len(set(channels)) != len(channels):
            raise ValueError(f"Expected one or more distinct channel names, got {self.channels!r} instead")
        object.__setattr__(self, "channels", channels)
        checks = (
            ("overlap", self.overlap, 0.0 <= self.overlap < 1.0, "in [0, 1)"),
            ("jitter_um", self.jitter_um, 0.0 <= self.jitter_um < math.inf, "finite and >= 0"),
            ("vignetting", self.vignetting, 0.0 <= self.vignetting < 1.0, "in [0, 1)"),
            ("photons", self.photons, 0.0 < self.photons < math.inf, "finite and > 0"),
            ("read_noise", self.read_noise, 0.0 <= self.read_noise < math.inf, "finite and >= 0"),
            ("dark", self.dark, math.isfinite(self.dark), "finite"),
        )
        for name, value, ok, what in checks:
            if not ok:
                raise ValueError(f"Expected {name} {what}, got {value!r} instead")
        if str(np.dtype(self.dtype)) not in _DTYPES:
            raise ValueError(f"Expected dtype one of {_DTYPES}, got {self.dtype!r} instead")
        object.__setattr__(self, "dtype", str(np.dtype(self.dtype)))

    @property
    def n_tiles(self) -> int:
        """Number of tiles (``rows * cols``)."""
        return self.grid[0] * self.grid[1]

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as JSON-compatible data."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyntheticSpec:
        """Build a spec from :meth:`to_dict` output."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"Expected SyntheticSpec fields, got unknown {sorted(unknown)} instead")
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)


def demo_spec() -> SyntheticSpec:
    """Return the small two-channel dataset used by ``ngff-tiles demo`` (3 x 4 tiles of 512²)."""
    return SyntheticSpec(grid=(3, 4), tile_shape=(1, 512, 512), channels=("DAPI", "GFP"))


def zstack_spec() -> SyntheticSpec:
    """Return a 3 x 3 grid of (32, 256, 256) z-stacks with 2 µm z steps."""
    return SyntheticSpec(grid=(3, 3), tile_shape=(32, 256, 256), pixel_size_um=(2.0, 0.65, 0.65))


# --------------------------------------------------------------------------------------------
# geometry


def tile_positions(spec: SyntheticSpec) -> list[Triplet]:
    """Return the true (z, y, x) corner in µm of every tile, in tile order (row-major)."""
    rows, cols = spec.grid
    _, ny, nx = spec.tile_shape
    _, py, px = spec.pixel_size_um
    step_y = ny * py * (1.0 - spec.overlap)
    step_x = nx * px * (1.0 - spec.overlap)
    rng = np.random.default_rng([spec.seed, 0x9051])
    jitter = rng.uniform(-spec.jitter_um, spec.jitter_um, size=(rows * cols, 2))
    z0, y0, x0 = spec.origin_um
    out: list[Triplet] = []
    for t in range(rows * cols):
        r, c = divmod(t, cols)
        y = round(y0 + r * step_y + float(jitter[t, 0]), 4)
        x = round(x0 + c * step_x + float(jitter[t, 1]), 4)
        out.append((round(z0, 4), y, x))
    return out


def tile_offsets_px(spec: SyntheticSpec) -> list[tuple[int, int, int]]:
    """Return each tile's (z, y, x) offset in output pixels, as a rounding converter places it.

    ``offset = rint((position - min_position) / pixel_size)``.
    """
    pos = np.asarray(tile_positions(spec), dtype=np.float64)
    off = np.rint((pos - pos.min(axis=0)) / np.asarray(spec.pixel_size_um)).astype(np.int64)
    return [(int(a), int(b), int(c)) for a, b, c in off]


def output_geometry(spec: SyntheticSpec) -> tuple[Triplet, tuple[int, int, int]]:
    """Return the output grid's (z, y, x) origin in µm and its shape in pixels.

    The origin is the minimum true tile corner; the shape is ``max(offset_px + tile_shape)``
    over tiles, with offsets from :func:`tile_offsets_px`.
    """
    pos = np.asarray(tile_positions(spec), dtype=np.float64)
    origin = pos.min(axis=0)
    end = np.asarray(tile_offsets_px(spec)) + np.asarray(spec.tile_shape)
    shape = end.max(axis=0)
    return (
        (float(origin[0]), float(origin[1]), float(origin[2])),
        (int(shape[0]), int(shape[1]), int(shape[2])),
    )


def _check_region(region: Region | None, shape: tuple[int, int, int]) -> tuple[int, ...]:
    if region is None:
        return (0, shape[0], 0, shape[1], 0, shape[2])
    if len(region) != 3:
        raise ValueError(f"Expected a (z, y, x) region of three slices, got {region!r} instead")
    out: list[int] = []
    for s in region:
        if not isinstance(s, slice) or s.start is None or s.stop is None or s.step not in (None, 1):
            raise ValueError(f"Expected slices with explicit start and stop, got {region!r} instead")
        if not 0 <= s.start <= s.stop:
            raise ValueError(f"Expected 0 <= start <= stop in every slice, got {region!r} instead")
        out += [int(s.start), int(s.stop)]
    return tuple(out)


# --------------------------------------------------------------------------------------------
# the specimen


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))


def _mix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Splitmix64 finaliser, element-wise on uint64 arrays (wrapping arithmetic)."""
    h = (h ^ (h >> _S30)) * _M1
    h = (h ^ (h >> _S27)) * _M2
    return h ^ (h >> _S31)


def _key(*parts: int) -> npt.NDArray[np.uint64]:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return np.frombuffer(digest, dtype=np.uint64).copy()


def _uniforms(base: npt.NDArray[np.uint64], n: int) -> npt.NDArray[np.float64]:
    """Return (n, len(base)) independent uniforms in [0, 1) derived from ``base``."""
    j = np.arange(1, n + 1, dtype=np.uint64)[:, None]
    h = _mix(base[None, :] + j * _GOLDEN)
    return (h >> _S11).astype(np.float64) * (1.0 / (1 << 53))


@dataclass(frozen=True)
class _Class:
    kind: Literal["blob", "rect"]
    cell_px: float  # cell size, in xy pixels
    reach_px: float  # the farthest a feature reaches from its cell, in xy pixels
    size: tuple[float, float]  # blob sigma or rectangle half-size range, pixels
    amp: tuple[float, float]
    probability: float = 1.0  # chance a cell holds a feature


_CLASSES = (
    _Class("blob", 24.0, 5 * 3.0 * 1.45, (1.0, 3.0), (0.4, 2.5)),
    _Class("blob", 80.0, 5 * 10.0 * 1.45, (3.0, 10.0), (0.3, 1.5)),
    _Class("blob", 320.0, 5 * 40.0 * 1.45, (10.0, 40.0), (0.15, 0.8)),
    _Class("rect", 256.0, 200.0 + 3.0, (8.0, 60.0), (0.6, 2.0), 0.9),
)
_EDGE_PX = 0.35  # rectangle edge width (tanh scale), pixels
_LINE_FRACTION = 0.4


@dataclass(frozen=True)
class _Features:
    """Features of one class near a box, as parallel arrays; sizes in µm."""

    kind: str
    centre: npt.NDArray[np.float64]  # (3, n) z, y, x
    size: npt.NDArray[np.float64]  # (3, n) sigma (blob) or half-size (rect)
    amp: npt.NDArray[np.float64]  # (n,)


def _features(
    spec: SyntheticSpec, channel: int, lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64]
) -> Iterator[_Features]:
    """Yield the features of every class that may touch the physical (y, x) box ``[lo, hi]``."""
    _, py, px = spec.pixel_size_um
    pz = spec.pixel_size_um[0]
    nz = spec.tile_shape[0]
    z_lo = spec.origin_um[0]
    depth = nz * pz
    per_cell = 1 if nz == 1 else 2
    pix = np.array([py, px])
    for ci, cls in enumerate(_CLASSES):
        cell = cls.cell_px * pix
        reach = cls.reach_px * pix
        first = np.floor((lo - reach) / cell).astype(np.int64)
        last = np.floor((hi + reach) / cell).astype(np.int64)
        gy, gx = np.meshgrid(
            np.arange(first[0], last[0] + 1), np.arange(first[1], last[1] + 1), indexing="ij"
        )
        iy = np.repeat(gy.ravel(), per_cell)
        ix = np.repeat(gx.ravel(), per_cell)
        k = np.tile(np.arange(per_cell), iy.size // per_cell)
        base = _key(spec.seed, channel, ci)
        for part in (iy, ix, k):
            base = _mix(base + part.astype(np.int64).view(np.uint64) * _GOLDEN)
        u = _uniforms(base, 11)
        keep = u[0] < cls.probability
        u = u[:, keep]
        iy, ix = iy[keep], ix[keep]
        cy = (iy + u[1]) * cell[0]
        cx = (ix + u[2]) * cell[1]
        lo_s, hi_s = cls.size
        amp = cls.amp[0] + (cls.amp[1] - cls.amp[0]) * u[3]
        if cls.kind == "blob":
            s = lo_s * (hi_s / lo_s) ** u[4]  # log-uniform
            ratio = 0.7 + 0.75 * u[5]
            sy, sx = s * ratio, s / ratio
            sz_um = np.maximum(np.sqrt(sy * sx) * min(py, px) * (1.0 + 1.5 * u[6]), pz)
        else:
            hy = lo_s + (hi_s - lo_s) * u[4]
            hx = lo_s + (hi_s - lo_s) * u[5]
            line = u[7] < _LINE_FRACTION
            width = 0.75 + 1.25 * u[8]
            length = 40.0 + 160.0 * u[6]
            vertical = u[9] < 0.5
            hy = np.where(line, np.where(vertical, length, width), hy)
            hx = np.where(line, np.where(vertical, width, length), hx)
            sy, sx = hy, hx
            sz_um = depth * (0.1 + 0.3 * u[6])
        # no z variation in 2-D
        cz = np.full(cy.shape, np.nan) if nz == 1 else z_lo - 0.1 * depth + 1.2 * depth * u[10]
        yield _Features(
            cls.kind,
            np.stack([cz, cy, cx]),
            np.stack([sz_um, sy * py, sx * px]),
            amp,
        )


def _profile(kind: str, coords: npt.NDArray[np.float64], c: float, s: float, edge: float) -> FloatArray:
    if math.isnan(c):
        return np.ones(coords.shape, dtype=np.float32)
    if kind == "blob":
        d = (coords - c) / s
        return np.exp(-0.5 * d * d).astype(np.float32)
    return (0.5 * (np.tanh((coords - (c - s)) / edge) - np.tanh((coords - (c + s)) / edge))).astype(
        np.float32
    )


def _density(
    spec: SyntheticSpec, channel: int, start: Sequence[float], step: Sequence[float], shape: Sequence[int]
) -> FloatArray:
    """Sum of features at ``start + index * step`` (µm) over a box of ``shape`` (z, y, x)."""
    out = np.zeros(tuple(shape), dtype=np.float32)
    if 0 in out.shape:
        return out
    axes = [start[i] + step[i] * np.arange(shape[i], dtype=np.float64) for i in range(3)]
    lo = np.array([axes[1][0], axes[2][0]])
    hi = np.array([axes[1][-1], axes[2][-1]])
    pz, py, px = spec.pixel_size_um
    edges = (0.5 * pz, _EDGE_PX * py, _EDGE_PX * px)
    for f in _features(spec, channel, lo, hi):
        reach = f.size * (5.0 if f.kind == "blob" else 1.0)
        if f.kind == "rect":
            reach = reach + 6.0 * np.asarray(edges)[:, None]
        windows = []
        for a in range(3):
            if a == 0 and spec.tile_shape[0] == 1:
                windows.append((np.zeros(f.amp.shape, np.int64), np.full(f.amp.shape, shape[0])))
                continue
            k0 = np.ceil((f.centre[a] - reach[a] - start[a]) / step[a])
            k1 = np.floor((f.centre[a] + reach[a] - start[a]) / step[a]) + 1
            windows.append(
                (np.clip(k0, 0, shape[a]).astype(np.int64), np.clip(k1, 0, shape[a]).astype(np.int64))
            )
        live = np.ones(f.amp.shape, dtype=bool)
        for k0, k1 in windows:
            live &= k1 > k0
        for i in np.flatnonzero(live):
            (z0, z1), (y0, y1), (x0, x1) = ((int(w[0][i]), int(w[1][i])) for w in windows)
            gz = _profile(f.kind, axes[0][z0:z1], f.centre[0, i], f.size[0, i], edges[0])
            gy = _profile(f.kind, axes[1][y0:y1], f.centre[1, i], f.size[1, i], edges[1])
            gx = _profile(f.kind, axes[2][x0:x1], f.centre[2, i], f.size[2, i], edges[2])
            gyx = np.float32(f.amp[i]) * gy[:, None] * gx[None, :]
            if z1 - z0 == 1:
                out[z0, y0:y1, x0:x1] += gz[0] * gyx
            else:
                out[z0:z1, y0:y1, x0:x1] += gz[:, None, None] * gyx[None]
    return out


def _to_photons(spec: SyntheticSpec, v: FloatArray) -> FloatArray:
    bg = BACKGROUND_FRACTION * spec.photons
    np.negative(v, out=v)
    np.exp(v, out=v)
    # bg + (P - bg) * (1 - exp(-v)) = P - (P - bg) * exp(-v)
    v *= np.float32(-(spec.photons - bg))
    v += np.float32(spec.photons)
    return v


def sample(
    spec: SyntheticSpec,
    start_um: Sequence[float],
    shape: Sequence[int],
    *,
    channel: int = 0,
    step_um: Sequence[float] | None = None,
) -> FloatArray:
    """Evaluate the specimen (photons, float32) at ``start_um + index * step_um`` over ``shape``.

    Parameters
    ----------
    spec
        The dataset spec (seed, pixel size and photons matter).
    start_um
        Physical (z, y, x) coordinate of index (0, 0, 0) in µm.
    shape
        (z, y, x) number of samples.
    channel
        Channel index.
    step_um
        (z, y, x) sample spacing in µm; the spec's pixel size when ``None``.
    """
    if not 0 <= channel < len(spec.channels):
        raise ValueError(f"Expected a channel index below {len(spec.channels)}, got {channel} instead")
    step = spec.pixel_size_um if step_um is None else tuple(float(s) for s in step_um)
    return _to_photons(spec, _density(spec, channel, tuple(start_um), step, tuple(shape)))


def ground_truth(
    spec: SyntheticSpec, region: Region | None = None, *, channel: int = 0, snapped: bool = False
) -> FloatArray:
    """Return the ground truth (photons, float32) over a (z, y, x) box of the output grid.

    Parameters
    ----------
    spec
        The dataset spec.
    region
        Slices of output pixel indices (explicit ``0 <= start <= stop``; ``stop`` may pass the
        output shape, the specimen goes on); the whole output (:func:`output_geometry`) when
        ``None``.
    channel
        Channel index.
    snapped
        ``False``: the continuous specimen sampled at ``origin + index * pixel_size``; compare
        fused images with this. ``True``: what a converter that rounds tile offsets to whole
        pixels and averages overlaps without weights produces from noise-free tiles: the mean
        over covering tiles of the specimen at each tile's own sample points, 0 where no tile
        lands.
    """
    origin, out_shape = output_geometry(spec)
    b = _check_region(region, out_shape)
    shape = (b[1] - b[0], b[3] - b[2], b[5] - b[4])
    if not snapped:
        start = [origin[a] + b[2 * a] * spec.pixel_size_um[a] for a in range(3)]
        return sample(spec, start, shape, channel=channel)
    total = np.zeros(shape, dtype=np.float32)
    count = np.zeros(shape, dtype=np.float32)
    for pos, off in zip(tile_positions(spec), tile_offsets_px(spec), strict=True):
        lo = [max(b[2 * a], off[a]) for a in range(3)]
        hi = [min(b[2 * a + 1], off[a] + spec.tile_shape[a]) for a in range(3)]
        if any(h <= low for low, h in zip(lo, hi, strict=True)):
            continue
        start = [pos[a] + (lo[a] - off[a]) * spec.pixel_size_um[a] for a in range(3)]
        box = tuple(slice(lo[a] - b[2 * a], hi[a] - b[2 * a]) for a in range(3))
        total[box] += sample(spec, start, [hi[a] - lo[a] for a in range(3)], channel=channel)
        count[box] += 1
    np.divide(total, count, out=total, where=count > 0)
    return total


def coverage(spec: SyntheticSpec, region: Region | None = None) -> npt.NDArray[np.uint8]:
    """Return how many tiles (rounded placement) cover each pixel of an output-grid box."""
    _, out_shape = output_geometry(spec)
    b = _check_region(region, out_shape)
    count = np.zeros((b[1] - b[0], b[3] - b[2], b[5] - b[4]), dtype=np.uint8)
    for off in tile_offsets_px(spec):
        lo = [max(b[2 * a], off[a]) - b[2 * a] for a in range(3)]
        hi = [min(b[2 * a + 1], off[a] + spec.tile_shape[a]) - b[2 * a] for a in range(3)]
        if all(h > low for low, h in zip(lo, hi, strict=True)):
            count[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] += 1
    return count


def flat_image(spec: SyntheticSpec) -> FloatArray:
    """Return the (y, x) flat field: ``1 - vignetting * r**2`` normalised to mean 1 (float32)."""
    _, ny, nx = spec.tile_shape
    y = (np.arange(ny) - (ny - 1) / 2) / max((ny - 1) / 2, 1)
    x = (np.arange(nx) - (nx - 1) / 2) / max((nx - 1) / 2, 1)
    r2 = (y[:, None] ** 2 + x[None, :] ** 2) / 2.0
    flat = 1.0 - spec.vignetting * r2
    out: FloatArray = (flat / flat.mean()).astype(np.float32)
    return out


def dark_image(spec: SyntheticSpec) -> FloatArray:
    """Return the (y, x) dark image: the camera offset everywhere (float32)."""
    return np.full(spec.tile_shape[1:], spec.dark, dtype=np.float32)


def psnr(a: npt.ArrayLike, b: npt.ArrayLike, data_range: float) -> float:
    """Return the peak signal-to-noise ratio ``20 log10(data_range / RMSE)`` in dB (inf if equal)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float(np.mean(diff * diff))
    return _psnr_from_mse(mse, data_range)


def _psnr_from_mse(mse: float, data_range: float) -> float:
    if mse == 0:
        return math.inf
    return 20.0 * math.log10(data_range / math.sqrt(mse))


# --------------------------------------------------------------------------------------------
# writing


def _tile_name(spec: SyntheticSpec, index: int) -> str:
    r, c = divmod(index, spec.grid[1])
    return f"tile_r{r:02d}_c{c:02d}"


def _spec_digest(spec: SyntheticSpec) -> str:
    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()


def _to_dtype(values: npt.NDArray[np.float64], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    np.rint(values, out=values)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        np.clip(values, info.min, info.max, out=values)
    return values.astype(dtype)


def _tile_planes(
    spec: SyntheticSpec, index: int, position: Triplet, flat: FloatArray
) -> Iterator[npt.NDArray[Any]]:
    """Yield the raw (y, x) planes of one tile, channel-major then z, chunk by chunk."""
    nz, ny, nx = spec.tile_shape
    dtype = np.dtype(spec.dtype)
    flat_1d = flat.ravel()
    planes_per_chunk = max(1, _GT_CHUNK // (ny * nx))
    for c in range(len(spec.channels)):
        rng = np.random.default_rng([spec.seed, 0x7113, index, c])
        for z0 in range(0, nz, planes_per_chunk):
            z1 = min(nz, z0 + planes_per_chunk)
            start = (position[0] + z0 * spec.pixel_size_um[0], position[1], position[2])
            truth = sample(spec, start, (z1 - z0, ny, nx), channel=c)
            for plane in truth:
                signal = plane.ravel()
                raw = np.empty(signal.shape, dtype=dtype)
                for i in range(0, signal.size, _NOISE_CHUNK):
                    sl = slice(i, i + _NOISE_CHUNK)
                    counts = rng.poisson(signal[sl] * flat_1d[sl]).astype(np.float64)
                    if spec.read_noise > 0:
                        counts += rng.standard_normal(counts.size, dtype=np.float32) * np.float32(
                            spec.read_noise
                        )
                    counts += spec.dark
                    raw[sl] = _to_dtype(counts, dtype)
                yield raw.reshape(ny, nx)
            del truth


def _write_tile(spec: SyntheticSpec, index: int, position: Triplet, path: Path, flat: FloatArray) -> None:
    import tifffile

    nz, ny, nx = spec.tile_shape
    nc = len(spec.channels)
    n = nc * nz
    pz, py, px = spec.pixel_size_um
    tile_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"ngff-tiles-synthetic:{_spec_digest(spec)}:{index}")
    metadata: dict[str, Any] = {
        "UUID": f"urn:uuid:{tile_uuid}",
        "axes": "CZYX",
        "Name": _tile_name(spec, index),
        "PhysicalSizeX": px,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": py,
        "PhysicalSizeYUnit": "µm",
        "PhysicalSizeZ": pz,
        "PhysicalSizeZUnit": "µm",
        "Channel": {"Name": list(spec.channels)},
        "Plane": {
            "PositionX": [position[2]] * n,
            "PositionXUnit": ["µm"] * n,
            "PositionY": [position[1]] * n,
            "PositionYUnit": ["µm"] * n,
            "PositionZ": [round(position[0] + (k % nz) * pz, 6) for k in range(n)],
            "PositionZUnit": ["µm"] * n,
        },
    }
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(
            _tile_planes(spec, index, position, flat),
            shape=(nc, nz, ny, nx),
            dtype=np.dtype(spec.dtype),
            photometric="minisblack",
            compression=spec.compression,
            metadata=metadata,
        )


def write_dataset(
    spec: SyntheticSpec, directory: str | os.PathLike[str], *, workers: int | None = None
) -> SyntheticDataset:
    """Write the dataset described by ``spec`` into ``directory`` and describe it.

    Writes ``tile_rRR_cCC.ome.tif`` (all channels, C then Z; physical sizes, channel names and
    per-plane ``PositionX/Y/Z`` in µm: the tile's true corner, z per plane), ``dark.tif`` and
    ``flat.tif`` (float32 (y, x)) and ``ground_truth.json`` (spec, true positions, output grid).
    The same spec always gives byte-identical files. Memory is bounded by ``workers`` tile
    planes, whatever the size of the dataset.

    Parameters
    ----------
    spec
        What to write.
    directory
        Created if missing; existing files of the same names are replaced.
    workers
        Tiles written concurrently (threads); ``min(4, cpu count)`` when ``None``.
    """
    import tifffile

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    positions = tile_positions(spec)
    files = [root / f"{_tile_name(spec, t)}.ome.tif" for t in range(spec.n_tiles)]
    flat = flat_image(spec)
    tifffile.imwrite(root / "dark.tif", dark_image(spec), photometric="minisblack")
    tifffile.imwrite(root / "flat.tif", flat, photometric="minisblack")
    n_workers = max(1, min(4, os.cpu_count() or 1) if workers is None else workers)
    if n_workers == 1:
        for t in range(spec.n_tiles):
            _write_tile(spec, t, positions[t], files[t], flat)
    else:
        with concurrent.futures.ThreadPoolExecutor(n_workers) as pool:
            futures = [
                pool.submit(_write_tile, spec, t, positions[t], files[t], flat) for t in range(spec.n_tiles)
            ]
            for fut in futures:
                fut.result()
    origin, shape = output_geometry(spec)
    record = {
        "format": FORMAT,
        "spec": spec.to_dict(),
        "tiles": [
            {
                "file": files[t].name,
                "grid_index": list(divmod(t, spec.grid[1])),
                "position_um": list(positions[t]),
                "offset_px": list(tile_offsets_px(spec)[t]),
            }
            for t in range(spec.n_tiles)
        ],
        "output_origin_um": list(origin),
        "output_shape": list(shape),
        "dark": "dark.tif",
        "flat": "flat.tif",
        "background_photons": BACKGROUND_FRACTION * spec.photons,
        "conventions": (
            "position_um is the (z, y, x) coordinate in µm of pixel index (0, 0, 0); x and y are "
            "stage X and Y. Tile pixels sample the specimen at position_um + index * pixel_size_um. "
            "raw = Poisson(truth * flat) + Normal(0, read_noise) + dark, one ADU per photon. The "
            "output grid starts at output_origin_um; offset_px = rint((position - min) / pixel size)."
        ),
    }
    (root / "ground_truth.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return SyntheticDataset(
        directory=root,
        spec=spec,
        tile_files=tuple(files),
        positions_um=tuple(positions),
    )


def load_dataset(directory: str | os.PathLike[str]) -> SyntheticDataset:
    """Describe a dataset written earlier by :func:`write_dataset` (from its ``ground_truth.json``)."""
    root = Path(directory)
    record = json.loads((root / "ground_truth.json").read_text())
    if record.get("format") != FORMAT:
        raise ValueError(f"Expected a {FORMAT} record in {root}, got {record.get('format')!r} instead")
    spec = SyntheticSpec.from_dict(record["spec"])
    return SyntheticDataset(
        directory=root,
        spec=spec,
        tile_files=tuple(root / t["file"] for t in record["tiles"]),
        positions_um=tuple(tile_positions(spec)),
    )


@dataclass(frozen=True)
class SyntheticDataset:
    """A written synthetic dataset: where its files are and what the truth is.

    Attributes
    ----------
    directory
        The dataset folder.
    spec
        The spec it was written from.
    tile_files
        One OME-TIFF per tile, in tile order (row-major).
    positions_um
        True (z, y, x) corner of each tile in µm, in tile order.
    """

    directory: Path
    spec: SyntheticSpec
    tile_files: tuple[Path, ...]
    positions_um: tuple[Triplet, ...] = field(repr=False)

    @property
    def dark_path(self) -> Path:
        """The float32 (y, x) dark image file."""
        return self.directory / "dark.tif"

    @property
    def flat_path(self) -> Path:
        """The float32 (y, x) flat-field file (mean 1)."""
        return self.directory / "flat.tif"

    @property
    def dark(self) -> FloatArray:
        """The (y, x) dark image (float32)."""
        return dark_image(self.spec)

    @property
    def flat(self) -> FloatArray:
        """The (y, x) flat field (float32, mean 1)."""
        return flat_image(self.spec)

    @property
    def offsets_px(self) -> list[tuple[int, int, int]]:
        """Each tile's (z, y, x) offset in output pixels after rounding."""
        return tile_offsets_px(self.spec)

    @property
    def output_origin_um(self) -> Triplet:
        """(z, y, x) µm of output pixel (0, 0, 0): the minimum true tile corner."""
        return output_geometry(self.spec)[0]

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """(z, y, x) shape of the output grid with tiles at rounded offsets."""
        return output_geometry(self.spec)[1]

    def ground_truth(
        self, region: Region | None = None, *, channel: int = 0, snapped: bool = False
    ) -> FloatArray:
        """Return :func:`ground_truth` of this dataset's spec."""
        return ground_truth(self.spec, region, channel=channel, snapped=snapped)

    def tile_truth(self, index: int, *, channel: int = 0) -> FloatArray:
        """Return the specimen at exactly the sample points of tile ``index``, (z, y, x)."""
        return sample(self.spec, self.positions_um[index], self.spec.tile_shape, channel=channel)

    def read_tile(self, index: int, *, channel: int = 0) -> npt.NDArray[Any]:
        """Read the raw (z, y, x) pixels of one channel of tile ``index``."""
        import tifffile

        nz = self.spec.tile_shape[0]
        with tifffile.TiffFile(self.tile_files[index]) as tf:
            return np.stack([tf.pages[channel * nz + z].asarray() for z in range(nz)])

    def corrected_tile(self, index: int, *, channel: int = 0) -> FloatArray:
        """Return ``(raw - dark) / flat`` of one channel of tile ``index`` (photons, float32)."""
        raw = self.read_tile(index, channel=channel).astype(np.float32)
        return (raw - self.dark) / self.flat

    def noise_floor_psnr(
        self,
        n_tiles: int | None = None,
        *,
        channel: int = 0,
        against: Literal["tile", "grid"] = "tile",
    ) -> float:
        """Return the PSNR (dB, data range ``photons``) of dark/flat-corrected single tiles.

        It is what the best fusion without averaging could reach; fusion that averages overlaps
        may beat it slightly there.

        Parameters
        ----------
        n_tiles
            Use the first ``n_tiles`` tiles (all when ``None``); the squared errors are pooled.
        channel
            Channel index.
        against
            ``"tile"``: the specimen at exactly each tile's sample points (the noise alone).
            ``"grid"``: each tile at its rounded output offset against :func:`ground_truth` on the
            output grid, the way a fused image is compared; this adds the up-to-half-pixel
            rounding of tile positions.
        """
        if against not in ("tile", "grid"):
            raise ValueError(f"Expected against 'tile' or 'grid', got {against!r} instead")
        n = self.spec.n_tiles if n_tiles is None else n_tiles
        if not 1 <= n <= self.spec.n_tiles:
            raise ValueError(f"Expected 1 <= n_tiles <= {self.spec.n_tiles}, got {n_tiles} instead")
        sse = 0.0
        count = 0
        offsets = self.offsets_px
        for t in range(n):
            data = self.corrected_tile(t, channel=channel)
            if against == "tile":
                truth = self.tile_truth(t, channel=channel)
            else:
                box = tuple(slice(o, o + s) for o, s in zip(offsets[t], self.spec.tile_shape, strict=True))
                truth = self.ground_truth((box[0], box[1], box[2]), channel=channel)
            diff = data.astype(np.float64) - truth
            sse += float(np.sum(diff * diff))
            count += diff.size
        return _psnr_from_mse(sse / count, self.spec.photons)
