"""AVSpeech CSV export: a corpus's kept clips as ``youtube_id,start,end,x,y`` rows, as AVSpeech ships.

Contract:

- input: a corpus folder (local path or fsspec URL) with ``clips`` and ``sources`` (and ``media``, read
  only for a clip whose row lacks its face position);
- output: one row per kept clip, sorted by (video, start): the video, ``start`` and ``end`` (seconds in
  the source, 6 decimals) and the face centre ``x``, ``y`` at ``start`` (0..1 of the frame width and
  height, 6 decimals); no header line, like AVSpeech's ``avspeech_train.csv``;
- the video column: the YouTube id for AVSpeech sources (the source id without its ``_<start ms>``
  suffix) and for URL sources with a YouTube URL in any spelling (the canonical id of
  :func:`curation.sources.youtube_id`, the same id the URL source has); the source URL for any other
  source (its path for a local file), quoted by the CSV writer when it holds a comma. A YouTube id may
  start with ``-``; it is written as is, like AVSpeech's own files;
- failures: a clip whose face position is unknown (no ``face_x``/``face_y``, no face track, or a source
  without a frame size) is left out and listed in :attr:`AvspeechExport.skipped` with the reason.

Re-curation: ``avforge curate FILE.csv`` (``curation.sources.parse_avspeech_csv``) reads every row back
as an AVSpeech source whose hint is the clip's range and face (a YouTube id through the URL template, a
URL fetched as given, an absolute path read in place), so curating the export again finds the same clips.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow.compute as pc

import manifests
from avforge.core import files
from avforge.interop.tables import media_path
from curation.sources import youtube_id
from manifests.schema import SourceKind, Split

_AVSPEECH_SOURCE_ID = re.compile(r"^([A-Za-z0-9_-]{11})_\d{9}$")


@dataclass(frozen=True)
class AvspeechRow:
    """One AVSpeech CSV row (and the clip it came from)."""

    video: str
    """YouTube id, or the source URL / path for other sources."""
    start_s: float
    end_s: float
    face_x: float
    """Face centre at ``start_s``, 0..1 of the frame width."""
    face_y: float
    clip_id: str


@dataclass(frozen=True)
class AvspeechExport:
    """What :func:`avspeech_rows` found: the rows, and the clips left out with the reason."""

    rows: list[AvspeechRow]
    skipped: dict[str, str] = field(default_factory=dict)
    """clip id -> why it has no row."""


def video_of(source_id: str, url: str, kind: SourceKind | str) -> str:
    """The first CSV column for a source (see the module docstring).

    Example::

        video_of("AvWWVOgaMlk_000090000", "https://www.youtube.com/watch?v=AvWWVOgaMlk", "avspeech")
        # 'AvWWVOgaMlk'
    """
    if SourceKind(kind) == SourceKind.AVSPEECH:
        match = _AVSPEECH_SOURCE_ID.match(source_id)
        if match:
            return match.group(1)
    return youtube_id(url) or url


def _valid_unit(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and 0.0 <= x <= 1.0


def _face_from_track(
    reader: manifests.MediaReader, corpus: str, clip: dict, size: tuple[int | None, int | None]
) -> tuple[float, float] | str:
    """Face centre at the clip start from its media face track, or the reason it cannot be known."""
    if not size[0] or not size[1]:
        return "source frame size unknown"
    track = reader.face_track(media_path(corpus, clip["media_shard"]), clip["media_row"])
    if track is None or track.num_frames == 0:
        return "no face track"
    x0, y0, x1, y1 = (float(v) for v in track.boxes[0])
    width, height = size
    return min(1.0, max(0.0, (x0 + x1) / 2 / width)), min(1.0, max(0.0, (y0 + y1) / 2 / height))


def avspeech_rows(corpus: str, split: Split | None = None) -> AvspeechExport:
    """The AVSpeech rows of ``corpus``'s kept clips (of ``split`` only, when given), sorted by
    (video, start_s, end_s)."""
    clips = manifests.read_clips(str(corpus))
    if split is not None:
        clips = clips.filter(pc.equal(clips["split"].cast("string"), Split(split).value))
    sources = {r["source_id"]: r for r in manifests.read_sources(str(corpus)).to_pylist()}
    rows: list[AvspeechRow] = []
    skipped: dict[str, str] = {}
    reader = manifests.MediaReader()
    for clip in clips.to_pylist():
        src = sources.get(clip["source_id"])
        if src is None:
            skipped[clip["clip_id"]] = f"source {clip['source_id']} not in the sources manifest"
            continue
        face: tuple[float, float] | str
        if _valid_unit(clip["face_x"]) and _valid_unit(clip["face_y"]):
            face = (float(clip["face_x"]), float(clip["face_y"]))
        else:
            face = _face_from_track(reader, str(corpus), clip, (src["width"], src["height"]))
        if isinstance(face, str):
            skipped[clip["clip_id"]] = face
            continue
        video = video_of(src["source_id"], src["url"], src["kind"])
        rows.append(AvspeechRow(video, clip["start_s"], clip["end_s"], *face, clip["clip_id"]))
    rows.sort(key=lambda r: (r.video, r.start_s, r.end_s))
    return AvspeechExport(rows, skipped)


def format_avspeech_csv(rows: Sequence[AvspeechRow]) -> str:
    """CSV text of ``rows``: ``video,start,end,x,y`` with 6 decimals, no header, ``\\n`` line ends."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for r in rows:
        writer.writerow(
            [r.video, f"{r.start_s:.6f}", f"{r.end_s:.6f}", f"{r.face_x:.6f}", f"{r.face_y:.6f}"]
        )
    return buf.getvalue()


def export_avspeech_csv(
    corpus: str, out: str | None = None, split: Split | None = None
) -> tuple[str, AvspeechExport]:
    """The corpus's AVSpeech CSV text; also written atomically to ``out`` (path or fsspec URL) when
    given. Returns ``(text, export)``."""
    export = avspeech_rows(corpus, split)
    text = format_avspeech_csv(export.rows)
    if out is not None:
        files.atomic_write_bytes(str(out), text.encode("utf-8"))
    return text, export
