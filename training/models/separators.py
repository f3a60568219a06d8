"""Mask-based separators composed from parts: spectral encoder, streams, mask head, spectral decoder.

- :class:`AudioVisualSeparator`: the AVSpeech paper's model. Mixture (B, L) plus one visual input per
  face, either face embeddings (B, n_faces, T_v, D) (ArcFace when the corpus has them), face crops
  (B, n_faces, T_v, H, W, 3) through :class:`CropFrontEnd`, or lip features (B, n_faces, T_v, D_lip)
  (LR-ASD's visual embedding, stored by curation) through the small :class:`LipStream` instead of
  the dilated visual stream; one output per face in face order, as in the paper (a 1-face model has
  one output: that face's speech, whatever else the mixture holds), plus, as an option, one for the
  residual (noise or speakers without a face stream) when ``residual_mask`` is set. With ``cmc`` (or
  ``cmc_dim``) it also has the heads of the cross-modal correspondence loss.
- :class:`AudioOnlySeparator`: the same audio stream and head without faces; its ``n_src`` outputs
  have no order (train it with permutation-invariant losses), plus the residual output when set.

Both return a :class:`SeparationOutput` with waveforms (B, n_out, L), masks (B, n_out, 257, T, 2) and
the compressed estimated spectrograms (B, n_out, 257, T) the paper's loss compares. Video is at 25 fps
and audio frames at 100 Hz: visual features are upsampled by nearest neighbour to the audio frames.

Each model records its constructor arguments; :mod:`training.models.serialize` saves them with the
weights so a checkpoint file rebuilds the model without any config.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.models import spectral
from training.models.streams import AudioStream, CropFrontEnd, LipStream, MaskHead, VisualStream


class VisualInput(enum.StrEnum):
    """What the visual stream reads per face frame."""

    EMBEDDINGS = "embeddings"
    """Precomputed face embeddings (ArcFace, 512-d) from the media shards."""
    CROPS = "crops"
    """Face crops (uint8 RGB), encoded by a small CNN trained end to end."""
    LIPS = "lips"
    """Lip features (LR-ASD's 128-d visual embedding per frame, a lip-motion feature) from the media
    shards, through two temporal convs (:class:`LipStream`)."""


@dataclasses.dataclass
class SeparationOutput:
    """What a separator returns for a batch (n_out = faces or sources, plus the residual if any)."""

    waveforms: Tensor
    """(B, n_out, num_samples) float32 separated signals."""
    compressed: Tensor
    """(B, n_out, 257, T) complex64: masks times the power-law compressed mixture."""
    masks: Tensor
    """(B, n_out, 257, T, 2) bounded complex masks (real, imaginary)."""
    visual: Tensor | None = None
    """(B, n_faces, T, C) visual features at audio frame rate (None for audio-only)."""


class MaskSeparator(nn.Module):
    """Shared encoder/decoder: STFT -> compress -> audio stream ... masks -> decompress -> iSTFT.

    Subclasses build ``self.audio_stream`` and ``self.head`` and implement :meth:`fuse`.
    """

    init_args: dict[str, Any]

    def __init__(self, power: float) -> None:
        super().__init__()
        self.power = power

    def fuse(self, audio: Tensor, faces: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(B, T, D_a) audio features + faces -> (fused (B, T, D), visual features or None)."""
        raise NotImplementedError

    def forward(self, mixture: Tensor, faces: Tensor | None = None) -> SeparationOutput:
        """Separate ``mixture`` (B, num_samples) at 16 kHz; ``faces`` as the subclass documents."""
        if mixture.dim() != 2:
            raise ValueError(f"mixture must be (batch, num_samples), got {tuple(mixture.shape)}")
        num_samples = mixture.shape[-1]
        spec_c = spectral.compress(spectral.stft(mixture), self.power)  # (B, F, T)
        audio = self.audio_stream(spectral.complex_to_channels(spec_c))
        fused, visual = self.fuse(audio, faces)
        masks = self.head(fused)
        est_c = spectral.apply_masks(masks, spec_c)
        waveforms = spectral.istft(spectral.decompress(est_c, self.power), num_samples)
        return SeparationOutput(waveforms=waveforms, compressed=est_c, masks=masks, visual=visual)


class AudioVisualSeparator(MaskSeparator):
    """The AVSpeech paper's audio-visual model for a fixed number of face streams (1, 2 or 3).

    Outputs: one mask per face, in face order (the paper's model outputs a mask per visible speaker
    and nothing else); ``residual_mask`` adds one for the rest of the mixture (off by default).
    CMC heads: ``cmc`` maps the separated audio into the visual stream's space (the paper's form,
    see :meth:`correspondence_embeddings`); ``cmc_dim`` > 0 instead projects both modalities into a
    ``cmc_dim``-d space (an option; also how packages written before ``cmc`` existed are rebuilt).

    Defaults are the paper's: 96 audio filters over 15 layers, 8-filter 1x1 output, 256-filter visual
    stream over 6 layers, BLSTM of 400 units per direction, 3 FC layers of 600 units (the paper leaves
    these two widths open; these are its released-code values), masks bounded to (-2, 2).
    """

    def __init__(
        self,
        n_faces: int = 2,
        residual_mask: bool = False,
        visual_input: VisualInput = VisualInput.EMBEDDINGS,
        embedding_dim: int = 512,
        crop_feature_dim: int = 128,
        audio_channels: int = 96,
        audio_out_channels: int = 8,
        audio_layers: int = 15,
        visual_channels: int = 256,
        visual_layers: int = 6,
        lstm_hidden: int = 400,
        fc_dim: int = 600,
        mask_bound: float = 2.0,
        cmc_dim: int = 0,
        power: float = spectral.POWER,
        lip_dim: int = 128,
        cmc: bool = False,
    ) -> None:
        super().__init__(power)
        if not 1 <= n_faces <= 6:
            raise ValueError(f"n_faces must be 1..6, got {n_faces}")
        visual_input = VisualInput(visual_input)
        self.init_args = {
            "n_faces": n_faces,
            "residual_mask": residual_mask,
            "visual_input": visual_input.value,
            "embedding_dim": embedding_dim,
            "crop_feature_dim": crop_feature_dim,
            "audio_channels": audio_channels,
            "audio_out_channels": audio_out_channels,
            "audio_layers": audio_layers,
            "visual_channels": visual_channels,
            "visual_layers": visual_layers,
            "lstm_hidden": lstm_hidden,
            "fc_dim": fc_dim,
            "mask_bound": mask_bound,
            "cmc_dim": cmc_dim,
            "power": power,
            "lip_dim": lip_dim,
            "cmc": cmc,
        }
        self.n_faces, self.visual_input = n_faces, visual_input
        self.n_out = n_faces + int(residual_mask)
        self.audio_stream = AudioStream(audio_channels, audio_out_channels, audio_layers)
        self.front_end = (
            CropFrontEnd(crop_feature_dim) if visual_input == VisualInput.CROPS else nn.Identity()
        )
        self.visual_in_dim = {
            VisualInput.CROPS: crop_feature_dim,
            VisualInput.EMBEDDINGS: embedding_dim,
            VisualInput.LIPS: lip_dim,
        }[visual_input]
        """Per-frame width the visual stream reads (after the crop front end for crops)."""
        self.visual_stream: nn.Module = (
            LipStream(lip_dim, visual_channels)
            if visual_input == VisualInput.LIPS
            else VisualStream(self.visual_in_dim, visual_channels, visual_layers)
        )
        fused_dim = audio_out_channels * spectral.NUM_BINS + n_faces * visual_channels
        self.head = MaskHead(
            fused_dim, self.n_out, spectral.NUM_BINS, lstm_hidden, fc_dim, mask_bound=mask_bound
        )
        # Cross-modal correspondence (Makishima et al.): the separated audio is mapped into the
        # visual stream's feature space (``cmc``), or both modalities into ``cmc_dim`` (an option).
        with_cmc = cmc or cmc_dim > 0
        self.cmc_audio = (
            nn.Linear(spectral.NUM_BINS, cmc_dim or visual_channels) if with_cmc else None
        )
        self.cmc_visual = nn.Linear(visual_channels, cmc_dim) if cmc_dim else None

    def fuse(self, audio: Tensor, faces: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if faces is None:
            raise ValueError("AudioVisualSeparator needs faces")
        if faces.shape[1] != self.n_faces:
            raise ValueError(f"model has {self.n_faces} face streams, got {faces.shape[1]} faces")
        if self.visual_input != VisualInput.CROPS and (
            faces.dim() != 4 or faces.shape[-1] != self.visual_in_dim
        ):
            raise ValueError(
                f"model reads {self.visual_in_dim}-d {self.visual_input.value} per face frame "
                f"(B, n, T_v, {self.visual_in_dim}), got faces of shape {tuple(faces.shape)}"
            )
        feats = self.front_end(faces)  # (B, n, T_v, D)
        b, n, t_v, d = feats.shape
        v = self.visual_stream(feats.reshape(b * n, t_v, d).transpose(1, 2).float())
        v = F.interpolate(v, size=audio.shape[1], mode="nearest")  # 25 Hz -> 100 Hz frames
        v = v.reshape(b, n, v.shape[1], audio.shape[1]).transpose(2, 3)  # (B, n, T, C)
        fused = torch.cat([audio, *v.unbind(dim=1)], dim=-1)
        return fused, v

    def correspondence_embeddings(self, output: SeparationOutput) -> tuple[Tensor, Tensor]:
        """(audio, visual) per-frame embeddings (B, n_faces, T, D) for the CMC loss (Eq. 10).

        Audio: ``tanh(W |Ŝ_n| + b)`` per frame, from the magnitudes of the separated compressed
        spectrogram of face output n (the residual output, if any, has no face and is left out).
        Visual: the visual stream's features of face n as they are (D = ``visual_channels``), as in
        the paper; only a model built with ``cmc_dim`` > 0 projects them (linearly, D = ``cmc_dim``).
        """
        if self.cmc_audio is None or output.visual is None:
            raise ValueError("model was built without CMC heads (cmc=False, cmc_dim=0)")
        mag = output.compressed[:, : self.n_faces].abs().transpose(-1, -2)  # (B, n, T, F)
        audio = torch.tanh(self.cmc_audio(mag))
        visual = output.visual if self.cmc_visual is None else self.cmc_visual(output.visual)
        return audio, visual


class AudioOnlySeparator(MaskSeparator):
    """The audio-only baseline: the same audio stream and head, ``n_src`` unordered outputs."""

    def __init__(
        self,
        n_src: int = 2,
        residual_mask: bool = False,
        audio_channels: int = 96,
        audio_out_channels: int = 8,
        audio_layers: int = 15,
        lstm_hidden: int = 400,
        fc_dim: int = 600,
        mask_bound: float = 2.0,
        power: float = spectral.POWER,
    ) -> None:
        super().__init__(power)
        if not 1 <= n_src <= 6:
            raise ValueError(f"n_src must be 1..6, got {n_src}")
        self.init_args = {
            "n_src": n_src,
            "residual_mask": residual_mask,
            "audio_channels": audio_channels,
            "audio_out_channels": audio_out_channels,
            "audio_layers": audio_layers,
            "lstm_hidden": lstm_hidden,
            "fc_dim": fc_dim,
            "mask_bound": mask_bound,
            "power": power,
        }
        self.n_src = n_src
        self.n_out = n_src + int(residual_mask)
        self.audio_stream = AudioStream(audio_channels, audio_out_channels, audio_layers)
        self.head = MaskHead(
            audio_out_channels * spectral.NUM_BINS,
            self.n_out,
            spectral.NUM_BINS,
            lstm_hidden,
            fc_dim,
            mask_bound=mask_bound,
        )

    def fuse(self, audio: Tensor, faces: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return audio, None
