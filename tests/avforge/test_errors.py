"""One error vocabulary: source failures share a base, and details are one clean line."""

from __future__ import annotations

from avforge.core.errors import SourceFailure, SystemicError, one_line
from curation.download import DownloadError
from curation.probe import MediaError
from manifests.schema import SourceError


def test_one_line_strips_escapes_controls_and_bidi_overrides():
    hostile = "../etc\x07\x1b[31m red\x1b[0m\r\nX-Evil: 1 \u202e4pm.exe\tend"
    assert one_line(hostile) == "../etc red X-Evil: 1 4pm.exe end"
    assert one_line("é ü ñ 日本") == "é ü ñ 日本"  # printable text stays
    assert one_line("x" * 400) == "x" * 300
    assert one_line("a  \n\n b", limit=3) == "a b"


def test_every_source_failure_carries_a_reason_and_a_one_line_detail():
    for exc in (
        DownloadError(SourceError.NETWORK, "connection\nrefused\x1b[0m"),
        MediaError("corrupt_media", "moov atom\x00 not found"),
    ):
        assert isinstance(exc, SourceFailure) and not isinstance(exc, SystemicError)
        assert isinstance(exc.reason, SourceError)
        assert "\n" not in exc.detail and "\x1b" not in exc.detail and "\x00" not in exc.detail
        assert str(exc) == f"{exc.reason.value}: {exc.detail}"
    assert MediaError("corrupt_media", "x").reason is SourceError.CORRUPT_MEDIA
