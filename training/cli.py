"""Command-line verbs of the training stage: ``train``, ``evaluate``, ``separate``.

Each verb parses its options, loads the typed config or the model, and calls one library function
(:func:`training.train.train`, :func:`training.evaluate.evaluate`,
:func:`training.separate.separate_video`). Errors in configs and inputs (an invalid config, a missing,
corrupt or newer-schema manifest, a corpus that cannot serve the mixing config, a missing file, a
systemic problem) print one ``error:`` line and exit with status 2 (``avforge.cli_errors``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from avforge.cli_errors import reported_errors


def register(app: typer.Typer) -> None:
    """Add the training verbs to ``app``."""

    @app.command("train")
    def train_cmd(
        config: str = typer.Option(
            ..., "--config", help="TrainConfig YAML, a path or fsspec URL (see docs/training.md)."
        ),
        resume: str = typer.Option(
            "auto",
            "--resume",
            help="'auto' (continue from OUT_DIR/checkpoints/last.ckpt if any), 'never', or a checkpoint.",
        ),
        allow_corpus_change: bool = typer.Option(
            False,
            "--allow-corpus-change",
            help="Resume even if the corpora changed since the checkpoint (warns; a new stream).",
        ),
    ) -> None:
        """Train a separation model from corpus manifests."""
        from avforge.core.config import load_config
        from training.config import TrainConfig
        from training.data import DataError
        from training.train import quiet_lightning, train

        quiet_lightning()
        with reported_errors(DataError):
            cfg = load_config(TrainConfig, config)
            result = train(
                cfg,
                resume=None if resume == "never" else resume,
                allow_corpus_change=allow_corpus_change,
            )
        typer.echo(f"trained {result.global_step} steps; model: {result.model_path}")
        if result.last_checkpoint:
            typer.echo(f"last checkpoint: {result.last_checkpoint}")

    @app.command("evaluate")
    def evaluate_cmd(
        checkpoints: list[Path] = typer.Argument(
            ..., help="Checkpoints (.ckpt) or model.pt files."
        ),
        # str, not Path: a Path would turn s3://b/c into the local folder s3:/b/c
        mixtures: str = typer.Option(
            ..., "--mixtures", help="Frozen mixture set folder (path or fsspec URL)."
        ),
        corpus: str | None = typer.Option(
            None, "--corpus", help="Corpus the recipes draw from (default: the set's folder)."
        ),
        out: Path = typer.Option(Path("evaluation"), "--out", help="Report folder."),
        batch_size: int = typer.Option(8, "--batch-size"),
        no_perceptual: bool = typer.Option(False, "--no-perceptual", help="Skip PESQ and STOI."),
        device: str = typer.Option("cpu", "--device"),
    ) -> None:
        """Evaluate checkpoints on a frozen mixture set (the paper's Table 3 layout)."""
        from training.evaluate import EvaluateError, evaluate

        with reported_errors(EvaluateError):
            _, tables = evaluate(
                checkpoints,
                mixtures,
                out,
                corpus=corpus,
                batch_size=batch_size,
                perceptual=not no_perceptual,
                device=device,
            )
        typer.echo(tables)
        typer.echo(f"report written to {out}")

    @app.command("separate")
    def separate_cmd(
        video: Path = typer.Argument(..., help="A video (or audio file, for audio-only models)."),
        model: Path = typer.Option(..., "--model", help="Checkpoint (.ckpt) or model.pt."),
        face: list[int] = typer.Option(
            [],
            "--face",
            help="Face track number (repeat for each stream); default: longest tracks.",
        ),
        out: Path = typer.Option(Path("separated"), "--out", help="Output folder for the WAVs."),
        crop_size: int | None = typer.Option(
            None, "--crop-size", help="Face crop size in pixels; default: the model's (else 112)."
        ),
        device: str = typer.Option("cpu", "--device"),
    ) -> None:
        """Separate the speakers of a video, one WAV per face."""
        from training.evaluate import load_separator
        from training.separate import SeparateError, separate_video

        with reported_errors(SeparateError):
            separator, _ = load_separator(model)
            paths = separate_video(
                separator, video, out, faces=face or None, crop_size_px=crop_size, device=device
            )
        for p in paths:
            typer.echo(str(p))
