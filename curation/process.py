"""The per-source function: one source in, its manifest rows and media out (pure of Dask and writes).

Contract: :func:`process_source` (source, config, scratch folder) -> :class:`SourceResult`: the
``sources`` row (ok or failed with a reason), every candidate ``segments`` row (kept or rejected with
its reason), the kept clips' ``clips`` rows and media rows. It writes nothing but fetched files in the
scratch folder (deleted afterwards unless ``download.keep_downloads``). A fetch or media failure is a
``failed`` row (``download_failed``, ``not_found``, ``timeout``, ``too_long``, ``too_large``,
``no_audio``, ``no_video``, ``corrupt_media``, ``invalid_source``); it raises only for systemic
problems (missing model files, ffmpeg missing, a bug; :class:`avforge.core.errors.RunInterrupted` when a
child was stopped by a shutdown signal, :class:`avforge.core.errors.StorageError` when the scratch folder
cannot be written), which the Dask layer reports: a shutdown is never a source failure.

Stage order (memory stays bounded by one source's 16 kHz audio plus one window's 25 fps frames):

1. fetch (``curation.download``; local files are used in place) -> probe, duration cap;
2. decode the whole audio (16 kHz mono) -> speech activity (``curation.vad``);
3. face detection over frames streamed at ``decode.detect_fps`` / ``decode.detect_width``
   (``curation.faces``) -> tracks (``curation.tracking``); an AVSpeech hint picks its track;
4. candidate windows (``curation.select``) -> ``curation.windows``: per window, cheap checks first
   (faces, speech, length, SNR), and only for survivors a 25 fps decode of the face region (one
   ffmpeg run per span of neighbouring survivors): track interpolation, per-frame quality,
   the active speaker (``curation.speaker``: LR-ASD speaking score and sync confidence);
   then the decision, and crops (+ embeddings, lip features) for kept windows.

All times in the rows are seconds in the source: when only a range was fetched, its offset is added.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from avforge.core.errors import SourceFailure, one_line
from curation.config import CurateConfig
from curation.decode import (
    MediaError,
)
from curation.download import Downloaded, DownloadError, fetch_isolated, pace_in
from curation.export import build_outputs
from curation.faces import load_detector
from curation.sources import Source
from curation.windows import analyse, evaluate_windows
from manifests.media import MediaRecord
from manifests.schema import (
    ClipRecord,
    SegmentRecord,
    SourceError,
    SourceRecord,
    SourceStatus,
)


@dataclass(frozen=True, eq=False)
class SourceResult:
    """Everything one source produced (see the module docstring)."""

    source: SourceRecord
    segments: list[SegmentRecord]
    clips: list[ClipRecord]
    media: list[MediaRecord]


def failed_record(source: Source, reason: SourceError, detail: str, **meta: object) -> SourceRecord:
    """A ``failed`` sources row for ``source``."""
    return SourceRecord(
        source_id=source.source_id,
        url=source.url,
        kind=source.kind,
        status=SourceStatus.FAILED,
        error=reason,
        error_detail=one_line(detail),
        hint_start_s=source.hint_start_s,
        hint_end_s=source.hint_end_s,
        hint_face_x=source.hint_face_x,
        hint_face_y=source.hint_face_y,
        **meta,  # type: ignore[arg-type]
    )


def _locate(source: Source, cfg: CurateConfig, scratch: Path) -> tuple[str, Downloaded | None]:
    """The local media path of ``source`` (fetching it when it is a URL)."""
    if source.invalid is not None:
        raise DownloadError(SourceError.INVALID_SOURCE, source.invalid)
    if source.url.startswith(("http://", "https://")):
        section = None
        if source.has_hint:
            section = (float(source.hint_start_s), float(source.hint_end_s))  # type: ignore[arg-type]
        pace_in(str(scratch.parent))  # the run's scratch folder
        got = fetch_isolated(
            source.url,
            str(scratch),
            source.source_id,
            cfg.download,
            section,
            cfg.decode.max_duration_s,
        )
        return got.path, got
    if not Path(source.url).is_file():
        raise MediaError(SourceError.NOT_FOUND, f"no such file: {source.url}")
    return source.url, None


def process_source(source: Source, cfg: CurateConfig, workdir: str) -> SourceResult:
    """Curate one source (see the module docstring). ``workdir``: scratch folder for fetched files."""
    t0 = time.monotonic()
    scratch = Path(workdir) / source.source_id
    got: Downloaded | None = None
    try:
        path, got = _locate(source, cfg, scratch)
        detector = load_detector(cfg.faces)
        analysis = analyse(path, cfg, detector)
        offset_s = got.offset_s if got is not None else 0.0
        segments, kept = evaluate_windows(source, analysis, cfg, detector, offset_s)
    except SourceFailure as exc:
        meta = _meta(got)
        rec = failed_record(source, exc.reason, exc.detail, **meta)
        rec = dataclasses.replace(rec, processing_s=round(time.monotonic() - t0, 3))
        return SourceResult(rec, [], [], [])
    finally:
        if not cfg.download.keep_downloads and scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    info = analysis.info
    record = SourceRecord(
        source_id=source.source_id,
        url=source.url,
        kind=source.kind,
        status=SourceStatus.OK,
        duration_s=round(len(analysis.audio) / cfg.decode.sample_rate_hz, 3),
        width=info.width,
        height=info.height,
        fps=info.fps if math.isfinite(info.fps) else None,
        audio_sample_rate_hz=info.audio_sample_rate_hz or None,
        audio_channels=info.audio_channels or None,
        hint_start_s=source.hint_start_s,
        hint_end_s=source.hint_end_s,
        hint_face_x=source.hint_face_x,
        hint_face_y=source.hint_face_y,
        num_segments=len(segments),
        num_clips=len(kept),
        **_meta(got),
    )
    clips, media = build_outputs(record, kept, source.source_id, cfg.export)
    record = dataclasses.replace(record, processing_s=round(time.monotonic() - t0, 3))
    return SourceResult(record, segments, clips, media)


def _meta(got: Downloaded | None) -> dict[str, object]:
    if got is None:
        return {}
    return {
        "title": got.title,
        "channel": got.channel,
        "upload_date": got.upload_date,
        "license": got.license,
        "language": got.language,
    }
