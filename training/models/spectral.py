"""The paper's spectral front and back end: STFT, power-law compression, complex masks, inverse STFT.

Contract (AVSpeech paper, section 4): 16 kHz mono audio, Hann window of 25 ms (400 samples), hop 10 ms
(160 samples), FFT size 512, so 257 frequency bins and ``(num_samples - 400) // 160 + 1`` frames
(298 per 3 s). Spectrograms are power-law compressed with p = 0.3 (``|X|^p`` with the phase kept), the
network's masks multiply the compressed mixture, and the result is decompressed and inverted.

The STFT is framed without centring (the paper's 298 frames per 3 s, not 301) and inverted by
windowed overlap-add normalised by the summed squared window, so ``istft(stft(x))`` reproduces ``x``
wherever a full frame covers it (the first and last few samples fall off, see :func:`istft`).
Every op runs in float32 even under autocast: half-precision FFTs lose the quiet bins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

WIN_LENGTH = 400
HOP_LENGTH = 160
N_FFT = 512
NUM_BINS = N_FFT // 2 + 1
POWER = 0.3
_EPS = 1e-8


def num_frames(num_samples: int) -> int:
    """STFT frames for ``num_samples`` samples (298 for 48000 = 3 s at 16 kHz)."""
    if num_samples < WIN_LENGTH:
        raise ValueError(f"need at least {WIN_LENGTH} samples, got {num_samples}")
    return (num_samples - WIN_LENGTH) // HOP_LENGTH + 1


def _window(device: torch.device) -> Tensor:
    return torch.hann_window(WIN_LENGTH, periodic=True, device=device, dtype=torch.float32)


def stft(waveform: Tensor) -> Tensor:
    """Complex STFT of ``waveform`` (..., num_samples) -> complex64 (..., 257, num_frames)."""
    with torch.autocast(device_type=waveform.device.type, enabled=False):
        x = waveform.float()
        frames = x.unfold(-1, WIN_LENGTH, HOP_LENGTH) * _window(x.device)
        spec = torch.fft.rfft(frames, n=N_FFT, dim=-1)
        return spec.transpose(-1, -2).contiguous()


def istft(spec: Tensor, num_samples: int) -> Tensor:
    """Inverse of :func:`stft`: complex (..., 257, num_frames) -> float32 (..., num_samples).

    Windowed overlap-add divided by the summed squared window; samples where that sum is below 1 %
    of its peak (the first and last few samples, and any tail no frame covers) are set to zero.
    """
    with torch.autocast(device_type=spec.device.type, enabled=False):
        spec = spec.to(torch.complex64)
        lead = spec.shape[:-2]
        n_frames = spec.shape[-1]
        frames = torch.fft.irfft(spec.transpose(-1, -2), n=N_FFT, dim=-1)[..., :WIN_LENGTH]
        window = _window(spec.device)
        frames = (frames * window).reshape(-1, n_frames, WIN_LENGTH).transpose(1, 2)
        covered = (n_frames - 1) * HOP_LENGTH + WIN_LENGTH
        out = F.fold(frames, (1, covered), (1, WIN_LENGTH), stride=(1, HOP_LENGTH))
        env = F.fold(
            (window * window).reshape(1, WIN_LENGTH, 1).expand(1, WIN_LENGTH, n_frames),
            (1, covered),
            (1, WIN_LENGTH),
            stride=(1, HOP_LENGTH),
        )
        out, env = out.reshape(-1, covered), env.reshape(1, covered)
        ok = env > 0.01 * env.max()
        out = torch.where(ok, out / env.clamp_min(_EPS), torch.zeros_like(out))
        if covered < num_samples:
            out = F.pad(out, (0, num_samples - covered))
        return out[:, :num_samples].reshape(*lead, num_samples)


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
