"""CenterFace detection, the detect_faces stage and aligned crops, on real face photos."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from avforge.core.config import ConfigError, config_from_dict
from curation.crops import (
    ARCFACE_TEMPLATE_112,
    crop_matrix,
    encode_crops,
    extract_crops,
    similarity_matrix,
)
from curation.decode import DecodeConfig
from curation.faces import (
    CenterFaceDetector,
    Detection,
    FaceBackend,
    FaceConfig,
    box_iou,
    detect_faces,
    load_detector,
    nms,
)
from manifests.media import FaceTrack
from tests.helpers.faces_synth import ASTRONAUT_BOX, astronaut, insightface_t1


@dataclass
class Chunk:
    frames: np.ndarray
    times_s: np.ndarray


@pytest.fixture(scope="module")
def detector() -> CenterFaceDetector:
    return load_detector(FaceConfig())  # type: ignore[return-value]


def test_centerface_finds_six_faces_in_insightface_t1(detector):
    dets = detector.detect(insightface_t1())
    assert len(dets) == 6
    for d in dets:
        assert d.score > 0.8
        w, h = d.box[2] - d.box[0], d.box[3] - d.box[1]
        assert 80 < w < 130 and 100 < h < 170  # the six faces are ~100 px wide
        lm = d.landmarks
        assert lm is not None and lm.shape == (5, 2)
        assert np.all((lm[:, 0] > d.box[0]) & (lm[:, 0] < d.box[2]))
        assert lm[0, 0] < lm[1, 0]  # left eye left of right eye (as seen)
        assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])  # eyes, nose, mouth
    assert (
        box_iou(np.stack([d.box for d in dets]), np.stack([d.box for d in dets]))[
            ~np.eye(6, dtype=bool)
        ].max()
        < 0.1
    )


def test_centerface_finds_the_astronaut(detector):
    dets = detector.detect(astronaut())
    assert len(dets) == 1
    assert box_iou(dets[0].box, ASTRONAUT_BOX)[0, 0] > 0.9


def test_no_face_in_a_blank_frame_or_noise(detector):
    rng = np.random.default_rng(0)
    assert detector.detect(np.full((180, 320, 3), 120, np.uint8)) == []
    assert detector.detect(rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)) == []


def test_detection_speed_at_320_px(detector, capsys):
    frame = cv2.resize(insightface_t1(), (320, 222), interpolation=cv2.INTER_AREA)
    detector.detect(frame)
    t0 = time.perf_counter()
    for _ in range(10):
        dets = detector.detect(frame)
    ms = (time.perf_counter() - t0) / 10 * 1000
    with capsys.disabled():
        print(f"\nCenterFace: {ms:.1f} ms per 320x222 frame, {len(dets)} faces")
    assert len(dets) == 6  # ~25 px faces are still found at 320 px
    assert ms < 150


def test_small_faces_are_found_at_the_default_detection_width(detector):
    """The detection pass runs at ``DecodeConfig.detect_width`` (256 px): t1.jpg's six faces are
    then 19-23 px wide, and all of them are still found."""
    width = DecodeConfig().detect_width
    img = insightface_t1()
    frame = cv2.resize(img, (width, round(img.shape[0] * width / img.shape[1])), cv2.INTER_AREA)
    dets = detector.detect(frame)
    assert len(dets) == 6
    assert max(float(d.box[2] - d.box[0]) for d in dets) < 25.0


def test_detect_faces_maps_to_source_pixels_and_scores_cuts(detector):
    full = astronaut()
    half = cv2.resize(full, (256, 256), interpolation=cv2.INTER_AREA)
    other = cv2.resize(insightface_t1(), (256, 256), interpolation=cv2.INTER_AREA)
    frames = np.stack([half, half, other, other])
    chunks = [Chunk(frames[:3], np.array([0.0, 0.2, 0.4])), Chunk(frames[3:], np.array([0.6]))]
    dets = detect_faces(chunks, detector, FaceConfig(min_face_px=12), scale=2.0)
    np.testing.assert_allclose(dets.times_s, [0.0, 0.2, 0.4, 0.6])
    assert dets.frame_size == (512, 512)
    assert dets.num_faces()[:2].tolist() == [1, 1]
    assert box_iou(dets.detections[0][0].box, ASTRONAUT_BOX)[0, 0] > 0.8  # in source pixels
    assert dets.change[1] < 0.01 and dets.change[2] > 0.35 and dets.change[3] < 0.01
    assert dets.mean_faces(0.0, 0.4) == 1.0
    look = [d.appearance for frame in dets.detections for d in frame]
    assert all(v is not None and abs(np.linalg.norm(v) - 1) < 1e-4 for v in look)
    assert float(look[0] @ look[1]) > 0.99  # the same face in the same place
    # min_face_px is in SOURCE pixels: the t1 faces are ~2 x 20 px wide there
    big_only = detect_faces(chunks, detector, FaceConfig(min_face_px=60), scale=2.0)
    assert big_only.num_faces().tolist() == [1, 1, 0, 0]


def test_nms_keeps_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.7]), 0.3).tolist() == [1, 2]


def test_face_config_is_strict_and_detector_cached():
    with pytest.raises(ConfigError, match="score_threshold"):
        FaceConfig(score_threshold=1.5)
    with pytest.raises(ConfigError, match="backend"):
        config_from_dict(FaceConfig, {"backend": "dlib"})
    cfg = config_from_dict(FaceConfig, {"backend": "centerface", "min_face_px": 20})
    assert cfg.backend == FaceBackend.CENTERFACE
    assert load_detector(cfg) is load_detector(FaceConfig(min_face_px=20))


# --------------------------------------------------------------------------- crops


def test_similarity_matrix_recovers_a_known_transform():
    angle, k, t = np.deg2rad(17.0), 1.7, np.array([12.0, -5.0])
    rot = k * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE_112
    dst = src @ rot.T + t
    m = similarity_matrix(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)


def test_aligned_crop_puts_landmarks_on_the_template(detector):
    full = astronaut()
    det = detector.detect(full)[0]
    half = cv2.resize(full, (256, 256), interpolation=cv2.INTER_AREA)
    n = 3
    track = FaceTrack(
        fps=25.0,
        boxes=np.tile(det.box, (n, 1)),
        quality=np.ones(n, np.float32),
        present=np.array([True, False, True]),
        landmarks=np.tile(det.landmarks, (n, 1, 1)),
    )
    crops = extract_crops(np.stack([half] * n), track, scale=2.0)
    assert crops.shape == (3, 112, 112, 3) and crops.dtype == np.uint8
    assert not crops[1].any() and crops[0].any()
    # the landmarks land on ArcFace's template (least-squares residual of a real face: a few px)
    m = crop_matrix(det.box / 2, det.landmarks / 2, 112)
    mapped = np.c_[det.landmarks / 2, np.ones(5)] @ m.T
    assert np.abs(mapped - ARCFACE_TEMPLATE_112).max() < 4.0
    # and the crop still holds a face CenterFace finds, centred
    redet = detector.detect(cv2.resize(crops[0], (224, 224)))
    assert len(redet) == 1
    centre = (redet[0].box[:2] + redet[0].box[2:]) / 2 / 224
    assert np.all(np.abs(centre - [0.5, 0.55]) < 0.1)
    jpegs = encode_crops(crops, track.present)
    assert jpegs[1] == b"" and jpegs[0][:2] == b"\xff\xd8"


def test_box_crop_without_landmarks_frames_the_face_like_an_aligned_one(detector):
    det = detector.detect(astronaut())[0]
    aligned = crop_matrix(det.box, det.landmarks, 112)
    boxed = crop_matrix(det.box, None, 112)
    centre = np.r_[(det.box[:2] + det.box[2:]) / 2, 1.0]
    assert np.abs(aligned @ centre - boxed @ centre).max() < 10.0
    scale_aligned = np.sqrt(abs(np.linalg.det(aligned[:, :2])))
    assert abs(boxed[0, 0] / scale_aligned - 1) < 0.15


def test_detection_scaled_to_source():
    d = Detection(np.array([1, 2, 3, 4], np.float32), 0.9, np.ones((5, 2), np.float32))
    s = d.scaled(2.0)
    assert s.box.tolist() == [2, 4, 6, 8] and s.landmarks is not None and s.landmarks.max() == 2
