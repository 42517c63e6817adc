"""Fuzzing the NDTiff index (ndtiff's parser and our checks) with hypothesis.

The index is replaced, in a copy of a real dataset (labeled_positions_1), by entries built field
by field (axes JSON of any shape, file names including traversal, every uint32 from 0 to 2^32-1)
or by byte-level mutations of the real index. The property: sane tiles whose first pixels can be
read, or a NgffTilesError - nothing else, and no allocation from a lying width × height.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_helpers import FUZZ, NASTY_NUMBERS, NASTY_TEXT, mutated, target_fixture
from hypothesis import given
from hypothesis import strategies as st

from ngff_tiles.testing.fuzzing import TARGETS, FuzzTarget

REAL_FILE = "labeled_positions_NDTiffStack.tif"


@pytest.fixture(scope="module")
def index() -> Iterator[FuzzTarget]:
    yield from target_fixture("ndtiff-index")


AXIS_VALUES = st.one_of(
    st.integers(-3, 5), st.sampled_from(["Pos0", "Pos1", "DAPI", ""]), st.none(), NASTY_NUMBERS, NASTY_TEXT
)
AXES = st.dictionaries(
    st.sampled_from(["position", "z", "channel", "time", "row", "column", "view", ""]),
    AXIS_VALUES,
    max_size=4,
)
UINT32 = st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, 1, 2, 3, 4, 5, 6, 16, 1024, 528707, 1585432, 2**31 - 1, 2**32 - 1]),
)


@st.composite
def entries(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 4))):
        axes: Any = draw(st.one_of(AXES, st.lists(st.integers(), max_size=2), NASTY_NUMBERS))
        axes_bytes = json.dumps(axes).encode()
        name = draw(st.sampled_from([REAL_FILE, "other.tif", "../x.tif", "", "a/b.tif"])).encode()
        fields = draw(st.lists(UINT32, min_size=8, max_size=8))
        axes_len = draw(st.one_of(st.just(len(axes_bytes)), UINT32))
        out += struct.pack("<I", axes_len) + axes_bytes + struct.pack("<I", len(name)) + name
        out += struct.pack("<8I", *fields)
    cut = draw(st.integers(0, len(out)))
    return out[:cut] if draw(st.booleans()) else out


@FUZZ
@given(data=entries())
def test_structured_index(index: FuzzTarget, data: bytes) -> None:
    index.run(data)


@FUZZ
@given(data=mutated(TARGETS["ndtiff-index"].seed_inputs()))
def test_mutated_index(index: FuzzTarget, data: bytes) -> None:
    index.run(data)
