"""One exception tree for everything ngff-tiles raises on purpose.

Every error names what was expected and what was found, and the file it concerns. The CLI turns
any :class:`NgffTilesError` into one line and a non-zero exit code.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousFormatError",
    "LayoutError",
    "MetadataError",
    "MissingDependencyError",
    "NgffTilesError",
    "OutputExistsError",
    "SourceError",
    "UnsupportedFormatError",
    "ValidationError",
]


class NgffTilesError(Exception):
    """Base class of all errors raised by ngff-tiles on purpose."""


class UnsupportedFormatError(NgffTilesError, ValueError):
    """No reader claims the input path."""


class AmbiguousFormatError(NgffTilesError, ValueError):
    """Several readers claim the input path; pass ``reader=`` / ``--reader``."""


class MissingDependencyError(NgffTilesError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class SourceError(NgffTilesError, ValueError):
    """Corrupt or truncated input; the message names the file (and offset where known)."""


class MetadataError(NgffTilesError, ValueError):
    """Positions or pixel sizes are missing, malformed or inconsistent."""


class LayoutError(NgffTilesError, ValueError):
    """The tiles cannot be placed, e.g. two tiles claim the same well and field."""


class OutputExistsError(NgffTilesError, FileExistsError):
    """The output exists and overwriting was not requested (or is not safe)."""


class ValidationError(NgffTilesError, ValueError):
    """A written or given store violates the NGFF specification."""
