"""Probe: what a media file holds (ffprobe), typed media errors, and the ffmpeg plumbing shared by
the audio (``curation.decode``) and video (``curation.video``) decoders.

Contract:

- :func:`probe_media` (ffprobe) -> :class:`MediaInfo`: duration, streams, display size after rotation,
  frame rate, rotation, audio rate/channels, codecs, file size; :func:`check_media` turns a
  :class:`DecodeConfig` cap into ``too_long``.
- Failures are :class:`MediaError` with a :class:`manifests.SourceError` reason and a one-line detail
  (ffmpeg's last meaningful stderr line, :func:`last_stderr_line`): missing file -> ``not_found``;
  zero-byte, truncated or undecodable -> ``corrupt_media``; a subprocess past its time limit ->
  ``timeout``.
- Plumbing: :func:`input_name` (local paths through the ``file:`` protocol, so a name is never an
  option or a protocol), :func:`input_stream` / :func:`ffmpeg_args` (the argument list head: quiet,
  no stdin, ``-threads`` / ``-filter_threads``), :func:`check_truncated` (a decode that ends well
  before the stated duration is ``corrupt_media``).

Every subprocess has a time limit; the file name is passed as one argument, never through a shell.
"""

from __future__ import annotations

import enum
import json
import math
import os
import signal
import subprocess
from dataclasses import dataclass
from typing import Any

import ffmpeg

from avforge.core.config import check_choice, check_range
from avforge.core.errors import RunInterrupted, SourceFailure
from manifests.schema import SourceError

# Generic ffmpeg lines that say nothing about the cause; the detail is the last line before them.
_GENERIC_STDERR = ("Conversion failed!", "Exiting normally", "Error opening input files")


class MediaError(SourceFailure):
    """A media file that cannot be used; ``reason`` goes to ``sources.error``, ``detail`` is one line."""

    def __init__(self, reason: SourceError, detail: str) -> None:
        super().__init__(SourceError(reason), detail)


class ChannelMode(enum.StrEnum):
    """How multichannel audio becomes mono."""

    LEFT = "left"
    """First channel (front-left of stereo / 5.1), as in the AVSpeech paper."""
    MIX = "mix"
    """ffmpeg's standard downmix of all channels (LFE excluded)."""


