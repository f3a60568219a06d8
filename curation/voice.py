"""Voice identity: a 256-d speaker embedding per clip (GE2E speaker encoder, Resemblyzer's weights).

Contract:

- input: mono float32 audio at 16 kHz (any length; a clip is 3-10 s);
- output: :meth:`VoiceEncoder.embed` -> float32 (256,) unit vector; embeddings of one speaker have a
  higher cosine similarity (dot product) than embeddings of two speakers (``curation.clusters``
  clusters them; the threshold is calibrated on real speech, docs/splits.md);
- failures: a missing or altered weight file raises :class:`VoiceModelError` (systemic: every clip
  would lack its embedding). Audio with no speech at all still gets an embedding (of what is there).

The network and the signal chain are our own torch/numpy code reproducing Resemblyzer 0.1.4
(Apache-2.0; the weights ``curation/models/ge2e/encoder.pt`` are its ``pretrained.pt`` model tensors,
see ``PROVENANCE.md`` there): volume raised to -30 dBFS (never lowered), silences longer than
~0.2 s removed with webrtcvad (mode 3, 30 ms windows), a 40-band mel power spectrogram (25 ms Hann
window, 10 ms hop, Slaney mel scale and normalisation, as ``librosa.feature.melspectrogram``),
160-frame (1.6 s) partials at 1.3 partials a second, a 3-layer 256-unit LSTM, a linear 256 layer, ReLU
and L2 norm per partial; the clip's embedding is the L2-normalised mean of its partials.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import binary_dilation
from torch import nn

from avforge.core.signal import resample
from curation.weights import file_sha256, recorded_checksums

SAMPLE_RATE = 16000
N_FFT = 400
"""25 ms window."""
HOP = 160
"""10 ms hop."""
N_MELS = 40
PARTIAL_FRAMES = 160
PARTIAL_RATE = 1.3
"""Partials a second of audio."""
MIN_COVERAGE = 0.75
EMBEDDING_DIM = 256
TARGET_DBFS = -30.0
VAD_WINDOW_MS = 30
VAD_AVERAGE_WIDTH = 8
VAD_MAX_SILENCE = 6

MODEL_DIR = Path(__file__).resolve().parent / "models" / "ge2e"
WEIGHTS = MODEL_DIR / "encoder.pt"
INT16_MAX = 2**15 - 1


class VoiceModelError(FileNotFoundError):
    """The speaker encoder's weight file is missing or not the shipped one (systemic)."""


