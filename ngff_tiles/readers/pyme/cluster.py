r"""PYME data servers over HTTP (and local data roots): listings, file GETs, globbing, retries.

A ``pyme-cluster://<filter>/<path>`` URL names a path on a cluster of ``PYMEDataServer``\\ s.
Servers are only ever the ones the user names (``--pyme-server URL``, repeatable, or the
environment variable :data:`SERVERS_ENV`): there is no zeroconf/mDNS discovery, and nothing is
sent anywhere else. The server filter of the URL is kept for messages only: PYME matches it
against service names advertised over mDNS, which are never queried here, so every named server
is asked.

The data server's API (``reference/pyme-server.md`` §3) used here:

- ``GET /<dir>/`` → JSON ``{"name": [type, size], ...}``; directories end in ``/``; 404 when the
  server does not hold the directory (normal: frames are spread over servers);
- ``GET /<file>`` → the file's bytes (``Range`` is ignored by the server, so whole files only).

Listing entries are untrusted: names with ``..``, ``/`` (other than a directory's trailing one),
``\\``, NUL or an absolute form are refused with an error naming the server. Globs are expanded by
walking listings, never with the server's unsandboxed ``__glob``.

A server URL may also be ``file:///path/to/root``: a data server's root on local disk, read
directly (the union of several roots is a cluster's content, as PYME's local short-circuit does).

Connections are pooled per server and per process (HTTP/1.1 keep-alive); listings of several
servers run in parallel; transient failures (connection resets, timeouts, HTTP 5xx/429) are
retried with exponential backoff, and a final failure names the server and the path.
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import logging
import os
import queue
import random
import threading
import time
import urllib.parse
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

from ngff_tiles.errors import MetadataError, SourceError
from ngff_tiles.options import ReaderOptions
from ngff_tiles.tiles import Tile

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_LISTING_BYTES",
    "SCHEME",
    "SERVERS_ENV",
    "ClientSettings",
    "ClusterClient",
    "PymeClusterReader",
    "check_entry_name",
    "get_client",
    "is_cluster_url",
    "normalise_server",
    "servers_from_env",
    "split_cluster_url",
]

log = logging.getLogger(__name__)

SCHEME = "pyme-cluster://"
SERVERS_ENV = "NGFF_TILES_PYME_SERVERS"
"""Environment variable with data server URLs (separated by commas or whitespace)."""
MAX_LISTING_BYTES = 64 << 20
"""Largest directory listing accepted (64 MiB of JSON)."""
MAX_FILE_BYTES = 2 << 30
"""Largest file accepted (2 GiB)."""
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_GLOB_CHARS = frozenset("*?[")


def is_cluster_url(path: str) -> bool:
    """Whether ``path`` is a ``pyme-cluster://`` URL (any case, as PYME accepts)."""
    return path[: len(SCHEME)].lower() == SCHEME


def split_cluster_url(url: str) -> tuple[str, str]:
    """Split ``pyme-cluster://<filter>/<path>`` into (filter, path without leading slash)."""
    if not is_cluster_url(url):
        raise ValueError(f"Expected a pyme-cluster:// URL, got {url!r} instead")
    rest = url[len(SCHEME) :]
    filt, _, path = rest.partition("/")
    path = path.strip("/")
    _check_user_path(path, url)
    return filt, path


def _check_user_path(path: str, where: str) -> None:
    parts = path.split("/") if path else []
    if any(p in ("", ".", "..") for p in parts) or "\\" in path or "\x00" in path:
        raise MetadataError(f"{where}: path {path!r} must be relative, without '.', '..' or empty parts")


def normalise_server(url: str) -> str:
    """Check a server URL (``http://host:port``, ``https://…`` or ``file:///root``); no trailing slash."""
    u = url.strip()
    parsed = urllib.parse.urlsplit(u)
    if parsed.scheme in ("http", "https"):
        if not parsed.hostname:
            raise MetadataError(f"PYME data server URL {url!r} has no host")
        if parsed.query or parsed.fragment:
            raise MetadataError(f"PYME data server URL {url!r} must not have a query or fragment")
        return u.rstrip("/")
    if parsed.scheme == "file":
        root = urllib.parse.unquote(parsed.path)
        if not os.path.isdir(root):
            raise MetadataError(f"PYME data root {url!r}: {root} is not a directory")
        return "file://" + os.path.abspath(root).rstrip("/")
    raise MetadataError(f"PYME data server URL {url!r}: expected http://host:port, https://… or file:///root")


