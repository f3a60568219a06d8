"""``avforge report``: the numbers behind the plots (known answers) and a self-contained HTML page."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from avforge.cli import app
from avforge.core.config import write_resolved_config
from curation.config import CurateConfig
from curation.export import ExportConfig, KeptClip, build_outputs, write_source_shards
from curation.report import report_data, write_report
from manifests.io import write_records
from manifests.media import FaceTrack
from manifests.schema import (
    RejectReason,
    SegmentRecord,
    SourceError,
    SourceKind,
    SourceRecord,
    SourceStatus,
)


def _clip(rng: np.random.Generator, start_s: float, seconds: float) -> KeptClip:
    n = round(seconds * 25)
    track = FaceTrack(
        25.0,
        np.tile(np.array([10, 10, 90, 110], np.float32), (n, 1)),
        np.ones(n, np.float32),
        np.ones(n, bool),
    )
    crops = np.full((n, 112, 112, 3), 128, np.uint8)
    audio = (0.1 * rng.standard_normal(n * 640)).astype(np.float32)
    return KeptClip(start_s, start_s + seconds, audio, 16000, track, crops, None, 30.0, 0.9)


@pytest.fixture
def corpus(tmp_path, seeded):
    """One ok source of 3600 s (4 kept + rejected segments) and one failed source."""
    src = SourceRecord("a", "/a.mp4", SourceKind.LOCAL, SourceStatus.OK, duration_s=3600.0)
    kept = [_clip(seeded, 0.0, 4.0), _clip(seeded, 4.0, 6.0)]
    segs = [
        SegmentRecord("a-1", "a", 0.0, 4.0, True, None, 30.0, 0, 1.0),
        SegmentRecord("a-2", "a", 4.0, 10.0, True, None, 28.0, 0, 1.0),
        SegmentRecord("a-3", "a", 10.0, 20.0, False, RejectReason.NO_FACE, None, None, 0.0),
        SegmentRecord("a-4", "a", 20.0, 26.0, False, RejectReason.LOW_SNR, 5.0, 0, 1.0),
        SegmentRecord("a-5", "a", 26.0, 30.0, False, RejectReason.MULTIPLE_FACES, None, None, 2.0),
    ]
    clips, media = build_outputs(src, kept, "a", ExportConfig())
    write_source_shards(str(tmp_path), "a", src, segs, clips, media)
    bad = SourceRecord("b", "/b.mp4", SourceKind.LOCAL, SourceStatus.FAILED, SourceError.NO_AUDIO)
    write_records(str(tmp_path), "sources", "b", [bad])
    write_resolved_config(CurateConfig(), str(tmp_path / "config" / "curate.yaml"))
    return tmp_path


def test_report_numbers_are_known_answers(corpus):
    d = report_data(str(corpus))
    assert (d.sources_ok, d.sources_failed, d.failed_by_reason) == (1, 1, {"no_audio": 1})
    assert d.source_hours == pytest.approx(1.0)
    h = 1 / 3600
    assert d.funnel == [
        ("candidate windows", pytest.approx(30 * h)),
        ("after no_face", pytest.approx(20 * h)),
        ("after multiple_faces", pytest.approx(16 * h)),
        ("after low_snr", pytest.approx(10 * h)),
        ("kept clips", pytest.approx(10 * h)),
    ]
    assert d.rejected_count == {"low_snr": 1, "multiple_faces": 1, "no_face": 1}
    assert d.kept_clips == 2 and d.kept_hours == pytest.approx(10 * h)
    assert sorted(d.snr_db_kept.tolist()) == [28.0, 30.0] and d.snr_db_rejected.tolist() == [5.0]
    assert d.snr_threshold_db == CurateConfig().snr.threshold_db
    assert sorted(d.clip_durations_s.tolist()) == [4.0, 6.0]
    assert sorted(d.faces_per_frame.tolist()) == [0.0, 1.0, 1.0, 1.0, 2.0]


def test_report_html_embeds_valid_pngs(corpus):
    path = write_report(str(corpus))
    assert Path(path) == corpus / "report.html"
    page = Path(path).read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3  # funnel, histograms, thumbnails
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no_audio: 1" in page and 'src="http' not in page


def test_report_cli_and_empty_corpus(corpus, tmp_path):
    runner = CliRunner()
    out = tmp_path / "elsewhere" / "r.html"
    result = runner.invoke(app, ["report", str(corpus), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and str(out) in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["report", str(empty)])
    assert result.exit_code == 0
    assert "No candidate segments yet" in (empty / "report.html").read_text()


def test_report_cli_errors_are_one_line_and_exit_2(corpus, tmp_path):
    runner = CliRunner()
    missing = tmp_path / "no-such-corpus"
    result = runner.invoke(app, ["report", str(missing)])
    assert result.exit_code == 2 and not (missing / "report.html").exists()
    assert result.output.strip() == f"error: {missing}: no such corpus folder"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["report", str(corpus), "--out", str(blocker / "r.html")])
    assert result.exit_code == 2, result.output  # an OSError writing the page: no traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output


def test_calibrate_snr_cli_writes_the_figure_and_table(tmp_path):
    result = CliRunner().invoke(
        app, ["calibrate-snr", "--out", str(tmp_path / "cal"), "--mixtures-per-bin", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "vad_gated: threshold" in result.output and "wada: threshold" in result.output
    png = (tmp_path / "cal" / "snr_calibration.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "cal" / "snr_calibration.csv").read_text().splitlines()
    assert len(table) > 41  # a header and at least one row per 1 dB bin from -5 to 35 dB
