"""Run-level (systemic) errors: one home for "stop the run, blame no source".

A *source* failure (a dead URL, a corrupt file) is data: a ``failed`` row with a reason, and the run
goes on. A *systemic* problem is not about any one source: the run was interrupted, the output or
scratch disk is full, read-only or not writable, a manifest already in the corpus is corrupt or
written by a newer schema, the configuration is wrong. Those raise a :class:`SystemicError`:

- no source row is written for it (good sources must never become ``failed`` because of it);
- the pipeline stops submitting work and lets in-flight tasks go (a rerun resumes: every write is
  atomic and a source is done only when its ``sources`` shard exists);
- the command line prints ``error: <message>`` (one line) and exits with status 2.
"""

from __future__ import annotations


class SystemicError(Exception):
    """A problem with the run (not with one source): stop with ``error:`` and exit status 2."""


class RunInterrupted(SystemicError):
    """The run was interrupted (SIGINT / SIGTERM, or a child killed by the shutdown)."""


class StorageError(SystemicError):
    """The output or scratch storage cannot be written (disk full, read-only, permission denied)."""


class CorruptCorpusError(SystemicError):
    """A manifest already in the corpus is unreadable or written by a newer schema version."""
