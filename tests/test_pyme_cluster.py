"""pyme-cluster:// over HTTP: real http.server data servers on 127.0.0.1 serving the sample series.

The servers implement the PYMEDataServer read API (``ngff_tiles.testing.pyme_server``); the real
PYMEDataServer is exercised by ``tests/test_pyme_real_server.py`` when it can be installed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr

from ngff_tiles import convert
from ngff_tiles.cli import main
from ngff_tiles.errors import MetadataError, SourceError
from ngff_tiles.options import ExecutionOptions, ReaderOptions
from ngff_tiles.readers import guess_reader
from ngff_tiles.readers._base import FRAME_CACHE
from ngff_tiles.readers.pyme.cluster import (
    SERVERS_ENV,
    ClientSettings,
    ClusterClient,
    PymeClusterReader,
    check_entry_name,
    split_cluster_url,
)
from ngff_tiles.readers.pyme.series import PymeSeriesReader
from ngff_tiles.testing.pyme_server import PymeTestServer

SERIES = Path(__file__).parents[1] / ".." / "shared" / "sample-data" / "pyme" / "series"
pytestmark = pytest.mark.skipif(
    not (SERIES / "ground_truth.npy").is_file(), reason=f"PYME sample series not found at {SERIES}"
)
EVENTS = SERIES / "tiles_events"
QUANT = SERIES / "tiles_quant_2servers"
QUANT_URL = "pyme-cluster:///ngfftest/2026_11_21/tiles_quant.pcs"
QUIET = ExecutionOptions(progress=False, max_workers=2)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    FRAME_CACHE.clear()  # every test fetches its frames over HTTP
    yield
    FRAME_CACHE.clear()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures the ngff_tiles logger; put it back for the tests that follow."""
    import logging

    logger = logging.getLogger("ngff_tiles")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def events_server(tmp_path: Path) -> Iterator[PymeTestServer]:
    root = tmp_path / "root"
    shutil.copytree(EVENTS / "tiles_events.pcs", root / "tiles_events.pcs")
    with PymeTestServer(root) as server:
        yield server


def _read(url: str, servers: list[str]) -> list:
    return PymeClusterReader().tiles(url, ReaderOptions(pyme_servers=tuple(servers)))


# ---------------------------------------------------------------------------------------------
# the happy paths


def test_url_parsing() -> None:
    assert split_cluster_url("pyme-cluster:///a/b.pcs") == ("", "a/b.pcs")
    assert split_cluster_url("PYME-CLUSTER://TESTCLUSTER/a/b.pcs/") == ("TESTCLUSTER", "a/b.pcs")
    with pytest.raises(MetadataError):
        split_cluster_url("pyme-cluster:///a/../b.pcs")
    assert guess_reader("pyme-cluster:///x.pcs").name == "pyme-cluster"


def test_series_over_http_equals_local(events_server: PymeTestServer) -> None:
    remote = _read("pyme-cluster:///tiles_events.pcs", [events_server.url])
    local = PymeSeriesReader().tiles(str(EVENTS / "tiles_events.pcs"), ReaderOptions())
    assert [t.position_um for t in remote] == [t.position_um for t in local]
    assert [t.name for t in remote] == [t.name for t in local]
    for a, b in zip(remote, local, strict=True):
        np.testing.assert_array_equal(a.read(), b.read())
    assert remote[0].source.path == f"{events_server.url}/tiles_events.pcs/frame00002.pzf"
    assert "/__glob" not in events_server.requests  # listings only, never the unsandboxed glob


def test_connections_are_pooled(events_server: PymeTestServer) -> None:
    tiles = _read("pyme-cluster:///tiles_events.pcs", [events_server.url])
    for t in tiles:
        t.read()
    frames = [r for r in events_server.requests if r.endswith(".pzf")]
    assert len(frames) >= 9
    assert events_server.connections <= 3, f"{events_server.connections} connections for {frames}"


