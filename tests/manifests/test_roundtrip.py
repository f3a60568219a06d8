"""Every manifest table round-trips (records -> Arrow file -> records) locally and on memory://."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest

import manifests
from manifests import (
    ClipRecord,
    MixTask,
    MixtureSpec,
    NoiseKind,
    NoiseRecord,
    RejectReason,
    RirRecord,
    SegmentRecord,
    SourceError,
    SourceKind,
    SourceRecord,
    SourceStatus,
    Split,
)
from manifests.io import list_shards, read_manifest, write_records
from manifests.schema import TABLES, records_to_table, table_to_records

SOURCES = [
    SourceRecord(
        "yt_abc123",
        "https://example.org/v/abc123",
        SourceKind.URL,
        SourceStatus.OK,
        title="A talk",
        channel="chan",
        upload_date="20240101",
        duration_s=612.5,
        width=640,
        height=360,
        fps=25.0,
        audio_sample_rate_hz=44100,
        audio_channels=2,
        num_segments=12,
        num_clips=7,
        processing_s=31.2,
    ),
    SourceRecord(
        "yt_dead",
        "https://example.org/v/dead",
        SourceKind.AVSPEECH,
        SourceStatus.FAILED,
        error=SourceError.DOWNLOAD_FAILED,
        error_detail="HTTP Error 404: Not Found",
        hint_start_s=10.0,
        hint_end_s=15.5,
        hint_face_x=0.4,
        hint_face_y=0.3,
    ),
]
SEGMENTS = [
    SegmentRecord(
        "yt_abc123_000010000",
        "yt_abc123",
        10.0,
        16.0,
        True,
        snr_db=24.5,
        track_id=0,
        num_faces=1.0,
        face_missing_ratio=0.02,
        speech_ratio=0.9,
        sync_score=0.61,
        sync_offset_s=0.04,
    ),
    SegmentRecord(
        "yt_abc123_000020000",
        "yt_abc123",
        20.0,
        23.5,
        False,
        reason=RejectReason.MULTIPLE_FACES,
        num_faces=2.0,
    ),
]
CLIPS = [
    ClipRecord(
        "yt_abc123_000010000",
        "yt_abc123",
        10.0,
        16.0,
        6.0,
        24.5,
        150,
        16000,
        96000,
        Split.TRAIN,
        "yt_abc123.arrow",
        0,
        face_x=0.5,
        face_y=0.4,
        sync_score=0.61,
    ),
]
NOISES = [
    NoiseRecord(
        "dishes",
        NoiseKind.NOISE,
        95.18,
        16000,
        1522930,
        Split.TRAIN,
        "noises-0.arrow",
        0,
        origin="doing_the_dishes.wav",
        license="CC BY 4.0",
    ),
    NoiseRecord("guitar", NoiseKind.MUSIC, 10.4, 16000, 166440, Split.TEST, "noises-0.arrow", 1),
]
RIRS = [
    RirRecord(
        "room0_src0",
        "room0",
        0.45,
        6.0,
        5.0,
        3.0,
        2.0,
        2.5,
        1.5,
        4.0,
        2.5,
        1.5,
        16000,
        8000,
        100,
        Split.TRAIN,
        "rirs-0.arrow",
        0,
    ),
]
MIXTURES = [
    MixtureSpec(
        "e0_i0",
        MixTask.TWO_SPEAKERS_NOISE,
        123456789,
        3.0,
        ["a", "b"],
        [0.0, 0.4],
        [0.0, 0.0],
        [0.0, -2.5],
        ["room0_src0", None],
        Split.VAL,
        noise_id="dishes",
        noise_offset_s=1.2,
        noise_snr_db=5.0,
    ),
    MixtureSpec(
        "e0_i1",
        MixTask.ONE_SPEAKER_NOISE,
        42,
        3.0,
        ["c"],
        [1.2],
        [0.0],
        [0.0],
        [None],
        Split.VAL,
        noise_id="guitar",
        noise_offset_s=0.0,
        noise_gain=0.3,
        index=1,
    ),
]
LEDGER = [
    manifests.schema.LedgerRecord(
        video_id="-abcdefghij",
        url="https://www.youtube.com/watch?v=-abcdefghij",
        reason=SourceError.PRIVATE,
        detail="[youtube] -abcdefghij: Private video",
        source_id="-abcdefghij_000001500",
        run_id="run-x1",
        failed_at="2026-01-31T12:00:00Z",
    ),
]
SPLITS = [
    manifests.schema.SplitRecord("a-1", "a", "spk-1", "grp-1", Split.TRAIN),
    manifests.schema.SplitRecord("b-1", "b", "spk-1", "grp-1", Split.TEST, heldout=True),
]
ALL = {
    "ledger": LEDGER,
    "sources": SOURCES,
    "segments": SEGMENTS,
    "clips": CLIPS,
    "noises": NOISES,
    "rirs": RIRS,
    "mixtures": MIXTURES,
    "splits": SPLITS,
}


def test_every_table_has_records_here():
    assert set(ALL) == set(TABLES)


@pytest.mark.parametrize("name", sorted(ALL))
def test_records_table_roundtrip(name):
    records = ALL[name]
    table = records_to_table(records)
    assert table.schema.equals(TABLES[name].schema, check_metadata=True)
    assert table_to_records(table, type(records[0])) == records


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("storage", ["local", "memory"])
def test_write_read_roundtrip(name, storage, tmp_path):
    corpus = str(tmp_path / "corpus") if storage == "local" else f"memory://{uuid.uuid4().hex}/c"
    records = ALL[name]
    # two shards, written in reverse order: the reader concatenates and sorts by the table's key
    write_records(corpus, name, "b", records[:1])
    write_records(corpus, name, "a", records[1:])
    assert list_shards(corpus, name) == ["a", "b"]  # an empty shard is a valid shard
    table = read_manifest(corpus, name)
    spec = TABLES[name]
    got = table_to_records(table, spec.record_type)
    key = lambda r: tuple(getattr(r, k) for k in spec.sort_keys)  # noqa: E731
    assert got == sorted(records, key=key)


def test_contract_readers_and_columns(tmp_path):
    corpus = str(tmp_path)
    for name, records in ALL.items():
        write_records(corpus, name, "s0", records)
    sources = manifests.read_sources(corpus)
    assert {"source_id", "url", "status", "error"} <= set(sources.column_names)
    assert sources.column("status").to_pylist() == ["ok", "failed"]
    assert sources.column("error").to_pylist() == [None, "download_failed"]
    segments = manifests.read_segments(corpus)
    for col in ("source_id", "start_s", "end_s", "kept", "reason", "snr_db"):
        assert col in segments.column_names
    assert segments.column("reason").to_pylist() == [None, "multiple_faces"]
    clips = manifests.read_clips(corpus)
    for col in (
        "clip_id",
        "source_id",
        "start_s",
        "end_s",
        "duration_s",
        "snr_db",
        "num_frames",
        "sample_rate_hz",
        "split",
    ):
        assert col in clips.column_names
    assert manifests.read_noises(corpus).num_rows == 2
    assert manifests.read_rirs(corpus).num_rows == 1
    assert manifests.read_mixtures(corpus).num_rows == 2


def test_empty_corpus_reads_empty_tables_with_schema(tmp_path):
    table = manifests.read_clips(str(tmp_path / "nothing"))
    assert table.num_rows == 0
    assert table.schema.equals(TABLES["clips"].schema)


def test_enum_columns_are_dictionary_encoded():
    table = records_to_table(SOURCES)
    assert pa.types.is_dictionary(table.schema.field("status").type)
    assert pa.types.is_dictionary(table.schema.field("error").type)


def test_records_of_another_type_are_refused():
    with pytest.raises(TypeError, match="expected SourceRecord"):
        records_to_table([SOURCES[0], CLIPS[0]])


def test_temporary_files_are_not_listed(tmp_path):
    corpus = str(tmp_path)
    write_records(corpus, "clips", "s0", CLIPS)
    (tmp_path / "clips" / ".tmp-123-s1.arrow").write_bytes(b"partial")
    assert list_shards(corpus, "clips") == ["s0"]
    assert manifests.read_clips(corpus).num_rows == 1


@pytest.mark.parametrize("storage", ["local", "memory"])
def test_media_roundtrip(storage, tmp_path):
    rng = np.random.default_rng(0)
    path = (
        str(tmp_path / "media" / "m.arrow")
        if storage == "local"
        else f"memory://{uuid.uuid4().hex}/media/m.arrow"
    )
    n = 50
    audio = (0.3 * rng.standard_normal(16000 * 2)).clip(-1, 1).astype(np.float32)
    boxes = rng.uniform(0, 300, (n, 4)).astype(np.float32)
    track = manifests.FaceTrack(
        25.0,
        boxes,
        rng.uniform(0, 1, n).astype(np.float32),
        rng.uniform(size=n) > 0.2,
        rng.uniform(0, 300, (n, 5, 2)).astype(np.float32),
    )
    # a smooth, channel-distinct image (JPEG is lossy on noise; a swapped RGB order would show)
    yy, xx = np.mgrid[0:16, 0:16]
    crop = np.stack([xx * 15, yy * 15, np.full_like(xx, 60)], axis=-1).astype(np.uint8)
    from manifests.media import encode_jpeg

    crops = [encode_jpeg(crop) if p else b"" for p in track.present]
    emb = rng.standard_normal((n, 8)).astype(np.float32)
    rir = rng.standard_normal(800).astype(np.float32) * 1e-3
    manifests.write_media_shard(
        path,
        [
            manifests.MediaRecord(
                "clip", 16000, audio, track=track, crops_jpeg=crops, crop_size=16, embeddings=emb
            ),
            manifests.MediaRecord.from_audio(
                "rir", rir, 16000, manifests.schema.SampleFormat.FLOAT32
            ),
        ],
    )
    reader = manifests.MediaReader()
    got = reader.audio(path, 0)
    assert got.dtype == np.float32 and got.shape == audio.shape
    assert np.max(np.abs(got - audio)) <= 1 / 32768 + 1e-7  # PCM16 quantisation only
    np.testing.assert_array_equal(reader.audio(path, 0, 100, 300), got[100:300])
    assert reader.num_samples(path, 0) == audio.size
    np.testing.assert_array_equal(reader.audio(path, 1), rir)  # float32 stored exactly
    t = reader.face_track(path, 0)
    np.testing.assert_array_equal(t.boxes, boxes)
    np.testing.assert_array_equal(t.present, track.present)
    np.testing.assert_array_equal(t.landmarks, track.landmarks)
    frames = reader.face_crops(path, 0)
    assert frames.shape == (n, 16, 16, 3)
    assert not frames[~track.present].any()  # missing frames are zeros
    first = int(np.argmax(track.present))
    assert np.abs(frames[first].astype(int) - crop.astype(int)).mean() < 6  # JPEG, lossy
    np.testing.assert_allclose(reader.embeddings(path, 0), emb, atol=2e-3)  # float16
    assert reader.face_track(path, 1) is None and reader.embeddings(path, 1) is None


def test_media_rejects_nan_audio(tmp_path):
    bad = np.array([0.0, np.nan], np.float32)
    with pytest.raises(ValueError, match="NaN"):
        manifests.write_media_shard(
            str(tmp_path / "m.arrow"), [manifests.MediaRecord.from_audio("x", bad, 16000)]
        )
    assert not (tmp_path / "m.arrow").exists()


def test_media_row_out_of_range_names_file(tmp_path):
    path = str(tmp_path / "m.arrow")
    manifests.write_media_shard(path, [manifests.MediaRecord.from_audio("x", np.zeros(10), 16000)])
    with pytest.raises(manifests.ManifestError, match=r"m\.arrow: row 3 out of range"):
        manifests.MediaReader().audio(path, 3)
