"""A loopback HTTP server for a folder of videos, with byte ranges and injectable faults.

``with serve_folder(folder) as base_url:`` serves ``folder`` on ``127.0.0.1`` at a free port from a
background thread (stdlib ``ThreadingHTTPServer``) until the block ends. GET and HEAD, single byte
ranges (``206``/``416``), no directory listings, nothing outside the folder. yt-dlp's generic extractor
downloads a served ``.mp4`` URL like any direct video link, so curation runs offline.

Fault routes, for the failure tests of the downloader and the pipeline (build them with
:func:`fault_url`; ``<name>`` is a file in the folder):

- ``/fault/404/<name>``: 404 Not Found;
- ``/fault/stall/<name>``: headers for the full file, then nothing for ``stall_s`` (bounded), then the
  connection closes;
- ``/fault/truncated/<name>``: a file cut to ``keep_fraction`` of its bytes, with an honest length
  (a download that "succeeds" with corrupt media);
- ``/fault/dropped/<name>``: the full length announced, the connection dropped after ``keep_fraction``
  of the bytes (a download that fails mid-way, also on retries);
- ``/fault/empty/<name>``: a zero-byte 200 response;
- ``/fault/page/<name>``: an HTML page with a hostile ``<title>`` (``../``, control characters, a fake
  header line) embedding ``<video src="/<name>">``;
- ``/fault/named/<name>/<hostile file name>``: the file under a URL whose last segment is hostile;
- ``/fault/429/<name>``: ``429 Too Many Requests`` for the first ``throttle_count`` requests of that
  path, then the file (a rate limit that passes);
- ``/fault/trickle/<name>``: the file one byte every ``trickle_interval_s`` (a server alive but too
  slow for any deadline).

:func:`closed_port_url` gives a loopback URL nobody listens on (connection refused).

Shutdown is bounded: leaving the block wakes stalled handlers, closes open connections and joins the
threads; every connection also has a socket timeout.
"""

from __future__ import annotations

import enum
import html
import mimetypes
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from avforge.core.config import check_range

HOSTILE_TITLE = "../../etc/passwd\x07\x1b[31m talk\r\nX-Evil: 1 \u202e4pm.exe"
HOSTILE_FILE_NAME = "../../../tmp/evil\x07\x1b[2J;rm -rf ~.mp4"
CHUNK_BYTES = 256 * 1024
SOCKET_TIMEOUT_S = 10.0


class FaultKind(enum.StrEnum):
    NOT_FOUND = "404"
    STALL = "stall"
    TRUNCATED = "truncated"
    DROPPED = "dropped"
    EMPTY = "empty"
    PAGE = "page"
    HOSTILE_NAME = "named"
    THROTTLED = "429"
    TRICKLE = "trickle"


@dataclass(frozen=True)
class Faults:
    """Parameters of the fault routes."""

    stall_s: float = 5.0
    """How long a stalled response sends nothing (cut short when the server stops)."""
    keep_fraction: float = 0.5
    """Share of the bytes sent by truncated and dropped responses."""
    hostile_title: str = HOSTILE_TITLE
    """``<title>`` of the fault page."""
    throttle_count: int = 1
    """Requests of a throttled path answered 429 before it serves the file."""
    trickle_interval_s: float = 0.5
    """Pause after each byte of a trickled response (cut short when the server stops)."""

    def __post_init__(self) -> None:
        check_range(self, "stall_s", 0.0, 120.0)
        check_range(self, "keep_fraction", 0.0, 1.0)
        check_range(self, "throttle_count", 0, 1_000_000)
        check_range(self, "trickle_interval_s", 0.0, 60.0)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    range_header: str | None
    status: int
    cookie: str | None = None
    """The request's ``Cookie`` header."""
    time_s: float = 0.0
    """``time.monotonic()`` when the response started."""


