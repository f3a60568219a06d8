"""Test and demo variants of a real talk clip, made with ffmpeg, plus the bundled real clips.

Curation decisions are tested on real talking faces (``assets/video``, provenance in its
``PROVENANCE.md``) and on variants of them whose truth is known by construction:

=====================  ==============================================================  ===========
variant                what it is                                                      truth
=====================  ==============================================================  ===========
:func:`dubbed`         the face with another talk's sound (looped / trimmed to fit)    not_in_sync
:func:`shifted`        the own sound delayed (``offset_s > 0``) or advanced (``< 0``)  not_in_sync
:func:`still_face`     one frame held for the whole length over the own sound          not_speaking
:func:`noisy`          the own sound plus real noise or music at a known SNR           low_snr (low
                                                                                       SNR values)
:func:`side_by_side`   two talks side by side (same height)                            multiple_faces
:func:`silent`         the face with digital silence                                   no_speech
:func:`no_face`        a grey (or colour-noise) picture with the own sound             no_face
=====================  ==============================================================  ===========

Contract (every variant function):

- Reads ``video`` (any container / codec ffmpeg decodes; it must have a video stream, and an audio
  stream where the own sound is used) and writes ``out``: an MP4 with H.264 (yuv420p) at
  :data:`FPS` fps and mono AAC at ``encode.audio_rate_hz``, the picture at the source's size (even
  dimensions). Returns ``out`` as a :class:`~pathlib.Path`.
- Length: the source's video duration rounded to whole frames at :data:`FPS` (:func:`num_frames`);
  the video has exactly that many frames (the last one is repeated if the source falls short) and the
  audio exactly ``num_frames / FPS`` seconds of samples, as the MP4 declares them (its edit list
  removes the AAC priming, so sample ``j`` of the decoded audio is at ``j / rate`` seconds, like frame
  ``i`` at ``i / FPS``; ffmpeg 5 also decodes the padding of the last AAC frame, up to 64 ms at
  16 kHz, which :func:`load_audio` cuts off). The own sound is padded with silence or cut to that
  length, never looped; another sound (dubbed, noise) is looped from its start or cut.
- Audio is decoded to float32 mono (ffmpeg's downmix) at ``encode.audio_rate_hz``, edited in numpy
  and fed to the encoder through a pipe, so every gain, delay and length is exact up to AAC coding.
- Atomic: ffmpeg writes a hidden temporary file in ``out``'s folder (``.<name>.<random>.partial``),
  renamed onto ``out`` with :func:`os.replace` only on success; on failure it is removed and ``out``
  is untouched. ``out``'s folder must exist.
- Errors: :class:`VariantError` when ffmpeg / ffprobe is missing or fails (the message carries the tail
  of its stderr) or the input has no audio where audio is needed; :class:`ValueError` for bad
  arguments. No shell is involved; every subprocess has a time limit.
- Deterministic: the same inputs and arguments give the same output (bit-exact flags).

The bundled clips: :data:`BUNDLED` is their folder and :data:`BUNDLED_CLIPS` their one table of truth
(:class:`BundledClip`: file, truth, reject reason, speaker label, evidence), read by tests and
``avforge demo``; :func:`bundled_clip` looks one up by name.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from avforge.core import assets
from avforge.core.config import check_choice, check_range
from avforge.core.media import FPS
from avforge.core.media import SAMPLE_RATE_HZ as AUDIO_RATE_HZ
from avforge.synth.audio import noise_gain_for_snr
from manifests.schema import RejectReason

TIMEOUT_S = 300.0
"""Time limit of one ffmpeg / ffprobe call."""
PEAK_LIMIT = 0.99
"""A mixed signal whose peak exceeds this is scaled down as a whole (ratios are kept)."""

BUNDLED = assets.VIDEO_DIR
"""Folder of the bundled real talk clips (see ``PROVENANCE.md`` there)."""

Truth = Literal["keep", "reject", "unlabelled"]
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")


class VariantError(RuntimeError):
    """ffmpeg / ffprobe is missing or failed, or the input lacks a stream the variant needs."""


@dataclass(frozen=True)
class EncodeConfig:
    """How variants are encoded (H.264 + AAC in MP4)."""

    crf: int = 23
    """libx264 constant rate factor."""
    preset: str = "veryfast"
    """libx264 preset."""
    audio_rate_hz: int = AUDIO_RATE_HZ
    """Sample rate of the decoded input audio and of the AAC output."""
    audio_bitrate_kbps: int = 96

    def __post_init__(self) -> None:
        check_range(self, "crf", 0, 51)
        check_choice(self, "preset", X264_PRESETS)
        check_choice(self, "audio_rate_hz", (16_000, 22_050, 24_000, 32_000, 44_100, 48_000))
        check_range(self, "audio_bitrate_kbps", 24, 320)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` reports: picture size in pixels and video duration in seconds."""

    width: int
    height: int
    duration_s: float
    audio_duration_s: float | None = None
    """Declared duration of the first audio stream (None: no audio stream, or none declared)."""


