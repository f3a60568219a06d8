"""Source lists and ids (issue #12 items 6-8, #13 item 4): ids starting with ``-`` curate end to end,
malformed lines become ``invalid_source`` rows, and one video has one canonical id in every spelling."""

from __future__ import annotations

import hashlib

import pytest

import manifests
from avforge.core.cluster import ClusterConfig, ClusterType
from avforge.interop.avspeech_csv import AvspeechRow, format_avspeech_csv, video_of
from avforge.synth import load_truth, serve_folder
from curation.config import CurateConfig, RunConfig
from curation.export import split_key
from curation.pipeline import curate
from curation.sources import (
    Source,
    normalize_url,
    parse_avspeech_csv,
    parse_url_list,
    read_sources_arg,
    scan_folder,
    url_source_id,
    youtube_id,
)
from curation.tasks import shard_name
from manifests.schema import SourceKind
from tests.helpers.curation_videos import SYNTH_SPEAKER

SYNC = ClusterConfig(type=ClusterType.SYNCHRONOUS)
CFG = CurateConfig(run=RunConfig(progress=False), speaker=SYNTH_SPEAKER)
DASH_ID = "-Xy_9zAbC0d"  # a YouTube-shaped id starting with "-" (about 1 real id in 64)


def _face_hint(video) -> str:
    truth = load_truth(video)
    x0, y0, x1, y1 = truth["sections"][0]["faces"][0]["box_xyxy"]
    return f"{(x0 + x1) / 2 / truth['width']:.4f},{(y0 + y1) / 2 / truth['height']:.4f}"


# --------------------------------------------------------------------------- item 6: ids with "-"


def test_ids_starting_with_a_dash_are_shard_names():
    for sid in (DASH_ID, f"{DASH_ID}_000010000", "-x-0123456789"):
        assert shard_name(sid) == sid
    for bad in (".hidden", "a/b", "", "x" * 201):
        with pytest.raises(ValueError, match="not a safe shard name"):
            shard_name(bad)


def test_sources_whose_ids_start_with_a_dash_curate_to_ok_rows_and_resume(clean_talk, tmp_path):
    """A local file ``-x.mp4``, an AVSpeech row ``-XXXXXXXXXX,...`` and a YouTube URL whose id starts
    with ``-`` (fetched over loopback) each end as a normal ``ok`` row with clips; a rerun skips them."""
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "-x.mp4").write_bytes(clean_talk.read_bytes())
    served = tmp_path / "served"
    served.mkdir()
    (served / f"{DASH_ID}.mp4").write_bytes(clean_talk.read_bytes())
    (local,) = scan_folder(folder)
    assert local.source_id.startswith("-x-")
    hint = f"1.5,7.5,{_face_hint(clean_talk)}"
    corpus = tmp_path / "corpus"
    with serve_folder(served) as base:
        (row,) = parse_avspeech_csv(f"{DASH_ID},{hint}\n", base + "/{id}.mp4")
        yt_id = url_source_id(f"https://youtu.be/{DASH_ID}?t=3")
        url = Source(yt_id, f"{base}/{DASH_ID}.mp4", SourceKind.URL)
        sources = [local, row, url]
        assert [s.source_id for s in sources] == [local.source_id, f"{DASH_ID}_000001500", DASH_ID]
        summary = curate(sources, str(corpus), CFG, SYNC)
        assert (summary.sources_ok, summary.sources_failed) == (3, 0)
        again = curate(sources, str(corpus), CFG, SYNC)
    assert again.sources_skipped == 3
    rows = {r["source_id"]: r for r in manifests.read_sources(corpus).to_pylist()}
    assert set(rows) == {s.source_id for s in sources}
    assert all(r["status"] == "ok" and r["error"] is None for r in rows.values())
    clips = manifests.read_clips(corpus).to_pylist()
    assert {c["source_id"] for c in clips} == set(rows)
    assert all(c["clip_id"].startswith(c["source_id"]) for c in clips)


