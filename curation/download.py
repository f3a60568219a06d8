"""Fetch: the yt-dlp adapter (the only module that talks to yt-dlp).

Contract:

- input: a URL, an output folder, a :class:`DownloadConfig`, optionally a time range (AVSpeech rows);
- output: :class:`Downloaded` (the local file path, the offset of the file's t=0 in the source, and the
  metadata worth keeping: title, channel, upload date, duration, licence, language);
- failures: :class:`DownloadError` with ``.reason`` (a :class:`manifests.SourceError`, chosen by
  :func:`classify_error`: ``not_found`` for HTTP 404/410; the site's refusals ``unavailable``,
  ``private``, ``members_only``, ``age_restricted``, ``geo_blocked``, ``copyright``, ``live``;
  ``rate_limited`` for HTTP 429 and bot checks and ``network`` for HTTP 5xx and connections refused
  or reset (both transient: :data:`TRANSIENT_REASONS`); ``timeout`` for a stalled or too slow
  transfer, ``too_long`` / ``too_large`` for the duration and size caps, ``invalid_source`` for a
  playlist or a host outside ``allowed_hosts``, ``download_failed`` for anything else) and
  ``.detail`` (one line). :func:`fetch_isolated` retries transient ones with backoff; the caller
  turns the rest into a ``failed`` source row (and ``curation.ledger`` records the video's own
  refusals, :data:`LEDGER_REASONS`). Systemic problems raise :mod:`avforge.core.errors` exceptions
  instead (see below).

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
  ``invalid_source``;
- YouTube's JS challenges run in an explicit runtime (``js_runtimes``: by default the ``deno``
  binary of the pinned ``deno`` wheel in this environment, whatever the PATH) with the solver
  scripts of the ``yt-dlp-ejs`` package; :func:`js_runtime_status` asks yt-dlp whether it sees both;
- session settings: ``cookiefile`` (a copy in memory of ``cookies_file``: yt-dlp writes its jar
  back on close, and the user's file must never be rewritten), ``cookiesfrombrowser`` and
  ``extractor_args`` as yt-dlp's own option parser makes them (checked at config load),
  ``proxy``;
- spacing: every request (``urlopen``) holds the worker's ``request`` slot and waits until
  ``sleep_requests_s`` after the previous request's response; every fetch start waits for the
  ``download`` slot (``sleep_downloads_s`` / ``videos_per_hour``). The slots are ``flock``-ed files
  in a folder owned by the worker process and handed to its fetch children, so the gaps hold across
  all of a worker's threads and children (not across worker processes). A fetch waits for its
  download slot in the parent, before the child's deadline starts.

Systemic failures (not a source's fault) raise :mod:`avforge.core.errors` exceptions, never a
:class:`DownloadError`, so no ``failed`` row is written for them:

- :class:`~avforge.core.errors.SystemicError` when the configured ``cookies_file`` cannot be read
  any more (it was checked when the config was loaded);
- :class:`~avforge.core.errors.StorageError` when the scratch folder cannot be written: an
  :class:`OSError` with errno ``ENOSPC``, ``EDQUOT`` or ``EROFS`` (or ``EACCES`` / ``EPERM`` on a
  file: a socket's ``EPERM`` is the network's) anywhere in yt-dlp's exception chain or from our own
  writes, or, after a ``download_failed``, a probe write into the folder that fails the same way
  (ffmpeg merges report a full disk as text only);
- :class:`~avforge.core.errors.RunInterrupted` when the isolated fetch process died by a signal the
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
import enum
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from avforge.core.config import (
    ConfigError,
    check_choice,
    check_range,
    config_from_dict,
    config_to_dict,
)
from avforge.core.errors import (
    RunInterrupted,
    SourceFailure,
    StorageError,
    SystemicError,
    one_line,
)
from manifests.schema import SourceError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
EDIT_LIST_EXTS = frozenset({"mp4", "m4a", "m4v", "mov"})
"""Containers whose stream-copied ranges start exactly at the cut (edit lists)."""


class JsRuntime(enum.StrEnum):
    """``download.js_runtime``: the JavaScript runtime yt-dlp runs YouTube's challenge solver in."""

    DENO = "deno"
    NODE = "node"
    BUN = "bun"
    QUICKJS = "quickjs"
    NONE = "none"
    """No runtime: YouTube then serves few formats."""


