"""Reference points for a trained separator: a non-learned baseline and the oracle ceiling.

A separation number means little alone: the unprocessed mixture scores 0 dB SI-SDRi by definition,
and these two bracket what a model should reach on the same mixtures:

- :class:`SpectralGains` (non-learned baseline): one fixed real gain per frequency bin and output,
  ``G_k(f) = P_k(f) / sum_j P_j(f)`` with ``P_k(f)`` the mean power of the k-th source in bin ``f``
  over training mixtures, the sources of each mixture ranked by spectral centroid (low to high
  voice). A Wiener filter that knows only the average spectra of low and high voices: a fixed
  equaliser pair with nothing learned per mixture. Fit it on training speakers only.
- :func:`ideal_ratio_masks` (oracle ceiling): each target's ideal ratio mask
  ``sqrt(|S_k|^2 / sum_j |S_j|^2)`` on the mixture's STFT, with the mixture's phase. It needs the
  targets, so it is a ceiling for magnitude masking, not a method.

Both use the model's own STFT (:mod:`training.models.spectral`: 16 kHz, 25 ms Hann, 10 ms hop) and
return waveforms (B, n, L) float32 with outputs in no particular order for :class:`SpectralGains`
(match them to targets with a permutation search, as for audio-only models) and in target order for
the oracle.
"""

from __future__ import annotations

import torch
from torch import Tensor

from training.models import spectral

_EPS = 1e-10


def _power(signals: Tensor) -> Tensor:
    """(B, n, L) -> per-bin power (B, n, 257, T)."""
    return spectral.stft(signals).abs().square()


class SpectralGains:
    """Fixed per-frequency gains, one set per output, fitted on training sources (module docstring)."""

    def __init__(self, gains: Tensor) -> None:
        if gains.dim() != 2 or gains.shape[1] != spectral.NUM_BINS:
            raise ValueError(f"gains must be (n, {spectral.NUM_BINS}), got {tuple(gains.shape)}")
        self.gains = gains.float()
        """(n, 257) gains in 0..1; they sum to 1 in every bin."""

    @classmethod
    def fit(cls, sources: Tensor) -> SpectralGains:
        """Fit on training sources (B, n, L) at 16 kHz (n >= 1; mixtures of n speakers)."""
        if sources.dim() != 3:
            raise ValueError(f"sources must be (B, n, L), got {tuple(sources.shape)}")
        power = _power(sources).mean(dim=-1)  # (B, n, F)
        bins = torch.arange(spectral.NUM_BINS, dtype=power.dtype)
        centroid = (power * bins).sum(-1) / (power.sum(-1) + _EPS)  # (B, n)
        order = centroid.argsort(dim=1)
        ranked = torch.gather(power, 1, order.unsqueeze(-1).expand_as(power))
        mean = ranked.mean(dim=0)  # (n, F)
        return cls(mean / (mean.sum(dim=0, keepdim=True) + _EPS))

    def __call__(self, mixture: Tensor) -> Tensor:
        """Apply to mixtures (B, L): (B, n, L) float32, output k = gains[k] times the mixture."""
        spec = spectral.stft(mixture).unsqueeze(1)  # (B, 1, F, T)
        out = spec * self.gains.to(spec.device)[None, :, :, None]
        return spectral.istft(out, mixture.shape[-1])


def ideal_ratio_masks(sources: Tensor, mixture: Tensor) -> Tensor:
    """Oracle separation: targets (B, n, L) and their mixture (B, L) -> (B, n, L) float32, each
    target's ideal ratio mask ``sqrt(|S_k|^2 / sum_j |S_j|^2)`` applied to the mixture's STFT."""
    power = _power(sources)
    masks = (power / (power.sum(dim=1, keepdim=True) + _EPS)).sqrt()
    spec = spectral.stft(mixture).unsqueeze(1)
    return spectral.istft(spec * masks, mixture.shape[-1])
