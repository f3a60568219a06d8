"""Source parsing: URL lists, AVSpeech CSV rows, folders; stable ids and deduplication."""

from __future__ import annotations

import pytest

from curation.sources import (
    SourcesError,
    avspeech_source_id,
    parse_avspeech_csv,
    parse_url_list,
    read_sources_arg,
    scan_folder,
    url_source_id,
    youtube_id,
)
from manifests.schema import SourceKind


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtube.com/watch?v=dQw4w9WgXcQ&t=42s",
        "https://youtu.be/dQw4w9WgXcQ",
        "https://m.youtube.com/shorts/dQw4w9WgXcQ",
        "https://www.youtube.com/embed/dQw4w9WgXcQ?start=3",
    ],
)
def test_youtube_spellings_share_one_id(url):
    assert youtube_id(url) == "dQw4w9WgXcQ"
    assert url_source_id(url) == "dQw4w9WgXcQ"


def test_url_ids_are_stable_hashes_and_file_name_safe():
    a = url_source_id("http://127.0.0.1:8000/talk.mp4")
    assert a == url_source_id("  http://127.0.0.1:8000/talk.mp4 ")
    assert a != url_source_id("http://127.0.0.1:8000/talk2.mp4")
    assert a.startswith("url-") and len(a) == 20
    assert youtube_id("https://www.youtube.com/watch?v=short") is None


def test_url_list_skips_comments_dedups_and_flags_bad_lines():
    text = "\n".join(
        [
            "# my talks",
            "https://youtu.be/dQw4w9WgXcQ",
            "",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",  # same video
            "http://127.0.0.1/a.mp4#t=3",
            "not a url",
        ]
    )
    sources = parse_url_list(text)
    assert [s.source_id for s in sources][:2] == [
        "dQw4w9WgXcQ",
        url_source_id("http://127.0.0.1/a.mp4#t=3"),
    ]
    assert len(sources) == 3
    bad = sources[2]
    assert bad.invalid is not None and "line 6" in bad.invalid
    assert all(s.kind == SourceKind.URL for s in sources)


def test_avspeech_rows_keep_hints_and_use_the_template():
    text = (
        "youtube_id,start_s,end_s,face_x,face_y\n"
        "AvWWVOgaMlk,90.000000,93.566667,0.586719,0.311111\n"
        "AvWWVOgaMlk,93.566667,98.233333,0.590625,0.316667\n"
        "AvWWVOgaMlk,90.000000,93.566667,0.586719,0.311111\n"
        "badid,1,2,0.5,0.5\n"
        "AvWWVOgaMlk,5,2,0.5,0.5\n"
        "AvWWVOgaMlk,1,2,1.5,0.5\n"
    )
    sources = parse_avspeech_csv(text, "http://127.0.0.1:9/{id}.mp4")
    good = [s for s in sources if s.invalid is None]
    assert [s.source_id for s in good] == ["AvWWVOgaMlk_000090000", "AvWWVOgaMlk_000093567"]
    first = good[0]
    assert first.url == "http://127.0.0.1:9/AvWWVOgaMlk.mp4"
    assert (first.hint_start_s, first.hint_end_s) == (90.0, 93.566667)
    assert (first.hint_face_x, first.hint_face_y) == (0.586719, 0.311111)
    assert first.kind == SourceKind.AVSPEECH and first.has_hint
    bad = [s for s in sources if s.invalid is not None]
    assert len(bad) == 3
    assert "YouTube id" in bad[0].invalid and "start_s < end_s" in bad[1].invalid
    assert "0..1" in bad[2].invalid
    assert avspeech_source_id("AvWWVOgaMlk", 90.0) == "AvWWVOgaMlk_000090000"


def test_folder_scan_is_sorted_recursive_and_location_independent(tmp_path):
    for rel in ["b/talk two.MP4", "a.mkv", "notes.txt", "c/d/e.webm"]:
        p = tmp_path / "corpus" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    sources = scan_folder(tmp_path / "corpus")
    assert [s.url.rsplit("/", 1)[-1] for s in sources] == ["a.mkv", "talk two.MP4", "e.webm"]
    assert sources[1].source_id.startswith("talk_two-")
    assert all(s.kind == SourceKind.LOCAL for s in sources)
    (tmp_path / "corpus").rename(tmp_path / "moved")
    assert [s.source_id for s in scan_folder(tmp_path / "moved")] == [s.source_id for s in sources]


def test_read_sources_arg_detects_the_format(tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("https://youtu.be/dQw4w9WgXcQ\n")
    csv = tmp_path / "rows.txt"
    csv.write_text("AvWWVOgaMlk,1.0,4.0,0.5,0.5\n")
    assert read_sources_arg(urls)[0].kind == SourceKind.URL
    assert read_sources_arg(csv)[0].kind == SourceKind.AVSPEECH
    (tmp_path / "vids").mkdir()
    (tmp_path / "vids" / "x.mp4").write_bytes(b"x")
    assert read_sources_arg(tmp_path / "vids")[0].kind == SourceKind.LOCAL
    with pytest.raises(SourcesError, match="cannot read"):
        read_sources_arg(tmp_path / "missing.txt")


def test_avspeech_rows_accept_urls_and_absolute_paths():
    """``avforge export avspeech-csv`` writes the URL or path of non-YouTube sources: they re-curate."""
    text = (
        '"https://example.org/talks/a,b.mp4",3.0,7.5,0.5,0.4\n'
        "https://youtu.be/dQw4w9WgXcQ,12.5,16.0,0.5,0.5\n"
        "/data/talks/my talk.mp4,1.0,4.0,0.25,0.75\n"
        "relative/talk.mp4,1.0,4.0,0.5,0.5\n"
        "ftp://example.org/a.mp4,1.0,4.0,0.5,0.5\n"
    )
    sources = parse_avspeech_csv(text, "http://127.0.0.1:9/{id}.mp4")
    url, yt, path, rel, ftp = sources
    assert url.url == "https://example.org/talks/a,b.mp4"  # fetched as given, not via the template
    assert url.source_id == url_source_id(url.url) + "_000003000"
    assert yt.source_id == "dQw4w9WgXcQ_000012500" and yt.url == "https://youtu.be/dQw4w9WgXcQ"
    assert path.url == "/data/talks/my talk.mp4" and path.source_id.startswith("my_talk-")
    assert path.source_id.endswith("_000001000")
    assert (path.hint_start_s, path.hint_end_s, path.hint_face_x) == (1.0, 4.0, 0.25)
    assert all(s.kind == SourceKind.AVSPEECH and s.invalid is None for s in (url, yt, path))
    assert "absolute path" in rel.invalid and "absolute path" in ftp.invalid
    # Ids are stable and name-safe; the same path at another start is another source.
    again = parse_avspeech_csv("/data/talks/my talk.mp4,2.0,4.0,0.25,0.75\n")[0]
    assert again.source_id.rsplit("_", 1)[0] == path.source_id.rsplit("_", 1)[0]
    assert all(c.isalnum() or c in "_-" for c in path.source_id)


def test_read_sources_arg_reads_url_rows_of_any_file_name(tmp_path):
    rows = tmp_path / "export.txt"
    rows.write_text("http://127.0.0.1:9/a.mp4,1.0,4.0,0.5,0.5\n")
    (src,) = read_sources_arg(rows)
    assert src.kind == SourceKind.AVSPEECH and src.has_hint and src.invalid is None
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/a,b,c,d,e.mp4\n")  # five cells, but not numbers
    assert read_sources_arg(urls)[0].kind == SourceKind.URL
