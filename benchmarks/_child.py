"""One measured run, in its own process: ``python benchmarks/_child.py '<json config>'``.

Prints one line ``BENCH_RESULT {json}`` with ``seconds`` (wall time of the work, imports
excluded, reading included), ``peak_rss_mb`` (``ru_maxrss`` of this process: imports included)
and ``bytes_in``. Config ``mode``:

``ngff``
    ``ngff_tiles.convert(folder, out)`` with linear blending and the dataset's dark and
    flat images; ``version``, ``compression``, ``level``, ``workers``, ``blend``, ``max_levels``
    select options.
    ``profile`` (a path) writes cProfile statistics of a run on dask's synchronous scheduler.
``baseline``
    What a user would write by hand: tifffile reads every tile, numpy pastes it into one full
    array (last tile wins, offsets rounded from the OME positions), then
    ``ome_zarr.writer.write_image(image, group, axes="yx")`` with ome-zarr's defaults.
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
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024**2 if sys.platform == "darwin" else rss / 1024


def run_ngff(cfg: dict[str, Any]) -> dict[str, Any]:
    import tifffile

    from ngff_tiles import convert
    from ngff_tiles.options import ExecutionOptions, FusionOptions, PyramidOptions, WriterOptions

    data = Path(cfg["data"])
    t0 = time.perf_counter()
    dark = tifffile.imread(data / "dark.tif")
    flat = tifffile.imread(data / "flat.tif")
    fusion = FusionOptions(blend=cfg.get("blend", "linear"), dark=dark, flat=flat)
    writer_kw: dict[str, Any] = {"ngff_version": cfg.get("version", "0.5")}
    if cfg.get("compression"):
        writer_kw["compression"] = cfg["compression"]
    if cfg.get("level") is not None:
        writer_kw["compression_level"] = int(cfg["level"])
    execution = ExecutionOptions(max_workers=cfg.get("workers"), progress=False)
    kwargs: dict[str, Any] = {
        "fusion": fusion,
        "pyramid": PyramidOptions(max_levels=cfg.get("max_levels")),
        "writer": WriterOptions(**writer_kw),
        "execution": execution,
    }
    if cfg.get("profile"):
        return _profiled(data, cfg, kwargs, t0)
    result = convert(str(data), cfg["out"], **kwargs)
    seconds = time.perf_counter() - t0
    return {
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


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[0])
    t_start = time.perf_counter()
    runners = {"ngff": run_ngff, "baseline": run_baseline, "ngff-plate": run_ngff_plate, "iohub": run_iohub}
    runner = runners[cfg["mode"]]
    res = runner(cfg)
    res["process_seconds"] = time.perf_counter() - t_start
    res["peak_rss_mb"] = _peak_rss_mb()
    print(RESULT_PREFIX + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
