"""Test helpers around the synthetic talk videos: a lazy per-session cache, and small decoders.

``ScenarioVideos(folder)["mixed_20s"]`` renders a preset (or demo talk) on first use and returns its
MP4 path; the ground truth is next to it (``path.with_suffix(".json")``, :func:`avforge.synth.load_truth`).
The decoders call the ffmpeg / ffprobe binaries with argument lists (no shell).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from avforge.synth import PRESETS, Scenario, demo_scenarios, long_talk, render_scenario

# Presets with test-friendly parameters (long_talk's default is 10 minutes).
TEST_SCENARIOS = {
    "mixed_20s": lambda: PRESETS["mixed_20s"](),
    "clean_talk": lambda: PRESETS["clean_talk"](duration_s=12.0),
    "long_talk": lambda: long_talk(duration_s=60.0),
}


class ScenarioVideos:
    """Render-once cache of scenario videos in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._paths: dict[str, Path] = {}

    def scenario(self, name: str) -> Scenario:
        if name in TEST_SCENARIOS:
            return TEST_SCENARIOS[name]()
        for sc in demo_scenarios(quick=False):
            if sc.name == name:
                return sc
        raise KeyError(f"no scenario {name!r}; known: {sorted(TEST_SCENARIOS)} and the demo talks")

    def __getitem__(self, name: str) -> Path:
        if name not in self._paths:
            self._paths[name] = render_scenario(self.scenario(name), self.folder).video_path
        return self._paths[name]


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
