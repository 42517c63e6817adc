"""PZF codec: PYME-written frames bit for bit, encoder round trips, hostile frames, fuzzing."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngff_tiles.errors import SourceError
from ngff_tiles.readers.pyme import _huffman as huff
from ngff_tiles.readers.pyme import pzf
from ngff_tiles.testing.bad_pzf import bad_pzf_cases, valid_frames

FRAMES = Path(__file__).parents[1] / ".." / "shared" / "sample-data" / "pyme" / "pzf-frames"
SERIES = Path(__file__).parents[1] / ".." / "shared" / "sample-data" / "pyme" / "series"
needs_frames = pytest.mark.skipif(
    not (FRAMES / "MANIFEST.json").is_file(), reason=f"PYME sample frames not found at {FRAMES}"
)


def _manifest() -> list[dict]:
    if not (FRAMES / "MANIFEST.json").is_file():
        return []
    return list(json.loads((FRAMES / "MANIFEST.json").read_text())["files"])


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# PYME's own frames


@needs_frames
def test_manifest_lists_every_frame() -> None:
    listed = {e["file"] for e in _manifest()}
    assert listed == {p.name for p in FRAMES.glob("*.pzf")}
    assert len(listed) == 25


@needs_frames
@pytest.mark.parametrize("entry", _manifest(), ids=lambda e: e["file"])
def test_pyme_frame_decodes_bit_for_bit(entry: dict) -> None:
    buf = (FRAMES / entry["file"]).read_bytes()
    assert hashlib.sha256(buf).hexdigest() == entry["file_sha256"]
    arr, header = pzf.loads(buf, entry["file"])
    # PYME's [x, y, z] array: same shape, dtype, values (sha256 rule of the manifest)
    ref = np.load(FRAMES / entry["loads"]["file"])
    assert arr.shape == tuple(entry["loads"]["shape"]) == ref.shape
    assert arr.dtype == np.dtype(entry["loads"]["dtype"])
    assert _sha(arr) == entry["loads"]["sha256"] == _sha(ref)
    # the (y, x) / (z, y, x) image by the axis rule
    assert entry["image"]["sha256"] == _sha(np.load(FRAMES / entry["image"]["file"]))
    img = pzf.decode_frame(buf, entry["file"])
    want = np.load(FRAMES / entry["image"]["file"])
    assert _sha(img[0] if want.ndim == 2 else img) == entry["image"]["sha256"]
    assert img.shape == ((1, *want.shape) if want.ndim == 2 else want.shape)
    assert header.shape_zyx == img.shape
    # every header field as PYME wrote it
    h = entry["header"]
    assert (header.version, header.data_format, header.compression, header.quantization) == (
        h["Version"],
        h["DataFormat"],
        h["DataCompression"],
        h["DataQuantization"],
    )
    assert (header.width, header.height, header.depth, header.dim_order) == (
        h["Width"],
        h["Height"],
        h["Depth"],
        h["DimOrder"],
    )
    assert (header.sequence_id, header.frame_num, header.frame_timestamp, header.data_offset) == (
        h["SequenceID"],
        h["FrameNum"],
        h["FrameTimestamp"],
        h["DataOffset"],
    )
    assert header.quant_offset == pytest.approx(h["QuantOffset"])
    assert header.quant_scale == pytest.approx(h["QuantScale"])


@needs_frames
@pytest.mark.parametrize(
    "name",
    [
        "u16_huff_sqrt_o100_s0.5_F",  # quantized
        "u16_huff_const257_single_symbol",  # chunk-less single-symbol tree
        "u16_huff_3d_F",  # 3-D
        "u16_huff_C_67x131",  # non-square
        "u8_huff_deepcodes",  # 21-bit codes: the table's long-code path
    ],
)
def test_named_special_frames(name: str) -> None:
    entry = next(e for e in _manifest() if e["file"] == f"{name}.pzf")
    buf = (FRAMES / entry["file"]).read_bytes()
    img = pzf.decode_frame(buf, name)
    want = np.load(FRAMES / entry["image"]["file"])
    np.testing.assert_array_equal(img[0] if want.ndim == 2 else img, want)
    if entry.get("huffman"):
        tree = huff.parse_tree(buf[64:])
        assert tree.n_symbols == entry["huffman"]["n_symbols"]
        assert tree.max_len == entry["huffman"]["max_code_length"]
        assert tree.data_bit == entry["huffman"]["tree_bits"]


@needs_frames
def test_quantized_matches_pyme_dequantization_formula() -> None:
    for entry in _manifest():
        if entry["quantization"] != "SQRT":
            continue
        buf = (FRAMES / entry["file"]).read_bytes()
        header = pzf.read_header(buf)
        source = np.load(FRAMES / entry["input_yx"]["file"]) if "input_yx" in entry else None
        img = pzf.decode_frame(buf)[0]
        s32, o32 = np.float32(header.quant_scale), np.float32(header.quant_offset)
        q = np.rint(np.sqrt(np.maximum(img.astype(np.float64) - header.quant_offset, 0)) / header.quant_scale)
        again = (q.astype(np.float32) * s32) ** 2 + o32
        np.testing.assert_array_equal(again.astype(np.uint16), img)
        if source is not None:
            err = np.abs(img.astype(np.int64) - source.astype(np.int64))
            assert err.max() <= 2 * header.quant_scale * np.sqrt(source.max()) + 1


def test_sqrt_quantization_truncates_like_pyme() -> None:
    # ((q * s)**2 + o) computed in float32 and truncated: 101.5 + (3 * 0.75)**2 = 106.5625 -> 106
    img = np.full((4, 6), 107, dtype=np.uint16)
    buf = pzf.encode_frame(img, quantization=(101.5, 0.75))
    out = pzf.decode_frame(buf)[0]
    q = round(np.sqrt(107 - 101.5) / 0.75)
    assert int(out[0, 0]) == int(np.float32(101.5) + (np.float32(q) * np.float32(0.75)) ** 2)


# ---------------------------------------------------------------------------------------------
# encoder round trips and header variants


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("compression", ["raw", "huffman", "chunks"])
@pytest.mark.parametrize("layout", ["acquisition", "C", "F"])
def test_roundtrip(dtype: type, compression: str, layout: str) -> None:
    rng = np.random.default_rng(3)
    img = (rng.poisson(30, (37, 53)) + np.arange(53)).astype(dtype)
    buf = pzf.encode_frame(img, compression=compression, layout=layout)  # type: ignore[arg-type]
    np.testing.assert_array_equal(pzf.decode_frame(buf)[0], img)


@pytest.mark.parametrize("layout", ["C", "F"])
def test_roundtrip_3d(layout: str) -> None:
    img = np.random.default_rng(1).integers(0, 4000, (5, 24, 40), dtype=np.uint16)
    buf = pzf.encode_frame(img, layout=layout)  # type: ignore[arg-type]
    assert pzf.read_header(buf).shape_zyx == (5, 24, 40)
    np.testing.assert_array_equal(pzf.decode_frame(buf), img)


@pytest.mark.parametrize("version", [1, 2])
def test_old_header_versions(version: int) -> None:
    img = np.random.default_rng(2).integers(0, 9000, (20, 30), dtype=np.uint16)
    buf = pzf.encode_frame(img, layout="C", version=version)
    header = pzf.read_header(buf)
    assert header.version == version
    assert header.data_offset == 48
    np.testing.assert_array_equal(pzf.decode_frame(buf)[0], img)


def test_v1_ignores_bytes_5_to_7() -> None:
    img = np.arange(12, dtype=np.uint16).reshape(3, 4)
    buf = bytearray(pzf.encode_frame(img, compression="raw", layout="C", version=1))
    buf[5:8] = b"\x01F\x00"  # garbage in v1's RESERVED0: no quantization, 'C' order regardless
    np.testing.assert_array_equal(pzf.decode_frame(bytes(buf))[0], img)


def test_data_offset_is_honoured() -> None:
    img = np.random.default_rng(4).integers(0, 60000, (16, 24), dtype=np.uint16)
    buf = pzf.encode_frame(img, data_offset=200)
    assert pzf.read_header(buf).data_offset == 200
    assert len(buf) > 200
    np.testing.assert_array_equal(pzf.decode_frame(buf)[0], img)


def test_raw_with_sqrt_flag_as_pyme_writes_it() -> None:
    # PYME stores RAW+SQRT frames unquantized (and cannot read them back); we read the data as is
    img = np.arange(20, dtype=np.uint16).reshape(4, 5) + 300
    buf = bytearray(pzf.encode_frame(img, compression="raw", layout="C"))
    buf[5] = 1
    np.testing.assert_array_equal(pzf.decode_frame(bytes(buf))[0], img)


def test_huffman_encoder_matches_pyme_streams() -> None:
    """Our encoder's streams decode like PYME's: same tree sizes on PYME's own frame data."""
    if not (FRAMES / "MANIFEST.json").is_file():
        pytest.skip(f"PYME sample frames not found at {FRAMES}")
    buf = (FRAMES / "u8_huff_deepcodes.pzf").read_bytes()
    img = pzf.decode_frame(buf)[0]
    ours = pzf.encode_frame(img, layout="C")
    assert huff.parse_tree(ours[64:]).n_symbols == huff.parse_tree(buf[64:]).n_symbols
    np.testing.assert_array_equal(pzf.decode_frame(ours)[0], img)


