"""Fetch: the yt-dlp adapter (the only module that talks to yt-dlp).

Contract:

- input: a URL, an output folder, a :class:`DownloadConfig`, optionally a time range (AVSpeech rows);
- output: :class:`Downloaded` (the local file path, the offset of the file's t=0 in the source, and the
  metadata worth keeping: title, channel, upload date, duration, licence, language);
- failures: :class:`DownloadError` with ``.reason`` (a :class:`manifests.SourceError`: ``not_found`` for
  HTTP 404/410, ``timeout`` for a stalled or too slow transfer, ``too_long`` / ``too_large`` for the
  duration and size caps, ``invalid_source`` for a playlist or a host outside ``allowed_hosts``,
  ``download_failed`` for everything else the network throws) and ``.detail`` (one line). The
  caller turns it into a ``failed`` source row. Systemic problems raise :mod:`avforge.errors`
  exceptions instead (see below).

How yt-dlp is driven (all options built in :func:`ytdlp_options`, nowhere else):

- format: best video at most ``max_height`` px (480 by default: plenty for 112 px face crops) plus best
  audio, else the best single file at most that height, else the smallest one (``<=?`` lets formats of
  unknown height through: direct file links have none);
- yt-dlp's own retries (``retries``, ``extractor_retries``) with exponential backoff
  (``retry_sleep_functions``), ``ratelimit`` bytes/s, ``socket_timeout`` for unresponsive hosts;
- the per-source wall-clock limit is hard: :func:`fetch_isolated` (what the pipeline calls) runs the
  Python-API fetch in a child interpreter (``python -m curation.download``, argument list, no shell)
  and kills it at the deadline, so a server that trickles one byte at a time (which no socket timeout
  catches) still ends as ``timeout``; the byte cap is also enforced by a progress hook; the duration cap
  is checked on the metadata before any byte of media is fetched (and again by the probe stage, for
  sources that do not report a duration);
- files are named ``<source_id>.<ext>`` inside ``out_dir`` (``restrictfilenames``, no title in the
  path), so hostile titles (``../``, control characters) never reach the file system; the title is kept
  as metadata only, with control characters removed;
- AVSpeech rows can fetch only ``[start - pad, end + pad]`` (``download_ranges``);
  :attr:`Downloaded.offset_s` then says where the file starts in the source;
- ``allowed_hosts`` (empty: no restriction) is checked on the source URL, on every request yt-dlp
  makes (a :class:`yt_dlp.YoutubeDL` subclass whose ``urlopen`` refuses other hosts, and the final URL
  after redirects) and on the chosen formats' URLs before any download (a ``before_dl``
  post-processor, which also covers the ffmpeg-driven downloaders); a refused host is
  ``invalid_source``.

Systemic failures (not a source's fault) raise :mod:`avforge.errors` exceptions, never a
:class:`DownloadError`, so no ``failed`` row is written for them:

- :class:`~avforge.errors.StorageError` when the scratch folder cannot be written: an
  :class:`OSError` with errno ``ENOSPC``, ``EDQUOT`` or ``EROFS`` (or ``EACCES`` / ``EPERM`` on a
  file: a socket's ``EPERM`` is the network's) anywhere in yt-dlp's exception chain or from our own
  writes, or, after a ``download_failed``, a probe write into the folder that fails the same way
  (ffmpeg merges report a full disk as text only);
- :class:`~avforge.errors.RunInterrupted` when the isolated fetch process died by a signal the
  parent did not send (or was killed because the parent shut down).

The isolated fetch (:func:`fetch_isolated`) reuses long-lived child interpreters: a process-wide
pool (:class:`_FetchPool`) hands each calling thread an idle child for one request (JSON lines
over stdin/stdout), so Dask workers that run several tasks in threads get one child per concurrent
fetch, and a child is replaced only after it was killed at a deadline or died. Children run in
their own session (``start_new_session``): a terminal's Ctrl-C reaches the run's processes, not
the fetch, and the parent decides. They die with their parent: the parent kills every child's
process group when it exits (``threading`` exit hook, before worker threads are joined, and
``atexit``) or when a fetch is interrupted, and a child whose parent disappeared (killed without
clean-up) kills its own process group (a watchdog thread polls ``getppid``).

Ranged fetches are **stream copies** when the output is MP4/MOV (what the format choice and
``merge_output_format`` give for H.264/AAC, VP9 and Opus alike): ffmpeg copies the packets from the
keyframe before the cut and writes an edit list that starts playback exactly at the cut, so the
file's t=0 is the requested start and the pixels and audio frames are the source's own. A clip
therefore decodes the same whichever range it was fetched in (measured: same timing to the sample,
audio 64-69 dB SNR to a decode of the whole file, i.e. equal but for the first AAC frame after the
cut, which lies in the ``range_pad_s`` margin; video mean absolute difference 0.3 of 255), and a
fetch costs no encoding. Containers without edit lists (Matroska / WebM: ffmpeg shifts a copied
range so that it starts at the keyframe, an offset the file no longer states) are re-encoded with
``force_keyframes_at_cuts`` instead, so their timing stays exact at the cost of one re-encode
(a clip then differs by ~20 dB SNR between two fetches that start at different points).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fnmatch
import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from avforge.config import ConfigError, check_range, config_from_dict, config_to_dict
from avforge.errors import RunInterrupted, StorageError
from manifests.schema import SourceError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
EDIT_LIST_EXTS = frozenset({"mp4", "m4a", "m4v", "mov"})
"""Containers whose stream-copied ranges start exactly at the cut (edit lists)."""


class DownloadError(Exception):
    """A source could not be fetched; ``reason`` is the ``sources.error`` value."""

    def __init__(self, reason: SourceError, detail: str) -> None:
        self.reason = reason
        self.detail = one_line(detail)
        super().__init__(f"{reason.value}: {self.detail}")


class _Abort(Exception):
    """Raised from the progress hook to stop a transfer (deadline or byte cap)."""

    def __init__(self, reason: SourceError, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True)
class DownloadConfig:
    """How sources are fetched."""

    max_height: int = 480
    """Highest video resolution to fetch (px)."""
    retries: int = 3
    """yt-dlp retries per request (HTTP and extractor); 404 and caps are never retried."""
    backoff_s: float = 1.0
    """First retry sleep; doubles each retry, capped at ``backoff_max_s``."""
    backoff_max_s: float = 30.0
    rate_limit_bytes_s: int | None = None
    """Download rate limit per source (bytes/s), None for none."""
    socket_timeout_s: float = 20.0
    """Give up on a host that sends nothing for this long."""
    source_timeout_s: float = 600.0
    """Wall-clock limit for fetching one source."""
    max_filesize_bytes: int = 2 * 1024**3
    """Bigger sources fail with ``too_large``."""
    use_download_ranges: bool = True
    """For AVSpeech rows, fetch only the hinted range (plus ``range_pad_s``) when the site allows it."""
    range_pad_s: float = 1.0
    avspeech_url_template: str = "https://www.youtube.com/watch?v={id}"
    """URL of an AVSpeech row's video (``{id}`` is the YouTube id)."""
    keep_downloads: bool = False
    """Keep fetched files after a source is processed (else they are deleted)."""
    isolate_process: bool = True
    """Fetch in a child process killed at ``source_timeout_s`` (a hard limit); False: in-process
    (the deadline is then only checked between received chunks)."""
    allowed_hosts: tuple[str, ...] = ()
    """Hosts a fetch may contact: names or glob patterns (``*.example.com``), optionally with a
    port (``127.0.0.1:8000``, ``[::1]:*``); checked on the source URL and on every URL yt-dlp
    requests (pages, media, redirects). Empty: no restriction."""

    def __post_init__(self) -> None:
        check_range(self, "max_height", 64, 4320)
        check_range(self, "retries", 0, 20)
        check_range(self, "backoff_s", 0.0, 600.0)
        check_range(self, "backoff_max_s", 0.0, 3600.0)
        check_range(self, "rate_limit_bytes_s", 1024)
        check_range(self, "socket_timeout_s", 0.1, 600.0)
        check_range(self, "source_timeout_s", 1.0)
        check_range(self, "max_filesize_bytes", 1024)
        check_range(self, "range_pad_s", 0.0, 60.0)
        for pattern in self.allowed_hosts:
            if not isinstance(pattern, str) or not pattern or any(c.isspace() for c in pattern):
                raise ConfigError(f"not a host name or pattern: {pattern!r}", "allowed_hosts")
        self._check_url_template()

    def _check_url_template(self) -> None:
        """``avspeech_url_template`` formats (``str.format`` with the ``{id}`` field only) into an
        http(s) URL (lower-case scheme) or an absolute path, as ``curation.sources`` will use it."""
        import string
        from urllib.parse import urlparse

        key, template = "avspeech_url_template", self.avspeech_url_template
        need = "an http(s) URL or absolute path with an {id} placeholder (and no other field)"
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            url = template.format(id="AbCdEfGh-_0")
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raise ConfigError(
                f"must be {need}; {template!r} does not format ({problem})", key
            ) from None
        parsed = urlparse(url)
        is_url = url.startswith(("http://", "https://")) and bool(parsed.netloc)
        is_path = "://" not in url and url.startswith("/")
        if fields != {"id"} or not (is_url or is_path):
            case = " (write the scheme in lower case)" if url.lower().startswith("http") else ""
            raise ConfigError(f"must be {need}, got {template!r}{case}", key)


