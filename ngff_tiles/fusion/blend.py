"""Blending weights: small functions of one signature, ``weight_1d(n, width) -> float32[n]``.

The 2-D weight of a tile is the outer product of its y and x profiles. Every profile is strictly
positive inside the tile (a floor of ``EPS``), so a pixel covered by any tile never divides by zero.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

__all__ = ["EPS", "WEIGHTED_MODES", "weight_2d"]

EPS = np.float32(1e-3)
WEIGHTED_MODES = ("linear", "cosine", "mean")


def _ramp(n: int, width: float | None) -> np.ndarray:
    """Distance to the nearest border (pixel centres), normalised to 1 at ``width`` or mid-tile."""
    i = np.arange(n, dtype=np.float64)
    d = np.minimum(i + 0.5, n - i - 0.5)
    w = (n / 2.0) if width is None else max(float(width), 0.5)
    return np.clip(d / w, 0.0, 1.0)


def _linear(n: int, width: float | None) -> np.ndarray:
    return _ramp(n, width)


def _cosine(n: int, width: float | None) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * _ramp(n, width))


def _flat(n: int, width: float | None) -> np.ndarray:
    return np.ones(n)


_PROFILES: dict[str, Callable[[int, float | None], np.ndarray]] = {
    "linear": _linear,
    "cosine": _cosine,
    "mean": _flat,
}


@functools.lru_cache(maxsize=16)
def weight_2d(shape_yx: tuple[int, int], mode: str, width: float | None) -> np.ndarray:
    """Return the (y, x) float32 blending weight of a tile, read-only and cached per shape.

    Parameters
    ----------
    shape_yx
        Tile (y, x) shape.
    mode
        ``linear``, ``cosine`` or ``mean``.
    width
        Ramp length in pixels (``None``: half the tile, a tent over the whole tile).
    """
    profile = _PROFILES[mode]
    wy = np.maximum(profile(shape_yx[0], width), EPS).astype(np.float32)
    wx = np.maximum(profile(shape_yx[1], width), EPS).astype(np.float32)
    w: np.ndarray = np.multiply.outer(wy, wx)
    w.flags.writeable = False
    return w
