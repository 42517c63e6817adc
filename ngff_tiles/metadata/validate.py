"""Validate OME-NGFF (OME-Zarr) 0.4 and 0.5 metadata and whole stores.

Two layers, as in ``shared/reference/ngff.md`` section 2:

1. the official JSON schemas (vendored unchanged in ``ngff_tiles/metadata/ngff_schemas``; the
   ``strict_*`` variants with ``strict=True``), run with :class:`jsonschema.Draft202012Validator`
   and a :class:`referencing.Registry` that holds every schema under its ``$id``;
2. semantic checks the schemas cannot express: order and count of axes and transformations,
   vector lengths, units, colours, dataset order, plate rows/columns/indices, duplicate names.

:func:`validate_store` adds what only the store can tell (arrays exist, ndim / dtype / shapes
across levels, ``dimension_names``, chunk separator, sharding, labels, plate wells, acquisitions,
version consistency). It reads the JSON documents directly and never imports zarr or tensorstore.

Every finding is a :class:`Problem`; nothing here raises on bad input except :func:`check_store`,
which raises :class:`~ngff_tiles.errors.ValidationError` when a store has errors.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeGuard, get_args

from ngff_tiles.errors import ValidationError

__all__ = [
    "Kind",
    "Problem",
    "Severity",
    "Version",
    "check_store",
    "load_json",
    "validate_attributes",
    "validate_store",
]

Kind = Literal["image", "plate", "well", "label", "bf2raw", "ome"]
"""What a group is: an image (``multiscales``), a plate, a well, a label image, a
bioformats2raw collection (``bioformats2raw.layout``) or its ``OME`` group (``series``)."""
Version = Literal["0.4", "0.5"]
Severity = Literal["error", "warning"]

SPACE_UNITS: frozenset[str] = frozenset(
    {
        "angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer", "foot",
        "gigameter", "hectometer", "inch", "kilometer", "megameter", "meter", "micrometer", "mile",
        "millimeter", "nanometer", "parsec", "petameter", "picometer", "terameter", "yard",
        "yoctometer", "yottameter", "zeptometer", "zettameter",
    }
)  # fmt: skip
"""Units the spec lists for ``space`` axes (UDUNITS-2 names; 0.4 and 0.5 text, "SHOULD")."""
TIME_UNITS: frozenset[str] = frozenset(
    {
        "attosecond", "centisecond", "day", "decisecond", "exasecond", "femtosecond", "gigasecond",
        "hectosecond", "hour", "kilosecond", "megasecond", "microsecond", "millisecond", "minute",
        "nanosecond", "petasecond", "picosecond", "second", "terasecond", "yoctosecond",
        "yottasecond", "zeptosecond", "zettasecond",
    }
)  # fmt: skip
"""Units the spec lists for ``time`` axes."""
LABEL_DTYPES: frozenset[str] = frozenset(
    ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"]
)
"""Data types allowed for label images."""

_KINDS: tuple[str, ...] = get_args(Kind)
_VERSIONS: tuple[str, ...] = get_args(Version)
_MAX_MESSAGE = 300
_SUMMARY_LINES = 20
_HEX6 = re.compile(r"[0-9A-Fa-f]{6}")
_V2_DTYPE = re.compile(r"[<>|=]?([biufc])(\d+)")
_OME_KEYS = ("multiscales", "plate", "well", "image-label", "labels", "bioformats2raw.layout", "series")


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of the validator.

    Parameters
    ----------
    where : str
        Store-relative path of the node concerned (``""`` for the top level, ``"0"``,
        ``"A/1/0"``...). Where the finding is inside the node's metadata, the message starts
        with its location in the document, e.g. ``multiscales/0/datasets/1``.
    message : str
        One line: what was expected and what was found.
    severity : {"error", "warning"}
        ``"error"`` for a violation of a MUST (or of the schema), ``"warning"`` for a SHOULD
        or a known interoperability pitfall.
    """

    where: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.where or '.'}: {self.severity}: {self.message}"


def load_json(path: str | os.PathLike[str], where: str = "") -> tuple[Any, Problem | None]:
    """Read one JSON document, turning any failure into a :class:`Problem`.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    where : str
        Store-relative path of the node the file belongs to, for the problem.

    Returns
    -------
    tuple
        ``(document, None)`` on success, ``(None, problem)`` when the file cannot be read or
        is not valid JSON.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, Problem(where, f"cannot read {path.name}: {exc.strerror or exc}")
    try:
        return json.loads(raw), None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return None, Problem(where, f"{path.name} is not valid JSON: {exc}")


# --------------------------------------------------------------------------------------------
# Layer 1: the official JSON schemas


@functools.cache
def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """Every vendored schema, keyed by (version, file name)."""
    from importlib.resources import files

    root = files("ngff_tiles.metadata") / "ngff_schemas"
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for version in _VERSIONS:
        for entry in (root / version).iterdir():
            if entry.name.endswith(".schema"):
                out[(version, entry.name)] = json.loads(entry.read_text(encoding="utf-8"))
    return out


@functools.cache
def _registry() -> Any:
    """A :class:`referencing.Registry` holding every vendored schema under its ``$id``."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    # The strict_* files have no "$schema": they are Draft 2020-12 like the rest. All are held
    # without it, so that a $ref keeps our validator class (see _validator) instead of jsonschema's.
    resources = [
        (schema["$id"], Resource.from_contents(_dialectless(schema), default_specification=DRAFT202012))
        for schema in _schemas().values()
    ]
    return Registry().with_resources(resources)


