"""Video: upright RGB frames at a constant rate through an ffmpeg pipe (part of the ffmpeg adapter).

Contract:

- :func:`iter_video_frames` -> :class:`VideoChunk` s of RGB ``uint8 (k, h, w, 3)`` frames at a constant
  ``fps`` and ``width`` (height keeps the display aspect, even), at most ``chunk_frames`` frames a chunk,
  so memory stays bounded on long videos; :func:`decode_video` collects them into :class:`VideoFrames`.
- ``crop`` (a :class:`Crop` of the display frame, e.g. from :func:`face_region`) decodes only that
  rectangle, cut before scaling, at the scale of the whole-frame decode; ``VideoFrames.origin_xy`` and
  ``scale`` map decoded pixels back to the source.
- Time convention (tested): frame ``i`` of a decode at ``fps`` F from ``start_s`` is the picture on
  screen at ``start_s + i / F`` seconds of the source, i.e. the latest source frame at or before that
  time (ffmpeg's ``fps`` filter with ``start_time=0:round=up`` after an input-side ``-ss`` seek). One
  exception: when ``start_s`` falls between two source frames, the seek drops the earlier one, so
  frame 0 is the next source frame (at most one source frame interval late).
- Rotation metadata is honoured (ffmpeg auto-rotates; sizes are display sizes); variable-frame-rate
  input becomes constant-rate through the ``fps`` filter.
- Failures are :class:`curation.probe.MediaError`: no video stream -> ``no_video``; undecodable or
  truncated -> ``corrupt_media``; a pipe that yields no byte for ``stall_timeout_s`` -> ``timeout``.
  Closing an iterator early kills ffmpeg.
"""

from __future__ import annotations

import collections
import math
import os
import select
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from curation.probe import (
    MediaError,
    MediaInfo,
    check_not_stopped,
    check_truncated,
    expected_duration_s,
    ffmpeg_args,
    input_stream,
    last_stderr_line,
    probe_media,
)
from manifests.schema import SourceError


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
    out = input_stream(path, start_s, duration_s, threads).output(
        "pipe:", map="0:v:0", vf=filters, format="rawvideo", pix_fmt="rgb24"
    )
    return ffmpeg_args(out, threads)


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
        return last_stderr_line("".join(self.lines), self._path)


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
    expected_s = expected_duration_s(info.video_duration_s, info.duration_s, start_s, duration_s)
    max_frames = math.ceil(duration_s * fps - 1e-6) if duration_s is not None else None
    args = video_args(path, fps, (out_w, out_h), start_s, duration_s, crop, threads)
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a terminal's Ctrl-C stops the run, not this decode
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
            check_not_stopped(returncode, "ffmpeg")
            raise MediaError(SourceError.CORRUPT_MEDIA, tail.last())
        check_truncated(index / fps, expected_s, "video")
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
