"""``convert()``: readers -> layout -> block-wise fusion + pyramid -> OME-Zarr, on dask.

The task graph has one task per output block (a shard for 0.5, a group of chunks for 0.4) at
level 0, each fusing the tiles that overlap it, writing its block and returning its 2x-downsampled
block; a level-k block task assembles the (up to 2x2, or 2x2x2 with ``downsample_z``) blocks of
level k-1 below it, writes, and downsamples in turn. Nothing is re-read from disk, and no task
holds more than a few blocks. Blocks without tiles get no task and are never written (fill value).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import itertools
import math
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ngff_tiles.errors import LayoutError, MissingDependencyError, NgffTilesError, OutputExistsError
from ngff_tiles.fusion.affine import AffinePlacedTile, place_affine
from ngff_tiles.fusion.kernel import BlockTile, Corrections, fuse_block, make_corrections
from ngff_tiles.fusion.labels import (
    LABEL_DTYPE,
    LabelResult,
    LabelTile,
    check_label_options,
    combine_label_results,
    finish_labels,
    place_label_tiles_in,
    plan_labels,
)
from ngff_tiles.fusion.pyramid import downsample_mean, level_shapes
from ngff_tiles.layout.place import Layout, check_uniform
from ngff_tiles.layout.plate import PlateLayout, assign_plate, plate_map
from ngff_tiles.options import (
    ExecutionOptions,
    FusionOptions,
    LabelOptions,
    LayoutOptions,
    PlateOptions,
    PyramidOptions,
    ReaderOptions,
    WriterOptions,
)
from ngff_tiles.tiles import Tile
from ngff_tiles.writers.ome_zarr import (
    DONE_DIR,
    LevelArray,
    build_multiscales,
    build_omero,
    create_level_arrays,
    finalize_image,
    finalize_plate,
    percentile_window,
    prepare_output,
    write_plain_group,
    write_well,
)

__all__ = ["ConvertResult", "convert", "plan"]


@dataclass(frozen=True, slots=True)
class ConvertResult:
    """What a conversion wrote.

    Attributes
    ----------
    output
        The store's path.
    layout
        Where every tile went (the first image's, for plates).
    level_shapes
        (t, c, z, y, x) of every pyramid level (of the first image).
    seconds
        Wall time of the conversion (reading metadata excluded).
    bytes_in
        Uncompressed size of all tiles' pixels.
    blocks_written
        Number of block tasks run, all levels.
    images
        Store paths of the images written (``""``: the root; ``"B/3/0"`` in a plate).
    plate
        The plate layout, for plate output.
    summary
        Text description of the images (and plate map): what ``--dry-run`` prints.
    labels
        The label image written from label tiles, if any.
    """

    output: Path
    layout: Layout
    level_shapes: tuple[tuple[int, int, int, int, int], ...]
    seconds: float
    bytes_in: int
    blocks_written: int
    images: tuple[str, ...] = ("",)
    plate: PlateLayout | None = None
    summary: str = ""
    labels: LabelResult | None = None

    @property
    def mb_per_s(self) -> float:
        """Input megabytes (10^6 bytes) converted per second."""
        return self.bytes_in / 1e6 / self.seconds if self.seconds > 0 else math.inf


# ---------------------------------------------------------------------------------------------
# tasks (module level: they pickle by reference for distributed workers)


WINDOW_SAMPLE = 1 << 16
"""Pixels per last-level block kept for the display windows: bounds the final task's memory."""


def _sample(block: np.ndarray) -> np.ndarray:
    """Return a strided sample of at most ``WINDOW_SAMPLE`` pixels of ``block`` (a copy)."""
    step = max(1, -(-block.size // WINDOW_SAMPLE))
    return np.array(block.reshape(-1)[::step])


def _mark_done(marker: str | None) -> None:
    """Record that a block is written (for ``--resume``): an empty file, created atomically."""
    if marker is not None:
        try:
            with open(marker, "x"):
                pass
        except OSError as exc:  # disk full, permissions: the store stays marked incomplete
            raise NgffTilesError(f"{marker}: cannot record the written block: {exc.strerror or exc}") from exc


def _reload_task(
    array: LevelArray,
    t: int,
    c: int,
    start: tuple[int, int, int],
    stop: tuple[int, int, int],
    next_factors: tuple[int, int, int] | None,
) -> np.ndarray:
    """On resume: read back a block written before the interruption, for the levels above."""
    block = array.read(t, c, start, stop)[...]
    return _sample(block) if next_factors is None else downsample_mean(block, next_factors)


def _write_and_pass_up(
    array: LevelArray,
    marker: str | None,
    t: int,
    c: int,
    start: tuple[int, int, int],
    block: np.ndarray,
    next_factors: tuple[int, int, int] | None,
) -> np.ndarray:
    """Write a block, record it for ``--resume``, and return what the level above needs."""
    array.write(t, c, start, block)
    _mark_done(marker)
    return _sample(block) if next_factors is None else downsample_mean(block, next_factors)


def _fuse_task(
    marker: str | None,
    array: LevelArray,
    t: int,
    c: int,
    start: tuple[int, int, int],
    stop: tuple[int, int, int],
    tiles: Sequence[BlockTile],
    dtype: np.dtype,
    next_factors: tuple[int, int, int] | None,
    corrections: Corrections,
) -> np.ndarray | None:
    block = fuse_block(tiles, start, stop, dtype, corrections)
    if block is None:
        return None
    return _write_and_pass_up(array, marker, t, c, start, block, next_factors)


def _gather_task(
    marker: str | None,
    array: LevelArray,
    t: int,
    c: int,
    start: tuple[int, int, int],
    stop: tuple[int, int, int],
    child_offsets: Sequence[tuple[int, int, int]],
    dtype: np.dtype,
    next_factors: tuple[int, int, int] | None,
    *children: np.ndarray | None,
) -> np.ndarray | None:
    if all(ch is None for ch in children):
        return None
    block = np.zeros(tuple(b - a for a, b in zip(start, stop, strict=True)), dtype=dtype)
    for off, ch in zip(child_offsets, children, strict=True):
        if ch is not None:
            block[
                off[0] : off[0] + ch.shape[0], off[1] : off[1] + ch.shape[1], off[2] : off[2] + ch.shape[2]
            ] = ch
    return _write_and_pass_up(array, marker, t, c, start, block, next_factors)


def _windows_task(
    n_channels: int, tc_of: Sequence[tuple[int, int]], *blocks: np.ndarray | None
) -> list[tuple[float, float]]:
    """Percentile windows per channel from a sample of the first time point's smallest level.

    It depends on every last-level block (of all time points) so that running it runs the whole graph.
    """
    per: dict[int, list[np.ndarray]] = defaultdict(list)
    for (t, c), b in zip(tc_of, blocks, strict=True):
        if b is not None and t == 0:
            per[c].append(b.ravel())
    return [percentile_window(np.concatenate(per[c])) if per[c] else (0.0, 1.0) for c in range(n_channels)]


# ---------------------------------------------------------------------------------------------
# planning


@dataclass(frozen=True, slots=True)
class Plan:
    """A task graph ready to run, and what finishing it needs."""

    graph: dict[str, Any]
    windows_key: str
    n_blocks: int
    level_shapes: tuple[tuple[int, int, int, int, int], ...]
    factors: tuple[tuple[int, int, int], ...]


def _block_range(lo: int, hi: int, size: int) -> range:
    return range(lo // size, (hi - 1) // size + 1)


def plan(
    layout: Layout,
    arrays: Sequence[LevelArray],
    corrections: Corrections,
    *,
    downsample_z: bool,
    prefix: str = "",
    done_dir: Path | None = None,
    done: frozenset[str] = frozenset(),
) -> Plan:
    """Build the dask graph for ``layout`` into the level ``arrays`` (level 0 first).

    ``prefix`` namespaces the task keys, so the graphs of several images (plate wells) can be
    merged and run as one. With ``done_dir``, every block task records its key there once its
    block is written; keys in ``done`` (from an interrupted run) become read-back tasks.
    """

    def marker(name: str) -> str | None:
        return None if done_dir is None else str(done_dir / name.replace("/", "__"))

    def reload_or(
        task: tuple[Any, ...], name: str, level: int, t: int, c: int, start: Any, stop: Any, nxt: Any
    ) -> Any:
        if name.replace("/", "__") in done:
            return (functools.partial(_reload_task, arrays[level], t, c, start, stop, nxt),)
        return task

    block = arrays[0].block
    dtype = np.dtype(layout.dtype)
    fz = 2 if downsample_z else 1
    step = (fz, 2, 2)
    n_levels = len(arrays)
    factors = tuple((fz**k, 2**k, 2**k) for k in range(n_levels))

    # spatial index: which tiles touch which level-0 block (per t, c)
    index: dict[tuple[int, int, int, int, int], list[BlockTile]] = defaultdict(list)
    for p in layout.tiles:
        ranges = [_block_range(p.offset_px[i], p.stop_px[i], block[i]) for i in range(3)]
        for bz, by, bx in itertools.product(*ranges):
            index[(p.time_index, p.channel_index, bz, by, bx)].append(
                p.block_tile()
                if isinstance(p, AffinePlacedTile)  # a general affine (ngff_tiles.fusion.affine)
                else BlockTile(p.tile, p.offset_px, (p.fraction_px[1], p.fraction_px[2]))
            )

    # dark/flat images go into the graph once; every level-0 task depends on this key, so a
    # distributed run ships them to each worker once instead of pickling them into every task
    corrections_key = f"{prefix}corrections"
    graph: dict[str, Any] = {corrections_key: corrections}
    keys_by_level: list[dict[tuple[int, int, int, int, int], str]] = []

    def bounds(level: int, b: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        shape = arrays[level].shape[2:]
        start = (b[0] * block[0], b[1] * block[1], b[2] * block[2])
        stop = tuple(min(s + n, lim) for s, n, lim in zip(start, block, shape, strict=True))
        return start, (stop[0], stop[1], stop[2])

    level0: dict[tuple[int, int, int, int, int], str] = {}
    nxt = step if n_levels > 1 else None
    for key5, tiles in sorted(index.items()):
        t, c, bz, by, bx = key5
        start, stop = bounds(0, (bz, by, bx))
        name = f"{prefix}L0-t{t}-c{c}-{bz}-{by}-{bx}"
        fuse = functools.partial(
            _fuse_task, marker(name), arrays[0], t, c, start, stop, tuple(tiles), dtype, nxt
        )
        graph[name] = reload_or((fuse, corrections_key), name, 0, t, c, start, stop, nxt)
        level0[key5] = name
    keys_by_level.append(level0)

    for k in range(1, n_levels):
        below = keys_by_level[-1]
        parents: dict[tuple[int, int, int, int, int], list[tuple[tuple[int, int, int], str]]] = defaultdict(
            list
        )
        for (t, c, bz, by, bx), name in below.items():
            pkey = (t, c, bz // step[0], by // 2, bx // 2)
            off = ((bz % step[0]) * block[0] // step[0], (by % 2) * block[1] // 2, (bx % 2) * block[2] // 2)
            parents[pkey].append((off, name))
        nxt = step if k < n_levels - 1 else None
        current: dict[tuple[int, int, int, int, int], str] = {}
        for pkey, kids in sorted(parents.items()):
            t, c, bz, by, bx = pkey
            start, stop = bounds(k, (bz, by, bx))
            name = f"{prefix}L{k}-t{t}-c{c}-{bz}-{by}-{bx}"
            offs = tuple(o for o, _ in kids)
            func = functools.partial(
                _gather_task, marker(name), arrays[k], t, c, start, stop, offs, dtype, nxt
            )
            graph[name] = reload_or((func, *[n for _, n in kids]), name, k, t, c, start, stop, nxt)
            current[pkey] = name
        keys_by_level.append(current)

    last = sorted(keys_by_level[-1].items())
    windows_key = f"{prefix}windows"
    graph[windows_key] = (
        functools.partial(_windows_task, len(layout.channels), [(k5[0], k5[1]) for k5, _ in last]),
        *[n for _, n in last],
    )
    return Plan(
        graph=graph,
        windows_key=windows_key,
        n_blocks=len(graph) - 2,
        level_shapes=tuple(a.shape for a in arrays),
        factors=factors,
    )


# ---------------------------------------------------------------------------------------------
# running


def _run_local(graph: Mapping[str, Any], key: str | list[str], workers: int, progress: bool, n: int) -> Any:
    import dask.threaded
    from dask.callbacks import Callback

    if not progress:
        return dask.threaded.get(dict(graph), key, num_workers=workers)
    from tqdm.auto import tqdm

    bar = tqdm(total=n, unit="block", desc="fusing", dynamic_ncols=True, leave=True)

    class _Bar(Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if not str(key).endswith(("windows", "corrections")):
                bar.update(1)

    try:
        with _Bar():  # type: ignore[no-untyped-call]
            return dask.threaded.get(dict(graph), key, num_workers=workers)
    finally:
        bar.close()


def _start_local_cluster(options: ExecutionOptions) -> Any:
    """Start a ``LocalCluster`` of ``options.workers`` processes on 127.0.0.1 (see worker_malloc_trim)."""
    import dask
    import distributed

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    if options.worker_malloc_trim is not None:
        environ["MALLOC_TRIM_THRESHOLD_"] = int(options.worker_malloc_trim)
    dd: Any = distributed  # untyped library
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return dd.LocalCluster(
            n_workers=options.workers or 1,
            threads_per_worker=options.max_workers or 1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # a free port: 8787 may be taken by another cluster
        )


def _run_distributed(graph: Mapping[str, Any], keys: list[str], options: ExecutionOptions) -> Any:
    """Run the graph on a dask.distributed cluster: the given scheduler, or a LocalCluster we start."""
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError(
            "--scheduler/--workers need dask.distributed: pip install 'ngff-tiles[distributed]'"
        ) from None
    dd: Any = distributed  # untyped library: keep mypy's strict checks on our side of the calls
    cluster: Any = None
    client: Any
    if options.scheduler is not None:
        try:
            client = dd.Client(options.scheduler, timeout="10s")
        except OSError as exc:
            raise NgffTilesError(f"{options.scheduler}: cannot reach the dask scheduler: {exc}") from None
    else:
        cluster = _start_local_cluster(options)
        client = dd.Client(cluster)
    try:
        futures = client.get(dict(graph), keys, sync=False)
        if options.progress:
            dd.progress(futures)
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _tiles_from(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Sequence[Tile],
    reader: str | None,
    options: ReaderOptions | None,
) -> tuple[list[Tile], list[str]]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    items = list(inputs)
    if items and all(isinstance(i, Tile) for i in items):
        tiles = [i for i in items if isinstance(i, Tile)]
        return tiles, sorted({t.source.path for t in tiles})
    from ngff_tiles.readers import read_tiles

    paths = [os.fspath(i) for i in items if not isinstance(i, Tile)]
    return read_tiles(paths, reader=reader, options=options), paths


def _record(
    paths: Sequence[str], reader: str | None, options: Mapping[str, Any], started: str
) -> dict[str, Any]:
    from ngff_tiles import __version__

    return {
        "version": __version__,
        "started": started,
        "inputs": list(paths),
        "reader": reader,
        "options": dict(options),
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return f"<array {obj.shape} {obj.dtype}>"
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def _label_tiles_from(
    labels: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Sequence[Tile] | None,
    paths: Sequence[str],
    reader: str | None,
    reader_options: ReaderOptions | None,
    options: LabelOptions,
) -> tuple[list[Tile], list[str]]:
    """Return the label tiles: the given ones, else those of the input tile tables' ``labels`` column."""
    if labels is not None:
        tiles, label_paths = _tiles_from(labels, options.reader, reader_options)
        if not tiles:
            raise LayoutError(f"{', '.join(label_paths) or 'labels'}: no label tiles found")
        return tiles, label_paths
    if reader not in (None, "tile-table"):
        return [], []
    from ngff_tiles.readers.table import TileTableReader, label_tiles

    found: list[Tile] = []
    used: list[str] = []
    for path in paths:
        if TileTableReader().sniff(path):
            more = label_tiles(path, reader_options)
            if more:
                used.append(path)
                found.extend(dataclasses.replace(t, tile_id=len(found) + i) for i, t in enumerate(more))
    return found, used


@dataclass(frozen=True, slots=True)
class ImagePlan:
    """One multiscale image of the output: its path in the store, layout and level shapes."""

    path: str
    layout: Layout
    level_shapes: tuple[tuple[int, int, int], ...]


def _pad(layout: Layout, shape_zyx: tuple[int, int, int]) -> Layout:
    t, c = layout.shape[:2]
    return dataclasses.replace(layout, shape=(t, c, *shape_zyx))


MAX_TILE_PIXELS = 1 << 36
"""A tile of more pixels (68 G; 137 GB of uint16) is taken for corrupt metadata: planning it alone
would enumerate millions of blocks. Readers check their own formats; this is the backstop."""


def _check_tile_sizes(tiles: Sequence[Tile]) -> None:
    for t in tiles:
        if math.prod(t.shape) > MAX_TILE_PIXELS:
            raise LayoutError(
                f"{t.source.path}: tile {t.name or t.tile_id} claims {'×'.join(map(str, t.shape))} "
                f"(z, y, x) pixels, more than {MAX_TILE_PIXELS}; corrupt metadata?"
            )


def _check_inputs_outside(output: str | os.PathLike[str], inputs: Sequence[str]) -> None:
    """Refuse an output that is, or contains, one of the inputs: --overwrite would delete it."""
    out = Path(output).resolve()
    for path in dict.fromkeys(inputs):
        p = Path(path).resolve()
        if p == out or out in p.parents:
            raise OutputExistsError(
                f"{output}: the output would contain the input {path}; write the output elsewhere"
            )


def summarize(images: Sequence[ImagePlan], plate: PlateLayout | None) -> str:
    """Return the dry-run text: the plate map (for plates) and every image's shape and levels."""
    lines = []
    if plate is not None:
        lines.append(
            f"plate: {len(plate.wells)} well(s) of {len(plate.rows)}×{len(plate.columns)} "
            f"(wells from {plate.how}), up to {plate.field_count()} image(s) per well"
        )
        lines.append(plate_map(plate))
    for im in images:
        lay = im.layout
        shape = "×".join(str(v) for v in lay.shape)
        origin = ", ".join(f"{v:.2f}" for v in lay.origin_um)
        lines.append(
            f"{im.path or '.'}: {len(lay.tiles)} tile(s) -> (t,c,z,y,x) {shape}, "
            f"{len(im.level_shapes)} level(s), origin (z,y,x) {origin} µm"
        )
    return "\n".join(lines)


def convert(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Sequence[Tile],
    output: str | os.PathLike[str],
    *,
    reader: str | None = None,
    reader_options: ReaderOptions | None = None,
    layout: LayoutOptions | None = None,
    fusion: FusionOptions | None = None,
    pyramid: PyramidOptions | None = None,
    writer: WriterOptions | None = None,
    execution: ExecutionOptions | None = None,
    plate: PlateOptions | None = None,
    dry_run: bool = False,
    on_progress: Callable[[str], None] | None = None,
    labels: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Sequence[Tile] | None = None,
    label_options: LabelOptions | None = None,
) -> ConvertResult:
    """Fuse tiles into one multiscale OME-Zarr image, or an HCS plate of them.

    Parameters
    ----------
    inputs
        A path (or several) any reader recognises, or tiles already read.
    output
        Path of the store to write (``*.ome.zarr``). Refused if it exists unless
        ``writer.overwrite`` and the store was written by ngff-tiles.
    reader
        Force a reader by registry name instead of sniffing.
    reader_options, layout, fusion, pyramid, writer, execution
        Options of each stage; defaults when ``None``.
    plate
        Write an HCS plate (wells, fields). Plate output is also chosen when the readers give
        well hints; ``None`` then means default plate options.
    dry_run
        Plan only: nothing is written; ``ConvertResult.summary`` describes what would be.
    on_progress
        Called with a one-line message at each stage (the CLI logs them).
    labels
        Label tiles (per-tile segmentations, integer ids) at the image tiles' positions: paths any
        reader recognises, or tiles. ``None``: those of a tile table's ``labels`` column, if any.
        They are fused into ``labels/<name>`` of the image they belong to (objects merged across
        overlaps; see :mod:`ngff_tiles.fusion.labels`); in a plate, of each well or field image.
    label_options
        Name, match measure and threshold of the label fusion.

    Returns
    -------
    ConvertResult
        Output path, layouts, level shapes and timings.
    """
    layout_opts = layout or LayoutOptions()
    fusion_opts = fusion or FusionOptions()
    pyramid_opts = pyramid or PyramidOptions()
    writer_opts = writer or WriterOptions()
    exec_opts = execution or ExecutionOptions()
    say = on_progress or (lambda msg: None)
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")

    tiles, paths = _tiles_from(inputs, reader, reader_options)
    if not tiles:
        raise LayoutError(f"{', '.join(paths) or 'input'}: no tiles found")
    check_uniform(tiles)
    _check_tile_sizes(tiles)
    label_opts = label_options or LabelOptions()
    check_label_options(label_opts)
    label_tiles, label_paths = _label_tiles_from(labels, paths, reader, reader_options, label_opts)
    channels = list(dict.fromkeys(t.channel for t in sorted(tiles, key=lambda t: t.tile_id)))
    times = sorted({t.time_index for t in tiles})
    plate_layout: PlateLayout | None = None
    if plate is not None or any(t.well is not None for t in tiles):
        plate_layout = assign_plate(tiles, plate or PlateOptions(), layout_opts)
        groups = [(im.path, list(im.tiles)) for im in plate_layout.images]
    else:
        groups = [("", tiles)]
    layouts = [
        (path, place_affine(group, layout_opts, channels=channels, time_indices=times))
        for path, group in groups
    ]
    if plate is not None and plate.pad_wells:
        biggest = tuple(max(lay.spatial_shape[i] for _, lay in layouts) for i in range(3))
        layouts = [(path, _pad(lay, (biggest[0], biggest[1], biggest[2]))) for path, lay in layouts]
    if (
        pyramid_opts.downsample_z
        and writer_opts.shards[0] % 2
        and any(lay.shape[2] > 1 for _, lay in layouts)
    ):
        # a level pairs z-blocks two by two: the block depth must be even
        z, y, x = writer_opts.shards
        writer_opts = dataclasses.replace(writer_opts, shards=(2 * z, y, x))
        say(f"--downsample-z: shard depth {z} is odd, using {2 * z}")
    natural = [
        level_shapes(
            lay.spatial_shape,
            writer_opts.chunks,
            downsample_z=pyramid_opts.downsample_z,
            max_levels=pyramid_opts.max_levels,
        )
        for _, lay in layouts
    ]
    n_levels = max(len(s) for s in natural)  # every image of a plate gets the same levels
    images = [
        ImagePlan(
            path,
            lay,
            tuple(
                level_shapes(
                    lay.spatial_shape,
                    writer_opts.chunks,
                    downsample_z=pyramid_opts.downsample_z,
                    max_levels=None,
                    n_levels=n_levels,
                )
            ),
        )
        for path, lay in layouts
    ]
    first = images[0].layout
    say(
        f"{len(tiles)} tiles, {len(channels)} channel(s), {len(times)} time point(s), "
        f"{len(images)} image(s); pixel {first.pixel_size_um[2]:g} µm"
    )
    # label tiles by image path (plates: each well or field image gets its own label image)
    placed_labels: dict[str, list[LabelTile]] = {}
    if label_tiles:
        placed_labels = place_label_tiles_in(label_tiles, [(im.path, im.layout) for im in images])
        say(f"{len(label_tiles)} label tile(s) -> labels/{label_opts.name} of {len(placed_labels)} image(s)")
    summary = summarize(images, plate_layout)
    for path, lts in placed_labels.items():
        where = f"{path}/labels" if path else "labels"
        summary += f"\n{where}/{label_opts.name}: {len(lts)} label tile(s), {LABEL_DTYPE} ids"
    corrections = make_corrections(
        fusion_opts, channels, [(t.shape[1], t.shape[2]) for t in tiles], layout_opts.subpixel
    )
    bytes_in = sum(math.prod(t.shape) * t.dtype.itemsize for t in tiles)
    if dry_run:
        return ConvertResult(
            output=Path(output),
            layout=first,
            level_shapes=tuple((*first.shape[:2], *s) for s in images[0].level_shapes),
            seconds=0.0,
            bytes_in=bytes_in,
            blocks_written=0,
            images=tuple(im.path for im in images),
            plate=plate_layout,
            summary=summary,
        )

    workers = exec_opts.max_workers or os.cpu_count() or 1
    options_record = _jsonable(
        {
            "layout": asdict(layout_opts),
            "fusion": asdict(fusion_opts),
            "pyramid": asdict(pyramid_opts),
            "writer": {k: v for k, v in asdict(writer_opts).items() if k != "overwrite"},
            **({"plate": asdict(plate)} if plate is not None else {}),
            **({"labels": {**asdict(label_opts), "inputs": label_paths}} if placed_labels else {}),
        }
    )
    record = _record(paths, reader, options_record, started)
    t0 = time.perf_counter()
    _check_inputs_outside(output, [*paths, *(t.source.path for t in tiles)])
    root = prepare_output(output, writer_opts, record, resume=exec_opts.resume)
    done_dir = root / DONE_DIR
    done = frozenset(p.name for p in done_dir.iterdir()) if exec_opts.resume else frozenset()
    if done:
        say(f"resuming: {len(done)} block(s) already written")
    graph: dict[str, Any] = {}
    plans: list[Plan] = []
    for im in images:
        arrays = create_level_arrays(
            root / im.path if im.path else root,
            im.level_shapes,
            (im.layout.shape[0], im.layout.shape[1]),
            im.layout.dtype,
            writer_opts,
            threads=workers,
            downsample_z=pyramid_opts.downsample_z,
            resume=exec_opts.resume,
        )
        p = plan(
            im.layout,
            arrays,
            corrections,
            downsample_z=pyramid_opts.downsample_z,
            prefix=f"{im.path}/" if im.path else "",
            done_dir=done_dir,
            done=done,
        )
        graph.update(p.graph)
        plans.append(p)
    n_blocks = sum(p.n_blocks for p in plans)
    keys = [p.windows_key for p in plans]
    labelled = [im for im in images if im.path in placed_labels]
    for im in labelled:
        label_arrays = create_level_arrays(
            (root / im.path if im.path else root) / "labels" / label_opts.name,
            im.level_shapes,
            (im.layout.shape[0], 1),
            LABEL_DTYPE,
            writer_opts,
            threads=workers,
            downsample_z=pyramid_opts.downsample_z,
            resume=exec_opts.resume,
        )
        label_plan = plan_labels(
            placed_labels[im.path],
            label_arrays,
            im.layout.pixel_size_um,
            match=label_opts.match,
            threshold=label_opts.threshold,
            downsample_z=pyramid_opts.downsample_z,
            prefix=f"{im.path}/labels/" if im.path else "labels/",
        )
        graph.update(label_plan.graph)
        keys.append(label_plan.summary_key)
        n_blocks += label_plan.n_tasks
    say(f"{n_levels} pyramid level(s), {n_blocks} block task(s) on {workers} thread(s)")
    if exec_opts.scheduler is not None or exec_opts.workers is not None:
        results = _run_distributed(graph, keys, exec_opts)
    else:
        results = _run_local(graph, keys, workers, exec_opts.progress, n_blocks)
    windows = results[: len(plans)]

    version = writer_opts.ngff_version
    finished = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    label_results = [
        finish_labels(
            root,
            im.path,
            summary_,
            placed_labels[im.path],
            im.layout,
            name=label_opts.name,
            n_levels=len(im.level_shapes),
            downsample_z=pyramid_opts.downsample_z,
            writer=writer_opts,
            record={**record, "finished": finished},
            settings=options_record["labels"],
        )
        for im, summary_ in zip(labelled, results[len(plans) :], strict=True)
    ]
    label_result = combine_label_results(label_results) if label_results else None
    if label_result is not None:
        say(
            f"{len(label_results)} label image(s): {label_result.n_objects} object(s) "
            f"from {label_result.n_tile_objects} in the tiles"
        )
    for im, p, win in zip(images, plans, windows, strict=True):
        lay = im.layout
        multiscales = build_multiscales(
            name=im.path.replace("/", "_") if im.path else writer_opts.name,
            n_levels=len(im.level_shapes),
            pixel_size_um=lay.pixel_size_um,
            origin_um=lay.origin_um,
            factors=p.factors,
            version=version,
        )
        omero = build_omero(lay.channels, lay.dtype, win, version, writer_opts.name)
        image_record = {
            **record,
            "finished": finished,
            "origin_um": list(lay.origin_um),
            "pixel_size_um": list(lay.pixel_size_um),
            "tiles": [
                {
                    "id": pt.tile.tile_id,
                    "name": pt.tile.name,
                    "path": pt.tile.source.path,
                    "channel": pt.tile.channel,
                    "time_index": pt.tile.time_index,
                    "shape": list(pt.tile.shape),
                    "position_um": list(pt.tile.position_um),
                    "offset_px": list(pt.offset_px),
                    **(
                        {"affine_um": [list(r) for r in pt.tile.affine_um], "stop_px": list(pt.stop_px)}
                        if pt.tile.affine_um
                        else {}
                    ),
                }
                for pt in lay.tiles
            ],
        }
        finalize_image(
            root / im.path if im.path else root,
            multiscales=multiscales,
            omero=omero,
            record=image_record,
            version=version,
        )
    if plate_layout is not None:
        by_well: dict[Any, list[ImagePlan]] = defaultdict(list)
        for wim, im in zip(plate_layout.images, images, strict=True):
            by_well[wim.well].append(im)
        for well, ims in by_well.items():
            fields: list[dict[str, Any]] = [
                {
                    "path": im.path.rsplit("/", 1)[1],
                    "origin_um": list(im.layout.origin_um),
                    "tiles": [pt.tile.name or str(pt.tile.tile_id) for pt in im.layout.tiles],
                    "tile_positions_um": [list(pt.tile.position_um) for pt in im.layout.tiles],
                }
                for im in ims
            ]
            write_well(root / well.path, [f["path"] for f in fields], version, {"fields": fields})
        for row in dict.fromkeys(w.row for w in plate_layout.wells):
            write_plain_group(root / row, version)
        finalize_plate(
            root,
            name=plate.name if plate is not None else "plate",
            rows=plate_layout.rows,
            columns=plate_layout.columns,
            wells=[(w.row, w.column) for w in plate_layout.wells],
            field_count=plate_layout.field_count(),
            record={**record, "finished": finished},
            version=version,
        )
    shutil.rmtree(done_dir, ignore_errors=True)  # complete: the record of written blocks is no longer needed
    seconds = time.perf_counter() - t0
    return ConvertResult(
        output=root,
        layout=first,
        level_shapes=tuple((*first.shape[:2], *s) for s in images[0].level_shapes),
        seconds=seconds,
        bytes_in=bytes_in,
        blocks_written=n_blocks,
        images=tuple(im.path for im in images),
        plate=plate_layout,
        summary=summary,
        labels=label_result,
    )
