"""Every Arrow schema of avforge, next to the record type it serialises.

This module is the only place where manifest columns are defined. Each table has:

- a frozen dataclass record (``SourceRecord``, ``SegmentRecord``, ``ClipRecord``, ``NoiseRecord``,
  ``RirRecord``, ``MixtureSpec``, ``LedgerRecord``) whose field names are the column names;
- an Arrow schema (``TABLES[name].schema``) whose categorical columns are dictionary-encoded enums;
- one conversion path: ``records_to_table(records)`` and ``table_to_records(table, Record)``.

Units are in the names: times in seconds (``_s``) from the start of the source media, levels in dB
(``_db``), rates in Hz (``_hz``). Ids are strings, stable across reruns.

Manifest tables are small and point to media by ``(media_shard, media_row)``: ``media_shard`` is the
shard file name relative to the corpus folder's ``media/`` directory and ``media_row`` the row in it.
Media shards (``MEDIA_SCHEMA``) hold the bulk data: PCM audio, the 25 fps face track, JPEG face crops,
optional face embeddings, and a CRC-32 of each row's audio and face bytes (``samples_crc32``,
``face_crc32``; absent from shards written before checksums existed). They are uncompressed Arrow IPC
files, so a reader memory-maps them and slices a clip's samples without copying or decoding (see
docs/manifests.md for why).

The schema version is stored in every file's metadata (``avforge.schema_version``) and checked on read.
Additions that leave every existing file valid stay within the version: new enum values (the column
is a dictionary of strings either way; a reader older than the value cannot name it), new tables
(``ledger``), and the optional media columns below. Anything that changes a column's type or removes
one needs a new version.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow as pa

from avforge.core.ids import Split  # defined with the split rule; re-exported here
from avforge.core.media import FPS

SCHEMA_VERSION = "2"
META_VERSION = b"avforge.schema_version"
META_TABLE = b"avforge.table"

Seconds = float
Decibels = float


class SourceKind(enum.StrEnum):
    """Where a source came from."""

    URL = "url"
    AVSPEECH = "avspeech"
    LOCAL = "local"


class SourceStatus(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"


class SourceError(enum.StrEnum):
    """Why a source failed as a whole (``sources.error``)."""

    DOWNLOAD_FAILED = "download_failed"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    TOO_LONG = "too_long"
    TOO_LARGE = "too_large"
    NO_AUDIO = "no_audio"
    NO_VIDEO = "no_video"
    CORRUPT_MEDIA = "corrupt_media"
    UNSUPPORTED_MEDIA = "unsupported_media"
    INVALID_SOURCE = "invalid_source"
    INTERNAL_ERROR = "internal_error"
    # The site refuses this video (permanent until something changes: recorded in the fetch
    # ledger, see ``LedgerRecord``; values added within schema version 2, Arrow types unchanged).
    UNAVAILABLE = "unavailable"
    PRIVATE = "private"
    MEMBERS_ONLY = "members_only"
    AGE_RESTRICTED = "age_restricted"
    GEO_BLOCKED = "geo_blocked"
    COPYRIGHT = "copyright"
    LIVE = "live"
    # Transient: retried with backoff within the run, then left for the next run; never in a row.
    RATE_LIMITED = "rate_limited"
    NETWORK = "network"


class RejectReason(enum.StrEnum):
    """Why a candidate segment was not kept (``segments.reason``)."""

    NO_FACE = "no_face"
    MULTIPLE_FACES = "multiple_faces"
    FACE_MISSING_FRAMES = "face_missing_frames"
    LOW_FACE_QUALITY = "low_face_quality"
    FACE_HINT_MISMATCH = "face_hint_mismatch"
    NO_SPEECH = "no_speech"
    NOT_SPEAKING = "not_speaking"
    NOT_IN_SYNC = "not_in_sync"
    LOW_SNR = "low_snr"
    TOO_SHORT = "too_short"


class NoiseKind(enum.StrEnum):
    NOISE = "noise"
    MUSIC = "music"
    BABBLE = "babble"


class MixTask(enum.StrEnum):
    """The AVSpeech paper's four tasks, plus free-form recipes."""

    ONE_SPEAKER_NOISE = "1s_noise"
    TWO_SPEAKERS = "2s_clean"
    TWO_SPEAKERS_NOISE = "2s_noise"
    THREE_SPEAKERS = "3s_clean"
    CUSTOM = "custom"


