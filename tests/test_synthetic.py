"""Tests of the synthetic dataset generator (ngff_tiles.testing.synthetic)."""

from __future__ import annotations

import json
import math
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ngff_tiles.testing import synthetic as syn

OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"

TINY = syn.SyntheticSpec(
    grid=(2, 3),
    tile_shape=(1, 64, 80),
    channels=("DAPI", "GFP"),
    jitter_um=1.5,
    origin_um=(5.0, 100.0, -50.0),
)
TINY_Z = syn.SyntheticSpec(
    grid=(2, 2), tile_shape=(3, 48, 40), pixel_size_um=(2.0, 0.5, 0.4), origin_um=(10.0, 0.0, 0.0)
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> syn.SyntheticDataset:
    return syn.write_dataset(TINY, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny_z(tmp_path_factory: pytest.TempPathFactory) -> syn.SyntheticDataset:
    return syn.write_dataset(TINY_Z, tmp_path_factory.mktemp("tiny_z"))


def _planes(path: Path) -> tuple[ET.Element, list[ET.Element]]:
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ome
        root = ET.fromstring(tf.ome_metadata)
    pixels = root.find(f"{OME}Image/{OME}Pixels")
    assert pixels is not None
    return pixels, pixels.findall(f"{OME}Plane")


# ---------------------------------------------------------------------------------- spec


def test_spec_validation_and_round_trip() -> None:
    for bad in (
        {"overlap": 1.0},
        {"grid": (0, 2)},
        {"tile_shape": (64, 64)},
        {"pixel_size_um": (1.0, 0.0, 1.0)},
        {"channels": ("a", "a")},
        {"channels": ()},
        {"dtype": "complex64"},
        {"vignetting": 1.0},
        {"photons": 0.0},
    ):
        with pytest.raises(ValueError, match="Expected"):
            syn.SyntheticSpec(**bad)  # type: ignore[arg-type]
    assert syn.SyntheticSpec.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    assert syn.demo_spec().n_tiles == 12
    assert len(syn.demo_spec().channels) == 2
    assert syn.zstack_spec().tile_shape == (32, 256, 256)
    assert syn.zstack_spec().grid == (3, 3)


def test_positions_grid_and_jitter() -> None:
    spec = syn.SyntheticSpec()
    pos = np.asarray(syn.tile_positions(spec))
    rows, cols = spec.grid
    step_y = spec.tile_shape[1] * spec.pixel_size_um[1] * (1 - spec.overlap)
    step_x = spec.tile_shape[2] * spec.pixel_size_um[2] * (1 - spec.overlap)
    r, c = np.divmod(np.arange(rows * cols), cols)
    dy = pos[:, 1] - (spec.origin_um[1] + r * step_y)
    dx = pos[:, 2] - (spec.origin_um[2] + c * step_x)
    assert np.all(np.abs(dy) <= spec.jitter_um + 1e-4)
    assert np.all(np.abs(dx) <= spec.jitter_um + 1e-4)
    assert np.std(dx) > 0.2 * spec.jitter_um  # really jittered, and sub-pixel too
    assert np.all(pos[:, 0] == spec.origin_um[0])
    assert syn.tile_positions(spec) == syn.tile_positions(spec)


def test_output_geometry() -> None:
    spec = TINY
    pos = np.asarray(syn.tile_positions(spec))
    origin, shape = syn.output_geometry(spec)
    assert origin == tuple(pos.min(axis=0))
    off = np.asarray(syn.tile_offsets_px(spec))
    expected = np.rint((pos - pos.min(axis=0)) / np.asarray(spec.pixel_size_um))
    np.testing.assert_array_equal(off, expected)
    assert shape == tuple((off + spec.tile_shape).max(axis=0))
    cov = syn.coverage(spec)
    assert cov.shape == shape
    for o in off:
        box = cov[o[0] : o[0] + 1, o[1] : o[1] + 64, o[2] : o[2] + 80]
        assert box.min() >= 1
    assert cov.max() >= 2  # tiles overlap


# ---------------------------------------------------------------------------------- files


def test_files_shapes_dtypes_and_ome(tiny: syn.SyntheticDataset) -> None:
    names = sorted(p.name for p in tiny.directory.iterdir())
    tiles = [f"tile_r{r:02d}_c{c:02d}.ome.tif" for r in range(2) for c in range(3)]
    assert names == sorted([*tiles, "dark.tif", "flat.tif", "ground_truth.json"])
    assert [p.name for p in tiny.tile_files] == tiles
    for t, path in enumerate(tiny.tile_files):
        with tifffile.TiffFile(path) as tf:
            assert len(tf.series) == 1
            assert len(tf.pages) == 2
            data = tf.series[0].asarray()
            assert data.dtype == np.uint16
            assert data.size == 2 * 64 * 80
        pixels, planes = _planes(path)
        assert pixels.get("SizeC") == "2"
        assert pixels.get("SizeZ") == "1"
        assert (pixels.get("SizeY"), pixels.get("SizeX")) == ("64", "80")
        assert pixels.get("Type") == "uint16"
        assert float(pixels.get("PhysicalSizeX", "nan")) == TINY.pixel_size_um[2]
        assert float(pixels.get("PhysicalSizeY", "nan")) == TINY.pixel_size_um[1]
        assert float(pixels.get("PhysicalSizeZ", "nan")) == TINY.pixel_size_um[0]
        assert pixels.get("PhysicalSizeXUnit") == "µm"
        channels = [ch.get("Name") for ch in pixels.findall(f"{OME}Channel")]
        assert channels == ["DAPI", "GFP"]
        assert len(planes) == 2
        z, y, x = tiny.positions_um[t]
        for plane in planes:
            assert float(plane.get("PositionX", "nan")) == x
            assert float(plane.get("PositionY", "nan")) == y
            assert float(plane.get("PositionZ", "nan")) == z
            for axis in "XYZ":
                assert plane.get(f"Position{axis}Unit") == "µm"
    record = json.loads((tiny.directory / "ground_truth.json").read_text())
    assert record["spec"] == TINY.to_dict()
    assert [tuple(t["position_um"]) for t in record["tiles"]] == list(tiny.positions_um)
    assert tuple(record["output_shape"]) == tiny.output_shape


def test_zstack_planes(tiny_z: syn.SyntheticDataset) -> None:
    pixels, planes = _planes(tiny_z.tile_files[3])
    assert pixels.get("DimensionOrder") == "XYZCT"
    assert pixels.get("SizeZ") == "3"
    z0, _y0, x0 = tiny_z.positions_um[3]
    zs = {int(p.get("TheZ", "-1")): float(p.get("PositionZ", "nan")) for p in planes}
    assert zs == {k: pytest.approx(z0 + 2.0 * k) for k in range(3)}
    assert all(float(p.get("PositionX", "nan")) == x0 for p in planes)
    raw = tiny_z.read_tile(3)
    assert raw.shape == (3, 48, 40)
    truth = tiny_z.tile_truth(3)
    assert truth.shape == (3, 48, 40)
    assert not np.allclose(truth[0], truth[2])  # the specimen varies with z
    assert tiny_z.output_shape == (3, *tiny_z.output_shape[1:])


def test_dark_and_flat(tiny: syn.SyntheticDataset) -> None:
    dark = tifffile.imread(tiny.dark_path)
    flat = tifffile.imread(tiny.flat_path)
    assert dark.dtype == flat.dtype == np.float32
    assert dark.shape == flat.shape == (64, 80)
    assert np.all(dark == TINY.dark)
    np.testing.assert_array_equal(flat, tiny.flat)
    assert abs(float(flat.mean()) - 1.0) < 1e-5
    assert float(flat.max()) > float(flat[0, 0]) * 1.3  # vignetting: corners darker
    np.testing.assert_array_equal(dark, tiny.dark)


def test_deterministic_bytes(tmp_path: Path) -> None:
    spec = syn.SyntheticSpec(grid=(1, 2), tile_shape=(2, 32, 48), channels=("a", "b"), compression="zlib")
    a = syn.write_dataset(spec, tmp_path / "a", workers=2)
    b = syn.write_dataset(spec, tmp_path / "b", workers=1)
    names = sorted(p.name for p in a.directory.iterdir())
    assert names == sorted(p.name for p in b.directory.iterdir())
    for name in names:
        assert (a.directory / name).read_bytes() == (b.directory / name).read_bytes(), name
    other = syn.write_dataset(syn.SyntheticSpec.from_dict({**spec.to_dict(), "seed": 1}), tmp_path / "c")
    assert other.tile_files[0].read_bytes() != a.tile_files[0].read_bytes()
    # compression does not change the pixels
    plain = syn.write_dataset(
        syn.SyntheticSpec.from_dict({**spec.to_dict(), "compression": None}), tmp_path / "d"
    )
    np.testing.assert_array_equal(plain.read_tile(1, channel=1), a.read_tile(1, channel=1))


def test_load_dataset(tiny: syn.SyntheticDataset) -> None:
    again = syn.load_dataset(tiny.directory)
    assert again == tiny


# ---------------------------------------------------------------------------------- truth


def test_ground_truth_slicing_and_range() -> None:
    spec = syn.SyntheticSpec()
    big = syn.ground_truth(spec, (slice(0, 1), slice(0, 700), slice(100, 900)))
    small = syn.ground_truth(spec, (slice(0, 1), slice(333, 401), slice(517, 700)))
    np.testing.assert_allclose(small, big[:, 333:401, 417:600], rtol=1e-5, atol=1e-3)
    assert big.dtype == np.float32
    bg = syn.BACKGROUND_FRACTION * spec.photons
    assert float(big.min()) >= bg - 1e-3
    assert float(big.max()) <= spec.photons
    assert float(big.max()) > 0.9 * spec.photons
    assert float(np.median(big)) < 0.3 * spec.photons
    # sharp edges: some neighbouring pixels differ by a large fraction of the range
    assert float(np.abs(np.diff(big, axis=2)).max()) > 0.3 * spec.photons
    # a different channel is a different specimen
    two = syn.SyntheticSpec(channels=("a", "b"))
    region = (slice(0, 1), slice(0, 200), slice(0, 200))
    assert not np.allclose(syn.ground_truth(two, region, channel=0), syn.ground_truth(two, region, channel=1))
    with pytest.raises(ValueError, match="Expected"):
        syn.ground_truth(spec, (slice(0, 1), slice(None, 5), slice(0, 5)))


def test_ground_truth_is_the_continuous_function() -> None:
    spec = TINY
    origin, shape = syn.output_geometry(spec)
    full = syn.ground_truth(spec, channel=1)
    assert full.shape == shape
    direct = syn.sample(spec, origin, shape, channel=1)
    np.testing.assert_array_equal(full, direct)
    # sampling at a sub-pixel shift really is different (no raster shifting)
    shifted = syn.sample(spec, (origin[0], origin[1] + 0.3, origin[2]), shape, channel=1)
    assert not np.allclose(shifted, direct, atol=1.0)
    # an integer-pixel shift is a slice of the grid
    on_grid = syn.sample(
        spec, (origin[0], origin[1] + 5 * 0.65, origin[2] + 2 * 0.65), (1, 20, 30), channel=1
    )
    np.testing.assert_allclose(on_grid, full[:, 5:25, 2:32], rtol=1e-5, atol=1e-3)


def test_snapped_ground_truth(tiny: syn.SyntheticDataset) -> None:
    snapped = tiny.ground_truth(snapped=True)
    cov = syn.coverage(TINY)
    assert np.all(snapped[cov == 0] == 0)
    # where one tile alone covers a pixel, the snapped truth is that tile's own samples
    t = 0
    o = tiny.offsets_px[t]
    truth = tiny.tile_truth(t)
    alone = cov[:, o[1] : o[1] + 64, o[2] : o[2] + 80] == 1
    region = snapped[:, o[1] : o[1] + 64, o[2] : o[2] + 80]
    np.testing.assert_allclose(region[alone], truth[alone], rtol=1e-6)
    # and a sub-region is a slice of the whole
    part = tiny.ground_truth((slice(0, 1), slice(10, 90), slice(20, 150)), snapped=True)
    np.testing.assert_allclose(part, snapped[:, 10:90, 20:150], rtol=1e-6)


def test_tile_is_noisy_truth(tiny: syn.SyntheticDataset) -> None:
    flat = tiny.flat
    for channel in (0, 1):
        corrected = tiny.corrected_tile(4, channel=channel).astype(np.float64)
        truth = tiny.tile_truth(4, channel=channel).astype(np.float64)
        # variance of (raw - dark) / flat: Poisson(truth * flat) + read noise + rounding
        var = (truth * flat + TINY.read_noise**2 + 1 / 12) / flat**2
        z = (corrected - truth) / np.sqrt(var)
        n = z.size
        assert abs(float(z.mean())) < 5 / math.sqrt(n)
        assert 0.9 < float(z.std()) < 1.1
        # the tile is sampled at its true position: a 1-pixel misplaced truth fits far worse
        moved = syn.sample(
            TINY,
            np.add(tiny.positions_um[4], (0.0, TINY.pixel_size_um[1], 0.0)),
            TINY.tile_shape,
            channel=channel,
        )
        assert np.mean((corrected - moved) ** 2) > 1.5 * np.mean((corrected - truth) ** 2)


def test_noise_floor(tmp_path: Path) -> None:
    spec = syn.SyntheticSpec(grid=(2, 2), tile_shape=(1, 256, 256))
    ds = syn.write_dataset(spec, tmp_path)
    floor = ds.noise_floor_psnr()
    assert 25 < floor < 50
    assert math.isfinite(floor)
    grid = ds.noise_floor_psnr(against="grid")
    assert 20 < grid < floor  # rounding tile positions costs some dB
    assert 25 < ds.noise_floor_psnr(1) < 50
    with pytest.raises(ValueError, match="Expected"):
        ds.noise_floor_psnr(5)


def test_psnr() -> None:
    a = np.zeros((4, 4))
    assert syn.psnr(a, a, 1.0) == math.inf
    assert syn.psnr(a, a + 0.1, 1.0) == pytest.approx(20.0)
    assert syn.psnr(a, a + 10, 1000) == pytest.approx(40.0)


@pytest.mark.slow
def test_ground_truth_speed() -> None:
    spec = syn.SyntheticSpec()
    region = (slice(0, 1), slice(0, 2048), slice(0, 2048))
    syn.ground_truth(spec, region)
    t = time.perf_counter()
    syn.ground_truth(spec, region)
    assert time.perf_counter() - t < 1.0
