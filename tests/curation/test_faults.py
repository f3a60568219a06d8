"""Faults: bad inputs become failed rows (the run goes on), a killed worker or a killed run changes
nothing in the final manifests, and finished sources are not redone."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

import manifests
from avforge.core.cluster import ClusterConfig, ClusterType, LocalClusterConfig
from avforge.synth import load_truth
from avforge.synth.serve import FaultKind, Faults, LoopbackServer, closed_port_url, fault_url
from curation.config import CurateConfig, RunConfig
from curation.download import DownloadConfig
from curation.pipeline import curate
from curation.sources import Source, parse_url_list, scan_folder
from tests.helpers.curation_videos import SYNTH_SPEAKER, bad_inputs, cached

SYNC = ClusterConfig(type=ClusterType.SYNCHRONOUS)
LOCAL2 = ClusterConfig(
    type=ClusterType.LOCAL,
    local=LocalClusterConfig(n_workers=2, threads_per_worker=1, memory_limit="3GiB"),
)
CFG = CurateConfig(
    download=DownloadConfig(
        retries=1,
        backoff_s=0.05,
        socket_timeout_s=1.0,
        source_timeout_s=30.0,
        isolate_process=False,
    ),
    run=RunConfig(progress=False),
    speaker=SYNTH_SPEAKER,
)
N_COPIES = 4


def fingerprint(corpus: Path) -> dict[str, object]:
    """What must be identical between runs: ids, statuses, segment decisions, clip audio checksums."""
    reader = manifests.MediaReader()
    sources = sorted(
        (r["source_id"], r["status"], r["error"])
        for r in manifests.read_sources(corpus).to_pylist()
    )
    segments = sorted(
        (r["segment_id"], r["kept"], r["reason"])
        for r in manifests.read_segments(corpus).to_pylist()
    )
    clips = {}
    for r in manifests.read_clips(corpus).to_pylist():
        audio = reader.audio(str(corpus / "media" / r["media_shard"]), r["media_row"])
        clips[r["clip_id"]] = hashlib.sha256(audio.tobytes()).hexdigest()
    return {"sources": sources, "segments": segments, "clips": clips}


@pytest.fixture(scope="module")
def copies(tmp_path_factory, clean_talk):
    """A folder of N_COPIES copies of the 8 s clean talk (distinct sources, known content)."""
    clean = clean_talk
    folder = tmp_path_factory.mktemp("copies")
    for i in range(N_COPIES):
        shutil.copyfile(clean, folder / f"talk{i}.mp4")
    return folder


@pytest.fixture(scope="module")
def undisturbed(copies, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("undisturbed")
    summary = curate(scan_folder(copies), str(corpus), CFG, SYNC)
    assert summary.sources_ok == N_COPIES and summary.segments_kept >= N_COPIES
    return fingerprint(corpus)


def test_bad_inputs_fail_with_the_right_reason_and_nothing_else_is_affected(
    tmp_path_factory, tmp_path, clean_talk
):
    clean = clean_talk

    def build(folder: Path) -> Path:
        bad_inputs(folder, clean)
        return folder

    bad = cached(tmp_path_factory, "bad_inputs", build)
    files = {p.stem: p for p in bad.iterdir() if p.stem != "turned"}
    (tmp_path / "serve").mkdir()
    shutil.copyfile(clean, tmp_path / "serve" / "talk.mp4")
    with LoopbackServer(tmp_path / "serve", Faults(stall_s=6.0)) as srv:
        urls = {
            "http_404": fault_url(srv.base_url, FaultKind.NOT_FOUND, "talk.mp4"),
            "refused": closed_port_url(),
            "stall": fault_url(srv.base_url, FaultKind.STALL, "talk.mp4"),
            "http_truncated": fault_url(srv.base_url, FaultKind.TRUNCATED, "talk.mp4"),
            "hostile_title": fault_url(srv.base_url, FaultKind.PAGE, "talk.mp4"),
        }
        url_sources = parse_url_list("\n".join(urls.values()))
        local = [Source(f"local-{k}", str(p), manifests.SourceKind.LOCAL) for k, p in files.items()]
        good = Source("local-good", str(clean), manifests.SourceKind.LOCAL)
        corpus = tmp_path / "corpus"
        summary = curate([*url_sources, *local, good], str(corpus), CFG, SYNC)
    rows = {r["source_id"]: r for r in manifests.read_sources(corpus).to_pylist()}
    by_name = {k: rows.get(s.source_id) for k, s in zip(urls, url_sources, strict=True)}
    assert by_name.pop("refused") is None  # transient (network): no row, left for the next run
    assert summary.deferred_by_reason == {"network": 1}
    by_name |= {k: rows[f"local-{k}"] for k in files}
    expected_failures = {
        "http_404": "not_found",
        "stall": "timeout",
        "http_truncated": "corrupt_media",
        "zero_byte": "corrupt_media",
        "truncated": "corrupt_media",
        "no_audio": "no_audio",
        "no_video": "no_video",
    }
    got = {k: (by_name[k]["status"], by_name[k]["error"]) for k in expected_failures}
    assert got == {k: ("failed", v) for k, v in expected_failures.items()}
    for k in expected_failures:
        detail = by_name[k]["error_detail"]
        assert detail and "\n" not in detail and "Traceback" not in detail
    # Odd but valid media are curated like the original: same kept windows.
    clips = manifests.read_clips(corpus).to_pylist()
    kept = {
        sid: sorted((c["start_s"], c["end_s"]) for c in clips if c["source_id"] == sid)
        for sid in rows
    }
    reference = kept["local-good"]
    clean_s = load_truth(clean)["duration_s"]
    assert reference and sum(e - s for s, e in reference) >= 0.8 * clean_s  # the recall target
    for name in ("audio_8k", "stereo_48k", "rotated", "hostile_title"):
        assert by_name[name]["status"] == "ok", by_name[name]
        assert kept[by_name[name]["source_id"]] == reference, name
    assert (by_name["rotated"]["width"], by_name["rotated"]["height"]) == (640, 360)
    assert by_name["audio_8k"]["audio_sample_rate_hz"] == 8000
    assert by_name["stereo_48k"]["audio_channels"] == 2
    title = by_name["hostile_title"]["title"]
    assert "../" in title and not any(ord(c) < 32 for c in title)
    assert summary.sources_failed == len(expected_failures)
    # Nothing escaped the corpus or the scratch folder; scratch files were cleaned up.
    assert not any(p.is_file() for p in (corpus / ".work").rglob("*"))
    assert sorted(p.name for p in corpus.iterdir()) == [
        ".work",
        "clips",
        "config",
        "ledger",
        "media",
        "segments",
        "sources",
    ]


def test_duration_over_the_cap_is_too_long(clean_talk, tmp_path):
    cfg = dataclasses.replace(CFG, decode=dataclasses.replace(CFG.decode, max_duration_s=5.0))
    summary = curate(
        [Source("long", str(clean_talk), manifests.SourceKind.LOCAL)],
        str(tmp_path),
        cfg,
        SYNC,
    )
    row = manifests.read_sources(tmp_path).to_pylist()[0]
    assert (row["status"], row["error"]) == ("failed", "too_long")
    assert summary.failed_by_reason == {"too_long": 1}


def _worker_pids() -> list[int]:
    """Dask worker processes started by this process's LocalCluster nannies."""
    pids = []
    for p in psutil.Process().children(recursive=True):
        cmd = " ".join(p.cmdline())
        if "spawn_main" in cmd and "resource_tracker" not in cmd:
            pids.append(p.pid)
    return pids