@dataclass(frozen=True)
class Downloaded:
    """A fetched source file and its metadata."""

    path: str
    offset_s: float = 0.0
    """Time of the file's first sample in the source (non-zero when only a range was fetched)."""
    title: str | None = None
    channel: str | None = None
    upload_date: str | None = None
    duration_s: float | None = None
    """Duration of the whole source as the site reports it (None when unknown)."""
    license: str | None = None
    language: str | None = None
    size_bytes: int = 0
    reencoded: bool = False
    """True when a ranged fetch was re-encoded (no edit lists in its container); see the module doc."""


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, ANSI/control characters removed, at most ``limit`` characters."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text))
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text[:limit]


def clean_title(title: object) -> str | None:
    """A metadata string with control characters removed (None when empty or not a string)."""
    if not isinstance(title, str):
        return None
    cleaned = " ".join(_CONTROL.sub(" ", title).split())
    return cleaned[:500] or None


class _SilentLogger:
    """yt-dlp logger that drops messages: errors reach us as exceptions, not stderr lines."""

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass

    def error(self, msg: str) -> None:
        pass


def format_selector(max_height: int) -> str:
    """yt-dlp format string: <= ``max_height`` video + audio, else a single file, else the smallest."""
    h = int(max_height)
    return f"bv*[height<=?{h}]+ba/b[height<=?{h}]/wv*+ba/w"


