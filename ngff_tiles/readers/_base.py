"""Shared pieces for built-in readers: a base class and a raw-bytes region source."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, ClassVar

import numpy as np

from ngff_tiles.errors import SourceError
from ngff_tiles.options import ReaderOptions
from ngff_tiles.tiles import FrameSource, Region, Tile

__all__ = ["FRAME_CACHE", "BaseReader", "FrameCache", "RawFileSource"]


class BaseReader:
    """Defaults for the :class:`ngff_tiles.readers.Reader` protocol."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    extra: ClassVar[str | None] = None
    priority: ClassVar[int] = 0

    def sniff(self, path: str) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_dependencies(self) -> None:
        """Core readers need nothing beyond the core dependencies."""

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:  # pragma: no cover
        raise NotImplementedError


class FrameCache:
    """A per-process, thread-safe LRU cache of decoded planes with a byte budget.

    Sources that can only decode whole frames (compressed TIFF pages, PZF) read through it, so a
    frame that overlaps several output blocks is decoded about once per run, not once per block.
    Keys should include the file's identity (path, size, mtime) so a changed file is never served
    from the cache. Cached arrays are read-only.

    Parameters
    ----------
    max_bytes
        Budget; the least recently used planes are dropped beyond it. 0 disables caching.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_decode(self, key: Hashable, decode: Callable[[], np.ndarray]) -> np.ndarray:
        """Return the cached plane for ``key``, decoding (outside the lock) on a miss."""
        with self._lock:
            plane = self._items.get(key)
            if plane is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return plane
            self.misses += 1
        plane = decode()
        plane.flags.writeable = False
        if plane.nbytes <= self.max_bytes:
            with self._lock:
                if key not in self._items:
                    self._items[key] = plane
                    self._bytes += plane.nbytes
                while self._bytes > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= old.nbytes
        return plane

    def clear(self) -> None:
        """Drop every cached plane."""
        with self._lock:
            self._items.clear()
            self._bytes = 0


FRAME_CACHE = FrameCache(int(float(os.environ.get("NGFF_TILES_FRAME_CACHE_MB", "64")) * 2**20))
"""The process-wide decoded-frame cache (budget from ``NGFF_TILES_FRAME_CACHE_MB``, default 64)."""


def file_identity(path: str) -> tuple[str, int, int]:
    """Return (path, size, mtime_ns): part of a cache key that changes when the file does."""
    st = os.stat(path)
    return (path, st.st_size, st.st_mtime_ns)


class RawFileSource(FrameSource):
    """Uncompressed pixels stored contiguously in a file, as (z, y, x) planes at given offsets.

    Reads only the rows of a region (one ``pread`` per plane), so fusion can fetch overlaps cheaply.
    Interleaved multi-sample planes (RGB) are read whole-row and one sample is returned.

    Parameters
    ----------
    file
        Path of the file.
    offsets
        Byte offset of each z plane.
    shape
        (y, x) plane shape.
    dtype
        Stored dtype, with byte order.
    samples
        Interleaved samples per pixel (3 for RGB).
    sample
        The sample this source returns.
    """

    def __init__(
        self,
        file: str,
        offsets: Sequence[int],
        shape: tuple[int, int],
        dtype: Any,
        samples: int = 1,
        sample: int = 0,
    ) -> None:
        self._file = os.fspath(file)
        self._offsets = [int(o) for o in offsets]
        self._plane = (int(shape[0]), int(shape[1]))
        self._dtype = np.dtype(dtype)
        self._samples = int(samples)
        self._sample = int(sample)

    @property
    def path(self) -> str:
        return self._file

    def shape_hint(self) -> tuple[int, int, int]:
        return (len(self._offsets), *self._plane)

    def _read(self, region: Region) -> np.ndarray:
        zs, ys, xs = region
        ny, nx = ys.stop - ys.start, self._plane[1]
        row_bytes = nx * self._samples * self._dtype.itemsize
        nbytes = ny * row_bytes
        planes = np.empty((zs.stop - zs.start, ny, nx * self._samples), dtype=self._dtype)
        try:
            fd = os.open(self._file, os.O_RDONLY)
        except OSError as exc:
            raise SourceError(f"{self._file}: cannot open: {exc.strerror}") from None
        try:
            for k, z in enumerate(range(zs.start, zs.stop)):
                start = self._offsets[z] + ys.start * row_bytes
                got = os.preadv(fd, [memoryview(planes[k]).cast("B")], start) if nbytes else 0
                if got != nbytes:
                    raise SourceError(
                        f"{self._file}: truncated: expected {nbytes} bytes of pixels at offset {start}, "
                        f"got {got}"
                    )
        finally:
            os.close(fd)
        if self._samples > 1:
            out = np.ascontiguousarray(
                planes.reshape(len(planes), ny, nx, self._samples)[:, :, xs, self._sample]
            )
        else:
            out = planes[:, :, xs]
        if not self._dtype.isnative:
            out = out.astype(self._dtype.newbyteorder("="))
        return out

    def __repr__(self) -> str:
        return f"RawFileSource({self._file!r}, {len(self._offsets)} planes, sample={self._sample})"
