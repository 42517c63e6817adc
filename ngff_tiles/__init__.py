"""ngff-tiles: tiled microscopy acquisitions to fused, multiscale, viewer-ready OME-Zarr.

Importing this package is cheap: no format library, no dask, no tensorstore is imported until a
function needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ExecutionOptions",
    "FusionOptions",
    "LayoutOptions",
    "PyramidOptions",
    "ReaderOptions",
    "Tile",
    "Well",
    "WriterOptions",
    "__version__",
    "convert",
    "read_tiles",
]

_LAZY = {
    "convert": "ngff_tiles.pipeline",
    "read_tiles": "ngff_tiles.readers",
    "Tile": "ngff_tiles.tiles",
    "Well": "ngff_tiles.tiles",
    "ExecutionOptions": "ngff_tiles.options",
    "FusionOptions": "ngff_tiles.options",
    "LayoutOptions": "ngff_tiles.options",
    "PyramidOptions": "ngff_tiles.options",
    "ReaderOptions": "ngff_tiles.options",
    "WriterOptions": "ngff_tiles.options",
}

if TYPE_CHECKING:
    from ngff_tiles.options import (
        ExecutionOptions,
        FusionOptions,
        LayoutOptions,
        PyramidOptions,
        ReaderOptions,
        WriterOptions,
    )
    from ngff_tiles.pipeline import convert
    from ngff_tiles.readers import read_tiles
    from ngff_tiles.tiles import Tile, Well


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ngff_tiles' has no attribute {name!r}")