def _dialectless(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without its ``$schema`` key (every vendored schema is Draft 2020-12)."""
    return {k: v for k, v in schema.items() if k != "$schema"}


@functools.cache
def _validator(version: str, name: str) -> Any:
    """A cached Draft 2020-12 validator for one vendored schema file."""
    from jsonschema import Draft202012Validator, validators

    # jsonschema compares the items of an array of objects pairwise for ``uniqueItems``: 2000
    # label colours took 7 s, a million would take days. Same rule, by hashing (linear time).
    cls = validators.extend(Draft202012Validator, {"uniqueItems": _unique_items})
    return cls(_dialectless(_schemas()[(version, name)]), registry=_registry())


def _canonical(value: Any) -> Any:
    """A hashable form of a JSON value; equal JSON values (``1`` and ``1.0``) give equal forms."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("null",)
    if isinstance(value, dict):
        return ("o", frozenset((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("a", tuple(_canonical(v) for v in value))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Any:
    """``uniqueItems`` in linear time (JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``)."""
    from jsonschema.exceptions import ValidationError as SchemaError

    if unique and validator.is_type(instance, "array"):
        seen: set[Any] = set()
        for item in instance:
            form = _canonical(item)
            if form in seen:
                text = repr(instance)
                if len(text) > 200:  # the message must stay readable: name the repeated item
                    text = f"an array of {len(instance)} items, among them {item!r} twice,"
                yield SchemaError(f"{text} has non-unique elements")
                return
            seen.add(form)


def _short(text: str, limit: int = _MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pointer(path: Any) -> str:
    return "/".join(str(p) for p in path)


def _schema_problems(attrs: Any, version: str, name: str, where: str) -> list[Problem]:
    from jsonschema.exceptions import best_match

    problems: list[Problem] = []
    seen: set[str] = set()
    errors = sorted(_validator(version, name).iter_errors(attrs), key=lambda e: str(e.json_path))
    for err in errors:
        detail = err
        if err.validator in ("oneOf", "anyOf") and err.context:
            detail = best_match(err.context)
        loc = _pointer(detail.absolute_path) or "(top level)"
        text = detail.message
        if detail is not err:
            text = f"{text} (no alternative of '{err.validator}' matched)"
        message = _short(f"{loc}: {text} [{version}/{name}]")
        if message not in seen:
            seen.add(message)
            problems.append(Problem(where, message))
    return problems


# --------------------------------------------------------------------------------------------
# Layer 2: semantic checks on one metadata document


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _duplicates(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()  # hashing: label images list 10^5+ values
    seen_unhashable: list[Any] = []
    dups: list[Any] = []
    for value in values:
        try:
            hit = value in seen
            seen.add(value)
        except TypeError:
            hit = value in seen_unhashable
            seen_unhashable.append(value)
        if hit and value not in dups:
            dups.append(value)
    return dups


def _list_text(values: list[Any], limit: int = 12) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return f"[{shown}{', …' if len(values) > limit else ''}]"


@dataclass
class _Collector:
    """Collects semantic problems for one node, prefixing locations inside the document."""

    where: str
    base: str  # "ome/" for 0.5, "" for 0.4
    problems: list[Problem] = field(default_factory=list)

    def add(self, loc: str, message: str, severity: Severity = "error") -> None:
        location = f"{self.base}{loc}".rstrip("/")
        text = f"{location}: {message}" if location else message
        self.problems.append(Problem(self.where, _short(text), severity))

    def error(self, loc: str, message: str) -> None:
        self.add(loc, message, "error")

    def warn(self, loc: str, message: str) -> None:
        self.add(loc, message, "warning")


def _axis_kind(axis: dict[str, Any]) -> str:
    kind = axis.get("type")
    return kind if kind in ("space", "time", "channel") else "custom"


def _check_axes(axes: list[dict[str, Any]], loc: str, c: _Collector) -> None:
    names = [a.get("name") for a in axes]
    dups = _duplicates([n for n in names if isinstance(n, str)])
    if dups:
        c.error(loc, f"duplicate axis name(s) {_list_text(dups)}: axis names MUST be unique")
    kinds = [_axis_kind(a) for a in axes]
    described = ", ".join(f"{n}:{a.get('type', '(no type)')}" for n, a in zip(names, axes, strict=True))
    n_space = kinds.count("space")
    if not 2 <= n_space <= 3:
        c.error(loc, f"there MUST be 2 or 3 axes of type 'space', found {n_space} ({described})")
    if kinds.count("time") > 1:
        c.error(loc, f"there MAY be at most one axis of type 'time', found {kinds.count('time')}")
    n_other = kinds.count("channel") + kinds.count("custom")
    if n_other > 1:
        c.error(
            loc,
            f"there MAY be at most one axis of type 'channel' or of a custom/no type, found "
            f"{n_other} ({described})",
        )
    rank = {"time": 0, "channel": 1, "custom": 1, "space": 2}
    ranks = [rank[k] for k in kinds]
    if ranks != sorted(ranks):
        c.error(
            loc,
            f"axes MUST be ordered time, then channel (or custom), then space; found ({described})",
        )
    space_names = [n for n, k in zip(names, kinds, strict=True) if k == "space"]
    if (
        len(space_names) == 3
        and sorted(map(str, space_names)) == ["x", "y", "z"]
        and space_names != ["z", "y", "x"]
    ):
        c.warn(
            loc, f"the three space axes SHOULD be ordered z, y, x; found {', '.join(map(str, space_names))}"
        )
    for k, axis in enumerate(axes):
        if "unit" not in axis:
            continue
        unit, kind = axis["unit"], kinds[k]
        if not isinstance(unit, str):
            c.error(f"{loc}/{k}/unit", f"unit MUST be a string, found {unit!r}")
        elif kind == "space" and unit not in SPACE_UNITS:
            c.warn(
                f"{loc}/{k}/unit",
                f"unit {unit!r} of space axis {names[k]!r} is not one of the spec's UDUNITS-2 space "
                "units (SHOULD be e.g. 'micrometer'); Neuroglancer rejects unknown units",
            )
        elif kind == "time" and unit not in TIME_UNITS:
            c.warn(
                f"{loc}/{k}/unit",
                f"unit {unit!r} of time axis {names[k]!r} is not one of the spec's UDUNITS-2 time "
                "units (SHOULD be e.g. 'second')",
            )


def _check_transforms(cts: Any, loc: str, n_axes: int | None, c: _Collector) -> list[float] | None:
    """Check one coordinateTransformations list; return its scale vector when well formed."""
    if not isinstance(cts, list):
        return None
    types = [t.get("type") if isinstance(t, dict) else None for t in cts]
    for k, kind in enumerate(types):
        if kind not in ("scale", "translation"):
            c.error(f"{loc}/{k}", f"only 'scale' and 'translation' are allowed here, found {kind!r}")
    scales = [k for k, kind in enumerate(types) if kind == "scale"]
    translations = [k for k, kind in enumerate(types) if kind == "translation"]
    if len(scales) != 1:
        c.error(loc, f"there MUST be exactly one 'scale' transformation, found {len(scales)}")
    if len(translations) > 1:
        c.error(loc, f"there MAY be at most one 'translation', found {len(translations)}")
    if scales and translations and translations[0] < scales[0]:
        c.error(
            loc,
            f"'translation' (index {translations[0]}) comes before 'scale' (index {scales[0]}): "
            "the translation MUST be listed after the scale",
        )
    scale_vector: list[float] | None = None
    for k, kind in enumerate(types):
        if kind not in ("scale", "translation"):
            continue
        vector = cts[k].get(kind)
        if not isinstance(vector, list):
            continue
        if n_axes is not None and len(vector) != n_axes:
            c.error(
                f"{loc}/{k}/{kind}",
                f"{kind} has {len(vector)} values but there are {n_axes} axes: the lengths MUST agree",
            )
        numbers = all(_is_number(v) for v in vector)
        if kind == "scale" and numbers:
            bad = [v for v in vector if not (math.isfinite(v) and v > 0)]
            if bad:
                c.warn(f"{loc}/{k}/scale", f"scale values should be finite and positive, found {bad}")
            if len(scales) == 1:
                scale_vector = [float(v) for v in vector]
        elif kind == "translation" and numbers and not all(math.isfinite(v) for v in vector):
            c.error(f"{loc}/{k}/translation", "translation values MUST be finite numbers")
    return scale_vector


def _check_multiscales(md: dict[str, Any], version: str, c: _Collector, in_store: bool) -> None:
    names: list[str] = []
    for i, ms in enumerate(_as_list(md.get("multiscales"))):
        if not isinstance(ms, dict):
            continue
        loc = f"multiscales/{i}"
        if version == "0.4" and "version" not in ms:
            c.add(
                loc,
                'no \'version\' key: 0.4 multiscales SHOULD say "version": "0.4" and Neuroglancer '
                "ignores an image without it",
                "error" if in_store else "warning",
            )
        if isinstance(ms.get("name"), str):
            if ms["name"] in names:
                c.warn(f"{loc}/name", f"multiscales name {ms['name']!r} is used twice: readers pick by name")
            names.append(ms["name"])
        raw_axes = ms.get("axes")
        axes = _as_list(raw_axes)
        n_axes: int | None = None
        if axes and all(isinstance(a, dict) for a in axes):
            _check_axes(axes, f"{loc}/axes", c)
            n_axes = len(axes)
        axis_names = [a.get("name") if isinstance(a, dict) else None for a in axes]
        datasets = [d for d in _as_list(ms.get("datasets")) if isinstance(d, dict)]
        paths = [d.get("path") for d in datasets if isinstance(d.get("path"), str)]
        for dup in _duplicates(paths):
            c.error(f"{loc}/datasets", f"dataset path {dup!r} is listed more than once")
        for j, path in enumerate(paths):
            if not path or path.startswith("/") or ".." in path.split("/"):
                c.error(
                    f"{loc}/datasets/{j}/path",
                    f"dataset path {path!r} MUST be a relative path inside the image group",
                )
        scales: list[list[float] | None] = []
        for j, ds in enumerate(datasets):
            scales.append(
                _check_transforms(
                    ds.get("coordinateTransformations"),
                    f"{loc}/datasets/{j}/coordinateTransformations",
                    n_axes,
                    c,
                )
            )
        if "coordinateTransformations" in ms:
            _check_transforms(ms["coordinateTransformations"], f"{loc}/coordinateTransformations", n_axes, c)
        for j in range(1, len(scales)):
            prev, cur = scales[j - 1], scales[j]
            if prev is None or cur is None or len(prev) != len(cur):
                continue
            finer = [
                str(axis_names[k]) if k < len(axis_names) else str(k)
                for k in range(len(cur))
                if abs(cur[k]) < abs(prev[k]) * (1 - 1e-9)
            ]
            if finer:
                c.error(
                    f"{loc}/datasets",
                    f"datasets MUST be ordered from highest to lowest resolution, but datasets[{j}] has "
                    f"a finer scale than datasets[{j - 1}] on axis {', '.join(finer)} ({prev} -> {cur})",
                )


def _check_omero(md: dict[str, Any], version: str, c: _Collector) -> None:
    omero = md.get("omero")
    if not isinstance(omero, dict):
        return
    for k, channel in enumerate(_as_list(omero.get("channels"))):
        if not isinstance(channel, dict):
            continue
        loc = f"omero/channels/{k}"
        color = channel.get("color")
        if isinstance(color, str) and not _HEX6.fullmatch(color):
            c.error(f"{loc}/color", f"color MUST be 6 hexadecimal digits RRGGBB (no '#'), found {color!r}")
        if version == "0.5":
            # The 0.5 text says MUST, its schema does not require them; 0.6 makes them optional.
            for key in ("color", "window"):
                if key not in channel:
                    c.warn(loc, f"no '{key}': the 0.5 spec text requires it (the schema does not)")


def _check_image_label(md: dict[str, Any], version: str, c: _Collector) -> None:
    label = md.get("image-label")
    if not isinstance(label, dict):
        if version == "0.4" and "image-label" not in md and "multiscales" in md:
            c.warn("", "a label image SHOULD have 'image-label' metadata")
        return
    if version == "0.4" and "version" not in label:
        c.warn("image-label", "no 'version': it SHOULD be \"0.4\"")
    elif version == "0.5" and "version" in label and label["version"] != "0.5":
        c.error("image-label/version", f"{label['version']!r} disagrees with ome.version '0.5'")
    for key in ("colors", "properties"):
        values = [e.get("label-value") for e in _as_list(label.get(key)) if isinstance(e, dict)]
        for k, value in enumerate(values):
            if isinstance(value, float) and not value.is_integer():
                c.error(
                    f"image-label/{key}/{k}/label-value", f"label-value MUST be an integer, found {value}"
                )
        dups = _duplicates([v for v in values if _is_number(v)])
        if dups:
            c.error(f"image-label/{key}", f"label-value(s) {_list_text(dups)} listed more than once")


def _names(entries: Any) -> list[str]:
    return [e["name"] for e in _as_list(entries) if isinstance(e, dict) and isinstance(e.get("name"), str)]


def _check_plate(md: dict[str, Any], version: str, c: _Collector) -> None:
    plate = md.get("plate")
    if not isinstance(plate, dict):
        return
    rows = _names(plate.get("rows"))
    columns = _names(plate.get("columns"))
    for key, names in (("rows", rows), ("columns", columns)):
        dups = _duplicates(names)
        if dups:
            c.error(f"plate/{key}", f"duplicate {key[:-1]} name(s) {_list_text(dups)}")
    if version == "0.4" and "version" not in plate:
        c.warn("plate", "no 'version': it SHOULD be \"0.4\"")
    elif version == "0.5" and "version" in plate and plate["version"] != "0.5":
        c.error("plate/version", f"{plate['version']!r} disagrees with ome.version '0.5'")
    paths: list[str] = []
    indices: list[tuple[int, int]] = []
    for k, well in enumerate(_as_list(plate.get("wells"))):
        if not isinstance(well, dict) or not isinstance(well.get("path"), str):
            continue
        loc, path = f"plate/wells/{k}", well["path"]
        if path in paths:
            c.error(f"{loc}/path", f"well path {path!r} is listed more than once")
        paths.append(path)
        parts = path.split("/")
        if len(parts) != 2:
            continue  # the schema's pattern reports it
        row, column = parts
        swapped = row not in rows and column not in columns and row in columns and column in rows
        if swapped:
            c.error(
                f"{loc}/path",
                f"well path {path!r} has the column before the row: it MUST be '<row>/<column>' "
                f"(i.e. {column + '/' + row!r})",
            )
        if not swapped and row not in rows:
            c.error(
                f"{loc}/path",
                f"row {row!r} of well path {path!r} is not among the plate rows {_list_text(rows)}",
            )
        if not swapped and column not in columns:
            c.error(
                f"{loc}/path",
                f"column {column!r} of well path {path!r} is not among the plate columns "
                f"{_list_text(columns)}",
            )
        for key, names, part in (("rowIndex", rows, row), ("columnIndex", columns, column)):
            index = well.get(key)
            if swapped or not _is_int(index):
                continue
            if not 0 <= index < len(names):
                c.error(
                    f"{loc}/{key}", f"{key} {index} is out of range: the plate has {len(names)} {key[:-5]}s"
                )
            elif names[index] != part:
                c.error(
                    f"{loc}/{key}",
                    f"{key} {index} points at {key[:-5]} {names[index]!r} but the well path {path!r} names "
                    f"{part!r}: they MUST refer to the same {key[:-5]}",
                )
        if _is_int(well.get("rowIndex")) and _is_int(well.get("columnIndex")):
            pair = (well["rowIndex"], well["columnIndex"])
            if pair in indices:
                c.error(loc, f"(rowIndex, columnIndex) {pair} is used by more than one well")
            indices.append(pair)
    acquisitions = [a for a in _as_list(plate.get("acquisitions")) if isinstance(a, dict)]
    dups = _duplicates([a.get("id") for a in acquisitions if _is_int(a.get("id"))])
    if dups:
        c.error("plate/acquisitions", f"acquisition id(s) {_list_text(dups)} MUST be unique")
    for k, acq in enumerate(acquisitions):
        start, end = acq.get("starttime"), acq.get("endtime")
        if _is_int(start) and _is_int(end) and end < start:
            c.warn(f"plate/acquisitions/{k}", f"endtime {end} is before starttime {start}")


def _check_well(md: dict[str, Any], version: str, c: _Collector) -> None:
    well = md.get("well")
    if not isinstance(well, dict):
        return
    if version == "0.4" and "version" not in well:
        c.warn("well", "no 'version': it SHOULD be \"0.4\"")
    elif version == "0.5" and "version" in well and well["version"] != "0.5":
        c.error("well/version", f"{well['version']!r} disagrees with ome.version '0.5'")
    images = [i for i in _as_list(well.get("images")) if isinstance(i, dict)]
    dups = _duplicates([i.get("path") for i in images if isinstance(i.get("path"), str)])
    if dups:
        c.error(
            "well/images", f"field path(s) {_list_text(dups)} listed more than once: paths MUST be unique"
        )


def _check_series(md: dict[str, Any], c: _Collector) -> None:
    series = [s for s in _as_list(md.get("series")) if isinstance(s, str)]
    dups = _duplicates(series)
    if dups:
        c.error("series", f"image path(s) {_list_text(dups)} listed more than once")


def _schema_names(kind: str, md: dict[str, Any]) -> list[str]:
    if kind == "label":
        return ["label", "image"] if "multiscales" in md else ["label"]
    if kind == "bf2raw":
        return ["bf2raw", "plate"] if "plate" in md else ["bf2raw"]
    return [kind]


def _validate_attributes(
    attrs: Any, kind: str, version: str, *, strict: bool, where: str, in_store: bool
) -> list[Problem]:
    if version not in _VERSIONS:
        raise ValueError(f"version must be one of {_VERSIONS}, not {version!r}")
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
    if not isinstance(attrs, dict):
        return [Problem(where, f"attributes MUST be a JSON object, found {type(attrs).__name__}")]
    md = attrs if version == "0.4" else attrs.get("ome")
    md = _as_dict(md)
    problems: list[Problem] = []
    for name in _schema_names(kind, md):
        strict_file = f"strict_{name}.schema"
        file = strict_file if strict and (version, strict_file) in _schemas() else f"{name}.schema"
        problems.extend(_schema_problems(attrs, version, file, where))
    c = _Collector(where, "ome/" if version == "0.5" else "")
    if kind in ("image", "label"):
        _check_multiscales(md, version, c, in_store)
        _check_omero(md, version, c)
    if kind == "label":
        _check_image_label(md, version, c)
    if kind == "plate" or (kind == "bf2raw" and "plate" in md):
        _check_plate(md, version, c)
    if kind == "well":
        _check_well(md, version, c)
    if kind == "ome":
        _check_series(md, c)
    return problems + c.problems


def validate_attributes(
    attrs: dict[str, Any],
    kind: Kind,
    version: Version,
    *,
    strict: bool = False,
    where: str = "",
) -> list[Problem]:
    """Validate one group's OME-NGFF metadata document (schema + semantic checks).

    Parameters
    ----------
    attrs : dict
        For 0.4 the group's ``.zattrs``; for 0.5 the ``attributes`` object of its ``zarr.json``
        (which holds the ``"ome"`` key).
    kind : {"image", "plate", "well", "label", "bf2raw", "ome"}
        What the group is. ``"label"`` also applies the image checks when ``multiscales`` is
        present; ``"bf2raw"`` also applies the plate checks when ``plate`` is present.
    version : {"0.4", "0.5"}
        The OME-NGFF version to validate against.
    strict : bool
        Use the official ``strict_*`` schemas (which turn several SHOULDs into MUSTs).
    where : str
        Store-relative path of the group, copied into every :class:`Problem`.

    Returns
    -------
    list of Problem
        Empty when the document is valid; warnings do not make it invalid. Each message starts
        with the location inside the document (``multiscales/0/axes``; ``ome/...`` for 0.5).
        Messages from the official schema (layer 1) end with ``[<version>/<schema file>]``.

    Raises
    ------
    ValueError
        If ``kind`` or ``version`` is not one of the accepted values.
    """
    return _validate_attributes(attrs, kind, version, strict=strict, where=where, in_store=False)


# --------------------------------------------------------------------------------------------
# Whole stores


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _safe_relative(path: Any) -> TypeGuard[str]:
    return isinstance(path, str) and bool(path) and not path.startswith("/") and ".." not in path.split("/")


@dataclass
class _Node:
    path: str
    node_type: str  # "group" or "array"
    zarr_format: int
    attrs: dict[str, Any]
    meta: dict[str, Any]  # zarr.json (v3) or .zarray / .zgroup (v2)


@dataclass
class _Level:
    path: str
    shape: list[int] | None
    dtype: str | None


@dataclass
class _ImageInfo:
    path: str
    n_datasets: int  # as listed in the first multiscales (some may be missing on disk)
    levels: list[_Level]


def _dtype_v2(dtype: Any) -> str | None:
    if not isinstance(dtype, str):
        return None if dtype is None else json.dumps(dtype)
    m = _V2_DTYPE.fullmatch(dtype)
    if not m:
        return dtype
    kind, size = m.group(1), int(m.group(2))
    if kind == "b":
        return "bool"
    return {"i": "int", "u": "uint", "f": "float", "c": "complex"}[kind] + str(8 * size)


def _dtype_v3(dtype: Any) -> str | None:
    if isinstance(dtype, dict):
        name = dtype.get("name")
        return name if isinstance(name, str) else json.dumps(dtype)
    return dtype if isinstance(dtype, str) else None


class _Walker:
    """Walks one store, collecting problems."""

    def __init__(self, root: Path, strict: bool) -> None:
        self.root = root
        self.strict = strict
        self.problems: list[Problem] = []
        self.unreadable: set[str] = set()
        self.version = "0.4"

    # -- reading ------------------------------------------------------------------------------

    def error(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, _short(message)))

    def warn(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, _short(message), "warning"))

    def json(self, rel: str, name: str) -> Any:
        doc, problem = load_json(self.root / rel / name if rel else self.root / name, rel)
        if problem is not None:
            self.problems.append(problem)
            self.unreadable.add(rel)
        return doc

    def node(self, rel: str) -> _Node | None:
        """Read the node at ``rel`` (either Zarr format); ``None`` if absent or unreadable."""
        folder = self.root / rel if rel else self.root
        if (folder / "zarr.json").is_file():
            meta = self.json(rel, "zarr.json")
            if meta is None:
                return None
            if not isinstance(meta, dict):
                self.error(rel, "zarr.json MUST be a JSON object")
                self.unreadable.add(rel)
                return None
            if meta.get("zarr_format") != 3:
                self.error(rel, f"zarr.json has zarr_format {meta.get('zarr_format')!r}, expected 3")
            node_type = meta.get("node_type")
            if node_type not in ("group", "array"):
                self.error(rel, f"zarr.json node_type MUST be 'group' or 'array', found {node_type!r}")
                self.unreadable.add(rel)
                return None
            attrs = meta.get("attributes", {})
            if not isinstance(attrs, dict):
                self.error(rel, "zarr.json 'attributes' MUST be a JSON object")
                attrs = {}
            return _Node(rel, node_type, 3, attrs, meta)
        zarray, zgroup, zattrs = (folder / n for n in (".zarray", ".zgroup", ".zattrs"))
        if not (zarray.is_file() or zgroup.is_file() or zattrs.is_file()):
            return None
        attrs = self.json(rel, ".zattrs") if zattrs.is_file() else {}
        if not isinstance(attrs, dict):
            if attrs is not None:
                self.error(rel, ".zattrs MUST be a JSON object")
            attrs = {}
        if zarray.is_file():
            if zgroup.is_file():
                self.error(rel, "both .zarray and .zgroup present")
            meta = self.json(rel, ".zarray")
            if not isinstance(meta, dict):
                self.unreadable.add(rel)
                return None
            node_type = "array"
        elif zgroup.is_file():
            meta = self.json(rel, ".zgroup")
            if not isinstance(meta, dict):
                self.unreadable.add(rel)
                return None
            node_type = "group"
        else:
            self.error(rel, "has .zattrs but no .zgroup: Zarr v2 groups MUST have a .zgroup file")
            meta, node_type = {"zarr_format": 2}, "group"
        if meta.get("zarr_format") != 2:
            self.error(
                rel,
                f"{'.zarray' if node_type == 'array' else '.zgroup'} has zarr_format "
                f"{meta.get('zarr_format')!r}, expected 2",
            )
        return _Node(rel, node_type, 2, attrs, meta)

    def require(self, rel: str, what: str, node_type: str | None = None) -> _Node | None:
        """Read a node that metadata says exists; report it when absent, of the wrong type or format."""
        node = self.node(rel)
        if node is None:
            if rel not in self.unreadable:
                files = "zarr.json" if self.version == "0.5" else ".zarray/.zgroup"
                self.error(rel, f"{what} does not exist (no {files} at {rel!r})")
            return None
        self.check_format(node, what)
        if node_type is not None and node.node_type != node_type:
            self.error(rel, f"{what} is a Zarr {node.node_type}, expected a {node_type}")
            return None
        return node

    def check_format(self, node: _Node, what: str) -> None:
        expected = 3 if self.version == "0.5" else 2
        if node.zarr_format != expected:
            self.error(
                node.path,
                f"{what} is a Zarr v{node.zarr_format} {node.node_type}; OME-NGFF {self.version} MUST "
                f"use Zarr v{expected} throughout the hierarchy",
            )

    def md(self, node: _Node) -> dict[str, Any]:
        return node.attrs if self.version == "0.4" else _as_dict(node.attrs.get("ome"))

    def attributes(self, node: _Node, kind: str) -> None:
        self.problems.extend(
            _validate_attributes(
                node.attrs, kind, self.version, strict=self.strict, where=node.path, in_store=True
            )
        )

    def check_group_version(self, node: _Node) -> None:
        """0.5: a group outside the schema's reach (labels, row) must not disagree on the version."""
        if self.version != "0.5":
            return
        ome = node.attrs.get("ome")
        if isinstance(ome, dict) and ome.get("version", "0.5") != "0.5":
            self.error(node.path, f"ome.version {ome.get('version')!r} differs from '0.5' at the top level")

    # -- arrays -------------------------------------------------------------------------------

    def level(self, node: _Node, axis_names: list[Any], what: str) -> _Level:
        meta = node.meta
        shape = meta.get("shape")
        if not (isinstance(shape, list) and all(_is_int(s) and s >= 0 for s in shape)):
            self.error(node.path, f"{what}: array metadata has no valid 'shape' (found {shape!r})")
            shape = None
        dtype = _dtype_v3(meta.get("data_type")) if node.zarr_format == 3 else _dtype_v2(meta.get("dtype"))
        if shape is not None and len(shape) != len(axis_names):
            self.error(
                node.path,
                f"{what} has {len(shape)} dimensions but the multiscales has {len(axis_names)} axes: "
                "they MUST be equal",
            )
        if self.version == "0.5" and node.zarr_format == 3:
            names = meta.get("dimension_names")
            if names is None:
                self.error(
                    node.path,
                    f"{what} has no dimension_names: 0.5 requires them, equal to the axes names {axis_names}",
                )
            elif names != axis_names:
                self.error(
                    node.path, f"{what}: dimension_names {names} differ from the axes names {axis_names}"
                )
            self.check_sharding(node, shape)
        elif self.version == "0.4" and node.zarr_format == 2:
            separator = meta.get("dimension_separator")
            if separator != "/":
                found = (
                    "no dimension_separator (Zarr v2 default '.')"
                    if separator is None
                    else (f"dimension_separator {separator!r}")
                )
                self.error(node.path, f"{what} has {found}: OME-NGFF 0.4 requires '/'")
            array_dims = node.attrs.get("_ARRAY_DIMENSIONS")
            if array_dims is not None and array_dims != axis_names:
                self.warn(
                    node.path,
                    f"{what}: _ARRAY_DIMENSIONS {array_dims} differ from the axes names {axis_names}",
                )
        return _Level(node.path, shape, dtype)

    def check_sharding(self, node: _Node, shape: list[int] | None) -> None:
        grid = _as_dict(node.meta.get("chunk_grid"))
        outer = _as_dict(grid.get("configuration")).get("chunk_shape")
        if grid.get("name") != "regular" or not isinstance(outer, list):
            return
        if shape is not None and len(outer) != len(shape):
            self.error(
                node.path,
                f"chunk_grid chunk_shape {outer} has {len(outer)} dimensions, the array {len(shape)}",
            )
        codecs = node.meta.get("codecs")
        while isinstance(codecs, list):
            sharding = next(
                (cd for cd in codecs if isinstance(cd, dict) and cd.get("name") == "sharding_indexed"), None
            )
            if sharding is None:
                return
            config = _as_dict(sharding.get("configuration"))
            inner = config.get("chunk_shape")
            if not (isinstance(inner, list) and all(_is_int(n) and n > 0 for n in inner)):
                self.error(node.path, f"sharding_indexed has no valid chunk_shape (found {inner!r})")
                return
            if not all(_is_int(n) and n > 0 for n in outer):
                return
            if len(inner) != len(outer) or any(o % i for o, i in zip(outer, inner, strict=True)):
                self.error(
                    node.path,
                    f"sharding inner chunk_shape {inner} does not divide the shard shape {outer}",
                )
                return
            outer, codecs = inner, config.get("codecs")

    # -- groups -------------------------------------------------------------------------------

    def image(self, node: _Node, kind: str = "image") -> _ImageInfo | None:
        self.attributes(node, kind)
        md = self.md(node)
        multiscales = _as_list(md.get("multiscales"))
        if not multiscales:
            if kind == "label":
                self.error(node.path, "a label image MUST carry 'multiscales' metadata")
            return None
        info: _ImageInfo | None = None
        for i, ms in enumerate(multiscales):
            if not isinstance(ms, dict):
                continue
            axes = _as_list(ms.get("axes"))
            axis_names = [a.get("name") if isinstance(a, dict) else None for a in axes]
            levels: list[_Level] = []
            scales: list[Any] = []
            for j, ds in enumerate(_as_list(ms.get("datasets"))):
                path = _as_dict(ds).get("path")
                if not _safe_relative(path):
                    continue  # reported by the attribute checks
                what = f"dataset {path!r} (multiscales[{i}] level {j})"
                array = self.require(_join(node.path, path), what, "array")
                if array is None:
                    continue
                level = self.level(array, axis_names, what)
                if kind == "label" and level.dtype is not None and level.dtype not in LABEL_DTYPES:
                    self.error(
                        array.path,
                        f"label image data type is {level.dtype}: it MUST be an integer "
                        f"type ({', '.join(sorted(LABEL_DTYPES))})",
                    )
                levels.append(level)
                scales.append(self.scale_of(ds))
            self.compare_levels(node, i, levels, scales, axis_names)
            if info is None:
                info = _ImageInfo(node.path, len(_as_list(ms.get("datasets"))), levels)
                self.check_channels(node, md, axes, levels)
        if kind == "image":
            self.labels(node, info)
        return info

    @staticmethod
    def scale_of(dataset: Any) -> list[float] | None:
        for t in _as_list(_as_dict(dataset).get("coordinateTransformations")):
            if isinstance(t, dict) and t.get("type") == "scale":
                vector = t.get("scale")
                if isinstance(vector, list) and all(_is_number(v) and v > 0 for v in vector):
                    return [float(v) for v in vector]
        return None

    def compare_levels(
        self, node: _Node, i: int, levels: list[_Level], scales: list[Any], axis_names: list[Any]
    ) -> None:
        dtypes = [lv.dtype for lv in levels if lv.dtype is not None]
        if len(set(dtypes)) > 1:
            listing = ", ".join(f"{lv.path.rsplit('/', 1)[-1]}: {lv.dtype}" for lv in levels)
            self.error(
                node.path,
                f"multiscales[{i}]: the data type differs across resolution levels ({listing}); "
                "it MUST be the same",
            )
        first = levels[0] if levels else None
        for j in range(1, len(levels)):
            prev, cur = levels[j - 1], levels[j]
            if prev.shape is None or cur.shape is None or len(prev.shape) != len(cur.shape):
                if prev.shape is not None and cur.shape is not None:
                    self.error(
                        cur.path,
                        f"has {len(cur.shape)} dimensions, the previous level {len(prev.shape)}: "
                        "all levels MUST have the same number of dimensions",
                    )
                continue
            grown = [
                str(axis_names[k]) if k < len(axis_names) else str(k)
                for k in range(len(cur.shape))
                if cur.shape[k] > prev.shape[k]
            ]
            if grown:
                self.error(
                    cur.path,
                    f"shape {cur.shape} is larger than the previous level's {prev.shape} on axis "
                    f"{', '.join(grown)}: levels MUST go from largest to smallest",
                )
            s0, sj = scales[0], scales[j]
            if first is None or first.shape is None or s0 is None or sj is None:
                continue
            if not (len(s0) == len(sj) == len(cur.shape) == len(first.shape)):
                continue
            off = [
                str(axis_names[k]) if k < len(axis_names) else str(k)
                for k in range(len(cur.shape))
                if abs(cur.shape[k] - first.shape[k] * s0[k] / sj[k]) >= 1.0 + 1e-6
            ]
            if off:
                self.warn(
                    cur.path,
                    f"shape {cur.shape} does not match the scale ratio to level 0 "
                    f"(shape {first.shape}, scale {s0} -> {sj}) on axis {', '.join(off)}",
                )

    def check_channels(self, node: _Node, md: dict[str, Any], axes: list[Any], levels: list[_Level]) -> None:
        omero = md.get("omero")
        if not isinstance(omero, dict) or not isinstance(omero.get("channels"), list) or not levels:
            return
        n_channels = len(omero["channels"])
        shape = levels[0].shape
        c_axes = [k for k, a in enumerate(axes) if isinstance(a, dict) and a.get("type") == "channel"]
        if not c_axes:
            if n_channels != 1:
                self.warn(node.path, f"omero lists {n_channels} channels but the image has no channel axis")
            return
        k = c_axes[0]
        if shape is not None and k < len(shape) and shape[k] != n_channels:
            self.error(
                node.path,
                f"omero lists {n_channels} channel(s) but the channel axis {axes[k].get('name')!r} has size "
                f"{shape[k]}: they must match",
            )

    def labels(self, image: _Node, info: _ImageInfo | None) -> None:
        rel = _join(image.path, "labels")
        if not (self.root / rel).is_dir():
            return
        node = self.node(rel)
        if node is None:
            if rel not in self.unreadable:
                self.warn(rel, "a 'labels' folder without Zarr group metadata is ignored")
            return
        if node.node_type != "group":
            return  # an array called "labels" (e.g. a dataset path); not a labels group
        self.labels_group(node, info)

    def labels_group(self, node: _Node, info: _ImageInfo | None) -> None:
        self.check_format(node, "labels group")
        self.check_group_version(node)
        if self.version == "0.5" and not isinstance(node.attrs.get("ome"), dict):
            self.error(node.path, "the labels group has no attributes.ome: it MUST list its label images")
            return
        names = self.md(node).get("labels")
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            self.error(
                node.path,
                f"the labels group MUST list its label images under 'labels' (a list of "
                f"paths), found {names!r}",
            )
            return
        for dup in _duplicates(names):
            self.error(node.path, f"label {dup!r} is listed more than once")
        for name in dict.fromkeys(names):
            if not _safe_relative(name):
                self.error(node.path, f"label path {name!r} MUST be a relative path inside the labels group")
                continue
            label = self.require(_join(node.path, name), f"label image {name!r}", "group")
            if label is None:
                continue
            label_info = self.image(label, "label")
            if info is not None and label_info is not None and label_info.n_datasets != info.n_datasets:
                self.error(
                    label.path,
                    f"label image has {label_info.n_datasets} resolution levels, the image "
                    f"{info.path or '.'} has {info.n_datasets}: they MUST be equal",
                )

    def plate(self, node: _Node, *, with_attributes: bool = True) -> None:
        if with_attributes:
            self.attributes(node, "plate")
        plate = _as_dict(self.md(node).get("plate"))
        rows, columns = _names(plate.get("rows")), _names(plate.get("columns"))
        listed: set[str] = set()
        checked_rows: set[str] = set()
        firsts: dict[str, tuple[Any, ...]] = {}
        for well in _as_list(plate.get("wells")):
            path = _as_dict(well).get("path")
            if not _safe_relative(path) or len(path.split("/")) != 2 or path in listed:
                continue
            listed.add(path)
            row = path.split("/")[0]
            if row not in checked_rows:
                checked_rows.add(row)
                row_rel = _join(node.path, row)
                if (self.root / row_rel).is_dir():
                    row_node = self.require(row_rel, f"row group {row!r}", "group")
                    if row_node is not None:
                        self.check_group_version(row_node)
            well_node = self.require(
                _join(node.path, path), f"well {path!r} listed in the plate metadata", "group"
            )
            if well_node is None:
                continue
            first = self.well(well_node, plate)
            if first is not None:
                firsts[path] = (
                    first.path.rsplit("/", 1)[-1],
                    tuple(lv.path.rsplit("/", 1)[-1] for lv in first.levels),
                    tuple(lv.dtype for lv in first.levels),
                    tuple(len(lv.shape) if lv.shape else None for lv in first.levels),
                )
        for row in rows:
            for column in columns:
                path = f"{row}/{column}"
                rel = _join(node.path, path)
                if path not in listed and (self.root / rel).is_dir() and self.node(rel) is not None:
                    self.warn(rel, f"well group {path!r} exists on disk but is not listed in plate.wells")
        if len(set(firsts.values())) > 1:
            ref_path, ref = next(iter(firsts.items()))
            odd = [p for p, v in firsts.items() if v != ref]
            self.warn(
                node.path,
                f"the first field of well(s) {_list_text(odd)} differs from well {ref_path!r} in field path, "
                "level paths, dtype or ndim: napari and vizarr plate views assume they are identical",
            )

    def well(self, node: _Node, plate: dict[str, Any] | None) -> _ImageInfo | None:
        """Check a well group and its fields; ``plate`` is the plate metadata when known."""
        self.attributes(node, "well")
        well = _as_dict(self.md(node).get("well"))
        images = [i for i in _as_list(well.get("images")) if isinstance(i, dict)]
        if plate is not None:
            self.well_acquisitions(node, images, plate)
        first: _ImageInfo | None = None
        seen: set[str] = set()
        for image in images:
            path = image.get("path")
            if not _safe_relative(path) or path in seen:
                continue
            seen.add(path)
            field_node = self.require(
                _join(node.path, path), f"field {path!r} listed in the well metadata", "group"
            )
            if field_node is None:
                continue
            info = self.image(field_node)
            if first is None:
                first = info
        return first

    def well_acquisitions(self, node: _Node, images: list[dict[str, Any]], plate: dict[str, Any]) -> None:
        acquisitions = [a for a in _as_list(plate.get("acquisitions")) if isinstance(a, dict)]
        ids = {a["id"] for a in acquisitions if _is_int(a.get("id"))}
        field_count = plate.get("field_count")
        if _is_int(field_count) and len(images) > field_count:
            self.warn(
                node.path, f"well has {len(images)} fields but the plate's field_count is {field_count}"
            )
        prefix = "ome/" if self.version == "0.5" else ""
        for k, image in enumerate(images):
            loc = f"{prefix}well/images/{k}"
            acquisition = image.get("acquisition")
            if _is_int(acquisition) and "acquisitions" in plate and acquisition not in ids:
                self.error(
                    node.path,
                    f"{loc}: acquisition {acquisition} is not among the plate's acquisition "
                    f"ids {sorted(ids)}",
                )
            elif _is_int(acquisition) and "acquisitions" not in plate:
                self.warn(node.path, f"{loc}: refers to acquisition {acquisition} but the plate defines none")
            elif acquisition is None and len(acquisitions) > 1:
                self.error(
                    node.path,
                    f"{loc}: the plate has several acquisitions, so each field MUST name its 'acquisition'",
                )

    def bf2raw(self, node: _Node) -> None:
        self.attributes(node, "bf2raw")
        md = self.md(node)
        if "plate" in md:
            self.plate(node, with_attributes=False)
            return
        paths: list[str] = []
        ome_rel = _join(node.path, "OME")
        ome = self.node(ome_rel) if (self.root / ome_rel).is_dir() else None
        if ome is not None:
            ome = self.require(ome_rel, "OME group", "group")
        if ome is not None and "series" in self.md(ome):
            self.attributes(ome, "ome")
            paths = [p for p in _as_list(self.md(ome).get("series")) if _safe_relative(p)]
        else:
            while self.node(_join(node.path, str(len(paths)))) is not None:
                paths.append(str(len(paths)))
            if not paths:
                self.error(
                    node.path, "bioformats2raw.layout collection has no image group '0' (and no OME/series)"
                )
        for path in dict.fromkeys(paths):
            image = self.require(_join(node.path, path), f"series image {path!r}", "group")
            if image is not None:
                self.image(image)

    # -- entry --------------------------------------------------------------------------------

    def detect(self, node: _Node) -> tuple[str | None, dict[str, Any]]:
        """Find the OME-NGFF version and metadata of the top node; report what is wrong."""
        attrs = node.attrs
        if node.zarr_format == 3:
            ome = attrs.get("ome")
            if isinstance(ome, dict):
                version = ome.get("version")
                if version is None:
                    self.error(node.path, 'attributes.ome has no \'version\': 0.5 requires "version": "0.5"')
                elif version == "0.4":
                    self.error(
                        node.path,
                        "ome.version '0.4' in a Zarr v3 group: OME-NGFF 0.4 uses Zarr v2 and "
                        "0.5 requires ome.version '0.5'",
                    )
                elif version != "0.5":
                    self.error(
                        node.path,
                        f"OME-NGFF version {version!r} is not supported by this validator "
                        "(0.4 on Zarr v2, 0.5 on Zarr v3)",
                    )
                    return None, {}
                return "0.5", ome
            found = [k for k in _OME_KEYS if k in attrs]
            if found:
                self.error(
                    node.path,
                    f"no OME-NGFF metadata found: the Zarr v3 group has {found} directly in "
                    "its attributes, but 0.5 puts them under attributes.ome with ome.version '0.5'",
                )
                return None, {}
            return None, {}
        if isinstance(attrs.get("ome"), dict):
            self.error(
                node.path,
                "no OME-NGFF metadata found: 'ome' attributes in a Zarr v2 group, but 0.5 "
                "requires Zarr v3 (zarr.json)",
            )
            return None, {}
        if not any(k in attrs for k in _OME_KEYS):
            return None, {}
        candidates = [
            *(ms.get("version") for ms in _as_list(attrs.get("multiscales")) if isinstance(ms, dict)),
            *(_as_dict(attrs.get(k)).get("version") for k in ("plate", "well", "image-label")),
        ]
        version = next((v for v in candidates if v is not None), "0.4")
        if version != "0.4":
            self.error(
                node.path,
                f"OME-NGFF version {version!r} is not supported by this validator "
                "(0.4 on Zarr v2, 0.5 on Zarr v3)",
            )
            return None, {}
        return "0.4", attrs

    def run(self) -> None:
        node = self.node("")
        if node is None:
            if "" not in self.unreadable:
                self.error("", f"no OME-NGFF metadata found: no zarr.json, .zgroup or .zattrs in {self.root}")
            return
        if node.node_type != "group":
            self.error("", "no OME-NGFF metadata found: the top level is a Zarr array, not a group")
            return
        version, md = self.detect(node)
        if version is None:
            if not any(p.severity == "error" for p in self.problems):
                self.error(
                    "", f"no OME-NGFF metadata found in the top-level group's attributes of {self.root}"
                )
            return
        self.version = version
        if "plate" in md and "bioformats2raw.layout" not in md:
            self.plate(node)
        elif "bioformats2raw.layout" in md:
            self.bf2raw(node)
        elif "well" in md:
            self.well(node, None)
        elif "multiscales" in md:
            self.image(node, "label" if "image-label" in md else "image")
        elif "labels" in md:
            self.labels_group(node, None)
        elif "series" in md:
            self.attributes(node, "ome")
        else:
            self.error(
                "",
                "no OME-NGFF metadata found: attributes.ome has no multiscales, plate, well, labels "
                "or bioformats2raw.layout",
            )


def validate_store(path: str | os.PathLike[str], *, strict: bool = False) -> list[Problem]:
    """Validate a whole OME-Zarr store on the local file system.

    The version (0.4 on Zarr v2, 0.5 on Zarr v3) and the kind of the top-level group (image,
    label image, plate, well, labels group, bioformats2raw collection) are detected; the
    hierarchy is walked (plate -> wells -> fields -> labels) and every group's metadata is
    checked with :func:`validate_attributes`. On top of that: every dataset path is an array of
    the right Zarr format; ndim == len(axes); one dtype and non-increasing shapes down the
    pyramid; 0.5 ``dimension_names`` equal the axis names and sharding inner chunks divide the
    shard; 0.4 ``dimension_separator`` is ``"/"`` and ``multiscales[].version`` is present;
    label images are integer and have as many levels as their image; plate wells and well
    fields exist; well acquisitions exist in the plate; omero channels match the channel axis.

    Parameters
    ----------
    path : str or os.PathLike
        The store's top-level folder.
    strict : bool
        Use the official ``strict_*`` schemas.

    Returns
    -------
    list of Problem
        Empty for a valid store. A folder without OME-NGFF metadata yields one error whose
        message starts with ``"no OME-NGFF metadata found"``.
    """
    root = Path(path)
    if not root.exists():
        return [Problem("", f"no OME-NGFF metadata found: {root} does not exist")]
    if not root.is_dir():
        return [
            Problem(
                "", f"no OME-NGFF metadata found: {root} is not a folder (only directory stores are read)"
            )
        ]
    walker = _Walker(root, strict)
    walker.run()
    return walker.problems


def check_store(path: str | os.PathLike[str], *, strict: bool = False) -> None:
    """Raise when a store has any error-severity problem.

    Parameters
    ----------
    path : str or os.PathLike
        The store's top-level folder.
    strict : bool
        Use the official ``strict_*`` schemas.

    Raises
    ------
    ValidationError
        With a summary: the number of errors, then the first ones, one per line.
    """
    errors = [p for p in validate_store(path, strict=strict) if p.severity == "error"]
    if not errors:
        return
    lines = [f"{os.fspath(path)} is not valid OME-NGFF: {len(errors)} error(s)"]
    lines += [f"  {p.where or '.'}: {p.message}" for p in errors[:_SUMMARY_LINES]]
    if len(errors) > _SUMMARY_LINES:
        lines.append(f"  ... and {len(errors) - _SUMMARY_LINES} more")
    raise ValidationError("\n".join(lines))
