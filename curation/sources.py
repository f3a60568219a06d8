"""Sources: what to curate, parsed from a URL list, an AVSpeech-format CSV, or a folder of videos.

Contract:

- input: a path (local or any fsspec URL) to a text file of URLs (one a line; blank lines and ``#``
  comments ignored), a CSV of AVSpeech rows ``video,start_s,end_s,face_x,face_y`` (``video``: a YouTube
  id, an http(s) URL or an absolute local path; with or without a header line), or a folder of local
  video files (searched recursively, by extension);
- output: a list of :class:`Source`, deduplicated by ``source_id`` (first occurrence wins, order kept);
- failures: a malformed line or CSV row becomes a :class:`Source` with ``invalid`` set to a one-line
  reason, so it ends as a ``failed`` row (``invalid_source``) instead of stopping the run. Only an
  unreadable SOURCES path raises (:class:`SourcesError`).

Stable ids (same input -> same id on every run, on every machine):

- YouTube URLs (``watch?v=``, ``youtu.be/``, ``shorts/``, ``embed/``) -> the 11-character video id, so
  two spellings of the same video deduplicate;
- other URLs -> ``url-`` + 16 hex digits of SHA-256 of the URL (whitespace stripped);
- AVSpeech rows -> ``<video id>_<start in ms, 9 digits>``: one AVSpeech row is one segment and a video
  often has several rows, each with its own face hint, so each row is its own source. The first cell is
  a YouTube id (fetched through ``url_template``), an http(s) URL (fetched as given; video id = its URL
  id above) or an absolute local path (used in place; video id = sanitised stem + 10 hex digits of
  SHA-256 of the path), so ``avforge export avspeech-csv`` output of any corpus re-curates;
- local files -> ``<sanitised file stem>-`` + 10 hex digits of SHA-256 of the path relative to the folder
  (moving the folder keeps the ids).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlparse

import fsspec

from manifests.schema import SourceKind

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".ts", ".mpg", ".mpeg")
YOUTUBE_URL_TEMPLATE = "https://www.youtube.com/watch?v={id}"
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
_HEADER_FIRST_CELLS = {"youtube_id", "id", "video_id", "ytid", "video", "url", "path"}


class SourcesError(ValueError):
    """The SOURCES argument itself cannot be read (a systemic problem, not a bad row)."""


@dataclass(frozen=True)
class Source:
    """One source video to curate."""

    source_id: str
    """Stable id (see the module docstring); safe as a file name: ``[A-Za-z0-9_.-]`` only."""
    url: str
    """URL to fetch, or a local file path for ``kind == local``."""
    kind: SourceKind
    hint_start_s: float | None = None
    """AVSpeech segment start (seconds in the source)."""
    hint_end_s: float | None = None
    hint_face_x: float | None = None
    """AVSpeech face centre at ``hint_start_s``, 0..1 of the frame width."""
    hint_face_y: float | None = None
    invalid: str | None = None
    """One-line reason when the input line/row was malformed (the source then fails as a row)."""

    @property
    def has_hint(self) -> bool:
        return self.hint_start_s is not None and self.hint_end_s is not None


def _sha(text: str, n: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def youtube_id(url: str) -> str | None:
    """The 11-character YouTube video id of ``url``, or None when it is not a YouTube video URL."""
    parsed = urlparse(url.strip())
    host = (parsed.hostname or "").lower()
    candidate: str | None = None
    if host in {"youtu.be", "www.youtu.be"}:
        candidate = parsed.path.strip("/").split("/")[0]
    elif host.endswith("youtube.com") or host.endswith("youtube-nocookie.com"):
        if parsed.path == "/watch":
            candidate = (parse_qs(parsed.query).get("v") or [None])[0]
        else:
            parts = parsed.path.strip("/").split("/")
            if len(parts) >= 2 and parts[0] in {"shorts", "embed", "v", "live"}:
                candidate = parts[1]
    if candidate and _YOUTUBE_ID.match(candidate):
        return candidate
    return None


def url_source_id(url: str) -> str:
    """Stable id of a URL source (YouTube id when there is one, else a hash of the URL)."""
    yt = youtube_id(url)
    return yt if yt is not None else f"url-{_sha(url.strip(), 16)}"


def local_source_id(path: Path, root: Path) -> str:
    """Stable id of a local file: sanitised stem plus a hash of its path relative to ``root``."""
    rel = path.relative_to(root).as_posix()
    stem = _SAFE.sub("_", path.stem).strip("_")[:40] or "video"
    return f"{stem}-{_sha(rel, 10)}"


def avspeech_source_id(video_id: str, start_s: float) -> str:
    """Stable id of one AVSpeech CSV row: ``<video id>_<start in ms, 9 digits>``."""
    return f"{video_id}_{round(start_s * 1000):09d}"


def path_video_id(path: str) -> str:
    """Video id of an absolute local path in an AVSpeech row: sanitised stem + hash of the path."""
    stem = _SAFE.sub("_", PurePosixPath(path).stem).strip("_")[:40] or "video"
    return f"{stem}-{_sha(path, 10)}"


def avspeech_video(cell: str, url_template: str) -> tuple[str, str]:
    """``(video id, URL or path)`` of an AVSpeech row's first cell; ValueError when it is none of a
    YouTube id, an http(s) URL or an absolute local path."""
    if _YOUTUBE_ID.match(cell):
        return cell, url_template.format(id=cell)
    parsed = urlparse(cell)
    if parsed.scheme in {"http", "https"} and parsed.netloc:
        return url_source_id(cell), cell
    if "://" not in cell and Path(cell).is_absolute():
        return path_video_id(cell), cell
    raise ValueError(f"not a YouTube id, http(s) URL or absolute path: {cell[:80]!r}")


def dedupe_sources(sources: Iterable[Source]) -> list[Source]:
    """Keep the first source of each ``source_id``, in input order."""
    seen: set[str] = set()
    out = []
    for s in sources:
        if s.source_id not in seen:
            seen.add(s.source_id)
            out.append(s)
    return out


# --------------------------------------------------------------------------- parsers (pure)


def parse_url_list(text: str) -> list[Source]:
    """Sources from the text of a URL list (one a line; ``#`` comments and blank lines skipped)."""
    out = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parsed = urlparse(line)
        if parsed.scheme in {"http", "https"} and parsed.netloc:
            out.append(Source(url_source_id(line), line, SourceKind.URL))
        else:
            sid = f"invalid-line{lineno}-{_sha(line, 8)}"
            reason = f"line {lineno}: not an http(s) URL: {line[:80]!r}"
            out.append(Source(sid, line, SourceKind.URL, invalid=reason))
    return dedupe_sources(out)


def _float(value: str) -> float:
    x = float(value)
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"not finite: {value!r}")
    return x