def fault_url(base_url: str, kind: FaultKind, name: str) -> str:
    """The URL of fault route ``kind`` for file ``name`` of the served folder."""
    url = f"{base_url}/fault/{kind.value}/{quote(name)}"
    if kind is FaultKind.HOSTILE_NAME:
        url += "/" + quote(HOSTILE_FILE_NAME, safe="")
    return url


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(start, end_inclusive)``, ``None`` for the whole file, or ``"unsatisfiable"``."""
    if not header or not header.startswith("bytes="):
        return None
    first = header[6:].split(",")[0].strip()
    a, sep, b = first.partition("-")
    try:
        if not sep:
            return None
        if a:
            start, end = int(a), (int(b) if b else size - 1)
        else:
            start, end = max(0, size - int(b)), size - 1
    except ValueError:
        return None
    if start >= size or start > end:
        return "unsatisfiable"
    return start, min(end, size - 1)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, root: Path, faults: Faults) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root.resolve()
        self.faults = faults
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.log: list[RequestRecord] = []
        self.open_sockets: set[socket.socket] = set()
        self.throttled: dict[str, int] = {}

    def close_open_connections(self) -> None:
        with self.lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue  # already closed by its handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.open_sockets.discard(self.connection)
        try:
            super().finish()
        except OSError:
            return  # the client or shutdown closed the socket first

    def handle(self) -> None:
        # Keep-alive loop, bounded by the server's stop event and the socket timeout; a client that
        # resets or a connection closed at shutdown ends the loop quietly.
        self.close_connection = True
        try:
            self.handle_one_request()
            while not self.close_connection and not self.server.stop_event.is_set():
                self.handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        return  # requests are recorded in server.log instead of stderr

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if str(code).isdigit() else 0
        record = RequestRecord(
            self.command,
            self.path,
            self.headers.get("Range"),
            status,
            self.headers.get("Cookie"),
            time.monotonic(),
        )
        with self.server.lock:
            self.server.log.append(record)

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _file(self, rel: str) -> Path | None:
        candidate = (self.server.root / rel).resolve()
        if not candidate.is_relative_to(self.server.root) or not candidate.is_file():
            return None
        return candidate

    def _respond(self, head: bool) -> None:
        parts = unquote(urlsplit(self.path).path).lstrip("/").split("/")
        kind: FaultKind | None = None
        if len(parts) >= 3 and parts[0] == "fault" and parts[1] in set(FaultKind):
            kind = FaultKind(parts[1])
            rel = parts[2]
        else:
            rel = "/".join(parts)
        path = self._file(rel) if rel else None
        if path is None or kind is FaultKind.NOT_FOUND:
            self.send_error(404)
            return
        if kind is FaultKind.PAGE:
            self._send_page(rel, head)
            return
        if kind is FaultKind.THROTTLED:
            with self.server.lock:
                seen = self.server.throttled.get(self.path, 0) + 1
                self.server.throttled[self.path] = seen
            if seen <= self.server.faults.throttle_count:
                self.send_error(429)
                return
        data = path.read_bytes()
        faults = self.server.faults
        if kind is FaultKind.TRUNCATED:
            data = data[: int(len(data) * faults.keep_fraction)]
        elif kind is FaultKind.EMPTY:
            data = b""
        cut = int(len(data) * faults.keep_fraction) if kind is FaultKind.DROPPED else len(data)
        self._send_bytes(data, path, head, kind, cut)

    def _send_page(self, rel: str, head: bool) -> None:
        title = html.escape(self.server.faults.hostile_title, quote=False)
        body = (
            f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
            f'<video controls src="/{quote(rel)}"></video></body></html>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_bytes(
        self, data: bytes, path: Path, head: bool, kind: FaultKind | None, cut: int
    ) -> None:
        size = len(data)
        rng = _parse_range(self.headers.get("Range"), size)
        if rng == "unsatisfiable":
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = rng if isinstance(rng, tuple) else (0, size - 1)
        self.send_response(206 if isinstance(rng, tuple) else 200)
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self.send_header("Content-Type", ctype)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if isinstance(rng, tuple):
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        if kind is FaultKind.STALL:
            self.wfile.flush()
            self.server.stop_event.wait(self.server.faults.stall_s)
            self.close_connection = True
            return
        stop = min(end + 1, cut)
        if kind is FaultKind.TRICKLE:
            self._trickle(data[start:stop])
            return
        try:
            for offset in range(start, stop, CHUNK_BYTES):
                if self.server.stop_event.is_set():
                    break
                self.wfile.write(data[offset : min(offset + CHUNK_BYTES, stop)])
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        if stop < end + 1:
            self.close_connection = True  # DROPPED: the rest never comes

    def _trickle(self, data: bytes) -> None:
        try:
            for i in range(len(data)):
                if self.server.stop_event.is_set():
                    break
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                self.server.stop_event.wait(self.server.faults.trickle_interval_s)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


def closed_port_url(path: str = "video.mp4") -> str:
    """A loopback URL on a port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{path}"


class LoopbackServer:
    """Serve a folder on 127.0.0.1 from a background thread (see the module doc).

    Use as a context manager, or call :meth:`start` / :meth:`stop`. ``requests`` lists what was asked.
    """

    def __init__(self, root: str | Path, faults: Faults | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotADirectoryError(f"not a folder: {self.root}")
        self.faults = faults or Faults()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, name: str) -> str:
        """URL of file ``name`` (relative to the folder)."""
        return f"{self.base_url}/{quote(name)}"

    @property
    def requests(self) -> list[RequestRecord]:
        if self._server is None:
            return []
        with self._server.lock:
            return list(self._server.log)

    def start(self) -> str:
        """Start serving; returns the base URL (no trailing slash)."""
        if self._server is None:
            self._server = _Server(self.root, self.faults)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="avforge-loopback-http",
                daemon=True,
            )
            self._thread.start()
        return self.base_url

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop serving: wake stalls, close connections, join the threads (bounded by ``timeout_s``)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.stop_event.set()
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        thread.join(timeout_s)

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve_folder(root: str | Path, faults: Faults | None = None) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 for the duration of the block; yields the base URL."""
    with LoopbackServer(root, faults) as server:
        yield server.base_url
