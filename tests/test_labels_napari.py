"""napari (with napari-ome-zarr) opens fused label images as labels layers, on top of their image.

Runs where the ``napari`` extra is installed (``.ci/run`` installs it); skips with the reason
otherwise. napari is driven headless as in ``tests/test_view.py``: Qt offscreen, the viewer model.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from ngff_tiles import ExecutionOptions, WriterOptions, convert
from ngff_tiles.testing.labels import LabelSpec, write_label_dataset
from ngff_tiles.view import INSTALL_HINT, missing_napari, open_in_napari

NO_NAPARI = (
    f"napari/napari-ome-zarr not installed ({INSTALL_HINT}); "
    "the napari checks run where the extra is installed"
)
pytestmark = [
    pytest.mark.skipif(bool(missing_napari()), reason=NO_NAPARI),
    # as in tests/test_view.py: napari's dependencies' deprecation notices, not about our data
    pytest.mark.filterwarnings("ignore::DeprecationWarning:npe2"),
    pytest.mark.filterwarnings("ignore:.*json_encoders. is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:System theme detection requires a Qt6 backend:UserWarning"),
    # napari-ome-zarr passes image-label colours as napari's colour dict, which NGFF cannot give
    # napari's default-colour key (None); every object has its colour, background 0 is transparent
    pytest.mark.filterwarnings("ignore:color_dict did not provide a default color:UserWarning"),
]

SPECS = {
    "2d": LabelSpec(grid=(2, 2), tile_shape=(1, 160, 160), overlap_px=32, n_objects=60, radius_px=(4.0, 8.0)),
    "zstack": LabelSpec(
        grid=(2, 2), tile_shape=(8, 128, 128), overlap_px=32, n_objects=40, radius_px=(4.0, 7.0),
        radius_z_px=(2.0, 3.0),
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("labels_napari")
    out = {}
    for key, spec in SPECS.items():
        ds = write_label_dataset(spec, base / key)
        for version in ("0.5", "0.4"):
            path = base / f"{key}-{version}.ome.zarr"
            result = convert(
                ds.table,
                path,
                writer=WriterOptions(ngff_version=version, chunks=(1, 64, 64), shards=(1, 128, 128)),
                execution=ExecutionOptions(progress=False, max_workers=2),
            )
            assert result.labels is not None
            assert result.labels.n_objects == spec.n_objects
            out[f"{key}-{version}"] = path
    return out


@pytest.fixture(scope="module")
def napari_module() -> Iterator[Any]:
    old = os.environ.get("QT_QPA_PLATFORM")
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import napari
        import napari_ome_zarr._reader  # noqa: F401
        from napari.plugins import _initialize_plugins

        _initialize_plugins()
    yield napari
    if old is None:
        os.environ.pop("QT_QPA_PLATFORM", None)
    else:
        os.environ["QT_QPA_PLATFORM"] = old


@pytest.mark.parametrize("key", ["2d-0.5", "2d-0.4", "zstack-0.5", "zstack-0.4"])
def test_napari_ome_zarr_reads_a_labels_layer(napari_module: Any, stores: dict[str, Path], key: str) -> None:
    from napari_ome_zarr._reader import napari_get_reader

    path = str(stores[key])
    read = napari_get_reader(path)
    assert read is not None
    layers = list(read(path))
    kinds = [kind for _, _, kind in layers]
    assert kinds == ["image", "labels"]
    data, kwargs, _ = layers[1]
    group = zarr.open_group(path, mode="r")
    attrs = group["labels/segmentation"].attrs.asdict()
    assert len(data) == len(attrs.get("ome", attrs)["multiscales"][0]["datasets"])
    assert len(data) == len(layers[0][0])  # the image's levels
    for k, level in enumerate(data):
        np.testing.assert_array_equal(np.asarray(level), group[f"labels/segmentation/{k}"][:])
    # napari-ome-zarr turns image-label colours and properties into the layer's colormap and features
    n = SPECS[key.split("-")[0]].n_objects
    assert kwargs["properties"]["index"] == list(range(1, n + 1))
    assert len(kwargs["properties"]["source_tiles"]) == n
    assert sorted(kwargs["colormap"]) == list(range(1, n + 1))


@pytest.mark.parametrize("key", ["2d-0.5", "zstack-0.4"])
def test_labels_layer_sits_on_its_image(napari_module: Any, stores: dict[str, Path], key: str) -> None:
    from napari.components import ViewerModel

    viewer = ViewerModel()
    layers = open_in_napari(viewer, stores[key])
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds == ["Image", "Labels"]
    image, labels = layers
    assert labels.multiscale
    assert labels.data[0].dtype == np.uint32
    # the same voxel lands at the same physical place in both layers (labels keep a c axis of 1)
    voxel = [0, 3, 40, 70] if key.startswith("zstack") else [0, 0, 40, 70]
    image_world = image.data_to_world(voxel)
    label_world = labels.data_to_world([voxel[0], 0, *voxel[1:]])
    np.testing.assert_allclose(label_world[-3:], image_world[-3:])
    assert any(label_world[-2:])  # the translation is not zero: a real check of placement
    # an object's pixels are an object in the layer
    level0 = np.asarray(labels.data[0])
    assert np.unique(level0).size == SPECS[key.split("-")[0]].n_objects + 1
