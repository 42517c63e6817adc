"""BigDataViewer / BigStitcher SpimData XML: a typed model, a hardened parser and a writer.

Format reference: ``shared/reference/bdv.md`` (spimdata, bigdataviewer-core and
multiview-reconstruction sources). The essentials:

* A view is one (timepoint, setup). Its model is the product of its ``ViewTransform`` affines in
  document order, ``M = T0 · T1 · … · Tn-1``: the last listed transform applies to pixels first.
  ``M`` maps full-resolution pixel coordinates (x, y, z) to world coordinates.
* ``<affine>`` holds 12 numbers, a row-major 3×4 matrix; ``<size>``, ``<voxelSize>``,
  ``<location>`` are x, y, z.
* Loader paths (``type="relative"``) are resolved against ``BasePath``, itself resolved against
  the XML file's folder.

Safety. The parser never expands entities, never loads a DTD or anything external
(``defusedxml``, with DTDs forbidden outright: SpimData files have none), bounds the input size,
and refuses loader paths that leave the project folder (the XML's folder) unless
``allow_absolute_paths``; remote URIs (``s3://``, ``http://``) are always refused. Every problem
is a :class:`~ngff_tiles.errors.MetadataError` naming the file. :func:`parse_spimdata_bytes` is the
entry point to fuzz.

Round trip. :meth:`SpimData.to_bytes` rewrites the document it was parsed from: the
``ViewRegistrations`` come from the model (so transforms can be added or replaced), every other
element, including ones this module does not know (``<generatedBy>``, per-setup ``<camera>``,
BigStitcher's interest points and stitching results), is written back as it was read. Leaf text is
never re-indented: spimdata splits numbers on the untrimmed text.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ngff_tiles.errors import MetadataError, MissingDependencyError

__all__ = [
    "ATTRIBUTE_KINDS",
    "MAX_XML_BYTES",
    "AttributeEntry",
    "ImageLoader",
    "SpimData",
    "ViewSetup",
    "ViewTransform",
    "ZGroup",
    "affine_to_text",
    "build_spimdata_xml",
    "parse_spimdata",
    "parse_spimdata_bytes",
    "registrations_element",
    "tostring",
    "unit_to_um",
]

MAX_XML_BYTES = 256 * 2**20
"""Larger XML files are refused (BigStitcher projects with interest points stay far below)."""

ATTRIBUTE_KINDS: tuple[str, ...] = ("illumination", "channel", "tile", "angle")
"""The view-setup attributes BigStitcher defines, in the order it writes them."""

_ATTRIBUTE_TAGS = {"illumination": "Illumination", "channel": "Channel", "tile": "Tile", "angle": "Angle"}

_UNITS_UM = {
    "µm": 1.0,
    "μm": 1.0,  # Greek mu
    "um": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "nanometre": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
    "millimetre": 1e3,
    "cm": 1e4,
    "m": 1e6,
    "meter": 1e6,
    "metre": 1e6,
}
_PIXEL_UNITS = ("pixel", "pixels", "px", "")


def unit_to_um(unit: str | None) -> float | None:
    """Return how many µm one ``unit`` is; ``None`` for pixel units (no physical length)."""
    u = (unit or "").strip()
    if u.lower() in _PIXEL_UNITS:
        return None
    factor = _UNITS_UM.get(u, _UNITS_UM.get(u.lower()))
    if factor is None:
        raise ValueError(f"unknown length unit {unit!r}")
    return factor


# ---------------------------------------------------------------------------------------------
# model


@dataclass(frozen=True, slots=True)
class ViewTransform:
    """One ``<ViewTransform type="affine">``.

    Attributes
    ----------
    affine
        Row-major 3×4 matrix as 12 numbers (x, y, z).
    name
        The ``<Name>`` (``None`` when absent).
    """

    affine: tuple[float, ...]
    name: str | None = None

    def __post_init__(self) -> None:
        values = tuple(float(v) for v in self.affine)
        if len(values) != 12 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"Expected 12 finite numbers for an affine, got {self.affine!r} instead")
        object.__setattr__(self, "affine", values)

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, name: str | None = None) -> ViewTransform:
        """Build a transform from a 3×4 or 4×4 (x, y, z) matrix."""
        m = np.asarray(matrix, dtype=np.float64)
        return cls(tuple(float(v) for v in m[:3, :4].ravel()), name)

    @classmethod
    def translation(cls, xyz: Sequence[float], name: str | None = None) -> ViewTransform:
        """A pure translation by (x, y, z)."""
        m = np.eye(4)
        m[:3, 3] = [float(v) for v in xyz]
        return cls.from_matrix(m, name)

    def matrix(self) -> np.ndarray:
        """Return the 4×4 (x, y, z) matrix."""
        m = np.eye(4)
        m[:3, :] = np.asarray(self.affine, dtype=np.float64).reshape(3, 4)
        return m


@dataclass(frozen=True, slots=True)
class AttributeEntry:
    """One declared attribute value (``<Channel><id>0</id><name>DAPI</name></Channel>``).

    ``location`` is the optional x, y, z ``<location>`` of a ``Tile``; ``axis``/``degrees`` of an
    ``Angle``.
    """

    id: int
    name: str
    location: tuple[float, float, float] | None = None
    axis: tuple[float, float, float] | None = None
    degrees: float | None = None


@dataclass(frozen=True, slots=True)
class ViewSetup:
    """One ``<ViewSetup>``.

    Attributes
    ----------
    id
        Setup id (unique, not necessarily contiguous).
    name
        ``<name>`` or ``None``.
    size_xyz
        Full-resolution size in pixels, x, y, z (``None`` when absent).
    voxel_size_xyz
        Voxel size x, y, z in ``voxel_unit`` (``None`` when absent).
    voxel_unit
        Unit text as written (``µm``, ``um``, ``nm``, ``pixel`` ...).
    attributes
        Attribute kind (``channel``, ``tile``, ...) to id.
    """

    id: int
    name: str | None
    size_xyz: tuple[int, int, int] | None
    voxel_size_xyz: tuple[float, float, float] | None
    voxel_unit: str | None
    attributes: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class ZGroup:
    """Where a view's image lives in a ``bdv.multimg.zarr`` container.

    ``path`` is relative to the container root; ``indices`` are the (c, t) hyper-slice of a 5-D
    array (version 3.0 ``indicies``), empty for none.
    """

    path: str
    indices: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageLoader:
    """The parsed ``<ImageLoader>``.

    Attributes
    ----------
    format
        The ``format`` attribute (``bdv.hdf5``, ``bdv.n5``, ``bdv.multimg.zarr``, ...).
    version
        The ``version`` attribute, if any.
    path
        The container (HDF5 file, N5 or Zarr root), resolved and checked; ``None`` for loaders
        that have no single container (TIFF file lists).
    zgroups
        ``bdv.multimg.zarr``: (timepoint, setup) to :class:`ZGroup`.
    partitions
        ``bdv.hdf5``: partition files with the (timepoint, setup) views they hold.
    """

    format: str
    version: str | None
    path: Path | None
    zgroups: Mapping[tuple[int, int], ZGroup] = field(default_factory=dict)
    partitions: tuple[tuple[Path, frozenset[int] | None, frozenset[int] | None], ...] = ()


@dataclass(frozen=True, slots=True)
class SpimData:
    """A parsed SpimData document.

    Attributes
    ----------
    source
        The file it was read from (for messages), or a name given to :func:`parse_spimdata_bytes`.
    project_dir
        The folder loader paths must stay in (the XML's folder).
    base_path
        ``BasePath`` resolved.
    loader
        The image loader.
    setups
        Setup id to :class:`ViewSetup`.
    attributes
        Attribute kind to (id to :class:`AttributeEntry`).
    timepoints
        Timepoint ids in document order.
    missing
        (timepoint, setup) views declared missing.
    registrations
        (timepoint, setup) to its transforms in document order.
    root
        The parsed element tree, kept to write unknown elements back (:meth:`to_bytes`).
    """

    source: str
    project_dir: Path
    base_path: Path
    loader: ImageLoader
    setups: Mapping[int, ViewSetup]
    attributes: Mapping[str, Mapping[int, AttributeEntry]]
    timepoints: tuple[int, ...]
    missing: frozenset[tuple[int, int]]
    registrations: Mapping[tuple[int, int], tuple[ViewTransform, ...]]
    root: ET.Element = field(repr=False, compare=False)

    def views(self) -> list[tuple[int, int]]:
        """Return the present (timepoint, setup) views, timepoints in document order."""
        return [(t, s) for t in self.timepoints for s in sorted(self.setups) if (t, s) not in self.missing]

    def model(self, timepoint: int, setup: int) -> np.ndarray:
        """Return the 4×4 (x, y, z) pixel-to-world matrix of a view: the product in document order."""
        m = np.eye(4)
        with np.errstate(over="ignore", invalid="ignore"):  # checked below
            for t in self.registrations.get((timepoint, setup), ()):
                m = m @ t.matrix()
        if not (np.all(np.isfinite(m)) and np.abs(m).max() <= MAX_MODEL_ENTRY):
            raise _err(
                self.source,
                f"view (timepoint {timepoint}, setup {setup}): its transforms compose to a matrix "
                f"with entries beyond ±{MAX_MODEL_ENTRY:g}",
            )
        return m

    def attribute_name(self, kind: str, setup: int) -> str | None:
        """Return the declared name of a setup's ``kind`` attribute (its id as text if undeclared)."""
        ident = self.setups[setup].attributes.get(kind)
        if ident is None:
            return None
        entry = self.attributes.get(kind, {}).get(ident)
        return entry.name if entry is not None else str(ident)

    def world_scale_um(self) -> tuple[tuple[float, float, float], str]:
        """Return the µm per world unit along x, y, z, and how it was found.

        BigStitcher's world unit is the smallest voxel size, made explicit by a last transform
        named ``calibration`` that is diagonal: the unit is ``voxel / calibration`` (checked to
        agree across axes and views). Our own exports record it in ``<ngffTiles worldUnitUm>``.
        Without either, the world is taken to be each view's pixel grid (``voxel`` per axis),
        which is what files without calibration (AIND/BigStitcher-Spark) use.
        """
        ours = self.root.find("ngffTiles")
        if ours is not None and ours.get("worldUnitUm") is not None:
            u = _float(ours.get("worldUnitUm", ""), self.source, "ngffTiles/@worldUnitUm")
            if not (u > 0 and math.isfinite(u)):
                raise MetadataError(f"{self.source}: ngffTiles worldUnitUm must be positive, got {u}")
            return (u, u, u), "ngffTiles"
        units: list[float] = []
        calibrated = True
        for view in self.views():
            transforms = self.registrations.get(view, ())
            setup = self.setups[view[1]]
            if not transforms or transforms[-1].name != "calibration" or setup.voxel_size_xyz is None:
                calibrated = False
                break
            m = transforms[-1].matrix()
            if np.any(np.abs(m[:3, :3] - np.diag(np.diag(m[:3, :3]))) > 1e-12) or np.any(m[:3, 3] != 0):
                calibrated = False
                break
            scale = _voxel_um(self, setup)
            diag = np.diag(m)[:3]
            if np.any(diag <= 0):
                calibrated = False
                break
            units.extend(float(v) for v in np.asarray(scale) / diag)
        if calibrated and units:
            u = units[0]
            if all(math.isclose(v, u, rel_tol=1e-6) for v in units):
                return (u, u, u), "calibration"
        # no (consistent) calibration: the world scale that makes each view's columns its voxel
        # size (the median over views): 1 for a world in physical units (pybdv), the voxel size
        # for transforms in pixel units (AIND / BigStitcher-Spark files without calibration)
        ratios = []
        for view in self.views():
            m = self.model(*view)
            norms = np.linalg.norm(m[:3, :3], axis=0)
            if np.any(norms <= 0):
                raise MetadataError(f"{self.source}: the transforms of view {view} are singular")
            ratios.append(np.asarray(_voxel_um(self, self.setups[view[1]])) / norms)
        if not ratios:
            return (1.0, 1.0, 1.0), "none"
        med = np.median(np.asarray(ratios), axis=0)
        if np.allclose(med, med[0], rtol=1e-6):
            v = float(med[0])
            return (v, v, v), "column norms"
        return (float(med[0]), float(med[1]), float(med[2])), "column norms (per axis)"

    def with_registrations(
        self, registrations: Mapping[tuple[int, int], Sequence[ViewTransform]]
    ) -> SpimData:
        """Return a copy whose registrations of the given views are replaced."""
        regs = dict(self.registrations)
        for view, transforms in registrations.items():
            if view not in regs:
                raise KeyError(f"no view (timepoint, setup) {view}")
            regs[view] = tuple(transforms)
        return dataclasses.replace(self, registrations=regs)

    def to_bytes(self) -> bytes:
        """Serialise as UTF-8 XML: ``ViewRegistrations`` from the model, the rest as read."""
        root = _copy_tree(self.root)
        old = root.find("ViewRegistrations")
        new = registrations_element(self.registrations)
        if old is None:
            root.append(new)
        else:
            root[list(root).index(old)] = new
        return tostring(root)


def _voxel_um(sd: SpimData, setup: ViewSetup) -> tuple[float, float, float]:
    if setup.voxel_size_xyz is None:
        return (1.0, 1.0, 1.0)
    try:
        factor = unit_to_um(setup.voxel_unit)
    except ValueError as exc:
        raise MetadataError(f"{sd.source}: ViewSetup {setup.id}: {exc}") from None
    f = 1.0 if factor is None else factor
    x, y, z = setup.voxel_size_xyz
    return (x * f, y * f, z * f)


# ---------------------------------------------------------------------------------------------
# writing helpers


def affine_to_text(values: Iterable[float]) -> str:
    """Return the ``<affine>`` text: numbers as ``repr`` (17 significant digits), one space apart."""
    return " ".join(repr(float(v)) for v in values)


def registrations_element(registrations: Mapping[tuple[int, int], Sequence[ViewTransform]]) -> ET.Element:
    """Return a ``<ViewRegistrations>`` element for ``registrations`` (sorted by timepoint, setup)."""
    el = ET.Element("ViewRegistrations")
    for (tp, setup), transforms in sorted(registrations.items()):
        vr = ET.SubElement(el, "ViewRegistration", {"timepoint": str(tp), "setup": str(setup)})
        for t in transforms:
            vt = ET.SubElement(vr, "ViewTransform", {"type": "affine"})
            if t.name is not None:
                ET.SubElement(vt, "Name").text = t.name
            ET.SubElement(vt, "affine").text = affine_to_text(t.affine)
    return el


def tostring(root: ET.Element) -> bytes:
    """Serialise ``root`` indented (leaf text untouched), UTF-8 with an XML declaration."""
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")


def _copy_tree(el: ET.Element) -> ET.Element:
    out = ET.Element(el.tag, dict(el.attrib))
    out.text, out.tail = el.text, el.tail
    out.extend(_copy_tree(child) for child in el)
    return out


# ---------------------------------------------------------------------------------------------
# parsing


MAX_MODEL_ENTRY = 1e12
"""Largest entry a view's composed pixel-to-world matrix may have (world units: µm or voxels)."""


def _err(source: str, what: str) -> MetadataError:
    return MetadataError(f"{source}: {what}")


def _float(text: str, source: str, where: str) -> float:
    try:
        v = float(text.strip())
    except ValueError:
        raise _err(source, f"{where}: expected a number, got {text.strip()[:40]!r}") from None
    if not math.isfinite(v):
        raise _err(source, f"{where}: expected a finite number, got {text.strip()[:40]!r}")
    return v


def _int(text: str | None, source: str, where: str) -> int:
    if text is None:
        raise _err(source, f"{where}: missing")
    t = text.strip()
    if not re.fullmatch(r"[+-]?\d{1,18}", t):
        raise _err(source, f"{where}: expected an integer, got {t[:40]!r}")
    return int(t)


def _numbers(el: ET.Element | None, n: int | None, source: str, where: str) -> tuple[float, ...]:
    if el is None:
        raise _err(source, f"missing <{where}>")
    parts = (el.text or "").split()
    if n is not None and len(parts) != n:
        raise _err(source, f"<{where}>: expected {n} numbers, got {len(parts)}")
    return tuple(_float(p, source, f"<{where}>") for p in parts)


def _text(el: ET.Element | None) -> str | None:
    return None if el is None or el.text is None else el.text.strip()


def _attr_int(el: ET.Element, name: str, source: str) -> int:
    return _int(el.get(name), source, f"<{el.tag}> attribute {name!r}")


def _load_defused() -> Any:
    try:
        import defusedxml.ElementTree as DET
    except ImportError:
        raise MissingDependencyError(
            "reading BigDataViewer XML needs defusedxml: pip install defusedxml"
        ) from None
    return DET


def _parse_xml(data: bytes, source: str) -> ET.Element:
    if len(data) > MAX_XML_BYTES:
        raise _err(source, f"XML of {len(data)} bytes is larger than the {MAX_XML_BYTES} bytes allowed")
    DET = _load_defused()
    import defusedxml

    try:
        root: ET.Element = DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        raise _err(source, "XML with a DTD (<!DOCTYPE ...>) is refused: SpimData files have none") from None
    except defusedxml.EntitiesForbidden:
        raise _err(source, "XML entity declarations are refused") from None
    except defusedxml.ExternalReferenceForbidden:
        raise _err(source, "XML external references are refused") from None
    except defusedxml.DefusedXmlException as exc:
        raise _err(source, f"unsafe XML refused: {exc}") from None
    except ET.ParseError as exc:
        raise _err(source, f"not well-formed XML: {exc}") from None
    except (RecursionError, MemoryError):
        raise _err(source, "XML nested too deeply or too large to parse") from None
    except LookupError as exc:  # an unknown encoding in the XML declaration
        raise _err(source, f"unreadable XML: {exc}") from None
    except (ValueError, UnicodeError) as exc:
        raise _err(source, f"not well-formed XML: {exc}") from None
    return root


def parse_spimdata_bytes(
    data: bytes,
    source: str = "<bytes>",
    *,
    project_dir: str | os.PathLike[str] | None = None,
    allow_absolute_paths: bool = False,
) -> SpimData:
    """Parse SpimData XML from bytes; the entry point to fuzz.

    Parameters
    ----------
    data
        The XML document.
    source
        Name for messages (the file path when there is one).
    project_dir
        Folder that relative paths are resolved against and must stay inside (the XML's folder);
        the current directory when ``None``.
    allow_absolute_paths
        Accept loader paths outside ``project_dir`` (absolute, or ``..``-escaping). Remote URIs
        are refused regardless.

    Raises
    ------
    MetadataError
        For anything that is not a well-formed, safe, complete SpimData document.
    """
    root = _parse_xml(bytes(data), source)
    try:
        return _build(root, source, Path(project_dir or "."), allow_absolute_paths)
    except RecursionError:
        raise _err(source, "XML nested too deeply") from None


def parse_spimdata(path: str | os.PathLike[str], *, allow_absolute_paths: bool = False) -> SpimData:
    """Read and parse a SpimData XML file (see :func:`parse_spimdata_bytes`)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_XML_BYTES:
            raise _err(str(p), f"XML of {size} bytes is larger than the {MAX_XML_BYTES} bytes allowed")
        data = p.read_bytes()
    except OSError as exc:
        raise MetadataError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_spimdata_bytes(
        data, str(p), project_dir=p.parent.resolve(), allow_absolute_paths=allow_absolute_paths
    )


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _resolve(
    text: str | None,
    kind: str | None,
    against: Path,
    project: Path,
    allow_absolute: bool,
    source: str,
    where: str,
) -> Path:
    """Resolve a loader path and refuse what leaves the project folder."""
    if text is None or not text.strip():
        raise _err(source, f"<{where}>: empty path")
    raw = text.strip()
    if "\x00" in raw:
        raise _err(source, f"<{where}>: path contains a NUL character")
    if raw.startswith("file:"):
        from urllib.parse import unquote, urlparse

        u = urlparse(raw)
        if u.netloc not in ("", "localhost"):
            raise _err(source, f"<{where}>: remote file URI {raw[:80]!r} is not supported")
        raw = unquote(u.path)
    elif _URI.match(raw):
        raise _err(source, f"<{where}>: remote location {raw[:80]!r} is not supported (local files only)")
    candidate = Path(raw)
    absolute = (kind or "relative").strip() == "absolute" or candidate.is_absolute()
    resolved = Path(os.path.realpath(candidate if candidate.is_absolute() else against / candidate))
    if not allow_absolute:
        proj = Path(os.path.realpath(project))
        if absolute:
            raise _err(
                source,
                f"<{where}>: absolute path {raw[:120]!r} refused; pass --allow-absolute-paths to accept it",
            )
        if resolved != proj and proj not in resolved.parents:
            raise _err(
                source,
                f"<{where}>: path {raw[:120]!r} leaves the project folder {proj}; "
                "pass --allow-absolute-paths to accept it",
            )
    return resolved


def _ids(text: str | None, source: str, where: str) -> frozenset[int] | None:
    if text is None:
        return None
    return frozenset(_int(p, source, where) for p in text.replace(",", " ").split())


def _integer_pattern(text: str, source: str) -> list[int]:
    """Expand a BigStitcher integer pattern: ``0``, ``0-9``, ``0,3,5``, ``0-10:2``."""
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(-?\d{1,9})(?:-(-?\d{1,9})(?::(\d{1,9}))?)?", part)
        if m is None:
            raise _err(source, f"<integerpattern>: cannot read {part[:40]!r}")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        step = int(m.group(3)) if m.group(3) is not None else 1
        if step < 1 or last < first or (last - first) // step > 1_000_000:
            raise _err(source, f"<integerpattern>: bad range {part[:40]!r}")
        out.extend(range(first, last + 1, step))
    return out


def _timepoints(el: ET.Element | None, source: str) -> tuple[int, ...]:
    if el is None:
        raise _err(source, "missing <Timepoints>")
    kind = (el.get("type") or "").strip()
    if kind == "pattern":
        ids = _integer_pattern(_text(el.find("integerpattern")) or "", source)
    elif kind == "range":
        first = _int(_text(el.find("first")), source, "<Timepoints><first>")
        last = _int(_text(el.find("last")), source, "<Timepoints><last>")
        if last < first or last - first > 1_000_000:
            raise _err(source, f"<Timepoints>: bad range {first}..{last}")
        ids = list(range(first, last + 1))
    elif kind == "list":
        ids = [_int(_text(tp.find("id")), source, "<Timepoint><id>") for tp in el.findall("Timepoint")]
    else:
        raise _err(source, f"<Timepoints type={kind!r}>: expected pattern, range or list")
    if not ids:
        raise _err(source, "<Timepoints>: no timepoints")
    if len(set(ids)) != len(ids):
        raise _err(source, "<Timepoints>: a timepoint is listed twice")
    return tuple(ids)


def _attribute_entries(vss: ET.Element, source: str) -> dict[str, dict[int, AttributeEntry]]:
    out: dict[str, dict[int, AttributeEntry]] = {}
    for block in vss.findall("Attributes"):
        kind = (block.get("name") or "").strip()
        if not kind:
            raise _err(source, "<Attributes> without a name")
        entries: dict[int, AttributeEntry] = {}
        for e in block:
            ident = _int(_text(e.find("id")), source, f"<{e.tag}><id>")
            name = _text(e.find("name"))
            loc = e.find("location")
            axis = e.find("axis")
            deg = e.find("degrees")
            location = _numbers(loc, 3, source, f"{e.tag}/location") if loc is not None else None
            ax = _numbers(axis, 3, source, f"{e.tag}/axis") if axis is not None else None
            entries[ident] = AttributeEntry(
                id=ident,
                name=name if name is not None else str(ident),
                location=(location[0], location[1], location[2]) if location else None,
                axis=(ax[0], ax[1], ax[2]) if ax else None,
                degrees=_float(deg.text or "", source, f"{e.tag}/degrees") if deg is not None else None,
            )
        out[kind] = entries
    return out


def _setup(el: ET.Element, source: str, declared: Mapping[str, Mapping[int, AttributeEntry]]) -> ViewSetup:
    ident = _int(_text(el.find("id")), source, "<ViewSetup><id>")
    where = f"ViewSetup {ident}"
    size_el = el.find("size")
    size: tuple[int, int, int] | None = None
    if size_el is not None:
        parts = (size_el.text or "").split()
        if len(parts) != 3:
            raise _err(source, f"{where}: <size> needs 3 integers, got {len(parts)}")
        vals = [_int(p, source, f"{where} <size>") for p in parts]
        if min(vals) < 1:
            raise _err(source, f"{where}: <size> must be positive, got {vals}")
        size = (vals[0], vals[1], vals[2])
    voxel: tuple[float, float, float] | None = None
    unit: str | None = None
    vs = el.find("voxelSize")
    if vs is not None:
        v = _numbers(vs.find("size"), 3, source, f"{where} voxelSize/size")
        if min(v) <= 0:
            raise _err(source, f"{where}: voxel size must be positive, got {v}")
        voxel = (v[0], v[1], v[2])
        unit = _text(vs.find("unit"))
        try:
            unit_to_um(unit)
        except ValueError as exc:
            raise _err(source, f"{where}: {exc}") from None
    attrs: dict[str, int] = {}
    a = el.find("attributes")
    if a is not None:
        for child in a:
            kind = str(child.tag)
            aid = _int(child.text, source, f"{where} attribute {kind}")
            if kind in declared and aid not in declared[kind]:
                raise _err(source, f"{where}: {kind} id {aid} is not declared in <Attributes name={kind!r}>")
            attrs[kind] = aid
    return ViewSetup(ident, _text(el.find("name")), size, voxel, unit, attrs)


def _loader(
    el: ET.Element | None, source: str, base: Path, project: Path, allow_absolute: bool
) -> ImageLoader:
    if el is None:
        raise _err(source, "missing <ImageLoader>")
    fmt = (el.get("format") or "").strip()
    if not fmt:
        if el.get("class"):
            raise _err(
                source, f"legacy <ImageLoader class={el.get('class')!r}> (SpimData 1.0) is not supported"
            )
        raise _err(source, "<ImageLoader> has no format")
    version = el.get("version")

    def resolve(child: ET.Element, where: str) -> Path:
        return _resolve(child.text, child.get("type"), base, project, allow_absolute, source, where)

    if fmt == "bdv.hdf5":
        h5 = el.find("hdf5")
        if h5 is None:
            raise _err(source, "bdv.hdf5 loader without <hdf5>")
        parts = []
        for part in el.findall("partition"):
            p = part.find("path")
            if p is None:
                raise _err(source, "<partition> without <path>")
            for what in ("timepoints", "setups"):
                mapped = _text(part.find(f"{what}Mapped"))
                if mapped is not None and mapped.split() != (_text(part.find(what)) or "").split():
                    raise _err(source, f"<partition> with remapped {what} ({what}Mapped) is not supported")
            parts.append(
                (
                    resolve(p, "partition/path"),
                    _ids(_text(part.find("timepoints")), source, "partition/timepoints"),
                    _ids(_text(part.find("setups")), source, "partition/setups"),
                )
            )
        return ImageLoader(fmt, version, resolve(h5, "hdf5"), partitions=tuple(parts))
    if fmt == "bdv.n5":
        n5 = el.find("n5")
        if n5 is None:
            raise _err(source, "bdv.n5 loader without <n5>")
        return ImageLoader(fmt, version, resolve(n5, "n5"))
    if fmt == "bdv.multimg.zarr":
        z = el.find("zarr")
        if z is None:
            raise _err(source, "bdv.multimg.zarr loader without <zarr>")
        if _text(el.find("s3bucket")):
            raise _err(source, "bdv.multimg.zarr on S3 (<s3bucket>) is not supported (local files only)")
        groups: dict[tuple[int, int], ZGroup] = {}
        zgs = el.find("zgroups")
        for zg in zgs.findall("zgroup") if zgs is not None else []:
            setup = _attr_int(zg, "setup", source)
            tp_text = zg.get("tp") if zg.get("tp") is not None else zg.get("timepoint")
            tp = _int(tp_text, source, "<zgroup> attribute 'tp'/'timepoint'")
            path = zg.get("path")
            if path is None:
                path = _text(zg.find("path"))
            if not path:
                raise _err(source, f"<zgroup setup={setup}>: no path")
            ind_text = zg.get("indicies", zg.get("indices", ""))
            ind = (ind_text or "").strip()
            indices: tuple[int, ...] = ()
            if ind and ind != "[]":
                indices = tuple(_int(p, source, "<zgroup> indicies") for p in ind.strip("[]").split())
                if len(indices) > 2 or min(indices) < 0:
                    raise _err(source, f"<zgroup setup={setup}>: indicies {ind[:40]!r} must be (c t)")
            groups[(tp, setup)] = ZGroup(path, indices)
        return ImageLoader(fmt, version, resolve(z, "zarr"), zgroups=groups)
    # other loaders (TIFF file maps, Imaris, ...) parse, but have no container we read
    return ImageLoader(fmt, version, None)


def _build(root: ET.Element, source: str, project_dir: Path, allow_absolute: bool) -> SpimData:
    if root.tag != "SpimData":
        raise _err(source, f"root element is <{str(root.tag)[:40]}>, expected <SpimData>")
    project = Path(os.path.realpath(project_dir))
    bp = root.find("BasePath")
    if bp is None or not (bp.text or "").strip():
        base = project
    else:
        base = _resolve(bp.text, bp.get("type"), project, project, allow_absolute, source, "BasePath")
    seq = root.find("SequenceDescription")
    if seq is None:
        raise _err(source, "missing <SequenceDescription>")
    vss = seq.find("ViewSetups")
    if vss is None:
        raise _err(source, "missing <ViewSetups>")
    declared = _attribute_entries(vss, source)
    setups: dict[int, ViewSetup] = {}
    for el in vss.findall("ViewSetup"):
        vs = _setup(el, source, declared)
        if vs.id in setups:
            raise _err(source, f"ViewSetup id {vs.id} is defined twice")
        setups[vs.id] = vs
    if not setups:
        raise _err(source, "no <ViewSetup>")
    timepoints = _timepoints(seq.find("Timepoints"), source)
    missing: set[tuple[int, int]] = set()
    mv = seq.find("MissingViews")
    for m in mv.findall("MissingView") if mv is not None else []:
        missing.add((_attr_int(m, "timepoint", source), _attr_int(m, "setup", source)))
    loader = _loader(seq.find("ImageLoader"), source, base, project, allow_absolute)
    vrs = root.find("ViewRegistrations")
    if vrs is None:
        raise _err(source, "missing <ViewRegistrations>")
    regs: dict[tuple[int, int], tuple[ViewTransform, ...]] = {}
    for vr in vrs.findall("ViewRegistration"):
        view = (_attr_int(vr, "timepoint", source), _attr_int(vr, "setup", source))
        if view[1] not in setups:
            raise _err(source, f"ViewRegistration for setup {view[1]}, which has no <ViewSetup>")
        if view in regs:
            raise _err(source, f"two ViewRegistrations for timepoint {view[0]}, setup {view[1]}")
        transforms = []
        for vt in vr.findall("ViewTransform"):
            kind = (vt.get("type") or "affine").strip()
            if kind != "affine":
                raise _err(source, f"ViewTransform type={kind[:40]!r} (view {view}) is not supported")
            where = f"ViewRegistration t={view[0]} setup={view[1]} affine"
            values = _numbers(vt.find("affine"), 12, source, where)
            name = vt.find("Name")
            transforms.append(ViewTransform(values, _text(name) if name is not None else None))
        regs[view] = tuple(transforms)
    tps = set(timepoints)
    for t, s in sorted(missing):
        if t not in tps or s not in setups:
            raise _err(source, f"MissingView timepoint={t} setup={s} names an unknown view")
    for t in timepoints:
        for s in sorted(setups):
            if (t, s) not in missing and (t, s) not in regs:
                raise _err(source, f"no ViewRegistration for timepoint {t}, setup {s}")
    if loader.format == "bdv.multimg.zarr":
        for t in timepoints:
            for s in sorted(setups):
                if (t, s) not in missing and (t, s) not in loader.zgroups:
                    raise _err(source, f"bdv.multimg.zarr: no <zgroup> for timepoint {t}, setup {s}")
    return SpimData(
        source=source,
        project_dir=project,
        base_path=base,
        loader=loader,
        setups=setups,
        attributes=declared,
        timepoints=timepoints,
        missing=frozenset(missing),
        registrations=regs,
        root=root,
    )


# ---------------------------------------------------------------------------------------------
# building a document (export)


def build_spimdata_xml(
    *,
    loader: ET.Element,
    setups: Sequence[ViewSetup],
    attributes: Mapping[str, Sequence[AttributeEntry]],
    timepoints: Sequence[int],
    missing: Iterable[tuple[int, int]],
    registrations: Mapping[tuple[int, int], Sequence[ViewTransform]],
    provenance: Mapping[str, str] | None = None,
    timepoints_form: str = "pattern",
) -> bytes:
    """Return a complete SpimData 0.2 document as BigStitcher writes it (UTF-8 bytes).

    ``loader`` is the ``<ImageLoader>`` element; ``provenance`` becomes the attributes of an
    ``<ngffTiles>`` element (BigStitcher keeps unknown elements). ``timepoints_form`` is
    ``pattern`` (what BigStitcher writes; pydantic-bigstitcher reads only this) or ``range``
    (for contiguous timepoints; what npy2bdv writes and its editor needs); spimdata reads both.
    """
    root = ET.Element("SpimData", {"version": "0.2"})
    if provenance:
        ET.SubElement(root, "ngffTiles", {k: str(v) for k, v in provenance.items()})
    ET.SubElement(root, "BasePath", {"type": "relative"}).text = "."
    seq = ET.SubElement(root, "SequenceDescription")
    seq.append(loader)
    vss = ET.SubElement(seq, "ViewSetups")
    for s in setups:
        vs = ET.SubElement(vss, "ViewSetup")
        ET.SubElement(vs, "id").text = str(s.id)
        if s.name is not None:
            ET.SubElement(vs, "name").text = s.name
        if s.size_xyz is not None:
            ET.SubElement(vs, "size").text = " ".join(str(int(v)) for v in s.size_xyz)
        if s.voxel_size_xyz is not None:
            vox = ET.SubElement(vs, "voxelSize")
            ET.SubElement(vox, "unit").text = s.voxel_unit or "µm"
            ET.SubElement(vox, "size").text = affine_to_text(s.voxel_size_xyz)
        at = ET.SubElement(vs, "attributes")
        for kind in ATTRIBUTE_KINDS:
            if kind in s.attributes:
                ET.SubElement(at, kind).text = str(s.attributes[kind])
    for kind in ATTRIBUTE_KINDS:
        if kind not in attributes:
            continue
        block = ET.SubElement(vss, "Attributes", {"name": kind})
        for e in attributes[kind]:
            entry = ET.SubElement(block, _ATTRIBUTE_TAGS[kind])
            ET.SubElement(entry, "id").text = str(e.id)
            ET.SubElement(entry, "name").text = e.name
            if e.location is not None:
                ET.SubElement(entry, "location").text = affine_to_text(e.location)
    tp_list = sorted(int(t) for t in timepoints)
    if timepoints_form == "range" and tp_list == list(range(tp_list[0], tp_list[-1] + 1)):
        tps = ET.SubElement(seq, "Timepoints", {"type": "range"})
        ET.SubElement(tps, "first").text = str(tp_list[0])
        ET.SubElement(tps, "last").text = str(tp_list[-1])
    else:
        tps = ET.SubElement(seq, "Timepoints", {"type": "pattern"})
        ET.SubElement(tps, "integerpattern").text = ",".join(str(t) for t in tp_list)
    mv = ET.SubElement(seq, "MissingViews")
    for tp, sid in sorted(missing):
        ET.SubElement(mv, "MissingView", {"timepoint": str(tp), "setup": str(sid)})
    root.append(registrations_element(registrations))
    for name in ("ViewInterestPoints", "BoundingBoxes", "PointSpreadFunctions", "StitchingResults"):
        ET.SubElement(root, name)
    ET.SubElement(root, "IntensityAdjustments")
    return tostring(root)
