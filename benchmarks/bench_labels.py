"""Label fusion at growing mosaic sizes: time, peak memory, and correctness against the truth.

For each grid (G x G tiles of T² pixels, 10 % overlap, about one object per 450 pixels), writes the
synthetic segmented specimen (``ngff_tiles.testing.labels``) once under ``--workdir``, then converts
it in a fresh child process twice: image only, and image + labels. Prints a Markdown table: wall
time and peak RSS (the child's ``VmHWM``) of both runs, object counts, and the IoU of every
ground-truth object with its fused object (min / median).

    .venv/bin/python benchmarks/bench_labels.py [--grids 4,8] [--tile 1024] [--workdir benchmarks/_work]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
from ngff_tiles import ExecutionOptions, ReaderOptions, convert
from ngff_tiles.readers.table import TileTableReader
table, out, with_labels = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
t0 = time.perf_counter()
if with_labels:
    result = convert(table, out, execution=ExecutionOptions(progress=False))
else:  # the same table, its labels column ignored: the image tiles only
    tiles = TileTableReader().tiles(table, ReaderOptions())
    result = convert(tiles, out, execution=ExecutionOptions(progress=False))
seconds = time.perf_counter() - t0
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so it would count the parent's peak
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
labels = None if result.labels is None else result.labels.n_objects
print(json.dumps({"seconds": seconds, "rss_mb": rss, "objects": labels}))
"""


def run(table: Path, out: Path, with_labels: bool) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(table), str(out), "1" if with_labels else "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    from ngff_tiles.testing.labels import LabelSpec, match_objects, write_label_dataset

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grids", default="4,8")
    p.add_argument("--tile", type=int, default=1024)
    p.add_argument("--workdir", default="benchmarks/_work")
    args = p.parse_args()
    rows = []
    for g in (int(v) for v in args.grids.split(",")):
        overlap = args.tile // 10
        side = (args.tile - overlap) * (g - 1) + args.tile
        spec = LabelSpec(
            grid=(g, g), tile_shape=(1, args.tile, args.tile), overlap_px=overlap,
            n_objects=side * side // 450, radius_px=(5.0, 10.0),
        )  # fmt: skip
        folder = Path(args.workdir) / "labels" / f"g{g}-t{args.tile}"
        t0 = time.perf_counter()
        ds = write_label_dataset(spec, folder / "tiles")
        generated = time.perf_counter() - t0
        image = run(ds.table, folder / "image.ome.zarr", False)
        both = run(ds.table, folder / "labels.ome.zarr", True)
        import zarr

        fused = np.asarray(
            zarr.open_group(folder / "labels.ome.zarr", mode="r")["labels/segmentation/0"][0, 0]
        )
        iou, fused_id, n_fused = match_objects(ds.truth, fused)
        one_to_one = np.unique(fused_id).size == spec.n_objects
        cells = [
            f"{g}×{g} × {args.tile}²",
            f"{side}²",
            f"{spec.n_objects} ({ds.n_in_overlaps} in overlaps)",
            str(n_fused),
            str(one_to_one),
            f"{iou.min():.3f} / {np.median(iou):.3f}",
            f"{image['seconds']:.1f} s / {image['rss_mb']:.0f} MB",
            f"{both['seconds']:.1f} s / {both['rss_mb']:.0f} MB",
            f"{generated:.0f} s",
        ]
        rows.append("| " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    print()
    print(
        "| tiles | mosaic | truth objects | fused objects | one-to-one | IoU min / median "
        "| image only: time / peak RSS | image + labels: time / peak RSS | data generation |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
