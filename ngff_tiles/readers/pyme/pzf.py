"""PZF frames (PYME's ``PZFFormat``): header v1-v3, RAW / Huffman / chunked Huffman, sqrt quantization.

Written from the format description in ``reference/pyme.md`` §1 (PYME is GPL; none of its code is
used). A frame is a packed little-endian header (48 bytes for v1/v2, 64 for v3, whose
``DataOffset`` says where the payload starts) followed by the payload, which runs to the end of
the buffer:

- RAW: the array's bytes in ``DimOrder`` (``C`` or ``F``);
- HUFFCODE: one BCL Huffman stream over those bytes (16-bit data is coded byte by byte), or over
  the quantized bytes for sqrt-quantized frames;
- HUFFCODE_CHUNKS (legacy, read only): ``u2`` chunk count, then ``u4 comp_len, u4 raw_len`` and
  a stream per chunk, concatenated.

Sqrt quantization decodes as PYME does: ``((q.astype(float32) * QuantScale) ** 2 + QuantOffset)``
in float32, cast (truncating) to the data type.

Axes: PYME arrays are ``[x, y, z]`` of shape ``(Width, Height, Depth)``. The acquisition layout is
``[1, W, H]`` in ``F`` order (header ``Width=1``); :func:`decode_frame` returns (z, y, x) for both
layouts: the array is reshaped with ``DimOrder``, a leading unit x axis with ``Depth > 1`` is
dropped (the acquisition layout), and the remaining ``[x, y, z]`` is transposed.

Hostile input: every size is checked against the payload before anything is allocated; the
decoded size is bounded (:data:`MAX_DECODED_BYTES`); a truncated or malformed Huffman stream is
reported with its offset. Every problem is a :class:`~ngff_tiles.errors.SourceError` naming the
frame.
"""

from __future__ import annotations

import itertools
import math
import struct
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ngff_tiles.errors import SourceError
from ngff_tiles.readers.pyme import _huffman as huff

__all__ = [
    "DATA_FORMATS",
    "FORMAT_ID",
    "MAX_DECODED_BYTES",
    "PZFHeader",
    "decode_frame",
    "encode_frame",
    "loads",
    "read_header",
]

FORMAT_ID = b"BD"
DATA_FORMATS: tuple[str, ...] = ("<u1", "<u2", "<f4")
"""``DataFormat`` codes 0, 1, 2."""
RAW, HUFFCODE, HUFFCODE_CHUNKS = 0, 1, 2
COMPRESSIONS = ("RAW", "HUFFCODE", "HUFFCODE_CHUNKS")
QUANT_NONE, QUANT_SQRT = 0, 1

MAX_DECODED_BYTES = 1 << 31
"""Largest decoded frame accepted (2 GiB); a header declaring more is refused as absurd."""

_HEAD_V12 = struct.Struct("<2sBBBBccqIIIIQff")
_HEAD_V3 = struct.Struct("<2sBBBBccqIIIIQffI12s")
assert _HEAD_V12.size == 48
assert _HEAD_V3.size == 64


@dataclass(frozen=True, slots=True)
class PZFHeader:
    """A parsed PZF header (field names as in PYME's header struct, in snake case)."""

    version: int
    data_format: int
    compression: int
    quantization: int
    dim_order: Literal["C", "F"]
    sequence_id: int
    frame_num: int
    width: int
    height: int
    depth: int
    frame_timestamp: int
    quant_offset: float
    quant_scale: float
    data_offset: int

    @property
    def dtype(self) -> np.dtype[Any]:
        """Pixel type (little-endian)."""
        return np.dtype(DATA_FORMATS[self.data_format])

    @property
    def n_pixels(self) -> int:
        """Width × Height × Depth."""
        return self.width * self.height * self.depth

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """The (z, y, x) shape :func:`decode_frame` returns."""
        if self.width == 1 and self.depth > 1:
            return (1, self.depth, self.height)
        return (self.depth, self.height, self.width)


def _fail(name: str, message: str) -> SourceError:
    return SourceError(f"{name}: {message}")


