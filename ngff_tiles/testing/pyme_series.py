"""Write synthetic PYME cluster series (``.pcs``) for tests and benchmarks.

The layout follows ``reference/pyme.md`` §2 and what the real sample series show: ``metadata.json``
(flat dotted keys), ``frameNNNNN.pzf`` in the acquisition layout (``[1, W, H]``, ``F`` order,
HUFFCODE), ``events.json`` and ``final_metadata.json``. Positions are either ``ScannerXPos`` /
``ScannerYPos`` events timed so that PYME's frame mapping puts each move in its frame, or
``Tiling.XPositions`` / ``Tiling.YPositions`` metadata.

The real series written by PYME (``shared/sample-data/pyme/series``) are the reference; these are
for sizes the samples do not have.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["write_series"]


def write_series(
    folder: str | Path,
    frames: Sequence[np.ndarray],
    positions_um: Sequence[tuple[float, float]],
    *,
    pixel_size_um: float = 0.65,
    ad_offset: float = 100,
    cycle_time: float = 0.125,
    start_time: float = 1.8e9,
    mode: Literal["events", "tiling"] = "events",
    dark_frames: int = 0,
    quantization: tuple[float, float] | None = None,
    roi_origin: tuple[int, int] = (0, 0),
    extra_metadata: dict[str, object] | None = None,
    workers: int = 2,
) -> Path:
    """Write a ``.pcs`` folder of ``frames`` ((y, x) uint16, camera offset included) at ``positions_um``.

    Parameters
    ----------
    folder
        The series folder to create (its name should end in ``.pcs``).
    frames, positions_um
        One (y, x) frame per stage position (x, y) in µm (of the frame's pixel (0, 0)).
    pixel_size_um, ad_offset, cycle_time, start_time
        ``voxelsize.x/y``, ``Camera.ADOffset``, ``Camera.CycleTime``, ``StartTime``.
    mode
        ``events``: positions as scanner events (the classic tile protocol); ``tiling``: as
        ``Tiling.XPositions/YPositions`` (PYME's deterministic tiling).
    dark_frames
        Frames of pure camera offset before the data (``Protocol.DataStartsAt``), events mode only.
    quantization
        ``(offset, scale)`` for sqrt-quantized frames.
    roi_origin
        ``Camera.ROIOriginX/Y``.
    extra_metadata
        More metadata keys.
    workers
        Threads encoding frames.
    """
    from ngff_tiles.readers.pyme.pzf import encode_frame

    if len(frames) != len(positions_um):
        raise ValueError(f"Expected one position per frame, got {len(positions_um)} for {len(frames)}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=False)
    h, w = frames[0].shape
    first = positions_um[0]
    md: dict[str, object] = {
        "Camera.ADOffset": ad_offset,
        "Camera.CycleTime": cycle_time,
        "Camera.IntegrationTime": cycle_time * 0.8,
        "Camera.ROIHeight": h,
        "Camera.ROIWidth": w,
        "Camera.ROIOriginX": roi_origin[0],
        "Camera.ROIOriginY": roi_origin[1],
        "CameraOrientation.FlipX": False,
        "CameraOrientation.FlipY": False,
        "CameraOrientation.Rotate": False,
        "DimOrder": "XYCZT",
        "Positioning.x": first[0],
        "Positioning.y": first[1],
        "Positioning.z": 0.0,
        "SizeC": 1,
        "SizeZ": 1,
        "StartTime": start_time,
        "voxelsize.units": "um",
        "voxelsize.x": pixel_size_um,
        "voxelsize.y": pixel_size_um,
    }
    events: list[list[object]] = [["StartAq", "0", start_time]]
    stack: list[np.ndarray] = []
    if mode == "tiling":
        md["SizeT"] = len(frames)
        md["Tiling.XPositions"] = [float(p[0]) for p in positions_um]
        md["Tiling.YPositions"] = [float(p[1]) for p in positions_um]
        stack = list(frames)
    else:
        md["SizeT"] = -1
        md["Protocol.DataStartsAt"] = dark_frames
        dark = np.full((h, w), int(ad_offset), dtype=np.uint16)
        stack = [dark] * dark_frames + list(frames)
        for i, (x, y) in enumerate(positions_um):
            t = start_time + (dark_frames + i + 0.25) * cycle_time  # logged during its own frame
            events += [["ScannerXPos", f"{x:3.6f}", t], ["ScannerYPos", f"{y:3.6f}", t]]
    md.update(extra_metadata or {})

    def one(k: int) -> None:
        (out / f"frame{k:05d}.pzf").write_bytes(encode_frame(stack[k], quantization=quantization))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        list(ex.map(one, range(len(stack))))
    text = json.dumps(md, indent=2, sort_keys=True)
    (out / "metadata.json").write_text(text)
    final = dict(md, EndTime=start_time + len(stack) * cycle_time)
    (out / "final_metadata.json").write_text(json.dumps(final, indent=2, sort_keys=True))
    (out / "events.json").write_text(json.dumps(events))
    return out
