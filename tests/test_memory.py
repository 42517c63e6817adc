"""Peak memory is bounded by the block size, not the mosaic (slow: ~2 GB of tiles; run with -m slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ngff_tiles.testing.synthetic import SyntheticSpec, write_dataset

CHILD = """
import sys, tifffile
from ngff_tiles import ExecutionOptions, FusionOptions, convert
src, out = sys.argv[1], sys.argv[2]
fusion = FusionOptions(dark=tifffile.imread(src + "/dark.tif"), flat=tifffile.imread(src + "/flat.tif"))
convert(src, out, fusion=fusion, execution=ExecutionOptions(progress=False))
with open("/proc/self/status") as status:  # VmHWM: this process's own peak RSS, in kB
    print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")))
"""


def peak_rss_mb(src: Path, out: Path) -> float:
    """Run a conversion in a fresh child and return that child's own peak RSS (MB).

    The child reports its ``VmHWM``: a child's ``ru_maxrss`` on Linux starts from the parent's
    peak at fork time, which would inflate the figure by whatever this test process holds.
    """
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(out)],
        check=True,
        timeout=900,
        capture_output=True,
        text=True,
    )
    return int(json.loads(done.stdout.strip().splitlines()[-1])) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM needs Linux /proc")
@pytest.mark.slow
def test_peak_rss_under_1gb_and_flat_with_size(tmp_path: Path) -> None:
    small = write_dataset(SyntheticSpec(grid=(8, 8), tile_shape=(1, 2048, 2048), overlap=0.1), tmp_path / "s")
    rss_small = peak_rss_mb(small.directory, tmp_path / "s.ome.zarr")
    for f in small.tile_files:
        f.unlink()
    big = write_dataset(SyntheticSpec(grid=(16, 16), tile_shape=(1, 2048, 2048), overlap=0.1), tmp_path / "b")
    rss_big = peak_rss_mb(big.directory, tmp_path / "b.ome.zarr")
    print(f"peak RSS: 0.54 GB of tiles -> {rss_small:.0f} MB, 2.15 GB -> {rss_big:.0f} MB")
    assert rss_big < 1024
    assert rss_big < 1.3 * rss_small
