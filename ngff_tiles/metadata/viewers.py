"""What known viewers will reject or show wrongly in an OME-Zarr store (``validate --viewers``).

The rules come from ``shared/reference/ngff.md`` section 4 (napari-ome-zarr, Neuroglancer, vizarr,
Fiji/BigDataViewer/MoBIE), each with the viewer it concerns:

- Neuroglancer ignores a 0.4 ``multiscales`` without ``version``; stops on a unit it does not know
  (anything outside the UDUNITS names of the spec, e.g. ``um``, ``micron``, ``pixel``); cannot show
  ``float64``, ``int64``, ``bool`` (or complex) data; supports no Zarr v2 ``filters`` and only some
  compressors and codecs; cannot open plates.
- vizarr picks its tile size as the largest power of two not above the chunk's y/x size, so
  non-power-of-two chunks waste reads and misalign; it draws a plate from the lowest level path of
  the first well's first field; it reads int8...uint32, float32 and float64 only.
- napari-ome-zarr builds a plate by concatenating the first field of each well, so every well must
  have the same field path, level count, level shapes and dtype, and the plate mosaic at the
  lowest level must fit one OpenGL texture (16384 px); it historically ignored
  multiscale-level ``coordinateTransformations``.
- All of them take channel colours and contrast from ``omero`` (``color`` and ``window``).
- Java viewers (Fiji n5, BigDataViewer, MoBIE) need a native libblosc for blosc (an info note), and
  installs without n5-zarr 2.0 cannot read Zarr v3 (0.5) at all (an info note).

Only JSON documents are read (no zarr, no tensorstore): checking a plate of many wells is cheap.
:func:`describe_store` tells the server (``ngff-tiles serve``) what a store is and how to show it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeGuard

from ngff_tiles.metadata.validate import SPACE_UNITS, TIME_UNITS

__all__ = [
    "NAPARI_MAX_TEXTURE",
    "NEUROGLANCER_DTYPES",
    "VIZARR_DTYPES",
    "ChannelInfo",
    "Node",
    "StoreInfo",
    "ViewerNote",
    "check_viewers",
    "describe_store",
    "find_stores",
    "read_node",
]

NEUROGLANCER_DTYPES: frozenset[str] = frozenset(
    ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32"]
)
"""Data types Neuroglancer's zarr data source reads (no float64: neuroglancer #875; no int64/bool: #647)."""
VIZARR_DTYPES: frozenset[str] = frozenset(
    ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]
)
"""Data types vizarr shows as they are ((u)int64 is shown as uint32)."""
NAPARI_MAX_TEXTURE = 16384
"""``GL_MAX_TEXTURE_SIZE`` of common GPUs: napari-ome-zarr's plate mosaic must fit it (#84)."""
_NG_V2_COMPRESSORS = frozenset(["blosc", "gzip", "zlib", "zstd"])
_NG_V3_CODECS = frozenset(["blosc", "bytes", "crc32c", "gzip", "sharding_indexed", "transpose", "zstd"])
_SUMMARY_LIMIT = 3
_PALETTE = ("00FF00", "FF00FF", "00FFFF", "FFFF00", "FF0000", "0000FF")

NoteSeverity = Literal["warning", "info"]


@dataclass(frozen=True, slots=True)
class ViewerNote:
    """One finding about what a viewer will do with the store.

    Parameters
    ----------
    where : str
        Store-relative path of the node concerned (``""`` for the top level).
    message : str
        One line: what the viewer needs, what the store has, and what to do about it.
    viewers : tuple of str
        The viewers concerned, e.g. ``("Neuroglancer",)``.
    severity : {"warning", "info"}
        ``"warning"`` when a viewer rejects the data or shows it wrongly; ``"info"`` for a note
        that depends on the user's installation (Java viewers and blosc, Zarr v3 in Fiji).
    """

    where: str
    message: str
    viewers: tuple[str, ...]
    severity: NoteSeverity = "warning"

    def __str__(self) -> str:
        return f"{self.where or '.'}: {self.severity}: [{', '.join(self.viewers)}] {self.message}"


