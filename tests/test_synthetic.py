"""The built-in synthetic acquisition: files, positions, determinism and ground-truth consistency."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ngff_tiles.testing.synthetic import (
    SyntheticSpec,
    demo_spec,
    ground_truth,
    load_dataset,
    psnr,
    sample,
    tile_positions,
    write_dataset,
    zstack_spec,
)

SPEC = SyntheticSpec(
    grid=(2, 3), tile_shape=(2, 64, 80), overlap=0.2, channels=("DAPI", "GFP"), jitter_um=1.3
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return write_dataset(SPEC, tmp_path_factory.mktemp("syn"))


def test_files_shapes_and_positions_in_ome_xml(data) -> None:  # type: ignore[no-untyped-def]
    assert len(data.tile_files) == 6
    assert data.dark_path.is_file()
    assert data.flat_path.is_file()
    ns = {"ome": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}
    for f, pos in zip(data.tile_files, data.positions_um, strict=True):
        with tifffile.TiffFile(f) as tf:
            assert tf.is_ome
            arr = tf.series[0].asarray()
            root = ET.fromstring(tf.ome_metadata)
        assert arr.shape == (2, 2, 64, 80)  # C, Z, Y, X
        assert arr.dtype == np.uint16
        pixels = root.find("ome:Image/ome:Pixels", ns)
        assert pixels is not None
        assert float(pixels.get("PhysicalSizeX")) == SPEC.pixel_size_um[2]
        names = [c.get("Name") for c in pixels.findall("ome:Channel", ns)]
        assert names == ["DAPI", "GFP"]
        planes = pixels.findall("ome:Plane", ns)
        assert len(planes) == 4
        for p in planes:
            assert float(p.get("PositionX")) == pytest.approx(pos[2])
            assert float(p.get("PositionY")) == pytest.approx(pos[1])
            assert p.get("PositionXUnit") == "µm"


def test_positions_follow_the_grid_with_bounded_jitter() -> None:
    pos = np.array(tile_positions(SPEC))
    step_x = SPEC.tile_shape[2] * SPEC.pixel_size_um[2] * (1 - SPEC.overlap)
    for i, (z, y, x) in enumerate(pos):
        r, c = divmod(i, 3)
        assert abs(x - (SPEC.origin_um[2] + c * step_x)) <= SPEC.jitter_um + 1e-9
        assert (
            abs(y - (SPEC.origin_um[1] + r * SPEC.tile_shape[1] * SPEC.pixel_size_um[1] * 0.8)) <= 1.3 + 1e-9
        )
        assert z == SPEC.origin_um[0]
    assert len({round(float(v), 4) for v in pos[:, 2] - np.round(pos[:, 2])}) > 1  # sub-pixel, not all equal


def test_deterministic_bytes(tmp_path: Path) -> None:
    spec = SyntheticSpec(grid=(1, 2), tile_shape=(1, 32, 32))
    a = write_dataset(spec, tmp_path / "a")
    b = write_dataset(spec, tmp_path / "b")
    for fa, fb in zip(a.tile_files, b.tile_files, strict=True):
        assert hashlib.sha256(fa.read_bytes()).digest() == hashlib.sha256(fb.read_bytes()).digest()
    assert load_dataset(tmp_path / "a").positions_um == a.positions_um


def test_ground_truth_is_consistent_across_regions(data) -> None:  # type: ignore[no-untyped-def]
    big = data.ground_truth((slice(0, 2), slice(0, 100), slice(0, 150)))
    small = data.ground_truth((slice(1, 2), slice(37, 61), slice(90, 140)))
    np.testing.assert_array_equal(small, big[1:2, 37:61, 90:140])
    assert big.dtype == np.float32
    assert 0 < big.min() < big.max() <= SPEC.photons
    other = ground_truth(SPEC, (slice(0, 1), slice(0, 50), slice(0, 50)), channel=1)
    assert not np.array_equal(other, big[:1, :50, :50])  # channels differ


def test_corrected_tile_matches_truth_within_noise(data) -> None:  # type: ignore[no-untyped-def]
    raw = data.read_tile(4, channel=0).astype(np.float64)
    corrected = (raw - SPEC.dark) / data.flat
    truth = data.tile_truth(4)
    resid = corrected - truth
    # Poisson + read noise, divided by the flat: the residual is zero-mean with ~sqrt(signal) spread
    assert abs(resid.mean()) < 3.0
    z = resid / np.sqrt(truth / data.flat + SPEC.read_noise**2) * data.flat
    assert 0.8 < z.std() < 1.2
    np.testing.assert_array_equal(truth, sample(SPEC, data.positions_um[4], SPEC.tile_shape))


def test_noise_floor_is_sensible(data) -> None:  # type: ignore[no-untyped-def]
    pure = data.noise_floor_psnr(against="tile")
    grid = data.noise_floor_psnr(against="grid")
    assert 20 < grid <= pure < 50
    assert psnr([1.0, 2.0], [1.0, 2.0], 10.0) == float("inf")


def test_builtin_specs() -> None:
    assert zstack_spec().grid == (3, 3)
    assert zstack_spec().tile_shape[0] == 32
    assert demo_spec().n_tiles >= 4
