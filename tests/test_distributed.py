"""Real dask.distributed execution and resume after a SIGKILL: outputs identical to a plain run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ngff_tiles.options import ExecutionOptions, WriterOptions
from ngff_tiles.pipeline import convert
from ngff_tiles.testing.synthetic import SyntheticSpec, write_dataset
from ngff_tiles.writers.ome_zarr import DONE_DIR

SMALL = WriterOptions(chunks=(1, 64, 64), shards=(1, 128, 128))
VOLATILE = {"started", "finished"}


def _strip(doc: object) -> object:
    if isinstance(doc, dict):
        return {k: _strip(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [_strip(v) for v in doc]
    return doc


def store_files(root: Path) -> dict[str, object]:
    """Every file of a store: chunk bytes as they are, JSON without the run's timestamps."""
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(root))
            if p.name in ("zarr.json", ".zattrs", ".zarray", ".zgroup"):
                out[rel] = _strip(json.loads(p.read_text()))
            else:
                out[rel] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("dist") / "tiles"
    write_dataset(SyntheticSpec(grid=(3, 3), tile_shape=(1, 256, 256), overlap=0.15, channels=("a", "b")), d)
    return d


@pytest.mark.distributed
def test_local_cluster_output_identical_to_threads(tiles: Path, tmp_path: Path) -> None:
    threads = convert(
        tiles, tmp_path / "t.ome.zarr", writer=SMALL, execution=ExecutionOptions(progress=False)
    )
    cluster = convert(
        tiles, tmp_path / "d.ome.zarr", writer=SMALL, execution=ExecutionOptions(progress=False, workers=2)
    )
    assert threads.blocks_written == cluster.blocks_written > 8
    a, b = store_files(tmp_path / "t.ome.zarr"), store_files(tmp_path / "d.ome.zarr")
    assert sorted(a) == sorted(b)
    assert sum(isinstance(v, bytes) for v in a.values()) > 8
    assert a == b
    assert not (tmp_path / "d.ome.zarr" / DONE_DIR).exists()


@pytest.mark.distributed
@pytest.mark.parametrize(("trim", "expected"), [(None, None), (65536, "65536")])
def test_our_workers_leave_out_dasks_malloc_trim_threshold(trim: int | None, expected: str | None) -> None:
    """Our LocalCluster's workers keep glibc's adaptive trimming unless asked (benchmarks/README.md)."""
    import distributed

    from ngff_tiles.pipeline import _start_local_cluster

    with (
        _start_local_cluster(ExecutionOptions(workers=1, worker_malloc_trim=trim)) as cluster,
        distributed.Client(cluster) as client,
    ):
        seen = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert list(seen.values()) == [expected]


def test_unreachable_scheduler_is_a_clear_error(tiles: Path, tmp_path: Path) -> None:
    from ngff_tiles.errors import NgffTilesError

    with pytest.raises(NgffTilesError, match="cannot reach the dask scheduler"):
        convert(
            tiles,
            tmp_path / "x.ome.zarr",
            writer=SMALL,
            execution=ExecutionOptions(progress=False, scheduler="tcp://127.0.0.1:9"),
        )


KILLABLE = """
import sys, time
from ngff_tiles.fusion import kernel
from ngff_tiles.options import ExecutionOptions, WriterOptions
from ngff_tiles.pipeline import convert

slow = kernel.fuse_block
def fuse_slowly(*args, **kwargs):
    time.sleep(0.15)  # stretch the run so the parent can kill it midway
    return slow(*args, **kwargs)
kernel.fuse_block = fuse_slowly
import ngff_tiles.pipeline as p
p.fuse_block = fuse_slowly
convert(sys.argv[1], sys.argv[2], writer=WriterOptions(chunks=(1, 64, 64), shards=(1, 128, 128)),
        execution=ExecutionOptions(progress=False, max_workers=1))
"""


def test_sigkill_midway_then_resume_is_identical(tiles: Path, tmp_path: Path) -> None:
    reference = convert(
        tiles, tmp_path / "ref.ome.zarr", writer=SMALL, execution=ExecutionOptions(progress=False)
    )
    out = tmp_path / "killed.ome.zarr"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(tiles), str(out)])
    deadline = time.monotonic() + 60
    done = out / DONE_DIR
    while time.monotonic() < deadline:
        if done.is_dir() and len(os.listdir(done)) >= 4:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(os.listdir(done))
    assert 4 <= written < reference.blocks_written, "the kill must land midway"
    attrs = json.loads((out / "zarr.json").read_text())["attributes"]
    assert attrs["ngff_tiles"]["status"] == "incomplete"

    from ngff_tiles.errors import OutputExistsError

    with pytest.raises(OutputExistsError, match="output exists"):
        convert(tiles, out, writer=SMALL, execution=ExecutionOptions(progress=False))  # no silent restart
    with pytest.raises(OutputExistsError, match="other options"):
        convert(
            tiles,
            out,
            writer=WriterOptions(chunks=(1, 64, 64), shards=(1, 256, 256)),
            execution=ExecutionOptions(progress=False, resume=True),
        )
    said: list[str] = []
    resumed = convert(
        tiles,
        out,
        writer=SMALL,
        execution=ExecutionOptions(progress=False, resume=True),
        on_progress=said.append,
    )
    assert f"resuming: {written} block(s) already written" in said  # read back, not recomputed
    assert resumed.blocks_written == reference.blocks_written
    assert store_files(out) == store_files(tmp_path / "ref.ome.zarr")
    with pytest.raises(OutputExistsError, match="complete; nothing to resume"):
        convert(tiles, out, writer=SMALL, execution=ExecutionOptions(progress=False, resume=True))
