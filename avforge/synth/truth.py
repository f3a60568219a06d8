"""Ground truth of a rendered talk: the JSON written next to the video (same stem, ``.json``).

Format ``avforge.synth.truth/1`` (see docs/generator.md): video file and geometry, rates, duration,
the speakers (face + voice), and every section with its times, kind, speakers, SNR, the boxes of the
visible faces and whether it is clean single-speaker speech. Readers use :func:`load_truth` and
:func:`clean_single_speaker_intervals`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from avforge.core.media import SAMPLE_RATE_HZ
from avforge.synth.timeline import FPS, HEIGHT, WIDTH, Plan
from avforge.synth.voices import SPEAKERS

TRUTH_FORMAT = "avforge.synth.truth/1"


def _box(box: tuple[float, float, float, float]) -> list[float]:
    return [round(v, 1) for v in box]


def truth_dict(plan: Plan, video_path: Path, audio_rate_hz: int) -> dict[str, Any]:
    """The ground truth of ``plan`` rendered at ``video_path`` (plain JSON-able data)."""
    scenario = plan.scenario
    sections = []
    for index, sp in enumerate(plan.sections):
        sec = sp.section
        faces = [
            {
                "speaker_id": f.speaker_id,
                "box_xyxy": _box(f.box_xyxy(0)),
                "mouth_xy": [round(v, 1) for v in f.mouth_xy(0)],
                "speaking": f.speaking,
                "mouth_driven_by": f.mouth_driver_id,
            }
            for f in sp.faces
        ]
        sections.append(
            {
                "index": index,
                "start_s": sec.start_s,
                "end_s": sec.end_s,
                "first_frame": sp.first_frame,
                "end_frame": sp.end_frame,
                "kind": sec.kind.value,
                "speaker_ids": list(sec.speaker_ids),
                "visible_speaker_ids": list(sec.visible_speaker_ids),
                "audible_speaker_ids": list(sec.audible_speaker_ids),
                "voice_id": sec.voice_id,
                "snr_db": sec.snr_db,
                "measured_snr_db": sp.measured_snr_db,
                "noise": sec.noise.value if sec.noise else None,
                "alternate": sec.alternate,
                "faces": faces,
                "clean_single_speaker": sec.clean_single_speaker,
            }
        )
    return {
        "format": TRUTH_FORMAT,
        "scenario": scenario.name,
        "seed": scenario.seed,
        "video": video_path.name,
        "video_path": str(video_path.resolve()),
        "width": WIDTH,
        "height": HEIGHT,
        "fps": FPS,
        "n_frames": plan.n_frames,
        "sample_rate_hz": audio_rate_hz,
        "speech_sample_rate_hz": SAMPLE_RATE_HZ,
        "duration_s": scenario.duration_s,
        "face_height_px": scenario.face_height_px,
        "drift_px": scenario.drift_px,
        "speakers": {
            s: {
                "face_id": SPEAKERS[s].face_id,
                "gender": SPEAKERS[s].gender.value,
                "voice": SPEAKERS[s].voice_source,
            }
            for s in scenario.speaker_ids
        },
        "sections": sections,
        "clean_single_speaker_s": round(
            sum(s.end_s - s.start_s for s in scenario.sections if s.clean_single_speaker), 6
        ),
    }


def load_truth(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ground-truth JSON (the video's path with ``.json``, or the JSON itself)."""
    path = Path(path)
    if path.suffix != ".json":
        path = path.with_suffix(".json")
    truth = json.loads(path.read_text())
    if truth.get("format") != TRUTH_FORMAT:
        raise ValueError(f"{path}: not an avforge ground truth ({truth.get('format')!r})")
    return truth


def clean_single_speaker_intervals(truth: dict[str, Any]) -> list[tuple[float, float, str]]:
    """``(start_s, end_s, speaker_id)`` of every clean single-speaker section, in time order."""
    return [
        (s["start_s"], s["end_s"], s["speaker_ids"][0])
        for s in truth["sections"]
        if s["clean_single_speaker"]
    ]
