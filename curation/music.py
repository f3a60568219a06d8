"""Music under speech: a learned second opinion for the speech-SNR check (YAMNet).

The VAD-gated SNR estimate (curation.snr) measures the noise in the speech pauses. Music defeats it:
webrtcvad calls notes speech, so a talk under loud music is measured in the few pauses where the
music is also quiet, and reads clean (a real talk under guitar at 0 dB read 37.9 dB). A classifier
that has heard music recognises it under the speech instead. :class:`MusicDetector` runs YAMNet
(Google's AudioSet classifier, 521 classes; weights in ``curation/models/yamnet/``, Apache-2.0,
see PROVENANCE.md there) on a window and returns the mean probability of its ``Music`` class over
the window's 0.96 s patches: :meth:`MusicDetector.score`. Curation rejects a window as ``low_snr``
when that score is ``>= snr.music_threshold`` (``curation.select.decide``), and records it in
``segments.music_score``.

- Frontend (:func:`log_mel`): YAMNet's published features, our own code: 16 kHz mono, 25 ms periodic
  Hann frames every 10 ms, a 512-point FFT magnitude, 64 triangular mel bands (HTK mel scale) from
  125 to 7500 Hz, ``log(mel + 0.001)``; patches of 96 frames (0.96 s) every 48 frames (0.48 s). A
  window shorter than one patch is padded with silence (``log(0.001)``).
- Network: the int8 CPU build of YAMNet that takes one log-mel patch (google-coral/coralmicro), run
  by the LiteRT interpreter without its default delegate (no console output; about 5 ms of one core
  per second of audio). One interpreter per process and model file, created on first use (Dask
  workers each load their own; the object itself never travels).
- Errors: a missing or unreadable model file raises :class:`MusicModelError` (one line).
  :func:`check_music_model` turns it into a config error at load time.
"""

from __future__ import annotations

import csv
import functools
import threading
from pathlib import Path

import numpy as np

from avforge.core import signal as core_signal

MODEL_DIR = Path(__file__).resolve().parent / "models" / "yamnet"
"""The bundled network, its class names, licence and provenance."""
DEFAULT_MODEL = MODEL_DIR / "yamnet_spectra_in.tflite"
CLASS_MAP = MODEL_DIR / "yamnet_class_map.csv"
MUSIC_CLASS = 132
"""Index of ``Music`` in YAMNet's class map."""

SAMPLE_RATE_HZ = 16000
WINDOW_SAMPLES = 400
"""25 ms STFT frames."""
HOP_SAMPLES = 160
"""10 ms between frames."""
FFT_SIZE = 512
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96
"""0.96 s of frames per network input."""
PATCH_HOP_FRAMES = 48
"""0.48 s between patches."""


class MusicModelError(ValueError):
    """The YAMNet model file is missing or cannot be loaded."""


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


@functools.cache
def mel_matrix() -> np.ndarray:
    """(257, 64) float32: FFT magnitude bins -> YAMNet's mel bands (the DC bin contributes nothing)."""
    bins = FFT_SIZE // 2 + 1
    freqs_mel = _hz_to_mel(np.linspace(0.0, SAMPLE_RATE_HZ / 2, bins)[1:])[:, None]
    edges = np.linspace(_hz_to_mel(MEL_MIN_HZ), _hz_to_mel(MEL_MAX_HZ), MEL_BANDS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs_mel - lower) / (centre - lower)
    falling = (upper - freqs_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.vstack([np.zeros((1, MEL_BANDS)), weights]).astype(np.float32)


@functools.cache
def _hann() -> np.ndarray:
    n = np.arange(WINDOW_SAMPLES)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / WINDOW_SAMPLES)).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """16 kHz mono ``audio`` (float, -1..1) -> YAMNet's log-mel spectrogram (frames, 64) float32.

    Frames start every 10 ms and must fit whole: ``1 + (len - 400) // 160`` of them (none for less
    than 25 ms of audio).
    """
    audio = np.asarray(audio, np.float32).reshape(-1)
    n = 0 if audio.size < WINDOW_SAMPLES else 1 + (audio.size - WINDOW_SAMPLES) // HOP_SAMPLES
    if n == 0:
        return np.zeros((0, MEL_BANDS), np.float32)
    idx = np.arange(WINDOW_SAMPLES)[None, :] + HOP_SAMPLES * np.arange(n)[:, None]
    magnitude = np.abs(np.fft.rfft(audio[idx] * _hann(), FFT_SIZE, axis=1)).astype(np.float32)
    return np.log(magnitude @ mel_matrix() + LOG_OFFSET).astype(np.float32)


