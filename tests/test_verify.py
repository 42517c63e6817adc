"""``verify``: a written store read back; missing, corrupt and inconsistent chunks are named."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import grid_tiles

from ngff_tiles.cli import main
from ngff_tiles.options import ExecutionOptions, PlateOptions, PyramidOptions, WriterOptions
from ngff_tiles.pipeline import convert
from ngff_tiles.testing.plate import PlateSpec, write_plate
from ngff_tiles.tiles import Tile
from ngff_tiles.verify import verify_store

QUIET = ExecutionOptions(progress=False)
SMALL = {"chunks": (1, 64, 64), "shards": (1, 128, 128)}


def truth(shape: tuple[int, int, int] = (1, 300, 420)) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(100, 50000, size=shape, dtype=np.uint16)


def two_time_points(tiles: list[Tile]) -> list[Tile]:
    """The tiles at reader time indices 5 and 7 (output t = 0 and 1), the second brighter."""
    n = len(tiles)
    later = [
        dataclasses.replace(t, tile_id=t.tile_id + n, time_index=7, source=_plus(t, 1000)) for t in tiles
    ]
    return [dataclasses.replace(t, time_index=5) for t in tiles] + later


def _plus(tile: Tile, value: int) -> object:
    from ngff_tiles.tiles import ArraySource

    return ArraySource(tile.source.read() + np.uint16(value), name=f"{tile.name}_later")


@pytest.fixture(scope="module", params=["0.5", "0.4"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted image (2 channels, 2 time points, 4 levels); tests copy it before damaging it."""
    version = request.param
    out = tmp_path_factory.mktemp(f"v{version}") / "img.ome.zarr"
    tiles = two_time_points(grid_tiles(truth(), (2, 3), 160, 130, channels=("DAPI", "GFP")))
    convert(tiles, out, writer=WriterOptions(ngff_version=version, **SMALL), execution=QUIET)
    return out


@pytest.fixture
def copy(store: Path, tmp_path: Path) -> Path:
    dst = tmp_path / store.name
    shutil.copytree(store, dst)
    return dst


def level_files(root: Path, level: str) -> list[Path]:
    """The chunk/shard files of one level, sorted."""
    meta = {"zarr.json", ".zarray", ".zattrs"}
    return sorted(p for p in (root / level).rglob("*") if p.is_file() and p.name not in meta)


def test_converted_store_verifies_ok(store: Path) -> None:
    report = verify_store(store, sample_blocks=None)
    assert report.ok, report.problems
    assert report.warnings == []
    assert report.images == 1
    assert report.levels_checked == 4
    stored = sum(len(level_files(store, str(k))) for k in range(4))
    assert report.chunks_expected == report.chunks_checked == stored
    assert report.chunks_missing == 0
    assert report.blocks_recomputed > 0
    assert report.bytes_read > 0
    assert report.summary().startswith("OK: 1 image(s), 4 level(s)")
    # a sample is a sample: fewer blocks recomputed, the same chunks decoded
    sampled = verify_store(store, sample_blocks=2)
    assert sampled.ok
    assert sampled.chunks_checked == report.chunks_checked
    assert sampled.blocks_recomputed == 2 * 3  # 2 per level >= 1
    assert verify_store(store, sample_blocks=0).blocks_recomputed == 0


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_z_stack_downsampled_in_z_verifies_ok(tmp_path: Path, version: str) -> None:
    """Factors (2, 2, 2) from the scales; 0.4 chunks are 1 deep, so a block below spans two."""
    out = tmp_path / "z.ome.zarr"
    convert(
        grid_tiles(truth((5, 200, 260)), (2, 2), 130, 110),
        out,
        pyramid=PyramidOptions(downsample_z=True),
        writer=WriterOptions(ngff_version=version, **SMALL),
        execution=QUIET,
    )
    report = verify_store(out, sample_blocks=None)
    assert report.ok, report.problems
    assert report.levels_checked == 4  # z 5, 3, 2, 1
    assert report.chunks_expected == report.chunks_checked
    # and a change in one plane of level 0 shows
    victim = level_files(out, "0")[-1]
    corrupt_middle(victim)
    report = verify_store(out, sample_blocks=None)
    assert any(str(victim) in p for p in report.problems), report.problems


