"""Examples for listening and looking (``avforge mix render``): a few recipes as WAV + MP4.

For each recipe, in ``out/<mixture_id>/``: ``mixture.wav``, ``target_<i>.wav`` per speaker,
``noise.wav`` when there is noise (16-bit PCM, 16 kHz), ``recipe.json``, and ``faces.mp4``: the
speakers' face streams side by side at 25 fps (missing frames black) with the mixture as its sound
track (H.264 + AAC through the system ffmpeg). Nothing here is used for training.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from manifests.schema import MixtureSpec
from mixing.render import MixtureRenderer, RenderedMixture

PANEL_PX = 96


class ExampleError(RuntimeError):
    """ffmpeg failed to write an example video."""


def faces_side_by_side(crops: np.ndarray, panel_px: int = PANEL_PX) -> np.ndarray:
    """(n, V, H, W, 3) uint8 -> (V, panel_px, n · panel_px, 3) uint8: one panel per speaker."""
    import cv2

    n, v = crops.shape[:2]
    out = np.zeros((v, panel_px, n * panel_px, 3), np.uint8)
    for i in range(n):
        for k in range(v):
            out[k, :, i * panel_px : (i + 1) * panel_px] = cv2.resize(
                crops[i, k], (panel_px, panel_px), interpolation=cv2.INTER_NEAREST
            )
    return out


def write_video(frames: np.ndarray, audio_path: Path, path: Path, fps: float) -> None:
    """Encode (V, H, W, 3) uint8 RGB frames with ``audio_path`` as sound into ``path`` (MP4)."""
    _, h, w, _ = frames.shape
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}"]
    cmd += ["-r", str(fps), "-i", "pipe:0", "-i", str(audio_path), "-c:v", "libx264"]
    cmd += ["-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)]
    proc = subprocess.run(
        cmd, input=frames.tobytes(), capture_output=True, check=False, timeout=300
    )
    if proc.returncode != 0:
        raise ExampleError(
            f"ffmpeg failed on {path}: {proc.stderr.decode(errors='replace').strip()[-300:]}"
        )


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def write_example(
    rendered: RenderedMixture, out_dir: Path, *, sample_rate_hz: int, fps: float
) -> Path:
    """Write one rendered recipe into ``out_dir / mixture_id``; returns that folder."""
    folder = out_dir / rendered.spec.mixture_id
    folder.mkdir(parents=True, exist_ok=True)
    soundfile.write(folder / "mixture.wav", rendered.mixture, sample_rate_hz, subtype="PCM_16")
    for i, target in enumerate(rendered.targets):
        soundfile.write(folder / f"target_{i}.wav", target, sample_rate_hz, subtype="PCM_16")
    if rendered.spec.noise_id is not None:
        soundfile.write(folder / "noise.wav", rendered.noise, sample_rate_hz, subtype="PCM_16")
    recipe = {k: _plain(v) for k, v in dataclasses.asdict(rendered.spec).items()}
    (folder / "recipe.json").write_text(json.dumps(recipe, indent=2))
    if rendered.face_crops is not None:
        write_video(
            faces_side_by_side(rendered.face_crops),
            folder / "mixture.wav",
            folder / "faces.mp4",
            fps,
        )
    return folder


def write_examples(
    renderer: MixtureRenderer, specs: Sequence[MixtureSpec], out_dir: Path
) -> list[Path]:
    """Render ``specs`` and write each as an example folder; returns the folders."""
    cfg = renderer.config
    return [
        write_example(renderer(spec), out_dir, sample_rate_hz=cfg.sample_rate_hz, fps=cfg.fps)
        for spec in specs
    ]
