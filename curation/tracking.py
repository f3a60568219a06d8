"""Face tracking stage: detections at a low rate -> face tracks -> 25 fps tracks with per-frame quality.

Contract:
- :func:`track_faces`: :class:`curation.faces.FrameDetections` -> tracks (:class:`TrackEstimate`).
  Detections are linked frame to frame by IoU against a constant-velocity prediction of each track's
  box, with a landmark-distance term breaking near ties (two faces crossing); an optimal assignment
  (Hungarian) per frame. A track survives gaps up to ``max_gap_s`` and ends at a shot cut (a frame
  whose colour histogram jumps, a box that no longer overlaps its prediction or jumps in size, or a
  face whose grey thumbnail no longer resembles the track's last one: another person, same place).
  Tracks shorter than ``min_track_s`` are dropped; ids are 0..k-1 by start time, then position.
- :func:`interpolate_track`: one track -> a :class:`manifests.FaceTrack` at ``fps`` (25), boxes and
  landmarks linearly interpolated at ``start_s + i / fps``; ``present`` False across gaps longer than
  ``max_gap_s`` and beyond half a detection period past the track's ends.
- :func:`face_quality`: per-frame quality 0..1 from the frames decoded at the same rate: the face's
  size, sharpness (variance of the Laplacian of the face resized to 64x64), brightness and pose
  (nose offset from the eye midpoint along the eye axis, relative to the eye distance). Quality 0
  means at least one measure is past its limit: :func:`apply_quality` then drops the frame.

All functions are pure and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from avforge.core.config import check_range
from curation.faces import Detection, FrameDetections, box_iou
from manifests.media import FaceTrack


@dataclass(frozen=True)
class TrackConfig:
    """Tracking settings (the ``tracking`` section of the curation config)."""

    iou_threshold: float = 0.3
    """Minimum IoU between a track's predicted box and a detection to link them."""
    landmark_weight: float = 0.5
    """Weight of the landmark distance (in units of the box width, capped at 1) in the link cost."""
    max_gap_s: float = 0.6
    """A track survives this long without a detection; longer gaps end it."""
    min_track_s: float = 1.0
    """Tracks spanning less than this are dropped."""
    cut_threshold: float = 0.35
    """Colour-histogram distance (0..1) between detection frames above which all tracks end
    (different scenes: 0.4..0.75; a pan or a 15 % brightness step: < 0.2)."""
    max_scale_change: float = 1.5
    """Box side ratio between a prediction and a detection above which they are not linked."""
    min_appearance: float = 0.3
    """Face-thumbnail similarity (``Detection.appearance``, -1..1) below which a detection is not
    linked to a track: a cut to another person at the same place. A detection is compared with the
    track's last ``appearance_history`` appearances and the best match counts. Chosen on real talking
    faces (hdtf_*, portrait_*: the same person talking and turning scores 0.43..1 against the best of
    the last 5, while frame to frame it drops to 0.30); different people on real photos score
    0.03..0.61, so this thumbnail only catches clearly different faces: use the insightface backend
    (ArcFace identities) where same-place cuts between look-alikes matter."""
    appearance_history: int = 5
    """How many of a track's last appearances a new detection is compared with (best match)."""

    def __post_init__(self) -> None:
        check_range(self, "iou_threshold", 0.0, 1.0, low_open=True)
        check_range(self, "landmark_weight", 0.0)
        check_range(self, "max_gap_s", 0.0)
        check_range(self, "min_track_s", 0.0)
        check_range(self, "cut_threshold", 0.0, 1.0)
        check_range(self, "max_scale_change", 1.0)
        check_range(self, "min_appearance", -1.0, 1.0)
        check_range(self, "appearance_history", 1, 100)