def servers_from_env() -> tuple[str, ...]:
    """Servers named by :data:`SERVERS_ENV` (empty when unset)."""
    text = os.environ.get(SERVERS_ENV, "")
    return tuple(s for s in text.replace(",", " ").split() if s)


def check_entry_name(name: object, server: str, directory: str) -> tuple[str, bool]:
    """Validate one untrusted listing entry; return (name without trailing '/', is_dir).

    Raises
    ------
    SourceError
        A name that is not a plain file or directory name.
    """
    if not isinstance(name, str):
        raise SourceError(f"{server}: listing of /{directory} has a non-string entry {name!r}")
    is_dir = name.endswith("/")
    bare = name[:-1] if is_dir else name
    if (
        not bare
        or bare in (".", "..")
        or "/" in bare
        or "\\" in bare
        or "\x00" in bare
        or bare.startswith("~")
        or (len(bare) > 1 and bare[1] == ":")
    ):
        raise SourceError(
            f"{server}: listing of /{directory} has an unsafe entry {name!r} "
            "(names with '..', '/', or absolute paths are refused)"
        )
    return bare, is_dir


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Network behaviour: timeout per request (s), attempts, first backoff (s), parallel requests."""

    timeout: float = 20.0
    attempts: int = 5
    backoff: float = 0.1
    max_parallel: int = 8


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_MAX_IDLE = 16


class _Pool:
    """Keep-alive HTTP connections to one server, shared by threads."""

    def __init__(self, server: str, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(server)
        self.https = parsed.scheme == "https"
        self.host = parsed.hostname or ""
        self.port = parsed.port
        self.prefix = parsed.path.rstrip("/")
        self.timeout = timeout
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()

    def take(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection (reused: True) or a new one."""
        try:
            return self._idle.get_nowait(), True
        except queue.Empty:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            return cls(self.host, self.port, timeout=self.timeout), False

    def give(self, conn: http.client.HTTPConnection) -> None:
        if self._idle.qsize() >= _MAX_IDLE:
            conn.close()
        else:
            self._idle.put(conn)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _close_pools(pools: dict[str, _Pool]) -> None:
    for pool in pools.values():
        pool.close()


