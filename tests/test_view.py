"""``ngff-tiles view``: napari with napari-ome-zarr opens what we write, at the right place.

Runs for real when the ``napari`` extra is installed (Qt offscreen, no window); otherwise only the
"how to install it" path is checked and the rest skips with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from ngff_tiles import ExecutionOptions, WriterOptions, convert
from ngff_tiles.cli import main
from ngff_tiles.testing.synthetic import SyntheticSpec, write_dataset
from ngff_tiles.view import INSTALL_HINT, missing_napari, ngff_transforms, open_in_napari

NO_NAPARI = (
    f"napari/napari-ome-zarr not installed ({INSTALL_HINT}); "
    "the napari checks run where the extra is installed"
)
needs_napari = pytest.mark.skipif(bool(missing_napari()), reason=NO_NAPARI)
pytestmark = [
    # npe2 (napari's plugin manifests) still declares pydantic fields the v1 way; not our code
    pytest.mark.filterwarnings("ignore::DeprecationWarning:npe2"),
    pytest.mark.filterwarnings("ignore:.*json_encoders. is deprecated:DeprecationWarning"),
    # with a Qt5 binding (the extra installs PyQt6) napari asks for Qt6 to follow the system theme
    pytest.mark.filterwarnings("ignore:System theme detection requires a Qt6 backend:UserWarning"),
]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("view")
    write_dataset(
        SyntheticSpec(grid=(2, 2), tile_shape=(1, 160, 160), overlap=0.2, channels=("DAPI", "GFP")),
        base / "tiles",
    )
    out = {}
    for version in ("0.5", "0.4"):
        out[version] = base / f"v{version}.ome.zarr"
        convert(
            base / "tiles",
            out[version],
            writer=WriterOptions(ngff_version=version, chunks=(1, 64, 64), shards=(1, 128, 128)),
            execution=ExecutionOptions(progress=False, max_workers=2),
        )
    return out


def test_view_without_napari_says_how_to_install(
    outputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name.split(".")[0] in ("napari", "napari_ome_zarr") else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["view", str(outputs["0.5"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ngff-tiles: error: napari viewing needs napari and napari-ome-zarr: ")
    assert "pip install 'ngff-tiles[napari]'" in err


def test_ngff_transforms(outputs: dict[str, Path]) -> None:
    t = ngff_transforms(outputs["0.5"])
    attrs = json.loads((outputs["0.5"] / "zarr.json").read_text())["attributes"]["ome"]
    scale, translation = (
        c[c["type"]] for c in attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    )
    assert t.axes == ("t", "z", "y", "x")
    assert t.scale == (scale[0], *scale[2:])
    assert t.translate == (translation[0], *translation[2:])
    assert t.translate[-2:] != (0.0, 0.0)


# --------------------------------------------------------------------------------------------
# napari for real


@pytest.fixture(scope="module")
def napari_module() -> Iterator[Any]:
    if missing_napari():
        pytest.skip(NO_NAPARI)
    old = os.environ.get("QT_QPA_PLATFORM")
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    with warnings.catch_warnings():
        # napari 0.9's import chain (vispy, app-model, pydantic-compat) emits deprecation notices
        # that are theirs to fix; they are not about our data.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import napari
        import napari_ome_zarr._reader  # noqa: F401 (the reader's imports up front)
        from napari.plugins import _initialize_plugins

        # what napari.Viewer() does first: discover the plugins (napari-ome-zarr among them)
        _initialize_plugins()
    yield napari
    if old is None:
        os.environ.pop("QT_QPA_PLATFORM", None)
    else:
        os.environ["QT_QPA_PLATFORM"] = old


@pytest.fixture
def viewer(napari_module: Any) -> Any:
    """napari's viewer model: the layers a window would show, without an OpenGL canvas.

    ``napari.Viewer(show=False)`` still builds a vispy canvas, which needs OpenGL; the offscreen
    Qt platform here has none. The layers (data, scale, translate, names) are the same objects.
    """
    from napari.components import ViewerModel

    return ViewerModel()


def reader_layers(path: Path) -> list[tuple[Any, dict[str, Any], str]]:
    from napari_ome_zarr._reader import napari_get_reader

    read = napari_get_reader(str(path))
    assert read is not None, f"napari-ome-zarr does not recognise {path}"
    return list(read(str(path)))


@needs_napari
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_napari_ome_zarr_reader_reads_pixels_scale_and_omero(
    napari_module: Any, outputs: dict[str, Path], version: str
) -> None:
    store = outputs[version]
    [(data, kwargs, kind)] = reader_layers(store)
    assert kind == "image"
    group = zarr.open_group(store, mode="r")
    attrs = group.attrs.asdict()
    md = attrs.get("ome", attrs)
    paths = [d["path"] for d in md["multiscales"][0]["datasets"]]
    assert len(data) == len(paths)
    for level, path in zip(data, paths, strict=True):
        np.testing.assert_array_equal(np.asarray(level), group[path][:])
    want = ngff_transforms(store)
    assert kwargs["channel_axis"] == 1
    np.testing.assert_allclose(kwargs["scale"], want.scale)
    assert kwargs["name"] == ["image: DAPI", "image: GFP"]
    windows = [[c["window"]["start"], c["window"]["end"]] for c in md["omero"]["channels"]]
    assert kwargs["contrast_limits"] == windows


@needs_napari
def test_napari_ome_zarr_0_10_drops_the_translation(outputs: dict[str, Path]) -> None:
    """Upstream behaviour that ``open_in_napari`` corrects (it checks first, so a fixed reader is fine).

    When this fails, napari-ome-zarr applies ``datasets[0]``'s translation itself.
    """
    [(_, kwargs, _)] = reader_layers(outputs["0.5"])
    assert "translate" not in kwargs
    assert not np.any(kwargs["affine"].translate)
    assert any(ngff_transforms(outputs["0.5"]).translate)


@needs_napari
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_napari_layers_sit_where_the_ngff_metadata_says(
    viewer: Any, outputs: dict[str, Path], version: str
) -> None:
    store = outputs[version]
    layers = open_in_napari(viewer, store)
    want = ngff_transforms(store)
    assert [layer.name for layer in layers] == ["image: DAPI", "image: GFP"]
    level0 = zarr.open_group(store, mode="r")["0"]
    for c, layer in enumerate(layers):
        assert layer.multiscale
        np.testing.assert_allclose(layer.scale, want.scale)
        np.testing.assert_allclose(layer.translate, want.translate)
        # pixel (t, z, y, x) = (0, 0, 5, 7) lands at translation + scale * index, in micrometres
        world = layer.data_to_world([0, 0, 5, 7])
        np.testing.assert_allclose(world, np.add(want.translate, np.multiply(want.scale, [0, 0, 5, 7])))
        np.testing.assert_array_equal(np.asarray(layer.data[0][0, 0, 5, 7]), level0[0, c, 0, 5, 7])
        assert layer.axis_labels == ("t", "z", "y", "x")
        assert tuple(str(u) for u in layer.units[-2:]) == ("micrometer", "micrometer")


def ome_zarr_plate(path: Path, version: str, wells: list[str], shape: tuple[int, int] = (96, 128)) -> Path:
    """A plate by ome-zarr-py's writer: one field per well, two levels, uint16."""
    from ome_zarr.format import FormatV04, FormatV05

    with warnings.catch_warnings():
        # ome-zarr 0.18's writer module builds a deprecated Scaler as a default argument at import
        warnings.filterwarnings("ignore", "Call to deprecated class Scaler", DeprecationWarning)
        from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

    fmt = FormatV05() if version == "0.5" else FormatV04()
    root = zarr.open_group(path, mode="w", zarr_format=3 if version == "0.5" else 2)
    rows = sorted({w.split("/")[0] for w in wells})
    cols = sorted({w.split("/")[1] for w in wells}, key=int)
    write_plate_metadata(root, rows, cols, wells, fmt=fmt, name="plate")
    for i, well_path in enumerate(wells):
        well = root.require_group(well_path)
        write_well_metadata(well, [{"path": "0"}], fmt=fmt)
        data = np.full((1, *shape), 100 * (i + 1), dtype=np.uint16)
        write_image(data, well.require_group("0"), axes="cyx", fmt=fmt, scale_factors=[2])
    return path


@needs_napari
@pytest.mark.filterwarnings("ignore::UserWarning:ome_zarr")  # ome-zarr-py notes its own choices
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_napari_opens_a_plate(viewer: Any, tmp_path: Path, version: str) -> None:
    path = ome_zarr_plate(tmp_path / "plate.ome.zarr", version, ["A/1", "A/2", "B/1", "B/2"])
    layers = open_in_napari(viewer, path)
    assert layers
    image = layers[0]
    level0 = np.asarray(image.data[0] if image.multiscale else image.data)
    assert level0.shape[-2:] == (2 * 96, 2 * 128)  # 2 × 2 wells of 96 × 128 in one mosaic
    # each well's pixels land in its tile of the mosaic
    assert level0[..., 10, 10].max() == 100
    assert level0[..., 96 + 10, 128 + 10].max() == 400
