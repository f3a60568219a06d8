"""A loopback HTTP file server for the curation tests (127.0.0.1 only, never the internet).

Serves files of one folder with byte-range support, plus fault routes:

- ``/stall/<name>``: sends headers, then nothing (a stalled server);
- ``/trickle/<name>``: sends one byte every 0.5 s (a server too slow for the per-source deadline);
- ``/page/<name>?title=...``: an HTML page with ``<title>`` and a ``<video>`` tag pointing at ``/<name>``
  (yt-dlp's generic extractor takes the title from it: used for hostile titles);
- any missing file: 404.
"""

from __future__ import annotations

import html
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


def _handler(root: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _file(self, name: str) -> Path | None:
            p = (root / unquote(name)).resolve()
            if root.resolve() not in p.parents or not p.is_file():
                return None
            return p

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, head: bool) -> None:
            url = urlparse(self.path)
            parts = url.path.lstrip("/").split("/", 1)
            mode = parts[0] if len(parts) == 2 and parts[0] in {"stall", "trickle", "page"} else ""
            name = parts[1] if mode else url.path.lstrip("/")
            path = self._file(name)
            if path is None:
                self.send_error(404)
                return
            if mode == "page":
                title = parse_qs(url.query).get("title", ["video"])[0]
                body = (
                    f"<html><head><title>{html.escape(title)}</title></head><body>"
                    f'<video src="/{name}" type="video/mp4"></video></body></html>'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)
                return
            data = path.read_bytes()
            start, end = 0, len(data) - 1
            rng = self.headers.get("Range")
            status = 200
            if rng and rng.startswith("bytes=") and mode == "":
                a, _, b = rng[6:].split(",")[0].partition("-")
                start = int(a) if a else max(0, len(data) - int(b))
                end = int(b) if (a and b) else len(data) - 1
                end = min(end, len(data) - 1)
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if head:
                return
            try:
                if mode == "stall":
                    time.sleep(30)
                    return
                if mode == "trickle":
                    for i in range(start, end + 1):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(0.5)
                    return
                self.wfile.write(data[start : end + 1])
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


@contextmanager
def serve_folder(root: str | os.PathLike[str]) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 at a free port; yields the base URL (no trailing slash)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Path(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url(path: str = "video.mp4") -> str:
    """A loopback URL on a port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{path}"
