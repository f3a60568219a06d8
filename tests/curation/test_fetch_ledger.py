"""Typed fetch failures and the never-retry ledger (issue #13 item 3).

Classification is checked on yt-dlp's real errors: the YouTube cases run yt-dlp's own extractor
(``YoutubeIE._real_extract``, yt_dlp/extractor/youtube/_video.py) on a player response whose
``playabilityStatus`` carries YouTube's reason, so the message is composed by yt-dlp itself (login
hints, captcha and rate-limit wording, the geo-restriction path). Only the step that would download
the watch page and the player API JSON (``YoutubeIE._initial_extract``) is replaced, because YouTube
cannot be reached from the tests; the reasons are the texts YouTube sends (quoted from yt-dlp's
extractor code and its issue tracker, cited per case). HTTP 429, refused connections, the ledger and
the retries run for real: yt-dlp over the loopback server, the synchronous pipeline, Arrow files.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

import manifests
from avforge.core.cluster import ClusterConfig, ClusterType
from avforge.synth.serve import FaultKind, Faults, LoopbackServer, closed_port_url, fault_url
from curation import ledger
from curation.config import CurateConfig, RunConfig
from curation.download import (
    LEDGER_REASONS,
    TRANSIENT_REASONS,
    DownloadConfig,
    DownloadError,
    classify_error,
    fetch,
    fetch_isolated,
)
from curation.pipeline import curate
from curation.sources import parse_avspeech_csv, parse_url_list
from manifests.schema import SourceError
from tests.helpers.curation_videos import SYNTH_SPEAKER

FAST = DownloadConfig(retries=0, backoff_s=0.05, socket_timeout_s=2.0, source_timeout_s=30.0)
SYNC = ClusterConfig(type=ClusterType.SYNCHRONOUS)
VIDEO = "-Ab3_xYz9Qw"  # a YouTube id starting with "-"


# --------------------------------------------------------------------------- classification

_LOGIN_HINT = "Use --cookies-from-browser or --cookies for the authentication"


def _screen(status: str, reason: str, subreason: str | None = None) -> dict:
    """A ``playabilityStatus`` as YouTube sends it (the fields ``_real_extract`` reads)."""
    pemr: dict = {"reason": {"simpleText": reason}}
    if subreason is not None:
        pemr["subreason"] = {"simpleText": subreason}
    return {"status": status, "reason": reason, "errorScreen": {"playerErrorMessageRenderer": pemr}}


# (case, playabilityStatus, expected reason, a fragment of the message yt-dlp composes)
YOUTUBE_CASES = [
    # Bot check: _real_extract strips YouTube's subreason "This helps protect our community. Learn
    # more" (its remove_end call) and appends _youtube_login_hint (youtube/_base.py) to any
    # "sign in" reason.
    (
        "bot_check",
        _screen(
            "LOGIN_REQUIRED",
            "Sign in to confirm you\u2019re not a bot",
            "This helps protect our community. Learn more",
        ),
        SourceError.RATE_LIMITED,
        _LOGIN_HINT,
    ),
    # _real_extract: "This content isn't available, try again later" gets yt-dlp's "rate-limited by
    # YouTube for up to an hour" explanation.
    (
        "session_rate_limited",
        _screen("UNPLAYABLE", "This content isn't available, try again later."),
        SourceError.RATE_LIMITED,
        "rate-limited by YouTube for up to an hour",
    ),
    # _real_extract: an errorScreen with playerCaptchaViewModel adds "YouTube is requiring a
    # captcha challenge before playback".
    (
        "captcha",
        {
            **_screen("UNPLAYABLE", "Playback on other websites has been disabled"),
            "errorScreen": {
                "playerErrorMessageRenderer": {"reason": {"simpleText": "Something went wrong"}},
                "playerCaptchaViewModel": {"accessibilityLabel": "captcha"},
            },
        },
        SourceError.RATE_LIMITED,
        "captcha challenge",
    ),
    # yt-dlp issue #4455: "Private video. Sign in if you've been granted access to this video"
    # ('skip': 'Private video' in _video.py's tests).
    (
        "private",
        _screen(
            "LOGIN_REQUIRED", "Private video", "Sign in if you've been granted access to this video"
        ),
        SourceError.PRIVATE,
        "Private video",
    ),
    # yt-dlp issue #8694.
    (
        "members_only",
        _screen(
            "UNPLAYABLE",
            "Join this channel to get access to members-only content like this video, and other "
            "exclusive perks.",
        ),
        SourceError.MEMBERS_ONLY,
        "members-only",
    ),
    # youtube-dl issue #29928 (members on a level).
    (
        "members_level",
        _screen(
            "UNPLAYABLE",
            "This video is available to this channel's members on level: Crew (or any higher "
            "level). Join this channel to get access to members-only content and other exclusive "
            "perks.",
        ),
        SourceError.MEMBERS_ONLY,
        "members on level",
    ),
    # _video.py _is_agegated: AGE_GATE_REASONS 'confirm your age', 'inappropriate'.
    (
        "age",
        _screen(
            "LOGIN_REQUIRED",
            "Sign in to confirm your age",
            "This video may be inappropriate for some users.",
        ),
        SourceError.AGE_RESTRICTED,
        "confirm your age",
    ),
    # _real_extract: a subreason starting "The uploader has not made this video available in your
    # country" goes to raise_geo_restricted (common.py) -> GeoRestrictedError.
    (
        "geo",
        _screen(
            "UNPLAYABLE",
            "Video unavailable",
            "The uploader has not made this video available in your country",
        ),
        SourceError.GEO_BLOCKED,
        "available in your country",
    ),
    # tubesync issue #478: "Video unavailable. This video is no longer available due to a
    # copyright claim by ...".
    (
        "copyright",
        _screen(
            "ERROR",
            "Video unavailable",
            "This video is no longer available due to a copyright claim by Some Label",
        ),
        SourceError.COPYRIGHT,
        "copyright claim",
    ),
    # ytdl-sub issue #1323: "This live event will begin in 2 days." and "Premieres in 6 hours".
    (
        "upcoming",
        _screen("LIVE_STREAM_OFFLINE", "This live event will begin in 2 days."),
        SourceError.LIVE,
        "live event will begin",
    ),
    (
        "premiere",
        _screen("LIVE_STREAM_OFFLINE", "Premieres in 6 hours"),
        SourceError.LIVE,
        "Premieres",
    ),
    # 'skip': 'Video unavailable' and "This video has been removed ..." in _video.py's tests.
    ("unavailable", _screen("ERROR", "Video unavailable"), SourceError.UNAVAILABLE, "unavailable"),
    (
        "removed",
        _screen("ERROR", "This video has been removed by the uploader"),
        SourceError.UNAVAILABLE,
        "removed by the uploader",
    ),
    (
        "terminated",
        _screen(
            "ERROR",
            "Video unavailable",
            "This video is no longer available because the YouTube account associated with this "
            "video has been terminated.",
        ),
        SourceError.UNAVAILABLE,
        "terminated",
    ),
]


@pytest.fixture
def youtube_answers(monkeypatch):
    """Make yt-dlp's YouTube extractor see ``answer["status"]`` instead of downloading it."""
    from yt_dlp.extractor.youtube import YoutubeIE

    answer: dict = {}

    def initial_extract(self, url, smuggled_data, webpage_url, webpage_client, video_id):
        answer["calls"] = answer.get("calls", 0) + 1
        return None, {}, {}, False, [{"playabilityStatus": answer["status"]}], None

    monkeypatch.setattr(YoutubeIE, "_initial_extract", initial_extract)
    return answer


