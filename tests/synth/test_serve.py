"""Loopback server: byte ranges, yt-dlp downloads (generic extractor, offline) and each fault route."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request

import pytest
import yt_dlp

from avforge.synth.serve import (
    HOSTILE_FILE_NAME,
    FaultKind,
    Faults,
    LoopbackServer,
    fault_url,
    serve_folder,
)


@pytest.fixture
def served(tmp_path, seeded):
    """A folder with one 'video' of seeded random bytes (content does not matter to HTTP)."""
    root = tmp_path / "www"
    root.mkdir()
    data = seeded.integers(0, 256, size=300_000, dtype="uint8").tobytes()
    (root / "talk.mp4").write_bytes(data)
    (tmp_path / "secret.txt").write_bytes(b"outside the served folder")
    return root, data


def get(url: str, headers: dict | None = None, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_ranges_known_answers(served):
    root, data = served
    with serve_folder(root) as base:
        url = f"{base}/talk.mp4"
        status, headers, body = get(url)
        assert (status, body) == (200, data) and headers["Content-Type"] == "video/mp4"
        status, headers, body = get(url, {"Range": "bytes=10-19"})
        assert (status, body) == (206, data[10:20])
        assert headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        assert get(url, {"Range": "bytes=299990-"})[2] == data[299_990:]
        assert get(url, {"Range": "bytes=-5"})[2] == data[-5:]
        with pytest.raises(urllib.error.HTTPError) as err:
            get(url, {"Range": f"bytes={len(data)}-"})
        assert err.value.code == 416
        head = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(head, timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b""
            assert int(resp.headers["Content-Length"]) == len(data)


def test_nothing_outside_the_folder(served):
    root, _ = served
    with serve_folder(root) as base:
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/", "/nope.mp4"):
            conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=5)
            conn.request("GET", path)
            assert conn.getresponse().status == 404, path
            conn.close()


@pytest.mark.parametrize("chunk", [None, 65_536])
def test_yt_dlp_download_is_byte_identical(scenario_videos, tmp_path, chunk):
    video = scenario_videos["mixed_20s"]
    out = tmp_path / "dl"
    opts = {
        "outtmpl": str(out / "%(id)s.%(ext)s"),
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "socket_timeout": 10,
        "retries": 0,
    }
    if chunk:
        opts["http_chunk_size"] = chunk  # forces byte-range requests
    with LoopbackServer(video.parent) as server:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(server.url(video.name), download=True)
        assert info["extractor"] == "generic"
        files = list(out.iterdir())
        assert len(files) == 1 and files[0].read_bytes() == video.read_bytes()
        if chunk:
            ranged = [r for r in server.requests if r.range_header]
            assert len(ranged) >= video.stat().st_size // chunk
            assert all(r.status == 206 for r in ranged)


def test_not_found_truncated_empty_and_dropped(served):
    root, data = served
    with serve_folder(root, Faults(keep_fraction=0.25)) as base:
        with pytest.raises(urllib.error.HTTPError) as err:
            get(fault_url(base, FaultKind.NOT_FOUND, "talk.mp4"))
        assert err.value.code == 404
        status, headers, body = get(fault_url(base, FaultKind.TRUNCATED, "talk.mp4"))
        assert status == 200 and body == data[: len(data) // 4]
        assert int(headers["Content-Length"]) == len(body)
        assert get(fault_url(base, FaultKind.EMPTY, "talk.mp4"))[2] == b""
        with pytest.raises(http.client.IncompleteRead) as short:
            get(fault_url(base, FaultKind.DROPPED, "talk.mp4"))
        assert short.value.partial == data[: len(data) // 4]


def test_stall_times_out_the_client_and_stops_quickly(served):
    root, _ = served
    server = LoopbackServer(root, Faults(stall_s=30.0))
    base = server.start()
    start = time.monotonic()
    with pytest.raises((TimeoutError, http.client.IncompleteRead)):
        get(fault_url(base, FaultKind.STALL, "talk.mp4"), timeout=1.0)
    assert time.monotonic() - start < 5.0
    # A second client stalls while the server stops: the stop wakes it, bounded.
    outcome: list[str] = []

    def client() -> None:
        try:
            get(fault_url(base, FaultKind.STALL, "talk.mp4"), timeout=20.0)
        except (http.client.IncompleteRead, ConnectionError) as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=client)
    thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    server.stop()
    thread.join(10.0)
    assert time.monotonic() - start < 3.0
    assert outcome and not thread.is_alive()


def test_hostile_titles_reach_the_extractor(served):
    root, _ = served
    opts = {"quiet": True, "no_warnings": True, "socket_timeout": 5}
    with serve_folder(root) as base, yt_dlp.YoutubeDL(opts) as ydl:
        page = ydl.extract_info(fault_url(base, FaultKind.PAGE, "talk.mp4"), download=False)
        named = ydl.extract_info(
            fault_url(base, FaultKind.HOSTILE_NAME, "talk.mp4"), download=False
        )
    page_title = page.get("title") or page["entries"][0]["title"]
    assert "../" in page_title and "\x07" in page_title and "\x1b" in page_title
    assert named["title"] == HOSTILE_FILE_NAME.removesuffix(".mp4")
