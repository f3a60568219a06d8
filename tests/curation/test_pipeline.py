"""End to end: generated talks fetched with yt-dlp over loopback HTTP, curated on a LocalCluster of 2
worker processes, checked against the generator's ground truth; reruns, growth, AVSpeech hints."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess

import numpy as np
import pyarrow.compute as pc
import pytest
import yaml

import manifests
from avforge.core import assets as bundled
from avforge.core.cluster import ClusterConfig, ClusterType, LocalClusterConfig
from avforge.synth import Scenario, load_truth, section, serve_folder
from avforge.synth import SectionKind as K
from curation.config import CurateConfig, RunConfig
from curation.export import window_id
from curation.pipeline import curate
from curation.sources import parse_avspeech_csv, parse_url_list, scan_folder
from tests.helpers.curation_videos import (
    SYNTH_SPEAKER,
    cached,
    render,
    scenario_mixed,
    score_against_truth,
)

LOCAL2 = ClusterConfig(
    type=ClusterType.LOCAL,
    local=LocalClusterConfig(n_workers=2, threads_per_worker=1, memory_limit="3GiB"),
)
SYNC = ClusterConfig(type=ClusterType.SYNCHRONOUS)
CFG = CurateConfig(run=RunConfig(progress=False), speaker=SYNTH_SPEAKER)


@pytest.fixture(scope="module")
def talks(tmp_path_factory, clean_talk):
    """Served folder: the mixed scenario (every section kind) and a short clean talk."""
    folder = tmp_path_factory.mktemp("talks")
    mixed = cached(tmp_path_factory, "mixed", lambda d: render(d, scenario_mixed()))
    clean = clean_talk
    for p in (mixed, clean):
        (folder / p.name).write_bytes(p.read_bytes())
        (folder / p.with_suffix(".json").name).write_bytes(p.with_suffix(".json").read_bytes())
    return folder


@pytest.fixture(scope="module")
def curated(talks, tmp_path_factory):
    """The two talks curated over loopback HTTP on a 2-process LocalCluster."""
    corpus = tmp_path_factory.mktemp("corpus")
    with serve_folder(talks) as base:
        urls = f"{base}/mixed.mp4\n{base}/clean_axb.mp4\n{base}/missing.mp4\n"
        sources = parse_url_list(urls)
        summary = curate(sources, str(corpus), CFG, LOCAL2)
    return corpus, sources, summary


def checksums(corpus) -> dict[str, str]:
    """clip id -> SHA-256 of its PCM samples (what must be identical across runs)."""
    reader = manifests.MediaReader()
    out = {}
    for row in manifests.read_clips(corpus).to_pylist():
        audio = reader.audio(str(corpus / "media" / row["media_shard"]), row["media_row"])
        out[row["clip_id"]] = hashlib.sha256(audio.tobytes()).hexdigest()
    return out


def test_local_cluster_run_meets_the_accuracy_targets(curated, talks):
    corpus, _sources, summary = curated
    src = manifests.read_sources(corpus).to_pylist()
    by_url = {r["url"].rsplit("/", 1)[-1]: r for r in src}
    assert by_url["mixed.mp4"]["status"] == "ok" and by_url["clean_axb.mp4"]["status"] == "ok"
    assert by_url["missing.mp4"]["status"] == "failed"
    assert by_url["missing.mp4"]["error"] == "not_found"
    segments = manifests.read_segments(corpus).to_pylist()
    for name in ("mixed", "clean_axb"):
        sid = by_url[f"{name}.mp4"]["source_id"]
        score = score_against_truth(
            [r for r in segments if r["source_id"] == sid], load_truth(talks / f"{name}.json")
        )
        assert score["precision"] >= 0.95, (name, score)
        assert score["recall"] >= 0.80, (name, score)
        assert score["wrong"] == [], (name, score)
    assert summary.sources_ok == 2 and summary.sources_failed == 1
    assert summary.failed_by_reason == {"not_found": 1}
    assert summary.segments_kept == sum(r["kept"] for r in segments)
    assert set(summary.rejected_by_reason) >= {
        "no_speech",
        "multiple_faces",
        "no_face",
        "low_snr",
    }
    assert summary.cores == 2 and summary.hours_in > 0 and summary.rtf_per_core > 0


def test_clips_point_to_consistent_media(curated):
    corpus, _, _ = curated
    clips = manifests.read_clips(corpus)
    assert clips.num_rows >= 2
    reader = manifests.MediaReader()
    for row in clips.to_pylist():
        assert row["clip_id"] == window_id(row["source_id"], row["start_s"], row["end_s"])
        assert 3.0 <= row["duration_s"] <= 10.0
        assert row["num_frames"] == round(row["duration_s"] * 25)
        assert row["num_samples"] == row["num_frames"] * 640 and row["sample_rate_hz"] == 16000
        path = str(corpus / "media" / row["media_shard"])
        audio = reader.audio(path, row["media_row"])
        assert len(audio) == row["num_samples"] and np.abs(audio).max() > 0.05
        track = reader.face_track(path, row["media_row"])
        assert track.num_frames == row["num_frames"] and track.present.mean() > 0.85
        crops = reader.face_crops(path, row["media_row"], 0, 3)
        assert crops.shape == (3, 112, 112, 3) and crops.mean() > 20
        assert row["split"] in ("train", "val", "test")
        assert (
            row["snr_db"] >= CFG.snr.threshold_db
            and row["sync_score"] >= CFG.speaker.min_sync_confidence
        )
    # The measured audio-visual offset is recorded for every window that reached the sync check;
    # the generator's talks are in sync (kept windows within one frame of 0).
    segments = manifests.read_segments(corpus).to_pylist()
    synced = [r for r in segments if r["sync_score"] is not None]
    assert synced and all(r["sync_offset_s"] is not None for r in synced)
    assert all(abs(r["sync_offset_s"]) <= CFG.speaker.max_offset_s + 1e-6 for r in synced)
    # Per-frame speaking scores and lip features travel with every kept clip.
    reader = manifests.MediaReader()
    for row in clips.to_pylist():
        path = str(corpus / "media" / row["media_shard"])
        scores = reader.speaking_scores(path, row["media_row"])
        lips = reader.lip_features(path, row["media_row"])
        assert row["has_lip_features"] and lips.shape == (row["num_frames"], 128)
        assert scores.shape == (row["num_frames"],) and np.isfinite(scores).all()
        assert row["speaking_score"] is not None
    assert all(r["sync_offset_s"] is None for r in segments if r["sync_score"] is None)
    # One split per source: the split is a property of the source, not of the clip.
    per_source = {}
    for row in clips.to_pylist():
        per_source.setdefault(row["source_id"], set()).add(row["split"])
    assert all(len(v) == 1 for v in per_source.values())
    assert (corpus / "config" / "curate.yaml").exists()
    resolved = yaml.safe_load((corpus / "config" / "curate.yaml").read_text())
    assert resolved["snr"]["threshold_db"] == CFG.snr.threshold_db
    assert resolved["segments"]["min_duration_s"] == 3.0


def test_rerun_skips_done_sources_and_a_new_source_grows_the_corpus(curated, talks, tmp_path):
    corpus, sources, _ = curated
    before = checksums(corpus)
    mtimes = {p: p.stat().st_mtime_ns for p in corpus.rglob("*.arrow")}
    clean = talks / "clean_axb.mp4"
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "again.mp4").write_bytes(clean.read_bytes())
    again = parse_url_list("\n".join(s.url for s in sources))
    assert [s.source_id for s in again] == [s.source_id for s in sources]
    summary = curate(again, str(corpus), CFG, SYNC)  # the server is gone: nothing is fetched
    assert summary.sources_skipped == 3 and summary.hours_in == 0.0
    assert {p: p.stat().st_mtime_ns for p in corpus.rglob("*.arrow")} == mtimes
    from curation.sources import scan_folder

    grown = curate(scan_folder(extra), str(corpus), CFG, SYNC)
    assert grown.sources_ok == 1 and grown.sources_skipped == 0
    assert manifests.read_sources(corpus).num_rows == 4
    after = checksums(corpus)
    assert {k: v for k, v in after.items() if k in before} == before
    new = set(after) - set(before)
    assert new and all(k.startswith(scan_folder(extra)[0].source_id) for k in new)


def two_face_scenario() -> Scenario:
    return Scenario.from_parts(
        "twofaces_01",
        [
            section(K.CLEAN, 3.0, "aew"),
            section(K.TWO_FACES, 6.0, "aew", "axb"),
            section(K.CLEAN, 3.0, "axb"),
        ],
        seed=3,
    )


def test_avspeech_hints_pick_the_track_and_ranges_keep_source_times(tmp_path_factory, tmp_path):
    video = cached(tmp_path_factory, "twofaces", lambda d: render(d, two_face_scenario()))
    truth = load_truth(video)
    sec = truth["sections"][1]
    w, h = truth["width"], truth["height"]
    rows = []
    # Left face speaks, right face is silent; then a point below both faces. Each row needs its own
    # start time: rows of one video with the same start are one source (deduplicated).
    for start_s, face in zip((3.0, 3.02), sec["faces"], strict=True):
        x0, y0, x1, y1 = face["box_xyxy"]
        rows.append(f"twofaces_01,{start_s},9.0,{(x0 + x1) / 2 / w:.4f},{(y0 + y1) / 2 / h:.4f}")
    rows.append("twofaces_01,3.04,9.0,0.5,0.95")
    with serve_folder(video.parent) as base:
        sources = parse_avspeech_csv("\n".join(rows), base + "/{id}.mp4")
        corpus = tmp_path / "corpus"
        cfg = dataclasses.replace(CFG, download=dataclasses.replace(CFG.download, range_pad_s=1.0))
        curate(sources, str(corpus), cfg, SYNC)
    seg = manifests.read_segments(corpus)
    speaker, silent, nowhere = (s.source_id for s in sources)
    mine = seg.filter(pc.equal(seg["source_id"], speaker)).to_pylist()
    kept = [r for r in mine if r["kept"]]
    assert kept, mine
    # Times are seconds of the source (the fetched range started at 2 s): inside the hinted range.
    assert all(3.0 <= r["start_s"] < r["end_s"] <= 9.0 for r in mine)
    assert sum(r["end_s"] - r["start_s"] for r in kept) >= 4.0
    # The silent face's hint picks the other track (whether a real active-speaker model calls a
    # generated mouth silent is not tested on generated faces: see SYNTH_SPEAKER).
    silent_rows = seg.filter(pc.equal(seg["source_id"], silent)).to_pylist()
    assert silent_rows and all(r["track_id"] is not None for r in silent_rows)
    assert {r["track_id"] for r in silent_rows}.isdisjoint({r["track_id"] for r in kept})
    nowhere_rows = seg.filter(pc.equal(seg["source_id"], nowhere)).to_pylist()
    assert nowhere_rows and {r["reason"] for r in nowhere_rows} == {"face_hint_mismatch"}


def test_avspeech_rows_with_a_url_or_a_local_path_curate_to_the_same_clips(clean_talk, tmp_path):
    """What ``avforge export avspeech-csv`` writes for non-YouTube sources re-curates: a row naming
    an http(s) URL (ranged fetch, a stream copy) and a row naming the same file by its absolute path
    (read in place) keep the same windows with the same audio."""
    clean = clean_talk
    truth = load_truth(clean)
    x0, y0, x1, y1 = truth["sections"][0]["faces"][0]["box_xyxy"]
    hint = f"1.5,7.5,{(x0 + x1) / 2 / truth['width']:.4f},{(y0 + y1) / 2 / truth['height']:.4f}"
    corpus = tmp_path / "corpus"
    with serve_folder(clean.parent) as base:
        sources = parse_avspeech_csv(f"{base}/{clean.name},{hint}\n{clean},{hint}\n")
        assert all(s.invalid is None for s in sources)
        summary = curate(sources, str(corpus), CFG, SYNC)
    assert summary.sources_ok == 2
    clips = manifests.read_clips(corpus).to_pylist()
    by_source = {s.source_id: [c for c in clips if c["source_id"] == s.source_id] for s in sources}
    fetched, local = by_source.values()
    assert fetched and [(c["start_s"], c["end_s"]) for c in fetched] == [
        (c["start_s"], c["end_s"]) for c in local
    ]
    assert all(1.5 <= c["start_s"] < c["end_s"] <= 7.5 for c in fetched)
    reader = manifests.MediaReader()
    for a_row, b_row in zip(fetched, local, strict=True):
        a = reader.audio(str(corpus / "media" / a_row["media_shard"]), a_row["media_row"])
        b = reader.audio(str(corpus / "media" / b_row["media_shard"]), b_row["media_row"])
        err = float(np.sum((a - b) ** 2))
        assert 10 * np.log10(float(np.sum(b**2)) / max(err, 1e-20)) > 40.0


def test_insightface_backend_exports_embeddings(tmp_path):
    """The insightface path end to end, offline: a tiny SCRFD-shaped model that 'sees' a white square
    as a face and a tiny ArcFace-shaped model; embeddings land in the media shard."""
    import soundfile as sf

    from curation.faces import FaceBackend, FaceConfig
    from curation.speaker import SpeakerConfig
    from curation.tracking import QualityConfig
    from tests.helpers.faces_onnx import EMBED_DIM, arcface_reference, tiny_pack

    pack = tiny_pack(tmp_path / "models_root")
    assets = bundled.AUDIO_DIR
    speech = np.concatenate(
        [sf.read(assets / f"cmu_arctic_us_aew_a000{i}.wav", dtype="float32")[0] for i in (1, 2, 3)]
    )
    sf.write(tmp_path / "speech.wav", speech, 16000)
    video = tmp_path / "square.mp4"
    seconds = len(speech) / 16000
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=black:size=640x360:rate=25:duration={seconds}",
         "-i", str(tmp_path / "speech.wav"), "-vf", "drawbox=x=320:y=128:w=64:h=64:color=white:t=fill",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(video)],
        check=True, timeout=120,
    )  # fmt: skip
    cfg = dataclasses.replace(
        CFG,
        # The toy detector sees a white stride-32 cell: at 320 px the 64 px square is exactly one.
        decode=dataclasses.replace(CFG.decode, detect_width=320),
        faces=FaceConfig(backend=FaceBackend.INSIGHTFACE, model_dir=pack, embed_every_frames=5),
        quality=QualityConfig(min_sharpness=0.0, min_brightness=0.0, min_face_px=8.0),
        speaker=SpeakerConfig(enabled=False),
    )
    corpus = tmp_path / "corpus"
    summary = curate(scan_folder(tmp_path), str(corpus), cfg, SYNC)
    assert summary.sources_ok == 1 and summary.segments_kept >= 1, summary.rejected_by_reason
    reader = manifests.MediaReader()
    for row in manifests.read_clips(corpus).to_pylist():
        assert row["has_embeddings"]
        path = str(corpus / "media" / row["media_shard"])
        emb = reader.embeddings(path, row["media_row"])
        assert emb.shape == (row["num_frames"], EMBED_DIM)
        crops = reader.face_crops(path, row["media_row"], 0, 1)
        np.testing.assert_allclose(emb[0], arcface_reference(crops)[0], atol=0.02)


def test_cli_rejects_bad_config_and_sources_with_one_line(tmp_path):
    from typer.testing import CliRunner

    from avforge.cli import app

    (tmp_path / "bad.yaml").write_text("segments: {min_duraton_s: 3}\n")
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/x.mp4\n")
    runner = CliRunner()
    args = ["curate", str(tmp_path / "urls.txt"), "--out", str(tmp_path / "c")]
    result = runner.invoke(app, [*args, "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and "segments.min_duraton_s" in result.output
    result = runner.invoke(
        app, ["curate", str(tmp_path / "none.txt"), "--out", str(tmp_path / "c")]
    )
    assert result.exit_code == 2 and "cannot read SOURCES" in result.output
    assert not (tmp_path / "c").exists()


def test_a_remote_corpus_url_works_through_fsspec(clean_talk):
    clean = clean_talk
    corpus = "memory://avforge-test-corpus"
    summary = curate(scan_folder(clean.parent), corpus, CFG, SYNC)
    assert summary.sources_ok == 1 and summary.segments_kept >= 1
    clips = manifests.read_clips(corpus).to_pylist()
    audio = manifests.MediaReader().audio(
        f"{corpus}/media/{clips[0]['media_shard']}", clips[0]["media_row"]
    )
    assert len(audio) == clips[0]["num_samples"]
    import fsspec

    fsspec.filesystem("memory").rm("/avforge-test-corpus", recursive=True)
