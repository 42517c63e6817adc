"""Refined transforms from BigStitcher, fused: the affine path against the fast path and against
ground truth (synthetic specimen with known positions).

* A 3×3 tile set whose stage positions are wrong by a known correction is exported; the
  correction is written into the XML the way BigStitcher's global optimisation does (a
  ``Stitching Transform`` translation above the other transforms); fusing the edited XML must
  match the ground truth far better than fusing the wrong stage positions.
* A 2×2 tile set rotated 10° about z (a BigStitcher ``Rotation around axis`` affine) is fused
  and compared with the specimen: within the error of linear interpolation of the tiles.
"""

from __future__ import annotations

import dataclasses
import json
import math
import xml.etree.ElementTree as StdET
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from ngff_tiles.fusion.affine import AffineBlockTile, accumulate, place_affine
from ngff_tiles.fusion.kernel import BlockTile, fuse_block, make_corrections
from ngff_tiles.options import BLEND_MODES, ExecutionOptions, FusionOptions, LayoutOptions
from ngff_tiles.pipeline import convert
from ngff_tiles.readers import read_tiles
from ngff_tiles.testing import synthetic
from ngff_tiles.testing.synthetic import SyntheticSpec, psnr, write_dataset
from ngff_tiles.tiles import ArraySource, Tile
from ngff_tiles.writers.bdv import export_bdv

QUIET = ExecutionOptions(progress=False)


def _fused(res: object) -> tuple[np.ndarray, tuple[float, ...]]:
    out = res.output  # type: ignore[attr-defined]
    arr = zarr.open_group(str(out), mode="r")["0"][0, 0].astype(np.float32)
    return arr, tuple(res.layout.origin_um)  # type: ignore[attr-defined]


def _coverage(res: object) -> np.ndarray:
    lay = res.layout  # type: ignore[attr-defined]
    cover = np.zeros(lay.spatial_shape, dtype=np.uint8)
    for p in lay.tiles:
        o, s = p.offset_px, p.stop_px
        cover[o[0] : s[0], o[1] : s[1], o[2] : s[2]] += 1
    return cover


def _prepend_transform(xml: Path, out: Path, name: str, per_setup: dict[int, np.ndarray]) -> None:
    """Edit an XML as BigStitcher does: a new ViewTransform at the top of each ViewRegistration."""
    tree = StdET.parse(xml)
    for vr in tree.getroot().iter("ViewRegistration"):
        m = per_setup[int(vr.get("setup"))]
        vt = StdET.Element("ViewTransform", {"type": "affine"})
        StdET.SubElement(vt, "Name").text = name
        StdET.SubElement(vt, "affine").text = " ".join(repr(float(v)) for v in np.asarray(m)[:3].ravel())
        vr.insert(0, vt)
    tree.write(out, encoding="UTF-8", xml_declaration=True)


# ---------------------------------------------------------------------------------------------
# the affine path against the fast path


