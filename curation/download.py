"""Fetch: the yt-dlp adapter (the only module that talks to yt-dlp).

Contract:

- input: a URL, an output folder, a :class:`DownloadConfig`, optionally a time range (AVSpeech rows);
- output: :class:`Downloaded` (the local file path, the offset of the file's t=0 in the source, and the
  metadata worth keeping: title, channel, upload date, duration, licence, language);
- failures: :class:`DownloadError` with ``.reason`` (a :class:`manifests.SourceError`: ``not_found`` for
  HTTP 404/410, ``timeout`` for a stalled or too slow transfer, ``too_long`` / ``too_large`` for the
  duration and size caps, ``download_failed`` for everything else the network throws) and ``.detail``
  (one line). The caller turns it into a ``failed`` source row.

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
  :attr:`Downloaded.offset_s` then says where the file starts in the source.

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

import json
import math
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avforge.config import check_range, config_from_dict, config_to_dict
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

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", file_stem) or file_stem.startswith("."):
        raise ValueError(f"unsafe file stem {file_stem!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
        with yt_dlp.YoutubeDL(opts) as ydl:
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
        abort = _find_abort(exc)
        if abort is not None:
            raise DownloadError(abort.reason, abort.detail) from None
        raise DownloadError(classify_error(exc), str(exc)) from None
    except _Abort as exc:
        _cleanup_partials(out, file_stem)
        raise DownloadError(exc.reason, exc.detail) from None
    except (OSError, TimeoutError) as exc:
        _cleanup_partials(out, file_stem)
        raise DownloadError(classify_error(exc), str(exc)) from None
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

_STARTUP_GRACE_S = 5.0
"""Extra wall time a child interpreter gets for starting up and importing yt-dlp."""


def fetch_isolated(
    url: str,
    out_dir: str,
    file_stem: str,
    cfg: DownloadConfig,
    section: tuple[float, float] | None = None,
    max_duration_s: float = math.inf,
) -> Downloaded:
    """:func:`fetch` in a child interpreter killed after ``cfg.source_timeout_s`` (a hard limit).

    Falls back to an in-process :func:`fetch` when ``cfg.isolate_process`` is False.
    """
    if not cfg.isolate_process:
        return fetch(url, out_dir, file_stem, cfg, section, max_duration_s)
    request = {
        "url": url,
        "out_dir": str(out_dir),
        "file_stem": file_stem,
        "config": config_to_dict(cfg),
        "section": list(section) if section is not None else None,
        "max_duration_s": max_duration_s if math.isfinite(max_duration_s) else None,
    }
    argv = [sys.executable, "-m", "curation.download"]
    try:
        proc = subprocess.run(
            argv,
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=cfg.source_timeout_s + _STARTUP_GRACE_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _cleanup_partials(Path(out_dir), file_stem)
        raise DownloadError(
            SourceError.TIMEOUT, f"fetch took over {cfg.source_timeout_s:g} s (killed)"
        ) from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise DownloadError(
            SourceError.INTERNAL_ERROR,
            f"fetch process exited {proc.returncode}: {proc.stderr.strip()[-200:]}",
        )
    reply = json.loads(lines[-1])
    if "error" in reply:
        raise DownloadError(SourceError(reply["error"]), reply["detail"])
    return Downloaded(**reply["ok"])


def _main() -> None:
    """Child side of :func:`fetch_isolated`: JSON request on stdin, one JSON line on stdout."""
    import dataclasses

    request = json.loads(sys.stdin.read())
    cfg = config_from_dict(DownloadConfig, request["config"])
    cfg = dataclasses.replace(cfg, isolate_process=False)
    section = tuple(request["section"]) if request["section"] is not None else None
    cap = request["max_duration_s"]
    try:
        got = fetch(
            request["url"],
            request["out_dir"],
            request["file_stem"],
            cfg,
            section,  # type: ignore[arg-type]
            math.inf if cap is None else float(cap),
        )
    except DownloadError as exc:
        print(json.dumps({"error": exc.reason.value, "detail": exc.detail}))
        return
    print(json.dumps({"ok": dataclasses.asdict(got)}))


if __name__ == "__main__":
    _main()
