"""`avforge curate` and `avforge report` take an fsspec URL for the corpus (not a mangled local path)."""

from __future__ import annotations

import uuid

import fsspec
from typer.testing import CliRunner

import manifests
from avforge.cli import app


def test_curate_and_report_into_memory_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a mangled URL would show up here as a local "memory:" folder
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "broken.mp4").write_bytes(b"")  # a failed source row is enough to prove the path
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("type: synchronous\n")
    url = f"memory://{uuid.uuid4().hex}/corpus"
    runner = CliRunner()
    run = runner.invoke(app, ["curate", str(videos), "--out", url, "--cluster", str(cluster)])
    assert run.exit_code == 0, run.output
    sources = manifests.read_sources(url)
    assert sources.column("status").to_pylist() == ["failed"]
    assert sources.column("error").to_pylist() == ["corrupt_media"]
    run = runner.invoke(app, ["report", url])
    assert run.exit_code == 0, run.output
    assert fsspec.filesystem("memory").exists(url.removeprefix("memory://") + "/report.html")
    assert not (tmp_path / "memory:").exists()
