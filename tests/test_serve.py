"""``ngff-tiles serve``: real HTTP clients read what we write, and nothing else gets out.

- zarr-python 3.1 over fsspec HTTP (aiohttp) and tensorstore's ``http`` kvstore read a sharded 0.5
  and a 0.4 store through the server: pixels identical to the local read;
- byte ranges are exact (``a-b``, ``a-``, ``-n``), unsatisfiable ones get 416, several get the whole
  file; HEAD, OPTIONS (CORS preflight), content types, 404, 405 behave as web viewers expect;
- ``..``, encoded ``..``, absolute paths and symbolic links out of the folder are refused;
- the CLI prints the links and blocks until Ctrl-C;
- headless Chromium (Debian ``chromium``) reads the stores with zarrita (npm) from a page on a
  second loopback server (a cross-origin read, so CORS is exercised for real), and Neuroglancer
  (npm ``neuroglancer``, bundled here with esbuild) opens the printed link and renders pixels.

The browser tests install their npm packages (``tests/js/package.json``) into a cache folder
(``$NGFF_TILES_JS_CACHE``, default ``~/.cache/ngff-tiles/js``) and skip with the reason when
chromium or npm is missing or the install fails. ``NGFF_TILES_SCREENSHOTS=DIR`` keeps the
Neuroglancer screenshots.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pytest
import zarr

from ngff_tiles import ExecutionOptions, WriterOptions, convert
from ngff_tiles.metadata.viewers import find_stores
from ngff_tiles.serve import StoreServer, format_links, neuroglancer_state, parse_range, store_links
from ngff_tiles.testing.synthetic import SyntheticSpec, write_dataset

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "tests" / "js"
SECRET = b"ngff-tiles test secret: must never be served"


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a sharded 0.5 store (64² chunks in 128² shards) and a 0.4 store, 2 channels.

    A secret file sits next to the folder, and symbolic links inside point to it and to a
    store, for the escape tests.
    """
    base = tmp_path_factory.mktemp("serve")
    tiles = base / "tiles"
    write_dataset(
        SyntheticSpec(grid=(2, 2), tile_shape=(1, 200, 200), overlap=0.2, channels=("DAPI", "GFP")), tiles
    )
    root = base / "served"
    for version, name in (("0.5", "sharded.ome.zarr"), ("0.4", "v04.ome.zarr")):
        convert(
            tiles,
            root / name,
            writer=WriterOptions(ngff_version=version, chunks=(1, 64, 64), shards=(1, 128, 128)),
            execution=ExecutionOptions(progress=False, max_workers=2),
        )
    (base / "secret.txt").write_bytes(SECRET)
    (root / "escape-link").symlink_to(base / "secret.txt")
    (root / "escape-dir").symlink_to(base)
    (root / "inside-link").symlink_to(root / "v04.ome.zarr" / ".zattrs")
    (root / "page").mkdir()
    (root / "page" / "index.html").symlink_to(base / "secret.txt")
    return root


@pytest.fixture(scope="module")
def server(stores: Path) -> Iterator[StoreServer]:
    with StoreServer(stores, port=0) as srv:
        yield srv


