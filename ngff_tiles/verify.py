"""Read a written store back and check it: ``ngff-tiles verify`` and ``convert --verify``.

What is checked, per image (the root image, or every image of a plate):

1. **Metadata**: :func:`~ngff_tiles.metadata.validate.validate_store` errors, and the provenance
   record's ``"status"`` (``"complete"`` only once the conversion finished).
2. **Presence**: the storage units (shards for sharded Zarr v3, chunks otherwise) that must exist,
   derived from the provenance record: at level 0 every unit a tile's box
   ``[offset_px, offset_px + shape)`` (``[offset_px, stop_px)`` for a tile under a general affine)
   overlaps, in that tile's channel and time point; at level
   ``k`` every unit that holds the downsampled box of an expected level ``k - 1`` unit. Grids,
   key encodings and codecs come from each array's ``zarr.json`` / ``.zarray``.
3. **Decoding**: every stored unit is read through tensorstore, one unit's box at a time. A
   corrupt shard fails as a whole; its damaged inner chunks are then named.
4. **Pyramid**: for a seeded sample of units of every level ``k >= 1``, the box of level ``k - 1``
   below is read, downsampled with :func:`~ngff_tiles.fusion.pyramid.downsample_mean` (factors
   from the ratios of the multiscales scales) and compared exactly with the stored unit.

Memory is bounded by a few units (a pyramid check holds the 2x2 (x2) units below one unit).

Zarr writers (tensorstore included) do not store a chunk whose values are all the fill value. A
missing expected unit is therefore an error only when the neighbouring level has data there
(or there is no neighbouring level); otherwise it is a warning, since tiles that are all 0 there
(after dark subtraction, say) leave no chunk.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ngff_tiles.fusion.pyramid import downsample_mean

__all__ = ["VerifyReport", "verify_store"]

PROVENANCE_KEY = "ngff_tiles"  # == ngff_tiles.writers.ome_zarr.PROVENANCE_KEY (not imported: cheap)
DONE_DIR = ".ngff_tiles_done"  # == ngff_tiles.writers.ome_zarr.DONE_DIR
_MAX_ERROR = 300
_MAX_NAMED = 4
_MAX_LISTED = 20  # missing units examined and listed one by one, per array
_WINDOW = 8
_PIECE = 512  # (y, x) piece of a downsampling: even, cache-sized

Index = tuple[int, ...]
_T = TypeVar("_T")


@dataclass(slots=True)
class VerifyReport:
    """What :func:`verify_store` found.

    Attributes
    ----------
    path
        The store.
    problems
        One line each: what is wrong, naming the array, the shard/chunk key and its file.
    warnings
        One line each: oddities that do not make the store wrong (extra chunk files, missing
        chunks that may be all fill value, metadata warnings).
    images
        Multiscale images checked.
    levels_checked
        Pyramid levels (arrays) checked, all images.
    chunks_expected
        Shards/chunks the provenance record says must exist, all levels.
    chunks_checked
        Stored shards/chunks read back and decoded.
    chunks_missing
        Expected shards/chunks not stored (errors and warnings).
    blocks_recomputed
        Pyramid blocks recomputed from the level below and compared.
    bytes_read
        Decoded bytes read back (decoding and pyramid checks).
    seconds
        Wall time.
    """

    path: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    images: int = 0
    levels_checked: int = 0
    chunks_expected: int = 0
    chunks_checked: int = 0
    chunks_missing: int = 0
    blocks_recomputed: int = 0
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no problem was found (warnings allowed)."""
        return not self.problems

    def summary(self) -> str:
        """Return one line: ``OK`` or the number of problems, then the counts."""
        mb = self.bytes_read / 1e6
        rate = f", {mb / self.seconds:.0f} MB/s" if self.seconds > 0 else ""
        counts = (
            f"{self.images} image(s), {self.levels_checked} level(s), "
            f"{self.chunks_checked} shard(s)/chunk(s) decoded "
            f"({self.chunks_expected} expected, {self.chunks_missing} missing), "
            f"{self.blocks_recomputed} pyramid block(s) recomputed, {mb:.1f} MB read in "
            f"{self.seconds:.1f} s{rate}, {len(self.warnings)} warning(s)"
        )
        head = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        return f"{head}: {counts}"


# ---------------------------------------------------------------------------------------------
# arrays: metadata, keys, boxes


