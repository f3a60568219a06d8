"""The isolated fetch under faults that are not the source's: Ctrl-C, a parent that dies, a full or
read-only disk; the reused fetch process; the host allow-list. Real yt-dlp over the loopback server."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from avforge.core.config import config_from_dict
from avforge.core.errors import RunInterrupted, StorageError
from avforge.synth.serve import FaultKind, Faults, LoopbackServer, fault_url
from curation.config import CurateConfig
from curation.download import DownloadConfig, DownloadError, fetch, fetch_isolated
from curation.sources import Source
from curation.tasks import curate_task
from manifests.schema import SourceError, SourceKind
from tests.helpers.signals import sigint_default

REPO = Path(__file__).resolve().parents[2]
FAST = DownloadConfig(retries=0, backoff_s=0.05, socket_timeout_s=20.0, source_timeout_s=30.0)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 s test pattern with audio (a real MP4 for yt-dlp to fetch)."""
    folder = tmp_path_factory.mktemp("fetch-faults-media")
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=1",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=1",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", str(folder / "talk.mp4"),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=120)
    return folder


@pytest.fixture(scope="module")
def server(media_dir: Path):
    with LoopbackServer(media_dir, Faults(stall_s=25.0)) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh_fetch_processes():
    """Each test starts and ends without fetch children in this process."""
    import curation.download

    shutdown = getattr(curation.download, "shutdown_fetch_processes", lambda: None)
    shutdown()
    yield
    shutdown()


