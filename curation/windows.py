"""Window checks: one analysed source's candidate windows -> decisions, evidence and kept clips.

The window stage in one module: :func:`analyse` (probe, audio, speech activity, face detection and
tracking of one file -> :class:`Analysis`), then :func:`evaluate_windows` (source, analysis, config,
detector, range offset) -> the source's ``segments`` rows and kept clips, one row per candidate
window in time order, through :class:`WindowChecker` (one :class:`WindowOutcome` per window); pure
but for running ffmpeg. A media
failure of a 25 fps decode raises :class:`curation.decode.MediaError` (the source then fails).

Two passes, cheap checks first (the order of :func:`curation.select.decide`):

1. per window: faces present (the AVSpeech hint's track when there is one), speech, length, SNR;
2. survivors only: a 25 fps decode, per-frame face quality, the active-speaker stage
   (``curation.speaker``: LR-ASD on the authors' face crops and the window's MFCCs -> speaking
   score, sync offset and confidence, per-frame scores and lip features), then crops (+ embeddings)
   of kept windows. Survivors that follow each other on the same track (gaps up to
   :data:`SPAN_MAX_GAP_S`, spans up to :data:`SPAN_MAX_S`) share ONE ffmpeg run, streamed in chunks
   (memory: one window plus one chunk), so no span is sought and decoded from its keyframe twice;
   and the run decodes only the region around the track (``curation.decode.face_region``: the
   boxes plus half a face width each side, ~5x fewer pixels than the frame in a talk), at the scale
   of a whole-frame decode ``segments.clip_width`` px wide, so every measure is unchanged.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from curation.config import CurateConfig
from curation.crops import extract_crops
from curation.decode import (
    MediaError,
    MediaInfo,
    VideoChunk,
    check_media,
    decode_audio,
    face_region,
    iter_video_frames,
    probe_media,
    video_output_size,
)
from curation.export import KeptClip, window_id
from curation.faces import FaceDetector, FrameDetections, detect_faces, embed_track
from curation.lrasd import face_crops, mfcc_for_frames
from curation.music import music_detector
from curation.select import (
    Candidate,
    WindowEvidence,
    candidate_windows,
    decide,
    match_hint,
    tracks_in_window,
)
from curation.snr import SnrEstimator, make_estimator
from curation.sources import Source
from curation.speaker import ActiveSpeaker, SpeakerScores, frame_energy_db, pooled_sync
from curation.tracking import (
    TrackEstimate,
    apply_quality,
    face_quality,
    interpolate_track,
    track_faces,
)
from curation.vad import SpeechActivity, detect_speech
from manifests.media import FaceTrack
from manifests.schema import RejectReason, SegmentRecord, SourceError

SPAN_MAX_GAP_S = 1.0
"""Survivors at most this far apart share one 25 fps decode (decoding the gap is cheaper than
seeking to a keyframe and starting ffmpeg again)."""
SPAN_MAX_S = 60.0
"""Longest span one 25 fps decode covers (bounds how far a crop region can grow with motion)."""
REGION_MARGIN = 0.5
"""The cropped decode keeps this many face widths around the track's boxes on every side."""


@dataclass(frozen=True, eq=False)
class Analysis:
    """Whole-source measures shared by all windows (file times: seconds from the file's start)."""

    path: str
    info: MediaInfo
    audio: np.ndarray
    speech: SpeechActivity
    detections: FrameDetections
    tracks: list[TrackEstimate]


@dataclass(frozen=True, eq=False)
class WindowOutcome:
    """The decision on one window (file times): ``reason`` None means kept, and ``clip`` is set."""

    candidate: Candidate
    reason: RejectReason | None
    evidence: WindowEvidence
    track_id: int | None
    clip: KeptClip | None = None


@dataclass(eq=False)
class _Measured:
    """A survivor after its 25 fps measures, waiting for its neighbours' sync scores."""

    survivor: Survivor
    evidence: WindowEvidence
    face: FaceTrack
    usable: FaceTrack
    asd: SpeakerScores | None
    crops: np.ndarray | None
    """Face crops, kept only while the window may still be kept."""


@dataclass(frozen=True, eq=False)
class Survivor:
    """A window that passed the cheap checks, waiting for the 25 fps stage."""

    index: int
    candidate: Candidate
    evidence: WindowEvidence
    track_id: int
    audio: np.ndarray
    num_frames: int


