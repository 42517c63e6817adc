"""One measured run, in its own process: ``python benchmarks/_child.py '<json config>'``.

Prints one line ``BENCH_RESULT {json}`` with ``seconds`` (wall time of the work, imports
excluded, reading included), ``peak_rss_mb`` (peak RSS of this process, imports included: its
``VmHWM`` on Linux, see :func:`_peak_rss_mb`) and ``bytes_in``. Config ``mode``:

``ngff``
    ``ngff_tiles.convert(folder, out)`` with linear blending and the dataset's dark and
    flat images (none with ``correct: false``); ``version``, ``compression``, ``level``,
    ``workers``, ``blend``, ``max_levels`` select options.
    ``profile`` (a path) writes cProfile statistics of a run on dask's synchronous scheduler.
``baseline``
    What a user would write by hand: tifffile reads every tile, numpy pastes it into one full
    array (last tile wins, offsets rounded from the OME positions), then
    ``ome_zarr.writer.write_image(image, group, axes="yx")`` with ome-zarr's defaults.
    ``ndim: 3``: z-stack tiles pasted into one (z, y, x) array, ``axes="zyx"``.
``ngff-plate``
    ``ngff_tiles.convert(wells, out, plate=PlateOptions(geometry, fields))`` of a synthetic plate
    (``data``: the plate folder, one sub-folder per well, ``B03``) with linear blending and the
    plate's dark and flat images.
``iohub``
    Run by the interpreter of iohub's own venv (this file needs only the standard library at
    import): every tile of every well folder (``B03``) becomes one field of an HCS plate written
    with ``iohub.ngff.open_ome_zarr(layout="hcs")``, ``create_position(row, col, field)`` and
    ``create_image("0", tile)``, scale and translation from the tile's OME-XML; no fusion, no
    correction, iohub's defaults otherwise; one level, or ``levels`` with
    ``position.compute_pyramid(levels, method="mean", dims={"y", "x"})``.
``ngff-zarr``
    Run by the interpreter of ngff-zarr's own venv: tifffile reads every tile and its OME-XML,
    numpy pastes it into one full (z, y, x) array at its rounded position (last tile wins; dark +
    flat corrected first unless ``correct`` is false), then ``ngff_zarr.to_ngff_image(mosaic,
    dims, scale, translation)``, ``to_multiscales(image)`` and ``to_ngff_zarr(out, multiscales)``
    with ngff-zarr's defaults.
``multiview-stitcher``
    Run by the interpreter of multiview-stitcher's own venv: tifffile reads every tile (dark +
    flat corrected unless ``correct`` is false) into a ``spatial_image_utils.get_sim_from_array``
    with its OME physical size and stage position as the ``stage_metadata`` transform, then
    ``fusion.fuse(sims, transform_key="stage_metadata", output_zarr_url=out,
    zarr_options={"ome_zarr": True}, batch_options=...)``: its weighted-average fusion with
    blending, written chunk by chunk, then its pyramid; ``n_batch`` blocks at a time on dask's
    threaded scheduler (``misc_utils.process_batch_using_dask``), or one by one when ``n_batch``
    is 0 (its default).

``ngff`` with ``distributed`` workers
    ``ExecutionOptions(workers=N)`` (a ``LocalCluster`` of N worker processes, ``threads`` each;
    ``malloc_trim: N`` gives the workers dask's ``MALLOC_TRIM_THRESHOLD_`` (its default is 65536;
    ngff-tiles' LocalCluster leaves it out unless ``ExecutionOptions.worker_malloc_trim`` is set);
    the result also gives ``tree_peak_rss_mb``: the peak of the summed RSS of this process and
    all its descendants, sampled every 50 ms from ``/proc``, and ``largest_worker_rss_mb``: the
    largest ``VmHWM`` of a descendant (a worker) seen by that sampling.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "


def _peak_rss_mb() -> float:
    """Peak resident set size of this process since it started this interpreter, in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own memory
    map. Not ``ru_maxrss``: Linux carries it across ``execve`` from the address space the
    process had before (the parent's, copied by fork or shared by vfork), so a child started by
    a parent that once held 2 GB reports at least 2 GB. Elsewhere ``ru_maxrss``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024**2 if sys.platform == "darwin" else rss / 1024


def run_ngff(cfg: dict[str, Any]) -> dict[str, Any]:
    import tifffile

    from ngff_tiles import convert
    from ngff_tiles.options import ExecutionOptions, FusionOptions, PyramidOptions, WriterOptions

    data = Path(cfg["data"])
    t0 = time.perf_counter()
    dark = tifffile.imread(data / "dark.tif") if cfg.get("correct", True) else None
    flat = tifffile.imread(data / "flat.tif") if cfg.get("correct", True) else None
    fusion = FusionOptions(blend=cfg.get("blend", "linear"), dark=dark, flat=flat)
    writer_kw: dict[str, Any] = {"ngff_version": cfg.get("version", "0.5")}
    if cfg.get("compression"):
        writer_kw["compression"] = cfg["compression"]
    if cfg.get("level") is not None:
        writer_kw["compression_level"] = int(cfg["level"])
    if cfg.get("distributed"):  # a LocalCluster of worker processes
        execution = ExecutionOptions(
            workers=int(cfg["distributed"]),
            max_workers=cfg.get("threads") or 1,
            progress=False,
            worker_malloc_trim=cfg.get("malloc_trim"),
        )
    else:
        execution = ExecutionOptions(max_workers=cfg.get("workers"), progress=False)
    kwargs: dict[str, Any] = {
        "fusion": fusion,
        "pyramid": PyramidOptions(max_levels=cfg.get("max_levels")),
        "writer": WriterOptions(**writer_kw),
        "execution": execution,
    }
    if cfg.get("profile"):
        return _profiled(data, cfg, kwargs, t0)
    extra: dict[str, Any] = {}
    if cfg.get("distributed"):
        with _TreeRss() as tree:
            result = convert(str(data), cfg["out"], **kwargs)
        extra["tree_peak_rss_mb"] = tree.peak_kib / 1024
        extra["largest_worker_rss_mb"] = max(tree.hwm_kib.values(), default=0) / 1024
    else:
        result = convert(str(data), cfg["out"], **kwargs)
    seconds = time.perf_counter() - t0
    return {
        **extra,
        "seconds": seconds,
        "convert_seconds": result.seconds,
        "bytes_in": result.bytes_in,
        "level_shapes": [list(s) for s in result.level_shapes],
        "blocks": result.blocks_written,
    }


def _profiled(data: Path, cfg: dict[str, Any], kwargs: dict[str, Any], t0: float) -> dict[str, Any]:
    """Run convert() with every block task on this thread, under cProfile (slower; not timed)."""
    import cProfile
    import importlib

    import dask.local

    from ngff_tiles import convert

    conv = importlib.import_module(convert.__module__)  # the module whose _run_local runs the graph

    def run_sync(graph: Any, key: str, workers: int, progress: bool, n: int) -> Any:
        return dask.local.get_sync(dict(graph), key)

    if hasattr(conv, "_run_local"):  # otherwise the block tasks run on threads cProfile cannot see
        conv._run_local = run_sync
    prof = cProfile.Profile()
    result = prof.runcall(conv.convert, str(data), cfg["out"], **kwargs)
    prof.dump_stats(cfg["profile"])
    return {
        "seconds": time.perf_counter() - t0,
        "bytes_in": result.bytes_in,
        "profile": cfg["profile"],
        "pipeline_file": str(conv.__file__),
    }


class _TreeRss:
    """Sample the summed RSS of this process and all its descendants (from ``/proc``) in a thread."""

    def __init__(self, interval: float = 0.05) -> None:
        import os
        import threading

        self.peak_kib = 0
        self.hwm_kib: dict[int, int] = {}  # VmHWM of each descendant, last seen
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> int:
        import os

        parents: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    stat = Path(f"/proc/{name}/stat").read_text()
                except OSError:
                    continue
                parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
        tree = {self._pid}
        grew = True
        while grew:
            more = {pid for pid, ppid in parents.items() if ppid in tree and pid not in tree}
            tree |= more
            grew = bool(more)
        total = 0
        for pid in tree:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                    elif line.startswith("VmHWM:") and pid != self._pid:
                        self.hwm_kib[pid] = max(self.hwm_kib.get(pid, 0), int(line.split()[1]))
            except OSError:
                continue
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self._sample())
            self._stop.wait(self._interval)


