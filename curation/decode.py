"""Decode: the ffmpeg adapter (probe, audio samples, video frames), through pipes, never a temp file.

Contract:

- :func:`probe_media` (ffprobe) -> :class:`MediaInfo`: duration, streams, display size after rotation,
  frame rate, rotation, audio rate/channels, codecs, file size.
- :func:`decode_audio` -> float32 ``(n,)`` mono at ``sample_rate_hz`` (default 16 kHz) from ``start_s``
  for ``duration_s`` (``None``: to the end). Any input rate (8 kHz .. 48 kHz ...) is resampled by ffmpeg;
  stereo / 5.1 become mono by taking the **left** (first, front-left) channel as in the AVSpeech paper
  (``channel="left"``, filter ``pan=mono|c0=c0``) or by ffmpeg's standard downmix (``channel="mix"``).
- :func:`iter_video_frames` -> :class:`VideoChunk` s of RGB ``uint8 (k, h, w, 3)`` frames at a constant
  ``fps`` and ``width`` (height keeps the display aspect, even), at most ``chunk_frames`` frames a chunk,
  so memory stays bounded on long videos. :func:`decode_video` collects them into :class:`VideoFrames`.

Time convention (tested): frame ``i`` of a decode at ``fps`` F starting at ``start_s`` is the picture on
screen at time ``start_s + i / F`` seconds of the source, i.e. the latest source frame at or before
that time (ffmpeg's ``fps`` filter with ``start_time=0:round=up`` after an input-side ``-ss`` seek). One
exception: when ``start_s`` falls between two source frames, the seek drops the earlier one, so frame 0
is the next source frame (at most one source frame interval late). Audio sample ``j`` is at
``start_s + j / rate``.

Rotation metadata is honoured: ffmpeg auto-rotates, frames come out upright and :class:`MediaInfo`
reports the upright (display) size. Variable-frame-rate input becomes constant-rate through the ``fps``
filter. Box coordinates map back to source (display) pixels with ``VideoFrames.scale``.

Failures are :class:`MediaError` with a :class:`manifests.SourceError` reason and a one-line detail
(ffmpeg's last meaningful stderr line): missing file -> ``not_found``; zero-byte, truncated or
undecodable -> ``corrupt_media``; no audio stream -> ``no_audio`` (at :func:`decode_audio`); no video
stream -> ``no_video`` (at :func:`iter_video_frames`); a subprocess that runs past its time limit or
stalls -> ``timeout``. :func:`check_media` turns a :class:`DecodeConfig` cap into ``too_long``.
Every subprocess has a time limit; the file name is passed as one argument (``file:`` protocol), never
through a shell.
"""

from __future__ import annotations

import collections
import enum
import json
import math
import os
import select
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ffmpeg
import numpy as np

from avforge.config import check_choice, check_range
from manifests.schema import SourceError

# Generic ffmpeg lines that say nothing about the cause; the detail is the last line before them.
_GENERIC_STDERR = ("Conversion failed!", "Exiting normally", "Error opening input files")


class MediaError(Exception):
    """A media file that cannot be used; ``reason`` goes to ``sources.error``, ``detail`` is one line."""

    def __init__(self, reason: SourceError, detail: str) -> None:
        self.reason = SourceError(reason)
        printable = "".join(c if c.isprintable() else " " for c in str(detail))
        self.detail = " ".join(printable.split())[:300]
        super().__init__(f"{self.reason.value}: {self.detail}")


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


@dataclass(frozen=True, eq=False)
class VideoChunk:
    """Consecutive decoded frames: ``frames`` uint8 (k, h, w, 3) RGB, ``times_s`` float64 (k,)."""

    frames: np.ndarray
    times_s: np.ndarray


@dataclass(frozen=True, eq=False)
class VideoFrames:
    """A decoded range: ``frames`` uint8 (n, h, w, 3) RGB at ``fps``, ``times_s`` float64 (n,).

    ``scale`` is source (display) pixels per decoded pixel and ``origin_xy`` the source pixel of the
    decoded frames' top-left corner (non-zero for a cropped decode): a box found in these frames maps
    to the source as ``box * scale + origin``.
    """

    frames: np.ndarray
    times_s: np.ndarray
    fps: float
    scale: float
    origin_xy: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Crop:
    """A rectangle of the (upright, display) source frame in pixels: ``x``, ``y``, ``width``, ``height``."""

    x: int
    y: int
    width: int
    height: int


# --------------------------------------------------------------------------- helpers


def _input_name(path: str) -> str:
    """The name ffmpeg opens: URLs as given, local paths through the ``file:`` protocol."""
    if "://" in path:
        return path
    return "file:" + os.path.abspath(path)


def _check_exists(path: str) -> None:
    if "://" not in path and not os.path.exists(path):
        raise MediaError(SourceError.NOT_FOUND, f"no such file: {path}")


