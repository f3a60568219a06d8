"""Evaluation metrics of separated speech: SDRi, SI-SDRi (dB), PESQ, STOI.

All functions take waveforms at 16 kHz: estimates and targets (B, n, num_samples), the mixture
(B, num_samples), and return per-source values (B, n) as float64 numpy arrays or tensors:

- SDR is BSS-eval's (distortion filter of 512 taps, as the AVSpeech paper reports), via torchmetrics;
- SI-SDR is scale-invariant SDR (Le Roux et al. 2019);
- "improvement" is the metric of the estimate minus the metric of the unprocessed mixture against the
  same target;
- PESQ is wide-band PESQ (ITU-T P.862.2) from the ``pesq`` package; signals it cannot score (no
  utterance detected, too short) give NaN, counted in :class:`MetricSummary`;
- STOI is from ``pystoi`` (classic, not extended).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from pesq import NoUtterancesError, PesqError, pesq
from pystoi import stoi
from torch import Tensor
from torchmetrics.functional.audio import signal_distortion_ratio

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


def sdr(estimates: Tensor, targets: Tensor) -> Tensor:
    """BSS-eval SDR in dB (512-tap distortion filter), (B, n, L) x (B, n, L) -> (B, n)."""
    est, tgt = _flat(estimates, targets)
    values = signal_distortion_ratio(est.double(), tgt.double(), filter_length=512, zero_mean=True)
    return values.float().reshape(targets.shape[:-1])


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
    """STOI (0..1) of one 16 kHz signal."""
    return float(stoi(target.astype(np.float64), estimate.astype(np.float64), SAMPLE_RATE_HZ))


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