def _ome_offsets(files: list[Path]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Read each tile's OME PositionY/X and PhysicalSizeY/X; return rounded offsets and shapes."""
    import tifffile

    pos: list[tuple[float, float]] = []
    shapes: list[tuple[int, int]] = []
    size = (1.0, 1.0)
    for f in files:
        with tifffile.TiffFile(f) as tf:
            ome = tifffile.xml2dict(tf.ome_metadata)["OME"]
            image = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
            pixels = image["Pixels"]
            plane = pixels["Plane"][0] if isinstance(pixels["Plane"], list) else pixels["Plane"]
            pos.append((float(plane["PositionY"]), float(plane["PositionX"])))
            size = (float(pixels["PhysicalSizeY"]), float(pixels["PhysicalSizeX"]))
            shapes.append((int(pixels["SizeY"]), int(pixels["SizeX"])))
    y0 = min(p[0] for p in pos)
    x0 = min(p[1] for p in pos)
    offsets = [(round((y - y0) / size[0]), round((x - x0) / size[1])) for y, x in pos]
    return offsets, shapes


def run_baseline(cfg: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import tifffile
    import zarr
    from ome_zarr.writer import write_image

    data = Path(cfg["data"])
    if cfg.get("ndim") == 3:
        return _run_baseline_3d(cfg)
    t0 = time.perf_counter()
    files = sorted(data.glob("tile_*.ome.tif"))
    offsets, shapes = _ome_offsets(files)
    height = max(o[0] + s[0] for o, s in zip(offsets, shapes, strict=True))
    width = max(o[1] + s[1] for o, s in zip(offsets, shapes, strict=True))
    image = np.zeros((height, width), dtype=np.uint16)
    bytes_in = 0
    for f, (oy, ox) in zip(files, offsets, strict=True):
        tile = tifffile.imread(f)
        bytes_in += tile.nbytes
        image[oy : oy + tile.shape[0], ox : ox + tile.shape[1]] = tile  # last tile wins
    t_read = time.perf_counter() - t0
    group = zarr.open_group(cfg["out"], mode="w")
    storage = {"chunks": tuple(cfg["chunks"])} if cfg.get("chunks") else None
    write_image(image, group, axes="yx", storage_options=storage)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "read_paste_seconds": t_read, "bytes_in": bytes_in, "shape": [height, width]}


def _run_baseline_3d(cfg: dict[str, Any]) -> dict[str, Any]:
    """The baseline for z-stack tiles: the same paste in (z, y, x), ``write_image(axes="zyx")``."""
    import numpy as np
    import zarr
    from ome_zarr.writer import write_image

    data = Path(cfg["data"])
    t0 = time.perf_counter()
    files = sorted(data.glob("tile_*.ome.tif"))
    offsets, shapes, _, _ = _tile_geometry(files)
    full = [max(o[a] + s[a] for o, s in zip(offsets, shapes, strict=True)) for a in range(3)]
    image = np.zeros(full, dtype=np.uint16)
    bytes_in = 0
    for f, (oz, oy, ox), shape in zip(files, offsets, shapes, strict=True):
        tile = _read_tile(f, shape)
        bytes_in += tile.nbytes
        image[oz : oz + shape[0], oy : oy + shape[1], ox : ox + shape[2]] = tile  # last tile wins
    t_read = time.perf_counter() - t0
    group = zarr.open_group(cfg["out"], mode="w")
    storage = {"chunks": tuple(cfg["chunks"])} if cfg.get("chunks") else None
    write_image(image, group, axes="zyx", storage_options=storage)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "read_paste_seconds": t_read, "bytes_in": bytes_in, "shape": full}