def request(
    srv: StoreServer, method: str, target: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw request (http.client sends the target exactly as given: no normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def local_levels(store: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(store, mode="r")
    attrs = group.attrs.asdict()
    ms = (attrs.get("ome", attrs))["multiscales"][0]
    return {d["path"]: np.asarray(group[d["path"]][:]) for d in ms["datasets"]}


def a_shard(stores: Path) -> Path:
    """A shard of the sharded store with several inner chunks (a large file)."""
    return max((stores / "sharded.ome.zarr" / "0").rglob("c/*/*/*/*/*"), key=lambda p: p.stat().st_size)


# --------------------------------------------------------------------------------------------
# Independent clients


@pytest.mark.parametrize("name", ["sharded.ome.zarr", "v04.ome.zarr"])
def test_zarr_python_over_http_reads_identical_pixels(server: StoreServer, stores: Path, name: str) -> None:
    pytest.importorskip("aiohttp", reason="zarr-python reads HTTP through fsspec + aiohttp")
    remote = zarr.open_group(server.url + name, mode="r")
    expected = local_levels(stores / name)
    assert len(expected) >= 3
    for path, pixels in expected.items():
        got = np.asarray(remote[path][:])
        assert got.dtype == pixels.dtype
        np.testing.assert_array_equal(got, pixels)
    assert pixels.any()


@pytest.mark.parametrize(("name", "driver"), [("sharded.ome.zarr", "zarr3"), ("v04.ome.zarr", "zarr")])
def test_tensorstore_http_kvstore_reads_identical_pixels(
    server: StoreServer, stores: Path, name: str, driver: str
) -> None:
    import tensorstore as ts

    expected = local_levels(stores / name)
    before = dict(server.counts)
    for path, pixels in expected.items():
        spec = {"driver": driver, "kvstore": {"driver": "http", "base_url": f"{server.url}{name}/{path}/"}}
        arr = ts.open(spec, open=True).result()
        np.testing.assert_array_equal(arr.read().result(), pixels)
        if path == "0":  # a region across inner chunks: read by byte ranges out of the shards (0.5)
            box = np.asarray(arr[0, 1, 0, 70:130, 10:60].read().result())
            np.testing.assert_array_equal(box, pixels[0, 1, 0, 70:130, 10:60])
    partial = server.counts[("GET", 206)] - before.get(("GET", 206), 0)
    if driver == "zarr3":
        assert partial > 0, "sharded reads went without Range requests"


# --------------------------------------------------------------------------------------------
# HTTP behaviour


def test_range_requests_return_exactly_the_requested_bytes(server: StoreServer, stores: Path) -> None:
    shard = a_shard(stores)
    data = shard.read_bytes()
    size = len(data)
    assert size > 1000
    target = "/" + quote(shard.relative_to(stores).as_posix())
    cases = {
        "bytes=0-99": (0, 100),
        "bytes=100-": (100, size),
        "bytes=-50": (size - 50, size),
        f"bytes=-{size + 10}": (0, size),  # a suffix longer than the file: the whole file
        "bytes=7-7": (7, 8),
        f"bytes={size - 16}-{size + 1000}": (size - 16, size),  # the shard index, end clipped
        " bytes = 5 - 9 ": (5, 10),
    }
    for header, (start, stop) in cases.items():
        status, headers, body = request(server, "GET", target, {"Range": header})
        assert status == 206, header
        assert body == data[start:stop], header
        assert headers["content-range"] == f"bytes {start}-{stop - 1}/{size}", header
        assert headers["content-length"] == str(stop - start)
        assert headers["access-control-allow-origin"] == "*"
        assert "Content-Range" in headers["access-control-expose-headers"]
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"):
        status, headers, _ = request(server, "GET", target, {"Range": header})
        assert status == 416, header
        assert headers["content-range"] == f"bytes */{size}"
    for header in ("bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=abc"):
        status, _, body = request(server, "GET", target, {"Range": header})
        assert (status, body) == (200, data), header  # ignored: the whole file (RFC 9110)
    status, headers, body = request(server, "HEAD", target, {"Range": "bytes=0-9"})
    assert (status, body, headers["content-length"]) == (206, b"", "10")


def test_parse_range() -> None:
    assert parse_range("bytes=0-0", 1) == (0, 1)
    assert parse_range("bytes=-1", 10) == (9, 10)
    assert parse_range("bytes=0-", 0) is False
    assert parse_range("bytes=-5", 0) is False
    assert parse_range("bytes=1-2,4-5", 10) is None
    assert parse_range("bytes=", 10) is None


def test_http_basics(server: StoreServer, stores: Path) -> None:
    status, headers, body = request(server, "GET", "/sharded.ome.zarr/zarr.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["accept-ranges"] == "bytes"
    assert headers["access-control-allow-origin"] == "*"
    assert json.loads(body)["attributes"]["ome"]["version"] == "0.5"
    for name in (".zattrs", ".zgroup", "0/.zarray"):
        status, headers, _ = request(server, "GET", f"/v04.ome.zarr/{name}")
        assert (status, headers["content-type"]) == (200, "application/json"), name
    chunk = next((stores / "v04.ome.zarr" / "0").rglob("0/0/0/0/*"))
    status, headers, body = request(server, "GET", "/" + chunk.relative_to(stores).as_posix())
    assert (status, headers["content-type"], body) == (200, "application/octet-stream", chunk.read_bytes())
    status, headers, body = request(server, "HEAD", "/" + chunk.relative_to(stores).as_posix())
    assert (status, body, headers["content-length"]) == (200, b"", str(chunk.stat().st_size))
    # absent keys: 404 with CORS, connection kept (zarr clients probe for missing chunks)
    status, headers, _ = request(server, "GET", "/sharded.ome.zarr/0/c/9/9/9/9/9")
    assert (status, headers["access-control-allow-origin"]) == (404, "*")
    assert headers.get("connection") != "close"
    # conditional GET
    status, headers, _ = request(server, "GET", "/sharded.ome.zarr/zarr.json")
    status, _, body = request(
        server, "GET", "/sharded.ome.zarr/zarr.json", {"If-None-Match": headers["etag"]}
    )
    assert (status, body) == (304, b"")
    # CORS preflight, including Chrome's private-network access from public pages
    status, headers, body = request(
        server,
        "OPTIONS",
        "/sharded.ome.zarr/zarr.json",
        {
            "Origin": "https://neuroglancer-demo.appspot.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == "*"
    assert "GET" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"].lower() == "range"
    assert headers["access-control-allow-private-network"] == "true"
    # read-only
    for method in ("POST", "PUT", "DELETE", "PATCH", "PROPFIND", "MKCOL"):
        status, headers, _ = request(server, method, "/sharded.ome.zarr/zarr.json")
        assert (status, headers["allow"]) == (405, "GET, HEAD, OPTIONS"), method
    assert (stores / "sharded.ome.zarr" / "zarr.json").is_file()
    # folders: redirect to the slash form, then a listing
    status, headers, _ = request(server, "GET", "/sharded.ome.zarr")
    assert (status, headers["location"]) == (301, "/sharded.ome.zarr/")
    status, headers, body = request(server, "GET", "/")
    assert status == 200
    assert b'href="sharded.ome.zarr/"' in body


def test_keep_alive_serves_many_requests_on_one_connection(server: StoreServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for i in range(50):
            conn.request("GET", "/sharded.ome.zarr/zarr.json" if i % 2 else "/nothing/here")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == (200 if i % 2 else 404)
    finally:
        conn.close()


ESCAPES = [
    "/../secret.txt",
    "/sharded.ome.zarr/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/sharded.ome.zarr/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/..%2Fsecret.txt",
    "/%2e%2e%5csecret.txt",
    "/./secret.txt",
    "/sharded.ome.zarr/./zarr.json",
    "/a//../../secret.txt",
    "/%2Fetc%2Fpasswd",
    "/%2fetc/passwd",
    "/C:/Windows/win.ini",
    "/secret.txt%00.json",
    "/escape-link",
    "/escape-dir/secret.txt",
    "/page/",  # a folder's index.html that links out
    "http://127.0.0.1/../secret.txt",
]


@pytest.mark.parametrize("target", ESCAPES)
def test_path_escapes_are_refused(server: StoreServer, target: str) -> None:
    status, _, body = request(server, "GET", target)
    assert status == 403, (target, status, body[:80])
    assert SECRET not in body


@pytest.mark.parametrize("target", ["//etc/passwd", "/etc/passwd", "///secret.txt", "/%2e%2e"])
def test_absolute_paths_stay_inside(server: StoreServer, target: str) -> None:
    """Leading slashes are collapsed (by http.server) and the path looked up inside the folder."""
    status, _, body = request(server, "GET", target)
    assert status in (403, 404), (target, status)
    assert SECRET not in body
    assert b"root:" not in body


def test_raw_socket_dot_dot_is_refused(server: StoreServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403")
    assert b"root:" not in answer


def test_symlink_inside_the_folder_is_served(server: StoreServer, stores: Path) -> None:
    status, _, body = request(server, "GET", "/inside-link")
    assert (status, body) == (200, (stores / "v04.ome.zarr" / ".zattrs").read_bytes())


def test_binds_loopback_by_default(stores: Path) -> None:
    srv = StoreServer(stores, port=0)
    try:
        assert srv.httpd.server_address[0] == "127.0.0.1"
        assert srv.url == f"http://127.0.0.1:{srv.port}/"
    finally:
        srv.close()


def test_busy_port_is_one_clear_error(server: StoreServer, stores: Path) -> None:
    from ngff_tiles.errors import NgffTilesError

    with pytest.raises(NgffTilesError, match=r"cannot listen on 127.0.0.1:\d+.*--port"):
        StoreServer(stores, port=server.port)


# --------------------------------------------------------------------------------------------
# Links


def decode_state(url: str) -> dict[str, Any]:
    fragment = url.split("#!", 1)[1]
    return dict(json.loads(unquote(fragment)))


def test_links_use_the_right_scheme_and_omero_contrast(server: StoreServer, stores: Path) -> None:
    links = {ln.info.path: ln for ln in server.links()}
    assert set(links) == {"sharded.ome.zarr", "v04.ome.zarr"}
    for name, scheme in (("sharded.ome.zarr", "zarr3://"), ("v04.ome.zarr", "zarr://")):
        ln = links[name]
        assert ln.data == f"{server.url}{name}"
        assert ln.neuroglancer is not None
        assert ln.neuroglancer.startswith("https://neuroglancer-demo.appspot.com/#!")
        state = decode_state(ln.neuroglancer)
        attrs = json.loads((stores / name / ("zarr.json" if scheme == "zarr3://" else ".zattrs")).read_text())
        omero = (attrs["attributes"]["ome"] if scheme == "zarr3://" else attrs)["omero"]
        assert [layer["name"] for layer in state["layers"]] == [c["label"] for c in omero["channels"]]
        for i, (layer, channel) in enumerate(zip(state["layers"], omero["channels"], strict=True)):
            assert layer["source"] == f"{scheme}{server.url}{name}/"
            window = channel["window"]
            assert layer["shaderControls"]["normalized"]["range"] == [window["start"], window["end"]]
            assert layer["shaderControls"]["color"] == "#" + channel["color"].lower()
            assert f"range=[{window['start']:g}, {window['end']:g}]" in layer["shader"]
            assert layer["localPosition"] == [i]
        assert state["displayDimensions"] == ["x", "y", "z"]
        assert state["dimensions"]["x"] == [pytest.approx(0.65e-6), "m"]
        assert ln.vizarr == f"https://biongff.github.io/vizarr/?source={server.url}{name}"
    text = format_links(server, list(links.values()))
    assert text.startswith(f"Serving {stores} at {server.url}")
    assert "OME-NGFF 0.5 image, 2 channel(s)" in text


def test_plate_gets_a_vizarr_link_and_its_first_field_in_neuroglancer(tmp_path: Path) -> None:
    plate = tmp_path / "plate.ome.zarr"
    write_plate_with_zarr_python(plate)
    [info] = find_stores(tmp_path)
    assert (info.kind, info.version, info.image) == ("plate", "0.5", "plate.ome.zarr/A/1/0")
    ln = store_links("http://127.0.0.1:9/", info)
    assert ln.vizarr == "https://biongff.github.io/vizarr/?source=http://127.0.0.1:9/plate.ome.zarr"
    assert ln.neuroglancer is not None
    state = decode_state(ln.neuroglancer)
    assert state["layers"][0]["source"] == "zarr3://http://127.0.0.1:9/plate.ome.zarr/A/1/0/"


def write_plate_with_zarr_python(path: Path) -> None:
    """A 0.5 plate of two wells (one field each), written with zarr-python only."""
    root = zarr.open_group(path, mode="w", zarr_format=3)
    wells = [("A", "1"), ("B", "2")]
    root.attrs["ome"] = {
        "version": "0.5",
        "plate": {
            "version": "0.5",
            "name": "p",
            "rows": [{"name": "A"}, {"name": "B"}],
            "columns": [{"name": "1"}, {"name": "2"}],
            "wells": [
                {"path": f"{r}/{c}", "rowIndex": "AB".index(r), "columnIndex": int(c) - 1} for r, c in wells
            ],
            "field_count": 1,
        },
    }
    for r, c in wells:
        well = root.require_group(f"{r}/{c}")
        well.attrs["ome"] = {"version": "0.5", "well": {"version": "0.5", "images": [{"path": "0"}]}}
        image = well.require_group("0")
        image.attrs["ome"] = {
            "version": "0.5",
            "multiscales": [
                {
                    "axes": [
                        {"name": "c", "type": "channel"},
                        {"name": "y", "type": "space", "unit": "micrometer"},
                        {"name": "x", "type": "space", "unit": "micrometer"},
                    ],
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [{"type": "scale", "scale": [1, 0.5, 0.5]}],
                        }
                    ],
                }
            ],
            "omero": {
                "channels": [
                    {
                        "label": "a",
                        "color": "FFFFFF",
                        "window": {"min": 0, "max": 255, "start": 0, "end": 200},
                    }
                ]
            },
        }
        arr = image.create_array(
            "0", shape=(1, 64, 64), chunks=(1, 32, 32), dtype="uint8", dimension_names=["c", "y", "x"]
        )
        arr[:] = np.full((1, 64, 64), 10 * (1 + "AB".index(r)), dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# The CLI


def test_cli_serve_prints_links_and_stops_on_ctrl_c(stores: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ngff_tiles.cli", "serve", str(stores), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"Serving {stores} at http://127.0.0.1:"), first
        url = first.split(" at ", 1)[1].split(" ", 1)[0]
        lines = [proc.stdout.readline() for _ in range(12)]
        assert any(
            line.strip().startswith("Neuroglancer: https://") and "zarr3%3A" not in line for line in lines
        )
        assert any("zarr3://" in unquote(line) for line in lines)
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            conn.request("GET", "/sharded.ome.zarr/zarr.json")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.rstrip().endswith("stopped")


# --------------------------------------------------------------------------------------------
# Real browsers


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.skip(
        "headless Chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs "
        "it when it runs as root)"
    )


@pytest.fixture(scope="session")
def js_site() -> Path:
    """tests/js installed with npm and bundled with esbuild, in a cache folder (built once)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("npm/node not found: the browser tests install zarrita and Neuroglancer from npm")
    digest = hashlib.sha256()
    for f in sorted(p for p in JS.rglob("*") if p.is_file() and "node_modules" not in p.parts):
        digest.update(f.relative_to(JS).as_posix().encode() + f.read_bytes())
    cache = Path(os.environ.get("NGFF_TILES_JS_CACHE", Path.home() / ".cache" / "ngff-tiles" / "js"))
    done = cache / digest.hexdigest()[:16]
    if (done / "site" / ".complete").is_file():
        return done / "site"
    work = cache / f"tmp-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(JS, work, ignore=shutil.ignore_patterns("node_modules"))
    for cmd in (
        [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--ignore-scripts"],
        [node, "build.mjs", "site"],
    ):
        try:
            proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.skip(f"{' '.join(cmd[:2])} timed out after 600 s")
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            pytest.skip(f"could not install/bundle the JS test clients ({' '.join(cmd[:2])}): {tail}")
    (work / "site" / ".complete").write_text("ok\n")
    shutil.rmtree(done, ignore_errors=True)
    work.rename(done)
    return done / "site"


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

    No websocket and no extra package: commands are NUL-terminated JSON on fd 3, answers on fd 4.
    """

    def __init__(self, exe: str, profile: Path, width: int = 1000, height: int = 700) -> None:
        import fcntl

        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds() -> None:  # in the child: the pipe ends become fds 3 and 4
            a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-angle=swiftshader",  # WebGL (Neuroglancer) on the CPU
                "--enable-unsafe-swiftshader",
                f"--window-size={width},{height}",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=fds,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._id = 0
        self.size = (width, height)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = False, timeout: float = 30
    ) -> Any:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer {method} within {timeout} s")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk

    def goto(self, url: str) -> None:
        self.call("Page.navigate", {"url": url}, session=True)

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60, stable: int = 1) -> Any:
        """Poll ``expression`` until it is truthy ``stable`` times in a row; return its value."""
        deadline = time.monotonic() + timeout
        hits = 0
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            hits = hits + 1 if value else 0
            if hits >= stable:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"{expression!r} stayed false for {timeout} s")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"])

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    browser = Chromium(find_chromium(), tmp_path / "profile")
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def site_server(js_site: Path) -> Iterator[StoreServer]:
    with StoreServer(js_site, port=0) as srv:
        yield srv


def test_chromium_zarrita_reads_the_served_stores(
    server: StoreServer, stores: Path, site_server: StoreServer, chromium: Chromium
) -> None:
    names = ["sharded.ome.zarr", "v04.ome.zarr"]
    query = "&".join(f"store={quote(server.url + n, safe=':/')}" for n in names)
    chromium.goto(f"{site_server.url}zarr-check/index.html?{query}")
    title = chromium.wait_for("['done', 'error'].includes(document.title) && document.title", timeout=60)
    results = json.loads(chromium.evaluate("document.getElementById('out').textContent"))
    assert title == "done", results
    for name in names:
        got = results[server.url + name]
        expected = local_levels(stores / name)
        assert got["paths"] == list(expected)
        assert got["version"] == ("0.5" if name.startswith("sharded") else "0.4")
        level0 = expected["0"][0, :, 0, 100:164, 150:214]
        assert got["levels"]["0"]["outShape"] == list(level0.shape)
        np.testing.assert_array_equal(np.array(got["levels"]["0"]["data"]).reshape(level0.shape), level0)
        last = list(expected)[-1]
        lowest = expected[last]
        assert got["levels"][last]["shape"] == list(lowest.shape)
        assert got["levels"][last]["dtype"] == str(lowest.dtype)
        np.testing.assert_array_equal(np.array(got["levels"][last]["data"]).reshape(lowest.shape), lowest)


@pytest.mark.parametrize("name", ["sharded.ome.zarr", "v04.ome.zarr"])
def test_neuroglancer_opens_the_printed_link(
    server: StoreServer, stores: Path, site_server: StoreServer, chromium: Chromium, name: str, tmp_path: Path
) -> None:
    import imagecodecs

    links = server.links(neuroglancer=f"{site_server.url}neuroglancer/")
    text = format_links(server, links)
    block = text.split(f"\n{name}  (", 1)[1]
    url = next(
        line.split(":", 1)[1].strip()
        for line in block.splitlines()
        if line.strip().startswith("Neuroglancer:")
    )
    assert url.startswith(f"{site_server.url}neuroglancer/#!")
    chromium.goto(url)
    chromium.wait_for("window.viewer !== undefined && window.viewer.isReady()", timeout=90, stable=4)
    errors = chromium.evaluate(
        "viewer.layerManager.managedLayers.flatMap(l => (l.layer ? l.layer.dataSources : [])"
        ".map(d => d.loadState && d.loadState.error ? String(d.loadState.error) : null)).filter(e => e)"
    )
    assert errors == []
    layer_names = chromium.evaluate("viewer.layerManager.managedLayers.map(l => l.name)")
    assert layer_names == ["DAPI", "GFP"]
    state = neuroglancer_state(server.url + name, find_stores(stores / name)[0])
    assert state["layers"][0]["source"].startswith("zarr3://" if name.startswith("sharded") else "zarr://")
    png = chromium.screenshot()
    keep = os.environ.get("NGFF_TILES_SCREENSHOTS")
    out = Path(keep) if keep else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    (out / f"neuroglancer-{name.split('.')[0]}.png").write_bytes(png)
    image = imagecodecs.png_decode(png)[..., :3].astype(int)
    assert image.shape[:2] == (chromium.size[1], chromium.size[0])
    # the data panel (left ~2/3): coloured pixels (blue DAPI, green GFP) where the image lies,
    # against Neuroglancer's grey background
    panel = image[60:650, 10:680]
    r, g, b = panel[..., 0], panel[..., 1], panel[..., 2]
    coloured = ((b > r + 25) | (g > r + 25)).mean()
    assert coloured > 0.1, f"only {coloured:.1%} of the panel shows data"
    # and it is our image: inside the yellow bounding box, the green (GFP) and blue (DAPI) channels
    # follow the level-0 pixels scaled by the omero window
    rows, cols = np.nonzero((r > 200) & (g > 200) & (b < 80))
    y0, y1, x0, x1 = rows.min() + 4, rows.max() - 3, cols.min() + 4, cols.max() - 3
    level0 = local_levels(stores / name)["0"][0, :, 0]
    ny, nx = y1 - y0, x1 - x0
    yi = (np.arange(ny) + 4 + 0.5) * level0.shape[1] // (ny + 7)
    xi = (np.arange(nx) + 4 + 0.5) * level0.shape[2] // (nx + 7)
    for channel, rgb in ((0, b), (1, g)):
        window = state["layers"][channel]["shaderControls"]["normalized"]["range"]
        want = np.clip(
            (level0[channel][np.ix_(yi.astype(int), xi.astype(int))] - window[0]) / (window[1] - window[0]),
            0,
            1,
        )
        seen = rgb[y0:y1, x0:x1]
        corr = np.corrcoef(seen.ravel(), want.ravel())[0, 1]
        assert corr > 0.8, f"channel {channel}: screenshot vs data correlation {corr:.3f}"