def test_avspeech_export_of_a_dash_id_reads_back_as_the_same_video():
    assert video_of(f"{DASH_ID}_000010000", "http://x/y.mp4", "avspeech") == DASH_ID
    assert video_of(DASH_ID, f"https://www.youtube.com/watch?v={DASH_ID}", "url") == DASH_ID
    text = format_avspeech_csv([AvspeechRow(DASH_ID, 10.0, 15.0, 0.5, 0.5, "c")])
    (back,) = parse_avspeech_csv(text, "http://127.0.0.1:9/{id}.mp4")
    assert back.invalid is None and back.source_id == f"{DASH_ID}_000010000"


# --------------------------------------------------------------------------- item 7: malformed input


def test_malformed_url_line_is_an_invalid_source_row(tmp_path):
    listing = tmp_path / "urls.txt"
    listing.write_text("http://[::1:bad/x.mp4\nhttp://127.0.0.1:notaport/x.mp4\n")
    bad6, badport = read_sources_arg(listing)
    assert bad6.invalid is not None and bad6.invalid.startswith("line 1:")
    assert badport.invalid is not None and badport.invalid.startswith("line 2:")
    corpus = tmp_path / "corpus"
    summary = curate([bad6, badport], str(corpus), CFG, SYNC)
    assert summary.sources_failed == 2
    rows = manifests.read_sources(corpus).to_pylist()
    assert [(r["status"], r["error"]) for r in rows] == [("failed", "invalid_source")] * 2


def test_upper_case_scheme_is_a_url():
    (src,) = parse_url_list("HTTP://Example.ORG/Talk.mp4\n")
    assert src.invalid is None and src.kind == SourceKind.URL
    assert src.url == "http://example.org/Talk.mp4"
    assert src.source_id == url_source_id("http://example.org/Talk.mp4")
    (yt,) = parse_url_list("HTTPS://YOUTU.BE/dQw4w9WgXcQ\n")
    assert yt.source_id == "dQw4w9WgXcQ"


def test_text_after_a_url_is_a_comment_or_makes_the_line_invalid():
    ok, tab, bad = parse_url_list(
        "http://127.0.0.1/a.mp4   # the keynote\n"
        "http://127.0.0.1/b.mp4\t#tabbed\n"
        "http://127.0.0.1/c.mp4 extra words\n"
    )
    assert ok.invalid is None and ok.url == "http://127.0.0.1/a.mp4"
    assert ok.source_id == url_source_id("http://127.0.0.1/a.mp4")
    assert tab.invalid is None and tab.url == "http://127.0.0.1/b.mp4"
    assert (
        bad.invalid is not None and "line 3" in bad.invalid and "text after the URL" in bad.invalid
    )


def test_a_byte_order_mark_is_ignored(tmp_path):
    (url,) = parse_url_list("\ufeffhttps://youtu.be/dQw4w9WgXcQ\n")
    assert url.invalid is None and url.source_id == "dQw4w9WgXcQ"
    header = "\ufeffyoutube_id,start_s,end_s,face_x,face_y\nAvWWVOgaMlk,1,4,0.5,0.5\n"
    assert [s.source_id for s in parse_avspeech_csv(header)] == ["AvWWVOgaMlk_000001000"]
    (row,) = parse_avspeech_csv("\ufeffAvWWVOgaMlk,1,4,0.5,0.5\n")
    assert row.invalid is None and row.source_id == "AvWWVOgaMlk_000001000"
    # From a file (written with a BOM by a spreadsheet): the format is still detected.
    path = tmp_path / "rows.txt"
    path.write_bytes(header.encode("utf-8"))
    (again,) = read_sources_arg(path)
    assert again.kind == SourceKind.AVSPEECH and again.invalid is None


