"""Rendered scenario videos and bad-input media for the curation pipeline tests.

Renders are cached per test session (keyed by name, in the session's one
:class:`avforge.testing.videos.RenderCache`), so every test module shares one render of each video.
Everything is derived from the synthetic generator (``avforge.synth``) and ffmpeg; nothing is
downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avforge.synth import RenderConfig, Scenario, render_scenario, section
from avforge.synth import SectionKind as K
from curation.speaker import SpeakerConfig
from tests.helpers.synth_videos import session_cache

SYNTH_SPEAKER = SpeakerConfig(min_speaking_score=-20.0, min_sync_confidence=-20.0)
"""The active-speaker stage on GENERATED talks: it runs (crops, MFCCs, scores, lip features all go
through the pipeline), but its decisions are open: the generator's mouths are driven by the speech
envelope, so no keep/reject decision of a real active-speaker model may be tested (or calibrated) on
them. Those decisions are tested on real clips (tests/curation/test_real_talks.py)."""

FAST_RENDER = RenderConfig(preset="ultrafast", crf=28)


def cached(factory: Any, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` once per session for ``name`` (the session's one render cache,
    :func:`tests.helpers.synth_videos.session_cache`); returns the path it made."""
    return session_cache(factory).get(name, build)


def ffmpeg(*args: str | Path) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def scenario_mixed(name: str = "mixed", seed: int = 1) -> Scenario:
    """Every section kind, long enough for 3 s windows after edge margins (34 s)."""
    return Scenario.from_parts(
        name,
        [
            section(K.CLEAN, 6.0, "aew"),
            section(K.SILENCE, 4.0, "aew"),
            section(K.TWO_FACES, 5.0, "aew", "axb"),
            section(K.NO_FACE, 4.0, "axb"),
            section(K.NOISY, 5.0, "aew", snr_db=0.0),
            section(K.DUBBED, 5.0, "aew", voice_id="axb"),
            section(K.CLEAN, 5.0, "axb"),
        ],
        seed=seed,
    )


def scenario_clean(
    name: str, speaker: str = "aew", duration_s: float = 8.0, seed: int = 0
) -> Scenario:
    return Scenario.from_parts(name, [section(K.CLEAN, duration_s, speaker)], seed=seed)


def render(folder: Path, scenario: Scenario) -> Path:
    return render_scenario(scenario, folder, FAST_RENDER).video_path


def derive(src: Path, out: Path, *ffmpeg_args: str) -> Path:
    """``out`` made from ``src`` with ffmpeg output options ``ffmpeg_args``."""
    ffmpeg("-i", src, *ffmpeg_args, out)
    return out


def bad_inputs(folder: Path, clean: Path) -> dict[str, Path]:
    """Bad and odd media files derived from the clean talk ``clean`` (name -> path)."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    out["zero_byte"] = folder / "zero_byte.mp4"
    out["zero_byte"].write_bytes(b"")
    data = clean.read_bytes()
    out["truncated"] = folder / "truncated.mp4"
    out["truncated"].write_bytes(data[: len(data) // 3])
    out["no_audio"] = derive(clean, folder / "no_audio.mp4", "-an", "-c:v", "copy")
    out["no_video"] = derive(clean, folder / "no_video.m4a", "-vn", "-c:a", "copy")
    out["audio_8k"] = derive(
        clean, folder / "audio_8k.mp4", "-c:v", "copy", "-ar", "8000", "-ac", "1"
    )
    out["stereo_48k"] = derive(
        clean, folder / "stereo_48k.mp4", "-c:v", "copy", "-ar", "48000", "-ac", "2"
    )
    # Pixels turned a quarter clockwise, with metadata that turns them back: upright on display.
    turned = derive(
        clean,
        folder / "turned.mp4",
        "-vf",
        "transpose=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "copy",
    )
    out["rotated"] = derive(
        turned, folder / "rotated.mp4", "-c", "copy", "-metadata:s:v", "rotate=90"
    )
    return out


def copy_to(src: Path, folder: Path, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / (name or src.name)
    shutil.copyfile(src, dst)
    return dst


EXPECTED_REASON = {
    "silence": "no_speech",
    "two_faces": "multiple_faces",
    "no_face": "no_face",
    "noisy": "low_snr",
}
"""The reject reason each non-clean section kind must get (on generated talks; ``dubbed`` sections
are the active-speaker stage's decision, tested on real clips: see :data:`SYNTH_SPEAKER`)."""
IGNORED_KINDS = ("dubbed",)
"""Section kinds left out of the generated talks' precision (see :data:`SYNTH_SPEAKER`)."""


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def score_against_truth(
    segments: list[dict[str, Any]], truth: dict[str, Any], offset_s: float = 0.0
) -> dict[str, Any]:
    """Precision/recall of kept seconds vs clean sections, and each other section's reasons.

    ``segments``: ``read_segments`` rows of one source. Returns ``precision``, ``recall`` and
    ``wrong``: a list of (section kind, start_s, reasons seen) for non-clean sections whose segments
    (those with most of their length inside the section) are not all rejected with the expected
    reason, or which got no segment at all.
    """
    sections = truth["sections"]
    clean = [
        (s["start_s"] + offset_s, s["end_s"] + offset_s)
        for s in sections
        if s["clean_single_speaker"]
    ]
    ignored = [
        (s["start_s"] + offset_s, s["end_s"] + offset_s)
        for s in sections
        if s["kind"] in IGNORED_KINDS
    ]
    kept = [
        (r["start_s"], r["end_s"])
        for r in segments
        if r["kept"]
        and sum(_overlap(r["start_s"], r["end_s"], a, b) for a, b in ignored)
        <= 0.5 * (r["end_s"] - r["start_s"])
    ]
    kept_s = sum(e - s for s, e in kept)
    inside = sum(_overlap(s, e, c0, c1) for s, e in kept for c0, c1 in clean)
    clean_s = sum(c1 - c0 for c0, c1 in clean)
    wrong = []
    for sec in sections:
        want = EXPECTED_REASON.get(sec["kind"])
        if want is None:
            continue
        s0, s1 = sec["start_s"] + offset_s, sec["end_s"] + offset_s
        mine = [
            r
            for r in segments
            if _overlap(r["start_s"], r["end_s"], s0, s1) > 0.5 * (r["end_s"] - r["start_s"])
        ]
        reasons = sorted({str(r["reason"]) for r in mine})
        if not mine or any(r["kept"] or r["reason"] != want for r in mine):
            wrong.append((sec["kind"], sec["start_s"], reasons))
    return {
        "precision": inside / kept_s if kept_s else 0.0,
        "recall": inside / clean_s if clean_s else 1.0,
        "wrong": wrong,
        "kept_s": kept_s,
    }