def test_python_kernel_equals_compiled_kernel() -> None:
    """The plain-Python fallback decodes exactly as the numba kernel (deep codes included)."""
    rng = np.random.default_rng(5)
    fib = [1, 1]
    while len(fib) < 18:
        fib.append(fib[-1] + fib[-2])
    data = rng.permutation(np.repeat(np.arange(len(fib), dtype=np.uint8), fib))
    stream = huff.encode(data)
    tree = huff.parse_tree(stream)
    assert tree.max_len > huff.TABLE_BITS  # exercises the long-code walk
    bits = min(huff.TABLE_BITS, tree.max_len)
    tables = huff._build_table(tree, bits)
    out = np.empty(len(data), dtype=np.uint8)
    arr = np.frombuffer(stream, dtype=np.uint8)
    end = huff._kernel(arr, tree.data_bit, out, *tables, bits, tree.child0, tree.child1, tree.symbol)
    assert end > 0
    np.testing.assert_array_equal(out, data)
    np.testing.assert_array_equal(huff.decode(stream, len(data)), data)


def test_decoder_is_fast_enough_for_2048_frames() -> None:
    """A 2048² uint16 Huffman frame decodes well under PYME's 0.22 s (pymecompress, ~37 MB/s)."""
    if not huff.have_numba():
        pytest.skip("numba not installed: the plain-Python decoder is not meant to be fast")
    img = (np.random.default_rng(0).poisson(200, (2048, 2048)) + 100).astype(np.uint16)
    buf = pzf.encode_frame(img)
    pzf.decode_frame(buf)  # compile
    best = min(_timed(lambda: pzf.decode_frame(buf)) for _ in range(3))
    assert best < 0.11, f"{img.nbytes / best / 1e6:.0f} MB/s is below 2x pymecompress"


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ---------------------------------------------------------------------------------------------
# hostile frames