def test_two_servers_with_split_series(tmp_path: Path) -> None:
    """Frames 0-3 on one server, 4-5 and the metadata on the other; a third server lacks the series."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with (
        PymeTestServer(QUANT / "server_a") as a,
        PymeTestServer(QUANT / "server_b") as b,
        PymeTestServer(empty) as c,
    ):
        tiles = _read(QUANT_URL, [a.url, b.url, c.url])
        assert len(tiles) == 6
        got = np.stack([t.read()[0] for t in tiles]) + 100  # the reader subtracted the offset
        np.testing.assert_array_equal(got, np.load(QUANT / "pyme_decoded_frames_yx.npy"))
        served_a = {r for r in a.requests if r.endswith(".pzf")}
        served_b = {r for r in b.requests if r.endswith(".pzf")}
        assert {Path(r).name for r in served_a} == {"frame00004.pzf", "frame00005.pzf"}
        assert {Path(r).name for r in served_b} == {f"frame0000{i}.pzf" for i in range(4)}
        assert c.requests == ["/ngfftest/2026_11_21/tiles_quant.pcs/"]  # one 404 listing, nothing else


def test_convert_over_http_equals_local(events_server: PymeTestServer, tmp_path: Path) -> None:
    convert(
        "pyme-cluster:///tiles_events.pcs",
        tmp_path / "remote.ome.zarr",
        reader_options=ReaderOptions(pyme_servers=(events_server.url,)),
        execution=QUIET,
    )
    convert(str(EVENTS / "tiles_events.pcs"), tmp_path / "local.ome.zarr", execution=QUIET)
    remote = np.asarray(zarr.open_group(str(tmp_path / "remote.ome.zarr"), mode="r")["0"])
    local = np.asarray(zarr.open_group(str(tmp_path / "local.ome.zarr"), mode="r")["0"])
    np.testing.assert_array_equal(remote, local)
    truth = np.load(SERIES / "ground_truth.npy")[12:358, 10:356]
    np.testing.assert_array_equal(remote[0, 0, 0], truth)


def test_cli_with_server_flag_and_environment(
    events_server: PymeTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    url = "pyme-cluster:///tiles_events.pcs"
    out = tmp_path / "a.ome.zarr"
    assert main(["convert", url, "--pyme-server", events_server.url, "-o", str(out), "-q"]) == 0
    assert (out / "zarr.json").is_file()
    monkeypatch.setenv(SERVERS_ENV, f"{events_server.url}")
    assert main(["convert", url, "-o", str(tmp_path / "b.ome.zarr"), "-q"]) == 0
    assert main(["info", url]) == 0
    assert "reader pyme-cluster, 9 tile(s)" in capsys.readouterr().out
    monkeypatch.delenv(SERVERS_ENV)
    assert main(["convert", url, "-o", str(tmp_path / "c.ome.zarr"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "--pyme-server" in err
    assert "never discovered" in err
    assert not (tmp_path / "c.ome.zarr").exists()


def test_glob_across_series(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for sub, name in (("000", "tiles_events"), ("001", "tiles_xyztc"), ("100", "tiles_xyztc")):
        shutil.copytree(SERIES / name / f"{name}.pcs", root / "Bergamot" / "EMC" / sub / f"{name}.pcs")
    with PymeTestServer(root) as server:
        tiles = _read("pyme-cluster:///Bergamot/EMC/0*/*.pcs", [server.url])
        assert len(tiles) == 15
        assert {t.extra["series"] for t in tiles} == {
            "pyme-cluster:///Bergamot/EMC/000/tiles_events.pcs",
            "pyme-cluster:///Bergamot/EMC/001/tiles_xyztc.pcs",
        }
        folder = _read("pyme-cluster:///Bergamot/EMC/100", [server.url])
        assert len(folder) == 6


def test_missing_series_names_the_servers(events_server: PymeTestServer) -> None:
    with pytest.raises(SourceError, match=f"not found on {events_server.url}"):
        _read("pyme-cluster:///nope.pcs", [events_server.url])


# ---------------------------------------------------------------------------------------------
# faults


@pytest.mark.parametrize("mode", ["reset", "truncate", "503"])
def test_transient_drops_are_retried(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "root"
    shutil.copytree(EVENTS / "tiles_events.pcs", root / "tiles_events.pcs")
    with PymeTestServer(root, drop=mode, drop_every=3) as server:
        tiles = _read("pyme-cluster:///tiles_events.pcs", [server.url])
        data = [t.read() for t in tiles]
        assert server.faults >= 3
    local = PymeSeriesReader().tiles(str(EVENTS / "tiles_events.pcs"), ReaderOptions())
    for a, b in zip(data, local, strict=True):
        np.testing.assert_array_equal(a, b.read())


def test_persistent_failure_names_the_server(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(EVENTS / "tiles_events.pcs", root / "tiles_events.pcs")
    with PymeTestServer(root, drop="reset", drop_every=1) as server:
        client = ClusterClient([server.url], ClientSettings(attempts=3, backoff=0.01))
        with pytest.raises(SourceError) as info:
            client.listdir("tiles_events.pcs")
        assert str(info.value).startswith(f"{server.url}: GET /tiles_events.pcs/ failed after 3 attempts")
        assert server.faults == 3


def test_persistent_frame_failure_through_the_reader(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(EVENTS / "tiles_events.pcs", root / "tiles_events.pcs")
    with PymeTestServer(root, drop="truncate", drop_every=1, drop_paths=("frame00007",)) as server:
        tiles = _read("pyme-cluster:///tiles_events.pcs", [server.url])
        bad = next(t for t in tiles if t.extra["frames"] == [7])
        with pytest.raises(SourceError, match=rf"^{server.url}: GET /tiles_events.pcs/frame00007.pzf failed"):
            bad.read()
        tiles[0].read()  # the others are fine


@pytest.mark.parametrize(
    "entry",
    ["../secret.pzf", "..", "../", "/etc/passwd", "a/b.pzf", "sub/../x", "~root", "C:evil", "a\\b", "x\x00"],
)
def test_hostile_listing_is_refused(tmp_path: Path, entry: str) -> None:
    root = tmp_path / "root"
    shutil.copytree(EVENTS / "tiles_events.pcs", root / "tiles_events.pcs")
    listing = {"metadata.json": [0, 10], "frame00000.pzf": [0, 10], entry: [0, 10]}
    with PymeTestServer(root, hostile={"tiles_events.pcs": listing}) as server:
        with pytest.raises(SourceError, match="unsafe entry") as info:
            _read("pyme-cluster:///tiles_events.pcs", [server.url])
        assert str(info.value).startswith(server.url)
        assert not any(".." in r for r in server.requests)


def test_hostile_listing_shapes(tmp_path: Path) -> None:
    for doc, match in (([1, 2, 3], "not a JSON object"), ({"a": 1, "7": [0, 1]}, None)):
        with PymeTestServer(tmp_path, hostile={"s.pcs": doc}) as server:
            client = ClusterClient([server.url])
            if match:
                with pytest.raises(SourceError, match=match):
                    client.listdir("s.pcs")
            else:
                assert set(client.listdir("s.pcs")) == {"a", "7"}


def test_entry_name_rules() -> None:
    assert check_entry_name("frame00001.pzf", "s", "d") == ("frame00001.pzf", False)
    assert check_entry_name("sub.pcs/", "s", "d") == ("sub.pcs", True)
    assert check_entry_name("a..b.pzf", "s", "d") == ("a..b.pzf", False)  # '..' only as a path part
    for bad in ("", "/", "..", "../x", "/abs", "x/y", 7):
        with pytest.raises(SourceError):
            check_entry_name(bad, "s", "d")


def test_file_roots_union_equals_http(tmp_path: Path) -> None:
    roots = [f"file://{(QUANT / s).resolve()}" for s in ("server_a", "server_b")]
    local = _read(QUANT_URL, roots)
    with PymeTestServer(QUANT / "server_a") as a, PymeTestServer(QUANT / "server_b") as b:
        remote = _read(QUANT_URL, [a.url, b.url])
        for x, y in zip(local, remote, strict=True):
            assert x.position_um == y.position_um
            np.testing.assert_array_equal(x.read(), y.read())


def test_redirect_for_directory_without_slash(events_server: PymeTestServer) -> None:
    client = ClusterClient([events_server.url])
    body = client.get(events_server.url, "tiles_events.pcs")
    assert body is not None
    assert "metadata.json" in json.loads(body)
    assert events_server.requests[:2] == ["/tiles_events.pcs", "/tiles_events.pcs/"]


def test_head_reads_the_start_of_a_file(events_server: PymeTestServer) -> None:
    """``head=`` (the series' first-frame header): a file:// root reads only those bytes."""
    frame = "tiles_events.pcs/frame00002.pzf"
    whole = (EVENTS / frame).read_bytes()
    for server in (f"file://{events_server.root}", events_server.url):
        client = ClusterClient([server])
        assert client.get(server, frame, head=64) == whole[:64]
        assert client.get_any(frame, [server], head=64) == (server, whole[:64])
        assert client.get(server, frame) == whole


def test_frames_held_twice_fall_back_to_the_other_server(tmp_path: Path) -> None:
    """A frame on two servers (a mirror) is read from the second when the first keeps failing."""
    roots = []
    for name in ("one", "two"):
        shutil.copytree(EVENTS / "tiles_events.pcs", tmp_path / name / "tiles_events.pcs")
        roots.append(tmp_path / name)
    with (
        PymeTestServer(roots[0], drop="reset", drop_every=1, drop_paths=(".pzf",)) as bad,
        PymeTestServer(roots[1]) as good,
    ):
        tiles = PymeClusterReader().tiles(
            "pyme-cluster:///tiles_events.pcs", ReaderOptions(pyme_servers=(bad.url, good.url))
        )
        client_settings = tiles[0].source._settings
        assert client_settings.attempts >= 2
        data = tiles[0].read()
        assert bad.faults >= 1
        assert any(r.endswith("frame00002.pzf") for r in good.requests)
    np.testing.assert_array_equal(
        data, PymeSeriesReader().tiles(str(EVENTS / "tiles_events.pcs"), ReaderOptions())[0].read()
    )


def test_oversized_metadata_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ngff_tiles.readers.pyme import series

    root = tmp_path / "root"
    shutil.copytree(EVENTS / "tiles_events.pcs", root / "tiles_events.pcs")
    monkeypatch.setattr(series, "_MAX_JSON", 100)  # metadata.json is ~1.2 kB
    with PymeTestServer(root) as server, pytest.raises(SourceError, match="more than the 100 accepted"):
        _read("pyme-cluster:///tiles_events.pcs", [server.url])