def test_comment_lines_in_a_csv_are_skipped():
    text = (
        "# exported 2026-01-01\n"
        "youtube_id,start_s,end_s,face_x,face_y\n"
        "AvWWVOgaMlk,1,4,0.5,0.5\n"
        "  # AvWWVOgaMlk,9,12,0.5,0.5 (left out)\n"
        "AvWWVOgaMlk,5,8,0.5,0.5\n"
    )
    sources = parse_avspeech_csv(text)
    assert [s.source_id for s in sources] == ["AvWWVOgaMlk_000001000", "AvWWVOgaMlk_000005000"]
    assert all(s.invalid is None for s in sources)


def test_a_csv_cell_over_the_field_limit_is_an_invalid_row(tmp_path):
    huge = "x" * 131_073
    sources = parse_avspeech_csv(f'AvWWVOgaMlk,1,4,0.5,0.5\n"{huge}",1,4,0.5,0.5\n')
    good, bad = sources
    assert good.invalid is None
    assert bad.invalid is not None and bad.invalid.startswith("row 2:") and "field" in bad.invalid
    assert len(bad.url) <= 200
    # The same row in a file read by ``avforge curate`` (format detection reads the first row).
    path = tmp_path / "rows.csv"
    path.write_text(f'"{huge}",1,4,0.5,0.5\nAvWWVOgaMlk,1,4,0.5,0.5\n')
    first, second = read_sources_arg(path)
    assert first.invalid is not None and second.invalid is None
    plain = tmp_path / "urls.txt"
    plain.write_text(f"http://127.0.0.1/{huge}.mp4\n")
    (long_url,) = read_sources_arg(plain)
    assert long_url.kind == SourceKind.URL


# --------------------------------------------------------------------------- item 8: canonical ids


@pytest.mark.parametrize(
    ("url", "video"),
    [
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://youtube.com/watch?v=dQw4w9WgXcQ&t=5", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/watch?feature=share&v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        (
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PL0123456789abcdef&index=2",
            "dQw4w9WgXcQ",
        ),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ#t=1", "dQw4w9WgXcQ"),
        ("http://www.youtube.com/watch/?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://m.youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://music.youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://youtu.be/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://youtu.be/dQw4w9WgXcQ?si=abc&t=42", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/shorts/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/embed/dQw4w9WgXcQ?start=3", "dQw4w9WgXcQ"),
        ("https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/live/dQw4w9WgXcQ?feature=shared", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/v/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("HTTPS://WWW.YOUTUBE.COM/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        (f"https://www.youtube.com/watch?v={DASH_ID}", DASH_ID),
        (f"https://youtu.be/{DASH_ID}", DASH_ID),
        (f"https://www.youtube.com/shorts/{DASH_ID}", DASH_ID),
        # Not a YouTube video: a look-alike host, a bad id, a playlist, a channel, a bad URL.
        ("https://notyoutube.com/watch?v=dQw4w9WgXcQ", None),
        ("https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ", None),
        ("https://www.youtube.com/watch?v=short", None),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQx", None),
        ("https://www.youtube.com/playlist?list=PL0123456789abcdef", None),
        ("https://www.youtube.com/@channel", None),
        ("ftp://youtu.be/dQw4w9WgXcQ", None),
        ("http://[::1:bad/x.mp4", None),
    ],
)
def test_youtube_url_forms_give_the_video_id(url, video):
    assert youtube_id(url) == video
    if video is not None:
        assert url_source_id(url) == video


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://127.0.0.1:8000/talk.mp4", "http://127.0.0.1:8000/talk.mp4"),
        ("  HTTP://Example.COM/Path/A.mp4?Q=1  ", "http://example.com/Path/A.mp4?Q=1"),
        ("http://example.com:80/a.mp4", "http://example.com/a.mp4"),
        ("https://example.com:443/a.mp4", "https://example.com/a.mp4"),
        ("https://example.com:80/a.mp4", "https://example.com:80/a.mp4"),
        ("http://example.com:/a.mp4", "http://example.com/a.mp4"),
        ("http://example.com/a.mp4#t=3", "http://example.com/a.mp4"),
        (
            "http://User:PW@Example.com:8080/a%2Fb.mp4?x=A#f",
            "http://User:PW@example.com:8080/a%2Fb.mp4?x=A",
        ),
        ("http://[::1]:80/a.mp4", "http://[::1]/a.mp4"),
        ("http://[FE80::1]:8080/a.mp4", "http://[fe80::1]:8080/a.mp4"),
        ("https://example.com", "https://example.com"),
    ],
)
def test_normal_form_of_other_urls(url, normal):
    assert normalize_url(url) == normal
    assert normalize_url(normal) == normal
    assert url_source_id(url) == url_source_id(normal)


