"""Fetch session settings (issue 13): the JS runtime yt-dlp sees, cookies, proxy, request spacing.

Real yt-dlp over the loopback server (``avforge.synth.serve``) and a loopback HTTP proxy written
here; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import http.client
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from avforge.core.config import ConfigError, config_from_dict
from avforge.core.errors import SystemicError
from avforge.synth.serve import LoopbackServer
from curation.config import load_curate_config
from curation.download import (
    PACE_PREFIX,
    DownloadConfig,
    bundled_deno,
    download_gap_s,
    fetch,
    fetch_isolated,
    js_runtime_option,
    js_runtime_status,
    pace_in,
    ytdlp_options,
)

FAST = DownloadConfig(retries=0, backoff_s=0.05, socket_timeout_s=5.0, source_timeout_s=30.0)
COOKIE_NAME, COOKIE_VALUE = "avforge_session", "c00kie-4711"


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    """A 2 s test pattern with a tone (small: these tests are about requests, not media)."""
    folder = tmp_path_factory.mktemp("session-media")
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=2",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", str(folder / "talk.mp4"),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=120)
    return folder


@pytest.fixture()
def server(media_dir):
    with LoopbackServer(media_dir) as srv:
        yield srv


def _cfg(**kw) -> DownloadConfig:
    return config_from_dict(DownloadConfig, {**_plain(FAST), **kw})


def _plain(cfg: DownloadConfig) -> dict:
    from avforge.core.config import config_to_dict

    return config_to_dict(cfg)


def _cookies_file(folder: Path) -> Path:
    path = folder / "cookies.txt"
    expiry = int(time.time()) + 86400
    path.write_text(
        "# Netscape HTTP Cookie File\n"
        f"127.0.0.1\tFALSE\t/\tFALSE\t{expiry}\t{COOKIE_NAME}\t{COOKIE_VALUE}\n"
    )
    return path


# ----------------------------------------------------------------------------- JS runtime


def test_ytdlp_sees_the_bundled_js_runtime_and_the_ejs_scripts():
    """Acceptance (offline): yt-dlp configured by avforge reports the deno of this environment as
    its JS runtime, and loads the solver scripts of the yt-dlp-ejs package (version and hash
    checked by yt-dlp itself)."""
    deno = bundled_deno()
    assert deno is not None and Path(deno).is_file()
    assert Path(deno).resolve().is_relative_to(Path(sys.prefix).resolve())
    opts = ytdlp_options(DownloadConfig(), "/tmp", "x", None, [])
    assert opts["js_runtimes"] == {"deno": {"path": deno}}
    status = js_runtime_status(DownloadConfig())
    assert status.problem is None and status.available
    assert status.runtime is not None and status.runtime.startswith("deno ")
    assert status.runtime_path == deno and status.runtime_supported
    assert status.ejs_version == "0.8.0" and status.scripts_source == "python package"
    header = "\n".join(status.header)
    assert f"[debug] JS runtimes: deno-{status.runtime.split()[1]}" in header
    assert "yt_dlp_ejs-0.8.0" in header  # "Optional libraries" line
    assert "[jsc] JS Challenge Providers:" in header and "deno (unavailable)" not in header


def test_the_runtime_is_found_whatever_the_path(tmp_path):
    """With an empty PATH, yt-dlp still finds the environment's deno (an explicit path)."""
    code = (
        "from curation.download import DownloadConfig, js_runtime_status\n"
        "s = js_runtime_status(DownloadConfig())\n"
        "print(s.available, s.runtime_path)\n"
    )
    env = {**os.environ, "PATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    assert out.stdout.split() == ["True", bundled_deno()]


def test_a_broken_runtime_is_reported_not_hidden(tmp_path):
    fake = tmp_path / "deno"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    status = js_runtime_status(DownloadConfig(js_runtime_path=str(fake)))
    assert not status.available and status.runtime is None
    assert status.problem == f"no runnable deno at {fake}"
    off = js_runtime_status(DownloadConfig(js_runtime="none"))
    assert not off.available and "none" in (off.problem or "")
    assert js_runtime_option(DownloadConfig(js_runtime="none")) == {}
    assert js_runtime_option(DownloadConfig(js_runtime="node")) == {"node": {}}


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"cookies_file": "/nonexistent/cookies.txt"}, "download.cookies_file", "does not exist"),
        ({"proxy": "ftp://127.0.0.1:21"}, "download.proxy", "proxy URL"),
        ({"proxy": "http://"}, "download.proxy", "proxy URL"),
        ({"cookies_from_browser": "netscape"}, "download.cookies_from_browser", "unsupported"),
        ({"extractor_args": ["youtube"]}, "download.extractor_args", "IE_KEY:ARGS"),
        ({"js_runtime": "rhino"}, "download.js_runtime", "must be one of"),
        ({"sleep_requests_s": -1}, "download.sleep_requests_s", ">="),
        ({"videos_per_hour": 0}, "download.videos_per_hour", ">"),
    ],
)
def test_bad_session_settings_fail_at_load(tmp_path, values, key, words):
    import yaml

    path = tmp_path / "curate.yaml"
    path.write_text(yaml.safe_dump({"download": values}))
    with pytest.raises(ConfigError) as err:
        load_curate_config(path)
    assert f"{path}: {key}: " in str(err.value) and words in str(err.value)


