"""The run itself loses nothing and exposes nothing: Ctrl-C then a rerun, two concurrent runs into one
corpus, a corrupt done marker, an unwritable or full output, failed sources without empty shards, a
loopback-only Dask cluster with its scratch in the run's folder (issue #12 items 1, 2, 4, 10, 12, 13, 14).

Real parts throughout: the ``avforge`` command in a subprocess (its own process group, so SIGINT
reaches it as a terminal's Ctrl-C does), yt-dlp over the loopback server of ``tests/helpers``, ffmpeg,
a local Dask cluster, Arrow files. Only the disk-full case injects an ``OSError`` at the write layer.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from typer.testing import CliRunner

import manifests
import manifests.io
from avforge.cli import app
from avforge.core import files
from avforge.core.cluster import ClusterConfig, ClusterType, LocalClusterConfig, open_client
from avforge.synth.serve import serve_folder
from curation.config import CurateConfig, RunConfig
from curation.download import PACE_PREFIX
from curation.pipeline import curate
from curation.process import failed_record
from curation.report import write_report
from curation.sources import read_sources_arg, scan_folder
from curation.tasks import read_done, write_failed
from manifests.schema import SourceError
from tests.curation.test_faults import CFG, SYNC, fingerprint
from tests.helpers.curation_videos import SYNTH_SPEAKER
from tests.helpers.signals import sigint_default

N_TALKS = 4
AVFORGE = str(Path(sys.executable).with_name("avforge"))
SPEAKER = {
    "min_speaking_score": SYNTH_SPEAKER.min_speaking_score,
    "min_sync_confidence": SYNTH_SPEAKER.min_sync_confidence,
}
RUN_CONFIG = {
    "run": {"progress": False, "max_in_flight_per_worker": 1},
    "download": {"retries": 0, "socket_timeout_s": 10.0},
    "speaker": SPEAKER,
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def talks_url_list(tmp_path_factory, clean_talk):
    """A URL list of N_TALKS copies of the 8 s clean talk served over loopback (one server for the
    module, so every run sees the same URLs and hence the same source ids)."""
    folder = tmp_path_factory.mktemp("served")
    for i in range(N_TALKS):
        shutil.copyfile(clean_talk, folder / f"talk{i}.mp4")
    with serve_folder(folder) as base:
        urls = tmp_path_factory.mktemp("list") / "urls.txt"
        urls.write_text("".join(f"{base}/talk{i}.mp4\n" for i in range(N_TALKS)))
        yield urls


def _config(folder: Path, n_workers: int) -> tuple[Path, Path]:
    config = folder / "curate.yaml"
    config.write_text(yaml.safe_dump(RUN_CONFIG))
    cluster = folder / "dask_cluster.yaml"
    cluster.write_text(
        yaml.safe_dump({"type": "local", "local": {"n_workers": n_workers, "memory_limit": "3GiB"}})
    )
    return config, cluster


def _command(sources: Path, corpus: Path, config: Path, cluster: Path) -> list[str]:
    return [
        AVFORGE, "curate", str(sources), "--out", str(corpus),
        "--config", str(config), "--cluster", str(cluster),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def undisturbed_urls(talks_url_list, tmp_path_factory):
    """The fingerprint of one undisturbed run over the URL list (in process, synchronous)."""
    corpus = tmp_path_factory.mktemp("undisturbed-urls")
    sources = read_sources_arg(talks_url_list, CFG.download.avspeech_url_template)
    summary = curate(sources, str(corpus), CFG, SYNC)
    assert summary.sources_ok == N_TALKS and summary.segments_kept >= N_TALKS
    return fingerprint(corpus)


def _done(corpus: Path) -> list[Path]:
    folder = corpus / "sources"
    return [p for p in folder.glob("*.arrow") if not p.name.startswith(".")]


def _no_run_folders_left(corpus: Path) -> None:
    work = corpus / ".work"
    assert not work.exists() or not [p for p in work.iterdir() if p.name.startswith("run-")]


# --------------------------------------------------------------------------- Ctrl-C (item 1)


@pytest.mark.slow
def test_ctrl_c_then_rerun_equals_an_undisturbed_run(talks_url_list, undisturbed_urls, tmp_path):
    corpus = tmp_path / "corpus"
    # one worker, one source in flight: when the first source is done, the second is being fetched
    # or decoded and the last two are not submitted yet, so the interrupt always leaves work to do
    config, cluster = _config(tmp_path, n_workers=1)
    cmd = _command(talks_url_list, corpus, config, cluster)
    proc = subprocess.Popen(
        cmd,
        start_new_session=True,
        preexec_fn=sigint_default,  # SIGINT acts even when this test run started with it ignored
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not _done(corpus):
        time.sleep(0.1)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        "error: interrupted; rerun the same command to resume"
    ), err[-2000:]
    assert "Traceback" not in err and "CancelledError" not in err, err[-2000:]
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    done = manifests.read_sources(corpus).to_pylist()
    assert done and all(r["status"] == "ok" for r in done), done  # no shutdown became a failure
    assert len(done) < N_TALKS, "every source finished: nothing was interrupted"
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"({len(done)} already done)" in rerun.stdout
    assert fingerprint(corpus) == undisturbed_urls
    _no_run_folders_left(corpus)


# --------------------------------------------------------------------------- concurrency (item 2)


@pytest.mark.slow
def test_two_concurrent_runs_into_one_corpus_equal_an_undisturbed_run(
    talks_url_list, undisturbed_urls, tmp_path
):
    corpus = tmp_path / "corpus"
    config, cluster = _config(tmp_path, n_workers=1)
    cmd = _command(talks_url_list, corpus, config, cluster)
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    time.sleep(0.5)  # the second starts while the first fetches: both work on the same sources
    runs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-2000:]
        assert "0 failed" in out, out
    assert fingerprint(corpus) == undisturbed_urls
    _no_run_folders_left(corpus)


# --------------------------------------------------------------------------- corrupt corpus (item 4)


@pytest.fixture(scope="module")
def one_done(tmp_path_factory, clean_talk):
    """A corpus with one finished source (the clean talk), curated once for the module."""
    videos = tmp_path_factory.mktemp("one-video")
    shutil.copyfile(clean_talk, videos / "talk.mp4")
    corpus = tmp_path_factory.mktemp("one-done")
    summary = curate(scan_folder(videos), str(corpus), CFG, SYNC)
    assert summary.sources_ok == 1 and summary.segments_kept >= 1
    return videos, corpus


def _newer_schema(path: Path) -> None:
    table = manifests.io.open_ipc(str(path), memory_map=False)
    meta = dict(table.schema.metadata)
    version_key = next(k for k in meta if k.endswith(b"version"))
    meta[version_key] = b"999"
    manifests.io.write_table(str(path), table.replace_schema_metadata(meta))


@pytest.mark.parametrize("damage", ["corrupt", "newer_schema"])
def test_a_damaged_sources_shard_stops_the_rerun_and_is_never_overwritten(
    one_done, tmp_path, damage
):
    videos, done = one_done
    corpus = tmp_path / "corpus"
    shutil.copytree(done, corpus)
    (shard,) = _done(corpus)
    if damage == "corrupt":
        shard.write_bytes(shard.read_bytes()[:100])
    else:
        _newer_schema(shard)
    before = {p: p.read_bytes() for p in corpus.rglob("*.arrow")}
    sync = tmp_path / "sync.yaml"
    sync.write_text("type: synchronous\n")
    cfg = tmp_path / "curate.yaml"
    cfg.write_text(yaml.safe_dump({"run": {"progress": False}, "speaker": SPEAKER}))
    result = CliRunner().invoke(
        app,
        ["curate", str(videos), "--out", str(corpus), "--config", str(cfg), "--cluster", str(sync)],
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(shard) in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert {p: p.read_bytes() for p in corpus.rglob("*.arrow")} == before  # nothing rewritten
    from avforge.core.errors import CorruptCorpusError

    with pytest.raises(CorruptCorpusError, match=str(shard)):
        read_done(str(corpus), shard.stem)


# --------------------------------------------------------------------------- exit codes (item 10)


@pytest.fixture
def broken_video(tmp_path):
    """A folder with one file that is not a video (fails fast, at the probe)."""
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"not a video")
    return folder


def _invoke(sources: Path, out: Path, tmp_path: Path):
    sync = tmp_path / "sync.yaml"
    sync.write_text("type: synchronous\n")
    cfg = tmp_path / "quiet.yaml"
    cfg.write_text("run: {progress: false}\n")
    return CliRunner().invoke(
        app,
        ["curate", str(sources), "--out", str(out), "--config", str(cfg), "--cluster", str(sync)],
    )


def _one_error_line(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "Traceback" not in result.output


def test_out_naming_a_file_is_one_error_line(broken_video, tmp_path):
    out = tmp_path / "corpus.txt"
    out.write_text("a file")
    _one_error_line(_invoke(broken_video, out, tmp_path), str(out), "not a folder")
    assert out.read_text() == "a file"


@pytest.mark.parametrize(
    ("code", "when"),
    [
        (errno.EROFS, "config"),  # a read-only --out: the very first write fails
        (errno.EACCES, "config"),
        (errno.ENOSPC, "shards"),  # the disk fills up during the run
    ],
)
def test_unwritable_or_full_out_is_one_error_line_and_no_row(
    broken_video, tmp_path, monkeypatch, code, when
):
    real = files.atomic_write_bytes

    def failing(path: str, data: bytes) -> None:
        if when == "config" or "/config/" not in path:
            raise OSError(code, os.strerror(code), path)
        real(path, data)

    monkeypatch.setattr(files, "atomic_write_bytes", failing)
    out = tmp_path / "corpus"
    _one_error_line(_invoke(broken_video, out, tmp_path), str(out), os.strerror(code))
    assert not list(out.rglob("*.arrow"))  # no source became a failed row


# --------------------------------------------------------------------------- no empty shards (item 12)


def test_a_failed_source_writes_its_sources_row_only(broken_video, tmp_path):
    corpus = tmp_path / "corpus"
    summary = curate(scan_folder(broken_video), str(corpus), CFG, SYNC)
    assert summary.sources_failed == 1 and summary.failed_by_reason == {"corrupt_media": 1}
    (source_id,) = [s.source_id for s in scan_folder(broken_video)]
    # the internal_error path of the pipeline (a task that raised, workers that died) too
    (other,) = scan_folder(broken_video)
    write_failed(str(corpus), failed_record(other, SourceError.INTERNAL_ERROR, "task raised: X"))
    shards = sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*.arrow"))
    assert shards == [f"sources/{source_id}.arrow"]
    assert manifests.read_clips(corpus).num_rows == 0  # readers cope with missing shards
    assert manifests.read_segments(corpus).num_rows == 0
    assert read_done(str(corpus), source_id).ok is False
    assert Path(write_report(str(corpus))).is_file()


# --------------------------------------------------------------------------- exposure (items 13, 14)


def _listening(proc: psutil.Process) -> list[str]:
    out = []
    for p in [proc, *proc.children(recursive=True)]:
        for conn in p.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                out.append(conn.laddr.ip)
    return out


def test_the_local_cluster_listens_on_loopback_only(tmp_path):
    cfg = ClusterConfig(type=ClusterType.LOCAL, local=LocalClusterConfig(n_workers=1))
    with open_client(cfg, local_directory=str(tmp_path / "dask")) as client:
        addresses = _listening(psutil.Process())
        dashboard = client.dashboard_link
        assert client.run(lambda: signal.getsignal(signal.SIGINT)) == {
            w: signal.SIG_IGN for w in client.scheduler_info()["workers"]
        }  # Ctrl-C reaches the calling process only
        dirs = client.run(lambda dask_worker: dask_worker.local_directory)
    assert dashboard.startswith("http://127.0.0.1:")
    assert addresses and set(addresses) == {"127.0.0.1"}, addresses
    assert all(d.startswith(str(tmp_path / "dask")) for d in dirs.values()), dirs
    off = ClusterConfig(local=LocalClusterConfig(n_workers=1, dashboard_address=None))
    with open_client(off) as client:
        assert set(_listening(psutil.Process())) == {"127.0.0.1"}
        (sock,) = client.cluster.scheduler.http_server._sockets.values()
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port != 8787
        assert client.cluster.scheduler_spec["options"]["dashboard"] is False


def test_dask_scratch_is_in_the_runs_folder_and_stale_runs_are_removed(broken_video, tmp_path):
    corpus = tmp_path / "corpus"
    work = corpus / ".work"
    stale, live = work / "run-killed", work / "run-alive"
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / ".lock").touch()
    with open(live / ".lock", "a") as held:  # a concurrent run that is still going
        fcntl.flock(held, fcntl.LOCK_EX)
        seen: list[dict[str, str]] = []

        def on_result(_result: object) -> None:
            from distributed import default_client

            seen.append(default_client().run(lambda dask_worker: dask_worker.local_directory))

        local1 = ClusterConfig(type=ClusterType.LOCAL, local=LocalClusterConfig(n_workers=1))
        cfg = CurateConfig(run=RunConfig(progress=False))
        curate(scan_folder(broken_video), str(corpus), cfg, local1, on_result=on_result)
        assert not stale.exists() and live.exists()
    (dirs,) = seen
    (d,) = dirs.values()
    rel = Path(d).relative_to(work)  # not under /tmp
    assert rel.parts[0].startswith("run-") and rel.parts[1] == "dask", d
    assert sorted(p.name for p in work.iterdir()) == ["run-alive"]  # this run's folder is gone


def test_onnxruntime_writes_nothing_in_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env["HOME"] = str(home)
    code = (
        "from curation.faces import FaceConfig, load_detector; import numpy as np; "
        "d = load_detector(FaceConfig()); d.detect(np.zeros((64, 64, 3), np.uint8))"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []


def test_kept_downloads_outlive_the_runs_scratch_folder(talks_url_list, tmp_path):
    corpus = tmp_path / "corpus"
    cfg = dataclasses.replace(CFG, download=dataclasses.replace(CFG.download, keep_downloads=True))
    (source,) = read_sources_arg(talks_url_list, CFG.download.avspeech_url_template)[:1]
    summary = curate([source], str(corpus), cfg, SYNC)
    assert summary.sources_ok == 1
    kept = corpus / ".work" / source.source_id
    assert [p.suffix for p in kept.iterdir()] == [".mp4"]
    assert not list((corpus / ".work").glob(f"{PACE_PREFIX}*"))  # pacing slots are not downloads
    _no_run_folders_left(corpus)
