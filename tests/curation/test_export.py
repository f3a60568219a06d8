"""Export: clip rows and media rows, stable ids, the source-level split, shard write order."""

from __future__ import annotations

import numpy as np
import pytest

import manifests
from curation.export import (
    ExportConfig,
    KeptClip,
    build_outputs,
    split_for,
    split_key,
    window_id,
    write_source_shards,
)
from curation.tasks import curate_task, is_done, read_done
from manifests.media import FaceTrack
from manifests.schema import (
    RejectReason,
    SegmentRecord,
    SourceKind,
    SourceRecord,
    SourceStatus,
    Split,
)


def kept_clip(rng: np.random.Generator, start_s: float, seconds: float = 3.0) -> KeptClip:
    n = round(seconds * 25)
    boxes = np.tile(np.array([100, 50, 180, 150], np.float32), (n, 1))
    present = np.ones(n, bool)
    present[5] = False
    track = FaceTrack(25.0, boxes, np.full(n, 0.9, np.float32), present, None)
    crops = rng.integers(0, 255, size=(n, 112, 112, 3), dtype=np.uint8)
    crops[5] = 0
    audio = (0.1 * rng.standard_normal(n * 640)).astype(np.float32)
    return KeptClip(
        start_s, start_s + seconds, audio, 16000, track, crops, None, 25.0, 0.8, 0.2, 0.3
    )


def source_record(source_id: str = "talk-1", kind: SourceKind = SourceKind.LOCAL) -> SourceRecord:
    return SourceRecord(
        source_id, f"/videos/{source_id}.mp4", kind, SourceStatus.OK, duration_s=60.0
    )


def test_window_ids_are_stable_and_sortable():
    assert window_id("abc", 1.0, 4.04) == "abc-00001000-00004040"
    assert window_id("abc", 0.04 * 25, 0.04 * 101) == "abc-00001000-00004040"


def test_split_is_deterministic_and_close_to_the_ratios():
    cfg = ExportConfig()
    splits = [split_for(f"source-{i}", cfg) for i in range(4000)]
    assert splits == [split_for(f"source-{i}", cfg) for i in range(4000)]
    frac = {s: splits.count(s) / len(splits) for s in Split}
    assert frac[Split.TRAIN] == pytest.approx(0.90, abs=0.02)
    assert frac[Split.VAL] == pytest.approx(0.05, abs=0.015)
    assert frac[Split.TEST] == pytest.approx(0.05, abs=0.015)
    other = ExportConfig(split_salt="another")
    assert [split_for(f"source-{i}", other) for i in range(200)] != splits[:200]
    all_test = ExportConfig(val_ratio=0.0, test_ratio=1.0)
    assert {split_for(f"s{i}", all_test) for i in range(50)} == {Split.TEST}


def test_avspeech_rows_of_one_video_share_a_split():
    assert split_key("AvWWVOgaMlk_000090000", SourceKind.AVSPEECH) == "AvWWVOgaMlk"
    assert split_key("talk_two-0123456789", SourceKind.LOCAL) == "talk_two-0123456789"


def test_build_outputs_points_each_clip_at_its_media_row(seeded):
    src = source_record()
    kept = [kept_clip(seeded, 2.0), kept_clip(seeded, 7.52, 4.0)]
    clips, media = build_outputs(src, kept, "talk-1", ExportConfig())
    assert [c.media_row for c in clips] == [0, 1]
    assert {c.media_shard for c in clips} == {"talk-1.arrow"}
    assert [c.clip_id for c in clips] == ["talk-1-00002000-00005000", "talk-1-00007520-00011520"]
    assert [m.media_id for m in media] == [c.clip_id for c in clips]
    c = clips[1]
    assert (c.num_frames, c.num_samples, c.duration_s) == (100, 64000, 4.0)
    assert c.split == split_for("talk-1", ExportConfig()) and c.has_crops and not c.has_embeddings
    assert media[0].crops_jpeg[5] == b"" and len(media[0].crops_jpeg[0]) > 100
    no_crops = build_outputs(src, kept, "talk-1", ExportConfig(store_crops=False))[1]
    assert no_crops[0].crops_jpeg is None


def test_shards_round_trip_and_sources_is_written_last(seeded, tmp_path):
    src = source_record()
    kept = [kept_clip(seeded, 2.0)]
    clips, media = build_outputs(src, kept, "talk-1", ExportConfig())
    segs = [
        SegmentRecord("talk-1-00002000-00005000", "talk-1", 2.0, 5.0, True, None, 25.0, 0),
        SegmentRecord("talk-1-00005000-00008000", "talk-1", 5.0, 8.0, False, RejectReason.NO_FACE),
    ]
    corpus = str(tmp_path)
    write_source_shards(corpus, "talk-1", src, segs, clips, media)
    assert is_done(corpus, "talk-1")
    order = sorted(tmp_path.rglob("*.arrow"), key=lambda p: p.stat().st_mtime_ns)
    assert order[-1].parent.name == "sources"
    reader = manifests.MediaReader()
    audio = reader.audio(str(tmp_path / "media" / "talk-1.arrow"), 0)
    np.testing.assert_allclose(audio, kept[0].audio, atol=1.0 / 32768)
    crops = reader.face_crops(str(tmp_path / "media" / "talk-1.arrow"), 0)
    assert crops.shape == (75, 112, 112, 3) and crops[5].max() == 0
    result = read_done(corpus, "talk-1")
    assert result.skipped and result.kept == 1 and result.rejected_by_reason == {"no_face": 1}
    assert manifests.read_clips(corpus).column("clip_id").to_pylist() == [clips[0].clip_id]


def test_task_on_an_invalid_source_writes_a_failed_row(tmp_path):
    from curation.config import CurateConfig
    from curation.sources import parse_url_list

    (bad,) = parse_url_list("ftp://example.invalid/x.mp4")
    result = curate_task(bad, CurateConfig(), str(tmp_path / "c"), str(tmp_path / "w"))
    assert not result.ok and result.error == "invalid_source"
    row = manifests.read_sources(tmp_path / "c").to_pylist()[0]
    assert row["status"] == "failed" and "not an http(s) URL" in row["error_detail"]
    again = curate_task(bad, CurateConfig(), str(tmp_path / "c"), str(tmp_path / "w"))
    assert again.skipped and again.error == "invalid_source"
