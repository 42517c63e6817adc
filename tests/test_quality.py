"""Fusion quality against ground truth: the issue's acceptance checks on synthetic acquisitions.

A 5×4 grid of 512² uint16 tiles (12% overlap, sub-pixel jitter, vignetting, camera offset,
Poisson + read noise) and a 3×3 × 32-plane z-stack are written as OME-TIFF, converted through the
public API with their known dark and flat, and the fused level 0 is compared with the specimen.
The floor is single corrected tiles at their rounded offsets vs the same ground truth
(``against="grid"``): the best a rounding converter can do without averaging.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from ngff_tiles.options import ExecutionOptions, FusionOptions
from ngff_tiles.pipeline import convert
from ngff_tiles.testing.synthetic import (
    SyntheticSpec,
    coverage,
    psnr,
    tile_offsets_px,
    write_dataset,
    zstack_spec,
)

QUIET = ExecutionOptions(progress=False)


def _convert_and_score(tmp_path: Path, spec: SyntheticSpec, blend: str = "linear") -> dict[str, float]:
    data = write_dataset(spec, tmp_path / "tiles")
    fusion = FusionOptions(
        blend=blend,  # type: ignore[arg-type]
        dark=tifffile.imread(tmp_path / "tiles" / "dark.tif"),
        flat=tifffile.imread(tmp_path / "tiles" / "flat.tif"),
    )
    res = convert(tmp_path / "tiles", tmp_path / "out.ome.zarr", fusion=fusion, execution=QUIET)
    fused = zarr.open_group(str(res.output), mode="r")["0"][0, 0].astype(np.float32)
    region = (slice(0, fused.shape[0]), slice(0, fused.shape[1]), slice(0, fused.shape[2]))
    assert fused.shape == data.output_shape
    truth = data.ground_truth(region)
    cover = coverage(spec, region)
    err = fused - truth
    overlap = cover >= 2
    single = cover == 1
    return {
        "psnr": psnr(fused[cover > 0], truth[cover > 0], spec.photons),
        "floor": data.noise_floor_psnr(against="grid"),
        "pure_floor": data.noise_floor_psnr(against="tile"),
        "rmse_overlap": float(np.sqrt(np.mean(err[overlap] ** 2))),
        "rmse_centre": float(np.sqrt(np.mean(err[single] ** 2))),
    }


def test_2d_grid_psnr_near_noise_floor_and_no_seams(tmp_path: Path) -> None:
    spec = SyntheticSpec(grid=(4, 5), tile_shape=(1, 512, 512), overlap=0.12, jitter_um=2.0)
    s = _convert_and_score(tmp_path, spec)
    print(s)
    assert s["psnr"] >= s["floor"] - 1.5, s
    assert s["rmse_overlap"] <= 1.2 * s["rmse_centre"], s


def test_zstack_psnr_near_noise_floor_and_no_seams(tmp_path: Path) -> None:
    spec = zstack_spec()
    assert spec.grid == (3, 3)
    assert spec.tile_shape[0] == 32
    s = _convert_and_score(tmp_path, spec)
    print(s)
    assert s["psnr"] >= s["floor"] - 1.5, s
    assert s["rmse_overlap"] <= 1.2 * s["rmse_centre"], s


def test_seam_check_detects_a_misplaced_tile(tmp_path: Path) -> None:
    """The seam criterion can fail: one tile placed 3 px off makes the overlap error jump."""
    import dataclasses

    from ngff_tiles.readers import read_tiles

    spec = SyntheticSpec(grid=(2, 2), tile_shape=(1, 256, 256), overlap=0.15)
    data = write_dataset(spec, tmp_path / "tiles")
    tiles = read_tiles(str(tmp_path / "tiles"))
    px = spec.pixel_size_um[2]
    moved = dataclasses.replace(
        tiles[3], position_um=(0.0, tiles[3].position_um[1], tiles[3].position_um[2] + 3 * px)
    )
    fusion = FusionOptions(dark=data.dark, flat=tifffile.imread(tmp_path / "tiles" / "flat.tif"))
    res = convert([*tiles[:3], moved], tmp_path / "o.ome.zarr", fusion=fusion, execution=QUIET)
    fused = zarr.open_group(str(res.output), mode="r")["0"][0, 0].astype(np.float32)
    region = (slice(0, fused.shape[0]), slice(0, fused.shape[1]), slice(0, fused.shape[2]))
    err = fused - data.ground_truth(region)
    cover = coverage(spec, region)
    moved_area = np.zeros_like(cover, dtype=bool)
    oz, oy, ox = tile_offsets_px(spec)[3]
    moved_area[oz : oz + 1, oy : oy + 256, ox : ox + 256] = True
    seam = np.sqrt(np.mean(err[(cover >= 2) & moved_area] ** 2))
    centre = np.sqrt(np.mean(err[(cover == 1) & ~moved_area] ** 2))
    assert seam > 1.2 * centre


@pytest.mark.parametrize("blend", ["cosine", "mean"])
def test_other_weighted_blends_also_meet_the_floor(tmp_path: Path, blend: str) -> None:
    spec = SyntheticSpec(grid=(2, 3), tile_shape=(1, 256, 256), overlap=0.15)
    s = _convert_and_score(tmp_path, spec, blend)
    assert s["psnr"] >= s["floor"] - 1.5, s