@pytest.mark.parametrize(
    ("status", "reason", "fragment"),
    [c[1:] for c in YOUTUBE_CASES],
    ids=[c[0] for c in YOUTUBE_CASES],
)
def test_youtube_refusals_get_their_reason(youtube_answers, tmp_path, status, reason, fragment):
    youtube_answers["status"] = status
    url = f"https://www.youtube.com/watch?v={VIDEO}"
    with pytest.raises(DownloadError) as err:
        fetch(url, str(tmp_path), "x", FAST)
    assert youtube_answers["calls"] == 1
    assert err.value.reason is reason, err.value.detail
    assert fragment.lower() in err.value.detail.lower()  # the message is yt-dlp's own
    assert "\n" not in err.value.detail
    transient = reason in TRANSIENT_REASONS
    assert transient == (reason is SourceError.RATE_LIMITED)
    assert (reason in LEDGER_REASONS) == (not transient)


def test_generic_refusals_by_type_and_default_message():
    """The shared raisers of yt_dlp/extractor/common.py and utils/_utils.py, with their defaults."""
    import yt_dlp
    from yt_dlp.utils import ExtractorError, UserNotLive

    ie = yt_dlp.YoutubeDL({"quiet": True}).get_info_extractor("Generic")
    cases = [
        (
            ie.raise_login_required,
            SourceError.MEMBERS_ONLY,
        ),  # "only available for registered users"
        (ie.raise_geo_restricted, SourceError.GEO_BLOCKED),  # GeoRestrictedError
        (lambda: (_ for _ in ()).throw(UserNotLive()), SourceError.LIVE),  # "not currently live"
        # youtube/_video.py _extract_player_responses, when every client answered garbage
        (
            lambda: (_ for _ in ()).throw(
                ExtractorError(
                    "All player responses are invalid. Your IP is likely being blocked by Youtube",
                    expected=True,
                )
            ),
            SourceError.RATE_LIMITED,
        ),
        # the no-JS-runtime symptom (YoutubeDL.process_video_result): not the video's fault
        (
            lambda: (_ for _ in ()).throw(ExtractorError("Requested format is not available")),
            SourceError.DOWNLOAD_FAILED,
        ),
    ]
    for raise_it, reason in cases:
        with pytest.raises(ExtractorError) as err:
            raise_it()
        assert classify_error(err.value) is reason, str(err.value)
    assert classify_error(TimeoutError("x")) is SourceError.TIMEOUT  # existing reasons still hold