def _last_line(stderr: bytes | str, path: str = "") -> str:
    """ffmpeg's last meaningful stderr line, without the input's name (the row already has it)."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    if path:
        text = text.replace(_input_name(path) + ": ", "")
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


def _run_ffprobe(path: str, timeout_s: float) -> dict[str, Any]:
    args = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json"]
    args.append(_input_name(path))
    try:
        proc = subprocess.run(
            args, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise MediaError(SourceError.TIMEOUT, f"ffprobe ran over {timeout_s:g} s") from None
    if proc.returncode != 0:
        raise MediaError(SourceError.CORRUPT_MEDIA, _last_line(proc.stderr, path))
    try:
        return json.loads(proc.stdout.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise MediaError(SourceError.CORRUPT_MEDIA, f"unreadable ffprobe output: {exc}") from None


def probe_media(path: str, timeout_s: float = 30.0) -> MediaInfo:
    """Probe ``path`` with ffprobe.

    Raises :class:`MediaError`: ``not_found`` (no file), ``corrupt_media`` (zero-byte, truncated beyond
    reading, not media, or no audio or video stream at all), ``timeout``.
    """
    _check_exists(path)
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


def _expected_s(
    stream_s: float, container_s: float, start_s: float, duration_s: float | None
) -> float:
    """Seconds a decode should yield (``nan`` when the file does not say)."""
    total = stream_s if math.isfinite(stream_s) else container_s
    if not math.isfinite(total):
        return duration_s if duration_s is not None else math.nan
    left = max(0.0, total - start_s)
    return left if duration_s is None else min(left, duration_s)


def _check_truncated(got_s: float, expected_s: float, what: str) -> None:
    """A decode that ends well before the file's stated duration comes from a truncated file."""
    if math.isfinite(expected_s) and got_s < 0.9 * expected_s - 0.5:
        raise MediaError(
            SourceError.CORRUPT_MEDIA,
            f"truncated: decoded {got_s:.2f} s of {what}, the file states {expected_s:.2f} s",
        )


def _input_stream(path: str, start_s: float, duration_s: float | None, threads: int = 1) -> Any:
    kwargs: dict[str, Any] = {"threads": str(int(threads))}
    if start_s > 0:
        kwargs["ss"] = f"{start_s:.6f}"
    if duration_s is not None:
        kwargs["t"] = f"{duration_s:.6f}"
    return ffmpeg.input(_input_name(path), **kwargs)


def _ffmpeg_args(output: Any, threads: int = 1) -> list[str]:
    head = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
    return [*head, "-filter_threads", str(int(threads)), *output.get_args()]


# --------------------------------------------------------------------------- audio


def audio_args(
    path: str,
    sample_rate_hz: int = 16000,
    channel: str = "left",
    start_s: float = 0.0,
    duration_s: float | None = None,
    threads: int = 1,
) -> list[str]:
    """The ffmpeg argument list :func:`decode_audio` runs (float32 little-endian PCM on stdout)."""
    mode = ChannelMode(channel)
    kwargs: dict[str, Any] = {"map": "0:a:0", "format": "f32le", "acodec": "pcm_f32le"}
    if mode is ChannelMode.LEFT:
        kwargs["af"] = "pan=mono|c0=c0"
    out = _input_stream(path, start_s, duration_s, threads).output(
        "pipe:", ac=1, ar=int(sample_rate_hz), **kwargs
    )
    return _ffmpeg_args(out, threads)