def ytdlp_options(
    cfg: DownloadConfig,
    out_dir: str,
    file_stem: str,
    section: tuple[float, float] | None,
    hooks: list[Callable[[dict[str, Any]], None]],
) -> dict[str, Any]:
    """The yt-dlp option dict (the one place yt-dlp arguments are built)."""
    from yt_dlp.utils import download_range_func

    def backoff(n: int) -> float:
        return min(cfg.backoff_max_s, cfg.backoff_s * 2.0 ** max(0, n - 1))

    opts: dict[str, Any] = {
        "format": format_selector(cfg.max_height),
        "merge_output_format": "mp4/mkv",
        "outtmpl": {"default": f"{file_stem}.%(ext)s"},
        "paths": {"home": str(out_dir), "temp": str(out_dir)},
        "restrictfilenames": True,
        "windowsfilenames": True,
        "noplaylist": True,
        "retries": cfg.retries,
        "fragment_retries": cfg.retries,
        "extractor_retries": cfg.retries,
        "file_access_retries": 1,
        "retry_sleep_functions": {"http": backoff, "fragment": backoff, "extractor": backoff},
        "socket_timeout": cfg.socket_timeout_s,
        "max_filesize": cfg.max_filesize_bytes,
        "progress_hooks": hooks,
        "quiet": True,
        "logger": _SilentLogger(),
        "no_warnings": True,
        "noprogress": True,
        "color": {"stderr": "no_color", "stdout": "no_color"},
        "overwrites": True,
        "continuedl": False,
        "nopart": False,
        "cachedir": False,
        "updatetime": False,
        "writethumbnail": False,
        "writesubtitles": False,
        "check_formats": False,
        "consoletitle": False,
    }
    if cfg.rate_limit_bytes_s is not None:
        opts["ratelimit"] = cfg.rate_limit_bytes_s
    if section is not None:
        opts["download_ranges"] = download_range_func(None, [section])
        opts["merge_output_format"] = "mp4"  # edit lists: stream-copied ranges start at the cut
        opts["force_keyframes_at_cuts"] = False  # set per file by cut_mode_postprocessor
    return opts


def cut_mode_postprocessor(choices: list[bool]) -> Any:
    """A yt-dlp ``before_dl`` post-processor choosing how a ranged fetch is cut, per chosen format.

    Stream copy (the default above) when the output container has edit lists
    (:data:`EDIT_LIST_EXTS`); otherwise yt-dlp's ``force_keyframes_at_cuts`` re-encode, so the file
    still starts exactly at the cut. Each choice (True: re-encode) is appended to ``choices``.
    """
    from yt_dlp.postprocessor.common import PostProcessor

    class _CutMode(PostProcessor):
        def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
            ranged = info.get("section_start") is not None or info.get("section_end") is not None
            reencode = ranged and str(info.get("ext", "")).lower() not in EDIT_LIST_EXTS
            self._downloader.params["force_keyframes_at_cuts"] = reencode
            choices.append(reencode)
            return [], info

    return _CutMode()