# --------------------------------------------------------------------------- the bundled clips


@dataclass(frozen=True)
class BundledClip:
    """One bundled real talk clip and its truth for curation.

    ``truth``: ``"keep"`` (one visible face, its own clean speech, in sync), ``"reject"`` (with
    ``reason``) or ``"unlabelled"`` (not ground truth: see ``note``). ``speaker``: a label per person
    (clips of one person share it); ``faces``: visible faces at all times.
    """

    name: str
    truth: Truth
    reason: RejectReason | None
    speaker: str
    faces: int
    note: str = ""

    @property
    def path(self) -> Path:
        """The clip's file (an MP4 in :data:`BUNDLED`)."""
        return BUNDLED / f"{self.name}.mp4"


BUNDLED_CLIPS: tuple[BundledClip, ...] = (
    BundledClip("hdtf_katie_hill", "keep", None, "katie_hill", 1, "HDTF clip, 8 s"),
    BundledClip("hdtf_amy_klobuchar", "keep", None, "amy_klobuchar", 1, "HDTF clip, 10 s, 256 px"),
    BundledClip("hdtf_ed_markey", "keep", None, "ed_markey", 1, "HDTF clip, 8 s"),
    BundledClip(
        "hdtf_alexandria_ocasio_cortez",
        "keep",
        None,
        "alexandria_ocasio_cortez",
        1,
        "HDTF clip, 8 s",
    ),
    BundledClip("retalking_face2", "keep", None, "retalking_face2", 1, "man, map behind, 5 s"),
    BundledClip("retalking_face4", "keep", None, "retalking_face4", 1, "woman, blue wall, 6.6 s"),
    BundledClip("retalking_face5", "keep", None, "retalking_face5", 1, "woman, news set, 4.9 s"),
    BundledClip(
        "portrait_2",
        "unlabelled",
        None,
        "portrait_2",
        1,
        "portrait 360x640, 10 s; NOT ground truth: its first 5 s peak sharply in sync when the sound"
        " is delayed by 0.5 s (LR-ASD offset curve, docs/speaker_calibration.md), so its own sound"
        " is probably about 0.5 s early there",
    ),
    BundledClip(
        "portrait_3",
        "keep",
        None,
        "portrait_3",
        1,
        "portrait 360x640, 10 s; sync evidence weaker than the others",
    ),
    BundledClip(
        "portrait_1",
        "unlabelled",
        None,
        "portrait_1",
        1,
        "suspected NOT in sync (no LR-ASD offset contrast above dubbed audio): not ground truth",
    ),
    BundledClip(
        "debate_splitscreen_1",
        "reject",
        RejectReason.MULTIPLE_FACES,
        "debate_1",
        2,
        "TV debate, split screen, two faces at all times, crosstalk, 6 s",
    ),
)
"""Every bundled clip with its truth (the order is stable; names are unique)."""


def bundled_clip(name: str) -> BundledClip:
    """The bundled clip called ``name`` (raises :class:`KeyError` with the known names)."""
    for clip in BUNDLED_CLIPS:
        if clip.name == name:
            return clip
    raise KeyError(f"no bundled clip {name!r}; known: {', '.join(c.name for c in BUNDLED_CLIPS)}")


# --------------------------------------------------------------------------- ffmpeg adapter


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise VariantError(f"{name} is not installed (apt-get install ffmpeg)")
    return exe


