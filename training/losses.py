"""Separation losses with asteroid's tensor contract, a PIT wrapper, and the CMC loss.

Naming says the shape contract:

- ``pairwise_*(estimates, targets)`` -> (B, n_est, n_tgt): entry [b, i, j] is the loss of estimate i
  against target j (estimates (B, n_est, ...), targets (B, n_tgt, ...));
- ``singlesrc_*(estimate, target)`` -> (B,) on one source (B, ...);
- :class:`PitLoss` composes any pairwise loss with the permutation search and always returns a
  :class:`PitResult` (the loss, the per-item loss and the best permutation).

Losses are minimised. ``pairwise_spectral_l2`` is the AVSpeech paper's L2 between power-law
compressed complex spectrograms; ``pairwise_neg_sisdr`` is the negative scale-invariant SDR (dB);
:func:`cmc_loss` is the cross-modal correspondence loss of Makishima et al. (ICASSP 2021).
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

_EPS = 1e-8
PairwiseLoss = Callable[[Tensor, Tensor], Tensor]


def _zero_mean(x: Tensor) -> Tensor:
    return x - x.mean(dim=-1, keepdim=True)


def singlesrc_neg_sisdr(estimate: Tensor, target: Tensor) -> Tensor:
    """Negative SI-SDR in dB of ``estimate`` vs ``target`` (B, num_samples) -> (B,).

    SI-SDR = 10 log10(|a s|² / |a s - ŝ|²) with a = <ŝ, s> / |s|², both zero-mean (Le Roux et al.).
    """
    est, tgt = _zero_mean(estimate.float()), _zero_mean(target.float())
    scale = (est * tgt).sum(-1, keepdim=True) / (tgt.pow(2).sum(-1, keepdim=True) + _EPS)
    projection = scale * tgt
    noise = est - projection
    ratio = projection.pow(2).sum(-1) / (noise.pow(2).sum(-1) + _EPS)
    return -10.0 * torch.log10(ratio + _EPS)


def pairwise_neg_sisdr(estimates: Tensor, targets: Tensor) -> Tensor:
    """Negative SI-SDR (dB) of every estimate against every target: (B, n, L) x (B, m, L) -> (B, n, m)."""
    est = estimates.unsqueeze(2)  # (B, n, 1, L)
    tgt = targets.unsqueeze(1)  # (B, 1, m, L)
    est, tgt = torch.broadcast_tensors(est, tgt)
    b, n, m, length = est.shape
    loss = singlesrc_neg_sisdr(est.reshape(-1, length), tgt.reshape(-1, length))
    return loss.reshape(b, n, m)


def pairwise_spectral_l2(estimates: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error of complex spectrograms (B, n, F, T) x (B, m, F, T) -> (B, n, m).

    Feed power-law compressed spectrograms (the paper's loss); real and imaginary parts both count.
    """
    diff = estimates.unsqueeze(2) - targets.unsqueeze(1)  # complex (B, n, m, F, T)
    return diff.abs().pow(2).flatten(3).mean(-1)


class PitMode(enum.Enum):
    """How :class:`PitLoss` searches permutations."""

    EXHAUSTIVE = "exhaustive"
    """Every permutation (n! of them; fine up to 5 or 6 sources), differentiable min on GPU."""
    HUNGARIAN = "hungarian"
    """Linear assignment on the pairwise matrix (scipy, on CPU): many sources."""


@dataclasses.dataclass(frozen=True)
class PitResult:
    """What :class:`PitLoss` returns, always."""

    loss: Tensor
    """Scalar: mean over the batch of the per-item loss."""
    per_item: Tensor
    """(B,) loss of each item under its best permutation (mean over sources)."""
    permutation: Tensor
    """(B, n) long: estimate ``permutation[b, j]`` is matched to target j."""


def reorder(estimates: Tensor, permutation: Tensor) -> Tensor:
    """Estimates (B, n, ...) reordered so that output j is estimate ``permutation[:, j]``."""
    index = permutation.reshape(*permutation.shape, *([1] * (estimates.dim() - 2)))
    return torch.take_along_dim(estimates, index.expand(-1, -1, *estimates.shape[2:]), dim=1)


