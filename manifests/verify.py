"""Integrity of a corpus folder: ``avforge verify DIR``, and the media check training runs first.

Input: a corpus folder (local path or fsspec URL). :func:`verify_corpus` checks, and returns as a
:class:`VerifyReport` (it never raises for what it finds):

- every shard of every manifest table (``sources``, ``segments``, ``clips``, ``noises``, ``rirs``,
  ``mixtures``): readable Arrow, this schema version, the expected columns and types;
- every media shard: readable, the media schema, and (unless ``checksums=False``) every row's audio
  and face checksums (:func:`manifests.media.verify_row`). Shards written before checksums existed
  are counted as "no checksums": a note, not an error;
- every ``clips`` / ``noises`` / ``rirs`` row points to an existing media shard and row (an RIR also
  to the next row, its early part) whose sample count and rate match the manifest row.

:func:`check_media_shard` and :func:`check_referenced_media` are the same media checks for a set of
manifest rows; training runs them on its corpora before the first step (``data.broken_media``,
docs/training.md).

Failure modes: problems are collected as one line each, ``<file>: <problem>``; :func:`check_media_shard`
raises :class:`avforge.core.errors.CorruptCorpusError` naming the file.

Example::

    report = verify_corpus("corpus/")
    print("\\n".join(report.summary_lines()))
    for line in report.errors:
        print("error:", line)
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from avforge.core.errors import CorruptCorpusError
from manifests.io import (
    ManifestError,
    exists,
    join,
    list_shards,
    media_file,
    open_ipc,
    read_table,
    shard_path,
)
from manifests.media import has_checksums, validate_media_schema, verify_row
from manifests.schema import TABLES

if TYPE_CHECKING:
    import typer

MEDIA_TABLES: tuple[str, ...] = ("clips", "noises", "rirs")
"""Manifest tables whose rows point to media (``media_shard``, ``media_row``)."""


@dataclass(frozen=True)
class MediaShardInfo:
    """What :func:`check_media_shard` found in one good media shard."""

    num_rows: int
    has_checksums: bool
    num_samples: tuple[int, ...]
    """Stored samples per row (bytes / sample width)."""
    sample_rate_hz: tuple[int, ...]


def check_media_shard(path: str, *, min_rows: int = 0, checksums: bool = False) -> MediaShardInfo:
    """Open the media shard ``path``, check its schema, that it has at least ``min_rows`` rows and,
    with ``checksums``, every row's checksums; :class:`CorruptCorpusError` naming ``path`` otherwise."""
    try:
        table = open_ipc(path)
        validate_media_schema(path, table.schema)
    except ManifestError as exc:
        raise CorruptCorpusError(str(exc)) from None
    if table.num_rows < min_rows:
        raise CorruptCorpusError(
            f"{path}: has {table.num_rows} rows, the manifests point to row {min_rows - 1}"
        )
    if checksums:
        for row in range(table.num_rows):
            verify_row(path, table, row)
    widths = [2 if f == "pcm16" else 4 for f in table.column("sample_format").to_pylist()]
    sizes = pc.binary_length(table.column("samples")).to_pylist()
    return MediaShardInfo(
        num_rows=table.num_rows,
        has_checksums=has_checksums(table.schema),
        num_samples=tuple(int(s) // w for s, w in zip(sizes, widths, strict=True)),
        sample_rate_hz=tuple(int(r) for r in table.column("sample_rate_hz").to_pylist()),
    )


def referenced_rows(tables: Mapping[str, pa.Table]) -> dict[str, int]:
    """Media shard file name -> rows it must have, for the ``clips`` / ``noises`` / ``rirs`` tables
    given (an RIR's early part is the row after it)."""
    needed: dict[str, int] = {}
    for name, table in tables.items():
        extra = 2 if name == "rirs" else 1
        shards = table.column("media_shard").to_pylist()
        rows = table.column("media_row").to_pylist()
        for shard, row in zip(shards, rows, strict=True):
            needed[shard] = max(needed.get(shard, 0), int(row) + extra)
    return needed


def check_referenced_media(
    corpus: str,
    tables: Mapping[str, pa.Table],
    *,
    checksums: bool = False,
    checked: dict[tuple[str, int], str | None] | None = None,
) -> dict[str, str]:
    """Check every media shard the rows of ``tables`` (``clips`` / ``noises`` / ``rirs``) point to;
    returns broken shard file name -> reason (empty when all are good). ``checked``: a cache of
    results, (path, rows needed) -> None (good) or the reason, read and filled in, so a re-listing
    opens only new or grown shards."""
    broken: dict[str, str] = {}
    for shard, rows in sorted(referenced_rows(tables).items()):
        path = media_file(str(corpus), shard)
        if checked is not None and (path, rows) in checked:
            reason = checked[(path, rows)]
        elif posixpath.basename(shard) != shard or not shard.endswith(".arrow"):
            reason = f"{path}: not a media shard name"
        else:
            try:
                check_media_shard(path, min_rows=rows, checksums=checksums)
                reason = None
            except CorruptCorpusError as exc:
                reason = str(exc)
        if checked is not None:
            checked[(path, rows)] = reason
        if reason is not None:
            broken[shard] = reason
    return broken


@dataclass
class VerifyReport:
    """What :func:`verify_corpus` found (``errors`` empty: the corpus is clean)."""

    corpus: str
    tables: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Manifest table -> (readable shards, rows)."""
    media_shards: int = 0
    media_rows: int = 0
    checked_rows: int = 0
    """Media rows whose checksums were recomputed and matched."""
    no_checksums: list[str] = field(default_factory=list)
    """Media shards written before checksums existed (a note, not an error)."""
    errors: list[str] = field(default_factory=list)
    """One line per problem, ``<file>: <problem>``."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary_lines(self) -> list[str]:
        """The human summary ``avforge verify`` prints (errors are printed separately)."""
        lines = [f"{self.corpus}:"]
        for name, (shards, rows) in self.tables.items():
            lines.append(f"  {name:<9} {shards:>6} shards {rows:>9} rows")
        media = f"  {'media':<9} {self.media_shards:>6} shards {self.media_rows:>9} rows"
        lines.append(f"{media}, {self.checked_rows} rows with matching checksums")
        if self.no_checksums:
            lines.append(
                f"  no checksums in {len(self.no_checksums)} media shard(s) (written before "
                f"avforge stored them; not an error), e.g. {self.no_checksums[0]}"
            )
        if self.errors:
            lines.append(f"{len(self.errors)} problem(s) found")
        else:
            lines.append("clean: no problems found")
        return lines


def verify_corpus(corpus: str, *, checksums: bool = True) -> VerifyReport:
    """Check everything in ``corpus`` (module docstring); never raises for what it finds."""
    corpus = str(corpus)
    report = VerifyReport(corpus)
    if not exists(corpus):
        report.errors.append(f"{corpus}: no such folder")
        return report
    good: dict[str, list[tuple[str, pa.Table]]] = {}
    for name, spec in TABLES.items():
        shards = list_shards(corpus, name)
        rows, readable = 0, 0
        for shard in shards:
            path = shard_path(corpus, name, shard)
            try:
                table = read_table(path, spec.schema)
            except ManifestError as exc:
                report.errors.append(str(exc))
                continue
            readable += 1
            rows += table.num_rows
            good.setdefault(name, []).append((path, table))
        if shards:
            report.tables[name] = (readable, rows)
    media: dict[str, MediaShardInfo | None] = {}
    for shard in list_shards(corpus, "media"):
        path = shard_path(corpus, "media", shard)
        report.media_shards += 1
        try:
            info = check_media_shard(path, checksums=checksums)
        except CorruptCorpusError as exc:
            report.errors.append(str(exc))
            media[shard + ".arrow"] = None
            continue
        media[shard + ".arrow"] = info
        report.media_rows += info.num_rows
        if not info.has_checksums:
            report.no_checksums.append(path)
        elif checksums:
            report.checked_rows += info.num_rows
    if not report.tables and not media:
        report.errors.append(f"{corpus}: not an avforge corpus (no manifest or media shards)")
    for name in MEDIA_TABLES:
        for path, table in good.get(name, []):
            report.errors.extend(_reference_problems(corpus, path, name, table, media))
    return report


def _reference_problems(
    corpus: str, path: str, name: str, table: pa.Table, media: Mapping[str, MediaShardInfo | None]
) -> Iterable[str]:
    key = TABLES[name].sort_keys[0]
    cols = table.select(
        [key, "media_shard", "media_row", "num_samples", "sample_rate_hz"]
    ).to_pydict()
    extra = 1 if name == "rirs" else 0
    for item, shard, row, num_samples, rate in zip(*cols.values(), strict=True):
        where = f"{path}: {key} {item!r}"
        if shard not in media:
            yield f"{where}: media shard {shard!r} not found in {join(corpus, 'media')}"
            continue
        info = media[shard]
        if info is None:
            continue  # the shard's own error is reported already
        if row < 0 or row + extra >= info.num_rows:
            yield f"{where}: media row {row} out of range ({shard} has {info.num_rows} rows)"
        elif info.num_samples[row] != num_samples or info.sample_rate_hz[row] != rate:
            yield (
                f"{where}: manifest says {num_samples} samples at {rate} Hz, media row {row} of "
                f"{shard} holds {info.num_samples[row]} at {info.sample_rate_hz[row]} Hz"
            )


def register(app: typer.Typer) -> None:
    """Add the ``verify`` verb to ``app`` (typer is imported only here: the library needs none)."""
    import typer

    @app.command("verify")
    def verify_cmd(
        corpus: str = typer.Argument(
            ..., metavar="DIR", help="Corpus folder (a path or fsspec URL)."
        ),
        no_checksums: bool = typer.Option(
            False,
            "--no-checksums",
            help="Skip recomputing media checksums (schemas and rows only).",
        ),
    ) -> None:
        """Check a corpus: every table's shards, media checksums, clips pointing to real media.

        Prints a summary; exits 0 when clean, 2 with one 'error:' line per problem otherwise.
        """
        report = verify_corpus(corpus, checksums=not no_checksums)
        for line in report.summary_lines():
            typer.echo(line)
        for line in report.errors:
            typer.echo(f"error: {line}", err=True)
        if not report.ok:
            raise typer.Exit(code=2)
