"""Face crops: aligned 112x112 RGB crops of a face track, the visual stream of a clip.

Contract:
- input: frames decoded at the track's rate (uint8 (n, h, w, 3) RGB), the clip's
  :class:`manifests.FaceTrack` (boxes and landmarks in SOURCE pixels) and ``scale`` (source pixels
  per decoded pixel);
- output: uint8 (n, size, size, 3) crops; frames where the face is not present are all zeros
  (stored as empty JPEGs, which ``MediaReader.face_crops`` returns as zeros).

Alignment: with 5 landmarks, a similarity transform (rotation, uniform scale, translation; least
squares, Umeyama 1991) maps them onto ArcFace's 112x112 template, the crop insightface's recognition
models expect. Without landmarks, the box is mapped to the same face area by its centre and size, so
both kinds of crop frame the face alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from manifests.media import FaceTrack, encode_jpeg

ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
"""Left eye, right eye, nose, left and right mouth corner in a 112x112 ArcFace crop."""

BOX_SIDE_IN_CROP = 0.95
"""Fraction of the crop side that the longer side of a face box covers in a landmark-aligned crop
(CenterFace boxes of the 7 faces in insightface's t1.jpg and skimage's astronaut: 0.89..1.00)."""
BOX_CENTER_Y_IN_CROP = 0.57
"""Vertical position of the box centre in a landmark-aligned crop (0 top, 1 bottom; 0.54..0.60)."""


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform mapping points ``src`` (k, 2) onto ``dst`` (k, 2).

    Returns the (2, 3) float64 matrix ``M`` with ``dst ≈ M @ [x, y, 1]`` (no reflection).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("similarity_matrix: source points coincide")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    c = float((sig * sign).sum() / var_s)
    m = np.zeros((2, 3))
    m[:, :2] = c * rot
    m[:, 2] = mu_d - c * rot @ mu_s
    return m


def crop_matrix(box: np.ndarray, landmarks: np.ndarray | None, size: int = 112) -> np.ndarray:
    """(2, 3) affine from frame pixels to a ``size`` x ``size`` aligned crop of one face."""
    if landmarks is not None and np.all(np.isfinite(landmarks)):
        spread = np.ptp(np.asarray(landmarks, np.float64), axis=0)
        if spread.max() > 1.0:
            return similarity_matrix(landmarks, ARCFACE_TEMPLATE_112 * (size / 112.0))
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 1.0)
    k = BOX_SIDE_IN_CROP * size / side
    m = np.zeros((2, 3))
    m[0, 0] = m[1, 1] = k
    m[0, 2] = size / 2 - k * (x0 + x1) / 2
    m[1, 2] = BOX_CENTER_Y_IN_CROP * size - k * (y0 + y1) / 2
    return m


def align_faces(
    frame_rgb: np.ndarray,
    boxes: np.ndarray,
    landmarks: Sequence[np.ndarray | None],
    size: int = 112,
) -> np.ndarray:
    """Aligned crops of several faces of one frame -> uint8 (k, size, size, 3)."""
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    for i, (box, lm) in enumerate(zip(boxes, landmarks, strict=True)):
        m = crop_matrix(box, lm, size)
        out[i] = cv2.warpAffine(frame_rgb, m, (size, size), flags=cv2.INTER_LINEAR)
    return out


def extract_crops(
    frames: np.ndarray, track: FaceTrack, scale: float = 1.0, size: int = 112
) -> np.ndarray:
    """Aligned crops of ``track`` in ``frames`` -> uint8 (n, size, size, 3); zeros where not present.

    ``frames`` uint8 (n, h, w, 3) RGB, frame i at the time of track frame i; ``scale`` is source
    pixels per decoded pixel (boxes and landmarks are in source pixels).
    """
    n = min(len(frames), track.num_frames)
    out = np.zeros((track.num_frames, size, size, 3), np.uint8)
    inv = 1.0 / scale
    for i in range(n):
        if not track.present[i]:
            continue
        lm = None if track.landmarks is None else track.landmarks[i] * inv
        m = crop_matrix(track.boxes[i] * inv, lm, size)
        out[i] = cv2.warpAffine(frames[i], m, (size, size), flags=cv2.INTER_LINEAR)
    return out


def encode_crops(crops: np.ndarray, present: np.ndarray, quality: int = 90) -> list[bytes]:
    """JPEG bytes per crop (``b""`` where ``present`` is False), for ``MediaRecord.crops_jpeg``."""
    return [encode_jpeg(c, quality) if p else b"" for c, p in zip(crops, present, strict=True)]
