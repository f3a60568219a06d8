"""The network's parts: dilated audio stream, shared visual stream, face front ends, fusion + mask head.

Shapes (B batch, T audio frames at 100 Hz, F = 257 bins, T_v video frames at 25 Hz, n faces):

- :class:`AudioStream`: compressed complex STFT as channels (B, 2, T, F) -> (B, T, out_channels * F).
  The paper's 15 layers (Table 1): kernels (time x freq) 1x7, 7x1, then 5x5 with dilations 1, 2, 4, 8,
  16, 32 in time, then 1, 2, 4, 8, 16, 32 in both axes, then a 1x1 conv with 8 filters; 96 filters.
- :class:`VisualStream`: per-face features (B * n, D, T_v) -> (B * n, channels, T_v); 6 temporal convs
  (7, 5, 5, 5, 5, 5 with dilations 1, 1, 2, 4, 8, 16), 256 filters; one stream shared across faces.
- :class:`CropFrontEnd`: uint8 face crops (B, n, T_v, H, W, 3) -> (B, n, T_v, out_dim), a small CNN
  trained end to end (for corpora without face embeddings).
- :class:`LipStream`: the visual stream of lip features (the LR-ASD active-speaker network's 128-d
  per-frame visual embedding, stored by curation): (B * n, D_lip, T_v) -> (B * n, channels, T_v), two
  temporal convs (kernel 5, dilations 1 and 2: 13 frames, about 0.5 s, of context). The features
  already carry some temporal context (LR-ASD's visual encoder has temporal convs), so this small
  stream replaces the dilated stack.
- :class:`MaskHead`: fused frames (B, T, D) -> BLSTM -> 3 FC -> sigmoid-bounded complex masks
  (B, n_masks, F, T, 2).

Every conv is followed by BatchNorm and ReLU, as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

# (kernel_t, kernel_f, dilation_t, dilation_f) of the paper's first 14 audio layers; a 1x1 conv follows.
PAPER_AUDIO_LAYERS: tuple[tuple[int, int, int, int], ...] = (
    (1, 7, 1, 1),
    (7, 1, 1, 1),
    (5, 5, 1, 1),
    (5, 5, 2, 1),
    (5, 5, 4, 1),
    (5, 5, 8, 1),
    (5, 5, 16, 1),
    (5, 5, 32, 1),
    (5, 5, 1, 1),
    (5, 5, 2, 2),
    (5, 5, 4, 4),
    (5, 5, 8, 8),
    (5, 5, 16, 16),
    (5, 5, 32, 32),
)
# (kernel, dilation) of the paper's 6 visual layers.
PAPER_VISUAL_LAYERS: tuple[tuple[int, int], ...] = ((7, 1), (5, 1), (5, 2), (5, 4), (5, 8), (5, 16))


def _same_padding(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) // 2


class AudioStream(nn.Module):
    """Dilated 2-D convs over the compressed spectrogram: (B, 2, T, F) -> (B, T, out_channels * F).

    ``num_layers`` (2..15) keeps the paper's first ``num_layers - 1`` layers and the final 1x1 conv;
    reduced models (tests, CPU runs) use fewer layers and fewer ``channels``.
    """

    def __init__(
        self,
        channels: int = 96,
        out_channels: int = 8,
        num_layers: int = 15,
        in_channels: int = 2,
    ) -> None:
        super().__init__()
        if not 2 <= num_layers <= len(PAPER_AUDIO_LAYERS) + 1:
            raise ValueError(
                f"num_layers must be 2..{len(PAPER_AUDIO_LAYERS) + 1}, got {num_layers}"
            )
        layers: list[nn.Module] = []
        c_in = in_channels
        for kt, kf, dt, df in PAPER_AUDIO_LAYERS[: num_layers - 1]:
            layers += [
                nn.Conv2d(
                    c_in,
                    channels,
                    (kt, kf),
                    dilation=(dt, df),
                    padding=(_same_padding(kt, dt), _same_padding(kf, df)),
                    bias=False,
                ),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
            c_in = channels
        layers += [
            nn.Conv2d(c_in, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        self.net = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.net(x)  # (B, C, T, F)
        b, c, t, f = y.shape
        return y.permute(0, 2, 1, 3).reshape(b, t, c * f)


class VisualStream(nn.Module):
    """Dilated temporal convs shared across faces: (N, in_dim, T_v) -> (N, channels, T_v)."""

    def __init__(self, in_dim: int, channels: int = 256, num_layers: int = 6) -> None:
        super().__init__()
        if not 1 <= num_layers <= len(PAPER_VISUAL_LAYERS):
            raise ValueError(f"num_layers must be 1..{len(PAPER_VISUAL_LAYERS)}, got {num_layers}")
        self.net = temporal_convs(in_dim, channels, PAPER_VISUAL_LAYERS[:num_layers])
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def temporal_convs(in_dim: int, channels: int, spec: tuple[tuple[int, int], ...]) -> nn.Sequential:
    """1-D convs (kernel, dilation) per ``spec``, same padding, no bias, each + BatchNorm + ReLU:
    ``in_dim`` -> ``channels`` -> ... -> ``channels``."""
    layers: list[nn.Module] = []
    c_in = in_dim
    for kernel, dilation in spec:
        layers += [
            nn.Conv1d(
                c_in,
                channels,
                kernel,
                dilation=dilation,
                padding=_same_padding(kernel, dilation),
                bias=False,
            ),
            nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True),
        ]
        c_in = channels
    return nn.Sequential(*layers)


LIP_LAYERS: tuple[tuple[int, int], ...] = ((5, 1), (5, 2))
"""(kernel, dilation) of :class:`LipStream`'s temporal convs."""


