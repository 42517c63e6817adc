"""Array I/O engine: tensorstore vs zarr-python writing the same sharded Zarr v3 blocks.

Writes N shards of 2048² uint16 (realistic content: smooth signal + shot noise) into an array with
the same codecs (sharding_indexed, inner chunks 512², bytes + blosc zstd level L with byte shuffle,
crc32c index) through each engine, each block written whole by one of 2 threads, as the converter
does. Prints seconds, MB/s and the ratio. Run: ``python benchmarks/bench_engine.py [--blocks 16]``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def blocks(n: int, size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = []
    for i in range(n):
        signal = 500 + 400 * np.sin((yy + 97 * i) / 53.0) * np.cos((xx - 31 * i) / 71.0)
        out.append(rng.poisson(signal).astype(np.uint16))
    return out


def write_tensorstore(root: Path, data: list[np.ndarray], size: int, level: int, threads: int) -> float:
    import tensorstore as ts

    n = len(data)
    ctx = ts.Context(
        {"data_copy_concurrency": {"limit": threads}, "file_io_concurrency": {"limit": 2 * threads}}
    )
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(root)},
        "metadata": {
            "shape": [n * size, size],
            "data_type": "uint16",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [size, size]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0,
            "codecs": [
                {
                    "name": "sharding_indexed",
                    "configuration": {
                        "chunk_shape": [512, 512],
                        "codecs": [
                            {"name": "bytes", "configuration": {"endian": "little"}},
                            {
                                "name": "blosc",
                                "configuration": {
                                    "cname": "zstd",
                                    "clevel": level,
                                    "shuffle": "shuffle",
                                    "typesize": 2,
                                    "blocksize": 0,
                                },
                            },
                        ],
                        "index_codecs": [
                            {"name": "bytes", "configuration": {"endian": "little"}},
                            {"name": "crc32c"},
                        ],
                        "index_location": "end",
                    },
                }
            ],
        },
        "create": True,
    }
    arr = ts.open(spec, context=ctx).result()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: arr[i * size : (i + 1) * size, :].write(data[i]).result(), range(n)))
    return time.perf_counter() - t0


def write_zarr_python(root: Path, data: list[np.ndarray], size: int, level: int, threads: int) -> float:
    import zarr
    from zarr.codecs import BloscCodec, BloscShuffle

    n = len(data)
    zarr.config.set({"threading.max_workers": threads})
    arr = zarr.create_array(
        store=str(root),
        shape=(n * size, size),
        dtype="uint16",
        chunks=(512, 512),
        shards=(size, size),
        compressors=BloscCodec(cname="zstd", clevel=level, shuffle=BloscShuffle.shuffle),
        fill_value=0,
        zarr_format=3,
    )
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(
            pool.map(
                lambda i: arr.__setitem__((slice(i * size, (i + 1) * size), slice(None)), data[i]), range(n)
            )
        )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--level", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from importlib.metadata import version

    data = blocks(args.blocks, args.size)
    mb = sum(d.nbytes for d in data) / 1e6
    results = {}
    for name, fn in (
        ("tensorstore " + version("tensorstore"), write_tensorstore),
        ("zarr-python " + version("zarr"), write_zarr_python),
    ):
        best = float("inf")
        for _ in range(args.repeat):
            root = Path(tempfile.mkdtemp(prefix="engine-"))
            try:
                best = min(best, fn(root / "a.zarr", data, args.size, args.level, args.threads))
            finally:
                shutil.rmtree(root)
        results[name] = best
    base = max(results.values())
    print(
        f"{args.blocks} shards of {args.size}² uint16 ({mb:.0f} MB), blosc-zstd {args.level}, "
        f"{args.threads} threads, best of {args.repeat}"
    )
    print(f"{'engine':<22} {'seconds':>8} {'MB/s':>8} {'speed-up':>9}")
    for name, sec in results.items():
        print(f"{name:<22} {sec:8.2f} {mb / sec:8.0f} {base / sec:8.2f}x")


if __name__ == "__main__":
    main()
