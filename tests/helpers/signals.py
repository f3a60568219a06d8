"""Subprocesses that receive Ctrl-C like a terminal job does, whoever started the test run.

A test run started as a background job of a non-interactive shell (``cmd &``, ``nohup``) inherits
SIGINT *ignored*, and so would every process it spawns: a test that sends SIGINT would then test
nothing (the run just finishes). ``preexec_fn=sigint_default`` gives the child the default action, as
a process started from an interactive terminal has.
"""

from __future__ import annotations

import signal


def sigint_default() -> None:
    """``preexec_fn`` for subprocesses that must react to SIGINT (runs in the child before exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
