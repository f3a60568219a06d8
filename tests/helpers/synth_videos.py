"""Test helpers around the synthetic talk videos: the session's render cache, and small decoders.

The cache is :class:`avforge.testing.videos.RenderCache`, one per test session (:func:`session_cache`).
The decoders call the ffmpeg / ffprobe binaries with argument lists (no shell).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from avforge.testing.videos import RenderCache

_SESSION: RenderCache | None = None


def session_cache(factory: Any) -> RenderCache:
    """The test session's one :class:`avforge.testing.videos.RenderCache` (folders from
    ``factory``, pytest's ``tmp_path_factory``): the scenario videos and the curation tests' renders
    all go through it."""
    global _SESSION
    if _SESSION is None:
        _SESSION = RenderCache(lambda name: factory.mktemp(f"video-{name}"))
    return _SESSION


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def decode_frames(
    path: Path, start_s: float, n_frames: int, width: int = 640, height: int = 360
) -> np.ndarray:
    """``n_frames`` RGB frames from ``start_s`` (accurate seek): uint8 (n, height, width, 3)."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-ss", f"{start_s:.3f}", "-i", str(path),
         "-frames:v", str(n_frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    frames = np.frombuffer(out.stdout, dtype=np.uint8)
    return frames.reshape(-1, height, width, 3)


def decode_audio(path: Path, sample_rate_hz: int = 16_000) -> np.ndarray:
    """The whole audio track, mono float32 at ``sample_rate_hz``."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-vn", "-ac", "1",
         "-ar", str(sample_rate_hz), "-f", "f32le", "pipe:1"],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    return np.frombuffer(out.stdout, dtype=np.float32)