class LipStream(nn.Module):
    """Temporal convs over lip features: (N, in_dim, T_v) -> (N, channels, T_v), shared across faces.

    Two 1-D convs (:data:`LIP_LAYERS`: kernel 5, dilations 1 and 2, same padding, BatchNorm + ReLU),
    ``in_dim`` (128 for LR-ASD) -> ``channels`` (the model's visual width) -> ``channels``.
    """

    def __init__(self, in_dim: int = 128, channels: int = 256) -> None:
        super().__init__()
        self.net = temporal_convs(in_dim, channels, LIP_LAYERS)
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CropFrontEnd(nn.Module):
    """Small CNN over face crops: uint8 or float (B, n, T_v, H, W, 3) -> (B, n, T_v, out_dim).

    Four stride-2 3x3 convs (BatchNorm + ReLU), global average pooling, one linear layer. Works for any
    crop size of at least 16 px (112 px in a corpus, smaller in tests). uint8 input is scaled to 0..1.
    """

    def __init__(self, out_dim: int = 128, widths: Sequence[int] = (16, 32, 64, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for width in widths:
            layers += [
                nn.Conv2d(c_in, width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            c_in = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.proj = nn.Linear(c_in, out_dim)
        self.out_dim = out_dim

    def forward(self, crops: Tensor) -> Tensor:
        b, n, t, h, w, c = crops.shape
        x = crops.reshape(b * n * t, h, w, c).permute(0, 3, 1, 2)
        x = x.float() / 255.0 if crops.dtype == torch.uint8 else x.float()
        return self.proj(self.features(x - 0.5)).reshape(b, n, t, self.out_dim)


class MaskHead(nn.Module):
    """Fused frames (B, T, in_dim) -> BLSTM -> 3 FC (ReLU) -> masks (B, n_masks, num_bins, T, 2).

    Masks are sigmoid-bounded: ``bound * (2 * sigmoid(z) - 1)`` in (-bound, bound), the bounded complex
    ratio mask of Williamson et al.; real and imaginary parts are the last axis.
    """

    def __init__(
        self,
        in_dim: int,
        n_masks: int,
        num_bins: int,
        lstm_hidden: int = 400,
        fc_dim: int = 600,
        num_fc: int = 3,
        mask_bound: float = 2.0,
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, lstm_hidden, batch_first=True, bidirectional=True)
        fcs: list[nn.Module] = []
        d = 2 * lstm_hidden
        for _ in range(num_fc):
            fcs += [nn.Linear(d, fc_dim), nn.ReLU(inplace=True)]
            d = fc_dim
        self.fc = nn.Sequential(*fcs)
        self.out = nn.Linear(d, n_masks * num_bins * 2)
        self.n_masks, self.num_bins, self.mask_bound = n_masks, num_bins, mask_bound

    def forward(self, x: Tensor) -> Tensor:
        self.lstm.flatten_parameters()
        y, _ = self.lstm(x)
        z = self.out(self.fc(y))  # (B, T, n * F * 2)
        b, t, _ = z.shape
        z = z.reshape(b, t, self.n_masks, self.num_bins, 2).permute(0, 2, 3, 1, 4)
        return self.mask_bound * (2.0 * torch.sigmoid(z) - 1.0)
