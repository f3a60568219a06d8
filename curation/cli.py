"""Command-line verbs of the curation stage: ``curate``, ``report``, ``split``, ``calibrate-snr``.

Thin wrappers: each parses its arguments, calls one library function, prints its summary. Errors in
the inputs (unreadable SOURCES, a bad config key, an unwritable output) and systemic problems
(:class:`avforge.core.errors.SystemicError`: storage full or read-only, a corrupt manifest in the corpus)
exit with status 2 and a one-line ``error:`` message; failed sources are rows in the corpus, not
errors. Ctrl-C is one of them: ``error: interrupted; rerun the same command to resume``, status 2.
"""

from __future__ import annotations

from pathlib import Path

import typer

from avforge.cli_errors import fail as _fail
from avforge.cli_errors import reported_errors

INTERRUPTED = "interrupted; rerun the same command to resume"


def register(app: typer.Typer) -> None:
    """Add the curation verbs to ``app``."""

    @app.command("curate")
    def curate(
        sources: Path = typer.Argument(..., help="URL list, AVSpeech CSV, or folder of videos."),
        # str, not Path: a Path would turn s3://b/c into the local folder s3:/b/c
        out: str = typer.Option(
            ..., "--out", help="Corpus folder or fsspec URL (created or grown)."
        ),
        config: Path | None = typer.Option(None, "--config", help="Curation config YAML."),
        cluster: Path | None = typer.Option(None, "--cluster", help="dask_cluster.yaml."),
        retry_failed: bool = typer.Option(
            False,
            "--retry-failed",
            help="Redo sources that failed in earlier runs (failed rows, fetch-ledger entries).",
        ),
    ) -> None:
        """Curate SOURCES into clean single-speaker clips in OUT."""
        from avforge.core.cluster import load_cluster_config
        from avforge.core.config import ConfigError
        from avforge.core.errors import RunInterrupted, SystemicError
        from curation.config import load_curate_config
        from curation.faces import FaceModelError
        from curation.pipeline import curate as run_curate
        from curation.sources import SourcesError, read_sources_arg

        try:
            cfg = load_curate_config(config)
            cluster_cfg = load_cluster_config(cluster)
            items = read_sources_arg(sources, cfg.download.avspeech_url_template)
        except (ConfigError, SourcesError) as exc:
            _fail(str(exc))
            return
        typer.echo(f"curating {len(items)} source(s) into {out}", err=True)
        try:
            summary = run_curate(items, out, cfg, cluster_cfg, retry_failed=retry_failed)
        except KeyboardInterrupt:  # Ctrl-C: every finished source is kept, the rest is redone
            _fail(INTERRUPTED)
            return
        except RunInterrupted as exc:  # a child killed by the shutdown: the same thing
            _fail(f"interrupted ({exc}); rerun the same command to resume")
            return
        except SystemicError as exc:  # storage full or read-only, a corrupt manifest, ...
            _fail(str(exc))
            return
        except PermissionError as exc:
            _fail(f"cannot write the corpus: {exc}")
            return
        except FaceModelError as exc:  # before FileNotFoundError: it is one
            _fail(str(exc))
            return
        except FileNotFoundError as exc:  # a missing binary (ffmpeg, ffprobe) or model file
            _fail(f"{exc} (is ffmpeg installed? see docs/troubleshooting.md)")
            return
        except ConfigError as exc:  # e.g. a cluster type whose optional package is missing
            _fail(str(exc))
            return
        typer.echo(summary.format())

    @app.command("report")
    def report(
        corpus: str = typer.Argument(..., help="Corpus folder or fsspec URL."),
        out: str | None = typer.Option(
            None, "--out", help="HTML file to write (default: CORPUS/report.html)."
        ),
    ) -> None:
        """Write an HTML report with plots of a curated corpus."""
        from curation.report import write_report
        from manifests.io import require_corpus

        with reported_errors():
            path = write_report(require_corpus(corpus), out)
        typer.echo(str(path))

    @app.command("split")
    def split(
        corpus: str = typer.Argument(..., help="Corpus folder or fsspec URL."),
        heldout: Path | None = typer.Option(
            None, "--heldout", help="File of held-out ids (one a line) that must not be in train."
        ),
        check: bool = typer.Option(
            False, "--check", help="Only report the current split's leaks; write nothing."
        ),
        threshold: float | None = typer.Option(
            None, "--speaker-threshold", help="Pseudo-speaker merge similarity (docs/splits.md)."
        ),
        duplicates: bool = typer.Option(
            True, "--duplicates/--no-duplicates", help="Link near-duplicate sources."
        ),
        speakers: bool = typer.Option(
            True, "--speakers/--no-speakers", help="Link clips of one pseudo-speaker."
        ),
    ) -> None:
        """Assign leak-free splits: groups by source, pseudo-speaker and re-upload (docs/splits.md)."""
        from dataclasses import replace

        from avforge.core.config import ConfigError
        from avforge.core.errors import SystemicError
        from curation.clusters import ClusteringLimitError
        from curation.splits import SplitPassConfig, read_heldout, run_split_pass
        from curation.voice import VoiceModelError
        from manifests.io import ManifestError

        try:
            ids = read_heldout(heldout) if heldout is not None else set()
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read the held-out list: {exc}")
            return
        try:
            cfg = SplitPassConfig(link_duplicates=duplicates, link_speakers=speakers)
            if threshold is not None:
                cfg = replace(cfg, speaker_threshold=threshold)
            summary = run_split_pass(corpus, ids, cfg, write=not check)
        except (
            ConfigError,
            ManifestError,
            VoiceModelError,
            SystemicError,
            ClusteringLimitError,
        ) as exc:
            _fail(str(exc))
            return
        except OSError as exc:  # storage full or read-only while rewriting the clips
            _fail(f"cannot write the corpus: {exc}")
            return
        typer.echo(summary.format())
        if check and not summary.leaks.ok:
            raise typer.Exit(code=1)

    @app.command("calibrate-snr")
    def calibrate_snr(
        out: Path = typer.Option(Path("docs/snr_calibration"), "--out"),
        speech: list[Path] = typer.Option(
            [], "--speech", help="Folder(s) or files of clean real speech (default: bundled)."
        ),
        noise: list[str] = typer.Option(
            [], "--noise", help="KIND=PATH of real noise or music, repeatable (default: bundled)."
        ),
        silero: bool = typer.Option(False, "--silero", help="Also score with silero-vad activity."),
        denoiser: Path | None = typer.Option(
            None, "--denoiser", help="Also score a trained 1-speaker + noise model package."
        ),
        mixtures_per_bin: int = typer.Option(30, "--mixtures-per-bin", min=1),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Calibrate the speech-SNR estimators on real speech in simulated rooms + real noise."""
        import argparse

        from curation import calibrate

        try:
            noises = calibrate.parse_noise(noise) or None
            scorers = calibrate.default_scorers(silero=silero, denoiser=denoiser)
        except (argparse.ArgumentTypeError, calibrate.ConfigError) as exc:
            _fail(str(exc))
            return
        result = calibrate.calibrate_snr(
            out,
            mixtures_per_bin=mixtures_per_bin,
            seed=seed,
            speech=speech or None,
            noise=noises,
            scorers=scorers,
        )
        for name, threshold in result.thresholds_db.items():
            rates = result.rates[name]
            typer.echo(
                f"{name}: threshold {threshold:.1f} dB, held-out keep clean "
                f"{rates.get('keep clean', float('nan')):.3f}, reject noisy "
                f"{rates.get('reject noisy', float('nan')):.3f}"
            )
        typer.echo(f"wrote {result.png_path}, {result.csv_path}, {result.markdown_path}")
