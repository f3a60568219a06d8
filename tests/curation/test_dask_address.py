"""Curation through ``dask_cluster.yaml`` of type ``address``: a real ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1, driven by the ``avforge curate`` command."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import manifests
from tests.helpers.curation_videos import SYNTH_SPEAKER

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_workers(address: str, n: int, timeout_s: float = 90.0) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(n, timeout=timeout_s)


@pytest.fixture
def scheduler_and_workers(tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []

    def start(name: str, *args: str) -> None:
        log = (logs / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [str(BIN / "dask"), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                start_new_session=True,
            )
        )

    start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    for i in range(2):
        start(
            f"worker{i}",
            "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
            "--memory-limit", "3GiB", "--no-dashboard", "--local-directory", str(tmp_path / f"w{i}"),
        )  # fmt: skip
    try:
        wait_for_workers(address, 2)
        yield address
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


def test_curate_through_an_address_cluster(scheduler_and_workers, clean_talk, tmp_path):
    talks = tmp_path / "talks"
    talks.mkdir()
    for i in range(3):
        shutil.copyfile(clean_talk, talks / f"talk{i}.mp4")
    (talks / "broken.mp4").write_bytes(b"\x00" * 1000)
    cluster = tmp_path / "dask_cluster.yaml"
    cluster.write_text(yaml.safe_dump({"type": "address", "address": scheduler_and_workers}))
    config = tmp_path / "curate.yaml"
    # Generated talks: the active-speaker thresholds open (see SYNTH_SPEAKER).
    speaker = {
        "min_speaking_score": SYNTH_SPEAKER.min_speaking_score,
        "min_sync_confidence": SYNTH_SPEAKER.min_sync_confidence,
    }
    config.write_text(yaml.safe_dump({"run": {"progress": False}, "speaker": speaker}))
    corpus = tmp_path / "corpus"
    t0 = time.monotonic()
    run = subprocess.run(
        [str(BIN / "avforge"), "curate", str(talks), "--out", str(corpus),
         "--config", str(config), "--cluster", str(cluster)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "sources: 3 ok, 1 failed" in run.stdout
    assert "on 2 core(s)" in run.stdout  # the address cluster's two single-thread workers
    sources = manifests.read_sources(corpus).to_pylist()
    assert sorted(r["status"] for r in sources) == ["failed", "ok", "ok", "ok"]
    assert [r["error"] for r in sources if r["status"] == "failed"] == ["corrupt_media"]
    clips = manifests.read_clips(corpus).to_pylist()
    per_source = {}
    for c in clips:
        per_source.setdefault(c["source_id"], []).append((c["start_s"], c["end_s"]))
    assert len(per_source) == 3 and len({tuple(sorted(v)) for v in per_source.values()}) == 1
    assert all(r["processing_s"] > 0 for r in sources if r["status"] == "ok")
    assert time.monotonic() - t0 < 600
