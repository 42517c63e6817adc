"""benchmarks/fuzz.py: runs a target for a bounded time, prints the figures, and finds crashes.

A planted bug (a target whose parser raises IndexError on inputs starting with ``b"!"``) must be
reported as a crash with its input saved, so a clean long run means something.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ngff_tiles.testing.fuzzing import TARGETS

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "benchmarks" / "fuzz.py"

PLANTED = """
from ngff_tiles.errors import SourceError
from ngff_tiles.testing.fuzzing import FuzzTarget, register

def feed(state, data):
    if data[:1] == b"!":
        raise IndexError("planted bug")
    raise SourceError("x: rejected")

register(FuzzTarget("planted", "a parser with a planted bug", lambda d: d, feed, lambda: [b"!ok", b"no"]))
"""


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(FUZZ), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def test_list_names_every_target() -> None:
    proc = run("--list")
    assert proc.returncode == 0, proc.stderr
    assert set(re.findall(r"^(\S+)", proc.stdout, re.M)) == set(TARGETS)


def test_short_run_reports_its_figures(tmp_path: Path) -> None:
    proc = run("--target", "tileconfig", "--seconds", "2", "--engine", "mutate", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r"tileconfig: (\d+) executions in (\d+) s .* crashes 0, hangs 0", proc.stdout)
    assert m, proc.stdout
    assert int(m.group(1)) > 50
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["executions"] == int(m.group(1))
    assert stats["accepted"] > 0  # the seeds reach the success path
    assert stats["rejected"] > 0


def test_a_planted_crash_is_found_and_saved(tmp_path: Path) -> None:
    plugin = tmp_path / "planted.py"
    plugin.write_text(PLANTED)
    args = ["--target", "planted", "--seconds", "1", "--engine", "mutate", "--out", str(tmp_path)]
    proc = run(*args, "--register", str(plugin))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"crashes [1-9]", proc.stdout), proc.stdout
    assert "IndexError: planted bug" in proc.stdout
    saved = list((tmp_path / "crashes").glob("crashes-*.bin"))
    assert saved
    assert all(p.read_bytes().startswith(b"!") for p in saved)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_first_seed_is_accepted(name: str) -> None:
    """Each target's harness reaches the reader's success path (the fuzz tests are not vacuous)."""
    target = TARGETS[name]
    seeds = target.seed_inputs()
    if not seeds:
        pytest.skip(f"{name}: its seeds come from sample data that is absent")
    try:
        target.setup()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        assert target.run(seeds[0]) is True
    finally:
        target.teardown()