def decode_audio(
    path: str,
    sample_rate_hz: int = 16000,
    channel: str = "left",
    start_s: float = 0.0,
    duration_s: float | None = None,
    *,
    info: MediaInfo | None = None,
    timeout_s: float = 600.0,
    threads: int = 1,
) -> np.ndarray:
    """Decode ``path``'s first audio stream to mono float32 ``(n,)`` at ``sample_rate_hz``.

    ``start_s`` / ``duration_s`` select a range (input-side seek: fast and sample accurate); the result
    has about ``duration_s * sample_rate_hz`` samples, fewer at the end of the file. ``channel`` is
    ``"left"`` (first channel, the paper's choice) or ``"mix"`` (downmix). ``info`` skips the probe.
    ``threads``: ffmpeg's decoder and filter threads (0: ffmpeg's choice).

    Raises :class:`MediaError` (``no_audio``, ``corrupt_media``, ``not_found``, ``timeout``).

    Example::

        audio = decode_audio("talk.mp4", 16000, start_s=12.0, duration_s=3.0)   # (48000,) float32
    """
    info = info if info is not None else probe_media(path)
    if not info.has_audio:
        raise MediaError(SourceError.NO_AUDIO, "the file has no audio stream")
    args = audio_args(path, sample_rate_hz, channel, start_s, duration_s, threads)
    try:
        proc = subprocess.run(
            args, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise MediaError(SourceError.TIMEOUT, f"audio decode ran over {timeout_s:g} s") from None
    if proc.returncode != 0:
        raise MediaError(SourceError.CORRUPT_MEDIA, _last_line(proc.stderr, path))
    usable = len(proc.stdout) // 4 * 4
    audio = np.frombuffer(proc.stdout[:usable], dtype="<f4").astype(np.float32)
    expected = _expected_s(info.audio_duration_s, info.duration_s, start_s, duration_s)
    _check_truncated(audio.size / sample_rate_hz, expected, "audio")
    return audio


# --------------------------------------------------------------------------- video


def _output_size(info: MediaInfo, width: int) -> tuple[int, int]:
    """Decoded (w, h): ``width`` wide (never upscaled), display aspect kept, both even."""
    out_w = max(2, min(int(width), info.width) // 2 * 2)
    out_h = max(2, round(info.height * out_w / info.width / 2.0) * 2)
    return out_w, out_h


def face_region(boxes: np.ndarray, info: MediaInfo, width: int, margin: float = 0.5) -> Crop | None:
    """The source rectangle a cropped decode needs for faces ``boxes`` (n, 4) in source pixels.

    The union of the boxes, widened by ``margin`` times the widest box on every side (aligned crops
    and the mouth patch stay inside it), clipped to the frame and snapped so that a decode
    ``width`` px wide for the whole frame maps it to whole, even decoded pixels. None when the boxes
    are empty or the region would be most of the frame anyway (no saving).
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    b = b[np.all(np.isfinite(b), axis=1)]
    if not len(b) or info.width <= 0 or info.height <= 0:
        return None
    pad = margin * float(np.max(b[:, 2] - b[:, 0]))
    factor = info.width / _output_size(info, width)[0]  # source px per decoded px
    step = 2 * factor  # even decoded pixels
    x0 = max(0.0, math.floor((b[:, 0].min() - pad) / step) * step)
    y0 = max(0.0, math.floor((b[:, 1].min() - pad) / step) * step)
    x1 = min(float(info.width), math.ceil((b[:, 2].max() + pad) / step) * step)
    y1 = min(float(info.height), math.ceil((b[:, 3].max() + pad) / step) * step)
    if x1 - x0 < step or y1 - y0 < step or (x1 - x0) * (y1 - y0) > 0.8 * info.width * info.height:
        return None
    x, y = round(x0) // 2 * 2, round(y0) // 2 * 2  # even: chroma planes crop without shifting
    w, h = min(info.width - x, round(x1) - x), min(info.height - y, round(y1) - y)
    return Crop(x, y, w, h)


def _crop_size(info: MediaInfo, width: int, crop: Crop) -> tuple[int, int]:
    """Decoded (w, h) of ``crop`` at the scale of a whole-frame decode ``width`` px wide, both even."""
    factor = info.width / _output_size(info, width)[0]
    out_w = max(2, round(crop.width / factor / 2.0) * 2)
    out_h = max(2, round(crop.height / factor / 2.0) * 2)
    return out_w, out_h


def video_output_size(info: MediaInfo, width: int, crop: Crop | None = None) -> tuple[int, int]:
    """Decoded (w, h) of :func:`iter_video_frames` for ``info``, ``width`` and ``crop``."""
    return _output_size(info, width) if crop is None else _crop_size(info, width, crop)


def video_args(
    path: str,
    fps: float,
    size: tuple[int, int],
    start_s: float = 0.0,
    duration_s: float | None = None,
    crop: Crop | None = None,
    threads: int = 1,
) -> list[str]:
    """The ffmpeg argument list :func:`iter_video_frames` runs (rgb24 raw frames on stdout).

    ``crop`` (display pixels) is cut before scaling, so only its pixels are scaled and converted.
    """
    cut = "" if crop is None else f"crop={crop.width}:{crop.height}:{crop.x}:{crop.y}:exact=1,"
    filters = (
        f"fps=fps={fps:.6f}:start_time=0:round=up,{cut}"
        f"scale={size[0]}:{size[1]}:flags=area,setsar=1"
    )
    out = _input_stream(path, start_s, duration_s, threads).output(
        "pipe:", map="0:v:0", vf=filters, format="rawvideo", pix_fmt="rgb24"
    )
    return _ffmpeg_args(out, threads)


class _StderrTail(threading.Thread):
    """Drains a subprocess's stderr (so it can never block on a full pipe), keeping the last lines."""

    def __init__(self, pipe: Any, path: str) -> None:
        super().__init__(daemon=True)
        self._pipe = pipe
        self._path = path
        self.lines: collections.deque[str] = collections.deque(maxlen=20)

    def run(self) -> None:
        for raw in iter(self._pipe.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace"))

    def last(self) -> str:
        self.join(timeout=2.0)
        return _last_line("".join(self.lines), self._path)


def _read_exact(fd: int, size: int, stall_timeout_s: float) -> bytes:
    """Read ``size`` bytes (fewer at end of stream); raise ``timeout`` after a stall."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        ready, _, _ = select.select([fd], [], [], stall_timeout_s)
        if not ready:
            raise MediaError(SourceError.TIMEOUT, f"video decode stalled for {stall_timeout_s:g} s")
        part = os.read(fd, min(size - got, 1 << 22))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def iter_video_frames(
    path: str,
    fps: float,
    width: int,
    start_s: float = 0.0,
    duration_s: float | None = None,
    chunk_frames: int = 64,
    *,
    info: MediaInfo | None = None,
    stall_timeout_s: float = 60.0,
    crop: Crop | None = None,
    threads: int = 1,
) -> Iterator[VideoChunk]:
    """Stream upright RGB frames at a constant ``fps``, ``width`` px wide, in chunks.

    Frame ``i`` (counted over all chunks) has time ``start_s + i / fps``. Memory is bounded by one
    chunk (``chunk_frames * h * w * 3`` bytes). Closing the iterator early kills ffmpeg.
    ``crop``: decode only that source rectangle, at the scale of a whole-frame decode ``width`` px
    wide (:func:`video_output_size`). ``threads``: ffmpeg's decoder and filter threads.

    Raises :class:`MediaError` (``no_video``, ``corrupt_media``, ``not_found``, ``timeout``).
    """
    info = info if info is not None else probe_media(path)
    if not info.has_video or info.width <= 0 or info.height <= 0:
        raise MediaError(SourceError.NO_VIDEO, "the file has no video stream")
    out_w, out_h = video_output_size(info, width, crop)
    frame_bytes = out_w * out_h * 3
    expected_s = _expected_s(info.video_duration_s, info.duration_s, start_s, duration_s)
    max_frames = math.ceil(duration_s * fps - 1e-6) if duration_s is not None else None
    args = video_args(path, fps, (out_w, out_h), start_s, duration_s, crop, threads)
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    tail = _StderrTail(proc.stderr, path)
    tail.start()
    assert proc.stdout is not None
    index = 0
    try:
        while max_frames is None or index < max_frames:
            want = chunk_frames if max_frames is None else min(chunk_frames, max_frames - index)
            data = _read_exact(proc.stdout.fileno(), want * frame_bytes, stall_timeout_s)
            k = len(data) // frame_bytes
            if k:
                frames = np.frombuffer(data[: k * frame_bytes], np.uint8).reshape(
                    k, out_h, out_w, 3
                )
                times = start_s + (index + np.arange(k, dtype=np.float64)) / fps
                index += k
                yield VideoChunk(frames=frames, times_s=times)
            if k < want:
                break
        complete = max_frames is not None and index >= max_frames
        if complete:
            proc.kill()
        try:
            returncode = proc.wait(timeout=stall_timeout_s)
        except subprocess.TimeoutExpired:
            raise MediaError(SourceError.TIMEOUT, "ffmpeg did not exit after its output") from None
        if returncode != 0 and not complete:
            raise MediaError(SourceError.CORRUPT_MEDIA, tail.last())
        _check_truncated(index / fps, expected_s, "video")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def decode_video(
    path: str,
    fps: float,
    width: int,
    start_s: float = 0.0,
    duration_s: float | None = None,
    *,
    info: MediaInfo | None = None,
    stall_timeout_s: float = 60.0,
    crop: Crop | None = None,
    threads: int = 1,
) -> VideoFrames:
    """Decode a range to one :class:`VideoFrames` (frames uint8 (n, h, w, 3); see :func:`iter_video_frames`).

    Example::

        seg = decode_video("talk.mp4", fps=25.0, width=640, start_s=12.0, duration_s=3.0)  # 75 frames
        box_in_source = box_in_frame * seg.scale
    """
    info = info if info is not None else probe_media(path)
    chunks = list(
        iter_video_frames(
            path,
            fps,
            width,
            start_s,
            duration_s,
            info=info,
            stall_timeout_s=stall_timeout_s,
            crop=crop,
            threads=threads,
        )
    )
    out_w, out_h = video_output_size(info, width, crop) if info.has_video else (0, 0)
    if chunks:
        frames = np.concatenate([c.frames for c in chunks])
        times = np.concatenate([c.times_s for c in chunks])
    else:
        frames = np.zeros((0, out_h, out_w, 3), np.uint8)
        times = np.zeros(0, np.float64)
    scale = (crop.width if crop is not None else info.width) / out_w
    origin = (crop.x, crop.y) if crop is not None else (0, 0)
    return VideoFrames(frames=frames, times_s=times, fps=float(fps), scale=scale, origin_xy=origin)
