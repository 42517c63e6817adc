"""`import ngff_tiles` stays cheap: no format, array or scheduler library is imported."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_cheap() -> None:
    code = (
        "import sys, ngff_tiles, ngff_tiles.readers, ngff_tiles.tiles, ngff_tiles.errors;"
        "heavy = [m for m in ('tifffile', 'tensorstore', 'dask', 'zarr', 'imagecodecs', 'jsonschema', 'nd2', "
        "'ndtiff', 'h5py') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing ngff_tiles pulled in: {out}"


def test_public_api() -> None:
    import ngff_tiles

    assert ngff_tiles.__all__ == sorted(ngff_tiles.__all__)
    for name in ngff_tiles.__all__:
        assert getattr(ngff_tiles, name) is not None