def shifted(track: FaceTrack, dx: float, dy: float) -> FaceTrack:
    """``track`` with boxes and landmarks moved by (``dx``, ``dy``) pixels."""
    boxes = track.boxes + np.array([dx, dy, dx, dy], np.float32)
    marks = None if track.landmarks is None else track.landmarks + np.array([dx, dy], np.float32)
    return dataclasses.replace(track, boxes=boxes, landmarks=marks)


def group_spans(survivors: list[Survivor]) -> list[list[Survivor]]:
    """Consecutive survivors on one track, close in time, as spans for one decode each."""
    spans: list[list[Survivor]] = []
    for s in survivors:
        last = spans[-1][-1] if spans else None
        if (
            last is not None
            and s.track_id == last.track_id
            and s.candidate.start_s - last.candidate.end_s <= SPAN_MAX_GAP_S + 1e-6
            and s.candidate.end_s - spans[-1][0].candidate.start_s <= SPAN_MAX_S + 1e-6
        ):
            spans[-1].append(s)
        else:
            spans.append([s])
    return spans


def window_frames(
    chunks: Iterator[VideoChunk], starts: list[int], counts: list[int], shape: tuple[int, int]
) -> Iterator[np.ndarray]:
    """Frames ``[starts[k], starts[k] + counts[k])`` of a chunked decode, for each window k in order.

    ``starts`` are frame indices from the decode's first frame, ascending. A decode that ends early
    is padded with black frames of ``shape`` (h, w). Only the frames still needed are buffered.
    """
    buf = np.zeros((0, *shape, 3), np.uint8)
    buf_first = 0  # decode index of buf[0]
    exhausted = False
    for first, count in zip(starts, counts, strict=True):
        while True:
            drop = min(len(buf), max(0, first - buf_first))
            buf, buf_first = buf[drop:], buf_first + drop
            if exhausted or buf_first + len(buf) >= first + count:
                break
            chunk = next(chunks, None)
            if chunk is None:
                exhausted = True
            else:
                buf = np.concatenate([buf, chunk.frames])
        lo = max(0, first - buf_first)
        frames = buf[lo : lo + count]
        if len(frames) < count:  # the decode ran short (end of file): pad with black frames
            pad = np.zeros((count - len(frames), *shape, 3), np.uint8)
            frames = np.concatenate([frames, pad])
        yield frames


