"""``avforge demo``: its configs load with the stages' own loaders, failures stop it plainly, and the
quick demo end to end writes outputs that the public readers parse (and keeps its server on request)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

import manifests
from avforge.cli import app
from avforge.cluster import load_cluster_config
from avforge.config import load_config
from avforge.demo import DemoError, StepRunner, avforge_command, run_verb
from avforge.demo_config import FULL, QUICK, write_demo_configs
from avforge.demo_config.summary import check_ground_truth
from avforge.synth.truth import TRUTH_FORMAT
from curation.config import load_curate_config
from manifests import write_records
from manifests.schema import (
    MixTask,
    RejectReason,
    SegmentRecord,
    SourceKind,
    SourceRecord,
    SourceStatus,
    Split,
)
from mixing.config import MixingConfig
from mixing.rirs import RirConfig
from training.config import ModelKind, TrainConfig


@pytest.mark.parametrize("size", [FULL, QUICK], ids=lambda s: s.name)
def test_demo_configs_load_with_each_stage_loader(tmp_path, size):
    paths = write_demo_configs(tmp_path, size)
    assert all(p.parent == tmp_path / "configs" for p in vars(paths).values())
    cluster = load_cluster_config(paths.cluster)
    assert (cluster.type.value, cluster.local.n_workers) == ("local", 2)
    curate = load_curate_config(paths.curate)
    assert curate.export.val_ratio == curate.export.test_ratio == 0.0
    rirs = load_config(RirConfig, paths.rirs)
    assert rirs.n_rooms == size.rooms and rirs.val_fraction == rirs.test_fraction == 0.0
    evaluation = load_config(MixingConfig, paths.mixing_eval)
    assert (evaluation.task, evaluation.split) == (MixTask.TWO_SPEAKERS, Split.TRAIN)
    examples = load_config(MixingConfig, paths.mixing_examples)
    assert examples.p_reverb == 1.0 and examples.task == MixTask.TWO_SPEAKERS_NOISE
    for path, kind in (
        (paths.train_audio_only, ModelKind.AUDIO_ONLY),
        (paths.train_audio_visual, ModelKind.AUDIO_VISUAL),
    ):
        cfg = load_config(TrainConfig, path)
        assert cfg.model.kind == kind and cfg.trainer.max_steps == size.train_steps
        assert cfg.data.corpora == (str(tmp_path / "corpus"),)
        # evaluation recipes are not the training stream's
        assert cfg.data.mixing.seed != evaluation.seed
        assert cfg.data.mixing.duration_s == evaluation.duration_s


def test_ground_truth_check_known_answer(tmp_path):
    """One 10 s talk: clean 0-5 s, two faces 5-10 s; kept 0-4 and 8-10, rejected 4-8."""
    corpus, videos = tmp_path / "corpus", tmp_path / "videos"
    videos.mkdir()
    source = SourceRecord(
        "url-1", "http://127.0.0.1:9/talk%201.mp4", SourceKind.URL, SourceStatus.OK, duration_s=10.0
    )
    write_records(str(corpus), "sources", "url-1", [source])
    segments = [
        SegmentRecord("a", "url-1", 0.0, 4.0, True),
        SegmentRecord("b", "url-1", 4.0, 8.0, False, RejectReason.MULTIPLE_FACES),
        SegmentRecord("c", "url-1", 8.0, 10.0, True),
    ]
    write_records(str(corpus), "segments", "url-1", segments)
    sections = [
        {"kind": "clean", "start_s": 0.0, "end_s": 5.0, "clean_single_speaker": True},
        {"kind": "two_faces", "start_s": 5.0, "end_s": 10.0, "clean_single_speaker": False},
    ]
    truth = {"format": TRUTH_FORMAT, "sections": sections, "clean_single_speaker_s": 5.0}
    (videos / "talk 1.json").write_text(json.dumps(truth))
    check = check_ground_truth(corpus, videos)
    rows = {r.kind: (r.segments, r.kept, r.reasons) for r in check.rows}
    assert rows == {"clean": (1, 1, {}), "two_faces": (2, 1, {"multiple_faces": 1})}
    assert (check.kept_s, check.kept_clean_s, check.clean_s) == (6.0, 4.0, 5.0)
    assert check.precision == pytest.approx(4 / 6) and check.recall == pytest.approx(0.8)


def test_a_failing_verb_stops_with_the_step_and_the_reason(tmp_path, capfd):
    step = StepRunner()
    missing = tmp_path / "no_such_urls.txt"
    with pytest.raises(
        DemoError, match=r"step 1 \(curate\): `avforge curate` exited with status 2"
    ):
        step("curate", lambda: run_verb("curate", str(missing), "--out", str(tmp_path / "c")))
    assert step.timings == []
    assert "$ avforge curate" in capfd.readouterr().err


def test_an_unwritable_output_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(blocker / "demo")])
    assert result.exit_code == 1
    assert "cannot create the output folder" in result.output


def test_the_console_script_is_found_next_to_the_interpreter():
    cmd = avforge_command()
    out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("avforge ")


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen, timeout_s: float) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = re.search(pattern, path.read_text(errors="replace"))
        if match:
            return match
        if proc.poll() is not None:
            pytest.fail(f"demo exited with {proc.returncode}:\n{path.read_text()[-4000:]}")
        time.sleep(1.0)
    proc.kill()
    pytest.fail(f"no {pattern!r} after {timeout_s} s")


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    cmd = [*avforge_command(), "demo", "--quick", "--keep-server", "--out", str(out)]
    with stdout.open("w") as so, stderr.open("w") as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, cwd=tmp_path)
        try:
            served = _wait_for(
                stderr, r"serving the demo videos at (http://127\.0\.0\.1:\d+)/", proc, 600
            )
            # --keep-server: the videos are still served after the table
            with urllib.request.urlopen(f"{served.group(1)}/talk_aew.mp4", timeout=10) as resp:
                assert resp.status == 200 and len(resp.read()) > 10_000
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0, stderr.read_text()[-4000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    log, table = stderr.read_text(), stdout.read_text()

    # a line per step with elapsed time, in order
    done = re.findall(r"\[\s*(\d+)/13\] .*: done in [\d.]+ s \(CPU [\d.]+ s\); elapsed \d+ s", log)
    assert [int(d) for d in done] == list(range(1, 14))

    corpus = out / "corpus"
    sources = manifests.read_sources(str(corpus))
    assert sources.num_rows == 3 and set(sources.column("status").to_pylist()) == {"ok"}
    segments = manifests.read_segments(str(corpus))
    clips = manifests.read_clips(str(corpus))
    assert 0 < clips.num_rows < segments.num_rows
    assert set(clips.column("split").to_pylist()) == {"train"}
    reasons = {r for r in segments.column("reason").to_pylist() if r is not None}
    assert {"multiple_faces", "no_face"} <= reasons  # the two-face and slide sections
    assert (corpus / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert manifests.read_noises(str(corpus)).num_rows == 3
    assert manifests.read_rirs(str(corpus)).num_rows == QUICK.rooms * 4
    mixtures = manifests.read_mixtures(str(out / "eval_set"))
    assert mixtures.num_rows == QUICK.eval_mixtures

    for run in ("audio_only", "audio_visual"):
        assert (out / "runs" / run / "checkpoints" / "last.ckpt").stat().st_size > 0
    summary = json.loads((out / "evaluation" / "summary.json").read_text())["2s_clean"]
    for model in ("audio-only", "AV 2 faces"):
        assert summary[model]["count"] == 2 * QUICK.eval_mixtures
        si_sdri = summary[model]["si_sdri_db"]
        assert -60.0 < si_sdri < 60.0
        assert re.search(
            rf"SI-SDRi {model}\s+{si_sdri:+.2f} dB after {QUICK.train_steps} steps", table
        )

    examples = re.findall(r"^\s+example\s+(\S+)$", table, flags=re.M)
    assert len(examples) == 2 * QUICK.examples
    for folder in map(Path, examples):
        assert folder.is_dir() and any(folder.glob("*.wav")) and any(folder.glob("*.mp4"))
    kept = re.search(r"segments\s+(\d+) kept, (\d+) rejected", table)
    assert kept and int(kept.group(1)) == clips.num_rows
    assert int(kept.group(2)) == segments.num_rows - clips.num_rows
    assert re.search(r"curation speed\s+[\d.]+x real time", table)
    assert str(corpus / "report.html") in table
    assert "two_faces sections" in table and "no_face sections" in table
