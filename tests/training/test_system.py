"""The LightningModule on synthetic batches: targets, PIT alignment, CMC, a fast_dev_run, checkpoints."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from tests.training.conftest import TINY_AUDIO, TINY_VISUAL
from training.batch import SeparationBatch
from training.config import LossConfig, LossKind, ModelConfig, ModelKind, OptimConfig
from training.models import AudioVisualSeparator
from training.system import SeparationSystem

TINY_MODEL = {**TINY_AUDIO, **TINY_VISUAL, "crop_feature_dim": 8}


def _batch(b: int = 2, n: int = 2, length: int = 8000, seed: int = 0) -> SeparationBatch:
    g = torch.Generator().manual_seed(seed)
    sources = torch.randn(b, n, length, generator=g) * 0.1
    noise = torch.randn(b, length, generator=g) * 0.01
    faces = torch.randint(0, 256, (b, n, length // 640, 16, 16, 3), dtype=torch.uint8, generator=g)
    return SeparationBatch(sources.sum(1) + noise, sources, faces, [f"m{i}" for i in range(b)])


class _Synthetic(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> SeparationBatch:
        return _batch(seed=i)


def _loader() -> DataLoader:
    return DataLoader(_Synthetic(), batch_size=None)


def test_residual_target_is_mixture_minus_modelled_speakers() -> None:
    system = SeparationSystem.from_configs(
        ModelConfig(kind=ModelKind.AUDIO_ONLY, n_sources=1, residual_mask=True, **TINY_AUDIO)
    )
    batch = _batch(n=2)
    targets = system.targets(batch)
    assert targets.shape == (2, 2, 8000)
    assert torch.allclose(targets[:, 1], batch.mixture - batch.sources[:, 0])


def test_audio_only_loss_is_permutation_invariant() -> None:
    system = SeparationSystem.from_configs(
        ModelConfig(kind=ModelKind.AUDIO_ONLY, **TINY_AUDIO), LossConfig(kind=LossKind.NEG_SISDR)
    ).eval()
    batch = _batch()
    swapped = SeparationBatch(batch.mixture, batch.sources.flip(1), None)
    with torch.no_grad():
        a, _, perm_a, _ = system.compute_loss(batch)
        b, _, perm_b, _ = system.compute_loss(swapped)
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.equal(perm_a, perm_b.flip(1))


def test_av_loss_adds_weighted_cmc() -> None:
    system = SeparationSystem.from_configs(
        ModelConfig(**TINY_MODEL), LossConfig(cmc_weight=1.0, cmc_dim=4)
    ).eval()
    assert isinstance(system.model, AudioVisualSeparator) and system.model.cmc_audio is not None
    with torch.no_grad():
        total, _, _, parts = system.compute_loss(_batch())
    assert set(parts) == {"separation", "cmc"}
    assert torch.isclose(total, parts["separation"] + parts["cmc"])


def test_fast_dev_run_trains_validates_and_checkpoints(tmp_path) -> None:
    system = SeparationSystem.from_configs(
        ModelConfig(**TINY_MODEL), LossConfig(), OptimConfig(lr=1e-3), {"note": "resolved"}
    )
    trainer = pl.Trainer(
        fast_dev_run=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        gradient_clip_val=5.0,
        default_root_dir=tmp_path,
    )
    before = {k: v.clone() for k, v in system.state_dict().items()}
    trainer.fit(system, _loader(), _loader())
    changed = [k for k, v in system.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "no parameter moved"
    assert "val/si_sdri_db" in trainer.callback_metrics
    path = tmp_path / "system.ckpt"
    trainer.save_checkpoint(path)
    again = SeparationSystem.load_from_checkpoint(path, map_location="cpu")
    assert again.hparams["resolved_config"] == {"note": "resolved"}
    for k, v in system.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])
