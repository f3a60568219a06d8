"""The fetch ledger: videos a site refused for good, so that later sources of them are not fetched.

Contract:

- where: ``DIR/ledger/<video_id>.arrow`` in the corpus folder, one ``LedgerRecord`` row a file
  (``manifests.schema``: video id, URL, reason, the site's message, the source and run that found
  it, when), written atomically like every manifest shard; a missing folder is an empty ledger;
- key: :func:`video_key`, the video id of an http(s) source (the YouTube id whatever the URL
  spelling or the mirror an AVSpeech row is fetched from, else ``url-<hash>``;
  ``curation.sources``), so the AVSpeech rows of one video and its other spellings share one entry;
  local files and invalid lines have none;
- what goes in: a source whose fetch failed with one of
  :data:`curation.download.LEDGER_REASONS` (``not_found`` and the site's refusals: ``unavailable``,
  ``private``, ``members_only``, ``age_restricted``, ``geo_blocked``, ``copyright``, ``live``);
  transient failures (``rate_limited``, ``network``) and our own limits (``timeout``, the caps) never;
- what it does (``curation.tasks.curate_task``): a source not yet done whose video has an entry fails
  at once with the entry's reason (its own ``sources`` row, no request to the site), unless the run
  retries failures (``avforge curate --retry-failed``), which ignores the entries of earlier runs;
  an entry is removed when a later fetch of its video gets through (:func:`forget`);
- concurrency: every write is one atomic rename of a whole file, so two runs that record the same
  video leave one complete entry (the last writer's); reads never see half a file. An entry that
  cannot be read raises :class:`avforge.core.errors.CorruptCorpusError` naming it (like a ``sources``
  shard, it is never overwritten blindly).
"""

from __future__ import annotations

import datetime as dt
import re

import fsspec
import pyarrow as pa

from avforge.core.errors import CorruptCorpusError, StorageError, one_line
from curation.download import LEDGER_REASONS
from curation.process import failed_record
from curation.sources import Source, url_source_id
from manifests.io import ManifestError, exists, read_manifest, read_table, shard_path, write_records
from manifests.schema import (
    TABLES,
    LedgerRecord,
    SourceError,
    SourceKind,
    SourceRecord,
    SourceStatus,
    table_to_records,
)

TABLE = "ledger"


_AVSPEECH_ROW_ID = re.compile(r"^(.+)_\d{9}$")
"""``curation.sources.avspeech_source_id``: ``<video id>_<start in ms, 9 digits>``."""


def video_key(source: Source) -> str | None:
    """The ledger key of ``source`` (its video id), or None when it is not fetched over http(s).

    An AVSpeech row's key is the video id in its source id (the YouTube id, whatever mirror
    ``avspeech_url_template`` points at); a URL's is :func:`curation.sources.url_source_id`."""
    if source.invalid is not None or not source.url.lower().startswith(("http://", "https://")):
        return None
    if source.kind == SourceKind.AVSPEECH:
        match = _AVSPEECH_ROW_ID.match(source.source_id)
        if match:
            return match.group(1)
    try:
        return url_source_id(source.url)
    except ValueError:
        return None


def lookup(corpus: str, key: str) -> LedgerRecord | None:
    """The ledger entry of video ``key``, or None."""
    path = shard_path(corpus, TABLE, key)
    if not exists(path):
        return None
    try:
        rows = table_to_records(read_table(path, TABLES[TABLE].schema), LedgerRecord)
        if len(rows) != 1:
            raise ManifestError(path, f"holds {len(rows)} rows, expected 1 (one video a shard)")
    except FileNotFoundError:  # removed between the check and the read (another run forgot it)
        return None
    except ManifestError as exc:
        if not exists(path):
            return None
        raise CorruptCorpusError(
            f"{exc} (a fetch-ledger entry of the corpus: delete it to fetch that video again, see "
            "docs/troubleshooting.md)"
        ) from None
    return rows[0]


def record(corpus: str, key: str, failed: SourceRecord, run_id: str) -> LedgerRecord | None:
    """Record video ``key`` when ``failed`` (a source row) failed for one of ``LEDGER_REASONS``;
    returns the entry written, or None when the reason does not belong in the ledger."""
    if failed.error is None or failed.error not in LEDGER_REASONS:
        return None
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    entry = LedgerRecord(
        video_id=key,
        url=failed.url,
        reason=failed.error,
        detail=failed.error_detail,
        source_id=failed.source_id,
        run_id=run_id,
        failed_at=now.isoformat().replace("+00:00", "Z"),
    )
    try:
        write_records(corpus, TABLE, key, [entry])
    except OSError as exc:
        raise StorageError(f"cannot write the corpus {corpus}: {exc}") from None
    return entry


def forget(corpus: str, key: str, run_id: str) -> bool:
    """Remove video ``key``'s entry unless this run (``run_id``) wrote it; True when one was removed."""
    path = shard_path(corpus, TABLE, key)
    try:
        entry = lookup(corpus, key)
    except CorruptCorpusError:
        entry = None  # its video was just fetched: the unreadable entry is moot, remove it
        if not exists(path):
            return False
    else:
        if entry is None or entry.run_id == run_id:
            return False
    fs, p = fsspec.core.url_to_fs(path)
    try:
        fs.rm(p)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageError(f"cannot write the corpus {corpus}: {exc}") from None
    return True


MEDIA_REASONS: frozenset[SourceError] = frozenset(
    {
        SourceError.NO_AUDIO,
        SourceError.NO_VIDEO,
        SourceError.CORRUPT_MEDIA,
        SourceError.UNSUPPORTED_MEDIA,
    }
)
"""Failures found in a fetched file: the fetch itself got through."""


def update(corpus: str, key: str, row: SourceRecord, run_id: str) -> None:
    """After a source of video ``key`` was processed: record its refusal (:func:`record`), or
    remove an earlier run's entry when the fetch got through (``row`` ok, or failed on the media)."""
    if row.status == SourceStatus.OK or row.error in MEDIA_REASONS:
        forget(corpus, key, run_id)
    else:
        record(corpus, key, row, run_id)


def failed_row(source: Source, entry: LedgerRecord) -> SourceRecord:
    """The ``failed`` row of a source whose video is in the ledger (it was not fetched)."""
    detail = one_line(
        f"not fetched: video {entry.video_id} is in the fetch ledger since {entry.failed_at} "
        f"(retry with --retry-failed): {entry.detail or ''}"
    )
    return failed_record(source, entry.reason, detail)


def read_ledger(corpus: str) -> pa.Table:
    """Every ledger entry of ``corpus`` (one row per video; empty when there is none)."""
    return read_manifest(corpus, TABLE)
