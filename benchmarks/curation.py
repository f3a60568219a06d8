"""Curation speed: real-time factor per core on a generated 360p talk, next to the decode-only floor.

Run: ``.venv/bin/python benchmarks/curation.py [--duration-s 600] [--workdir DIR] [--json OUT]``

1. Renders ``long_talk`` (``avforge.synth``: 640x360, 25 fps, mostly clean speech with noisy and silent
   stretches) of ``--duration-s`` seconds (10 min by default; cached in ``--workdir``).
2. Curation: :func:`curation.process.process_source` on the file, in this process (what one Dask worker
   with one thread does per source): probe, audio, VAD, face detection at 5 fps, tracking, windows,
   SNR, 25 fps decode + quality + sync of surviving windows, crops, export rows. The face detector is
   loaded first (once per worker in a real run).
3. The floor, measured right after in the same run: every ffmpeg decode the curation made, replayed
   with the same arguments (recorded while curating), doing nothing with the samples and pixels: the
   whole audio at 16 kHz, the whole video at the detection rate and width, and the spans of windows
   that reached the 25 fps stage, at 25 fps, cropped to the face region as the curation decodes them.
   For comparison with earlier runs, the old floor (those windows decoded whole-frame at
   ``segments.clip_width``) is measured too.

Both are timed in wall seconds and in CPU seconds (this process plus its ffmpeg children), because
the benchmark machine may be shared: CPU time is what "per core" means, and it is not inflated by
other processes waiting for the same cores. Real-time factor = media seconds / seconds spent.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import curation.process  # noqa: E402
import curation.windows  # noqa: E402
from avforge.synth import RenderConfig, long_talk, render_scenario  # noqa: E402
from curation.config import CurateConfig  # noqa: E402
from curation.decode import decode_audio, decode_video, iter_video_frames, probe_media  # noqa: E402
from curation.faces import load_detector  # noqa: E402
from curation.process import process_source  # noqa: E402
from curation.sources import Source  # noqa: E402
from manifests.schema import SourceKind  # noqa: E402


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


def render(workdir: Path, duration_s: float) -> Path:
    name = f"long_talk_{int(duration_s)}s"
    video = workdir / f"{name}.mp4"
    if not video.exists():
        t0 = time.perf_counter()
        render_scenario(long_talk(duration_s=duration_s, name=name), workdir, RenderConfig())
        print(f"rendered {video.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return video


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


def run(duration_s: float, workdir: Path) -> dict[str, float]:
    cfg = CurateConfig()
    video = render(workdir, duration_s)
    load_detector(cfg.faces)
    source = Source("bench", str(video), SourceKind.LOCAL)
    with Timer() as cur:
        result, calls = curate_recording(source, cfg, str(workdir / "scratch"))
    media_s = float(result.source.duration_s or 0.0)
    spans = [(s.start_s, s.end_s) for s in result.segments if s.face_missing_ratio is not None]
    with Timer() as floor:
        replay_floor(calls)
    with Timer() as old_floor:
        whole_frame_floor(str(video), cfg, spans)
    kept_s = sum(c.duration_s for c in result.clips)
    return {
        "decodes_at_25fps": sum(1 for _fn, _args, kw in calls if "crop" in kw),
        "media_s": media_s,
        "kept_s": kept_s,
        "windows": len(result.segments),
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
    }


def markdown(r: dict[str, float]) -> str:
    return "\n".join(
        [
            f"Generated 360p talk of {r['media_s']:.0f} s; {r['windows']} candidate windows, "
            f"{r['windows_at_25fps']} decoded at 25 fps ({r['seconds_at_25fps']:.0f} s, "
            f"{r['decodes_at_25fps']} ffmpeg runs), "
            f"{r['kept_s']:.0f} s kept.",
            "",
            "| | wall s | CPU s | real-time factor per core (CPU) |",
            "|---|---:|---:|---:|",
            f"| curation (one source, one worker thread) | {r['curation_wall_s']:.1f} | "
            f"{r['curation_cpu_s']:.1f} | {r['rtf_per_core_cpu']:.1f}x |",
            f"| decode-only floor (the same decodes replayed) | {r['floor_wall_s']:.1f} | "
            f"{r['floor_cpu_s']:.1f} | {r['floor_rtf_per_core_cpu']:.1f}x |",
            f"| curation / floor | {r['wall_ratio_to_floor']:.2f} | "
            f"{r['cpu_ratio_to_floor']:.2f} | |",
            f"| earlier floor (windows decoded whole-frame) | | "
            f"{r['whole_frame_floor_cpu_s']:.1f} | {r['whole_frame_floor_rtf_per_core_cpu']:.1f}x |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.workdir is None:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(args.duration_s, Path(tmp))
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run(args.duration_s, args.workdir)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
