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


def similarity_matrices(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transforms mapping point sets ``src`` (..., k, 2) onto ``dst`` (k, 2).

    Returns (..., 2, 3) float64 matrices ``M`` with ``dst ≈ M @ [x, y, 1]`` (rotation, uniform
    scale, translation; no reflection). The model ``x' = a x - b y + tx, y' = b x + a y + ty`` is
    linear in its parameters, so the closed form below is the exact least-squares optimum (the same
    as Umeyama's SVD solution), vectorised over the leading axes.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s = src.mean(axis=-2, keepdims=True)
    mu_d = dst.mean(axis=-2)
    s = src - mu_s
    d = dst - mu_d
    var = (s**2).sum(axis=(-2, -1))
    if np.any(var <= 1e-12):
        raise ValueError("similarity_matrices: source points coincide")
    a = (s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1]).sum(-1) / var
    b = (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]).sum(-1) / var
    m = np.empty((*a.shape, 2, 3))
    m[..., 0, 0], m[..., 0, 1] = a, -b
    m[..., 1, 0], m[..., 1, 1] = b, a
    ms = mu_s[..., 0, :]
    m[..., 0, 2] = mu_d[0] - (a * ms[..., 0] - b * ms[..., 1])
    m[..., 1, 2] = mu_d[1] - (b * ms[..., 0] + a * ms[..., 1])
    return m


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity transform mapping ``src`` (k, 2) onto ``dst`` (k, 2)."""
    return similarity_matrices(src, dst)


def _usable_landmarks(landmarks: np.ndarray | None) -> bool:
    if landmarks is None or not np.all(np.isfinite(landmarks)):
        return False
    return float(np.ptp(landmarks, axis=0).max()) > 1.0


def box_crop_matrix(box: np.ndarray, size: int = 112) -> np.ndarray:
    """(2, 3) affine mapping a face box onto the face area of an aligned ``size`` crop."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 1.0)
    k = BOX_SIDE_IN_CROP * size / side
    return np.array(
        [
            [k, 0.0, size / 2 - k * (x0 + x1) / 2],
            [0.0, k, BOX_CENTER_Y_IN_CROP * size - k * (y0 + y1) / 2],
        ]
    )


def crop_matrix(box: np.ndarray, landmarks: np.ndarray | None, size: int = 112) -> np.ndarray:
    """(2, 3) affine from frame pixels to a ``size`` x ``size`` aligned crop of one face."""
    if _usable_landmarks(landmarks):
        return similarity_matrix(landmarks, ARCFACE_TEMPLATE_112 * (size / 112.0))  # type: ignore[arg-type]
    return box_crop_matrix(box, size)


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
    pixels per decoded pixel (boxes and landmarks are in source pixels). About 0.1 ms per frame.
    """
    n = min(len(frames), track.num_frames)
    out = np.zeros((track.num_frames, size, size, 3), np.uint8)
    inv = 1.0 / scale
    todo = np.flatnonzero(track.present[:n])
    if todo.size == 0:
        return out
    matrices = np.stack([box_crop_matrix(track.boxes[i] * inv, size) for i in todo])
    if track.landmarks is not None:
        lm = track.landmarks[todo].astype(np.float64) * inv
        spread = np.ptp(lm, axis=1).max(axis=1)
        ok = np.isfinite(lm).all(axis=(1, 2)) & (spread > 1.0)
        if ok.any():
            template = ARCFACE_TEMPLATE_112 * (size / 112.0)
            matrices[ok] = similarity_matrices(lm[ok], template)
    for i, m in zip(todo, matrices, strict=True):
        out[i] = cv2.warpAffine(frames[i], m, (size, size), flags=cv2.INTER_LINEAR)
    return out


def encode_crops(crops: np.ndarray, present: np.ndarray, quality: int = 90) -> list[bytes]:
    """JPEG bytes per crop (``b""`` where ``present`` is False), for ``MediaRecord.crops_jpeg``."""
    return [encode_jpeg(c, quality) if p else b"" for c, p in zip(crops, present, strict=True)]
