"""The paper's spectral front and back end: STFT, power-law compression, complex masks, inverse STFT.

Contract (AVSpeech paper, section 4): 16 kHz mono audio, Hann window of 25 ms (400 samples), hop 10 ms
(160 samples), FFT size 512, so 257 frequency bins and ``(num_samples - 400) // 160 + 1`` frames
(298 per 3 s). Spectrograms are power-law compressed with p = 0.3 (``|X|^p`` with the phase kept), the
network's masks multiply the compressed mixture, and the result is decompressed and inverted.

The STFT pair lives in :mod:`mixing.functional` (its one home, :func:`mixing.functional.stft` /
:func:`mixing.functional.istft`) and is re-exported here with the framing constants. It is framed
without centring (the paper's 298 frames per 3 s, not 301) and inverted by windowed overlap-add
normalised by the summed squared window, so ``istft(stft(x))`` reproduces ``x`` wherever a full frame
covers it (the first and last few samples fall off). Trained checkpoints depend on its exact numerics.
Every op runs in float32 even under autocast: half-precision FFTs lose the quiet bins.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mixing.functional import (
    STFT_HOP_LENGTH,
    STFT_N_FFT,
    STFT_NUM_BINS,
    STFT_WIN_LENGTH,
    num_stft_frames,
)
from mixing.functional import istft as istft
from mixing.functional import stft as stft

WIN_LENGTH = STFT_WIN_LENGTH
HOP_LENGTH = STFT_HOP_LENGTH
N_FFT = STFT_N_FFT
NUM_BINS = STFT_NUM_BINS
POWER = 0.3
_EPS = 1e-8


def num_frames(num_samples: int) -> int:
    """STFT frames for ``num_samples`` samples (298 for 48000 = 3 s at 16 kHz).

    :func:`mixing.functional.num_stft_frames`, except that fewer than 400 samples raise ``ValueError``.
    """
    if num_samples < WIN_LENGTH:
        raise ValueError(f"need at least {WIN_LENGTH} samples, got {num_samples}")
    return num_stft_frames(num_samples)


def compress(spec: Tensor, power: float = POWER) -> Tensor:
    """Power-law compression ``|X|^p · e^{i∠X}`` of a complex spectrogram (any shape)."""
    with torch.autocast(device_type=spec.device.type, enabled=False):
        spec = spec.to(torch.complex64)
        mag = spec.abs()
        return spec * (mag + _EPS).pow(power - 1.0)


def decompress(spec: Tensor, power: float = POWER) -> Tensor:
    """Inverse of :func:`compress`: ``|Y|^{1/p} · e^{i∠Y}``."""
    with torch.autocast(device_type=spec.device.type, enabled=False):
        spec = spec.to(torch.complex64)
        mag = spec.abs()
        return spec * (mag + _EPS).pow(1.0 / power - 1.0)


def complex_to_channels(spec: Tensor) -> Tensor:
    """complex (B, F, T) -> float (B, 2, T, F): real and imaginary parts as image channels."""
    return torch.stack((spec.real, spec.imag), dim=1).transpose(-1, -2)


def apply_masks(masks: Tensor, spec: Tensor) -> Tensor:
    """Complex-multiply masks (B, n, F, T, 2) with a complex spectrogram (B, F, T) -> (B, n, F, T)."""
    with torch.autocast(device_type=spec.device.type, enabled=False):
        m = torch.complex(masks[..., 0].float(), masks[..., 1].float())
        return m * spec.to(torch.complex64).unsqueeze(1)
