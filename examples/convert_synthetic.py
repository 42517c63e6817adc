"""Make a small synthetic tiled acquisition, fuse it, and compare with its ground truth.

Run: ``python examples/convert_synthetic.py [OUTPUT_DIR]``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
import zarr

from ngff_tiles import FusionOptions, convert
from ngff_tiles.testing.synthetic import SyntheticSpec, psnr, write_dataset


def main(out_dir: Path) -> float:
    spec = SyntheticSpec(grid=(2, 3), tile_shape=(1, 256, 256), overlap=0.15)
    data = write_dataset(spec, out_dir / "tiles")
    fusion = FusionOptions(
        blend="linear",
        dark=tifffile.imread(out_dir / "tiles" / "dark.tif"),
        flat=tifffile.imread(out_dir / "tiles" / "flat.tif"),
    )
    result = convert(out_dir / "tiles", out_dir / "fused.ome.zarr", fusion=fusion)
    fused = zarr.open_group(str(result.output), mode="r")["0"][0, 0]
    truth = data.ground_truth((slice(0, fused.shape[0]), slice(0, fused.shape[1]), slice(0, fused.shape[2])))
    score = psnr(fused.astype(np.float32), truth, spec.photons)
    print(f"wrote {result.output}: {result.level_shapes[0]} (t,c,z,y,x), PSNR vs ground truth {score:.1f} dB")
    return score


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
