"""``bdv export``: what BigStitcher gets, read back by readers we did not write (zarr-python,
h5py following BDV's documented layout, npy2bdv's BdvEditor), and the round trip back into fusion."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as StdET
from pathlib import Path

import numpy as np
import pytest
import zarr

from ngff_tiles.cli import main
from ngff_tiles.errors import LayoutError, OutputExistsError
from ngff_tiles.fusion.pyramid import downsample_mean
from ngff_tiles.metadata.validate import validate_store
from ngff_tiles.options import ExecutionOptions, FusionOptions
from ngff_tiles.pipeline import convert
from ngff_tiles.readers import read_tiles
from ngff_tiles.testing.synthetic import SyntheticSpec, write_dataset
from ngff_tiles.tiles import ArraySource, Tile
from ngff_tiles.writers.bdv import export_bdv

h5py = pytest.importorskip("h5py")
QUIET = ExecutionOptions(progress=False)
SPEC = SyntheticSpec(grid=(2, 3), tile_shape=(3, 300, 280), overlap=0.15, channels=("DAPI", "GFP"), seed=2,
                     pixel_size_um=(2.0, 0.65, 0.65))  # fmt: skip


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> list[Tile]:
    d = tmp_path_factory.mktemp("syn") / "tiles"
    write_dataset(SPEC, d)
    return sorted(read_tiles(str(d)), key=lambda t: t.tile_id)


def _xml_models(xml: Path) -> dict[tuple[int, int], tuple[np.ndarray, list[str]]]:
    root = StdET.parse(xml).getroot()
    out = {}
    for vr in root.iter("ViewRegistration"):
        m = np.eye(4)
        names = []
        for vt in vr.findall("ViewTransform"):
            t = np.eye(4)
            t[:3] = np.array(vt.findtext("affine").split(), dtype=float).reshape(3, 4)
            m = m @ t
            names.append(vt.findtext("Name"))
        out[(int(vr.get("timepoint")), int(vr.get("setup")))] = (m, names)
    return out


def _setups(xml: Path) -> dict[int, dict[str, str]]:
    root = StdET.parse(xml).getroot()
    out = {}
    for vs in root.iter("ViewSetup"):
        attrs = {a.tag: a.text for a in vs.find("attributes")}
        out[int(vs.findtext("id"))] = {"name": vs.findtext("name"), "size": vs.findtext("size"),
                                       "voxel": vs.findtext("voxelSize/size"), **attrs}  # fmt: skip
    return out


def test_zarr_export_is_ngff_04_with_bigstitcher_transforms(tmp_path: Path, tiles: list[Tile]) -> None:
    res = export_bdv(tiles, tmp_path / "project.xml")
    assert res.data == tmp_path / "project.ome.zarr"
    assert res.setups == 12
    assert res.views == 12
    u = res.world_unit_um
    assert u == 0.65
    root = StdET.parse(tmp_path / "project.xml").getroot()
    loader = root.find("SequenceDescription/ImageLoader")
    assert loader.get("format") == "bdv.multimg.zarr"
    assert loader.get("version") == "1.0"
    assert loader.findtext("zarr") == "project.ome.zarr"
    assert root.find("SequenceDescription/MissingViews") is not None
    assert root.find("ngffTiles").get("worldUnitUm") == "0.65"
    setups = _setups(tmp_path / "project.xml")
    models = _xml_models(tmp_path / "project.xml")
    paths = {
        (int(z.get("timepoint")), int(z.get("setup"))): z.findtext("path") for z in loader.iter("zgroup")
    }
    seen = set()
    for t in tiles:
        matches = [
            s for s, a in setups.items()
            if a["name"] == f"{t.name}_{t.channel}" and a["channel"] == str(SPEC.channels.index(t.channel))
        ]  # fmt: skip
        assert len(matches) == 1
        s = matches[0]
        seen.add(s)
        m, names = models[(0, s)]
        # calibration last, stage translation above it; world = u · M · pixel
        assert names == ["ngff_tiles stage position", "calibration"]
        np.testing.assert_allclose(u * m[:3, 3], t.position_um[::-1], rtol=0, atol=1e-9)
        np.testing.assert_allclose(u * np.diag(m)[:3], t.pixel_size_um[::-1], rtol=1e-15)
        assert setups[s]["size"] == f"{t.shape[2]} {t.shape[1]} {t.shape[0]}"
        image = res.data / paths[(0, s)]
        assert [p for p in validate_store(image) if p.severity == "error"] == []
        g = zarr.open_group(str(image), mode="r")
        assert g["0"].shape == (1, 1, *t.shape)
        np.testing.assert_array_equal(g["0"][0, 0], t.read())
        np.testing.assert_array_equal(g["1"][0, 0], downsample_mean(t.read(), (1, 2, 2)))
        assert g["1"].shape[-2:] == ((t.shape[1] + 1) // 2, (t.shape[2] + 1) // 2)
        ms = g.attrs["multiscales"][0]
        assert ms["version"] == "0.4"
        assert [d["path"] for d in ms["datasets"]] == [str(k) for k in range(len(ms["datasets"]))]
        # level-0 translation is the stage position, for BigStitcher's own OME-Zarr importer
        assert ms["datasets"][0]["coordinateTransformations"][1]["translation"][2:] == list(t.position_um)
    assert seen == set(setups)
    # ome-zarr-models (independent) accepts every image as NGFF 0.4
    from ome_zarr_models.v04.image import Image

    for p in paths.values():
        Image.from_zarr(zarr.open_group(str(res.data / p), mode="r"))


def test_h5_export_read_by_h5py_and_npy2bdv(tmp_path: Path, tiles: list[Tile]) -> None:
    res = export_bdv(tiles, tmp_path / "p.xml", format="h5")
    setups = _setups(tmp_path / "p.xml")
    models = _xml_models(tmp_path / "p.xml")
    loader = StdET.parse(tmp_path / "p.xml").getroot().find("SequenceDescription/ImageLoader")
    assert loader.get("format") == "bdv.hdf5"
    assert loader.findtext("hdf5") == "p.h5"
    by_key = {(a["name"], a["channel"]): s for s, a in setups.items()}
    with h5py.File(res.data, "r") as f:
        for t in tiles:
            s = by_key[(f"{t.name}_{t.channel}", str(SPEC.channels.index(t.channel)))]
            g = f[f"s{s:02d}"]
            assert g.attrs["dataType"] == "uint16"
            res_ = g["resolutions"][()]
            sub = g["subdivisions"][()]
            assert res_.shape[1] == 3
            assert tuple(res_[0]) == (1.0, 1.0, 1.0)
            assert tuple(res_[1]) == (2.0, 2.0, 1.0)  # x, y halved, z kept
            for level in range(len(res_)):
                cells = f[f"t00000/s{s:02d}/{level}/cells"]
                assert cells.chunks == tuple(int(v) for v in sub[level][::-1])
                assert cells.dtype == np.uint16
            np.testing.assert_array_equal(f[f"t00000/s{s:02d}/0/cells"][()], t.read())
            np.testing.assert_allclose(0.65 * models[(0, s)][0][:3, 3], t.position_um[::-1], atol=1e-9)
    npy2bdv = pytest.importorskip("npy2bdv")
    editor = npy2bdv.BdvEditor(str(res.data), mode="r")
    for t in tiles:
        s = by_key[(f"{t.name}_{t.channel}", str(SPEC.channels.index(t.channel)))]
        ch, place = int(setups[s]["channel"]), int(setups[s]["tile"])
        np.testing.assert_array_equal(editor.read_view(time=0, channel=ch, tile=place), t.read())
        top = editor.read_affine(time=0, channel=ch, tile=place, index=0)
        np.testing.assert_allclose(0.65 * np.asarray(top)[:, 3], t.position_um[::-1], atol=1e-9)
        cal = editor.read_affine(time=0, channel=ch, tile=place, index=1)
        np.testing.assert_allclose(np.diag(np.asarray(cal)[:, :3]), np.array(t.pixel_size_um[::-1]) / 0.65)


@pytest.mark.parametrize("fmt", ["zarr", "h5"])
def test_round_trip_positions_and_fused_pixels(tmp_path: Path, tiles: list[Tile], fmt: str) -> None:
    export_bdv(tiles, tmp_path / "p.xml", format=fmt)  # type: ignore[arg-type]
    back = read_tiles(str(tmp_path / "p.xml"))
    assert len(back) == len(tiles)
    key = {(t.name, t.channel): t for t in tiles}
    worst = 0.0
    for b in back:
        t = key[(b.name, b.channel)]
        worst = max(worst, float(np.max(np.abs(np.subtract(b.position_um, t.position_um)))))
        assert b.pixel_size_um == pytest.approx(t.pixel_size_um, rel=1e-15)
        assert b.affine_um is None
        np.testing.assert_array_equal(b.read(), t.read())
    assert worst <= 1e-9
    a = convert(tiles, tmp_path / "a.ome.zarr", fusion=FusionOptions(dark=100.0), execution=QUIET)
    b = convert(
        str(tmp_path / "p.xml"), tmp_path / "b.ome.zarr", fusion=FusionOptions(dark=100.0), execution=QUIET
    )
    assert a.layout.origin_um == pytest.approx(b.layout.origin_um, abs=1e-9)
    fa = zarr.open_group(str(a.output), mode="r")["0"][:]
    fb = zarr.open_group(str(b.output), mode="r")["0"][:]
    np.testing.assert_array_equal(fa, fb)


def test_edited_translation_moves_the_fused_tile_by_exactly_that(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = [rng.integers(100, 4000, (1, 64, 80), dtype=np.uint16) for _ in range(2)]
    tiles = [
        Tile(tile_id=i, source=ArraySource(d), shape=d.shape, dtype=d.dtype,
             position_um=(0.0, 3.25, 10.0 + 70.0 * i), pixel_size_um=(1.0, 0.5, 0.5), name=f"tile{i}")
        for i, d in enumerate(data)
    ]  # fmt: skip
    export_bdv(tiles, tmp_path / "p.xml")
    tree = StdET.parse(tmp_path / "p.xml")
    vr = next(v for v in tree.getroot().iter("ViewRegistration") if v.get("setup") == "1")
    aff = vr.find("ViewTransform/affine")
    vals = [float(v) for v in aff.text.split()]
    vals[3] += 17.0  # x, world units = 0.5 µm: 17 px
    vals[7] -= 6.0  # y: -6 px
    aff.text = " ".join(repr(v) for v in vals)
    tree.write(tmp_path / "edited.xml", encoding="UTF-8", xml_declaration=True)
    fusion = FusionOptions(blend="last")
    r0 = convert(str(tmp_path / "p.xml"), tmp_path / "a.ome.zarr", fusion=fusion, execution=QUIET)
    r1 = convert(str(tmp_path / "edited.xml"), tmp_path / "b.ome.zarr", fusion=fusion, execution=QUIET)
    o0 = {p.tile.name: p.offset_px for p in r0.layout.tiles}
    o1 = {p.tile.name: p.offset_px for p in r1.layout.tiles}
    # tile 1 moved by (0, -6, +17) relative to tile 0, which did not move
    rel0 = np.subtract(o0["tile1"], o0["tile0"])
    rel1 = np.subtract(o1["tile1"], o1["tile0"])
    assert tuple(rel1 - rel0) == (0, -6, 17)
    f1 = zarr.open_group(str(r1.output), mode="r")["0"][0, 0]
    z, y, x = o1["tile1"]
    np.testing.assert_array_equal(f1[z : z + 1, y : y + 64, x : x + 80], data[1])
    z, y, x = o1["tile0"]
    np.testing.assert_array_equal(f1[z : z + 1, y : y + 64, x : x + 80], data[0])


def test_views_without_data_get_no_setup_and_missing_views(tmp_path: Path) -> None:
    a = np.ones((1, 16, 16), np.uint16)

    def tile(i: int, name: str, ch: str, t: int, x: float) -> Tile:
        return Tile(tile_id=i, source=ArraySource(a * (i + 1)), shape=a.shape, dtype=a.dtype,
                    position_um=(0.0, 0.0, x), pixel_size_um=(1.0, 1.0, 1.0), channel=ch, time_index=t,
                    name=name)  # fmt: skip

    tiles = [
        tile(0, "A", "DAPI", 0, 0.0), tile(1, "A", "GFP", 0, 0.0), tile(2, "B", "DAPI", 0, 14.0),
        tile(3, "A", "DAPI", 1, 0.0), tile(4, "B", "DAPI", 1, 14.0),
    ]  # fmt: skip
    res = export_bdv(tiles, tmp_path / "p.xml")
    assert res.setups == 3  # B never had GFP: no setup for it
    assert res.views == 5
    root = StdET.parse(tmp_path / "p.xml").getroot()
    missing = [(m.get("timepoint"), m.get("setup")) for m in root.iter("MissingView")]
    setups = _setups(tmp_path / "p.xml")
    gfp = next(s for s, v in setups.items() if v["name"] == "A_GFP")
    assert missing == [("1", str(gfp))]
    assert root.find("SequenceDescription/Timepoints").get("type") == "pattern"
    assert root.find("SequenceDescription/Timepoints/integerpattern").text == "0,1"
    back = read_tiles(str(tmp_path / "p.xml"))
    assert sorted((b.name, b.channel, b.time_index, int(b.read()[0, 0, 0])) for b in back) == sorted(
        [
            ("A", "DAPI", 0, 1),
            ("A", "GFP", 0, 2),
            ("B", "DAPI", 0, 3),
            ("A", "DAPI", 1, 4),
            ("B", "DAPI", 1, 5),
        ]
    )


def test_affine_tiles_round_trip(tmp_path: Path) -> None:
    a = np.arange(2 * 20 * 30, dtype=np.uint16).reshape(2, 20, 30)
    c, s = np.cos(0.3), np.sin(0.3)
    m = ((2.0, 0, 0, 1.0), (0, 0.5 * c, 0.5 * s, 100.0), (0, -0.5 * s, 0.5 * c, -40.0), (0, 0, 0, 1))
    t = Tile(tile_id=0, source=ArraySource(a), shape=a.shape, dtype=a.dtype, position_um=(1.0, 100.0, -40.0),
             pixel_size_um=(2.0, 0.5, 0.5), affine_um=m)  # fmt: skip
    export_bdv([t], tmp_path / "p.xml")
    (b,) = read_tiles(str(tmp_path / "p.xml"))
    assert b.affine_um is not None
    np.testing.assert_allclose(b.affine_um, m, atol=1e-12)
    np.testing.assert_array_equal(b.read(), a)


def test_refusals(tmp_path: Path, tiles: list[Tile]) -> None:
    export_bdv(tiles[:2], tmp_path / "p.xml")
    with pytest.raises(OutputExistsError):
        export_bdv(tiles[:2], tmp_path / "p.xml")
    export_bdv(tiles[:2], tmp_path / "p.xml", overwrite=True)
    other = tmp_path / "q.ome.zarr"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="not written by ngff-tiles"):
        export_bdv(tiles[:2], tmp_path / "q.xml", overwrite=True)
    assert (other / "precious.txt").read_text() == "keep"
    foreign = tmp_path / "f.xml"
    foreign.write_text("<SpimData/>")
    with pytest.raises(OutputExistsError, match="not written by ngff-tiles"):
        export_bdv(tiles[:2], foreign, overwrite=True)
    assert foreign.read_text() == "<SpimData/>"
    export_bdv(tiles[:2], tmp_path / "h.xml", format="h5")
    export_bdv(tiles[:2], tmp_path / "h.xml", format="h5", overwrite=True)
    (tmp_path / "h.xml").unlink()
    with h5py.File(tmp_path / "h.h5", "w") as f:
        f["mine"] = 1
    with pytest.raises(OutputExistsError, match="not written by ngff-tiles"):
        export_bdv(tiles[:2], tmp_path / "h.xml", format="h5", overwrite=True)
    with pytest.raises(LayoutError, match="same position"):
        export_bdv([tiles[0], dataclasses.replace(tiles[0], tile_id=99)], tmp_path / "r.xml")


def test_cli_export_then_convert(
    tmp_path: Path, tiles: list[Tile], capsys: pytest.CaptureFixture[str]
) -> None:
    src = Path(tiles[0].source.path).parent
    xml = tmp_path / "bs" / "project.xml"
    assert main(["bdv", "export", str(src), "-o", str(xml), "-q"]) == 0
    assert main(["bdv", "export", str(src), "-o", str(xml), "-q"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["bdv", "export", str(src), "-o", str(xml), "--format", "h5", "--overwrite", "-q"]) == 0
    assert (tmp_path / "bs" / "project.h5").is_file()
    assert main(["convert", str(xml), "-o", str(tmp_path / "f.ome.zarr"), "-q"]) == 0
    # the project moved away from its data: refused unless allowed
    moved = tmp_path / "elsewhere" / "project.xml"
    moved.parent.mkdir()
    moved.write_text(
        xml.read_text().replace('type="relative">project.h5', f'type="absolute">{xml.parent}/project.h5')
    )
    assert main(["convert", str(moved), "-o", str(tmp_path / "g.ome.zarr"), "-q"]) == 2
    assert "allow-absolute-paths" in capsys.readouterr().err
    assert (
        main(["convert", str(moved), "-o", str(tmp_path / "g.ome.zarr"), "-q", "--allow-absolute-paths"]) == 0
    )


@pytest.mark.skipif(
    not (Path(__file__).parents[1] / ".." / "shared" / "sample-data" / "bdv-h5").is_dir(),
    reason="shared/sample-data/bdv-h5 not present",
)
@pytest.mark.parametrize("fmt", ["zarr", "h5"])
def test_reexport_of_a_bdv_dataset(tmp_path: Path, fmt: str) -> None:
    """BDV-H5 in (Fiji's kidney, legacy int16 cells), OME-Zarr or native-dtype H5 out, same data back."""
    src = (
        Path(__file__).parents[1]
        / ".."
        / "shared"
        / "sample-data"
        / "bdv-h5"
        / "npy2bdv_kidney"
        / "kidney.xml"
    )
    tiles = read_tiles(str(src))
    res = export_bdv(tiles, tmp_path / "k.xml", format=fmt)  # type: ignore[arg-type]
    assert res.world_unit_um == pytest.approx(65.603883749918)
    back = read_tiles(str(tmp_path / "k.xml"))
    assert [b.channel for b in back] == ["0", "1", "2"]
    for a, b in zip(tiles, back, strict=True):
        assert b.dtype == np.uint16
        assert b.pixel_size_um == pytest.approx(a.pixel_size_um, rel=1e-15)
        assert b.position_um == pytest.approx(a.position_um, abs=1e-9)
        np.testing.assert_array_equal(b.read(), a.read())
