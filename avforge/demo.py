"""``avforge demo``: the main job end to end on a tiny local corpus.

Until curation, mixing and training land, the demo renders the scenario talk videos (real faces, real
speech, real noise) and says plainly which steps are not built yet.
"""

from __future__ import annotations

from pathlib import Path

import typer


def run_demo(out: Path, quick: bool) -> int:
    """Run the demo into ``out``; returns the process exit code."""
    from avforge.synth import render_demo_set

    typer.echo(f"avforge demo: rendering scenario talk videos into {out / 'videos'}")
    videos = render_demo_set(out / "videos", quick=quick)
    for v in videos:
        typer.echo(f"  {v}")
    typer.echo(
        "avforge demo: not built yet: curation (issue #3), mixing (issue #4), training and "
        "evaluation (issue #5). The rendered videos and their ground truth are above."
    )
    return 2


def register(app: typer.Typer) -> None:
    """Add the ``demo`` verb to ``app``."""

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("avforge_demo"), "--out", help="Output folder."),
        quick: bool = typer.Option(False, "--quick", help="Smaller, faster run."),
        keep_server: bool = typer.Option(
            False, "--keep-server", help="Keep the loopback video server running at the end."
        ),
    ) -> None:
        """Generate, curate, mix, train and evaluate on a tiny local corpus, end to end."""
        raise typer.Exit(code=run_demo(out, quick))
