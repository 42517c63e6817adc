"""Reader conformance suite: the checks every ngff-tiles reader must pass.

Subclass :class:`ReaderConformance` in a test module (the subclass name must start with ``Test``)
and provide the reader's registry name, a way to build a positive and a negative input, and the
number of tiles the positive input has::

    class TestMyReader(ReaderConformance):
        reader_name = "my-format"
        expected_tiles = 4

        def make_input(self, tmp_path):
            ...  # write a small dataset under tmp_path, return its path
            return str(tmp_path / "data.my")

        def make_negative(self, tmp_path):
            ...  # something similar that the reader must not claim
            return str(tmp_path / "other.txt")

The tests use pytest fixtures (``tmp_path``, ``monkeypatch``) by name; pytest is not imported here.
"""

from __future__ import annotations

import gc
import math
import os
import pickle
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ngff_tiles.options import ReaderOptions
from ngff_tiles.readers import Reader, get_reader, guess_reader
from ngff_tiles.tiles import FrameSource, Region, Tile

if TYPE_CHECKING:
    import pytest

__all__ = ["ReaderConformance", "open_files"]


def open_files() -> set[str]:
    """Return the regular files this process holds open (via ``/proc/self/fd``, else psutil)."""
    fd_dir = "/proc/self/fd"
    if os.path.isdir(fd_dir):
        found: set[str] = set()
        for name in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, name))
            except OSError:
                continue
            if target.startswith("/") and os.path.isfile(target):
                found.add(target)
        return found
    import psutil

    return {f.path for f in psutil.Process().open_files()}


def _all_subclasses(cls: type) -> Iterator[type]:
    sub: type
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


class _PixelReadError(AssertionError):
    pass


def _forbidden(*args: Any, **kwargs: Any) -> Any:
    raise _PixelReadError("tiles() must read metadata only, but it read pixels")


