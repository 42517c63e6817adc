"""``validate --viewers``: what napari, Neuroglancer, vizarr and Java viewers will reject.

Our own output must give no viewer warning with default options (0.5 and 0.4). Each rule of
``shared/reference/ngff.md`` section 4 is then shown on a small store made by someone else's
writer: zarr-python for images (metadata edited to show one pitfall at a time), ome-zarr-py's
writer for plates.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from ngff_tiles import ExecutionOptions, WriterOptions, convert
from ngff_tiles.cli import main
from ngff_tiles.metadata.validate import validate_store
from ngff_tiles.metadata.viewers import ViewerNote, check_viewers, describe_store, find_stores
from ngff_tiles.testing.synthetic import SyntheticSpec, write_dataset


def warnings_of(notes: list[ViewerNote]) -> list[ViewerNote]:
    return [n for n in notes if n.severity == "warning"]


def one_warning(notes: list[ViewerNote], viewer: str, text: str) -> ViewerNote:
    found = [n for n in warnings_of(notes) if viewer in n.viewers and text in n.message]
    assert len(found) == 1, f"expected one {viewer} warning with {text!r}, got {[str(n) for n in notes]}"
    return found[0]


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("viewers") / "tiles"
    write_dataset(
        SyntheticSpec(grid=(2, 2), tile_shape=(1, 160, 160), overlap=0.2, channels=("DAPI", "GFP")), d
    )
    return d


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_default_conversion_gives_no_viewer_warning(
    tiles: Path, tmp_path: Path, version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.ome.zarr"
    convert(
        tiles,
        out,
        writer=WriterOptions(ngff_version=version),
        execution=ExecutionOptions(progress=False, max_workers=2),
    )
    notes = check_viewers(out)
    assert warnings_of(notes) == [], [str(n) for n in notes]
    infos = {(n.viewers, n.message.split(":")[0]) for n in notes}
    # the notes that depend on the user's installation, and napari-ome-zarr 0.10's dropped translation
    assert (("Fiji", "BigDataViewer", "MoBIE"), "blosc compression") in infos
    assert (
        ("napari",),
        "napari-ome-zarr 0.10 applies only the scale of datasets[0] and drops its translation",
    ) in infos
    assert ((("Fiji", "MoBIE"), "Zarr v3 (OME-NGFF 0.5)") in infos) == (version == "0.5")
    assert main(["validate", "--viewers", str(out)]) == 0
    captured = capsys.readouterr()
    assert "viewers: 0 warning(s)" in captured.out
    assert "warning:" not in captured.err
    # zstd instead of blosc: no Java note
    out2 = tmp_path / "zstd.ome.zarr"
    convert(
        tiles,
        out2,
        writer=WriterOptions(ngff_version=version, compression="zstd"),
        execution=ExecutionOptions(progress=False, max_workers=2),
    )
    assert not any("blosc" in n.message for n in check_viewers(out2))


# --------------------------------------------------------------------------------------------
# Images written with zarr-python, one pitfall at a time


AXES = [
    {"name": "c", "type": "channel"},
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]
OMERO = {
    "channels": [{"label": "a", "color": "FF0000", "window": {"min": 0, "max": 255, "start": 0, "end": 200}}]
}


def zarr_image(
    path: Path,
    *,
    version: str = "0.5",
    dtype: str = "uint8",
    shape: tuple[int, ...] = (1, 256, 256),
    chunks: tuple[int, ...] = (1, 128, 128),
    axes: list[dict[str, Any]] | None = None,
    omero: dict[str, Any] | None = OMERO,
    levels: int = 2,
    ms_extra: dict[str, Any] | None = None,
    **array_options: Any,
) -> Path:
    """A small image written by zarr-python with OME metadata we set by hand."""
    fmt = 3 if version == "0.5" else 2
    group = zarr.open_group(path, mode="w", zarr_format=fmt)
    datasets = []
    for k in range(levels):
        level_shape = (shape[0], *(max(1, s // 2**k) for s in shape[1:]))
        options = dict(array_options)
        if fmt == 3:
            options["dimension_names"] = [a["name"] for a in (axes or AXES)]
        else:
            options["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        arr = group.create_array(
            str(k),
            shape=level_shape,
            chunks=tuple(min(c, s) for c, s in zip(chunks, level_shape, strict=True)),
            dtype=dtype,
            **options,
        )
        arr[:] = np.ones(level_shape, dtype=dtype)
        datasets.append(
            {
                "path": str(k),
                "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.5 * 2**k, 0.5 * 2**k]}],
            }
        )
    ms: dict[str, Any] = {"axes": axes or AXES, "datasets": datasets, "name": "img", **(ms_extra or {})}
    md: dict[str, Any] = {"multiscales": [ms]}
    if omero is not None:
        md["omero"] = omero
    if version == "0.5":
        group.attrs["ome"] = {"version": "0.5", **md}
    else:
        ms.setdefault("version", "0.4")
        group.attrs.update(md)
    return path


def test_clean_image_has_no_warning(tmp_path: Path) -> None:
    for version in ("0.5", "0.4"):
        path = zarr_image(tmp_path / f"clean{version}.zarr", version=version, compressors=None)
        assert validate_store(path) == [], version
        assert check_viewers(path) == (
            [] if version == "0.4" else [n for n in check_viewers(path) if n.severity == "info"]
        )
        assert warnings_of(check_viewers(path)) == []


def test_04_without_multiscales_version(tmp_path: Path) -> None:
    path = zarr_image(tmp_path / "x.zarr", version="0.4")
    attrs = json.loads((path / ".zattrs").read_text())
    del attrs["multiscales"][0]["version"]
    (path / ".zattrs").write_text(json.dumps(attrs))
    one_warning(check_viewers(path), "Neuroglancer", "no 'version'")


@pytest.mark.parametrize("unit", ["um", "µm", "micron", "pixel"])
def test_units_outside_udunits(tmp_path: Path, unit: str) -> None:
    axes = [AXES[0], {**AXES[1], "unit": unit}, AXES[2]]
    note = one_warning(check_viewers(zarr_image(tmp_path / "x.zarr", axes=axes)), "Neuroglancer", repr(unit))
    assert "UDUNITS" in note.message


@pytest.mark.parametrize(
    ("dtype", "viewers"),
    [
        ("float64", {"Neuroglancer"}),
        ("int64", {"Neuroglancer", "vizarr"}),
        ("bool", {"Neuroglancer", "vizarr"}),
        ("uint64", {"vizarr"}),
        ("float32", set()),
        ("uint16", set()),
        ("int8", set()),
    ],
)
def test_dtypes(tmp_path: Path, dtype: str, viewers: set[str]) -> None:
    notes = warnings_of(check_viewers(zarr_image(tmp_path / "x.zarr", dtype=dtype)))
    assert {v for n in notes for v in n.viewers} == viewers
    if viewers:
        assert f"data type {dtype}" in notes[0].message


def test_v2_filters_and_compressors(tmp_path: Path) -> None:
    from numcodecs import LZ4, Delta

    path = zarr_image(tmp_path / "f.zarr", version="0.4", filters=[Delta(dtype="uint8")])
    one_warning(check_viewers(path), "Neuroglancer", "filters")
    path = zarr_image(tmp_path / "c.zarr", version="0.4", compressors=LZ4())
    one_warning(check_viewers(path), "Neuroglancer", "compressor 'lz4'")


def test_v3_codec_neuroglancer_lacks(tmp_path: Path) -> None:
    path = zarr_image(tmp_path / "x.zarr")
    meta = json.loads((path / "0" / "zarr.json").read_text())
    meta["codecs"].append({"name": "crc32c_other"})
    (path / "0" / "zarr.json").write_text(json.dumps(meta))
    one_warning(check_viewers(path), "Neuroglancer", "codecs ['crc32c_other']")


def test_non_power_of_two_chunks(tmp_path: Path) -> None:
    one_warning(check_viewers(zarr_image(tmp_path / "a.zarr", chunks=(1, 100, 100))), "vizarr", "100×100")
    # sharded: the inner chunk is what vizarr reads
    path = zarr_image(tmp_path / "b.zarr", shape=(1, 512, 512), chunks=(1, 96, 96), shards=(1, 192, 192))
    one_warning(check_viewers(path), "vizarr", "96×96")
    # a chunk that covers a whole (small) axis is fine
    assert (
        warnings_of(check_viewers(zarr_image(tmp_path / "c.zarr", shape=(1, 100, 300), chunks=(1, 100, 128))))
        == []
    )


def test_omero_missing_or_incomplete(tmp_path: Path) -> None:
    one_warning(check_viewers(zarr_image(tmp_path / "a.zarr", omero=None)), "vizarr", "no 'omero'")
    no_window = {"channels": [{"label": "a", "color": "FF0000"}]}
    one_warning(
        check_viewers(zarr_image(tmp_path / "b.zarr", omero=no_window)), "napari", "without color/window"
    )
    two = {"channels": [OMERO["channels"][0], OMERO["channels"][0]]}
    one_warning(check_viewers(zarr_image(tmp_path / "c.zarr", omero=two)), "vizarr", "lists 2 channel(s)")


def test_multiscale_level_transformations(tmp_path: Path) -> None:
    extra = {"coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}
    one_warning(check_viewers(zarr_image(tmp_path / "x.zarr", ms_extra=extra)), "napari", "multiscale-level")


def test_blosc_is_an_info_note_for_java_viewers(tmp_path: Path) -> None:
    from zarr.codecs import BloscCodec

    notes = check_viewers(zarr_image(tmp_path / "x.zarr", compressors=BloscCodec(cname="zstd")))
    assert warnings_of(notes) == []
    [note] = [n for n in notes if "blosc" in n.message]
    assert (note.severity, note.viewers) == ("info", ("Fiji", "BigDataViewer", "MoBIE"))


def test_cli_prints_viewer_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = zarr_image(tmp_path / "x.zarr", dtype="float64")
    assert main(["validate", "--viewers", str(path)]) == 0  # valid NGFF: viewer warnings do not fail it
    captured = capsys.readouterr()
    assert f"warning: {path}: [Neuroglancer] data type float64" in captured.err
    assert "viewers: 1 warning(s)" in captured.out
    # without --viewers: not a word about viewers
    assert main(["validate", str(path)]) == 0
    assert "Neuroglancer" not in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Plates written with ome-zarr-py


def ome_zarr_plate(
    path: Path,
    wells: dict[str, tuple[tuple[int, int], str, int]],
    *,
    version: str = "0.5",
    fields: int = 1,
    rows: list[str] | None = None,
    columns: list[str] | None = None,
) -> Path:
    """A plate by ome-zarr-py's writer; ``wells[path] = ((y, x), dtype, levels)``."""
    from ome_zarr.format import FormatV04, FormatV05

    with warnings.catch_warnings():
        # ome-zarr 0.18's writer module builds a deprecated Scaler as a default argument at import
        warnings.filterwarnings("ignore", "Call to deprecated class Scaler", DeprecationWarning)
        from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

    fmt = FormatV05() if version == "0.5" else FormatV04()
    root = zarr.open_group(path, mode="w", zarr_format=3 if version == "0.5" else 2)
    rows = rows or sorted({w.split("/")[0] for w in wells})
    columns = columns or sorted({w.split("/")[1] for w in wells}, key=int)
    write_plate_metadata(root, rows, columns, list(wells), fmt=fmt, field_count=fields, name="plate")
    for well_path, ((ny, nx), dtype, levels) in wells.items():
        well = root.require_group(well_path)
        write_well_metadata(well, [{"path": str(f)} for f in range(fields)], fmt=fmt)
        for f in range(fields):
            image = well.require_group(str(f))
            data = np.full((1, ny, nx), 7, dtype=dtype)
            write_image(
                data,
                image,
                axes="cyx",
                fmt=fmt,
                scale_factors=[2**k for k in range(1, levels)],
                storage_options={"chunks": (1, 64, 64)},
                omero=json.loads(json.dumps(OMERO)),
            )
    return path