@pytest.mark.parametrize("mode", BLEND_MODES)
def test_integer_translation_through_the_affine_path_equals_the_fast_path(mode: str) -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4000, (2, 40, 50)).astype(np.uint16)
    b = rng.integers(0, 4000, (2, 40, 50)).astype(np.uint16)
    tiles = [
        Tile(tile_id=0, source=ArraySource(a), shape=a.shape, dtype=a.dtype, position_um=(0, 0, 0),
             pixel_size_um=(1, 1, 1)),
        Tile(tile_id=1, source=ArraySource(b), shape=b.shape, dtype=b.dtype, position_um=(0, 13, 21),
             pixel_size_um=(1, 1, 1)),
    ]  # fmt: skip
    dark = rng.uniform(0, 50, (40, 50)).astype(np.float32)
    flat = rng.uniform(0.8, 1.2, (40, 50)).astype(np.float32)
    corr = make_corrections(FusionOptions(blend=mode, dark=dark, flat=flat), ["0"], [(40, 50)])  # type: ignore[arg-type]
    offsets = [(0, 2, 3), (0, 15, 24)]
    start, stop = (0, 0, 0), (2, 60, 80)
    fast = fuse_block([BlockTile(t, o) for t, o in zip(tiles, offsets, strict=True)], start, stop,
                      np.dtype(np.float32), corr)  # fmt: skip
    shape = (2, 60, 80)
    acc = np.zeros(shape, np.float32)
    weighted = mode in ("linear", "cosine", "mean")
    aux = np.zeros(shape, np.float32 if weighted else bool)
    if mode == "max":
        acc.fill(-np.inf)
    order = list(zip(tiles, offsets, strict=True))
    for t, o in reversed(order) if mode == "first" else order:
        inv = np.eye(4)[:3].copy()
        inv[:, 3] = [-o[0], -o[1], -o[2]]  # output index -> tile index
        bt = AffineBlockTile(t, o, (0.0, 0.0), tuple(o[i] + t.shape[i] for i in range(3)),
                             tuple(inv.ravel()), "linear")  # fmt: skip
        accumulate(bt, start, stop, corr, acc, aux)
    if weighted:
        np.divide(acc, aux, out=acc, where=aux > 0)
    else:
        acc[~aux] = 0
    assert fast is not None
    np.testing.assert_allclose(acc, fast, rtol=1e-6, atol=1e-3)


def test_place_affine_keeps_translation_tiles_as_place_tiles_has_them() -> None:
    from ngff_tiles.layout.place import place_tiles

    a = np.zeros((1, 30, 30), np.uint16)
    plain = [
        Tile(tile_id=i, source=ArraySource(a), shape=a.shape, dtype=a.dtype,
             position_um=(0.0, 10.3 * i, 7.7 * i), pixel_size_um=(1.0, 0.5, 0.5))
        for i in range(3)
    ]  # fmt: skip
    assert place_affine(plain) == place_tiles(plain)
    c, s = math.cos(math.radians(10)), math.sin(math.radians(10))
    rot = np.array([[1.0, 0, 0, 0], [0, 0.5 * c, 0.5 * s, -3.0], [0, -0.5 * s, 0.5 * c, -4.0], [0, 0, 0, 1]])
    turned = Tile(tile_id=3, source=ArraySource(a), shape=a.shape, dtype=a.dtype,
                  position_um=(0.0, -3.0, -4.0),
                  pixel_size_um=(1.0, 0.5, 0.5), affine_um=tuple(map(tuple, rot)))  # fmt: skip
    assert turned.affine_um is not None
    lay = place_affine([*plain, turned])
    base = place_tiles(plain)
    shift = [
        (p.offset_px[i] - q.offset_px[i])
        for p, q in zip(lay.tiles[:3], base.tiles, strict=True)
        for i in range(3)
    ]
    assert len(set(shift[0::3])) == len(set(shift[1::3])) == len(set(shift[2::3])) == 1  # whole-pixel shift
    for p, q in zip(lay.tiles[:3], base.tiles, strict=True):
        assert p.fraction_px == q.fraction_px
    # the rotated tile's footprint fits in the output
    assert all(
        0 <= lay.tiles[3].offset_px[i] < lay.tiles[3].stop_px[i] <= lay.spatial_shape[i] for i in range(3)
    )