@dataclass(frozen=True)
class QualityConfig:
    """Per-frame face quality limits; each measure scores 0 at its limit and 1 at twice its distance."""

    min_face_px: float = 32.0
    """Face box width in SOURCE pixels (score 1 from 2x this)."""
    min_sharpness: float = 80.0
    """Laplacian variance of the face at 64x64 grey (sharp faces: 250..1000; Gaussian blur σ=3: <90)."""
    min_brightness: float = 40.0
    """Mean grey level 0..255 of the face (score 1 from 2x this)."""
    max_yaw: float = 0.7
    """Nose offset from the eye midpoint / eye distance (frontal ~0, profile >1; score 1 below half)."""

    def __post_init__(self) -> None:
        check_range(self, "min_face_px", 0.0)
        check_range(self, "min_sharpness", 0.0)
        check_range(self, "min_brightness", 0.0, 255.0)
        check_range(self, "max_yaw", 0.0, low_open=True)


@dataclass(frozen=True, eq=False)
class TrackEstimate:
    """One face track at the detection rate, in SOURCE pixels.

    ``times_s`` (m,) float64, ``boxes`` (m, 4) float32, ``scores`` (m,) float32, ``landmarks``
    (m, 5, 2) float32 or None; ``detection_times_s`` (all detection frames of the source, shared).
    """

    track_id: int
    times_s: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None
    detection_times_s: np.ndarray = field(repr=False)
    max_gap_s: float = 0.6

    @property
    def start_s(self) -> float:
        return float(self.times_s[0])

    @property
    def end_s(self) -> float:
        return float(self.times_s[-1])

    def presence(self, start_s: float, end_s: float) -> float:
        """Fraction of detection frames in ``[start_s, end_s)`` where this track has a box (0..1)."""
        frames = np.count_nonzero(
            (self.detection_times_s >= start_s) & (self.detection_times_s < end_s)
        )
        mine = np.count_nonzero((self.times_s >= start_s) & (self.times_s < end_s))
        return mine / frames if frames else 0.0


# --------------------------------------------------------------------------- tracking


@dataclass(eq=False)
class _OpenTrack:
    times: list[float]
    dets: list[Detection]

    def predict(self, time_s: float) -> np.ndarray:
        """Constant-velocity box prediction from the last two detections."""
        box = self.dets[-1].box.astype(np.float64)
        if len(self.dets) >= 2 and self.times[-1] > self.times[-2]:
            velocity = (box - self.dets[-2].box) / (self.times[-1] - self.times[-2])
            box = box + velocity * (time_s - self.times[-1])
        return box


def _sides(boxes: np.ndarray) -> np.ndarray:
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.sqrt(np.maximum(area, 1e-6))


def _link_costs(
    tracks: list[_OpenTrack], faces: list[Detection], time_s: float, cfg: TrackConfig
) -> np.ndarray:
    """(tracks, faces) cost of linking each detection to each track (inf: not the same face)."""
    pred = np.stack([t.predict(time_s) for t in tracks])
    boxes = np.stack([d.box for d in faces]).astype(np.float64)
    iou = box_iou(pred, boxes).astype(np.float64)
    ratio = _sides(pred)[:, None] / _sides(boxes)[None, :]
    cost = 1.0 - iou
    cost[(iou < cfg.iou_threshold) | (np.maximum(ratio, 1 / ratio) > cfg.max_scale_change)] = np.inf
    for r, track in enumerate(tracks):
        recent = [d.appearance for d in track.dets[-cfg.appearance_history :]]
        looks = [a for a in recent if a is not None]
        if not looks:
            continue
        for c, det in enumerate(faces):
            seen = det.appearance
            if (
                seen is not None
                and np.isfinite(cost[r, c])
                and max(float(a @ seen) for a in looks) < cfg.min_appearance
            ):
                cost[r, c] = np.inf
    if cfg.landmark_weight > 0:
        for r, track in enumerate(tracks):
            last = track.dets[-1]
            if last.landmarks is None:
                continue
            shift = (pred[r, :2] + pred[r, 2:]) / 2 - (last.box[:2] + last.box[2:]) / 2
            moved = last.landmarks + shift
            width = max(float(pred[r, 2] - pred[r, 0]), 1.0)
            for c, det in enumerate(faces):
                if det.landmarks is not None and np.isfinite(cost[r, c]):
                    dist = float(np.linalg.norm(moved - det.landmarks, axis=1).mean()) / width
                    cost[r, c] += cfg.landmark_weight * min(dist, 1.0)
    return cost


