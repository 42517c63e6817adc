"""Fuzz one reader for a while and report executions, time and crashes.

    python benchmarks/fuzz.py --target tile-table --seconds 600
    python benchmarks/fuzz.py --target ndtiff-index --seconds 600 --engine atheris
    python benchmarks/fuzz.py --list

Targets are those of ``ngff_tiles.testing.fuzzing.TARGETS`` (tile-table, tileconfig, ndtiff-index,
ome-xml; PZF and BigDataViewer XML once registered there). A crash is any exception other than a
``NgffTilesError`` (or accepted tiles that break the readers' promises), a run longer than
``--timeout`` seconds (a hang), or running out of the address-space limit (``--memory-gb`` above
the start; a lying size that is allocated). Crashing inputs are saved under ``--out``.

Engines: ``atheris`` (coverage-guided libFuzzer, from the ``test`` extra where a wheel exists;
it runs in a child process, which libFuzzer ends at the time limit) or ``mutate`` (a built-in
random mutator over the target's seed corpus: bit flips, boundary values, interesting tokens,
truncation, splices; no coverage feedback). ``auto`` picks atheris when it is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class Hang(BaseException):
    """One execution ran past --timeout (BaseException: readers' ``except Exception`` let it by)."""


def _quiet() -> None:
    logging.disable(logging.WARNING)  # fuzzed inputs make every reader warn
    warnings.simplefilter("ignore")


def _limit_memory(gb: float) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            vm = int(line.split()[1]) * 1024
    limit = vm + int(gb * 2**30)
    resource.setrlimit(
        resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard)
    )


class Stats:
    """Counters of a run, saved as JSON (the atheris child writes them for the parent)."""

    def __init__(self, target: str, engine: str, out: Path) -> None:
        self.d: dict[str, Any] = {
            "target": target,
            "engine": engine,
            "executions": 0,
            "accepted": 0,
            "rejected": 0,
            "crashes": 0,
            "hangs": 0,
            "seconds": 0.0,
            "first_crashes": [],
        }
        self.out = out
        self.t0 = time.perf_counter()
        self._saved = 0.0

    def record(self, data: bytes, outcome: str, detail: str = "") -> None:
        self.d["executions"] += 1
        self.d[outcome] += 1
        if outcome in ("crashes", "hangs"):
            digest = hashlib.sha1(data).hexdigest()[:16]
            folder = self.out / "crashes"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{outcome}-{digest}.bin").write_bytes(data)
            if len(self.d["first_crashes"]) < 10:
                self.d["first_crashes"].append(
                    {"kind": outcome, "input": f"{outcome}-{digest}.bin", "error": detail}
                )
        now = time.perf_counter()
        if now - self._saved > 1.0 or outcome in ("crashes", "hangs"):
            self.save()

    def save(self) -> None:
        self.d["seconds"] = time.perf_counter() - self.t0
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / ".stats.json.tmp"
        tmp.write_text(json.dumps(self.d, indent=1))
        os.replace(tmp, self.out / "stats.json")


def _one(target: Any, data: bytes, stats: Stats, timeout: float) -> None:
    from ngff_tiles.testing.fuzzing import Crash

    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        ok = target.run(data)
    except Hang:
        stats.record(data, "hangs", f"ran past {timeout} s")
        return
    except Crash as exc:
        stats.record(data, "crashes", str(exc)[:500])
        return
    except MemoryError as exc:  # the address-space limit: something tried to allocate a lie
        stats.record(data, "crashes", f"MemoryError: {exc}")
        return
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    stats.record(data, "accepted" if ok else "rejected")


def _alarm(signum: int, frame: Any) -> None:
    raise Hang


def run_mutate(target: Any, seconds: float, timeout: float, stats: Stats, seed: int) -> None:
    import numpy as np

    from ngff_tiles.testing.fuzzing import mutate

    rng = np.random.default_rng(seed)
    seeds = target.seed_inputs() or [b""]
    corpus = list(seeds)
    for s in seeds:
        _one(target, s, stats, timeout)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        data = mutate(corpus[int(rng.integers(0, len(corpus)))], rng, corpus)
        before = stats.d["accepted"]
        _one(target, data, stats, timeout)
        if stats.d["accepted"] > before and len(corpus) < 256:
            corpus.append(data)  # accepted inputs are kept as new starting points
    stats.save()


