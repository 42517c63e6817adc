"""A small read-only HTTP server for OME-Zarr stores, and the viewer links to open them.

Web viewers (Neuroglancer, vizarr, the OME-NGFF validator) read a store over HTTP from another
origin, and sharded Zarr v3 is read with byte ranges, so the server answers what they need and
nothing else:

- ``GET`` and ``HEAD`` only (``OPTIONS`` for CORS preflights; any other method gets 405);
- CORS on every answer: ``Access-Control-Allow-Origin: *``, ``Content-Range``, ``Content-Length``,
  ``Accept-Ranges`` and ``ETag`` exposed; preflights answered (with Chrome's
  ``Access-Control-Allow-Private-Network`` so pages on the web may read from 127.0.0.1);
- single ``Range`` requests (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``): 206 with exactly those
  bytes, 416 with ``Content-Range: bytes */size`` when unsatisfiable; a multi-range request gets the
  whole file (200), as RFC 9110 allows; file bodies go out with ``sendfile``;
- ``application/json`` for ``zarr.json``/``.zattrs``/``.zarray``/``.zgroup``, ``application/octet-stream``
  for chunks and shards, 404 (kept alive, not closing the connection) for absent keys;
- no way out of the served folder: ``..`` or ``.`` segments, empty segments (``//``, absolute
  paths), encoded slashes or backslashes, NUL bytes and drive letters are refused with 403, and so
  is any path whose real location (symbolic links resolved) lies outside the folder;
- bound to 127.0.0.1 unless another host is asked for.

The standard library's :class:`http.server.ThreadingHTTPServer` carries it (its
``SimpleHTTPRequestHandler`` has no Range support and no CORS, so the handler is our own).
"""

from __future__ import annotations

import email.utils
import html
import json
import logging
import os
import posixpath
import socket
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ngff_tiles.errors import NgffTilesError
from ngff_tiles.metadata.viewers import StoreInfo, find_stores

__all__ = [
    "NEUROGLANCER_URL",
    "VALIDATOR_URL",
    "VIZARR_URL",
    "Links",
    "StoreServer",
    "content_type",
    "neuroglancer_state",
    "neuroglancer_url",
    "parse_range",
    "serve",
    "store_links",
]

log = logging.getLogger("ngff_tiles.serve")

NEUROGLANCER_URL = "https://neuroglancer-demo.appspot.com/"
"""Neuroglancer deployment the printed links open (``--neuroglancer-url`` for another one)."""
VIZARR_URL = "https://biongff.github.io/vizarr/"
"""vizarr deployment the printed links open (``--vizarr-url`` for another one)."""
VALIDATOR_URL = "https://ome.github.io/ome-ngff-validator/"
"""The OME-NGFF web validator."""

