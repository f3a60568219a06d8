"""Evaluation metrics of separated speech: SDRi, SI-SDRi (dB), PESQ, STOI.

All functions take waveforms at 16 kHz: estimates and targets (B, n, num_samples), the mixture
(B, num_samples), and return per-source values (B, n) as float64 numpy arrays or tensors:

- SDR is BSS-eval's (distortion filter of 512 taps, as the AVSpeech paper reports), computed here in
  float64 numpy with torchmetrics' conventions (zero mean, unit norm, FFT correlations, Toeplitz
  system). It used to call torchmetrics, whose ``torch.linalg.solve`` fails in this torch / oneMKL
  build whenever torch runs on more than one thread ("Pivots given to lu_solve must all be greater or
  equal to 1"), so validation and ``avforge evaluate`` failed on multi-core machines. A silent target
  gives NaN (SDR is undefined), a silent estimate -inf, an exact estimate about 160 dB (float64's
  limit) instead of NaN;
- SI-SDR is scale-invariant SDR (Le Roux et al. 2019);
- "improvement" is the metric of the estimate minus the metric of the unprocessed mixture against the
  same target;
- PESQ is wide-band PESQ (ITU-T P.862.2) from the ``pesq`` package; signals it cannot score (no
  utterance detected, too short) give NaN, counted in :class:`MetricSummary`;
- STOI is from ``pystoi`` (classic, not extended); a signal too short to score after pystoi drops its
  silent frames gives NaN (pystoi itself returns 1e-5), counted like PESQ's.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch
from pesq import NoUtterancesError, PesqError, pesq
from pystoi import stoi
from torch import Tensor

from avforge.core.media import SAMPLE_RATE_HZ
from training.losses import singlesrc_neg_sisdr


def _flat(estimates: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    if estimates.shape != targets.shape:
        raise ValueError(f"shape mismatch {tuple(estimates.shape)} vs {tuple(targets.shape)}")
    length = targets.shape[-1]
    return estimates.reshape(-1, length).float(), targets.reshape(-1, length).float()


def si_sdr(estimates: Tensor, targets: Tensor) -> Tensor:
    """SI-SDR in dB, (B, n, L) x (B, n, L) -> (B, n)."""
    est, tgt = _flat(estimates, targets)
    return (-singlesrc_neg_sisdr(est, tgt)).reshape(targets.shape[:-1])


SDR_FILTER_TAPS = 512
"""Length of BSS-eval's distortion filter (the AVSpeech paper's setting)."""


def _unit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-6), norm[..., 0]


def sdr(estimates: Tensor, targets: Tensor) -> Tensor:
    """BSS-eval SDR in dB (512-tap distortion filter), (B, n, L) x (B, n, L) -> (B, n).

    SDR = 10 log10(c / (1 - c)), c = b^T R^-1 b: R is the Toeplitz autocorrelation of the target's
    512 shifts, b their cross-correlation with the estimate (both zero-mean, unit-norm)."""
    est, tgt = _flat(estimates, targets)
    e, _ = _unit(est.double().numpy())
    t, t_norm = _unit(tgt.double().numpy())
    taps = SDR_FILTER_TAPS
    n_fft = 1 << (2 * t.shape[-1] - 2).bit_length()
    t_fft, e_fft = np.fft.rfft(t, n=n_fft), np.fft.rfft(e, n=n_fft)
    r_0 = np.fft.irfft(np.abs(t_fft) ** 2, n=n_fft)[:, :taps]
    b = np.fft.irfft(t_fft.conj() * e_fft, n=n_fft)[:, :taps]
    silent = t_norm <= 1e-6
    r_0[silent, 0] = 1.0  # any regular system: the rows are NaN below
    lags = np.abs(np.arange(taps)[:, None] - np.arange(taps)[None, :])
    h = np.linalg.solve(r_0[:, lags], b[..., None])[..., 0]
    coh = np.minimum(np.einsum("bl,bl->b", b, h), np.nextafter(1.0, 0.0))
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(coh / (1.0 - coh))
    values[silent] = np.nan
    return torch.from_numpy(values).float().reshape(targets.shape[:-1])


def _mixture_like(mixture: Tensor, targets: Tensor) -> Tensor:
    return mixture.unsqueeze(1).expand_as(targets)


def si_sdr_improvement(estimates: Tensor, targets: Tensor, mixture: Tensor) -> Tensor:
    """SI-SDR(estimate) - SI-SDR(mixture) in dB per source: (B, n)."""
    return si_sdr(estimates, targets) - si_sdr(_mixture_like(mixture, targets), targets)


def sdr_improvement(estimates: Tensor, targets: Tensor, mixture: Tensor) -> Tensor:
    """SDR(estimate) - SDR(mixture) in dB per source: (B, n)."""
    return sdr(estimates, targets) - sdr(_mixture_like(mixture, targets), targets)


def pesq_wb(estimate: np.ndarray, target: np.ndarray) -> float:
    """Wide-band PESQ (MOS-LQO, about 1.0..4.6) of one 16 kHz signal; NaN when it cannot be scored
    (a silent signal, no utterance detected, too short)."""
    if not np.any(target) or not np.any(estimate):
        return float("nan")  # pesq would divide by a zero peak
    try:
        return float(
            pesq(SAMPLE_RATE_HZ, target.astype(np.float64), estimate.astype(np.float64), "wb")
        )
    except (NoUtterancesError, PesqError):
        return float("nan")


def stoi_score(estimate: np.ndarray, target: np.ndarray) -> float:
    """STOI (0..1) of one 16 kHz signal; NaN when it cannot be scored: fewer than 30 frames (384 ms)
    of the target are left after pystoi drops its silent frames. pystoi then warns and returns
    1e-5, a number that looks like a score and pulled STOI means down."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi(target.astype(np.float64), estimate.astype(np.float64), SAMPLE_RATE_HZ))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return float("nan")
    for w in caught:  # anything else pystoi says still reaches the user
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return value


