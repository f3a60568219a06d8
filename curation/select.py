"""Segments: candidate windows from speech activity and face tracks, and the keep / reject decision.

Contract (pure functions, no I/O):

- :func:`candidate_windows` cuts a source's timeline into windows. The timeline is sampled on the 25 fps
  frame grid (40 ms); each instant gets a state ``(speech?, number of visible face tracks, which track)``.
  Speech pauses shorter than ``max_pause_s`` are bridged; state runs shorter than ``min_run_s`` are merged
  into the run before them; each run loses ``edge_margin_s`` at every side where the state changes (so a
  window never straddles a change: boundaries are only known to a detection period), and what is left
  of it must still be ``min_run_s`` long (slivers between two changes are not candidates). Each run is
  cut into equal windows of about ``target_duration_s`` (5 s, a typical AVSpeech clip), at least
  ``min_duration_s`` and at most ``max_duration_s`` long, starting and ending on the 40 ms grid.
  Every run gives at least one candidate: windows that cannot be kept still become ``segments`` rows
  with their reason.
- :func:`decide` applies the checks to one window's :class:`WindowEvidence` in this documented order
  (cheap measures first, so the expensive 25 fps pass only runs on windows that survive them); the first
  failing check is the reason; a measure that is ``None`` (not measured yet) is skipped:

  1. ``no_face``: no face track visible in at least ``min_track_presence`` of the detection frames;
  2. ``multiple_faces``: two or more tracks visible that much (ignored with an AVSpeech face hint:
     the hint says which face speaks);
  3. ``face_hint_mismatch``: an AVSpeech face hint matches no track;
  4. ``no_speech``: speech in less than ``min_speech_ratio`` of the window;
  5. ``too_short``: shorter than ``min_duration_s`` (3 s);
  6. ``low_snr``: speech SNR under the SNR stage's threshold (so a noisy segment is ``low_snr`` even
     if noise also spoils the sync measure);
  7. ``face_missing_frames``: more than ``max_missing_ratio`` (15 %) of the 25 fps frames without a
     face (tracking gaps);
  8. ``low_face_quality``: more than ``max_missing_ratio`` missing once frames with tiny, blurred,
     dark or extreme-pose faces are dropped too;
  9. ``not_speaking``: the active-speaker model says the visible face is not the one speaking while
     speech is heard (a listener, a still photo, slides with a voice-over): mean speaking score over
     the window's speech frames under ``speaker.min_speaking_score``;
  10. ``not_in_sync``: the face's speaking score does not peak at the sound's own alignment (dubbed,
     or sound shifted): sync confidence under ``speaker.min_sync_confidence``
     (``curation.speaker`` explains both measures).

- :func:`match_hint` matches an AVSpeech face hint (normalised centre at the hint start) to a track:
  the track whose box at that time contains the point, nearest its centre in units of box width.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from avforge.core.config import check_order, check_range
from curation.vad import SpeechActivity
from manifests.schema import RejectReason

FRAME_S = 0.04
"""The 25 fps frame grid: window boundaries are multiples of it."""


class TrackLike(Protocol):
    """A face track at the detection rate (``curation.tracking.TrackEstimate`` satisfies it)."""

    track_id: int
    times_s: np.ndarray
    boxes: np.ndarray


@dataclass(frozen=True)
class SegmentConfig:
    """Candidate windows and the keep / reject thresholds (the ``segments`` config section)."""

    min_duration_s: float = 3.0
    """Shortest clip (the paper: 3 s)."""
    max_duration_s: float = 10.0
    """Longest clip (the paper: 10 s)."""
    target_duration_s: float = 5.0
    """Runs are split into equal windows of about this length (never under ``min_duration_s``, never
    over ``max_duration_s``): shorter windows keep a change inside a run that no state sees (same
    face, same speech, but noise or a dubbed voice starts) from spoiling a whole 10 s clip."""
    max_pause_s: float = 1.5
    """Speech pauses up to this long count as speech (sentences keep together). Chosen on real
    speech: in 251 LibriSpeech utterances (12.5 s mean) the VAD's pauses between speech have a median
    of 0.51 s, a 90th percentile of 1.26 s and a 95th of 1.86 s; bridging up to 1.5 s leaves 0.5
    cuts per minute of talk (0.8 s left 1.8, splintering sentences into 1-2 s pieces)."""
    min_run_s: float = 0.4
    """State runs shorter than this are merged into the run before them (detector flicker)."""
    edge_margin_s: float = 0.2
    """Trimmed from a window side where the state changes (one detection period at 5 fps)."""
    presence_hold_s: float = 0.3
    """A track counts as visible this long around each of its detections."""
    min_track_presence: float = 0.5
    """A track is in a window when it has a box in at least this fraction of its detection frames."""
    min_speech_ratio: float = 0.6
    """Minimum fraction of the window with speech."""
    max_missing_ratio: float = 0.15
    """The paper's rule: at most 15 % of face frames missing (after quality drops)."""
    hint_max_distance: float = 0.75
    """Largest hint-to-box-centre distance, in units of the box width, for a hint to match a track."""
    clip_width: int = 480
    """Frame width (px) of the 25 fps decode of surviving windows (quality, sync, crops)."""

    def __post_init__(self) -> None:
        check_range(self, "min_duration_s", 0.04)
        check_range(self, "max_duration_s", 0.04)
        check_order(self, "min_duration_s", "max_duration_s")
        check_order(self, "min_duration_s", "target_duration_s")
        check_order(self, "target_duration_s", "max_duration_s")
        check_range(self, "max_pause_s", 0.0, 10.0)
        check_range(self, "min_run_s", 0.0, 10.0)
        check_range(self, "edge_margin_s", 0.0, 2.0)
        check_range(self, "presence_hold_s", 0.0, 5.0)
        check_range(self, "min_track_presence", 0.0, 1.0)
        check_range(self, "min_speech_ratio", 0.0, 1.0)
        check_range(self, "max_missing_ratio", 0.0, 1.0)
        check_range(self, "hint_max_distance", 0.0, low_open=True)
        check_range(self, "clip_width", 64, 4096)


