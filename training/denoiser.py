"""Closing the loop: a trained 1-speaker + noise model as curation's speech-SNR denoiser.

The AVSpeech paper estimated each segment's speech SNR with its own speech enhancement network:
denoised output = clean speech estimate, the rest = noise. :class:`ModelDenoiser` makes a trained
audio-only separator with one speaker output (``n_sources: 1``, usually with ``residual_mask``, trained
on the ``1s_noise`` task) into the callable ``curation.snr.DenoiserSnrEstimator`` takes::

    from curation.snr import DenoiserSnrEstimator
    estimator = DenoiserSnrEstimator(ModelDenoiser.from_file("runs/enhance/model.pt"))
    snr_db = estimator.estimate(audio, 16000)

Recordings of any length are processed in overlapping windows (:func:`training.separate.separate_long`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.models import AudioOnlySeparator, MaskSeparator, load_model
from training.separate import SAMPLE_RATE_HZ, separate_long


class DenoiserError(ValueError):
    """The model cannot serve as a denoiser, or the audio is not what it expects."""


class ModelDenoiser:
    """``denoise(audio (L,) float32, sample_rate_hz) -> clean speech estimate (L,) float32``."""

    def __init__(
        self,
        model: MaskSeparator,
        *,
        window_s: float = 3.0,
        hop_s: float = 1.5,
        device: str | torch.device = "cpu",
    ) -> None:
        if not isinstance(model, AudioOnlySeparator) or model.n_src != 1:
            raise DenoiserError("a denoiser needs an audio-only model with one speaker output")
        self.model = model.eval()
        self.window_s, self.hop_s, self.device = window_s, hop_s, device

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: object) -> ModelDenoiser:
        """Load a ``model.pt`` package (or a training checkpoint ``*.ckpt``)."""
        if Path(path).suffix == ".ckpt":
            from training.evaluate import load_separator

            model, _ = load_separator(path)
        else:
            model = load_model(path)
        return cls(model, **kwargs)  # type: ignore[arg-type]

    def __call__(self, audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        if sample_rate_hz != SAMPLE_RATE_HZ:
            raise DenoiserError(f"the model works at {SAMPLE_RATE_HZ} Hz, got {sample_rate_hz} Hz")
        x = np.asarray(audio, np.float32)
        if x.shape[0] < 400:
            return np.zeros_like(x)
        out = separate_long(
            self.model, x, window_s=self.window_s, hop_s=self.hop_s, device=self.device
        )
        return out[0].numpy().astype(np.float32)