JS_RUNTIMES = tuple(r.value for r in JsRuntime if r != JsRuntime.NONE)
"""The JavaScript runtimes yt-dlp can run its YouTube challenge solver in."""
PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")


class DownloadError(SourceFailure):
    """A source could not be fetched; ``reason`` is the ``sources.error`` value."""


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
    js_runtime: JsRuntime = JsRuntime.DENO
    """JavaScript runtime yt-dlp runs YouTube's challenge solver in (``deno``, ``node``, ``bun``,
    ``quickjs``), or ``none``. The solver scripts come from the ``yt-dlp-ejs`` package."""
    js_runtime_path: str | None = None
    """The runtime's executable (must exist when the config is loaded). None: for ``deno``, the
    binary of the pinned ``deno`` wheel in this Python environment (found whatever the PATH); for
    the others, yt-dlp's search of the PATH."""
    cookies_file: str | None = None
    """A Netscape ``cookies.txt`` sent with every request (read, never written: each fetch works
    on a copy in memory). Must exist and be readable when the config is loaded."""
    cookies_from_browser: str | None = None
    """Read cookies from a browser profile instead, in yt-dlp's syntax
    ``BROWSER[+KEYRING][:PROFILE][::CONTAINER]`` (``firefox``, ``chrome:Profile 1``)."""
    proxy: str | None = None
    """Proxy for every request (``http://``, ``https://``, ``socks4://``, ``socks4a://``,
    ``socks5://``, ``socks5h://`` URL, credentials in the URL); None: direct (or yt-dlp's
    ``*_proxy`` environment variables)."""
    sleep_requests_s: float = 0.0
    """Least time between one HTTP request's response and the next request, per worker process
    (all its fetch children together): pages, API calls and media requests alike."""
    sleep_downloads_s: float = 0.0
    """Least time between the starts of two source fetches, per worker process."""
    videos_per_hour: float | None = None
    """Fetch budget per worker process: the starts of two fetches are at least
    ``3600 / videos_per_hour`` s apart (YouTube tolerates roughly 300 videos an hour per
    session). None: no budget. Combined with ``sleep_downloads_s``, the larger gap holds."""
    sleep_jitter: float = 0.0
    """Each wait above is its gap times ``1 + U(0, sleep_jitter)`` (never shorter than the gap)."""
    extractor_args: tuple[str, ...] = ()
    """Extractor arguments passed to yt-dlp, one ``IE_KEY:ARG=V1,V2;ARG2=V`` string each (yt-dlp's
    ``--extractor-args`` syntax), e.g. ``youtube:player_client=default,mweb`` or a PO-token
    provider's ``youtubepot-bgutilhttp:base_url=http://127.0.0.1:4416``."""

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
        self._check_session()

    def _check_session(self) -> None:
        """JS runtime, cookies, proxy, spacing and extractor arguments (see the fields)."""
        check_choice(self, "js_runtime", list(JsRuntime))
        for name in ("js_runtime_path", "cookies_file", "cookies_from_browser", "proxy"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"must be a non-empty string or null, got {value!r}", name)
        if self.js_runtime_path is not None:
            if self.js_runtime == "none":
                raise ConfigError("is set but js_runtime is 'none'", "js_runtime_path")
            if not Path(self.js_runtime_path).expanduser().is_file():
                raise ConfigError(f"no such file: {self.js_runtime_path}", "js_runtime_path")
        if self.cookies_file is not None and self.cookies_from_browser is not None:
            raise ConfigError("set cookies_file or cookies_from_browser, not both", "cookies_file")
        if self.cookies_file is not None:
            try:
                read_cookies_file(self.cookies_file)
            except SystemicError as exc:
                raise ConfigError(str(exc), "cookies_file") from None
        if self.proxy is not None:
            parts = urlsplit(self.proxy)
            if parts.scheme.lower() not in PROXY_SCHEMES or not parts.hostname:
                raise ConfigError(
                    f"must be a proxy URL ({', '.join(PROXY_SCHEMES)}://HOST:PORT), got "
                    f"{self.proxy!r}",
                    "proxy",
                )
        check_range(self, "sleep_requests_s", 0.0, 3600.0)
        check_range(self, "sleep_downloads_s", 0.0, 86400.0)
        check_range(self, "videos_per_hour", 0.0, None, low_open=True)
        check_range(self, "sleep_jitter", 0.0, 10.0)
        if self.cookies_from_browser is not None or self.extractor_args:
            _parsed_session_args(self)  # raises ConfigError on yt-dlp's own syntax errors

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


