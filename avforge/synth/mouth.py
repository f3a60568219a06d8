"""Mouth animation: speech envelope at the video rate -> mouth opening -> warped face images.

Contract:

- :func:`speech_envelope_db` turns a waveform into one RMS level (dBFS) per video frame, from a
  window of two frame periods centred on the frame time;
- :func:`mouth_opening` maps those levels to an opening in 0..1 (closed below ``closed_db``, fully
  open at ``open_db``), smoothed over three frames and quantised to ``n_levels`` steps;
- :func:`open_mouth` renders one opening on a face image: the jaw (everything below the mouth line,
  weighted by a horizontal Gaussian around the mouth) is pulled down by ``opening * max_open_px``
  with ``cv2.remap``, and the gap is filled with a dark, soft-edged ellipse (the mouth cavity).

Pure functions of their inputs; no randomness.
"""

from __future__ import annotations

import cv2
import numpy as np

CAVITY_RGB = np.array([45.0, 14.0, 18.0], dtype=np.float32)


def speech_envelope_db(
    waveform: np.ndarray,
    sample_rate_hz: int,
    fps: float,
    n_frames: int,
    first_frame_s: float = 0.0,
) -> np.ndarray:
    """RMS level in dBFS per video frame, float32 of shape (n_frames,), floor -100 dB.

    Frame ``i`` is shown from ``t_i = first_frame_s + i / fps`` (seconds from the first sample of
    ``waveform``, mono float in -1..1) for ``1 / fps``; its level is taken over a window of two frame
    periods centred on the middle of that display period, zero-padded outside the signal.
    """
    hop = sample_rate_hz / fps
    half = round(hop)
    x = np.asarray(waveform, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    centres_s = first_frame_s + (np.arange(n_frames) + 0.5) / fps
    centres = np.round(centres_s * sample_rate_hz).astype(np.int64)
    lo = np.clip(centres - half, 0, len(x))
    hi = np.clip(centres + half, 0, len(x))
    power = (csum[hi] - csum[lo]) / (2 * half)
    return (10.0 * np.log10(np.maximum(power, 1e-10))).astype(np.float32)


def mouth_opening(
    envelope_db: np.ndarray,
    n_levels: int,
    closed_db: float = -48.0,
    open_db: float = -18.0,
) -> np.ndarray:
    """Quantised mouth opening per frame: int array of levels in ``0..n_levels-1``.

    Linear in dB between ``closed_db`` (level 0) and ``open_db`` (top level), smoothed with a
    [1, 2, 1] / 4 kernel over frames so the mouth does not flicker.
    """
    if n_levels < 2:
        raise ValueError(f"n_levels must be >= 2, got {n_levels}")
    opening = np.clip((envelope_db - closed_db) / (open_db - closed_db), 0.0, 1.0)
    if len(opening) >= 3:
        padded = np.concatenate([opening[:1], opening, opening[-1:]])
        opening = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    return np.round(opening * (n_levels - 1)).astype(np.int32)


def open_mouth(
    rgb: np.ndarray,
    alpha: np.ndarray,
    mouth_xy: tuple[float, float],
    mouth_width_px: float,
    chin_y: float,
    opening: float,
    max_open_px: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Render a face with its mouth opened by ``opening`` (0..1) of ``max_open_px`` pixels.

    ``rgb`` float32 (h, w, 3) and ``alpha`` float32 (h, w) in 0..1 are the face sprite; ``mouth_xy`` is
    the mouth centre (mid-point of the corners), ``chin_y`` the bottom of the face box, all in sprite
    pixels. Returns new ``(rgb, alpha)`` of the same shapes; ``opening == 0`` returns copies.
    """
    open_px = float(np.clip(opening, 0.0, 1.0)) * max_open_px
    if open_px < 0.25:
        return rgb.copy(), alpha.copy()
    h, w = alpha.shape
    mx, my = mouth_xy
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    # Horizontal weight: the jaw, about as wide as the face, centred on the mouth.
    wx = np.exp(-0.5 * ((xs - mx) / (1.1 * mouth_width_px)) ** 2)
    # Vertical weight: 0 above the mouth line, 1 from just below it to the chin, back to 0 below.
    # The step at the mouth line is sharp between the lips and spread out over the cheeks, so the
    # skin beside the mouth stretches smoothly instead of tearing.
    fall = max(chin_y - my, 4.0)
    near_lips = np.exp(-0.5 * ((xs - mx) / (0.45 * mouth_width_px)) ** 2)
    ramp = 2.0 + 0.6 * fall * (1.0 - near_lips)
    wy = np.clip((ys[:, None] - my + 1.0) / ramp[None, :], 0.0, 1.0)
    wy *= np.clip(1.0 - (ys - chin_y) / fall, 0.0, 1.0)[:, None]
    shift = (open_px * wy * wx[None, :]).astype(np.float32)
    map_x = np.broadcast_to(xs[None, :], (h, w)).astype(np.float32)
    map_y = (ys[:, None] - shift).astype(np.float32)
    out_rgb = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out_alpha = cv2.remap(alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # The cavity: a dark ellipse filling the gap between the lips, with a soft edge.
    semi_w = 0.45 * mouth_width_px * (0.85 + 0.15 * opening)
    semi_h = max(open_px / 2.0, 0.5)
    cy = my + open_px / 2.0
    dist = np.sqrt(((xs[None, :] - mx) / semi_w) ** 2 + ((ys[:, None] - cy) / semi_h) ** 2)
    cavity = np.clip((1.0 - dist) / 0.25, 0.0, 1.0)[..., None].astype(np.float32)
    out_rgb = out_rgb * (1.0 - cavity) + CAVITY_RGB * cavity
    return out_rgb.astype(np.float32), out_alpha.astype(np.float32)
