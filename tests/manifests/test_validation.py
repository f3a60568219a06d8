"""Reading a bad manifest file raises one clear ManifestError naming the file and the problem."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import manifests
from manifests import ManifestError, SourceKind, SourceRecord, SourceStatus
from manifests.io import shard_path, write_records, write_table
from manifests.schema import META_TABLE, META_VERSION, TABLES, records_to_table


@pytest.fixture
def corpus(tmp_path):
    write_records(
        str(tmp_path),
        "sources",
        "good",
        [
            SourceRecord("s1", "http://127.0.0.1/a.mp4", SourceKind.URL, SourceStatus.OK),
        ],
    )
    return tmp_path


def _sources_table() -> pa.Table:
    return records_to_table(
        [SourceRecord("s2", "http://127.0.0.1/b.mp4", SourceKind.URL, SourceStatus.OK)]
    )


def _write_bad(corpus, table: pa.Table) -> str:
    path = shard_path(str(corpus), "sources", "bad")
    write_table(path, table)
    return path


def test_wrong_schema_version(corpus):
    t = _sources_table()
    meta = dict(t.schema.metadata)
    meta[META_VERSION] = b"0"
    _write_bad(corpus, t.replace_schema_metadata(meta))
    with pytest.raises(ManifestError, match=r"bad\.arrow: schema version '0'"):
        manifests.read_sources(str(corpus))


def test_missing_schema_version(corpus):
    _write_bad(corpus, _sources_table().replace_schema_metadata({}))
    with pytest.raises(ManifestError, match=r"bad\.arrow: no avforge schema version"):
        manifests.read_sources(str(corpus))


def test_missing_column(corpus):
    t = _sources_table()
    t = t.drop_columns(["url"]).replace_schema_metadata(t.schema.metadata)
    _write_bad(corpus, t)
    with pytest.raises(ManifestError, match=r"bad\.arrow: missing column 'url'"):
        manifests.read_sources(str(corpus))


def test_wrong_column_type(corpus):
    t = _sources_table()
    idx = t.schema.get_field_index("duration_s")
    t = t.set_column(idx, pa.field("duration_s", pa.string()), pa.array(["long"]))
    _write_bad(corpus, t.replace_schema_metadata(TABLES["sources"].schema.metadata))
    with pytest.raises(ManifestError, match=r"bad\.arrow: column 'duration_s' has type string"):
        manifests.read_sources(str(corpus))


def test_truncated_file(corpus):
    path = _write_bad(corpus, _sources_table())
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    with pytest.raises(ManifestError, match=r"bad\.arrow: not a readable Arrow file"):
        manifests.read_sources(str(corpus))


def test_corrupt_file(corpus):
    path = shard_path(str(corpus), "sources", "bad")
    Path(path).write_bytes(b"this is not arrow at all" * 10)
    with pytest.raises(ManifestError, match=r"bad\.arrow: not a readable Arrow file"):
        manifests.read_sources(str(corpus))


def test_zero_byte_file(corpus):
    Path(shard_path(str(corpus), "sources", "bad")).write_bytes(b"")
    with pytest.raises(ManifestError, match=r"bad\.arrow"):
        manifests.read_sources(str(corpus))


def test_file_of_another_table(corpus):
    t = _sources_table()
    meta = dict(t.schema.metadata)
    meta[META_TABLE] = b"clips"
    _write_bad(corpus, t.replace_schema_metadata(meta))
    with pytest.raises(ManifestError, match=r"holds table 'clips', expected 'sources'"):
        manifests.read_sources(str(corpus))


def test_corrupt_media_shard(tmp_path):
    path = str(tmp_path / "media.arrow")
    (tmp_path / "media.arrow").write_bytes(b"\x00" * 100)
    with pytest.raises(ManifestError, match=r"media\.arrow: not a readable Arrow file"):
        manifests.MediaReader().audio(path, 0)


def test_invalid_shard_name(tmp_path):
    with pytest.raises(ValueError, match="invalid shard name"):
        shard_path(str(tmp_path), "sources", "../escape")


def test_segment_shards_written_before_music_score_read_as_none(tmp_path):
    """``music_score`` was added within schema version 2 (manifests.schema.ADDED_COLUMNS): a shard
    without it is valid and reads as null; a shard that has it keeps its values; any other missing
    column is still an error."""
    from manifests import RejectReason, SegmentRecord

    old = records_to_table(
        [SegmentRecord("s1_000000000", "s1", 0.0, 4.0, False, RejectReason.LOW_SNR, snr_db=9.0)]
    )
    old = old.drop_columns(["music_score"]).replace_schema_metadata(old.schema.metadata)
    write_table(shard_path(str(tmp_path), "segments", "old"), old)
    new = [SegmentRecord("s2_000000000", "s2", 0.0, 4.0, True, snr_db=30.0, music_score=0.001)]
    write_records(str(tmp_path), "segments", "new", new)
    rows = {r["source_id"]: r for r in manifests.read_segments(str(tmp_path)).to_pylist()}
    assert rows["s1"]["music_score"] is None and rows["s1"]["snr_db"] == 9.0
    assert rows["s2"]["music_score"] == pytest.approx(0.001)
    broken = old.drop_columns(["snr_db"]).replace_schema_metadata(old.schema.metadata)
    write_table(shard_path(str(tmp_path), "segments", "broken"), broken)
    with pytest.raises(ManifestError, match=r"broken\.arrow: missing column 'snr_db'"):
        manifests.read_segments(str(tmp_path))
