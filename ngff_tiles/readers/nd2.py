"""Nikon NIS-Elements ND2 files, through tlambert03's ``nd2`` (extra ``ngff-tiles[nd2]``).

Multi-position (``XYPosLoop`` points), z-stacks (``ZStackLoop``), channels, time (``TimeLoop``,
``NETimeLoop``) and RGB are supported; legacy (JPEG2000) files open through ``nd2[legacy]``.
``nd2`` is imported only by ``tiles()`` and by pixel reads; sniffing looks at magic bytes.

Source convention
-----------------
- A stage position is the **image centre**. The Nikon SDK defines *absolute frame position =
  pixelToStageTransformationMatrix · (x_px, y_px, 1) + stagePositionUm* (``Nd2ReadSdk.h``, quoted
  in ``nd2.structures.Volume``), and ``nd2`` (matching the SDK's output) builds that matrix from
  NIS's camera-to-stage matrix, per-axis stage orientation and calibration with the translation
  b = −A·(width / 2, height / 2): pixel (w/2, h/2) sits at the stage position. ``cluster.nd2``
  gives b = (3.1738, −2.6188) µm = −A·(19, 15.5) for its 38 × 31 px frames. So pixel (x, y) is at
  A·(x, y) + b + P in stage µm.
- Orientation: A (2 × 2 part of ``pixelToStageTransformationMatrix``) is reduced to its nearest
  signed permutation R (flips/swap; the residual rotation, 0.32° in ``cluster.nd2``, is only
  recorded in ``Tile.extra``). Positions are reported in the image-aligned frame R^T · stage, so a
  tile's pixel (x, y) lies at ``position_um`` + (y, x) × pixel size: ``Tile.position_um`` (y, x) =
  R^T · (b + P). In ``cluster.nd2`` A ≈ diag(−0.1678, +0.1678): image x runs against stage X, so
  x is mirrored (corner x = 26053.78 for stage X = −26056.95). The 2 × 2
  ``cameraTransformationMatrix`` alone does not fix the stage direction (it lacks NIS's per-axis
  stage orientation: ``cluster.nd2`` has ≈ −I there but a mirrored X only), so when
  ``pixelToStageTransformationMatrix`` is absent orientation is the identity and b = −(w/2, h/2) ×
  pixel size (use ``--flip-x/--flip-y/--swap-xy`` if that is wrong); legacy files likewise.
- XY per tile: with ``ReaderOptions.positions == "recorded"`` (default) the per-frame recorded stage
  position (``events()``: ``X Coord [µm]``, ``Y Coord [µm]`` of the stack's first frame) where the
  file has it, else the requested ``XYPosLoop`` point (``"requested"`` forces this), else the
  file's global position. ``Tile.extra`` keeps the raw ``stage_xy_um`` and both candidates.
- z of a stack's first plane: the loop point's z (when the loop sets z) or the global z, minus
  ``homeIndex`` × ``stepUm`` (as ``nd2``'s ``frame_metadata``); stacks acquired top to bottom
  (``bottomToTop`` false) are read in reverse so index 0 is the lowest plane. Pixel size:
  ``voxel_size()``; the z step: ``ZStackLoop.stepUm``.
- Names: ``XYPosLoop`` point names (``XYPos:<i>`` when unnamed); well plate names (``A01``,
  ``<plate>_A01_0000``) become well/field hints when every point's name parses.
- Frames hold every channel; a tile is one channel (or RGB component) of one position and time
  point, a z-stack. Whole frames are decoded (``region_reads = False``) through the shared frame
  cache, so the channels of a frame cost one decode.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import logging
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ngff_tiles.errors import MetadataError, MissingDependencyError, NgffTilesError, SourceError
from ngff_tiles.options import ReaderOptions
from ngff_tiles.readers._base import FRAME_CACHE, BaseReader, file_identity
from ngff_tiles.readers.ndtiff import (
    nearest_signed_permutation,
    option_pixel_size,
    residual_rotation_deg,
    well_hints,
)
from ngff_tiles.tiles import FrameSource, Region, Tile

if TYPE_CHECKING:
    from nd2.structures import ExpLoop, Volume

__all__ = [
    "ND2_MAGIC",
    "ND2Description",
    "ND2FrameSource",
    "ND2Reader",
    "describe_nd2",
    "nd2_tiles",
]

log = logging.getLogger(__name__)

ND2_MAGIC = b"\xda\xce\xbe\n"
"""First chunk magic (0x0ABECEDA little endian) of every ND2 v2/v3 file (nd2 ``_util``)."""
ND2_SIGNATURE = b"ND2 FILE SIGNATURE CHUNK NAME01!"
"""Name of the first chunk, at byte 16."""
JP2_MAGIC = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
"""Legacy (JPEG2000 container) ND2 files start with the JP2 signature box."""
_INSTALL = "pip install 'ngff-tiles[nd2]'"
_LOOP_AXIS = {
    "TimeLoop": "T",
    "NETimeLoop": "T",
    "XYPosLoop": "P",
    "ZStackLoop": "Z",
    "CustomLoop": "U",
    "Unknown": "U",
}
_RGB = ("R", "G", "B")
_X_EVENT = "X Coord [µm]"
_Y_EVENT = "Y Coord [µm]"


@dataclass(frozen=True)
class ND2Description:
    """What the reader needs from an ND2 file: ``nd2``'s own structures, no file handle.

    Attributes
    ----------
    path
        The file.
    sizes
        ``ND2File.sizes`` (``T``, ``P``, ``Z``, ``C``, ``Y``, ``X``, ``S``...).
    dtype
        Pixel type.
    voxel_size_um
        ``voxel_size()`` as (x, y, z) µm.
    calibrated
        Whether the file's x/y axes are calibrated (else the pixel size is a placeholder).
    channel_names
        One name per channel of a frame.
    experiment
        ``ND2File.experiment``: the loops, outermost first.
    frame0_position
        ``frame_metadata(0)`` stage position (x, y, z) µm: the requested point of frame 0 or the
        file's global position, z already minus ``homeIndex`` × ``stepUm``.
    volume
        ``metadata.channels[0].volume`` (pixel-to-stage and camera matrices).
    events
        ``events(orient="records")`` (recorded data per frame), or None.
    sequence_count
        Frames actually stored (fewer than the loops promise if the acquisition stopped early).
    loop_indices
        Loop indices of each frame (``ND2File.loop_indices``); derived from ``experiment`` if None.
    legacy
        A legacy (JPEG2000) file.
    version
        ``ND2File.version``.
    """

    path: str
    sizes: Mapping[str, int]
    dtype: np.dtype[Any]
    voxel_size_um: tuple[float, float, float]
    calibrated: bool
    channel_names: tuple[str, ...]
    experiment: tuple[ExpLoop, ...]
    frame0_position: tuple[float, float, float]
    volume: Volume | None = None
    events: tuple[Mapping[str, Any], ...] | None = None
    sequence_count: int | None = None
    loop_indices: tuple[Mapping[str, int], ...] | None = None
    legacy: bool = False
    version: tuple[int, ...] = ()


@contextlib.contextmanager
def _nd2_errors(path: str, what: str) -> Iterator[None]:
    """Turn ``nd2``'s errors (corrupt, truncated input) into a SourceError naming ``path``."""
    try:
        yield
    except NgffTilesError:
        raise
    except Exception as exc:
        raise SourceError(f"{path}: {what}: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def _nd2_calls(path: str, what: str = "cannot read ND2") -> Iterator[None]:
    """As :func:`_nd2_errors`, and log ``nd2``'s warnings (main thread only: not thread-safe)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _nd2_errors(path, what):
            yield
    for w in caught:
        log.warning("%s: nd2: %s", path, w.message)


def _open(path: str) -> Any:
    try:
        import nd2
    except ImportError as exc:
        raise MissingDependencyError(f"the nd2 reader needs the nd2 package: {_INSTALL} ({exc})") from exc
    return nd2.ND2File(path)


_MAX_COMPRESSION = 1100
"""zlib cannot shrink data more than 1032:1: a lossless frame larger than this × the file lies."""


def _check_frame_size(path: str, attrs: Any, legacy: bool) -> None:
    """Refuse frame dimensions the file cannot hold (before anything allocates a frame)."""
    width, height = int(attrs.widthPx or 0), int(attrs.heightPx or 0)
    if width < 1 or height < 1:
        raise SourceError(f"{path}: frames of {width}×{height} pixels")
    itemsize = -(-int(attrs.bitsPerComponentInMemory or 8) // 8)
    stride = max(int(attrs.widthBytes or 0), width * int(attrs.componentCount or 1) * itemsize)
    frame = stride * height
    size = os.path.getsize(path)
    kind = attrs.compressionType
    if legacy and kind == "lossy":
        return  # JPEG 2000 can shrink a flat frame arbitrarily
    limit = size if kind is None else size * _MAX_COMPRESSION
    if frame > limit:
        raise SourceError(
            f"{path}: frames of {width}×{height} pixels ({frame} bytes"
            f"{', ' + str(kind) if kind else ''}) cannot be stored in a file of {size} bytes "
            "(corrupt image attributes?)"
        )


def describe_nd2(path: str) -> ND2Description:
    """Read the metadata of ``path`` (no pixels) into an :class:`ND2Description`."""
    if not os.path.isfile(path):
        raise SourceError(f"{path}: no such file")
    with _nd2_calls(path):
        f = _open(path)
        try:
            legacy = bool(f.is_legacy)
            meta = f.metadata
            channels = list(meta.channels or [])
            volume = channels[0].volume if channels else None
            calibrated = bool(volume is not None and all(volume.axesCalibrated[:2]))
            vs = f.voxel_size()
            attrs = f.attributes
            _check_frame_size(path, attrs, legacy)
            try:
                fm = f.frame_metadata(0).channels[0].position.stagePositionUm
                position = (float(fm.x), float(fm.y), float(fm.z))
            except Exception as exc:  # e.g. legacy files without frame metadata
                log.warning("%s: no stage position in the frame metadata (%s); using 0, 0, 0", path, exc)
                position = (0.0, 0.0, 0.0)
            events: tuple[Mapping[str, Any], ...] | None = None
            if not legacy:
                try:
                    events = tuple(f.events(orient="records"))
                except Exception as exc:  # recorded data are optional
                    log.warning("%s: no recorded per-frame data: %s", path, exc)
            desc = ND2Description(
                path=os.path.abspath(path),
                sizes=dict(f.sizes),
                dtype=np.dtype(f.dtype),
                voxel_size_um=(float(vs.x), float(vs.y), float(vs.z)),
                calibrated=calibrated,
                channel_names=tuple(str(c.channel.name) for c in channels),
                experiment=tuple(f.experiment),
                frame0_position=position,
                volume=volume,
                events=events,
                sequence_count=int(attrs.sequenceCount),
                loop_indices=tuple(dict(li) for li in f.loop_indices),
                legacy=legacy,
                version=tuple(int(v) for v in f.version),
            )
        finally:
            f.close()
    return desc


# --------------------------------------------------------------------------------------------
# pixels


class ND2FrameSource(FrameSource):
    """A (z, y, x) stack of one channel (and RGB component) of ND2 frames, one frame per z.

    ``nd2`` decodes whole frames (all channels); each is cached once per process in
    :data:`~ngff_tiles.readers._base.FRAME_CACHE`, so every channel of a frame costs one decode.
    Pickles as the path and frame indices; each read opens and closes the file.

    Parameters
    ----------
    file
        The ND2 file.
    frames
        Sequence (frame) index of each z plane.
    channel, component
        Channel of the frame and RGB component (0 when not RGB).
    frame_shape
        (channels, y, x, components) of a frame.
    dtype
        Pixel type.
    """

    region_reads = False

    def __init__(
        self,
        file: str,
        frames: Sequence[int],
        channel: int,
        component: int,
        frame_shape: tuple[int, int, int, int],
        dtype: Any,
    ) -> None:
        self._file = os.fspath(file)
        self._frames = [int(i) for i in frames]
        self._channel = int(channel)
        self._component = int(component)
        self._frame_shape = tuple(int(s) for s in frame_shape)
        self._dtype = np.dtype(dtype)

    @property
    def path(self) -> str:
        """The ND2 file."""
        return self._file

    def shape_hint(self) -> tuple[int, int, int]:
        """The (z, y, x) shape of the stack."""
        return (len(self._frames), self._frame_shape[1], self._frame_shape[2])

    def _read(self, region: Region) -> np.ndarray:
        zs, ys, xs = region
        try:
            ident = file_identity(self._file)
        except OSError as exc:
            raise SourceError(f"{self._file}: cannot open: {exc.strerror}") from None
        out = np.empty((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), dtype=self._dtype)
        with contextlib.ExitStack() as stack:
            handle: list[Any] = []

            def decode(index: int) -> np.ndarray:
                with _nd2_errors(self._file, f"cannot decode frame {index}"):
                    if not handle:
                        handle.append(_open(self._file))
                        stack.callback(handle[0].close)
                    frame = np.asarray(handle[0].read_frame(index))
                    return np.ascontiguousarray(frame.reshape(self._frame_shape), dtype=self._dtype)

            for k, z in enumerate(range(zs.start, zs.stop)):
                index = self._frames[z]
                frame = FRAME_CACHE.get_or_decode(("nd2", *ident, index), lambda i=index: decode(i))  # type: ignore[misc]
                out[k] = frame[self._channel, ys, xs, self._component]
        return out

    def __repr__(self) -> str:
        return f"ND2FrameSource({self._file!r}, frames {self._frames}, channel={self._channel})"


# --------------------------------------------------------------------------------------------
# tiles from the description (pure: testable with nd2.structures)


def _loop_indices(desc: ND2Description) -> list[Mapping[str, int]]:
    if desc.loop_indices is not None:
        found = list(desc.loop_indices)
    else:  # as nd2._util.loop_indices
        axes = [_LOOP_AXIS.get(loop.type, "U") for loop in desc.experiment]
        found = [
            dict(zip(axes, idx, strict=True))
            for idx in itertools.product(*(range(loop.count) for loop in desc.experiment))
        ]
    if not found:
        found = [{}]
    if desc.sequence_count is not None:
        found = found[: desc.sequence_count]
    return found


def _loop(desc: ND2Description, kind: str) -> Any:
    return next((loop for loop in desc.experiment if loop.type == kind), None)


def _recorded_xy(desc: ND2Description) -> dict[int, tuple[float, float]]:
    """Frame index -> recorded stage (x, y) from the events table."""
    out: dict[int, tuple[float, float]] = {}
    for i, row in enumerate(desc.events or ()):
        try:  # rows of pure events (no "Index", no coordinates) are skipped
            fx, fy = float(row[_X_EVENT]), float(row[_Y_EVENT])
            fi = int(row["Index"]) if "Index" in row else i
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(fx) and math.isfinite(fy):
            out.setdefault(fi, (fx, fy))
    return out


def _orientation(
    desc: ND2Description, shape_yx: tuple[int, int], pixel_yx: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """(R, b, provenance): stage = R · s · pixel + b + P (approximately), see the module docstring."""
    matrix = desc.volume.pixelToStageTransformationMatrix if desc.volume is not None else None
    if matrix is not None and not desc.legacy and len(matrix) == 6:
        a = np.array([[matrix[0], matrix[1]], [matrix[3], matrix[4]]], dtype=float)
        perm = nearest_signed_permutation(a)
        if perm is not None:
            b = np.array([matrix[2], matrix[5]], dtype=float)
            return (
                perm,
                b,
                {
                    "from": "pixelToStageTransformationMatrix",
                    "stage_from_image": perm.tolist(),
                    "residual_rotation_deg": round(residual_rotation_deg(a, perm), 4),
                },
            )
    h, w = shape_yx
    py, px = pixel_yx
    camera = desc.volume.cameraTransformationMatrix if desc.volume is not None else None
    note: dict[str, object] = {"from": "none (identity; stage position = image centre)"}
    if camera is not None:
        note["cameraTransformationMatrix (not applied)"] = [float(v) for v in camera]
    return np.eye(2, dtype=int), np.array([-w / 2 * px, -h / 2 * py]), note


def _pixel_size(desc: ND2Description, options: ReaderOptions) -> tuple[float, float, float]:
    override = option_pixel_size(options)
    zloop = _loop(desc, "ZStackLoop")
    z_step = None
    if zloop is not None and zloop.parameters is not None and zloop.parameters.stepUm:
        z_step = abs(float(zloop.parameters.stepUm))
    x, y, z = desc.voxel_size_um
    if override is not None:
        y, x = override[1], override[2]
        z = override[0] if override[0] is not None else (z_step or z)
        return (z, y, x)
    if not desc.calibrated:
        raise MetadataError(
            f"{desc.path}: the file's x/y axes are not calibrated (no pixel size); pass "
            "ReaderOptions(pixel_size_um=(y, x)) (--pixel-size)"
        )
    z = z_step or (z if z > 0 else 1.0)
    for name, v in (("x", x), ("y", y), ("z", z)):
        if not (math.isfinite(v) and v > 0):
            raise MetadataError(f"{desc.path}: expected a positive {name} pixel size, got {v}")
    return (z, y, x)


def nd2_tiles(desc: ND2Description, options: ReaderOptions) -> list[Tile]:
    """Build the tiles of an ND2 file from its description (no file access).

    Parameters
    ----------
    desc
        The file's metadata, as :func:`describe_nd2` reads it (or built from ``nd2.structures``).
    options
        ``positions`` chooses recorded or requested stage positions; ``pixel_size_um`` overrides.
    """
    sizes = desc.sizes
    ny, nx = int(sizes.get("Y", 0)), int(sizes.get("X", 0))
    if ny < 1 or nx < 1:
        raise MetadataError(f"{desc.path}: expected positive frame sizes, got {dict(sizes)}")
    n_channels = max(int(sizes.get("C", 1)), len(desc.channel_names), 1)
    n_comp = int(sizes.get("S", 1))
    names = list(desc.channel_names) + [str(i) for i in range(len(desc.channel_names), n_channels)]
    if len(set(names)) != len(names):
        names = [f"{n}#{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
    pixel = _pixel_size(desc, options)
    perm, b, orient_note = _orientation(desc, (ny, nx), (pixel[1], pixel[2]))

    # group frames into stacks: (P, T, U) -> {Z: frame}
    indices = _loop_indices(desc)
    stacks: dict[tuple[int, int, int], dict[int, int]] = {}
    for frame, li in enumerate(indices):
        key = (int(li.get("P", 0)), int(li.get("T", 0)), int(li.get("U", 0)))
        stacks.setdefault(key, {})[int(li.get("Z", 0))] = frame
    nz = int(sizes.get("Z", 1))

    xyloop = _loop(desc, "XYPosLoop")
    points = list(xyloop.parameters.points) if xyloop is not None and xyloop.parameters else []
    setting_z = bool(xyloop.parameters.isSettingZ) if xyloop is not None and xyloop.parameters else False
    zloop = _loop(desc, "ZStackLoop")
    home = int(zloop.parameters.homeIndex or 0) if zloop is not None and zloop.parameters else 0
    loop_step = float(zloop.parameters.stepUm or 1) if zloop is not None and zloop.parameters else 1.0
    bottom_to_top = bool(zloop.parameters.bottomToTop) if zloop is not None and zloop.parameters else True
    point_names = [p.name or f"XYPos:{i}" for i, p in enumerate(points)]
    hints = well_hints(point_names) if points else {}
    recorded = _recorded_xy(desc) if options.positions == "recorded" else {}
    n_u = len({k[2] for k in stacks})

    tiles: list[Tile] = []
    for (p, t, u), planes in sorted(stacks.items()):
        zs = sorted(planes)
        if zs != list(range(zs[0], zs[0] + len(zs))) or len(zs) != nz:
            log.warning(
                "%s: position %d time %d has %d of %d z planes (stopped acquisition?); skipped",
                desc.path,
                p,
                t,
                len(zs),
                nz,
            )
            continue
        frames = [planes[z] for z in zs]
        if p < len(points):
            sx, sy, sz = (float(v) for v in points[p].stagePositionUm)
            requested: tuple[float, float] = (sx, sy)
            req_source = "XYPosLoop point (requested)"
            z_home = sz - home * loop_step if setting_z else desc.frame0_position[2]
            name = point_names[p]
        else:
            requested = (desc.frame0_position[0], desc.frame0_position[1])
            req_source = "global position (requested)"
            z_home = desc.frame0_position[2]
            name = f"XYPos:{p}" if xyloop is not None else ""
        z0 = z_home
        if not bottom_to_top and len(frames) > 1:
            frames = frames[::-1]
            z0 = z_home + (2 * home - len(zs) + 1) * loop_step
        xy, source = requested, req_source
        if planes[zs[0]] in recorded:  # the stack's first acquired frame
            xy, source = recorded[planes[zs[0]]], "events X/Y Coord (recorded)"
        fx, fy = (perm.T @ (b + np.array(xy, dtype=float))).tolist()
        well, fld = hints.get(name, (None, 0))
        for c in range(n_channels):
            for s in range(n_comp):
                label = names[c]
                if n_comp == 3:
                    label = f"{label}-{_RGB[s]}" if label else _RGB[s]
                elif n_comp > 1:
                    label = f"{label}-{s}"
                if n_u > 1:
                    label += f"/U={u}"
                extra: dict[str, object] = {
                    "format": "nd2",
                    "nd2_version": ".".join(str(v) for v in desc.version),
                    "loop_indices": {"P": p, "T": t, "U": u},
                    "frames": list(frames),
                    "stage_xy_um": [xy[0], xy[1]],
                    "requested_xy_um": [requested[0], requested[1]],
                    "position_source": f"{source}, image centre",
                    "orientation": orient_note,
                }
                if desc.legacy:
                    extra["legacy"] = True
                tiles.append(
                    Tile(
                        tile_id=len(tiles),
                        source=ND2FrameSource(
                            desc.path, frames, c, s, (n_channels, ny, nx, n_comp), desc.dtype
                        ),
                        shape=(len(frames), ny, nx),
                        dtype=desc.dtype,
                        position_um=(z0, fy, fx),
                        pixel_size_um=pixel,
                        channel=label,
                        time_index=t,
                        well=well,
                        field_index=fld,
                        name=name,
                        extra=extra,
                    )
                )
    if not tiles:
        raise MetadataError(f"{desc.path}: no complete z-stack in the file")
    return tiles


# --------------------------------------------------------------------------------------------
# the reader


def _head(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


class ND2Reader(BaseReader):
    """Nikon ND2 files (v2/v3, and legacy JPEG2000 ones), read through ``nd2``; see the module docstring."""

    name: ClassVar[str] = "nd2"
    description: ClassVar[str] = "Nikon NIS-Elements ND2 (multi-position, z, channels, time)"
    extra: ClassVar[str | None] = "nd2"
    priority: ClassVar[int] = 20

    def sniff(self, path: str) -> bool:
        """Claim a file with the ND2 chunk magic (or the JP2 signature and an ``.nd2`` name)."""
        p = Path(path)
        try:
            if not p.is_file():
                return False
        except OSError:
            return False
        head = _head(p, 48)
        is_nd2_name = p.suffix.lower() == ".nd2"
        if head[:4] == ND2_MAGIC:
            return head[16:48] == ND2_SIGNATURE or is_nd2_name
        return is_nd2_name and head[:12] == JP2_MAGIC

    def check_dependencies(self) -> None:
        """Raise MissingDependencyError naming the extra if ``nd2`` is not installed."""
        if importlib.util.find_spec("nd2") is None:
            raise MissingDependencyError(f"the nd2 reader needs the nd2 package: {_INSTALL}")

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:
        """Return one tile per position, time point and channel (z-stacks), metadata only."""
        self.check_dependencies()
        return nd2_tiles(describe_nd2(path), options)
