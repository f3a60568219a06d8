"""The ``avforge`` command line: one console script, one verb per public operation.

Each package registers its own verbs (``curation.cli``, ``mixing.cli``, ``training.cli``); this module
only assembles them, so the command line stays a thin layer over the library.
"""

from __future__ import annotations

import sys

import typer

from avforge import __version__

app = typer.Typer(
    name="avforge",
    help=(
        "Build AVSpeech-like audio-visual speech corpora from talk videos, mix speech on the fly, "
        "and train separation models on them."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"avforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """avforge command line."""


def _register_all() -> None:
    from avforge.demo import register as register_demo
    from avforge.doctor import register as register_doctor
    from avforge.interop.cli import register as register_interop
    from curation.cli import register as register_curation
    from manifests.verify import register as register_verify
    from mixing.cli import register as register_mixing
    from training.cli import register as register_training

    register_curation(app)
    register_mixing(app)
    register_training(app)
    register_demo(app)
    register_interop(app)
    register_verify(app)
    register_doctor(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
