"""The thin Dask layer: one task per source, idempotent, writing that source's shards.

Contract of :func:`curate_task` (what a Dask worker runs; also callable directly):

1. if ``sources/<shard>.arrow`` exists the source is done: its rows are read back and summarised
   (``skipped=True``), nothing is recomputed or rewritten; a done marker that cannot be read (corrupt,
   truncated, written by another schema version) raises :class:`avforge.errors.CorruptCorpusError`
   naming the file (never overwritten: a rerun must not turn a finished source into a failed one);
2. else :func:`curation.process.process_source` runs the pure per-source stages;
3. :func:`curation.export.write_source_shards` writes media, segments, clips, then sources last,
   each atomically (a killed task leaves no ``sources`` shard, so its source is redone);
4. it returns a small picklable :class:`TaskResult` (never the media).

The shard name is the source id (sources' ids are file-name safe). Only systemic problems raise
(:class:`avforge.errors.SystemicError`; an ``OSError`` while writing the shards becomes a
:class:`avforge.errors.StorageError`). A failed source has only its ``sources`` row.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from avforge.errors import CorruptCorpusError, StorageError
from curation.config import CurateConfig
from curation.export import write_source_shards
from curation.process import process_source
from curation.sources import Source
from manifests.io import ManifestError, exists, read_table, shard_path, write_records
from manifests.schema import (
    TABLES,
    SegmentRecord,
    SourceRecord,
    SourceStatus,
    table_to_records,
)

_SAFE_SHARD = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
"""File-name safe, not hidden; a leading ``-`` is allowed (YouTube ids and file stems start with one;
no shard path ever reaches a command line as a bare argument)."""


@dataclass(frozen=True)
class TaskResult:
    """What one source task reports back to the pipeline (small; no media)."""

    source_id: str
    ok: bool
    error: str | None
    """``sources.error`` value of a failed source."""
    skipped: bool
    """True when the source was already done (its shard existed)."""
    media_s: float
    """Seconds of media processed."""
    processing_s: float
    kept: int
    rejected: int
    kept_s: float
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


def shard_name(source_id: str) -> str:
    """The shard name of a source: its id (``[A-Za-z0-9_-][A-Za-z0-9_.-]*``, at most 200
    characters; ValueError otherwise, which :mod:`curation.sources` ids never are)."""
    if not _SAFE_SHARD.match(source_id) or len(source_id) > 200:
        raise ValueError(f"source id {source_id!r} is not a safe shard name")
    return source_id


def is_done(corpus: str, source_id: str) -> bool:
    """Whether the source's ``sources`` shard (the done marker) exists."""
    return exists(shard_path(corpus, "sources", shard_name(source_id)))


def summarize(source: SourceRecord, segments: list[SegmentRecord], skipped: bool) -> TaskResult:
    """A :class:`TaskResult` from a source's rows (pure)."""
    kept = [s for s in segments if s.kept]
    reasons = Counter(s.reason.value for s in segments if not s.kept and s.reason is not None)
    return TaskResult(
        source_id=source.source_id,
        ok=source.status == SourceStatus.OK,
        error=None if source.error is None else source.error.value,
        skipped=skipped,
        media_s=float(source.duration_s or 0.0),
        processing_s=float(source.processing_s),
        kept=len(kept),
        rejected=len(segments) - len(kept),
        kept_s=float(sum(s.end_s - s.start_s for s in kept)),
        rejected_by_reason=dict(sorted(reasons.items())),
    )


def read_done(corpus: str, source_id: str) -> TaskResult:
    """Summarise a finished source from its shards.

    Raises :class:`CorruptCorpusError` (naming the file) when its ``sources`` or ``segments`` shard
    cannot be read: a corrupt corpus stops the run rather than being overwritten."""
    shard = shard_name(source_id)
    path = shard_path(corpus, "sources", shard)
    try:
        rows = table_to_records(read_table(path, TABLES["sources"].schema), SourceRecord)
        if len(rows) != 1:
            raise ManifestError(path, f"holds {len(rows)} rows, expected 1 (one source a shard)")
        seg_path = shard_path(corpus, "segments", shard)
        segs: list[SegmentRecord] = []
        if exists(seg_path):
            segs = table_to_records(read_table(seg_path, TABLES["segments"].schema), SegmentRecord)
    except ManifestError as exc:
        raise CorruptCorpusError(
            f"{exc} (an existing manifest of the corpus; it is never overwritten: restore or "
            "delete it, see docs/troubleshooting.md)"
        ) from None
    return summarize(rows[0], segs, skipped=True)


def curate_task(source: Source, cfg: CurateConfig, corpus: str, workdir: str) -> TaskResult:
    """Curate one source into ``corpus`` unless already done (see the module docstring)."""
    if is_done(corpus, source.source_id):
        return read_done(corpus, source.source_id)
    result = process_source(source, cfg, workdir)
    shard = shard_name(source.source_id)
    try:
        write_source_shards(
            corpus, shard, result.source, result.segments, result.clips, result.media
        )
    except OSError as exc:
        raise StorageError(f"cannot write the corpus {corpus}: {exc}") from None
    return summarize(result.source, result.segments, skipped=False)


def write_failed(corpus: str, record: SourceRecord) -> TaskResult:
    """Write a failed source's row (for a task that could not finish on any worker): its ``sources``
    shard only (no empty ``segments`` / ``clips`` shards)."""
    try:
        write_records(corpus, "sources", shard_name(record.source_id), [record])
    except OSError as exc:
        raise StorageError(f"cannot write the corpus {corpus}: {exc}") from None
    return summarize(record, [], skipped=False)