def run_ngff_plate(cfg: dict[str, Any]) -> dict[str, Any]:
    import re

    import tifffile

    from ngff_tiles import convert
    from ngff_tiles.options import ExecutionOptions, FusionOptions, PlateOptions, WriterOptions

    data = Path(cfg["data"])
    t0 = time.perf_counter()
    inputs = sorted(str(d) for d in data.iterdir() if d.is_dir() and re.fullmatch(r"[A-Z]+\d+", d.name))
    dark = tifffile.imread(Path(inputs[0]) / "dark.tif")  # every well shares the same dark/flat
    flat = tifffile.imread(Path(inputs[0]) / "flat.tif")
    result = convert(
        inputs,
        cfg["out"],
        plate=PlateOptions(geometry=cfg.get("geometry", 96), fields=cfg.get("fields", "fuse")),
        fusion=FusionOptions(blend=cfg.get("blend", "linear"), dark=dark, flat=flat),
        writer=WriterOptions(ngff_version=cfg.get("version", "0.5")),
        execution=ExecutionOptions(max_workers=cfg.get("workers"), progress=False),
    )
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "convert_seconds": result.seconds,
        "bytes_in": result.bytes_in,
        "images": len(result.images),
        "level_shapes": [list(s) for s in result.level_shapes],
        "blocks": result.blocks_written,
    }


