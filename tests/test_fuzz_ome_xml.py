"""Fuzzing the OME-XML of OME-TIFFs (parsing, plane mapping, positions, units) with hypothesis.

A valid single-image OME-XML has its attributes replaced by hostile values (sizes of 0 or 2^40,
unknown dimension orders and units, NaN positions, IFD indices past the end), entity and DOCTYPE
declarations are inserted, or the bytes are mutated. The property: sane tiles whose first pixels
can be read, or a NgffTilesError - nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fuzz_helpers import FUZZ, NASTY_NUMBERS, NASTY_TEXT, mutated, target_fixture
from hypothesis import given
from hypothesis import strategies as st

from ngff_tiles.testing.fuzzing import OME_TEMPLATE, TARGETS, FuzzTarget

ATTRIBUTES = sorted(set(re.findall(r' (\w+)="', OME_TEMPLATE)) - {"xmlns"})


@pytest.fixture(scope="module")
def ome() -> Iterator[FuzzTarget]:
    yield from target_fixture("ome-xml")


VALUE = st.one_of(
    NASTY_NUMBERS.map(str),
    NASTY_TEXT,
    st.sampled_from(
        [
            "0",
            "1",
            "2",
            "3",
            "-1",
            "1099511627776",
            "XYZCT",
            "XYTCZ",
            "XYZZT",
            "uint8",
            "float",
            "bit",
            "nm",
            "mm",
            "pixel",
            "reference frame",
            "µm",
            "&amp;",
            "&#0;",
        ]
    ),
)
PROLOGS = st.sampled_from(
    [
        "",
        '<!DOCTYPE OME [<!ENTITY a "aaaa">]>',
        '<!DOCTYPE OME SYSTEM "file:///etc/passwd">',
        "<!-- <!ENTITY --> ",
        "<?pi x?>",
    ]
)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(ATTRIBUTES), VALUE, max_size=5),
    prolog=PROLOGS,
    raw=st.booleans(),
)
def test_hostile_attributes(ome: FuzzTarget, changes: dict[str, str], prolog: str, raw: bool) -> None:
    xml = OME_TEMPLATE
    for name, value in changes.items():
        xml = re.sub(rf' {name}="[^"]*"', f' {name}="{value if raw else _escape(value)}"', xml, count=1)
    xml = xml.replace("?>", "?>" + prolog, 1)
    ome.run(xml.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=mutated(TARGETS["ome-xml"].seed_inputs()))
def test_mutated_ome_xml(ome: FuzzTarget, data: bytes) -> None:
    ome.run(data)
