"""Command-line verbs of the training stage: ``train``, ``evaluate``, ``separate``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the training verbs to ``app``."""

    @app.command("train")
    def train() -> None:
        """Train a separation model from corpus manifests."""
        from avforge.cli import not_built

        not_built("train", 5, "training")

    @app.command("evaluate")
    def evaluate() -> None:
        """Evaluate a checkpoint on a frozen mixture set."""
        from avforge.cli import not_built

        not_built("evaluate", 5, "evaluation")

    @app.command("separate")
    def separate() -> None:
        """Separate the speakers of a video, one WAV per face."""
        from avforge.cli import not_built

        not_built("separate", 5, "separation of whole videos")