# --------------------------------------------------------------------------- session settings


def read_cookies_file(path: str) -> str:
    """The text of the Netscape cookies file ``path``, checked by yt-dlp's own cookie jar.

    Raises :class:`~avforge.core.errors.SystemicError` (one line) when it is missing, unreadable or not
    a cookies file: every source would fail the same way, so it is never a source's failure.
    """
    import http.cookiejar
    import io

    from yt_dlp.cookies import YoutubeDLCookieJar

    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SystemicError(f"cookies file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SystemicError(one_line(f"cannot read the cookies file {file}: {why}")) from None
    try:
        YoutubeDLCookieJar(io.StringIO(text)).load()
    except (http.cookiejar.LoadError, ValueError) as exc:
        raise SystemicError(
            one_line(f"{file} is not a Netscape cookies.txt file ({exc})")
        ) from None
    return text


_SESSION_ARGS: dict[tuple[str | None, tuple[str, ...]], dict[str, Any]] = {}


def _parsed_session_args(cfg: DownloadConfig) -> dict[str, Any]:
    """``cookiesfrombrowser`` and ``extractor_args`` as yt-dlp's own option parser makes them
    from ``--cookies-from-browser`` / ``--extractor-args`` (a :class:`ConfigError` when it refuses)."""
    import copy

    key = (cfg.cookies_from_browser, tuple(cfg.extractor_args))
    if key not in _SESSION_ARGS:
        import yt_dlp

        argv = ["--ignore-config"]
        if cfg.cookies_from_browser is not None:
            argv += ["--cookies-from-browser", cfg.cookies_from_browser]
        for arg in cfg.extractor_args:
            if not isinstance(arg, str):
                raise ConfigError(f"expected IE_KEY:ARGS strings, got {arg!r}", "extractor_args")
            argv += ["--extractor-args", arg]
        try:
            opts = yt_dlp.parse_options(argv).ydl_opts
        except (Exception, SystemExit) as exc:  # noqa: BLE001 (optparse raises its own types)
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            why = lines[-1].split("error: ", 1)[-1] if lines else type(exc).__name__
            field = "extractor_args" if "extractor-args" in why else "cookies_from_browser"
            raise ConfigError(one_line(why), field) from None
        _SESSION_ARGS[key] = {
            "cookiesfrombrowser": opts.get("cookiesfrombrowser"),
            "extractor_args": opts.get("extractor_args") or {},
        }
    return copy.deepcopy(_SESSION_ARGS[key])


def bundled_deno() -> str | None:
    """The ``deno`` binary of the ``deno`` wheel installed in this Python environment, or None."""
    try:
        from deno import find_deno_bin
    except ImportError:
        return None
    try:
        return str(find_deno_bin())
    except (FileNotFoundError, OSError):
        return None


def js_runtime_option(cfg: DownloadConfig) -> dict[str, dict[str, str]]:
    """yt-dlp's ``js_runtimes`` option: ``{}`` (disabled) for ``none``, else ``{name: {"path": exe}}``
    (no path: yt-dlp searches the environment's scripts folder, then the PATH)."""
    if cfg.js_runtime == "none":
        return {}
    path = cfg.js_runtime_path
    if path is None and cfg.js_runtime == "deno":
        path = bundled_deno()
    return {str(cfg.js_runtime): {"path": str(Path(path).expanduser())} if path else {}}


@dataclass(frozen=True)
class JsRuntimeStatus:
    """What yt-dlp, configured by :func:`ytdlp_options`, reports about YouTube's challenge solver."""

    yt_dlp_version: str
    runtime: str | None
    """``name version`` of the runtime yt-dlp found (None: not found / not runnable)."""
    runtime_path: str | None
    runtime_supported: bool
    """yt-dlp's own minimum-version check passed."""
    ejs_version: str | None
    """Version of the ``yt-dlp-ejs`` package yt-dlp imported (None: not installed)."""
    scripts_source: str | None
    """Where yt-dlp took the solver scripts from (``python package``), after checking their
    version and hash; None when no usable script was found."""
    available: bool
    """yt-dlp's YouTube extractor has a usable JS challenge provider (runtime and scripts)."""
    header: tuple[str, ...]
    """yt-dlp's verbose header (``[debug] JS runtimes: ...``), as ``yt-dlp -v`` prints it."""
    problem: str | None
    """One line saying what is missing, None when all is well."""


def js_runtime_status(cfg: DownloadConfig) -> JsRuntimeStatus:
    """Ask yt-dlp, configured as :func:`fetch` configures it, whether it can solve YouTube's JS
    challenges: its verbose header, and its JS challenge provider for ``cfg.js_runtime`` (runtime
    found and supported, solver scripts loaded with the version and hash yt-dlp expects). Offline."""
    import yt_dlp

    lines: list[str] = []

    class _Capture(_SilentLogger):
        def debug(self, msg: str) -> None:
            lines.append(one_line(msg, 2000))

    opts = ytdlp_options(cfg, tempfile.gettempdir(), "avforge-doctor", None, [])
    opts.pop("cookiefile", None)
    opts.pop("cookiesfrombrowser", None)
    opts.update(logger=_Capture(), verbose=True)
    version = yt_dlp.version.__version__
    runtime = path = scripts = None
    supported = available = False
    problem: str | None = None
    with yt_dlp.YoutubeDL(opts) as ydl:
        try:  # the header was printed by the constructor (verbose)
            from yt_dlp.dependencies import yt_dlp_ejs
        except ImportError:
            yt_dlp_ejs = None
        ejs = getattr(yt_dlp_ejs, "version", None) if yt_dlp_ejs else None
        if cfg.js_runtime == "none":
            problem = "download.js_runtime is 'none'"
        else:
            ie = ydl.get_info_extractor("Youtube")
            ie.initialize()
            providers = [
                p
                for p in ie._jsc_director.providers.values()
                if getattr(p, "JS_RUNTIME_NAME", None) == cfg.js_runtime
            ]
            info = providers[0].runtime_info if providers else None
            raw = ydl._js_runtimes.get(str(cfg.js_runtime))
            raw_info = raw.info if raw is not None else None
            if raw_info is not None:
                runtime = f"{raw_info.name} {raw_info.version}"
                path = raw_info.path
                supported = bool(raw_info.supported)
            if raw_info is None:
                where = js_runtime_option(cfg).get(cfg.js_runtime, {}).get("path", "the PATH")
                problem = f"no runnable {cfg.js_runtime} at {where}"
            elif not supported:
                problem = f"{runtime} is older than yt-dlp supports"
            elif info is not None:
                try:
                    got = [providers[0]._lib_script, providers[0]._core_script]
                    scripts = got[0].source.value
                except Exception as exc:  # noqa: BLE001 (yt-dlp's provider error types are private)
                    problem = one_line(f"solver scripts: {exc}")
                available = scripts is not None and providers[0].is_available()
            if problem is None and not available:
                problem = "yt-dlp has no usable JS challenge provider"
            if ejs is None and problem is None:
                problem = "yt-dlp-ejs is not installed"
    return JsRuntimeStatus(
        yt_dlp_version=version,
        runtime=runtime,
        runtime_path=path,
        runtime_supported=supported,
        ejs_version=ejs,
        scripts_source=scripts,
        available=available and problem is None,
        header=tuple(lines),
        problem=problem,
    )


_PACE_DIR: dict[str, str] = {}
_PACE_LOCK = threading.Lock()
_HELD = threading.local()

PACE_PREFIX = ".pace-"
"""Name prefix of a worker's pacing folder, ``<run scratch>/.pace-<pid>/``."""


def pace_in(run_dir: str) -> None:
    """Pace this process's fetches (and its pooled fetch children's) with slots in
    ``<run_dir>/.pace-<pid>/``: curation passes its run's scratch folder, removed with the run.
    Without it the slots are in a temporary folder removed at exit, which a killed Dask worker never
    reaches: every curation run used to leave empty ``/tmp/avforge-pace-*`` folders behind."""
    run_dir = os.path.abspath(run_dir)
    with _PACE_LOCK:
        folder = _PACE_DIR.get("dir")
        if folder is None or os.path.dirname(folder) != run_dir or not os.path.isdir(folder):
            folder = os.path.join(run_dir, f"{PACE_PREFIX}{os.getpid()}")
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot make the pacing folder {folder}: {exc}") from exc
            _PACE_DIR["dir"] = folder


def _pace_dir() -> str:
    """This worker process's folder of pacing slots (shared with its fetch children): the one
    :func:`pace_in` chose, else a temporary one removed at exit (a fetch outside a run)."""
    with _PACE_LOCK:
        folder = _PACE_DIR.get("dir")
        if folder is None or not os.path.isdir(folder):
            folder = tempfile.mkdtemp(prefix="avforge-pace-")
            _PACE_DIR["dir"] = folder
            owner = os.getpid()

            def remove() -> None:
                if os.getpid() == owner:
                    import shutil

                    shutil.rmtree(folder, ignore_errors=True)

            atexit.register(remove)
        return folder


def _use_pace_dir(folder: str | None) -> None:
    """In a fetch child: pace with the parent's slots."""
    if folder:
        with _PACE_LOCK:
            _PACE_DIR["dir"] = folder


os.register_at_fork(after_in_child=_PACE_DIR.clear)


@contextlib.contextmanager
def _paced(slot: str, gap_s: float, jitter: float) -> Iterator[None]:
    """Hold this worker's pacing ``slot`` (an ``flock``-ed file shared by the process and its
    fetch children): wait until ``gap_s * (1 + U(0, jitter))`` after the previous holder left it,
    run the block, record when it left. No-op when ``gap_s`` is 0, and inside a block of the same
    slot in the same thread (a nested request must not wait for its own caller)."""
    held: set[str] = _HELD.__dict__.setdefault("slots", set())
    if gap_s <= 0 or slot in held:
        yield
        return
    import fcntl
    import random

    fd = os.open(os.path.join(_pace_dir(), slot), os.O_RDWR | os.O_CREAT, 0o600)
    held.add(slot)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            last: float | None = float(os.pread(fd, 64, 0).decode() or "nan")
        except ValueError:
            last = None
        if last is not None and math.isfinite(last):
            due = last + gap_s * (1.0 + random.uniform(0.0, jitter))
            while (left := due - time.monotonic()) > 0:
                time.sleep(left)
        try:
            yield
        finally:
            os.pwrite(fd, f"{time.monotonic():.6f}".encode().ljust(32), 0)
    finally:
        held.discard(slot)
        os.close(fd)  # releases the lock


def download_gap_s(cfg: DownloadConfig) -> float:
    """Least time between the starts of two fetches of a worker: ``sleep_downloads_s`` or the
    ``videos_per_hour`` budget's ``3600 / videos_per_hour``, whichever is larger."""
    gap = cfg.sleep_downloads_s
    if cfg.videos_per_hour:
        gap = max(gap, 3600.0 / cfg.videos_per_hour)
    return gap


def _pace_download(cfg: DownloadConfig) -> None:
    with _paced("download", download_gap_s(cfg), cfg.sleep_jitter):
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

    def backoff(n: int) -> float:  # yt-dlp's own retries back off like ours (one formula)
        return transient_backoff_s(cfg, n)

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
    opts["js_runtimes"] = js_runtime_option(cfg)
    if cfg.cookies_file is not None:
        import io

        # A copy in memory: yt-dlp writes its cookie jar back on close, and concurrent fetches
        # must not rewrite the user's file.
        opts["cookiefile"] = io.StringIO(read_cookies_file(cfg.cookies_file))
    if cfg.proxy is not None:
        opts["proxy"] = cfg.proxy
    if cfg.cookies_from_browser is not None or cfg.extractor_args:
        parsed = _parsed_session_args(cfg)
        if parsed["cookiesfrombrowser"]:
            opts["cookiesfrombrowser"] = parsed["cookiesfrombrowser"]
        if parsed["extractor_args"]:
            opts["extractor_args"] = parsed["extractor_args"]
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
                if cfg is None:
                    return super().urlopen(req)
                with _paced("request", cfg.sleep_requests_s, cfg.sleep_jitter):
                    return self._open_allowed(req, cfg)

            def _open_allowed(self, req: Any, cfg: DownloadConfig) -> Any:
                if not cfg.allowed_hosts:
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


TRANSIENT_REASONS: frozenset[SourceError] = frozenset(
    {SourceError.RATE_LIMITED, SourceError.NETWORK}
)
"""Fetch failures that say nothing about the video: :func:`fetch_isolated` retries them with backoff,
and a source still failing with one is left for the next run (no ``sources`` row)."""
LEDGER_REASONS: frozenset[SourceError] = frozenset(
    {
        SourceError.NOT_FOUND,
        SourceError.UNAVAILABLE,
        SourceError.PRIVATE,
        SourceError.MEMBERS_ONLY,
        SourceError.AGE_RESTRICTED,
        SourceError.GEO_BLOCKED,
        SourceError.COPYRIGHT,
        SourceError.LIVE,
    }
)
"""Fetch failures that are the video's own (the site refuses it to everyone with these settings):
recorded in the fetch ledger (``curation.ledger``), so other sources of the same video fail without
a request until ``--retry-failed``."""

# Message fragments (lower case, typographic apostrophes folded to ``'``) of the refusals that reach
# us as a plain ``ExtractorError``: the YouTube extractor passes the site's own playability reason
# through ``raise_no_formats`` (yt_dlp/extractor/youtube/_video.py, ``_real_extract``), so only its
# text tells a private video from a bot check. Checked in this order (the first match wins):
# a copyright claim says "no longer available", a geo block "Video unavailable" too.
_MESSAGE_REASONS: tuple[tuple[SourceError, tuple[str, ...]], ...] = (
    (
        SourceError.RATE_LIMITED,
        (
            "confirm you're not a bot",  # YouTube's bot check (a "Sign in to ..." reason)
            "not a robot",
            "captcha challenge",  # _video.py _real_extract: "YouTube is requiring a captcha ..."
            "rate-limited by youtube",  # _video.py _real_extract: "... rate-limited by YouTube ..."
            "try again later",  # YouTube: "This content isn't available, try again later"
            "likely being blocked by youtube",  # _video.py: "Your IP is likely being blocked ..."
            "too many requests",  # HTTP 429's reason phrase when the status is not attached
        ),
    ),
    (SourceError.COPYRIGHT, ("copyright",)),
    (
        SourceError.GEO_BLOCKED,
        (
            "available in your country",  # _video.py: "The uploader has not made this video ..."
            "from your location",  # common.py raise_geo_restricted's default message
            "geo restriction",
            "geo-restricted",
        ),
    ),
    (
        SourceError.PRIVATE,
        ("private video", "video is private", "this video has been made private"),
    ),
    (
        SourceError.MEMBERS_ONLY,
        (
            "members-only",  # YouTube: "Join this channel to get access to members-only content ..."
            "members only",  # _base.py: the "members only" availability badge
            "join this channel",
            "channel's members",
            "only available for registered users",  # common.py raise_login_required's default
            "login details are needed",  # youtube/_base.py _check_login_required
            "premium members",
        ),
    ),
    (
        SourceError.AGE_RESTRICTED,
        (
            "confirm your age",  # _video.py _is_agegated: AGE_GATE_REASONS
            "age-restricted",
            "inappropriate for some users",
            "age_verification_required",
            "age_check_required",
            "age verification",
        ),
    ),
    (
        SourceError.LIVE,
        (
            "live event will begin",  # YouTube (and eplus.py): "This live event will begin in ..."
            "premieres in",
            "premiere will begin",
            "is not currently live",  # utils/_utils.py UserNotLive's default message
            "live stream (no end)",  # ours: ``fetch`` on ``is_live`` metadata
        ),
    ),
    (
        SourceError.UNAVAILABLE,
        (
            "video unavailable",  # YouTube's generic refusal ('skip' notes in _video.py)
            "video is unavailable",
            "this video is not available",
            "this video does not exist",
            "has been removed",  # "This video has been removed by the uploader" / "... for violating"
            "no longer available",  # "... because the YouTube account ... has been terminated"
            "has been terminated",
            "video has been deleted",
        ),
    ),
)
_NETWORK_TEXT = (
    "connection refused",
    "connection reset",
    "connection aborted",
    "network is unreachable",
    "no route to host",
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
)


def _message_text(exc: BaseException) -> str:
    """Every message in ``exc``'s chain, lower case, typographic apostrophes folded to ``'``."""
    text = " ".join(str(e) for e in _chain(exc)).lower()
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _is_network(chain: list[BaseException], text: str) -> bool:
    """A connection could not be made or was cut (not a dropped body: ``IncompleteRead``)."""
    from yt_dlp.networking.exceptions import CertificateVerifyError, IncompleteRead

    for e in chain:
        if isinstance(e, IncompleteRead | CertificateVerifyError):
            return False
        if isinstance(e, ConnectionError | socket.gaierror):
            return True
    return any(t in text for t in _NETWORK_TEXT)


def classify_error(exc: BaseException) -> SourceError:
    """Map a yt-dlp exception to a :class:`SourceError`.

    By type and HTTP status first (404/410 ``not_found``, 429 ``rate_limited``, a progress-hook
    abort's own reason, ``GeoRestrictedError`` ``geo_blocked``, ``UserNotLive`` ``live``, a timeout
    ``timeout``), then by the site's message (:data:`_MESSAGE_REASONS`: a YouTube refusal arrives as
    a plain ``ExtractorError`` whose text is YouTube's reason), then HTTP 5xx and connection errors
    are ``network``; anything else is ``download_failed``. :data:`TRANSIENT_REASONS` and
    :data:`LEDGER_REASONS` say what each reason does to the source.
    """
    from yt_dlp.utils import GeoRestrictedError, UserNotLive

    status = _http_status(exc)
    if status in (404, 410):
        return SourceError.NOT_FOUND
    if status == 429:
        return SourceError.RATE_LIMITED
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, _Abort):
            return e.reason
        if isinstance(e, GeoRestrictedError):
            return SourceError.GEO_BLOCKED
        if isinstance(e, UserNotLive):
            return SourceError.LIVE
    text = _message_text(exc)
    for reason, needles in _MESSAGE_REASONS:
        if any(n in text for n in needles):
            return reason
    for e in chain:
        if isinstance(e, TimeoutError | socket.timeout):
            return SourceError.TIMEOUT
    # yt-dlp turns a read timeout into TransportError/IncompleteRead whose message says so.
    if "timed out" in text or "timeout" in text:
        return SourceError.TIMEOUT
    if status is not None and 500 <= status < 600:
        return SourceError.NETWORK
    if _is_network(chain, text):
        return SourceError.NETWORK
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
    _pace_download(cfg)
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
            if info.get("is_live") or info.get("live_status") == "is_upcoming":
                what = "live stream (no end)" if info.get("is_live") else "upcoming live stream"
                raise DownloadError(SourceError.LIVE, what)
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

    @property
    def closed(self) -> bool:
        """True once the process is shutting down (no new fetch starts)."""
        return self._closed

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

    A transient failure (:data:`TRANSIENT_REASONS`: a rate limit or bot check, a network error) is
    tried again up to ``cfg.retries`` times, after ``cfg.backoff_s`` doubling each time (at most
    ``cfg.backoff_max_s``; :func:`transient_backoff_s`); the last one is raised with the number
    of attempts in its detail.

    Raises :class:`DownloadError` (a source failure), :class:`~avforge.core.errors.StorageError` (the
    folder cannot be written) or :class:`~avforge.core.errors.RunInterrupted` (the child was killed by
    a signal the parent did not send, or the process is shutting down). Falls back to an
    in-process :func:`fetch` when ``cfg.isolate_process`` is False.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            if not cfg.isolate_process:
                return fetch(url, out_dir, file_stem, cfg, section, max_duration_s)
            return _fetch_in_child(url, out_dir, file_stem, cfg, section, max_duration_s)
        except DownloadError as exc:
            if exc.reason not in TRANSIENT_REASONS:
                raise
            if attempt > cfg.retries:
                tries = f" ({attempt} attempts)" if attempt > 1 else ""
                raise DownloadError(exc.reason, exc.detail[:250] + tries) from None
        _sleep_unless_shutdown(transient_backoff_s(cfg, attempt))


