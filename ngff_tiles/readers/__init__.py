"""Reader registry: cheap sniffing, ``--reader`` override, third-party readers by entry point.

A reader is a class with a ``name``, a ``sniff(path)`` that decides from magic bytes or marker
files (never by importing a format library), and ``tiles(path, options)`` that reads metadata
only. Built-in readers are listed as ``"module:Class"`` strings and imported on first use; third
parties register in the entry-point group ``ngff_tiles.readers`` and are loaded lazily, once.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from ngff_tiles.errors import (
    AmbiguousFormatError,
    MissingDependencyError,
    SourceError,
    UnsupportedFormatError,
)
from ngff_tiles.options import ReaderOptions
from ngff_tiles.tiles import Tile

__all__ = [
    "ENTRY_POINT_GROUP",
    "Reader",
    "ReaderInfo",
    "available_readers",
    "get_reader",
    "guess_reader",
    "read_tiles",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ngff_tiles.readers"

# Most specific first: on a tie, the earlier reader is preferred only when it is strictly more
# specific (see ``priority``); equal claims are an AmbiguousFormatError.
_BUILTIN: dict[str, str] = {
    "tile-table": "ngff_tiles.readers.table:TileTableReader",
    "tileconfig": "ngff_tiles.readers.tiff:TileConfigReader",
    "mmstack": "ngff_tiles.readers.tiff:MMStackReader",
    "ome-tiff": "ngff_tiles.readers.tiff:OmeTiffReader",
    "ndtiff": "ngff_tiles.readers.ndtiff:NDTiffReader",
    "nd2": "ngff_tiles.readers.nd2:ND2Reader",
    "bdv": "ngff_tiles.readers.bdv:BdvReader",
    "pyme-cluster": "ngff_tiles.readers.pyme.cluster:PymeClusterReader",
    "pyme": "ngff_tiles.readers.pyme.series:PymeSeriesReader",
}


@runtime_checkable
class Reader(Protocol):
    """What every reader provides.

    Attributes
    ----------
    name
        Registry name, used by ``--reader``.
    description
        One line for ``ngff-tiles readers``.
    extra
        The pip extra that installs its dependencies (``None``: core dependencies suffice).
    priority
        Higher wins when several readers claim a path (a specific reader over a generic one).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    extra: ClassVar[str | None]
    priority: ClassVar[int]

    def sniff(self, path: str) -> bool:
        """Return True if this reader can read ``path``; cheap, no format library imported."""
        ...

    def check_dependencies(self) -> None:
        """Raise :class:`MissingDependencyError` if the reader's libraries are missing."""
        ...

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:
        """Return the tiles of ``path``, reading metadata only."""
        ...


@dataclass(frozen=True, slots=True)
class ReaderInfo:
    """A registry entry: where the reader lives and whether it loaded."""

    name: str
    target: str
    origin: str  # "builtin" or the distribution providing the entry point
    reader: Reader | None
    error: str | None


@functools.cache
def _entry_points() -> dict[str, tuple[str, str]]:
    from importlib.metadata import entry_points

    found: dict[str, tuple[str, str]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _BUILTIN:
            log.warning("ignoring entry point %r: it shadows a built-in reader", ep.name)
            continue
        dist = ep.dist.name if ep.dist is not None else "?"
        found[ep.name] = (ep.value, dist)
    return found


@functools.cache
def _load(target: str) -> Reader:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj = getattr(module, attr)
    reader = obj() if isinstance(obj, type) else obj
    if not isinstance(reader, Reader):
        raise TypeError(f"{target} is not an ngff_tiles reader")
    return reader


def available_readers() -> list[ReaderInfo]:
    """Return every registered reader, built-in first; loading failures are reported, not raised."""
    targets = [(name, target, "builtin") for name, target in _BUILTIN.items()]
    targets += [(name, value, dist) for name, (value, dist) in _entry_points().items()]
    infos = []
    for name, target, origin in targets:
        try:
            infos.append(ReaderInfo(name, target, origin, _load(target), None))
        except Exception as exc:  # a broken plugin must not break the registry
            infos.append(ReaderInfo(name, target, origin, None, f"{type(exc).__name__}: {exc}"))
    return infos


def get_reader(name: str) -> Reader:
    """Return the reader registered as ``name``."""
    for info in available_readers():
        if info.name == name:
            if info.reader is None:
                raise MissingDependencyError(f"reader {name!r} failed to load: {info.error}")
            return info.reader
    names = ", ".join(i.name for i in available_readers())
    raise UnsupportedFormatError(f"no reader named {name!r}; available: {names}")


def _check_readable(path: str) -> None:
    """Raise UnsupportedFormatError saying so if ``path`` (a file or folder) cannot be read.

    Called when no reader claims ``path`` (readers may claim paths that are not local files, such
    as URLs): a missing path, a symlink loop or missing permissions are the better message.
    """
    try:
        os.stat(path)
        if os.path.isdir(path):
            with os.scandir(path) as it:
                next(it, None)
        elif os.path.isfile(path):  # never open a FIFO or device: that can block
            with open(path, "rb") as fh:
                fh.read(1)
    except OSError as exc:
        raise UnsupportedFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None


def guess_reader(path: str) -> Reader:
    """Return the one reader that claims ``path``, or say why none or several do."""
    infos = available_readers()
    claims: list[Reader] = []
    for info in infos:
        if info.reader is None:
            continue
        try:
            if info.reader.sniff(path):
                claims.append(info.reader)
        except OSError:
            continue
    if not claims:
        _check_readable(path)
        broken = [f"{i.name} ({i.error})" for i in infos if i.reader is None]
        names = ", ".join(i.name for i in infos if i.reader is not None)
        hint = f"; readers that failed to load: {'; '.join(broken)}" if broken else ""
        raise UnsupportedFormatError(f"{path}: no reader recognises this input (tried {names}){hint}")
    top = max(r.priority for r in claims)
    best = [r for r in claims if r.priority == top]
    if len(best) > 1:
        names = ", ".join(r.name for r in best)
        raise AmbiguousFormatError(
            f"{path}: several readers claim this input ({names}); choose one with --reader"
        )
    reader = best[0]
    reader.check_dependencies()
    return reader


def read_tiles(
    paths: str | Sequence[str],
    *,
    reader: str | None = None,
    options: ReaderOptions | None = None,
) -> list[Tile]:
    """Read the tiles of one or several inputs, renumbering tile ids to stay unique.

    Parameters
    ----------
    paths
        One input or several (each read by its own guessed reader unless ``reader`` is given).
    reader
        Registry name forcing the reader for every input.
    options
        Options passed to the reader.
    """
    import dataclasses

    if isinstance(paths, str):
        paths = [paths]
    options = options or ReaderOptions()
    tiles: list[Tile] = []
    for path in paths:
        rd = get_reader(reader) if reader else guess_reader(str(path))
        if reader:
            rd.check_dependencies()
        try:
            found = rd.tiles(str(path), options)
        except OSError as exc:  # a name too long, an I/O error, a file gone: an input problem
            raise SourceError(f"{exc.filename or path}: {exc.strerror or exc}") from exc
        if len(paths) > 1:
            found = [dataclasses.replace(t, tile_id=len(tiles) + i) for i, t in enumerate(found)]
        tiles.extend(found)
    return tiles