def _cpu_s(proc: psutil.Process) -> float:
    """CPU seconds of ``proc`` and its live children (a worker's ffmpeg decodes)."""
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


def _kill_a_busy_worker(corpus: Path, stop: threading.Event, killed: list[int]) -> None:
    """Once one source is done, SIGKILL a worker process that is busy with another source."""
    while not stop.is_set():
        if (corpus / "sources").exists() and any((corpus / "sources").glob("*.arrow")):
            try:
                procs = [psutil.Process(pid) for pid in _worker_pids()]
                before = [_cpu_s(p) for p in procs]
                time.sleep(0.3)
                busy = [_cpu_s(p) - b for p, b in zip(procs, before, strict=True)]
            except psutil.NoSuchProcess:
                continue
            if busy and max(busy) > 0.1:
                victim = procs[busy.index(max(busy))]
                os.kill(victim.pid, signal.SIGKILL)
                killed.append(victim.pid)
                return
        time.sleep(0.1)


@pytest.mark.slow
def test_killing_a_worker_mid_run_changes_nothing(copies, undisturbed, tmp_path):
    corpus = tmp_path / "corpus"
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_a_busy_worker, args=(corpus, stop, killed), daemon=True)
    watcher.start()
    cfg = dataclasses.replace(CFG, run=dataclasses.replace(CFG.run, max_in_flight_per_worker=1))
    try:
        summary = curate(scan_folder(copies), str(corpus), cfg, LOCAL2)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert killed, "no busy worker was killed"
    assert summary.sources_ok == N_COPIES and summary.sources_failed == 0
    assert fingerprint(corpus) == undisturbed


def complete_shards(folder: Path) -> list[Path]:
    """The finished shards of a manifest folder: not the ``.tmp-*`` file of a write in progress
    (pathlib's ``*`` matches names starting with a dot)."""
    return [p for p in folder.glob("*.arrow") if not p.name.startswith(".")]


@pytest.mark.slow
def test_killing_the_whole_run_then_rerunning_finishes_without_redoing(
    copies, undisturbed, tmp_path
):
    corpus = tmp_path / "corpus"
    cluster_yaml = tmp_path / "dask_cluster.yaml"
    cluster_yaml.write_text(
        yaml.safe_dump({"type": "local", "local": {"n_workers": 2, "memory_limit": "3GiB"}})
    )
    config_yaml = tmp_path / "curate.yaml"
    speaker = {
        "min_speaking_score": SYNTH_SPEAKER.min_speaking_score,
        "min_sync_confidence": SYNTH_SPEAKER.min_sync_confidence,
    }  # as SYNTH_SPEAKER
    config_yaml.write_text(
        yaml.safe_dump(
            {"run": {"progress": False, "max_in_flight_per_worker": 1}, "speaker": speaker}
        )
    )
    cmd = [
        str(Path(sys.executable).with_name("avforge")),
        "curate", str(copies), "--out", str(corpus), "--config", str(config_yaml), "--cluster", str(cluster_yaml),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    done_dir = corpus / "sources"
    while time.monotonic() < deadline and proc.poll() is None:
        if done_dir.exists() and len(complete_shards(done_dir)) >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    finished = {p: p.stat().st_mtime_ns for p in complete_shards(done_dir)}
    # killed mid-run: some sources finished (so the rerun has something to skip), not all
    assert len(finished) >= 1 and len(finished) < N_COPIES
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not redone
    assert f"({len(finished)} already done)" in rerun.stdout
    assert fingerprint(corpus) == undisturbed