def _finish(open_track: _OpenTrack, det_times: np.ndarray, max_gap_s: float) -> TrackEstimate:
    dets = open_track.dets
    has_lm = all(d.landmarks is not None for d in dets)
    return TrackEstimate(
        track_id=-1,
        times_s=np.asarray(open_track.times, np.float64),
        boxes=np.stack([d.box for d in dets]).astype(np.float32),
        scores=np.asarray([d.score for d in dets], np.float32),
        landmarks=np.stack([d.landmarks for d in dets]).astype(np.float32) if has_lm else None,  # type: ignore[misc]
        detection_times_s=det_times,
        max_gap_s=max_gap_s,
    )


def track_faces(dets: FrameDetections, cfg: TrackConfig) -> list[TrackEstimate]:
    """Link detections into tracks (see the module docstring) -> tracks with ids 0..k-1."""
    active: list[_OpenTrack] = []
    done: list[_OpenTrack] = []
    for i, time_s in enumerate(dets.times_s.tolist()):
        if dets.change[i] > cfg.cut_threshold:
            done.extend(active)
            active = []
        expired = [time_s - t.times[-1] > cfg.max_gap_s for t in active]
        done.extend(t for t, gone in zip(active, expired, strict=True) if gone)
        active = [t for t, gone in zip(active, expired, strict=True) if not gone]
        faces = dets.detections[i]
        matched: set[int] = set()
        if active and faces:
            cost = _link_costs(active, faces, time_s, cfg)
            finite = np.where(np.isfinite(cost), cost, 1e6)
            for r, c in zip(*linear_sum_assignment(finite), strict=True):
                if np.isfinite(cost[r, c]):
                    active[r].times.append(time_s)
                    active[r].dets.append(faces[c])
                    matched.add(int(c))
        active.extend(_OpenTrack([time_s], [d]) for j, d in enumerate(faces) if j not in matched)
    done.extend(active)
    kept = [
        _finish(t, dets.times_s, cfg.max_gap_s)
        for t in done
        if t.times[-1] - t.times[0] >= cfg.min_track_s
    ]
    kept.sort(key=lambda t: (t.start_s, float(t.boxes[0, 0] + t.boxes[0, 2])))
    return [replace(t, track_id=k) for k, t in enumerate(kept)]


# --------------------------------------------------------------------------- 25 fps


def interpolate_track(
    track: TrackEstimate,
    start_s: float,
    num_frames: int,
    fps: float = 25.0,
    max_gap_s: float | None = None,
) -> FaceTrack:
    """``track`` resampled at ``start_s + i / fps`` for i < ``num_frames`` -> :class:`FaceTrack`.

    Boxes, landmarks and detection scores are linearly interpolated (held beyond the ends). A frame
    is present when it lies in a gap of at most ``max_gap_s`` (default: the track's) between two
    detections, or within half a detection period of one. ``quality`` is the interpolated detector
    score where present, else 0 (:func:`face_quality` measures the real per-frame quality).
    """
    gap_s = track.max_gap_s if max_gap_s is None else max_gap_s
    t = start_s + np.arange(num_frames, dtype=np.float64) / fps
    times = track.times_s
    boxes = np.stack([np.interp(t, times, track.boxes[:, k]) for k in range(4)], axis=1)
    landmarks = None
    if track.landmarks is not None:
        flat = track.landmarks.reshape(len(times), 10)
        lm = np.stack([np.interp(t, times, flat[:, k]) for k in range(10)], axis=1)
        landmarks = lm.reshape(num_frames, 5, 2).astype(np.float32)
    steps = np.diff(track.detection_times_s)
    period = float(np.median(steps)) if steps.size else 1.0 / fps
    j = np.searchsorted(times, t, side="right")
    prev = times[np.clip(j - 1, 0, len(times) - 1)]
    nxt = times[np.clip(j, 0, len(times) - 1)]
    inside = (j > 0) & (j < len(times))
    nearest = np.minimum(np.abs(t - prev), np.abs(nxt - t))
    eps = 1e-6
    present = (inside & (nxt - prev <= gap_s + eps)) | (nearest <= period / 2 + eps)
    scores = np.interp(t, times, track.scores).astype(np.float32)
    quality = np.where(present, np.clip(scores, 0.0, 1.0), 0.0).astype(np.float32)
    return FaceTrack(fps, boxes.astype(np.float32), quality, present, landmarks)


