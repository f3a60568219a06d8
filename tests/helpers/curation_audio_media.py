"""Small real media for the curation audio-stage tests, made by ffmpeg in the test's tmp_path.

Speech and noise come from the bundled real recordings (``avforge/assets/audio``); video from ffmpeg's
lavfi sources. Every call runs ffmpeg as an argument list (no shell) with a time limit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from avforge.core import assets

ASSETS = assets.AUDIO_DIR
SPEECH_FILES = (
    "cmu_arctic_us_aew_a0001.wav",
    "cmu_arctic_us_axb_a0006.wav",
    "librispeech_example1.wav",
    "librispeech_example6.wav",
)


def ffmpeg(*args: str | Path) -> None:
    """Run ffmpeg quietly with ``args``; raise with its stderr on failure."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {args}: {proc.stderr.decode(errors='replace')}")


def load_asset(name: str) -> np.ndarray:
    """A bundled recording as float32 mono at 16 kHz."""
    audio, rate = sf.read(ASSETS / name, dtype="float32")
    assert rate == 16000
    return audio


def trimmed_speech(name: str, threshold_db: float = -35.0) -> np.ndarray:
    """A bundled utterance with leading/trailing silence cut (10 ms frames under peak + threshold)."""
    audio = load_asset(name)
    frames = audio[: audio.size // 160 * 160].reshape(-1, 160)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    active = np.flatnonzero(level > level.max() + threshold_db)
    return audio[active[0] * 160 : (active[-1] + 1) * 160].copy()


def write_wav(path: Path, audio: np.ndarray, rate: int = 16000) -> Path:
    sf.write(path, np.asarray(audio, np.float32), rate, subtype="FLOAT")
    return path
