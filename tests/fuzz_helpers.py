"""Shared pieces of the hypothesis fuzz tests (tests/test_fuzz_*.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pytest
from bad_inputs.run import bounded_memory
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ngff_tiles.testing.fuzzing import TARGETS, FuzzTarget, mutate

# Bounded for CI: every target together stays within a few seconds here. benchmarks/fuzz.py
# runs the same targets for as long as asked (atheris or the built-in mutator).
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def target_fixture(name: str) -> Iterator[FuzzTarget]:
    """Set up target ``name`` (skip if it needs sample data that is absent); quiet its logging;
    bound the address space while it runs.
    """
    target = TARGETS[name]
    try:
        target.setup()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    logger = logging.getLogger("ngff_tiles")
    level = logger.level
    logger.setLevel(logging.ERROR)  # fuzzed inputs make the readers warn a lot
    try:
        # a lying size that gets allocated fails the test (MemoryError) instead of the machine
        with bounded_memory():
            yield target
    finally:
        logger.setLevel(level)
        target.teardown()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few random edits (bit flips, boundary values, truncation, splices...)."""
    seeds = seeds or [b""]
    seed = seeds[draw(st.integers(0, len(seeds) - 1))]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = seed
    for _ in range(draw(st.integers(1, 3))):
        data = mutate(data, rng, seeds)
    return data


NASTY_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1e-300, 1e300, 2**31, 2**32 - 1, 2**63, -(2**63)]),
)
NASTY_TEXT = st.one_of(
    st.text(max_size=16),
    st.sampled_from(
        [
            "",
            " ",
            "NaN",
            "inf",
            "-0",
            "1e999",
            "..",
            "../a.tif",
            "/etc/hostname",
            "\x00",
            "µm",
            "n" * 300 + ".tif",
        ]
    ),
)