@dataclass(frozen=True)
class Candidate:
    """A candidate window: ``[start_s, end_s)`` and the state it was cut from."""

    start_s: float
    end_s: float
    track_id: int | None
    """The one visible track (None when zero or several)."""
    num_tracks: int
    """Visible tracks in the run (2 means two or more)."""
    speech: bool

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class WindowEvidence:
    """What is known about one window; ``None`` means not measured (the check is skipped)."""

    duration_s: float
    tracks_present: int | None = None
    """Tracks visible in at least ``min_track_presence`` of the window's detection frames."""
    hint_matched: bool | None = None
    """None without a hint; else whether the hint matched the window's track."""
    speech_ratio: float | None = None
    snr_db: float | None = None
    snr_threshold_db: float | None = None
    music_score: float | None = None
    """YAMNet's mean ``Music`` probability over the window (curation.music)."""
    music_threshold: float | None = None
    missing_ratio: float | None = None
    """Fraction of 25 fps frames without a tracked face (before quality drops)."""
    dropped_ratio: float | None = None
    """Fraction of 25 fps frames without a usable face (missing or dropped for quality)."""
    speaking_score: float | None = None
    speaking_threshold: float | None = None
    sync_score: float | None = None
    """Sync confidence (``curation.speaker.SpeakerScores.sync_confidence``)."""
    sync_threshold: float | None = None
    sync_offset_s: float | None = None
    """Audio delay (s) at the best speaking score; recorded, not a check."""


def decide(ev: WindowEvidence, cfg: SegmentConfig) -> RejectReason | None:
    """The first failing check in the documented order (module docstring), or None to keep."""
    if ev.tracks_present is not None:
        if ev.tracks_present == 0:
            return RejectReason.NO_FACE
        if ev.tracks_present > 1 and ev.hint_matched is None:
            return RejectReason.MULTIPLE_FACES
    if ev.hint_matched is False:
        return RejectReason.FACE_HINT_MISMATCH
    if ev.speech_ratio is not None and ev.speech_ratio < cfg.min_speech_ratio:
        return RejectReason.NO_SPEECH
    if ev.duration_s < cfg.min_duration_s - 1e-6:
        return RejectReason.TOO_SHORT
    snr_known = ev.snr_db is not None and ev.snr_threshold_db is not None
    if snr_known and not ev.snr_db >= ev.snr_threshold_db:  # type: ignore[operator]  # NaN fails
        return RejectReason.LOW_SNR
    music_known = ev.music_score is not None and ev.music_threshold is not None
    if music_known and not ev.music_score < ev.music_threshold:  # type: ignore[operator]
        return RejectReason.LOW_SNR
    if ev.missing_ratio is not None and ev.missing_ratio > cfg.max_missing_ratio:
        return RejectReason.FACE_MISSING_FRAMES
    if ev.dropped_ratio is not None and ev.dropped_ratio > cfg.max_missing_ratio:
        return RejectReason.LOW_FACE_QUALITY
    speak_known = ev.speaking_score is not None and ev.speaking_threshold is not None
    if speak_known and not ev.speaking_score >= ev.speaking_threshold:  # type: ignore[operator]
        return RejectReason.NOT_SPEAKING
    sync_known = ev.sync_score is not None and ev.sync_threshold is not None
    if sync_known and not ev.sync_score >= ev.sync_threshold:  # type: ignore[operator]
        return RejectReason.NOT_IN_SYNC
    return None


