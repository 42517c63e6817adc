"""Fuzzing ND2 files (nd2's parser, our plausibility checks, frame decoding) with hypothesis.

The image attributes of cluster.nd2 (width, height, components, bits, sequence count) are
rewritten to any uint32 - the class of lie that once made a conversion allocate until the kernel
killed it - and whole files are mutated. The property: sane tiles whose first pixels can be read,
or a NgffTilesError that does not hide a failed allocation.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from fuzz_helpers import FUZZ, mutated, target_fixture
from hypothesis import given
from hypothesis import strategies as st

from ngff_tiles.testing.fuzzing import TARGETS, FuzzTarget

ATTRIBUTES = ("uiWidth", "uiHeight", "uiWidthBytes", "uiComp", "uiBpcInMemory", "uiBpcSignificant")
SEEDS = TARGETS["nd2"].seed_inputs()


@pytest.fixture(scope="module")
def nd2_target() -> Iterator[FuzzTarget]:
    if not SEEDS:
        pytest.skip("cluster.nd2 is absent from shared/sample-data")
    yield from target_fixture("nd2")


UINT32 = st.one_of(
    st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2, 3, 8, 16, 31, 38, 4096, 2**16, 2**31 - 1, 2**32 - 1])
)


@FUZZ
@given(values=st.dictionaries(st.sampled_from(ATTRIBUTES), UINT32, min_size=1, max_size=3))
def test_lying_image_attributes(nd2_target: FuzzTarget, values: dict[str, int]) -> None:
    buf = bytearray(SEEDS[0])
    for name, value in values.items():
        key = name.encode("utf-16-le") + b"\0\0"
        at = buf.rfind(key)
        if at >= 0:
            buf[at + len(key) : at + len(key) + 4] = struct.pack("<I", value)
    nd2_target.run(bytes(buf))


@FUZZ
@given(data=mutated(SEEDS))
def test_mutated_nd2(nd2_target: FuzzTarget, data: bytes) -> None:
    nd2_target.run(data)
