"""No data loss on the output side: existing paths, --overwrite, Ctrl-C, a full disk, permissions.

- An existing output is refused without ``--overwrite``; with it, only an empty folder or a store
  carrying our provenance record is replaced - never a file, a symlink, a foreign folder or a
  foreign Zarr store (their contents are checked byte for byte afterwards).
- Ctrl-C (a real SIGINT to the console script) exits 130 and leaves the store marked incomplete.
- A full disk: a real 128 KiB tmpfs where we may mount one (root), and always an ENOSPC raised
  by the store layer (block writes, and the final metadata write); the error names the path, the
  exit code is 2 and the store stays marked incomplete.
- Permission errors while writing (output folder not writable; a level folder made read-only
  midway) name the path and leave the store marked incomplete. As root these run in a child
  without CAP_DAC_OVERRIDE (see tests/test_bad_inputs.py).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_bad_inputs import _drop_dac_capabilities, checksums, store_attributes

from ngff_tiles.cli import main
from ngff_tiles.testing.synthetic import SyntheticSpec, write_dataset
from ngff_tiles.writers import ome_zarr
from ngff_tiles.writers.ome_zarr import DONE_DIR

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("safety") / "tiles"
    write_dataset(SyntheticSpec(grid=(2, 2), tile_shape=(1, 256, 256), overlap=0.2), d)
    for p in [d.parent, d, *d.iterdir()]:  # readable by a child without CAP_DAC_OVERRIDE too
        p.chmod(0o755 if p.is_dir() else 0o644)
    return d


def convert_cli(
    tiles: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, list[str]]:
    code = main(["convert", str(tiles), "-o", str(out), "-q", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def status(store: Path) -> str | None:
    attrs = store_attributes(store)
    return None if attrs is None else attrs.get("ngff_tiles", {}).get("status")


def assert_incomplete(store: Path) -> None:
    attrs = store_attributes(store)
    assert attrs is not None, store
    assert "ome" not in attrs, "multiscales written: the store claims completion"
    assert attrs["ngff_tiles"]["status"] == "incomplete"


# --------------------------------------------------------------------------------------------
# existing outputs and --overwrite


def _foreign_zarr(p: Path) -> None:
    p.mkdir()
    (p / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    (p / "0").mkdir()
    (p / "0" / "precious.bin").write_bytes(b"\x01" * 100)


def _foreign_folder(p: Path) -> None:
    p.mkdir()
    (p / "thesis.txt").write_text("do not delete")


def _a_file(p: Path) -> None:
    p.write_bytes(b"not a store")


@pytest.mark.parametrize(
    "make", [_foreign_zarr, _foreign_folder, _a_file], ids=["foreign-zarr", "foreign-folder", "file"]
)
def test_overwrite_never_removes_what_we_did_not_write(
    make: Any, tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.ome.zarr"
    make(out)
    before = checksums(tmp_path)
    for extra in ((), ("--overwrite",)):
        code, err = convert_cli(tiles, out, capsys, *extra)
        assert code == 2
        assert len(err) == 1, err
        assert err[0].startswith(f"ngff-tiles: error: {out}: "), err
        assert "overwrite" in err[0] or "not written by ngff-tiles" in err[0] or "not a directory" in err[0]
    assert checksums(tmp_path) == before


def test_overwrite_keeps_a_store_of_ours_holding_other_files(
    tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Notes or data a user put into an old store stop --overwrite; junk dot files do not."""
    out = tmp_path / "out.ome.zarr"
    assert convert_cli(tiles, out, capsys)[0] == 0
    (out / "analysis").mkdir()
    (out / "analysis" / "cells.csv").write_text("1,2,3")
    (out / "notes.txt").write_text("staining protocol")
    before = checksums(tmp_path)
    code, err = convert_cli(tiles, out, capsys, "--overwrite")
    assert code == 2
    assert err == [
        f"ngff-tiles: error: {out}: holds 'analysis', 'notes.txt', which ngff-tiles does not write; "
        "refusing to delete it even with --overwrite (move it out first)"
    ]
    assert checksums(tmp_path) == before
    shutil.rmtree(out / "analysis")
    (out / "notes.txt").unlink()
    (out / ".DS_Store").write_bytes(b"\0")
    assert convert_cli(tiles, out, capsys, "--overwrite")[0] == 0
    assert status(out) == "complete"


