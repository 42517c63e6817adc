"""Label tiles: per-tile segmentations fused into one NGFF label image with global object ids.

The specimen (``ngff_tiles.testing.labels``): ~2000 disjoint objects, a 4 x 4 grid of overlapping
tiles, every tile's ids renumbered randomly from 1 and its object boundaries slightly perturbed,
as independent per-tile segmentations are. The fused label image is compared with the ground
truth, read back with zarr-python, ome-zarr-py and napari-ome-zarr, and validated with the
official strict label schema.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from ngff_tiles import ExecutionOptions, WriterOptions, convert
from ngff_tiles.cli import main
from ngff_tiles.errors import LayoutError, MetadataError, NgffTilesError
from ngff_tiles.fusion.labels import LabelResult, LabelTile, TileMap, downsample_mode, match_pair
from ngff_tiles.metadata.validate import validate_attributes, validate_store
from ngff_tiles.options import LabelOptions, PyramidOptions
from ngff_tiles.testing.labels import (
    LabelDataset,
    LabelSpec,
    make_truth,
    match_objects,
    tile_offsets,
    write_label_dataset,
)
from ngff_tiles.tiles import ArraySource, Region, Tile, region_shape

WRITER = {"chunks": (1, 128, 128), "shards": (1, 256, 256)}
ZSPEC = LabelSpec(
    tile_shape=(12, 160, 160), overlap_px=40, n_objects=500, radius_px=(4.0, 8.0), radius_z_px=(2.0, 4.0)
)


def _convert(ds: LabelDataset, out: Path, version: str = "0.5", **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    result = convert(
        ds.table,
        out,
        writer=WriterOptions(ngff_version=version, **WRITER),  # type: ignore[arg-type]
        execution=ExecutionOptions(progress=False, max_workers=2),
        **kwargs,
    )
    return result, time.perf_counter() - t0


def _convert_tiles(images: list[Tile], labels: list[Tile], out: Path, chunk: int) -> LabelResult:
    """Convert in-memory tiles with their label tiles (chunks of ``chunk``², shards twice that)."""
    result = convert(
        images,
        out,
        labels=labels,
        writer=WriterOptions(chunks=(1, chunk, chunk), shards=(1, 2 * chunk, 2 * chunk)),
        execution=ExecutionOptions(progress=False, max_workers=2),
    )
    assert result.labels is not None
    return result.labels


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("labels2d")
    ds = write_label_dataset(LabelSpec(), base / "tiles")
    result, seconds = _convert(ds, base / "out.ome.zarr")
    result04, _ = _convert(ds, base / "out04.ome.zarr", "0.4")
    return {"ds": ds, "out": base / "out.ome.zarr", "out04": base / "out04.ome.zarr", "result": result,
            "seconds": seconds, "result04": result04}  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("labels3d")
    ds = write_label_dataset(ZSPEC, base / "tiles")
    result, seconds = _convert(ds, base / "out.ome.zarr")
    return {"ds": ds, "out": base / "out.ome.zarr", "result": result, "seconds": seconds}


def _fused(out: Path, level: str = "0") -> np.ndarray:
    return np.asarray(zarr.open_group(out, mode="r")[f"labels/segmentation/{level}"][0, 0])


def _attrs(path: Path) -> dict[str, Any]:
    doc = json.loads((path / "zarr.json").read_text()) if (path / "zarr.json").exists() else None
    if doc is not None:
        return dict(doc["attributes"])
    return dict(json.loads((path / ".zattrs").read_text()))


def _check_against_truth(ds: LabelDataset, out: Path, result: Any, seconds: float, what: str) -> None:
    fused = _fused(out)
    assert fused.shape == ds.truth.shape
    iou, fused_id, n_fused = match_objects(ds.truth, fused)
    n_truth = int(ds.truth.max())
    print(
        f"\n{what}: {n_truth} objects in the truth ({ds.n_in_overlaps} wholly inside overlaps, "
        f"{ds.n_in_four} inside 4-tile corners, {ds.n_cut} cut by tile borders), "
        f"{result.labels.n_tile_objects} in the tiles -> {n_fused} fused; IoU min {iou.min():.4f} "
        f"median {np.median(iou):.4f}; convert {seconds:.2f} s (2 shared cores, noisy)"
    )
    assert ds.n_in_overlaps > 50  # both hard cases occur
    assert ds.n_cut > 50
    assert (
        result.labels.n_tile_objects > n_truth + ds.n_in_overlaps
    )  # seen twice or more: deduplication needed
    assert n_fused == n_truth == result.labels.n_objects
    assert np.all(iou >= 0.95)
    assert np.unique(fused_id).size == n_truth  # one-to-one
    # ids are consecutive from 1 and every one has pixels
    assert np.array_equal(np.unique(fused), np.arange(n_truth + 1))


def test_2d_objects_match_the_ground_truth(flat: dict[str, Any]) -> None:
    _check_against_truth(flat["ds"], flat["out"], flat["result"], flat["seconds"], "2-D 4x4 tiles")
    assert flat["ds"].truth.max() == 2000


def test_zstack_objects_match_the_ground_truth(stack: dict[str, Any]) -> None:
    ds = stack["ds"]
    assert ds.truth.shape[0] == 12
    # 3-D objects: several planes each
    zs = [np.unique(np.nonzero(ds.truth == i)[0]).size for i in (1, 2, 3)]
    assert min(zs) >= 3
    _check_against_truth(ds, stack["out"], stack["result"], stack["seconds"], "z-stack 4x4 tiles")


def _closest_centre_expected(ds: LabelDataset, out: Path, spec: LabelSpec) -> np.ndarray:
    """The fused image recomputed independently: per pixel, the closest tile centre's id, mapped."""
    group = zarr.open_group(out, mode="r")
    table = np.asarray(group["labels/segmentation/id_map"][:])
    z, y, x = ds.truth.shape
    offsets = tile_offsets(spec)
    tz, ty, tx = spec.tile_shape
    pz, py, px = spec.pixel_size_um
    best = np.full((z, y, x), np.inf)
    expected = np.zeros((z, y, x), dtype=np.uint64)
    for i, (z0, y0, x0) in enumerate(offsets):
        local = tifffile.imread(ds.table.parent / f"labels_{i}.tif").reshape(spec.tile_shape)
        rows = table[table[:, 0] == i]
        lut = dict(zip(rows[:, 1].tolist(), rows[:, 2].tolist(), strict=True))
        lut[0] = 0
        mapped = np.vectorize(lut.__getitem__, otypes=[np.uint64])(local)
        zz, yy, xx = np.meshgrid(
            (np.arange(tz) + 0.5 - tz / 2) * pz,
            (np.arange(ty) + 0.5 - ty / 2) * py,
            (np.arange(tx) + 0.5 - tx / 2) * px,
            indexing="ij",
        )
        d = zz**2 + yy**2 + xx**2
        sl = (slice(z0, z0 + tz), slice(y0, y0 + ty), slice(x0, x0 + tx))
        closer = d < best[sl]
        best[sl][closer] = d[closer]
        expected[sl][closer] = mapped[closer]
    return expected