def _run(args: list[str], stdin: bytes | None = None) -> bytes:
    """Run a tool without a shell; its stdout, or :class:`VariantError` with the stderr tail."""
    try:
        proc = subprocess.run(
            args, input=stdin, capture_output=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise VariantError(f"{Path(args[0]).name} ran past {TIMEOUT_S:.0f} s") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip()[-1500:]
        raise VariantError(f"{Path(args[0]).name} exited with {proc.returncode}: {tail}")
    return proc.stdout


def _streams(path: str | os.PathLike[str]) -> tuple[list[dict[str, object]], dict[str, object]]:
    out = _run(
        [
            _tool("ffprobe"), "-v", "error",
            "-show_entries", "stream=codec_type,width,height,duration:format=duration",
            "-of", "json", f"file:{os.fspath(path)}",
        ]
    )  # fmt: skip
    info = json.loads(out)
    return list(info.get("streams", [])), dict(info.get("format", {}))


def _first(streams: list[dict[str, object]], kind: str) -> dict[str, object] | None:
    return next((st for st in streams if st.get("codec_type") == kind), None)


def probe(video: str | os.PathLike[str]) -> VideoInfo:
    """Size and duration of the first video stream of ``video`` (its declared duration, else the
    file's), and the declared duration of its first audio stream."""
    streams, fmt = _streams(video)
    stream = _first(streams, "video")
    if stream is None:
        raise VariantError(f"{os.fspath(video)} has no video stream")
    duration = stream.get("duration") or fmt.get("duration")
    if duration is None:
        raise VariantError(f"{os.fspath(video)}: ffprobe reports no duration")
    audio = _first(streams, "audio")
    audio_s = None if audio is None or audio.get("duration") is None else audio["duration"]
    return VideoInfo(
        int(str(stream["width"])),
        int(str(stream["height"])),
        float(str(duration)),
        None if audio_s is None else float(str(audio_s)),
    )


def num_frames(video: str | os.PathLike[str]) -> int:
    """Frames of a variant of ``video``: its video duration in whole frames at :data:`FPS` (>= 1)."""
    return max(1, round(probe(video).duration_s * FPS))


def load_audio(
    path: str | os.PathLike[str],
    sample_rate_hz: int = AUDIO_RATE_HZ,
    duration_s: float | None = None,
) -> np.ndarray:
    """The first audio stream of ``path`` (a video or an audio file): float32 mono (ffmpeg's downmix)
    at ``sample_rate_hz``, from the start, all of it or at most ``duration_s`` seconds.

    Cut to the stream's declared duration where the container declares one: AAC in MP4 ends in a
    partial frame, and ffmpeg 5 decodes the whole last frame (up to 1023 padding samples, 64 ms at
    16 kHz) although the MP4 says where the sound ends.
    """
    streams, _ = _streams(path)
    audio = _first(streams, "audio")
    if audio is None:
        raise VariantError(f"{os.fspath(path)} has no audio stream")
    if audio.get("duration") is not None:
        declared = float(str(audio["duration"]))
        duration_s = declared if duration_s is None else min(duration_s, declared)
    args = [_tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error"]
    args += ["-i", f"file:{os.fspath(path)}", "-map", "0:a:0", "-vn"]
    if duration_s is not None:
        args += ["-t", f"{duration_s:.6f}"]
    args += ["-ac", "1", "-ar", str(sample_rate_hz), "-f", "f32le", "pipe:1"]
    try:
        raw = _run(args)
    except VariantError as exc:
        raise VariantError(f"cannot read the audio of {os.fspath(path)}: {exc}") from exc
    x = np.frombuffer(raw, np.float32)
    if duration_s is not None:
        x = x[: round(duration_s * sample_rate_hz)]
    return x.copy()


def fit_length(signal: np.ndarray, length: int) -> np.ndarray:
    """``signal`` looped (repeated from its start) or trimmed to exactly ``length`` samples (float32);
    an empty signal gives silence."""
    x = np.asarray(signal, np.float32)
    if x.size == 0:
        return np.zeros(length, np.float32)
    return np.resize(x, length).astype(np.float32, copy=False)


def _pad(signal: np.ndarray, length: int) -> np.ndarray:
    """``signal`` cut or padded with silence to ``length`` samples (the own sound is never looped)."""
    out = np.zeros(length, np.float32)
    n = min(length, len(signal))
    out[:n] = signal[:n]
    return out


def delay(signal: np.ndarray, offset_s: float, sample_rate_hz: int) -> np.ndarray:
    """``signal`` delayed by ``offset_s`` (silence in front, the end cut) or advanced when negative
    (the start cut, silence at the end); the same length, float32."""
    x = np.asarray(signal, np.float32)
    k = round(offset_s * sample_rate_hz)
    out = np.zeros_like(x)
    if abs(k) >= x.size:
        return out
    if k >= 0:
        out[k:] = x[: x.size - k]
    else:
        out[: x.size + k] = x[-k:]
    return out


def noise_gain(speech: np.ndarray, noise: np.ndarray, snr_db: float, sample_rate_hz: int) -> float:
    """Amplitude gain for ``noise`` such that the active-speech power of ``speech`` (20 ms frames
    within 35 dB of the loudest, as :func:`avforge.synth.audio.active_power`) over the mean power of
    ``gain * noise`` is ``snr_db`` (:func:`avforge.core.signal.noise_gain_for_snr` with the generator's
    range, :func:`avforge.synth.audio.noise_gain_for_snr`). Raises :class:`ValueError` for silent
    speech or noise."""
    gain = noise_gain_for_snr(np.asarray(speech, np.float32), noise, snr_db, sample_rate_hz)
    if not gain > 0.0:
        raise ValueError("cannot set an SNR with silent speech or silent noise")
    return gain


def _peak_guard(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (PEAK_LIMIT / peak)).astype(np.float32) if peak > PEAK_LIMIT else x


def _even_size(width: int, height: int, scale_to_height: int | None = None) -> tuple[int, int]:
    if scale_to_height is not None:
        width, height = round(width * scale_to_height / height), scale_to_height
    return max(2, width // 2 * 2), max(2, height // 2 * 2)


def _encode(
    inputs: Sequence[Sequence[str]],
    video_filter: str,
    audio: np.ndarray,
    frames: int,
    out: str | os.PathLike[str],
    encode: EncodeConfig,
    lossless: bool = False,
) -> Path:
    """Encode ``-filter_complex video_filter`` (its output labelled ``[v]``, cut here to ``frames``
    frames) over ``inputs`` plus ``audio`` (float32 mono at ``encode.audio_rate_hz``, piped) into an
    MP4 at ``out``, atomically. The video is cut inside the graph, not with ``-frames:v``, which would
    stop the muxer before the last audio packets are written. ``lossless``: x264 at QP 0 instead of
    ``encode.crf`` (identical input frames then decode to identical frames)."""
    out = Path(out)
    if not out.parent.is_dir():
        raise ValueError(f"the folder of {out} does not exist")
    exe = _tool("ffmpeg")
    args = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    for inp in inputs:
        args += list(inp)
    audio_index = len(inputs)
    args += ["-f", "f32le", "-ar", str(encode.audio_rate_hz), "-ac", "1", "-i", "pipe:0"]
    if not video_filter.endswith("[v]"):
        raise ValueError("the video filter's output must be labelled [v]")
    video_filter = f"{video_filter[:-3]},trim=end_frame={frames}[v]"
    args += [
        "-filter_complex", video_filter,
        "-map", "[v]", "-map", f"{audio_index}:a:0",
        "-c:v", "libx264", "-preset", encode.preset,
        *(["-qp", "0"] if lossless else ["-crf", str(encode.crf)]),
        "-pix_fmt", "yuv420p", "-r", str(FPS),
        "-c:a", "aac", "-b:a", f"{encode.audio_bitrate_kbps}k", "-ar", str(encode.audio_rate_hz),
        "-ac", "1",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        "-flags:a", "+bitexact", "-movflags", "+faststart", "-f", "mp4",
    ]  # fmt: skip
    tmp_name = str(out.parent / f".{out.name}.{secrets.token_hex(6)}.partial")
    try:
        pcm = np.ascontiguousarray(audio, dtype="<f4").tobytes()
        _run([*args, tmp_name], stdin=pcm)
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return out


def _input(path: str | os.PathLike[str], seek_s: float = 0.0) -> list[str]:
    seek = ["-ss", f"{seek_s:.6f}"] if seek_s > 0 else []
    return [*seek, "-i", f"file:{os.fspath(path)}"]


def _frames_filter(label: str, width: int, height: int, frames: int) -> str:
    """``label`` at FPS, scaled to ``width`` x ``height``, its last frame repeated past its end."""
    return (
        f"{label}fps={FPS},scale={width}:{height}:flags=bicubic,setsar=1,"
        f"tpad=stop_mode=clone:stop={frames},format=yuv420p"
    )


def _own_sound_variant(
    video: str | os.PathLike[str],
    out: str | os.PathLike[str],
    audio: np.ndarray | None,
    encode: EncodeConfig | None,
) -> Path:
    """The source's picture with ``audio`` looped or trimmed to the variant's length (None: the own
    sound, padded with silence or trimmed)."""
    encode = encode or EncodeConfig()
    info = probe(video)
    frames = max(1, round(info.duration_s * FPS))
    samples = round(frames / FPS * encode.audio_rate_hz)
    sound = (
        _pad(load_audio(video, encode.audio_rate_hz), samples)
        if audio is None
        else fit_length(audio, samples)
    )
    width, height = _even_size(info.width, info.height)
    vf = _frames_filter("[0:v]", width, height, frames) + "[v]"
    return _encode([_input(video)], vf, sound, frames, out, encode)


# --------------------------------------------------------------------------- variants


def dubbed(
    video: str | os.PathLike[str],
    audio_source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    encode: EncodeConfig | None = None,
) -> Path:
    """``video``'s picture with the sound of ``audio_source`` (another talk: a video or an audio
    file) from its start, looped or trimmed to the variant's length."""
    rate = (encode or EncodeConfig()).audio_rate_hz
    other = load_audio(audio_source, rate)
    if other.size == 0:
        raise VariantError(f"{os.fspath(audio_source)} has no audio samples")
    return _own_sound_variant(video, out, other, encode)


def shifted(
    video: str | os.PathLike[str],
    offset_s: float,
    out: str | os.PathLike[str],
    *,
    encode: EncodeConfig | None = None,
) -> Path:
    """``video`` with its own sound delayed by ``offset_s`` seconds (> 0: heard after the lips move;
    < 0: before), the same length: silence fills the gap, the overhang is cut (:func:`delay`)."""
    if not math.isfinite(offset_s):
        raise ValueError(f"offset_s must be finite, got {offset_s}")
    rate = (encode or EncodeConfig()).audio_rate_hz
    info = probe(video)
    samples = round(max(1, round(info.duration_s * FPS)) / FPS * rate)
    own = _pad(load_audio(video, rate, duration_s=samples / rate), samples)
    return _own_sound_variant(video, out, delay(own, offset_s, rate), encode)


def still_face(
    video: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    at_s: float = 1.0,
    encode: EncodeConfig | None = None,
) -> Path:
    """The frame of ``video`` at ``at_s`` seconds (clamped into the video) held for the whole length,
    over the talk's own sound: a photo with a voice. Encoded losslessly (x264 QP 0, High 4:4:4
    Predictive profile: ffmpeg / OpenCV decode it, some browsers do not), so every decoded frame is
    exactly the same picture; the held picture's repeats cost almost nothing (skipped blocks)."""
    encode = encode or EncodeConfig()
    info = probe(video)
    frames = max(1, round(info.duration_s * FPS))
    at = min(max(0.0, at_s), max(0.0, (frames - 1) / FPS))
    width, height = _even_size(info.width, info.height)
    vf = (
        f"[0:v]fps={FPS},trim=end_frame=1,scale={width}:{height}:flags=bicubic,setsar=1,"
        f"format=yuv420p,tpad=stop_mode=clone:stop={frames}[v]"
    )
    samples = round(frames / FPS * encode.audio_rate_hz)
    audio = _pad(load_audio(video, encode.audio_rate_hz), samples)
    return _encode([_input(video, at)], vf, audio, frames, out, encode, lossless=True)


def noisy(
    video: str | os.PathLike[str],
    noise_wav: str | os.PathLike[str],
    snr_db: float,
    out: str | os.PathLike[str],
    *,
    encode: EncodeConfig | None = None,
) -> Path:
    """``video`` with its own sound plus ``noise_wav`` (real noise or music; looped or trimmed from
    its start) at ``snr_db``: active-speech power of the own sound over the mean power of the added
    noise, as :func:`noise_gain` defines it. If the sum would clip, both parts are scaled down
    together (:data:`PEAK_LIMIT`), which keeps the SNR."""
    if not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    rate = (encode or EncodeConfig()).audio_rate_hz
    info = probe(video)
    samples = round(max(1, round(info.duration_s * FPS)) / FPS * rate)
    own = _pad(load_audio(video, rate), samples)
    noise = fit_length(load_audio(noise_wav, rate), samples)
    mix = own + np.float32(noise_gain(own, noise, snr_db, rate)) * noise
    return _own_sound_variant(video, out, _peak_guard(mix), encode)


def silent(
    video: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    encode: EncodeConfig | None = None,
) -> Path:
    """``video``'s picture with digital silence (all-zero samples) for the whole length."""
    return _own_sound_variant(video, out, np.zeros(0, np.float32), encode)


def no_face(
    video: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fill: Literal["grey", "noise"] = "grey",
    encode: EncodeConfig | None = None,
) -> Path:
    """No face at all: a plain mid-grey picture (``"grey"``) or blocky colour noise that changes every
    frame (``"noise"``, 16 px cells) at ``video``'s size, over the talk's own sound."""
    if fill not in ("grey", "noise"):
        raise ValueError(f"fill must be 'grey' or 'noise', got {fill!r}")
    encode = encode or EncodeConfig()
    info = probe(video)
    frames = max(1, round(info.duration_s * FPS))
    width, height = _even_size(info.width, info.height)
    if fill == "grey":
        source = f"color=c=0x808080:s={width}x{height}:r={FPS}"
        vf = "[0:v]format=yuv420p[v]"
    else:
        cells_w, cells_h = max(1, -(-width // 16)), max(1, -(-height // 16))
        source = f"color=c=0x808080:s={cells_w}x{cells_h}:r={FPS}"
        vf = (
            "[0:v]format=yuv444p,noise=alls=100:allf=t+u,"
            f"scale={width}:{height}:flags=neighbor,format=yuv420p[v]"
        )
    samples = round(frames / FPS * encode.audio_rate_hz)
    audio = _pad(load_audio(video, encode.audio_rate_hz), samples)
    return _encode([["-f", "lavfi", "-i", source]], vf, audio, frames, out, encode)


def side_by_side(
    left: str | os.PathLike[str],
    right: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    audio: Literal["left", "right", "mix"] = "left",
    encode: EncodeConfig | None = None,
) -> Path:
    """Two talks next to each other (``hstack``), both scaled to the smaller of their heights, for
    the shorter of their lengths. The sound is ``left``'s, ``right``'s, or their sum (``"mix"``, each
    at its own level; scaled down together only if the sum would clip)."""
    if audio not in ("left", "right", "mix"):
        raise ValueError(f"audio must be 'left', 'right' or 'mix', got {audio!r}")
    encode = encode or EncodeConfig()
    li, ri = probe(left), probe(right)
    frames = max(1, min(round(li.duration_s * FPS), round(ri.duration_s * FPS)))
    height = min(li.height, ri.height) // 2 * 2
    lw, lh = _even_size(li.width, li.height, height)
    rw, rh = _even_size(ri.width, ri.height, height)
    vf = (
        _frames_filter("[0:v]", lw, lh, frames)
        + "[l];"
        + _frames_filter("[1:v]", rw, rh, frames)
        + "[r];[l][r]hstack=inputs=2[v]"
    )
    samples = round(frames / FPS * encode.audio_rate_hz)
    sound = np.zeros(samples, np.float32)
    if audio in ("left", "mix"):
        sound += _pad(load_audio(left, encode.audio_rate_hz), samples)
    if audio in ("right", "mix"):
        sound += _pad(load_audio(right, encode.audio_rate_hz), samples)
    return _encode([_input(left), _input(right)], vf, _peak_guard(sound), frames, out, encode)
