"""PZF Huffman decode throughput: ngff-tiles' decoder vs pymecompress (PYME's C codec).

Frames are 2048² uint16 camera-like images (offset 100 + a smooth specimen + Poisson noise),
Huffman-coded as PYME's default HUFFCODE (the BCL stream over the bytes). Throughput is decoded
bytes per second (8 MiB per frame), median over ``--repeat`` passes, one thread.

pymecompress (BSD, 0.3.6) runs in its own venv (``benchmarks/_venvs/pymecompress``), created on
first use with ``python3.11`` (its ``setup.py`` needs ``numpy.distutils``, gone in 3.12) as
``pip install numpy cython setuptools wheel`` then ``pip install --no-build-isolation
pymecompress``. When it cannot be installed, its column says NOT RUN and why.

The two codecs are also cross-checked: pymecompress decodes our streams and we decode its
streams, bit for bit.

    .venv/bin/python benchmarks/bench_pzf.py [--frames 4] [--repeat 5] [--no-peer] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ngff_tiles.readers.pyme import _huffman as huff
from ngff_tiles.readers.pyme import pzf

HERE = Path(__file__).resolve().parent
VENV = HERE / "_venvs" / "pymecompress"
PEER_PYTHON = "python3.11"

_CHILD = r"""
import json, sys, time
import numpy as np
import pymecompress.bcl as bcl
work, repeat = sys.argv[1], int(sys.argv[2])
data = np.load(work + "/streams.npz")
n = len([k for k in data.files if k.startswith("s")])
outsize = int(data["outsize"])
times, ok = [], True
for r in range(repeat):
    t = time.perf_counter()
    for i in range(n):
        out = bcl.HuffmanDecompress(data[f"s{i}"], outsize)
    times.append((time.perf_counter() - t) / n)
for i in range(n):  # our streams decode to the raw bytes
    ok &= bool(np.array_equal(bcl.HuffmanDecompress(data[f"s{i}"], outsize), data[f"raw{i}"]))
