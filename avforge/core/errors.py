"""Run-level (systemic) errors: one home for "stop the run, blame no source".

A *source* failure (a dead URL, a corrupt file) is data: a ``failed`` row with a reason, and the run
goes on. Every exception that means "this source failed" derives from :class:`SourceFailure`, which
carries the ``sources.error`` reason and a one-line detail (:func:`one_line`). A *systemic* problem is not about any one source: the run was interrupted, the output or
scratch disk is full, read-only or not writable, a manifest already in the corpus is corrupt or
written by a newer schema, the configuration is wrong. Those raise a :class:`SystemicError`:

- no source row is written for it (good sources must never become ``failed`` because of it);
- the pipeline stops submitting work and lets in-flight tasks go (a rerun resumes: every write is
  atomic and a source is done only when its ``sources`` shard exists);
- the command line prints ``error: <message>`` (one line) and exits with status 2.
"""

from __future__ import annotations

import enum
import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def one_line(text: object, limit: int | None = 300) -> str:
    """``text`` on one line for a manifest or a terminal: ANSI colour codes removed, every other
    non-printable character (controls, bidi overrides) made a space, runs of white space collapsed,
    at most ``limit`` characters (None: no limit). The one home of this rule: manifests' error
    details, ``error:`` lines of the command line, config and ``doctor`` messages."""
    text = _ANSI.sub("", str(text))
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())[:limit]


class SourceFailure(Exception):
    """One source failed (not the run): ``reason`` (a ``manifests.SourceError``) becomes the
    ``sources.error`` of its failed row, ``detail`` (one line) its ``error_detail``."""

    def __init__(self, reason: enum.Enum, detail: str) -> None:
        self.reason = reason
        self.detail = one_line(detail)
        super().__init__(f"{reason.value}: {self.detail}")


class SystemicError(Exception):
    """A problem with the run (not with one source): stop with ``error:`` and exit status 2."""


class RunInterrupted(SystemicError):
    """The run was interrupted (SIGINT / SIGTERM, or a child killed by the shutdown)."""


class StorageError(SystemicError):
    """The output or scratch storage cannot be written (disk full, read-only, permission denied)."""


class CorruptCorpusError(SystemicError):
    """A manifest already in the corpus is unreadable or written by a newer schema version."""