class WindowChecker:
    """Runs the checks on the windows of one analysed source (see the module docstring)."""

    def __init__(
        self,
        a: Analysis,
        cfg: CurateConfig,
        detector: FaceDetector,
        snr: SnrEstimator,
        hint_track: int | None,
        has_hint: bool,
        *,
        on_face_crops: Callable[[float, np.ndarray], None] | None = None,
    ) -> None:
        """``on_face_crops(start_s, crops)``: called with each window's LR-ASD face crops (T, 112,
        112) uint8 as the active-speaker stage sees them (the sync calibration records them)."""
        self.a, self.cfg, self.detector, self.snr = a, cfg, detector, snr
        self.hint_track, self.has_hint = hint_track, has_hint
        self.on_face_crops = on_face_crops
        self.rate = cfg.decode.sample_rate_hz
        self._speaker: ActiveSpeaker | None = None

    @property
    def speaker(self) -> ActiveSpeaker:
        """LR-ASD, loaded on first use (sources with no surviving window never load it)."""
        if self._speaker is None:
            self._speaker = ActiveSpeaker(self.cfg.speaker)
        return self._speaker

    def active_speaker(
        self, s: Survivor, frames: np.ndarray, local: FaceTrack, scale: float
    ) -> SpeakerScores:
        """The active-speaker stage on one survivor's decoded frames (``local``: region pixels x scale)."""
        c, fps = s.candidate, self.cfg.decode.clip_fps
        faces = face_crops(frames[: s.num_frames], local.boxes[: s.num_frames] / scale)
        if self.on_face_crops is not None:
            self.on_face_crops(c.start_s, faces)
        mfcc = mfcc_for_frames(s.audio, s.num_frames, self.rate)
        speech = self.a.speech.mask(c.start_s, c.start_s + s.num_frames / fps, round(fps))
        energy = frame_energy_db(s.audio, s.num_frames, self.rate)
        return self.speaker.score(faces, mfcc, speech, energy)

    def audio(self, start_s: float, num_samples: int) -> np.ndarray:
        first = round(start_s * self.rate)
        out = self.a.audio[first : first + num_samples]
        return np.pad(out, (0, num_samples - len(out))) if len(out) < num_samples else out

    def cheap(self, index: int, c: Candidate) -> WindowOutcome | Survivor:
        """Faces, hint, speech, length and SNR: a decided outcome, or a survivor for the 25 fps stage."""
        cfg, a = self.cfg, self.a
        present = tracks_in_window(a.tracks, a.detections.times_s, c.start_s, c.end_s, cfg.segments)
        track_id = c.track_id
        hint_matched: bool | None = None
        if self.has_hint:
            hint_matched = self.hint_track is not None
            if self.hint_track is not None:
                track_id = self.hint_track
                present = [t for t in present if t == self.hint_track]
            elif not present:
                hint_matched = None  # no face at all: no_face, not a mismatch
        elif len(present) == 1:
            track_id = present[0]
        ev = WindowEvidence(
            duration_s=c.duration_s,
            tracks_present=len(present),
            hint_matched=hint_matched,
            speech_ratio=a.speech.ratio(c.start_s, c.end_s),
        )
        reason = decide(ev, cfg.segments)
        if reason is not None or track_id is None:
            return WindowOutcome(c, reason or RejectReason.NO_FACE, ev, track_id)
        fps = cfg.decode.clip_fps
        num_frames = round(c.duration_s * fps)
        num_samples = round(num_frames * self.rate / fps)
        audio = self.audio(c.start_s, num_samples)
        snr_db = float(self.snr.estimate(audio, self.rate, a.speech.crop(c.start_s, c.end_s)))
        ev = dataclasses.replace(ev, snr_db=snr_db, snr_threshold_db=cfg.snr.threshold_db)
        if cfg.snr.music_threshold is not None:
            music = music_detector(cfg.snr.music_model)
            ev = dataclasses.replace(
                ev,
                music_score=music.score(audio, self.rate),
                music_threshold=cfg.snr.music_threshold,
            )
        reason = decide(ev, cfg.segments)
        if reason is not None:
            return WindowOutcome(c, reason, ev, track_id)
        return Survivor(index, c, ev, track_id, audio, num_frames)

    def visual_span(self, span: list[Survivor]) -> list[WindowOutcome]:
        """The 25 fps stage of a span of survivors, from one cropped, streamed decode."""
        cfg, a = self.cfg, self.a
        fps, width = cfg.decode.clip_fps, cfg.segments.clip_width
        track = next(t for t in a.tracks if t.track_id == span[0].track_id)
        start_s = span[0].candidate.start_s
        total = round((span[-1].candidate.end_s - start_s) * fps)
        region = face_region(
            interpolate_track(track, start_s, total, fps).boxes, a.info, width, REGION_MARGIN
        )
        out_w, out_h = video_output_size(a.info, width, region)
        scale = (region.width if region is not None else a.info.width) / out_w
        ox, oy = (region.x, region.y) if region is not None else (0, 0)
        chunks = iter_video_frames(
            a.path,
            fps,
            width,
            start_s=start_s,
            duration_s=total / fps,
            chunk_frames=cfg.decode.chunk_frames,
            info=a.info,
            stall_timeout_s=cfg.decode.stall_timeout_s,
            crop=region,
            threads=cfg.decode.ffmpeg_threads,
        )
        starts = [round((s.candidate.start_s - start_s) * fps) for s in span]
        counts = [s.num_frames for s in span]
        frames_of = window_frames(chunks, starts, counts, (out_h, out_w))
        lag = cfg.speaker.context_windows
        measured: list[_Measured] = []
        outcomes: list[WindowOutcome] = []
        try:
            for s, frames in zip(span, frames_of, strict=True):
                measured.append(self._measure(s, track, frames, scale, (ox, oy)))
                if len(measured) > lag:  # every neighbour of window len - 1 - lag is measured
                    outcomes.append(self._finish(measured, len(measured) - 1 - lag))
        finally:
            chunks.close()  # kills ffmpeg when the span ends before its output does
        while len(outcomes) < len(measured):
            outcomes.append(self._finish(measured, len(outcomes)))
        return outcomes

    def _measure(
        self,
        s: Survivor,
        track: TrackEstimate,
        frames: np.ndarray,
        scale: float,
        origin: tuple[int, int],
    ) -> _Measured:
        """Face quality and the active speaker on one window's frames; crops when it may be kept."""
        cfg, c = self.cfg, s.candidate
        fps = cfg.decode.clip_fps
        face = interpolate_track(track, c.start_s, s.num_frames, fps)
        local = shifted(face, -origin[0], -origin[1])  # in the decoded region's pixels x scale
        quality = face_quality(frames, local, cfg.quality, scale)
        usable, usable_local = apply_quality(face, quality), apply_quality(local, quality)
        ev = dataclasses.replace(
            s.evidence,
            missing_ratio=float(1.0 - face.present.mean()),
            dropped_ratio=float(1.0 - usable.present.mean()),
        )
        if decide(ev, cfg.segments) is not None:
            return _Measured(s, ev, face, usable, None, None)
        asd = self.active_speaker(s, frames, local, scale) if cfg.speaker.enabled else None
        if asd is not None:
            ev = dataclasses.replace(
                ev,
                speaking_score=asd.speaking_score,
                speaking_threshold=cfg.speaker.min_speaking_score,
            )
        crops = None
        if decide(ev, cfg.segments) is None:
            crops = extract_crops(frames, usable_local, scale, cfg.export.crop_size)
        return _Measured(s, ev, face, usable, asd, crops)

    def _finish(self, measured: list[_Measured], i: int) -> WindowOutcome:
        """Window ``i`` of a span: the sync confidence pooled with its measured neighbours (the same
        track, consecutive), the decision, and the kept clip."""
        cfg, m = self.cfg, measured[i]
        c, ev, asd = m.survivor.candidate, m.evidence, m.asd
        if asd is not None:
            lo = max(0, i - cfg.speaker.context_windows)
            near = [x for x in measured[lo : i + cfg.speaker.context_windows + 1] if x.asd]
            confidence, offset_s = pooled_sync([x.asd for x in near], cfg.speaker)[
                next(k for k, x in enumerate(near) if x is m)
            ]
            ev = dataclasses.replace(
                ev,
                sync_score=confidence,
                sync_threshold=cfg.speaker.min_sync_confidence,
                sync_offset_s=offset_s,
            )
        reason = decide(ev, cfg.segments)
        if reason is not None or m.crops is None:
            return WindowOutcome(
                c, reason or RejectReason.LOW_FACE_QUALITY, ev, m.survivor.track_id
            )
        emb = None
        if cfg.faces.embed and cfg.export.store_embeddings:
            emb = embed_track(
                self.detector, m.crops, m.usable.present, cfg.faces.embed_every_frames
            )
        box = m.face.boxes[0]
        info = self.a.info
        kept = KeptClip(
            start_s=c.start_s,
            end_s=c.end_s,
            audio=m.survivor.audio,
            sample_rate_hz=self.rate,
            track=m.usable,
            crops=m.crops,
            embeddings=emb,
            snr_db=ev.snr_db,
            sync_score=ev.sync_score,
            face_x=float(np.clip((box[0] + box[2]) / 2 / info.width, 0, 1)),
            face_y=float(np.clip((box[1] + box[3]) / 2 / info.height, 0, 1)),
            speaking_score=ev.speaking_score,
            speaking_scores=None if asd is None else asd.frame_scores,
            lip_features=None if asd is None else asd.lip_features,
            voice_embedding=self._voice(m.survivor.audio),
        )
        m.crops = None  # the clip holds them now; the span's list need not
        return WindowOutcome(c, None, ev, m.survivor.track_id, kept)

    def _voice(self, audio: np.ndarray) -> np.ndarray | None:
        """The kept clip's speaker embedding (``curation.voice``), when the export stores them."""
        if not self.cfg.export.store_voice_embeddings:
            return None
        from curation.voice import load_voice_encoder

        return load_voice_encoder().embed(audio, self.rate)

    def run(self, candidates: list[Candidate]) -> list[WindowOutcome]:
        """Every candidate's outcome, in the candidates' order."""
        first = [self.cheap(i, c) for i, c in enumerate(candidates)]
        outcomes: dict[int, WindowOutcome] = {
            i: o for i, o in enumerate(first) if isinstance(o, WindowOutcome)
        }
        survivors = [o for o in first if isinstance(o, Survivor)]
        for span in group_spans(survivors):
            for s, outcome in zip(span, self.visual_span(span), strict=True):
                outcomes[s.index] = outcome
        return [outcomes[i] for i in range(len(candidates))]