class ClusterClient:
    """Read-only access to the named data servers (HTTP or ``file://`` roots).

    Parameters
    ----------
    servers
        Server URLs, in order of preference for files that several servers hold.
    settings
        Timeouts, retries and parallelism.
    """

    def __init__(self, servers: Sequence[str], settings: ClientSettings | None = None) -> None:
        if not servers:
            raise MetadataError(
                "no PYME data servers named: give --pyme-server URL (repeatable) or set "
                f"{SERVERS_ENV}; servers are never discovered on the network"
            )
        self.servers = tuple(dict.fromkeys(normalise_server(s) for s in servers))
        self.settings = settings or ClientSettings()
        self._pools = {
            s: _Pool(s, self.settings.timeout) for s in self.servers if not s.startswith("file://")
        }
        self._finalizer = weakref.finalize(self, _close_pools, self._pools)

    def close(self) -> None:
        """Close the idle pooled connections (new requests open new ones)."""
        _close_pools(self._pools)

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request -------------------------------------------------------------------------

    def _request(self, server: str, target: str, path: str, max_bytes: int) -> tuple[int, bytes, str]:
        """One GET: (status, body, Location); a stale pooled connection is replaced silently."""
        pool = self._pools[server]
        while True:
            conn, reused = pool.take()
            try:
                conn.request("GET", target, headers={"Accept-Encoding": "identity"})
                resp = conn.getresponse()
            except _STALE:
                conn.close()
                if reused:
                    continue  # the server closed an idle keep-alive connection
                raise
            except BaseException:
                conn.close()
                raise
            break
        try:
            status = resp.status
            if status == 200:
                length = resp.getheader("Content-Length")
                if length is not None and (not length.isdigit() or int(length) > max_bytes):
                    raise SourceError(
                        f"{server}: /{path} is {length} bytes, more than the {max_bytes} accepted"
                    )
                body = resp.read(max_bytes + 1)
                if len(body) > max_bytes:
                    raise SourceError(f"{server}: /{path} is larger than the {max_bytes} bytes accepted")
                if length is not None and len(body) != int(length):
                    raise http.client.IncompleteRead(body, int(length) - len(body))
            else:
                body = resp.read(1 << 20)
                if not resp.isclosed():
                    raise http.client.HTTPException("error body too long")
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            pool.give(conn)
        return status, body, resp.getheader("Location") or ""

    def _http_get(self, server: str, path: str, max_bytes: int) -> bytes | None:
        """GET ``/<path>`` with retries; None on 404."""
        prefix = self._pools[server].prefix
        target = prefix + "/" + urllib.parse.quote(path)
        last = ""
        delay = self.settings.backoff
        redirected = False
        attempt = 0
        while attempt < self.settings.attempts:
            if attempt:
                time.sleep(delay * (1 + 0.25 * random.random()))
                delay = min(delay * 2, 5.0)
            attempt += 1
            try:
                status, body, location = self._request(server, target, path, max_bytes)
            except SourceError:
                raise
            except (OSError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                log.debug("%s: GET /%s attempt %d failed: %s", server, path, attempt, last)
                continue
            if status == 200:
                return body
            if status == 404:
                return None
            if status in (301, 302, 307, 308):
                new = urllib.parse.unquote(urllib.parse.urlsplit(location).path)
                if prefix and new.startswith(prefix + "/"):
                    new = new[len(prefix) :]
                new = new.lstrip("/")
                if not redirected and new.rstrip("/") == path.rstrip("/"):  # a directory's slash
                    redirected = True
                    path = new
                    target = prefix + "/" + urllib.parse.quote(path)
                    attempt -= 1
                    continue
                raise SourceError(f"{server}: /{path} redirects to {location!r}, which is not followed")
            if status in _RETRY_STATUS:
                last = f"HTTP {status}"
                continue
            raise SourceError(f"{server}: GET /{path} failed: HTTP {status}")
        raise SourceError(
            f"{server}: GET /{path} failed after {self.settings.attempts} attempts; last error: {last}"
        )

    def _file_get(
        self, server: str, path: str, max_bytes: int, directory: bool, head: int | None = None
    ) -> bytes | list[str] | None:
        root = server[len("file://") :]
        full = os.path.join(root, *path.split("/")) if path else root
        try:
            if directory:
                if not os.path.isdir(full):
                    return None
                with os.scandir(full) as it:
                    return [e.name + ("/" if e.is_dir() else "") for e in it]
            size = os.path.getsize(full)
            if size > max_bytes:
                raise SourceError(f"{full}: {size} bytes, more than the {max_bytes} accepted")
            with open(full, "rb") as fh:
                return fh.read(head)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise SourceError(f"{full}: cannot read: {exc.strerror}") from None

    # -- API -----------------------------------------------------------------------------------

    def get(
        self, server: str, path: str, max_bytes: int = MAX_FILE_BYTES, head: int | None = None
    ) -> bytes | None:
        """The bytes of ``path`` on ``server``; None when the server does not have it.

        ``head``: only the first ``head`` bytes are wanted. A ``file://`` root reads just those; a
        data server ignores ``Range``, so the whole file is fetched and cut.
        """
        if server.startswith("file://"):
            out = self._file_get(server, path, max_bytes, directory=False, head=head)
            assert out is None or isinstance(out, bytes)
            return out
        body = self._http_get(server, path, max_bytes)
        return body if body is None or head is None else body[:head]

    def get_any(
        self, path: str, servers: Iterable[str], max_bytes: int = MAX_FILE_BYTES, head: int | None = None
    ) -> tuple[str, bytes]:
        """The bytes (or first ``head`` bytes, see :meth:`get`) of ``path`` from the first server with it."""
        tried = []
        failures = []
        for server in servers:
            try:
                body = self.get(server, path, max_bytes, head)
            except SourceError as exc:  # a failing server: try the next one holding the file
                failures.append(str(exc))
                continue
            if body is not None:
                return server, body
            tried.append(server)
        if failures:
            raise SourceError("; ".join(failures))
        raise SourceError(f"{SCHEME}/{path}: not found on {', '.join(tried) or 'any server'}")

    def _list_one(self, server: str, directory: str) -> dict[str, bool] | None:
        if server.startswith("file://"):
            raw = self._file_get(server, directory, MAX_LISTING_BYTES, directory=True)
            if raw is None:
                return None
            assert isinstance(raw, list)
            names: Iterable[object] = raw
        else:
            body = self._http_get(server, directory + "/" if directory else "", MAX_LISTING_BYTES)
            if body is None:
                return None
            try:
                doc = json.loads(body)
            except ValueError:
                raise SourceError(f"{server}: listing of /{directory} is not JSON") from None
            if not isinstance(doc, dict):
                raise SourceError(f"{server}: listing of /{directory} is not a JSON object")
            names = doc.keys()
        out: dict[str, bool] = {}
        for name in names:
            bare, is_dir = check_entry_name(name, server, directory)
            out[bare] = is_dir
        return out

    def listdir(self, directory: str) -> dict[str, tuple[bool, tuple[str, ...]]]:
        """Merged listing of ``directory`` over all servers: name -> (is_dir, servers holding it)."""
        directory = directory.strip("/")
        with ThreadPoolExecutor(max_workers=min(self.settings.max_parallel, len(self.servers))) as ex:
            results = list(ex.map(lambda s: self._list_one(s, directory), self.servers))
        merged: dict[str, tuple[bool, tuple[str, ...]]] = {}
        for server, listing in zip(self.servers, results, strict=True):
            for name, is_dir in (listing or {}).items():
                was_dir, where = merged.get(name, (is_dir, ()))
                merged[name] = (was_dir or is_dir, (*where, server))
        return dict(sorted(merged.items()))

    def glob(self, pattern: str) -> list[str]:
        """Directories matching ``pattern`` (``*``, ``?``, ``[...]`` per path part), by walking listings."""
        pattern = pattern.strip("/")
        _check_user_path(pattern, SCHEME + "/" + pattern)
        current = [""]
        parts = pattern.split("/")
        for k, part in enumerate(parts):
            last = k == len(parts) - 1
            nxt: list[str] = []
            for base in current:
                if not (_GLOB_CHARS & set(part)):
                    nxt.append(f"{base}/{part}".strip("/"))
                    continue
                for name, (is_dir, _) in self.listdir(base).items():
                    if is_dir and fnmatch.fnmatchcase(name, part):
                        nxt.append(f"{base}/{name}".strip("/"))
            current = nxt
            if not current:
                break
            if last:
                break
        return sorted(current)


_CLIENTS: dict[tuple[tuple[str, ...], ClientSettings], ClusterClient] = {}
_CLIENTS_LOCK = threading.Lock()


def get_client(servers: Sequence[str], settings: ClientSettings | None = None) -> ClusterClient:
    """The per-process client for ``servers`` (so frame sources share pooled connections)."""
    key = (tuple(servers), settings or ClientSettings())
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = ClusterClient(key[0], key[1])
        return client


# ---------------------------------------------------------------------------------------------
# reader


class PymeClusterReader:
    """``pyme-cluster://<filter>/<path>`` series read over HTTP from the named data servers.

    ``<path>`` is a series (``user/2026_11_21/series_A.pcs``), a folder holding series, or a glob
    of them (``Bergamot/2020_12_29/EMC0606S2/0*/*.pcs``). Tiles are as for local series
    (:mod:`ngff_tiles.readers.pyme.series`).
    """

    name: ClassVar[str] = "pyme-cluster"
    description: ClassVar[str] = "PYME cluster series on data servers (pyme-cluster:// URLs, --pyme-server)"
    extra: ClassVar[str | None] = None
    priority: ClassVar[int] = 40

    def sniff(self, path: str) -> bool:
        """Claim ``pyme-cluster://`` URLs (no network access)."""
        return is_cluster_url(path)

    def check_dependencies(self) -> None:
        """Core dependencies suffice (numba, from the ``pyme`` extra, only speeds decoding up)."""

    def tiles(self, path: str, options: ReaderOptions) -> list[Tile]:
        """Resolve the URL against the servers and return the tiles of every series it names."""
        from ngff_tiles.readers.pyme.series import FRAME_NAME, SERIES_SUFFIX, tiles_of

        _, rel = split_cluster_url(path)
        servers = options.pyme_servers or servers_from_env()
        client = get_client(servers)
        url = f"{SCHEME}/"
        listings = {}
        if _GLOB_CHARS & set(rel):
            found = [p for p in client.glob(rel) if p.endswith(SERIES_SUFFIX) or self._is_series(client, p)]
        else:
            listing = client.listdir(rel)
            if not listing:
                raise SourceError(f"{path}: not found on {', '.join(client.servers)}")
            if "metadata.json" in listing or any(FRAME_NAME.match(n) for n in listing):
                found = [rel]
                listings[rel] = listing
            else:
                found = [
                    f"{rel}/{n}".strip("/")
                    for n, (is_dir, _) in listing.items()
                    if is_dir and n.endswith(SERIES_SUFFIX)
                ]
        if not found:
            raise SourceError(f"{path}: no PYME series found on {', '.join(client.servers)}")
        return tiles_of(client, found, [url + p for p in found], options, listings)

    @staticmethod
    def _is_series(client: ClusterClient, path: str) -> bool:
        return "metadata.json" in client.listdir(path)
