"""Render a scenario to an MP4 talk video plus its ground-truth JSON (same stem, ``.json``).

Output: 640x360, 25 fps, H.264 (libx264, yuv420p) and AAC mono at ``audio_rate_hz`` (48 kHz by default,
like most uploaded talks; the speech itself is 16 kHz material upsampled by ffmpeg). Frames are composed
one at a time (background copy + a few alpha-blended sprites) and piped as raw RGB into one ffmpeg
process that also reads the WAV of the planned audio and muxes both; nothing goes through a shell.
Files appear atomically (written under a temporary name, then renamed). Bit-exact flags make the
output depend only on the scenario, the config and the ffmpeg build.

Failure modes: :class:`MissingToolError` without ffmpeg; :class:`RenderError` (with ffmpeg's stderr
tail) when encoding fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from avforge.core.config import check_choice, check_range
from avforge.core.media import SAMPLE_RATE_HZ
from avforge.synth.errors import MissingToolError, RenderError
from avforge.synth.scenario import Scenario
from avforge.synth.sprite import paste
from avforge.synth.timeline import FPS, HEIGHT, WIDTH, Plan, plan_scenario
from avforge.synth.truth import truth_dict

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


@dataclass(frozen=True)
class RenderConfig:
    """How to encode (what to show is the scenario's business)."""

    preset: str = "veryfast"
    """libx264 preset."""
    crf: int = 23
    """libx264 constant rate factor (lower: better quality, bigger files)."""
    audio_rate_hz: int = 48_000
    """AAC sample rate of the output."""
    audio_bitrate_kbps: int = 96
    room_tone_db: float = -62.0
    """Level of the room tone under the whole video (dBFS RMS)."""
    n_mouth_levels: int = 12
    """Quantisation steps of the mouth opening."""

    def __post_init__(self) -> None:
        check_choice(self, "preset", X264_PRESETS)
        check_range(self, "crf", 0, 51)
        check_choice(self, "audio_rate_hz", (16_000, 22_050, 32_000, 44_100, 48_000))
        check_range(self, "audio_bitrate_kbps", 32, 320)
        check_range(self, "room_tone_db", -90.0, -40.0)
        check_range(self, "n_mouth_levels", 2, 64)


@dataclass(frozen=True)
class RenderedVideo:
    video_path: Path
    truth_path: Path
    truth: dict[str, Any]


def iter_frames(plan: Plan) -> Iterator[np.ndarray]:
    """The video frames of ``plan`` in order: RGB uint8 (HEIGHT, WIDTH, 3), ``plan.n_frames`` of them."""
    for sec in plan.sections:
        for k in range(sec.n_frames):
            frame = sec.background.copy()
            for face in sec.faces:
                paste(frame, face.sprite, int(face.levels[k]), int(face.x[k]), int(face.y[k]))
            yield frame


def ffmpeg_args(exe: str, wav: Path, out: Path, config: RenderConfig) -> list[str]:
    """The ffmpeg argument list: raw RGB frames on stdin + ``wav`` -> H.264/AAC MP4 at ``out``."""
    return [
        exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-framerate", str(FPS),
        "-i", "pipe:0",
        "-i", str(wav),
        "-map", "0:v:0", "-map", "1:a:0",
        "-c:v", "libx264", "-preset", config.preset, "-crf", str(config.crf),
        "-pix_fmt", "yuv420p", "-g", str(2 * FPS),
        "-c:a", "aac", "-b:a", f"{config.audio_bitrate_kbps}k", "-ar", str(config.audio_rate_hz),
        "-ac", "1",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        "-flags:a", "+bitexact", "-movflags", "+faststart",
        "-f", "mp4", str(out),
    ]  # fmt: skip


def _encode(plan: Plan, out: Path, config: RenderConfig) -> None:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MissingToolError("ffmpeg is not installed (apt-get install ffmpeg)")
    with tempfile.TemporaryDirectory(prefix="avforge-render-", dir=out.parent) as tmp:
        wav = Path(tmp) / "audio.wav"
        sf.write(str(wav), plan.audio, SAMPLE_RATE_HZ, subtype="PCM_16")
        partial = Path(tmp) / "video.mp4"
        log_path = Path(tmp) / "ffmpeg.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                ffmpeg_args(exe, wav, partial, config), stdin=subprocess.PIPE, stderr=log
            )
            assert proc.stdin is not None
            pipe_broke = False
            try:
                for frame in iter_frames(plan):
                    proc.stdin.write(memoryview(frame).cast("B"))
                proc.stdin.close()
            except BrokenPipeError:
                pipe_broke = True  # ffmpeg died: its exit code and log say why, below
            rc = proc.wait()
        if rc != 0 or pipe_broke:
            tail = log_path.read_text(errors="replace")[-1500:]
            raise RenderError(f"ffmpeg exited with {rc} rendering {out.name}: {tail}")
        os.replace(partial, out)


def render_scenario(
    scenario: Scenario, out_dir: str | os.PathLike[str], config: RenderConfig | None = None
) -> RenderedVideo:
    """Render ``scenario`` to ``out_dir/<scenario.name>.mp4`` and its ground truth ``.json``.

    Returns the two paths and the ground truth (see docs/generator.md for its format).
    """
    config = config or RenderConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / f"{scenario.name}.mp4"
    truth_path = video.with_suffix(".json")
    plan = plan_scenario(scenario, config.room_tone_db, config.n_mouth_levels)
    _encode(plan, video, config)
    truth = truth_dict(plan, video, config.audio_rate_hz)
    partial = truth_path.with_name(f".{truth_path.name}.partial")
    partial.write_text(json.dumps(truth, indent=1) + "\n")
    os.replace(partial, truth_path)
    return RenderedVideo(video, truth_path, truth)
