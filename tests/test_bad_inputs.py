"""The bad-input corpus (tests/bad_inputs/generate.py): every case fails loudly, precisely and safely.

For each case: a NgffTilesError subclass from the library (``--debug`` re-raises it), the CLI's
one line ``ngff-tiles: error: <file>: <problem>`` naming the offending file with exit code 2,
bounded time and memory (run under RLIMIT_AS with 2 GiB of headroom and a 60 s alarm; peak RSS
growth measured),
no output store that claims completion, and the inputs unchanged (checksums before and after).

Root reads files whatever their permission bits: as root, the permission cases run in a child
process whose bounding set lacks CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (still uid 0, but
permission bits apply to it as to the files' owner); where that is impossible they are skipped
with the reason.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bad_inputs.generate import CASES, CONTROLS, SAMPLES, BadInput, SampleMissing
from bad_inputs.run import run_case

from ngff_tiles import errors

ROOT = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).resolve().parent / "bad_inputs" / "run.py"
MAX_SECONDS = 30.0  # both runs of one case; they take 0.01-0.5 s here
MAX_RSS_GROWTH = 512 << 20


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (symlinks by target text; unreadable files by stat)."""
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs + files):
            p = Path(folder) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                try:
                    out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
                except PermissionError:
                    out[rel] = f"unreadable:{st.st_size}:{st.st_mtime_ns}"
            else:
                out[rel] = f"mode:{stat.S_IFMT(st.st_mode)}:{stat.S_IMODE(st.st_mode)}"
    return out


SAMPLES_BEFORE = checksums(SAMPLES) if SAMPLES.is_dir() else {}


def store_attributes(store: Path) -> dict[str, Any] | None:
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        f = store / name
        if f.is_file():
            doc = json.loads(f.read_text())
            return dict(doc.get(key, {}) if key else doc)
    return None


def assert_no_complete_store(out_dir: Path) -> None:
    """Every store the runs left is visibly incomplete: no multiscales, status incomplete."""
    for store in out_dir.glob("*.ome.zarr"):
        attrs = store_attributes(store)
        assert attrs is not None, f"{store}: a store without group metadata"
        assert "ome" not in attrs, f"{store} claims completion"
        assert "multiscales" not in attrs, f"{store} claims completion"
        assert attrs["ngff_tiles"]["status"] == "incomplete", store


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _drop_dac_capabilities() -> Any:
    """A preexec function removing root's permission-bypass capabilities from the bounding set.

    After the exec, root (uid 0) keeps its identity but file permission bits apply to it as to a
    file's owner, so a mode-000 file is unreadable. None where this is impossible.
    """
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
            if prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")

    return preexec


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is private to root when run as root)."""
    d = Path(tempfile.mkdtemp(prefix="ngff-bad-"))
    d.chmod(0o777)
    yield d
    for p in [d, *d.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o777 if p.is_dir() else 0o666)
    shutil.rmtree(d)


def run_unprivileged(built: BadInput, out_dir: Path) -> dict[str, Any]:
    """Run the case in a child process without root's capability to ignore permission bits."""
    preexec = _drop_dac_capabilities()
    if preexec is None:
        pytest.skip("running as root without a way to drop CAP_DAC_OVERRIDE: permission bits do not apply")
    spec = {"inputs": [str(p) for p in built.inputs], "output_dir": str(out_dir), "args": built.args}
    env = dict(os.environ, PYTHONPATH=str(RUNNER.parent.parent))
    proc = subprocess.run(
        [sys.executable, str(RUNNER), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,  # only prctl in the child: no locks taken
        env=env,
        check=False,
    )
    if proc.returncode != 0 and "PR_CAPBSET_DROP" in proc.stderr:
        pytest.skip("cannot drop CAP_DAC_OVERRIDE here (no CAP_SETPCAP?): permission bits do not apply")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input(case_id: str, workdir: Path) -> None:
    case = CASES[case_id]
    case_dir = workdir / "case"
    out_dir = workdir / "out"
    case_dir.mkdir()
    out_dir.mkdir()
    try:
        built = case.make(case_dir)
    except SampleMissing as exc:
        pytest.skip(str(exc))
    for p in [case_dir, *case_dir.rglob("*")]:  # the child (nobody) must reach the files; not read them
        if p.is_dir() and not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) != 0:
            p.chmod(0o755)
    out_dir.chmod(0o777)
    before = checksums(case_dir)

    if case.unprivileged and os.geteuid() == 0:
        report = run_unprivileged(built, out_dir)
    else:
        report = run_case([str(p) for p in built.inputs], str(out_dir), built.args)

    # the library: a NgffTilesError of the expected kind (via --debug)
    assert report["exception"] is not None, f"{case_id}: converted without an error"
    assert errors.NgffTilesError.__name__ in report["exception"], (
        f"{case_id}: raised {report['exception'][0]}: {report['exception_message']}"
    )
    assert case.error.__name__ in report["exception"], (
        f"{case_id}: expected {case.error.__name__}, got {report['exception'][0]}"
    )
    # the CLI: one line naming the offending file, exit code 2
    lines = report["stderr"].strip().splitlines()
    assert report["code"] == 2, report["stderr"]
    assert len(lines) == 1, report["stderr"]
    line = lines[0]
    assert line.startswith("ngff-tiles: error: /"), line
    assert built.offending.name in line, f"{built.offending.name} not named in: {line}"
    assert "MemoryError" not in line, line
    assert "Traceback" not in line, line
    # bounded time and memory
    assert report["seconds"] < MAX_SECONDS, f"{case_id}: took {report['seconds']:.1f} s"
    assert report["peak_rss_growth"] < MAX_RSS_GROWTH, (
        f"{case_id}: peak RSS grew by {report['peak_rss_growth'] / 2**20:.0f} MiB"
    )
    # nothing passed off as complete; inputs untouched
    assert_no_complete_store(out_dir)
    assert checksums(case_dir) == before


