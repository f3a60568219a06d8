"""Sharded, atomic, validated reading and writing of manifest tables through fsspec.

Layout of a corpus folder (local path or any fsspec URL such as ``s3://bucket/corpus`` or
``memory://corpus``)::

    DIR/sources/<shard>.arrow     one SourceRecord row per source (written last: the "done" marker)
    DIR/segments/<shard>.arrow    every candidate segment of the shard's sources
    DIR/clips/<shard>.arrow       kept clips
    DIR/media/<shard>.arrow       bulk media the clips point to (MEDIA_SCHEMA)
    DIR/noises/, DIR/rirs/, DIR/mixtures/   the same, for noise, RIR and mixture sets
    DIR/config/<verb>.yaml        the resolved config of each run that wrote here

Files are Arrow IPC ("Feather v2"), uncompressed, so local readers memory-map them. Writes go to a
temporary name in the same folder, are flushed and fsync'ed, then renamed over the final name: a reader
never sees half a file, and a killed writer leaves only a ``.tmp-*`` file that the next run ignores.

Reading validates every file: a wrong or missing schema version, a missing column, a column of the wrong
type, a truncated or corrupt file each raise :class:`ManifestError` naming the file and the problem.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from avforge.core import files
from manifests.schema import (
    ADDED_COLUMNS,
    META_TABLE,
    META_VERSION,
    SCHEMA_VERSION,
    TABLES,
    records_to_table,
)

SHARD_SUFFIX = ".arrow"


class ManifestError(ValueError):
    """A manifest file is missing, corrupt, or does not match its schema."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


# --------------------------------------------------------------------------- paths


def join(base: str, *parts: str) -> str:
    """Join path parts of a local path or URL with '/'."""
    base = str(base)
    if "://" in base:
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def table_dir(corpus: str, table: str) -> str:
    return join(corpus, table)


def shard_path(corpus: str, table: str, shard: str) -> str:
    """Path of shard ``shard`` of ``table`` in ``corpus``."""
    if "/" in shard or shard.startswith("."):
        raise ValueError(f"invalid shard name {shard!r}")
    return join(corpus, table, shard + SHARD_SUFFIX)


def media_file(corpus: str, media_shard: str) -> str:
    """Path of the media shard file that a clip, noise or RIR row names (its ``media_shard`` column:
    a file name in the corpus's ``media/`` folder)."""
    return join(str(corpus), "media", media_shard)


def exists(path: str) -> bool:
    fs, p = files.url_to_fs(path)
    return bool(fs.exists(p))


def require_corpus(corpus: str) -> str:
    """``corpus`` if it exists (a folder, or any object under a URL prefix); else ManifestError.

    For verbs that read a corpus: a mistyped folder is an error, not an empty corpus."""
    if not exists(str(corpus)):
        raise ManifestError(str(corpus), "no such corpus folder")
    return str(corpus)


def list_shards(corpus: str, table: str) -> list[str]:
    """Sorted shard names of ``table`` (complete files only; temporaries are ignored)."""
    fs, root = files.url_to_fs(table_dir(corpus, table))
    if not fs.exists(root):
        return []
    names = []
    for entry in fs.ls(root, detail=False):
        base = posixpath.basename(str(entry).rstrip("/"))
        if base.endswith(SHARD_SUFFIX) and not base.startswith("."):
            names.append(base[: -len(SHARD_SUFFIX)])
    return sorted(names)


# --------------------------------------------------------------------------- writing


def table_to_ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def write_table(path: str, table: pa.Table) -> None:
    """Write an Arrow table to ``path`` atomically (IPC file, uncompressed, memory-mappable)."""
    files.atomic_write_bytes(path, table_to_ipc_bytes(table))


def write_records(corpus: str, table: str, shard: str, records: Sequence[Any]) -> str:
    """Write records of manifest ``table`` as shard ``shard`` of ``corpus``; returns its path."""
    spec = TABLES[table]
    arrow = records_to_table(list(records), spec.record_type)
    path = shard_path(corpus, table, shard)
    write_table(path, arrow)
    return path


# --------------------------------------------------------------------------- reading


def open_ipc(path: str, *, memory_map: bool = True) -> pa.Table:
    """Read an Arrow IPC file (memory-mapped when local); errors name the file."""
    try:
        if memory_map and files.is_local(path):
            _, p = files.url_to_fs(path)
            source = pa.memory_map(p, "r")
            return ipc.open_file(source).read_all()
        fs, p = files.url_to_fs(path)
        with fs.open(p, "rb") as fh:
            buf = pa.py_buffer(fh.read())
        return ipc.open_file(buf).read_all()
    except FileNotFoundError:
        raise ManifestError(path, "file not found") from None
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise ManifestError(
            path, f"not a readable Arrow file (truncated or corrupt): {exc}"
        ) from None


def validate_schema(path: str, actual: pa.Schema, expected: pa.Schema) -> None:
    """Raise :class:`ManifestError` unless ``actual`` carries the expected version, columns and types."""
    meta = actual.metadata or {}
    version = meta.get(META_VERSION)
    if version is None:
        raise ManifestError(path, "no avforge schema version in the file metadata")
    if version.decode() != SCHEMA_VERSION:
        raise ManifestError(
            path, f"schema version {version.decode()!r}, this avforge reads {SCHEMA_VERSION!r}"
        )
    want_table = (expected.metadata or {}).get(META_TABLE)
    got_table = meta.get(META_TABLE)
    if want_table is not None and got_table != want_table:
        got = got_table.decode() if got_table else None
        raise ManifestError(path, f"holds table {got!r}, expected {want_table.decode()!r}")
    for f in expected:
        idx = actual.get_field_index(f.name)
        if idx < 0 and f.name in ADDED_COLUMNS and f.nullable:
            continue
        if idx < 0:
            raise ManifestError(path, f"missing column {f.name!r}")
        got_type = actual.field(idx).type
        if not got_type.equals(f.type):
            raise ManifestError(path, f"column {f.name!r} has type {got_type}, expected {f.type}")


def read_table(path: str, expected: pa.Schema) -> pa.Table:
    """Read and validate one shard file against ``expected``."""
    table = open_ipc(path)
    validate_schema(path, table.schema, expected)
    for f in expected:
        if table.schema.get_field_index(f.name) < 0:  # a column added within the version
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table.select([f.name for f in expected])


def read_manifest(corpus: str, table: str) -> pa.Table:
    """All shards of manifest ``table`` in ``corpus``, validated and concatenated, sorted by key.

    A corpus with no shard of that table gives an empty table with the right schema.
    """
    spec = TABLES[table]
    parts = [
        read_table(shard_path(corpus, table, s), spec.schema) for s in list_shards(corpus, table)
    ]
    if not parts:
        return spec.schema.empty_table()
    # Shards carry their own dictionaries; unify so the result has one per column.
    combined = pa.concat_tables(parts).unify_dictionaries().combine_chunks()
    if combined.num_rows:
        combined = combined.sort_by([(k, "ascending") for k in spec.sort_keys])
    return combined
