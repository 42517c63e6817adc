"""Build the bad-input corpus: broken copies of real sample files and crafted hostile inputs.

Every case is a small *maker* function registered under a reader group. A maker builds its input
in an empty folder it is given (copying and corrupting files of ``shared/sample-data`` - the
originals are never touched - or writing crafted files) and returns a :class:`BadInput`: what to
pass to ``ngff-tiles convert`` and which file the error message must name.

Adding the cases of another reader takes a few lines, e.g. after merging the PZF reader::

    from ngff_tiles.testing import bad_pzf
    for name, make in bad_pzf.CASES.items():      # whatever shape that module exposes
        register("pzf", name, lambda d, make=make: BadInput.one(make(d)))

Run as a script to build the whole corpus into a folder and list it::

    python tests/bad_inputs/generate.py /tmp/corpus
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import stat
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ngff_tiles.errors import (
    MetadataError,
    NgffTilesError,
    SourceError,
    UnsupportedFormatError,
)

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "sample-data"


class SampleMissing(Exception):
    """A case needs a file of ``shared/sample-data`` that is absent (the test skips it)."""


@dataclass(frozen=True)
class BadInput:
    """What a maker built.

    Attributes
    ----------
    inputs
        Paths given to ``convert`` (usually one).
    offending
        The file the error message must name (its name is searched in the message).
    args
        Extra command-line arguments (e.g. ``--pixel-size``).
    """

    inputs: tuple[Path, ...]
    offending: Path
    args: tuple[str, ...] = ()

    @classmethod
    def one(cls, path: Path, offending: Path | None = None, args: Sequence[str] = ()) -> BadInput:
        """One input; by default it is the offending file too."""
        return cls((path,), offending or path, tuple(args))


@dataclass(frozen=True)
class Case:
    """A registered corpus case.

    Attributes
    ----------
    group
        The reader (or area) it attacks: ``tiff``, ``ome-xml``, ``mmstack``, ``tileconfig``,
        ``table``, ``ndtiff``, ``nd2``, ``paths``; ``pzf`` and ``bdv`` join after their merge.
    name
        Short unique name within the group.
    make
        ``make(folder) -> BadInput``; ``folder`` is empty and owned by the case.
    error
        The NgffTilesError subclass expected (a base class matches its subclasses).
    unprivileged
        Needs permission checks to apply: as root the test runs it as an unprivileged user.
    """

    group: str
    name: str
    make: Callable[[Path], BadInput]
    error: type[NgffTilesError] = NgffTilesError
    unprivileged: bool = False
    doc: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        """``group/name``."""
        return f"{self.group}/{self.name}"


CASES: dict[str, Case] = {}
"""Every case, by ``group/name``, in registration order."""


def register(
    group: str,
    name: str,
    make: Callable[[Path], BadInput],
    *,
    error: type[NgffTilesError] = NgffTilesError,
    unprivileged: bool = False,
) -> Case:
    """Add a case to :data:`CASES` (the hook for readers merged later)."""
    c = Case(group, name, make, error, unprivileged, (make.__doc__ or "").strip().split("\n")[0])
    if c.id in CASES:
        raise ValueError(f"duplicate bad-input case {c.id}")
    CASES[c.id] = c
    return c


def case(
    group: str, name: str, *, error: type[NgffTilesError] = NgffTilesError, unprivileged: bool = False
) -> Callable[[Callable[[Path], BadInput]], Callable[[Path], BadInput]]:
    """Decorator form of :func:`register`."""

    def deco(make: Callable[[Path], BadInput]) -> Callable[[Path], BadInput]:
        register(group, name, make, error=error, unprivileged=unprivileged)
        return make

    return deco


# --------------------------------------------------------------------------------------------
# helpers


def sample(*parts: str) -> Path:
    """Path of a file or folder of ``shared/sample-data``; SampleMissing if absent."""
    p = SAMPLES.joinpath(*parts)
    if not p.exists():
        raise SampleMissing(f"sample {'/'.join(parts)} not found under {SAMPLES}")
    return p


def copy_file(src: Path, dest: Path) -> Path:
    """Copy ``src`` (gunzipping ``*.gz``) to ``dest``, writable; return ``dest``."""
    if src.suffix == ".gz":
        with gzip.open(src, "rb") as f:
            dest.write_bytes(f.read())
    else:
        dest.write_bytes(src.read_bytes())
    dest.chmod(0o644)
    return dest


def copy_tree(src: Path, dest: Path) -> Path:
    """Copy a sample folder to ``dest`` (writable copies; ``*.gz`` files gunzipped)."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if p.is_dir():
            (dest / rel).mkdir(parents=True, exist_ok=True)
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(p, target.with_suffix("") if p.suffix == ".gz" else target)
    for p in [dest, *dest.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
    return dest


def truncate(path: Path, size: int) -> Path:
    """Cut ``path`` to ``size`` bytes (negative: that many bytes off the end)."""
    data = path.read_bytes()
    path.write_bytes(data[: size if size >= 0 else len(data) + size])
    return path


def patch(path: Path, offset: int, data: bytes) -> Path:
    """Overwrite bytes of ``path`` at ``offset`` (negative: from the end)."""
    buf = bytearray(path.read_bytes())
    if offset < 0:
        offset += len(buf)
    buf[offset : offset + len(data)] = data
    path.write_bytes(bytes(buf))
    return path


def flip_bits(path: Path, start: int, stop: int, n: int, seed: int) -> Path:
    """Flip ``n`` bits chosen by ``seed`` in bytes ``[start, stop)`` of ``path``."""
    buf = bytearray(path.read_bytes())
    stop = min(stop, len(buf))
    rng = np.random.default_rng(seed)
    for pos in rng.integers(start, stop, size=n):
        buf[int(pos)] ^= 1 << int(rng.integers(0, 8))
    path.write_bytes(bytes(buf))
    return path


def plane(shape: tuple[int, int] = (48, 64), dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    """A small deterministic image."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 200, size=shape).astype(dtype)


def plain_tiff(path: Path, data: np.ndarray | None = None, **kwargs: object) -> Path:
    """Write a plain TIFF (no OME-XML, no shaped metadata)."""
    import tifffile

    tifffile.imwrite(path, plane() if data is None else data, metadata=None, **kwargs)
    return path


OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def ome_xml(
    *,
    size: tuple[int, int, int] = (1, 48, 64),
    position: tuple[str, str] = ("10", "20"),
    physical: str = "0.5",
    dtype: str = "uint16",
    tiffdata: str = '<TiffData IFD="0" PlaneCount="{z}"/>',
    prolog: str = '<?xml version="1.0" encoding="UTF-8"?>',
    extra: str = "",
) -> str:
    """A minimal single-image OME-XML document with one plane position, for crafted OME-TIFFs."""
    z, y, x = size
    planes = "".join(
        f'<Plane TheZ="{k}" TheC="0" TheT="0" PositionX="{position[0]}" PositionY="{position[1]}" '
        'PositionXUnit="µm" PositionYUnit="µm"/>'
        for k in range(min(z, 4))
    )
    return (
        f'{prolog}<OME xmlns="{OME_NS}">{extra}<Image ID="Image:0" Name="tile">'
        f'<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="{dtype}" SizeX="{x}" SizeY="{y}" '
        f'SizeZ="{z}" SizeC="1" SizeT="1" PhysicalSizeX="{physical}" PhysicalSizeY="{physical}" '
        f'PhysicalSizeZ="1">'
        '<Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        f"{tiffdata.format(z=z)}{planes}</Pixels></Image></OME>"
    )


def ome_tiff(path: Path, xml: str, data: np.ndarray | None = None) -> Path:
    """Write ``data`` (default: one 48×64 uint16 plane) with ``xml`` as its ImageDescription."""
    import tifffile

    tifffile.imwrite(path, plane() if data is None else data, description=xml.encode(), metadata=None)
    return path


def first_ifd_offset(path: Path) -> tuple[str, int]:
    """Byte order (``<``/``>``) and offset of the first IFD of a classic TIFF."""
    head = path.read_bytes()[:8]
    order = "<" if head[:2] == b"II" else ">"
    return order, struct.unpack(order + "I", head[4:8])[0]


def ifd_entry_offset(path: Path, tag: int) -> int:
    """Offset of the 12-byte IFD entry of ``tag`` in the first IFD of a classic TIFF."""
    order, ifd = first_ifd_offset(path)
    data = path.read_bytes()
    (n,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    for k in range(n):
        at = ifd + 2 + 12 * k
        if struct.unpack(order + "H", data[at : at + 2])[0] == tag:
            return at
    raise ValueError(f"{path}: tag {tag} not in the first IFD")


def set_tag_long(path: Path, tag: int, value: int) -> Path:
    """Rewrite a SHORT/LONG tag of the first IFD as one LONG ``value``."""
    order, _ = first_ifd_offset(path)
    at = ifd_entry_offset(path, tag)
    return patch(path, at + 2, struct.pack(order + "HII", 4, 1, value))


def table(folder: Path, rows: Sequence[dict[str, object]], name: str = "tiles.csv") -> Path:
    """Write a tile table (CSV or JSON by ``name``) of ``rows``; return its path."""
    path = folder / name
    if name.endswith(".json"):
        path.write_text(json.dumps(list(rows), allow_nan=True))
        return path
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    lines = [",".join(header)] + [",".join(str(r.get(k, "")) for k in header) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def two_tiles(folder: Path, dtypes: tuple[str, str] = ("uint16", "uint16")) -> list[str]:
    """Two plain TIFF tiles ``a.tif``, ``b.tif`` in ``folder``; return their names."""
    plain_tiff(folder / "a.tif", plane(dtype=dtypes[0], seed=1))
    plain_tiff(folder / "b.tif", plane(dtype=dtypes[1], seed=2))
    return ["a.tif", "b.tif"]


def good_rows(folder: Path) -> list[dict[str, object]]:
    """Rows of a valid two-tile table (the base the table cases break)."""
    a, b = two_tiles(folder)
    return [
        {"path": a, "x_um": 0.0, "y_um": 0.0, "pixel_size_um": 0.5},
        {"path": b, "x_um": 28.0, "y_um": 0.0, "pixel_size_um": 0.5},
    ]


def unreadable(path: Path) -> Path:
    """Remove every permission bit of ``path``."""
    path.chmod(0)
    return path


# --------------------------------------------------------------------------------------------
# controls: the bases the cases break, which must convert (so a case fails for its corruption)

CONTROLS: dict[str, Callable[[Path], BadInput]] = {}


def control(name: str) -> Callable[[Callable[[Path], BadInput]], Callable[[Path], BadInput]]:
    """Register a valid base input; the test converts it successfully."""

    def deco(make: Callable[[Path], BadInput]) -> Callable[[Path], BadInput]:
        CONTROLS[name] = make
        return make

    return deco


@control("table")
def _good_table(d: Path) -> BadInput:
    return BadInput.one(table(d, good_rows(d)))


@control("ome-xml")
def _good_ome(d: Path) -> BadInput:
    return BadInput.one(ome_tiff(d / "t.ome.tif", ome_xml()))


def tileconfig(folder: Path, second: str, dtypes: tuple[str, str] = ("uint16", "uint16")) -> BadInput:
    """A 2D TileConfiguration.txt of ``a.tif`` at the origin and the entry ``second``, beside
    :func:`two_tiles` (``{b}`` in ``second`` is ``b.tif``); the configuration is the offending file.
    """
    a, b = two_tiles(folder, dtypes)
    cfg = folder / "TileConfiguration.txt"
    cfg.write_text(f"dim = 2\n{a}; ; (0.0, 0.0)\n{second.format(b=b)}\n")
    return BadInput.one(folder, cfg)


@control("tileconfig")
def _good_tileconfig(d: Path) -> BadInput:
    return tileconfig(d, "{b}; ; (56.0, 0.0)")


@control("ndtiff")
def _good_ndtiff(d: Path) -> BadInput:
    return BadInput.one(copy_tree(sample("ndtiff", "labeled_positions_1"), d / "ds"))


# --------------------------------------------------------------------------------------------
# paths: what any input can be


@case("paths", "symlink-loop")
def _symlink_loop(d: Path) -> BadInput:
    """A symlink loop given as the input."""
    (d / "a.ome.tif").symlink_to(d / "b.ome.tif")
    (d / "b.ome.tif").symlink_to(d / "a.ome.tif")
    return BadInput.one(d / "a.ome.tif")


@case("paths", "missing")
def _missing(d: Path) -> BadInput:
    """An input that does not exist."""
    return BadInput.one(d / "nothing-here.ome.tif")


@case("paths", "empty-folder")
def _empty_folder(d: Path) -> BadInput:
    """An empty folder."""
    (d / "empty").mkdir()
    return BadInput.one(d / "empty")


@case("paths", "fifo", error=UnsupportedFormatError)
def _fifo(d: Path) -> BadInput:
    """A named pipe with a TIFF/ND2-like name: sniffing must not block on opening it."""
    os.mkfifo(d / "tiles.ome.tif")
    return BadInput.one(d / "tiles.ome.tif")


@case("paths", "unreadable-file", unprivileged=True)
def _unreadable_file(d: Path) -> BadInput:
    """A real OME-TIFF without read permission."""
    return BadInput.one(unreadable(ome_tiff(d / "t.ome.tif", ome_xml())))


@case("paths", "unreadable-folder", unprivileged=True)
def _unreadable_folder(d: Path) -> BadInput:
    """A folder of OME-TIFFs without read/search permission."""
    (d / "tiles").mkdir()
    ome_tiff(d / "tiles" / "t.ome.tif", ome_xml())
    return BadInput.one(unreadable(d / "tiles"))


@case("paths", "name-too-long", error=NgffTilesError)
def _long_input(d: Path) -> BadInput:
    """An input path whose last component is 300 bytes long."""
    return BadInput.one(d / ("z" * 300 + ".ome.tif"))


@case("paths", "zero-bytes", error=UnsupportedFormatError)
def _zero_bytes(d: Path) -> BadInput:
    """An empty (0-byte) .ome.tif."""
    (d / "empty.ome.tif").write_bytes(b"")
    return BadInput.one(d / "empty.ome.tif")


# --------------------------------------------------------------------------------------------
# TIFF structure (the real OME-TIFF sample, and crafted ones)


def _czi_copy(d: Path) -> Path:
    return copy_file(
        sample("ome-tiff", "bioformats_czi_export", "s_1_t_1_c_1_z_1.ome.tiff"),
        d / "s_1_t_1_c_1_z_1.ome.tiff",  # its own name: the OME-XML's TiffData names it
    )


@case("tiff", "header-only", error=SourceError)
def _tiff_header_only(d: Path) -> BadInput:
    """The sample cut after its 8-byte header (the first IFD is past the end)."""
    return BadInput.one(truncate(_czi_copy(d), 8))


@case("tiff", "truncated-in-ifd", error=SourceError)
def _tiff_truncated_ifd(d: Path) -> BadInput:
    """The sample cut inside its first IFD."""
    return BadInput.one(truncate(_czi_copy(d), 40))


@case("tiff", "truncated-in-xml", error=SourceError)
def _tiff_truncated_xml(d: Path) -> BadInput:
    """The sample cut inside its OME-XML (the description's byte count runs past the end)."""
    p = _czi_copy(d)
    import tifffile

    with tifffile.TiffFile(p) as tif:
        tag = tif.pages.first.tags["ImageDescription"]
        cut = tag.valueoffset + tag.count // 2
    return BadInput.one(truncate(p, cut))


@case("tiff", "truncated-pixels", error=SourceError)
def _tiff_truncated_pixels(d: Path) -> BadInput:
    """The sample cut inside its compressed strips (they end at byte 271736 of 1271736)."""
    p = _czi_copy(d)
    return BadInput.one(truncate(p, 200_000), args=("--position-unit", "µm"))


@case("tiff", "ifd-offset-past-end", error=SourceError)
def _tiff_ifd_past_end(d: Path) -> BadInput:
    """The header points the first IFD at 4 GB, far past the end of the file."""
    return BadInput.one(patch(_czi_copy(d), 4, struct.pack("<I", 0xFFFFFFF0)))


@case("tiff", "ifd-self-loop", error=SourceError)
def _tiff_ifd_loop(d: Path) -> BadInput:
    """A crafted OME-TIFF of 2 planes whose second IFD links back to the first (an IFD cycle)."""
    import tifffile

    p = d / "loop.ome.tif"
    with tifffile.TiffWriter(p) as tw:
        for k in range(3):
            tw.write(
                plane(seed=k),
                description=ome_xml(size=(3, 48, 64)).encode() if k == 0 else None,
                metadata=None,
            )
    with tifffile.TiffFile(p) as tif:
        first, second = tif.pages[0].offset, tif.pages[1].offset
        n = len(tif.pages[1].tags)
    # the next-IFD pointer of the 2nd IFD follows its 2 + 12 n bytes of entries
    return BadInput.one(patch(p, second + 2 + 12 * n, struct.pack("<I", first)))


@case("tiff", "bitflipped-header", error=UnsupportedFormatError)
def _tiff_bad_magic(d: Path) -> BadInput:
    """A bit flipped in the byte-order mark: no longer a TIFF."""
    return BadInput.one(patch(_czi_copy(d), 0, b"IJ"))


@case("tiff", "bitflipped-strips", error=SourceError)
def _tiff_flipped_strips(d: Path) -> BadInput:
    """Strip offsets of the sample bit-flipped to point past the end of the file."""
    p = _czi_copy(d)
    at = ifd_entry_offset(p, 273)  # StripOffsets: a LONG array; its offset field points to it
    order, _ = first_ifd_offset(p)
    (array_at,) = struct.unpack(order + "I", p.read_bytes()[at + 8 : at + 12])
    patch(p, array_at + 4, struct.pack(order + "I", 0x7FFFFFF0))
    return BadInput.one(p, args=("--position-unit", "µm"))


@case("tiff", "zero-width", error=NgffTilesError)
def _tiff_zero_width(d: Path) -> BadInput:
    """A crafted OME-TIFF whose ImageWidth tag is 0."""
    p = ome_tiff(d / "t.ome.tif", ome_xml())
    return BadInput.one(set_tag_long(p, 256, 0))


@case("tiff", "lying-width", error=NgffTilesError)
def _tiff_lying_width(d: Path) -> BadInput:
    """ImageWidth × ImageLength claim 4e9 × 4e9 pixels (32 EB) for a 6 KB strip."""
    p = ome_tiff(d / "t.ome.tif", ome_xml())
    set_tag_long(p, 256, 0xFFFFFFF0)
    return BadInput.one(set_tag_long(p, 257, 0xFFFFFFF0))


@case("tiff", "unknown-compression", error=SourceError)
def _tiff_compression(d: Path) -> BadInput:
    """Compression 60000 (no such codec): fails only when fusion decodes the pixels, mid-write."""
    p = ome_tiff(d / "t.ome.tif", ome_xml())
    order, _ = first_ifd_offset(p)
    at = ifd_entry_offset(p, 259)
    return BadInput.one(patch(p, at + 2, struct.pack(order + "HIHH", 3, 1, 60000, 0)))


@case("tiff", "garbage-zlib-strips", error=SourceError)
def _tiff_bad_zlib(d: Path) -> BadInput:
    """A zlib-compressed OME-TIFF whose compressed strip is random bytes: fails mid-write."""
    import tifffile

    p = d / "t.ome.tif"
    tifffile.imwrite(p, plane(), description=ome_xml().encode(), metadata=None, compression="zlib")
    with tifffile.TiffFile(p) as tif:
        off, n = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    junk = np.random.default_rng(11).integers(0, 256, n, dtype=np.uint8).tobytes()
    return BadInput.one(patch(p, off, junk))


# --------------------------------------------------------------------------------------------
# OME-XML

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + k)} "{("&" + chr(97 + k) + ";") * 10}">' for k in range(9))
    + "]>"
)