@pytest.mark.filterwarnings("ignore::UserWarning:ome_zarr")  # ome-zarr-py notes its own choices
def test_plate_with_identical_wells_is_clean(tmp_path: Path) -> None:
    path = ome_zarr_plate(
        tmp_path / "p.zarr", {"A/1": ((128, 128), "uint8", 2), "B/2": ((128, 128), "uint8", 2)}
    )
    assert [p for p in validate_store(path) if p.severity == "error"] == []
    notes = check_viewers(path)
    assert not any(
        n.severity == "warning" and ("napari" in n.viewers or "vizarr" in n.viewers) for n in notes
    ), [str(n) for n in notes]
    assert any(n.severity == "info" and "cannot open a plate" in n.message for n in notes)
    info = describe_store(path)
    assert info is not None
    assert (info.kind, info.image) == ("plate", "A/1/0")
    assert [s.path for s in find_stores(tmp_path)] == ["p.zarr"]


@pytest.mark.filterwarnings("ignore::UserWarning:ome_zarr")
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_plate_wells_that_differ(tmp_path: Path, version: str) -> None:
    wells = {
        "A/1": ((128, 128), "uint8", 3),
        "A/2": ((128, 128), "uint8", 2),  # fewer levels
        "B/1": ((96, 128), "uint8", 3),  # another shape
        "B/2": ((128, 128), "uint16", 3),  # another dtype
    }
    notes = check_viewers(ome_zarr_plate(tmp_path / "p.zarr", wells, version=version))
    one_warning(notes, "napari", "A/2 differ from well A/1 in resolution levels")
    shapes = one_warning(notes, "vizarr", "in level shapes")
    assert "A/2" in shapes.message
    assert "B/1" in shapes.message
    one_warning(notes, "napari", "B/2 differ from well A/1 in data type")


