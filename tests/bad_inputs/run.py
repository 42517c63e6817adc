"""Run ``ngff-tiles convert`` on one bad input and record what happened, under time and memory limits.

Used in-process by ``tests/test_bad_inputs.py``, or as a script (``python run.py JSON``) in a
child process - as an unprivileged user when the tests run as root, so that permission bits apply.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

MEMORY_HEADROOM = 2 << 30
"""Address space a case may add to the process (RLIMIT_AS): a lying size hits it, not the machine."""


def _status(field: str) -> int:
    """A ``VmXXX`` field of /proc/self/status in bytes (0 where /proc is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@contextlib.contextmanager
def bounded_memory(headroom: int = MEMORY_HEADROOM) -> Iterator[None]:
    """Limit the address space to its current size plus ``headroom`` (restored afterwards)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _status("VmSize") + headroom
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def reset_peak_rss() -> bool:
    """Reset VmHWM (peak RSS) of this process (Linux >= 4.0); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


CASE_TIMEOUT = 60.0
"""Seconds one case (both runs) may take before it is interrupted as a hang."""


class CaseTimeout(BaseException):
    """Raised in the main thread when a case runs past CASE_TIMEOUT (BaseException: the library's
    ``except Exception`` handlers let it by)."""


def _timeout(signum: int, frame: Any) -> None:
    raise CaseTimeout(f"ran past {CASE_TIMEOUT} s")


def run_case(inputs: Sequence[str], output_dir: str, args: Sequence[str] = ()) -> dict[str, Any]:
    """Convert ``inputs`` twice (library error with ``--debug``, then the CLI's line); report.

    Returns a dict: ``exception`` (MRO class names of what ``--debug`` raised, or None),
    ``exception_message``, ``code`` (exit code of the plain run), ``stderr``, ``seconds`` (both
    runs), ``peak_rss_growth`` (bytes above the RSS at the start; -1 where unknown). A case
    running past CASE_TIMEOUT is interrupted and reported as ``CaseTimeout``.
    """
    out: dict[str, Any] = {"exception": None, "exception_message": ""}
    argv = ["convert", *inputs, "-q", *args]
    rss0 = _status("VmRSS")
    measured = reset_peak_rss()
    t0 = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT)
    try:
        _run_twice(argv, output_dir, out)
    except CaseTimeout as exc:
        out["code"] = None
        out["stderr"] = f"TIMEOUT: {exc}"
        out["exception"] = out["exception"] or ["CaseTimeout"]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_growth"] = _status("VmHWM") - rss0 if measured else -1
    return out


def _run_twice(argv: list[str], output_dir: str, out: dict[str, Any]) -> None:
    from ngff_tiles.cli import main

    with bounded_memory():
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                main([*argv, "-o", os.path.join(output_dir, "debug.ome.zarr"), "--debug"])
        except CaseTimeout:
            raise
        except BaseException as exc:  # recorded, judged by the test
            out["exception"] = [c.__name__ for c in type(exc).__mro__]
            out["exception_message"] = str(exc)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                out["code"] = main([*argv, "-o", os.path.join(output_dir, "plain.ome.zarr")])
            except SystemExit as exc:
                out["code"] = exc.code
    out["stderr"] = err.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    """``run.py '{"inputs": [...], "output_dir": ..., "args": [...]}'``: print the report as JSON."""
    spec = json.loads((sys.argv[1:] if argv is None else list(argv))[0])
    print(json.dumps(run_case(spec["inputs"], spec["output_dir"], spec.get("args", ()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
