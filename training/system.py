"""The LightningModule of separation training: forward, loss, metrics, optimiser. No data loading.

:class:`SeparationSystem` wraps one separator (:mod:`training.models`) built from a
:class:`~training.config.ModelConfig` and trains it on :class:`~training.batch.SeparationBatch` es:

- targets are the first ``n_sources`` speakers of the batch (in face order); with ``residual_mask``
  one more target is the rest of the mixture (noise and speakers without a face stream);
- the audio-visual model is trained in face order; the audio-only model with PIT over the speakers
  (the residual output, if any, is not permuted);
- the loss is the paper's L2 between compressed complex spectrograms, or negative SI-SDR, plus
  ``cmc_weight`` times the CMC loss for AV models (Makishima et al.'s Eq. 10, summed per mixture,
  see :func:`training.losses.cmc_loss`);
- an AV model with fewer faces than the mixtures have speakers (the paper's 1-face model on 2-speaker
  mixtures) is trained on the speakers whose faces it gets, the first ``n_sources``;
- validation and test log the loss, SI-SDRi and SDRi (dB) averaged over speakers.

Its hyperparameters are plain dicts (model, loss, optim, and the whole resolved training config), so a
checkpoint rebuilds the system with ``SeparationSystem.load_from_checkpoint(path)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from avforge.core.config import config_from_dict, config_to_dict
from training import losses, metrics
from training.batch import SeparationBatch
from training.config import LossConfig, LossKind, ModelConfig, ModelKind, OptimConfig
from training.models import (
    AudioOnlySeparator,
    AudioVisualSeparator,
    MaskSeparator,
    SeparationOutput,
    spectral,
)


def build_model(model: ModelConfig, loss: LossConfig | None = None) -> MaskSeparator:
    """The separator ``model`` describes (CMC heads added when ``loss.cmc_weight`` > 0)."""
    common = {
        "residual_mask": model.residual_mask,
        "audio_channels": model.audio_channels,
        "audio_out_channels": model.audio_out_channels,
        "audio_layers": model.audio_layers,
        "lstm_hidden": model.lstm_hidden,
        "fc_dim": model.fc_dim,
        "mask_bound": model.mask_bound,
        "power": model.power,
    }
    if model.kind == ModelKind.AUDIO_ONLY:
        return AudioOnlySeparator(n_src=model.n_sources, **common)
    cmc = loss is not None and loss.cmc_weight > 0
    cmc_dim = loss.cmc_dim if cmc and loss is not None and loss.cmc_visual_projection else 0
    return AudioVisualSeparator(
        n_faces=model.n_sources,
        # ``auto`` is resolved against the corpora when training starts (train.resolve_visual_input);
        # a model built without corpora takes crops, which work on any corpus.
        visual_input="crops" if model.visual_input == "auto" else model.visual_input,
        embedding_dim=model.embedding_dim,
        lip_dim=model.lip_dim,
        crop_feature_dim=model.crop_feature_dim,
        visual_channels=model.visual_channels,
        visual_layers=model.visual_layers,
        cmc=cmc,
        cmc_dim=cmc_dim,
        **common,
    )


class SeparationSystem(pl.LightningModule):
    """Training, validation and test steps of one separator (see the module docstring)."""

    def __init__(
        self,
        model: Mapping[str, Any],
        loss: Mapping[str, Any] | None = None,
        optim: Mapping[str, Any] | None = None,
        resolved_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model_config = config_from_dict(ModelConfig, model)
        self.loss_config = config_from_dict(LossConfig, loss or {})
        self.optim_config = config_from_dict(OptimConfig, optim or {})
        self.model = build_model(self.model_config, self.loss_config)
        # PIT runs on the pairwise matrix computed once per batch (see compute_loss).
        self.pit = losses.PitLoss(losses.pairwise_neg_sisdr, self.loss_config.pit_mode)

    @classmethod
    def from_configs(
        cls,
        model: ModelConfig,
        loss: LossConfig | None = None,
        optim: OptimConfig | None = None,
        resolved_config: Mapping[str, Any] | None = None,
    ) -> SeparationSystem:
        """Build from typed sections (stored as plain dicts in the checkpoint)."""
        return cls(
            config_to_dict(model),
            config_to_dict(loss or LossConfig()),
            config_to_dict(optim or OptimConfig()),
            resolved_config,
        )

    # ------------------------------------------------------------------ forward and targets

    def forward(self, mixture: Tensor, faces: Tensor | None = None) -> SeparationOutput:
        """Separate ``mixture`` (B, L); ``faces`` (B, n_sources, T_v, ...) for AV models."""
        return self.model(
            mixture, faces if self.model_config.kind == ModelKind.AUDIO_VISUAL else None
        )

    def targets(self, batch: SeparationBatch) -> Tensor:
        """(B, n_outputs, L): the first ``n_sources`` speakers, plus the residual when configured."""
        n = self.model_config.n_sources
        if batch.sources.shape[1] < n:
            raise ValueError(f"batch has {batch.sources.shape[1]} speakers, model needs {n}")
        speakers = batch.sources[:, :n]
        if not self.model_config.residual_mask:
            return speakers
        heard = batch.images[:, :n] if batch.images is not None else speakers
        residual = batch.mixture - heard.sum(dim=1)
        return torch.cat([speakers, residual.unsqueeze(1)], dim=1)

    def _faces(self, batch: SeparationBatch) -> Tensor | None:
        if self.model_config.kind != ModelKind.AUDIO_VISUAL:
            return None
        if batch.faces is None:
            raise ValueError("an audio-visual model needs batches with faces")
        return batch.faces[:, : self.model_config.n_sources]

    def _pairwise_matrix(self, output: SeparationOutput, targets: Tensor) -> Tensor:
        """(B, n_out, n_out) loss of every output against every target."""
        if self.loss_config.kind == LossKind.SPECTRAL_L2:
            compressed_targets = spectral.compress(spectral.stft(targets), self.model_config.power)
            return losses.pairwise_spectral_l2(output.compressed, compressed_targets)
        return losses.pairwise_neg_sisdr(output.waveforms, targets)

    # ------------------------------------------------------------------ loss

    def compute_loss(
        self, batch: SeparationBatch
    ) -> tuple[Tensor, SeparationOutput, Tensor, dict[str, Tensor]]:
        """(total loss, model output, permutation (B, n_outputs), loss parts) of one batch."""
        output = self(batch.mixture, self._faces(batch))
        targets = self.targets(batch)
        pairwise = self._pairwise_matrix(output, targets)  # (B, n_out, n_out)
        n = self.model_config.n_sources
        b, n_out = pairwise.shape[0], pairwise.shape[1]
        identity = torch.arange(n_out, device=pairwise.device).expand(b, n_out)
        if self.model_config.kind == ModelKind.AUDIO_ONLY and n > 1:
            pit = self.pit.from_pairwise(pairwise[:, :n, :n])
            permutation = torch.cat([pit.permutation, identity[:, n:]], dim=1)
        else:
            permutation = identity
        chosen = torch.gather(pairwise, 1, permutation.unsqueeze(1)).squeeze(1)  # (B, n_out)
        separation = chosen.mean()
        parts = {"separation": separation}
        total = separation
        if self.loss_config.cmc_weight > 0 and isinstance(self.model, AudioVisualSeparator):
            audio_emb, visual_emb = self.model.correspondence_embeddings(output)
            parts["cmc"] = losses.cmc_loss(audio_emb, visual_emb, self.loss_config.cmc_weight)
            total = total + parts["cmc"]
        return total, output, permutation, parts

    # ------------------------------------------------------------------ steps

    def training_step(self, batch: SeparationBatch, batch_idx: int) -> Tensor:
        loss, _, _, parts = self.compute_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=len(batch))
        return loss

    def _evaluate(self, batch: SeparationBatch, stage: str) -> Tensor:
        loss, output, permutation, _ = self.compute_loss(batch)
        n = self.model_config.n_sources
        estimates = losses.reorder(output.waveforms, permutation)[:, :n].float()
        targets = batch.sources[:, :n].float()
        si_sdri = metrics.si_sdr_improvement(estimates, targets, batch.mixture.float())
        sdri = metrics.sdr_improvement(estimates, targets, batch.mixture.float())
        size = len(batch)
        self.log(f"{stage}/loss", loss, batch_size=size, sync_dist=True)
        self.log(f"{stage}/si_sdri_db", si_sdri.mean(), batch_size=size, sync_dist=True)
        self.log(f"{stage}/sdri_db", sdri.mean(), batch_size=size, sync_dist=True)
        return loss

    def validation_step(self, batch: SeparationBatch, batch_idx: int) -> Tensor:
        return self._evaluate(batch, "val")

    def test_step(self, batch: SeparationBatch, batch_idx: int) -> Tensor:
        return self._evaluate(batch, "test")

    @torch.no_grad()
    def separate(self, batch: SeparationBatch, align: bool = True) -> Tensor:
        """Separated speakers (B, n_sources, L) in target order (PIT-aligned for audio-only models
        when ``align``; AV outputs follow the faces)."""
        if align:
            _, output, permutation, _ = self.compute_loss(batch)
            return losses.reorder(output.waveforms, permutation)[:, : self.model_config.n_sources]
        output = self(batch.mixture, self._faces(batch))
        return output.waveforms[:, : self.model_config.n_sources]

    # ------------------------------------------------------------------ optimiser

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.Adam(
            self.parameters(), lr=self.optim_config.lr, weight_decay=self.optim_config.weight_decay
        )
        sched = torch.optim.lr_scheduler.StepLR(
            opt, step_size=self.optim_config.lr_decay_steps, gamma=self.optim_config.lr_decay_factor
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