class SampleFormat(enum.StrEnum):
    """How ``MEDIA_SCHEMA.samples`` is encoded (little-endian, mono)."""

    PCM16 = "pcm16"
    FLOAT32 = "float32"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class SourceRecord:
    """One source video and what became of it."""

    source_id: str
    """Stable id: the YouTube id for YouTube URLs, ``<youtube_id>_<start ms, 9 digits>`` for AVSpeech
    CSV rows (each row is its own source with its own face hint), else a hash of the URL or path."""
    url: str
    """The URL or local path as given."""
    kind: SourceKind
    status: SourceStatus
    error: SourceError | None = None
    """Short reason when ``status`` is failed, else None."""
    error_detail: str | None = None
    """One line of detail for a failure (never a traceback)."""
    title: str | None = None
    """Title from the site's metadata (as given; never used in file names)."""
    channel: str | None = None
    upload_date: str | None = None
    """YYYYMMDD as yt-dlp reports it."""
    license: str | None = None
    language: str | None = None
    duration_s: Seconds | None = None
    """Seconds of media processed: the whole file, or the fetched range for AVSpeech rows."""
    width: int | None = None
    """Displayed frame width in pixels (after rotation)."""
    height: int | None = None
    fps: float | None = None
    """Average video frame rate of the source."""
    audio_sample_rate_hz: int | None = None
    """Sample rate of the source audio (before resampling to 16 kHz)."""
    audio_channels: int | None = None
    hint_start_s: Seconds | None = None
    """AVSpeech CSV segment start, when the source came from one."""
    hint_end_s: Seconds | None = None
    hint_face_x: float | None = None
    """AVSpeech face centre hint (0..1 of the width) at ``hint_start_s``."""
    hint_face_y: float | None = None
    num_segments: int = 0
    """Candidate segments considered in this source."""
    num_clips: int = 0
    """Clips kept from this source."""
    processing_s: Seconds = 0.0
    """Wall time spent on this source by its worker."""


@dataclass(frozen=True)
class LedgerRecord:
    """One video the site refused for good (the fetch ledger: sources of it are not fetched again)."""

    video_id: str
    """The video's id: the YouTube id for YouTube URLs (every spelling, AVSpeech rows included), else
    ``url-`` + a hash of the URL (``curation.sources.url_source_id``); also the shard name."""
    url: str
    """The URL whose fetch failed."""
    reason: SourceError
    """Why: ``not_found`` or a site refusal (``unavailable``, ``private``, ``members_only``,
    ``age_restricted``, ``geo_blocked``, ``copyright``, ``live``)."""
    detail: str | None
    """The site's message, one line."""
    source_id: str
    """The source whose fetch found it."""
    run_id: str
    """The run that recorded it (its scratch folder name); ``--retry-failed`` ignores the entries of
    earlier runs."""
    failed_at: str
    """When, UTC, ISO 8601 (``2026-01-31T12:00:00Z``)."""


@dataclass(frozen=True)
class SegmentRecord:
    """One candidate segment, kept or rejected."""

    segment_id: str
    """``<source_id>_<start in ms, 9 digits>``; equals the clip id when kept."""
    source_id: str
    start_s: Seconds
    end_s: Seconds
    kept: bool
    reason: RejectReason | None = None
    """None when kept; else the first failed check (order documented in docs/curation.md)."""
    snr_db: Decibels | None = None
    """Estimated speech SNR (None when the segment was rejected before SNR was measured)."""
    track_id: int | None = None
    """Face track the segment belongs to (None when no single track)."""
    num_faces: float | None = None
    """Mean number of faces per detection frame."""
    face_missing_ratio: float | None = None
    """Fraction of the segment's 25 fps frames without a usable face."""
    speech_ratio: float | None = None
    """Fraction of the segment with speech activity."""
    speaking_score: float | None = None
    """Active-speaker score (LR-ASD class-1 logit, > 0 speaking): the window's mean over its speech
    frames, when measured."""
    sync_score: float | None = None
    """Sync confidence, when measured (curation.speaker): how sharply the face's speaking score
    peaks at the sound's own alignment (the score at zero audio offset against offsets of 0.32-1.6 s,
    in standard deviations of the latter) plus ``speaker.lip_energy_weight`` times the correlation of
    the lips' visual-only speaking score with the sound's loudness, both pooled with neighbouring
    windows of the face track."""
    sync_offset_s: Seconds | None = None
    """Audio delay (s, positive when the sound lags the lips) at which the speaking score peaks
    (within ±1.6 s)."""
    music_score: float | None = None
    """YAMNet's mean ``Music`` probability over the segment (0..1; ``snr.music_threshold`` rejects it
    as ``low_snr`` at or above). Measured with the SNR (None when that was not measured, or the music
    check is off). Added within schema
    version 2: older segment shards lack the column and read as None."""


