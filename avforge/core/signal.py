"""Signal-level basics every package shares: polyphase resampling and the active-speech level.

Contract: every function here is pure (numpy and scipy only, no torch). Inputs are numpy arrays and
explicit numbers; outputs are new arrays or Python floats. Nothing reads files, keeps state or draws
random numbers. This is the one home of these concepts: :mod:`mixing.functional` re-exports the level
functions, and curation, training, interop and the synthetic generator call them instead of keeping
copies.

Resampling: :func:`resample` is ``scipy.signal.resample_poly`` with the ratio reduced by the gcd of
the two rates, float32 out unless a caller asks for another dtype.

Active-speech level (a simplified ITU-T P.56 level, the AVSpeech convention): the mean power of the
non-overlapping ``frame_len`` frames whose power is within ``threshold_db`` of the loudest frame
(:func:`active_frame_mask`), never the mean over the whole signal, so pauses do not inflate a gain.
Mixing uses 20 ms frames and a 40 dB range; the synthetic generator keeps 35 dB. A signal whose
loudest frame is below ``floor_db`` dBFS has no active frame and cannot be levelled
(:class:`SilentSignalError`, a ``ValueError``).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
from numpy.typing import DTypeLike

__all__ = [
    "SilentSignalError",
    "active_frame_mask",
    "active_power",
    "db_to_amplitude",
    "frame_powers",
    "mask_from_powers",
    "masked_power",
    "noise_gain_for_snr",
    "power_ratio_db",
    "resample",
]


class SilentSignalError(ValueError):
    """A signal that should carry speech has no active frame, so it has no level to scale to."""


# --------------------------------------------------------------------------- resampling


def resample(
    x: np.ndarray, from_hz: int, to_hz: int, *, dtype: DTypeLike = np.float32
) -> np.ndarray:
    """``x`` (..., time) at ``from_hz`` -> at ``to_hz`` along the last axis, as ``dtype`` (float32).

    Polyphase (``scipy.signal.resample_poly`` with up / down = the rates divided by their gcd), so
    ``n`` samples become ``ceil(n * to_hz / from_hz)``. Equal rates return ``x`` as ``dtype`` (no copy
    when it already is). The filter runs in the input's precision; ``dtype`` only sets the output.

    Example::

        y = resample(audio_44k, 44100, 16000)   # float32, 160/441 as many samples
    """
    from_hz, to_hz = int(from_hz), int(to_hz)
    if from_hz == to_hz:
        return np.asarray(x).astype(dtype, copy=False)
    g = math.gcd(from_hz, to_hz)
    y = scipy.signal.resample_poly(x, to_hz // g, from_hz // g, axis=-1)
    return y.astype(dtype, copy=False)


# --------------------------------------------------------------------------- levels


def frame_powers(
    signal: np.ndarray, frame_len: int, *, dtype: type[np.floating] = np.float32
) -> np.ndarray:
    """Mean power of each full, non-overlapping ``frame_len`` frame: (..., T) -> (..., T // frame_len).

    float32 math by default (ample for levels in dB; curation's SNR estimators ask for float64);
    works on a batch of signals at once. A partial tail frame is dropped.
    """
    n = signal.shape[-1] // frame_len
    frames = np.asarray(signal[..., : n * frame_len], dtype=dtype)
    frames = frames.reshape(*signal.shape[:-1], n, frame_len)
    return np.einsum("...ij,...ij->...i", frames, frames) / dtype(frame_len)


def mask_from_powers(powers: np.ndarray, *, threshold_db: float, floor_db: float) -> np.ndarray:
    """Active mask (..., frames) from :func:`frame_powers` (see :func:`active_frame_mask`)."""
    if powers.shape[-1] == 0:
        return np.zeros(powers.shape, bool)
    loudest = powers.max(axis=-1, keepdims=True)
    audible = loudest >= 10.0 ** (floor_db / 10.0)
    return (powers >= loudest * np.float32(10.0 ** (threshold_db / 10.0))) & audible


def active_frame_mask(
    signal: np.ndarray,
    *,
    frame_len: int,
    threshold_db: float = -40.0,
    floor_db: float = -70.0,
) -> np.ndarray:
    """Bool (frames,) mask of active frames: power within ``threshold_db`` of the loudest frame.

    The mask depends only on the signal's shape, not its scale (so a common gain, such as the peak
    guard's, never changes a measured ratio), except that a signal whose loudest frame is below
    ``floor_db`` (dB re full scale 1.0) is silent: no frame is active.
    """
    return mask_from_powers(
        frame_powers(signal, frame_len), threshold_db=threshold_db, floor_db=floor_db
    )


def masked_power(signal: np.ndarray, mask: np.ndarray, *, frame_len: int) -> float:
    """Mean power of ``signal`` over the frames where ``mask`` is True (0.0 if there are none)."""
    powers = frame_powers(signal, frame_len)[: mask.shape[0]]
    sel = powers[mask[: powers.shape[0]]]
    return float(sel.mean(dtype=np.float64)) if sel.size else 0.0


def active_power(
    signal: np.ndarray,
    *,
    frame_len: int,
    threshold_db: float = -40.0,
    floor_db: float = -70.0,
    frame_floor_db: float | None = None,
) -> tuple[float, np.ndarray]:
    """(mean power over active frames, active mask). Raises :class:`SilentSignalError` if none is active.

    ``frame_floor_db`` (None: no floor) raises every frame power below that level to it before the
    mask and the mean, so that digital silence counts as a quiet frame (the synthetic generator's
    -120 dB floor; it only matters when the loudest frame is within ``-threshold_db`` of the floor).

    Example::

        power, mask = active_power(speech, frame_len=320)   # 20 ms frames at 16 kHz
        level_db = 10 * math.log10(power)
    """
    powers = frame_powers(signal, frame_len)
    if frame_floor_db is not None:
        powers = np.maximum(powers, np.float32(10.0 ** (frame_floor_db / 10.0)))
    mask = mask_from_powers(powers, threshold_db=threshold_db, floor_db=floor_db)
    if not mask.any():
        raise SilentSignalError(
            f"no active frame above {floor_db} dBFS in {signal.shape[-1]} samples"
        )
    return float(powers[mask].mean(dtype=np.float64)), mask


def noise_gain_for_snr(
    speech: np.ndarray,
    noise: np.ndarray,
    snr_db: float,
    *,
    frame_len: int,
    threshold_db: float = -40.0,
    floor_db: float = -70.0,
    frame_floor_db: float | None = None,
) -> float:
    """Amplitude gain ``g`` such that :func:`active_power` of ``speech`` (with these level parameters)
    over the mean power of the whole of ``g * noise`` is ``snr_db`` dB.

    Raises :class:`SilentSignalError` if ``speech`` has no active frame or ``noise`` has no power.

    Example::

        mixture = speech + noise_gain_for_snr(speech, noise, 10.0, frame_len=320) * noise
    """
    speech_power, _ = active_power(
        speech,
        frame_len=frame_len,
        threshold_db=threshold_db,
        floor_db=floor_db,
        frame_floor_db=frame_floor_db,
    )
    noise_power = float(np.mean(np.asarray(noise, np.float64) ** 2)) if np.size(noise) else 0.0
    return gain_for_ratio(speech_power, noise_power, snr_db)


def gain_for_ratio(reference_power: float, other_power: float, ratio_db: float) -> float:
    """Amplitude gain for ``other`` so that ``reference / (gain² other)`` is ``ratio_db`` dB.

    Use it for an SNR (other = noise) or an SIR (other = interfering speaker). Raises
    :class:`SilentSignalError` when ``other_power`` is not a positive finite number.
    """
    if other_power <= 0.0 or not math.isfinite(other_power):
        raise SilentSignalError(f"cannot scale a signal of power {other_power} to a ratio")
    return math.sqrt(reference_power / (other_power * 10.0 ** (ratio_db / 10.0)))


def db_to_amplitude(gain_db: float) -> float:
    """Amplitude factor for a gain in dB."""
    return 10.0 ** (gain_db / 20.0)


def power_ratio_db(numerator_power: float, denominator_power: float) -> float:
    """``10 log10(numerator / denominator)`` (inf when the denominator is 0)."""
    if denominator_power <= 0.0:
        return math.inf
    if numerator_power <= 0.0:
        return -math.inf
    return 10.0 * math.log10(numerator_power / denominator_power)
