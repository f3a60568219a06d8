"""Arrow manifests of an avforge corpus: the public read API, the schemas, sharded atomic I/O.

The contract (docs/manifests.md): each reader takes a corpus folder (a local path or fsspec URL) and
returns a ``pyarrow.Table`` of all its shards, validated against the schema of this avforge version.

Example::

    import manifests
    clips = manifests.read_clips("corpus/")
    kept = clips.filter(pyarrow.compute.field("snr_db") > 20)
    report = manifests.verify_corpus("corpus/")   # what ``avforge verify`` checks; report.errors
"""

from __future__ import annotations

import pyarrow as pa

from manifests.io import (
    ManifestError,
    list_shards,
    read_manifest,
    shard_path,
    write_records,
    write_table,
)
from manifests.media import FaceTrack, MediaReader, MediaRecord, write_media_shard
from manifests.schema import (
    MEDIA_SCHEMA,
    SCHEMA_VERSION,
    TABLES,
    ClipRecord,
    LedgerRecord,
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
    SplitRecord,
    records_to_table,
    table_to_records,
)
from manifests.verify import VerifyReport, verify_corpus


def read_sources(corpus: str) -> pa.Table:
    """One row per source: ``source_id``, ``url``, ``status`` (ok/failed), ``error`` (reason or null), ..."""
    return read_manifest(str(corpus), "sources")


def read_segments(corpus: str) -> pa.Table:
    """Every candidate segment, kept or not: ``source_id``, ``start_s``, ``end_s``, ``kept``, ``reason``, ``snr_db``."""
    return read_manifest(str(corpus), "segments")


def read_clips(corpus: str) -> pa.Table:
    """One row per kept clip: ``clip_id``, ``source_id``, times, ``snr_db``, ``split``, media pointer, ..."""
    return read_manifest(str(corpus), "clips")


def read_noises(corpus: str) -> pa.Table:
    """Registered noise and music recordings."""
    return read_manifest(str(corpus), "noises")


def read_rirs(corpus: str) -> pa.Table:
    """Simulated room impulse responses."""
    return read_manifest(str(corpus), "rirs")


def read_splits(corpus: str) -> pa.Table:
    """The split assignments written by ``avforge split`` (empty before the first pass)."""
    return read_manifest(str(corpus), "splits")


def read_ledger(corpus: str) -> pa.Table:
    """Videos the site refused for good (the never-retry ledger of ``avforge curate``)."""
    return read_manifest(str(corpus), "ledger")


def read_mixtures(corpus: str) -> pa.Table:
    """Mixture recipes (a frozen evaluation set, or a logged training stream)."""
    return read_manifest(str(corpus), "mixtures")


__all__ = [
    "MEDIA_SCHEMA",
    "SCHEMA_VERSION",
    "TABLES",
    "ClipRecord",
    "FaceTrack",
    "LedgerRecord",
    "ManifestError",
    "MediaReader",
    "MediaRecord",
    "MixTask",
    "MixtureSpec",
    "NoiseKind",
    "NoiseRecord",
    "RejectReason",
    "RirRecord",
    "SegmentRecord",
    "SourceError",
    "SourceKind",
    "SourceRecord",
    "SourceStatus",
    "Split",
    "SplitRecord",
    "VerifyReport",
    "list_shards",
    "read_clips",
    "read_ledger",
    "read_manifest",
    "read_mixtures",
    "read_noises",
    "read_rirs",
    "read_segments",
    "read_sources",
    "read_splits",
    "records_to_table",
    "shard_path",
    "table_to_records",
    "verify_corpus",
    "write_media_shard",
    "write_records",
    "write_table",
]
