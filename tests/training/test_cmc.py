"""The cross-modal correspondence loss as Makishima et al.'s Eq. 10, and the model's CMC embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from tests.training.conftest import TINY_AUDIO, TINY_VISUAL
from training.batch import SeparationBatch
from training.config import LossConfig, ModelConfig
from training.losses import cmc_loss
from training.models import AudioVisualSeparator, from_package, serialize
from training.models.spectral import NUM_BINS
from training.system import SeparationSystem

SQRT_HALF = 1.0 / math.sqrt(2.0)


def _two_face_example() -> tuple[torch.Tensor, torch.Tensor]:
    """One mixture, 2 faces, 2 frames, 2-d embeddings (B, n, T, D), worked out by hand below.

    frame 0: a0 = v0 = (1, 0), a1 = v1 = (0, 1): own cosines 1, cross cosines 0 -> 0.
    frame 1: a0 = (1, 0), a1 = (1, 1); v0 = (0, 1), v1 = (-1, 0):
      pull: 1 - cos(a0, v0) = 1 - 0 = 1;  1 - cos(a1, v1) = 1 - (-1/sqrt 2) = 1.70711
      push: |cos(a0, v1)| = |-1| = 1;      |cos(a1, v0)| = 1/sqrt 2 = 0.70711
    L = 1 + 1.70711 + 1 + 0.70711 = 3 + sqrt 2 = 4.41421.
    (The old form, mean(1 - cos) + mean(max(0, cos)) over frames, would give 0.85355: the
    anti-aligned pair (a0, v1) at frame 1 would count 0.)
    """
    audio = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]]])
    visual = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [-1.0, 0.0]]]])
    return audio, visual


def test_cmc_matches_a_hand_computation_of_eq_10() -> None:
    audio, visual = _two_face_example()
    assert cmc_loss(audio, visual).item() == pytest.approx(3.0 + math.sqrt(2.0), abs=1e-5)
    assert cmc_loss(audio, visual, weight=0.5).item() == pytest.approx(2.20711, abs=1e-5)
    # A second mixture whose outputs match their own faces exactly and are orthogonal to the other
    # face costs 0; the batch value is the mean over mixtures: 4.41421 / 2.
    matched = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    batch_a, batch_v = torch.cat([audio, matched]), torch.cat([visual, matched])
    assert cmc_loss(batch_a, batch_v).item() == pytest.approx(2.20711, abs=1e-5)


def test_anti_aligned_pairs_are_pushed_and_frames_are_summed() -> None:
    """|cos| pushes from both sides: cross cosine -1 costs as much as +1 (max(0, cos) gave 0)."""
    own = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # a_n = v_n, pull 0
    visual_plus = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    audio_anti = torch.tensor([[[[0.0, -1.0]], [[-1.0, 0.0]]]])  # cos(a0, v1) = cos(a1, v0) = -1
    # pull: 2 x (1 - 0) = 2; push: |-1| + |-1| = 2
    assert cmc_loss(audio_anti, visual_plus).item() == pytest.approx(4.0, abs=1e-6)
    assert cmc_loss(own, visual_plus).item() == pytest.approx(0.0, abs=1e-6)
    # Sums, not means: the same frames twice cost twice as much (the gradient does not shrink
    # with the number of frames or face pairs).
    audio, visual = _two_face_example()
    doubled = cmc_loss(torch.cat([audio, audio], dim=2), torch.cat([visual, visual], dim=2))
    assert doubled.item() == pytest.approx(2.0 * (3.0 + math.sqrt(2.0)), abs=1e-5)


def test_one_face_has_only_the_pull_term() -> None:
    audio = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]]])  # (1, 1, 3, 2)
    visual = torch.tensor([[[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]]])
    # 1 - 1, 1 - 0, 1 - 1/sqrt 2
    assert cmc_loss(audio, visual).item() == pytest.approx(2.0 - SQRT_HALF, abs=1e-6)


def test_model_embeddings_are_tanh_audio_against_unprojected_visual_features() -> None:
    model = AudioVisualSeparator(n_faces=2, embedding_dim=6, cmc=True, **TINY_AUDIO, **TINY_VISUAL)
    assert model.cmc_visual is None and model.cmc_audio is not None
    assert model.cmc_audio.in_features == NUM_BINS
    assert model.cmc_audio.out_features == TINY_VISUAL["visual_channels"]
    out = model(torch.randn(2, 4000) * 0.1, torch.randn(2, 2, 7, 6))
    audio, visual = model.correspondence_embeddings(out)
    assert (
        out.visual is not None and visual is out.visual
    )  # the visual stream's features as they are
    mag = out.compressed[:, :2].abs().transpose(-1, -2)
    torch.testing.assert_close(audio, torch.tanh(model.cmc_audio(mag)))
    assert audio.shape == visual.shape == (2, 2, out.compressed.shape[-1], 8)
    assert audio.abs().max() <= 1.0


def test_visual_projection_is_an_option_and_old_packages_still_load() -> None:
    default = SeparationSystem.from_configs(
        ModelConfig(**TINY_AUDIO, **TINY_VISUAL), LossConfig(cmc_weight=1.0)
    ).model
    assert isinstance(default, AudioVisualSeparator) and default.cmc_visual is None
    projected = SeparationSystem.from_configs(
        ModelConfig(**TINY_AUDIO, **TINY_VISUAL),
        LossConfig(cmc_weight=1.0, cmc_visual_projection=True, cmc_dim=5),
    ).model
    assert isinstance(projected, AudioVisualSeparator) and projected.cmc_visual is not None
    assert projected.cmc_visual.out_features == 5 and projected.cmc_audio is not None
    assert projected.cmc_audio.out_features == 5
    off = SeparationSystem.from_configs(ModelConfig(**TINY_AUDIO, **TINY_VISUAL)).model
    assert isinstance(off, AudioVisualSeparator) and off.cmc_audio is None
    # A package written before ``cmc`` existed (cmc_dim > 0, no ``cmc`` argument) rebuilds.
    package = serialize(AudioVisualSeparator(n_faces=1, cmc_dim=4, **TINY_AUDIO, **TINY_VISUAL))
    del package["model_args"]["cmc"]
    rebuilt = from_package(package)
    assert isinstance(rebuilt, AudioVisualSeparator) and rebuilt.cmc_visual is not None


def test_system_loss_adds_lambda_times_eq_10() -> None:
    system = SeparationSystem.from_configs(
        ModelConfig(
            n_sources=2, visual_input="embeddings", embedding_dim=6, **TINY_AUDIO, **TINY_VISUAL
        ),
        LossConfig(cmc_weight=0.25),
    )
    batch = SeparationBatch(
        mixture=torch.randn(2, 4000) * 0.1,
        sources=torch.randn(2, 2, 4000) * 0.05,
        faces=torch.randn(2, 2, 7, 6),
    )
    total, output, _, parts = system.compute_loss(batch)
    assert isinstance(system.model, AudioVisualSeparator)
    audio, visual = system.model.correspondence_embeddings(output)
    torch.testing.assert_close(parts["cmc"], 0.25 * cmc_loss(audio, visual))
    torch.testing.assert_close(total, parts["separation"] + parts["cmc"])
