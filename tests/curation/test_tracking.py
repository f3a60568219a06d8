"""Tracking (known box sequences), 25 fps interpolation (exact on linear motion), face quality."""

from __future__ import annotations

import itertools
from dataclasses import replace

import cv2
import numpy as np
import pytest

from avforge.core.config import ConfigError
from curation.faces import (
    Detection,
    FaceConfig,
    FrameDetections,
    detect_faces,
    face_appearance,
    load_detector,
)
from curation.tracking import (
    QualityConfig,
    TrackConfig,
    apply_quality,
    face_measures,
    face_quality,
    interpolate_track,
    track_faces,
)
from manifests.media import FaceTrack
from tests.helpers.faces_synth import astronaut, insightface_t1, render_talking_face

RATE = 5.0  # detection frames per second


def face(cx: float, cy: float, w: float = 60.0, score: float = 0.9) -> Detection:
    box = np.array([cx - w / 2, cy - 0.65 * w, cx + w / 2, cy + 0.65 * w], np.float32)
    rel = np.array([[-0.2, -0.2], [0.2, -0.2], [0.0, 0.05], [-0.15, 0.3], [0.15, 0.3]])
    return Detection(box, score, (np.array([cx, cy]) + rel * w).astype(np.float32))


def frames_of(
    per_frame: list[list[Detection]], cuts: tuple[int, ...] = (), t0: float = 0.0
) -> FrameDetections:
    n = len(per_frame)
    change = np.zeros(n, np.float32)
    change[list(cuts)] = 0.8
    return FrameDetections(t0 + np.arange(n) / RATE, per_frame, change, (640, 360))


def test_single_face_moving_is_one_track():
    dets = frames_of([[face(100 + 5 * i, 150)] for i in range(20)])
    (track,) = track_faces(dets, TrackConfig())
    assert track.track_id == 0 and len(track.times_s) == 20
    assert track.start_s == 0.0 and track.end_s == pytest.approx(3.8)
    assert track.presence(0.0, 4.0) == 1.0 and track.landmarks is not None


def test_two_faces_crossing_keep_their_ids():
    # A walks right, B walks left; they pass each other (boxes overlap) at frames 9-11.
    per_frame = [[face(100 + 20 * i, 150), face(500 - 20 * i, 160)] for i in range(21)]
    tracks = track_faces(frames_of(per_frame), TrackConfig())
    assert [t.track_id for t in tracks] == [0, 1]
    a, b = tracks
    assert len(a.times_s) == len(b.times_s) == 21
    assert np.all(np.diff(a.boxes[:, 0]) > 0)  # id 0 (leftmost at start) always moves right
    assert np.all(np.diff(b.boxes[:, 0]) < 0)


def test_one_of_two_synchronous_tracks_ends_while_the_other_goes_on():
    # Two faces detected in the same frames; one leaves after 2 s, the other stays.
    per_frame = [[face(100, 150), face(400, 150)] for _ in range(10)]
    per_frame += [[face(100, 150)] for _ in range(10)]
    tracks = track_faces(frames_of(per_frame), TrackConfig())
    assert [len(t.times_s) for t in tracks] == [20, 10]


def test_short_gap_is_bridged_long_gap_splits():
    cfg = TrackConfig(max_gap_s=0.6, min_track_s=1.0)
    seq = [[face(200, 150)] for _ in range(25)]
    short = [f if not 10 <= i < 12 else [] for i, f in enumerate(seq)]  # 0.6 s between detections
    long = [f if not 10 <= i < 15 else [] for i, f in enumerate(seq)]  # 1.2 s between detections
    assert len(track_faces(frames_of(short), cfg)) == 1
    tracks = track_faces(frames_of(long), cfg)
    assert len(tracks) == 2
    assert tracks[0].end_s == pytest.approx(1.8) and tracks[1].start_s == pytest.approx(3.0)
    (bridged,) = track_faces(frames_of(short), cfg)
    assert bridged.presence(0.0, 5.0) == pytest.approx(23 / 25)


