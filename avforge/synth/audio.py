"""Pure audio helpers of the generator: active-speech levels, speech streams, noise at an SNR.

All signals are mono float32 numpy arrays at one sample rate (16 kHz in practice), values in -1..1.
Levels are dBFS of RMS. "Active speech" is the set of 20 ms frames whose level is within
``ACTIVE_RANGE_DB`` of the loudest frame: SNRs are measured on it (the AVSpeech convention), never on
the whole signal with its pauses. The level rule is :mod:`avforge.core.signal`'s (mixing's), with the
generator's own 35 dB range and -119 dBFS silence floor. Every random choice comes from the
``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.signal import lfilter

from avforge.core import signal as core_signal

# The synthetic generator keeps its own range (mixing's is 40 dB) so that its fixtures do not move.
ACTIVE_RANGE_DB = 35.0
SILENT_BELOW_DB = -119.0
"""A signal whose loudest frame is below this level (dBFS) is silent: active power 0.0."""
FRAME_FLOOR_DB = -120.0
"""Frame levels below this count as this level (:func:`frame_levels_db`'s floor)."""
FRAME_S = 0.02


def frame_levels_db(x: np.ndarray, sample_rate_hz: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level (dBFS, floor -120) of consecutive non-overlapping frames; a partial tail is dropped."""
    n = round(frame_s * sample_rate_hz)
    if len(x) // n == 0:
        return np.full(1, -120.0)
    powers = core_signal.frame_powers(np.asarray(x), n).astype(np.float64)
    return 10.0 * np.log10(np.maximum(powers, 10.0 ** (FRAME_FLOOR_DB / 10.0)))


def active_power(x: np.ndarray, sample_rate_hz: int) -> float:
    """Mean power of the active-speech frames of ``x`` (0.0 for a silent signal).

    :func:`avforge.core.signal.active_power` with 20 ms frames and the generator's 35 dB range.
    """
    try:
        power, _ = core_signal.active_power(
            np.asarray(x),
            frame_len=round(FRAME_S * sample_rate_hz),
            threshold_db=-ACTIVE_RANGE_DB,  # the generator's range, not mixing's 40 dB
            floor_db=SILENT_BELOW_DB,
            frame_floor_db=FRAME_FLOOR_DB,
        )
    except core_signal.SilentSignalError:
        return 0.0
    return power


def normalize_active(x: np.ndarray, sample_rate_hz: int, target_db: float) -> np.ndarray:
    """``x`` scaled so that its active-speech level is ``target_db`` dBFS (float32)."""
    power = active_power(x, sample_rate_hz)
    if power <= 0.0:
        return np.asarray(x, dtype=np.float32)
    gain = 10.0 ** (target_db / 20.0) / np.sqrt(power)
    return (np.asarray(x, dtype=np.float64) * gain).astype(np.float32)


def trim_silence(x: np.ndarray, sample_rate_hz: int, margin_s: float = 0.05) -> np.ndarray:
    """``x`` without leading and trailing non-active frames, keeping ``margin_s`` on each side."""
    levels = frame_levels_db(x, sample_rate_hz)
    active = np.flatnonzero(levels >= levels.max() - ACTIVE_RANGE_DB)
    if len(active) == 0:
        return x
    n = round(FRAME_S * sample_rate_hz)
    margin = round(margin_s * sample_rate_hz)
    start = max(0, active[0] * n - margin)
    end = min(len(x), (active[-1] + 1) * n + margin)
    return x[start:end]


def speech_stream(
    utterances: Sequence[np.ndarray],
    n_samples: int,
    sample_rate_hz: int,
    rng: np.random.Generator,
    pause_s: tuple[float, float] = (0.15, 0.3),
    lead_s: float = 0.1,
    fade_s: float = 0.02,
) -> np.ndarray:
    """``n_samples`` of one voice: its utterances back to back with short random pauses.

    Starts after ``lead_s`` of silence at a random utterance and cycles through all of them; the
    last one is cut at the end with a ``fade_s`` fade-out. Returns float32 (n_samples,).
    """
    out = np.zeros(n_samples, dtype=np.float32)
    if not utterances or n_samples == 0:
        return out
    pos = round(lead_s * sample_rate_hz)
    index = int(rng.integers(len(utterances)))
    while pos < n_samples:
        utt = utterances[index % len(utterances)]
        take = min(len(utt), n_samples - pos)
        out[pos : pos + take] = utt[:take]
        if take < len(utt):
            fade = min(take, round(fade_s * sample_rate_hz))
            if fade:
                out[pos + take - fade : pos + take] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        pos += take + round(rng.uniform(*pause_s) * sample_rate_hz)
        index += 1
    return out


def room_tone(n_samples: int, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """Low, slightly pink noise (one-pole low-passed white noise) at ``level_db`` dBFS RMS."""
    white = rng.standard_normal(n_samples)
    pink = lfilter([0.3], [1.0, -0.7], white) + 0.3 * white
    rms = np.sqrt(np.mean(pink**2)) if n_samples else 1.0
    return (pink / max(rms, 1e-12) * 10.0 ** (level_db / 20.0)).astype(np.float32)


def noise_excerpt(noise: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random excerpt of ``n_samples`` from ``noise`` (looped when it is shorter). float32."""
    if len(noise) == 0:
        raise ValueError("empty noise signal")
    reps = int(np.ceil((n_samples + len(noise)) / len(noise)))
    looped = np.tile(noise, reps)
    start = int(rng.integers(len(noise)))
    return np.asarray(looped[start : start + n_samples], dtype=np.float32)


def noise_gain_for_snr(
    speech: np.ndarray, noise: np.ndarray, snr_db: float, sample_rate_hz: int
) -> float:
    """The gain ``g`` such that ``speech`` over ``g * noise`` has ``snr_db`` (active speech vs all noise).

    :func:`avforge.core.signal.noise_gain_for_snr` with the generator's 35 dB range; 0.0 when the
    speech or the noise is silent.
    """
    try:
        return core_signal.noise_gain_for_snr(
            np.asarray(speech),
            noise,
            snr_db,
            frame_len=round(FRAME_S * sample_rate_hz),
            threshold_db=-ACTIVE_RANGE_DB,  # the generator's range, not mixing's 40 dB
            floor_db=SILENT_BELOW_DB,
            frame_floor_db=FRAME_FLOOR_DB,
        )
    except core_signal.SilentSignalError:
        return 0.0


def snr_db(speech: np.ndarray, other: np.ndarray, sample_rate_hz: int) -> float:
    """Measured SNR (dB): active-speech power of ``speech`` over the mean power of ``other``."""
    speech_power = active_power(speech, sample_rate_hz)
    other_power = float(np.mean(np.asarray(other, dtype=np.float64) ** 2))
    if speech_power <= 0.0:
        return float("-inf")
    return float(10.0 * np.log10(speech_power / max(other_power, 1e-20)))
