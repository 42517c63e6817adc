r"""A PYMEDataServer stand-in for tests: the data server's read API on 127.0.0.1, with faults.

It implements what ``reference/pyme-server.md`` §3 records of the real server (PYME's
``HTTPDataServer``): ``GET /<dir>/`` as a JSON listing ``{"name": [type, size]}`` (directories end
in ``/``; type bits 1 directory, 2 series, 4 complete; directory size = entries + 2; ``/``
escaped as ``\\/`` as ujson writes it), ``GET /<dir>`` as a 301 to ``/<dir>/``, ``GET /<file>``
with ``Content-Length`` (``Range`` ignored), 404 for anything missing, ``GET /__glob?pattern=``
and ``GET /__status``. It serves a folder read-only and never leaves it.

Faults for client tests: drop connections (close without a response, or cut a body short),
answer 503, or serve a hostile listing for one directory.

Example::

    with PymeTestServer(root) as server:
        url = server.url          # http://127.0.0.1:PORT
"""

from __future__ import annotations

import glob
import json
import os
import threading
import urllib.parse
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["PymeTestServer"]


def _listing(folder: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir():
            names = os.listdir(entry.path)
            kind = 1 | (2 if "metadata.json" in names else 0) | (4 if "events.json" in names else 0)
            out[entry.name + "/"] = [kind, len(names) + 2]
        else:
            out[entry.name] = [0, entry.stat().st_size]
    return out


class PymeTestServer:
    """Serve ``root`` like a PYMEDataServer on 127.0.0.1 (an ephemeral port) in a thread.

    Parameters
    ----------
    root
        Folder to serve (read only).
    drop
        Fault mode: ``None``, ``"reset"`` (close the connection without answering), ``"truncate"``
        (send the headers and half the body, then close) or ``"503"`` (answer 503).
    drop_first
        Apply the fault to this many requests first (then behave), e.g. 2 for transient failures.
    drop_every
        Apply the fault to every n-th request (0: never).
    drop_paths
        Apply faults only to paths containing one of these strings (``None``: all paths).
    hostile
        Listings to serve instead of the real ones: root-relative directory -> JSON object.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        drop: str | None = None,
        drop_first: int = 0,
        drop_every: int = 0,
        drop_paths: tuple[str, ...] | None = None,
        hostile: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.drop = drop
        self.drop_first = drop_first
        self.drop_every = drop_every
        self.drop_paths = drop_paths
        self.hostile = {k.strip("/"): v for k, v in (hostile or {}).items()}
        self.requests: list[str] = []
        self.connections = 0
        self.faults = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port()}"

    def _should_fail(self, path: str) -> bool:
        with self._lock:
            self.requests.append(path)
            n = len(self.requests)
            if self.drop is None:
                return False
            if self.drop_paths is not None and not any(p in path for p in self.drop_paths):
                return False
            hit = self.faults < self.drop_first or (self.drop_every > 0 and n % self.drop_every == 0)
            if hit:
                self.faults += 1
            return hit

    def __enter__(self) -> PymeTestServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.connections += 1

            def _send(
                self, status: int, body: bytes, ctype: str, extra: Mapping[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, doc: Any) -> None:
                body = json.dumps(doc, separators=(",", ":")).replace("/", "\\/").encode()
                self._send(200, body, "application/json; charset=utf-8")

            def _not_found(self) -> None:
                self._send(404, b"<html><body>404 File not found</body></html>", "text/html")

            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                path = urllib.parse.unquote(parsed.path)
                if server._should_fail(path):
                    if server.drop == "503":
                        self._send(503, b"busy", "text/plain")
                        return
                    if server.drop == "truncate" and not path.endswith("/"):
                        target = server.root / path.lstrip("/")
                        if target.is_file():
                            body = target.read_bytes()
                            self.send_response(200)
                            self.send_header("Content-Length", str(len(body)))
                            self.end_headers()
                            self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if path == "/__status":
                    self._json({"IPAddress": "127.0.0.1", "Port": server._port(), "TestMode": True})
                    return
                if path == "/__glob":
                    pattern = urllib.parse.parse_qs(parsed.query).get("pattern", [""])[0]
                    found = [
                        os.path.relpath(p, server.root)
                        for p in glob.glob(str(server.root / pattern))
                        if Path(p).resolve().is_relative_to(server.root)
                    ]
                    self._json(found)
                    return
                rel = path.strip("/")
                if rel in server.hostile and path.endswith("/"):
                    self._json(server.hostile[rel])
                    return
                target = (server.root / rel).resolve()
                if not target.is_relative_to(server.root) or ".." in rel.split("/"):
                    self._not_found()
                    return
                if target.is_dir():
                    if not path.endswith("/"):
                        self._send(301, b"", "text/html", {"Location": path + "/"})
                        return
                    self._json(_listing(target))
                    return
                if target.is_file() and not path.endswith("/"):
                    ctype = "application/json" if target.suffix == ".json" else "application/octet-stream"
                    self._send(200, target.read_bytes(), ctype)
                    return
                self._not_found()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._httpd is not None
        assert self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