def transient_backoff_s(cfg: DownloadConfig, attempt: int) -> float:
    """Sleep after failed attempt ``attempt`` (1, 2, ...) of a transient fetch failure."""
    return min(cfg.backoff_max_s, cfg.backoff_s * 2.0 ** max(0, attempt - 1))


def _sleep_unless_shutdown(seconds: float) -> None:
    """Sleep, in short steps; raise :class:`RunInterrupted` when the process is shutting down."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if _POOL.closed:
            raise RunInterrupted("the run is shutting down (no new fetch)")
        time.sleep(min(left, 0.2))


def _fetch_in_child(
    url: str,
    out_dir: str,
    file_stem: str,
    cfg: DownloadConfig,
    section: tuple[float, float] | None,
    max_duration_s: float,
) -> Downloaded:
    """One attempt of :func:`fetch_isolated` in a pooled child."""
    _check_stem(file_stem)
    if cfg.cookies_file is not None:
        read_cookies_file(cfg.cookies_file)  # gone since the config was loaded: SystemicError here
    _pace_download(cfg)  # here, not in the child: waiting for a slot is not the fetch's time
    request = {
        "pace_dir": _pace_dir() if cfg.sleep_requests_s > 0 else None,  # no folder when unpaced
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
        cfg = dataclasses.replace(
            cfg, isolate_process=False, sleep_downloads_s=0.0, videos_per_hour=None
        )  # the parent paced this fetch's start
        _use_pace_dir(request.get("pace_dir"))
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
