"""Active-speaker check: does the visible mouth move with the audible speech?

Contract:
- :func:`mouth_motion`: frames of a candidate segment at the track's rate (25 fps) and its
  :class:`manifests.FaceTrack` -> (n,) mouth activity: in a 32x16 grey patch around the mouth
  (centred on the mouth-corner landmarks, else the lower middle of the box, half the face wide),
  the mean of the ring minus the mean of the centre, which grows as the mouth opens into a dark
  cavity and cancels lighting changes; z-scored over the segment;
- :func:`speech_envelope`: the segment's audio -> (n,) log RMS energy per video frame (dB, floored
  50 dB below the segment's peak), which rises with every syllable;
- :func:`sync_score`: Pearson correlation of the two, maximised over audio offsets within
  ``max_offset_s`` -> :class:`SyncResult` (``score`` -1..1 and ``offset_s``: positive when the audio
  lags the video). A segment whose score is under ``threshold`` is rejected as ``not_in_sync``
  (dubbed, voice-over, or a silent face next to an off-screen speaker).

Why opening and not frame differences: on rendered talking faces with 1-2 px head jitter, the
frame-difference motion against |Δ log energy| separated same-utterance from other-utterance audio
poorly (same 0.12..0.39 vs other up to 0.48); mouth opening against log energy separates them
clearly (docs/curation_faces.md has the numbers).

Audio sample 0 and video frame 0 are the same instant (the segment start). Pure functions, no state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from avforge.config import check_range
from manifests.media import FaceTrack

PATCH_W, PATCH_H = 32, 16
INNER_ROWS, INNER_COLS = slice(4, 12), slice(8, 24)
ENERGY_FLOOR_DB = 50.0


@dataclass(frozen=True)
class SyncConfig:
    """Audio-visual sync check settings (the ``sync`` section of the curation config)."""

    enabled: bool = True
    max_offset_s: float = 0.3
    """Offsets searched: whole video frames within -max_offset_s..+max_offset_s (±7 at 25 fps)."""
    threshold: float = 0.65
    """Segments scoring below this are ``not_in_sync``. Chosen on the generator's talks (3 s windows:
    own speech 0.78..0.92, dubbed <= 0.59, silent face <= 0.25) and our renders (own speech
    0.87..0.91, other utterances <= 0.58); see docs/curation_faces.md."""
    smooth_frames: int = 1
    """Moving-average length (frames) applied to both signals before correlating (1: none)."""

    def __post_init__(self) -> None:
        check_range(self, "max_offset_s", 0.0, 2.0)
        check_range(self, "threshold", -1.0, 1.0)
        check_range(self, "smooth_frames", 1, 25)


@dataclass(frozen=True)
class SyncResult:
    """``score``: best Pearson correlation (-1..1); ``offset_s``: audio delay at the best score;
    ``correlations``: (2k+1,) float32 correlation per offset from -k to +k frames."""

    score: float
    offset_s: float
    correlations: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)


def _mouth_patch(frame: np.ndarray, box: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
    """32x16 float32 grey patch centred on the mouth, sized by the face box."""
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = max(x1 - x0, 2.0), max(y1 - y0, 2.0)
    if landmarks is not None and np.all(np.isfinite(landmarks)):
        cx, cy = (landmarks[3] + landmarks[4]) / 2
    else:
        cx, cy = (x0 + x1) / 2, y0 + 0.78 * bh
    # A mouth-centred window half the face wide and a third of it high, area-resampled.
    h, w = frame.shape[:2]
    xa, xb = int(max(0, cx - 0.25 * bw)), int(min(w, np.ceil(cx + 0.25 * bw)))
    ya, yb = int(max(0, cy - 0.165 * bh)), int(min(h, np.ceil(cy + 0.165 * bh)))
    if xb - xa < 2 or yb - ya < 2:
        return np.zeros((PATCH_H, PATCH_W), np.float32)
    region = np.ascontiguousarray(frame[ya:yb, xa:xb])
    grey = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY) if region.ndim == 3 else region
    patch = cv2.resize(grey, (PATCH_W, PATCH_H), interpolation=cv2.INTER_AREA)
    return patch.astype(np.float32)


def mouth_opening(patch: np.ndarray) -> float:
    """How open a mouth looks in one patch: mean grey of the ring around the mouth centre minus that
    of the centre (an open mouth is a dark cavity between lips; lighting changes cancel)."""
    inner = patch[INNER_ROWS, INNER_COLS]
    ring_mean = (float(patch.sum()) - float(inner.sum())) / (patch.size - inner.size)
    return ring_mean - float(inner.mean())


def mouth_motion(frames: np.ndarray, track: FaceTrack, scale: float = 1.0) -> np.ndarray:
    """(n,) float32 mouth activity per frame, zero mean and unit variance (see the module docstring).

    ``frames`` uint8 (n, h, w, 3) RGB at the track's rate; ``scale`` source pixels per decoded
    pixel. Frames where the face is absent take the mean (0); all zeros when the mouth never changes.
    """
    n = min(len(frames), track.num_frames)
    inv = 1.0 / scale
    opening = np.zeros(n, np.float64)
    present = track.present[:n]
    for i in np.flatnonzero(present):
        lm = None if track.landmarks is None else track.landmarks[i] * inv
        opening[i] = mouth_opening(_mouth_patch(frames[i], track.boxes[i] * inv, lm))
    if not present.any():
        return np.zeros(n, np.float32)
    values = opening[present]
    std = float(values.std())
    out = np.zeros(n, np.float32)
    if std > 1e-6:
        out[present] = (values - values.mean()) / std
    return out


def speech_envelope(
    audio: np.ndarray, sample_rate_hz: int, fps: float, num_frames: int
) -> np.ndarray:
    """(num_frames,) float32 log RMS energy (dB) per video frame, floored 50 dB below its peak.

    Video frame i covers samples ``[i, i + 1) * sample_rate_hz / fps``; missing audio is silence.
    """
    hop = sample_rate_hz / fps
    edges = np.round(np.arange(num_frames + 1) * hop).astype(np.int64)
    if num_frames == 0:
        return np.zeros(0, np.float32)
    x = np.zeros(int(edges[-1]), np.float64)
    a = np.asarray(audio, np.float64)[: x.size]
    x[: a.size] = a
    energy = np.add.reduceat(x**2, edges[:-1]) / np.maximum(np.diff(edges), 1)
    log_e = 10.0 * np.log10(np.maximum(energy, 1e-12))
    return np.maximum(log_e, log_e.max() - ENERGY_FLOOR_DB).astype(np.float32)


def _smooth(x: np.ndarray, frames: int) -> np.ndarray:
    if frames <= 1:
        return x
    kernel = np.ones(frames) / frames
    return np.convolve(x, kernel, mode="same")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


def sync_score(
    motion: np.ndarray,
    audio: np.ndarray,
    sample_rate_hz: int,
    fps: float,
    cfg: SyncConfig,
) -> SyncResult:
    """Best correlation of ``motion`` (n,) with the speech envelope of ``audio`` over offsets.

    For an offset of k frames, ``motion[i]`` is compared with the audio of frame ``i + k`` (audio
    lagging the video by ``k / fps`` seconds). Returns score 0 at offset 0 when either signal is
    flat (a still face, or silence).
    """
    n = len(motion)
    max_k = int(cfg.max_offset_s * fps + 1e-6)  # whole frames within max_offset_s
    env = _smooth(
        speech_envelope(audio, sample_rate_hz, fps, n).astype(np.float64), cfg.smooth_frames
    )
    mot = _smooth(np.asarray(motion, np.float64), cfg.smooth_frames)
    corr = np.zeros(2 * max_k + 1, np.float32)
    for j, k in enumerate(range(-max_k, max_k + 1)):
        if n - abs(k) < 3:
            continue
        if k >= 0:
            corr[j] = _pearson(mot[: n - k], env[k:])
        else:
            corr[j] = _pearson(mot[-k:], env[: n + k])
    if not np.any(corr):  # a flat signal: no evidence either way, and no offset
        return SyncResult(0.0, 0.0, corr)
    best = int(np.argmax(corr))
    return SyncResult(float(corr[best]), (best - max_k) / fps, corr)
