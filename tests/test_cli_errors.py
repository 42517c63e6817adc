"""The console script's error contract: exit codes in --help, one line without --debug, tracebacks with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ngff_tiles.cli import main

CODES = ("0 ", "1 ", "2 ", "3 ", "130 ")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ngff_tiles.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("argv", [["--help"], ["convert", "--help"], ["verify", "--help"]])
def test_help_documents_the_exit_codes(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    section = out[out.index("exit codes:") :]
    for code in CODES:
        assert f"\n  {code}" in section, (code, section)


def test_bad_input_is_one_line_and_a_traceback_only_with_debug(tmp_path: Path) -> None:
    table = tmp_path / "tiles.csv"
    table.write_text("path,x_um,y_um\nmissing.tif,0,0\n")
    plain = cli("convert", str(table), "-o", str(tmp_path / "o.ome.zarr"), "-q")
    assert plain.returncode == 2
    assert plain.stderr.splitlines() == [
        f"ngff-tiles: error: {table}: row 1 (line 2): image file 'missing.tif' not found "
        f"({tmp_path / 'missing.tif'})"
    ]
    debug = cli("convert", str(table), "-o", str(tmp_path / "o.ome.zarr"), "-q", "--debug")
    assert debug.returncode == 1  # Python's own exit for an uncaught exception
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ngff_tiles.errors.SourceError" in debug.stderr
    assert not (tmp_path / "o.ome.zarr").exists()


def test_internal_error_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug (simulated: no real one is known) is exit 3, one line, and asks for --debug."""
    from ngff_tiles.readers.table import TileTableReader

    def broken(self: object, path: str, options: object) -> list[object]:
        raise ZeroDivisionError("division by zero\nin a place we did not foresee")

    monkeypatch.setattr(TileTableReader, "tiles", broken)
    table = tmp_path / "tiles.csv"
    table.write_text("path,x_um,y_um\na.tif,0,0\n")
    assert main(["convert", str(table), "-o", str(tmp_path / "o.ome.zarr"), "-q"]) == 3
    assert capsys.readouterr().err.splitlines() == [
        "ngff-tiles: internal error: ZeroDivisionError: division by zero in a place we did not foresee "
        "(rerun with --debug for the traceback)"
    ]
    with pytest.raises(ZeroDivisionError):
        main(["convert", str(table), "-o", str(tmp_path / "o.ome.zarr"), "-q", "--debug"])
