"""Layout (µm -> pixels, orientation) and the fusion kernel's blend modes, on exact synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from ngff_tiles.errors import LayoutError, MetadataError
from ngff_tiles.fusion.blend import weight_2d
from ngff_tiles.fusion.kernel import BlockTile, fuse_block, make_corrections
from ngff_tiles.layout.place import place_tiles
from ngff_tiles.options import FusionOptions, LayoutOptions
from ngff_tiles.tiles import ArraySource, Tile


def make_tile(
    i: int, data: np.ndarray, pos_yx: tuple[float, float], px: float = 0.5, channel: str = "0"
) -> Tile:
    data = data if data.ndim == 3 else data[None]
    return Tile(
        tile_id=i,
        source=ArraySource(data),
        shape=data.shape,
        dtype=data.dtype,
        position_um=(0.0, pos_yx[0], pos_yx[1]),
        pixel_size_um=(1.0, px, px),
        channel=channel,
    )


def test_positions_become_pixel_offsets_and_origin() -> None:
    a = np.zeros((10, 20), np.uint16)
    tiles = [make_tile(0, a, (100.0, -50.0)), make_tile(1, a, (102.6, -45.1))]
    lay = place_tiles(tiles)
    assert lay.origin_um == (0.0, 100.0, -50.0)
    # (102.6-100)/0.5 = 5.2 -> 5 ; (-45.1+50)/0.5 = 9.8 -> 10 (rounded to nearest pixel)
    assert [p.offset_px for p in lay.tiles] == [(0, 0, 0), (0, 5, 10)]
    assert lay.shape == (1, 1, 1, 15, 30)


def test_flip_and_swap_act_on_tile_centres() -> None:
    a = np.zeros((10, 20), np.uint16)  # extent 5 µm (y) × 10 µm (x)
    tiles = [make_tile(0, a, (0.0, 0.0)), make_tile(1, a, (0.0, 10.0))]
    flipped = place_tiles(tiles, LayoutOptions(flip_x=True))
    # mirrored: tile 1 (stage x larger) now lies left of tile 0
    assert [p.offset_px for p in flipped.tiles] == [(0, 0, 20), (0, 0, 0)]
    swapped = place_tiles(tiles, LayoutOptions(swap_xy=True))
    # centres (y, x): (2.5, 5) and (2.5, 15) -> swapped (5, 2.5), (15, 2.5): tile 1 goes below
    assert [p.offset_px[1] for p in swapped.tiles] == [0, 20]
    assert swapped.tiles[0].offset_px[2] == swapped.tiles[1].offset_px[2]


def test_mixed_pixel_sizes_and_dtypes_are_refused() -> None:
    a = np.zeros((4, 4), np.uint16)
    with pytest.raises(MetadataError, match="pixel size"):
        place_tiles([make_tile(0, a, (0, 0), px=0.5), make_tile(1, a, (0, 0), px=0.6)])
    with pytest.raises(MetadataError, match="dtypes"):
        place_tiles([make_tile(0, a, (0, 0)), make_tile(1, a.astype(np.uint8), (0, 0))])
    with pytest.raises(LayoutError, match="no tiles"):
        place_tiles([])


def test_absurd_extent_is_a_layout_error() -> None:
    a = np.zeros((4, 4), np.uint16)
    with pytest.raises(LayoutError, match="positions are probably not in µm"):
        place_tiles([make_tile(0, a, (0, 0), px=1e-4), make_tile(1, a, (1e6, 1e6), px=1e-4)])


def _fuse(tiles: list[tuple[np.ndarray, tuple[int, int]]], mode: str, shape=(1, 6, 10), **kw) -> np.ndarray:
    bts = [BlockTile(make_tile(i, d, (0, 0)), (0, *off)) for i, (d, off) in enumerate(tiles)]
    corr = make_corrections(FusionOptions(blend=mode, **kw), ["0"], [d.shape for d, _ in tiles])
    out = fuse_block(bts, (0, 0, 0), shape, np.dtype(np.uint16), corr)
    assert out is not None
    return out[0]


def test_blend_modes_on_two_constant_tiles() -> None:
    a = np.full((6, 6), 100, np.uint16)
    b = np.full((6, 6), 200, np.uint16)
    pair = [(a, (0, 0)), (b, (0, 4))]  # overlap in x = columns 4, 5; output 6×10
    assert np.all(_fuse(pair, "mean")[:, 4:6] == 150)
    assert np.all(_fuse(pair, "max")[:, 4:6] == 200)
    assert np.all(_fuse(pair, "first")[:, 4:6] == 100)
    assert np.all(_fuse(pair, "last")[:, 4:6] == 200)
    for mode in ("linear", "cosine"):
        out = _fuse(pair, mode)
        assert np.all(out[:, :4] == 100)
        assert np.all(out[:, 6:] == 200)
        # inside the overlap the weight moves towards the tile whose centre is closer
        assert np.all((out[:, 4] > 100) & (out[:, 4] < out[:, 5]) & (out[:, 5] < 200))


def test_uncovered_pixels_are_fill_and_empty_blocks_are_none() -> None:
    a = np.full((2, 2), 7, np.uint16)
    out = _fuse([(a, (0, 0))], "linear", shape=(1, 3, 3))
    np.testing.assert_array_equal(out, [[7, 7, 0], [7, 7, 0], [0, 0, 0]])
    corr = make_corrections(FusionOptions(), ["0"], [(2, 2)])
    far = BlockTile(make_tile(0, a, (0, 0)), (0, 10, 10))
    assert fuse_block([far], (0, 0, 0), (1, 3, 3), np.dtype(np.uint16), corr) is None


def test_dark_and_flat_are_corrected_and_output_is_rounded_and_clipped() -> None:
    flat = np.array([[0.5, 1.0], [1.5, 1.0]])  # mean 1
    truth = 1000.0
    raw = (truth * flat + 100).astype(np.uint16)
    out = _fuse([(raw, (0, 0))], "linear", shape=(1, 2, 2), dark=100.0, flat=flat)
    np.testing.assert_array_equal(out, np.full((2, 2), 1000))
    dark_img = np.full((2, 2), 150.0)
    below = np.full((2, 2), 100, np.uint16)
    assert np.all(
        _fuse([(below, (0, 0))], "mean", shape=(1, 2, 2), dark=dark_img) == 0
    )  # clipped, not wrapped
    with pytest.raises(MetadataError, match="flat"):
        make_corrections(FusionOptions(flat=np.zeros((2, 2))), ["0"], [(2, 2)])
    with pytest.raises(MetadataError, match="does not match"):
        make_corrections(FusionOptions(dark=np.zeros((3, 3))), ["0"], [(2, 2)])


def test_weights_positive_and_symmetric() -> None:
    for mode in ("linear", "cosine", "mean"):
        w = weight_2d((7, 12), mode, None)
        assert w.min() > 0
        assert w.dtype == np.float32
        np.testing.assert_allclose(w, w[::-1, ::-1])
    w = weight_2d((100, 100), "linear", 10.0)
    assert w[50, 50] == 1.0
    assert w[0, 50] < 0.1


@pytest.mark.parametrize("kind", ["linear", "cubic"])
def test_subpixel_resampling_puts_a_ramp_at_its_exact_position(kind: str) -> None:
    """A ramp sampled at a fractional offset comes out as the ramp on the output grid."""
    from ngff_tiles.layout.place import place_tiles
    from ngff_tiles.options import LayoutOptions

    px = 1.0
    anchor = np.zeros((1, 40, 40), np.float32)
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float32)
    dy, dx = 10.3, 7.6  # exact offset of the second tile in pixels
    ramp = (100 + 3 * (yy + dy) + 2 * (xx + dx))[None].astype(np.float32)
    tiles = [
        Tile(
            tile_id=0,
            source=ArraySource(anchor),
            shape=anchor.shape,
            dtype=anchor.dtype,
            position_um=(0, 0, 0),
            pixel_size_um=(1, px, px),
        ),
        Tile(
            tile_id=1,
            source=ArraySource(ramp),
            shape=ramp.shape,
            dtype=ramp.dtype,
            position_um=(0, dy * px, dx * px),
            pixel_size_um=(1, px, px),
        ),
    ]
    lay = place_tiles(tiles, LayoutOptions(subpixel=kind))  # type: ignore[arg-type]
    moving = lay.tiles[1]
    assert moving.offset_px == (0, 10, 8)
    np.testing.assert_allclose(moving.fraction_px[1:], (0.3, -0.4), atol=1e-9)
    corr = make_corrections(FusionOptions(blend="last"), ["0"], [(40, 40)], subpixel=kind)
    bt = BlockTile(moving.tile, moving.offset_px, (moving.fraction_px[1], moving.fraction_px[2]))
    out = fuse_block([bt], (0, 0, 0), (1, 60, 60), np.dtype(np.float32), corr)
    assert out is not None
    oy, ox = np.mgrid[0:60, 0:60].astype(np.float32)
    expect = 100 + 3 * oy + 2 * ox
    inner = (slice(0, 1), slice(12, 48), slice(10, 46))  # away from the clamped tile borders
    np.testing.assert_allclose(out[inner], expect[None][inner], rtol=1e-5)
    # rounding instead puts the ramp up to half a pixel off: 0.3 px in y, 0.4 px in x
    corr_round = make_corrections(FusionOptions(blend="last"), ["0"], [(40, 40)])
    rounded = fuse_block(
        [BlockTile(moving.tile, moving.offset_px)], (0, 0, 0), (1, 60, 60), np.dtype(np.float32), corr_round
    )
    assert rounded is not None
    np.testing.assert_allclose(rounded[inner] - expect[None][inner], 3 * 0.3 - 2 * 0.4, atol=1e-3)


def _whole_block_reference(bts: list[BlockTile], start, stop, corr) -> np.ndarray:
    """The straightforward kernel: accumulate every tile over the whole block, then divide."""
    from ngff_tiles.fusion import kernel

    ordered = list(reversed(bts)) if corr.blend == "first" else bts
    out = kernel._fuse_whole(ordered, start, stop, np.dtype(np.uint16), corr)
    assert out is not None
    return out


@pytest.mark.parametrize("mode", ["linear", "cosine", "mean", "max", "first", "last"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cells_of_constant_coverage_match_the_whole_block_kernel(mode: str, seed: int) -> None:
    """fuse_block cuts a block at tile edges and blends only where tiles overlap; the result must
    equal accumulating every tile over the whole block (weighted modes: up to the rounding of
    ``x * w / w``, 1 grey level). Tiles differ in z extent, so cells are cut in z too."""
    rng = np.random.default_rng(seed)
    bts = []
    for i in range(6):
        shape = (int(rng.integers(2, 5)), int(rng.integers(8, 30)), int(rng.integers(8, 30)))
        data = rng.integers(0, 5000, shape).astype(np.uint16)
        offset = (int(rng.integers(0, 3)), int(rng.integers(-5, 25)), int(rng.integers(-5, 25)))
        bts.append(BlockTile(make_tile(i, data, (0, 0)), offset))
    dark = 7.0
    corr = make_corrections(FusionOptions(blend=mode, dark=dark), ["0"], [bt.tile.shape[1:] for bt in bts])
    start, stop = (0, 2, 3), (5, 40, 37)
    got = fuse_block(bts, start, stop, np.dtype(np.uint16), corr)
    assert got is not None
    want = _whole_block_reference(bts, start, stop, corr)
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    if mode in ("max", "first", "last"):
        assert np.array_equal(got, want)
    else:
        assert diff.max() <= 1
        assert (diff > 0).mean() < 0.01
    # A pixel no tile covers stays 0; every covered pixel got a value from a covering tile.
    assert (got > 0).any()


def test_blocks_touched_by_very_many_tiles_fall_back_to_the_whole_block_kernel() -> None:
    from ngff_tiles.fusion import kernel

    rng = np.random.default_rng(3)
    offsets = [(0, int(rng.integers(-4, 40)), int(rng.integers(-4, 40))) for _ in range(60)]
    bts = [
        BlockTile(make_tile(i, np.full((1, 5, 5), 100 + i, np.uint16), (0, 0)), o)
        for i, o in enumerate(offsets)
    ]
    hits = [kernel._intersect(bt.offset, bt.tile.shape, (0, 0, 0), (1, 40, 40)) for bt in bts]
    assert kernel._cells([h[1] for h in hits if h], (1, 40, 40), limit=64 + 8 * 60) is None
    corr = make_corrections(FusionOptions(blend="last"), ["0"], [(5, 5)])
    out = fuse_block(bts, (0, 0, 0), (1, 40, 40), np.dtype(np.uint16), corr)
    assert out is not None
    want = np.zeros((40, 40), np.uint16)
    for i, (_, y, x) in enumerate(offsets):
        want[max(y, 0) : max(y + 5, 0), max(x, 0) : max(x + 5, 0)] = 100 + i
    assert np.array_equal(out[0], want)
