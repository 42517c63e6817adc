"""The real PYMEDataServer (python-microscopy 26.9.3) on 127.0.0.1, serving the sample series.

PYME is GPL and heavy, so it is never a dependency: it lives in its own venv,
``benchmarks/_venvs/pyme-server`` (or ``$NGFF_PYME_SERVER_VENV``), built with the recipe of
``reference/pyme-server.md`` §1 plus jinja2, which PYME.resources now imports (1-3 min, needs gcc
and the package index):

    python3 -m venv V && V/bin/pip install numpy six pyyaml requests ujson zeroconf tables psutil jinja2
    V/bin/pip install --no-deps python-microscopy==26.9.3

These tests run when that venv exists, or build it when ``NGFF_PYME_SERVER_INSTALL=1``; otherwise
they skip, saying so. The server runs with ``-a local`` (127.0.0.1, no zeroconf advertising) and a
private ``HOME``/``TMPDIR``, on a copy of the data (it writes ``LOGS/`` into its root).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import zarr

from ngff_tiles import convert
from ngff_tiles.options import ExecutionOptions, ReaderOptions
from ngff_tiles.readers._base import FRAME_CACHE
from ngff_tiles.readers.pyme.cluster import PymeClusterReader
from ngff_tiles.readers.pyme.series import PymeSeriesReader

SERIES = Path(__file__).parents[1] / ".." / "shared" / "sample-data" / "pyme" / "series"
_DEFAULT_VENV = Path(__file__).parents[1] / "benchmarks" / "_venvs" / "pyme-server"
VENV = Path(os.environ.get("NGFF_PYME_SERVER_VENV", _DEFAULT_VENV))
PYTHON = VENV / "bin" / "python"
RECIPE = [
    ["-m", "pip", "install", "-q", "numpy", "six", "pyyaml", "requests", "ujson", "zeroconf", "tables"],
    ["-m", "pip", "install", "-q", "psutil", "jinja2"],
    ["-m", "pip", "install", "-q", "--no-deps", "python-microscopy==26.9.3"],
]

pytestmark = pytest.mark.skipif(
    not (SERIES / "ground_truth.npy").is_file(), reason=f"PYME sample series not found at {SERIES}"
)


def _works() -> bool:
    if not PYTHON.is_file():
        return False
    res = subprocess.run(
        [PYTHON, "-c", "import PYME.cluster.HTTPDataServer"],
        capture_output=True,
        env={**os.environ, "HOME": str(VENV)},
        timeout=120,
    )
    return res.returncode == 0


@pytest.fixture(scope="module")
def pyme_python() -> Path:
    if _works():
        return PYTHON
    if os.environ.get("NGFF_PYME_SERVER_INSTALL") != "1":
        pytest.skip(
            f"real PYMEDataServer not installed at {VENV}; set NGFF_PYME_SERVER_INSTALL=1 to build it "
            "(1-3 min, needs gcc and the package index)"
        )
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=120)
        for step in RECIPE:
            subprocess.run([str(PYTHON), *step], check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"could not build the PYMEDataServer venv at {VENV}: {exc}")
    if not _works():
        pytest.skip(f"PYMEDataServer venv at {VENV} built but `import PYME.cluster.HTTPDataServer` fails")
    return PYTHON


@contextmanager
def real_server(python: Path, root: Path, home: Path) -> Iterator[str]:
    """Run ``python -m PYME.cluster.HTTPDataServer -r root -a local -p 0``; yield its URL."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(home), "PYTHONUNBUFFERED": "1"}
    cmd = [str(python), "-m", "PYME.cluster.HTTPDataServer", "-r", str(root), "-f", "NGFFTEST"]
    proc = subprocess.Popen(
        [*cmd, "-a", "local", "-p", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(home),
    )
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    try:
        port = None
        seen = []
        while port is None:
            try:
                line = lines.get(timeout=30)
            except queue.Empty:
                pytest.fail(f"PYMEDataServer did not start within 30 s: {''.join(seen[-10:])}")
            seen.append(line)
            m = re.search(r"Serving HTTP on 127\.0\.0\.1 port (\d+)", line)
            if m:
                port = int(m.group(1))
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        drainer.join(timeout=5)
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    FRAME_CACHE.clear()
    yield
    FRAME_CACHE.clear()


def test_real_server_single_series(pyme_python: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SERIES / "tiles_events" / "tiles_events.pcs", root / "tiles_events.pcs")
    with real_server(pyme_python, root, tmp_path / "home") as url:
        opts = ReaderOptions(pyme_servers=(url,))
        remote = PymeClusterReader().tiles("pyme-cluster:///tiles_events.pcs", opts)
        local = PymeSeriesReader().tiles(str(SERIES / "tiles_events" / "tiles_events.pcs"), ReaderOptions())
        assert [t.position_um for t in remote] == [t.position_um for t in local]
        for a, b in zip(remote, local, strict=True):
            np.testing.assert_array_equal(a.read(), b.read())
        out = tmp_path / "out.ome.zarr"
        quiet = ExecutionOptions(progress=False)
        convert("pyme-cluster:///tiles_events.pcs", out, reader_options=opts, execution=quiet)
    fused = np.asarray(zarr.open_group(str(out), mode="r")["0"])[0, 0, 0]
    np.testing.assert_array_equal(fused, np.load(SERIES / "ground_truth.npy")[12:358, 10:356])


def test_real_servers_holding_halves_of_a_series(pyme_python: Path, tmp_path: Path) -> None:
    quant = SERIES / "tiles_quant_2servers"
    for half in ("server_a", "server_b"):
        shutil.copytree(quant / half, tmp_path / half)
    with (
        real_server(pyme_python, tmp_path / "server_a", tmp_path / "home_a") as a,
        real_server(pyme_python, tmp_path / "server_b", tmp_path / "home_b") as b,
    ):
        opts = ReaderOptions(pyme_servers=(a, b), subtract_camera_offset=False)
        tiles = PymeClusterReader().tiles("pyme-cluster:///ngfftest/*/tiles_*.pcs", opts)
        got = np.stack([t.read()[0] for t in tiles])
    np.testing.assert_array_equal(got, np.load(quant / "pyme_decoded_frames_yx.npy"))