@dataclasses.dataclass(frozen=True)
class SourceMetrics:
    """Metrics of every separated source of a batch, each (B, n) float64."""

    sdr_db: np.ndarray
    sdri_db: np.ndarray
    si_sdr_db: np.ndarray
    si_sdri_db: np.ndarray
    input_sdr_db: np.ndarray
    """SDR of the unprocessed mixture against each target (the x axis of the paper's Fig. 5)."""
    pesq: np.ndarray
    stoi: np.ndarray


def evaluate_sources(
    estimates: Tensor, targets: Tensor, mixture: Tensor, perceptual: bool = True
) -> SourceMetrics:
    """All metrics for ``estimates``/``targets`` (B, n, L) of ``mixture`` (B, L) (CPU, no grad).

    ``perceptual=False`` skips PESQ and STOI (NaN), which cost about 0.1 s per source each.
    """
    with torch.no_grad():
        est, tgt, mix = estimates.detach().cpu(), targets.detach().cpu(), mixture.detach().cpu()
        mix_n = _mixture_like(mix, tgt)
        sdr_est, sdr_mix = sdr(est, tgt), sdr(mix_n, tgt)
        si_est, si_mix = si_sdr(est, tgt), si_sdr(mix_n, tgt)
    shape = tuple(tgt.shape[:-1])
    pesq_v = np.full(shape, np.nan)
    stoi_v = np.full(shape, np.nan)
    if perceptual:
        e, t = est.numpy(), tgt.numpy()
        for idx in np.ndindex(*shape):
            pesq_v[idx] = pesq_wb(e[idx], t[idx])
            stoi_v[idx] = stoi_score(e[idx], t[idx])
    return SourceMetrics(
        sdr_db=sdr_est.double().numpy(),
        sdri_db=(sdr_est - sdr_mix).double().numpy(),
        si_sdr_db=si_est.double().numpy(),
        si_sdri_db=(si_est - si_mix).double().numpy(),
        input_sdr_db=sdr_mix.double().numpy(),
        pesq=pesq_v,
        stoi=stoi_v,
    )