def test_cookies_file_must_be_a_cookies_file_and_not_with_a_browser(tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("just some text\n")
    with pytest.raises(ConfigError, match=r"not a Netscape cookies\.txt"):
        DownloadConfig(cookies_file=str(junk))
    good = _cookies_file(tmp_path)
    with pytest.raises(ConfigError, match="not both"):
        DownloadConfig(cookies_file=str(good), cookies_from_browser="firefox")


def test_session_settings_reach_ytdlp_as_its_own_parser_makes_them(tmp_path):
    cfg = DownloadConfig(
        cookies_from_browser="firefox:default",
        proxy="socks5://127.0.0.1:1080",
        extractor_args=(
            "youtube:player_client=default,mweb",
            "youtubepot-bgutilhttp:base_url=http://127.0.0.1:4416",
        ),
    )
    opts = ytdlp_options(cfg, str(tmp_path), "x", None, [])
    assert opts["cookiesfrombrowser"] == ("firefox", "default", None, None)
    assert opts["proxy"] == "socks5://127.0.0.1:1080"
    assert opts["extractor_args"] == {
        "youtube": {"player_client": ["default", "mweb"]},
        "youtubepot-bgutilhttp": {"base_url": ["http://127.0.0.1:4416"]},
    }
    assert download_gap_s(DownloadConfig(videos_per_hour=300)) == pytest.approx(12.0)
    assert download_gap_s(DownloadConfig(videos_per_hour=300, sleep_downloads_s=20)) == 20.0


# ----------------------------------------------------------------------------- over loopback


def test_the_cookie_from_a_cookies_file_reaches_the_server(server, tmp_path):
    cookies = _cookies_file(tmp_path)
    before = cookies.read_bytes(), cookies.stat().st_mtime_ns
    cfg = _cfg(cookies_file=str(cookies))
    got = fetch_isolated(server.url("talk.mp4"), str(tmp_path / "out"), "ck", cfg)
    assert Path(got.path).stat().st_size > 0
    seen = server.requests
    assert seen and all(r.cookie == f"{COOKIE_NAME}={COOKIE_VALUE}" for r in seen), seen
    assert (cookies.read_bytes(), cookies.stat().st_mtime_ns) == before  # never written
    server_plain = len(seen)
    fetch(server.url("talk.mp4"), str(tmp_path / "out2"), "nock", FAST)
    assert all(r.cookie is None for r in server.requests[server_plain:])


def test_a_cookies_file_removed_after_load_stops_the_run(server, tmp_path):
    cookies = _cookies_file(tmp_path)
    cfg = _cfg(cookies_file=str(cookies))
    cookies.unlink()
    with pytest.raises(SystemicError, match="does not exist"):
        fetch_isolated(server.url("talk.mp4"), str(tmp_path / "out"), "gone", cfg)
    assert server.requests == []


class _ProxyHandler(BaseHTTPRequestHandler):
    """A forwarding HTTP proxy for absolute-form requests to 127.0.0.1 (HTTP/1.0, one request
    a connection); everything else is refused."""

    server: _Proxy

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._relay("GET")

    def do_HEAD(self) -> None:
        self._relay("HEAD")

    def _relay(self, method: str) -> None:
        parts = urlsplit(self.path)
        if parts.scheme != "http" or parts.hostname != "127.0.0.1":
            self.send_error(403)
            return
        with self.server.lock:
            self.server.seen.append((method, self.path))
        hop = {"connection", "keep-alive", "proxy-connection", "transfer-encoding"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
        conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=10)
        try:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request(method, target, headers=headers)
            resp = conn.getresponse()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in hop:
                    self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            while method != "HEAD" and (chunk := resp.read(65536)):
                self.wfile.write(chunk)
        finally:
            conn.close()


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []


@pytest.fixture()
def proxy():
    srv = _Proxy()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_a_loopback_proxy_sees_the_requests_when_set(server, proxy, tmp_path, media_dir):
    url = server.url("talk.mp4")
    fetch(url, str(tmp_path / "direct"), "d", FAST)
    assert proxy.seen == []
    direct = len(server.requests)
    cfg = _cfg(proxy=f"http://127.0.0.1:{proxy.server_address[1]}")
    got = fetch_isolated(url, str(tmp_path / "proxied"), "p", cfg)
    assert Path(got.path).read_bytes() == (media_dir / "talk.mp4").read_bytes()
    via_proxy = server.requests[direct:]
    assert len(proxy.seen) == len(via_proxy) >= 1
    assert all(path == url for _, path in proxy.seen)


def test_requests_are_spaced_across_the_fetch_children_of_a_worker(server, tmp_path):
    """Two concurrent isolated fetches (two children): every gap between two requests the server
    receives is at least ``sleep_requests_s`` (an invariant, not a speed test)."""
    gap = 0.4
    cfg = _cfg(sleep_requests_s=gap, sleep_jitter=0.25)
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            fetch_isolated(server.url("talk.mp4") + f"?n={n}", str(tmp_path / str(n)), "r", cfg)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    times = sorted(r.time_s for r in server.requests)
    assert len(times) >= 4  # page + media per fetch
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= gap, gaps


def test_pacing_slots_live_in_the_run_scratch_folder_not_in_tmp(server, tmp_path):
    """A curation worker's pacing slots are in ``<run scratch>/.pace-<pid>/``, removed with the run; they
    were in a ``/tmp/avforge-pace-*`` folder removed at exit, which a killed Dask worker never
    reaches (45 were left on this machine). The fetch child paces in its parent's folder."""
    before = set(Path(tempfile.gettempdir()).glob("avforge-pace-*"))
    cfg = _cfg(sleep_requests_s=0.01)
    run = tmp_path / "run"
    pace_in(str(run))  # as curation's worker does before it fetches
    fetch_isolated(server.url("talk.mp4"), str(run / "src-1"), "a", cfg)
    fetch(server.url("talk.mp4"), str(run / "src-2"), "b", cfg)
    paces = sorted(p.name for p in run.iterdir() if p.name.startswith(PACE_PREFIX))
    assert paces == [f"{PACE_PREFIX}{os.getpid()}"]
    assert {p.name for p in (run / paces[0]).iterdir()} == {"request"}
    assert set(Path(tempfile.gettempdir()).glob("avforge-pace-*")) == before


def test_an_unpaced_fetch_outside_a_run_makes_no_pacing_folder(server, tmp_path, monkeypatch):
    """Without pacing (the default) and outside a run, no temporary folder is made: a fetch killed
    by SIGKILL (``test_fetch_faults``) used to leave its ``/tmp/avforge-pace-*`` behind."""
    import curation.download as download

    monkeypatch.setattr(download, "_PACE_DIR", {})  # as in a fresh process
    before = set(Path(tempfile.gettempdir()).glob("avforge-pace-*"))
    fetch_isolated(server.url("talk.mp4"), str(tmp_path / "src"), "c", _cfg())
    fetch(server.url("talk.mp4"), str(tmp_path / "src2"), "d", _cfg())
    assert set(Path(tempfile.gettempdir()).glob("avforge-pace-*")) == before


def test_fetch_starts_keep_the_download_budget(server, tmp_path):
    """Three fetches asked for at once start at least ``3600 / videos_per_hour`` s apart: the
    k-th one's first request reaches the server no sooner than ``t0 + k * gap``."""
    cfg = _cfg(videos_per_hour=3600 / 0.7)  # 0.7 s between fetch starts
    gap = download_gap_s(cfg)
    assert gap == pytest.approx(0.7)
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            fetch_isolated(server.url("talk.mp4") + f"?n={n}", str(tmp_path / str(n)), "b", cfg)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    fetch_isolated(server.url("talk.mp4"), str(tmp_path / "warm"), "w", FAST)  # a warm child
    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    firsts = sorted(
        min(r.time_s for r in server.requests if r.path.endswith(f"?n={n}")) for n in range(3)
    )
    for k, first in enumerate(firsts):
        assert first >= t0 + k * gap, (k, first - t0)