def _sub_region(shape: tuple[int, int, int]) -> Region:
    """A region strictly inside the tile where possible (odd offsets, partial extent)."""
    z, y, x = shape

    def part(n: int) -> slice:
        if n == 1:
            return slice(0, 1)
        start = n // 3
        stop = max(start + 1, n - n // 4)
        return slice(start, stop)

    return (part(z), part(y), part(x))


class ReaderConformance:
    """Base class of the per-reader conformance tests (pytest collects the ``Test*`` subclasses).

    Attributes
    ----------
    reader_name
        Registry name of the reader under test.
    expected_tiles
        Number of tiles the positive input yields (``None``: only check there is at least one).
    options
        ReaderOptions passed to ``tiles()``.
    max_tiles_read
        Read pixels of at most this many tiles per test, to keep the suite fast.
    guess
        Whether ``guess_reader`` must pick this reader for the positive input.
    """

    reader_name: ClassVar[str] = ""
    expected_tiles: ClassVar[int | None] = None
    options: ClassVar[ReaderOptions] = ReaderOptions()
    max_tiles_read: ClassVar[int] = 6
    guess: ClassVar[bool] = True

    # -- to be provided by subclasses ---------------------------------------------------------

    def make_input(self, tmp_path: Path) -> str:
        """Write (or locate) an input the reader claims and return its path."""
        raise NotImplementedError

    def make_negative(self, tmp_path: Path) -> str:
        """Write an input the reader must not claim and return its path."""
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------

    @property
    def reader(self) -> Reader:
        """The reader under test, from the registry."""
        return get_reader(self.reader_name)

    def read_tiles(self, tmp_path: Path) -> list[Tile]:
        """Build the positive input and return its tiles."""
        return self.reader.tiles(self.make_input(tmp_path), self.options)

    def _some(self, tiles: list[Tile]) -> list[Tile]:
        if len(tiles) <= self.max_tiles_read:
            return tiles
        step = len(tiles) / self.max_tiles_read
        picked = [tiles[int(i * step)] for i in range(self.max_tiles_read)]
        return [*picked[:-1], tiles[-1]]

    @contextmanager
    def _no_pixel_reads(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        with monkeypatch.context() as mp:
            mp.setattr(FrameSource, "read", _forbidden)
            mp.setattr(FrameSource, "_read", _forbidden)
            for sub in _all_subclasses(FrameSource):
                if "_read" in vars(sub):
                    mp.setattr(sub, "_read", _forbidden)
                if "read" in vars(sub):
                    mp.setattr(sub, "read", _forbidden)
            mp.setattr(os, "preadv", _forbidden)
            tifffile = sys.modules.get("tifffile")
            if tifffile is not None:
                mp.setattr(tifffile.TiffPage, "asarray", _forbidden)
                mp.setattr(tifffile.TiffFrame, "asarray", _forbidden)
            yield

    # -- the tests ----------------------------------------------------------------------------

    def test_sniff_positive(self, tmp_path: Path) -> None:
        """The reader claims its own input."""
        assert self.reader.sniff(self.make_input(tmp_path)) is True

    def test_sniff_negative(self, tmp_path: Path) -> None:
        """The reader rejects a near miss, random bytes and an empty folder."""
        negative = tmp_path / "negative"
        negative.mkdir()
        assert self.reader.sniff(self.make_negative(negative)) is False
        junk = tmp_path / "junk.bin"
        junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        assert self.reader.sniff(str(junk)) is False
        empty = tmp_path / "empty"
        empty.mkdir()
        assert self.reader.sniff(str(empty)) is False
        assert self.reader.sniff(str(tmp_path / "does-not-exist")) is False

    def test_guess_reader(self, tmp_path: Path) -> None:
        """The registry picks this reader for the positive input."""
        if not self.guess:
            return
        assert guess_reader(self.make_input(tmp_path)).name == self.reader_name

    def test_tiles_reads_no_pixels(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """``tiles()`` reads metadata only."""
        path = self.make_input(tmp_path)
        with self._no_pixel_reads(monkeypatch):
            tiles = self.reader.tiles(path, self.options)
        assert tiles

    def test_tile_metadata(self, tmp_path: Path) -> None:
        """Ids, shapes, dtypes, positions and pixel sizes are well formed."""
        tiles = self.read_tiles(tmp_path)
        if self.expected_tiles is not None:
            assert len(tiles) == self.expected_tiles
        assert len(tiles) > 0
        assert [t.tile_id for t in tiles] == list(range(len(tiles)))
        keys = set()
        for tile in tiles:
            assert isinstance(tile, Tile)
            assert isinstance(tile.source, FrameSource)
            assert len(tile.shape) == 3
            assert all(isinstance(s, int) and s > 0 for s in tile.shape)
            assert isinstance(tile.dtype, np.dtype)
            assert len(tile.position_um) == 3
            assert all(math.isfinite(v) for v in tile.position_um)
            assert all(math.isfinite(v) and v > 0 for v in tile.pixel_size_um)
            assert isinstance(tile.channel, str)
            assert isinstance(tile.time_index, int)
            assert tile.time_index >= 0
            assert isinstance(tile.source.path, str)
            keys.add(
                (tile.name, tile.well, tile.field_index, tile.position_um, tile.channel, tile.time_index)
            )
        assert len(keys) == len(tiles), "two tiles share position, channel and time"

    def test_tiles_deterministic(self, tmp_path: Path) -> None:
        """Reading the metadata twice gives the same tiles in the same order."""
        path = self.make_input(tmp_path)
        a = self.reader.tiles(path, self.options)
        b = self.reader.tiles(path, self.options)
        strip = [(t.tile_id, t.shape, t.dtype, t.position_um, t.channel, t.time_index, t.name) for t in a]
        assert strip == [
            (t.tile_id, t.shape, t.dtype, t.position_um, t.channel, t.time_index, t.name) for t in b
        ]

    def test_read_full(self, tmp_path: Path) -> None:
        """``tile.read()`` returns the tile's shape and dtype, in native byte order."""
        for tile in self._some(self.read_tiles(tmp_path)):
            data = tile.read()
            assert isinstance(data, np.ndarray)
            assert data.shape == tile.shape
            assert data.dtype == tile.dtype
            assert data.dtype.isnative

    def test_read_region(self, tmp_path: Path) -> None:
        """A region read equals the same slice of the full read."""
        for tile in self._some(self.read_tiles(tmp_path)):
            full = tile.read()
            region = _sub_region(tile.shape)
            part = tile.read(region)
            np.testing.assert_array_equal(part, full[region])
            one_row = (slice(0, 1), slice(tile.shape[1] - 1, tile.shape[1]), slice(0, tile.shape[2]))
            np.testing.assert_array_equal(tile.read(one_row), full[one_row])

    def test_pickle_roundtrip(self, tmp_path: Path) -> None:
        """Tiles and their sources pickle; unpickled copies read the same pixels."""
        tiles = self.read_tiles(tmp_path)
        for tile in tiles:
            pickle.loads(pickle.dumps(tile.source))
        for tile in self._some(tiles):
            copy = pickle.loads(pickle.dumps(tile))
            assert copy.tile_id == tile.tile_id
            assert copy.shape == tile.shape
            assert copy.dtype == tile.dtype
            assert copy.position_um == tile.position_um
            assert copy.pixel_size_um == tile.pixel_size_um
            assert copy.channel == tile.channel
            assert dict(copy.extra) == dict(tile.extra)
            np.testing.assert_array_equal(copy.read(), tile.read())

    def test_no_leaked_file_handles(self, tmp_path: Path) -> None:
        """Neither ``tiles()`` nor reads leave files open."""
        path = self.make_input(tmp_path)
        gc.collect()
        before = open_files()
        tiles = self.reader.tiles(path, self.options)
        for tile in self._some(tiles):
            tile.read()
            tile.read(_sub_region(tile.shape))
        gc.collect()
        leaked = open_files() - before
        assert not leaked, f"files left open: {sorted(leaked)}"
