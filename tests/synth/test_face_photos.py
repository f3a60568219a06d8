"""Faces: the hardcoded CenterFace measurements still hold, and talking sprites stay detectable."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from avforge.synth.face_photos import FACES, Photo, detect_faces, load_photo
from avforge.synth.scene import slide_background, stage_background
from avforge.synth.sprite import build_sprite, paste


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("photo", list(Photo))
def test_hardcoded_boxes_match_centerface(photo):
    boxes, _ = detect_faces(load_photo(photo))
    expected = [f for f in FACES.values() if f.photo is photo]
    assert len(boxes) == len(expected)
    for face in expected:
        assert max(iou(face.box_xyxy, b[:4]) for b in boxes) > 0.95, face.face_id


def test_backgrounds_contain_no_face(seeded):
    for make in (stage_background, slide_background):
        bg = make(640, 360, seeded)
        assert bg.shape == (360, 640, 3) and bg.dtype == np.uint8
        assert len(detect_faces(bg)[0]) == 0


@pytest.mark.parametrize("face_id", sorted(FACES))
def test_talking_sprite_is_detected_once_at_every_opening(face_id, seeded):
    sprite = build_sprite(face_id, 110)
    bg = stage_background(320, 256, seeded)  # a crop-sized stage keeps the detector fast
    w, h = sprite.size_wh
    x, y = 160 - w // 2, 128 - h // 2
    expected = np.add(sprite.box_xyxy, [x, y, x, y])
    for level in (0, sprite.n_levels // 2, sprite.n_levels - 1):
        frame = bg.copy()
        paste(frame, sprite, level, x, y)
        boxes, _ = detect_faces(frame)
        assert len(boxes) == 1, (face_id, level)
        assert iou(expected, boxes[0, :4]) > 0.7, (face_id, level)


def test_mouth_levels_darken_the_mouth_monotonically():
    sprite = build_sprite("t1_e", 120)
    mx, my = (round(v) for v in sprite.mouth_xy)
    dark = []
    for level in range(sprite.n_levels):
        rgb = sprite.rgb_levels[level][my : my + 16, mx - 6 : mx + 6]
        dark.append(float(np.mean(rgb.mean(axis=2) < 70)))
    assert dark[0] < 0.2 and dark[-1] > 0.8
    assert all(b >= a - 0.05 for a, b in itertools.pairwise(dark))


def test_paste_clips_at_frame_edges():
    sprite = build_sprite("astronaut", 100)
    frame = np.zeros((360, 640, 3), dtype=np.uint8)
    w, h = sprite.size_wh
    paste(frame, sprite, 0, -w // 2, -h // 2)  # the sprite's opaque centre lands on the corners
    paste(frame, sprite, 0, 640 - w // 2, 360 - h // 2)
    paste(frame, sprite, 0, 5000, 5000)  # entirely outside: no-op
    assert frame[:5, :5].any() and frame[-5:, -5:].any()
