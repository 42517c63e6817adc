"""The 2x mean pyramid against a direct numpy reference, odd sizes included, and end to end."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from ngff_tiles.fusion.pyramid import downsample_mean, level_shapes
from ngff_tiles.options import ExecutionOptions, FusionOptions, PyramidOptions, WriterOptions
from ngff_tiles.pipeline import convert
from ngff_tiles.tiles import ArraySource, Tile


def reference_mean2x(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Independent reference: loop over output pixels, average the existing inputs, round half up."""
    out_shape = [(-(-n // 2) if i in axes else n) for i, n in enumerate(a.shape)]
    out = np.empty(out_shape, dtype=a.dtype)
    for idx in np.ndindex(*out_shape):
        window = tuple(slice(2 * j, 2 * j + 2) if i in axes else slice(j, j + 1) for i, j in enumerate(idx))
        vals = a[window].astype(np.int64 if a.dtype.kind in "ui" else np.float64)
        if a.dtype.kind in "ui":
            out[idx] = (vals.sum() + vals.size // 2) // vals.size
        else:
            out[idx] = vals.mean()
    return out


@pytest.mark.parametrize("shape", [(1, 7, 5), (3, 6, 9), (1, 1, 1), (2, 2, 3)])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_downsample_matches_reference(shape: tuple[int, int, int], dtype: str) -> None:
    rng = np.random.default_rng(1)
    a = (rng.random(shape) * 200).astype(dtype)
    for factors, axes in (((1, 2, 2), (1, 2)), ((2, 2, 2), (0, 1, 2))):
        got = downsample_mean(a, factors)
        want = reference_mean2x(a, axes)
        assert got.dtype == a.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_level_shapes_until_one_chunk() -> None:
    shapes = level_shapes((1, 1001, 777), (1, 128, 128), downsample_z=False, max_levels=None)
    assert shapes == [(1, 1001, 777), (1, 501, 389), (1, 251, 195), (1, 126, 98)]
    assert level_shapes((9, 300, 300), (4, 128, 128), downsample_z=True, max_levels=None)[-1] == (3, 75, 75)
    assert len(level_shapes((1, 5000, 5000), (1, 64, 64), downsample_z=False, max_levels=3)) == 3


@pytest.mark.parametrize("version", ["0.5", "0.4"])
@pytest.mark.parametrize(("downsample_z", "shard_z"), [(False, 2), (True, 2), (True, 1), (True, 3)])
def test_written_pyramid_equals_reference_at_every_level(
    tmp_path, version: str, downsample_z: bool, shard_z: int
) -> None:
    """Odd shapes, blocks smaller than the image: every stored level equals the numpy reference."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 60000, size=(5, 333, 251), dtype=np.uint16)
    tile = Tile(
        tile_id=0,
        source=ArraySource(img),
        shape=img.shape,
        dtype=img.dtype,
        position_um=(0, 0, 0),
        pixel_size_um=(2, 0.5, 0.5),
    )
    out = tmp_path / "odd.ome.zarr"
    result = convert(
        [tile],
        out,
        fusion=FusionOptions(blend="first"),
        pyramid=PyramidOptions(downsample_z=downsample_z),
        writer=WriterOptions(ngff_version=version, chunks=(1, 16, 16), shards=(shard_z, 64, 64)),
        execution=ExecutionOptions(progress=False),
    )
    group = zarr.open_group(str(out), mode="r")
    expected = img
    axes = (0, 1, 2) if downsample_z else (1, 2)
    assert len(result.level_shapes) >= 5
    for k, shape in enumerate(result.level_shapes):
        level = group[str(k)][0, 0]
        assert level.shape == expected.shape == shape[2:]
        np.testing.assert_array_equal(level, expected, err_msg=f"level {k}")
        expected = reference_mean2x(expected, axes) if k + 1 < len(result.level_shapes) else expected