@dataclass(frozen=True)
class DecodeConfig:
    """How sources are decoded (``decode`` section of the curation config)."""

    sample_rate_hz: int = 16000
    """Output audio rate; 16 kHz as in the paper."""
    channel: ChannelMode = ChannelMode.LEFT
    """Multichannel -> mono: ``left`` (paper) or ``mix``."""
    detect_fps: float = 5.0
    """Frame rate of the face-detection pass over the whole source."""
    detect_width: int = 256
    """Frame width (px) of the detection pass; never upscaled. 256 px: CenterFace costs 7 ms a frame
    (10.6 ms at 320 px) and still finds the 19-23 px faces of insightface's t1.jpg (tested); on a
    640 px source that is a face of ~50 source px, and faces under ``quality.min_face_px`` (32 source
    px) are dropped as too small anyway."""
    clip_fps: float = 25.0
    """Frame rate of per-segment decodes (face tracks are stored at this rate)."""
    max_duration_s: float = 7200.0
    """Sources longer than this (or of unknown duration) fail with ``too_long``."""
    probe_timeout_s: float = 30.0
    """Time limit of one ffprobe call."""
    audio_timeout_s: float = 600.0
    """Time limit of one audio decode (a 10 min source takes ~1 s)."""
    stall_timeout_s: float = 60.0
    """A video decode that produces no byte for this long is killed (``timeout``)."""
    chunk_frames: int = 64
    """Frames per :class:`VideoChunk` (memory bound of the detection pass)."""
    ffmpeg_threads: int = 1
    """Decoder and filter threads of each ffmpeg run (1: a Dask worker thread is one core)."""

    def __post_init__(self) -> None:
        check_range(self, "sample_rate_hz", 4000, 192000)
        check_choice(self, "channel", tuple(ChannelMode))
        check_range(self, "detect_fps", 0.0, 60.0, low_open=True)
        check_range(self, "detect_width", 16, 4096)
        check_range(self, "clip_fps", 0.0, 120.0, low_open=True)
        check_range(self, "max_duration_s", 0.0, low_open=True)
        check_range(self, "probe_timeout_s", 0.0, low_open=True)
        check_range(self, "audio_timeout_s", 0.0, low_open=True)
        check_range(self, "stall_timeout_s", 0.0, low_open=True)
        check_range(self, "chunk_frames", 1, 100000)
        check_range(self, "ffmpeg_threads", 0, 64)


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a media file. Unknown numbers are ``nan`` (floats) or 0 (ints)."""

    duration_s: float
    """Container duration (``nan`` when unknown: live or endless streams)."""
    has_audio: bool
    has_video: bool
    width: int
    """Display width in pixels, after rotation (0 without video)."""
    height: int
    """Display height in pixels, after rotation (0 without video)."""
    fps: float
    """Average frame rate (``nan`` without video or when unknown)."""
    rotation_deg: int
    """Counter-clockwise display rotation (0, 90, 180, 270) that decoding applies."""
    audio_sample_rate_hz: int
    audio_channels: int
    video_codec: str | None
    audio_codec: str | None
    size_bytes: int
    video_duration_s: float = math.nan
    """Duration of the video stream when the container states it."""
    audio_duration_s: float = math.nan
    """Duration of the audio stream when the container states it."""


# --------------------------------------------------------------------------- helpers


def input_name(path: str) -> str:
    """The name ffmpeg opens: URLs as given, local paths through the ``file:`` protocol."""
    if "://" in path:
        return path
    return "file:" + os.path.abspath(path)


def check_exists(path: str) -> None:
    """Raise ``not_found`` for a local path that does not exist (URLs are left to ffmpeg)."""
    if "://" not in path and not os.path.exists(path):
        raise MediaError(SourceError.NOT_FOUND, f"no such file: {path}")


def last_stderr_line(stderr: bytes | str, path: str = "") -> str:
    """ffmpeg's last meaningful stderr line, without the input's name (the row already has it)."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    if path:
        text = text.replace(input_name(path) + ": ", "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    meaningful = [ln for ln in lines if not ln.startswith(_GENERIC_STDERR)]
    return (meaningful or lines or ["ffmpeg failed without a message"])[-1]


def _fraction(text: str | None) -> float:
    if not text or text in ("0/0", "N/A"):
        return math.nan
    num, _, den = text.partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return math.nan
    return value if value > 0 else math.nan


def _float(text: Any) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) and value >= 0 else math.nan


def _rotation_ccw(stream: dict[str, Any]) -> int:
    """Counter-clockwise rotation from the display matrix (or the legacy clockwise ``rotate`` tag)."""
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return round(float(side["rotation"]) / 90.0) * 90 % 360
    tag = (stream.get("tags") or {}).get("rotate")
    if tag is not None:
        return round(-float(tag) / 90.0) * 90 % 360
    return 0


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def check_not_stopped(returncode: int, what: str) -> None:
    """Raise :class:`avforge.core.errors.RunInterrupted` when a child (``what``) was ended by SIGINT,
    SIGTERM or SIGHUP: a shutdown, not its input (children run in their own session, so a
    terminal's Ctrl-C does not reach them; a signal that still does is never a source failure)."""
    if returncode < 0 and -returncode in _STOP_SIGNALS:
        name = signal.Signals(-returncode).name
        raise RunInterrupted(f"{what} was stopped by {name}")