def test_corpus_has_enough_cases() -> None:
    cases = bad_pzf_cases()
    assert len(cases) >= 15
    assert len({c.name for c in cases}) == len(cases)
    for frame in valid_frames().values():  # the bases are valid
        pzf.decode_frame(frame)


@pytest.mark.parametrize("case", bad_pzf_cases(), ids=lambda c: c.name)
def test_bad_frame_raises_source_error(case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pzf.decode_frame(valid_frames()["huffman"])  # compile outside the measurement
    path = tmp_path / f"{case.name}.pzf"
    path.write_bytes(case.data)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(SourceError) as info:
            pzf.decode_frame(path.read_bytes(), str(path))
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    assert elapsed < 1.0, f"{case.name} took {elapsed:.2f} s"
    assert peak < 16 << 20, f"{case.name} allocated {peak / 2**20:.0f} MiB ({case.breaks})"


@needs_frames
def test_corpus_from_a_pyme_frame() -> None:
    real = (FRAMES / "u16_huff_F_1xWxH.pzf").read_bytes()
    for case in bad_pzf_cases(real):
        with pytest.raises(SourceError):
            pzf.decode_frame(case.data, case.name)


# ---------------------------------------------------------------------------------------------
# fuzzing: random mutations of real frames never crash, hang or allocate absurdly

FUZZ_SECONDS = float(os.environ.get("NGFF_FUZZ_SECONDS", "3"))


def _fuzz_seeds() -> list[bytes]:
    seeds = list(valid_frames().values())
    if FRAMES.is_dir():
        seeds += [p.read_bytes() for p in sorted(FRAMES.glob("*.pzf"))]
    if SERIES.is_dir():
        seeds += [p.read_bytes() for p in sorted(SERIES.glob("*/*.pcs/frame0000[0-2].pzf"))]
    return seeds


_SEEDS = _fuzz_seeds()

_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("header_u32"), st.sampled_from([20, 24, 28, 40, 44, 48]), st.integers(0, 2**32 - 1)),
)


