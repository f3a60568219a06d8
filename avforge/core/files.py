"""Files on local disks and fsspec URLs: the one atomic write every output goes through.

:func:`atomic_write_bytes` writes to a temporary name in the same folder, flushes and fsyncs it, then
renames it over the final name (and fsyncs the folder on local disks): a reader sees either nothing or
the whole file, and a killed writer leaves only a ``.tmp-*`` file that readers ignore. Manifests,
resolved configs, reports and exported CSVs all use it; callers reach it as
``files.atomic_write_bytes`` so that one patch point covers every write (the storage-fault tests).
"""

from __future__ import annotations

import os
import posixpath
import uuid

import fsspec


def url_to_fs(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``path`` (a local path or a URL) and the path within it."""
    fs, root = fsspec.core.url_to_fs(str(path))
    return fs, root


def is_local(path: str) -> bool:
    """Whether ``path`` is on the local filesystem."""
    fs, _ = url_to_fs(path)
    return _is_local_fs(fs)


def _is_local_fs(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in fs.protocol if isinstance(fs.protocol, tuple) else fs.protocol == "file"


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or the whole file."""
    fs, p = url_to_fs(path)
    parent = posixpath.dirname(p)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = posixpath.join(parent, f".tmp-{uuid.uuid4().hex}-{posixpath.basename(p)}")
    if _is_local_fs(fs):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, p)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        dir_fd = os.open(parent or ".", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    else:
        with fs.open(tmp, "wb") as fh:
            fh.write(data)
        fs.mv(tmp, p)