@dataclass(frozen=True, slots=True)
class Node:
    """One Zarr node read from its JSON documents.

    Attributes
    ----------
    zarr_format : int
        2 or 3.
    node_type : str
        ``"group"`` or ``"array"``.
    attrs : dict
        The node's attributes (``.zattrs`` or ``zarr.json`` ``attributes``).
    meta : dict
        ``zarr.json`` (v3) or ``.zarray`` / ``.zgroup`` (v2).
    """

    zarr_format: int
    node_type: str
    attrs: dict[str, Any]
    meta: dict[str, Any]

    def ome(self) -> dict[str, Any]:
        """The OME metadata: ``attributes.ome`` for Zarr v3, the attributes themselves for v2."""
        if self.zarr_format == 3:
            return _as_dict(self.attrs.get("ome"))
        return self.attrs

    def dtype(self) -> str | None:
        """The array's data type as a numpy-style name (``uint16``, ``float64``...)."""
        if self.zarr_format == 3:
            dt = self.meta.get("data_type")
            return dt if isinstance(dt, str) else None
        return _v2_dtype(self.meta.get("dtype"))

    def shape(self) -> list[int] | None:
        """The array's shape."""
        shape = self.meta.get("shape")
        return shape if isinstance(shape, list) and all(isinstance(s, int) for s in shape) else None

    def chunks(self) -> list[int] | None:
        """The array's read chunk shape: the inner chunk of a sharded v3 array."""
        if self.zarr_format == 2:
            chunks = self.meta.get("chunks")
        else:
            chunks = _as_dict(_as_dict(self.meta.get("chunk_grid")).get("configuration")).get("chunk_shape")
            codecs = self.meta.get("codecs")
            while isinstance(codecs, list):
                sharding = next((c for c in codecs if _as_dict(c).get("name") == "sharding_indexed"), None)
                if sharding is None:
                    break
                config = _as_dict(sharding.get("configuration"))
                chunks, codecs = config.get("chunk_shape"), config.get("codecs")
        return chunks if isinstance(chunks, list) and all(isinstance(c, int) for c in chunks) else None

    def codec_names(self) -> list[str]:
        """Every codec of a v3 array, nested sharding codecs included."""
        names: list[str] = []
        stack = [self.meta.get("codecs"), None]
        while stack:
            codecs = stack.pop()
            for codec in codecs if isinstance(codecs, list) else []:
                codec = _as_dict(codec)
                name = codec.get("name")
                if isinstance(name, str):
                    names.append(name)
                config = _as_dict(codec.get("configuration"))
                stack += [config.get("codecs"), config.get("index_codecs")]
        return names


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """Display settings of one channel, from ``omero`` (defaults where it says nothing).

    Attributes
    ----------
    label : str
        Channel name.
    color : str
        ``RRGGBB`` hex colour.
    start, end : float or None
        Contrast limits (``omero`` ``window.start``/``window.end``).
    low, high : float or None
        Data range (``omero`` ``window.min``/``window.max``).
    active : bool
        Shown by default.
    """

    label: str
    color: str = "FFFFFF"
    start: float | None = None
    end: float | None = None
    low: float | None = None
    high: float | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What an OME-Zarr store is, for printing viewer links.

    Attributes
    ----------
    path : str
        Path of the store relative to the served folder (``""`` when the folder is the store).
    version : str
        ``"0.4"`` or ``"0.5"`` (or whatever the store says).
    kind : str
        ``"image"``, ``"plate"``, ``"well"``, ``"bf2raw"`` or ``"labels"``.
    image : str or None
        Store-relative path of the image to open in single-image viewers (the store itself for an
        image; the first field of the first well for a plate; series ``0`` for bioformats2raw).
    name : str
        A display name.
    axes : list of str
        Axis names of that image.
    axis_types : list of str
        Axis types (``space``, ``time``, ``channel``, or ``""`` when not given).
    units : list of str
        Axis units (``""`` when not given).
    scale : list of float
        Level-0 ``scale`` of that image (ones when not given).
    shape : list of int
        Level-0 shape of that image.
    channels : list of ChannelInfo
        Per-channel display settings of that image.
    """

    path: str
    version: str
    kind: str
    image: str | None
    name: str
    axes: list[str] = field(default_factory=list)
    axis_types: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    shape: list[int] = field(default_factory=list)
    channels: list[ChannelInfo] = field(default_factory=list)


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _safe(path: Any) -> TypeGuard[str]:
    return isinstance(path, str) and bool(path) and not path.startswith("/") and ".." not in path.split("/")


def _v2_dtype(dtype: Any) -> str | None:
    if not isinstance(dtype, str) or len(dtype) < 2:
        return None
    kind, size = dtype.lstrip("<>|=")[:1], dtype.lstrip("<>|=")[1:]
    if not size.isdigit():
        return dtype
    bits = 8 * int(size)
    return {
        "b": "bool",
        "i": f"int{bits}",
        "u": f"uint{bits}",
        "f": f"float{bits}",
        "c": f"complex{bits}",
    }.get(kind, dtype)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_node(folder: str | os.PathLike[str]) -> Node | None:
    """Read the Zarr node in ``folder`` (v3 ``zarr.json`` first, then v2); ``None`` if there is none."""
    folder = Path(folder)
    meta = _load(folder / "zarr.json")
    if meta is not None and meta.get("node_type") in ("group", "array"):
        return Node(3, str(meta["node_type"]), _as_dict(meta.get("attributes")), meta)
    zattrs = _load(folder / ".zattrs") or {}
    for name, node_type in ((".zarray", "array"), (".zgroup", "group")):
        meta = _load(folder / name)
        if meta is not None:
            return Node(2, node_type, zattrs, meta)
    if zattrs:
        return Node(2, "group", zattrs, {"zarr_format": 2})
    return None


def _kind(md: dict[str, Any]) -> str | None:
    if "bioformats2raw.layout" in md:
        return "bf2raw"
    for key, kind in (("plate", "plate"), ("well", "well"), ("multiscales", "image"), ("labels", "labels")):
        if key in md:
            return kind
    return None


def _version(node: Node) -> str:
    md = node.ome()
    if node.zarr_format == 3:
        return str(md.get("version", "0.5"))
    for ms in _as_list(md.get("multiscales")):
        if isinstance(_as_dict(ms).get("version"), str):
            return str(ms["version"])
    for key in ("plate", "well"):
        if isinstance(_as_dict(md.get(key)).get("version"), str):
            return str(md[key]["version"])
    return "0.4"


def _first_field(root: Path, well_rel: str) -> str | None:
    node = read_node(root / well_rel) if well_rel else read_node(root)
    images = _as_list(_as_dict((node.ome() if node else {}).get("well")).get("images"))
    path = _as_dict(images[0]).get("path") if images else None
    return _join(well_rel, path) if _safe(path) else None


def _plate_wells(md: dict[str, Any]) -> list[str]:
    wells = (_as_dict(w).get("path") for w in _as_list(_as_dict(md.get("plate")).get("wells")))
    return [w for w in wells if _safe(w)]


def _channels(md: dict[str, Any], n: int) -> list[ChannelInfo]:
    """Channel display settings from ``omero``; ``n`` default channels when it lists none."""
    listed = [_as_dict(c) for c in _as_list(_as_dict(md.get("omero")).get("channels"))] or [{}] * n
    out = []
    for i, ch in enumerate(listed):
        window = _as_dict(ch.get("window"))
        color = ch.get("color")
        if not (isinstance(color, str) and len(color) == 6):
            color = "FFFFFF" if len(listed) == 1 else _PALETTE[i % len(_PALETTE)]
        bounds = [window.get(k) for k in ("start", "end", "min", "max")]
        start, end, low, high = (
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None for v in bounds
        )
        out.append(
            ChannelInfo(
                label=str(ch.get("label", i)),
                color=color.upper(),
                start=start,
                end=end,
                low=low,
                high=high,
                active=ch.get("active", True) is not False,
            )
        )
    return out


def describe_store(root: str | os.PathLike[str], rel: str = "") -> StoreInfo | None:
    """Describe the OME-Zarr store at ``root/rel``; ``None`` when it carries no OME metadata."""
    base = Path(root)
    node = read_node(base / rel if rel else base)
    if node is None or node.node_type != "group":
        return None
    md = node.ome()
    kind = _kind(md)
    if kind is None:
        return None
    version = _version(node)
    image: str | None = None
    if kind == "image":
        image = rel
    elif kind == "plate":
        wells = _plate_wells(md)
        image = _first_field(base, _join(rel, wells[0])) if wells else None
    elif kind == "well":
        image = _first_field(base, rel)
    elif kind == "bf2raw":
        image = _join(rel, "0") if read_node(base / rel / "0") is not None else None
    name = Path(rel).name if rel else base.resolve().name
    info = StoreInfo(path=rel, version=version, kind=kind, image=image, name=name)
    image_node = read_node(base / image) if image is not None else None
    if image is None or image_node is None:
        return info
    image_md = image_node.ome()
    ms = _as_dict(next(iter(_as_list(image_md.get("multiscales"))), {}))
    axes = [str(_as_dict(a).get("name", "")) for a in _as_list(ms.get("axes"))]
    types = [str(_as_dict(a).get("type", "")) for a in _as_list(ms.get("axes"))]
    units = [str(_as_dict(a).get("unit", "")) for a in _as_list(ms.get("axes"))]
    datasets = _as_list(ms.get("datasets"))
    scale = [1.0] * len(axes)
    for t in _as_list(_as_dict(datasets[0] if datasets else {}).get("coordinateTransformations")):
        vector = _as_dict(t).get("scale")
        if _as_dict(t).get("type") == "scale" and isinstance(vector, list) and len(vector) == len(axes):
            scale = [float(v) if isinstance(v, int | float) else 1.0 for v in vector]
    path0 = _as_dict(datasets[0]).get("path") if datasets else None
    level0 = read_node(base / image / path0) if _safe(path0) else None
    shape = (level0.shape() or []) if level0 is not None else []
    n_channels = shape[types.index("channel")] if "channel" in types and len(shape) == len(axes) else 1
    return StoreInfo(
        path=rel,
        version=version,
        kind=kind,
        image=image,
        name=str(ms.get("name") or name),
        axes=axes,
        axis_types=types,
        units=units,
        scale=scale,
        shape=shape,
        channels=_channels(image_md, n_channels),
    )


def find_stores(root: str | os.PathLike[str], max_depth: int = 3, limit: int = 100) -> list[StoreInfo]:
    """Find the OME-Zarr stores in a folder: the folder itself, or stores below it.

    Stores are not searched inside (a plate's wells are not listed on their own). Hidden folders,
    and symbolic links that lead out of the folder (the server refuses them), are skipped. At
    most ``limit`` stores are returned, in sorted path order.
    """
    base = Path(root)
    top = describe_store(base)
    if top is not None:
        return [top]
    found: list[StoreInfo] = []
    real_base = Path(os.path.realpath(base))
    seen: set[Path] = set()

    def walk(folder: Path, rel: str, depth: int) -> None:
        try:
            entries = sorted(e for e in folder.iterdir() if e.is_dir() and not e.name.startswith("."))
        except OSError:
            return
        for entry in entries:
            if len(found) >= limit:
                return
            real = Path(os.path.realpath(entry))
            if real in seen or (real != real_base and real_base not in real.parents):
                continue  # a link out of the folder (not served) or to a folder already seen
            seen.add(real)
            sub = _join(rel, entry.name)
            info = describe_store(base, sub)
            if info is not None:
                found.append(info)
            elif depth < max_depth and read_node(entry) is None:
                walk(entry, sub, depth + 1)

    walk(base, "", 1)
    return found


# --------------------------------------------------------------------------------------------
# Checks


@dataclass
class _Notes:
    notes: list[ViewerNote] = field(default_factory=list)

    def warn(self, where: str, message: str, *viewers: str) -> None:
        self.notes.append(ViewerNote(where, message, tuple(viewers)))

    def info(self, where: str, message: str, *viewers: str) -> None:
        self.notes.append(ViewerNote(where, message, tuple(viewers), "info"))


@dataclass(frozen=True)
class _Signature:
    """What napari-ome-zarr and vizarr assume equal in every well's first field."""

    field: str
    level_paths: tuple[str, ...]
    shapes: tuple[tuple[int, ...] | None, ...]
    dtype: str | None


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _levels(root: Path, rel: str, ms: dict[str, Any]) -> Iterator[tuple[str, Node | None]]:
    for ds in _as_list(ms.get("datasets")):
        path = _as_dict(ds).get("path")
        if _safe(path):
            yield path, read_node(root / rel / path)


class _Checker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.out = _Notes()
        self.blosc: str | None = None  # first node using blosc

    def image(self, rel: str, *, label: bool = False) -> _Signature | None:
        node = read_node(self.root / rel)
        if node is None or node.node_type != "group":
            return None
        md = node.ome()
        ms = _as_dict(next(iter(_as_list(md.get("multiscales"))), {}))
        if not ms:
            return None
        w = self.out
        if node.zarr_format == 2 and "version" not in ms:
            w.warn(
                rel,
                "multiscales[0] has no 'version': Neuroglancer ignores 0.4 images without it; "
                'add "version": "0.4"',
                "Neuroglancer",
            )
        first = _as_dict(next(iter(_as_list(ms.get("datasets"))), {}))
        for t in _as_list(first.get("coordinateTransformations")):
            vector = _as_dict(t).get("translation")
            if not label and isinstance(vector, list) and any(v != 0 for v in vector):
                w.info(
                    rel,
                    "napari-ome-zarr 0.10 applies only the scale of datasets[0] and drops its translation: "
                    "napari draws the image at the origin (`ngff-tiles view` puts it at its position)",
                    "napari",
                )
        for axis in _as_list(ms.get("axes")):
            axis = _as_dict(axis)
            unit, kind = axis.get("unit"), axis.get("type")
            known = (
                SPACE_UNITS if kind == "space" else TIME_UNITS if kind == "time" else SPACE_UNITS | TIME_UNITS
            )
            if unit is not None and unit not in known:
                w.warn(
                    rel,
                    f"axis {axis.get('name')!r} has unit {unit!r}, not a UDUNITS name of the spec "
                    "(e.g. 'micrometer', 'second'): Neuroglancer refuses to open it",
                    "Neuroglancer",
                )
        if _as_list(ms.get("coordinateTransformations")):
            w.warn(
                rel,
                "multiscales[0] has multiscale-level coordinateTransformations: older napari-ome-zarr "
                "versions ignore them (napari-ome-zarr #73); put them into each dataset's transforms",
                "napari",
            )
        paths: list[str] = []
        shapes: list[tuple[int, ...] | None] = []
        dtype: str | None = None
        for path, level in _levels(self.root, rel, ms):
            if level is None or level.node_type != "array":
                continue  # validate reports missing arrays
            paths.append(path)
            shape = level.shape()
            shapes.append(tuple(shape) if shape is not None else None)
            dtype = dtype or level.dtype()
            self.array(_join(rel, path), level, len(paths) == 1)
        if dtype is not None:
            self.dtype(rel, dtype, label)
        if not label:
            self.omero(rel, md, ms, shapes[0] if shapes else None)
            labels = read_node(self.root / rel / "labels")
            if labels is not None and labels.node_type == "group":
                for name in _as_list(labels.ome().get("labels")):
                    if _safe(name):
                        self.image(_join(rel, "labels", name), label=True)
        return _Signature(rel.rsplit("/", 1)[-1], tuple(paths), tuple(shapes), dtype)

    def dtype(self, rel: str, dtype: str, label: bool) -> None:
        viewers = []
        if dtype not in NEUROGLANCER_DTYPES:
            viewers.append("Neuroglancer")
        if dtype not in VIZARR_DTYPES and not (label and dtype in ("int64", "uint64")):
            viewers.append("vizarr")
        if viewers:
            advice = "write uint8, uint16 or float32" if dtype != "uint64" else "write uint32 if values fit"
            self.out.warn(
                rel, f"data type {dtype} is not shown by {' and '.join(viewers)}; {advice}", *viewers
            )

    def array(self, rel: str, node: Node, first_level: bool) -> None:
        w = self.out
        if node.zarr_format == 2:
            filters = node.meta.get("filters")
            if filters:
                ids = [_as_dict(f).get("id") for f in _as_list(filters)]
                w.warn(
                    rel,
                    f"Zarr v2 filters {ids}: Neuroglancer reads no filters; write without them",
                    "Neuroglancer",
                )
            comp = _as_dict(node.meta.get("compressor"))
            cid = comp.get("id")
            if cid is not None and cid not in _NG_V2_COMPRESSORS:
                w.warn(
                    rel,
                    f"compressor {cid!r}: Neuroglancer reads only {sorted(_NG_V2_COMPRESSORS)} (or none)",
                    "Neuroglancer",
                )
            blosc = cid == "blosc"
        else:
            names = node.codec_names()
            odd = sorted(set(names) - _NG_V3_CODECS)
            if odd:
                w.warn(rel, f"codecs {odd}: Neuroglancer reads only {sorted(_NG_V3_CODECS)}", "Neuroglancer")
            blosc = "blosc" in names
        if blosc and self.blosc is None:
            self.blosc = rel
        chunks = node.chunks()
        if first_level and chunks is not None and len(chunks) >= 2:
            yx = chunks[-2:]
            shape = node.shape() or []
            # a chunk that covers a whole small axis is fine: only the tile grid needs powers of two
            odd_yx = [c for c, s in zip(yx, shape[-2:] or yx, strict=False) if not _is_pow2(c) and c < s]
            if odd_yx:
                w.warn(
                    rel,
                    f"y/x chunk size {yx[0]}×{yx[1]} is not a power of two: vizarr reads power-of-two "
                    "tiles (e.g. 256, 512, 1024)",
                    "vizarr",
                )

    def omero(self, rel: str, md: dict[str, Any], ms: dict[str, Any], shape: tuple[int, ...] | None) -> None:
        w = self.out
        omero = md.get("omero")
        if not isinstance(omero, dict):
            w.warn(
                rel,
                "no 'omero' metadata: channel names, colours and contrast are left to each viewer's "
                "guess (napari, vizarr and Neuroglancer read them from omero)",
                "napari",
                "vizarr",
                "Neuroglancer",
            )
            return
        channels = [_as_dict(c) for c in _as_list(omero.get("channels"))]
        missing = [
            f"{i}: {', '.join(k for k in ('color', 'window') if not isinstance(c.get(k), str | dict))}"
            for i, c in enumerate(channels)
            if not isinstance(c.get("color"), str) or not isinstance(c.get("window"), dict)
        ]
        if missing:
            w.warn(
                rel,
                f"omero channel(s) without color/window ({'; '.join(missing)}): viewers fall back "
                "to their own colours and full-range contrast",
                "napari",
                "vizarr",
                "Neuroglancer",
            )
        axes = [_as_dict(a).get("name") for a in _as_list(ms.get("axes"))]
        if "c" in axes and shape is not None and len(shape) == len(axes):
            n = shape[axes.index("c")]
            if channels and len(channels) != n:
                w.warn(
                    rel,
                    f"omero lists {len(channels)} channel(s) but the c axis has {n}: vizarr and napari "
                    "fail or mislabel channels",
                    "napari",
                    "vizarr",
                )

    def plate(self, rel: str, md: dict[str, Any]) -> None:
        w = self.out
        plate = _as_dict(md.get("plate"))
        wells = _plate_wells(md)
        w.info(
            rel,
            "Neuroglancer cannot open a plate: open one field (A/1/0) or use vizarr/napari",
            "Neuroglancer",
        )
        sigs: dict[str, _Signature] = {}
        multi_field = []
        for well in wells:
            node = read_node(self.root / rel / well)
            images = _as_list(_as_dict((node.ome() if node else {}).get("well")).get("images"))
            if len(images) > 1:
                multi_field.append(well)
            first: _Signature | None = None
            for k, image in enumerate(images):
                path = _as_dict(image).get("path")
                if _safe(path):
                    sig = self.image(_join(rel, well, path))
                    if k == 0:
                        first = sig
            if first is not None:
                sigs[well] = first
        if multi_field:
            w.info(
                rel,
                f"{len(multi_field)} well(s) have several fields (e.g. {multi_field[0]}): napari and "
                "vizarr plate views show only the first field of each well",
                "napari",
                "vizarr",
            )
        if not sigs:
            return
        ref_well, ref = next(iter(sigs.items()))
        for attr, what in (
            ("field", "first field path"),
            ("level_paths", "resolution levels (count or paths)"),
            ("shapes", "level shapes"),
            ("dtype", "data type"),
        ):
            odd = [p for p, s in sigs.items() if getattr(s, attr) != getattr(ref, attr)]
            if odd:
                shown = ", ".join(odd[:_SUMMARY_LIMIT]) + (", …" if len(odd) > _SUMMARY_LIMIT else "")
                w.warn(
                    rel,
                    f"well(s) {shown} differ from well {ref_well} in {what} "
                    f"({getattr(sigs[odd[0]], attr)} vs {getattr(ref, attr)}): napari-ome-zarr and vizarr "
                    "draw every well with the first well's pyramid; write identical pyramids",
                    "napari",
                    "vizarr",
                )
        lowest = ref.shapes[-1] if ref.shapes else None
        rows = len(_as_list(plate.get("rows"))) or 1
        cols = len(_as_list(plate.get("columns"))) or 1
        if lowest is not None and len(lowest) >= 2:
            height, width = rows * lowest[-2], cols * lowest[-1]
            if max(height, width) > NAPARI_MAX_TEXTURE:
                w.warn(
                    rel,
                    f"the plate at its lowest level is {height}×{width} px ({rows}×{cols} wells of "
                    f"{lowest[-2]}×{lowest[-1]}), over napari's {NAPARI_MAX_TEXTURE} px texture limit: "
                    "add pyramid levels",
                    "napari",
                )

    def run(self) -> None:
        node = read_node(self.root)
        if node is None or node.node_type != "group":
            return  # validate reports it
        md = node.ome()
        kind = _kind(md)
        if kind == "plate":
            self.plate("", md)
        elif kind == "well":
            for image in _as_list(_as_dict(md.get("well")).get("images")):
                if _safe(_as_dict(image).get("path")):
                    self.image(image["path"])
        elif kind == "bf2raw":
            if "plate" in md:
                self.plate("", md)
            k = 0
            while read_node(self.root / str(k)) is not None:
                self.image(str(k))
                k += 1
        elif kind == "image":
            self.image("", label="image-label" in md)
        if node.zarr_format == 3:
            self.out.info(
                "",
                "Zarr v3 (OME-NGFF 0.5): Fiji/BigDataViewer need n5-zarr 2.0 and MoBIE cannot open it yet; "
                "convert with --ngff-version 0.4 for them",
                "Fiji",
                "MoBIE",
            )
        if self.blosc is not None:
            self.out.info(
                self.blosc,
                "blosc compression: Java viewers (Fiji n5, BigDataViewer, MoBIE) need a native libblosc, "
                "which fails on some Apple Silicon/Windows installs; --compression zstd avoids it",
                "Fiji",
                "BigDataViewer",
                "MoBIE",
            )


def _collapse(notes: list[ViewerNote]) -> list[ViewerNote]:
    """Merge notes with the same message (one per field of a plate) into one, counting the others."""
    groups: dict[tuple[str, tuple[str, ...], str], list[ViewerNote]] = {}
    for note in notes:
        groups.setdefault((note.message, note.viewers, note.severity), []).append(note)
    out = []
    for (message, viewers, severity), same in groups.items():
        if len(same) > 1:
            message = f"{message} (also in {len(same) - 1} other node(s))"
        out.append(ViewerNote(same[0].where, message, viewers, severity))  # type: ignore[arg-type]
    return out


def check_viewers(path: str | os.PathLike[str]) -> list[ViewerNote]:
    """List what known viewers (napari, Neuroglancer, vizarr, Fiji) will reject in a store.

    Parameters
    ----------
    path : str or os.PathLike
        The store's top-level folder (an image, plate, well or bioformats2raw collection).

    Returns
    -------
    list of ViewerNote
        Warnings (a viewer rejects the data or shows it wrongly) first, then info notes. Empty
        when the store gives no viewer trouble. Spec violations are :func:`validate_store`'s job.
    """
    checker = _Checker(Path(path))
    checker.run()
    notes = _collapse(checker.out.notes)
    return [n for n in notes if n.severity == "warning"] + [n for n in notes if n.severity == "info"]