# --------------------------------------------------------------------------- timeline


def _grid(start_s: float, end_s: float, origin_s: float = 0.0) -> np.ndarray:
    """Centres of the 40 ms cells (edges at ``origin_s + k * FRAME_S``) covering [start_s, end_s)."""
    i0 = math.ceil((start_s - origin_s) / FRAME_S - 1e-9)
    i1 = math.floor((end_s - origin_s) / FRAME_S + 1e-9)
    return origin_s + (np.arange(i0, max(i0, i1)) + 0.5) * FRAME_S


def _runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index runs of equal consecutive rows of ``labels`` (n,) or (n, k)."""
    n = len(labels)
    if n == 0:
        return []
    flat = labels.reshape(n, -1)
    change = np.any(flat[1:] != flat[:-1], axis=1)
    edges = [0, *(np.flatnonzero(change) + 1).tolist(), n]
    return list(itertools.pairwise(edges))


def close_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """``mask`` with False runs of at most ``max_gap`` samples between True runs set to True."""
    out = mask.copy()
    for a, b in _runs(mask.astype(np.int8)):
        if not mask[a] and a > 0 and b < len(mask) and b - a <= max_gap:
            out[a:b] = True
    return out


def speech_on_grid(speech: SpeechActivity, times_s: np.ndarray, cfg: SegmentConfig) -> np.ndarray:
    """(n,) bool: speech at each grid time, with pauses up to ``max_pause_s`` bridged."""
    frames = np.asarray(speech.speech, dtype=bool)
    if len(frames) == 0:
        return np.zeros(len(times_s), bool)
    pos = np.floor((times_s - speech.start_s) / speech.frame_s).astype(np.int64)
    inside = (pos >= 0) & (pos < len(frames))
    on = frames[np.clip(pos, 0, len(frames) - 1)] & inside
    return close_gaps(on, round(cfg.max_pause_s / FRAME_S))


def tracks_on_grid(tracks: list[TrackLike], times_s: np.ndarray, cfg: SegmentConfig) -> np.ndarray:
    """(n, k) bool: track j visible at grid time i (a detection of it within ``presence_hold_s``)."""
    out = np.zeros((len(times_s), len(tracks)), bool)
    for j, tr in enumerate(tracks):
        t = np.asarray(tr.times_s, dtype=np.float64)
        if len(t) == 0:
            continue
        pos = np.clip(np.searchsorted(t, times_s), 1, max(1, len(t) - 1))
        nearest = np.minimum(
            np.abs(times_s - t[pos - 1]), np.abs(times_s - t[np.minimum(pos, len(t) - 1)])
        )
        out[:, j] = nearest <= cfg.presence_hold_s + 1e-9
    return out


def _merge_short(labels: np.ndarray, min_len: int) -> np.ndarray:
    """Relabel runs shorter than ``min_len`` with the label of the run before (after, for the first)."""
    out = labels.copy()
    for _ in range(3):
        runs = _runs(out)
        if len(runs) <= 1:
            break
        changed = False
        for idx, (a, b) in enumerate(runs):
            if b - a < min_len:
                src = runs[idx - 1][0] if idx > 0 else runs[idx + 1][0]
                out[a:b] = out[src]
                changed = True
        if not changed:
            break
    return out


def _split(
    start_s: float, end_s: float, cfg: SegmentConfig, origin_s: float = 0.0
) -> list[tuple[float, float]]:
    """[start_s, end_s) cut into equal windows of at most ``max_duration_s`` on the 40 ms grid."""
    i0 = math.ceil((start_s - origin_s) / FRAME_S - 1e-6)
    i1 = math.floor((end_s - origin_s) / FRAME_S + 1e-6)
    frames = i1 - i0
    if frames <= 0:
        return []
    n_max = math.ceil(frames / round(cfg.max_duration_s / FRAME_S))
    n_target = math.ceil(frames / round(cfg.target_duration_s / FRAME_S))
    n_min = frames // round(cfg.min_duration_s / FRAME_S)
    n = max(1, n_max, min(n_target, n_min))
    cuts = [i0 + (frames * k) // n for k in range(n + 1)]
    return [
        (round(origin_s + a * FRAME_S, 6), round(origin_s + b * FRAME_S, 6))
        for a, b in itertools.pairwise(cuts)
    ]


def candidate_windows(
    start_s: float,
    end_s: float,
    speech: SpeechActivity,
    tracks: list[TrackLike],
    cfg: SegmentConfig,
    only_track: int | None = None,
    grid_origin_s: float = 0.0,
) -> list[Candidate]:
    """Candidate windows of ``[start_s, end_s)`` (see the module docstring for the rules).

    ``only_track`` (an AVSpeech hint's matched track) makes other tracks invisible.
    ``grid_origin_s``: where the source's t=0 lies on this timeline (``-offset_s`` for a file that
    holds a range of the source from ``offset_s``), so window edges fall on the source's 40 ms
    grid however the range was cut, and a re-fetched range gives the same windows.
    """
    times = _grid(start_s, end_s, grid_origin_s)
    if len(times) == 0:
        return []
    use = [t for t in tracks if only_track is None or t.track_id == only_track]
    visible = tracks_on_grid(use, times, cfg)
    ids = np.array([t.track_id for t in use], dtype=np.int64)
    count = visible.sum(axis=1)
    one = np.where(count == 1, ids[np.argmax(visible, axis=1)] if len(ids) else -1, -1)
    speaking = speech_on_grid(speech, times, cfg)
    labels = np.stack([speaking.astype(np.int64), np.minimum(count, 2), one], axis=1)
    labels = _merge_short(labels, max(1, round(cfg.min_run_s / FRAME_S)))
    out = []
    runs = _runs(labels)
    for idx, (a, b) in enumerate(runs):
        s = times[a] - FRAME_S / 2
        e = times[b - 1] + FRAME_S / 2
        if idx > 0:
            s += cfg.edge_margin_s
        if idx < len(runs) - 1:
            e -= cfg.edge_margin_s
        if e - s < cfg.min_run_s:  # a sliver left between two margins: no real candidate
            continue
        sp, n_tracks, tid = (int(v) for v in labels[a])
        for ws, we in _split(s, e, cfg, grid_origin_s):
            out.append(Candidate(ws, we, tid if tid >= 0 else None, n_tracks, bool(sp)))
    return out


# --------------------------------------------------------------------------- measures


def track_presence(
    track: TrackLike, det_times_s: np.ndarray, start_s: float, end_s: float
) -> float:
    """Fraction of detection frames in ``[start_s, end_s)`` where ``track`` has a box."""
    inside = (det_times_s >= start_s) & (det_times_s < end_s)
    frames = int(np.count_nonzero(inside))
    t = np.asarray(track.times_s)
    mine = int(np.count_nonzero((t >= start_s) & (t < end_s)))
    return mine / frames if frames else 0.0


def tracks_in_window(
    tracks: list[TrackLike],
    det_times_s: np.ndarray,
    start_s: float,
    end_s: float,
    cfg: SegmentConfig,
) -> list[int]:
    """Ids of tracks with a box in at least ``min_track_presence`` of the window's detection frames."""
    return [
        t.track_id
        for t in tracks
        if track_presence(t, det_times_s, start_s, end_s) >= cfg.min_track_presence
    ]


def match_hint(
    tracks: list[TrackLike],
    time_s: float,
    x_px: float,
    y_px: float,
    cfg: SegmentConfig,
    search_s: float = 1.0,
) -> int | None:
    """The track an AVSpeech face hint at ``(x_px, y_px)`` (source pixels) at ``time_s`` points to.

    For each track with a detection within ``search_s`` of ``time_s``, its box is interpolated at the
    nearest covered time; the hint matches the track whose centre is nearest in units of box width,
    if that distance is at most ``hint_max_distance``. None when no track qualifies.
    """
    best: tuple[float, int] | None = None
    for tr in tracks:
        t = np.asarray(tr.times_s, dtype=np.float64)
        if len(t) == 0 or t[0] > time_s + search_s or t[-1] < time_s - search_s:
            continue
        at = float(np.clip(time_s, t[0], t[-1]))
        box = np.array([np.interp(at, t, tr.boxes[:, c]) for c in range(4)])
        width = max(1e-6, float(box[2] - box[0]))
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        dist = math.hypot(x_px - cx, y_px - cy) / width
        if dist <= cfg.hint_max_distance and (best is None or dist < best[0]):
            best = (dist, tr.track_id)
    return None if best is None else best[1]
