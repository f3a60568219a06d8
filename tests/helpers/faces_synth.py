"""Test inputs for the visual curation stages, built from real photos and real speech.

- :func:`astronaut_face`: skimage's astronaut photo (one real face) and its CenterFace landmarks;
- :func:`insightface_t1`: insightface's group photo t1.jpg (six real faces);
- :func:`render_talking_face`: frames of the photo with a mouth drawn open in proportion to a speech
  envelope (how a talking-head generator animates a mouth), with seeded head jitter and sensor noise;
- :func:`speech`: a bundled real utterance (avforge/assets/audio), 16 kHz float32.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from avforge.core import assets

ASSETS = assets.AUDIO_DIR
SPEECH_FILES = (
    "cmu_arctic_us_aew_a0001.wav",
    "cmu_arctic_us_aew_a0002.wav",
    "cmu_arctic_us_aew_a0003.wav",
    "cmu_arctic_us_axb_a0004.wav",
    "cmu_arctic_us_axb_a0006.wav",
    "arctic_a0010.wav",
    "librispeech_example1.wav",
    "librispeech_example5.wav",
    "librispeech_example6.wav",
)

# CenterFace on the 512x512 astronaut photo (checked by test_faces.py).
ASTRONAUT_BOX = np.array([182.0, 58.0, 270.0, 178.0], np.float32)


def speech(name: str) -> np.ndarray:
    audio, sr = sf.read(ASSETS / name, dtype="float32")
    assert sr == 16000
    return audio


@lru_cache(maxsize=1)
def astronaut() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


@lru_cache(maxsize=1)
def insightface_t1() -> np.ndarray:
    import insightface

    path = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


def envelope_openness(audio: np.ndarray, sample_rate_hz: int, fps: float, n: int) -> np.ndarray:
    """Mouth opening 0..1 per video frame from the speech RMS (square-root compressed)."""
    hop = sample_rate_hz / fps
    out = np.zeros(n, np.float32)
    for i in range(n):
        seg = audio[round(i * hop) : round((i + 1) * hop)]
        out[i] = float(np.sqrt(np.mean(seg**2))) if seg.size else 0.0
    peak = out.max()
    return np.sqrt(out / peak) if peak > 0 else out


def render_talking_face(
    openness: np.ndarray,
    mouth_xy: tuple[float, float],
    mouth_width_px: float,
    photo: np.ndarray,
    size: tuple[int, int] = (320, 240),
    offset: tuple[int, int] = (40, 0),
    jitter_px: float = 1.0,
    noise_std: float = 2.0,
    seed: int = 0,
) -> np.ndarray:
    """(n, h, w, 3) uint8 frames: ``photo`` placed at ``offset`` on a grey canvas of ``size``, its
    mouth (centre ``mouth_xy`` in photo pixels) drawn as a dark ellipse opened by ``openness``."""
    rng = np.random.default_rng(seed)
    w, h = size
    frames = np.empty((len(openness), h, w, 3), np.uint8)
    ph, pw = photo.shape[:2]
    for i, a in enumerate(openness):
        canvas = np.full((h, w, 3), 110, np.uint8)
        face = photo.copy()
        axes = (round(0.45 * mouth_width_px), max(1, round(0.35 * mouth_width_px * float(a))))
        centre = (round(mouth_xy[0]), round(mouth_xy[1]))
        cv2.ellipse(face, centre, axes, 0, 0, 360, (150, 70, 70), -1, cv2.LINE_AA)
        cv2.ellipse(face, centre, (axes[0] - 2, max(0, axes[1] - 2)), 0, 0, 360, (40, 10, 10), -1)
        dx, dy = rng.normal(0, jitter_px, 2).round().astype(int) if jitter_px else (0, 0)
        x0, y0 = offset[0] + dx, offset[1] + dy
        xa, ya = max(0, x0), max(0, y0)
        xb, yb = min(w, x0 + pw), min(h, y0 + ph)
        canvas[ya:yb, xa:xb] = face[ya - y0 : yb - y0, xa - x0 : xb - x0]
        if noise_std:
            noisy = canvas.astype(np.float32) + rng.normal(0, noise_std, canvas.shape)
            canvas = np.clip(noisy, 0, 255).astype(np.uint8)
        frames[i] = canvas
    return frames