@dataclass(frozen=True)
class ClipRecord:
    """One kept clip; its media are at ``(media_shard, media_row)``."""

    clip_id: str
    """``<source_id>_<start in ms, 9 digits>``: stable across reruns."""
    source_id: str
    start_s: Seconds
    """Start in the source media, seconds."""
    end_s: Seconds
    duration_s: Seconds
    snr_db: Decibels | None
    """Estimated speech SNR."""
    num_frames: int
    """Face-track frames at ``fps`` (25)."""
    sample_rate_hz: int
    num_samples: int
    split: Split
    """Assigned per source (so per speaker), never per clip."""
    media_shard: str
    """Media shard file name in the corpus's ``media/`` folder."""
    media_row: int
    """Row of this clip in ``media_shard``."""
    fps: float = float(FPS)
    speaker_id: str | None = None
    """A speaker label when known (else the source id stands in for it)."""
    gender: str | None = None
    """Speaker gender when known ("female" / "male", see ``normalize_gender``), for per-gender-pair
    evaluation; set by imports whose source gives it (Lhotse supervisions' ``gender``)."""
    face_x: float | None = None
    """Face centre at ``start_s``, 0..1 of the frame width (for AVSpeech-CSV export)."""
    face_y: float | None = None
    sync_score: float | None = None
    """Sync confidence (see ``SegmentRecord.sync_score``)."""
    speaking_score: float | None = None
    """Mean active-speaker score over the clip's speech frames."""
    has_crops: bool = True
    has_embeddings: bool = False
    has_lip_features: bool = False
    """The media row holds LR-ASD lip features (``MediaReader.lip_features``)."""


GENDERS: tuple[str, ...] = ("female", "male")
"""The values of ``ClipRecord.gender`` (None when unknown)."""
_GENDER_SPELLINGS: dict[str, str] = {"f": "female", "female": "female", "m": "male", "male": "male"}


def normalize_gender(value: object) -> str | None:
    """``"female"`` / ``"male"`` from the usual spellings (``F``, ``m``, ``Female``, ...; LibriSpeech's
    SPEAKERS.TXT and Lhotse use ``F`` / ``M``), None for anything else (unknown, empty, other)."""
    if not isinstance(value, str):
        return None
    return _GENDER_SPELLINGS.get(value.strip().lower())


@dataclass(frozen=True)
class SplitRecord:
    """A clip's leak-free split assignment (written by the corpus-level split pass, ``avforge split``)."""

    clip_id: str
    source_id: str
    speaker_id: str
    """Pseudo-speaker (voice-embedding cluster across the whole corpus)."""
    group_id: str
    """Connected group: clips joined by source, pseudo-speaker or near-duplicate source link."""
    split: Split
    """The group's split; once assigned it never changes when the corpus grows."""
    heldout: bool = False
    """The group holds an id of the held-out list (forced out of train)."""


@dataclass(frozen=True)
class NoiseRecord:
    """One noise or music recording registered for mixing."""

    noise_id: str
    kind: NoiseKind
    duration_s: Seconds
    sample_rate_hz: int
    num_samples: int
    split: Split
    media_shard: str
    media_row: int
    origin: str | None = None
    """Where the recording came from (path or URL)."""
    license: str | None = None


@dataclass(frozen=True)
class RirRecord:
    """One simulated room impulse response (one source position, one microphone)."""

    rir_id: str
    room_id: str
    rt60_s: Seconds
    room_x_m: float
    room_y_m: float
    room_z_m: float
    source_x_m: float
    source_y_m: float
    source_z_m: float
    mic_x_m: float
    mic_y_m: float
    mic_z_m: float
    sample_rate_hz: int
    num_samples: int
    direct_delay_samples: int
    """Sample index of the direct-path peak."""
    split: Split
    media_shard: str
    media_row: int
    """Row holding the full RIR; the early (direct + early reflections) RIR is the next row."""


