"""Corrupted and truncated PZF frames: a corpus for decoder robustness tests.

Every case is derived from a valid frame (by default one written by the project's encoder; pass a
real PYME frame to derive them from that instead) and breaks exactly one thing. A decoder must
raise :class:`~ngff_tiles.errors.SourceError` naming the file for each, promptly and without a
large allocation. Shared by the PZF tests and the bad-input corpus.

Example::

    from ngff_tiles.testing.bad_pzf import bad_pzf_cases
    for case in bad_pzf_cases():
        (folder / f"{case.name}.pzf").write_bytes(case.data)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

__all__ = ["BadPZF", "bad_pzf_cases", "valid_frames"]


@dataclass(frozen=True, slots=True)
class BadPZF:
    """One broken frame: a file-name-safe ``name``, its bytes, and what it breaks."""

    name: str
    data: bytes
    breaks: str


def _image(shape: tuple[int, int], seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    img = 300 + 3 * x + y + rng.poisson(40, shape)
    return np.asarray(img, dtype=np.uint16)


def valid_frames() -> dict[str, bytes]:
    """Valid frames the cases start from: Huffman (acquisition layout), RAW, quantized, chunked."""
    from ngff_tiles.readers.pyme.pzf import encode_frame

    img = _image((48, 64))
    return {
        "huffman": encode_frame(img),
        "raw": encode_frame(img, compression="raw", layout="C"),
        "quantized": encode_frame(img, quantization=(100.0, 1.0)),
        "chunks": encode_frame(img, compression="chunks", layout="C", n_chunks=3),
        "single_symbol": encode_frame(np.full((48, 64), 257, dtype=np.uint16)),
    }


def _set(buf: bytes, offset: int, fmt: str, *values: object) -> bytes:
    out = bytearray(buf)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def bad_pzf_cases(huffman_frame: bytes | None = None) -> list[BadPZF]:
    """Return the corpus (at least 15 cases), each breaking one thing of a valid frame.

    Parameters
    ----------
    huffman_frame
        A valid v3 HUFFCODE uint16 frame to derive the Huffman cases from (for instance one written
        by PYME); default: one written by the project's encoder.
    """
    v = valid_frames()
    huff = huffman_frame if huffman_frame is not None else v["huffman"]
    raw, quant, chunks, single = v["raw"], v["quantized"], v["chunks"], v["single_symbol"]
    w, h, d = struct.unpack_from("<III", huff, 20)
    cases = [
        BadPZF("empty", b"", "zero bytes: no header at all"),
        BadPZF("bad_magic", b"XY" + huff[2:], "magic is not b'BD'"),
        BadPZF("short_header_v3", huff[:40], "v3 header cut at 40 of 64 bytes"),
        BadPZF("short_header_v2", _set(huff, 2, "<B", 2)[:30], "v2 header cut at 30 of 48 bytes"),
        BadPZF("bad_version", _set(huff, 2, "<B", 9), "header version 9"),
        BadPZF("bad_data_format", _set(huff, 3, "<B", 7), "DataFormat 7 (only 0-2 exist)"),
        BadPZF("bad_compression", _set(huff, 4, "<B", 5), "DataCompression 5 (only 0-2 exist)"),
        BadPZF("bad_quantization_flag", _set(huff, 5, "<B", 3), "DataQuantization 3 (only 0-1 exist)"),
        BadPZF("bad_dim_order", _set(huff, 6, "<c", b"Z"), "DimOrder b'Z'"),
        BadPZF("zero_dimension", _set(huff, 20, "<I", 0), "Width 0"),
        BadPZF(
            "absurd_dimensions",
            _set(huff, 20, "<III", 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
            "Width×Height×Depth of 2**96 pixels",
        ),
        BadPZF(
            "lying_dimensions_huffman",
            _set(huff, 20, "<III", w, h * 64, d),
            "declares 64x the rows the Huffman stream holds",
        ),
        BadPZF(
            "lying_dimensions_raw",
            _set(raw, 20, "<I", struct.unpack_from("<I", raw, 20)[0] + 1),
            "RAW frame declares one more column than its payload holds",
        ),
        BadPZF("data_offset_beyond_end", _set(huff, 48, "<I", len(huff) + 100), "DataOffset past the end"),
        BadPZF("data_offset_inside_header", _set(huff, 48, "<I", 10), "DataOffset 10, inside the header"),
        BadPZF(
            "data_offset_wrong",
            _set(huff, 48, "<I", len(huff) - 8),
            "DataOffset points at the last 8 bytes of the payload",
        ),
        BadPZF(
            "truncated_payload_huffman", huff[: 64 + (len(huff) - 64) // 2], "Huffman payload cut in half"
        ),
        BadPZF("truncated_payload_raw", raw[:-1], "RAW payload one byte short"),
        BadPZF("truncated_tree", huff[:65], "payload of one byte: the Huffman tree is cut"),
        BadPZF("raw_extra_bytes", raw + b"\x00" * 3, "RAW payload with 3 trailing bytes"),
        BadPZF(
            "tree_not_terminating",
            huff[:64] + b"\x00" * (len(huff) - 64),
            "all-zero payload: internal Huffman nodes forever (no leaf)",
        ),
        BadPZF(
            "tree_repeated_symbol",
            # 0 | 1 00000101 | 1 00000101 -> two leaves with the same symbol
            huff[:64] + bytes([0b01000001, 0b01100000, 0b10100000]) + b"\xff" * (len(huff) - 67),
            "Huffman tree with the same symbol twice",
        ),
        BadPZF("bad_quant_scale_zero", _set(quant, 44, "<f", 0.0), "quantized frame with QuantScale 0"),
        BadPZF(
            "bad_quant_scale_nan", _set(quant, 44, "<f", float("nan")), "quantized frame with QuantScale NaN"
        ),
        BadPZF(
            "bad_quant_scale_huge",
            _set(quant, 44, "<f", 1000.0),
            "QuantScale 1000: dequantized values overflow uint16",
        ),
        BadPZF(
            "bad_quant_scale_overflow",
            _set(quant, 44, "<f", 3.0e38),
            "QuantScale 3e38: squaring overflows float32 (found by the fuzzer)",
        ),
        BadPZF("bad_quant_offset_negative", _set(quant, 40, "<f", -1e6), "negative QuantOffset for uint16"),
        BadPZF("chunks_zero", _set(chunks, 64, "<H", 0), "chunked payload with 0 chunks"),
        BadPZF("chunks_truncated", chunks[:-5], "last chunk cut short"),
        BadPZF(
            "chunks_raw_len_lie",
            _set(chunks, 64 + 2 + 4, "<I", struct.unpack_from("<I", chunks, 64 + 2 + 4)[0] + 2),
            "a chunk declares 2 more decoded bytes than the frame holds",
        ),
        BadPZF(
            "single_symbol_huge",
            _set(single, 20, "<III", 1, 30000, 20000),
            "single-symbol stream (no bits read per symbol) declaring 600 M pixels",
        ),
    ]
    return cases
