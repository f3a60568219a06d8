"""Pure DSP for mixing: levels on active speech, SNR gains, FFT convolution, peak guard, framing.

Contract: every function here is pure. Inputs are numpy float32 arrays (or torch tensors for the STFT
pair), explicit numbers and explicit randomness (none is drawn here); outputs are new arrays. Nothing
reads files, keeps state or touches a global random generator, so each function is tested in isolation
(tests/mixing/test_functional.py) and the stateful wrappers in :mod:`mixing.transforms` only cache.

The active-speech level functions (:func:`frame_powers`, :func:`active_frame_mask`,
:func:`active_power`, :class:`SilentSignalError`...) live in :mod:`avforge.core.signal` and are
re-exported here. The STFT pair (:func:`stft`, :func:`istft`) is the one and only STFT of the project:
the one trained models use (``training.models.spectral`` imports it), so its numerics are frozen.

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

# The level functions' home is avforge.core.signal; these names stay importable from here.
from avforge.core.signal import SilentSignalError as SilentSignalError
from avforge.core.signal import active_frame_mask as active_frame_mask
from avforge.core.signal import active_power as active_power
from avforge.core.signal import db_to_amplitude as db_to_amplitude
from avforge.core.signal import frame_powers as frame_powers
from avforge.core.signal import gain_for_ratio as gain_for_ratio
from avforge.core.signal import mask_from_powers as mask_from_powers
from avforge.core.signal import masked_power as masked_power
from avforge.core.signal import power_ratio_db as power_ratio_db

STFT_WIN_LENGTH = 400
"""25 ms Hann window at 16 kHz."""
STFT_HOP_LENGTH = 160
"""10 ms hop at 16 kHz."""
STFT_N_FFT = 512
"""FFT size: each 400-sample frame is zero-padded at its end to 512 points."""
STFT_NUM_BINS = STFT_N_FFT // 2 + 1
"""257 frequency bins."""
ENVELOPE_FLOOR = 0.01
"""istft leaves samples whose summed squared window is below this fraction of its peak at zero."""
_ENVELOPE_EPS = 1e-8
ALIGN_S = 0.04
"""Crop offsets and start times are multiples of one 25 fps video frame (40 ms)."""


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

    Frame ``t`` is the 400-sample Hann-windowed slice ``waveform[..., 160 t : 160 t + 400]``
    (``Tensor.unfold``, no centring, no padding of the signal), zero-padded at its end to 512 points
    and ``rfft``-ed, so a 3 s clip at 16 kHz gives 257 x 298 (:func:`num_stft_frames`). Runs in
    float32 with autocast disabled (half-precision FFTs lose the quiet bins). This is the STFT trained
    models use: changing its numerics invalidates their checkpoints. Raises ``ValueError`` below 400
    samples.

    Example::

        spec = stft(torch.zeros(2, 48000))   # complex64 (2, 257, 298)
    """
    if waveform.shape[-1] < STFT_WIN_LENGTH:
        raise ValueError(f"stft needs at least {STFT_WIN_LENGTH} samples, got {waveform.shape[-1]}")
    with torch.autocast(device_type=waveform.device.type, enabled=False):
        x = waveform.float()
        frames = x.unfold(-1, STFT_WIN_LENGTH, STFT_HOP_LENGTH) * stft_window(x.device)
        spec = torch.fft.rfft(frames, n=STFT_N_FFT, dim=-1)
        return spec.transpose(-1, -2).contiguous()


def istft(spec: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Inverse of :func:`stft`: complex (..., 257, frames) -> float32 (..., num_samples).

    Windowed overlap-add with the same window, divided by the summed squared window. Samples where
    that sum is below ``ENVELOPE_FLOOR`` (1 %) of its peak come back as zeros: the first 42 and the
    last 41 samples of the covered span (dividing there would only amplify noise), and the tail no frame
    covers (the last ``num_samples - (160 (frames - 1) + 400)`` samples, 80 for 3 s). Everything else
    is reconstructed to float32 precision. float32 with autocast disabled, like :func:`stft`.
    """
    with torch.autocast(device_type=spec.device.type, enabled=False):
        spec = spec.to(torch.complex64)
        lead = spec.shape[:-2]
        n_frames = spec.shape[-1]
        frames = torch.fft.irfft(spec.transpose(-1, -2), n=STFT_N_FFT, dim=-1)
        frames = frames[..., :STFT_WIN_LENGTH]
        window = stft_window(spec.device)
        frames = (frames * window).reshape(-1, n_frames, STFT_WIN_LENGTH).transpose(1, 2)
        covered = (n_frames - 1) * STFT_HOP_LENGTH + STFT_WIN_LENGTH
        fold = dict(
            output_size=(1, covered),
            kernel_size=(1, STFT_WIN_LENGTH),
            stride=(1, STFT_HOP_LENGTH),
        )
        out = torch.nn.functional.fold(frames, **fold)
        env = torch.nn.functional.fold(
            (window * window).reshape(1, STFT_WIN_LENGTH, 1).expand(1, STFT_WIN_LENGTH, n_frames),
            **fold,
        )
        out, env = out.reshape(-1, covered), env.reshape(1, covered)
        ok = env > ENVELOPE_FLOOR * env.max()
        out = torch.where(ok, out / env.clamp_min(_ENVELOPE_EPS), torch.zeros_like(out))
        if covered < num_samples:
            out = torch.nn.functional.pad(out, (0, num_samples - covered))
        return out[:, :num_samples].reshape(*lead, num_samples)


# --------------------------------------------------------------------------- levels


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
