"""Pure DSP for mixing: levels on active speech, SNR gains, FFT convolution, peak guard, framing.

Contract: every function here is pure. Inputs are numpy float32 arrays (or torch tensors for the STFT
pair), explicit numbers and explicit randomness (none is drawn here); outputs are new arrays. Nothing
reads files, keeps state or touches a global random generator, so each function is tested in isolation
(tests/mixing/test_functional.py) and the stateful wrappers in :mod:`mixing.transforms` only cache.

Conventions (AVSpeech paper): audio 16 kHz mono, video 25 fps, so one video frame is 640 samples and
3 s is 48000 samples, 75 video frames and 298 STFT frames (Hann 400 / hop 160 / FFT 512, see
:func:`stft`). Levels are mean power over *active* frames (:func:`active_frame_mask`), never over the
whole signal, so silence in a clip does not inflate the gain it receives.

Failure modes: a signal with no active frame cannot be levelled (:class:`SilentSignalError`); an RIR
of zeros or non-finite values cannot be applied (:class:`InvalidRirError`). Both are ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.fft
import torch

from avforge.core.media import FPS as VIDEO_FPS
from avforge.core.media import SAMPLE_RATE_HZ

STFT_WIN_LENGTH = 400
"""25 ms Hann window at 16 kHz."""
STFT_HOP_LENGTH = 160
"""10 ms hop at 16 kHz."""
STFT_N_FFT = 512
"""FFT size: 257 frequency bins."""
STFT_PAD = (STFT_N_FFT - STFT_WIN_LENGTH) // 2
"""Zeros added on each side so that 512-sample FFT frames hold exactly the 400-sample windows."""
ENVELOPE_MIN = 1e-3
"""istft leaves samples whose summed squared window is below this at zero."""
ALIGN_S = 0.04
"""Crop offsets and start times are multiples of one 25 fps video frame (40 ms)."""


class SilentSignalError(ValueError):
    """A signal that should carry speech has no active frame, so it has no level to scale to."""


class InvalidRirError(ValueError):
    """A room impulse response is all zeros, empty or not finite."""


# --------------------------------------------------------------------------- framing


def num_stft_frames(num_samples: int) -> int:
    """STFT frames of :func:`stft` for ``num_samples`` samples: ``(num_samples - 400) // 160 + 1``.

    >>> num_stft_frames(48000)
    298
    """
    if num_samples < STFT_WIN_LENGTH:
        return 0
    return (num_samples - STFT_WIN_LENGTH) // STFT_HOP_LENGTH + 1


def num_video_frames(
    num_samples: int, sample_rate_hz: int = SAMPLE_RATE_HZ, fps: float = VIDEO_FPS
) -> int:
    """Video frames at ``fps`` that span ``num_samples`` audio samples (75 per 3 s at 25 fps)."""
    return round(num_samples * fps / sample_rate_hz)


def stft_window(device: torch.device | None = None) -> torch.Tensor:
    """The periodic Hann window of length 400 (float32)."""
    return torch.hann_window(STFT_WIN_LENGTH, dtype=torch.float32, device=device)


def stft(waveform: torch.Tensor) -> torch.Tensor:
    """Complex STFT (..., 257, frames) of ``waveform`` (..., time) with the paper's framing.

    Frame ``t`` is the 400-sample Hann-windowed slice ``waveform[..., 160 t : 160 t + 400]`` zero-padded
    to 512 points (the signal is padded by 56 zeros on each side and ``torch.stft`` runs with
    ``center=False``), so a 3 s clip at 16 kHz gives 257 x 298 (:func:`num_stft_frames`).

    Example::

        spec = stft(torch.zeros(2, 48000))   # complex64 (2, 257, 298)
    """
    if waveform.shape[-1] < STFT_WIN_LENGTH:
        raise ValueError(f"stft needs at least {STFT_WIN_LENGTH} samples, got {waveform.shape[-1]}")
    lead = waveform.shape[:-1]
    flat = waveform.reshape(-1, waveform.shape[-1]).to(torch.float32)
    padded = torch.nn.functional.pad(flat, (STFT_PAD, STFT_PAD))
    spec = torch.stft(
        padded,
        n_fft=STFT_N_FFT,
        hop_length=STFT_HOP_LENGTH,
        win_length=STFT_WIN_LENGTH,
        window=stft_window(waveform.device),
        center=False,
        return_complex=True,
    )
    return spec.reshape(*lead, spec.shape[-2], spec.shape[-1])


def istft(spec: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Inverse of :func:`stft`: (..., 257, frames) complex -> (..., num_samples) float32.

    Weighted overlap-add with the same window. Samples no frame covers (the last
    ``num_samples - (160 (frames - 1) + 400)`` samples, 80 for 3 s) come back as zeros, and so do the
    ~23 samples at each end of the covered span where the summed squared window is below
    ``ENVELOPE_MIN`` (dividing by it would only amplify noise). Everything else is reconstructed to
    float32 precision.
    """
    lead = spec.shape[:-2]
    n_frames = spec.shape[-1]
    flat = spec.reshape(-1, spec.shape[-2], n_frames)
    window = stft_window(spec.device)
    frames = torch.fft.irfft(flat, n=STFT_N_FFT, dim=-2)[:, STFT_PAD : STFT_PAD + STFT_WIN_LENGTH]
    frames = frames * window[None, :, None]
    covered = (n_frames - 1) * STFT_HOP_LENGTH + STFT_WIN_LENGTH
    fold = dict(
        output_size=(1, covered), kernel_size=(1, STFT_WIN_LENGTH), stride=(1, STFT_HOP_LENGTH)
    )
    signal = torch.nn.functional.fold(frames, **fold).reshape(flat.shape[0], covered)
    envelope = torch.nn.functional.fold(
        (window**2)[None, :, None].expand(1, -1, n_frames), **fold
    ).reshape(covered)
    signal = torch.where(envelope >= ENVELOPE_MIN, signal / envelope.clamp_min(ENVELOPE_MIN), 0.0)
    out = torch.zeros(flat.shape[0], num_samples, dtype=torch.float32, device=spec.device)
    keep = min(covered, num_samples)
    out[:, :keep] = signal[:, :keep]
    return out.reshape(*lead, num_samples)


