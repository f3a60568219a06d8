"""Curation speed: real-time factor per core on a 10-minute 360p talk, next to the decode-only floor.

Run: ``.venv/bin/python benchmarks/curation.py [--input real|generated] [--duration-s 600]
[--workdir DIR] [--json OUT] [--asd-sample-s 60]``

1. The input (cached in ``--workdir``), ``--duration-s`` seconds (10 min by default):

   - ``real`` (default): the bundled REAL talking-face clips with truth "keep"
     (``avforge.variants.BUNDLED_CLIPS``: HDTF, retalking, portrait; ~70 s together) played in turn
     until the duration is reached, each scaled to fit 640x360 and padded (portrait clips get bars at
     the sides), 25 fps, H.264 (veryfast, CRF 23, 2 s GOP) + AAC mono 16 kHz;
   - ``generated``: ``long_talk`` (``avforge.synth``: 640x360, 25 fps, drawn faces, mostly clean
     speech with noisy and silent stretches; 48 kHz AAC), the input of the earlier measurements.

2. Curation: :func:`curation.process.process_source` on the file, in this process (what one Dask worker
   with one thread does per source): probe, audio, VAD, face detection at 5 fps, tracking, windows,
   SNR, 25 fps decode + quality + the active-speaker stage (LR-ASD) of surviving windows, crops,
   export rows. The face detector and the LR-ASD weights are loaded first (once per worker in a real
   run). While it runs, stage timers (CPU seconds of this process, all its threads, and wall seconds)
   wrap the active-speaker stage (``WindowChecker.active_speaker``: LR-ASD face crops + MFCC + the
   network; ``ActiveSpeaker.score``: the network alone; ``LRASD.visual_embed``: its visual encoder),
   the face detector's ``detect`` and the whole in-process detection pass (``detect_faces``:
   detector, appearance, frame histograms, reading the frames). They are installed and removed like
   the decode recorder (patched, restored in ``finally``).
3. The floor, measured right after in the same run: every ffmpeg decode the curation made, replayed
   with the same arguments (recorded while curating), doing nothing with the samples and pixels: the
   whole audio at 16 kHz, the whole video at the detection rate and width, and the spans of windows
   that reached the 25 fps stage, at 25 fps, cropped to the face region as the curation decodes them.
   For comparison with earlier runs, the old floor (those windows decoded whole-frame at
   ``segments.clip_width``) is measured too.
4. Options measured side by side, without changing the curation: the first ``--asd-sample-s``
   seconds of scored windows (their crops, MFCCs and speech masks, kept while curating) are scored
   again, each window by every variant in turn: as the curation does (float32), with the visual
   encoder under ``torch.autocast(bfloat16)``, with ``speaker.offset_step_frames`` 4 (a config knob:
   fewer sync offsets), and both; CPU seconds of each, the largest differences of the scores and the
   decisions that change (each window alone against ``min_speaking_score`` and
   ``min_sync_confidence``, without pooling with neighbouring windows). The curation's CPU with each
   option is projected from the network's share.

Both curation and floor are timed in wall seconds and in CPU seconds (this process plus its ffmpeg
children), because the benchmark machine may be shared: CPU time is what "per core" means, and it is
not inflated by other processes waiting for the same cores. Real-time factor = media seconds /
seconds spent. Targets: >= 10x real time per core, and curation CPU within 3x of the floor's.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import curation.music  # noqa: E402
import curation.process  # noqa: E402
import curation.speaker  # noqa: E402
import curation.windows  # noqa: E402
from avforge.synth import RenderConfig, long_talk, render_scenario  # noqa: E402
from avforge.variants import BUNDLED_CLIPS  # noqa: E402
from curation.config import CurateConfig  # noqa: E402
from curation.decode import decode_audio, decode_video, iter_video_frames, probe_media  # noqa: E402
from curation.faces import FaceDetector, load_detector  # noqa: E402
from curation.lrasd import LRASD, load_lrasd  # noqa: E402
from curation.process import process_source  # noqa: E402
from curation.sources import Source  # noqa: E402
from manifests.schema import SourceKind  # noqa: E402

WIDTH, HEIGHT, FPS, AUDIO_RATE_HZ = 640, 360, 25, 16_000
TARGET_RTF, TARGET_FLOOR_RATIO = 10.0, 3.0


def cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (ffmpeg), user + system."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Timer:
    def __enter__(self) -> Timer:
        self.wall0, self.cpu0 = time.perf_counter(), cpu_s()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = cpu_s() - self.cpu0


# --------------------------------------------------------------------------------------------- inputs


def render(workdir: Path, duration_s: float) -> Path:
    name = f"long_talk_{int(duration_s)}s"
    video = workdir / f"{name}.mp4"
    if not video.exists():
        t0 = time.perf_counter()
        render_scenario(long_talk(duration_s=duration_s, name=name), workdir, RenderConfig())
        print(f"rendered {video.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return video


def _ffmpeg(*args: str) -> None:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise SystemExit("ffmpeg is not installed")
    subprocess.run(
        [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=1800,
    )


def real_talk(workdir: Path, duration_s: float) -> Path:
    """The bundled "keep" clips in turn until ``duration_s``, fitted to 640x360 (see module docstring)."""
    clips = [c for c in BUNDLED_CLIPS if c.truth == "keep"]
    video = workdir / f"real_talk_{int(duration_s)}s.mp4"
    if video.exists():
        return video
    t0 = time.perf_counter()
    parts = workdir / "real_talk_parts"
    parts.mkdir(parents=True, exist_ok=True)
    fit = (
        f"scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=decrease,"
        f"pad={WIDTH}:{HEIGHT}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={FPS}"
    )
    lengths: list[tuple[Path, float]] = []
    for clip in clips:
        part = parts / f"{clip.name}.mkv"
        length = probe_media(str(clip.path)).duration_s
        if not part.exists():
            # near-lossless video and PCM audio cut to the video's length: no drift when concatenated
            _ffmpeg(
                *("-i", str(clip.path), "-vf", fit),
                *("-af", f"aresample={AUDIO_RATE_HZ},apad", "-ac", "1", "-t", f"{length:.3f}"),
                *("-c:v", "libx264", "-preset", "veryfast", "-crf", "12", "-pix_fmt", "yuv420p"),
                *("-c:a", "pcm_s16le", str(part)),
            )
        lengths.append((part, length))
    listing = parts / f"concat_{int(duration_s)}s.txt"
    lines, total = [], 0.0
    while total < duration_s:
        for part, length in lengths:
            lines.append(f"file '{part.resolve()}'")
            total += length
            if total >= duration_s:
                break
    listing.write_text("\n".join(lines) + "\n")
    partial = workdir / f".{video.name}.partial.mp4"
    _ffmpeg(
        *("-f", "concat", "-safe", "0", "-i", str(listing), "-t", f"{duration_s:.3f}"),
        *("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"),
        *("-g", str(2 * FPS), "-c:a", "aac", "-b:a", "64k", "-ar", str(AUDIO_RATE_HZ), "-ac", "1"),
        *("-movflags", "+faststart", str(partial)),
    )
    partial.rename(video)
    print(
        f"built {video.name} from {len(clips)} bundled clips ({len(lines)} pieces) "
        f"in {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    return video


# ------------------------------------------------------------------------------ the decode recording

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def recording(calls: list[Call], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` that also appends each call (function, args, kwargs) to ``calls``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append((fn, args, kwargs))
        return fn(*args, **kwargs)

    return wrapper


def replay_floor(calls: list[Call]) -> None:
    """Run the recorded decodes again, dropping their output."""
    for fn, args, kwargs in calls:
        out = fn(*args, **kwargs)
        if not isinstance(out, np.ndarray):
            for _chunk in out:
                pass


def whole_frame_floor(path: str, cfg: CurateConfig, spans: list[tuple[float, float]]) -> None:
    """The earlier floor: audio, detection pass, and each 25 fps window decoded whole-frame."""
    info = probe_media(path)
    decode_audio(path, cfg.decode.sample_rate_hz, cfg.decode.channel, info=info)
    for _chunk in iter_video_frames(
        path,
        cfg.decode.detect_fps,
        cfg.decode.detect_width,
        chunk_frames=cfg.decode.chunk_frames,
        info=info,
    ):
        pass
    for start_s, end_s in spans:
        decode_video(
            path,
            cfg.decode.clip_fps,
            cfg.segments.clip_width,
            start_s=start_s,
            duration_s=end_s - start_s,
            info=info,
        )


def curate_recording(source: Source, cfg: CurateConfig, scratch: str) -> tuple[Any, list[Call]]:
    """``process_source`` with every ffmpeg decode it makes recorded for :func:`replay_floor`."""
    calls: list[Call] = []
    patched = [
        (curation.process, "decode_audio"),
        (curation.process, "iter_video_frames"),
        (curation.windows, "iter_video_frames"),
    ]
    originals = [getattr(mod, name) for mod, name in patched]
    for (mod, name), fn in zip(patched, originals, strict=True):
        setattr(mod, name, recording(calls, fn))
    try:
        return process_source(source, cfg, scratch), calls
    finally:
        for (mod, name), fn in zip(patched, originals, strict=True):
            setattr(mod, name, fn)


# ---------------------------------------------------------------------------------- the stage timers


@dataclass
class Stage:
    """What a timed function cost over its calls: CPU s of this process (all threads) and wall s."""

    calls: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    frames: int = 0
    """Video frames handled (the active-speaker stage: 25 fps frames scored)."""
    kept: list[tuple[Any, ...]] = field(default_factory=list)
    """Copies of the first calls' arguments (for the side-by-side replay), when asked for."""