def host_allowed(url: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``url``'s host is allowed by ``patterns`` (see ``DownloadConfig.allowed_hosts``).

    A pattern is matched (case-insensitive glob) against the host name and against ``host:port``
    (the explicit port, else 80 / 443 for http / https; IPv6 hosts in brackets). An empty tuple
    allows everything; a URL without a host is refused by any non-empty list.
    """
    if not patterns:
        return True
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return False
    if not host:
        return False
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    shown = f"[{host}]" if ":" in host else host
    names = [host, shown] + ([f"{shown}:{port}"] if port is not None else [])
    return any(fnmatch.fnmatchcase(n, pat.lower()) for pat in patterns for n in names)


def check_host(url: str, cfg: DownloadConfig) -> None:
    """Raise ``DownloadError(invalid_source)`` unless ``url``'s host is in ``cfg.allowed_hosts``."""
    if not host_allowed(url, cfg.allowed_hosts):
        try:
            netloc = urlsplit(url).netloc or url
        except ValueError:
            netloc = url
        raise DownloadError(
            SourceError.INVALID_SOURCE,
            f"host {netloc[:100]!r} is not in download.allowed_hosts (refused {url[:150]})",
        )


_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""Errnos that always mean the storage cannot take the write."""
_FILE_ERRNOS = frozenset({errno.EACCES, errno.EPERM})
"""Errnos that mean so only on a file operation (a socket's EPERM is a firewall's)."""


def storage_oserror(exc: BaseException) -> OSError | None:
    """The first :class:`OSError` in ``exc``'s chain that says the storage cannot be written."""
    for e in _chain(exc):
        if not isinstance(e, OSError):
            continue
        if e.errno in _STORAGE_ERRNOS:
            return e
        if e.errno in _FILE_ERRNOS and e.filename is not None:
            return e
    return None


def _storage_error(folder: Path, err: OSError) -> StorageError:
    what = err.strerror or type(err).__name__
    return StorageError(one_line(f"cannot write the download folder {folder}: {what}"))


def _raise_if_storage(exc: BaseException, folder: Path) -> None:
    err = storage_oserror(exc)
    if err is not None:
        raise _storage_error(folder, err) from None


_PROBE_BYTES = 64 * 1024


def _probe_storage(folder: Path) -> None:
    """Raise :class:`StorageError` when a small write into ``folder`` fails for a storage reason."""
    try:
        fd, name = tempfile.mkstemp(prefix=".avforge-probe-", dir=folder)
    except OSError as exc:
        _raise_if_storage(exc, folder)
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\0" * _PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        _raise_if_storage(exc, folder)
    finally:
        Path(name).unlink(missing_ok=True)


def _format_urls(info: dict[str, Any]) -> list[str]:
    """Every URL yt-dlp will download for a resolved ``info`` (formats, fragments)."""
    urls: list[str] = []
    for fmt in [info, *(info.get("requested_formats") or [])]:
        for key in ("url", "manifest_url", "fragment_base_url"):
            if isinstance(fmt.get(key), str):
                urls.append(fmt[key])
        for frag in fmt.get("fragments") or []:
            if isinstance(frag, dict) and isinstance(frag.get("url"), str):
                urls.append(frag["url"])
    return urls


def host_check_postprocessor(cfg: DownloadConfig) -> Any:
    """A yt-dlp ``before_dl`` post-processor refusing formats whose URLs are not allowed."""
    from yt_dlp.postprocessor.common import PostProcessor

    class _HostCheck(PostProcessor):
        def run(self, info: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
            for url in _format_urls(info):
                check_host(url, cfg)
            return [], info

    return _HostCheck()


_GUARDED_YDL: dict[str, type] = {}


def _guarded_ydl_class() -> type:
    """A :class:`yt_dlp.YoutubeDL` whose ``urlopen`` refuses hosts outside ``allowed_hosts``.

    Every request of the extractors and of the HTTP downloader goes through ``urlopen``; the final
    URL after redirects is checked too (the response is then closed unread).
    """
    if "cls" not in _GUARDED_YDL:
        import yt_dlp

        class _GuardedYDL(yt_dlp.YoutubeDL):  # type: ignore[misc]
            avforge_cfg: DownloadConfig | None = None

            def urlopen(self, req: Any) -> Any:
                cfg = self.avforge_cfg
                if cfg is None or not cfg.allowed_hosts:
                    return super().urlopen(req)
                check_host(req if isinstance(req, str) else str(req.url), cfg)
                resp = super().urlopen(req)
                final = getattr(resp, "url", None)
                if isinstance(final, str) and not host_allowed(final, cfg.allowed_hosts):
                    resp.close()
                    check_host(final, cfg)
                return resp

        _GUARDED_YDL["cls"] = _GuardedYDL
    return _GUARDED_YDL["cls"]


def _http_status(exc: BaseException) -> int | None:
    """HTTP status of the first HTTPError in ``exc``'s chain (yt-dlp wraps it two or three times)."""
    from yt_dlp.networking.exceptions import HTTPError

    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, HTTPError):
            return int(e.status)
        exc_info = getattr(e, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            stack.append(exc_info[1])
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__])
        orig = getattr(e, "orig_msg", None)
        if isinstance(orig, BaseException):
            stack.append(orig)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or any(e is o for o in out):
            continue
        out.append(e)
        exc_info = getattr(e, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            stack.append(exc_info[1])
        cause = getattr(e, "cause", None)
        stack.extend([cause if isinstance(cause, BaseException) else None, e.__cause__])
        stack.append(e.__context__)
    return out


def classify_error(exc: BaseException) -> SourceError:
    """Map a yt-dlp exception to a :class:`SourceError` by exception type and HTTP status."""
    status = _http_status(exc)
    if status in (404, 410):
        return SourceError.NOT_FOUND
    for e in _chain(exc):
        if isinstance(e, _Abort):
            return e.reason
        if isinstance(e, TimeoutError | socket.timeout):
            return SourceError.TIMEOUT
    # yt-dlp turns a read timeout into TransportError/IncompleteRead whose message says so.
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if "timed out" in text or "timeout" in text:
        return SourceError.TIMEOUT
    return SourceError.DOWNLOAD_FAILED


def _find_abort(exc: BaseException) -> _Abort | None:
    for e in _chain(exc):
        if isinstance(e, _Abort):
            return e
    return None


def _info_str(info: dict[str, Any], *keys: str) -> str | None:
    for k in keys:
        value = clean_title(info.get(k))
        if value:
            return value
    return None


def _metadata(info: dict[str, Any]) -> dict[str, Any]:
    duration = info.get("duration")
    return {
        "title": _info_str(info, "title", "fulltitle"),
        "channel": _info_str(info, "channel", "uploader", "uploader_id"),
        "upload_date": _info_str(info, "upload_date"),
        "duration_s": float(duration) if isinstance(duration, int | float) else None,
        "license": _info_str(info, "license"),
        "language": _info_str(info, "language"),
    }


def _check_stem(file_stem: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", file_stem) or file_stem.startswith("."):
        raise ValueError(f"unsafe file stem {file_stem!r}")


def _source_failure(exc: BaseException, out: Path) -> DownloadError:
    """The :class:`DownloadError` for ``exc``, after ruling out a storage problem (see module doc)."""
    reason = classify_error(exc)
    if reason is SourceError.DOWNLOAD_FAILED:
        _probe_storage(out)
    return DownloadError(reason, str(exc))


def _find_output(out_dir: Path, stem: str) -> Path | None:
    finals = [
        p
        for p in out_dir.glob(f"{stem}.*")
        if p.is_file() and not p.name.endswith((".part", ".ytdl", ".temp")) and ".f" not in p.suffix
    ]
    finals = [p for p in finals if p.stat().st_size > 0] or finals
    return max(finals, key=lambda p: p.stat().st_size) if finals else None


def _cleanup_partials(out_dir: Path, stem: str) -> None:
    for p in out_dir.glob(f"{stem}.*"):
        if p.is_file() and p.name.endswith((".part", ".ytdl", ".temp")):
            p.unlink(missing_ok=True)


def fetch(
    url: str,
    out_dir: str,
    file_stem: str,
    cfg: DownloadConfig,
    section: tuple[float, float] | None = None,
    max_duration_s: float = math.inf,
) -> Downloaded:
    """Download ``url`` into ``out_dir/<file_stem>.<ext>`` with yt-dlp; raise :class:`DownloadError`.

    Sources whose reported duration is over ``max_duration_s`` (the decode stage's cap, so there is
    one cap) fail with ``too_long`` before any media byte is fetched. ``section`` (seconds in the source) fetches only that range when ``cfg.use_download_ranges``;
    the result's ``offset_s`` is then the range start. ``file_stem`` must be a safe file name.
    """
    import yt_dlp

    _check_stem(file_stem)
    check_host(url, cfg)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _raise_if_storage(exc, out)
        raise
    deadline = time.monotonic() + cfg.source_timeout_s

    def guard(progress: dict[str, Any]) -> None:
        done = progress.get("downloaded_bytes") or 0
        if done > cfg.max_filesize_bytes:
            raise _Abort(SourceError.TOO_LARGE, f"over {cfg.max_filesize_bytes} bytes")
        if time.monotonic() > deadline:
            raise _Abort(SourceError.TIMEOUT, f"fetch took over {cfg.source_timeout_s:g} s")

    use_section = section if (section is not None and cfg.use_download_ranges) else None
    if use_section is not None:
        use_section = (max(0.0, use_section[0] - cfg.range_pad_s), use_section[1] + cfg.range_pad_s)
    opts = ytdlp_options(cfg, str(out), file_stem, use_section, [guard])
    reencoded: list[bool] = []
    try:
        with _guarded_ydl_class()(opts) as ydl:
            ydl.avforge_cfg = cfg
            if cfg.allowed_hosts:
                ydl.add_post_processor(host_check_postprocessor(cfg), when="before_dl")
            if use_section is not None:
                ydl.add_post_processor(cut_mode_postprocessor(reencoded), when="before_dl")
            info = ydl.extract_info(url, download=False, process=False)
            if info is None:
                raise DownloadError(SourceError.DOWNLOAD_FAILED, "yt-dlp returned no metadata")
            if info.get("_type") in {"playlist", "multi_video"}:
                raise DownloadError(SourceError.INVALID_SOURCE, "URL is a playlist, not a video")
            meta = _metadata(info)
            if meta["duration_s"] is not None and meta["duration_s"] > max_duration_s:
                raise DownloadError(
                    SourceError.TOO_LONG,
                    f"duration {meta['duration_s']:.0f} s over the cap {max_duration_s:.0f} s",
                )
            size = info.get("filesize") or info.get("filesize_approx")
            if isinstance(size, int | float) and size > cfg.max_filesize_bytes:
                raise DownloadError(SourceError.TOO_LARGE, f"{int(size)} bytes over the cap")
            if info.get("is_live"):
                raise DownloadError(SourceError.TOO_LONG, "live stream (no end)")
            ydl.process_ie_result(info, download=True)
    except DownloadError:
        _cleanup_partials(out, file_stem)
        raise
    except yt_dlp.utils.YoutubeDLError as exc:
        _cleanup_partials(out, file_stem)
        _raise_if_storage(exc, out)
        abort = _find_abort(exc)
        if abort is not None:
            raise DownloadError(abort.reason, abort.detail) from None
        raise _source_failure(exc, out) from None
    except _Abort as exc:
        _cleanup_partials(out, file_stem)
        raise DownloadError(exc.reason, exc.detail) from None
    except (OSError, TimeoutError) as exc:
        _cleanup_partials(out, file_stem)
        _raise_if_storage(exc, out)
        raise _source_failure(exc, out) from None
    path = _find_output(out, file_stem)
    if path is None:
        # yt-dlp skips (without raising) a file whose Content-Length is over max_filesize.
        raise DownloadError(SourceError.TOO_LARGE, "no file written (over max_filesize?)")
    return Downloaded(
        path=str(path),
        offset_s=use_section[0] if use_section is not None else 0.0,
        size_bytes=path.stat().st_size,
        reencoded=any(reencoded),
        **meta,
    )


# --------------------------------------------------------------------------- isolated fetch

_KILL_GRACE_S = 2.0
"""Wall time a fetch child gets past ``source_timeout_s`` (its own deadline) before it is killed."""
_START_TIMEOUT_S = 120.0
"""How long a new child may take to start (interpreter + yt-dlp import) before it is given up."""
_REAP_TIMEOUT_S = 5.0
_PARENT_POLL_S = 0.5


class _FetchChild:
    """One long-lived ``python -m curation.download`` process (its own session) and its pipes."""

    def __init__(self) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the child)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "curation.download"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
            close_fds=True,
        )
        self.pid = self.proc.pid
        self._buf = b""
        self._killed_for: str | None = None  # "deadline" / "shutdown": we sent the kill
        self._next_id = 0
        try:
            line = self._read_line(time.monotonic() + _START_TIMEOUT_S)
        except BaseException:
            self.kill("shutdown")
            raise
        if line is None:
            self.kill("deadline")
            raise DownloadError(SourceError.INTERNAL_ERROR, "fetch process did not start")
        if not line:
            raise self._death_error()

    @property
    def usable(self) -> bool:
        return self._killed_for is None and self.proc.returncode is None

    def request(self, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request; its reply, or raise (deadline, death, interruption)."""
        self._next_id += 1
        payload = {**payload, "id": self._next_id}
        try:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps(payload).encode() + b"\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ConnectionResetError):
                line: bytes | None = b""
            else:
                line = self._read_line(time.monotonic() + timeout_s)
        except BaseException:
            # The parent is being interrupted (KeyboardInterrupt, SystemExit, a cancelled task):
            # the fetch must not outlive it.
            self.kill("shutdown")
            raise
        if line is None:
            self.kill("deadline")
            raise DownloadError(
                SourceError.TIMEOUT, f"fetch took over {timeout_s - _KILL_GRACE_S:g} s (killed)"
            )
        if not line:
            raise self._death_error()
        try:
            reply = json.loads(line)
            ok = isinstance(reply, dict) and reply.get("id") == payload["id"]
        except ValueError:
            ok = False
        if not ok:
            self.kill("deadline")
            raise DownloadError(SourceError.INTERNAL_ERROR, f"fetch process replied {line[:100]!r}")
        return reply

    def _read_line(self, deadline: float) -> bytes | None:
        """The next reply line; ``None`` at the deadline, ``b""`` when the child closed its stdout."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b""
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line or b" "

    def _death_error(self) -> Exception:
        """The error for a child that closed its pipe: reap it, blame the right party."""
        status = _wait_exit_nowait(self.pid, _REAP_TIMEOUT_S)
        self._kill_group()  # its ffmpeg, if any (the pid is not reaped yet, so not reused)
        rc = self.proc.wait()
        if self._killed_for == "shutdown":
            return RunInterrupted("the fetch process was stopped because the run is shutting down")
        if status is None and self._killed_for is None:
            self._killed_for = "deadline"  # it hung after closing its pipe: we killed it
        if rc < 0 and self._killed_for is None:
            name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
            return RunInterrupted(f"the fetch process was killed by {name}")
        self._killed_for = self._killed_for or "died"
        return DownloadError(
            SourceError.INTERNAL_ERROR, f"fetch process exited {rc}: {self._stderr_tail()}"
        )

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 400))
            return one_line(self._stderr.read().decode("utf-8", "replace"), 200)
        except (OSError, ValueError):
            return ""

    def _kill_group(self) -> None:
        if self.proc.returncode is not None:
            return  # reaped: its pid may belong to someone else now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def stop(self, why: str) -> None:
        """Send the kill (SIGKILL to its process group) and say why; the owner reaps it."""
        if self._killed_for is None:
            self._killed_for = why
        self._kill_group()

    def kill(self, why: str) -> None:
        """Kill the child and everything it started, reap it (bounded), close its pipes."""
        self.stop(why)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(_REAP_TIMEOUT_S)
        for pipe in (self.proc.stdin, self.proc.stdout, self._stderr):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()