def test_translation_only_affines_stay_on_the_fast_path() -> None:
    a = np.zeros((1, 8, 8), np.uint16)
    m = ((2.0, 0, 0, 5.0), (0, 0.5, 0, 1.0), (0, 0, 0.5, 2.0), (0, 0, 0, 1.0))
    t = Tile(tile_id=0, source=ArraySource(a), shape=a.shape, dtype=a.dtype, position_um=(5.0, 1.0, 2.0),
             pixel_size_um=(2.0, 0.5, 0.5), affine_um=m)  # fmt: skip
    assert t.affine_um is None
    with pytest.raises(ValueError, match="translation"):
        Tile(tile_id=0, source=ArraySource(a), shape=a.shape, dtype=a.dtype, position_um=(0.0, 0.0, 0.0),
             pixel_size_um=(2.0, 0.5, 0.5), affine_um=m)  # fmt: skip
    with pytest.raises(ValueError, match="singular"):
        Tile(tile_id=0, source=ArraySource(a), shape=a.shape, dtype=a.dtype, position_um=(0.0, 0.0, 0.0),
             pixel_size_um=(2.0, 0.5, 0.5), affine_um=np.zeros((4, 4)) + np.diag([0, 0, 0, 1.0]))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# 3×3 with wrong stage positions, corrected by a Stitching Transform


SPEC_3X3 = SyntheticSpec(grid=(3, 3), tile_shape=(1, 256, 256), overlap=0.15, jitter_um=0.0, seed=5)


def test_stitching_transform_corrects_wrong_stage_positions(tmp_path: Path) -> None:
    spec = SPEC_3X3
    data = write_dataset(spec, tmp_path / "tiles")
    true_tiles = sorted(read_tiles(str(tmp_path / "tiles")), key=lambda t: t.tile_id)
    rng = np.random.default_rng(42)
    u = min(spec.pixel_size_um)
    # the stage was off by 2..6 pixels per tile (tile 0 is the reference BigStitcher keeps fixed)
    corrections = [(0.0, 0.0)] + [
        tuple(float(v) for v in rng.choice([-1, 1], 2) * rng.integers(2, 7, 2) * u) for _ in range(8)
    ]
    wrong = [
        dataclasses.replace(
            t, position_um=(t.position_um[0], t.position_um[1] - c[0], t.position_um[2] - c[1])
        )
        for t, c in zip(true_tiles, corrections, strict=True)
    ]
    export_bdv(wrong, tmp_path / "bs" / "project.xml")
    stitch = {}
    for s in range(len(wrong)):  # one channel: setup ids follow the tile order
        dy, dx = corrections[s]
        m = np.eye(4)
        m[:3, 3] = (dx / u, dy / u, 0.0)  # world units, x y z
        stitch[s] = m
    _prepend_transform(
        tmp_path / "bs" / "project.xml", tmp_path / "bs" / "refined.xml", "Stitching Transform", stitch
    )

    fusion = FusionOptions(dark=tifffile.imread(tmp_path / "tiles" / "dark.tif"),
                           flat=tifffile.imread(tmp_path / "tiles" / "flat.tif"))  # fmt: skip
    scores = {}
    for label, xml in (("refined", "refined.xml"), ("stage", "project.xml")):
        res = convert(
            str(tmp_path / "bs" / xml), tmp_path / f"{label}.ome.zarr", fusion=fusion, execution=QUIET
        )
        fused, origin = _fused(res)
        truth = synthetic.sample(spec, origin, fused.shape)
        cover = _coverage(res) > 0
        err = (fused - truth)[cover]
        scores[label] = {
            "psnr": psnr(fused[cover], truth[cover], spec.photons),
            "rmse": float(np.sqrt(np.mean(err.astype(np.float64) ** 2))),
            "origin": origin,
        }
    floor = data.noise_floor_psnr(against="grid")
    print("3x3 stitching transform:", scores, "grid floor", floor)
    # the refined positions are the true ones: the output grid is the ground truth's
    np.testing.assert_allclose(scores["refined"]["origin"], data.output_origin_um, atol=1e-9)
    assert scores["refined"]["psnr"] >= floor - 1.5
    assert scores["refined"]["psnr"] > scores["stage"]["psnr"] + 6.0
    assert scores["refined"]["rmse"] < 0.5 * scores["stage"]["rmse"]


# ---------------------------------------------------------------------------------------------
# 2×2 rotated by 10° about z