def _run_ffprobe(path: str, timeout_s: float) -> dict[str, Any]:
    args = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json"]
    args.append(input_name(path))
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise MediaError(SourceError.TIMEOUT, f"ffprobe ran over {timeout_s:g} s") from None
    check_not_stopped(proc.returncode, "ffprobe")
    if proc.returncode != 0:
        raise MediaError(SourceError.CORRUPT_MEDIA, last_stderr_line(proc.stderr, path))
    try:
        return json.loads(proc.stdout.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise MediaError(SourceError.CORRUPT_MEDIA, f"unreadable ffprobe output: {exc}") from None


def probe_media(path: str, timeout_s: float = 30.0) -> MediaInfo:
    """Probe ``path`` with ffprobe.

    Raises :class:`MediaError`: ``not_found`` (no file), ``corrupt_media`` (zero-byte, truncated beyond
    reading, not media, or no audio or video stream at all), ``timeout``.
    """
    check_exists(path)
    if "://" not in path and os.path.isfile(path) and os.path.getsize(path) == 0:
        raise MediaError(SourceError.CORRUPT_MEDIA, "zero-byte file")
    data = _run_ffprobe(path, timeout_s)
    streams = data.get("streams", []) or []
    fmt = data.get("format", {}) or {}
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise MediaError(SourceError.CORRUPT_MEDIA, "no audio or video stream")
    width = height = rotation = 0
    fps = math.nan
    if video is not None:
        rotation = _rotation_ccw(video)
        width, height = int(video.get("width") or 0), int(video.get("height") or 0)
        if rotation in (90, 270):
            width, height = height, width
        fps = _fraction(video.get("avg_frame_rate"))
        if math.isnan(fps):
            fps = _fraction(video.get("r_frame_rate"))
    size = os.path.getsize(path) if os.path.isfile(path) else int(fmt.get("size") or 0)
    return MediaInfo(
        duration_s=_float(fmt.get("duration")),
        has_audio=audio is not None,
        has_video=video is not None,
        width=width,
        height=height,
        fps=fps,
        rotation_deg=rotation,
        audio_sample_rate_hz=int(audio.get("sample_rate") or 0) if audio else 0,
        audio_channels=int(audio.get("channels") or 0) if audio else 0,
        video_codec=video.get("codec_name") if video else None,
        audio_codec=audio.get("codec_name") if audio else None,
        size_bytes=size,
        video_duration_s=_float(video.get("duration")) if video else math.nan,
        audio_duration_s=_float(audio.get("duration")) if audio else math.nan,
    )


def check_media(info: MediaInfo, cfg: DecodeConfig) -> None:
    """Raise :class:`MediaError` ``too_long`` when the duration is unknown or over the cap."""
    if not math.isfinite(info.duration_s):
        raise MediaError(SourceError.TOO_LONG, "unknown duration (live or endless stream)")
    if info.duration_s > cfg.max_duration_s:
        raise MediaError(
            SourceError.TOO_LONG,
            f"duration {info.duration_s:.1f} s over the cap of {cfg.max_duration_s:g} s",
        )


def expected_duration_s(
    stream_s: float, container_s: float, start_s: float, duration_s: float | None
) -> float:
    """Seconds a decode should yield (``nan`` when the file does not say)."""
    total = stream_s if math.isfinite(stream_s) else container_s
    if not math.isfinite(total):
        return duration_s if duration_s is not None else math.nan
    left = max(0.0, total - start_s)
    return left if duration_s is None else min(left, duration_s)


def check_truncated(got_s: float, expected_s: float, what: str) -> None:
    """A decode that ends well before the file's stated duration comes from a truncated file."""
    if math.isfinite(expected_s) and got_s < 0.9 * expected_s - 0.5:
        raise MediaError(
            SourceError.CORRUPT_MEDIA,
            f"truncated: decoded {got_s:.2f} s of {what}, the file states {expected_s:.2f} s",
        )


def input_stream(path: str, start_s: float, duration_s: float | None, threads: int = 1) -> Any:
    """ffmpeg-python input of ``path``: input-side seek to ``start_s``, ``duration_s``, decoder threads."""
    kwargs: dict[str, Any] = {"threads": str(int(threads))}
    if start_s > 0:
        kwargs["ss"] = f"{start_s:.6f}"
    if duration_s is not None:
        kwargs["t"] = f"{duration_s:.6f}"
    return ffmpeg.input(input_name(path), **kwargs)


def ffmpeg_args(output: Any, threads: int = 1) -> list[str]:
    """The full argument list of an ffmpeg-python ``output``: quiet, no stdin, ``threads`` filter threads."""
    head = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
    return [*head, "-filter_threads", str(int(threads)), *output.get_args()]
