"""Known-answer tests of the losses: PIT permutations, SI-SDR of scaled copies, CMC ordering."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import (
    PitLoss,
    PitMode,
    cmc_loss,
    pairwise_neg_sisdr,
    pairwise_spectral_l2,
    reorder,
    singlesrc_neg_sisdr,
)
from training.models import spectral


def _spectral_pairwise(est: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    return pairwise_spectral_l2(
        spectral.compress(spectral.stft(est)), spectral.compress(spectral.stft(tgt))
    )


@pytest.mark.parametrize("mode", list(PitMode))
@pytest.mark.parametrize("pairwise", [pairwise_neg_sisdr, _spectral_pairwise])
def test_pit_recovers_a_known_permutation(mode: PitMode, pairwise) -> None:
    targets = torch.randn(4, 3, 8000)
    true_perm = torch.tensor([[2, 0, 1], [0, 1, 2], [1, 2, 0], [2, 1, 0]])
    estimates = reorder(targets, true_perm)  # estimate j is target true_perm[j]
    result = PitLoss(pairwise, mode)(estimates, targets)
    assert torch.equal(reorder(estimates, result.permutation), targets)
    assert result.per_item.shape == (4,)
    if pairwise is _spectral_pairwise:
        assert result.loss.item() < 1e-12
    else:  # perfect estimates: SI-SDR limited only by the epsilon guard (> 100 dB)
        assert result.loss.item() < -100


def test_pit_l2_loss_is_zero_only_under_the_right_permutation() -> None:
    targets = torch.randn(2, 2, 4000)
    estimates = targets.flip(1)
    pit = PitLoss(_spectral_pairwise)(estimates, targets)
    fixed = _spectral_pairwise(estimates, targets).diagonal(dim1=1, dim2=2).mean()
    assert pit.loss.item() < 1e-12 and fixed.item() > 0.1
    assert pit.permutation.tolist() == [[1, 0], [1, 0]]


def test_pit_exhaustive_and_hungarian_agree_on_random_costs() -> None:
    pairwise = torch.rand(16, 4, 4)
    a = PitLoss(pairwise_neg_sisdr, PitMode.EXHAUSTIVE).from_pairwise(pairwise)
    b = PitLoss(pairwise_neg_sisdr, PitMode.HUNGARIAN).from_pairwise(pairwise)
    assert torch.allclose(a.per_item, b.per_item)


def test_pit_gradient_flows_through_the_chosen_pairs() -> None:
    est = torch.randn(2, 2, 4000, requires_grad=True)
    PitLoss(pairwise_neg_sisdr)(est, torch.randn(2, 2, 4000)).loss.backward()
    assert est.grad is not None and torch.isfinite(est.grad).all()


@pytest.mark.parametrize("scale", [0.1, 1.0, 7.5, -2.0])
def test_si_sdr_of_a_scaled_copy_is_infinite_in_practice(scale: float) -> None:
    target = torch.randn(3, 16000)
    assert (-singlesrc_neg_sisdr(scale * target, target) > 80).all()


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 20.0])
def test_si_sdr_of_a_scaled_copy_plus_orthogonal_noise_is_the_known_ratio(snr_db: float) -> None:
    torch.manual_seed(1)
    target = torch.randn(2, 16000)
    target -= target.mean(-1, keepdim=True)
    noise = torch.randn(2, 16000)
    noise -= noise.mean(-1, keepdim=True)
    noise -= (noise * target).sum(-1, keepdim=True) / target.pow(2).sum(-1, keepdim=True) * target
    noise *= target.norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True)
    noise *= 10 ** (-snr_db / 20)
    estimate = 3.0 * (target + noise)  # any scale: SI-SDR ignores it
    got = -singlesrc_neg_sisdr(estimate, target)
    assert torch.allclose(got, torch.full_like(got, snr_db), atol=1e-3)


def test_pairwise_neg_sisdr_matches_single_source() -> None:
    est, tgt = torch.randn(2, 3, 4000), torch.randn(2, 3, 4000)
    pw = pairwise_neg_sisdr(est, tgt)
    assert pw.shape == (2, 3, 3)
    assert math.isclose(pw[1, 2, 0].item(), singlesrc_neg_sisdr(est[1:2, 2], tgt[1:2, 0]).item())


def test_cmc_is_lower_for_matched_than_swapped_faces() -> None:
    torch.manual_seed(2)
    visual = torch.randn(4, 2, 50, 16)
    audio = visual + 0.3 * torch.randn_like(visual)  # separated output i corresponds to face i
    matched = cmc_loss(audio, visual)
    swapped = cmc_loss(audio, visual.flip(1))
    assert matched < swapped
    # Eq. 10 sums 100 pull and 100 push terms per mixture (2 faces x 50 frames), mean over mixtures
    assert matched.item() < 40.0 and swapped.item() > 150.0
    assert torch.isclose(cmc_loss(audio, visual, weight=0.5), 0.5 * matched)