# --------------------------------------------------------------------------- levels


def frame_powers(signal: np.ndarray, frame_len: int) -> np.ndarray:
    """Mean power of each full, non-overlapping ``frame_len`` frame: (..., T) -> (..., T // frame_len).

    float32 math (ample for levels in dB); works on a batch of signals at once.
    """
    n = signal.shape[-1] // frame_len
    frames = np.asarray(signal[..., : n * frame_len], dtype=np.float32)
    frames = frames.reshape(*signal.shape[:-1], n, frame_len)
    return np.einsum("...ij,...ij->...i", frames, frames) / np.float32(frame_len)


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
    signal: np.ndarray, *, frame_len: int, threshold_db: float = -40.0, floor_db: float = -70.0
) -> tuple[float, np.ndarray]:
    """(mean power over active frames, active mask). Raises :class:`SilentSignalError` if none is active.

    Example::

        power, mask = active_power(speech, frame_len=320)   # 20 ms frames at 16 kHz
        level_db = 10 * math.log10(power)
    """
    powers = frame_powers(signal, frame_len)
    mask = mask_from_powers(powers, threshold_db=threshold_db, floor_db=floor_db)
    if not mask.any():
        raise SilentSignalError(
            f"no active frame above {floor_db} dBFS in {signal.shape[-1]} samples"
        )
    return float(powers[mask].mean(dtype=np.float64)), mask


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


def gain_for_ratio(reference_power: float, other_power: float, ratio_db: float) -> float:
    """Amplitude gain for ``other`` so that ``reference / (gain² other)`` is ``ratio_db`` dB.

    Use it for an SNR (other = noise) or an SIR (other = interfering speaker).
    """
    if other_power <= 0.0 or not math.isfinite(other_power):
        raise SilentSignalError(f"cannot scale a signal of power {other_power} to a ratio")
    return math.sqrt(reference_power / (other_power * 10.0 ** (ratio_db / 10.0)))


# --------------------------------------------------------------------------- crop, place, tile


def seconds_to_samples(time_s: float, sample_rate_hz: int) -> int:
    """Nearest sample index of ``time_s``."""
    return round(time_s * sample_rate_hz)