def _peek_scale(chunks: Iterator[VideoChunk], width: int) -> tuple[Iterator[VideoChunk], float]:
    """Source pixels per decoded pixel, from the first chunk (1.0 when there is none)."""
    first = next(chunks, None)
    if first is None:
        return iter(()), 1.0
    return itertools.chain([first], chunks), width / first.frames.shape[2]


def analyse(path: str, cfg: CurateConfig, detector: FaceDetector) -> Analysis:
    """Probe, decode audio, speech activity, face detection and tracking of one file."""
    info = probe_media(path, timeout_s=cfg.decode.probe_timeout_s)
    check_media(info, cfg.decode)
    if not info.has_audio:
        raise MediaError(SourceError.NO_AUDIO, "no audio stream")
    if not info.has_video:
        raise MediaError(SourceError.NO_VIDEO, "no video stream")
    audio = decode_audio(
        path,
        sample_rate_hz=cfg.decode.sample_rate_hz,
        channel=cfg.decode.channel,
        info=info,
        timeout_s=cfg.decode.audio_timeout_s,
        threads=cfg.decode.ffmpeg_threads,
    )
    speech = detect_speech(audio, cfg.decode.sample_rate_hz, cfg.vad)
    chunks = iter_video_frames(
        path,
        cfg.decode.detect_fps,
        cfg.decode.detect_width,
        chunk_frames=cfg.decode.chunk_frames,
        info=info,
        stall_timeout_s=cfg.decode.stall_timeout_s,
        threads=cfg.decode.ffmpeg_threads,
    )
    chunks, scale = _peek_scale(chunks, info.width)
    detections = detect_faces(chunks, detector, cfg.faces, scale)
    tracks = track_faces(detections, cfg.tracking)
    return Analysis(path, info, audio, speech, detections, tracks)


