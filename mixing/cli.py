"""Command-line verbs of the mixing stage: ``mix`` (freeze, render), ``noises``, ``rirs``."""

from __future__ import annotations

import typer

mix_app = typer.Typer(
    help="Mixture recipes: freeze evaluation sets, render examples.", no_args_is_help=True
)
noises_app = typer.Typer(help="Noise and music corpora for mixing.", no_args_is_help=True)
rirs_app = typer.Typer(help="Room impulse response banks.", no_args_is_help=True)


@mix_app.command("freeze")
def freeze() -> None:
    """Write a fixed evaluation set of mixture recipes."""
    from avforge.cli import not_built

    not_built("mix freeze", 4, "mixture recipes")


@mix_app.command("render")
def render() -> None:
    """Render a few mixtures as WAV + MP4 for listening."""
    from avforge.cli import not_built

    not_built("mix render", 4, "mixture rendering")


@noises_app.command("add")
def noises_add() -> None:
    """Register noise or music recordings."""
    from avforge.cli import not_built

    not_built("noises add", 4, "noise registration")


@rirs_app.command("build")
def rirs_build() -> None:
    """Simulate a bank of room impulse responses."""
    from avforge.cli import not_built

    not_built("rirs build", 4, "the RIR bank")


def register(app: typer.Typer) -> None:
    """Add the mixing verbs to ``app``."""
    app.add_typer(mix_app, name="mix")
    app.add_typer(noises_app, name="noises")
    app.add_typer(rirs_app, name="rirs")