# --------------------------------------------------------------------------- quality


def _ramp(value: float, bad: float, good: float) -> float:
    if good <= bad:
        return 1.0 if value >= bad else 0.0
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


def face_measures(
    frame_rgb: np.ndarray, box: np.ndarray, landmarks: np.ndarray | None, scale: float = 1.0
) -> tuple[float, float, float, float]:
    """(width_px, sharpness, brightness, yaw) of one face; box/landmarks in SOURCE pixels.

    ``width_px`` in source pixels; sharpness is the Laplacian variance of the face at 64x64 grey;
    brightness its mean grey level (0..255); yaw the nose offset along the eye axis / eye distance
    (0 without landmarks). An empty crop (box outside the frame) measures 0 sharpness and brightness.
    """
    h, w = frame_rgb.shape[:2]
    x0, y0, x1, y1 = (float(v) / scale for v in box)
    xa, ya = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    xb, yb = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
    width_px = (x1 - x0) * scale
    if xb - xa < 2 or yb - ya < 2:
        return width_px, 0.0, 0.0, 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(frame_rgb[ya:yb, xa:xb]), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
    sharpness = float(cv2.Laplacian(small, cv2.CV_32F).var())
    brightness = float(small.mean())
    yaw = 0.0
    if landmarks is not None:
        eye_axis = landmarks[1] - landmarks[0]
        eye_dist = float(np.linalg.norm(eye_axis))
        if eye_dist > 1e-3:
            mid = (landmarks[0] + landmarks[1]) / 2
            yaw = abs(float(np.dot(landmarks[2] - mid, eye_axis))) / eye_dist**2
        else:
            yaw = np.inf
    return width_px, sharpness, brightness, yaw


def face_quality(
    frames: np.ndarray, track: FaceTrack, cfg: QualityConfig, scale: float = 1.0
) -> np.ndarray:
    """Per-frame quality (n,) float32 in 0..1 of ``track`` in ``frames`` (decoded at the track's rate).

    Quality is the minimum of four scores (size, sharpness, brightness, pose), each 0 at its limit in
    ``cfg`` and 1 at twice the margin; 0 where the face is not present or frame i is missing.
    ``scale`` is source pixels per decoded pixel.
    """
    out = np.zeros(track.num_frames, np.float32)
    for i in range(min(len(frames), track.num_frames)):
        if not track.present[i]:
            continue
        lm = None if track.landmarks is None else track.landmarks[i]
        width_px, sharp, bright, yaw = face_measures(frames[i], track.boxes[i], lm, scale)
        out[i] = min(
            _ramp(width_px, cfg.min_face_px, 2 * cfg.min_face_px),
            _ramp(sharp, cfg.min_sharpness, 2 * cfg.min_sharpness),
            _ramp(bright, cfg.min_brightness, 2 * cfg.min_brightness),
            _ramp(-yaw, -cfg.max_yaw, -cfg.max_yaw / 2),
        )
    return out


def apply_quality(track: FaceTrack, quality: np.ndarray) -> FaceTrack:
    """``track`` with ``quality`` stored and frames of quality 0 marked not present (dropped)."""
    q = np.asarray(quality, np.float32)
    return replace(track, quality=q, present=track.present & (q > 0))