theirs = {f"p{i}": bcl.HuffmanCompress(data[f"raw{i}"]) for i in range(n)}
np.savez(work + "/theirs.npz", **theirs)
print(json.dumps({"times": times, "decodes_ours": ok}))
"""


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:2048, :2048].astype(np.float32)
    out = []
    for k in range(n):
        specimen = 300 + 200 * np.sin(x / (90 + 7 * k)) * np.cos(y / 130) + 0.05 * x
        out.append((100 + rng.poisson(np.clip(specimen, 0, None))).astype(np.uint16))
    return out


def ensure_venv(install: bool) -> tuple[Path | None, str]:
    python = VENV / "bin" / "python"
    if python.is_file():
        ok = subprocess.run([python, "-c", "import pymecompress.bcl"], capture_output=True).returncode == 0
        if ok:
            return python, "existing venv"
    if not install:
        return None, "no pymecompress venv and --no-install given"
    base = shutil.which(PEER_PYTHON)
    if base is None:
        return None, f"{PEER_PYTHON} not found (pymecompress 0.3.6 does not build on Python >= 3.12)"
    t = time.perf_counter()
    steps = [
        [base, "-m", "venv", str(VENV)],
        [str(python), "-m", "pip", "install", "-q", "numpy", "cython", "setuptools", "wheel"],
        [str(python), "-m", "pip", "install", "-q", "--no-build-isolation", "pymecompress"],
    ]
    for cmd in steps:
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["?"]
            return None, f"`{' '.join(cmd[-2:])}` failed: {tail[0]}"
    return python, f"venv created in {time.perf_counter() - t:.0f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-peer", action="store_true", help="skip pymecompress")
    ap.add_argument("--no-install", action="store_true", help="do not create the pymecompress venv")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    imgs = frames(args.frames)
    raws = [np.frombuffer(im.tobytes(), dtype=np.uint8) for im in imgs]
    bufs = [pzf.encode_frame(im) for im in imgs]
    streams = [np.frombuffer(b[64:], dtype=np.uint8) for b in bufs]
    nbytes = imgs[0].nbytes
    ratio = statistics.mean(len(b) for b in bufs) / nbytes

    t = time.perf_counter()
    pzf.decode_frame(bufs[0])
    compile_s = time.perf_counter() - t
    for b, im in zip(bufs, imgs, strict=True):
        assert np.array_equal(pzf.decode_frame(b)[0], im)
    ours_stream, ours_frame = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        for s in streams:
            huff.decode(s, nbytes)
        ours_stream.append((time.perf_counter() - t) / len(streams))
        t = time.perf_counter()
        for b in bufs:
            pzf.decode_frame(b)
        ours_frame.append((time.perf_counter() - t) / len(bufs))
    result: dict[str, object] = {
        "frame": "2048x2048 uint16 HUFFCODE",
        "frames": args.frames,
        "repeat": args.repeat,
        "compressed_fraction": ratio,
        "numba": huff.have_numba(),
        "first_call_s": compile_s,
        "ours_stream_s": statistics.median(ours_stream),
        "ours_frame_s": statistics.median(ours_frame),
    }
    rows = [
        ("ngff-tiles Huffman stream", statistics.median(ours_stream)),
        ("ngff-tiles whole frame (header, stream, (y, x) array)", statistics.median(ours_frame)),
    ]
    peer_note = "NOT RUN (--no-peer)"
    if not args.no_peer:
        python, how = ensure_venv(not args.no_install)
        if python is None:
            peer_note = f"NOT RUN: {how}"
        else:
            with tempfile.TemporaryDirectory() as work:
                payload = {f"s{i}": s for i, s in enumerate(streams)}
                payload.update({f"raw{i}": r for i, r in enumerate(raws)})
                np.savez(Path(work) / "streams.npz", outsize=np.int64(nbytes), **payload)  # type: ignore[arg-type]
                res = subprocess.run(
                    [str(python), "-c", _CHILD, work, str(args.repeat)], capture_output=True, text=True
                )
                if res.returncode:
                    peer_note = f"NOT RUN: pymecompress failed: {res.stderr.strip().splitlines()[-1:]}"
                else:
                    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
                    peer = json.loads(lines[-1])
                    theirs = np.load(Path(work) / "theirs.npz")
                    ours_decode_theirs = all(
                        np.array_equal(huff.decode(theirs[f"p{i}"], nbytes), raw)
                        for i, raw in enumerate(raws)
                    )
                    result.update(
                        pymecompress_s=statistics.median(peer["times"]),
                        pymecompress_decodes_ours=peer["decodes_ours"],
                        ours_decode_pymecompress=ours_decode_theirs,
                        pymecompress_venv=how,
                    )
                    rows.append(("pymecompress 0.3.6 HuffmanDecompress", statistics.median(peer["times"])))
                    peer_note = (
                        f"pymecompress ({how}); cross-check: pymecompress decodes our streams "
                        f"{peer['decodes_ours']}, we decode its streams {ours_decode_theirs}"
                    )
    print(f"# PZF Huffman decode, 2048² uint16, {args.frames} frames × {args.repeat} passes")
    print(
        f"compressed to {100 * ratio:.1f} % of raw; numba: {huff.have_numba()}; first call {compile_s:.2f} s"
    )
    print()
    print("| decoder | s / frame | MB/s |")
    print("|---|---:|---:|")
    for name, s in rows:
        print(f"| {name} | {s:.4f} | {nbytes / s / 1e6:.0f} |")
    if "pymecompress_s" in result:
        speedup = float(result["pymecompress_s"]) / float(result["ours_stream_s"])  # type: ignore[arg-type]
        result["speedup_vs_pymecompress"] = speedup
        print(f"\nngff-tiles / pymecompress: {speedup:.2f}x")
    print(f"\n{peer_note}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
