"""2x mean downsampling of blocks, exact at odd edges.

Level ``k + 1`` has ``ceil(n / 2)`` pixels along each halved axis. Output pixel ``i`` is the mean of
input pixels ``2i`` and ``2i + 1`` when both exist, else of ``2i`` alone (the last pixel of an odd
axis): no edge pixel is dropped. Integers are rounded half up: ``(sum + count // 2) // count``.
Because block starts are even at every level, a block can be downsampled on its own.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["downsample_mean", "level_shapes"]


def _accumulator(dtype: np.dtype) -> np.dtype:
    if dtype.kind == "u":
        return np.dtype(np.uint32 if dtype.itemsize <= 2 else np.uint64)
    if dtype.kind == "i":
        return np.dtype(np.int32 if dtype.itemsize <= 2 else np.int64)
    return np.dtype(np.float64 if dtype.itemsize >= 8 else np.float32)


def _pair_sum(a: np.ndarray, axis: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Sum neighbouring pairs along ``axis`` in ``dtype``; return sums and the 1-D count per output index.

    The sum is computed in ``dtype`` straight from ``a`` (the ufunc casts as it goes), so a narrow
    input never needs a widened copy.
    """
    n = a.shape[axis]
    half = n // 2

    def take(sl: slice) -> np.ndarray:  # a strided view along ``axis``: no copy
        index = [slice(None)] * a.ndim
        index[axis] = sl
        return a[tuple(index)]

    out_shape = list(a.shape)
    out_shape[axis] = math.ceil(n / 2)
    s = np.empty(out_shape, dtype=dtype)
    index = [slice(None)] * a.ndim
    index[axis] = slice(0, half)
    np.add(take(slice(0, 2 * half, 2)), take(slice(1, 2 * half, 2)), out=s[tuple(index)], dtype=dtype)
    count = np.full(math.ceil(n / 2), 2, dtype=np.int64)
    if n % 2:
        index[axis] = slice(half, half + 1)
        s[tuple(index)] = take(slice(n - 1, n))
        count[-1] = 1
    return s, count


def downsample_mean(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Downsample ``block`` by 2 along the axes whose factor is 2 (others must be 1).

    Parameters
    ----------
    block
        Array of any dimensionality, any numeric dtype.
    factors
        One entry per axis, 1 or 2.

    Returns
    -------
    numpy.ndarray
        The downsampled block, same dtype as the input.
    """
    if len(factors) != block.ndim or any(f not in (1, 2) for f in factors):
        raise ValueError(f"Expected factors of 1 or 2 per axis, got {factors} for a {block.ndim}-D block")
    if all(f == 1 for f in factors):
        return block.copy()
    acc = block  # the first pair sum widens to the accumulator type; none writes into its input
    acc_dtype = _accumulator(block.dtype)
    count: np.ndarray = np.ones((1,) * block.ndim, dtype=np.int64)
    for axis, f in enumerate(factors):
        if f == 1:
            continue
        acc, c = _pair_sum(acc, axis, acc_dtype)
        shape = [1] * block.ndim
        shape[axis] = c.size
        count = count * c.reshape(shape)
    if block.dtype.kind in "ui":
        # counts are products of 1s and 2s: dividing (with floor) is a right shift
        shift = np.log2(count).astype(acc.dtype)
        acc += (np.ones_like(shift) << shift) >> 1
        out = acc >> shift
    else:
        out = acc / count
    result: np.ndarray = out.astype(block.dtype, copy=False)
    return result


def level_shapes(
    shape_zyx: tuple[int, int, int],
    chunk_zyx: tuple[int, int, int],
    *,
    downsample_z: bool,
    max_levels: int | None,
    n_levels: int | None = None,
) -> list[tuple[int, int, int]]:
    """Return the (z, y, x) shape of every pyramid level, level 0 first.

    Levels are added until the image fits one chunk in y and x (and z when downsampling z), at
    most ``max_levels``; ``n_levels`` forces an exact count instead (plates: every well the same).
    """
    shapes = [shape_zyx]
    while True:
        if n_levels is not None:
            if len(shapes) >= n_levels:
                break
        elif max_levels is not None and len(shapes) >= max_levels:
            break
        z, y, x = shapes[-1]
        fits = y <= chunk_zyx[1] and x <= chunk_zyx[2] and (not downsample_z or z <= chunk_zyx[0])
        if fits and n_levels is None:
            break
        nz = math.ceil(z / 2) if downsample_z else z
        shapes.append((nz, math.ceil(y / 2), math.ceil(x / 2)))
    return shapes