def _ome_tile(path: Path) -> tuple[Any, list[str], list[float], list[float]]:
    """Read one OME-TIFF tile: (t, c, z, y, x) pixels, channel names, (z, y, x) µm size, corner."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        ome = tifffile.xml2dict(tf.ome_metadata)["OME"]
        image = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
        pixels = image["Pixels"]
        channels = pixels["Channel"] if isinstance(pixels["Channel"], list) else [pixels["Channel"]]
        plane = pixels["Plane"][0] if isinstance(pixels["Plane"], list) else pixels["Plane"]
        data = tf.asarray()
    nc, nz = int(pixels["SizeC"]), int(pixels["SizeZ"])
    data = data.reshape(1, nc, nz, int(pixels["SizeY"]), int(pixels["SizeX"]))  # pages: C, then Z
    names = [str(c.get("Name", f"C{i}")) for i, c in enumerate(channels)]
    size = [float(pixels.get(f"PhysicalSize{a}", 1.0)) for a in "ZYX"]
    corner = [float(plane.get(f"Position{a}", 0.0)) for a in "ZYX"]
    return data, names, size, corner


def run_iohub(cfg: dict[str, Any]) -> dict[str, Any]:
    import re

    from iohub.ngff import open_ome_zarr
    from iohub.ngff.models import TransformationMeta

    data = Path(cfg["data"])
    levels = int(cfg.get("levels", 1))
    t0 = time.perf_counter()
    wells = sorted(d for d in data.iterdir() if d.is_dir() and re.fullmatch(r"[A-Z]+\d+", d.name))
    plate = None
    bytes_in = 0
    fields = 0
    for well in wells:
        row = well.name.rstrip("0123456789")
        col = str(int(well.name[len(row) :]))
        for i, tile in enumerate(sorted(well.glob("*.ome.tif"))):
            pixels, names, size, corner = _ome_tile(tile)
            if plate is None:
                plate = open_ome_zarr(cfg["out"], layout="hcs", mode="w-", channel_names=names)
            position = plate.create_position(row, col, str(i))
            transform = [
                TransformationMeta(type="scale", scale=[1.0, 1.0, *size]),
                TransformationMeta(type="translation", translation=[0.0, 0.0, *corner]),
            ]
            position.create_image("0", pixels, transform=transform)
            if levels > 1:
                position.compute_pyramid(levels=levels, method="mean", dims={"y", "x"})
            bytes_in += pixels.nbytes
            fields += 1
    if plate is not None:
        plate.close()
    seconds = time.perf_counter() - t0
    from importlib import metadata

    return {
        "seconds": seconds,
        "bytes_in": bytes_in,
        "images": fields,
        "levels": levels,
        "iohub": metadata.version("iohub"),
    }


def _tile_geometry(
    files: list[Path],
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]], list[float], list[float]]:
    """Each tile's rounded (z, y, x) offset and shape from its OME-XML, the pixel size, the origin.

    Offsets are ``round((position - min position) / pixel size)``; the origin is the minimum
    stage position (µm) of plane 0 over the tiles.
    """
    import tifffile

    corners: list[list[float]] = []
    shapes: list[tuple[int, int, int]] = []
    size = [1.0, 1.0, 1.0]
    for f in files:
        with tifffile.TiffFile(f) as tf:
            ome = tifffile.xml2dict(tf.ome_metadata)["OME"]
        image = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
        pixels = image["Pixels"]
        plane = pixels["Plane"][0] if isinstance(pixels["Plane"], list) else pixels["Plane"]
        corners.append([float(plane.get(f"Position{a}", 0.0)) for a in "ZYX"])
        size = [float(pixels.get(f"PhysicalSize{a}", 1.0)) for a in "ZYX"]
        shapes.append((int(pixels["SizeZ"]), int(pixels["SizeY"]), int(pixels["SizeX"])))
    origin = [min(c[a] for c in corners) for a in range(3)]
    offsets = [
        (
            round((c[0] - origin[0]) / size[0]),
            round((c[1] - origin[1]) / size[1]),
            round((c[2] - origin[2]) / size[2]),
        )
        for c in corners
    ]
    return offsets, shapes, size, origin


def _corrector(data: Path, correct: bool) -> Any:
    """A function (z, y, x) raw uint16 -> ``rint((raw - dark) / flat)`` clipped to uint16."""
    import numpy as np
    import tifffile

    if not correct:
        return lambda tile: tile
    dark = tifffile.imread(data / "dark.tif").astype(np.float32)
    flat = tifffile.imread(data / "flat.tif").astype(np.float32)
    scale = np.float32(1.0) / flat

    def fix(tile: Any) -> Any:
        out = (tile.astype(np.float32) - dark) * scale
        np.rint(out, out=out)
        np.clip(out, 0, 65535, out=out)
        return out.astype(tile.dtype)

    return fix


def _read_tile(path: Path, shape: tuple[int, int, int]) -> Any:
    import tifffile

    return tifffile.imread(path).reshape(shape)  # one channel: pages are z planes


def run_ngff_zarr(cfg: dict[str, Any]) -> dict[str, Any]:
    from importlib import metadata

    import numpy as np
    from ngff_zarr import to_multiscales, to_ngff_image, to_ngff_zarr

    data = Path(cfg["data"])
    t0 = time.perf_counter()
    files = sorted(data.glob("tile_*.ome.tif"))
    offsets, shapes, size, origin = _tile_geometry(files)
    fix = _corrector(data, cfg.get("correct", True))
    full = [max(o[a] + s[a] for o, s in zip(offsets, shapes, strict=True)) for a in range(3)]
    mosaic = np.zeros(full, dtype=np.uint16)
    bytes_in = 0
    for f, (oz, oy, ox), shape in zip(files, offsets, shapes, strict=True):
        tile = _read_tile(f, shape)
        bytes_in += tile.nbytes
        mosaic[oz : oz + shape[0], oy : oy + shape[1], ox : ox + shape[2]] = fix(tile)  # last wins
    t_read = time.perf_counter() - t0
    dims = ("z", "y", "x") if full[0] > 1 else ("y", "x")
    image = to_ngff_image(
        mosaic if full[0] > 1 else mosaic[0],
        dims=dims,
        scale={d: size[3 - len(dims) + i] for i, d in enumerate(dims)},
        translation={d: origin[3 - len(dims) + i] for i, d in enumerate(dims)},
    )
    multiscales = to_multiscales(image)
    to_ngff_zarr(cfg["out"], multiscales)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "read_paste_seconds": t_read,
        "bytes_in": bytes_in,
        "shape": full,
        "levels": len(multiscales.images),
        "version": metadata.version("ngff-zarr"),
    }


def run_multiview_stitcher(cfg: dict[str, Any]) -> dict[str, Any]:
    import contextlib
    import io
    from importlib import metadata

    from multiview_stitcher import fusion, misc_utils
    from multiview_stitcher import spatial_image_utils as si_utils

    data = Path(cfg["data"])
    t0 = time.perf_counter()
    files = sorted(data.glob("tile_*.ome.tif"))
    fix = _corrector(data, cfg.get("correct", True))
    sims = []
    bytes_in = 0
    for f in files:
        pixels, _, size, corner = _ome_tile(f)
        tile = fix(pixels[0, 0])  # (z, y, x) of the only channel
        bytes_in += tile.nbytes
        dims = ("z", "y", "x") if tile.shape[0] > 1 else ("y", "x")
        arr = tile if tile.shape[0] > 1 else tile[0]
        sims.append(
            si_utils.get_sim_from_array(
                arr,
                dims=dims,
                scale={d: size[3 - len(dims) + i] for i, d in enumerate(dims)},
                translation={d: corner[3 - len(dims) + i] for i, d in enumerate(dims)},
                transform_key="stage_metadata",
            )
        )
    t_read = time.perf_counter() - t0
    n_batch = int(cfg.get("n_batch", 0))
    batch = {"batch_func": misc_utils.process_batch_using_dask, "n_batch": n_batch} if n_batch > 0 else None
    with contextlib.redirect_stdout(io.StringIO()):  # it prints progress; keep our stdout for the result
        fusion.fuse(
            images=sims,
            transform_key="stage_metadata",
            output_zarr_url=cfg["out"],
            zarr_options={"ome_zarr": True},
            batch_options=batch,
        )
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "read_seconds": t_read,
        "bytes_in": bytes_in,
        "version": metadata.version("multiview-stitcher"),
    }


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[0])
    t_start = time.perf_counter()
    runners = {
        "ngff": run_ngff,
        "baseline": run_baseline,
        "ngff-plate": run_ngff_plate,
        "iohub": run_iohub,
        "ngff-zarr": run_ngff_zarr,
        "multiview-stitcher": run_multiview_stitcher,
    }
    runner = runners[cfg["mode"]]
    res = runner(cfg)
    res["process_seconds"] = time.perf_counter() - t_start
    res["peak_rss_mb"] = _peak_rss_mb()
    print(RESULT_PREFIX + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