def read_header(buf: bytes | memoryview, name: str = "<bytes>") -> PZFHeader:
    """Parse and check the header of a PZF frame (the first 48 or 64 bytes suffice).

    Raises
    ------
    SourceError
        Bad magic, unknown version/format/compression/quantization/dim order, zero or absurd
        dimensions, or a data offset outside the buffer (when the buffer holds more than the header).
    """
    mv = memoryview(buf).cast("B")
    if len(mv) < 3:
        raise _fail(name, f"not a PZF frame: {len(mv)} bytes, shorter than a header")
    if bytes(mv[:2]) != FORMAT_ID:
        raise _fail(name, f"not a PZF frame: expected magic b'BD' at offset 0, got {bytes(mv[:2])!r}")
    version = mv[2]
    if version not in (1, 2, 3):
        raise _fail(name, f"unsupported PZF version {version} at offset 2 (expected 1, 2 or 3)")
    size = _HEAD_V3.size if version >= 3 else _HEAD_V12.size
    if len(mv) < size:
        raise _fail(name, f"truncated PZF header: version {version} needs {size} bytes, got {len(mv)}")
    if version >= 3:
        fields = _HEAD_V3.unpack_from(mv)
        data_offset = int(fields[15])
    else:
        fields = _HEAD_V12.unpack_from(mv)
        data_offset = size
    _, _, fmt, comp, quant, order_b, _, seq, fnum, w, h, d, ts, qo, qs = fields[:15]
    if version == 1:  # v1: RESERVED0 was 3 bytes after DataCompression; 'C' order, no quantization
        quant, order_b = 0, b"C"
    if fmt >= len(DATA_FORMATS):
        raise _fail(name, f"unknown PZF DataFormat {fmt} at offset 3 (expected 0 u8, 1 u16, 2 f32)")
    if comp > HUFFCODE_CHUNKS:
        raise _fail(name, f"unknown PZF DataCompression {comp} at offset 4 (expected 0, 1 or 2)")
    if quant > QUANT_SQRT:
        raise _fail(name, f"unknown PZF DataQuantization {quant} at offset 5 (expected 0 or 1)")
    if order_b not in (b"C", b"F"):
        raise _fail(name, f"unknown PZF DimOrder {order_b!r} at offset 6 (expected b'C' or b'F')")
    if min(w, h, d) < 1:
        raise _fail(name, f"PZF frame has a zero dimension: Width×Height×Depth = {w}×{h}×{d}")
    itemsize = np.dtype(DATA_FORMATS[fmt]).itemsize
    if w * h * d * itemsize > MAX_DECODED_BYTES:
        raise _fail(
            name,
            f"absurd PZF dimensions {w}×{h}×{d} ({w * h * d * itemsize} bytes; limit {MAX_DECODED_BYTES})",
        )
    if version >= 3 and (data_offset < size or data_offset > max(len(mv), size)):
        raise _fail(
            name,
            f"PZF DataOffset {data_offset} at offset 48 lies outside the frame "
            f"(header {size} bytes, frame {len(mv)} bytes)",
        )
    return PZFHeader(
        version=int(version),
        data_format=int(fmt),
        compression=int(comp),
        quantization=int(quant),
        dim_order="F" if order_b == b"F" else "C",
        sequence_id=int(seq),
        frame_num=int(fnum),
        width=int(w),
        height=int(h),
        depth=int(d),
        frame_timestamp=int(ts),
        quant_offset=float(qo),
        quant_scale=float(qs),
        data_offset=data_offset,
    )


def _huffman(payload: memoryview, outsize: int, name: str, base: int) -> np.ndarray:
    try:
        return huff.decode(payload, outsize)
    except huff.HuffmanError as exc:
        raise _fail(name, f"{exc} (payload offset {base}, byte {base + exc.bit // 8})") from None