def test_ids_of_urls_already_in_normal_form_are_unchanged():
    """Existing corpora resume: the id of a normal-form URL is still ``url-`` + SHA-256 of it."""
    for url in ("http://127.0.0.1:8000/talk.mp4", "https://example.org/talks/a,b.mp4?x=1"):
        assert url_source_id(url) == "url-" + hashlib.sha256(url.encode()).hexdigest()[:16]


@pytest.mark.parametrize("url", ["http://[::1:bad/x.mp4", "ftp://a/b", "http:///x.mp4", "x.mp4"])
def test_malformed_urls_have_no_normal_form(url):
    with pytest.raises(ValueError):
        normalize_url(url)


def test_five_spellings_of_one_video_are_curated_once():
    forms = [
        f"https://www.youtube.com/watch?v={DASH_ID}&t=5",
        f"https://youtu.be/{DASH_ID}",
        f"https://www.youtube.com/shorts/{DASH_ID}",
        f"https://m.youtube.com/watch?v={DASH_ID}#t=1",
        f"https://www.youtube-nocookie.com/embed/{DASH_ID}?list=PL0123456789abcdef",
        "http://example.com/talk.mp4#a",
        "HTTP://EXAMPLE.com:80/talk.mp4",
    ]
    sources = parse_url_list("\n".join(forms))
    assert [s.source_id for s in sources] == [DASH_ID, url_source_id("http://example.com/talk.mp4")]
    assert sources[0].url == forms[0]  # the first spelling listed is the one fetched
    assert sources[1].url == "http://example.com/talk.mp4"


def test_avspeech_rows_share_the_video_id_and_split_of_the_url_rows():
    template = "http://127.0.0.1:9/{id}.mp4"
    rows = parse_avspeech_csv(
        f"{DASH_ID},10,15,0.5,0.5\n"
        f"https://youtu.be/{DASH_ID},10,15,0.5,0.5\n"  # the same segment, as a URL: deduplicated
        f"https://www.youtube.com/watch?v={DASH_ID}&t=20,20,25,0.5,0.5\n"
        "http://Example.com:80/talk.mp4#x,1,4,0.5,0.5\n",
        template,
    )
    assert [s.source_id for s in rows] == [
        f"{DASH_ID}_000010000",
        f"{DASH_ID}_000020000",
        url_source_id("http://example.com/talk.mp4") + "_000001000",
    ]
    assert rows[0].url == f"http://127.0.0.1:9/{DASH_ID}.mp4"
    assert rows[2].url == "http://example.com/talk.mp4"
    (url_row,) = parse_url_list(f"https://youtu.be/{DASH_ID}")
    for row in rows[:2]:
        assert split_key(row.source_id, SourceKind.AVSPEECH) == url_row.source_id == DASH_ID
    assert split_key(rows[2].source_id, SourceKind.AVSPEECH) == url_source_id(
        "http://example.com/talk.mp4"
    )


def test_source_ids_are_stable_under_a_reparse_of_their_urls():
    text = "\n".join(
        [
            "https://youtu.be/dQw4w9WgXcQ?t=1",
            "HTTP://Example.com:80/a.mp4#frag",
            "http://127.0.0.1:8000/b.mp4  # note",
        ]
    )
    first = parse_url_list(text)
    again = parse_url_list("\n".join(s.url for s in first))
    assert [s.source_id for s in again] == [s.source_id for s in first]
    assert again == first
