"""Synthetic HCS plates: each well a small synthetic tiled acquisition with its own ground truth.

Wells sit on the plate geometry's pitch (9 mm for 96 wells) around ``a1_um``, each displaced by a
seeded stage jitter (uniform ±``well_jitter_um``); inside a well the fields form a small
overlapping grid (:class:`ngff_tiles.testing.synthetic.SyntheticSpec`). Every well is written to
its own folder (``B03/``) as OME-TIFF tiles without well metadata, so the converter must snap
stage positions to wells.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ngff_tiles.layout.plate import GEOMETRIES, row_name
from ngff_tiles.testing.synthetic import SyntheticDataset, SyntheticSpec, write_dataset
from ngff_tiles.tiles import Well

__all__ = ["PlateSpec", "SyntheticPlate", "write_plate"]


@dataclass(frozen=True)
class PlateSpec:
    """A synthetic plate.

    Attributes
    ----------
    geometry
        Plate type (wells).
    wells
        Well names to fill (``"B3"``); ``None``: every well.
    fields
        (rows, columns) of overlapping fields per well.
    tile_shape, overlap, pixel_size_um, channels, dtype
        As in :class:`SyntheticSpec`, for every well.
    a1_um
        Stage (x, y) of the centre of well A1.
    well_jitter_um
        Uniform ± stage error of each well's position.
    seed
        Seeds the jitter and, per well, the specimen.
    """

    geometry: int = 96
    wells: Sequence[str] | None = None
    fields: tuple[int, int] = (2, 2)
    tile_shape: tuple[int, int, int] = (1, 128, 128)
    overlap: float = 0.15
    pixel_size_um: tuple[float, float, float] = (1.0, 0.65, 0.65)
    channels: tuple[str, ...] = ("DAPI",)
    dtype: str = "uint16"
    a1_um: tuple[float, float] = (14380.0, 11240.0)
    well_jitter_um: float = 300.0
    seed: int = 0
    extra_offset_um: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class SyntheticPlate:
    """A written plate: one dataset (and folder) per well."""

    directory: Path
    spec: PlateSpec
    wells: dict[Well, SyntheticDataset]

    @property
    def inputs(self) -> list[str]:
        """The per-well folders, to pass to ``convert``."""
        return [str(d.directory) for d in self.wells.values()]


def write_plate(spec: PlateSpec, directory: str | Path) -> SyntheticPlate:
    """Write ``spec`` under ``directory`` (one folder per well) and describe it."""
    geometry = GEOMETRIES[spec.geometry]
    root = Path(directory)
    rng = random.Random(spec.seed)
    names = (
        list(spec.wells)
        if spec.wells is not None
        else [f"{row_name(r)}{c + 1}" for r in range(geometry.rows) for c in range(geometry.columns)]
    )
    out: dict[Well, SyntheticDataset] = {}
    for name in names:
        row, col = name[0], int(name[1:])
        r = ord(row) - ord("A")
        jx, jy = (rng.uniform(-spec.well_jitter_um, spec.well_jitter_um) for _ in range(2))
        ex, ey = spec.extra_offset_um.get(name, (0.0, 0.0))
        cx = spec.a1_um[0] + (col - 1) * geometry.pitch_um + jx + ex
        cy = spec.a1_um[1] + r * geometry.pitch_um + jy + ey
        step = [spec.tile_shape[i] * spec.pixel_size_um[i] * (1 - spec.overlap) for i in (1, 2)]
        extent = [
            step[0] * (spec.fields[0] - 1) + spec.tile_shape[1] * spec.pixel_size_um[1],
            step[1] * (spec.fields[1] - 1) + spec.tile_shape[2] * spec.pixel_size_um[2],
        ]
        well_spec = SyntheticSpec(
            grid=spec.fields,
            tile_shape=spec.tile_shape,
            overlap=spec.overlap,
            jitter_um=1.0,
            pixel_size_um=spec.pixel_size_um,
            origin_um=(0.0, cy - extent[0] / 2, cx - extent[1] / 2),
            channels=spec.channels,
            dtype=spec.dtype,
            seed=spec.seed * 10007 + r * 100 + col,
        )
        out[Well(row, str(col))] = write_dataset(well_spec, root / f"{row}{col:02d}")
    return SyntheticPlate(root, spec, out)