_JSON_NAMES = frozenset(["zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata"])
_TYPES = {
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
_EXPOSE = "Content-Range, Content-Length, Accept-Ranges, ETag, Content-Type, Last-Modified"


def content_type(name: str) -> str:
    """Return the Content-Type for a file name: JSON for Zarr metadata, octet-stream for chunks."""
    if name in _JSON_NAMES:
        return "application/json"
    return _TYPES.get(posixpath.splitext(name)[1].lower(), "application/octet-stream")


def parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """Interpret a ``Range`` header against a file of ``size`` bytes.

    Returns
    -------
    tuple of int, None or bool
        ``(start, stop)`` (stop exclusive) for one satisfiable range; ``None`` when the header
        is to be ignored (not ``bytes=``, malformed, or several ranges: the whole file is sent);
        ``False`` when the range cannot be satisfied (416).
    """
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        n = int(last)
        if n == 0 or size == 0:
            return False
        return (max(0, size - n), size)
    start = int(first)
    if last != "" and int(last) < start:
        return None  # syntactically invalid: ignored (RFC 9110 14.1.1)
    if start >= size:
        return False
    stop = size if last == "" else min(size, int(last) + 1)
    return (start, stop)


# --------------------------------------------------------------------------------------------
# Links


_SI = {
    "yocto": -24, "zepto": -21, "atto": -18, "femto": -15, "pico": -12, "nano": -9, "micro": -6,
    "milli": -3, "centi": -2, "deci": -1, "": 0, "deca": 1, "hecto": 2, "kilo": 3, "mega": 6,
    "giga": 9, "tera": 12, "peta": 15, "exa": 18, "zetta": 21, "yotta": 24,
}  # fmt: skip
_OTHER_UNITS = {
    "angstrom": (1e-10, "m"), "foot": (0.3048, "m"), "inch": (0.0254, "m"), "mile": (1609.34, "m"),
    "yard": (0.9144, "m"), "parsec": (3.0856775814913670e16, "m"), "minute": (60.0, "s"),
    "hour": (3600.0, "s"), "day": (86400.0, "s"),
}  # fmt: skip


def _si(unit: str) -> tuple[float, str]:
    """Neuroglancer's (factor, base unit) for an NGFF unit name; ``(1, "")`` when it has none."""
    if unit in _OTHER_UNITS:
        return _OTHER_UNITS[unit]
    for base in ("meter", "second"):
        prefix = unit[: -len(base)]
        if unit.endswith(base) and prefix in _SI:
            return 10.0 ** _SI[prefix], base[0]
    return 1.0, ""


def _hex_to_css(color: str) -> str:
    return f"#{color.lower()}"


def _shader(color: str, start: float, end: float, low: float | None, high: float | None) -> str:
    window = f", window=[{low:g}, {high:g}]" if low is not None and high is not None else ""
    return (
        f'#uicontrol vec3 color color(default="{_hex_to_css(color)}")\n'
        f"#uicontrol invlerp normalized(range=[{start:g}, {end:g}]{window})\n"
        "void main() {\n  emitRGB(color * normalized());\n}\n"
    )


def neuroglancer_state(data_url: str, info: StoreInfo) -> dict[str, Any]:
    """Return a Neuroglancer state (JSON) showing the image of ``info`` served at ``data_url``.

    The source scheme follows the Zarr format: ``zarr://`` for 0.4 (Zarr v2) and ``zarr3://`` for
    0.5 (Zarr v3). There is one image layer per channel (Neuroglancer makes the OME channel axis
    ``c`` a local dimension ``c'``; each layer selects its channel with ``localPosition``),
    coloured with ``omero`` ``color`` and with the shader's contrast range set from ``omero``
    ``window`` start/end (Neuroglancer itself reads ``omero`` only for 0.4). The view shows x, y
    (and z) and is zoomed so that the whole image fits about 800 screen pixels.
    """
    scheme = "zarr3" if info.version not in ("0.1", "0.2", "0.3", "0.4") else "zarr"
    source = f"{scheme}://{data_url.rstrip('/')}/"
    channels = info.channels or []
    multi = len(channels) > 1
    has_channel_axis = "channel" in info.axis_types
    layers: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, ch in enumerate(channels or [None]):
        name = info.name if not multi or ch is None else ch.label
        while name in names:
            name = f"{name} ({i})"
        names.add(name)
        layer: dict[str, Any] = {"type": "image", "source": source, "name": name, "opacity": 1.0}
        if ch is not None:
            start = ch.start if ch.start is not None else (ch.low if ch.low is not None else 0.0)
            end = ch.end if ch.end is not None else (ch.high if ch.high is not None else 1.0)
            if end <= start:
                end = start + 1
            layer["shader"] = _shader(ch.color, start, end, ch.low, ch.high)
            controls: dict[str, Any] = {"range": [start, end]}
            if ch.low is not None and ch.high is not None:
                controls["window"] = [ch.low, ch.high]
            layer["shaderControls"] = {"color": _hex_to_css(ch.color), "normalized": controls}
            layer["visible"] = ch.active
        if has_channel_axis:
            layer["localPosition"] = [i]
        if multi:
            layer["blend"] = "additive"
        layers.append(layer)
    sizes = dict(zip(info.axes, info.shape, strict=False)) if len(info.shape) == len(info.axes) else {}
    space = [a for a, t in zip(info.axes, info.axis_types, strict=False) if t == "space"]
    state: dict[str, Any] = {}
    if len(info.scale) == len(info.axes) == len(info.units) == len(info.axis_types):
        # the global dimensions must exist when the state is read, or displayDimensions is dropped
        dims = {}
        for name, kind, unit, scale in zip(info.axes, info.axis_types, info.units, info.scale, strict=True):
            if kind != "channel":
                factor, base = _si(unit)
                dims[name] = [scale * factor, base]
        state["dimensions"] = dims
        if len(space) >= 2:
            state["displayDimensions"] = space[::-1][:3]
    state["layers"] = layers
    state["selectedLayer"] = {"layer": layers[0]["name"], "visible": True}
    plane = [sizes.get(a, 1) for a in space[-2:]]
    if plane and max(plane) > 800:
        state["crossSectionScale"] = max(plane) / 800
    depth = sizes.get(space[0], 1) if len(space) == 3 else 1
    state["layout"] = "xy" if depth <= 1 else "4panel"
    return state


def neuroglancer_url(state: dict[str, Any], viewer: str = NEUROGLANCER_URL) -> str:
    """Return ``viewer#!<state>``, the state as URL-encoded JSON (as Neuroglancer writes it)."""
    text = json.dumps(state, separators=(",", ":"))
    return f"{viewer.rstrip('/')}/#!{quote(text, safe='/:,=@-_.~')}"


@dataclass(frozen=True, slots=True)
class Links:
    """Ready-to-open links for one served store.

    Attributes
    ----------
    info : StoreInfo
        What the store is.
    data : str
        The store's own URL.
    neuroglancer : str or None
        Neuroglancer link (for a plate: its first field), ``None`` when there is no image to open.
    vizarr : str
        vizarr link (plates as a grid of wells, images as channels).
    validator : str
        OME-NGFF web validator link.
    """

    info: StoreInfo
    data: str
    neuroglancer: str | None
    vizarr: str
    validator: str


def _url_path(rel: str) -> str:
    return quote(rel, safe="/") if rel else ""


def store_links(
    base_url: str,
    info: StoreInfo,
    *,
    neuroglancer: str = NEUROGLANCER_URL,
    vizarr: str = VIZARR_URL,
    validator: str = VALIDATOR_URL,
) -> Links:
    """Return the links for a store described by ``info`` served under ``base_url``."""
    base = base_url.rstrip("/") + "/"
    data = (base + _url_path(info.path)).rstrip("/")
    ng = None
    if info.image is not None:
        ng = neuroglancer_url(
            neuroglancer_state((base + _url_path(info.image)).rstrip("/"), info), neuroglancer
        )
    return Links(
        info=info,
        data=data,
        neuroglancer=ng,
        vizarr=f"{vizarr.rstrip('/')}/?source={quote(data, safe=':/')}",
        validator=f"{validator.rstrip('/')}/?source={quote(data, safe=':/')}",
    )


# --------------------------------------------------------------------------------------------
# Server


class _Forbidden(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    """Read-only, CORS-enabled, Range-capable file handler rooted at ``server.root``."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    timeout = 120  # seconds an idle keep-alive connection holds its thread
    server_version = "ngff-tiles"
    server: _Server

    # -- plumbing ------------------------------------------------------------------------------

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", _EXPOSE)
        super().end_headers()

    def version_string(self) -> str:
        """The ``Server`` header: no Python version."""
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Count the answer (method, status) and log it."""
        status = code.value if isinstance(code, HTTPStatus) else int(code) if str(code).isdigit() else 0
        with self.server.lock:
            self.server.counts[(self.command or "-", status)] += 1
        super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _simple(self, status: HTTPStatus, text: str = "", headers: dict[str, str] | None = None) -> None:
        """An answer with a short text body, keeping the connection open."""
        body = (text or f"{status.value} {status.phrase}\n").encode("utf-8")
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _resolve(self) -> Path:
        """Map the request path onto a file under the root; raise :class:`_Forbidden` for escapes."""
        request = self.path
        raw = request.split("?", 1)[0].split("#", 1)[0] if request.startswith("/") else urlsplit(request).path
        if not raw.startswith("/"):
            raise _Forbidden("the request target must be an absolute path starting with '/'")
        lowered = raw.lower()
        if any(code in lowered for code in ("%2f", "%5c", "%00")):
            raise _Forbidden("encoded '/', '\\' or NUL in the path")
        path = unquote(raw, errors="strict")
        parts = path.split("/")[1:]
        if parts and parts[-1] == "":
            parts = parts[:-1]  # a trailing slash names a folder
        for part in parts:
            if (
                part in ("", ".", "..")
                or "\\" in part
                or "\x00" in part
                or (len(part) >= 2 and part[1] == ":")
            ):
                raise _Forbidden(f"path segment {part!r} is not allowed")
        root: Path = self.server.root
        target = root.joinpath(*parts) if parts else root
        real = Path(os.path.realpath(target))
        if real != root and root not in real.parents:
            raise _Forbidden("the path leads outside the served folder")
        return real

    # -- methods -------------------------------------------------------------------------------

    def do_OPTIONS(self) -> None:
        """Answer a CORS preflight."""
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Allow", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        requested = self.headers.get("Access-Control-Request-Headers")
        self.send_header(
            "Access-Control-Allow-Headers", requested or "Range, If-None-Match, If-Modified-Since"
        )
        if self.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
            self.send_header("Access-Control-Allow-Private-Network", "true")
        self.send_header("Access-Control-Max-Age", "86400")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        """Headers of a GET, no body."""
        self._get(body=False)

    def do_GET(self) -> None:
        """A file (whole or a byte range), a folder listing, or 404."""
        self._get(body=True)

    def _refuse(self) -> None:
        self._simple(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "read-only server: only GET, HEAD and OPTIONS\n",
            {"Allow": "GET, HEAD, OPTIONS"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_TRACE = do_CONNECT = _refuse

    def __getattr__(self, name: str) -> Any:
        """Any other method (``PROPFIND``, ``MKCOL``...) is refused with 405 too, not 501."""
        if name.startswith("do_"):
            return self._refuse
        raise AttributeError(name)

    def _get(self, body: bool) -> None:
        try:
            path = self._resolve()
        except _Forbidden as exc:
            self._simple(HTTPStatus.FORBIDDEN, f"403 forbidden: {exc}\n")
            return
        except UnicodeDecodeError:
            self._simple(HTTPStatus.BAD_REQUEST, "400 bad request: the path is not UTF-8\n")
            return
        if path.is_dir():
            if not (path / "index.html").is_file() or not self.path.split("?", 1)[0].endswith("/"):
                self._listing(path, body)
                return
            path = Path(os.path.realpath(path / "index.html"))  # a web page (a self-hosted viewer)
            if self.server.root not in path.parents:
                self._simple(
                    HTTPStatus.FORBIDDEN, "403 forbidden: the path leads outside the served folder\n"
                )
                return
        try:
            f = open(path, "rb")  # noqa: SIM115 (closed below, after sendfile)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self._simple(HTTPStatus.NOT_FOUND)
            return
        except OSError:
            self._simple(HTTPStatus.FORBIDDEN, "403 forbidden: the file cannot be read\n")
            return
        with f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag = f'"{st.st_mtime_ns:x}-{size:x}"'
            start, stop, status = 0, size, HTTPStatus.OK
            header = self.headers.get("Range")
            if header is not None and self.headers.get("If-Range", etag) == etag:
                wanted = parse_range(header, size)
                if wanted is False:
                    self._simple(
                        HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                        f"416 range not satisfiable: {header} of {size} bytes\n",
                        {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
                    )
                    return
                if isinstance(wanted, tuple):
                    start, stop = wanted
                    status = HTTPStatus.PARTIAL_CONTENT
            elif self.headers.get("If-None-Match") == etag:
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(status)
            self.send_header("Content-Type", content_type(path.name))
            self.send_header("Content-Length", str(stop - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
            self.send_header("Cache-Control", "no-cache")
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
            self.end_headers()
            if body and stop > start:
                self.connection.sendfile(f, start, stop - start)

    def _listing(self, path: Path, body: bool) -> None:
        raw = self.path.split("?", 1)[0]
        if not raw.endswith("/"):
            self._simple(HTTPStatus.MOVED_PERMANENTLY, "", {"Location": raw + "/"})
            return
        try:
            names = sorted(os.listdir(path))
        except OSError:
            self._simple(HTTPStatus.FORBIDDEN, "403 forbidden: the folder cannot be listed\n")
            return
        items = []
        for name in names:
            slash = "/" if (path / name).is_dir() else ""
            items.append(f'<li><a href="{quote(name)}{slash}">{html.escape(name)}{slash}</a></li>')
        title = html.escape(unquote(raw))
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1><ul>{''.join(items)}</ul></body></html>\n"
        ).encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if body:
            self.wfile.write(page)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    root: Path
    counts: Counter[tuple[str, int]]
    lock: threading.Lock

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away mid-answer (a viewer cancelling reads) is no error."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("%s: connection dropped: %s", client_address, exc)
            return
        super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class StoreServer:
    """Serve a folder (a store, or a folder of stores) read-only over HTTP.

    Parameters
    ----------
    root : str or os.PathLike
        The folder to serve.
    host : str
        Address to bind; ``127.0.0.1`` (only this machine) unless asked otherwise.
    port : int
        Port; 0 picks a free one (see :attr:`port`).

    Examples
    --------
    >>> with StoreServer("out.ome.zarr", port=0) as srv:  # doctest: +SKIP
    ...     print(srv.url)  # http://127.0.0.1:PORT/ , served from a background thread
    """

    def __init__(self, root: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000) -> None:
        folder = Path(os.path.realpath(root))
        if not folder.is_dir():
            raise NgffTilesError(f"{root}: not a folder; serve takes a store or a folder of stores")
        cls = _Server6 if ":" in host else _Server
        try:
            self.httpd = cls((host, port), _Handler)
        except OSError as exc:
            hint = "; pick another with --port N (0: any free port)" if exc.errno in (98, 48, 10048) else ""
            raise NgffTilesError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from exc
        self.httpd.root = folder
        self.httpd.counts = Counter()
        self.httpd.lock = threading.Lock()
        self.root = folder
        self.host = host
        self._thread: threading.Thread | None = None

    @property
    def counts(self) -> Counter[tuple[str, int]]:
        """Answers so far, by (method, status): e.g. ``counts[("GET", 206)]`` range answers."""
        with self.httpd.lock:
            return Counter(self.httpd.counts)

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, ending with ``/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> StoreServer:
        """Serve from a daemon thread; return self."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="ngff-tiles-serve", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`close` (from another thread) or Ctrl-C."""
        self.httpd.serve_forever()

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> StoreServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def links(self, **viewers: str) -> list[Links]:
        """Links for every store found in the served folder (see :func:`store_links`)."""
        return [store_links(self.url, info, **viewers) for info in find_stores(self.root)]


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def format_links(server: StoreServer, links: list[Links]) -> str:
    """The text ``ngff-tiles serve`` prints: where it serves, then each store's links."""
    lines = [f"Serving {server.root} at {server.url} (read-only; CORS and Range requests; Ctrl-C to stop)"]
    if not _is_loopback(server.host):
        lines.append(
            f"warning: listening on {server.host}: anyone who can reach this port can read these files"
        )
    if not links:
        lines.append("No OME-Zarr store found in this folder (nothing with OME-NGFF metadata).")
    for ln in links:
        info = ln.info
        what = f"OME-NGFF {info.version} {info.kind}"
        if info.channels:
            what += f", {len(info.channels)} channel(s)"
        lines += ["", f"{info.path or info.name}  ({what})", f"  data:         {ln.data}"]
        if ln.neuroglancer is not None:
            label = "Neuroglancer:" if info.kind == "image" else f"Neuroglancer ({info.image}):"
            lines.append(f"  {label:<13} {ln.neuroglancer}")
        lines.append(f"  vizarr:       {ln.vizarr}")
        lines.append(f"  validator:    {ln.validator}")
    return "\n".join(lines)


def serve(
    root: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    neuroglancer: str = NEUROGLANCER_URL,
    vizarr: str = VIZARR_URL,
    echo: Callable[[str], None] | None = None,
) -> None:
    """Serve ``root``, print the links, and block until Ctrl-C.

    Parameters
    ----------
    root : str or os.PathLike
        A store or a folder of stores.
    host, port : str, int
        Where to listen (127.0.0.1 unless asked; port 0 picks a free one).
    neuroglancer, vizarr : str
        Base URLs of the viewer deployments the links open.
    echo : callable, optional
        Where the text goes (default: stdout, flushed).
    """
    out = echo or (lambda text: print(text, flush=True, file=sys.stdout))
    server = StoreServer(root, host, port)
    try:
        out(format_links(server, server.links(neuroglancer=neuroglancer, vizarr=vizarr)))
        server.serve_forever()
    except KeyboardInterrupt:
        out("stopped")
    finally:
        server.close()