def test_overwrite_does_not_follow_a_symlink_to_our_store(
    tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = tmp_path / "ours.ome.zarr"
    assert convert_cli(tiles, ours, capsys)[0] == 0
    link = tmp_path / "link.ome.zarr"
    link.symlink_to(ours)
    before = checksums(tmp_path)
    code, err = convert_cli(tiles, link, capsys, "--overwrite")
    assert code == 2
    assert "not a directory" in err[0]
    assert checksums(tmp_path) == before


def test_overwrite_replaces_our_store_complete_or_not(
    tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.ome.zarr"
    assert convert_cli(tiles, out, capsys)[0] == 0
    first = checksums(out)
    code, err = convert_cli(tiles, out, capsys)
    assert code == 2
    assert "pass --overwrite" in err[0]
    assert checksums(out) == first  # refused: untouched
    (out / "0" / "stale-from-an-old-run").write_text("x")
    assert convert_cli(tiles, out, capsys, "--overwrite")[0] == 0
    assert status(out) == "complete"
    assert not (out / "0" / "stale-from-an-old-run").exists()
    # an incomplete store of ours (an interrupted run) is ours too
    attrs = json.loads((out / "zarr.json").read_text())
    attrs["attributes"] = {"ngff_tiles": {**attrs["attributes"]["ngff_tiles"], "status": "incomplete"}}
    (out / "zarr.json").write_text(json.dumps(attrs))
    assert convert_cli(tiles, out, capsys, "--overwrite")[0] == 0
    assert status(out) == "complete"
    # an empty folder is taken as it is
    empty = tmp_path / "empty.ome.zarr"
    empty.mkdir()
    assert convert_cli(tiles, empty, capsys, "--overwrite")[0] == 0
    assert status(empty) == "complete"


def test_inputs_inside_the_output_are_never_overwritten(
    tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tiles kept inside an old store of ours (or the output named as the input folder) survive."""
    out = tmp_path / "out.ome.zarr"
    assert convert_cli(tiles, out, capsys)[0] == 0
    inside = out / "tiles"
    shutil.copytree(tiles, inside)
    before = checksums(tmp_path)
    for target in (out, inside):
        code, err = convert_cli(inside, target, capsys, "--overwrite")
        assert code == 2
        expected = f"{target}: the output would contain the input {inside}; write the output elsewhere"
        assert err == [f"ngff-tiles: error: {expected}"]
    table = tmp_path / "tiles.csv"  # a table elsewhere naming a file inside the store
    table.write_text(f"path,x_um,y_um,pixel_size_um\n{next(inside.glob('*.ome.tif'))},0,0,0.65\n")
    code, err = convert_cli(table, out, capsys, "--overwrite")
    assert code == 2
    assert "the output would contain the input" in err[0]
    assert checksums(tmp_path) == {**before, "tiles.csv": checksums(tmp_path)["tiles.csv"]}


# --------------------------------------------------------------------------------------------
# Ctrl-C


def test_sigint_midway_exits_130_and_leaves_the_store_incomplete(tiles: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.ome.zarr"
    # 32² blocks on one thread: ~300 block tasks, so the signal lands midway
    cmd = [sys.executable, "-m", "ngff_tiles.cli", "convert", str(tiles), "-o", str(out), "-q"]
    cmd += ["--chunks", "32,32", "--shards", "32,32", "--max-workers", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        done = out / DONE_DIR
        if done.is_dir() and len(os.listdir(done)) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the conversion ended before the signal"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["ngff-tiles: interrupted"]
    assert_incomplete(out)


# --------------------------------------------------------------------------------------------
# a full disk


@pytest.fixture
def tiny_tmpfs() -> Iterator[Path]:
    """A 128 KiB tmpfs, where we may mount one (root on Linux); else skip."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a size-limited tmpfs needs root (the simulated ENOSPC tests still run)")
    mnt = Path(tempfile.mkdtemp(prefix="ngff-full-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mnt)], capture_output=True, check=False
    )
    if done.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()


def test_convert_onto_a_full_filesystem(
    tiles: Path, tiny_tmpfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tiny_tmpfs / "o.ome.zarr"
    code, err = convert_cli(tiles, out, capsys)
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"ngff-tiles: error: {out}/0: writing block at"), err[0]
    assert "No space left on device" in err[0]
    assert_incomplete(out)


class _FullStore:
    """Stands in for the opened tensorstore array: every write fails as a full disk does."""

    def __getitem__(self, index: Any) -> _FullStore:
        return self

    def write(self, block: Any) -> _FullStore:
        return self

    def result(self) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_enospc_from_the_store_layer(
    tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no tmpfs can be mounted: block writes fail with ENOSPC below our writer."""
    monkeypatch.setattr(ome_zarr.LevelArray, "store", lambda self: _FullStore())
    out = tmp_path / "o.ome.zarr"
    code, err = convert_cli(tiles, out, capsys)
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"ngff-tiles: error: {out}/0: writing block at"), err[0]
    assert "No space left on device" in err[0]
    assert_incomplete(out)


def test_enospc_writing_the_final_metadata_keeps_the_incomplete_record(
    tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metadata is written last, via a temporary file: failing there leaves the old record."""
    real = ome_zarr.write_json_atomic

    def full_at_the_end(path: Path, doc: Any, **kwargs: Any) -> None:
        if "ome" in doc.get("attributes", {}):  # the finalising write
            tmp = path.with_name(f".{path.name}.full.tmp")
            tmp.write_text(json.dumps(doc)[:10])  # a torn write, as on a full disk ...
            raise ome_zarr.NgffTilesError(f"{path}: cannot write: {os.strerror(errno.ENOSPC)}")
        real(path, doc, **kwargs)

    monkeypatch.setattr(ome_zarr, "write_json_atomic", full_at_the_end)
    out = tmp_path / "o.ome.zarr"
    code, err = convert_cli(tiles, out, capsys)
    assert code == 2
    assert err == [f"ngff-tiles: error: {out}/zarr.json: cannot write: No space left on device"]
    assert_incomplete(out)  # ... never renamed over the record


def _fill(path: Path) -> None:
    with open(path, "wb") as f:
        for _ in range(1000):  # 4 MB: more than the 128 KiB there are
            f.write(b"\0" * 4096)
            f.flush()


def test_write_json_atomic_on_a_full_disk_leaves_the_old_file(tiny_tmpfs: Path) -> None:
    """The real thing: the rename never happens when the temporary file cannot be written."""
    target = tiny_tmpfs / "zarr.json"
    ome_zarr.write_json_atomic(target, {"status": "incomplete"})
    with pytest.raises(OSError, match="No space left") as filled:
        _fill(tiny_tmpfs / "filler")
    assert filled.value.errno == errno.ENOSPC
    with pytest.raises(ome_zarr.NgffTilesError, match="No space left on device"):
        ome_zarr.write_json_atomic(target, {"status": "complete", "big": "x" * 100_000})
    assert json.loads(target.read_text()) == {"status": "incomplete"}
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler", "zarr.json"]  # no temp left


# --------------------------------------------------------------------------------------------
# permissions


CHILD = """
import json, os, sys
from ngff_tiles.errors import NgffTilesError
from ngff_tiles.options import ExecutionOptions
from ngff_tiles.pipeline import convert
tiles, out, mode = sys.argv[1:]
def lock_level(msg):
    if mode == "midway" and "pyramid level" in msg:
        os.chmod(os.path.join(out, "0"), 0o555)
try:
    convert(tiles, out, execution=ExecutionOptions(progress=False), on_progress=lock_level)
    print(json.dumps({"error": None}))
except NgffTilesError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


def _run_child(tiles: Path, out: Path, mode: str) -> dict[str, Any]:
    preexec = _drop_dac_capabilities()
    if os.geteuid() == 0 and preexec is None:
        pytest.skip("root without a way to drop CAP_DAC_OVERRIDE: permission bits do not apply")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tiles), str(out), mode],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,  # only prctl in the child: no locks taken
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture
def open_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ngff-perm-"))
    d.chmod(0o755)
    yield d
    for p in [d, *d.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(d)


def test_output_folder_not_writable(tiles: Path, open_dir: Path) -> None:
    parent = open_dir / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    report = _run_child(tiles, parent / "o.ome.zarr", "start")
    assert report["error"] == "NgffTilesError"
    assert report["message"] == f"{parent / 'o.ome.zarr'}: cannot create output: Permission denied"
    assert list(parent.iterdir()) == []


def test_permission_lost_midway(tiles: Path, open_dir: Path) -> None:
    out = open_dir / "o.ome.zarr"
    report = _run_child(tiles, out, "midway")
    assert report["error"] == "NgffTilesError", report
    assert report["message"].startswith(f"{out}/0: writing block at"), report
    assert "Permission denied" in report["message"]
    assert_incomplete(out)
