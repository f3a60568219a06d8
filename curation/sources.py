"""Sources: what to curate, parsed from a URL list, an AVSpeech-format CSV, or a folder of videos.

Contract:

- input: a path (local or any fsspec URL) to a text file of URLs, a CSV of AVSpeech rows
  ``video,start_s,end_s,face_x,face_y`` (``video``: a YouTube id, an http(s) URL or an absolute local
  path; with or without a header line), or a folder of local video files (searched recursively, by
  extension). A UTF-8 byte-order mark at the start of the text is ignored;
- URL list lines: blank lines and lines starting with ``#`` are skipped; otherwise the first
  whitespace-separated token is the URL (scheme ``http``/``https`` in any case) and the rest of the
  line must be empty or a ``#`` comment (``URL  # note``); any other trailing text makes the line
  invalid (it is never fetched);
- CSV rows: one row a line; blank lines and lines starting with ``#`` are skipped; the first data line
  may be a header (its first cell is one of ``youtube_id``, ``id``, ``video_id``, ``ytid``, ``video``,
  ``url``, ``path``);
- output: a list of :class:`Source`, deduplicated by ``source_id`` (first occurrence wins, order kept);
- failures: a malformed line or CSV row (not a URL, a URL that does not parse such as
  ``http://[::1:bad/x``, bad numbers, a cell over the CSV field limit) becomes a :class:`Source` with
  ``invalid`` set to a one-line reason, so it ends as a ``failed`` row (``invalid_source``) instead of
  stopping the run. Only an unreadable SOURCES path raises (:class:`SourcesError`).

Stable ids (same input -> same id on every run, on every machine); every id matches
``[A-Za-z0-9_-][A-Za-z0-9_.-]*`` and may start with ``-`` (about 1 YouTube id in 64 does):

- YouTube URLs -> the 11-character video id (:func:`youtube_id`): ``watch?v=ID`` (any other query
  parameters, e.g. ``&t=5``, ``&list=``), ``youtu.be/ID``, ``shorts/ID``, ``embed/ID``, ``live/ID``,
  ``v/ID``, on ``youtube.com`` and its subdomains (``www.``, ``m.``, ``music.``) or
  ``youtube-nocookie.com``, any fragment. So every spelling of one video deduplicates to one source;
- other URLs -> ``url-`` + 16 hex digits of SHA-256 of the URL's normal form (:func:`normalize_url`:
  scheme and host lower-cased, the default port and the fragment dropped, nothing else changed, so a
  URL already in normal form keeps the id it always had);
- AVSpeech rows -> ``<video id>_<start in ms, 9 digits>``: one AVSpeech row is one segment and a video
  often has several rows, each with its own face hint, so each row is its own source. The video id is
  the one a URL list gives the same video: the first cell is a YouTube id (fetched through
  ``url_template``), an http(s) URL (fetched as given, in normal form; video id = :func:`url_source_id`,
  so a YouTube URL gives the bare YouTube id) or an absolute local path (used in place; video id =
  sanitised stem + 10 hex digits of SHA-256 of the path), so ``avforge export avspeech-csv`` output of
  any corpus re-curates;
- local files -> ``<sanitised file stem>-`` + 10 hex digits of SHA-256 of the path relative to the folder
  (moving the folder keeps the ids).

A source's ``url`` is what gets fetched: the URL in normal form (for a YouTube URL, the spelling
listed first), the template URL of an AVSpeech YouTube id, or an absolute local path.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit

import fsspec

from avforge.core.ids import stable_hash
from manifests.schema import SourceKind

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".ts", ".mpg", ".mpeg")
YOUTUBE_URL_TEMPLATE = "https://www.youtube.com/watch?v={id}"
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
_HEADER_FIRST_CELLS = {"youtube_id", "id", "video_id", "ytid", "video", "url", "path"}
_URL_PARTS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^#]*)(#.*)?$", re.DOTALL)
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_YOUTUBE_HOSTS = {"youtube.com", "youtube-nocookie.com", "www.youtube-nocookie.com"}
_YOUTUBE_PATH_KINDS = {"shorts", "embed", "v", "e", "live"}
_BOM = "\ufeff"


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


def normalize_url(url: str) -> str:
    """The normal form of an http(s) URL: surrounding whitespace stripped, scheme and host
    lower-cased, the scheme's default port (80, 443) and the fragment dropped; userinfo, path and
    query are kept byte for byte (so an already normal URL is returned unchanged).

    Raises ValueError when ``url`` is not an http(s) URL with a host, or does not parse (an
    unbalanced ``[`` in the host, a port that is not a number in 0..65535).
    """
    text = url.strip()
    match = _URL_PARTS.match(text)
    if match is None or match.group(1).lower() not in _DEFAULT_PORTS:
        raise ValueError(f"not an http(s) URL: {text[:80]!r}")
    try:
        parsed = urlsplit(text)
        _ = parsed.port  # a port that is no number in 0..65535 raises here
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise ValueError(f"malformed URL ({exc}): {text[:80]!r}") from None
    if not parsed.hostname:
        raise ValueError(f"no host in URL: {text[:80]!r}")
    scheme = match.group(1).lower()
    userinfo, at, hostport = match.group(2).rpartition("@")
    if hostport.startswith("["):
        host, _, after = hostport.partition("]")
        host, port = host + "]", after.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    netloc = f"{userinfo}{at}{host.lower()}"
    if port and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{match.group(3)}"


def youtube_id(url: str) -> str | None:
    """The 11-character YouTube video id of ``url``, or None when it is not a YouTube video URL
    (see the module docstring for the forms; a malformed URL is not one)."""
    try:
        parsed = urlsplit(url.strip())
        host = (parsed.hostname or "").lower()
    except ValueError:
        return None
    if parsed.scheme.lower() not in _DEFAULT_PORTS:
        return None
    parts = [p for p in parsed.path.split("/") if p]
    candidate: str | None = None
    if host in {"youtu.be", "www.youtu.be"}:
        candidate = parts[0] if parts else None
    elif host in _YOUTUBE_HOSTS or host.endswith(".youtube.com"):
        if parts == ["watch"]:
            candidate = (parse_qs(parsed.query).get("v") or [None])[0]
        elif len(parts) >= 2 and parts[0] in _YOUTUBE_PATH_KINDS:
            candidate = parts[1]
    if candidate and _YOUTUBE_ID.match(candidate):
        return candidate
    return None


def url_source_id(url: str) -> str:
    """Stable id of a URL source: its YouTube id when there is one, else ``url-`` + a hash of its
    normal form (:func:`normalize_url`). Raises ValueError for a malformed URL."""
    yt = youtube_id(url)
    return yt if yt is not None else f"url-{stable_hash(normalize_url(url), 16)}"


def local_source_id(path: Path, root: Path) -> str:
    """Stable id of a local file: sanitised stem plus a hash of its path relative to ``root``."""
    rel = path.relative_to(root).as_posix()
    stem = _SAFE.sub("_", path.stem).strip("_")[:40] or "video"
    return f"{stem}-{stable_hash(rel, 10)}"


def avspeech_source_id(video_id: str, start_s: float) -> str:
    """Stable id of one AVSpeech CSV row: ``<video id>_<start in ms, 9 digits>``."""
    return f"{video_id}_{round(start_s * 1000):09d}"


def path_video_id(path: str) -> str:
    """Video id of an absolute local path in an AVSpeech row: sanitised stem + hash of the path."""
    stem = _SAFE.sub("_", PurePosixPath(path).stem).strip("_")[:40] or "video"
    return f"{stem}-{stable_hash(path, 10)}"


def avspeech_video(cell: str, url_template: str) -> tuple[str, str]:
    """``(video id, URL or path)`` of an AVSpeech row's first cell; ValueError when it is none of a
    YouTube id, an http(s) URL or an absolute local path."""
    if _YOUTUBE_ID.match(cell):
        return cell, url_template.format(id=cell)
    if cell.lower().startswith(("http://", "https://")):
        return url_source_id(cell), normalize_url(cell)  # ValueError names a malformed URL
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


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith(_BOM) else text


def _invalid(what: str, lineno: int, text: str, kind: SourceKind, reason: str) -> Source:
    """The :class:`Source` of a malformed line (``what="line"``) or CSV row (``"row"``): an id
    naming it, never fetched, failing as ``invalid_source`` with ``reason``."""
    sid = f"invalid-{what}{lineno}-{stable_hash(text, 8)}"
    return Source(sid, text[:200], kind, invalid=f"{what} {lineno}: {reason}")


def parse_url_line(line: str) -> tuple[str, str] | None:
    """``(source id, URL to fetch)`` of one URL-list line, or None for a blank or ``#`` line.

    Raises ValueError (the line's one-line reason) when the first token is not an http(s) URL, does
    not parse, or is followed by anything but a ``#`` comment.
    """
    tokens = line.split()
    if not tokens or tokens[0].startswith("#"):
        return None
    url, rest = tokens[0], line.strip()[len(tokens[0]) :].strip()
    if rest and not rest.startswith("#"):
        raise ValueError(f"text after the URL (only a '# comment' may follow): {rest[:40]!r}")
    normal = normalize_url(url)
    return url_source_id(normal), normal


def parse_url_list(text: str) -> list[Source]:
    """Sources from the text of a URL list (see the module docstring for the line format)."""
    out = []
    for lineno, raw in enumerate(_strip_bom(text).splitlines(), start=1):
        try:
            parsed = parse_url_line(raw)
        except ValueError as exc:
            out.append(_invalid("line", lineno, raw.strip(), SourceKind.URL, str(exc)))
            continue
        if parsed is not None:
            out.append(Source(parsed[0], parsed[1], SourceKind.URL))
    return dedupe_sources(out)


def _float(value: str) -> float:
    x = float(value)
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"not finite: {value!r}")
    return x


def _csv_cells(line: str) -> list[str]:
    """The stripped cells of one CSV line; ValueError (with the reason) when the csv module refuses
    it (e.g. a cell over its field size limit, 131,072 characters)."""
    try:
        return [c.strip() for c in next(csv.reader([line]), [])]
    except csv.Error as exc:
        raise ValueError(f"not a CSV row: {exc}") from None


def parse_avspeech_csv(text: str, url_template: str = YOUTUBE_URL_TEMPLATE) -> list[Source]:
    """Sources from AVSpeech CSV text (``video,start_s,end_s,face_x,face_y``; header optional).

    ``video`` is a YouTube id, an http(s) URL or an absolute local path (see :func:`avspeech_video`);
    ``url_template`` maps a YouTube id to the URL to fetch (``{id}`` is replaced); tests point it at a
    loopback server. Every valid row is a :class:`Source` of kind ``avspeech`` with its hint (a URL is
    fetched for the hinted range only, a path is read in place). One row a line (a quoted cell cannot
    span lines); blank and ``#`` lines are skipped. A row with a bad video cell, non-numeric or
    out-of-range values, or a cell the csv module refuses becomes an invalid source.
    """
    out = []
    first = True
    for lineno, line in enumerate(_strip_bom(text).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            cells = _csv_cells(line)
        except ValueError as exc:
            out.append(_invalid("row", lineno, line.strip(), SourceKind.AVSPEECH, str(exc)))
            continue
        if not any(cells):
            continue
        header, first = first and cells[0].lower() in _HEADER_FIRST_CELLS, False
        if header:
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
            out.append(_invalid("row", lineno, ",".join(cells), SourceKind.AVSPEECH, str(exc)))
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
    """True when the first data line is a CSV row of five cells whose last four are numbers (or an
    AVSpeech header)."""
    for line in _strip_bom(text).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                cells = _csv_cells(line)
            except ValueError:
                return False
            if len(cells) != 5:
                return False
            try:
                [float(c) for c in cells[1:]]
            except ValueError:
                return cells[0].lower() in _HEADER_FIRST_CELLS
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
        with fsspec.open(p, "r", encoding="utf-8-sig") as fh:
            text = fh.read()
    except (FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise SourcesError(f"cannot read SOURCES {p}: {exc}") from None
    if p.lower().endswith(".csv") or _looks_like_avspeech(text):
        return parse_avspeech_csv(text, url_template)
    return parse_url_list(text)