@case("ome-xml", "billion-laughs", error=SourceError)
def _billion_laughs(d: Path) -> BadInput:
    """Entity expansion ("billion laughs": 10^10 bytes if expanded) in the OME-XML."""
    xml = ome_xml(prolog=BILLION_LAUGHS, extra="<StructuredAnnotations>&j;</StructuredAnnotations>")
    return BadInput.one(ome_tiff(d / "t.ome.tif", xml))


@case("ome-xml", "external-entity", error=SourceError)
def _xxe(d: Path) -> BadInput:
    """An external entity reading /etc/passwd into the OME-XML."""
    prolog = '<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    xml = ome_xml(prolog=prolog).replace('Name="tile"', 'Name="&xxe;"')
    return BadInput.one(ome_tiff(d / "t.ome.tif", xml))


@case("ome-xml", "external-dtd", error=SourceError)
def _external_dtd(d: Path) -> BadInput:
    """A DOCTYPE fetching an external DTD over the network."""
    prolog = '<?xml version="1.0"?><!DOCTYPE OME SYSTEM "http://127.0.0.1:9/ome.dtd">'
    return BadInput.one(ome_tiff(d / "t.ome.tif", ome_xml(prolog=prolog)))


@case("ome-xml", "parameter-entity", error=SourceError)
def _parameter_entity(d: Path) -> BadInput:
    """A parameter entity hidden after a comment in the internal subset."""
    prolog = '<?xml version="1.0"?><!-- x --><!DOCTYPE OME [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]>'
    return BadInput.one(ome_tiff(d / "t.ome.tif", ome_xml(prolog=prolog)))