def test_shot_cut_splits_even_at_the_same_place():
    seq = [[face(200, 150)] for _ in range(20)]
    tracks = track_faces(frames_of(seq, cuts=(10,)), TrackConfig())
    assert [t.track_id for t in tracks] == [0, 1]
    assert tracks[0].end_s == pytest.approx(1.8) and tracks[1].start_s == pytest.approx(2.0)


def test_jump_or_size_change_without_cut_flag_splits():
    jump = [[face(100, 150)] for _ in range(10)] + [[face(400, 150)] for _ in range(10)]
    assert len(track_faces(frames_of(jump), TrackConfig())) == 2
    zoom = [[face(200, 150, 60)] for _ in range(10)] + [[face(200, 150, 120)] for _ in range(10)]
    assert len(track_faces(frames_of(zoom), TrackConfig())) == 2


def test_cut_to_another_person_at_the_same_place_splits():
    # Real appearances: the two least alike people of t1.jpg, then the same box, no scene-change
    # flag (the grey thumbnail only separates clearly different faces: see min_appearance).
    photo = insightface_t1()
    looks = [face_appearance(photo, d.box) for d in load_detector(FaceConfig()).detect(photo)]
    look_a, look_b = min(
        itertools.combinations(looks, 2), key=lambda pair: float(pair[0] @ pair[1])
    )
    assert float(look_a @ look_b) < TrackConfig().min_appearance
    same_place = face(200, 150)
    seq = [[replace(same_place, appearance=look_a if i < 10 else look_b)] for i in range(20)]
    tracks = track_faces(frames_of(seq), TrackConfig())
    assert len(tracks) == 2 and tracks[1].start_s == pytest.approx(2.0)
    unchanged = [[replace(same_place, appearance=look_a)] for _ in range(20)]
    assert len(track_faces(frames_of(unchanged), TrackConfig())) == 1


def test_short_spurious_tracks_are_dropped_and_ids_ordered():
    per_frame = [[face(300, 150)] for _ in range(20)]
    per_frame[5] = [*per_frame[5], face(80, 80, 30)]  # one-frame false positive
    for i in range(8, 20):
        per_frame[i] = [face(550, 150), *per_frame[i]]  # a second face enters at 1.6 s
    tracks = track_faces(frames_of(per_frame), TrackConfig(min_track_s=1.0))
    assert len(tracks) == 2
    assert tracks[0].boxes[0, 0] < 300 < tracks[1].boxes[0, 0]  # by start time
    assert tracks[1].start_s == pytest.approx(1.6)
    assert tracks[1].presence(0.0, 4.0) == pytest.approx(12 / 20)


def test_track_config_validates():
    with pytest.raises(ConfigError, match="iou_threshold"):
        TrackConfig(iou_threshold=0.0)
    with pytest.raises(ConfigError, match="max_scale_change"):
        TrackConfig(max_scale_change=0.5)


# --------------------------------------------------------------------------- interpolation


def test_interpolation_is_exact_on_linear_motion():
    # x moves 30 px/s, y 10 px/s; detections at 5 fps from t=1.0 s
    per_frame = [[face(100 + 30 * (i / RATE), 150 + 10 * (i / RATE))] for i in range(16)]
    (track,) = track_faces(frames_of(per_frame, t0=1.0), TrackConfig())
    ft = interpolate_track(track, start_s=1.3, num_frames=50, fps=25.0)
    t = 1.3 + np.arange(50) / 25.0 - 1.0
    expected = np.stack([face(100 + 30 * s, 150 + 10 * s).box for s in t])
    np.testing.assert_allclose(ft.boxes, expected, atol=1e-3)
    lm = np.stack([face(100 + 30 * s, 150 + 10 * s).landmarks for s in t])
    np.testing.assert_allclose(ft.landmarks, lm, atol=1e-3)
    assert ft.fps == 25.0 and ft.num_frames == 50 and ft.present.all()
    np.testing.assert_allclose(ft.quality, 0.9, atol=1e-6)