def _wait_exit_nowait(pid: int, timeout_s: float) -> int | None:
    """Wait up to ``timeout_s`` for child ``pid`` to exit without reaping it; its ``si_code``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            res = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return -1
        if res is not None and res.si_pid == pid:
            return res.si_code
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


class _FetchPool:
    """The process's fetch children: one idle child is lent per request, so concurrent threads
    (Dask runs several tasks per worker process in threads) each get their own; all are killed
    when the process exits. After a fork the child process starts an empty pool of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_FetchChild] = []
        self._all: list[_FetchChild] = []
        self._closed = False

    def run(self, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        child = self._acquire()
        try:
            return child.request(payload, timeout_s)
        finally:
            self._release(child)

    def _acquire(self) -> _FetchChild:
        gone: list[_FetchChild] = []
        try:
            with self._lock:
                if self._closed:
                    raise RunInterrupted("the run is shutting down (no new fetch)")
                while self._idle:
                    child = self._idle.pop()
                    if child.usable and child.proc.poll() is None:
                        return child
                    self._forget(child)
                    gone.append(child)
        finally:
            for dead in gone:  # died while idle: reaped by poll(), close its pipes
                dead.kill("died")
        child = _FetchChild()
        with self._lock:
            self._all.append(child)
            closed = self._closed
        if closed:
            child.kill("shutdown")
            raise RunInterrupted("the run is shutting down (no new fetch)")
        return child

    def _release(self, child: _FetchChild) -> None:
        with self._lock:
            if child.usable and not self._closed:
                self._idle.append(child)
                return
            self._forget(child)
        child.kill("deadline")  # no-op kill when already reaped; closes the pipes

    def _forget(self, child: _FetchChild) -> None:
        if child in self._all:
            self._all.remove(child)

    def pids(self) -> list[int]:
        with self._lock:
            return [c.pid for c in self._all if c.usable]

    def shutdown(self, final: bool = False) -> None:
        """Kill every child: idle ones here, busy ones by signal (their request then raises
        RunInterrupted in the thread that waits on it, which reaps them)."""
        with self._lock:
            idle = self._idle
            busy = [c for c in self._all if not any(c is i for i in idle)]
            self._all, self._idle = [], []
            self._closed = self._closed or final
        for child in busy:
            child.stop("shutdown")
        for child in idle:
            child.kill("shutdown")

    def after_fork(self) -> None:
        """In a forked process: the children belong to the parent; start empty, kill nothing."""
        self._lock = threading.Lock()
        self._idle, self._all = [], []


_POOL = _FetchPool()
os.register_at_fork(after_in_child=_POOL.after_fork)
atexit.register(_POOL.shutdown, True)
if hasattr(threading, "_register_atexit"):
    # Runs before the interpreter joins non-daemon threads, so a thread waiting on a fetch wakes
    # up (RunInterrupted) instead of holding the exit until the fetch's deadline.
    with contextlib.suppress(RuntimeError):  # imported while the interpreter shuts down
        threading._register_atexit(_POOL.shutdown, True)


def fetch_process_ids() -> list[int]:
    """PIDs of this process's live fetch children (idle or busy); for tests and diagnostics."""
    return _POOL.pids()


def shutdown_fetch_processes() -> None:
    """Kill this process's fetch children now (later fetches start new ones)."""
    _POOL.shutdown()


def fetch_isolated(
    url: str,
    out_dir: str,
    file_stem: str,
    cfg: DownloadConfig,
    section: tuple[float, float] | None = None,
    max_duration_s: float = math.inf,
) -> Downloaded:
    """:func:`fetch` in a reused child interpreter, killed after ``cfg.source_timeout_s`` (a hard
    limit; the child is then replaced). See the module doc for the pool, signals and clean-up.

    Raises :class:`DownloadError` (a source failure), :class:`~avforge.errors.StorageError` (the
    folder cannot be written) or :class:`~avforge.errors.RunInterrupted` (the child was killed by
    a signal the parent did not send, or the process is shutting down). Falls back to an
    in-process :func:`fetch` when ``cfg.isolate_process`` is False.
    """
    if not cfg.isolate_process:
        return fetch(url, out_dir, file_stem, cfg, section, max_duration_s)
    _check_stem(file_stem)
    request = {
        "url": url,
        "out_dir": str(out_dir),
        "file_stem": file_stem,
        "config": config_to_dict(cfg),
        "section": list(section) if section is not None else None,
        "max_duration_s": max_duration_s if math.isfinite(max_duration_s) else None,
    }
    try:
        reply = _POOL.run(request, cfg.source_timeout_s + _KILL_GRACE_S)
    except DownloadError as exc:
        if exc.reason is SourceError.TIMEOUT:
            _cleanup_partials(Path(out_dir), file_stem)
        raise
    if "storage" in reply:
        raise StorageError(one_line(reply["storage"]))
    if "error" in reply:
        raise DownloadError(SourceError(reply["error"]), reply["detail"])
    if "internal" in reply:
        raise DownloadError(SourceError.INTERNAL_ERROR, reply["internal"])
    return Downloaded(**reply["ok"])


def _serve_one(request: dict[str, Any]) -> dict[str, Any]:
    """Child side: one request -> one reply (never raises but for interpreter exits)."""
    import dataclasses

    try:
        cfg = config_from_dict(DownloadConfig, request["config"])
        cfg = dataclasses.replace(cfg, isolate_process=False)
        section = tuple(request["section"]) if request["section"] is not None else None
        cap = request["max_duration_s"]
        got = fetch(
            request["url"],
            request["out_dir"],
            request["file_stem"],
            cfg,
            section,  # type: ignore[arg-type]
            math.inf if cap is None else float(cap),
        )
    except DownloadError as exc:
        return {"error": exc.reason.value, "detail": exc.detail}
    except StorageError as exc:
        return {"storage": str(exc)}
    except Exception as exc:  # noqa: BLE001 (a bug on an odd input: the parent's internal_error)
        return {"internal": one_line(f"{type(exc).__name__}: {exc}")}
    return {"ok": dataclasses.asdict(got)}


def _watch_parent(parent: int) -> None:
    """Kill this child's process group when its parent is gone (it was killed without clean-up)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="avforge-fetch-parent-watch", daemon=True).start()


def _main() -> None:
    """Child side of :func:`fetch_isolated`: JSON lines in on stdin, one JSON line out per request
    (on the original stdout; anything else printing to fd 1 goes to stderr instead)."""
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a signal kills it: the parent tells why
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    _watch_parent(parent)
    import yt_dlp  # noqa: F401  (loaded once, before the first request)

    replies.write(json.dumps({"ready": os.getpid()}) + "\n")
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        if not line.strip():
            continue
        request = json.loads(line)
        reply = _serve_one(request)
        reply["id"] = request.get("id")
        replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    _main()