@pytest.mark.filterwarnings("ignore::UserWarning:ome_zarr")
def test_plate_with_several_fields_is_an_info_note(tmp_path: Path) -> None:
    notes = check_viewers(ome_zarr_plate(tmp_path / "p.zarr", {"A/1": ((64, 64), "uint8", 1)}, fields=2))
    assert any(n.severity == "info" and "show only the first field" in n.message for n in notes)


def test_plate_too_large_for_napari_textures(tmp_path: Path) -> None:
    """8 × 12 wells whose lowest level is 2048² make a 16384 × 24576 mosaic (metadata only)."""
    root = zarr.open_group(tmp_path / "p.zarr", mode="w", zarr_format=3)
    rows, cols = list("ABCDEFGH"), [str(c) for c in range(1, 13)]
    wells = [f"{r}/{c}" for r in rows for c in cols]
    root.attrs["ome"] = {
        "version": "0.5",
        "plate": {
            "rows": [{"name": r} for r in rows],
            "columns": [{"name": c} for c in cols],
            "wells": [
                {"path": w, "rowIndex": rows.index(w[0]), "columnIndex": cols.index(w[2:])} for w in wells
            ],
        },
    }
    for w in wells[:2]:  # two wells on disk suffice: napari uses the first well's pyramid for all
        well = root.require_group(w)
        well.attrs["ome"] = {"version": "0.5", "well": {"images": [{"path": "0"}]}}
        image = well.require_group("0")
        image.create_array(
            "0",
            shape=(1, 2048, 2048),
            chunks=(1, 1024, 1024),
            dtype="uint16",
            dimension_names=["c", "y", "x"],
        )
        image.attrs["ome"] = {
            "version": "0.5",
            "multiscales": [
                {
                    "axes": AXES,
                    "datasets": [
                        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}
                    ],
                }
            ],
            "omero": OMERO,
        }
    note = one_warning(check_viewers(tmp_path / "p.zarr"), "napari", "texture limit")
    assert "16384×24576 px" in note.message