class PitLoss:
    """Permutation-invariant training over any pairwise loss (B, n, n)."""

    def __init__(self, pairwise_loss: PairwiseLoss, mode: PitMode = PitMode.EXHAUSTIVE) -> None:
        self.pairwise_loss = pairwise_loss
        self.mode = PitMode(mode)

    def __call__(self, estimates: Tensor, targets: Tensor) -> PitResult:
        """Best-permutation loss of ``estimates`` (B, n, ...) against ``targets`` (B, n, ...)."""
        if estimates.shape[1] != targets.shape[1]:
            raise ValueError(
                f"PIT needs as many estimates as targets, got {estimates.shape[1]} and {targets.shape[1]}"
            )
        return self.from_pairwise(self.pairwise_loss(estimates, targets))

    def from_pairwise(self, pairwise: Tensor) -> PitResult:
        """PIT on a precomputed pairwise matrix (B, n, n) ([b, i, j]: estimate i vs target j)."""
        n = pairwise.shape[1]
        if self.mode == PitMode.EXHAUSTIVE:
            perms = torch.tensor(
                list(itertools.permutations(range(n))), device=pairwise.device
            )  # (P, n): perms[p, j] = estimate for target j
            targets_idx = torch.arange(n, device=pairwise.device)
            per_perm = pairwise[:, perms, targets_idx].mean(-1)  # (B, P)
            per_item, best = per_perm.min(dim=1)
            return PitResult(per_item.mean(), per_item, perms[best])
        cost = pairwise.detach().float().cpu().numpy()
        rows = []
        for item in cost:
            est_idx, tgt_idx = linear_sum_assignment(item)
            perm = np.empty(n, dtype=np.int64)
            perm[tgt_idx] = est_idx
            rows.append(perm)
        permutation = torch.as_tensor(np.stack(rows), device=pairwise.device)
        chosen = torch.gather(pairwise, 1, permutation.unsqueeze(1)).squeeze(1)  # (B, n)
        per_item = chosen.mean(-1)
        return PitResult(per_item.mean(), per_item, permutation)


def pairwise_cosine(audio: Tensor, visual: Tensor) -> Tensor:
    """Per-frame cosine similarity (B, n, T, D) x (B, m, T, D) -> (B, n, m, T) in [-1, 1]."""
    a = F.normalize(audio.float(), dim=-1, eps=_EPS)
    v = F.normalize(visual.float(), dim=-1, eps=_EPS)
    return torch.einsum("bitd,bjtd->bijt", a, v)


def cmc_loss(audio: Tensor, visual: Tensor, weight: float = 1.0) -> Tensor:
    """Cross-modal correspondence loss, Eq. 10 of Makishima et al. (ICASSP 2021) -> scalar.

    For each mixture, with a_n^t the embedding of separated output n at frame t and v_m^t the visual
    feature of face m (inputs (B, n, T, D), in face order)::

        L = sum_t sum_n [ (1 - cos(a_n^t, v_n^t)) + sum_{m != n} |cos(a_n^t, v_m^t)| ]

    sums, not means, over frames, speakers and pairs: each output is pulled towards its own face and
    its cosine with every other face is pushed to 0 from either side (an anti-aligned pair costs as
    much as an aligned one). The batch's value is the mean of L over its mixtures (the separation loss
    is a batch mean too), times ``weight`` (the paper's lambda). With one face the push term is empty.
    The embeddings are the model's (:meth:`~training.models.AudioVisualSeparator.correspondence_embeddings`:
    tanh of a linear map of the separated audio, the visual stream's features as they are).
    """
    sim = pairwise_cosine(audio, visual)  # (B, n, n, T)
    n = sim.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=sim.device)
    pull = (1.0 - sim[:, eye]).flatten(1).sum(-1)  # (B,)
    push = sim[:, ~eye].abs().flatten(1).sum(-1)  # (B,), zero for one face
    return weight * (pull + push).mean()
