"""``avforge demo``: its real video set covers every reject reason with known truth, its configs load
with the stages' own loaders, failures stop it plainly, and the quick demo end to end curates the real
talks as expected and writes outputs that the public readers parse (and keeps its server on request)."""

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
from avforge.core.cluster import load_cluster_config
from avforge.core.config import load_config
from avforge.demo import DemoError, StepRunner, avforge_command, run_verb
from avforge.demo_config import FULL, QUICK, write_demo_configs
from avforge.demo_config.summary import check_ground_truth
from avforge.demo_videos import (
    EXPECTED_REASON,
    KINDS,
    DemoVideo,
    build_demo_videos,
    demo_video_plan,
    positive_speakers,
)
from avforge.synth.truth import TRUTH_FORMAT, load_truth
from avforge.variants import BUNDLED_CLIPS, FPS, bundled_clip, num_frames, probe
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


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_the_video_set_has_real_positives_and_every_negative_kind(tmp_path, quick):
    plan = demo_video_plan(quick)
    assert {v.kind for v in plan} == set(KINDS)
    keep = {c.name for c in BUNDLED_CLIPS if c.truth == "keep"}
    positives = [v.clip for v in plan if v.positive]
    assert set(positives) <= keep and len(set(positives)) == len(positives)
    if not quick:
        assert set(positives) == keep  # all 9 real talks
    else:
        assert 3 <= len(positives) <= 4
    # only bundled clips with a known truth, never the unlabelled one
    used = {v.clip for v in plan} | {v.other for v in plan if v.other}
    assert all(bundled_clip(name).truth != "unlabelled" for name in used)
    assert {v.expected_reason for v in plan} == set(EXPECTED_REASON.values())
    # the mixtures' speakers are different people (with one to spare)
    paths = write_demo_configs(tmp_path, QUICK if quick else FULL)
    needed = max(
        load_config(MixingConfig, path).n_speakers
        for path in (paths.mixing_eval, paths.mixing_examples)
    )
    assert needed is not None and len(positive_speakers(plan)) > needed


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "clean", "clip": "portrait_1"},  # unlabelled: no truth either way
        {"kind": "clean", "clip": "debate_splitscreen_1"},  # not a keep clip
        {"kind": "two_faces", "clip": "hdtf_ed_markey"},  # one face, no second clip
        {"kind": "dubbed", "clip": "hdtf_ed_markey"},  # whose sound?
        {"kind": "noisy", "clip": "hdtf_ed_markey"},  # no noise
        {"kind": "clean", "clip": "hdtf_ed_markey", "noise": "babble", "snr_db": 0.0},
        {"kind": "blurry", "clip": "hdtf_ed_markey"},
    ],
)
def test_a_video_without_a_known_truth_is_refused(bad):
    with pytest.raises(ValueError):
        DemoVideo("x", **bad)