@dataclass(frozen=True)
class MixtureSpec:
    """A mixture recipe: everything needed to render it exactly, nothing rendered.

    Per speaker i: ``clip_ids[i]`` cropped at ``offsets_s[i]`` (multiples of 40 ms) for ``duration_s``,
    placed at ``starts_s[i]`` in the mixture, scaled by ``gains_db[i]`` relative to the reference
    (``reference`` index, level measured on active speech), convolved with ``rir_ids[i]`` when given.
    Noise ``noise_id`` from ``noise_offset_s`` at ``noise_snr_db`` against the reference speaker's active
    speech level (or ``noise_gain`` times the raw noise when set, the paper's ``s + 0.3·noise``).
    """

    mixture_id: str
    task: MixTask
    seed: int
    duration_s: Seconds
    clip_ids: list[str]
    offsets_s: list[float]
    starts_s: list[float]
    gains_db: list[float]
    rir_ids: list[str | None]
    split: Split
    reference: int = 0
    noise_id: str | None = None
    noise_offset_s: Seconds | None = None
    noise_snr_db: Decibels | None = None
    noise_gain: float | None = None
    noise_rir_id: str | None = None
    epoch: int = 0
    index: int = 0


# --------------------------------------------------------------------------- schemas


def _enum_type() -> pa.DataType:
    return pa.dictionary(pa.int8(), pa.string())


def _arrow_type(tp: Any) -> tuple[pa.DataType, bool]:
    """(arrow type, nullable) for a record field annotation."""
    nullable = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(tp))
        (tp,) = args
        origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        item_type, _ = _arrow_type(item)
        return pa.list_(item_type), nullable
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_type(), nullable
    mapping: dict[Any, pa.DataType] = {
        str: pa.string(),
        int: pa.int64(),
        float: pa.float64(),
        bool: pa.bool_(),
    }
    if tp in mapping:
        return mapping[tp], nullable
    raise TypeError(f"no Arrow type for {tp!r}")


R = TypeVar("R")


@dataclass(frozen=True)
class TableSpec:
    """A manifest table: its name, record type and Arrow schema (derived from the record)."""

    name: str
    record_type: type
    sort_keys: tuple[str, ...]
    schema: pa.Schema = field(init=False)
    enums: dict[str, type[enum.Enum]] = field(init=False)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(self.record_type)
        fields = []
        enums: dict[str, type[enum.Enum]] = {}
        for f in dataclasses.fields(self.record_type):
            arrow_type, nullable = _arrow_type(hints[f.name])
            fields.append(pa.field(f.name, arrow_type, nullable=nullable))
            base = hints[f.name]
            for arg in (base, *typing.get_args(base)):
                if isinstance(arg, type) and issubclass(arg, enum.Enum):
                    enums[f.name] = arg
        meta = {META_VERSION: SCHEMA_VERSION.encode(), META_TABLE: self.name.encode()}
        object.__setattr__(self, "schema", pa.schema(fields, metadata=meta))
        object.__setattr__(self, "enums", enums)


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("sources", SourceRecord, ("source_id",)),
        TableSpec("segments", SegmentRecord, ("source_id", "start_s", "end_s")),
        TableSpec("clips", ClipRecord, ("clip_id",)),
        TableSpec("noises", NoiseRecord, ("noise_id",)),
        TableSpec("rirs", RirRecord, ("rir_id",)),
        TableSpec("mixtures", MixtureSpec, ("epoch", "index")),
        TableSpec("ledger", LedgerRecord, ("video_id",)),
        TableSpec("splits", SplitRecord, ("clip_id",)),
    )
}
ADDED_COLUMNS: frozenset[str] = frozenset({"music_score"})
"""Nullable columns added within this schema version: a file written before one existed lacks it,
and reads with it all null (``manifests.io.read_table``). Names are unique across the tables."""

TABLE_BY_RECORD: dict[type, TableSpec] = {spec.record_type: spec for spec in TABLES.values()}