def _chunks(payload: memoryview, expected: tuple[int, ...], name: str, base: int) -> np.ndarray:
    n = len(payload)
    if n < 2:
        raise _fail(name, f"truncated chunked payload at offset {base}: no chunk count")
    (count,) = struct.unpack_from("<H", payload, 0)
    if count < 1:
        raise _fail(name, f"chunked payload at offset {base} declares 0 chunks")
    pos = 2
    spans: list[tuple[int, int, int]] = []
    total = 0
    for k in range(count):
        if pos + 8 > n:
            raise _fail(name, f"truncated chunked payload: chunk {k} header at offset {base + pos}")
        comp_len, raw_len = struct.unpack_from("<II", payload, pos)
        pos += 8
        if pos + comp_len > n:
            raise _fail(
                name,
                f"truncated chunked payload: chunk {k} declares {comp_len} bytes at offset {base + pos}, "
                f"{n - pos} remain",
            )
        total += raw_len
        if total > max(expected):
            raise _fail(
                name, f"chunked payload declares more data ({total} bytes so far) than the frame holds"
            )
        spans.append((pos, comp_len, raw_len))
        pos += comp_len
    if total not in expected:
        raise _fail(
            name, f"chunked payload decodes to {total} bytes, expected {' or '.join(map(str, expected))}"
        )
    out = np.empty(total, dtype=np.uint8)
    at = 0
    for start, comp_len, raw_len in spans:
        out[at : at + raw_len] = _huffman(payload[start : start + comp_len], raw_len, name, base + start)
        at += raw_len
    return out


