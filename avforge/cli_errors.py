"""The command line's error contract, in one place: ``error: <one line>`` on stderr, exit status 2.

Every verb reports a problem with its inputs or its run the same way (docs/troubleshooting.md): one
line starting with ``error:`` on stderr, no traceback, exit status 2. The problems reported so
(:func:`reported_error_types`) are an invalid config (:class:`avforge.core.config.ConfigError`), a missing, corrupt
or newer-schema manifest (:class:`manifests.io.ManifestError`), a systemic problem
(:class:`avforge.core.errors.SystemicError`: interrupted, storage full or read-only, corrupt corpus), and
an :class:`OSError` (a missing file, a folder given for a file, an unwritable output). A stage's own
input errors (a corpus that cannot serve a mixing config, a recipe naming missing media) are passed
as ``extra``. Anything else is a bug and keeps its traceback.

Example::

    with reported_errors(SamplerError):
        specs = freeze_recipes(corpus, out, cfg, count)

    if audio_format not in ("wav", "flac"):
        fail(f"--format must be wav or flac, got {audio_format!r}")
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

import typer

from avforge.core.errors import one_line

EXIT_ERROR = 2
"""Exit status of a verb that stopped on an error."""


def fail(message: object) -> NoReturn:
    """Print ``error: <message>`` (folded to one line) on stderr and exit with status 2.

    ``message`` may be an exception: its text is used, or its type name when it has none.
    """
    text = one_line(message, limit=None)
    if not text and isinstance(message, BaseException):
        text = type(message).__name__
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(code=EXIT_ERROR)


def reported_error_types() -> tuple[type[BaseException], ...]:
    """The exception types every verb reports with :func:`fail` (see the module docstring)."""
    from avforge.core.config import ConfigError
    from avforge.core.errors import SystemicError
    from manifests.io import ManifestError

    return (ConfigError, ManifestError, SystemicError, OSError)


@contextlib.contextmanager
def reported_errors(*extra: type[BaseException]) -> Iterator[None]:
    """Turn :func:`reported_error_types` (and ``extra``) raised in the block into :func:`fail`."""
    try:
        yield
    except (*reported_error_types(), *extra) as exc:
        fail(exc)