MEDIA_SCHEMA = pa.schema(
    [
        pa.field("media_id", pa.string(), nullable=False),
        pa.field("sample_rate_hz", pa.int32(), nullable=False),
        pa.field("sample_format", _enum_type(), nullable=False),
        pa.field("samples", pa.large_binary(), nullable=False),
        # Face track at `fps`: boxes (n, 4) x0 y0 x1 y1 in source pixels, landmarks (n, 5, 2),
        # per-frame quality 0..1 and presence, JPEG crops, optional float16 embeddings (n, dim).
        pa.field("fps", pa.float32(), nullable=True),
        pa.field("face_boxes", pa.binary(), nullable=True),
        pa.field("face_landmarks", pa.binary(), nullable=True),
        pa.field("face_quality", pa.binary(), nullable=True),
        pa.field("face_present", pa.binary(), nullable=True),
        pa.field("face_crops", pa.list_(pa.binary()), nullable=True),
        pa.field("crop_size", pa.int32(), nullable=True),
        pa.field("face_embeddings", pa.binary(), nullable=True),
        pa.field("embedding_dim", pa.int32(), nullable=True),
        # Active speaker at `fps`: float32 speaking score per frame (n,) and float16 lip features
        # (n, lip_dim), LR-ASD's visual embedding.
        pa.field("speaking_scores", pa.binary(), nullable=True),
        pa.field("lip_features", pa.binary(), nullable=True),
        pa.field("lip_dim", pa.int32(), nullable=True),
        # Integrity: CRC-32 of the stored `samples` bytes, and of every face cell's bytes in column
        # order (boxes, landmarks, quality, present, each JPEG crop, embeddings, speaking scores, lip
        # features; null when the row has none). Written by every writer since this release.
        pa.field("samples_crc32", pa.uint32(), nullable=True),
        pa.field("face_crc32", pa.uint32(), nullable=True),
        # Voice identity: the clip's float16 speaker embedding (256,) (curation.voice, GE2E); null
        # where none was computed (imports, shards written before it existed). Not checksummed.
        pa.field("voice_embedding", pa.binary(), nullable=True),
    ],
    metadata={META_VERSION: SCHEMA_VERSION.encode(), META_TABLE: b"media"},
)
MEDIA_OPTIONAL_COLUMNS: frozenset[str] = frozenset(
    {"samples_crc32", "face_crc32", "voice_embedding"}
)
"""Media columns added within schema version 2: shards written before them lack them and stay valid
(readers and ``avforge verify`` report such shards as having no checksums; a missing voice embedding
reads as None); older readers ignore them. Every other ``MEDIA_SCHEMA`` column is required."""


# --------------------------------------------------------------------------- conversion


def records_to_table(records: Sequence[Any], record_type: type | None = None) -> pa.Table:
    """Records of one type -> Arrow table with that type's schema (the only way rows are made).

    ``record_type`` is needed only for an empty sequence.
    """
    if record_type is None:
        if not records:
            raise ValueError("records_to_table: pass record_type for an empty list")
        record_type = type(records[0])
    spec = TABLE_BY_RECORD[record_type]
    columns: dict[str, list[Any]] = {f.name: [] for f in spec.schema}
    for rec in records:
        if type(rec) is not record_type:
            raise TypeError(f"expected {record_type.__name__}, got {type(rec).__name__}")
        for name, values in columns.items():
            value = getattr(rec, name)
            if isinstance(value, enum.Enum):
                value = value.value
            values.append(value)
    arrays = []
    for f in spec.schema:
        values = columns[f.name]
        if f.name in spec.enums:
            allowed = [m.value for m in spec.enums[f.name]]
            arr = pa.DictionaryArray.from_arrays(
                pa.array([None if v is None else allowed.index(v) for v in values], pa.int8()),
                pa.array(allowed, pa.string()),
            )
        else:
            arr = pa.array(values, type=f.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def table_to_records(table: pa.Table, record_type: type[R]) -> list[R]:
    """Arrow table -> records (enums restored). Inverse of :func:`records_to_table`."""
    spec = TABLE_BY_RECORD[record_type]
    rows = table.select([f.name for f in spec.schema]).to_pylist()
    out = []
    for row in rows:
        for name, enum_type in spec.enums.items():
            if row[name] is not None:
                row[name] = enum_type(row[name])
        out.append(record_type(**row))
    return out


def empty_table(name: str) -> pa.Table:
    """An empty table with the schema of manifest table ``name``."""
    return TABLES[name].schema.empty_table()


def column_names(name: str) -> list[str]:
    return [f.name for f in TABLES[name].schema]