def parse_avspeech_csv(text: str, url_template: str = YOUTUBE_URL_TEMPLATE) -> list[Source]:
    """Sources from AVSpeech CSV text (``video,start_s,end_s,face_x,face_y``; header optional).

    ``video`` is a YouTube id, an http(s) URL or an absolute local path (see :func:`avspeech_video`);
    ``url_template`` maps a YouTube id to the URL to fetch (``{id}`` is replaced); tests point it at a
    loopback server. Every valid row is a :class:`Source` of kind ``avspeech`` with its hint (a URL is
    fetched for the hinted range only, a path is read in place). A row with a bad video cell,
    non-numeric or out-of-range values becomes an invalid source.
    """
    out = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not cells or not any(cells):
            continue
        if lineno == 1 and cells[0].lower() in _HEADER_FIRST_CELLS:
            continue
        try:
            if len(cells) != 5:
                raise ValueError(f"expected 5 columns, got {len(cells)}")
            vid, url = avspeech_video(cells[0], url_template)
            start_s, end_s, fx, fy = (_float(c) for c in cells[1:])
            if not 0 <= start_s < end_s:
                raise ValueError(f"need 0 <= start_s < end_s, got {start_s}, {end_s}")
            if not (0 <= fx <= 1 and 0 <= fy <= 1):
                raise ValueError(f"face_x/face_y must be in 0..1, got {fx}, {fy}")
        except ValueError as exc:
            sid = f"invalid-row{lineno}-{_sha(','.join(cells), 8)}"
            url = ",".join(cells)[:200]
            out.append(Source(sid, url, SourceKind.AVSPEECH, invalid=f"row {lineno}: {exc}"))
            continue
        out.append(
            Source(
                avspeech_source_id(vid, start_s),
                url,
                SourceKind.AVSPEECH,
                hint_start_s=start_s,
                hint_end_s=end_s,
                hint_face_x=fx,
                hint_face_y=fy,
            )
        )
    return dedupe_sources(out)


def scan_folder(root: str | Path) -> list[Source]:
    """Local video files under ``root`` (recursive, by extension, sorted by relative path)."""
    base = Path(root).resolve()
    files = sorted(
        (p for p in base.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS),
        key=lambda p: p.relative_to(base).as_posix(),
    )
    return dedupe_sources(Source(local_source_id(p, base), str(p), SourceKind.LOCAL) for p in files)


def _looks_like_avspeech(text: str) -> bool:
    """True when the first data line is a CSV row of five cells whose last four are numbers."""
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            cells = next(csv.reader([line]), [])
            if len(cells) != 5:
                return False
            try:
                [float(c) for c in cells[1:]]
            except ValueError:
                return cells[0].strip().lower() in _HEADER_FIRST_CELLS
            return True
    return False


def read_sources_arg(path: str | Path, url_template: str = YOUTUBE_URL_TEMPLATE) -> list[Source]:
    """Sources from the ``avforge curate SOURCES`` argument: a folder, a CSV, or a URL list.

    A local directory is scanned for videos; a ``.csv`` file (or a text file whose first data line
    is a header or five CSV cells ending in four numbers) is read as AVSpeech rows; anything else as a
    URL list.
    Raises :class:`SourcesError` when the path cannot be read.
    """
    p = str(path)
    if Path(p).is_dir():
        return scan_folder(p)
    try:
        with fsspec.open(p, "r", encoding="utf-8") as fh:
            text = fh.read()
    except (FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise SourcesError(f"cannot read SOURCES {p}: {exc}") from None
    if p.lower().endswith(".csv") or _looks_like_avspeech(text):
        return parse_avspeech_csv(text, url_template)
    return parse_url_list(text)


def with_url(source: Source, url: str) -> Source:
    """A copy of ``source`` with another URL (e.g. a mirror)."""
    return replace(source, url=url)