@case("ome-xml", "path-traversal", error=SourceError)
def _path_traversal(d: Path) -> BadInput:
    """TiffData naming ../../../../etc/passwd as the file holding the planes."""
    td = (
        '<TiffData IFD="0" PlaneCount="1"><UUID FileName="../../../../../../etc/passwd">'
        "urn:uuid:00000000-0000-0000-0000-000000000000</UUID></TiffData>"
    )
    return BadInput.one(ome_tiff(d / "t.ome.tif", ome_xml(tiffdata=td)))


@case("ome-xml", "malformed", error=SourceError)
def _malformed(d: Path) -> BadInput:
    """OME-XML cut in the middle of an element."""
    xml = ome_xml()
    return BadInput.one(ome_tiff(d / "t.ome.tif", xml[: len(xml) // 2]))


@case("ome-xml", "lying-sizes", error=NgffTilesError)
def _lying_sizes(d: Path) -> BadInput:
    """SizeX/Y/Z of 10^6 × 10^6 × 10^5 (10^17 pixels) for one 48×64 plane."""
    xml = ome_xml(size=(100000, 1000000, 1000000), tiffdata='<TiffData IFD="0" PlaneCount="{z}"/>')
    return BadInput.one(ome_tiff(d / "t.ome.tif", xml))


@case("ome-xml", "lying-xy", error=NgffTilesError)
def _lying_xy(d: Path) -> BadInput:
    """SizeX × SizeY of 2^31 × 2^31 (8 EB of uint16) for one 48×64 plane."""
    return BadInput.one(ome_tiff(d / "t.ome.tif", ome_xml(size=(1, 2**31 - 1, 2**31 - 1))))


@case("ome-xml", "lying-plane-count", error=MetadataError)
def _lying_planes(d: Path) -> BadInput:
    """SizeC × SizeT of 10^9 × 10^9 planes without TiffData (a loop over 10^18 planes if trusted)."""
    xml = ome_xml(tiffdata="").replace('SizeC="1" SizeT="1"', 'SizeC="1000000000" SizeT="1000000000"')
    return BadInput.one(ome_tiff(d / "t.ome.tif", xml))


@case("ome-xml", "lying-16m-planes", error=MetadataError)
def _lying_16m(d: Path) -> BadInput:
    """SizeZ = 16 000 000 (under any fixed cap) mapped by one TiffData, in a 7 KB file."""
    return BadInput.one(ome_tiff(d / "t.ome.tif", ome_xml(size=(16_000_000, 48, 64))))


@case("ome-xml", "missing-planes", error=SourceError)
def _missing_planes(d: Path) -> BadInput:
    """SizeZ = 5 but the file has one IFD."""
    return BadInput.one(ome_tiff(d / "t.ome.tif", ome_xml(size=(5, 48, 64))))


@case("ome-xml", "zero-size", error=MetadataError)
def _zero_size(d: Path) -> BadInput:
    """SizeX = 0."""
    return BadInput.one(ome_tiff(d / "t.ome.tif", ome_xml(size=(1, 48, 0))))


@case("ome-xml", "nan-position", error=MetadataError)
def _nan_position(d: Path) -> BadInput:
    """PositionX = NaN."""
    return BadInput.one(ome_tiff(d / "t.ome.tif", ome_xml(position=("NaN", "0"))))


@case("ome-xml", "inf-pixel-size", error=MetadataError)
def _inf_pixel(d: Path) -> BadInput:
    """PhysicalSizeX = INF."""
    return BadInput.one(ome_tiff(d / "t.ome.tif", ome_xml(physical="INF")))


@case("ome-xml", "wrong-root", error=MetadataError)
def _wrong_root(d: Path) -> BadInput:
    """Well-formed XML whose root is not OME."""
    return BadInput.one(ome_tiff(d / "t.ome.tif", '<?xml version="1.0"?><html><body/></html>'))


# --------------------------------------------------------------------------------------------
# Micro-Manager MMStack (the mm14 sample, gunzipped copies)


def _mm_copy(d: Path) -> tuple[Path, list[Path]]:
    folder = copy_tree(sample("ome-tiff", "mm14_multipos_grid"), d / "mm")
    return folder, sorted(folder.glob("*_MMStack_*.ome.tif"))


@case("mmstack", "truncated", error=SourceError)
def _mm_truncated(d: Path) -> BadInput:
    """One position file of the dataset cut to 60%."""
    folder, files = _mm_copy(d)
    truncate(files[1], int(files[1].stat().st_size * 0.6))
    return BadInput.one(folder, files[1])


@case("mmstack", "index-map-past-end", error=SourceError)
def _mm_index_past_end(d: Path) -> BadInput:
    """The index-map offset in the MM header points past the end of the file."""
    folder, files = _mm_copy(d)
    patch(files[0], 12, struct.pack("<I", 0x7FFFFFF0))
    return BadInput.one(folder, files[0])


@case("mmstack", "index-map-garbage", error=NgffTilesError)
def _mm_index_garbage(d: Path) -> BadInput:
    """The index map's entries overwritten with 0xFF (frame indices and offsets of 4 G)."""
    folder, files = _mm_copy(d)
    data = files[0].read_bytes()
    (at,) = struct.unpack("<I", data[12:16])
    (count,) = struct.unpack("<I", data[at + 4 : at + 8])
    patch(files[0], at + 8, b"\xff" * (20 * count))
    return BadInput.one(folder, files[0])


@case("mmstack", "summary-json-garbage", error=NgffTilesError)
def _mm_summary_garbage(d: Path) -> BadInput:
    """The summary-metadata JSON overwritten with non-JSON bytes (its length kept)."""
    folder, files = _mm_copy(d)
    data = files[0].read_bytes()
    (length,) = struct.unpack("<I", data[36:40])  # header 2355492 at 32, then length, then JSON
    patch(files[0], 40, b"{\x00\xff" * (length // 3))
    return BadInput.one(folder, files[0])


# --------------------------------------------------------------------------------------------
# Fiji TileConfiguration


@case("tileconfig", "missing-file", error=SourceError)
def _tc_missing(d: Path) -> BadInput:
    """An entry naming a tile file that does not exist."""
    return tileconfig(d, "not-there.tif; ; (50.0, 0.0)")


@case("tileconfig", "name-too-long", error=SourceError)
def _tc_long_name(d: Path) -> BadInput:
    """An entry whose file name is 300 bytes long (ENAMETOOLONG; found by fuzz.py/atheris)."""
    return tileconfig(d, f"{'x' * 300}.tif; ; (50.0, 0.0)")


@case("tileconfig", "nan-coordinates", error=MetadataError)
def _tc_nan(d: Path) -> BadInput:
    """Coordinates (nan, inf)."""
    return tileconfig(d, "{b}; ; (nan, inf)")


@case("tileconfig", "binary-garbage", error=MetadataError)
def _tc_garbage(d: Path) -> BadInput:
    """TileConfiguration.txt full of random bytes."""
    two_tiles(d)
    cfg = d / "TileConfiguration.txt"
    cfg.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return BadInput.one(d, cfg)


@case("tileconfig", "not-a-tiff", error=SourceError)
def _tc_not_tiff(d: Path) -> BadInput:
    """An entry naming the configuration file itself as a tile."""
    return tileconfig(d, "TileConfiguration.txt; ; (50.0, 0.0)")


@case("tileconfig", "mixed-dtypes", error=MetadataError)
def _tc_mixed_dtypes(d: Path) -> BadInput:
    """A uint16 tile beside a uint8 one."""
    return tileconfig(d, "{b}; ; (56.0, 0.0)", ("uint16", "uint8"))


# --------------------------------------------------------------------------------------------
# tile tables (CSV / JSON)


@case("table", "missing-file", error=SourceError)
def _table_missing(d: Path) -> BadInput:
    """A row naming an image file that does not exist."""
    rows = good_rows(d)
    rows[1]["path"] = "gone.tif"
    return BadInput.one(table(d, rows))


@case("table", "nan-position", error=MetadataError)
def _table_nan(d: Path) -> BadInput:
    """x_um = nan in a CSV."""
    rows = good_rows(d)
    rows[1]["x_um"] = "nan"
    return BadInput.one(table(d, rows))


@case("table", "inf-position-json", error=MetadataError)
def _table_inf(d: Path) -> BadInput:
    """y_um = Infinity in a JSON table."""
    rows = good_rows(d)
    rows[0]["y_um"] = float("inf")
    return BadInput.one(table(d, rows, "tiles.json"))


@case("table", "duplicate-rows", error=MetadataError)
def _table_duplicate(d: Path) -> BadInput:
    """The same file, channel and time point twice."""
    rows = good_rows(d)
    rows.append(dict(rows[0], x_um=90.0))
    return BadInput.one(table(d, rows))


@case("table", "duplicate-positions", error=NgffTilesError)
def _table_same_position(d: Path) -> BadInput:
    """Two different tiles at exactly the same position, channel and time point."""
    rows = good_rows(d)
    rows[1]["x_um"] = rows[0]["x_um"]
    return BadInput.one(table(d, rows))


@case("table", "mixed-pixel-sizes", error=MetadataError)
def _table_mixed_px(d: Path) -> BadInput:
    """Rows with pixel sizes 0.5 and 0.65 µm."""
    rows = good_rows(d)
    rows[1]["pixel_size_um"] = 0.65
    return BadInput.one(table(d, rows))


@case("table", "mixed-dtypes", error=MetadataError)
def _table_mixed_dtypes(d: Path) -> BadInput:
    """A uint16 tile beside a float32 one."""
    a, b = two_tiles(d, ("uint16", "float32"))
    rows = [
        {"path": a, "x_um": 0.0, "y_um": 0.0, "pixel_size_um": 0.5},
        {"path": b, "x_um": 28.0, "y_um": 0.0, "pixel_size_um": 0.5},
    ]
    return BadInput.one(table(d, rows))


@case("table", "header-only", error=MetadataError)
def _table_header_only(d: Path) -> BadInput:
    """A CSV with a header and no rows."""
    (d / "tiles.csv").write_text("path,x_um,y_um\n")
    return BadInput.one(d / "tiles.csv")


@case("table", "empty-json-list", error=MetadataError)
def _table_empty_json(d: Path) -> BadInput:
    """A JSON table ``{"tiles": []}`` that mentions x_um only in its schema URL."""
    (d / "tiles.json").write_text('{"$schema": "tile-table-x_um.json", "tiles": []}')
    return BadInput.one(d / "tiles.json")


@case("table", "deeply-nested-json", error=MetadataError)
def _table_nested(d: Path) -> BadInput:
    """A JSON table of 100 000 nested lists (a recursion bomb for naive parsers)."""
    (d / "tiles.json").write_text('[{"x_um": 0}, ' + "[" * 100000 + "]" * 100000 + "]")
    return BadInput.one(d / "tiles.json")


@case("table", "not-utf8", error=SourceError)
def _table_latin1(d: Path) -> BadInput:
    """A CSV with bytes that are not UTF-8."""
    (d / "tiles.csv").write_bytes(b"path,x_um,y_um\n\xff\xfe\xe9.tif,0,0\n")
    return BadInput.one(d / "tiles.csv")


@case("table", "row-name-too-long", error=SourceError)
def _table_long_name(d: Path) -> BadInput:
    """A row whose path is 300 bytes long (ENAMETOOLONG)."""
    rows = good_rows(d)
    rows[1]["path"] = "y" * 300 + ".tif"
    return BadInput.one(table(d, rows))


@case("table", "row-is-folder", error=SourceError)
def _table_folder(d: Path) -> BadInput:
    """A row whose path is a folder."""
    rows = good_rows(d)
    (d / "sub.tif").mkdir()
    rows[1]["path"] = "sub.tif"
    return BadInput.one(table(d, rows))


@case("table", "row-symlink-loop", error=SourceError)
def _table_symlink_loop(d: Path) -> BadInput:
    """A row naming a symlink loop."""
    rows = good_rows(d)
    (d / "x.tif").symlink_to(d / "y.tif")
    (d / "y.tif").symlink_to(d / "x.tif")
    rows[1]["path"] = "x.tif"
    return BadInput.one(table(d, rows))


@case("table", "row-traversal-not-tiff", error=SourceError)
def _table_traversal(d: Path) -> BadInput:
    """A row naming ../../../../etc/hostname (not a TIFF)."""
    rows = good_rows(d)
    rows[1]["path"] = "../../../../../../../../etc/hostname"
    return BadInput.one(table(d, rows), Path("/etc/hostname"))


@case("table", "astronomic-positions", error=NgffTilesError)
def _table_far(d: Path) -> BadInput:
    """Positions 10^15 µm apart: a canvas of 10^15 pixels (petabytes) for two 48×64 tiles."""
    rows = good_rows(d)
    rows[1]["x_um"] = 5e14
    return BadInput.one(table(d, rows), d / "b.tif")


@case("table", "unreadable-image", unprivileged=True, error=SourceError)
def _table_unreadable_image(d: Path) -> BadInput:
    """A row's TIFF without read permission."""
    rows = good_rows(d)
    unreadable(d / "b.tif")
    return BadInput.one(table(d, rows), d / "b.tif")


@case("table", "unreadable-table", unprivileged=True, error=NgffTilesError)
def _table_unreadable(d: Path) -> BadInput:
    """The tile table itself without read permission."""
    return BadInput.one(unreadable(table(d, good_rows(d))))


@case("table", "zero-pixel-size", error=MetadataError)
def _table_zero_px(d: Path) -> BadInput:
    """pixel_size_um = 0."""
    rows = good_rows(d)
    rows[0]["pixel_size_um"] = 0
    return BadInput.one(table(d, rows))


# --------------------------------------------------------------------------------------------
# NDTiff (index and data files of the samples)


def _nd_copy(d: Path, name: str = "labeled_positions_1") -> Path:
    return copy_tree(sample("ndtiff", name), d / "ds")


def index_entries(index: bytes) -> list[tuple[int, int]]:
    """(start, start of the 8 uint32 fields) of every entry of an NDTiff v3 index."""
    out, pos = [], 0
    while pos + 4 <= len(index):
        (n,) = struct.unpack("<I", index[pos : pos + 4])
        if n == 0:
            break
        start = pos
        pos += 4 + n
        (m,) = struct.unpack("<I", index[pos : pos + 4])
        pos += 4 + m
        out.append((start, pos))
        pos += 32
    return out


def _set_index_field(r: BadInput, field_no: int, value: int, entry: int = 0) -> None:
    idx = r.inputs[0] / "NDTiff.index"
    _, fields = index_entries(idx.read_bytes())[entry]
    patch(idx, fields + 4 * field_no, struct.pack("<I", value))


def _index_field(d: Path, field_no: int, value: int, entry: int = 0) -> BadInput:
    """A copy of the sample with uint32 field ``field_no`` of index entry ``entry`` set to ``value``."""
    ds = _nd_copy(d)
    r = BadInput.one(ds, ds / "NDTiff.index")
    _set_index_field(r, field_no, value, entry)
    return r


@case("ndtiff", "index-truncated", error=NgffTilesError)
def _nd_index_truncated(d: Path) -> BadInput:
    """The index cut in the middle of its second entry."""
    ds = _nd_copy(d)
    idx = ds / "NDTiff.index"
    _, fields = index_entries(idx.read_bytes())[1]
    truncate(idx, fields + 10)
    return BadInput.one(ds, idx)


@case("ndtiff", "index-empty", error=NgffTilesError)
def _nd_index_empty(d: Path) -> BadInput:
    """A 0-byte index."""
    ds = _nd_copy(d)
    (ds / "NDTiff.index").write_bytes(b"")
    return BadInput.one(ds, ds / "NDTiff.index")


@case("ndtiff", "index-lying-axes-length", error=NgffTilesError)
def _nd_index_axes_len(d: Path) -> BadInput:
    """The first entry's axes-JSON length says 4 GB."""
    ds = _nd_copy(d)
    patch(ds / "NDTiff.index", 0, struct.pack("<I", 0xFFFFFFF0))
    return BadInput.one(ds, ds / "NDTiff.index")


@case("ndtiff", "index-pixel-offset-past-end", error=SourceError)
def _nd_index_offset(d: Path) -> BadInput:
    """An entry whose pixel offset is past the end of its TIFF."""
    r = _index_field(d, 0, 0x7FFFFFF0)
    return BadInput(r.inputs, next(r.inputs[0].glob("*.tif")))


@case("ndtiff", "index-lying-size", error=SourceError)
def _nd_index_size(d: Path) -> BadInput:
    """An entry claiming a 65535 × 65535 (8 GB) frame in a 1.5 MB file."""
    r = _index_field(d, 1, 65535)
    _set_index_field(r, 2, 65535)
    return BadInput(r.inputs, next(r.inputs[0].glob("*.tif")))


@case("ndtiff", "index-terabyte-frame", error=SourceError)
def _nd_index_tb(d: Path) -> BadInput:
    """An entry claiming a 4e9 × 4e9 pixel frame (32 EB): must not be allocated."""
    r = _index_field(d, 1, 0xFFFFFFF0)
    _set_index_field(r, 2, 0xFFFFFFF0)
    return BadInput(r.inputs, next(r.inputs[0].glob("*.tif")))


@case("ndtiff", "index-bad-pixel-type", error=SourceError)
def _nd_index_type(d: Path) -> BadInput:
    """An entry with pixel type 77."""
    r = _index_field(d, 3, 77)
    return BadInput(r.inputs, next(r.inputs[0].glob("*.tif")))


@case("ndtiff", "index-filename-traversal", error=SourceError)
def _nd_index_traversal(d: Path) -> BadInput:
    """An entry whose file name is ../../../etc/hostname (same length kept by padding)."""
    ds = _nd_copy(d)
    idx = ds / "NDTiff.index"
    data = bytearray(idx.read_bytes())
    start, fields = index_entries(bytes(data))[0]
    (n,) = struct.unpack("<I", data[start : start + 4])
    name_at = start + 4 + n + 4
    old = data[name_at:fields]
    evil = b"../../../../../../../etc/hostname"
    evil = (b"./" * ((len(old) - len(evil)) // 2) + evil).rjust(len(old), b"/")[: len(old)]
    data[name_at:fields] = evil
    idx.write_bytes(bytes(data))
    return BadInput.one(ds, idx)


@case("ndtiff", "tiff-truncated", error=SourceError)
def _nd_tif_truncated(d: Path) -> BadInput:
    """The data TIFF cut to 40%: the index lists images past its end."""
    ds = _nd_copy(d)
    tif = next(ds.glob("*.tif"))
    truncate(tif, int(tif.stat().st_size * 0.4))
    return BadInput.one(ds, tif)


@case("ndtiff", "index-bitflips", error=NgffTilesError)
def _nd_index_flips(d: Path) -> BadInput:
    """Twelve bits flipped in the axes JSON of a v3.0 index (seeded)."""
    ds = copy_tree(sample("ndtiff", "ndtiffv3.0_stitched_test"), d / "ds")
    idx = ds / "Full resolution" / "NDTiff.index"
    flip_bits(idx, 4, 40, 12, seed=7)
    return BadInput.one(ds, idx)


# --------------------------------------------------------------------------------------------
# ND2 (cluster.nd2)


def _nd2_copy(d: Path) -> Path:
    return copy_file(sample("nd2", "cluster.nd2"), d / "cluster.nd2")


@case("nd2", "header-only", error=SourceError)
def _nd2_header(d: Path) -> BadInput:
    """Only the first 112 bytes (magic and the first chunk header)."""
    return BadInput.one(truncate(_nd2_copy(d), 112))


@case("nd2", "truncated-half", error=SourceError)
def _nd2_half(d: Path) -> BadInput:
    """The file cut in half (the chunk map at its end is gone)."""
    p = _nd2_copy(d)
    return BadInput.one(truncate(p, p.stat().st_size // 2))


@case("nd2", "chunkmap-garbage", error=SourceError)
def _nd2_chunkmap(d: Path) -> BadInput:
    """The last 2 KB (the chunk map and its signature) overwritten with random bytes."""
    p = _nd2_copy(d)
    junk = np.random.default_rng(5).integers(0, 256, 2048, dtype=np.uint8).tobytes()
    return BadInput.one(patch(p, -2048, junk))


@case("nd2", "header-bitflips", error=NgffTilesError)
def _nd2_flips(d: Path) -> BadInput:
    """Bits flipped in the first chunk header's lengths (after the magic and signature)."""
    p = _nd2_copy(d)
    return BadInput.one(patch(p, 4, struct.pack("<IQ", 0xFFFFFFF0, 0x7FFFFFFFFFFFFFF0)))


@case("nd2", "chunkmap-offsets-lying", error=SourceError)
def _nd2_lying_map(d: Path) -> BadInput:
    """The chunk map's final pointer says the map is at 2^62."""
    p = _nd2_copy(d)
    return BadInput.one(patch(p, -8, struct.pack("<Q", 1 << 62)))


def _nd2_attributes(d: Path, values: dict[str, int]) -> BadInput:
    """cluster.nd2 with uint32 image attributes (``uiWidth``...) rewritten in its LV metadata."""
    p = _nd2_copy(d)
    buf = bytearray(p.read_bytes())
    for name, value in values.items():
        key = name.encode("utf-16-le") + b"\0\0"
        at = buf.rindex(key) + len(key)
        buf[at : at + 4] = struct.pack("<I", value)
    p.write_bytes(bytes(buf))
    return BadInput.one(p)


@case("nd2", "lying-width", error=SourceError)
def _nd2_lying_width(d: Path) -> BadInput:
    """uiWidth of 4 294 967 280 pixels: 533 GB frames (the reader once let this through: OOM-kill)."""
    return _nd2_attributes(d, {"uiWidth": 0xFFFFFFF0})


@case("nd2", "lying-width-height", error=SourceError)
def _nd2_lying_wh(d: Path) -> BadInput:
    """uiWidth × uiHeight of 2^31 × 2^31 pixels (18 EB frames)."""
    return _nd2_attributes(d, {"uiWidth": 0x7FFFFFF0, "uiHeight": 0x7FFFFFF0})


@case("nd2", "lying-components", error=SourceError)
def _nd2_lying_components(d: Path) -> BadInput:
    """uiComp of 65 535 components per pixel."""
    return _nd2_attributes(d, {"uiComp": 0xFFFF})


# --------------------------------------------------------------------------------------------
# pzf: a real PYME cluster series (written by PYME) with one frame replaced by a broken one


def _pcs_with_frame(d: Path, data: bytes, frame: str = "frame00003.pzf") -> BadInput:
    pcs = copy_tree(sample("pyme", "series", "tiles_events", "tiles_events.pcs"), d / "series.pcs")
    (pcs / frame).write_bytes(data)
    return BadInput.one(pcs, pcs / frame)


def _register_pzf() -> None:
    from ngff_tiles.testing.bad_pzf import bad_pzf_cases

    for bad in bad_pzf_cases():

        def make(d: Path, data: bytes = bad.data) -> BadInput:
            return _pcs_with_frame(d, data)

        make.__doc__ = f"frame00003.pzf of a real series: {bad.breaks}"
        register("pzf", bad.name, make, error=SourceError)


_register_pzf()


@case("pzf", "real-frame-truncated", error=SourceError)
def _pzf_real_truncated(d: Path) -> BadInput:
    """A PYME-written Huffman frame cut in the middle of its payload."""
    data = sample("pyme", "series", "tiles_events", "tiles_events.pcs", "frame00003.pzf").read_bytes()
    return _pcs_with_frame(d, data[: len(data) // 2])


@case("pzf", "metadata-not-json", error=SourceError)
def _pcs_bad_metadata(d: Path) -> BadInput:
    """metadata.json of a series is not JSON."""
    pcs = copy_tree(sample("pyme", "series", "tiles_events", "tiles_events.pcs"), d / "series.pcs")
    (pcs / "metadata.json").write_text('{"voxelsize.x": 0.1,')
    return BadInput.one(pcs, pcs / "metadata.json")


# --------------------------------------------------------------------------------------------
# bdv: BigDataViewer XML (hostile or inconsistent) and broken BDV-H5 files


def _kidney(d: Path) -> tuple[Path, Path]:
    src = sample("bdv-h5", "npy2bdv_kidney")
    xml = copy_file(src / "kidney.xml", d / "kidney.xml")
    h5 = copy_file(src / "kidney.h5", d / "kidney.h5")
    return xml, h5


def _kidney_xml(d: Path, edit: Callable[[str], str]) -> BadInput:
    xml, _ = _kidney(d)
    text = xml.read_text(encoding="utf-8")
    edited = edit(text)
    assert edited != text, "the edit changed nothing"
    xml.write_text(edited, encoding="utf-8")
    return BadInput.one(xml)


@control("bdv")
def _good_bdv(d: Path) -> BadInput:
    return BadInput.one(_kidney(d)[0])


def _kidney_entity(d: Path, entities: str, entity: str) -> BadInput:
    """kidney.xml with a DOCTYPE declaring ``entities`` and the first setup named ``&entity;``."""
    dtd = f"<!DOCTYPE SpimData [{entities}]>\n"
    return _kidney_xml(
        d,
        lambda t: t.replace("<SpimData", dtd + "<SpimData", 1).replace(
            "<name>0</name>", f"<name>&{entity};</name>", 1
        ),
    )


@case("bdv", "billion-laughs", error=MetadataError)
def _bdv_laughs(d: Path) -> BadInput:
    """Nested entity expansion in the SpimData XML."""
    entities = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)
    )
    return _kidney_entity(d, entities, "i")


@case("bdv", "external-entity", error=MetadataError)
def _bdv_xxe(d: Path) -> BadInput:
    """An external entity reading /etc/passwd into a setup name."""
    return _kidney_entity(d, '<!ENTITY x SYSTEM "file:///etc/passwd">', "x")


@case("bdv", "loader-path-traversal", error=MetadataError)
def _bdv_traversal(d: Path) -> BadInput:
    """The HDF5 loader path leaves the project folder."""
    return _kidney_xml(d, lambda t: t.replace(">kidney.h5<", ">../../../etc/kidney.h5<"))


@case("bdv", "loader-absolute-path", error=MetadataError)
def _bdv_absolute(d: Path) -> BadInput:
    """An absolute HDF5 path outside the project folder."""
    return _kidney_xml(
        d, lambda t: t.replace('<hdf5 type="relative">kidney.h5', '<hdf5 type="absolute">/etc/kidney.h5')
    )


@case("bdv", "no-setups", error=MetadataError)
def _bdv_no_setups(d: Path) -> BadInput:
    """ViewSetups emptied: the registrations name setups that do not exist."""
    return _kidney_xml(d, lambda t: re.sub(r"<ViewSetup>.*?</ViewSetup>", "", t, flags=re.S))


@case("bdv", "non-numeric-affine", error=MetadataError)
def _bdv_bad_affine(d: Path) -> BadInput:
    """An affine with a word among its twelve numbers."""
    return _kidney_xml(d, lambda t: re.sub(r"<affine>\s*[-0-9.eE]+", "<affine>one", t, count=1))


@case("bdv", "nan-affine", error=MetadataError)
def _bdv_nan_affine(d: Path) -> BadInput:
    """An affine holding NaN."""
    return _kidney_xml(d, lambda t: re.sub(r"<affine>\s*[-0-9.eE]+", "<affine>NaN", t, count=1))


@case("bdv", "truncated-xml", error=MetadataError)
def _bdv_truncated_xml(d: Path) -> BadInput:
    """The XML cut in the middle of an element."""
    return _kidney_xml(d, lambda t: t[: len(t) // 2])


@case("bdv", "h5-truncated", error=SourceError)
def _bdv_h5_truncated(d: Path) -> BadInput:
    """kidney.h5 cut to a third: its datasets point past the end."""
    xml, h5 = _kidney(d)
    truncate(h5, h5.stat().st_size // 3)
    return BadInput.one(xml, h5)


@case("bdv", "h5-bad-superblock", error=SourceError)
def _bdv_h5_superblock(d: Path) -> BadInput:
    """kidney.h5 with its HDF5 signature overwritten."""
    xml, h5 = _kidney(d)
    patch(h5, 0, b"NOTHDF5!")
    return BadInput.one(xml, h5)


@case("bdv", "h5-missing", error=SourceError)
def _bdv_h5_missing(d: Path) -> BadInput:
    """The XML names an HDF5 file that is not there."""
    xml, h5 = _kidney(d)
    h5.unlink()
    return BadInput.one(xml, h5)


# --------------------------------------------------------------------------------------------


def build(case_id: str, folder: Path) -> BadInput:
    """Build case ``case_id`` in the empty ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return CASES[case_id].make(folder)


def main(argv: Sequence[str] | None = None) -> int:
    """Build every case into ``OUT/<group>__<name>/`` and list them."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: generate.py OUT", file=sys.stderr)
        return 2
    out = Path(args[0])
    for cid, c in CASES.items():
        folder = out / cid.replace("/", "__")
        if folder.exists():
            for p in [folder, *folder.rglob("*")]:
                if not p.is_symlink():
                    p.chmod(stat.S_IRWXU)
            shutil.rmtree(folder)
        try:
            built = build(cid, folder)
        except SampleMissing as exc:
            print(f"{cid:<40} skipped: {exc}")
            continue
        print(f"{cid:<40} {' '.join(map(str, built.inputs))}  ({c.doc})")
    print(f"{len(CASES)} cases")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