def test_pixels_come_from_the_closest_tile_centre_through_the_id_table(flat: dict[str, Any]) -> None:
    ds = flat["ds"]
    expected = _closest_centre_expected(ds, flat["out"], LabelSpec())
    np.testing.assert_array_equal(_fused(flat["out"]), expected)


def test_id_table_and_properties(flat: dict[str, Any]) -> None:
    out = flat["out"]
    group = zarr.open_group(out, mode="r")
    table = np.asarray(group["labels/segmentation/id_map"][:])
    meta = group["labels/segmentation/id_map"].attrs.asdict()["ngff_tiles"]
    assert meta["columns"] == ["tile_id", "local_id", "global_id"]
    assert table.shape == (flat["result"].labels.n_tile_objects, 3)
    # every tile's local ids are 1..n (as the generator numbered them) and all are listed
    for i in range(16):
        local = tifffile.imread(flat["ds"].table.parent / f"labels_{i}.tif")
        ids = np.unique(local)
        assert np.array_equal(np.sort(table[table[:, 0] == i, 1]), ids[ids != 0])
    label = _attrs(out / "labels/segmentation")["ome"]["image-label"]
    props = {p["label-value"]: p for p in label["properties"]}
    n = flat["result"].labels.n_objects
    assert sorted(props) == list(range(1, n + 1))
    fused = _fused(out)
    areas = np.bincount(fused.ravel(), minlength=n + 1)
    for g in (1, n // 2, n):
        assert props[g]["area_px"] == areas[g]
        tiles = sorted(set(table[table[:, 2] == g, 0].tolist()))
        assert props[g]["source_tiles"] == ",".join(map(str, tiles))
    # objects seen in four tiles exist (corner overlaps), and objects seen in one
    counts = {len(p["source_tiles"].split(",")) for p in props.values()}
    assert {1, 2, 4} <= counts
    colours = {c["label-value"]: c["rgba"] for c in label["colors"]}
    assert sorted(colours) == list(range(1, n + 1))
    assert len({tuple(c) for c in colours.values()}) > 100
    assert label["source"] == {"image": "../../"}


@pytest.mark.parametrize("which", ["out", "out04"])
def test_strict_label_schema_and_store_validation(flat: dict[str, Any], which: str) -> None:
    out = flat[which]
    version = "0.5" if which == "out" else "0.4"
    assert [str(p) for p in validate_store(out, strict=True)] == []
    attrs = _attrs(out / "labels/segmentation")
    assert validate_attributes(attrs, "label", version, strict=True) == []
    # the check bites: strict requires colours, plain does not
    md = attrs["ome"] if version == "0.5" else attrs
    del md["image-label"]["colors"]
    assert validate_attributes(attrs, "label", version) == []
    problems = validate_attributes(attrs, "label", version, strict=True)
    assert any("colors" in p.message and "strict_label" in p.message for p in problems)


def test_ome_zarr_models_reads_image_and_labels(flat: dict[str, Any]) -> None:
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.labels import Labels

    group = zarr.open_group(flat["out"], mode="r")
    Image.from_zarr(group)
    labels = Labels.from_zarr(group["labels"])
    assert labels.attributes.ome.labels == ["segmentation"]


def test_label_pyramid_has_the_image_levels_and_is_the_mode(flat: dict[str, Any]) -> None:
    out = flat["out"]
    image = _attrs(out)["ome"]["multiscales"][0]
    label_ms = _attrs(out / "labels/segmentation")["ome"]["multiscales"][0]
    assert len(label_ms["datasets"]) == len(image["datasets"]) == 5
    assert [d["coordinateTransformations"] for d in label_ms["datasets"]] == [
        d["coordinateTransformations"] for d in image["datasets"]
    ]
    assert label_ms["type"] == "mode"
    group = zarr.open_group(out, mode="r")
    below = _fused(out)
    for k in range(1, 5):
        level = np.asarray(group[f"labels/segmentation/{k}"][0, 0])
        assert level.shape == group[str(k)].shape[2:]
        np.testing.assert_array_equal(level, downsample_mode(below, (1, 2, 2)))
        assert set(np.unique(level)) <= set(np.unique(below))  # ids are never averaged
        below = level


def test_downsample_mode() -> None:
    block = np.array([[[1, 1, 2, 0, 7], [3, 1, 0, 0, 7], [5, 6, 9, 9, 0]]], dtype=np.uint32)
    out = downsample_mode(block, (1, 2, 2))
    # cells: [1 1 / 3 1] -> 1; [2 0 / 0 0] -> 0; [7 / 7] -> 7 (odd edge);
    # [5 6] -> 5 (tie: first); [9 9] -> 9; [0] -> 0
    np.testing.assert_array_equal(out, [[[1, 0, 7], [5, 9, 0]]])
    # a tie between background and an object goes to the object
    np.testing.assert_array_equal(downsample_mode(np.array([[[0, 4], [4, 0]]]), (1, 2, 2)), [[[4]]])
    cube = np.zeros((3, 4, 4), dtype=np.uint16)
    cube[:2, :2, :2] = 8
    cube[0, 0, 0] = 2
    np.testing.assert_array_equal(downsample_mode(cube, (2, 2, 2))[0, 0, 0], 8)
    assert downsample_mode(cube, (2, 2, 2)).shape == (2, 2, 2)


def test_z_downsampling_follows_the_image(tmp_path: Path) -> None:
    spec = LabelSpec(
        grid=(2, 2), tile_shape=(8, 96, 96), overlap_px=24, n_objects=40, radius_px=(4.0, 7.0),
        radius_z_px=(2.0, 3.0),
    )  # fmt: skip
    ds = write_label_dataset(spec, tmp_path / "tiles")
    result, _ = _convert(ds, tmp_path / "out.ome.zarr", pyramid=PyramidOptions(downsample_z=True))
    group = zarr.open_group(tmp_path / "out.ome.zarr", mode="r")
    assert result.labels.n_objects == 40
    level1 = np.asarray(group["labels/segmentation/1"][0, 0])
    assert level1.shape == group["1"].shape[2:] == (4, 84, 84)
    np.testing.assert_array_equal(level1, downsample_mode(_fused(tmp_path / "out.ome.zarr"), (2, 2, 2)))


def test_ome_zarr_reader_finds_the_labels(flat: dict[str, Any], stack: dict[str, Any]) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    for out in (flat["out"], stack["out"], flat["out04"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # ome-zarr-py notes on versions it reads
            nodes = list(Reader(parse_url(str(out)))())
        labels = [n for n in nodes if n.load(Label)]
        assert len(labels) == 1, [str(n) for n in nodes]
        node = labels[0]
        assert len(node.data) == 5 if out != stack["out"] else len(node.data) >= 2
        np.testing.assert_array_equal(np.asarray(node.data[0][0, 0]), _fused(out))
        colours = node.metadata["color"]
        assert len(colours) >= 500


def _split_table(table: Path, shift_first_x_um: float = 0.0) -> tuple[Path, Path]:
    """Write the table as an image-only table and a label-only table (``path`` = the label file)."""
    lines = table.read_text().splitlines()
    header = lines[0].split(",")
    p, lab, x = header.index("path"), header.index("labels"), header.index("x_um")
    images, labels = [], []
    for n, line in enumerate(lines):
        cells = line.split(",")
        if n == 1 and shift_first_x_um:
            cells[x] = str(float(cells[x]) + shift_first_x_um)
        images.append(",".join(c for i, c in enumerate(line.split(",")) if i != lab))
        label_cells = [("path" if n == 0 else cells[lab])] + [
            c for i, c in enumerate(cells) if i not in (p, lab)
        ]
        labels.append(",".join(label_cells))
    out = table.parent / "images_only.csv", table.parent / f"labels_only{shift_first_x_um:g}.csv"
    out[0].write_text("\n".join(images) + "\n")
    out[1].write_text("\n".join(labels) + "\n")
    return out


def test_cli_with_a_separate_label_table(flat: dict[str, Any], tmp_path: Path) -> None:
    images, labels = _split_table(flat["ds"].table)
    out = tmp_path / "cli.ome.zarr"
    argv = ["convert", str(images), "-o", str(out), "-q", "--chunks", "128,128"]
    argv += ["--shards", "256,256", "--labels", str(labels), "--label-name", "cells"]
    argv += ["--label-threshold", "0.6", "--validate"]
    assert main(argv) == 0
    fused = np.asarray(zarr.open_group(out, mode="r")["labels/cells/0"][0, 0])
    np.testing.assert_array_equal(fused, _fused(flat["out"]))
    assert _attrs(out / "labels")["ome"]["labels"] == ["cells"]


def test_cli_errors_are_one_line(
    flat: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = flat["ds"].table
    for extra, needle in (
        (["--label-name", "../x"], "label name '../x'"),
        (["--label-threshold", "0"], "threshold 0.0"),
    ):
        assert main(["convert", str(table), "-o", str(tmp_path / "bad.ome.zarr"), "-q", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert needle in err
        assert not (tmp_path / "bad.ome.zarr").exists()


def test_bad_label_tiles_are_refused(tmp_path: Path) -> None:
    spec = LabelSpec(grid=(2, 2), tile_shape=(1, 96, 96), overlap_px=24, n_objects=30, radius_px=(4.0, 7.0))
    ds = write_label_dataset(spec, tmp_path / "tiles")
    # a label tile at a position no image tile has
    images, labels_only = _split_table(ds.table, shift_first_x_um=7.0)
    with pytest.raises(MetadataError, match=r"labels_0\.tif: label tile at .* matches no image tile"):
        convert(
            images, tmp_path / "o1.ome.zarr", labels=labels_only, execution=ExecutionOptions(progress=False)
        )
    assert not (tmp_path / "o1.ome.zarr").exists()
    # float labels
    tifffile.imwrite(tmp_path / "tiles" / "labels_1.tif", np.zeros((96, 96), np.float32))
    with pytest.raises(MetadataError, match=r"labels_1\.tif: label tiles must hold integer ids, found"):
        convert(ds.table, tmp_path / "o2.ome.zarr", execution=ExecutionOptions(progress=False))
    # a label tile of another shape
    tifffile.imwrite(tmp_path / "tiles" / "labels_1.tif", np.zeros((90, 96), np.uint16))
    with pytest.raises(MetadataError, match=r"labels_1\.tif: label tile shape \(1, 90, 96\) differs"):
        convert(ds.table, tmp_path / "o3.ome.zarr", execution=ExecutionOptions(progress=False))
    # a missing label file
    (tmp_path / "tiles" / "labels_1.tif").unlink()
    with pytest.raises(NgffTilesError, match=r"tiles\.csv: row 2 .*label file 'labels_1\.tif' not found"):
        convert(ds.table, tmp_path / "o4.ome.zarr", execution=ExecutionOptions(progress=False))
    with pytest.raises(LayoutError, match="label name"):
        convert(ds.table, tmp_path / "o5.ome.zarr", label_options=LabelOptions(name=""))


def test_unique_items_is_checked_in_linear_time() -> None:
    """The label schema's ``uniqueItems`` (colours, properties) holds, at the size of real label images."""
    n = 20_000
    colours = [{"label-value": g, "rgba": [g % 256, g // 256 % 256, 7, 255]} for g in range(1, n + 1)]
    attrs = {"ome": {"version": "0.5", "image-label": {"colors": colours}}}
    t0 = time.perf_counter()
    assert validate_attributes(attrs, "label", "0.5", strict=True) == []
    assert time.perf_counter() - t0 < 60  # 2 s here; comparing pairs took 7 s for 2000, 10 min for this
    colours.append(dict(colours[5]))
    assert any("non-unique" in p.message for p in validate_attributes(attrs, "label", "0.5"))
    # JSON equality: 1.0 is 1, true is not 1
    for same, a, b in ((True, 1, 1.0), (False, True, 1)):
        pair = [{"label-value": a}, {"label-value": b}]
        attrs = {"ome": {"version": "0.5", "image-label": {"colors": pair}}}
        found = [p for p in validate_attributes(attrs, "label", "0.5") if "non-unique" in p.message]
        assert bool(found) is same


class _Recording(ArraySource):
    """An in-memory tile that records the shape of every region read from it."""

    def __init__(self, array: np.ndarray, name: str, log: list[tuple[str, tuple[int, int, int]]]) -> None:
        super().__init__(array, name)
        self.log = log

    def _read(self, region: Region) -> np.ndarray:
        self.log.append((self.path, region_shape(region)))
        return super()._read(region)


def _recorded_tiles(
    spec: LabelSpec, log: list[tuple[str, tuple[int, int, int]]]
) -> tuple[list[Tile], list[Tile]]:
    truth = make_truth(spec)
    images, labels = [], []
    tz, ty, tx = spec.tile_shape
    for i, (z0, y0, x0) in enumerate(tile_offsets(spec)):
        cut = truth[z0 : z0 + tz, y0 : y0 + ty, x0 : x0 + tx]
        common = {"shape": cut.shape, "position_um": (z0, y0, x0), "pixel_size_um": (1.0, 1.0, 1.0)}
        images.append(Tile(tile_id=i, source=ArraySource(cut.astype(np.uint16)), dtype=np.uint16, **common))
        labels.append(Tile(tile_id=i, source=_Recording(cut, f"L{i}", log), dtype=cut.dtype, **common))
    return images, labels


def test_matching_reads_only_the_overlap() -> None:
    log: list[tuple[str, tuple[int, int, int]]] = []
    spec = LabelSpec(grid=(1, 2), tile_shape=(1, 100, 120), overlap_px=30, n_objects=20, radius_px=(3.0, 6.0))
    _, (a, b) = _recorded_tiles(spec, log)
    la = LabelTile(a, (0, 0, 0), 0, 0, 0)
    lb = LabelTile(b, (0, 0, 90), 0, 1, 1)
    matches = match_pair(la, lb, "iou", 0.5)
    assert log == [("L0", (1, 100, 30)), ("L1", (1, 100, 30))]
    assert matches.ids_a.size > 0  # noise-free tiles: every object in the overlap matches its twin


def test_label_fusion_memory_is_bounded_by_tiles_and_blocks(tmp_path: Path) -> None:
    """No label read is bigger than a tile; each tile is read whole once (the id scan), the rest in
    overlaps and blocks; the pixels read add up to a small multiple of the tiles' pixels."""
    log: list[tuple[str, tuple[int, int, int]]] = []
    spec = LabelSpec(
        grid=(3, 3), tile_shape=(1, 200, 200), overlap_px=40, n_objects=150, radius_px=(4.0, 8.0)
    )
    images, labels = _recorded_tiles(spec, log)
    assert _convert_tiles(images, labels, tmp_path / "out.ome.zarr", 64).n_objects == 150
    tile_px = 200 * 200
    sizes = [int(np.prod(shape)) for _, shape in log]
    assert max(sizes) <= tile_px
    whole = [name for name, shape in log if shape == (1, 200, 200)]
    assert sorted(whole) == sorted(f"L{i}" for i in range(9))  # the scan, once per tile
    others = [s for (name, shape), s in zip(log, sizes, strict=True) if shape != (1, 200, 200)]
    assert max(others) <= 128 * 128  # overlaps and blocks
    assert sum(sizes) <= 3 * 9 * tile_px


def test_dry_run_names_the_label_image(
    flat: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dry.ome.zarr"
    assert (
        main(["convert", str(flat["ds"].table), "-o", str(out), "--dry-run", "--label-name", "nuclei"]) == 0
    )
    assert "labels/nuclei: 16 label tile(s), uint32 ids" in capsys.readouterr().out
    assert not out.exists()


def test_an_object_across_three_tiles_is_one_object(tmp_path: Path) -> None:
    """Tiles 0 and 2 do not overlap: only the chain 0-1-2 (union-find) makes the bar one object."""
    truth = np.zeros((1, 40, 260), dtype=np.uint16)
    truth[0, 10:20, 5:255] = 1  # a bar through all three tiles
    truth[0, 30:35, 95:105] = 2  # a blob inside the overlap of tiles 0 and 1
    images, labels = [], []
    for i, x0 in enumerate((0, 80, 160)):
        cut = truth[:, :, x0 : x0 + 100].copy()
        cut[cut == 1] = 7 + i  # a different local id in every tile
        cut[cut == 2] = 3
        common = {"shape": cut.shape, "position_um": (0.0, 0.0, float(x0)), "pixel_size_um": (1.0, 1.0, 1.0)}
        images.append(Tile(tile_id=i, source=ArraySource(cut.astype(np.uint16)), dtype=np.uint16, **common))
        labels.append(Tile(tile_id=i, source=ArraySource(cut), dtype=cut.dtype, **common))
    assert _convert_tiles(images, labels, tmp_path / "bar.ome.zarr", 32).n_objects == 2
    fused = _fused(tmp_path / "bar.ome.zarr")
    np.testing.assert_array_equal(fused > 0, truth > 0)
    # numbered in tile order, then by local id: the blob (3 in tile 0) is 1, the bar (7) is 2
    assert np.unique(fused[truth == 2]).tolist() == [1]
    assert np.unique(fused[truth == 1]).tolist() == [2]


def test_match_measures_iou_and_overlap() -> None:
    """Tile A sees one object where tile B's segmentation split it in two (over-segmentation)."""
    a = np.zeros((1, 20, 40), dtype=np.uint16)
    b = np.zeros((1, 20, 40), dtype=np.uint16)
    a[0, 5:15, 5:35] = 4
    b[0, 5:15, 5:20] = 1
    b[0, 5:15, 20:35] = 2
    common = {"shape": a.shape, "position_um": (0.0, 0.0, 0.0), "pixel_size_um": (1.0, 1.0, 1.0)}
    ta = LabelTile(Tile(tile_id=0, source=ArraySource(a), dtype=a.dtype, **common), (0, 0, 0), 0, 0, 0)
    tb = LabelTile(Tile(tile_id=1, source=ArraySource(b), dtype=b.dtype, **common), (0, 0, 0), 0, 1, 1)
    strict = match_pair(ta, tb, "iou", 0.6)
    assert strict.candidates == 2
    assert strict.ids_a.size == 0  # each half has IoU 150 / 300 = 0.5
    iou = match_pair(ta, tb, "iou", 0.5)
    assert iou.ids_b.tolist() == [1, 2]
    np.testing.assert_allclose(iou.scores, [0.5, 0.5])
    overlap = match_pair(ta, tb, "overlap", 0.9)  # each half lies wholly inside A's object
    assert overlap.ids_a.tolist() == [4, 4]
    assert overlap.ids_b.tolist() == [1, 2]
    np.testing.assert_allclose(overlap.scores, [1.0, 1.0])


def test_verify_reads_the_label_image_back(flat: dict[str, Any], tmp_path: Path) -> None:
    from ngff_tiles.verify import verify_store

    store = tmp_path / "copy.ome.zarr"
    shutil.copytree(flat["out"], store)
    report = verify_store(store, progress=False)
    assert report.ok, report.problems
    assert report.images == 2  # the image and labels/segmentation
    # a label pixel changed at level 1: no longer the 2x mode of level 0
    level1 = zarr.open_array(store / "labels/segmentation/1", mode="r+")
    level1[0, 0, 0, 600, 600] = 123456  # far from the shard removed below
    # and a level-0 label shard lost
    shard = next(p for p in sorted((store / "labels/segmentation/0/c").rglob("*")) if p.is_file())
    shard.unlink()
    problems = verify_store(store, progress=False).problems
    assert any("labels/segmentation/1" in p and "2x mode of level 0" in p for p in problems), problems
    assert any("labels/segmentation/0" in p and "missing" in p for p in problems), problems


def test_tile_map_with_large_and_unknown_ids() -> None:
    local = np.array([3, 1 << 40, (1 << 63) + 5], dtype=np.uint64)
    tm = TileMap(local, np.array([7, 8, 9], dtype=np.uint32))
    data = np.array([[[0, 3, 1 << 40, (1 << 63) + 5, 4, (1 << 64) - 1]]], dtype=np.uint64)
    np.testing.assert_array_equal(tm.apply(data), [[[0, 7, 8, 9, 0, 0]]])  # searchsorted path
    small = TileMap(np.array([2, 5], dtype=np.uint16), np.array([1, 2], dtype=np.uint32))
    np.testing.assert_array_equal(small.apply(np.array([0, 2, 3, 5, 60000], np.uint16)), [0, 1, 0, 2, 0])


def test_time_points_are_fused_separately(tmp_path: Path) -> None:
    """Label tiles of two time points: matched within each time point, ids unique over both."""
    images, labels = [], []
    frames = []
    for t in range(2):
        truth = np.zeros((1, 30, 100), dtype=np.uint16)
        truth[0, 5:15, 40:60] = 1  # in the overlap of both tiles, at both time points
        truth[0, 20:25, 5 + 30 * t : 15 + 30 * t] = 2  # moves
        frames.append(truth)
        for i, x0 in enumerate((0, 30)):
            cut = truth[:, :, x0 : x0 + 70]
            common = {"shape": cut.shape, "position_um": (0.0, 0.0, float(x0)), "pixel_size_um": (1.0,) * 3}
            tid = 2 * t + i
            images.append(Tile(tile_id=tid, source=ArraySource(cut), dtype=cut.dtype, time_index=t, **common))
            labels.append(Tile(tile_id=tid, source=ArraySource(cut), dtype=cut.dtype, time_index=t, **common))
    # two objects per time point, not merged across time
    assert _convert_tiles(images, labels, tmp_path / "t.ome.zarr", 32).n_objects == 4
    fused = np.asarray(zarr.open_group(tmp_path / "t.ome.zarr", mode="r")["labels/segmentation/0"][:, 0])
    assert fused.shape == (2, 1, 30, 100)
    ids = [set(np.unique(fused[t])) - {0} for t in range(2)]
    assert len(ids[0]) == len(ids[1]) == 2
    assert not ids[0] & ids[1]
    for t in range(2):
        np.testing.assert_array_equal(fused[t] > 0, frames[t] > 0)


def test_plate_wells_get_their_own_label_images(tmp_path: Path) -> None:
    """A tile table with wells and labels: each well's image gets labels/<name>, ids from 1."""
    spec = LabelSpec(grid=(4, 2), tile_shape=(1, 128, 128), overlap_px=32, n_objects=120, boundary_noise=0.0)
    ds = write_label_dataset(spec, tmp_path / "tiles")
    lines = ds.table.read_text().splitlines()
    rows = [lines[0] + ",well"] + [line + (",A1" if i < 4 else ",A2") for i, line in enumerate(lines[1:])]
    table = tmp_path / "tiles" / "plate.csv"
    table.write_text("\n".join(rows) + "\n")
    result = convert(
        table,
        tmp_path / "plate.ome.zarr",
        writer=WriterOptions(chunks=(1, 64, 64), shards=(1, 128, 128)),
        execution=ExecutionOptions(progress=False, max_workers=2),
    )
    assert result.labels is not None
    assert result.labels.paths == ("A/1/0/labels/segmentation", "A/2/0/labels/segmentation")
    assert [str(p) for p in validate_store(tmp_path / "plate.ome.zarr", strict=True)] == []
    group = zarr.open_group(tmp_path / "plate.ome.zarr", mode="r")
    step = 128 - 32
    for well, y0 in (("A/1/0", 0), ("A/2/0", 2 * step)):
        fused = np.asarray(group[f"{well}/labels/segmentation/0"][0, 0])
        cut = ds.truth[:, y0 : y0 + fused.shape[1], : fused.shape[2]]
        present = np.unique(cut)
        present = present[present != 0]
        renumbered = (np.searchsorted(present, cut).astype(np.uint32) + 1) * (cut != 0)
        iou, fused_id, n_fused = match_objects(renumbered, fused)
        assert iou.size == n_fused == present.size  # objects cut by the well's edge included
        assert np.unique(fused_id).size == present.size
        assert np.all(iou == 1.0)  # noise-free tiles: exact
        assert np.array_equal(np.unique(fused), np.arange(present.size + 1))
        assert len(
            group[f"{well}/labels/segmentation"].attrs.asdict()["ome"]["multiscales"][0]["datasets"]
        ) == (len(group[well].attrs.asdict()["ome"]["multiscales"][0]["datasets"]))


@pytest.mark.distributed
def test_labels_on_a_local_cluster_equal_the_threaded_run(tmp_path: Path) -> None:
    """Every label task pickles: the graph on a worker process writes the same label image."""
    spec = LabelSpec(grid=(2, 3), tile_shape=(1, 128, 128), overlap_px=32, n_objects=80, radius_px=(4.0, 8.0))
    ds = write_label_dataset(spec, tmp_path / "tiles")
    writer = WriterOptions(chunks=(1, 64, 64), shards=(1, 128, 128))
    runs = {}
    for name, execution in (
        ("threads", ExecutionOptions(progress=False, max_workers=2)),
        ("cluster", ExecutionOptions(progress=False, workers=1)),
    ):
        result = convert(ds.table, tmp_path / f"{name}.ome.zarr", writer=writer, execution=execution)
        assert result.labels is not None
        assert result.labels.n_objects == 80
        group = zarr.open_group(tmp_path / f"{name}.ome.zarr", mode="r")
        runs[name] = [np.asarray(group[f"labels/segmentation/{k}"][:]) for k in range(3)]
        runs[name].append(np.asarray(group["labels/segmentation/id_map"][:]))
    for a, b in zip(runs["threads"], runs["cluster"], strict=True):
        np.testing.assert_array_equal(a, b)