def _dequantize(q: np.ndarray, header: PZFHeader, name: str) -> np.ndarray:
    scale, offset = header.quant_scale, header.quant_offset
    if not (math.isfinite(scale) and scale > 0):
        raise _fail(name, f"bad PZF quantization scale {scale!r} at offset 44 (expected a positive number)")
    if not math.isfinite(offset):
        raise _fail(name, f"bad PZF quantization offset {offset!r} at offset 40")
    dtype = header.dtype
    if dtype.kind == "u":
        # in Python floats: float32 arithmetic would overflow (with a warning) for absurd scales
        step = (float(q.max()) if q.size else 0.0) * scale
        top = step * step + offset
        if offset < 0 or top >= np.iinfo(dtype).max + 1:
            raise _fail(
                name,
                f"bad PZF quantization (offset {offset:g}, scale {scale:g}): values up to {top:.6g} "
                f"do not fit {dtype.name}",
            )
    s32, o32 = np.float32(scale), np.float32(offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return ((q.astype(np.float32) * s32) ** 2 + o32).astype(dtype)


def loads(buf: bytes | memoryview, name: str = "<bytes>") -> tuple[np.ndarray, PZFHeader]:
    """Decode a PZF frame to PYME's ``[x, y, z]`` array of shape (Width, Height, Depth).

    Parameters
    ----------
    buf
        The whole frame.
    name
        The file or URL it came from, for error messages.

    Raises
    ------
    SourceError
        Anything malformed, truncated or inconsistent; the message names ``name`` and the offset.
    """
    mv = memoryview(buf).cast("B")
    header = read_header(mv, name)
    payload = mv[header.data_offset :]
    base = header.data_offset
    dtype = header.dtype
    n = header.n_pixels
    full = n * dtype.itemsize
    quantized = header.quantization == QUANT_SQRT
    if header.compression == RAW:
        expected = (n, full) if quantized else (full,)
        if len(payload) not in expected:
            raise _fail(
                name,
                f"RAW payload at offset {base} is {len(payload)} bytes, expected {full} "
                f"for {header.width}×{header.height}×{header.depth} {dtype.name}",
            )
        raw = np.frombuffer(payload, dtype=np.uint8)
    elif header.compression == HUFFCODE:
        raw = _huffman(payload, n if quantized else full, name, base)
    else:  # chunks; PYME's writer ignores quantization here, so accept either decoded length
        raw = _chunks(payload, (n, full) if quantized else (full,), name, base)
    # RAW/CHUNKS + SQRT as PYME writes them hold unquantized data: told apart by their length
    values = _dequantize(raw, header, name) if quantized and len(raw) == n else raw.view(dtype)
    arr = values.reshape((header.width, header.height, header.depth), order=header.dim_order)
    if not dtype.isnative:  # pragma: no cover - big-endian hosts
        arr = arr.astype(dtype.newbyteorder("="))
    return arr, header


def decode_frame(buf: bytes | memoryview, name: str = "<bytes>") -> np.ndarray:
    """Decode a PZF frame to a (z, y, x) array (2-D frames have z == 1)."""
    arr, header = loads(buf, name)
    if header.width == 1 and header.depth > 1:  # acquisition layout [1, W, H]
        return np.ascontiguousarray(arr[0].T[None])
    return np.ascontiguousarray(arr.transpose(2, 1, 0))


# ---------------------------------------------------------------------------------------------
# encoder: for tests, benchmarks and fixtures (writes what PYME writes, plus v1/v2 and chunks)


def encode_frame(
    image: np.ndarray,
    *,
    compression: Literal["raw", "huffman", "chunks"] = "huffman",
    quantization: tuple[float, float] | None = None,
    layout: Literal["acquisition", "C", "F"] = "acquisition",
    version: int = 3,
    data_offset: int | None = None,
    frame_num: int = 0,
    sequence_id: int = 0,
    n_chunks: int = 2,
) -> bytes:
    """Encode a (y, x) or (z, y, x) ``image`` as a PZF frame.

    Parameters
    ----------
    image
        uint8, uint16 or float32 pixels.
    compression
        ``raw``, ``huffman`` (PYME's default) or ``chunks`` (legacy; read-only in PYME).
    quantization
        ``(offset, scale)`` for sqrt quantization (uint16 only, Huffman only, as in PYME):
        ``q = round(sqrt(v - offset) / scale)`` saturated to 0..255.
    layout
        ``acquisition``: PYMEAcquire's ``[1, W, H]`` F-ordered frame (2-D only); ``C``/``F``:
        a ``(W, H, D)`` array in that order.
    version
        Header version 1, 2 or 3 (v1 has no quantization and is always ``C``).
    data_offset
        v3 only: where the payload starts (default 64); larger values pad with zeros.
    frame_num, sequence_id
        Header fields.
    n_chunks
        Chunks for ``compression="chunks"``.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[None]
    fmt = {np.dtype(np.uint8): 0, np.dtype(np.uint16): 1, np.dtype(np.float32): 2}[img.dtype]
    xyz = img.transpose(2, 1, 0)  # [x, y, z]
    order: Literal["C", "F"]
    if layout == "acquisition":
        if img.shape[0] != 1:
            raise ValueError("the acquisition layout holds 2-D frames only")
        pyme = xyz[:, :, 0][None]  # [1, W, H]
        order = "F"
    else:
        pyme = xyz
        order = "C" if layout == "C" else "F"
    if version == 1 and order != "C":
        raise ValueError("PZF v1 frames are always C-ordered")
    w, h, d = pyme.shape
    data = np.asarray(pyme, dtype=img.dtype.newbyteorder("<")).tobytes(order=order)
    qo = qs = 0.0
    if quantization is not None:
        if fmt != 1 or compression != "huffman" or version == 1:
            raise ValueError("sqrt quantization needs uint16 data, Huffman coding and a v2/v3 header")
        qo, qs = float(quantization[0]), float(quantization[1])
        v = np.frombuffer(data, dtype="<u2").astype(np.float32)
        q = np.clip(np.rint(np.sqrt(np.maximum(v - np.float32(qo), 0)) / np.float32(qs)), 0, 255)
        data = q.astype(np.uint8).tobytes()
    if compression == "raw":
        payload = data
    elif compression == "huffman":
        payload = huff.encode(data)
    else:
        bounds = np.linspace(0, len(data), n_chunks + 1).astype(int)
        parts = [struct.pack("<H", n_chunks)]
        for a, b in itertools.pairwise(bounds):
            stream = huff.encode(data[a:b])
            parts.append(struct.pack("<II", len(stream), b - a) + stream)
        payload = b"".join(parts)
    comp = {"raw": RAW, "huffman": HUFFCODE, "chunks": HUFFCODE_CHUNKS}[compression]
    quant = QUANT_SQRT if quantization is not None else QUANT_NONE
    common = (FORMAT_ID, version, fmt, comp, quant if version > 1 else 0)
    order_b = order.encode() if version > 1 else b"\x00"
    rest = (sequence_id, frame_num, w, h, d, 0, qo, qs)
    if version >= 3:
        offset = 64 if data_offset is None else int(data_offset)
        head = _HEAD_V3.pack(*common, order_b, b"\x00", *rest, offset, b"\x00" * 12)
        return head + b"\x00" * (offset - 64) + payload
    return _HEAD_V12.pack(*common, order_b, b"\x00", *rest) + payload