def test_deleted_chunk_is_named_and_exit_code_is_1(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = level_files(copy, "0")[5]
    victim.unlink()
    report = verify_store(copy)
    assert not report.ok
    assert report.chunks_missing == 1
    assert len(report.problems) == 1, report.problems  # the level above is not blamed for it
    assert str(victim) in report.problems[0]
    assert "missing" in report.problems[0]
    key = victim.relative_to(copy / "0").as_posix()
    assert f"0: {'shard' if key.startswith('c/') else 'chunk'} {key} (" in report.problems[0]

    assert main(["verify", "-q", str(copy)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ")
    assert str(victim) in lines[0]
    assert lines[-1].startswith(f"{copy}: 1 problem(s): ")


def corrupt_middle(path: Path, n: int = 16) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + n] = bytes(255 - b for b in data[mid : mid + n])
    path.write_bytes(bytes(data))


def test_corrupted_chunk_is_named(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Flipped bytes in the middle of a level-0 chunk/shard. blosc has no checksum: the data
    decode without error to other values, and only the level above, no longer their mean, tells.
    Every block is recomputed (a sample might miss this one)."""
    victim = level_files(copy, "0")[3]
    corrupt_middle(victim)
    report = verify_store(copy, sample_blocks=None)
    assert len(report.problems) == 1, report.problems
    assert str(victim) in report.problems[0]
    assert main(["verify", "--sample-blocks", "all", str(copy)]) == 1
    assert str(victim) in capsys.readouterr().err


def test_corrupted_chunk_header_fails_to_decode(copy: Path) -> None:
    """Flipped bytes at the start of a level-0 chunk (its blosc header; in a shard, that of the first
    inner chunk): the codec refuses it, found even with no block recomputed."""
    victim = level_files(copy, "0")[3]
    data = bytearray(victim.read_bytes())
    data[4:16] = bytes(255 - b for b in data[4:16])  # blosc sizes: uncompressed, block, compressed
    victim.write_bytes(bytes(data))
    report = verify_store(copy, sample_blocks=0)
    assert len(report.problems) == 1, report.problems
    assert str(victim) in report.problems[0]
    assert "cannot be decoded" in report.problems[0]
    if victim.relative_to(copy / "0").as_posix().startswith("c/"):
        assert report.problems[0].endswith("; inner chunk(s) [0, 0, 0, 0, 6] of 2 fail")  # its first


def test_damaged_shard_index_or_truncated_chunk_fails_to_decode(copy: Path) -> None:
    """0.5: a flipped byte in a level-1 shard's index fails its crc32c; 0.4: a chunk cut short."""
    victim = level_files(copy, "1")[0]
    data = bytearray(victim.read_bytes())
    if victim.relative_to(copy / "1").as_posix().startswith("c/"):
        data[-8] ^= 0xFF  # inside the index (offsets and sizes), before its crc32c
    else:
        del data[len(data) // 2 :]
    victim.write_bytes(bytes(data))
    report = verify_store(copy, sample_blocks=0)
    assert len(report.problems) == 1, report.problems
    unit = "shard" if victim.relative_to(copy / "1").as_posix().startswith("c/") else "chunk"
    assert report.problems[0].startswith(f"1: {unit} ")
    assert f"({victim}): cannot be decoded: " in report.problems[0]


def test_tampered_level_1_block_fails_the_pyramid_check(copy: Path) -> None:
    import tensorstore as ts

    driver = "zarr3" if (copy / "zarr.json").is_file() else "zarr"
    arr = ts.open({"driver": driver, "kvstore": {"driver": "file", "path": str(copy / "1")}}).result()
    block = np.asarray(arr[0, 1, 0, 64:70, 64:70].read().result())
    arr[0, 1, 0, 64:70, 64:70].write(block + 3).result()
    report = verify_store(copy, sample_blocks=None)
    assert report.chunks_missing == 0
    # level 1 is not the mean of level 0 there, and level 2 is not the mean of level 1
    assert len(report.problems) == 2, report.problems
    assert "differs from the 2x mean of level 0 in 36 pixel(s), max abs difference 3" in report.problems[0]
    assert report.problems[0].startswith("1: ")
    assert report.problems[1].startswith("2: ")
    key = "c/0/1/0/0/0" if driver == "zarr3" else "0/1/0/1/1"  # shard 128², chunk 64²
    assert all(f" {key} ({copy / '1' / key})" in p for p in report.problems)


def test_incomplete_store_is_reported(copy: Path) -> None:
    doc_path = copy / ("zarr.json" if (copy / "zarr.json").is_file() else ".zattrs")
    doc = json.loads(doc_path.read_text())
    attrs = doc["attributes"] if doc_path.name == "zarr.json" else doc
    attrs["ngff_tiles"]["status"] = "incomplete"
    doc_path.write_text(json.dumps(doc))
    report = verify_store(copy)
    assert len(report.problems) == 1
    assert "incomplete" in report.problems[0]
    assert "--resume" in report.problems[0]


def test_extra_files_warn_but_do_not_fail(copy: Path) -> None:
    (copy / "0" / "notes.txt").write_text("hello")
    report = verify_store(copy)
    assert report.ok
    assert any("notes.txt" in w for w in report.warnings if "unexpected file" in w)


def test_not_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = verify_store(tmp_path / "nothing")
    assert not report.ok
    assert "no Zarr group" in report.problems[0]
    assert main(["verify", str(tmp_path / "nothing")]) == 1
    assert "no Zarr group" in capsys.readouterr().err


def test_all_zero_tiles_leave_no_chunk_and_only_a_warning(tmp_path: Path) -> None:
    """tensorstore does not store chunks that are all fill value: not an error when the level
    above is all fill there too."""
    gt = truth()
    gt[:, :128, :128] = 0  # shard (0, 0) of level 0 fuses to zeros
    out = tmp_path / "zeros.ome.zarr"
    convert(grid_tiles(gt, (2, 3), 160, 130), out, writer=WriterOptions(**SMALL), execution=QUIET)
    assert not (out / "0" / "c" / "0" / "0" / "0" / "0" / "0").exists()
    report = verify_store(out)
    assert report.ok, report.problems
    assert report.chunks_missing == 1
    assert len(report.warnings) == 1
    assert "0: shard c/0/0/0/0/0" in report.warnings[0]


def test_plate_verifies_and_names_the_well(tmp_path: Path) -> None:
    plate = write_plate(PlateSpec(wells=["B3", "C5"], channels=("DAPI", "GFP")), tmp_path / "tiles")
    out = tmp_path / "plate.ome.zarr"
    res = convert(
        plate.inputs, out, plate=PlateOptions(geometry=96), writer=WriterOptions(**SMALL), execution=QUIET
    )
    report = verify_store(out)
    assert report.ok, report.problems
    assert report.images == len(res.images) == 2
    assert report.chunks_expected == report.chunks_checked > 0
    image = res.images[-1]  # e.g. "B/3/0"
    victim = level_files(out / image, "0")[0]
    victim.unlink()
    report = verify_store(out)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{image}/0: shard c/")
    assert str(victim) in report.problems[0]


def test_convert_verify_flag_and_cli_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ngff_tiles.testing.synthetic import SyntheticSpec, write_dataset

    tiles = tmp_path / "tiles"
    write_dataset(SyntheticSpec(grid=(2, 2), tile_shape=(1, 128, 128), overlap=0.2), tiles)
    out = tmp_path / "o.ome.zarr"
    args = ["convert", str(tiles), "-o", str(out), "--chunks", "64,64", "--shards", "128,128", "-q"]
    assert main([*args, "--verify"]) == 0
    stdout, _ = capsys.readouterr()
    assert stdout.startswith(f"{out}: OK: 1 image(s), ")
    assert main(["verify", "--sample-blocks", "all", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["verify", "--sample-blocks", "some", str(out)])
    assert "'all'" in capsys.readouterr().err
    corrupt_middle(level_files(out, "0")[0], n=64)
    assert main(["verify", "-q", str(out)]) == 1
    _, stderr = capsys.readouterr()
    assert all(line.startswith("error: ") for line in stderr.strip().splitlines()[:-1])
    assert " problem(s): 1 image(s), " in stderr.strip().splitlines()[-1]
