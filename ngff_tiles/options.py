"""Typed option groups for each stage; the CLI fills them, the library takes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "BLEND_MODES",
    "COMPRESSIONS",
    "SUBPIXEL_MODES",
    "ExecutionOptions",
    "FusionOptions",
    "LabelOptions",
    "LayoutOptions",
    "PlateOptions",
    "PyramidOptions",
    "ReaderOptions",
    "WriterOptions",
]

SUBPIXEL_MODES: tuple[str, ...] = ("round", "linear", "cubic")
BlendMode = Literal["linear", "cosine", "mean", "max", "first", "last"]
BLEND_MODES: tuple[str, ...] = ("linear", "cosine", "mean", "max", "first", "last")
Compression = Literal["blosc-zstd", "blosc-lz4", "zstd", "gzip", "none"]
COMPRESSIONS: tuple[str, ...] = ("blosc-zstd", "blosc-lz4", "zstd", "gzip", "none")
LABEL_MATCHES: tuple[str, ...] = ("iou", "overlap")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderOptions:
    """Options every reader understands.

    Attributes
    ----------
    position_unit
        Unit to assume for stage positions whose unit the file does not state as a length
        (e.g. OME ``"reference frame"``); ``None`` makes such positions an error.
    pixel_size_um
        Override of the (y, x) or (z, y, x) pixel size, for files that lack it.
    grid_layout
        Place tiles on a regular grid from their row/column indices (NDTiff ``row``/``column``
        axes or ``GridRowIndex``/``GridColumnIndex``) instead of stage positions: tile (r, c) goes
        to (r, c) × tile size × (1 - overlap), the overlap taken from ``GridPixelOverlapY/X``
        (0 when absent). For datasets without usable stage positions.
    positions
        ND2 only: ``"recorded"`` (default) takes each frame's stage XY as recorded during the
        acquisition (``events()``: ``X Coord [µm]``/``Y Coord [µm]``) where the file has it, else
        the requested loop point; ``"requested"`` always takes the experiment's XYPosLoop points
        (or the global position of a single-position file).
    allow_absolute_paths
        BigDataViewer XML only: accept image paths outside the XML's folder (absolute paths or
        ``..`` escapes). Off by default, so an XML cannot make us read arbitrary files.
    pyme_servers
        PYME only: data server URLs (``http://host:port``, or ``file:///root`` for a server root on
        local disk) that ``pyme-cluster://`` inputs are read from. Empty: the servers in the
        environment variable ``NGFF_TILES_PYME_SERVERS``. Servers are never discovered.
    subtract_camera_offset
        PYME only: subtract the camera offset ``Camera.ADOffset`` from every frame in the reader
        (saturating at 0), as PYME's own tiling does. Turn off when giving ``FusionOptions.dark``.
    """

    position_unit: str | None = None
    pixel_size_um: tuple[float, ...] | None = None
    grid_layout: bool = False
    positions: Literal["recorded", "requested"] = "recorded"
    allow_absolute_paths: bool = False
    pyme_servers: tuple[str, ...] = ()
    subtract_camera_offset: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class LayoutOptions:
    """How stage positions become output pixels.

    Attributes
    ----------
    flip_x, flip_y
        The stage axis runs opposite to the camera axis: mirror tile centres along it.
    swap_xy
        Stage x is camera y and vice versa: swap the tile centres' x and y.
    pixel_size_um
        Output (z, y, x) pixel size; ``None`` keeps the input's. Only equal to the input for now.
    subpixel
        ``"round"`` (default): each tile's offset is rounded to the nearest output pixel, no
        resampling, pixel values untouched, placement error up to half a pixel. ``"linear"`` or
        ``"cubic"`` (Keys, a = -0.5): each tile is resampled in y and x by its fractional offset
        after dark/flat correction, so it lands at its exact position (z is always rounded).
    interpolation
        How tiles under a general affine (rotated or sheared, e.g. refined in BigStitcher) are
        resampled: ``"linear"`` (default) or ``"nearest"`` (for integer label images).
        Translation-only tiles are never resampled by it.
    """

    flip_x: bool = False
    flip_y: bool = False
    swap_xy: bool = False
    pixel_size_um: tuple[float, float, float] | None = None
    subpixel: Literal["round", "linear", "cubic"] = "round"
    interpolation: Literal["linear", "nearest"] = "linear"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlateOptions:
    """How tiles become an HCS plate (rows, wells, fields).

    Attributes
    ----------
    geometry
        Plate type by well count (6, 12, 24, 48, 96, 384, 1536): all its rows and columns are
        listed in the metadata, and stage positions can be snapped to its wells. ``None``: taken
        from the wells found (the smallest standard plate that holds them).
    a1_um
        Stage (x, y) in µm of the centre of well A1, for snapping. ``None``: inferred (the well
        grid's phase from the tile centres; the top-left occupied well is A1).
    snap
        Assign wells by snapping tile centres to the nearest well centre of ``geometry``, even
        when the reader gives well hints.
    well_map
        CSV or JSON mapping tile names (or file names) to wells (``name,well``), overriding hints.
    fields
        ``"fuse"``: every well's tiles are fused into one image (field ``0``). ``"keep"``: every
        original field is its own image, unfused, with a per-well table of field positions.
    pad_wells
        Pad every well's image to the largest well's shape (some viewers need equal shapes).
    name
        Plate name in the metadata.
    """

    geometry: int | None = None
    a1_um: tuple[float, float] | None = None
    snap: bool = False
    well_map: str | None = None
    fields: Literal["fuse", "keep"] = "fuse"
    pad_wells: bool = False
    name: str = "plate"


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionOptions:
    """How overlapping tiles are blended.

    Attributes
    ----------
    blend
        ``linear`` (feather ramp towards the tile borders, default), ``cosine`` (raised-cosine
        ramp), ``mean``, ``max``, ``first`` or ``last`` (the first/last tile by id wins).
    blend_width
        Ramp length in pixels for ``linear``/``cosine``; ``None`` ramps over half the tile.
    dark
        Dark (offset) level subtracted from every tile: a number or a (y, x) image of the tile size.
    flat
        Flat-field (y, x) image of the tile size; normalised to mean 1 and divided out.
    """

    blend: BlendMode = "linear"
    blend_width: float | None = None
    dark: float | np.ndarray | None = None
    flat: np.ndarray | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PyramidOptions:
    """Multiscale pyramid.

    Attributes
    ----------
    downsample_z
        Halve z as well as y and x at each level.
    max_levels
        Upper bound on the number of levels (level 0 included); ``None``: until it fits one chunk.
    """

    downsample_z: bool = False
    max_levels: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelOptions:
    """Label tiles (per-tile segmentations) fused into one NGFF label image.

    Attributes
    ----------
    name
        Name of the label image: it is written to ``labels/<name>``.
    match
        How two objects seen in the overlap of two tiles are compared, over that overlap only:
        ``"iou"`` (intersection over union of their pixels there) or ``"overlap"`` (intersection
        over the smaller of the two; merges an object split in one tile with its whole in the other).
    threshold
        Objects whose ``match`` measure is at least this are one object (in (0, 1]). With
        ``"iou"`` and a threshold above 0.5 an object matches at most one object per neighbour.
    reader
        Force the reader of the label inputs (``None``: sniff).
    """

    name: str = "segmentation"
    match: Literal["iou", "overlap"] = "iou"
    threshold: float = 0.5
    reader: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterOptions:
    """OME-Zarr output.

    Attributes
    ----------
    ngff_version
        ``"0.5"`` (Zarr v3, sharded) or ``"0.4"`` (Zarr v2, ``/`` separator).
    chunks
        (z, y, x) chunk shape (t and c chunks are always 1).
    shards
        (z, y, x) shard shape for 0.5; for 0.4 the block of chunks one task writes.
    compression
        Codec: ``blosc-zstd`` (default), ``blosc-lz4``, ``zstd``, ``gzip`` or ``none``.
    compression_level
        Codec level; ``None`` takes the codec's default here.
    overwrite
        Replace an existing output that ngff-tiles wrote.
    name
        Image name in the multiscales metadata.
    """

    ngff_version: Literal["0.4", "0.5"] = "0.5"
    chunks: tuple[int, int, int] = (1, 512, 512)
    shards: tuple[int, int, int] = (1, 2048, 2048)
    compression: Compression = "blosc-zstd"
    compression_level: int | None = None
    overwrite: bool = False
    name: str = "image"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionOptions:
    """Where and how the work runs.

    Attributes
    ----------
    max_workers
        Threads for the local dask scheduler (``None``: one per core).
    progress
        Show a progress bar on stderr.
    scheduler
        Address of a running ``dask.distributed`` scheduler (``tcp://host:port``) to run on.
    workers
        Start a ``dask.distributed`` ``LocalCluster`` of this many worker processes on 127.0.0.1
        for the conversion (closed afterwards). The library never starts a cluster otherwise.
    resume
        Continue an interrupted conversion into the same output: blocks recorded as written are
        read back instead of recomputed; the result is identical to an uninterrupted run.
    worker_malloc_trim
        ``MALLOC_TRIM_THRESHOLD_`` for the worker processes of a ``LocalCluster`` started by
        ``workers``. ``None`` (default) leaves glibc's adaptive threshold: dask's own default of
        65536 makes every block-sized array a fresh ``mmap`` whose pages fault in again, which
        made our workers 1.6-1.8x slower (benchmarks/README.md). A cluster given by ``scheduler``
        is never touched.
    """

    max_workers: int | None = None
    progress: bool = True
    scheduler: str | None = None
    workers: int | None = None
    resume: bool = False
    worker_malloc_trim: int | None = None