def _shift(kept: KeptClip, offset_s: float) -> KeptClip:
    return dataclasses.replace(
        kept, start_s=round(kept.start_s + offset_s, 6), end_s=round(kept.end_s + offset_s, 6)
    )


def evaluate_windows(
    source: Source, a: Analysis, cfg: CurateConfig, detector: FaceDetector, offset_s: float
) -> tuple[list[SegmentRecord], list[KeptClip]]:
    """Candidate windows of an analysed source -> segments rows and kept clips (source times)."""
    start_s, end_s = 0.0, len(a.audio) / cfg.decode.sample_rate_hz
    if math.isfinite(a.info.duration_s):
        end_s = min(end_s, a.info.duration_s)
    hint_track: int | None = None
    if source.has_hint:
        start_s = max(start_s, float(source.hint_start_s) - offset_s)  # type: ignore[arg-type]
        end_s = min(end_s, float(source.hint_end_s) - offset_s)  # type: ignore[arg-type]
        hint_track = match_hint(
            a.tracks,
            start_s,
            float(source.hint_face_x) * a.info.width,  # type: ignore[arg-type]
            float(source.hint_face_y) * a.info.height,  # type: ignore[arg-type]
            cfg.segments,
        )
    cands = candidate_windows(
        start_s, end_s, a.speech, a.tracks, cfg.segments, hint_track, grid_origin_s=-offset_s
    )
    checker = WindowChecker(a, cfg, detector, make_estimator(cfg.snr), hint_track, source.has_hint)
    segments: list[SegmentRecord] = []
    kept: list[KeptClip] = []
    for out in checker.run(cands):
        c, ev = out.candidate, out.evidence
        s, e = round(c.start_s + offset_s, 6), round(c.end_s + offset_s, 6)
        segments.append(
            SegmentRecord(
                segment_id=window_id(source.source_id, s, e),
                source_id=source.source_id,
                start_s=s,
                end_s=e,
                kept=out.reason is None,
                reason=out.reason,
                snr_db=ev.snr_db,
                music_score=ev.music_score,
                track_id=out.track_id,
                num_faces=a.detections.mean_faces(c.start_s, c.end_s),
                face_missing_ratio=ev.dropped_ratio,
                speech_ratio=ev.speech_ratio,
                speaking_score=ev.speaking_score,
                sync_score=ev.sync_score,
                sync_offset_s=ev.sync_offset_s,
            )
        )
        if out.clip is not None:
            kept.append(_shift(out.clip, offset_s))
    return segments, kept
