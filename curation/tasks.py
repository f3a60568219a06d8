"""The thin Dask layer: one task per source, idempotent, writing that source's shards.

Contract of :func:`curate_task` (what a Dask worker runs; also callable directly):

1. if ``sources/<shard>.arrow`` exists the source is done: its rows are read back and summarised
   (``skipped=True``), nothing is recomputed or rewritten; a done marker that cannot be read (corrupt,
   truncated, written by another schema version) raises :class:`avforge.core.errors.CorruptCorpusError`
   naming the file (never overwritten: a rerun must not turn a finished source into a failed one).
   With ``retry_failed`` a done source whose row is ``failed`` is redone instead (its row is
   replaced when the new result is written);
2. if its video is in the fetch ledger (:mod:`curation.ledger`) the source fails at once with the
   entry's reason (its own failed row; nothing is fetched), unless ``retry_failed`` and the entry
   is from an earlier run;
3. else :func:`curation.process.process_source` runs the pure per-source stages;
4. a fetch that failed for a transient reason (``curation.download.TRANSIENT_REASONS``: rate limit or
   bot check, network; already retried with backoff) writes nothing: the result has
   ``deferred=True`` and the next run tries the source again. Otherwise a fetch refused for the
   video's own reason (``LEDGER_REASONS``) is recorded in the ledger, a source that got through
   removes its video's entry of an earlier run, and :func:`curation.export.write_source_shards`
   writes media, segments, clips, then sources last, each atomically (a killed task leaves no
   ``sources`` shard, so its source is redone);
5. it returns a small picklable :class:`TaskResult` (never the media).

So there is one rule for reruns: a source with a ``sources`` row is done, ok or failed, and
``--retry-failed`` redoes the failed ones; transient failures have no row. The ledger only lets the
other sources of a refused video fail without asking the site again.

The shard name is the source id (sources' ids are file-name safe). Only systemic problems raise
(:class:`avforge.core.errors.SystemicError`; an ``OSError`` while writing the shards becomes a
:class:`avforge.core.errors.StorageError`). A failed source has only its ``sources`` row.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field

from avforge.core.errors import CorruptCorpusError, StorageError
from curation import ledger
from curation.config import CurateConfig
from curation.download import TRANSIENT_REASONS
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
    deferred: bool = False
    """True when the fetch failed for a transient reason: no row was written (``error`` says why),
    the next run tries the source again."""


def shard_name(source_id: str) -> str:
    """The shard name of a source: its id (``[A-Za-z0-9_-][A-Za-z0-9_.-]*``, at most 200
    characters; ValueError otherwise, which :mod:`curation.sources` ids never are)."""
    if not _SAFE_SHARD.match(source_id) or len(source_id) > 200:
        raise ValueError(f"source id {source_id!r} is not a safe shard name")
    return source_id


def is_done(corpus: str, source_id: str) -> bool:
    """Whether the source's ``sources`` shard (the done marker) exists."""
    return exists(shard_path(corpus, "sources", shard_name(source_id)))


def summarize(
    source: SourceRecord, segments: list[SegmentRecord], skipped: bool, deferred: bool = False
) -> TaskResult:
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
        deferred=deferred,
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


def curate_task(
    source: Source, cfg: CurateConfig, corpus: str, workdir: str, retry_failed: bool = False
) -> TaskResult:
    """Curate one source into ``corpus`` unless already done (see the module docstring).

    ``workdir`` is the run's scratch folder; its name is the run's id in the fetch ledger."""
    if is_done(corpus, source.source_id):
        done = read_done(corpus, source.source_id)
        if done.ok or not retry_failed:
            return done
    run_id = os.path.basename(os.path.normpath(workdir))
    key = ledger.video_key(source)
    if key is not None:
        entry = ledger.lookup(corpus, key)
        if entry is not None and (not retry_failed or entry.run_id == run_id):
            return write_failed(corpus, ledger.failed_row(source, entry))
    result = process_source(source, cfg, workdir)
    if result.source.error in TRANSIENT_REASONS:
        return summarize(result.source, [], skipped=False, deferred=True)
    if key is not None:
        ledger.update(corpus, key, result.source, run_id)
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