def resample(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Mono ``audio`` at ``sample_rate_hz`` -> float32 at 16 kHz (polyphase; unchanged at 16 kHz)."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    if sample_rate_hz == SAMPLE_RATE_HZ:
        return audio
    return core_signal.resample(audio, sample_rate_hz, SAMPLE_RATE_HZ)


def patches(features: np.ndarray) -> np.ndarray:
    """Log-mel frames (n, 64) -> network inputs (p, 96, 64): every 48 frames, at least one (a short
    input is padded with silence)."""
    if len(features) < PATCH_FRAMES:
        pad = np.full((PATCH_FRAMES - len(features), MEL_BANDS), np.log(LOG_OFFSET), np.float32)
        features = np.vstack([features, pad])
    starts = range(0, len(features) - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
    return np.stack([features[s : s + PATCH_FRAMES] for s in starts]).astype(np.float32)


@functools.cache
def class_names() -> tuple[str, ...]:
    """YAMNet's 521 display names, by class index."""
    with CLASS_MAP.open(newline="", encoding="utf-8") as f:
        return tuple(row["display_name"] for row in csv.DictReader(f))


class MusicDetector:
    """YAMNet on windows of 16 kHz audio. One per process and model file: :func:`music_detector`."""

    def __init__(self, model: Path) -> None:
        from ai_edge_litert import interpreter as litert  # only when music is checked

        if not model.is_file():
            raise MusicModelError(f"YAMNet model file not found: {model}")
        try:
            self._net = litert.Interpreter(
                model_path=str(model),
                num_threads=1,
                experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self._net.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise MusicModelError(f"{model} is not a TFLite model: {exc}") from None
        inputs, outputs = self._net.get_input_details(), self._net.get_output_details()
        shape = tuple(inputs[0]["shape"]) if len(inputs) == 1 else ()
        if shape != (1, PATCH_FRAMES, MEL_BANDS) or tuple(outputs[0]["shape"])[-1] != 521:
            raise MusicModelError(
                f"{model} is not a YAMNet log-mel network (input {shape}, expected "
                f"(1, {PATCH_FRAMES}, {MEL_BANDS}) and 521 classes out)"
            )
        self._in, self._out = inputs[0]["index"], outputs[0]["index"]
        self._lock = (
            threading.Lock()
        )  # an interpreter is not thread-safe; threaded workers share it

    def class_scores(self, audio: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
        """(p, 521) class probabilities of each 0.96 s patch of mono ``audio`` (resampled to 16 kHz)."""
        batch = patches(log_mel(resample(audio, sample_rate_hz)))
        out = np.empty((len(batch), 521), np.float32)
        with self._lock:
            for i, patch in enumerate(batch):
                self._net.set_tensor(self._in, patch[None])
                self._net.invoke()
                out[i] = self._net.get_tensor(self._out)[0]
        return out

    def score(self, audio: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> float:
        """Mean ``Music`` probability over the patches of mono ``audio`` (0..1)."""
        return float(self.class_scores(audio, sample_rate_hz)[:, MUSIC_CLASS].mean())


def music_detector(model: Path | None = None) -> MusicDetector:
    """The process's detector for ``model`` (None: the bundled one), created once per file."""
    return _detector(Path(model or DEFAULT_MODEL))


@functools.lru_cache(maxsize=4)
def _detector(model: Path) -> MusicDetector:
    return MusicDetector(model)


def check_music_model(model: Path | None) -> None:
    """Load ``model`` (None: the bundled one) once or raise :class:`MusicModelError` saying why it
    cannot serve."""
    music_detector(model)