def test_corpus_size() -> None:
    """The issue asks for at least 40 bad inputs across the readers."""
    groups = {c.group for c in CASES.values()}
    assert len(CASES) >= 40, len(CASES)
    assert {
        "tiff",
        "ome-xml",
        "mmstack",
        "tileconfig",
        "table",
        "ndtiff",
        "nd2",
        "paths",
        "pzf",
        "bdv",
    } <= groups


@pytest.mark.parametrize("name", list(CONTROLS))
def test_controls_convert(name: str, workdir: Path) -> None:
    """The bases the cases break do convert: each case fails for its corruption, not its base."""
    try:
        built = CONTROLS[name](workdir)
    except SampleMissing as exc:
        pytest.skip(str(exc))
    from ngff_tiles.cli import main

    out = workdir / "ok.ome.zarr"
    assert main(["convert", *map(str, built.inputs), "-o", str(out), "-q", *built.args]) == 0
    attrs = store_attributes(out)
    assert attrs is not None
    assert attrs["ngff_tiles"]["status"] == "complete"


def test_memory_bound_applies() -> None:
    """The limit the cases run under is real: an allocation past the headroom fails at once."""
    import numpy as np
    from bad_inputs.run import MEMORY_HEADROOM, bounded_memory

    with bounded_memory(), pytest.raises(MemoryError):
        np.ones(MEMORY_HEADROOM + (1 << 30), dtype=np.uint8)
    assert np.ones(1 << 20, dtype=np.uint8).sum() == 1 << 20  # and it is lifted afterwards


def test_a_case_past_its_time_is_interrupted(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The time bound is real: a case still running at the alarm is stopped and reported."""
    from bad_inputs import run

    built = CONTROLS["ome-xml"](workdir)  # a valid input: converts in ~0.3 s, so 1 ms is too short
    monkeypatch.setattr(run, "CASE_TIMEOUT", 0.001)
    report = run.run_case([str(p) for p in built.inputs], str(workdir), built.args)
    assert report["exception"] == ["CaseTimeout"]
    assert report["stderr"].startswith("TIMEOUT")


def test_tile_size_backstop(tmp_path: Path) -> None:
    """Whatever a reader lets through, a tile claiming more than 2^36 pixels stops before planning."""
    import numpy as np

    from ngff_tiles.pipeline import MAX_TILE_PIXELS, convert
    from ngff_tiles.tiles import ArraySource, Tile

    small = np.zeros((1, 4, 4), np.uint16)
    liar = Tile(
        tile_id=0,
        source=ArraySource(small, name="/data/liar.tif"),
        shape=(1, 1 << 20, 1 << 17),  # 2^37 pixels
        dtype=np.uint16,
        position_um=(0, 0, 0),
        pixel_size_um=(1, 1, 1),
    )
    assert math.prod(liar.shape) > MAX_TILE_PIXELS
    with pytest.raises(errors.LayoutError, match=r"^/data/liar\.tif: tile 0 claims 1×1048576×131072"):
        convert([liar], tmp_path / "o.ome.zarr")
    assert not (tmp_path / "o.ome.zarr").exists()


def test_samples_untouched() -> None:
    """The originals in shared/sample-data are unchanged after the corpus ran (copies are corrupted).

    Runs last in this module; ``SAMPLES_BEFORE`` was taken when the module was imported.
    """
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} not found")
    assert SAMPLES_BEFORE, "no sample files hashed"
    assert checksums(SAMPLES) == SAMPLES_BEFORE
