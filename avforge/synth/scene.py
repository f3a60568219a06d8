"""Backgrounds of the synthetic talks: a stage behind the speaker, and a full-frame slide.

Both are pure functions of (width, height, generator) returning RGB ``uint8`` (height, width, 3):
a colour gradient with a low-frequency texture and fine grain (so the encoder sees real content),
plus simple shapes. No faces or face-like blobs: CenterFace finds nothing on them (tested).
"""

from __future__ import annotations

import cv2
import numpy as np


def _texture(height: int, width: int, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    coarse = rng.standard_normal((max(height // 24, 2), max(width // 24, 2))).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.standard_normal((height, width)).astype(np.float32)
    return amplitude * smooth + 0.25 * amplitude * grain


def stage_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A dim stage: vertical gradient, textured wall, a projection screen, a floor and a spotlight."""
    top = rng.uniform(20, 70, size=3)
    bottom = rng.uniform(40, 110, size=3)
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    img = (1.0 - t) * top + t * bottom
    img = np.broadcast_to(img, (height, width, 3)).copy()
    img += _texture(height, width, rng, 6.0)[..., None]
    # Projection screen on one side, a little brighter than the wall.
    sw, sh = int(width * 0.28), int(height * 0.34)
    sx = int(width * 0.04) if rng.random() < 0.5 else width - sw - int(width * 0.04)
    sy = int(height * 0.10)
    screen_rgb = rng.uniform(120, 190, size=3)
    img[sy : sy + sh, sx : sx + sw] = 0.6 * img[sy : sy + sh, sx : sx + sw] + 0.4 * screen_rgb
    for k in range(3):  # title bars on the screen
        y = sy + int(sh * (0.2 + 0.22 * k))
        img[y : y + 4, sx + 10 : sx + sw - 10 - 25 * k] *= 0.6
    # Floor and a soft spotlight towards the centre.
    floor_y = int(height * 0.86)
    img[floor_y:] = 0.7 * img[floor_y:] + 0.3 * rng.uniform(30, 80, size=3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    spot = np.exp(
        -(((xx - width / 2) / (0.45 * width)) ** 2 + ((yy - 0.4 * height) / (0.6 * height)) ** 2)
    )
    img *= (0.75 + 0.35 * spot)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def slide_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A presentation slide filling the frame: light page, title bar, bullet lines and a bar chart."""
    page = rng.uniform(215, 245, size=3)
    img = np.broadcast_to(page, (height, width, 3)).astype(np.float32).copy()
    img += _texture(height, width, rng, 2.0)[..., None]
    accent = rng.uniform(30, 150, size=3)
    img[: int(height * 0.16)] = accent
    img[int(height * 0.05) : int(height * 0.10), int(width * 0.06) : int(width * 0.55)] = 245.0
    for k in range(5):  # bullet points with a line of "text" each
        y = int(height * (0.26 + 0.12 * k))
        x0 = int(width * 0.07)
        img[y : y + 8, x0 : x0 + 8] = accent
        length = int(width * rng.uniform(0.25, 0.5))
        img[y + 1 : y + 7, x0 + 18 : x0 + 18 + length] = 70.0
    base_y, bar_w = int(height * 0.85), int(width * 0.045)
    for k in range(5):  # a bar chart on the right
        bar_h = int(height * rng.uniform(0.12, 0.5))
        x = int(width * 0.66) + k * (bar_w + 8)
        img[base_y - bar_h : base_y, x : x + bar_w] = 0.6 * accent + 0.4 * 255.0
    return np.clip(img, 0, 255).astype(np.uint8)
