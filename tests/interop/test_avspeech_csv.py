"""avforge export avspeech-csv: rows parse as AVSpeech CSV, match the clips' times and faces, and the
YouTube rows read back through curation's own parser as hints equal to the clips."""

from __future__ import annotations

import csv
import dataclasses
import io

import pytest

import manifests
from avforge.interop import avspeech_rows, export_avspeech_csv, format_avspeech_csv, video_of
from avforge.interop.tables import media_path
from avforge.testing.corpus import build_corpus
from curation.sources import parse_avspeech_csv
from manifests.io import write_records
from manifests.schema import ClipRecord, SourceKind, SourceRecord, table_to_records

WIDTH, HEIGHT = 640, 480
# clip id -> (new source id, kind, url, clip start in the source); None keeps the helper's source.
SOURCES = {
    "aew-00": (
        "AvWWVOgaMlk_000090000",
        SourceKind.AVSPEECH,
        "http://127.0.0.1:9/AvWWVOgaMlk.mp4",
        90.0,
    ),
    "aew-01": ("dQw4w9WgXcQ", SourceKind.URL, "https://youtu.be/dQw4w9WgXcQ", 12.5),
    "axb-00": ("url-talk", SourceKind.URL, "https://example.org/talks/a,b.mp4", 3.0),
}


@pytest.fixture(scope="module")
def sourced(tmp_path_factory):
    """The helper corpus with realistic sources: an AVSpeech row, a YouTube URL, another URL (with a
    comma), local files; frame sizes known except for one source; one clip with face_x/face_y set."""
    corpus = build_corpus(
        tmp_path_factory.mktemp("avspeech"), n_speakers=3, clips_per_speaker=2, with_noises=False
    )
    clips = table_to_records(manifests.read_clips(str(corpus)), ClipRecord)
    sources = {
        s.source_id: s for s in table_to_records(manifests.read_sources(str(corpus)), SourceRecord)
    }
    new_clips, new_sources = [], []
    for clip in clips:
        src = dataclasses.replace(sources[clip.source_id], width=WIDTH, height=HEIGHT)
        if clip.clip_id in SOURCES:
            sid, kind, url, start_s = SOURCES[clip.clip_id]
            src = dataclasses.replace(src, source_id=sid, kind=kind, url=url)
            clip = dataclasses.replace(
                clip, source_id=sid, start_s=start_s, end_s=start_s + clip.duration_s
            )
        if clip.clip_id == "libri1-00":
            clip = dataclasses.replace(clip, face_x=0.25, face_y=0.75)
        if clip.clip_id == "libri1-01":
            src = dataclasses.replace(src, width=None, height=None)
        new_clips.append(clip)
        new_sources.append(src)
    write_records(str(corpus), "clips", "clips-00000", new_clips)
    write_records(str(corpus), "sources", "sources-00000", new_sources)
    return corpus


def test_video_column_rules():
    assert (
        video_of("AvWWVOgaMlk_000090000", "http://x/AvWWVOgaMlk.mp4", "avspeech") == "AvWWVOgaMlk"
    )
    assert (
        video_of("dQw4w9WgXcQ", "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "url")
        == "dQw4w9WgXcQ"
    )
    assert (
        video_of("url-1", "https://example.org/a.mp4", SourceKind.URL)
        == "https://example.org/a.mp4"
    )
    assert video_of("talk-0123", "/data/talk.mp4", "local") == "/data/talk.mp4"


def test_rows_match_the_clips(sourced):
    export = avspeech_rows(str(sourced))
    clips = {r["clip_id"]: r for r in manifests.read_clips(str(sourced)).to_pylist()}
    assert export.skipped == {"libri1-01": "source frame size unknown"}
    assert len(export.rows) == 5
    reader = manifests.MediaReader()
    for row in export.rows:
        clip = clips[row.clip_id]
        assert (row.start_s, row.end_s) == (clip["start_s"], clip["end_s"])
        if row.clip_id == "libri1-00":
            assert (row.face_x, row.face_y) == (0.25, 0.75)
        else:  # centre of the first face box over the frame size
            track = reader.face_track(
                media_path(str(sourced), clip["media_shard"]), clip["media_row"]
            )
            x0, y0, x1, y1 = track.boxes[0]
            assert row.face_x == pytest.approx((x0 + x1) / 2 / WIDTH)
            assert row.face_y == pytest.approx((y0 + y1) / 2 / HEIGHT)
    videos = {r.clip_id: r.video for r in export.rows}
    assert videos["aew-00"] == "AvWWVOgaMlk" and videos["aew-01"] == "dQw4w9WgXcQ"
    assert videos["axb-00"] == "https://example.org/talks/a,b.mp4"
    assert videos["axb-01"].endswith(".wav")  # a local source: its path
    assert [r.video for r in export.rows] == sorted(r.video for r in export.rows)


def test_csv_text_parses_as_avspeech(sourced, tmp_path):
    out = tmp_path / "clips.csv"
    text, export = export_avspeech_csv(str(sourced), str(out))
    assert out.read_text() == text == format_avspeech_csv(export.rows)
    parsed = list(csv.reader(io.StringIO(text)))
    assert len(parsed) == len(export.rows) and all(len(cells) == 5 for cells in parsed)
    for cells, row in zip(parsed, export.rows, strict=True):
        assert cells[0] == row.video
        start, end, x, y = map(float, cells[1:])
        assert abs(start - row.start_s) < 5e-7 and abs(end - row.end_s) < 5e-7
        assert 0 <= x <= 1 and 0 <= y <= 1
    assert '"https://example.org/talks/a,b.mp4"' in text  # quoted, so it stays one cell


def test_rows_read_back_as_curation_hints(sourced):
    """curation.sources.parse_avspeech_csv reads every exported row (YouTube id, URL or local path)
    as an AVSpeech source whose hint is exactly the clip (range and face)."""
    text, export = export_avspeech_csv(str(sourced))
    sources = parse_avspeech_csv(text, "http://127.0.0.1:9/{id}.mp4")
    assert [s.invalid for s in sources] == [None] * len(sources)
    assert len(sources) == len(export.rows)
    urls = {s.url for s in sources}
    assert "https://example.org/talks/a,b.mp4" in urls  # the URL row is fetched as given
    assert {"http://127.0.0.1:9/AvWWVOgaMlk.mp4", "http://127.0.0.1:9/dQw4w9WgXcQ.mp4"} <= urls
    rows = sorted(export.rows, key=lambda r: (r.start_s, r.video))
    for s in sources:
        assert s.kind == SourceKind.AVSPEECH
        matches = [
            r
            for r in rows
            if abs(r.start_s - s.hint_start_s) < 1e-6
            and abs(r.end_s - s.hint_end_s) < 1e-6
            and (r.video in s.url or s.url.endswith(r.video) or r.video == s.url)
        ]
        assert matches, s
        row = matches[0]
        assert (s.hint_face_x, s.hint_face_y) == pytest.approx((row.face_x, row.face_y), abs=1e-6)


def test_split_filter(sourced):
    assert avspeech_rows(str(sourced), split="val").rows == []
    assert len(avspeech_rows(str(sourced), split="train").rows) == 5