def timing(
    stage: Stage,
    fn: Callable[..., Any],
    frames_of: Callable[[tuple[Any, ...]], int] | None = None,
    keep_frames: int = 0,
) -> Callable[..., Any]:
    """``fn`` that also adds each call's CPU and wall seconds (and frames) to ``stage``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if frames_of is not None:
            n = frames_of(args)
            if stage.frames < keep_frames:
                stage.kept.append(args[1:])
            stage.frames += n
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            stage.cpu += time.process_time() - cpu0
            stage.wall += time.perf_counter() - wall0
            stage.calls += 1

    return wrapper


@contextlib.contextmanager
def timed_stages(detector: FaceDetector, keep_frames: int) -> Iterator[dict[str, Stage]]:
    """Stage timers on the active-speaker stage and face detection, removed on exit."""
    stages = {
        name: Stage()
        for name in (
            "asd",
            "asd_network",
            "asd_visual",
            "asd_audio",
            "asd_backend",
            "detector",
            "detection_pass",
            "music",
        )
    }
    patched: list[tuple[Any, str, Callable[..., Any]]] = [
        (
            curation.windows.WindowChecker,
            "active_speaker",
            lambda fn: timing(stages["asd"], fn, lambda a: a[1].num_frames),
        ),
        (
            curation.speaker.ActiveSpeaker,
            "score",
            lambda fn: timing(stages["asd_network"], fn, lambda a: len(a[1]), keep_frames),
        ),
        (LRASD, "visual_embed", lambda fn: timing(stages["asd_visual"], fn)),
        (LRASD, "audio_embed", lambda fn: timing(stages["asd_audio"], fn)),
        (LRASD, "backend", lambda fn: timing(stages["asd_backend"], fn)),
        (type(detector), "detect", lambda fn: timing(stages["detector"], fn, lambda a: 1)),
        (curation.process, "detect_faces", lambda fn: timing(stages["detection_pass"], fn)),
        (
            curation.music.MusicDetector,
            "score",
            lambda fn: timing(stages["music"], fn, lambda a: len(a[1])),
        ),
    ]
    originals = [getattr(owner, name) for owner, name, _wrap in patched]
    for (owner, name, wrap), fn in zip(patched, originals, strict=True):
        setattr(owner, name, wrap(fn))
    try:
        yield stages
    finally:
        for (owner, name, _wrap), fn in zip(patched, originals, strict=True):
            setattr(owner, name, fn)


@contextlib.contextmanager
def bf16_visual_encoder() -> Iterator[None]:
    """LR-ASD's visual encoder under ``torch.autocast(bfloat16)`` (output back to float32)."""
    original = LRASD.visual_embed

    def bf16_visual(self: LRASD, faces: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return original(self, faces).float()

    LRASD.visual_embed = bf16_visual  # type: ignore[method-assign]
    try:
        yield
    finally:
        LRASD.visual_embed = original  # type: ignore[method-assign]


OPTIONS = {
    "bf16": "visual encoder under bf16 autocast",
    "step4": "`speaker.offset_step_frames` 4 ({step4_offsets} offsets instead of {asd_offsets})",
    "bf16_step4": "both",
}
"""Label of each option (formatted with the results)."""


def num_offsets(cfg: curation.speaker.SpeakerConfig) -> int:
    """Audio offsets LR-ASD scores per window (the sync search and the contrast grid)."""
    return len({*cfg.near_frames, *cfg.far_frames})


def options_side_by_side(cfg: CurateConfig, kept: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The kept windows scored again, each by the curation's scorer (float32, as curated) and by
    each of :data:`OPTIONS` in turn; CPU s per scored second, largest differences, decisions changed."""
    step4 = dataclasses.replace(cfg.speaker, offset_step_frames=4)
    scorers = {
        "fp32": (curation.speaker.ActiveSpeaker(cfg.speaker), contextlib.nullcontext),
        "bf16": (curation.speaker.ActiveSpeaker(cfg.speaker), bf16_visual_encoder),
        "step4": (curation.speaker.ActiveSpeaker(step4), contextlib.nullcontext),
        "bf16_step4": (curation.speaker.ActiveSpeaker(step4), bf16_visual_encoder),
    }
    spk, sync = cfg.speaker.min_speaking_score, cfg.speaker.min_sync_confidence
    cpu = dict.fromkeys(scorers, 0.0)
    diffs = {k: {"frame": 0.0, "speaking": 0.0, "sync": 0.0, "flips": 0} for k in OPTIONS}
    frames = 0
    for faces, mfcc, speech, energy in kept:
        frames += len(faces)
        got = {}
        for name, (scorer, ctx) in scorers.items():
            with ctx():
                c0 = time.process_time()
                got[name] = scorer.score(faces, mfcc, speech, energy)
                cpu[name] += time.process_time() - c0
        a = got["fp32"]
        for name, d in diffs.items():
            b = got[name]
            d["frame"] = max(d["frame"], float(np.abs(a.frame_scores - b.frame_scores).max()))
            d["speaking"] = max(d["speaking"], abs(a.speaking_score - b.speaking_score))
            d["sync"] = max(d["sync"], abs(a.sync_confidence - b.sync_confidence))
            ok_a = a.speaking_score >= spk and a.sync_confidence >= sync
            ok_b = b.speaking_score >= spk and b.sync_confidence >= sync
            d["flips"] += ok_a != ok_b
    seconds = frames / FPS
    out: dict[str, Any] = {
        "sample_windows": len(kept),
        "sample_seconds": seconds,
        "sample_fp32_cpu_per_s": cpu["fp32"] / seconds,
    }
    for name, d in diffs.items():
        out[f"{name}_cpu_per_s"] = cpu[name] / seconds
        out[f"{name}_speedup"] = cpu["fp32"] / cpu[name]
        out[f"{name}_max_frame_score_diff"] = d["frame"]
        out[f"{name}_max_speaking_score_diff"] = d["speaking"]
        out[f"{name}_max_sync_confidence_diff"] = d["sync"]
        out[f"{name}_decision_flips"] = d["flips"]
    return out


# ------------------------------------------------------------------------------------------- the run


def run(input_kind: str, duration_s: float, workdir: Path, asd_sample_s: float) -> dict[str, Any]:
    cfg = CurateConfig()
    video = real_talk(workdir, duration_s) if input_kind == "real" else render(workdir, duration_s)
    detector = load_detector(cfg.faces)
    if cfg.speaker.enabled:
        load_lrasd(cfg.speaker.weights)  # cached per process, as in a worker
    source = Source("bench", str(video), SourceKind.LOCAL)
    with timed_stages(detector, round(asd_sample_s * FPS)) as stages, Timer() as cur:
        result, calls = curate_recording(source, cfg, str(workdir / "scratch"))
    media_s = float(result.source.duration_s or 0.0)
    spans = [(s.start_s, s.end_s) for s in result.segments if s.face_missing_ratio is not None]
    with Timer() as floor:
        replay_floor(calls)
    with Timer() as old_floor:
        whole_frame_floor(str(video), cfg, spans)
    kept_s = sum(c.duration_s for c in result.clips)
    asd, net, visual = stages["asd"], stages["asd_network"], stages["asd_visual"]
    audio, backend = stages["asd_audio"], stages["asd_backend"]
    det, det_pass = stages["detector"], stages["detection_pass"]
    music = stages["music"]
    music_s = music.frames / cfg.decode.sample_rate_hz  # samples scored -> seconds
    asd_s = asd.frames / FPS
    other_cpu = cur.cpu - asd.cpu
    budget = min(media_s / TARGET_RTF, TARGET_FLOOR_RATIO * floor.cpu)
    out: dict[str, Any] = {
        "input": input_kind,
        "source_status": str(result.source.status),
        "decodes_at_25fps": sum(1 for _fn, _args, kw in calls if "crop" in kw),
        "media_s": media_s,
        "kept_s": kept_s,
        "windows": len(result.segments),
        "windows_kept": sum(1 for s in result.segments if s.kept),
        "windows_at_25fps": len(spans),
        "seconds_at_25fps": sum(e - s for s, e in spans),
        "curation_wall_s": cur.wall,
        "curation_cpu_s": cur.cpu,
        "floor_wall_s": floor.wall,
        "floor_cpu_s": floor.cpu,
        "rtf_per_core_cpu": media_s / cur.cpu,
        "rtf_wall_one_task": media_s / cur.wall,
        "floor_rtf_per_core_cpu": media_s / floor.cpu,
        "whole_frame_floor_cpu_s": old_floor.cpu,
        "whole_frame_floor_rtf_per_core_cpu": media_s / old_floor.cpu,
        "cpu_ratio_to_whole_frame_floor": cur.cpu / old_floor.cpu,
        "cpu_ratio_to_floor": cur.cpu / floor.cpu,
        "wall_ratio_to_floor": cur.wall / floor.wall,
        # the active-speaker stage (windows that reached it; seconds of 25 fps video it scored)
        "asd_windows": asd.calls,
        "asd_seconds": asd_s,
        "asd_cpu_s": asd.cpu,
        "asd_wall_s": asd.wall,
        "asd_network_cpu_s": net.cpu,
        "asd_prep_cpu_s": asd.cpu - net.cpu,
        "asd_visual_encoder_cpu_s": visual.cpu,
        "asd_visual_share_of_network": visual.cpu / net.cpu if net.cpu else 0.0,
        "asd_visual_cpu_per_scored_s": visual.cpu / asd_s if asd_s else 0.0,
        "asd_audio_encoder_cpu_s": audio.cpu,
        "asd_audio_cpu_per_scored_s": audio.cpu / asd_s if asd_s else 0.0,
        "asd_backend_cpu_s": backend.cpu,
        "asd_backend_cpu_per_scored_s": backend.cpu / asd_s if asd_s else 0.0,
        "asd_offsets": num_offsets(cfg.speaker),
        "step4_offsets": num_offsets(dataclasses.replace(cfg.speaker, offset_step_frames=4)),
        "asd_cpu_per_scored_s": asd.cpu / asd_s if asd_s else 0.0,
        "asd_network_cpu_per_scored_s": net.cpu / asd_s if asd_s else 0.0,
        "asd_prep_cpu_per_scored_s": (asd.cpu - net.cpu) / asd_s if asd_s else 0.0,
        "asd_share_of_curation_cpu": asd.cpu / cur.cpu,
        # face detection (5 fps pass over the whole file)
        "detector_frames": det.calls,
        "detector_cpu_s": det.cpu,
        "detector_ms_per_frame": 1000 * det.cpu / det.calls if det.calls else 0.0,
        "detector_share_of_curation_cpu": det.cpu / cur.cpu,
        "detection_pass_in_process_cpu_s": det_pass.cpu,
        "detection_pass_share_of_curation_cpu": det_pass.cpu / cur.cpu,
        # the music check (YAMNet on every window whose SNR was measured)
        "music_windows": music.calls,
        "music_seconds": music_s,
        "music_cpu_s": music.cpu,
        "music_cpu_per_s": music.cpu / music_s if music_s else 0.0,
        "music_share_of_curation_cpu": music.cpu / cur.cpu,
        # what is left without the active-speaker stage, and what the stage may cost to meet both
        "without_asd_cpu_s": other_cpu,
        "without_asd_rtf_per_core_cpu": media_s / other_cpu,
        "without_asd_cpu_ratio_to_floor": other_cpu / floor.cpu,
        "asd_cpu_budget_for_targets_s": budget - other_cpu,
        "asd_cpu_budget_per_scored_s": (budget - other_cpu) / asd_s if asd_s else 0.0,
    }
    if asd_sample_s > 0 and net.kept:
        out.update(options_side_by_side(cfg, net.kept))
        for name in OPTIONS:
            # projected: the network's CPU scaled by the measured speed-up (crops + MFCC unchanged)
            projected = cur.cpu - net.cpu + net.cpu / out[f"{name}_speedup"]
            out[f"{name}_projected_curation_cpu_s"] = projected
            out[f"{name}_projected_rtf_per_core_cpu"] = media_s / projected
            out[f"{name}_projected_cpu_ratio_to_floor"] = projected / floor.cpu
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def markdown(r: dict[str, Any]) -> str:
    what = {
        "real": "Bundled real talking-face clips concatenated to a 360p talk",
        "generated": "Generated 360p talk",
    }[r["input"]]
    lines = [
        f"{what} of {r['media_s']:.0f} s; {r['windows']} candidate windows, "
        f"{r['windows_at_25fps']} decoded at 25 fps ({r['seconds_at_25fps']:.0f} s, "
        f"{r['decodes_at_25fps']} ffmpeg runs), {r['asd_windows']} scored by the active-speaker "
        f"stage ({r['asd_seconds']:.0f} s), {r['windows_kept']} kept ({r['kept_s']:.0f} s).",
        "",
        "| | wall s | CPU s | real-time factor per core (CPU) |",
        "|---|---:|---:|---:|",
        f"| curation (one source, one worker thread) | {r['curation_wall_s']:.1f} | "
        f"{r['curation_cpu_s']:.1f} | {r['rtf_per_core_cpu']:.1f}x |",
        f"| decode-only floor (the same decodes replayed) | {r['floor_wall_s']:.1f} | "
        f"{r['floor_cpu_s']:.1f} | {r['floor_rtf_per_core_cpu']:.1f}x |",
        f"| curation / floor | {r['wall_ratio_to_floor']:.2f} | {r['cpu_ratio_to_floor']:.2f} | |",
        f"| earlier floor (windows decoded whole-frame) | | "
        f"{r['whole_frame_floor_cpu_s']:.1f} | {r['whole_frame_floor_rtf_per_core_cpu']:.1f}x |",
        "",
        "| inside the curation | CPU s | share of curation CPU | CPU s per second |",
        "|---|---:|---:|---:|",
        f"| active-speaker stage (crops + MFCC + LR-ASD) | {r['asd_cpu_s']:.1f} | "
        f"{100 * r['asd_share_of_curation_cpu']:.0f} % | "
        f"{r['asd_cpu_per_scored_s']:.3f} per scored s |",
        f"| of which the LR-ASD network (`ActiveSpeaker.score`) | {r['asd_network_cpu_s']:.1f} | "
        f"{100 * r['asd_network_cpu_s'] / r['curation_cpu_s']:.0f} % | "
        f"{r['asd_network_cpu_per_scored_s']:.3f} per scored s |",
        f"| of which the visual encoder (`LRASD.visual_embed`) | "
        f"{r['asd_visual_encoder_cpu_s']:.1f} | "
        f"{100 * r['asd_visual_encoder_cpu_s'] / r['curation_cpu_s']:.0f} % | "
        f"{r['asd_visual_cpu_per_scored_s']:.3f} per scored s |",
        f"| of which the audio encoder ({r['asd_offsets']} offsets) | "
        f"{r['asd_audio_encoder_cpu_s']:.1f} | "
        f"{100 * r['asd_audio_encoder_cpu_s'] / r['curation_cpu_s']:.0f} % | "
        f"{r['asd_audio_cpu_per_scored_s']:.3f} per scored s |",
        f"| of which the back end (fusion + GRUs, {r['asd_offsets']} offsets) | "
        f"{r['asd_backend_cpu_s']:.1f} | "
        f"{100 * r['asd_backend_cpu_s'] / r['curation_cpu_s']:.0f} % | "
        f"{r['asd_backend_cpu_per_scored_s']:.3f} per scored s |",
        f"| face detection (CenterFace, {r['detector_frames']} frames, "
        f"{r['detector_ms_per_frame']:.1f} ms each) | {r['detector_cpu_s']:.1f} | "
        f"{100 * r['detector_share_of_curation_cpu']:.0f} % | |",
        f"| detection pass in-process (detector + appearance + histograms + frame reads) | "
        f"{r['detection_pass_in_process_cpu_s']:.1f} | "
        f"{100 * r['detection_pass_share_of_curation_cpu']:.0f} % | |",
        f"| music check (YAMNet, {r['music_windows']} windows, {r['music_seconds']:.0f} s) | "
        f"{r['music_cpu_s']:.1f} | {100 * r['music_share_of_curation_cpu']:.0f} % | "
        f"{r['music_cpu_per_s']:.4f} per s of audio |",
        f"| curation without the active-speaker stage | {r['without_asd_cpu_s']:.1f} | | "
        f"RTF {r['without_asd_rtf_per_core_cpu']:.1f}x, "
        f"{r['without_asd_cpu_ratio_to_floor']:.2f}x floor |",
        "",
        f"Targets: >= {TARGET_RTF:.0f}x real time per core: "
        f"{_met(r['rtf_per_core_cpu'] >= TARGET_RTF)} ({r['rtf_per_core_cpu']:.1f}x); within "
        f"{TARGET_FLOOR_RATIO:.0f}x of the floor: {_met(r['cpu_ratio_to_floor'] <= TARGET_FLOOR_RATIO)}"
        f" ({r['cpu_ratio_to_floor']:.2f}x). Both would hold with the active-speaker stage at "
        f"<= {r['asd_cpu_budget_for_targets_s']:.1f} CPU s "
        f"({r['asd_cpu_budget_per_scored_s']:.3f} per scored s).",
    ]
    if "sample_seconds" in r:
        lines += [
            "",
            f"Options side by side on the first {r['sample_seconds']:.0f} s of scored windows "
            f"({r['sample_windows']} windows, each scored by every variant in turn); LR-ASD float32 "
            f"as curated: {r['sample_fp32_cpu_per_s']:.3f} CPU s per scored s.",
            "",
            "| option | CPU s per scored s | speed-up | max diff: frame / speaking / sync | "
            "decisions changed (window alone) | projected curation CPU s | RTF / core | x floor |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, what in OPTIONS.items():
            lines.append(
                f"| {what.format(**r)} | {r[f'{name}_cpu_per_s']:.3f} | {r[f'{name}_speedup']:.2f}x | "
                f"{r[f'{name}_max_frame_score_diff']:.3f} / "
                f"{r[f'{name}_max_speaking_score_diff']:.3f} / "
                f"{r[f'{name}_max_sync_confidence_diff']:.3f} | {r[f'{name}_decision_flips']} | "
                f"{r[f'{name}_projected_curation_cpu_s']:.1f} | "
                f"{r[f'{name}_projected_rtf_per_core_cpu']:.1f}x | "
                f"{r[f'{name}_projected_cpu_ratio_to_floor']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", choices=("real", "generated"), default="real")
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--asd-sample-s",
        type=float,
        default=60.0,
        help="seconds of scored windows re-scored with each option side by side (0: skip)",
    )
    args = parser.parse_args()
    if args.workdir is None:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(args.input, args.duration_s, Path(tmp), args.asd_sample_s)
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run(args.input, args.duration_s, args.workdir, args.asd_sample_s)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