def _wait_for(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def _stall_requested(srv: LoopbackServer) -> bool:
    return any(r.method == "GET" and "/fault/stall/" in r.path for r in srv.requests)


def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --------------------------------------------------------------------------- Ctrl-C and orphans


def test_a_fetch_child_killed_by_a_signal_mid_transfer_is_an_interruption(server, tmp_path):
    """SIGINT to the fetch child mid-transfer (not sent by the parent): RunInterrupted, and the
    task writes no failed row (a rerun fetches the source again)."""
    url = fault_url(server.base_url, FaultKind.STALL, "talk.mp4")
    source = Source(source_id="stalled-talk", url=url, kind=SourceKind.URL)
    cfg = CurateConfig(download=FAST)
    corpus, work = tmp_path / "corpus", tmp_path / "work"
    sent: list[int] = []

    def interrupt_child() -> None:
        from curation.download import fetch_process_ids

        # this process may have other children (servers, earlier tests' helpers): take the pool's
        _wait_for(lambda: _stall_requested(server) and fetch_process_ids())
        pid = fetch_process_ids()[0]
        os.kill(pid, signal.SIGINT)
        sent.append(pid)

    killer = threading.Thread(target=interrupt_child, daemon=True)
    killer.start()
    t0 = time.monotonic()
    with pytest.raises(RunInterrupted, match="SIGINT"):
        curate_task(source, cfg, str(corpus), str(work))
    killer.join(5)
    assert sent and time.monotonic() - t0 < 20
    assert not list(corpus.rglob("*.arrow"))  # no sources row: the source is not "done"
    assert not _alive(sent[0])


_PARENT = textwrap.dedent(
    """
    import json, os, signal, sys
    from curation.download import DownloadConfig, DownloadError, fetch_isolated
    got = []
    if sys.argv[3] == "handle":
        signal.signal(signal.SIGINT, lambda *a: got.append("SIGINT"))
    cfg = DownloadConfig(retries=0, socket_timeout_s=20.0, source_timeout_s=float(sys.argv[4]))
    try:
        fetch_isolated(sys.argv[1], sys.argv[2], "p", cfg)
        out = {"reason": "ok"}
    except DownloadError as exc:
        out = {"reason": exc.reason.value, "detail": exc.detail}
    out["signals"] = got
    print(json.dumps(out), flush=True)
    """
)


def _start_parent(url: str, out: Path, mode: str, timeout_s: float) -> subprocess.Popen[str]:
    """A parent process (own process group, like a shell job) fetching ``url`` isolated."""
    return subprocess.Popen(
        [sys.executable, "-c", _PARENT, url, str(out), mode, str(timeout_s)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=sigint_default,  # SIGINT acts even when this test run started with it ignored
    )


def test_ctrl_c_to_the_parents_group_does_not_reach_the_fetch_child(server, tmp_path):
    """The terminal's SIGINT goes to the parent's process group; the fetch child is in its own
    session, so it keeps going (here until its deadline) and the parent decides."""
    url = fault_url(server.base_url, FaultKind.STALL, "talk.mp4")
    parent = _start_parent(url, tmp_path, "handle", 4.0)
    try:
        _wait_for(lambda: _stall_requested(server) and _children(parent.pid))
        child = _children(parent.pid)[0]
        assert os.getsid(child) != os.getsid(parent.pid)
        os.killpg(parent.pid, signal.SIGINT)
        stdout, stderr = parent.communicate(timeout=30)
    finally:
        parent.kill()
    reply = json.loads(stdout.strip().splitlines()[-1])
    assert reply["signals"] == ["SIGINT"]  # the group got it
    assert reply["reason"] == "timeout" and "killed" in reply["detail"], (reply, stderr[-500:])
    assert not _alive(child)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_or_killed_parent_leaves_no_fetch_process(server, tmp_path, how):
    """Ctrl-C (KeyboardInterrupt in the parent) and SIGKILL (no clean-up at all): the fetch child
    does not outlive its parent."""
    url = fault_url(server.base_url, FaultKind.STALL, "talk.mp4")
    parent = _start_parent(url, tmp_path, "default", 20.0)
    try:
        _wait_for(lambda: _stall_requested(server) and _children(parent.pid))
        child = _children(parent.pid)[0]
        os.killpg(parent.pid, how)
        parent.wait(timeout=20)
        _wait_for(lambda: not _alive(child), timeout_s=5.0)
    finally:
        parent.kill()
        parent.wait()


# --------------------------------------------------------------------------- the reused child


def test_the_fetch_process_is_reused_and_replaced_after_a_deadline_kill(
    server, media_dir, tmp_path
):
    from curation.download import fetch_process_ids

    dead = fault_url(server.base_url, FaultKind.NOT_FOUND, "talk.mp4")
    for stem in ("a", "b"):
        with pytest.raises(DownloadError) as err:
            fetch_isolated(dead, str(tmp_path), stem, FAST)
        assert err.value.reason == SourceError.NOT_FOUND
    first = fetch_process_ids()
    got = fetch_isolated(server.url("talk.mp4"), str(tmp_path / "ok"), "ok", FAST)
    assert fetch_process_ids() == first and len(first) == 1
    assert Path(got.path).read_bytes() == (media_dir / "talk.mp4").read_bytes()

    slow = DownloadConfig(retries=0, socket_timeout_s=20.0, source_timeout_s=1.0)
    with pytest.raises(DownloadError) as err:
        fetch_isolated(
            fault_url(server.base_url, FaultKind.STALL, "talk.mp4"), str(tmp_path), "s", slow
        )
    assert err.value.reason == SourceError.TIMEOUT and "killed" in err.value.detail
    assert fetch_process_ids() == [] and not _alive(first[0])
    with pytest.raises(DownloadError):
        fetch_isolated(dead, str(tmp_path), "c", FAST)
    assert len(fetch_process_ids()) == 1 and fetch_process_ids() != first


def test_concurrent_threads_get_their_own_fetch_process(server, tmp_path):
    """Three fetches in flight at once (all stalled on the server) are served by three different
    fetch children; once they are over, the pool holds no more than that."""
    from curation.download import fetch_process_ids

    stall = fault_url(server.base_url, FaultKind.STALL, "talk.mp4")
    slow = DownloadConfig(retries=0, socket_timeout_s=20.0, source_timeout_s=4.0)
    reasons: dict[str, SourceError] = {}

    def one(stem: str) -> None:
        try:
            fetch_isolated(stall, str(tmp_path / stem), stem, slow)
        except DownloadError as exc:
            reasons[stem] = exc.reason

    def stalls() -> int:  # the server is shared by the module's tests: count from here on
        return sum("/fault/stall/" in r.path for r in server.requests)

    before = stalls()
    threads = [threading.Thread(target=one, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    _wait_for(lambda: stalls() >= before + 3)
    in_flight = fetch_process_ids()
    assert len(in_flight) == len(set(in_flight)) == 3 and all(_alive(p) for p in in_flight)
    for t in threads:
        t.join(60)
    assert reasons == dict.fromkeys(("t0", "t1", "t2"), SourceError.TIMEOUT)
    assert fetch_process_ids() == []  # each was killed at its deadline, none left behind
    assert not any(_alive(p) for p in in_flight)


# --------------------------------------------------------------------------- storage


class _FullDisk:
    """A file object whose writes fail like a full disk (open succeeded, write did not)."""

    def __init__(self, code: int) -> None:
        self.code = code

    def write(self, data: bytes) -> int:
        raise OSError(self.code, os.strerror(self.code))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("fault", ["ENOSPC-write", "EROFS-open", "EACCES-open", "EDQUOT-write"])
def test_storage_errors_while_downloading_stop_the_run(server, tmp_path, monkeypatch, fault):
    """An OSError at yt-dlp's write layer is StorageError naming the folder, never a source row."""
    import yt_dlp.downloader.common as common

    name, where = fault.split("-")
    code = getattr(errno, name)

    def sanitize_open(filename: str, mode: str):
        if where == "open":
            raise OSError(code, os.strerror(code), filename)
        return _FullDisk(code), filename

    monkeypatch.setattr(common, "sanitize_open", sanitize_open)
    out = tmp_path / "scratch"
    with pytest.raises(StorageError) as err:
        fetch(server.url("talk.mp4"), str(out), "x", FAST)
    msg = str(err.value)
    assert str(out) in msg and os.strerror(code) in msg and "\n" not in msg


_INJECT = textwrap.dedent(
    """
    import errno, os
    if os.environ.get("AVFORGE_TEST_DISK_FULL"):
        import yt_dlp.downloader.common as common

        class Full:
            def write(self, data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            def close(self):
                pass

        common.sanitize_open = lambda filename, mode: (Full(), filename)
    """
)


def test_a_full_disk_in_the_isolated_fetch_is_a_storage_error(server, tmp_path, monkeypatch):
    """The same write-layer fault inside the fetch child (injected by a sitecustomize module):
    the child carries the classification back and the parent raises StorageError."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(_INJECT)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("AVFORGE_TEST_DISK_FULL", "1")
    out = tmp_path / "scratch"
    with pytest.raises(StorageError) as err:
        fetch_isolated(server.url("talk.mp4"), str(out), "x", FAST)
    assert str(out) in str(err.value) and "No space left" in str(err.value)


def test_an_unwritable_scratch_folder_is_a_storage_error(server, tmp_path, monkeypatch):
    """Our own write (creating the scratch folder) failing read-only: StorageError, not a row."""
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args, **kwargs):
        if self.name == "scratch":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(StorageError, match="Read-only file system"):
        fetch(server.url("talk.mp4"), str(tmp_path / "scratch"), "x", FAST)


def test_a_network_eperm_stays_a_source_failure():
    """EPERM without a file name (a firewall refusing connect) is the network's, not the disk's."""
    from curation.download import storage_oserror

    assert storage_oserror(PermissionError(errno.EPERM, "Operation not permitted")) is None
    assert storage_oserror(PermissionError(errno.EACCES, "denied", "/x/y.part")) is not None
    wrapped = RuntimeError("wrapper")
    wrapped.__context__ = OSError(errno.ENOSPC, "full")
    assert storage_oserror(wrapped) is not None


# --------------------------------------------------------------------------- allowed hosts


@pytest.fixture
def two_hosts(media_dir: Path, tmp_path: Path):
    """Server A serves a page whose <video src> is an absolute URL on server B (another port)."""
    page_dir = tmp_path / "pages"
    page_dir.mkdir()
    with LoopbackServer(media_dir) as b, LoopbackServer(page_dir) as a:
        (page_dir / "talk.html").write_text(
            "<!DOCTYPE html><html><head><title>a talk</title></head><body>"
            f'<video controls src="{b.url("talk.mp4")}"></video></body></html>'
        )
        yield a, b


def _port(srv: LoopbackServer) -> str:
    return srv.base_url.rsplit(":", 1)[1]


@pytest.mark.parametrize("isolated", [False, True])
def test_a_page_cannot_send_the_fetch_to_a_host_outside_the_allow_list(
    two_hosts, tmp_path, isolated
):
    a, b = two_hosts
    cfg = DownloadConfig(
        retries=0,
        socket_timeout_s=5.0,
        allowed_hosts=(f"127.0.0.1:{_port(a)}",),
        isolate_process=isolated,
    )
    with pytest.raises(DownloadError) as err:
        fetch_isolated(a.url("talk.html"), str(tmp_path / "o"), "x", cfg)
    assert err.value.reason == SourceError.INVALID_SOURCE
    assert f"127.0.0.1:{_port(b)}" in err.value.detail and "allowed_hosts" in err.value.detail
    assert any(r.path.endswith("talk.html") for r in a.requests)
    assert b.requests == []  # not one request reached the other host
    assert not list((tmp_path / "o").glob("x*"))


def test_the_allow_list_lets_listed_hosts_through(two_hosts, media_dir, tmp_path):
    a, b = two_hosts
    cfg = DownloadConfig(
        retries=0, socket_timeout_s=5.0, allowed_hosts=("localhost", "127.0.0.1:*")
    )
    got = fetch(a.url("talk.html"), str(tmp_path), "x", cfg)
    assert Path(got.path).read_bytes() == (media_dir / "talk.mp4").read_bytes()
    assert got.title is not None and got.title.startswith("a talk")
    assert any(r.path.endswith("talk.mp4") for r in b.requests)


def test_a_source_url_outside_the_allow_list_is_never_requested(two_hosts, tmp_path):
    a, _ = two_hosts
    cfg = DownloadConfig(retries=0, allowed_hosts=("*.example.org",))
    with pytest.raises(DownloadError) as err:
        fetch(a.url("talk.html"), str(tmp_path), "x", cfg)
    assert err.value.reason == SourceError.INVALID_SOURCE
    assert a.requests == []


def test_allowed_hosts_patterns_and_config():
    from curation.download import host_allowed

    yt = ("youtube.com", "*.youtube.com", "*.googlevideo.com")
    assert host_allowed("https://www.youtube.com/watch?v=x", yt)
    assert host_allowed("https://YOUTUBE.com/watch?v=x", yt)
    assert host_allowed("https://r4---sn-abc.googlevideo.com/videoplayback?x", yt)
    assert not host_allowed("https://youtube.com.evil.net/x", yt)
    assert not host_allowed("http://169.254.169.254/latest/meta-data", yt)
    assert not host_allowed("http://[::1:bad/x", yt) and not host_allowed("file:///etc/passwd", yt)
    assert host_allowed("http://anything/x", ())
    assert host_allowed("http://127.0.0.1:8000/x", ("127.0.0.1:8000",))
    assert not host_allowed("http://127.0.0.1:8001/x", ("127.0.0.1:8000",))
    assert host_allowed("https://example.org/x", ("example.org:443",))
    assert host_allowed("http://[::1]:9/x", ("[::1]:*",))
    cfg = config_from_dict(DownloadConfig, {"allowed_hosts": ["a.org", "*.b.org"]})
    assert cfg.allowed_hosts == ("a.org", "*.b.org")
    with pytest.raises(ValueError, match="allowed_hosts"):
        DownloadConfig(allowed_hosts=("bad host",))
