"""Speech activity: webrtcvad frame decisions, smoothed; silero-vad as an optional second opinion.

Contract: :func:`detect_speech` takes mono float audio (any rate; resampled to 16 kHz when webrtcvad
cannot take it directly) and a :class:`VadConfig`, and returns a :class:`SpeechActivity`: one bool per
``frame_ms`` frame, frame ``k`` covering ``[k * frame_s, (k + 1) * frame_s)`` seconds of the input.
Pure: no I/O, same input -> same output. Raises only ``ValueError`` for audio that is not 1-D.

Smoothing, in this order (defaults chosen on real speech padded with silence, see docs/curation_audio.md):

1. webrtcvad decisions per frame at ``aggressiveness`` (0 = keeps most, 3 = strictest on noise);
2. pauses shorter than ``min_silence_ms`` between two speech runs are filled (word gaps);
3. speech runs shorter than ``min_speech_ms`` are dropped (clicks, webrtcvad's start-up blips);
4. hangover: every speech run is extended by ``hangover_ms`` after its end and by ``onset_ms``
   before its start (both 0 by default: webrtcvad has its own ~100 ms hangover built in).

With ``use_silero`` the silero-vad ONNX model (shipped in the ``silero-vad`` wheel, run offline) gives a
second opinion: a webrtcvad speech frame is kept only where silero's speech probability, smoothed the
same way, reaches ``silero_threshold``. This removes music and babble-like noise that webrtcvad (an
energy/GMM detector) calls speech. The model loads once per process.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import webrtcvad

from avforge.core.config import check_choice, check_range
from avforge.core.signal import resample
from avforge.core.threads import torch_threads

_WEBRTC_RATES_HZ = (8000, 16000, 32000, 48000)
_SILERO_RATE_HZ = 16000
_SILERO_CHUNK = 512
_SILERO_CONTEXT = 64


@dataclass(frozen=True)
class VadConfig:
    """Speech-activity detection (``vad`` section of the curation config)."""

    aggressiveness: int = 2
    """webrtcvad mode 0..3; 2 keeps quiet word endings yet rejects steady noise."""
    frame_ms: int = 30
    """webrtcvad frame length: 10, 20 or 30 ms."""
    hangover_ms: int = 0
    """Extra extension of speech runs after their end. webrtcvad already holds about 100 ms after
    speech stops (measured: ends 30..120 ms late in mode 2), so the default adds nothing."""
    onset_ms: int = 0
    """Speech runs are extended by this much before their start."""
    min_speech_ms: int = 150
    """Speech runs shorter than this are dropped."""
    min_silence_ms: int = 300
    """Pauses shorter than this inside speech are filled."""
    use_silero: bool = False
    """Ask silero-vad for a second opinion (AND with webrtcvad)."""
    silero_threshold: float = 0.5
    """silero speech probability at or above which a frame counts as speech."""

    def __post_init__(self) -> None:
        check_range(self, "aggressiveness", 0, 3)
        check_choice(self, "frame_ms", (10, 20, 30))
        for name in ("hangover_ms", "onset_ms", "min_speech_ms", "min_silence_ms"):
            check_range(self, name, 0, 10000)
        check_range(self, "silero_threshold", 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class SpeechActivity:
    """Per-frame speech decisions: frame ``k`` covers ``[k * frame_s, (k + 1) * frame_s)`` seconds.

    ``start_s`` is the time of frame 0 (0 for a whole source, the segment start for a crop).
    """

    frame_s: float
    speech: np.ndarray
    """bool (num_frames,)."""
    start_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.speech.size * self.frame_s

    def _frame_range(self, start_s: float, end_s: float) -> tuple[int, int]:
        first = math.floor((start_s - self.start_s) / self.frame_s + 1e-9)
        last = math.ceil((end_s - self.start_s) / self.frame_s - 1e-9)
        return max(0, first), min(self.speech.size, max(0, last))

    def regions(self) -> list[tuple[float, float]]:
        """Speech regions as ``(start_s, end_s)`` pairs, in order, non-overlapping."""
        return [
            (self.start_s + a * self.frame_s, self.start_s + b * self.frame_s)
            for a, b in _runs(self.speech)
        ]

    def ratio(self, start_s: float, end_s: float) -> float:
        """Fraction (0..1) of the frames overlapping ``[start_s, end_s)`` that are speech (0 if none)."""
        first, last = self._frame_range(start_s, end_s)
        return float(self.speech[first:last].mean()) if last > first else 0.0

    def mask(self, start_s: float, end_s: float, sample_rate_hz: int) -> np.ndarray:
        """bool per sample of ``[start_s, end_s)`` at ``sample_rate_hz``: whether its frame is speech.

        Samples outside the analysed audio are False. Length ``round((end_s - start_s) * rate)``.
        """
        n = round((end_s - start_s) * sample_rate_hz)
        t = start_s + np.arange(n) / sample_rate_hz
        frame = np.floor((t - self.start_s) / self.frame_s + 1e-9).astype(np.int64)
        inside = (frame >= 0) & (frame < self.speech.size)
        out = np.zeros(n, bool)
        out[inside] = self.speech[frame[inside]]
        return out

    def crop(self, start_s: float, end_s: float) -> SpeechActivity:
        """The frames overlapping ``[start_s, end_s)``, as an activity starting at the first of them."""
        first, last = self._frame_range(start_s, end_s)
        return SpeechActivity(
            frame_s=self.frame_s,
            speech=self.speech[first:last].copy(),
            start_s=self.start_s + first * self.frame_s,
        )


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index pairs of the True runs of a bool array."""
    padded = np.concatenate([[False], np.asarray(flags, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def smooth_decisions(speech: np.ndarray, frame_ms: int, cfg: VadConfig) -> np.ndarray:
    """Steps 2-4 of the module docstring on raw per-frame decisions (bool (n,) -> bool (n,))."""
    out = np.asarray(speech, bool).copy()
    n = out.size
    min_gap = math.ceil(cfg.min_silence_ms / frame_ms - 1e-9)
    runs = _runs(out)
    for (_, end), (start, _) in itertools.pairwise(runs):
        if start - end < min_gap:
            out[end:start] = True
    min_run = math.ceil(cfg.min_speech_ms / frame_ms - 1e-9)
    for start, end in _runs(out):
        if end - start < min_run:
            out[start:end] = False
    after = math.ceil(cfg.hangover_ms / frame_ms - 1e-9)
    before = math.ceil(cfg.onset_ms / frame_ms - 1e-9)
    for start, end in _runs(out):
        out[max(0, start - before) : min(n, end + after)] = True
    return out


def _to_webrtc_rate(audio: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, int]:
    if sample_rate_hz in _WEBRTC_RATES_HZ:
        return audio, sample_rate_hz
    return resample(audio, sample_rate_hz, 16000), 16000


def webrtc_decisions(
    audio: np.ndarray, sample_rate_hz: int, aggressiveness: int, frame_ms: int
) -> np.ndarray:
    """Raw webrtcvad decisions, bool (floor(duration / frame),): 16-bit PCM frames of ``frame_ms``."""
    audio, rate = _to_webrtc_rate(np.asarray(audio, np.float32), sample_rate_hz)
    frame_len = rate * frame_ms // 1000
    num_frames = audio.size // frame_len
    pcm = (np.clip(audio[: num_frames * frame_len], -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    vad = webrtcvad.Vad(int(aggressiveness))
    step = frame_len * 2
    return np.fromiter(
        (vad.is_speech(pcm[k * step : (k + 1) * step], rate) for k in range(num_frames)),
        dtype=bool,
        count=num_frames,
    )


@functools.cache
def _silero_model() -> Any:
    with torch_threads():  # silero_vad's import calls torch.set_num_threads(1) process-wide
        from silero_vad import load_silero_vad

    with warnings.catch_warnings():  # silero_vad uses importlib.resources.path (deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad(onnx=True)


def silero_probabilities(audio: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, float]:
    """silero-vad speech probability per 32 ms chunk of 16 kHz audio: ``(probs (m,), chunk_s)``."""
    audio = np.asarray(audio, np.float32)
    if sample_rate_hz != _SILERO_RATE_HZ:
        audio = resample(audio, sample_rate_hz, _SILERO_RATE_HZ)
    model = _silero_model()
    session = model.session
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, _SILERO_CONTEXT), np.float32)
    rate = np.array(_SILERO_RATE_HZ, dtype=np.int64)
    num = audio.size // _SILERO_CHUNK
    probs = np.zeros(num, np.float32)
    for k in range(num):
        chunk = audio[k * _SILERO_CHUNK : (k + 1) * _SILERO_CHUNK][None, :]
        x = np.concatenate([context, chunk], axis=1)
        out, state = session.run(None, {"input": x, "state": state, "sr": rate})
        probs[k] = float(out.reshape(-1)[0])
        context = x[:, -_SILERO_CONTEXT:]
    return probs, _SILERO_CHUNK / _SILERO_RATE_HZ


def _resample_decisions(flags: np.ndarray, flag_s: float, frame_s: float, n: int) -> np.ndarray:
    """Per-frame view of decisions made on another grid (frame centre lookup)."""
    centres = (np.arange(n) + 0.5) * frame_s
    idx = np.minimum((centres / flag_s).astype(np.int64), max(flags.size - 1, 0))
    return flags[idx] if flags.size else np.zeros(n, bool)


def detect_speech(audio: np.ndarray, sample_rate_hz: int, cfg: VadConfig) -> SpeechActivity:
    """Speech activity of mono ``audio`` (float, -1..1) at ``sample_rate_hz``.

    Returns one decision per ``cfg.frame_ms`` frame (the last partial frame is dropped).

    Example::

        act = detect_speech(audio, 16000, VadConfig())
        act.regions()          # [(0.99, 4.56), ...] seconds
        act.ratio(1.0, 4.0)    # 0.97
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
        raise ValueError(f"detect_speech expects mono (n,) audio, got shape {audio.shape}")
    frame_s = cfg.frame_ms / 1000.0
    raw = webrtc_decisions(audio, sample_rate_hz, cfg.aggressiveness, cfg.frame_ms)
    speech = smooth_decisions(raw, cfg.frame_ms, cfg)
    if cfg.use_silero and speech.any():
        probs, chunk_s = silero_probabilities(audio, sample_rate_hz)
        opinion = _resample_decisions(probs >= cfg.silero_threshold, chunk_s, frame_s, raw.size)
        speech &= smooth_decisions(opinion, cfg.frame_ms, cfg)
    return SpeechActivity(frame_s=frame_s, speech=speech)