# --------------------------------------------------------------------------- transient, for real


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ledger-media")
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=2",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
        str(folder / "talk.mp4"),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    return folder


def test_http_429_then_200_is_retried_with_backoff(media, tmp_path):
    with LoopbackServer(media, Faults(throttle_count=2)) as srv:
        url = fault_url(srv.base_url, FaultKind.THROTTLED, "talk.mp4")
        with pytest.raises(DownloadError) as err:  # no retries: the 429 itself, typed
            fetch_isolated(url, str(tmp_path / "a"), "a", FAST)
        assert err.value.reason is SourceError.RATE_LIMITED and "429" in err.value.detail
        cfg = DownloadConfig(retries=2, backoff_s=0.05, socket_timeout_s=2.0)
        got = fetch_isolated(url + "?again", str(tmp_path / "b"), "b", cfg)
        statuses = [r.status for r in srv.requests if r.path.endswith("?again")]
    assert Path(got.path).stat().st_size == (media / "talk.mp4").stat().st_size
    assert statuses[:2] == [429, 429] and set(statuses[2:]) == {200}


def test_refused_connection_is_transient_network(tmp_path):
    cfg = DownloadConfig(retries=1, backoff_s=0.05, socket_timeout_s=2.0)
    with pytest.raises(DownloadError) as err:
        fetch_isolated(closed_port_url(), str(tmp_path), "x", cfg)
    assert err.value.reason is SourceError.NETWORK and "(2 attempts)" in err.value.detail


# --------------------------------------------------------------------------- the ledger


def _cfg(retries: int = 0) -> CurateConfig:
    cfg = CurateConfig(run=RunConfig(progress=False), speaker=SYNTH_SPEAKER)
    import dataclasses

    download = dataclasses.replace(cfg.download, retries=retries, backoff_s=0.05)
    return dataclasses.replace(cfg, download=download)


def _rows(corpus: Path) -> dict[str, tuple[str, str | None]]:
    return {
        r["source_id"]: (r["status"], r["error"])
        for r in manifests.read_sources(corpus).to_pylist()
    }


