"""Talking face sprites: a real face cut from its photo, scaled, with precomputed mouth openings.

:func:`build_sprite` crops the head around the measured CenterFace box (hair and neck included),
scales it so the face box is ``face_height_px`` tall, gives it a soft elliptical alpha mask, and
renders ``n_levels`` mouth openings once (:func:`avforge.synth.mouth.open_mouth`). The renderer then
only pastes precomputed images, so a frame costs a few small alpha blends and no per-pixel Python.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from avforge.synth.face_photos import FACES, load_photo
from avforge.synth.mouth import open_mouth

MAX_OPEN_FRACTION = 0.13
"""Largest mouth opening as a fraction of the face box height (speech: about 10-15 %)."""


@dataclass(frozen=True, eq=False)
class TalkingSprite:
    """A face ready to paste: one RGB + alpha image per mouth opening level."""

    face_id: str
    rgb_levels: tuple[np.ndarray, ...]
    """Per level, float32 (h, w, 3) premultiplied by alpha (0..255)."""
    alpha_levels: tuple[np.ndarray, ...]
    """Per level, float32 (h, w, 1) in 0..1."""
    box_xyxy: tuple[float, float, float, float]
    """The face box in sprite pixels (where CenterFace finds the face)."""
    mouth_xy: tuple[float, float]
    """Mouth centre (closed) in sprite pixels."""
    max_open_px: float

    @property
    def size_wh(self) -> tuple[int, int]:
        h, w = self.alpha_levels[0].shape[:2]
        return w, h

    @property
    def n_levels(self) -> int:
        return len(self.rgb_levels)


def _crop(photo_rgb: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Crop with replicated borders where the window leaves the photo."""
    h, w = photo_rgb.shape[:2]
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        photo_rgb = cv2.copyMakeBorder(photo_rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return photo_rgb[y0 + pad : y1 + pad, x0 + pad : x1 + pad]


@functools.lru_cache(maxsize=64)
def build_sprite(face_id: str, face_height_px: int, n_levels: int = 12) -> TalkingSprite:
    """The talking sprite of ``face_id`` (a key of :data:`FACES`) with a face box ``face_height_px`` tall.

    Cached per process: sprites are immutable and cheap to share.
    """
    face = FACES[face_id]
    photo = load_photo(face.photo)
    bx0, by0, bx1, by1 = face.box_xyxy
    bw, bh = bx1 - bx0, by1 - by0
    cx = (bx0 + bx1) / 2
    # Head window: the face box widened for hair and ears, extended down for chin and neck.
    x0, x1 = int(np.floor(cx - 0.95 * bw)), int(np.ceil(cx + 0.95 * bw))
    y0, y1 = int(np.floor(by0 - 0.45 * bh)), int(np.ceil(by1 + 0.55 * bh))
    crop = _crop(photo, x0, y0, x1, y1).astype(np.float32)
    scale = face_height_px / bh
    out_w, out_h = round((x1 - x0) * scale), round((y1 - y0) * scale)
    rgb = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA)

    def to_sprite(x: float, y: float) -> tuple[float, float]:
        return (x - x0) * scale, (y - y0) * scale

    sx0, sy0 = to_sprite(bx0, by0)
    sx1, sy1 = to_sprite(bx1, by1)
    (lx, ly), (rx, ry) = to_sprite(*face.landmarks_xy[3]), to_sprite(*face.landmarks_xy[4])
    mouth_xy = ((lx + rx) / 2, (ly + ry) / 2)
    mouth_w = float(np.hypot(rx - lx, ry - ly))

    # Soft elliptical mask around the head: opaque inside, a feathered rim of ~12 % of the radius.
    ys, xs = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    ecx, ecy = (sx0 + sx1) / 2, (sy0 + sy1) / 2 + 0.08 * (sy1 - sy0)
    ea, eb = 0.82 * (sx1 - sx0), 0.80 * (sy1 - sy0)
    r = np.sqrt(((xs - ecx) / ea) ** 2 + ((ys - ecy) / eb) ** 2)
    alpha = np.clip((1.0 - r) / 0.12, 0.0, 1.0)
    alpha = alpha * alpha * (3.0 - 2.0 * alpha)  # smoothstep

    max_open_px = MAX_OPEN_FRACTION * face_height_px
    rgb_levels, alpha_levels = [], []
    for level in range(n_levels):
        opening = level / (n_levels - 1)
        lv_rgb, lv_alpha = open_mouth(rgb, alpha, mouth_xy, mouth_w, sy1, opening, max_open_px)
        lv_alpha = lv_alpha[..., None]
        rgb_levels.append(np.ascontiguousarray(lv_rgb * lv_alpha))
        alpha_levels.append(np.ascontiguousarray(lv_alpha))
    return TalkingSprite(
        face_id=face_id,
        rgb_levels=tuple(rgb_levels),
        alpha_levels=tuple(alpha_levels),
        box_xyxy=(sx0, sy0, sx1, sy1),
        mouth_xy=mouth_xy,
        max_open_px=max_open_px,
    )


def paste(frame: np.ndarray, sprite: TalkingSprite, level: int, x: int, y: int) -> None:
    """Alpha-blend mouth ``level`` of ``sprite`` into ``frame`` (uint8 RGB, in place) at top-left (x, y).

    Parts outside the frame are clipped.
    """
    w, h = sprite.size_wh
    fh, fw = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(x, 0), max(y, 0), min(x + w, fw), min(y + h, fh)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    sx0, sy0 = fx0 - x, fy0 - y
    sx1, sy1 = sx0 + (fx1 - fx0), sy0 + (fy1 - fy0)
    region = frame[fy0:fy1, fx0:fx1]
    a = sprite.alpha_levels[level][sy0:sy1, sx0:sx1]
    blended = sprite.rgb_levels[level][sy0:sy1, sx0:sx1] + region * (1.0 - a)
    region[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
