"""Fuzzing the tile-table (CSV/JSON) and TileConfiguration.txt parsers with hypothesis.

Structure-aware rows (any column, any value: NaN, huge integers, strings, nesting, traversal
paths) and byte-level mutations of valid tables. The property: the reader returns sane tiles or
raises a NgffTilesError - nothing else (see ngff_tiles.testing.fuzzing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_helpers import FUZZ, NASTY_NUMBERS, NASTY_TEXT, mutated, target_fixture
from hypothesis import given
from hypothesis import strategies as st

from ngff_tiles.readers.table import COLUMNS
from ngff_tiles.testing.fuzzing import TARGETS, FuzzTarget


@pytest.fixture(scope="module")
def table() -> Iterator[FuzzTarget]:
    yield from target_fixture("tile-table")


@pytest.fixture(scope="module")
def tileconfig() -> Iterator[FuzzTarget]:
    yield from target_fixture("tileconfig")


VALUES = st.one_of(
    NASTY_NUMBERS,
    NASTY_TEXT,
    st.sampled_from(["a.tif", "b.tif", "c.tif", "z.tif", "A1", "B12", "ZZ999", "DAPI"]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
ROW = st.dictionaries(st.sampled_from([*COLUMNS, "bogus", ""]), VALUES, max_size=8)
PATHED_ROW = st.fixed_dictionaries(
    {"path": st.sampled_from(["a.tif", "b.tif", "c.tif", "z.tif"]), "x_um": VALUES, "y_um": VALUES},
    optional={k: VALUES for k in COLUMNS if k not in ("path", "x_um", "y_um")},
)


def as_csv(rows: list[dict[str, Any]]) -> bytes:
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    lines = [",".join(header), *(",".join(str(r.get(k, "")) for k in header) for r in rows)]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


@FUZZ
@given(rows=st.lists(st.one_of(ROW, PATHED_ROW), max_size=6), form=st.sampled_from(["csv", "list", "doc"]))
def test_structured_tables(table: FuzzTarget, rows: list[dict[str, Any]], form: str) -> None:
    if form == "csv":
        data = as_csv(rows)
    elif form == "list":
        data = json.dumps(rows).encode("utf-8", "surrogatepass")
    else:
        data = json.dumps({"pixel_size_um": 0.5, "tiles": rows}).encode("utf-8", "surrogatepass")
    table.run(data)


@FUZZ
@given(data=mutated(TARGETS["tile-table"].seed_inputs()))
def test_mutated_tables(table: FuzzTarget, data: bytes) -> None:
    table.run(data)


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_as_tables(table: FuzzTarget, data: bytes) -> None:
    table.run(data)


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            st.sampled_from(["dim = 2", "dim = 3", "dim=7", "multiseries = true", "# c", ""]),
            st.builds(
                lambda f, s, c: f"{f}; {s}; ({', '.join(map(str, c))})",
                st.sampled_from(["a.tif", "b.tif", "z.tif", "c.tif", "", "../a.tif", "nope.tif", "l" * 300]),
                st.one_of(st.just(""), st.integers(-2, 3).map(str), NASTY_TEXT),
                st.lists(NASTY_NUMBERS, max_size=4),
            ),
            NASTY_TEXT,
        ),
        max_size=8,
    )
)
def test_structured_tileconfig(tileconfig: FuzzTarget, lines: list[str]) -> None:
    tileconfig.run("\n".join(lines).encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=mutated(TARGETS["tileconfig"].seed_inputs()))
def test_mutated_tileconfig(tileconfig: FuzzTarget, data: bytes) -> None:
    tileconfig.run(data)
