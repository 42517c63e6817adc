"""Shared fixtures: where ../shared is, and small tile sets with known content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ngff_tiles.tiles import ArraySource, Tile

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED}: sample data and schemas are absent")
    return SHARED


def grid_tiles(
    truth: np.ndarray,
    grid: tuple[int, int],
    tile: int,
    step: int,
    px: float = 0.5,
    channels: tuple[str, ...] = ("0",),
) -> list[Tile]:
    """Cut ``truth`` (z, y, x) into a grid of exact (noise-free) overlapping tiles."""
    tiles = []
    for ch_i, ch in enumerate(channels):
        for r in range(grid[0]):
            for c in range(grid[1]):
                y, x = r * step, c * step
                data = np.ascontiguousarray(truth[:, y : y + tile, x : x + tile]) + ch_i
                tiles.append(
                    Tile(
                        tile_id=len(tiles),
                        source=ArraySource(data, name=f"tile_{r}_{c}_{ch}"),
                        shape=data.shape,
                        dtype=data.dtype,
                        position_um=(0.0, 100.0 + y * px, -20.0 + x * px),
                        pixel_size_um=(1.0, px, px),
                        channel=ch,
                        name=f"tile_{r}_{c}",
                    )
                )
    return tiles
