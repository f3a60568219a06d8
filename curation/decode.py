"""Decode: the ffmpeg adapter (probe, audio samples, video frames), through pipes, never a temp file.

This module decodes audio and is the adapter's one public face: it re-exports the probe and media
errors (``curation.probe``) and the frame decoder (``curation.video``), so callers import every name
from ``curation.decode``. The three modules split one adapter only for size; ``probe`` holds what
both decoders share, so neither imports the other.

Contract:

- :func:`probe_media` -> :class:`MediaInfo`; :func:`check_media` -> ``too_long`` over the cap
  (``curation.probe``).
- :func:`decode_audio` -> float32 ``(n,)`` mono at ``sample_rate_hz`` (default 16 kHz) from ``start_s``
  for ``duration_s`` (``None``: to the end). Any input rate (8 kHz .. 48 kHz ...) is resampled by ffmpeg;
  stereo / 5.1 become mono by taking the **left** (first, front-left) channel as in the AVSpeech paper
  (``channel="left"``, filter ``pan=mono|c0=c0``) or by ffmpeg's standard downmix (``channel="mix"``).
  Audio sample ``j`` is at ``start_s + j / rate`` (input-side seek: sample accurate).
- :func:`iter_video_frames` / :func:`decode_video` -> RGB frames at a constant rate, optionally of a
  :class:`Crop` only (``curation.video``, which states the frame time convention).

Failures are :class:`MediaError` with a :class:`manifests.SourceError` reason and a one-line detail
(ffmpeg's last meaningful stderr line): missing file -> ``not_found``; zero-byte, truncated or
undecodable -> ``corrupt_media``; no audio stream -> ``no_audio`` (at :func:`decode_audio`); no video
stream -> ``no_video`` (at :func:`iter_video_frames`); a subprocess that runs past its time limit or
stalls -> ``timeout``. Every subprocess has a time limit; the file name is passed as one argument
(``file:`` protocol), never through a shell. ffmpeg and ffprobe run in their own session (a
terminal's Ctrl-C reaches the run, not them); one ended by SIGINT, SIGTERM or SIGHUP anyway raises
:class:`avforge.core.errors.RunInterrupted` (a shutdown is never a source failure).
"""

from __future__ import annotations

import subprocess
from typing import Any

import numpy as np

from curation.probe import (
    ChannelMode,
    DecodeConfig,
    MediaError,
    MediaInfo,
    check_media,
    check_not_stopped,
    check_truncated,
    expected_duration_s,
    ffmpeg_args,
    input_stream,
    last_stderr_line,
    probe_media,
)
from curation.video import (
    Crop,
    VideoChunk,
    VideoFrames,
    decode_video,
    face_region,
    iter_video_frames,
    video_args,
    video_output_size,
)
from manifests.schema import SourceError

__all__ = [
    "ChannelMode",
    "Crop",
    "DecodeConfig",
    "MediaError",
    "MediaInfo",
    "VideoChunk",
    "VideoFrames",
    "audio_args",
    "check_media",
    "decode_audio",
    "decode_video",
    "face_region",
    "iter_video_frames",
    "probe_media",
    "video_args",
    "video_output_size",
]


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
    out = input_stream(path, start_s, duration_s, threads).output(
        "pipe:", ac=1, ar=int(sample_rate_hz), **kwargs
    )
    return ffmpeg_args(out, threads)


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
            args,
            capture_output=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C stops the run, not this decode
        )
    except subprocess.TimeoutExpired:
        raise MediaError(SourceError.TIMEOUT, f"audio decode ran over {timeout_s:g} s") from None
    check_not_stopped(proc.returncode, "ffmpeg")
    if proc.returncode != 0:
        raise MediaError(SourceError.CORRUPT_MEDIA, last_stderr_line(proc.stderr, path))
    usable = len(proc.stdout) // 4 * 4
    audio = np.frombuffer(proc.stdout[:usable], dtype="<f4").astype(np.float32)
    expected = expected_duration_s(info.audio_duration_s, info.duration_s, start_s, duration_s)
    check_truncated(audio.size / sample_rate_hz, expected, "audio")
    return audio
