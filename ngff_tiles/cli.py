"""The ``ngff-tiles`` console script: thin subcommands over the library; logging lives here.

Exit codes
----------
0  success
1  the output has problems (``validate``, ``verify``, ``convert --validate/--verify``)
2  bad input or usage: unreadable/corrupt files, missing positions, existing output, ...
3  unexpected internal error (a bug: please report it with ``--debug`` output)
130  interrupted (Ctrl-C); a conversion's output is left marked incomplete
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ngff_tiles.errors import NgffTilesError

__all__ = ["main"]

log = logging.getLogger("ngff_tiles")

EXIT_CODES = """exit codes:
  0    success
  1    validate, verify (or convert --validate/--verify): the store has problems
  2    bad input or usage (corrupt file, missing positions, existing output, ...)
  3    unexpected internal error (rerun with --debug and report it)
  130  interrupted; a partial output stays marked incomplete
"""


def _triple(text: str) -> tuple[int, int, int]:
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers like 1024,1024 or 1,1024,1024, got {text!r}"
        ) from None
    if len(parts) == 2:
        parts = [1, *parts]
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected 2 (y,x) or 3 (z,y,x) positive integers, got {text!r}")
    return (parts[0], parts[1], parts[2])


def _load_image(spec: str, what: str) -> Any:
    """Return a float for a number, else the image in the file (TIFF or .npy)."""
    try:
        return float(spec)
    except ValueError:
        pass
    path = Path(spec)
    if not path.is_file():
        raise NgffTilesError(f"{spec}: {what} is neither a number nor an existing file")
    import numpy as np

    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        import tifffile

        return tifffile.imread(path)
    except Exception as exc:
        raise NgffTilesError(f"{spec}: cannot read {what} image: {exc}") from exc


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="more messages (-vv for debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only errors")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _add_reader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reader", help="force a reader by name (see `ngff-tiles readers`)")
    p.add_argument(
        "--position-unit",
        help="unit of stage positions whose file does not give a length unit (e.g. OME 'reference frame')",
    )
    p.add_argument("--pixel-size", type=float, nargs="+", metavar="UM", help="pixel size in µm: XY, or Z Y X")
    p.add_argument(
        "--grid",
        action="store_true",
        help="place tiles by their row/column indices × tile size × (1 - overlap), not by stage positions",
    )
    p.add_argument(
        "--positions",
        choices=("recorded", "requested"),
        default="recorded",
        help="ND2: stage XY as recorded per frame (default, where present) or the requested loop points",
    )
    p.add_argument(
        "--allow-absolute-paths",
        action="store_true",
        help="BigDataViewer XML: accept image paths outside the XML's folder (refused by default)",
    )
    p.add_argument(
        "--pyme-server",
        action="append",
        default=[],
        metavar="URL",
        help="PYME data server for pyme-cluster:// inputs (http://host:port or file:///root; repeatable; "
        "default: $NGFF_TILES_PYME_SERVERS); servers are never discovered",
    )
    p.add_argument(
        "--keep-camera-offset",
        action="store_true",
        help="PYME: do not subtract Camera.ADOffset in the reader (implied by --dark)",
    )


def _xy(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y in µm, got {text!r}") from None
    return (x, y)


def _add_plate_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("plate (HCS)")
    g.add_argument(
        "--plate",
        type=int,
        choices=(6, 12, 24, 48, 96, 384, 1536),
        metavar="WELLS",
        help="write an HCS plate of this type; without well hints, snap stage positions to its wells",
    )
    g.add_argument(
        "--a1-um", type=_xy, metavar="X,Y", help="stage position of the centre of well A1 (snapping)"
    )
    g.add_argument(
        "--snap", action="store_true", help="snap positions to wells even when the reader gives wells"
    )
    g.add_argument("--well-map", metavar="FILE", help="CSV (name,well) or JSON mapping tile names to wells")
    g.add_argument(
        "--fields",
        choices=("fuse", "keep"),
        default="fuse",
        help="fuse each well into one image (default) or keep every field as its own image",
    )
    g.add_argument(
        "--pad-wells", action="store_true", help="pad every well image to the largest well's shape"
    )
    g.add_argument("--plate-name", default="plate", help="plate name in the metadata")


def _plate_options(args: argparse.Namespace) -> Any:
    """PlateOptions when any plate flag is given, else None (plates from well hints still work)."""
    from ngff_tiles.options import PlateOptions

    if (
        args.plate is None
        and args.well_map is None
        and not args.snap
        and args.fields == "fuse"
        and not args.pad_wells
    ):
        return None
    return PlateOptions(
        geometry=args.plate,
        a1_um=args.a1_um,
        snap=args.snap,
        well_map=args.well_map,
        fields=args.fields,
        pad_wells=args.pad_wells,
        name=args.plate_name,
    )


def _parser() -> argparse.ArgumentParser:
    from ngff_tiles import __version__
    from ngff_tiles.options import BLEND_MODES, COMPRESSIONS, LABEL_MATCHES, SUBPIXEL_MODES, WriterOptions

    wdef = WriterOptions()

    top = argparse.ArgumentParser(
        prog="ngff-tiles",
        description="Turn tiled microscopy acquisitions into fused, multiscale OME-Zarr.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"ngff-tiles {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser(
        "convert",
        help="fuse tiles into one multiscale OME-Zarr",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("inputs", nargs="+", metavar="INPUT", help="tiles: a file, folder or tile table")
    c.add_argument("-o", "--output", required=True, help="output store, e.g. out.ome.zarr")
    c.add_argument(
        "--overwrite", action="store_true", help="replace an existing output written by ngff-tiles"
    )
    _add_reader_args(c)
    g = c.add_argument_group("layout")
    g.add_argument("--flip-x", action="store_true", help="stage x runs against camera x")
    g.add_argument("--flip-y", action="store_true", help="stage y runs against camera y")
    g.add_argument("--swap-xy", action="store_true", help="stage x is camera y (applied before flips)")
    g.add_argument(
        "--subpixel",
        choices=SUBPIXEL_MODES,
        default="round",
        help="round positions to whole pixels (default), or resample tiles to their exact positions",
    )
    g.add_argument(
        "--interpolation",
        choices=("linear", "nearest"),
        default="linear",
        help="resampling of tiles under a rotation/affine (BigStitcher): linear (default), "
        "nearest for labels",
    )
    g = c.add_argument_group("fusion")
    g.add_argument(
        "--blend", choices=BLEND_MODES, default="linear", help="blending of overlaps (default linear)"
    )
    g.add_argument(
        "--blend-width", type=float, metavar="PX", help="ramp length in pixels (default: half tile)"
    )
    g.add_argument("--dark", metavar="VALUE|FILE", help="dark level: a number or an image (TIFF/.npy)")
    g.add_argument("--flat", metavar="FILE", help="flat-field image (TIFF/.npy), normalised to mean 1")
    g = c.add_argument_group("output")
    g.add_argument(
        "--ngff-version", choices=("0.5", "0.4"), default="0.5", help="0.5 = Zarr v3 + shards (default)"
    )
    g.add_argument(
        "--chunks",
        type=_triple,
        default=wdef.chunks,
        metavar="[Z,]Y,X",
        help="chunk shape (default %(default)s)",
    )
    g.add_argument(
        "--shards",
        type=_triple,
        default=wdef.shards,
        metavar="[Z,]Y,X",
        help="shard (0.5) / task block shape (default %(default)s)",
    )
    g.add_argument(
        "--compression", choices=COMPRESSIONS, default="blosc-zstd", help="codec (default blosc-zstd)"
    )
    g.add_argument("--compression-level", type=int, metavar="N", help="codec level")
    g.add_argument("--downsample-z", action="store_true", help="halve z too at each pyramid level")
    g.add_argument("--max-levels", type=int, metavar="N", help="at most N pyramid levels")
    g.add_argument("--name", default="image", help="image name in the metadata")
    g.add_argument("--validate", action="store_true", help="validate the output after writing")
    g.add_argument(
        "--verify",
        action="store_true",
        help="read the output back after writing: chunks present and decodable, pyramid, metadata",
    )
    _add_plate_args(c)
    g.add_argument("--dry-run", action="store_true", help="print the layout (and plate map) without writing")
    g = c.add_argument_group("labels (per-tile segmentations)")
    g.add_argument(
        "--labels",
        nargs="+",
        metavar="TILES",
        help="label tiles (integer ids) at the image tiles' positions, e.g. a tile table of label "
        "TIFFs; default: the input tile table's 'labels' column, if any",
    )
    g.add_argument(
        "--label-name", default="segmentation", help="written as labels/NAME (default %(default)s)"
    )
    g.add_argument(
        "--label-match",
        choices=LABEL_MATCHES,
        default="iou",
        help="compare objects in overlaps by IoU (default) or by intersection over the smaller object",
    )
    g.add_argument(
        "--label-threshold",
        type=float,
        default=0.5,
        metavar="T",
        help="objects whose match measure is at least T are one object (default %(default)s)",
    )
    g.add_argument("--labels-reader", metavar="NAME", help="force the reader of the label tiles")
    g = c.add_argument_group("execution")
    g.add_argument("--max-workers", type=int, metavar="N", help="threads (default: one per core)")
    g.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on a dask.distributed scheduler (tcp://host:port)"
    )
    g.add_argument("--workers", type=int, metavar="N", help="start a LocalCluster of N worker processes")
    g.add_argument("--resume", action="store_true", help="continue an interrupted conversion into OUTPUT")
    _add_common(c)

    i = sub.add_parser("info", help="list the tiles an input holds, which reader reads it, and the plate map")
    i.add_argument("inputs", nargs="+", metavar="INPUT")
    _add_reader_args(i)
    _add_plate_args(i)
    _add_common(i)

    v = sub.add_parser("validate", help="check a store against the NGFF schemas and semantic rules")
    v.add_argument("store", metavar="STORE")
    v.add_argument("--strict", action="store_true", help="use the strict schemas")
    v.add_argument(
        "--viewers",
        action="store_true",
        help="also warn about what napari, Neuroglancer, vizarr or Fiji will reject or show wrongly",
    )
    _add_common(v)

    y = sub.add_parser(
        "verify",
        help="read an output back: every expected chunk present and decodable, pyramid, metadata",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    y.add_argument("store", metavar="STORE")
    y.add_argument(
        "--sample-blocks",
        type=_sample_blocks,
        default=None,
        metavar="N|all",
        help="pyramid blocks per level recomputed from the level below (default: all)",
    )
    _add_common(y)

    s = sub.add_parser(
        "serve",
        help="serve a store (or a folder of stores) over HTTP for web viewers, and print their links",
    )
    s.add_argument("store", metavar="STORE", help="an OME-Zarr store or a folder of stores")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    s.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    s.add_argument("--neuroglancer-url", metavar="URL", help="Neuroglancer deployment for the links")
    s.add_argument("--vizarr-url", metavar="URL", help="vizarr deployment for the links")
    _add_common(s)

    w = sub.add_parser("view", help="open a store in napari (needs the 'napari' extra)")
    w.add_argument("store", metavar="STORE")
    _add_common(w)

    r = sub.add_parser("readers", help="list readers, or which reader claims PATH")
    r.add_argument("path", nargs="?", metavar="PATH")
    _add_common(r)

    b = sub.add_parser("bdv", help="BigDataViewer/BigStitcher projects: `bdv export` writes one")
    bsub = b.add_subparsers(dest="bdv_command", required=True, metavar="ACTION")
    be = bsub.add_parser(
        "export",
        help="write tiles as a BigStitcher project (XML + per-view OME-Zarr or BDV-H5), unfused",
        description="Write the tiles of any supported input as a SpimData XML that BigStitcher opens "
        "directly; refine there, save, then `ngff-tiles convert project.xml -o fused.ome.zarr`.",
    )
    be.add_argument("inputs", nargs="+", metavar="INPUT", help="tiles: a file, folder or tile table")
    be.add_argument("-o", "--output", required=True, metavar="PROJECT.xml", help="the XML to write")
    be.add_argument(
        "--format",
        choices=("zarr", "h5"),
        default="zarr",
        help="pixels as OME-Zarr 0.4 per view (default, bdv.multimg.zarr) or one BDV HDF5 file",
    )
    be.add_argument(
        "--compression",
        choices=("gzip", "blosc-zstd", "blosc-lz4", "zstd", "none"),
        default="gzip",
        help="Zarr codec (default gzip, which every Fiji reads)",
    )
    be.add_argument("--overwrite", action="store_true", help="replace an existing project XML and its data")
    be.add_argument("--max-workers", type=int, metavar="N", help="views written in parallel")
    _add_reader_args(be)
    _add_common(be)

    d = sub.add_parser("demo", help="make the built-in synthetic sample and convert it")
    d.add_argument("-o", "--output-dir", default="demo-output", help="folder for the sample and the output")
    d.add_argument("--overwrite", action="store_true", help="replace a previous demo output")
    _add_common(d)
    return top


def _reader_options(args: argparse.Namespace) -> Any:
    from ngff_tiles.options import ReaderOptions

    px = tuple(args.pixel_size) if args.pixel_size else None
    if px is not None and len(px) not in (1, 2, 3):
        raise NgffTilesError(f"--pixel-size takes 1 (xy), 2 (y x) or 3 (z y x) values, got {len(px)}")
    return ReaderOptions(
        position_unit=args.position_unit,
        pixel_size_um=px,
        grid_layout=bool(getattr(args, "grid", False)),
        positions=getattr(args, "positions", "recorded"),
        allow_absolute_paths=bool(getattr(args, "allow_absolute_paths", False)),
        pyme_servers=tuple(getattr(args, "pyme_server", None) or ()),
        subtract_camera_offset=not (
            getattr(args, "keep_camera_offset", False) or getattr(args, "dark", None) is not None
        ),
    )


def _cmd_convert(args: argparse.Namespace) -> int:
    from ngff_tiles.options import (
        ExecutionOptions,
        FusionOptions,
        LabelOptions,
        LayoutOptions,
        PyramidOptions,
        WriterOptions,
    )
    from ngff_tiles.pipeline import convert

    fusion = FusionOptions(
        blend=args.blend,
        blend_width=args.blend_width,
        dark=_load_image(args.dark, "dark") if args.dark is not None else None,
        flat=_load_image(args.flat, "flat") if args.flat is not None else None,
    )
    if isinstance(fusion.flat, float):
        raise NgffTilesError(f"{args.flat}: --flat must be an image file")
    result = convert(
        args.inputs,
        args.output,
        reader=args.reader,
        reader_options=_reader_options(args),
        layout=LayoutOptions(
            flip_x=args.flip_x,
            flip_y=args.flip_y,
            swap_xy=args.swap_xy,
            subpixel=args.subpixel,
            interpolation=args.interpolation,
        ),
        fusion=fusion,
        pyramid=PyramidOptions(downsample_z=args.downsample_z, max_levels=args.max_levels),
        writer=WriterOptions(
            ngff_version=args.ngff_version,
            chunks=args.chunks,
            shards=args.shards,
            compression=args.compression,
            compression_level=args.compression_level,
            overwrite=args.overwrite,
            name=args.name,
        ),
        execution=ExecutionOptions(
            max_workers=args.max_workers,
            progress=not args.quiet,
            scheduler=args.scheduler,
            workers=args.workers,
            resume=args.resume,
        ),
        plate=_plate_options(args),
        dry_run=args.dry_run,
        on_progress=log.info,
        labels=args.labels,
        label_options=LabelOptions(
            name=args.label_name,
            match=args.label_match,
            threshold=args.label_threshold,
            reader=args.labels_reader,
        ),
    )
    if result.labels is not None:
        log.warning(
            "wrote %s: %d object(s) from %d in the tiles (%d matched pair(s) in overlaps)",
            result.labels.path,
            result.labels.n_objects,
            result.labels.n_tile_objects,
            result.labels.n_matches,
        )
    if args.dry_run:
        print(result.summary)
        print(f"(dry run: nothing written to {result.output})")
        return 0
    log.warning(
        "wrote %s: %d level(s), level 0 %s (t,c,z,y,x), %.1f MB in %.1f s (%.0f MB/s)",
        result.output,
        len(result.level_shapes),
        "×".join(str(s) for s in result.level_shapes[0]),
        result.bytes_in / 1e6,
        result.seconds,
        result.mb_per_s,
    )
    code = _validate(str(result.output), strict=False) if args.validate else 0
    if args.verify:
        code = max(
            code, _verify(str(result.output), sample_blocks=None, quiet=args.quiet, verbose=args.verbose)
        )
    return code


def _sample_blocks(text: str) -> int | None:
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of blocks or 'all', got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number of blocks >= 0 or 'all', got {text!r}")
    return n


def _verify(store: str, sample_blocks: int | None, quiet: bool, verbose: int) -> int:
    from ngff_tiles.verify import verify_store

    report = verify_store(store, sample_blocks=sample_blocks, progress=not quiet)
    for p in report.problems:
        print(f"error: {p}", file=sys.stderr)
    if verbose or not quiet:
        for w in report.warnings:
            print(f"warning: {w}", file=sys.stderr)
    if not report.ok:
        print(f"{store}: {report.summary()}", file=sys.stderr)
        return 1
    print(f"{store}: {report.summary()}")
    return 0


def _validate(store: str, strict: bool, viewers: bool = False) -> int:
    from ngff_tiles.metadata.validate import validate_store

    problems = validate_store(store, strict=strict)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        print(f"{p.severity}: {store}/{p.where}: {p.message}".replace("//", "/"), file=sys.stderr)
    notes = ""
    if viewers:
        from ngff_tiles.metadata.viewers import check_viewers

        found = check_viewers(store)
        for n in found:
            where = f"{store.rstrip('/')}/{n.where}".rstrip("/")
            print(f"{n.severity}: {where}: [{', '.join(n.viewers)}] {n.message}", file=sys.stderr)
        n_warn = sum(n.severity == "warning" for n in found)
        notes = f"; viewers: {n_warn} warning(s), {len(found) - n_warn} note(s)"
    if errors:
        print(f"{store}: {len(errors)} error(s){notes}", file=sys.stderr)
        return 1
    print(f"{store}: valid OME-NGFF ({len(problems)} warning(s){notes})")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ngff_tiles.serve import NEUROGLANCER_URL, VIZARR_URL, serve

    serve(
        args.store,
        host=args.host,
        port=args.port,
        neuroglancer=args.neuroglancer_url or NEUROGLANCER_URL,
        vizarr=args.vizarr_url or VIZARR_URL,
    )
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    from ngff_tiles.view import view

    view(args.store)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ngff_tiles.readers import get_reader, guess_reader

    opts = _reader_options(args)
    everything = []
    for path in args.inputs:
        rd = get_reader(args.reader) if args.reader else guess_reader(path)
        tiles = rd.tiles(path, opts)
        everything.extend(tiles)
        print(f"{path}: reader {rd.name}, {len(tiles)} tile(s)")
        print(
            f"{'id':>5} {'name':<24} {'channel':<12} {'t':>3} {'shape (z,y,x)':<18} {'dtype':<8} "
            f"{'pixel (z,y,x) µm':<24} {'position (z,y,x) µm'}"
        )
        for t in tiles:
            shape = "×".join(str(s) for s in t.shape)
            px = ", ".join(f"{v:g}" for v in t.pixel_size_um)
            pos = ", ".join(f"{v:.3f}" for v in t.position_um)
            well = f" well {t.well}/{t.field_index}" if t.well else ""
            well += " (affine: resampled)" if t.affine_um is not None else ""
            print(
                f"{t.tile_id:>5} {t.name[:24]:<24} {t.channel[:12]:<12} {t.time_index:>3} {shape:<18} "
                f"{t.dtype!s:<8} {px:<24} {pos}{well}"
            )
    plate = _plate_options(args)
    if plate is not None or any(t.well is not None for t in everything):
        import dataclasses

        from ngff_tiles.layout.plate import assign_plate, plate_map
        from ngff_tiles.options import PlateOptions

        renumbered = [dataclasses.replace(t, tile_id=i) for i, t in enumerate(everything)]
        layout = assign_plate(renumbered, plate or PlateOptions())
        fields = "fields" if (plate and plate.fields == "keep") else "images"
        print(f"\nplate map ({len(layout.wells)} well(s), {fields} per well; wells from {layout.how}):")
        print(plate_map(layout))
    return 0


def _cmd_readers(args: argparse.Namespace) -> int:
    from ngff_tiles.readers import available_readers

    infos = available_readers()
    for info in infos:
        if info.reader is None:
            status = f"unavailable: {info.error}"
        elif args.path is not None:
            try:
                status = "claims it" if info.reader.sniff(args.path) else "-"
            except OSError as exc:
                status = f"- ({exc.strerror})"
        else:
            status = info.reader.description
        print(f"{info.name:<12} {info.origin:<10} {status}")
    return 0


def _cmd_bdv(args: argparse.Namespace) -> int:
    from ngff_tiles.readers import read_tiles
    from ngff_tiles.writers.bdv import export_bdv

    tiles = read_tiles(args.inputs, reader=args.reader, options=_reader_options(args))
    result = export_bdv(
        tiles,
        args.output,
        format=args.format,
        compression=args.compression,
        overwrite=args.overwrite,
        max_workers=args.max_workers,
    )
    log.warning(
        "wrote %s: %d view setup(s), %d view(s), pixels in %s; world unit %g µm",
        result.xml,
        result.setups,
        result.views,
        result.data,
        result.world_unit_um,
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ngff_tiles.testing.synthetic import demo_spec, write_dataset

    base = Path(args.output_dir)
    tiles_dir = base / "tiles"
    out = base / "demo.ome.zarr"
    if out.exists() and not args.overwrite:
        raise NgffTilesError(f"{out}: output exists; pass --overwrite to replace it")
    log.warning("writing the synthetic sample to %s ...", tiles_dir)
    tiles_dir.mkdir(parents=True, exist_ok=True)
    write_dataset(demo_spec(), tiles_dir)
    argv = [
        "convert",
        str(tiles_dir),
        "-o",
        str(out),
        "--dark",
        str(tiles_dir / "dark.tif"),
        "--flat",
        str(tiles_dir / "flat.tif"),
    ]
    if args.overwrite:
        argv.append("--overwrite")
    if args.quiet:
        argv.append("-q")
    code = main(argv)
    if code == 0:
        print(f"\nOutput: {out.resolve()}")
        print(f"  check it:     ngff-tiles validate {out}")
        print(f"  napari:       ngff-tiles view {out}")
        print(f"  web viewers:  ngff-tiles serve {out}   (prints Neuroglancer and vizarr links)")
    return code


def _configure_logging(args: argparse.Namespace) -> None:
    level = (
        logging.ERROR if args.quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ngff-tiles: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script; return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    commands = {
        "convert": _cmd_convert,
        "info": _cmd_info,
        "validate": lambda a: _validate(a.store, a.strict, a.viewers),
        "verify": lambda a: _verify(a.store, a.sample_blocks, a.quiet, a.verbose),
        "serve": _cmd_serve,
        "view": _cmd_view,
        "readers": _cmd_readers,
        "demo": _cmd_demo,
        "bdv": _cmd_bdv,
    }
    try:
        return int(commands[args.command](args))
    except NgffTilesError as exc:
        if args.debug:
            raise
        print(f"ngff-tiles: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ngff-tiles: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"ngff-tiles: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
