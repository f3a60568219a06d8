"""Command-line verbs of interop: ``avforge export lhotse|avspeech-csv`` and ``avforge import lhotse``.

Thin wrappers: each parses its options into the library's frozen config, calls one function of
``avforge.interop``, and prints a one-line summary (to stderr when stdout carries the data). Bad inputs
(an unreadable corpus or manifest, an invalid option value, an unwritable output) exit with status 2
and one ``error:`` line (``avforge.cli_errors``); cuts that cannot be imported are counted and listed,
not fatal.

Lhotse is imported only when a Lhotse verb runs, so ``avforge --help`` stays fast and works without the
``interop`` extra.
"""

from __future__ import annotations

from pathlib import Path

import typer

from avforge.cli_errors import fail, reported_errors
from manifests.io import require_corpus
from manifests.schema import NoiseKind, Split


def _export_lhotse(
    corpus: str = typer.Argument(..., help="Corpus folder (local path or fsspec URL)."),
    out: Path = typer.Option(..., "--out", help="Folder for the Lhotse manifests and audio."),
    audio_format: str = typer.Option("wav", "--format", help="Audio files: wav or flac."),
    split: Split | None = typer.Option(None, "--split", help="Export only this split."),
    faces: bool = typer.Option(True, "--faces/--no-faces", help="Attach face tracks."),
) -> None:
    """Write the clips of CORPUS as Lhotse recordings, supervisions and cuts (jsonl.gz) in OUT."""
    from avforge.interop.lhotse_export import (
        AudioFormat,
        LhotseExportConfig,
        LhotseExportError,
        export_lhotse,
    )

    if audio_format not in {f.value for f in AudioFormat}:
        fail(f"--format must be wav or flac, got {audio_format!r}")
    with reported_errors(LhotseExportError):
        cfg = LhotseExportConfig(
            audio_format=AudioFormat(audio_format), split=split, face_arrays=faces
        )
        result = export_lhotse(require_corpus(corpus), out, cfg)
    typer.echo(
        f"{result.num_cuts} cuts ({result.total_duration_s / 3600:.3f} h, "
        f"{result.num_face_arrays} with face tracks) -> {result.cuts_path}"
    )


def _export_avspeech_csv(
    corpus: str = typer.Argument(..., help="Corpus folder (local path or fsspec URL)."),
    out: str | None = typer.Option(None, "--out", help="CSV file to write (default: stdout)."),
    split: Split | None = typer.Option(None, "--split", help="Export only this split."),
) -> None:
    """Write the kept clips of CORPUS as AVSpeech CSV rows: youtube_id,start,end,x,y (no header)."""
    from avforge.interop.avspeech_csv import export_avspeech_csv

    with reported_errors():
        text, export = export_avspeech_csv(require_corpus(corpus), out, split)
    if out is None:
        typer.echo(text, nl=False)
    for clip_id, reason in sorted(export.skipped.items()):
        typer.echo(f"skipped {clip_id}: {reason}", err=True)
    typer.echo(f"{len(export.rows)} rows, {len(export.skipped)} clips skipped", err=True)


def _import_lhotse(
    manifest: Path = typer.Argument(..., help="Lhotse cuts or recordings manifest."),
    out: str = typer.Option(..., "--out", help="Corpus folder (created or grown)."),
    as_: str = typer.Option("clips", "--as", help="Register as audio-only clips or as noise."),
    kind: NoiseKind = typer.Option(NoiseKind.NOISE, "--kind", help="Noise kind (with --as noise)."),
    split: Split | None = typer.Option(None, "--split", help="Force one split for every item."),
    name: str | None = typer.Option(None, "--name", help="Shard name (default: file stem)."),
    id_prefix: str = typer.Option("", "--id-prefix", help="Prefix for every imported id."),
    sample_rate_hz: int = typer.Option(16000, "--sample-rate-hz"),
    clips_per_shard: int = typer.Option(256, "--clips-per-shard"),
    min_duration_s: float = typer.Option(0.5, "--min-duration-s"),
    speaker_genders: str | None = typer.Option(
        None, "--speaker-genders", help="Speaker genders file (LibriSpeech SPEAKERS.TXT)."
    ),
) -> None:
    """Register the cuts of a Lhotse MANIFEST in corpus OUT as audio-only clips or as noise."""
    from avforge.interop.lhotse_import import (
        ImportTarget,
        LhotseImportConfig,
        LhotseImportError,
        import_lhotse,
    )

    if as_ not in {t.value for t in ImportTarget}:
        fail(f"--as must be clips or noise, got {as_!r}")
    with reported_errors(LhotseImportError):
        cfg = LhotseImportConfig(
            target=ImportTarget(as_),
            sample_rate_hz=sample_rate_hz,
            noise_kind=kind,
            split=split,
            name=name,
            id_prefix=id_prefix,
            clips_per_shard=clips_per_shard,
            min_duration_s=min_duration_s,
            speaker_genders=speaker_genders,
        )
        result = import_lhotse(manifest, out, cfg)
    for failure in result.failures:
        typer.echo(f"not imported {failure.cut_id}: {failure.reason}", err=True)
    typer.echo(
        f"{result.num_items} {result.target.value} ({result.total_duration_s / 3600:.3f} h) in "
        f"{len(result.shards)} shard(s), {len(result.failures)} failed -> {out}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``export`` and ``import`` command groups to ``app``."""
    export_app = typer.Typer(help="Export a corpus to other tools' formats.", no_args_is_help=True)
    export_app.command("lhotse")(_export_lhotse)
    export_app.command("avspeech-csv")(_export_avspeech_csv)
    import_app = typer.Typer(
        help="Register other tools' corpora in a corpus.", no_args_is_help=True
    )
    import_app.command("lhotse")(_import_lhotse)
    app.add_typer(export_app, name="export")
    app.add_typer(import_app, name="import")