def test_permanent_failure_is_ledgered_skipped_and_retried_only_when_asked(media, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    corpus = tmp_path / "corpus"
    with LoopbackServer(served) as srv:

        def fetches() -> int:
            return sum(1 for r in srv.requests if VIDEO in r.path)

        template = srv.base_url + "/{id}.mp4"
        rows = parse_avspeech_csv(f"{VIDEO},0.0,1.5,0.5,0.5\n{VIDEO},0.5,2.0,0.5,0.5\n", template)
        # run 1: the first row's fetch gets a 404 (permanent): a failed row and a ledger entry;
        # the second row of the same video fails from the ledger, without a request.
        first = curate(rows, str(corpus), _cfg(), SYNC)
        assert (first.sources_failed, first.failed_by_reason) == (2, {"not_found": 2})
        assert fetches() == 1
        assert set(_rows(corpus).values()) == {("failed", "not_found")}
        (entry,) = ledger.read_ledger(str(corpus)).to_pylist()
        assert entry["video_id"] == VIDEO and entry["reason"] == "not_found"
        assert entry["source_id"] == rows[0].source_id
        later = manifests.read_sources(corpus).to_pylist()[1]
        assert "fetch ledger" in later["error_detail"] and "--retry-failed" in later["error_detail"]
        # run 2: the same rows are done; a new row of that video fails from the ledger
        more = parse_avspeech_csv(f"{VIDEO},1.0,2.0,0.5,0.5\n", template)
        second = curate([*rows, *more], str(corpus), _cfg(), SYNC)
        assert (second.sources_skipped, second.sources_failed) == (2, 3)
        assert fetches() == 1 and _rows(corpus)[more[0].source_id] == ("failed", "not_found")
        # run 3: the video is there now; --retry-failed redoes the failed rows, the ledger entry goes
        (served / f"{VIDEO}.mp4").write_bytes((media / "talk.mp4").read_bytes())
        plain = curate([*rows, *more], str(corpus), _cfg(), SYNC)
        assert plain.sources_skipped == 3 and fetches() == 1  # without asking: nothing retried
        third = curate([*rows, *more], str(corpus), _cfg(), SYNC, retry_failed=True)
        assert (third.sources_ok, third.sources_failed, third.sources_skipped) == (3, 0, 0)
        assert fetches() > 1 + 3  # each source fetched (page and media requests)
    assert set(_rows(corpus).values()) == {("ok", None)}
    assert ledger.read_ledger(str(corpus)).num_rows == 0


def test_retry_failed_refetches_once_per_video_and_cli_flag(media, tmp_path):
    """``avforge curate --retry-failed``: a still-missing video is fetched once more (not once per
    row: the entry the retry writes counts for the rest of the run)."""
    from avforge.cli import app

    corpus = tmp_path / "corpus"
    with LoopbackServer(media) as srv:
        csv = tmp_path / "rows.csv"
        csv.write_text(f"{VIDEO},0.0,1.5,0.5,0.5\n{VIDEO},0.5,2.0,0.5,0.5\n")
        cfg = tmp_path / "curate.yaml"
        cfg.write_text(
            "download: {retries: 0, avspeech_url_template: '"
            + f"{srv.base_url}/fault/{FaultKind.NOT_FOUND.value}/{{id}}.mp4"
            + "'}\nrun: {progress: false}\n"
        )
        cluster = tmp_path / "dask_cluster.yaml"
        cluster.write_text("type: synchronous\n")
        args = [
            "curate",
            str(csv),
            "--out",
            str(corpus),
            "--config",
            str(cfg),
            "--cluster",
            str(cluster),
        ]
        runner = CliRunner()
        for extra, fetched in (([], 1), ([], 1), (["--retry-failed"], 2)):
            result = runner.invoke(app, args + extra)
            assert result.exit_code == 0, result.output
            assert sum(1 for r in srv.requests if VIDEO in r.path) == fetched, extra
    assert "failed: not_found 2" in result.output
    (entry,) = ledger.read_ledger(str(corpus)).to_pylist()
    assert entry["run_id"].startswith("run-")


def test_transient_failure_writes_no_row_and_is_retried_next_run(media, tmp_path):
    corpus = tmp_path / "corpus"
    # retries=1: a run makes 2 attempts, one request each (yt-dlp's generic extractor's GET)
    with LoopbackServer(media, Faults(throttle_count=2)) as srv:
        (src,) = parse_url_list(fault_url(srv.base_url, FaultKind.THROTTLED, "talk.mp4"))
        first = curate([src], str(corpus), _cfg(retries=1), SYNC)
        assert (first.sources_ok, first.sources_failed, first.sources_deferred) == (0, 0, 1)
        assert first.deferred_by_reason == {"rate_limited": 1}
        assert "left for the next run: 1 (rate_limited 1" in first.format()
        assert manifests.read_sources(corpus).num_rows == 0
        assert ledger.read_ledger(str(corpus)).num_rows == 0
        second = curate([src], str(corpus), _cfg(retries=1), SYNC)
    assert (second.sources_ok, second.sources_deferred) == (1, 0)
    assert _rows(corpus) == {src.source_id: ("ok", None)}