class GE2E(nn.Module):
    """The GE2E speaker encoder: LSTM(40 -> 256, 3 layers) -> linear 256 -> ReLU -> L2 norm."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, EMBEDDING_DIM)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(batch, frames, 40) mel power -> (batch, 256) unit embeddings."""
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-12)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa's default, ``htk=False``)."""
    f = np.asarray(f, np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = f >= min_log_hz
    mels[log_t] = min_log_mel + np.log(f[log_t] / min_log_hz) / logstep
    return mels


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = m >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (m[log_t] - min_log_mel))
    return freqs


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(40, 201) Slaney-normalised triangular filters, 0..8 kHz (``librosa.filters.mel``)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_f = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([8000.0]))[0], N_MELS + 2)
    )
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.zeros((N_MELS, len(fft_freqs)))
    for i in range(N_MELS):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS])
    return (weights * enorm[:, None]).astype(np.float32)


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) float32 mel power spectrogram (centred frames, zero padding, periodic Hann)."""
    x = np.pad(np.asarray(wav, np.float32), N_FFT // 2, mode="constant")
    n_frames = 1 + (len(x) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    spec = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2
    return (spec @ mel_filterbank().T).astype(np.float32)


def normalize_volume(wav: np.ndarray) -> np.ndarray:
    """Raise the level to -30 dBFS RMS; louder audio is left as it is."""
    rms = float(np.sqrt(np.mean((wav * INT16_MAX) ** 2))) if len(wav) else 0.0
    if rms <= 0:
        return wav
    change = TARGET_DBFS - 20 * np.log10(rms / INT16_MAX)
    return wav if change < 0 else wav * (10 ** (change / 20))


def trim_long_silences(wav: np.ndarray) -> np.ndarray:
    """Drop silences longer than ~0.2 s (webrtcvad mode 3, smoothed and dilated as Resemblyzer)."""
    import webrtcvad

    win = VAD_WINDOW_MS * SAMPLE_RATE // 1000
    wav = wav[: len(wav) - len(wav) % win]
    if len(wav) == 0:
        return wav
    pcm = np.round(np.clip(wav, -1, 1) * INT16_MAX).astype("<i2").tobytes()
    vad = webrtcvad.Vad(3)
    flags = np.array(
        [vad.is_speech(pcm[s * 2 : (s + win) * 2], SAMPLE_RATE) for s in range(0, len(wav), win)],
        dtype=float,
    )
    w = VAD_AVERAGE_WIDTH
    padded = np.concatenate((np.zeros((w - 1) // 2), flags, np.zeros(w // 2)))
    c = np.cumsum(padded)
    c[w:] = c[w:] - c[:-w]
    mask = np.round(c[w - 1 :] / w).astype(bool)
    mask = binary_dilation(mask, np.ones(VAD_MAX_SILENCE + 1))
    return wav[np.repeat(mask, win)]


def partial_slices(n_samples: int) -> list[slice]:
    """Mel-frame ranges of the 160-frame partials that cover ``n_samples`` (Resemblyzer's rule)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SAMPLE_RATE / PARTIAL_RATE) / HOP))
    slices = [
        slice(i, i + PARTIAL_FRAMES)
        for i in range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step)
    ]
    last = slices[-1]
    coverage = (n_samples - last.start * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(slices) > 1:
        slices = slices[:-1]
    return slices


class VoiceEncoder:
    """The speaker encoder on CPU (thread-safe; one per process via :func:`load_voice_encoder`)."""

    def __init__(self, weights: Path = WEIGHTS, check_sha256: bool = True) -> None:
        if not weights.is_file():
            raise VoiceModelError(
                f"speaker encoder weights not found: {weights} (reinstall avforge)"
            )
        if (
            check_sha256
            and weights == WEIGHTS
            and file_sha256(weights) != recorded_checksums()["files"]["ge2e/encoder.pt"]
        ):
            raise VoiceModelError(
                f"speaker encoder weights {weights} are altered (sha256 mismatch)"
            )
        self.net = GE2E()
        state = torch.load(weights, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state, strict=True)
        self.net.eval()
        self._lock = threading.Lock()

    def preprocess(self, audio: np.ndarray) -> np.ndarray:
        """Volume normalisation and silence trimming (the encoder's training-time input)."""
        wav = normalize_volume(np.asarray(audio, np.float32))
        trimmed = trim_long_silences(wav)
        # A clip that is all silence to the VAD keeps its audio: an embedding of it beats none.
        return trimmed if len(trimmed) >= HOP * 10 else wav

    def embed_preprocessed(self, wav: np.ndarray) -> np.ndarray:
        """Embedding of already preprocessed audio (Resemblyzer's ``embed_utterance``)."""
        slices = partial_slices(len(wav))
        need = slices[-1].stop * HOP
        if need >= len(wav):
            wav = np.pad(wav, (0, need - len(wav)))
        mel = mel_spectrogram(wav)
        mels = np.stack([mel[s] for s in slices])
        with self._lock, torch.inference_mode():
            partials = self.net(torch.from_numpy(mels)).numpy()
        raw = partials.mean(axis=0)
        return (raw / max(float(np.linalg.norm(raw)), 1e-12)).astype(np.float32)

    def embed(self, audio: np.ndarray, sample_rate_hz: int = SAMPLE_RATE) -> np.ndarray:
        """float32 (256,) unit speaker embedding of mono ``audio`` (resampled to 16 kHz if needed)."""
        audio = np.asarray(audio, np.float32)
        if sample_rate_hz != SAMPLE_RATE:
            audio = resample(audio, sample_rate_hz, SAMPLE_RATE)
        return self.embed_preprocessed(self.preprocess(audio))


_ENCODER: VoiceEncoder | None = None
_ENCODER_LOCK = threading.Lock()


def load_voice_encoder() -> VoiceEncoder:
    """The process's shared encoder (loaded once; raises :class:`VoiceModelError`)."""
    global _ENCODER
    with _ENCODER_LOCK:
        if _ENCODER is None:
            _ENCODER = VoiceEncoder()
        return _ENCODER