def _mutate(buf: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(buf)
    for kind, pos, value in mutations:
        if not out:
            break
        p = pos % len(out)
        if kind == "flip":
            out[p] ^= 1 << value
        elif kind == "set":
            out[p] = value
        elif kind == "truncate":
            del out[p:]
        elif kind == "insert":
            out[p:p] = bytes([value])
        elif len(out) >= pos + 4:
            struct.pack_into("<I", out, pos, value)
    return bytes(out)


def test_fuzz_mutated_frames() -> None:
    """Runs for NGFF_FUZZ_SECONDS (default 3 s); set it to 600 or more for a long run by hand."""
    pzf.decode_frame(valid_frames()["huffman"])  # compile first
    outcomes = {"decoded": 0, "rejected": 0}

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(seed=st.sampled_from(range(len(_SEEDS))), mutations=st.lists(_mutation, min_size=1, max_size=4))
    def one(seed: int, mutations: list[tuple[str, int, int]]) -> None:
        data = _mutate(_SEEDS[seed], mutations)
        t0 = time.perf_counter()
        message = ""
        try:
            header = pzf.read_header(data, "fuzz.pzf")
            img = pzf.decode_frame(data, "fuzz.pzf")
        except SourceError as exc:
            message = str(exc)
        if message:
            assert message.startswith("fuzz.pzf: ")
            assert "\n" not in message
            outcomes["rejected"] += 1
        else:
            assert img.shape == header.shape_zyx
            assert img.dtype == header.dtype.newbyteorder("=")
            outcomes["decoded"] += 1
        assert time.perf_counter() - t0 < 5.0

    stop = time.monotonic() + FUZZ_SECONDS
    rounds = 0
    while time.monotonic() < stop or rounds == 0:
        one()
        rounds += 1
    print(
        f"PZF fuzz: {sum(outcomes.values())} mutated frames in {FUZZ_SECONDS:g} s: {outcomes['decoded']} "
        f"decoded, {outcomes['rejected']} refused with SourceError, no other exception"
    )
    assert outcomes["rejected"] > 0
    assert sum(outcomes.values()) >= 50


def test_benchmark_script_runs(tmp_path: Path) -> None:
    """benchmarks/bench_pzf.py runs (without pymecompress here) and reports a plausible speed."""
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "benchmarks" / "bench_pzf.py"
    out = tmp_path / "bench.json"
    res = subprocess.run(
        [sys.executable, str(script), "--frames", "1", "--repeat", "1", "--no-peer", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "NOT RUN (--no-peer)" in res.stdout
    result = json.loads(out.read_text())
    assert 0.3 < result["compressed_fraction"] < 1.0
    assert result["ours_frame_s"] > 0
