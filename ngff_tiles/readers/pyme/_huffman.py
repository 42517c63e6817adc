"""The BCL Huffman stream used by PZF frames: tree parsing, table-driven decoding, an encoder.

Layout (``reference/pyme.md`` §1.3): bits are read MSB-first, bytes in increasing order. The tree
comes first, pre-order: bit ``1`` is a leaf followed by its 8-bit symbol, bit ``0`` an internal
node followed by child A then child B. Data follows at the next bit; ``0`` goes to child A, ``1``
to child B. A root that is a leaf reads no bits per symbol. There is no length field: the caller
supplies the number of symbols.

Decoding walks a lookup table of ``2**TABLE_BITS`` entries (symbol and code length for codes up
to ``TABLE_BITS`` bits; the subtree to continue from for longer codes, walked bit by bit). The
kernel is compiled with numba when it is installed (``ngff-tiles[pyme]``) and runs as plain
Python otherwise (about 100× slower). It never reads past the stream: running out of bits is
reported, not padded over.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "TABLE_BITS",
    "HuffmanError",
    "HuffmanTree",
    "decode",
    "encode",
    "have_numba",
    "parse_tree",
]

log = logging.getLogger(__name__)

TABLE_BITS = 11
"""Codes up to this length decode in one table lookup; longer ones walk the tree from there."""

MAX_NODES = 511
"""A tree over byte symbols has at most 256 leaves and 255 internal nodes."""


class HuffmanError(ValueError):
    """The stream is malformed; ``bit`` is where it went wrong (bits from the stream start)."""

    def __init__(self, message: str, bit: int) -> None:
        super().__init__(message)
        self.bit = bit


@dataclass(frozen=True, slots=True)
class HuffmanTree:
    """A parsed tree: node arrays (node 0 is the root) and where the data bits start.

    Attributes
    ----------
    child0, child1
        Child node indices for bit 0 / bit 1 (-1 for leaves).
    symbol
        Byte of each leaf (-1 for internal nodes).
    data_bit
        Bit offset of the first data bit (the tree's length in bits).
    min_len, max_len
        Shortest and longest code length (0 and 0 for a single-symbol tree).
    """

    child0: np.ndarray
    child1: np.ndarray
    symbol: np.ndarray
    data_bit: int
    min_len: int
    max_len: int

    @property
    def n_symbols(self) -> int:
        """Number of leaves."""
        return int(np.count_nonzero(self.symbol >= 0))


def parse_tree(stream: bytes | np.ndarray) -> HuffmanTree:
    """Parse the tree at the start of ``stream``.

    Raises
    ------
    HuffmanError
        The tree runs past the end of the stream, has more than 511 nodes, or repeats a symbol.
    """
    data = np.frombuffer(stream, dtype=np.uint8) if not isinstance(stream, np.ndarray) else stream
    nbits = 8 * len(data)
    pos = 0

    def bit() -> int:
        nonlocal pos
        if pos >= nbits:
            raise HuffmanError(f"Huffman tree truncated: ran out of bits at bit {pos}", pos)
        b = (int(data[pos >> 3]) >> (7 - (pos & 7))) & 1
        pos += 1
        return b

    child0: list[int] = []
    child1: list[int] = []
    symbol: list[int] = []
    depth: list[int] = []
    seen: set[int] = set()
    # iterative pre-order: a stack of (parent, which child) slots still to fill
    stack: list[tuple[int, int]] = [(-1, 0)]
    while stack:
        parent, which = stack.pop()
        if len(symbol) >= MAX_NODES:
            raise HuffmanError(f"Huffman tree does not terminate within {MAX_NODES} nodes", pos)
        node = len(symbol)
        d = 0 if parent < 0 else depth[parent] + 1
        if parent >= 0:
            (child0 if which == 0 else child1)[parent] = node
        depth.append(d)
        if bit():
            s = 0
            for _ in range(8):
                s = (s << 1) | bit()
            if s in seen:
                raise HuffmanError(f"Huffman tree repeats symbol {s}", pos)
            seen.add(s)
            child0.append(-1)
            child1.append(-1)
            symbol.append(s)
        else:
            child0.append(-1)
            child1.append(-1)
            symbol.append(-1)
            stack.append((node, 1))  # B after A: pushed first
            stack.append((node, 0))
    leaf_depths = [depth[i] for i, s in enumerate(symbol) if s >= 0]
    return HuffmanTree(
        np.asarray(child0, dtype=np.int32),
        np.asarray(child1, dtype=np.int32),
        np.asarray(symbol, dtype=np.int32),
        pos,
        min(leaf_depths),
        max(leaf_depths),
    )


def _build_table(tree: HuffmanTree, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables indexed by the next ``bits`` bits: symbol, code length (0: long), node."""
    size = 1 << bits
    sym = np.zeros(size, dtype=np.int32)
    length = np.zeros(size, dtype=np.int32)
    node = np.zeros(size, dtype=np.int32)
    stack = [(0, 0, 0)]  # node, code, depth
    while stack:
        n, code, d = stack.pop()
        if tree.symbol[n] >= 0 or d == bits:
            lo = code << (bits - d)
            hi = (code + 1) << (bits - d)
            if tree.symbol[n] >= 0:
                sym[lo:hi] = tree.symbol[n]
                length[lo:hi] = d
            else:
                node[lo:hi] = n  # long code: continue from this internal node
            continue
        stack.append((int(tree.child0[n]), code << 1, d + 1))
        stack.append((int(tree.child1[n]), (code << 1) | 1, d + 1))
    return sym, length, node


def _kernel(
    data: np.ndarray,
    start_bit: int,
    out: np.ndarray,
    tsym: np.ndarray,
    tlen: np.ndarray,
    tnode: np.ndarray,
    bits: int,
    child0: np.ndarray,
    child1: np.ndarray,
    symbol: np.ndarray,
) -> int:
    """Decode ``len(out)`` symbols; return the bit position after the last, or -1 - (failing bit).

    Plain Python so that it runs without numba; numba compiles the same function.
    """
    nbytes: int = data.shape[0]
    total_bits = nbytes * 8
    pos: int = start_bit
    mask = (1 << bits) - 1
    n = out.shape[0]
    # bit buffer: ``buf`` holds ``cnt`` (< 64) valid bits in its low bits, next bit most
    # significant; everything stays in int64 (numba turns int64/uint64 mixes into floats)
    byte = pos >> 3
    buf = 0
    cnt = 0
    if byte < nbytes:
        buf = int(data[byte]) & ((1 << (8 - (pos & 7))) - 1)
        cnt = 8 - (pos & 7)
        byte += 1
    for i in range(n):
        while cnt <= 55 and byte < nbytes:
            buf = (buf << 8) | int(data[byte])
            cnt += 8
            byte += 1
        # near the end, pad with zeros: the length checks below catch overruns
        w = ((buf >> (cnt - bits)) if cnt >= bits else (buf << (bits - cnt))) & mask
        ln = int(tlen[w])
        if ln > 0:
            if ln > cnt:
                return -1 - total_bits
            out[i] = tsym[w]
            cnt -= ln
            pos += ln
        else:
            if cnt < bits:
                return -1 - total_bits
            cnt -= bits
            pos += bits
            nd = int(tnode[w])
            while symbol[nd] < 0:
                if cnt == 0:
                    while cnt <= 55 and byte < nbytes:
                        buf = (buf << 8) | int(data[byte])
                        cnt += 8
                        byte += 1
                    if cnt == 0:
                        return -1 - total_bits
                b = (buf >> (cnt - 1)) & 1
                cnt -= 1
                pos += 1
                nd = int(child1[nd]) if b else int(child0[nd])
            out[i] = symbol[nd]
        buf &= (1 << cnt) - 1
    return pos


_compiled: Callable[..., int] | None = None
_compile_lock = threading.Lock()
_numba_state: bool | None = None


def have_numba() -> bool:
    """Whether the numba-compiled kernel is available."""
    global _numba_state
    if _numba_state is None:
        try:
            import numba  # noqa: F401
        except ImportError:
            _numba_state = False
            log.warning(
                "numba is not installed: PZF Huffman decoding runs in plain Python (about 100x slower); "
                "pip install 'ngff-tiles[pyme]'"
            )
        else:
            _numba_state = True
    return _numba_state


def _kernel_fn() -> Callable[..., int]:
    global _compiled
    if _compiled is not None:
        return _compiled
    with _compile_lock:
        if _compiled is None:
            if have_numba():
                import numba

                _compiled = numba.njit(nogil=True, cache=False)(_kernel)
            else:
                _compiled = _kernel
    return _compiled


def decode(stream: bytes | memoryview | np.ndarray, outsize: int) -> np.ndarray:
    """Decode ``outsize`` bytes from a BCL Huffman ``stream``.

    Raises
    ------
    HuffmanError
        Malformed tree, or a stream too short for ``outsize`` symbols (checked before allocating
        the output where the shortest code allows, and exactly while decoding).
    """
    data = np.frombuffer(stream, dtype=np.uint8) if not isinstance(stream, np.ndarray) else stream
    tree = parse_tree(data)
    avail = 8 * len(data) - tree.data_bit
    # every symbol takes at least one bit (the encoder pads single-symbol streams with one 0 bit
    # per symbol): a stream that cannot hold ``outsize`` symbols is refused before allocating
    need = outsize * max(1, tree.min_len)
    if need > avail:
        raise HuffmanError(
            f"Huffman stream truncated: {outsize} symbols need at least {need} bits after the tree, "
            f"the stream has {avail}",
            8 * len(data),
        )
    if tree.max_len == 0:
        return np.full(outsize, tree.symbol[0], dtype=np.uint8)
    bits = min(TABLE_BITS, tree.max_len)
    tsym, tlen, tnode = _build_table(tree, bits)
    out = np.empty(outsize, dtype=np.uint8)
    end = _kernel_fn()(
        data, tree.data_bit, out, tsym, tlen, tnode, bits, tree.child0, tree.child1, tree.symbol
    )
    if end < 0:
        raise HuffmanError(f"Huffman stream truncated: ran out of bits before {outsize} symbols", -1 - end)
    return out


# ---------------------------------------------------------------------------------------------
# encoder (tests, benchmarks, fixtures): writes what pymecompress writes


def _tree_of(counts: np.ndarray) -> Any:
    """Huffman tree over the symbols with non-zero counts, as nested tuples (leaf: int)."""
    heap: list[tuple[int, int, Any]] = []
    for s in np.flatnonzero(counts):
        heap.append((int(counts[s]), int(s), int(s)))
    heapq.heapify(heap)
    tie = 256
    while len(heap) > 1:
        c1, _, a = heapq.heappop(heap)
        c2, _, b = heapq.heappop(heap)
        heapq.heappush(heap, (c1 + c2, tie, (a, b)))
        tie += 1
    return heap[0][2]


def encode(data: bytes | np.ndarray) -> bytes:
    """Huffman-code ``data`` (bytes) into a BCL stream: tree, then codes (MSB-first)."""
    sym = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
    sym = sym.ravel()
    if sym.size == 0:
        return b""
    counts = np.bincount(sym, minlength=256)
    root = _tree_of(counts)
    tree_bits: list[int] = []
    codes = np.zeros(256, dtype=np.uint64)
    lens = np.zeros(256, dtype=np.int64)
    stack: list[tuple[Any, int, int]] = [(root, 0, 0)]
    while stack:
        node, code, depth = stack.pop()
        if isinstance(node, int):
            tree_bits.append(1)
            tree_bits.extend((node >> (7 - k)) & 1 for k in range(8))
            codes[node] = code
            lens[node] = depth
        else:
            tree_bits.append(0)
            stack.append((node[1], (code << 1) | 1, depth + 1))
            stack.append((node[0], code << 1, depth + 1))
    if isinstance(root, int):  # single symbol: one padding 0 bit per symbol, as BCL writes
        sym_lens = np.ones(len(sym), dtype=np.int64)
        sym_codes = np.zeros(len(sym), dtype=np.uint64)
    else:
        sym_lens = lens[sym]
        sym_codes = codes[sym]
    head = np.asarray(tree_bits, dtype=np.uint8)
    total = int(sym_lens.sum())
    bitarr = np.zeros(len(head) + total, dtype=np.uint8)
    bitarr[: len(head)] = head
    starts = len(head) + np.concatenate(([0], np.cumsum(sym_lens)[:-1]))
    maxlen = int(sym_lens.max()) if len(sym) else 0
    for k in range(maxlen):
        sel = sym_lens > k
        shift = (sym_lens[sel] - 1 - k).astype(np.uint64)
        bitarr[starts[sel] + k] = ((sym_codes[sel] >> shift) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bitarr).tobytes()