def specimen_at(spec: SyntheticSpec, y_um: np.ndarray, x_um: np.ndarray, channel: int = 0) -> np.ndarray:
    """The synthetic specimen (photons) at arbitrary 2-D points, from the generator's own features."""
    pz, py, px = spec.pixel_size_um
    edges = (0.5 * pz, synthetic._EDGE_PX * py, synthetic._EDGE_PX * px)
    lo = np.array([y_um.min(), x_um.min()])
    hi = np.array([y_um.max(), x_um.max()])
    v = np.zeros(y_um.shape, dtype=np.float32)
    for f in synthetic._features(spec, channel, lo, hi):
        reach = f.size * (5.0 if f.kind == "blob" else 1.0)
        if f.kind == "rect":
            reach = reach + 6.0 * np.asarray(edges)[:, None]
        for i in range(f.amp.size):
            near = (np.abs(y_um - f.centre[1, i]) <= reach[1, i]) & (
                np.abs(x_um - f.centre[2, i]) <= reach[2, i]
            )
            if not near.any():
                continue
            gy = synthetic._profile(f.kind, y_um[near], f.centre[1, i], f.size[1, i], edges[1])
            gx = synthetic._profile(f.kind, x_um[near], f.centre[2, i], f.size[2, i], edges[2])
            v[near] += np.float32(f.amp[i]) * gy * gx
    return synthetic._to_photons(spec, v)


SPEC_ROT = SyntheticSpec(
    grid=(2, 2), tile_shape=(1, 160, 160), overlap=0.2, jitter_um=0.0, dtype="float32", seed=7
)


def test_point_evaluator_matches_the_generator() -> None:
    spec = SPEC_ROT
    grid = synthetic.sample(spec, (0.0, 1000.0, -500.0), (1, 50, 60))
    y, x = np.meshgrid(1000.0 + 0.65 * np.arange(50), -500.0 + 0.65 * np.arange(60), indexing="ij")
    np.testing.assert_allclose(specimen_at(spec, y, x), grid[0], rtol=1e-5, atol=1e-2)


