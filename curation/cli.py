"""Command-line verbs of the curation stage: ``curate``, ``report``, ``calibrate-snr``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the curation verbs to ``app``."""

    @app.command("curate")
    def curate(
        sources: Path = typer.Argument(..., help="URL list, AVSpeech CSV, or folder of videos."),
        out: Path = typer.Option(..., "--out", help="Corpus folder (created or grown)."),
        config: Path | None = typer.Option(None, "--config", help="Curation config YAML."),
        cluster: Path | None = typer.Option(None, "--cluster", help="dask_cluster.yaml."),
    ) -> None:
        """Curate SOURCES into clean single-speaker clips in OUT."""
        from avforge.cli import not_built

        not_built("curate", 3, "the curation pipeline")

    @app.command("report")
    def report(corpus: Path = typer.Argument(..., help="Corpus folder.")) -> None:
        """Write an HTML report with plots of a curated corpus."""
        from avforge.cli import not_built

        not_built("report", 3, "the curation report")

    @app.command("calibrate-snr")
    def calibrate_snr(out: Path = typer.Option(Path("docs/snr_calibration"), "--out")) -> None:
        """Calibrate the speech-SNR estimators on real speech + noise at known SNRs."""
        from avforge.cli import not_built

        not_built("calibrate-snr", 3, "SNR estimator calibration")
