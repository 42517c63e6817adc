"""Per-frame stage positions of a PYME series: ``Tiling.X/YPositions`` or scanner events.

Implemented from the rules in ``reference/pyme.md`` §3 (PYME's ``get_position_from_events``; its
code is not used):

1. Position events are ``ScannerXPos`` / ``ScannerYPos``; the value is the number before the first
   ``", "`` of the description, in µm. They are sorted by time.
2. Event times become frames against *start events*: a synthetic start (frame 0 at ``StartTime``),
   every ``StartAq`` (its description is the frame number), an end (frame 2**31 - 1 at
   ``StartTime`` + 1 week) and, for data written before PYME PR #948, a "fake start" (frame 0) at
   the last ``ProtocolTask`` whose description begins with ``-1,``. For an event at ``t``:
   ``si = searchsorted(T, t, 'right')``, ``frame = F[si-1] + int((t - T[si-1]) / Camera.CycleTime)``,
   capped at ``F[si]``.
3. The position of frame ``f`` is the value of the last event whose frame is ``<= f`` (the frame
   during which the move was logged counts, inclusive); before the first event it is
   ``Positioning.x`` / ``Positioning.y`` (0 when absent).

Positions are computed per series, with that series' own ``StartTime`` and ``CycleTime``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ngff_tiles.errors import MetadataError

__all__ = [
    "INT32_MAX",
    "Event",
    "frame_positions",
    "parse_events",
    "piecewise_map",
    "tiling_positions",
    "times_to_frames",
]

INT32_MAX = 2**31 - 1
ONE_WEEK_S = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of ``events.json``: ``[EventName, EventDescr, Time]`` (Unix seconds)."""

    name: str
    descr: str
    time: float


def parse_events(doc: Any, source: str) -> list[Event]:
    """Parse the JSON list of ``events.json``.

    Raises
    ------
    MetadataError
        Not a list of ``[name, description, time]`` triples.
    """
    if not isinstance(doc, list):
        raise MetadataError(f"{source}: expected a JSON list of [name, description, time] events")
    out: list[Event] = []
    for k, entry in enumerate(doc):
        if not isinstance(entry, (list, tuple)) or len(entry) != 3:
            raise MetadataError(f"{source}: event {k} is not a [name, description, time] triple: {entry!r}")
        name, descr, t = entry
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if isinstance(descr, bytes):
            descr = descr.decode("utf-8", "replace")
        try:
            time = float(t)
        except (TypeError, ValueError):
            raise MetadataError(f"{source}: event {k} has a non-numeric time {t!r}") from None
        if not isinstance(name, str) or not isinstance(descr, str) or not math.isfinite(time):
            raise MetadataError(f"{source}: event {k} is malformed: {entry!r}")
        out.append(Event(name, descr, time))
    return out


def _number(md: Mapping[str, Any], key: str, source: str, default: float | None = None) -> float:
    value = md.get(key, default)
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise MetadataError(f"{source}: metadata {key} is missing or not a number ({value!r})") from None
    if not math.isfinite(out):
        raise MetadataError(f"{source}: metadata {key} is not finite ({value!r})")
    return out


def _start_events(
    events: Sequence[Event], md: Mapping[str, Any], source: str
) -> tuple[np.ndarray, np.ndarray]:
    start = _number(md, "StartTime", source)
    times = [start]
    frames = [0]
    for e in events:
        if e.name == "StartAq":
            try:
                frames.append(int(e.descr.strip()))
            except ValueError:
                raise MetadataError(f"{source}: StartAq event with a non-integer frame {e.descr!r}") from None
            times.append(e.time)
    times.append(start + ONE_WEEK_S)
    frames.append(INT32_MAX)
    fake = [e for e in events if e.name == "ProtocolTask" and e.descr.startswith("-1,")]
    if fake:
        times.append(fake[-1].time)
        frames.append(0)
    order = np.argsort(np.asarray(times, dtype=np.float64), kind="stable")
    return np.asarray(times, dtype=np.float64)[order], np.asarray(frames, dtype=np.int64)[order]


def times_to_frames(
    times: Sequence[float] | np.ndarray, events: Sequence[Event], md: Mapping[str, Any], source: str
) -> np.ndarray:
    """Map event times (Unix s) to frame numbers with the series' start events and cycle time."""
    cycle = _number(md, "Camera.CycleTime", source)
    if cycle <= 0:
        raise MetadataError(f"{source}: Camera.CycleTime must be positive, got {cycle!r}")
    t_start, f_start = _start_events(events, md, source)
    out = np.empty(len(times), dtype=np.int64)
    for k, t in enumerate(np.asarray(times, dtype=np.float64)):
        si = int(np.searchsorted(t_start, t, side="right"))
        if si == 0:  # before every start event
            out[k] = f_start[0]
            continue
        steps = (float(t) - float(t_start[si - 1])) / cycle  # Python floats: inf, not a warning
        if not math.isfinite(steps):
            raise MetadataError(
                f"{source}: event at t = {t!r} s cannot be mapped to a frame (cycle {cycle!r} s)"
            )
        frame = int(f_start[si - 1]) + int(steps)
        if si < len(t_start):
            frame = min(frame, int(f_start[si]))
        out[k] = frame
    return out


def piecewise_map(y0: float, frames: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Value of the last event at or before each frame in ``at``; ``y0`` before the first."""
    idx = np.searchsorted(frames, at, side="right") - 1
    out = np.full(len(at), float(y0), dtype=np.float64)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def _event_values(events: Sequence[Event], name: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    sel = [e for e in events if e.name == name]
    times = np.asarray([e.time for e in sel], dtype=np.float64)
    values = np.empty(len(sel), dtype=np.float64)
    for k, e in enumerate(sel):
        try:
            values[k] = float(e.descr.split(", ")[0])
        except ValueError:
            raise MetadataError(f"{source}: {name} event with a non-numeric position {e.descr!r}") from None
    order = np.argsort(times, kind="stable")
    return times[order], values[order]


def frame_positions(
    events: Sequence[Event], md: Mapping[str, Any], n_frames: int, source: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Stage (x, y) in µm of frames ``0..n_frames-1`` from scanner events.

    Returns
    -------
    x, y
        Positions per frame.
    last_event_frame
        The frame of the last position event (-1 without events): a series whose last move maps
        beyond its frames has lost frames.
    """
    at = np.arange(n_frames)
    out = []
    last = -1
    for axis, name in (("x", "ScannerXPos"), ("y", "ScannerYPos")):
        y0 = _number(md, f"Positioning.{axis}", source, 0.0)
        times, values = _event_values(events, name, source)
        frames = times_to_frames(times, events, md, source) if len(times) else np.zeros(0, np.int64)
        if len(frames):
            last = max(last, int(frames.max()))
        out.append(piecewise_map(y0, frames, values, at))
    return out[0], out[1], last


def tiling_positions(md: Mapping[str, Any], source: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``Tiling.XPositions`` / ``Tiling.YPositions`` (µm, one per T index), or None when absent."""
    xs, ys = md.get("Tiling.XPositions"), md.get("Tiling.YPositions")
    if xs is None and ys is None:
        return None
    try:
        x = np.asarray(xs, dtype=np.float64).ravel()
        y = np.asarray(ys, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise MetadataError(f"{source}: Tiling.XPositions/YPositions are not lists of numbers") from None
    if len(x) != len(y) or not len(x) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise MetadataError(
            f"{source}: Tiling.XPositions ({len(x)}) and Tiling.YPositions ({len(y)}) must be equally long, "
            "finite lists"
        )
    return x, y