def _bilinear(img: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    y0 = np.clip(np.floor(yy).astype(int), 0, img.shape[0] - 2)
    x0 = np.clip(np.floor(xx).astype(int), 0, img.shape[1] - 2)
    fy, fx = yy - y0, xx - x0
    return (
        img[y0, x0] * (1 - fy) * (1 - fx)
        + img[y0 + 1, x0] * fy * (1 - fx)
        + img[y0, x0 + 1] * (1 - fy) * fx
        + img[y0 + 1, x0 + 1] * fy * fx
    )


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
def test_tiles_rotated_10_degrees_fuse_within_interpolation_error(tmp_path: Path, interpolation: str) -> None:
    spec = SPEC_ROT
    _, pyy, pxx = spec.pixel_size_um
    u = min(spec.pixel_size_um)  # BigStitcher's world unit
    theta = math.radians(10.0)
    c, s = math.cos(theta), math.sin(theta)
    corners = synthetic.tile_positions(spec)
    ny, nx = spec.tile_shape[1:]
    centre_um = np.mean([(p[2] + nx * pxx / 2, p[1] + ny * pyy / 2) for p in corners], axis=0)  # x, y
    centre_w = centre_um / u
    rot = np.eye(
        4
    )  # "Rotation around axis (0.0, 0.0, 1.0) by 10.0 degrees" about the grid centre, world units
    rot[:2, :2] = [[c, -s], [s, c]]
    rot[:2, 3] = centre_w - rot[:2, :2] @ centre_w
    cal = np.diag([pxx / u, pyy / u, 1.0 / u, 1.0])
    tiles, models = [], []
    for i, p in enumerate(corners):
        stage = np.eye(4)
        stage[:3, 3] = (p[2] / u, p[1] / u, p[0] / u)
        model = rot @ stage @ cal  # pixel (x, y, z) -> world
        models.append(model)
        jj, kk = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        world = model @ np.stack([kk.ravel(), jj.ravel(), np.zeros(kk.size), np.ones(kk.size)])
        pix = specimen_at(spec, (u * world[1]).reshape(ny, nx), (u * world[0]).reshape(ny, nx))
        tiles.append(Tile(tile_id=i, source=ArraySource(pix[None].astype(np.float32)), shape=(1, ny, nx),
                          dtype=np.float32, position_um=p, pixel_size_um=spec.pixel_size_um,
                          name=f"t{i}"))  # fmt: skip
    export_bdv(tiles, tmp_path / "bs" / "project.xml")
    _prepend_transform(
        tmp_path / "bs" / "project.xml",
        tmp_path / "bs" / "rotated.xml",
        "Rotation around axis (0.0, 0.0, 1.0) by 10.0 degrees",
        dict.fromkeys(range(4), rot),
    )
    back = read_tiles(str(tmp_path / "bs" / "rotated.xml"))
    assert all(t.affine_um is not None for t in back)
    res = convert(
        str(tmp_path / "bs" / "rotated.xml"),
        tmp_path / "fused.ome.zarr",
        layout=LayoutOptions(interpolation=interpolation),  # type: ignore[arg-type]
        execution=QUIET,
    )
    fused, origin = _fused(res)
    doc = json.loads((tmp_path / "fused.ome.zarr" / "zarr.json").read_text())["attributes"]
    import jsonschema

    schema = json.loads((Path(__file__).parents[1] / "schemas" / "provenance.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc["ngff_tiles"])
    assert len(doc["ngff_tiles"]["tiles"][0]["affine_um"]) == 4
    attrs = doc["ome"]
    assert attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][1]["translation"][2:] == list(
        origin
    )
    truth = synthetic.sample(spec, origin, fused.shape)[0]
    fused = fused[0]
    # output pixels whose tile coordinate is at least one pixel inside some tile (no edge clamping)
    yy, xx = np.meshgrid(origin[1] + pyy * np.arange(fused.shape[0]),
                         origin[2] + pxx * np.arange(fused.shape[1]),
                         indexing="ij")  # fmt: skip
    inside = np.zeros(fused.shape, bool)
    interp = np.zeros(fused.shape, np.float64)
    for t, model in zip(tiles, models, strict=True):
        inv = np.linalg.inv(model)
        w = np.stack([xx.ravel() / u, yy.ravel() / u, np.zeros(xx.size), np.ones(xx.size)])
        k, j = (inv @ w)[:2]
        k, j = k.reshape(fused.shape), j.reshape(fused.shape)
        ok = (j >= 1) & (j <= ny - 2) & (k >= 1) & (k <= nx - 2) & ~inside
        img = t.read()[0].astype(np.float64)
        if interpolation == "linear":
            interp[ok] = _bilinear(img, j[ok], k[ok])
        else:
            interp[ok] = img[np.rint(j[ok]).astype(int), np.rint(k[ok]).astype(int)]
        inside |= ok
    assert inside.sum() > 0.8 * 4 * ny * nx * (1 - spec.overlap) ** 2
    rmse_fused = float(np.sqrt(np.mean((fused[inside] - truth[inside]).astype(np.float64) ** 2)))
    rmse_interp = float(np.sqrt(np.mean((interp[inside] - truth[inside]) ** 2)))
    score = psnr(fused[inside], truth[inside], spec.photons)
    print(f"10° rotation, {interpolation}: fused RMSE {rmse_fused:.5f}, single-tile interpolation RMSE "
          f"{rmse_interp:.5f}, PSNR {score:.2f} dB over {int(inside.sum())} px")  # fmt: skip
    assert rmse_fused <= 1.05 * rmse_interp
    # and every pixel is where it belongs: misplacing by one pixel would cost far more
    shifted = np.sqrt(np.mean((fused[1:][inside[1:]] - truth[:-1][inside[1:]]).astype(np.float64) ** 2))
    assert rmse_fused < 0.5 * shifted


def test_nearest_keeps_label_values(tmp_path: Path) -> None:
    labels = np.zeros((1, 40, 40), np.uint16)
    labels[0, 5:20, 5:20] = 7
    labels[0, 22:35, 10:30] = 300
    c, s = math.cos(math.radians(10)), math.sin(math.radians(10))
    a = ((1.0, 0, 0, 0.0), (0, c, s, 0.0), (0, -s, c, 0.0), (0, 0, 0, 1.0))
    t = Tile(tile_id=0, source=ArraySource(labels), shape=labels.shape, dtype=labels.dtype,
             position_um=(0, 0, 0),
             pixel_size_um=(1, 1, 1), affine_um=a)  # fmt: skip
    res = convert([t], tmp_path / "l.ome.zarr", layout=LayoutOptions(interpolation="nearest"),
                  fusion=FusionOptions(blend="max"), execution=QUIET)  # fmt: skip
    out = zarr.open_group(str(res.output), mode="r")["0"][0, 0]
    assert set(np.unique(out)) == {0, 7, 300}
    assert (out == 7).sum() == pytest.approx(15 * 15, rel=0.1)
    res = convert([t], tmp_path / "m.ome.zarr", fusion=FusionOptions(blend="max"), execution=QUIET)
    assert len(np.unique(zarr.open_group(str(res.output), mode="r")["0"][0, 0])) > 3  # linear mixes labels


def test_affine_tiles_pickle_for_distributed_workers() -> None:
    import pickle

    a = np.arange(30 * 30, dtype=np.uint16).reshape(1, 30, 30)
    c, s = math.cos(0.2), math.sin(0.2)
    m = ((1.0, 0, 0, 0.0), (0, c, s, 5.0), (0, -s, c, 9.0), (0, 0, 0, 1.0))
    t = Tile(tile_id=0, source=ArraySource(a), shape=a.shape, dtype=a.dtype, position_um=(0, 5, 9),
             pixel_size_um=(1, 1, 1), affine_um=m)  # fmt: skip
    placed = place_affine([t]).tiles[0]
    bt = placed.block_tile()  # type: ignore[attr-defined]
    copy = pickle.loads(pickle.dumps(bt))
    assert copy.out_to_tile == bt.out_to_tile
    assert copy.stop == bt.stop
    assert copy.tile.affine_um == t.affine_um
    corr = make_corrections(FusionOptions(), ["0"], [(30, 30)])
    shape = place_affine([t]).spatial_shape
    one = fuse_block([bt], (0, 0, 0), shape, np.dtype(np.uint16), corr)
    two = fuse_block([copy], (0, 0, 0), shape, np.dtype(np.uint16), corr)
    assert one is not None
    np.testing.assert_array_equal(one, two)
    assert (one > 0).sum() > 0.9 * 30 * 30


def test_oblique_3d_affine_is_exact_on_a_linear_field(tmp_path: Path) -> None:
    """Trilinear interpolation reproduces a linear field exactly, so any error is geometry.

    A z-stack with anisotropic voxels gets a 3-D rotation about an oblique axis plus a shear, in
    BigStitcher's x, y, z world units; fusion must give the field at every interior output voxel.
    """
    shape = (12, 40, 50)  # z, y, x
    voxel = (2.0, 0.5, 0.4)  # z, y, x µm
    u = 0.4
    coef = np.array([3.0, -2.0, 1.5])  # field = 3 x - 2 y + 1.5 z + 1000 (µm)
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    ang = math.radians(17.0)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot3 = np.eye(3) + math.sin(ang) * k + (1 - math.cos(ang)) * (k @ k)
    top = np.eye(4)
    top[:3, :3] = rot3 @ np.array([[1.0, 0.05, 0.0], [0.0, 1.0, 0.0], [0.02, 0.0, 1.0]])  # rotation · shear
    top[:3, 3] = (11.0, -7.5, 3.25)
    cal = np.diag([voxel[2] / u, voxel[1] / u, voxel[0] / u, 1.0])
    model = top @ cal  # stage at 0: pixel (x, y, z) -> world
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    pix = np.stack([xx.ravel(), yy.ravel(), zz.ravel(), np.ones(xx.size)])
    phys = u * (model @ pix)[:3]  # x, y, z µm
    field = (coef @ phys + 1000.0).reshape(shape).astype(np.float32)
    tile = Tile(tile_id=0, source=ArraySource(field), shape=shape, dtype=np.float32,
                position_um=(0.0, 0.0, 0.0), pixel_size_um=voxel, name="stack")  # fmt: skip
    export_bdv([tile], tmp_path / "p.xml")
    _prepend_transform(tmp_path / "p.xml", tmp_path / "oblique.xml", "Tile ICP Refinement", {0: top})
    (back,) = read_tiles(str(tmp_path / "oblique.xml"))
    assert back.affine_um is not None
    res = convert(str(tmp_path / "oblique.xml"), tmp_path / "o.ome.zarr", execution=QUIET)
    out = zarr.open_group(str(res.output), mode="r")["0"][0, 0]
    origin = np.array(res.layout.origin_um)  # z, y, x
    oz, oy, ox = np.meshgrid(*[np.arange(n) for n in out.shape], indexing="ij")
    grid = (
        np.stack([oz.ravel(), oy.ravel(), ox.ravel()]).astype(float) * np.array(voxel)[:, None]
        + origin[:, None]
    )
    # tile coordinates of every output voxel (x, y, z order for the model)
    world = np.vstack([grid[::-1] / u, np.ones(grid.shape[1])])
    tc = (np.linalg.inv(model) @ world)[:3]
    interior = np.all((tc >= 0) & (tc <= np.array(shape[::-1])[:, None] - 1), axis=0).reshape(out.shape)
    expect = (coef @ grid[::-1] + 1000.0).reshape(out.shape)
    assert interior.sum() > 0.3 * np.prod(shape)
    err = float(np.abs(out[interior] - expect[interior]).max())
    print(f"oblique 3-D affine: max error {err:.2e} on a field of magnitude ~{np.abs(expect).max():.0f}")
    assert err < 0.02  # float32 rounding of values around 1000 (a one-voxel shift would be >= 0.8)
    covered = out != 0
    assert not (covered & ~np.all((tc >= -0.5 - 1e-6) & (tc < np.array(shape[::-1])[:, None] - 0.5 + 1e-6),
                                  axis=0).reshape(out.shape)).any()  # fmt: skip


@pytest.mark.distributed
def test_rotated_project_on_a_local_cluster_equals_threads(tmp_path: Path) -> None:
    """Affine tiles cross process boundaries: a LocalCluster writes the same chunks as threads."""
    from ngff_tiles.options import WriterOptions

    rng = np.random.default_rng(5)
    data = rng.integers(0, 4000, (1, 150, 170), dtype=np.uint16)
    export_bdv(
        [Tile(tile_id=0, source=ArraySource(data), shape=data.shape, dtype=data.dtype, position_um=(0, 0, 0),
              pixel_size_um=(1.0, 0.5, 0.5), name="a")],
        tmp_path / "p.xml",
        format="h5",
    )  # fmt: skip
    c, s = math.cos(math.radians(10)), math.sin(math.radians(10))
    rot = np.array([[c, -s, 0, 20.0], [s, c, 0, -5.0], [0, 0, 1, 0], [0, 0, 0, 1]])
    _prepend_transform(tmp_path / "p.xml", tmp_path / "r.xml", "Rotation", {0: rot})
    small = WriterOptions(chunks=(1, 64, 64), shards=(1, 64, 64))
    a = convert(str(tmp_path / "r.xml"), tmp_path / "a.ome.zarr", writer=small, execution=QUIET)
    b = convert(str(tmp_path / "r.xml"), tmp_path / "b.ome.zarr", writer=small,
                execution=ExecutionOptions(progress=False, workers=1))  # fmt: skip
    assert a.blocks_written == b.blocks_written > 4
    fa = zarr.open_group(str(a.output), mode="r")["0"][:]
    fb = zarr.open_group(str(b.output), mode="r")["0"][:]
    np.testing.assert_array_equal(fa, fb)
    assert (fa > 0).sum() > 0.9 * data.size


def test_mixed_plain_and_rotated_tiles(tmp_path: Path) -> None:
    """One rotated tile beside plain ones: the plain tiles keep their raw pixels, exactly placed."""
    rng = np.random.default_rng(9)
    a = rng.integers(0, 4000, (1, 40, 60), dtype=np.uint16)
    b = rng.integers(0, 4000, (1, 40, 60), dtype=np.uint16)
    c, s = math.cos(math.radians(10)), math.sin(math.radians(10))
    turned = ((1.0, 0, 0, 0.0), (0, c, s, -30.0), (0, -s, c, 200.0), (0, 0, 0, 1.0))
    tiles = [
        Tile(tile_id=0, source=ArraySource(a), shape=a.shape, dtype=a.dtype, position_um=(0.0, 0.0, 0.0),
             pixel_size_um=(1.0, 1.0, 1.0)),
        Tile(tile_id=1, source=ArraySource(b), shape=b.shape, dtype=b.dtype, position_um=(0.0, -30.0, 200.0),
             pixel_size_um=(1.0, 1.0, 1.0), affine_um=turned),
        Tile(tile_id=2, source=ArraySource(a), shape=a.shape, dtype=a.dtype, position_um=(0.0, 100.0, 0.0),
             pixel_size_um=(1.0, 1.0, 1.0)),
    ]  # fmt: skip
    res = convert(tiles, tmp_path / "m.ome.zarr", execution=QUIET)
    out = zarr.open_group(str(res.output), mode="r")["0"][0, 0]
    offsets = {p.tile.tile_id: p.offset_px for p in res.layout.tiles}
    assert res.layout.origin_um[1] < -30.0  # the rotated tile's footprint reaches above the plain tiles
    for tid in (0, 2):
        z, y, x = offsets[tid]
        np.testing.assert_array_equal(out[z : z + 1, y : y + 40, x : x + 60], a)
    assert offsets[2][1] - offsets[0][1] == 100
    z, y, x = offsets[1]
    assert (out[:, y:, x:] > 0).sum() > 0.95 * b.size


def test_verify_knows_the_footprint_of_affine_tiles(tmp_path: Path) -> None:
    """``verify`` expects the chunks of a rotated tile's bounding box, not of offset + shape."""
    from ngff_tiles.options import WriterOptions
    from ngff_tiles.verify import verify_store

    a = np.random.default_rng(0).integers(1, 4000, (1, 100, 400)).astype(np.uint16)
    c, s = math.cos(math.radians(80)), math.sin(math.radians(80))
    turned = ((1, 0, 0, 0), (0, c, s, 0), (0, -s, c, 0), (0, 0, 0, 1))
    t = Tile(tile_id=0, source=ArraySource(a), shape=a.shape, dtype=a.dtype, position_um=(0, 0, 0),
             pixel_size_um=(1, 1, 1), affine_um=turned)  # fmt: skip
    small = WriterOptions(chunks=(1, 64, 64), shards=(1, 128, 128))
    res = convert([t], tmp_path / "o.ome.zarr", writer=small, execution=QUIET)
    assert res.layout.spatial_shape[2] < 400  # offset + shape would reach beyond the array
    report = verify_store(tmp_path / "o.ome.zarr", progress=False)
    assert report.ok, report.problems
    assert not [w for w in report.warnings if "no tile covers it" in w], report.warnings