def place(segment: np.ndarray, *, start: int, length: int) -> np.ndarray:
    """(length,) float32: ``segment`` starting at sample ``start``, zeros elsewhere, truncated at the end."""
    out = np.zeros(length, np.float32)
    if start >= length:
        return out
    take = min(segment.shape[0], length - start)
    out[start : start + take] = segment[:take]
    return out


def tile(signal: np.ndarray, *, offset: int, length: int) -> np.ndarray:
    """(length,) float32 from ``signal`` at ``offset``, looped (wrapping to sample 0) when too short.

    This is the documented handling of a noise shorter than the mixture: it repeats.
    """
    n = signal.shape[0]
    if n == 0:
        raise ValueError("cannot tile an empty signal")
    offset %= n
    if offset + length <= n:
        return np.array(signal[offset : offset + length], np.float32)
    reps = math.ceil((offset + length) / n)
    return np.tile(np.asarray(signal, np.float32), reps)[offset : offset + length]


def is_aligned(time_s: float, step_s: float = ALIGN_S) -> bool:
    """Whether ``time_s`` is a whole multiple of ``step_s`` (to 1 µs)."""
    return abs(time_s / step_s - round(time_s / step_s)) * step_s < 1e-6


# --------------------------------------------------------------------------- convolution


def check_rir(rir: np.ndarray) -> None:
    """Raise :class:`InvalidRirError` unless ``rir`` is a non-empty, finite, non-zero 1-D array."""
    if rir.ndim != 1 or rir.shape[0] == 0:
        raise InvalidRirError(f"an RIR must be a non-empty 1-D array, got shape {rir.shape}")
    if not np.all(np.isfinite(rir)):
        raise InvalidRirError("RIR contains NaN or inf")
    if not np.any(rir):
        raise InvalidRirError("RIR is all zeros: it would silence the source")


def fft_size(signal_len: int, rir_len: int) -> int:
    """FFT length for a linear convolution of the two lengths (a fast size >= the sum - 1)."""
    return scipy.fft.next_fast_len(signal_len + rir_len - 1, real=True)


def rir_spectrum(rir: np.ndarray, n_fft: int) -> np.ndarray:
    """rfft of ``rir`` at ``n_fft`` points (complex64), after :func:`check_rir`."""
    check_rir(rir)
    return scipy.fft.rfft(np.asarray(rir, np.float32), n=n_fft)


def fft_convolve(signal: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """The first ``len(signal)`` samples of ``signal * rir`` (linear convolution), float32.

    Example::

        wet = fft_convolve(dry, rir)     # same length as dry, the RIR's delay included
    """
    n_fft = fft_size(signal.shape[0], rir.shape[0])
    return convolve_spectra(signal, [rir_spectrum(rir, n_fft)], n_fft=n_fft)[0]


def convolve_spectra(
    signal: np.ndarray, spectra: Sequence[np.ndarray], *, n_fft: int
) -> list[np.ndarray]:
    """Convolve ``signal`` with several RIRs given as :func:`rir_spectrum` outputs (one forward FFT)."""
    length = signal.shape[0]
    spec = scipy.fft.rfft(np.asarray(signal, np.float32), n=n_fft)
    return [
        scipy.fft.irfft(spec * h, n=n_fft)[:length].astype(np.float32, copy=False) for h in spectra
    ]


# --------------------------------------------------------------------------- peak guard


def peak_scale(signals: Sequence[np.ndarray], *, max_abs: float) -> float:
    """One factor in (0, 1] that brings the largest ``|sample|`` of all ``signals`` to <= ``max_abs``.

    Apply it to the mixture and every target together so that their sum relation and their level
    ratios are kept.
    """
    return peak_scale_from_peaks(
        [max(float(s.max()), -float(s.min())) for s in signals if s.size], max_abs=max_abs
    )


def peak_scale_from_peaks(peaks: Sequence[float], *, max_abs: float) -> float:
    """:func:`peak_scale` from the signals' peak magnitudes (when they are known without a pass)."""
    if not all(math.isfinite(p) for p in peaks):
        raise ValueError("signal contains NaN or inf")
    peak = max(peaks, default=0.0)
    if peak <= max_abs or peak == 0.0:
        return 1.0
    return max_abs / peak * (1.0 - 1e-6)  # margin for float32 rounding
