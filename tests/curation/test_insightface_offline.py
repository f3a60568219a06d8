"""The insightface backend, offline: tiny SCRFD / ArcFace-shaped ONNX models built in the test are
loaded by insightface's own model zoo, and our pre/post-processing runs on them for real."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from curation.crops import align_faces
from curation.faces import (
    FaceBackend,
    FaceConfig,
    FaceModelError,
    InsightFaceDetector,
    detect_faces,
    embed_track,
    load_detector,
)
from tests.helpers.faces_onnx import KPS_OFFSETS, arcface_reference, tiny_arcface, tiny_pack


@dataclass
class Chunk:
    frames: np.ndarray
    times_s: np.ndarray


def white_cell_frame(col: int, row: int, size: tuple[int, int] = (320, 180)) -> np.ndarray:
    """A black frame whose stride-32 cell (col, row) is white: the tiny detector's one 'face'."""
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[row * 32 : (row + 1) * 32, col * 32 : (col + 1) * 32] = 255
    return frame


@pytest.fixture(scope="module")
def pack_root(tmp_path_factory) -> object:
    root = tmp_path_factory.mktemp("insightface")
    tiny_pack(root)
    return root


def test_loads_pack_with_insightface_model_zoo(pack_root):
    det = load_detector(FaceConfig(backend=FaceBackend.INSIGHTFACE, model_dir=pack_root))
    assert isinstance(det, InsightFaceDetector)
    assert det.pack_dir == pack_root / "models" / "buffalo_l"
    from insightface.model_zoo import SCRFD, ArcFaceONNX

    assert isinstance(det._det, SCRFD) and det._det.use_kps and det._det.fmc == 3
    assert isinstance(det._rec, ArcFaceONNX) and det._rec.input_size == (112, 112)
    # the pack folder itself works as model_dir too
    direct = InsightFaceDetector(pack_root / "models" / "buffalo_l")
    assert direct.pack_dir == det.pack_dir


def test_scrfd_decoding_gives_the_known_box_and_landmarks(pack_root):
    det = load_detector(FaceConfig(backend=FaceBackend.INSIGHTFACE, model_dir=pack_root))
    dets = det.detect(white_cell_frame(4, 2))
    assert len(dets) == 1  # the two anchors of the cell are merged by NMS
    anchor = np.array([4 * 32, 2 * 32], np.float32)
    np.testing.assert_allclose(dets[0].box, [96, 32, 160, 96], atol=1e-3)
    assert dets[0].score > 0.99
    np.testing.assert_allclose(dets[0].landmarks, anchor + KPS_OFFSETS * 32, atol=1e-3)
    assert det.detect(np.zeros((180, 320, 3), np.uint8)) == []


def test_detect_faces_scales_insightface_boxes_to_source(pack_root):
    det = load_detector(FaceConfig(backend=FaceBackend.INSIGHTFACE, model_dir=pack_root))
    frames = np.stack([white_cell_frame(4, 2), white_cell_frame(5, 2)])
    out = detect_faces([Chunk(frames, np.array([0.0, 0.2]))], det, FaceConfig(), scale=4.0)
    assert out.frame_size == (1280, 720)
    np.testing.assert_allclose(out.detections[0][0].box, np.array([96, 32, 160, 96]) * 4, atol=1e-2)
    np.testing.assert_allclose(
        out.detections[1][0].box, np.array([128, 32, 192, 96]) * 4, atol=1e-2
    )


def test_embeddings_match_the_reference_computation(pack_root):
    det = load_detector(FaceConfig(backend=FaceBackend.INSIGHTFACE, model_dir=pack_root))
    crops = np.zeros((3, 112, 112, 3), np.uint8)
    crops[0, ..., 0] = 200
    crops[1, ..., 2] = 50
    crops[2] = np.random.default_rng(0).integers(0, 256, (112, 112, 3))
    emb = det.embed_crops(crops)
    assert emb is not None and emb.shape == (3, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb, arcface_reference(crops), atol=1e-4)
    # embed() aligns each detection on its landmarks, then embeds the crop
    frame = white_cell_frame(4, 2)
    dets = det.detect(frame)
    expected = arcface_reference(align_faces(frame, dets[0].box[None], [dets[0].landmarks]))
    np.testing.assert_allclose(det.embed(frame, dets), expected, atol=1e-4)
    assert det.embed(frame, []).shape == (0, 512)


def test_missing_pack_says_where_it_looked_and_how_to_get_one(tmp_path):
    cfg = FaceConfig(backend=FaceBackend.INSIGHTFACE, model_dir=tmp_path / "nowhere")
    with pytest.raises(FaceModelError) as err:
        load_detector(cfg)
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "models" / "buffalo_l") in msg
    assert "buffalo_l.zip" in msg and "unzip" in msg
    with pytest.raises(FaceModelError, match="model_dir is not set"):
        load_detector(FaceConfig(backend=FaceBackend.INSIGHTFACE))


def test_pack_without_recognition_model_is_named(tmp_path):
    tiny_pack(tmp_path, recognition=False)
    with pytest.raises(FaceModelError, match="no recognition model") as err:
        InsightFaceDetector(tmp_path)
    assert "det_10g.onnx" in str(err.value)
    only_rec = tmp_path / "rec_only"
    tiny_arcface(only_rec / "w600k_r50.onnx")
    with pytest.raises(FaceModelError, match="no detection model"):
        InsightFaceDetector(only_rec)


def test_embed_track_embeds_present_frames_every_k(pack_root):
    det = load_detector(FaceConfig(backend=FaceBackend.INSIGHTFACE, model_dir=pack_root))
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (12, 112, 112, 3), dtype=np.uint8)
    present = np.ones(12, bool)
    present[[4, 5]] = False
    ref = arcface_reference(crops)
    every = embed_track(det, crops, present, every_frames=1)
    np.testing.assert_allclose(every[present], ref[present], atol=1e-4)
    assert not every[~present].any()
    sparse = embed_track(det, crops, present, every_frames=3)  # embeds present frames 0, 3, 7, 10
    idx = np.flatnonzero(present)
    picked = idx[::3]
    for i in idx:
        nearest = picked[np.abs(picked - i).argmin()]
        np.testing.assert_allclose(sparse[i], ref[nearest], atol=1e-4)
    none = embed_track(det, crops, np.zeros(12, bool))
    assert none.shape == (12, 512) and not none.any()
    centerface = load_detector(FaceConfig())
    assert embed_track(centerface, crops, present) is None
