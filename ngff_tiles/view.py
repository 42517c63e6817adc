"""Open an OME-Zarr store in napari with the napari-ome-zarr reader (the ``napari`` extra).

napari-ome-zarr 0.10.0 (the newest release for Python 3.11) takes only the first transform of
``datasets[0]`` (the ``scale``) and drops the ``translation`` after it, so an image written at its
stage position would show at the origin. :func:`open_in_napari` puts the NGFF translation back on
the image layers when the reader left them untranslated; :func:`ngff_transforms` says what the
metadata asks for, so tests can compare napari's layers with it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ngff_tiles.errors import MissingDependencyError, NgffTilesError
from ngff_tiles.metadata.viewers import describe_store, read_node

__all__ = ["INSTALL_HINT", "LayerTransform", "missing_napari", "ngff_transforms", "open_in_napari", "view"]

INSTALL_HINT = "pip install 'ngff-tiles[napari]'"
"""How to get napari, napari-ome-zarr and a Qt binding."""


def missing_napari() -> list[str]:
    """Return the modules of the ``napari`` extra that are not installed (empty when all are)."""
    return [m for m in ("napari", "napari_ome_zarr") if importlib.util.find_spec(m) is None]


@dataclass(frozen=True, slots=True)
class LayerTransform:
    """The placement NGFF metadata asks for, per napari layer (channel axis removed).

    Attributes
    ----------
    axes : tuple of str
        Axis names without the channel axis, e.g. ``("t", "z", "y", "x")``.
    scale : tuple of float
        ``datasets[0]`` scale.
    translate : tuple of float
        ``datasets[0]`` translation (zeros when there is none).
    """

    axes: tuple[str, ...]
    scale: tuple[float, ...]
    translate: tuple[float, ...]


def ngff_transforms(store: str | os.PathLike[str]) -> LayerTransform:
    """Return level 0's scale and translation of the image in ``store`` (a plate: its first field).

    Raises
    ------
    NgffTilesError
        When the store holds no image with multiscales metadata.
    """
    info = describe_store(store)
    node = read_node(Path(store) / info.image) if info is not None and info.image is not None else None
    multiscales = node.ome().get("multiscales") if node is not None else None
    if not (isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], dict)):
        raise NgffTilesError(f"{store}: no OME-NGFF image (multiscales) found")
    ms = multiscales[0]
    axes = [a for a in ms.get("axes", []) if isinstance(a, dict)]
    keep = [i for i, a in enumerate(axes) if a.get("type") != "channel"]
    n = len(axes)
    scale, translate = [1.0] * n, [0.0] * n
    datasets = ms.get("datasets") or [{}]
    for t in datasets[0].get("coordinateTransformations", []):
        if t.get("type") == "scale":
            scale = [float(v) for v in t["scale"]]
        elif t.get("type") == "translation":
            translate = [float(v) for v in t["translation"]]
    return LayerTransform(
        axes=tuple(str(axes[i].get("name")) for i in keep),
        scale=tuple(scale[i] for i in keep),
        translate=tuple(translate[i] for i in keep),
    )


def open_in_napari(viewer: Any, store: str | os.PathLike[str]) -> list[Any]:
    """Open ``store`` in a napari ``viewer`` with napari-ome-zarr; return the new layers.

    For an image store, image and label layers that the reader left untranslated (no translate,
    no translation in the affine) get the NGFF ``translation`` of level 0 (a label image's own),
    so they sit at their physical position; plates are left as the reader draws them (a mosaic
    in its own frame).
    """
    import numpy as np

    path = os.fspath(store)
    layers = list(viewer.open(path, plugin="napari-ome-zarr"))
    info = describe_store(path)
    if info is None or info.kind != "image":
        return layers
    wanted = ngff_transforms(path)
    for layer in layers:
        translate: tuple[float, ...] | None = wanted.translate
        if type(layer).__name__ == "Labels":  # a label image: its own level-0 translation, all axes
            translate = _label_translation(Path(path) / (info.image or ""), str(layer.name))
        elif type(layer).__name__ != "Image":
            continue
        if translate is None or len(layer.translate) != len(translate):
            continue
        untranslated = not np.any(layer.translate) and not np.any(layer.affine.translate)
        if untranslated and any(translate):
            layer.translate = translate
    return layers


def _label_translation(image: Path, layer_name: str) -> tuple[float, ...] | None:
    """Level-0 translation of the label image a napari-ome-zarr layer shows (named ``.../<name>``)."""
    node = read_node(image / "labels" / layer_name.rsplit("/", 1)[-1])
    multiscales = node.ome().get("multiscales") if node is not None else None
    if not (isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], dict)):
        return None
    datasets = multiscales[0].get("datasets") or [{}]
    for t in datasets[0].get("coordinateTransformations", []):
        if isinstance(t, dict) and t.get("type") == "translation":
            return tuple(float(v) for v in t["translation"])
    return None


def view(store: str | os.PathLike[str]) -> None:
    """Open ``store`` in a new napari window and run napari until it is closed.

    Raises
    ------
    MissingDependencyError
        When napari or napari-ome-zarr is not installed (the message says how to install them).
    """
    missing = missing_napari()
    if missing:
        raise MissingDependencyError(
            f"napari viewing needs {' and '.join(m.replace('_', '-') for m in missing)}: {INSTALL_HINT}"
        )
    if not Path(store).exists():
        raise NgffTilesError(f"{store}: no such store")
    import napari

    viewer = napari.Viewer(title=f"ngff-tiles: {Path(store).name}")
    open_in_napari(viewer, store)
    napari.run()
