"""The NGFF validator, checked against material we did not write.

- the upstream schema test suites (0.4) and spec examples (0.4, 0.5) in ``../shared/ngff-schemas``;
- the violations that ``shared/reference/ngff.md`` section 2.4 shows the schemas accept;
- small stores written by zarr-python, cross-checked with ome-zarr-models.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import warnings
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ngff_tiles.errors import ValidationError
from ngff_tiles.metadata.validate import (
    Problem,
    check_store,
    load_json,
    validate_attributes,
    validate_store,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
UPSTREAM = SHARED / "ngff-schemas"
NO_SHARED = f"upstream NGFF schemas and fixtures not found at {UPSTREAM} (../shared is absent)"
VENDORED = Path(str(files("ngff_tiles.metadata") / "ngff_schemas"))


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def schema_errors(problems: list[Problem]) -> list[Problem]:
    """Errors of layer 1 (the official schema): their message ends with ``[<version>/<file>]``."""
    return [p for p in errors(problems) if p.message.endswith(".schema]")]


def strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


# --------------------------------------------------------------------------------------------
# Upstream 0.4 schema test suites

# Cases the upstream suites call valid (the schema accepts them) that our semantic layer rejects
# on purpose, with the reason. Everything else must agree with the suites.
COLUMN_FIRST = (
    "well path 'A/1' with rows ['1'] and columns ['A'] names the column first; the spec says the path "
    "MUST be '<row>/<column>' and rowIndex/columnIndex MUST refer to the same pair (0.5's plate_suite "
    "lists exactly this as invalid: well_path_has_column_before_row)"
)
DELIBERATE: dict[tuple[str, str], str] = {
    ("image_suite", "valid/mismatch_axes_units.json"): (
        "3 axes but a scale of 2 values; the spec says the length of scale MUST equal the number of axes"
    ),
    ("plate_suite", "plate/minimal_no_acquisitions"): COLUMN_FIRST,
    ("plate_suite", "plate/minimal_acquisitions"): COLUMN_FIRST,
    ("plate_suite", "plate/non_alphanumeric_row"): COLUMN_FIRST.replace("'A/1'", "'A/A1'").replace(
        "['1']", "['A1']"
    ),
    ("strict_plate_suite", "plate/strict_no_acquisitions"): COLUMN_FIRST,
    ("strict_plate_suite", "plate/strict_acquisitions"): COLUMN_FIRST,
}


def _suite_cases() -> list[Any]:
    folder = UPSTREAM / "0.4" / "examples" / "tests"
    if not folder.is_dir():
        return [pytest.param(None, None, None, marks=pytest.mark.skip(reason=NO_SHARED))]
    params = []
    for suite_file in sorted(folder.glob("*_suite.json")):
        suite = json.loads(suite_file.read_text())
        schema = suite["schema"]["id"].rsplit("/", 1)[-1].removesuffix(".schema")
        for i, case in enumerate(suite["tests"]):
            case_id = f"{suite_file.stem}[{i}]:{case.get('formerly', '')}"
            params.append(pytest.param(suite_file.stem, schema, case, id=case_id))
    return params


@pytest.mark.parametrize(("suite", "schema", "case"), _suite_cases())
def test_upstream_0_4_suite_case(suite: str, schema: str, case: dict[str, Any]) -> None:
    kind = schema.removeprefix("strict_")
    problems = validate_attributes(case["data"], kind, "0.4", strict=schema.startswith("strict_"))  # type: ignore[arg-type]
    reason = DELIBERATE.get((suite, case.get("formerly", "")))
    if reason is not None:
        assert case["valid"] is True
        assert schema_errors(problems) == [], "the official schema accepts it"
        assert errors(problems), f"our semantic layer must reject it: {reason}"
    elif case["valid"]:
        assert errors(problems) == []
    else:
        # Rejected, and by the schema layer itself: layer 1 agrees with upstream on every case.
        assert schema_errors(problems), problems


def test_upstream_suites_are_all_counted() -> None:
    if not UPSTREAM.is_dir():
        pytest.skip(NO_SHARED)
    cases = [p.values for p in _suite_cases()]
    assert len(cases) == 92  # image 30, label 9, plate 31, well 6, strict: image 5, label 2, plate 6, well 3
    keys = {(suite, case.get("formerly", "")) for suite, _, case in cases}
    assert set(DELIBERATE) <= keys, "a deliberate disagreement no longer matches an upstream case"
    agreeing = [c for suite, schema, c in cases if (suite, c.get("formerly", "")) not in DELIBERATE]
    assert len(agreeing) == 86


# --------------------------------------------------------------------------------------------
# Upstream spec examples (0.4 and 0.5)


def _example_cases() -> list[Any]:
    if not UPSTREAM.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=NO_SHARED))]
    params = []
    for version in ("0.4", "0.5"):
        for config in sorted((UPSTREAM / version / "examples").glob("*/.config.json")):
            for example in sorted(config.parent.glob("*.json")):
                if example.name.startswith("."):
                    continue
                params.append(
                    pytest.param(version, example, id=f"{version}/{config.parent.name}/{example.name}")
                )
    return params


@pytest.mark.parametrize(("version", "example"), _example_cases())
def test_upstream_example_is_valid(version: str, example: Path) -> None:
    config = json.loads((example.parent / ".config.json").read_text())
    schema = config["schema"].rsplit("/", 1)[-1].removesuffix(".schema")
    doc = json.loads(strip_comments(example.read_text()))
    attrs = doc if version == "0.4" else doc["attributes"]
    problems = validate_attributes(
        attrs,
        schema.removeprefix("strict_"),
        version,  # type: ignore[arg-type]
        strict=schema.startswith("strict_"),
    )
    assert problems == []


def test_there_are_upstream_examples_for_both_versions() -> None:
    if not UPSTREAM.is_dir():
        pytest.skip(NO_SHARED)
    versions = [p.values[0] for p in _example_cases()]
    assert versions.count("0.4") == 10
    assert versions.count("0.5") == 10


def test_0_5_well_path_has_column_before_row_is_rejected_by_the_semantic_layer() -> None:
    # The case upstream's 0.5 plate_suite marks invalid and expects JSON Schema to miss.
    attrs = {
        "ome": {
            "version": "0.5",
            "plate": {
                "columns": [{"name": "1"}],
                "rows": [{"name": "A"}],
                "wells": [{"path": "1/A", "rowIndex": 0, "columnIndex": 0}],
            },
        }
    }
    problems = validate_attributes(attrs, "plate", "0.5")
    assert schema_errors(problems) == []
    assert [p.message for p in errors(problems)] == [
        "ome/plate/wells/0/path: well path '1/A' has the column before the row: it MUST be "
        "'<row>/<column>' (i.e. 'A/1')"
    ]


# --------------------------------------------------------------------------------------------
# ngff.md section 2.4: violations the official schemas accept


def image_attrs(version: str) -> dict[str, Any]:
    axes = [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    multiscale: dict[str, Any] = {
        "name": "mosaic",
        "axes": axes,
        "datasets": [
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, 1.0, 0.5, 0.108 * 2**level, 0.108 * 2**level]},
                    {"type": "translation", "translation": [0.0, 0.0, 0.0, 1520.4, -310.2]},
                ],
            }
            for level in range(3)
        ],
        "coordinateTransformations": [{"type": "scale", "scale": [2.5, 1.0, 1.0, 1.0, 1.0]}],
        "type": "mean",
        "metadata": {"method": "test"},
    }
    channel = {
        "label": "DAPI",
        "color": "0000FF",
        "active": True,
        "window": {"min": 0, "max": 65535, "start": 0, "end": 2400},
    }
    omero = {"channels": [channel, {**channel, "label": "GFP", "color": "00FF00"}]}
    if version == "0.4":
        return {"multiscales": [{"version": "0.4", **multiscale}], "omero": omero}
    return {"ome": {"version": "0.5", "multiscales": [multiscale], "omero": omero}}


def plate_attrs(version: str) -> dict[str, Any]:
    plate: dict[str, Any] = {
        "name": "screen",
        "field_count": 1,
        "rows": [{"name": "A"}, {"name": "B"}],
        "columns": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
        "wells": [
            {"path": "A/1", "rowIndex": 0, "columnIndex": 0},
            {"path": "B/3", "rowIndex": 1, "columnIndex": 2},
        ],
        "acquisitions": [{"id": 0, "name": "run", "maximumfieldcount": 1}],
    }
    if version == "0.4":
        return {"plate": {"version": "0.4", **plate}}
    return {"ome": {"version": "0.5", "plate": plate}}


def _md(attrs: dict[str, Any]) -> dict[str, Any]:
    md: dict[str, Any] = attrs.get("ome", attrs)
    return md


def _ms(attrs: dict[str, Any]) -> dict[str, Any]:
    ms: dict[str, Any] = _md(attrs)["multiscales"][0]
    return ms


def _translation_before_scale(a: dict[str, Any]) -> None:
    _ms(a)["datasets"][0]["coordinateTransformations"].reverse()


def _axes_reversed(a: dict[str, Any]) -> None:
    _ms(a)["axes"].reverse()


def _scale_length(a: dict[str, Any]) -> None:
    _ms(a)["datasets"][1]["coordinateTransformations"][0]["scale"] = [1.0, 1.0, 0.216, 0.216]


def _unit_um(a: dict[str, Any]) -> None:
    _ms(a)["axes"][4]["unit"] = "um"


def _two_channel_axes(a: dict[str, Any]) -> None:
    _ms(a)["axes"][0] = {"name": "c2", "type": "channel"}


def _omero_blue(a: dict[str, Any]) -> None:
    _md(a)["omero"]["channels"][0]["color"] = "blue"


def _small_to_large(a: dict[str, Any]) -> None:
    _ms(a)["datasets"].reverse()


def _row_index_disagrees(a: dict[str, Any]) -> None:
    _md(a)["plate"]["wells"][1]["rowIndex"] = 0


def _row_not_in_rows(a: dict[str, Any]) -> None:
    _md(a)["plate"]["wells"][1] = {"path": "C/3", "rowIndex": 1, "columnIndex": 2}


VIOLATIONS: list[tuple[str, str, Callable[[dict[str, Any]], None], str, str]] = [
    # id, kind, mutation, expected severity, text expected in the message
    (
        "translation_before_scale",
        "image",
        _translation_before_scale,
        "error",
        "MUST be listed after the scale",
    ),
    ("axes_reversed_xyzct", "image", _axes_reversed, "error", "axes MUST be ordered time, then channel"),
    ("scale_length_ne_axes", "image", _scale_length, "error", "scale has 4 values but there are 5 axes"),
    ("unit_um", "image", _unit_um, "warning", "unit 'um' of space axis 'x'"),
    ("two_channel_axes", "image", _two_channel_axes, "error", "at most one axis of type 'channel'"),
    ("omero_color_blue", "image", _omero_blue, "error", "6 hexadecimal digits"),
    (
        "datasets_small_to_large",
        "image",
        _small_to_large,
        "error",
        "ordered from highest to lowest resolution",
    ),
    ("row_index_disagrees_with_path", "plate", _row_index_disagrees, "error", "rowIndex 0 points at row 'A'"),
    ("well_row_not_in_rows", "plate", _row_not_in_rows, "error", "row 'C' of well path 'C/3' is not among"),
]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("strict", [False, True])
def test_reference_documents_are_clean(version: str, strict: bool) -> None:
    assert validate_attributes(image_attrs(version), "image", version, strict=strict) == []  # type: ignore[arg-type]
    assert validate_attributes(plate_attrs(version), "plate", version, strict=strict) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize(
    ("kind", "mutate", "severity", "expected"), [pytest.param(*v[1:], id=v[0]) for v in VIOLATIONS]
)
def test_violation_the_schema_misses_is_caught(
    version: str, kind: str, mutate: Callable[[dict[str, Any]], None], severity: str, expected: str
) -> None:
    attrs = copy.deepcopy(image_attrs(version) if kind == "image" else plate_attrs(version))
    mutate(attrs)
    problems = validate_attributes(attrs, kind, version)  # type: ignore[arg-type]
    assert schema_errors(problems) == [], "ngff.md 2.4: the official schema accepts this document"
    hits = [p for p in problems if expected in p.message]
    assert hits, problems
    assert {p.severity for p in hits} == {severity}
    if severity == "warning":
        assert errors(problems) == []


def test_more_semantic_checks() -> None:
    attrs = image_attrs("0.4")
    ms = _ms(attrs)
    ms["datasets"][0]["coordinateTransformations"].append({"type": "translation", "translation": [0.0] * 5})
    ms["datasets"][2]["path"] = "1"
    ms["axes"][4]["name"] = "y"
    del ms["version"]
    messages = [str(p) for p in validate_attributes(attrs, "image", "0.4")]
    assert any("at most one 'translation', found 2" in m for m in messages)
    assert any("dataset path '1' is listed more than once" in m for m in messages)
    assert any("duplicate axis name(s) ['y']" in m for m in messages)
    assert any("warning: multiscales/0: no 'version' key" in m for m in messages)  # SHOULD in a document

    plate = plate_attrs("0.4")
    plate["plate"]["acquisitions"].append({"id": 0, "name": "again", "maximumfieldcount": 1})
    plate["plate"]["rows"].append({"name": "A", "label": "twice"})
    messages = [p.message for p in errors(validate_attributes(plate, "plate", "0.4"))]
    assert any("acquisition id(s) [0] MUST be unique" in m for m in messages)
    assert any("duplicate row name(s) ['A']" in m for m in messages)

    label = {
        "image-label": {
            "version": "0.4",
            "colors": [{"label-value": 1, "rgba": [0, 0, 0, 0]}, {"label-value": 1, "rgba": [9, 9, 9, 9]}],
        }
    }
    assert (
        "label-value(s) [1] listed more than once"
        in errors(validate_attributes(label, "label", "0.4"))[0].message
    )


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="kind"):
        validate_attributes({}, "scene", "0.5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="version"):
        validate_attributes({}, "image", "0.6")  # type: ignore[arg-type]
    assert errors(validate_attributes([], "image", "0.4"))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Whole stores written with zarr-python

AXES = [
    {"name": "c", "type": "channel"},
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]
LABEL_AXES = AXES[1:]


def _multiscale(version: str, axes: list[dict[str, Any]], levels: int) -> dict[str, Any]:
    n_space = len(axes) - 1 if axes[0]["type"] == "channel" else len(axes)
    lead = [1.0] * (len(axes) - n_space)
    ms: dict[str, Any] = {
        "name": "image",
        "axes": axes,
        "datasets": [
            {
                "path": str(i),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [*lead, *[0.5 * 2**i] * n_space]},
                    {"type": "translation", "translation": [0.0] * len(axes)},
                ],
            }
            for i in range(levels)
        ],
        "type": "mean",
        "metadata": {"method": "test"},
    }
    if version == "0.4":
        ms = {"version": "0.4", **ms}
    return ms


def _set_ome(group: Any, version: str, md: dict[str, Any]) -> None:
    if version == "0.4":
        group.attrs.update(md)
    else:
        group.attrs["ome"] = {"version": "0.5", **md}


def write_image(
    path: Path,
    version: str,
    *,
    levels: int = 2,
    dtypes: tuple[str, ...] = ("uint16",),
    separator: str = "/",
    dimension_names: list[str] | None = None,
    label: bool = True,
    channels: int = 2,
) -> Path:
    """An image group (c, y, x) with ``levels`` levels and, optionally, one label image."""
    import zarr

    root = zarr.open_group(path, mode="a", zarr_format=2 if version == "0.4" else 3)
    _write_levels(
        root, version, (channels, 32, 32), dtypes, levels, separator, dimension_names or ["c", "y", "x"]
    )
    channel = {
        "label": "ch",
        "color": "FF0000",
        "active": True,
        "window": {"min": 0, "max": 255, "start": 0, "end": 99},
    }
    _set_ome(
        root,
        version,
        {"multiscales": [_multiscale(version, AXES, levels)], "omero": {"channels": [channel] * 2}},
    )
    if label:
        labels = root.create_group("labels")
        cells = labels.create_group("cells")
        _write_levels(cells, version, (32, 32), ("uint8",), levels, separator, ["y", "x"])
        _set_ome(labels, version, {"labels": ["cells"]})
        image_label = {
            "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}],
            "source": {"image": "../../"},
        }
        if version == "0.4":
            image_label["version"] = "0.4"
        _set_ome(
            cells,
            version,
            {"multiscales": [_multiscale(version, LABEL_AXES, levels)], "image-label": image_label},
        )
    return path


def _write_levels(
    group: Any,
    version: str,
    shape: tuple[int, ...],
    dtypes: tuple[str, ...],
    levels: int,
    separator: str,
    names: list[str],
) -> None:
    for i in range(levels):
        level_shape = (*shape[:-2], shape[-2] >> i, shape[-1] >> i)
        dtype = dtypes[min(i, len(dtypes) - 1)]
        chunks = (*[1] * (len(shape) - 2), 8, 8)
        if version == "0.4":
            arr = group.create_array(
                str(i),
                shape=level_shape,
                dtype=dtype,
                chunks=chunks,
                chunk_key_encoding={"name": "v2", "separator": separator},
            )
        else:
            arr = group.create_array(
                str(i),
                shape=level_shape,
                dtype=dtype,
                chunks=(*chunks[:-2], 4, 4),
                shards=chunks,
                dimension_names=names,
            )
        arr[...] = np.arange(int(np.prod(level_shape)), dtype="uint64").reshape(level_shape).astype(dtype) % 7


def write_plate(path: Path, version: str) -> Path:
    """A plate with one row, two columns and one well (A/1) holding one field (0)."""
    import zarr

    root = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    plate: dict[str, Any] = {
        "name": "p",
        "field_count": 1,
        "rows": [{"name": "A"}],
        "columns": [{"name": "1"}, {"name": "2"}],
        "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}],
        "acquisitions": [{"id": 0, "name": "run", "maximumfieldcount": 1}],
    }
    well: dict[str, Any] = {"images": [{"path": "0", "acquisition": 0}]}
    if version == "0.4":
        plate["version"] = well["version"] = "0.4"
    _set_ome(root, version, {"plate": plate})
    well_group = root.create_group("A").create_group("1")
    _set_ome(well_group, version, {"well": well})
    write_image(path / "A" / "1" / "0", version, label=False)
    return path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_valid_image_store(tmp_path: Path, version: str) -> None:
    store = write_image(tmp_path / "img.ome.zarr", version)
    assert validate_store(store) == []
    assert validate_store(store, strict=True) == []
    check_store(store)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_valid_plate_store(tmp_path: Path, version: str) -> None:
    store = write_plate(tmp_path / "plate.ome.zarr", version)
    assert validate_store(store) == []
    assert validate_store(store, strict=True) == []


def only_error(problems: list[Problem]) -> Problem:
    errs = errors(problems)
    assert len(errs) == 1, "\n".join(map(str, problems))
    return errs[0]


def test_missing_level_array(tmp_path: Path) -> None:
    store = write_image(tmp_path / "img.ome.zarr", "0.5")
    shutil.rmtree(store / "1")
    problem = only_error(validate_store(store))
    assert problem.where == "1"
    assert "dataset '1' (multiscales[0] level 1) does not exist" in problem.message


def test_dtype_mismatch_across_levels(tmp_path: Path) -> None:
    store = write_image(tmp_path / "img.ome.zarr", "0.4", dtypes=("uint16", "float32"))
    problem = only_error(validate_store(store))
    assert problem.where == ""
    assert "data type differs across resolution levels (0: uint16, 1: float32)" in problem.message


def test_0_4_missing_multiscales_version_is_an_error_in_a_store(tmp_path: Path) -> None:
    store = write_image(tmp_path / "img.ome.zarr", "0.4")
    attrs = json.loads((store / ".zattrs").read_text())
    del attrs["multiscales"][0]["version"]
    (store / ".zattrs").write_text(json.dumps(attrs))
    problem = only_error(validate_store(store))
    assert (problem.where, problem.severity) == ("", "error")
    assert "multiscales/0: no 'version' key" in problem.message
    assert "Neuroglancer" in problem.message


def test_0_5_wrong_dimension_names(tmp_path: Path) -> None:
    store = write_image(tmp_path / "img.ome.zarr", "0.5", dimension_names=["c", "x", "y"], label=False)
    problems = errors(validate_store(store))
    assert [p.where for p in problems] == ["0", "1"]
    assert "dimension_names ['c', 'x', 'y'] differ from the axes names ['c', 'y', 'x']" in problems[0].message


def test_0_4_dot_separator(tmp_path: Path) -> None:
    store = write_image(tmp_path / "img.ome.zarr", "0.4", separator=".", label=False)
    problems = errors(validate_store(store))
    assert [p.where for p in problems] == ["0", "1"]
    assert "dimension_separator '.'" in problems[0].message
    assert "requires '/'" in problems[0].message


def test_0_4_missing_separator_means_dot(tmp_path: Path) -> None:
    store = write_image(tmp_path / "img.ome.zarr", "0.4", label=False)
    meta = json.loads((store / "0" / ".zarray").read_text())
    del meta["dimension_separator"]
    (store / "0" / ".zarray").write_text(json.dumps(meta))
    assert "no dimension_separator (Zarr v2 default '.')" in only_error(validate_store(store)).message


def test_label_must_be_integer_and_have_as_many_levels(tmp_path: Path) -> None:
    import zarr

    store = write_image(tmp_path / "img.ome.zarr", "0.5")
    for level, size in (("0", 32), ("1", 16)):
        zarr.create_array(
            store / "labels" / "cells" / level,
            shape=(size, size),
            dtype="float32",
            chunks=(8, 8),
            dimension_names=["y", "x"],
            overwrite=True,
        )
    problems = errors(validate_store(store))
    assert [p.where for p in problems] == ["labels/cells/0", "labels/cells/1"]
    assert "label image data type is float32: it MUST be an integer type" in problems[0].message

    store = write_image(tmp_path / "img3.ome.zarr", "0.5", levels=3)
    zarr_json = store / "labels" / "cells" / "zarr.json"
    meta = json.loads(zarr_json.read_text())
    meta["attributes"]["ome"]["multiscales"][0]["datasets"].pop()
    zarr_json.write_text(json.dumps(meta))
    problem = only_error(validate_store(store))
    assert (problem.where, problem.message) == (
        "labels/cells",
        "label image has 2 resolution levels, the image . has 3: they MUST be equal",
    )


def test_plate_well_missing_on_disk_and_unknown_acquisition(tmp_path: Path) -> None:
    store = write_plate(tmp_path / "plate.ome.zarr", "0.5")
    shutil.rmtree(store / "A" / "1")
    problem = only_error(validate_store(store))
    assert (problem.where, problem.message) == (
        "A/1",
        "well 'A/1' listed in the plate metadata does not exist (no zarr.json at 'A/1')",
    )

    store = write_plate(tmp_path / "plate2.ome.zarr", "0.4")
    attrs = json.loads((store / "A" / "1" / ".zattrs").read_text())
    attrs["well"]["images"][0]["acquisition"] = 7
    (store / "A" / "1" / ".zattrs").write_text(json.dumps(attrs))
    problem = only_error(validate_store(store))
    assert problem.where == "A/1"
    assert "acquisition 7 is not among the plate's acquisition ids [0]" in problem.message


def test_omero_channels_must_match_the_channel_axis(tmp_path: Path) -> None:
    store = write_image(tmp_path / "img.ome.zarr", "0.5", channels=3, label=False)
    assert (
        "omero lists 2 channel(s) but the channel axis 'c' has size 3"
        in only_error(validate_store(store)).message
    )


def test_sharding_inner_chunks_must_divide_the_shard(tmp_path: Path) -> None:
    store = write_image(tmp_path / "img.ome.zarr", "0.5", label=False)
    meta = json.loads((store / "0" / "zarr.json").read_text())
    meta["codecs"][0]["configuration"]["chunk_shape"] = [1, 3, 4]
    (store / "0" / "zarr.json").write_text(json.dumps(meta))
    problem = only_error(validate_store(store))
    assert (problem.where, problem.message) == (
        "0",
        "sharding inner chunk_shape [1, 3, 4] does not divide the shard shape [1, 8, 8]",
    )


def test_shapes_must_not_grow_and_ndim_must_match(tmp_path: Path) -> None:
    import zarr

    store = write_image(tmp_path / "img.ome.zarr", "0.5", label=False)
    zarr.create_array(
        store / "1",
        shape=(2, 64, 64),
        dtype="uint16",
        chunks=(1, 8, 8),
        dimension_names=["c", "y", "x"],
        overwrite=True,
    )
    problem = only_error(validate_store(store))
    assert problem.where == "1"
    assert "larger than the previous level's [2, 32, 32] on axis y, x" in problem.message

    store = write_image(tmp_path / "img2.ome.zarr", "0.4", label=False)
    zarr.create_array(
        store / "1",
        shape=(16, 16),
        dtype="uint16",
        chunks=(8, 8),
        zarr_format=2,
        chunk_key_encoding={"name": "v2", "separator": "/"},
        overwrite=True,
    )
    messages = [p.message for p in errors(validate_store(store))]
    assert any("has 2 dimensions but the multiscales has 3 axes" in m for m in messages)


def test_0_5_hierarchy_must_stay_zarr_v3(tmp_path: Path) -> None:
    import zarr

    store = write_image(tmp_path / "img.ome.zarr", "0.5", label=False)
    shutil.rmtree(store / "1")
    zarr.create_array(
        store / "1",
        shape=(2, 16, 16),
        dtype="uint16",
        chunks=(1, 8, 8),
        zarr_format=2,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    problem = only_error(validate_store(store))
    assert problem.where == "1"
    assert "is a Zarr v2 array; OME-NGFF 0.5 MUST use Zarr v3" in problem.message


def test_no_ome_metadata(tmp_path: Path) -> None:
    import zarr

    zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=3).attrs["foo"] = 1
    # 0.4-style keys in a Zarr v3 group: 0.5 wants them under attributes.ome
    misplaced = zarr.open_group(tmp_path / "misplaced.zarr", mode="w", zarr_format=3)
    misplaced.attrs["multiscales"] = [_multiscale("0.5", AXES, 1)]
    for path in (tmp_path / "plain.zarr", tmp_path / "misplaced.zarr", tmp_path, tmp_path / "absent"):
        problems = validate_store(path)
        assert len(problems) == 1
        assert (problems[0].where, problems[0].severity) == ("", "error")
        assert problems[0].message.startswith("no OME-NGFF metadata found")
    assert "under attributes.ome" in validate_store(tmp_path / "misplaced.zarr")[0].message


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_bioformats2raw_collection(tmp_path: Path, version: str) -> None:
    import zarr

    store = tmp_path / "collection.ome.zarr"
    root = zarr.open_group(store, mode="w", zarr_format=2 if version == "0.4" else 3)
    _set_ome(root, version, {"bioformats2raw.layout": 3})
    _set_ome(root.create_group("OME"), version, {"series": ["0", "1"]})
    write_image(store / "0", version, label=False)
    write_image(store / "1", version, label=False)
    assert validate_store(store) == []
    shutil.rmtree(store / "1")
    problem = only_error(validate_store(store))
    files = ".zarray/.zgroup" if version == "0.4" else "zarr.json"
    assert (problem.where, problem.message) == ("1", f"series image '1' does not exist (no {files} at '1')")


def test_semantic_layer_never_raises_on_malformed_documents() -> None:
    # Seeded random damage to valid documents: every outcome is a list of problems, never an exception.
    rng = random.Random(20250101)
    junk: list[Any] = [None, 0, -1, 1.5, "x", "", [], {}, [1, "a"], {"a": 1}, True, [None], "1/A/2"]

    def nodes(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
        return [path] + [p for k, v in children for p in nodes(v, (*path, k))]

    for version in ("0.4", "0.5"):
        for kind, base in (("image", image_attrs(version)), ("plate", plate_attrs(version))):
            for _ in range(200):
                doc: Any = copy.deepcopy(base)
                for _ in range(rng.randint(1, 3)):
                    path = rng.choice(nodes(doc)[1:])
                    parent = doc
                    for key in path[:-1]:
                        parent = parent[key]
                    parent[path[-1]] = copy.deepcopy(rng.choice(junk))
                for as_kind in (kind, "label", "well", "bf2raw"):
                    problems = validate_attributes(doc, as_kind, version)  # type: ignore[arg-type]
                    assert all(isinstance(p, Problem) for p in problems)


def test_malformed_json_gives_a_problem_not_a_traceback(tmp_path: Path) -> None:
    store = write_image(tmp_path / "img.ome.zarr", "0.5", label=False)
    (store / "1" / "zarr.json").write_text('{"zarr_format": 3,')
    problem = only_error(validate_store(store))
    assert problem.where == "1"
    assert problem.message.startswith("zarr.json is not valid JSON: ")

    doc, problem2 = load_json(tmp_path / "nope.json", "x")
    assert doc is None
    assert problem2 is not None
    assert problem2.where == "x"
    assert problem2.message.startswith("cannot read nope.json")


def test_check_store_raises_with_a_summary(tmp_path: Path) -> None:
    store = write_image(tmp_path / "img.ome.zarr", "0.4", separator=".", label=False)
    with pytest.raises(ValidationError) as info:
        check_store(store)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{store} is not valid OME-NGFF: 2 error(s)"
    assert lines[1].startswith("  0: dataset '0' (multiscales[0] level 0) has dimension_separator '.'")
    assert lines[2].startswith("  1: ")


def test_problem_is_a_frozen_record() -> None:
    p = Problem("A/1/0", "something")
    assert p.severity == "error"
    assert str(p) == "A/1/0: error: something"
    assert str(Problem("", "w", "warning")) == ".: warning: w"
    with pytest.raises(AttributeError):
        p.where = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Cross-checks with ome-zarr-models and the upstream files


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_models_accepts_our_valid_stores(tmp_path: Path, version: str) -> None:
    import zarr

    store = write_image(tmp_path / "img.ome.zarr", version)
    plate = write_plate(tmp_path / "plate.ome.zarr", version)
    from ome_zarr_models import v04, v05

    models: Any = v04 if version == "0.4" else v05
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ome-zarr-models warns when it "fixes" metadata
        image = models.Image.from_zarr(zarr.open_group(store, mode="r"))
        hcs = models.HCS.from_zarr(zarr.open_group(plate, mode="r"))
    assert [d.path for d in image.datasets[0]] == ["0", "1"]
    assert image.labels is not None
    plate_md = hcs.attributes.plate if version == "0.4" else hcs.attributes.ome.plate
    assert [w.path for w in plate_md.wells] == ["A/1"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_vendored_schemas_are_byte_identical(version: str) -> None:
    if not UPSTREAM.is_dir():
        pytest.skip(NO_SHARED)
    upstream = {p.name: p.read_bytes() for p in (UPSTREAM / version).glob("*.schema")}
    vendored = {p.name: p.read_bytes() for p in (VENDORED / version).glob("*.schema")}
    assert sorted(vendored) == sorted(upstream)
    for name, content in upstream.items():
        assert vendored[name] == content, name
    assert (VENDORED / "NOTICE.md").is_file()