def run_atheris_child(target: Any, seconds: float, timeout: float, stats: Stats, corpus: Path) -> None:
    import atheris

    corpus.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(target.seed_inputs()):
        (corpus / f"seed-{i}").write_bytes(s)

    def test_one_input(data: bytes) -> None:
        if stats.d["executions"] == 0:
            stats.t0 = time.perf_counter()  # the clock starts with fuzzing, not instrumenting
        _one(target, data, stats, timeout)

    atheris.instrument_all()  # coverage feedback from every loaded module (takes ~40 s here)
    atheris.Setup(
        [
            sys.argv[0],
            f"-max_total_time={int(seconds)}",
            f"-timeout={int(timeout) + 5}",
            "-rss_limit_mb=0",  # our RLIMIT_AS bounds memory; libFuzzer's RSS check would race it
            "-print_final_stats=1",
            str(corpus),
        ],
        test_one_input,
    )
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", help="fuzz target (see --list)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    p.add_argument("--engine", choices=("auto", "atheris", "mutate"), default="auto")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds one input may take (default 10)")
    p.add_argument("--memory-gb", type=float, default=2.0, help="address space above the start (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mutate engine")
    p.add_argument("--out", type=Path, help="folder for stats and crashing inputs")
    p.add_argument("--list", action="store_true", help="list the targets")
    p.add_argument(
        "--register",
        action="append",
        default=[],
        metavar="FILE.py",
        help="run FILE.py first: it may register more targets (ngff_tiles.testing.fuzzing.register)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    import runpy

    from ngff_tiles.testing.fuzzing import TARGETS

    for extra in args.register:
        runpy.run_path(extra)
    if args.list:
        for name, t in TARGETS.items():
            print(f"{name:<14} {t.description}")
        return 0
    if args.target not in TARGETS:
        p.error(f"--target: expected one of {', '.join(TARGETS)}, got {args.target!r}")
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
        except ImportError:
            engine = "mutate"
        else:
            engine = "atheris"
    out = args.out or ROOT / "benchmarks" / "_work" / "fuzz" / args.target
    if args.child:
        _quiet()
        _limit_memory(args.memory_gb)
        signal.signal(signal.SIGALRM, _alarm)
        target = TARGETS[args.target]
        target.setup(tempfile.mkdtemp(prefix=f"fuzz-{args.target}-"))
        stats = Stats(args.target, engine, out)
        if engine == "atheris":
            run_atheris_child(target, args.seconds, args.timeout, stats, out / "corpus")
        else:
            run_mutate(target, args.seconds, args.timeout, stats, args.seed)
        target.teardown()
        return 0

    (out / "stats.json").unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", "--target", args.target, "--seconds", str(args.seconds)]
    cmd += ["--engine", engine, "--timeout", str(args.timeout), "--memory-gb", str(args.memory_gb)]
    cmd += ["--seed", str(args.seed), "--out", str(out)]
    for extra in args.register:
        cmd += ["--register", extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    stats_file = out / "stats.json"
    if not stats_file.is_file():
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        print(f"{args.target}: the fuzzing process died before reporting (exit {proc.returncode})")
        return 1
    d = json.loads(stats_file.read_text())
    died = proc.returncode != 0
    if died:  # libFuzzer ended it: a timeout or a crash below Python
        d["crashes"] += 1
        d["first_crashes"].append({"kind": "process", "error": proc.stderr[-800:]})
    rate = d["executions"] / d["seconds"] if d["seconds"] else 0.0
    print(
        f"{d['target']}: {d['executions']} executions in {d['seconds']:.0f} s ({rate:.0f}/s, engine "
        f"{d['engine']}); accepted {d['accepted']}, rejected with NgffTilesError {d['rejected']}; "
        f"crashes {d['crashes']}, hangs {d['hangs']}"
    )
    for c in d["first_crashes"]:
        print(f"  {c['kind']}: {c.get('input', '')} {c['error']}")
    print(f"  (wall {wall:.0f} s; stats and crashing inputs in {out})")
    (out / "stats.json").write_text(json.dumps(d, indent=1))
    return 1 if d["crashes"] or d["hangs"] else 0


if __name__ == "__main__":
    sys.exit(main())
