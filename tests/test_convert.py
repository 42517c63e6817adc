"""End to end through independent readers (zarr, ome-zarr-py, ome-zarr-models), schemas and safety."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import zarr
from conftest import grid_tiles

from ngff_tiles.errors import OutputExistsError, SourceError
from ngff_tiles.options import ExecutionOptions, PyramidOptions, WriterOptions
from ngff_tiles.pipeline import convert
from ngff_tiles.tiles import FrameSource, Region, Tile

ROOT = Path(__file__).resolve().parents[1]
QUIET = ExecutionOptions(progress=False)
SMALL = {"chunks": (1, 64, 64), "shards": (1, 128, 128)}


def truth(shape=(1, 300, 420)) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(100, 50000, size=shape, dtype=np.uint16)


def attrs_of(path: Path, version: str) -> dict:
    if version == "0.5":
        return json.loads((path / "zarr.json").read_text())["attributes"]
    return json.loads((path / ".zattrs").read_text())


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_readback_through_independent_readers(tmp_path: Path, version: str) -> None:
    gt = truth()
    tiles = grid_tiles(gt, (2, 3), 160, 130, channels=("DAPI", "GFP"))
    out = tmp_path / "img.ome.zarr"
    res = convert(tiles, out, writer=WriterOptions(ngff_version=version, **SMALL), execution=QUIET)
    assert res.level_shapes[0] == (1, 2, 1, 290, 420)
    expect = np.stack([gt[:, :290, :420], gt[:, :290, :420] + 1])  # exact tiles: blending reproduces them

    group = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(group["0"][0], expect)

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = next(iter(Reader(parse_url(str(out)))()))
    np.testing.assert_array_equal(np.asarray(node.data[0][0]), expect)
    assert node.metadata["channel_names"] == ["DAPI", "GFP"]
    assert len(node.data) == len(res.level_shapes)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if version == "0.5":
            from ome_zarr_models.v05.image import Image as Image05

            Image05.from_zarr(group)
        else:
            from ome_zarr_models.v04.image import Image as Image04

            Image04.from_zarr(group)

    attrs = attrs_of(out, version)
    ms = (attrs["ome"] if version == "0.5" else attrs)["multiscales"][0]
    t0 = ms["datasets"][0]["coordinateTransformations"]
    assert t0[0] == {"type": "scale", "scale": [1.0, 1.0, 1.0, 0.5, 0.5]}
    assert t0[1] == {"type": "translation", "translation": [0.0, 0.0, 0.0, 100.0, -20.0]}
    t1 = ms["datasets"][1]["coordinateTransformations"]
    assert t1[1]["translation"][3:] == [100.25, -19.75]  # pixel-centre shift of a 2x mean


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_output_passes_official_schemas_and_our_validator(tmp_path: Path, version: str) -> None:
    from ngff_tiles.metadata.validate import validate_attributes, validate_store

    out = tmp_path / "img.ome.zarr"
    convert(
        grid_tiles(truth(), (2, 2), 160, 130),
        out,
        writer=WriterOptions(ngff_version=version, **SMALL),
        execution=QUIET,
    )
    for strict in (False, True):
        problems = validate_attributes(attrs_of(out, version), "image", version, strict=strict)
        assert [p for p in problems if p.severity == "error"] == []
        assert [p for p in validate_store(out, strict=strict) if p.severity == "error"] == []


def test_provenance_record_matches_its_schema(tmp_path: Path) -> None:
    schema = json.loads((ROOT / "schemas" / "provenance.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for kind, ok in (("valid", True), ("invalid", False)):
        for example in sorted((ROOT / "schemas" / "examples" / "provenance" / kind).glob("*.json")):
            assert validator.is_valid(json.loads(example.read_text())) is ok, example.name
    out = tmp_path / "img.ome.zarr"
    tiles = grid_tiles(truth(), (2, 2), 160, 130)
    convert(tiles, out, writer=WriterOptions(**SMALL), execution=QUIET)
    record = attrs_of(out, "0.5")["ngff_tiles"]
    validator.validate(record)
    assert record["status"] == "complete"
    assert [t["offset_px"] for t in record["tiles"]] == [[0, 0, 0], [0, 0, 130], [0, 130, 0], [0, 130, 130]]


def test_existing_output_is_refused_and_foreign_folders_never_deleted(tmp_path: Path) -> None:
    tiles = grid_tiles(truth(), (1, 2), 160, 130)
    out = tmp_path / "img.ome.zarr"
    convert(tiles, out, writer=WriterOptions(**SMALL), execution=QUIET)
    before = (out / "zarr.json").read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        convert(tiles, out, writer=WriterOptions(**SMALL), execution=QUIET)
    assert (out / "zarr.json").read_bytes() == before
    convert(tiles, out, writer=WriterOptions(overwrite=True, **SMALL), execution=QUIET)  # ours: replaced

    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("do not delete")
    with pytest.raises(OutputExistsError, match="not written by ngff-tiles"):
        convert(tiles, foreign, writer=WriterOptions(overwrite=True, **SMALL), execution=QUIET)
    assert (foreign / "thesis.txt").read_text() == "do not delete"


class _Exploding(FrameSource):
    @property
    def path(self) -> str:
        return "/data/broken.tif"

    def _read(self, region: Region) -> np.ndarray:
        raise SourceError("/data/broken.tif: truncated at offset 1234")


def test_failure_midway_leaves_store_marked_incomplete(tmp_path: Path) -> None:
    tiles = grid_tiles(truth(), (1, 2), 160, 130)
    bad = Tile(
        tile_id=99,
        source=_Exploding(),
        shape=(1, 160, 160),
        dtype=np.uint16,
        position_um=(0, 100, 40),
        pixel_size_um=(1, 0.5, 0.5),
    )
    out = tmp_path / "img.ome.zarr"
    with pytest.raises(SourceError, match=r"broken\.tif"):
        convert([*tiles, bad], out, writer=WriterOptions(**SMALL), execution=QUIET)
    attrs = attrs_of(out, "0.5")
    assert attrs["ngff_tiles"]["status"] == "incomplete"
    assert "ome" not in attrs  # no multiscales: viewers and validators see an incomplete store


def test_every_task_feeds_the_final_key(tmp_path: Path) -> None:
    """A task no one depends on would silently never run: the graph must be one connected tree."""
    import dataclasses

    from dask.core import get_dependencies

    from ngff_tiles.fusion.kernel import make_corrections
    from ngff_tiles.layout.place import place_tiles
    from ngff_tiles.options import FusionOptions
    from ngff_tiles.pipeline import plan
    from ngff_tiles.writers.ome_zarr import create_level_arrays

    base = grid_tiles(truth(), (2, 2), 160, 130, channels=("a", "b"))
    tiles = base + [dataclasses.replace(t, tile_id=t.tile_id + 100, time_index=1) for t in base]
    lay = place_tiles(tiles)
    opts = WriterOptions(**SMALL)
    out = tmp_path / "g.ome.zarr"
    out.mkdir()
    arrays = create_level_arrays(
        out, [(1, 290, 420), (1, 145, 210), (1, 73, 105)], (2, 2), lay.dtype, opts, 1
    )
    p = plan(lay, arrays, make_corrections(FusionOptions(), lay.channels, [(160, 160)]), downsample_z=False)
    seen, todo = set(), [p.windows_key]
    while todo:
        key = todo.pop()
        if key not in seen:
            seen.add(key)
            todo.extend(get_dependencies(p.graph, key))
    assert seen == set(p.graph)
    assert sum(k.startswith("L0-t1") for k in p.graph) == sum(k.startswith("L0-t0") for k in p.graph) > 0


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_blocks_without_tiles_are_not_written(tmp_path: Path, version: str) -> None:
    """An L-shaped mosaic: the empty corner block gets no file; readers see the fill value there."""
    gt = truth((1, 256, 256))
    tiles = [t for t in grid_tiles(gt, (2, 2), 128, 128) if t.name != "tile_1_1"]
    out = tmp_path / "l.ome.zarr"
    convert(
        tiles,
        out,
        writer=WriterOptions(ngff_version=version, chunks=(1, 64, 64), shards=(1, 128, 128)),
        execution=QUIET,
    )
    level0 = out / "0"
    sep = "c/" if version == "0.5" else ""
    for by, bx, exists in ((0, 0, True), (0, 1, True), (1, 0, True), (1, 1, False)):
        if version == "0.5":
            key = level0 / f"{sep}0/0/0/{by}/{bx}"
            assert key.exists() is exists, key
        else:  # v2: one file per chunk; the (1,1) block's four 64² chunks are absent
            keys = [level0 / f"0/0/0/{2 * by + i}/{2 * bx + j}" for i in (0, 1) for j in (0, 1)]
            assert all(k.exists() is exists for k in keys), keys
    data = zarr.open_group(str(out), mode="r")["0"][0, 0, 0]
    assert np.all(data[128:, 128:] == 0)
    np.testing.assert_array_equal(data[:128, :], gt[0, :128, :])


def test_single_level_output_does_not_gather_the_mosaic(tmp_path: Path) -> None:
    """With one level the last-level tasks return a bounded sample for the windows, not the block."""
    from ngff_tiles.pipeline import WINDOW_SAMPLE, _sample

    block = np.arange(3 * 1000 * 999, dtype=np.uint16).reshape(3, 1000, 999)
    s = _sample(block)
    assert s.size <= WINDOW_SAMPLE
    assert not np.shares_memory(s, block)
    out = tmp_path / "one.ome.zarr"
    gt = truth()
    res = convert(
        grid_tiles(gt, (2, 3), 160, 130),
        out,
        pyramid=PyramidOptions(max_levels=1),
        writer=WriterOptions(**SMALL),
        execution=QUIET,
    )
    assert len(res.level_shapes) == 1
    np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")["0"][0, 0], gt[:, :290, :420])
    window = attrs_of(out, "0.5")["ome"]["omero"]["channels"][0]["window"]
    assert 100 <= window["start"] < window["end"] <= 50000