def test_the_quick_video_set_is_built_with_its_ground_truth(tmp_path):
    plan = demo_video_plan(quick=True)
    seen = []
    videos = build_demo_videos(tmp_path / "videos", plan=plan, on_video=lambda p, t: seen.append(p))
    assert videos == seen == [tmp_path / "videos" / f"{v.name}.mp4" for v in plan]
    for video, path in zip(plan, videos, strict=True):
        truth = load_truth(path)  # the format the demo's summary reads
        frames = num_frames(path)
        duration = frames / FPS
        assert truth["duration_s"] == pytest.approx(duration)
        assert probe(path).duration_s == pytest.approx(duration, abs=0.05)
        (section,) = truth["sections"]
        assert (section["start_s"], section["end_s"], section["kind"]) == (
            0.0,
            duration,
            video.kind,
        )
        assert section["clean_single_speaker"] is video.positive
        assert truth["clean_single_speaker_s"] == (duration if video.positive else 0.0)
        assert section["speaker_ids"][0] == bundled_clip(video.clip).speaker
        expected = video.expected_reason
        assert truth["expected_reason"] == (None if expected is None else expected.value)
        if video.positive:  # the bundled file itself
            assert path.read_bytes() == bundled_clip(video.clip).path.read_bytes()
    dubbed = next(v for v in plan if v.kind == "dubbed")
    assert load_truth(tmp_path / "videos" / f"{dubbed.name}.json")["sections"][0][
        "audible_speaker_ids"
    ] == [bundled_clip(str(dubbed.other)).speaker]
    assert (tmp_path / "videos" / "noise" / "babble.wav").stat().st_size > 100_000


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
    plan = demo_video_plan(quick=True)
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    cmd = [*avforge_command(), "demo", "--quick", "--keep-server", "--out", str(out)]
    with stdout.open("w") as so, stderr.open("w") as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, cwd=tmp_path)
        try:
            served = _wait_for(
                stderr, r"serving the demo videos at (http://127\.0\.0\.1:\d+)/", proc, 600
            )
            # --keep-server: the videos are still served after the table
            first = f"{served.group(1)}/{plan[0].name}.mp4"
            with urllib.request.urlopen(first, timeout=10) as resp:
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
    assert "[ 1/13] build real talk videos (bundled clips + ffmpeg variants): done" in log

    corpus = out / "corpus"
    sources = manifests.read_sources(str(corpus))
    assert sources.num_rows == len(plan) and set(sources.column("status").to_pylist()) == {"ok"}
    segments = manifests.read_segments(str(corpus))
    clips = manifests.read_clips(str(corpus))
    assert 0 < clips.num_rows < segments.num_rows
    assert set(clips.column("split").to_pylist()) == {"train"}
    # curation against the truth: every negative rejected with its reason, every positive kept
    numbers = _segment_numbers(corpus)
    rows = {r.kind: r for r in check_ground_truth(corpus, out / "videos").rows}
    assert set(rows) == set(KINDS), numbers
    for kind, reason in EXPECTED_REASON.items():
        if reason is not None:
            row = rows[kind]
            assert (row.kept, row.reasons) == (0, {reason.value: row.segments}), numbers
            assert re.search(
                rf"{kind} sections\s+{row.segments} segments, 0 kept; {reason.value}", table
            )
    kept_by_video = _kept_by_video(corpus)
    assert all(kept_by_video.get(f"{v.name}.mp4", 0) > 0 for v in plan if v.positive), numbers
    assert rows["clean"].kept > 0 and re.search(r"kept vs ground truth\s+precision 1\.00", table)
    assert (corpus / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    noises = manifests.read_noises(str(corpus))
    assert noises.column("split").to_pylist() == ["train"] * 3  # the mixing configs draw from train
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


def _names(corpus: Path) -> dict[str, str]:
    return {
        s["source_id"]: Path(s["url"]).name for s in manifests.read_sources(str(corpus)).to_pylist()
    }


def _kept_by_video(corpus: Path) -> dict[str, int]:
    names = _names(corpus)
    kept: dict[str, int] = {}
    for seg in manifests.read_segments(str(corpus)).to_pylist():
        kept[names[seg["source_id"]]] = kept.get(names[seg["source_id"]], 0) + int(seg["kept"])
    return kept


def _segment_numbers(corpus: Path) -> str:
    """Every segment's decision and measures (shown when an expectation fails: thresholds move)."""
    names = _names(corpus)

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    rows = sorted(
        manifests.read_segments(str(corpus)).to_pylist(),
        key=lambda r: (names[r["source_id"]], r["start_s"]),
    )
    return "\n" + "\n".join(
        f"{names[r['source_id']]} {r['start_s']:.2f}-{r['end_s']:.2f} "
        f"{'kept' if r['kept'] else r['reason']} snr_db {num(r['snr_db'])} "
        f"speaking {num(r['speaking_score'])} sync {num(r['sync_score'])}"
        for r in rows
    )