def test_interpolation_presence_across_gaps_and_ends():
    seq = [[face(200, 150)] for _ in range(30)]
    for i in range(10, 16):  # detections at 1.8 s and 3.2 s, nothing between: a 1.4 s gap
        seq[i] = []
    track = track_faces(frames_of(seq), TrackConfig(max_gap_s=1.5))[0]
    ft = interpolate_track(track, start_s=0.0, num_frames=150, fps=25.0, max_gap_s=0.6)
    t = np.arange(150) / 25.0
    # present within half a detection period (0.1 s) of a detection across the gap, absent inside
    expected = ~((t > 1.9 + 1e-9) & (t < 3.1 - 1e-9)) & (t <= 5.8 + 0.1 + 1e-9)
    np.testing.assert_array_equal(ft.present, expected)
    assert (ft.quality[~ft.present] == 0).all()
    # the track's own max_gap_s (1.5) bridges the gap
    assert interpolate_track(track, 0.0, 145, 25.0).present.all()


# --------------------------------------------------------------------------- quality


def astronaut_track(frames: np.ndarray) -> tuple[FaceTrack, float]:
    """A 25 fps track of the astronaut's face over ``frames`` (detected at 5 fps, interpolated)."""
    det = load_detector(FaceConfig())
    chunks = [type("C", (), {"frames": frames[::5], "times_s": np.arange(len(frames))[::5] / 25})]
    dets = detect_faces(chunks, det, FaceConfig())  # type: ignore[arg-type]
    (track,) = track_faces(dets, TrackConfig(min_track_s=0.0))
    return interpolate_track(track, 0.0, len(frames)), float(track.boxes[0, 2] - track.boxes[0, 0])


def test_quality_flags_blurred_dark_tiny_and_turned_faces():
    photo = astronaut()
    base = np.stack([photo] * 11)
    track, width = astronaut_track(base)
    assert track.present.all()
    cfg = QualityConfig()
    good = face_quality(base, track, cfg)
    assert (good > 0.5).all()

    blurred = np.stack([cv2.GaussianBlur(photo, (0, 0), 4.0)] * 11)
    assert (face_quality(blurred, track, cfg) == 0).all()
    dark = np.stack([(photo * 0.15).astype(np.uint8)] * 11)
    assert (face_quality(dark, track, cfg) == 0).all()
    # tiny: the same picture as a 64 px wide source (face ~11 px), frames decoded at full size
    tiny_cfg = QualityConfig(min_face_px=32)
    assert (face_quality(base, track, tiny_cfg, scale=64 / 512) == 0).all()
    # turned head: the nose far off the eye midpoint along the eye axis
    lm = track.landmarks.copy()
    eye_dist = np.linalg.norm(lm[:, 1] - lm[:, 0], axis=1)
    lm[:, 2, 0] = (lm[:, 0, 0] + lm[:, 1, 0]) / 2 + 0.9 * eye_dist
    turned = FaceTrack(25.0, track.boxes, track.quality, track.present, lm)
    assert (face_quality(base, turned, cfg) == 0).all()
    _, _, _, yaw = face_measures(photo, track.boxes[0], track.landmarks[0])
    assert yaw < 0.2  # the astronaut looks at the camera

    mixed = base.copy()
    mixed[3:6] = blurred[3:6]
    q = face_quality(mixed, track, cfg)
    dropped = apply_quality(track, q)
    np.testing.assert_array_equal(dropped.present, [True] * 3 + [False] * 3 + [True] * 5)
    np.testing.assert_array_equal(dropped.quality, q)
    assert width > 80


def test_tracking_a_rendered_moving_face_end_to_end():
    photo = cv2.resize(astronaut(), (240, 240), interpolation=cv2.INTER_AREA)
    n = 51
    frames = np.stack(
        [
            render_talking_face(
                np.array([i % 3 / 2]), (104, 68), 17, photo, offset=(10 + 2 * i, 0), seed=i
            )[0]
            for i in range(n)
        ]
    )
    track, _ = astronaut_track(frames)
    assert track.present.all()  # one track although the mouth opens and closes
    centres = (track.boxes[:, 0] + track.boxes[:, 2]) / 2
    np.testing.assert_allclose(np.diff(centres), 2.0, atol=0.6)  # follows the 2 px/frame pan