@dataclass(frozen=True, slots=True)
class _Array:
    """One Zarr array of the store, as its own metadata describes it."""

    folder: Path
    rel: str
    zarr_format: int
    shape: Index
    grid: Index  # the storage unit: shard shape (sharded v3) or chunk shape
    inner: Index | None  # inner chunk shape of a sharded array
    dtype: np.dtype
    fill_value: Any
    prefix: str  # "c/" for the v3 default key encoding, "" otherwise
    sep: str

    @property
    def unit(self) -> str:
        return "shard" if self.inner is not None else "chunk"

    @property
    def counts(self) -> Index:
        return tuple(-(-s // g) for s, g in zip(self.shape, self.grid, strict=True))

    def key(self, idx: Index) -> str:
        return self.prefix + self.sep.join(str(i) for i in idx)

    def file(self, idx: Index) -> Path:
        return self.folder / self.key(idx)

    def where(self, idx: Index) -> str:
        """``"B/3/0/0: shard c/0/1/0/2/3 (/abs/.../c/0/1/0/2/3)"``: array, key and file."""
        return f"{self.rel}: {self.unit} {self.key(idx)} ({self.file(idx)})"

    def box(self, idx: Index) -> tuple[Index, Index]:
        start = tuple(i * g for i, g in zip(idx, self.grid, strict=True))
        stop = tuple(min(a + g, s) for a, g, s in zip(start, self.grid, self.shape, strict=True))
        return start, stop

    def units_in(self, start: Sequence[int], stop: Sequence[int]) -> Iterator[Index]:
        """Units overlapping the box ``[start, stop)`` (clipped to the array)."""
        ranges = [
            range(max(a, 0) // g, min((b - 1) // g, n - 1) + 1)
            for a, b, g, n in zip(start, stop, self.grid, self.counts, strict=True)
        ]
        return itertools.product(*ranges)

    def parse(self, rel_key: str) -> Index | None:
        """Return the unit index of a file key, or ``None`` if it is no chunk key of this array."""
        if not rel_key.startswith(self.prefix):
            return None
        parts = rel_key[len(self.prefix) :].split(self.sep)
        if len(parts) != len(self.shape) or not all(p.isdigit() for p in parts):
            return None
        idx = tuple(int(p) for p in parts)
        if any(i >= n for i, n in zip(idx, self.counts, strict=True)):
            return None
        return idx


def _fill(value: Any, dtype: np.dtype) -> Any:
    if isinstance(value, str) and dtype.kind == "f":
        return float(value) if value in ("NaN", "Infinity", "-Infinity") else 0
    if value is None or isinstance(value, (str, list, dict)):
        return 0
    return value


def _read_array(folder: Path, rel: str) -> _Array:
    """Parse the array at ``folder``; raise ValueError (with a one-line message) if it cannot."""
    v3, v2 = folder / "zarr.json", folder / ".zarray"
    if v3.is_file():
        doc = json.loads(v3.read_text(encoding="utf-8"))
        if doc.get("node_type") != "array":
            raise ValueError(f"{v3}: not an array (node_type {doc.get('node_type')!r})")
        grid_doc = doc.get("chunk_grid", {})
        if grid_doc.get("name") != "regular":
            raise ValueError(f"{v3}: chunk grid {grid_doc.get('name')!r} is not supported (only regular)")
        grid = tuple(int(v) for v in grid_doc["configuration"]["chunk_shape"])
        enc = doc.get("chunk_key_encoding", {"name": "default"})
        conf = enc.get("configuration") or {}
        if enc.get("name") == "default":
            prefix, sep = "c" + conf.get("separator", "/"), conf.get("separator", "/")
        elif enc.get("name") == "v2":
            prefix, sep = "", conf.get("separator", ".")
        else:
            raise ValueError(f"{v3}: chunk key encoding {enc.get('name')!r} is not supported")
        inner = None
        for codec in doc.get("codecs", []):
            if isinstance(codec, dict) and codec.get("name") == "sharding_indexed":
                inner = tuple(int(v) for v in codec["configuration"]["chunk_shape"])
        data_type = doc.get("data_type")
        if not isinstance(data_type, str):
            raise ValueError(f"{v3}: data type {data_type!r} is not supported")
        dtype = np.dtype(data_type)
        shape = tuple(int(v) for v in doc["shape"])
        return _Array(
            folder, rel, 3, shape, grid, inner, dtype, _fill(doc.get("fill_value"), dtype), prefix, sep
        )
    if v2.is_file():
        doc = json.loads(v2.read_text(encoding="utf-8"))
        dtype = np.dtype(doc["dtype"])
        shape = tuple(int(v) for v in doc["shape"])
        grid = tuple(int(v) for v in doc["chunks"])
        sep = doc.get("dimension_separator") or "."
        return _Array(folder, rel, 2, shape, grid, None, dtype, _fill(doc.get("fill_value"), dtype), "", sep)
    raise ValueError(f"{folder}: no array here (neither zarr.json nor .zarray)")


def _stored_units(arr: _Array) -> tuple[set[Index], list[str]]:
    """Walk the array folder: the units stored, and files that are no chunk of it."""
    stored: set[Index] = set()
    odd: list[str] = []
    meta = {"zarr.json", ".zarray", ".zattrs", ".zgroup"}
    for dirpath, dirnames, filenames in os.walk(arr.folder):
        dirnames.sort()
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), arr.folder).replace(os.sep, "/")
            if rel in meta:
                continue
            idx = arr.parse(rel)
            if idx is None:
                odd.append(rel)
            else:
                stored.add(idx)
    return stored, odd


# ---------------------------------------------------------------------------------------------
# reading


def _context(threads: int) -> Any:
    import tensorstore as ts

    return ts.Context(
        {
            "cache_pool": {"total_bytes_limit": 0},  # read the files, never a cache
            "data_copy_concurrency": {"limit": threads},
            "file_io_concurrency": {"limit": max(4, 2 * threads)},
        }
    )


def _open(arr: _Array, context: Any) -> Any:
    import tensorstore as ts

    spec = {
        "driver": "zarr3" if arr.zarr_format == 3 else "zarr",
        "kvstore": {"driver": "file", "path": str(arr.folder)},
    }
    return ts.open(spec, open=True, read=True, context=context).result()


def _slices(start: Sequence[int], stop: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in zip(start, stop, strict=True))


def _short(exc: BaseException, path: Path | None = None) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if path is not None:
        text = text.replace(f' in local file "{path}"', "").replace(str(path), "the file")
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def _pipelined(
    items: Iterable[_T], submit: Callable[[_T], Sequence[Any]], window: int
) -> Iterator[tuple[_T, list[np.ndarray] | BaseException]]:
    """Submit reads for ``items`` with at most ``window`` in flight; yield results in order."""
    pending: collections.deque[tuple[_T, Sequence[Any] | BaseException]] = collections.deque()

    def drain_one() -> tuple[_T, list[np.ndarray] | BaseException]:
        item, futures = pending.popleft()
        if isinstance(futures, BaseException):
            return item, futures
        try:
            return item, [np.asarray(f.result()) for f in futures]
        except Exception as exc:
            return item, exc

    for item in items:
        try:
            pending.append((item, submit(item)))
        except Exception as exc:
            pending.append((item, exc))
        if len(pending) >= window:
            yield drain_one()
    while pending:
        yield drain_one()


def _downsample(data: np.ndarray, factors: Index, piece: int = _PIECE, *, mode: bool = False) -> np.ndarray:
    """Return :func:`downsample_mean` of ``data``, computed in (y, x) pieces of ``piece`` pixels.

    Same result, since every piece starts at an even offset; ~4x faster than one 4096² box.
    ``mode=True``: the 2x mode of a label image instead (``ngff_tiles.fusion.labels``).
    """
    if mode:
        from ngff_tiles.fusion.labels import downsample_mode as downsample
    else:
        downsample = downsample_mean
    if data.ndim < 2 or (data.shape[-1] <= piece and data.shape[-2] <= piece):
        return downsample(data, factors)
    out = np.empty(tuple(-(-n // q) for n, q in zip(data.shape, factors, strict=True)), dtype=data.dtype)
    fy, fx = factors[-2], factors[-1]
    for y in range(0, data.shape[-2], piece):
        for x in range(0, data.shape[-1], piece):
            out[..., y // fy : -(-(y + piece) // fy), x // fx : -(-(x + piece) // fx)] = downsample(
                data[..., y : y + piece, x : x + piece], factors
            )
    return out


def _all_fill(data: np.ndarray, fill: Any) -> bool:
    if isinstance(fill, float) and math.isnan(fill):
        return bool(np.isnan(data).all())
    return bool((data == fill).all())


# ---------------------------------------------------------------------------------------------
# one image


@dataclass(slots=True)
class _Level:
    arr: _Array
    store: Any
    stored: set[Index]
    expected: set[Index] | None
    factors: Index | None  # from the level below; None for level 0 or when unusable


class _Verifier:
    def __init__(
        self, root: Path, report: VerifyReport, sample_blocks: int | None, seed: int, progress: bool
    ):
        self.root = root
        self.report = report
        self.sample_blocks = sample_blocks
        self.seed = seed
        self.progress = progress
        self.threads = max(1, min(8, os.cpu_count() or 1))
        self.context = _context(self.threads)
        self.missing: set[tuple[int, Index]] = set()  # (level, unit) of this image reported missing
        self.mode = False  # this image's pyramid is the 2x mode (a label image), not the mean

    def problem(self, text: str) -> None:
        self.report.problems.append(text)

    def warn(self, text: str) -> None:
        self.report.warnings.append(text)

    # -- expected units ------------------------------------------------------------------------

    def level0_expected(
        self, rel: str, arr: _Array, record: Any, channels: Sequence[str], times: Sequence[int]
    ) -> set[Index] | None:
        tiles = record.get("tiles") if isinstance(record, dict) else None
        where = f"{rel or '.'}: provenance record"
        if not isinstance(tiles, list):
            self.warn(
                f"{where} lists no tiles: which shards/chunks must exist is unknown; only decoding checked"
            )
            return None
        if len(arr.shape) != 5:
            self.problem(f"{arr.rel}: expected 5 dimensions (t, c, z, y, x), got shape {list(arr.shape)}")
            return None
        expected: set[Index] = set()
        for i, tile in enumerate(tiles):
            try:
                off = [int(v) for v in tile["offset_px"]]
                shp = [int(v) for v in tile["shape"]]
                c = channels.index(str(tile["channel"]))
                t = times.index(int(tile["time_index"]))
            except (KeyError, TypeError, ValueError):
                self.problem(
                    f"{where}: tiles[{i}] lacks a valid offset_px/shape/channel/time_index "
                    f"(channel not among {list(channels)}?); expected chunks unknown"
                )
                return None
            if len(off) != 3 or len(shp) != 3:
                self.problem(f"{where}: tiles[{i}] offset_px/shape are not (z, y, x)")
                return None
            start = [t, c, *off]
            stop = [t + 1, c + 1, *(o + s for o, s in zip(off, shp, strict=True))]
            if isinstance(tile.get("stop_px"), list) and len(tile["stop_px"]) == 3:
                # a tile under a general affine: its output bounding box, not offset + shape
                stop = [t + 1, c + 1, *(int(v) for v in tile["stop_px"])]
            if any(b > n for b, n in zip(stop, arr.shape, strict=True)):
                self.problem(
                    f"{where}: tiles[{i}] (t, c, z, y, x) box {start}..{stop} reaches beyond "
                    f"{arr.rel} of shape {list(arr.shape)}"
                )
            expected.update(arr.units_in(start, stop))
        return expected

    @staticmethod
    def parents(below: _Array, above: _Array, factors: Index, units: Iterable[Index]) -> set[Index]:
        out: set[Index] = set()
        for idx in units:
            start, stop = below.box(idx)
            lo = [a // f for a, f in zip(start, factors, strict=True)]
            hi = [-(-b // f) for b, f in zip(stop, factors, strict=True)]
            out.update(above.units_in(lo, hi))
        return out

    # -- the image -----------------------------------------------------------------------------

    def image(self, rel: str, attrs: dict[str, Any], channels_of: list[str] | None, times: list[int]) -> None:
        mss = _ome(attrs).get("multiscales")
        ms = mss[0] if isinstance(mss, list) and mss else None
        where = rel or "."
        if not isinstance(ms, dict) or not isinstance(ms.get("datasets"), list) or not ms["datasets"]:
            self.problem(f"{where}: no multiscales datasets to check")
            return
        record = attrs.get(PROVENANCE_KEY)
        self.mode = ms.get("type") == "mode" and "image-label" in _ome(attrs)
        if isinstance(record, dict) and record.get("status") not in (None, "complete") and rel:
            self.problem(f"{where}: image status is {record.get('status')!r}, not 'complete'")
        levels: list[_Level] = []
        scales: list[list[float] | None] = []
        for k, ds in enumerate(ms["datasets"]):
            path = ds.get("path") if isinstance(ds, dict) else None
            arel = f"{rel}/{path}" if rel else str(path)
            if not isinstance(path, str):
                self.problem(f"{where}: multiscales datasets[{k}] has no path")
                return
            try:
                arr = _read_array(self.root / arel, arel)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.problem(f"{arel}: cannot read the array metadata: {_short(exc)}")
                return
            try:
                store = _open(arr, self.context)
            except Exception as exc:
                self.problem(f"{arel}: tensorstore cannot open the array: {_short(exc)}")
                return
            stored, odd = _stored_units(arr)
            for name in odd[:_MAX_NAMED]:
                self.warn(
                    f"{arel}: unexpected file {name} ({arr.folder / name}): not a {arr.unit} of this array"
                )
            if len(odd) > _MAX_NAMED:
                self.warn(f"{arel}: {len(odd) - _MAX_NAMED} more unexpected file(s)")
            scales.append(_scale(ds))
            levels.append(_Level(arr, store, stored, None, None))
        # factors between levels, and their shapes
        for k in range(1, len(levels)):
            below, above = levels[k - 1].arr, levels[k].arr
            sb, sa = scales[k - 1], scales[k]
            if sb is None or sa is None or len(sb) != len(sa) or len(sa) != len(above.shape):
                self.problem(
                    f"{above.rel}: no usable scale to compare with level {k - 1}; pyramid not checked"
                )
                continue
            ratios = [a / b if b else math.nan for a, b in zip(sa, sb, strict=True)]
            f = tuple(round(r) if math.isfinite(r) else 0 for r in ratios)
            if any(abs(r - q) > 1e-6 for r, q in zip(ratios, f, strict=True)) or any(
                q not in (1, 2) for q in f
            ):
                self.problem(
                    f"{above.rel}: scale ratios {[f'{r:g}' for r in ratios]} to level {k - 1} "
                    "are not 1 or 2; pyramid not checked"
                )
                continue
            want = tuple(-(-n // q) for n, q in zip(below.shape, f, strict=True))
            if above.shape != want or above.dtype != below.dtype:
                self.problem(
                    f"{above.rel}: shape {list(above.shape)} {above.dtype} is not level {k - 1}'s "
                    f"{list(below.shape)} {below.dtype} downsampled by {list(f)} ({list(want)})"
                )
                continue
            levels[k].factors = f
        # expected units
        channels = channels_of or _record_channels(record)
        if isinstance(record, dict):
            levels[0].expected = self.level0_expected(rel, levels[0].arr, record, channels, times)
        for k in range(1, len(levels)):
            prev, fk = levels[k - 1].expected, levels[k].factors
            if prev is not None and fk is not None:
                levels[k].expected = self.parents(levels[k - 1].arr, levels[k].arr, fk, prev)
        self.report.images += 1
        self.report.levels_checked += len(levels)
        self.missing = set()
        for k in range(len(levels)):
            self.presence(levels, k)
        self.check_data(levels)

    # -- presence ------------------------------------------------------------------------------

    def presence(self, levels: list[_Level], k: int) -> None:
        lev = levels[k]
        arr = lev.arr
        if lev.expected is None:
            return
        self.report.chunks_expected += len(lev.expected)
        missing = sorted(lev.expected - lev.stored)
        self.report.chunks_missing += len(missing)
        self.missing.update((k, idx) for idx in missing)
        if len(missing) > _MAX_LISTED:
            self.problem(
                f"{arr.rel}: {len(missing) - _MAX_LISTED} {arr.unit}(s) missing that tiles cover, "
                f"besides the {_MAX_LISTED} below (from {arr.where(missing[_MAX_LISTED])})"
            )
        for idx in missing[:_MAX_LISTED]:
            evidence = self.evidence(levels, k, idx)
            if evidence is None:
                self.problem(f"{arr.where(idx)}: missing; a tile covers it")
            elif evidence:
                self.problem(f"{arr.where(idx)}: missing; a tile covers it and {evidence} has data there")
            else:
                self.warn(
                    f"{arr.where(idx)}: missing although a tile covers it; the levels next to it are all "
                    "fill value there, so the tiles may have been all 0 (such chunks are not stored)"
                )
        extra = sorted(lev.stored - lev.expected)
        for idx in extra[:_MAX_NAMED]:
            self.warn(f"{arr.where(idx)}: stored although no tile covers it")
        if len(extra) > _MAX_NAMED:
            self.warn(f"{arr.rel}: {len(extra) - _MAX_NAMED} more {arr.unit}(s) stored that no tile covers")

    def evidence(self, levels: list[_Level], k: int, idx: Index) -> str | None:
        """Whether a neighbouring level has non-fill data over the box of unit ``idx`` of level k.

        Returns ``None`` when there is no usable neighbour, ``"level N"`` when one has data, ``""``
        when all neighbours are fill value there.
        """
        arr = levels[k].arr
        start, stop = arr.box(idx)
        looked = False
        if k + 1 < len(levels) and levels[k + 1].factors is not None:
            f = levels[k + 1].factors
            assert f is not None
            lo = [a // q for a, q in zip(start, f, strict=True)]
            hi = [-(-b // q) for b, q in zip(stop, f, strict=True)]
            above = levels[k + 1]
            try:
                data = np.asarray(above.store[_slices(lo, hi)].read().result())
                looked = True
                if not _all_fill(data, above.arr.fill_value):
                    return f"level {k + 1}"
            except Exception:
                pass  # reported by the decoding pass
        if k > 0 and levels[k].factors is not None:
            f = levels[k].factors
            assert f is not None
            below = levels[k - 1]
            lo = [a * q for a, q in zip(start, f, strict=True)]
            hi = [min(b * q, n) for b, q, n in zip(stop, f, below.arr.shape, strict=True)]
            try:
                data = np.asarray(below.store[_slices(lo, hi)].read().result())
                looked = True
                if not _all_fill(data, below.arr.fill_value):
                    return f"level {k - 1}"
            except Exception:
                pass
        return "" if looked else None

    # -- decoding and pyramid ------------------------------------------------------------------

    def check_data(self, levels: list[_Level]) -> None:
        """Decode every stored unit and recompute (a sample of) the pyramid, level by level.

        Level ``k``'s units are read as the box below each unit of level ``k + 1`` (the reads a
        recompute needs anyway); the last level's units are read one by one.
        """
        rng = random.Random(self.seed)
        plans: list[tuple[int, list[tuple[Index, list[Index], bool]]]] = []
        for k, lev in enumerate(levels):
            up = levels[k + 1] if k + 1 < len(levels) else None
            if up is None or up.factors is None:
                plans.append((k, [(idx, [idx], False) for idx in sorted(lev.stored)]))
                continue
            f = up.factors
            parents = sorted(
                up.stored | (up.expected or set()) | self.parents(lev.arr, up.arr, f, lev.stored)
            )
            if self.sample_blocks is None:
                sampled = set(parents)
            else:
                sampled = set(rng.sample(parents, min(max(self.sample_blocks, 0), len(parents))))
            items = []
            for p in parents:
                lo, hi = self.below_box(lev.arr, up.arr, f, p)
                kids = [u for u in lev.arr.units_in(lo, hi) if u in lev.stored]
                if kids or p in sampled:
                    items.append((p, kids, p in sampled))
            plans.append((k, items))
        bar = self._bar(sum(len(items) for _, items in plans), "verifying")
        decoded: set[tuple[int, Index]] = set()
        try:
            for k, items in plans:
                self.check_level(levels, k, items, decoded, bar)
        finally:
            if bar is not None:
                bar.close()
        self.report.chunks_checked += len(decoded)

    @staticmethod
    def below_box(below: _Array, above: _Array, f: Index, idx: Index) -> tuple[Index, Index]:
        """The box of ``below`` that unit ``idx`` of ``above`` is the 2x mean of."""
        start, stop = above.box(idx)
        lo = tuple(a * q for a, q in zip(start, f, strict=True))
        hi = tuple(min(b * q, n) for b, q, n in zip(stop, f, below.shape, strict=True))
        return lo, hi

    def check_level(
        self,
        levels: list[_Level],
        k: int,
        items: list[tuple[Index, list[Index], bool]],
        decoded: set[tuple[int, Index]],
        bar: Any,
    ) -> None:
        lev = levels[k]
        up = levels[k + 1] if k + 1 < len(levels) else None
        f = up.factors if up is not None else None

        def submit(item: tuple[Index, list[Index], bool]) -> list[Any]:
            idx, _kids, recompute = item
            if up is None or f is None:
                return [lev.store[_slices(*lev.arr.box(idx))].read()]
            lo, hi = self.below_box(lev.arr, up.arr, f, idx)
            reads = [lev.store[_slices(lo, hi)].read()]
            if recompute:
                reads.append(up.store[_slices(*up.arr.box(idx))].read())
            return reads

        window = _WINDOW if f is None else 3
        for (idx, kids, recompute), result in _pipelined(items, submit, window):
            if bar is not None:
                bar.update(1)
            if isinstance(result, BaseException):
                # which read failed? read each unit on its own to name the file(s)
                for kid in kids:
                    if (k, kid) in decoded:
                        continue
                    try:
                        data = lev.store[_slices(*lev.arr.box(kid))].read().result()
                        decoded.add((k, kid))
                        self.report.bytes_read += data.nbytes
                    except Exception as exc:
                        why = _short(exc, lev.arr.file(kid))
                        self.problem(f"{lev.arr.where(kid)}: cannot be decoded: {why}{self.inner(lev, kid)}")
                continue  # a failing level-(k+1) unit is named when its own level is read
            decoded.update((k, kid) for kid in kids)
            self.report.bytes_read += sum(r.nbytes for r in result)
            if recompute and up is not None and f is not None:
                below, stored = result
                self.report.blocks_recomputed += 1
                self.compare(levels, k + 1, idx, stored, _downsample(below, f, mode=self.mode), f)

    def inner(self, lev: _Level, idx: Index) -> str:
        """For a shard that fails: which of its inner chunks fail (text to append)."""
        arr = lev.arr
        if arr.inner is None:
            return ""
        start, stop = arr.box(idx)
        ranges = [range(a, b, g) for a, b, g in zip(start, stop, arr.inner, strict=True)]
        bad: list[Index] = []
        total = 0
        for lo in itertools.product(*ranges):
            total += 1
            hi = [min(a + g, b) for a, g, b in zip(lo, arr.inner, stop, strict=True)]
            try:
                lev.store[_slices(lo, hi)].read().result()
            except Exception:
                bad.append(tuple(a // g for a, g in zip(lo, arr.inner, strict=True)))
        if not bad:
            return ""
        if len(bad) == total:
            return f"; all {total} inner chunk(s) fail (shard index damaged?)"
        named = ", ".join(str(list(b)) for b in bad[:_MAX_NAMED])
        more = f" and {len(bad) - _MAX_NAMED} more" if len(bad) > _MAX_NAMED else ""
        return f"; inner chunk(s) {named}{more} of {total} fail"

    def compare(
        self, levels: list[_Level], k: int, idx: Index, stored: np.ndarray, recomputed: np.ndarray, f: Index
    ) -> None:
        """Compare unit ``idx`` of level ``k`` with the 2x mean of level ``k - 1``; name the culprits."""
        floating = stored.dtype.kind in "fc"
        if stored.shape == recomputed.shape and np.array_equal(stored, recomputed, equal_nan=floating):
            return
        arr, below = levels[k].arr, levels[k - 1].arr
        if stored.shape != recomputed.shape:
            self.problem(
                f"{arr.where(idx)}: shape {stored.shape} differs from the recomputed {recomputed.shape}"
            )
            return
        bad = stored != recomputed
        if floating:
            bad &= ~(np.isnan(stored) & np.isnan(recomputed))
        wide = np.float64 if floating else np.int64
        diff = float(np.max(np.abs(stored.astype(wide) - recomputed.astype(wide))[bad]))
        start = arr.box(idx)[0]
        lo, hi = self.below_box(below, arr, f, idx)
        if (k, idx) in self.missing:
            return  # reported as missing
        culprits: list[str] = []
        known: list[bool] = []
        for cidx in below.units_in(lo, hi):
            cs, ce = below.box(cidx)
            sub = _slices(
                [max(a // q - s, 0) for a, q, s in zip(cs, f, start, strict=True)],
                [-(-b // q) - s for b, q, s in zip(ce, f, start, strict=True)],
            )
            if bad[sub].any():
                known.append((k - 1, cidx) in self.missing)
                culprits.append(below.where(cidx) + (" (missing)" if known[-1] else ""))
        if known and all(known):
            return  # explained by missing units, already reported
        named = "; ".join(culprits[:_MAX_NAMED]) or "none stored"
        if len(culprits) > _MAX_NAMED:
            named += f"; and {len(culprits) - _MAX_NAMED} more"
        self.problem(
            f"{arr.where(idx)}: differs from the 2x {'mode' if self.mode else 'mean'} of level {k - 1} "
            f"in {int(bad.sum())} pixel(s), "
            f"max abs difference {diff:g}; the level-{k - 1} data there: {named}"
        )

    def _bar(self, total: int, desc: str) -> Any:
        if not self.progress or total == 0:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, unit="block", desc=desc, dynamic_ncols=True, leave=False)


def _record_channels(record: Any) -> list[str]:
    """Channel names in order of first appearance by tile id (the writer's order)."""
    tiles = record.get("tiles") if isinstance(record, dict) else None
    if not isinstance(tiles, list):
        return []
    entries = [t for t in tiles if isinstance(t, dict)]
    ordered = (
        sorted(entries, key=lambda t: t["id"])
        if all(isinstance(t.get("id"), int) for t in entries)
        else entries
    )
    return list(dict.fromkeys(str(t.get("channel")) for t in ordered))


def _scale(ds: Any) -> list[float] | None:
    for ct in ds.get("coordinateTransformations", []) if isinstance(ds, dict) else []:
        if isinstance(ct, dict) and ct.get("type") == "scale" and isinstance(ct.get("scale"), list):
            try:
                return [float(v) for v in ct["scale"]]
            except (TypeError, ValueError):
                return None
    return None


def _attrs(folder: Path) -> dict[str, Any] | None:
    try:
        if (folder / "zarr.json").is_file():
            doc = json.loads((folder / "zarr.json").read_text(encoding="utf-8"))
            attrs = doc.get("attributes", {})
        elif (folder / ".zgroup").is_file():
            za = folder / ".zattrs"
            attrs = json.loads(za.read_text(encoding="utf-8")) if za.is_file() else {}
        else:
            return None
    except (OSError, ValueError):
        return None
    return attrs if isinstance(attrs, dict) else None


def _ome(attrs: dict[str, Any]) -> dict[str, Any]:
    ome = attrs.get("ome")
    return ome if isinstance(ome, dict) else attrs


def _label_images(root: Path, rel: str, report: VerifyReport) -> list[tuple[str, dict[str, Any]]]:
    """The label images listed in the ``labels`` group of the image at ``rel`` (name, attributes)."""
    folder = root / rel / "labels" if rel else root / "labels"
    attrs = _attrs(folder) if folder.is_dir() else None
    names = _ome(attrs).get("labels") if attrs is not None else None
    out = []
    for name in names if isinstance(names, list) else []:
        lattrs = _attrs(folder / str(name))
        if lattrs is None:
            report.problems.append(f"{folder / str(name)}: label image listed in labels/ is missing")
            continue
        out.append((str(name), lattrs))
    return out


def _find_images(root: Path, attrs: dict[str, Any], report: VerifyReport) -> list[tuple[str, dict[str, Any]]]:
    ome = _ome(attrs)
    if "multiscales" in ome:
        return [("", attrs)]
    plate = ome.get("plate")
    if not isinstance(plate, dict):
        report.problems.append(f"{root}: neither an image (multiscales) nor a plate; nothing to verify")
        return []
    images: list[tuple[str, dict[str, Any]]] = []
    for well in plate.get("wells", []):
        wpath = well.get("path") if isinstance(well, dict) else None
        if not isinstance(wpath, str):
            continue  # validate_store reports it
        wattrs = _attrs(root / wpath)
        wmeta = _ome(wattrs).get("well") if wattrs is not None else None
        if not isinstance(wmeta, dict):
            report.problems.append(f"{wpath}: plate well without well metadata ({root / wpath})")
            continue
        for im in wmeta.get("images", []):
            ipath = im.get("path") if isinstance(im, dict) else None
            if not isinstance(ipath, str):
                continue
            iattrs = _attrs(root / wpath / ipath)
            if iattrs is None:
                report.problems.append(f"{wpath}/{ipath}: well image missing ({root / wpath / ipath})")
                continue
            images.append((f"{wpath}/{ipath}", iattrs))
    return images


def verify_store(
    path: str | os.PathLike[str], *, sample_blocks: int | None = None, seed: int = 0, progress: bool = False
) -> VerifyReport:
    """Read an ngff-tiles output back and report what is wrong with it.

    Parameters
    ----------
    path
        The store (a single image or an HCS plate, NGFF 0.4 or 0.5).
    sample_blocks
        Pyramid blocks per level (>= 1) recomputed from the level below and compared; ``None``
        (default) checks every block, ``0`` none. Checking all is the default because blosc and
        zstd chunks carry no checksum: bytes flipped inside a chunk still decode, and only the
        recomputation catches them (it costs ~1.5x a sample of 8: 3.3 s vs 2.2 s on 2 GB).
    seed
        Seed of the block sample.
    progress
        Show progress bars on stderr.

    Returns
    -------
    VerifyReport
        ``problems`` (empty when the store is sound), ``warnings`` and counts.
    """
    t0 = time.perf_counter()
    root = Path(path)
    report = VerifyReport(path=root)
    attrs = _attrs(root)
    if attrs is None:
        report.problems.append(f"{root}: no Zarr group here (no zarr.json or .zgroup)")
        report.seconds = time.perf_counter() - t0
        return report
    record = attrs.get(PROVENANCE_KEY)
    status = record.get("status") if isinstance(record, dict) else None
    if not isinstance(record, dict):
        report.problems.append(
            f"{root}: no ngff-tiles provenance record ({PROVENANCE_KEY!r}): not our output"
        )
    elif status != "complete":
        done = root / DONE_DIR
        n_done = sum(1 for _ in done.iterdir()) if done.is_dir() else 0
        report.problems.append(
            f"{root}: incomplete: the conversion did not finish (status {status!r}, "
            f"{n_done} block(s) recorded written); run it again with --resume"
        )
        report.seconds = time.perf_counter() - t0
        return report

    from ngff_tiles.metadata.validate import validate_store

    for p in validate_store(root):
        text = f"{root / p.where if p.where else root}: metadata: {p.message}"
        (report.problems if p.severity == "error" else report.warnings).append(text)

    images = _find_images(root, attrs, report)
    records = [a.get(PROVENANCE_KEY) for _, a in images]
    times = sorted(
        {
            int(t["time_index"])
            for r in records
            if isinstance(r, dict) and isinstance(r.get("tiles"), list)
            for t in r["tiles"]
            if isinstance(t, dict) and isinstance(t.get("time_index"), int)
        }
    )
    verifier = _Verifier(root, report, sample_blocks, seed, progress)
    for rel, iattrs in images:
        omero = _ome(iattrs).get("omero")
        labels = None
        if isinstance(omero, dict) and isinstance(omero.get("channels"), list):
            labels = [str(ch.get("label")) if isinstance(ch, dict) else "" for ch in omero["channels"]]
        verifier.image(rel, iattrs, labels, times)
        for name, lattrs in _label_images(root, rel, report):  # labels/<name> of the image, if any
            verifier.image(f"{rel}/labels/{name}" if rel else f"labels/{name}", lattrs, ["labels"], times)
    report.seconds = time.perf_counter() - t0
    return report
