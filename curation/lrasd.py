"""LR-ASD active-speaker network (Liao et al., IJCV 2025; Light-ASD, CVPR 2023) in our own torch code.

Contract:
- :class:`LRASD` is the published network; its ``state_dict()`` keys and shapes are exactly those of
  the authors' weight files (``model.visualEncoder.*``, ``model.audioEncoder.*``, ``model.fusion.*``,
  ``model.detector.*``, ``lossAV.FC.*``, ``lossV.FC.*``), so they load with ``strict=True``.
  Shapes: batch ``B``, ``T`` video frames at 25 fps.

  * :meth:`LRASD.visual_embed`: grey face crops ``(B, T, 112, 112)`` uint8 (or float in 0..255),
    normalised here as ``(x / 255 - 0.4161) / 0.1688`` -> ``(B, T, 128)``;
  * :meth:`LRASD.audio_embed`: MFCCs ``(B, 4T, 13)`` (100 Hz, from :func:`mfcc_for_frames`) ->
    ``(B, T, 128)``;
  * :meth:`LRASD.backend`: attention fusion of audio and visual embeddings + the bidirectional GRU
    detector -> ``(B, T, 128)``; :meth:`LRASD.logits` -> ``(B, T, 2)``;
  * :meth:`LRASD.speaking_score`: the published per-frame score, the class-1 logit ``(B, T)``;
    > 0 means speaking.

  In eval mode (as :func:`load_lrasd` returns it) every frame's output is independent of the other
  items in the batch, and :meth:`LRASD.visual_embed` runs an equivalent faster path (BatchNorm folded
  into 2-D convs on channels-last frames, ~2.7x faster on CPU); in training mode it runs the
  authors' 3-D convs with batch statistics. A frame's visual embedding sees +-9 frames around it
  (zero-padded at the window's ends) and the GRUs the whole window, so scores near a window's ends
  differ from those of a longer pass. The visual encoder is ~98 % of the cost: to score one face track against several
  audio offsets, embed the faces once and rerun only :meth:`LRASD.audio_embed` and the back end.
- :func:`load_lrasd` loads the bundled weights (``"ava"``, the default, or ``"talkset"``, both in
  :data:`WEIGHTS_DIR`) or a user weight file, strictly; cached per file in-process, returned in eval
  mode. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not a
  matching state dict (the message lists missing / unexpected keys). The cached model is shared: do not
  train or modify it.
- Inputs as the authors prepare them (``Columbia_test.py``), pure numpy / OpenCV:

  * :func:`mfcc`: a vectorised reimplementation of ``python_speech_features.mfcc`` with its defaults,
    on int16-scaled samples (float input in -1..1 is multiplied by 32768 first; the first coefficient
    is log energy, so the scale matters); :func:`mfcc_for_frames` gives exactly ``4 * num_frames``
    rows (the package yields 4T - 1 rows for exactly T frames of audio; missing rows are filled the
    way the authors' training loader does, ``numpy.pad(..., "wrap")``; extra rows are cut);
  * :func:`smooth_boxes`: the authors' median filter over time of the box centre and half-size;
  * :func:`face_crop` / :func:`face_crops`: the authors' crop (centre of the box, ``s`` = half the
    larger side, rows ``y - s .. y + 1.8 s``, columns ``x - 1.4 s .. x + 1.4 s``, outside the frame
    filled with grey 110, resized to 224x224, grey, central 112x112). The authors' crops also went
    through an XVID video file before being read back; that lossy step is not reproduced.

Weights: ``curation/models/lr_asd/`` (MIT, see PROVENANCE.md there). Use the AVA weights: the
TalkSet-fine-tuned ones score silence, noise and shifted audio about as high as the real sound.
"""

from __future__ import annotations

import functools
import math
import pickle
import warnings
from pathlib import Path

import cv2
import numpy as np
import scipy.fft
import scipy.signal
import torch
from torch import Tensor, nn
from torch.nn import functional as F

WEIGHTS_DIR = Path(__file__).resolve().parent / "models" / "lr_asd"
"""The bundled weight files (and their licence and provenance)."""
WEIGHT_FILES = {"ava": "pretrain_AVA.model", "talkset": "finetuning_TalkSet.model"}
"""Names accepted by :func:`load_lrasd` -> file in :data:`WEIGHTS_DIR`."""
DEFAULT_WEIGHTS = "ava"
"""AVA-ActiveSpeaker weights: they listen to the sound (the TalkSet ones largely do not)."""

FACE_SIZE = 112
"""Side of the grey face crop the network takes."""
FACE_MEAN = 0.4161
FACE_STD = 0.1688
MFCC_PER_FRAME = 4
"""MFCC rows (100 Hz) per video frame (25 fps)."""
EMBED_DIM = 128

CROP_SCALE = 0.4
"""The authors' ``cropScale``: the crop reaches ``(1 + 2 * 0.4) s`` below and ``(1 + 0.4) s`` either
side of the box centre, ``s`` above it."""
CROP_PAD_VALUE = 110
"""Grey level the authors pad the frame with, so crops near the border work."""
_CROP_RESIZE = 224

_BN_MOMENTUM = 0.01
_BN_EPS = 0.001


# --------------------------------------------------------------------------------------------- network


def _bn3d(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, momentum=_BN_MOMENTUM, eps=_BN_EPS)


def _bn2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=_BN_MOMENTUM, eps=_BN_EPS)


class _VisualBlock(nn.Module):
    """Spatial (1,k1,k1) -> (1,k2,k2) convs, then temporal (k1,1,1) -> (k2,1,1); each + BN + ReLU."""

    def __init__(self, c_in: int, c_out: int, k1: int = 5, k2: int = 3, down: bool = False) -> None:
        super().__init__()
        p1, p2 = (k1 - 1) // 2, (k2 - 1) // 2
        stride = (1, 2, 2) if down else (1, 1, 1)
        mid = c_out // 2
        self.s_1 = nn.Conv3d(c_in, mid, (1, k1, k1), stride, (0, p1, p1), bias=False)
        self.s_norm_1 = _bn3d(mid)
        self.s_2 = nn.Conv3d(mid, c_out, (1, k2, k2), padding=(0, p2, p2), bias=False)
        self.s_norm_2 = _bn3d(c_out)
        self.t_1 = nn.Conv3d(c_out, c_out, (k1, 1, 1), padding=(p1, 0, 0), bias=False)
        self.t_norm_1 = _bn3d(c_out)
        self.t_2 = nn.Conv3d(c_out, c_out, (k2, 1, 1), padding=(p2, 0, 0), bias=False)
        self.t_norm_2 = _bn3d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.s_norm_1(self.s_1(x)))
        x = F.relu(self.s_norm_2(self.s_2(x)))
        x = F.relu(self.t_norm_1(self.t_1(x)))
        return F.relu(self.t_norm_2(self.t_2(x)))


def _frames_conv(
    x: Tensor, conv: nn.Conv3d, bn: nn.BatchNorm3d, batch: int, temporal: bool
) -> Tensor:
    """ReLU(BN(conv3d)) of a visual block on frames ``(B*T, C, H, W)``, BN folded into the conv.

    Spatial (1, k, k) convs run as conv2d per frame; temporal (k, 1, 1) convs as conv2d with a
    (k, 1) kernel on the channels-last memory ``(B, T, H*W, C)`` viewed as ``(B, C, T, H*W)``.
    """
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    weight = conv.weight * scale.view(-1, 1, 1, 1, 1)
    cl = torch.channels_last
    if not temporal:
        w2 = weight[:, :, 0].contiguous(memory_format=cl)  # a channels-last output from mkldnn
        y = F.conv2d(x, w2, bias, conv.stride[1:], conv.padding[1:])
        return F.relu_(y)
    n, c, h, w = x.shape
    xt = x.contiguous(memory_format=cl).permute(0, 2, 3, 1).reshape(batch, n // batch, h * w, c)
    w2 = weight[..., 0].contiguous(memory_format=cl)  # (C_out, C_in, k, 1)
    y = F.conv2d(xt.permute(0, 3, 1, 2), w2, bias, 1, (conv.padding[0], 0))
    y = y.contiguous(memory_format=cl).permute(0, 2, 3, 1).reshape(n, h, w, -1)
    return F.relu_(y.permute(0, 3, 1, 2))


class _VisualEncoder(nn.Module):
    """(B, 1, T, 112, 112) -> (B, T, 128): three blocks, max-pools between, global spatial max."""

    def __init__(self) -> None:
        super().__init__()
        self.block1 = _VisualBlock(1, 32, down=True)
        self.block2 = _VisualBlock(32, 64)
        self.block3 = _VisualBlock(64, 128)

    @staticmethod
    def _pool(x: Tensor) -> Tensor:
        return F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self._pool(self.block1(x))  # (B, 32, T, 28, 28)
        x = self._pool(self.block2(x))  # (B, 64, T, 14, 14)
        x = self.block3(x)  # (B, 128, T, 14, 14)
        return x.amax(dim=(3, 4)).transpose(1, 2)

    def forward_frames(self, x: Tensor) -> Tensor:
        """Inference path, (B, T, 112, 112) normalised -> (B, T, 128), same result as :meth:`forward`.

        Uses the BatchNorm running statistics (eval semantics) folded into the conv weights, and
        2-D convs on channels-last frames ``(B*T, C, H, W)``: the spatial convs are per-frame conv2d,
        the temporal ones conv2d with a (k, 1) kernel on the same memory seen as ``(B, C, T, H*W)``,
        so no layout copies are made. Measured on one CPU thread (AVX-512, torch 2.13, batch 4 x 100
        frames): 0.13-0.14 s per second of video, against 0.35-0.37 s for the 3-D convs of
        :meth:`forward`, half of whose convs take PyTorch's slow generic conv3d kernel.
        """
        b, t, h, w = x.shape
        x = x.reshape(b * t, 1, h, w)
        for i, block in enumerate((self.block1, self.block2, self.block3)):
            if i:
                x = F.max_pool2d(x, 3, 2, 1)
            x = _frames_conv(x, block.s_1, block.s_norm_1, b, temporal=False)
            x = _frames_conv(x, block.s_2, block.s_norm_2, b, temporal=False)
            x = _frames_conv(x, block.t_1, block.t_norm_1, b, temporal=True)
            x = _frames_conv(x, block.t_2, block.t_norm_2, b, temporal=True)
        return x.amax(dim=(2, 3)).reshape(b, t, -1)


class _AudioBlock(nn.Module):
    """Convs along the MFCC axis (k1,1) -> (k2,1), then along time (1,k1) -> (1,k2); + BN + ReLU."""

    def __init__(self, c_in: int, c_out: int, k1: int = 5, k2: int = 3) -> None:
        super().__init__()
        p1, p2 = (k1 - 1) // 2, (k2 - 1) // 2
        mid = c_out // 2
        self.m_1 = nn.Conv2d(c_in, mid, (k1, 1), padding=(p1, 0), bias=False)
        self.m_norm_1 = _bn2d(mid)
        self.m_2 = nn.Conv2d(mid, c_out, (k2, 1), padding=(p2, 0), bias=False)
        self.m_norm_2 = _bn2d(c_out)
        self.t_1 = nn.Conv2d(c_out, c_out, (1, k1), padding=(0, p1), bias=False)
        self.t_norm_1 = _bn2d(c_out)
        self.t_2 = nn.Conv2d(c_out, c_out, (1, k2), padding=(0, p2), bias=False)
        self.t_norm_2 = _bn2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.m_norm_1(self.m_1(x)))
        x = F.relu(self.m_norm_2(self.m_2(x)))
        x = F.relu(self.t_norm_1(self.t_1(x)))
        return F.relu(self.t_norm_2(self.t_2(x)))


class _AudioEncoder(nn.Module):
    """(B, 1, 13, 4T) -> (B, T, 128): three blocks, time max-pools (stride 2) between, mean over MFCCs."""

    def __init__(self) -> None:
        super().__init__()
        self.block1 = _AudioBlock(1, 32)
        self.block2 = _AudioBlock(32, 64)
        self.block3 = _AudioBlock(64, 128)

    @staticmethod
    def _pool(x: Tensor) -> Tensor:
        return F.max_pool2d(x, (1, 3), (1, 2), (0, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self._pool(self.block1(x))  # (B, 32, 13, 2T)
        x = self._pool(self.block2(x))  # (B, 64, 13, T)
        x = self.block3(x)  # (B, 128, 13, T)
        return x.mean(dim=2).transpose(1, 2)


class _Fusion(nn.Module):
    """Concatenate two (B, T, C/2) streams; gate each channel by sigmoid(BN(1x1 conv)) of the whole."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attention = nn.Conv1d(channels, channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm1d(channels, momentum=_BN_MOMENTUM, eps=_BN_EPS)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        x = torch.cat((a, b), dim=2).transpose(1, 2)  # (B, C, T)
        w = torch.sigmoid(self.bn(self.attention(x)))
        return (x * w).transpose(1, 2)


class _Detector(nn.Module):
    """Forward GRU and time-reversed GRU (256 -> 64 each), fused by a width-128 :class:`_Fusion`."""

    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        hidden = channels // 4
        self.gru_forward = nn.GRU(channels, hidden, num_layers=1, batch_first=True)
        self.gru_backward = nn.GRU(channels, hidden, num_layers=1, batch_first=True)
        self.drop = nn.Dropout(0.5)
        self.attention = _Fusion(channels // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.drop(x)
        fwd, _ = self.gru_forward(x)
        bwd, _ = self.gru_backward(torch.flip(x, dims=[1]))
        return self.attention(fwd, torch.flip(bwd, dims=[1]))


class _Backbone(nn.Module):
    """The authors' ``ASD_Model``: the part of the state dict under ``model.``."""

    def __init__(self) -> None:
        super().__init__()
        self.visualEncoder = _VisualEncoder()
        self.audioEncoder = _AudioEncoder()
        self.fusion = _Fusion(2 * EMBED_DIM)
        self.detector = _Detector(2 * EMBED_DIM)


class _Head(nn.Module):
    """The authors' ``lossAV`` / ``lossV``: only their ``FC`` holds weights."""

    def __init__(self) -> None:
        super().__init__()
        self.FC = nn.Linear(EMBED_DIM, 2)


class LRASD(nn.Module):
    """LR-ASD with the authors' state-dict layout; see the module docstring for shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.model = _Backbone()
        self.lossAV = _Head()
        self.lossV = _Head()

    def visual_embed(self, faces: Tensor) -> Tensor:
        """Grey face crops (B, T, 112, 112), uint8 or float in 0..255 -> (B, T, 128)."""
        if faces.ndim != 4 or faces.shape[-2:] != (FACE_SIZE, FACE_SIZE):
            raise ValueError(f"faces must be (B, T, 112, 112), got {tuple(faces.shape)}")
        x = faces.to(torch.float32)
        x = (x / 255.0 - FACE_MEAN) / FACE_STD
        if self.training:  # BatchNorm on batch statistics: the authors' 3-D conv path
            return self.model.visualEncoder(x.unsqueeze(1))
        return self.model.visualEncoder.forward_frames(x)

    def audio_embed(self, mfcc: Tensor) -> Tensor:
        """MFCCs (B, 4T, 13) -> (B, T, 128)."""
        if mfcc.ndim != 3 or mfcc.shape[-1] != 13:
            raise ValueError(f"mfcc must be (B, 4T, 13), got {tuple(mfcc.shape)}")
        x = mfcc.to(torch.float32).unsqueeze(1).transpose(2, 3)  # (B, 1, 13, 4T)
        return self.model.audioEncoder(x)

    def backend(self, audio_emb: Tensor, visual_emb: Tensor) -> Tensor:
        """Audio and visual embeddings (B, T, 128) each -> audio-visual features (B, T, 128)."""
        if audio_emb.shape != visual_emb.shape:
            raise ValueError(
                f"audio and visual embeddings differ in shape: {tuple(audio_emb.shape)} vs "
                f"{tuple(visual_emb.shape)} (the MFCCs must have 4 rows per video frame)"
            )
        return self.model.detector(self.model.fusion(audio_emb, visual_emb))

    def visual_scores(self, visual_emb: Tensor) -> Tensor:
        """Visual embeddings (B, T, 128) -> the visual-only speaking logit (B, T) of the authors'
        auxiliary ``lossV`` head (lip motion alone, no sound)."""
        return self.lossV.FC(visual_emb)[..., 1]

    def logits(self, features: Tensor) -> Tensor:
        """Audio-visual features (B, T, 128) -> (not speaking, speaking) logits (B, T, 2)."""
        return self.lossAV.FC(features)

    def speaking_score(self, faces: Tensor, mfcc: Tensor) -> Tensor:
        """Faces (B, T, 112, 112) and MFCCs (B, 4T, 13) -> per-frame score (B, T); > 0 = speaking."""
        if mfcc.shape[1] != MFCC_PER_FRAME * faces.shape[1]:
            raise ValueError(
                f"{faces.shape[1]} video frames need {MFCC_PER_FRAME * faces.shape[1]} MFCC rows, "
                f"got {mfcc.shape[1]} (use mfcc_for_frames)"
            )
        features = self.backend(self.audio_embed(mfcc), self.visual_embed(faces))
        return self.logits(features)[..., 1]


# --------------------------------------------------------------------------------------------- loading


def resolve_weights(weights: str | Path = DEFAULT_WEIGHTS) -> Path:
    """``"ava"`` / ``"talkset"`` -> the bundled file; anything else is a path to a weight file."""
    if isinstance(weights, str) and weights in WEIGHT_FILES:
        return WEIGHTS_DIR / WEIGHT_FILES[weights]
    return Path(weights).expanduser()


def load_lrasd(weights: str | Path = DEFAULT_WEIGHTS) -> LRASD:
    """The network with ``weights`` (see :func:`resolve_weights`) loaded strictly, in eval mode.

    Cached per resolved file in this process: the same object is returned for the same file.
    """
    path = resolve_weights(weights)
    if not path.is_file():
        names = ", ".join(f'"{k}"' for k in WEIGHT_FILES)
        raise FileNotFoundError(
            f"LR-ASD weight file not found: {path} (give {names} for the bundled weights in "
            f"{WEIGHTS_DIR}, or the path of a state dict saved from the authors' model)"
        )
    return _load_cached(str(path.resolve()))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> LRASD:
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise ValueError(f"{path} is not a PyTorch state dict: {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    net = LRASD()
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match the LR-ASD network: missing keys {missing}, "
            f"unexpected keys {unexpected}"
        )
    wrong = [
        f"{k}: file {tuple(v.shape)}, network {tuple(expected[k].shape)}"
        for k, v in state.items()
        if not isinstance(v, Tensor) or v.shape != expected[k].shape
    ]
    if wrong:
        raise ValueError(f"{path} does not match the LR-ASD network: wrong shapes {wrong}")
    net.load_state_dict(state, strict=True)
    return net.eval()


# --------------------------------------------------------------------------------------------- MFCC

_WINLEN_S = 0.025
_WINSTEP_S = 0.01
_NUMCEP = 13
_NFILT = 26
_NFFT = 512
_PREEMPH = 0.97
_CEPLIFTER = 22


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


@functools.lru_cache(maxsize=8)
def _mel_filterbank(sample_rate_hz: int) -> np.ndarray:
    """python_speech_features.get_filterbanks(26, 512, sr, 0, sr/2): (26, 257) float64, transposed."""
    high_mel = 2595.0 * np.log10(1.0 + (sample_rate_hz / 2) / 700.0)
    mel_points = np.linspace(0.0, high_mel, _NFILT + 2)
    hz_points = 700.0 * (10.0 ** (mel_points / 2595.0) - 1.0)
    bins = np.floor((_NFFT + 1) * hz_points / sample_rate_hz)
    i = np.arange(_NFFT // 2 + 1, dtype=np.float64)[None, :]
    lo, mid, hi = bins[:-2, None], bins[1:-1, None], bins[2:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        rise = np.where((i >= lo) & (i < mid), (i - lo) / (mid - lo), 0.0)
        fall = np.where((i >= mid) & (i < hi), (hi - i) / (hi - mid), 0.0)
    bank = rise + fall
    bank.flags.writeable = False
    return bank.T


@functools.lru_cache(maxsize=1)
def _lifter() -> np.ndarray:
    n = np.arange(_NUMCEP)
    return 1.0 + (_CEPLIFTER / 2.0) * np.sin(np.pi * n / _CEPLIFTER)


def mfcc(audio: np.ndarray, sample_rate_hz: int = 16000) -> np.ndarray:
    """13 MFCCs at 100 Hz, (n, 13) float32, as ``python_speech_features.mfcc(audio, sample_rate_hz)``.

    ``audio``: mono, int16-scaled integers (used as is) or float in -1..1 (multiplied by 32768).
    The network was trained on 16 kHz audio: resample other rates before calling this.
    ``n = 1 + ceil((len - 25 ms) / 10 ms)`` frames (1 if shorter than a window); the last frames are
    zero-padded as the package does, so T video frames of audio give 4T - 1 rows: see
    :func:`mfcc_for_frames`.
    """
    x = np.asarray(audio)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"audio must be mono (1-D) and not empty, got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64)
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64) * 32768.0
    else:
        raise ValueError(f"audio must be integer (int16-scaled) or float, got {x.dtype}")
    frame_len = _round_half_up(_WINLEN_S * sample_rate_hz)
    frame_step = _round_half_up(_WINSTEP_S * sample_rate_hz)

    x = np.concatenate((x[:1], x[1:] - _PREEMPH * x[:-1]))
    n_frames = 1 + max(0, math.ceil((len(x) - frame_len) / frame_step))
    padded = np.zeros((n_frames - 1) * frame_step + frame_len)
    padded[: len(x)] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_len)[::frame_step]

    power = np.abs(np.fft.rfft(frames, _NFFT, axis=1)) ** 2 / _NFFT  # (n, 257)
    eps = np.finfo(np.float64).eps
    energy = power.sum(axis=1)
    energy = np.where(energy == 0, eps, energy)
    feat = power @ _mel_filterbank(int(sample_rate_hz))
    feat = np.where(feat == 0, eps, feat)
    cep = scipy.fft.dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :_NUMCEP]
    cep *= _lifter()
    cep[:, 0] = np.log(energy)
    return cep.astype(np.float32)


def mfcc_for_frames(audio: np.ndarray, num_frames: int, sample_rate_hz: int = 16000) -> np.ndarray:
    """Exactly ``4 * num_frames`` MFCC rows (``(4T, 13)`` float32) for ``num_frames`` video frames.

    ``audio`` starts at the first video frame. Rows beyond ``4T`` are cut; missing rows are filled by
    wrapping around (rows 0, 1, ...), as the authors' training loader does (``numpy.pad(..., "wrap")``):
    exactly ``T / 25`` s of audio gives 4T - 1 rows, the last of them over a zero-padded window. Pass
    at least 15 ms of audio beyond the last frame to have every row computed from real samples.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    feat = mfcc(audio, sample_rate_hz)
    rows = MFCC_PER_FRAME * num_frames
    if len(feat) < rows:
        feat = np.pad(feat, ((0, rows - len(feat)), (0, 0)), mode="wrap")
    return np.ascontiguousarray(feat[:rows])


VISUAL_CONTEXT_FRAMES = 16
"""Frames on each side of a chunk that :func:`visual_embed_long` encodes and drops: more than the
visual encoder's temporal receptive field (3 blocks of 5- and 3-frame temporal convs: 9 frames)."""


@torch.inference_mode()
def visual_embed_long(model: LRASD, faces: np.ndarray, chunk_frames: int = 250) -> Tensor:
    """:meth:`LRASD.visual_embed` of a long face track (T, 112, 112) uint8 -> (T, 128), in chunks of
    ``chunk_frames`` with :data:`VISUAL_CONTEXT_FRAMES` of context on each side, so memory stays
    bounded (one pass over a 10-minute track would need tens of GB of activations) and the result
    equals one pass."""
    t = len(faces)
    out = torch.zeros((t, EMBED_DIM))
    for start in range(0, t, chunk_frames):
        stop = min(t, start + chunk_frames)
        lo, hi = max(0, start - VISUAL_CONTEXT_FRAMES), min(t, stop + VISUAL_CONTEXT_FRAMES)
        part = torch.from_numpy(np.ascontiguousarray(faces[lo:hi]))[None]
        out[start:stop] = model.visual_embed(part)[0, start - lo : stop - lo]
    return out


# --------------------------------------------------------------------------------------------- faces


def smooth_boxes(boxes: np.ndarray, kernel: int = 13) -> np.ndarray:
    """The authors' smoothing of a track's boxes (T, 4) ``(x0, y0, x1, y1)`` before cropping.

    ``scipy.signal.medfilt(..., kernel)`` over time of the box centre x, centre y and half the larger
    side ``s``, as the authors do (medfilt pads with zeros, so the first and last ``kernel // 2``
    frames lean towards the smaller values, as theirs). A track shorter than ``kernel // 2 + 1``
    frames, where that zero padding would outvote the track (medians of 0), is filtered with the
    largest odd kernel not longer than the track instead. Returns square boxes
    ``(x-s, y-s, x+s, y+s)``, float64 (T, 4): :func:`face_crop` of such a box is the authors' crop of
    the smoothed detection.
    """
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be (T, 4), got {b.shape}")
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be odd and positive, got {kernel}")
    s = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    y = (b[:, 1] + b[:, 3]) / 2
    x = (b[:, 0] + b[:, 2]) / 2
    n = len(b)
    if n:
        k = kernel if n >= kernel // 2 + 1 else n - (n + 1) % 2
        with warnings.catch_warnings():  # "kernel_size exceeds volume extent": intended, as theirs
            warnings.simplefilter("ignore", UserWarning)
            s, y, x = (scipy.signal.medfilt(v, kernel_size=k) for v in (s, y, x))
    return np.stack((x - s, y - s, x + s, y + s), axis=1)


def _crop_window(box: np.ndarray | tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """Rows r0:r1, cols c0:c1 of the authors' crop in frame pixels (may extend beyond the frame)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    bs = max(y1 - y0, x1 - x0) / 2
    # The authors pad the frame by bsi, crop in padded coordinates with int() and shift back.
    bsi = int(bs * (1 + 2 * CROP_SCALE))
    my = (y0 + y1) / 2 + bsi
    mx = (x0 + x1) / 2 + bsi
    r0 = math.floor(my - bs) - bsi
    r1 = math.floor(my + bs * (1 + 2 * CROP_SCALE)) - bsi
    c0 = math.floor(mx - bs * (1 + CROP_SCALE)) - bsi
    c1 = math.floor(mx + bs * (1 + CROP_SCALE)) - bsi
    return r0, r1, c0, c1


def face_crop(frame: np.ndarray, box: np.ndarray | tuple[float, float, float, float]) -> np.ndarray:
    """The authors' 112x112 grey face crop (uint8) of one frame.

    ``frame``: (H, W, 3) RGB uint8 or (H, W) grey uint8; ``box``: ``(x0, y0, x1, y1)`` in frame pixels
    (smoothed with :func:`smooth_boxes` first, as the authors). Parts of the crop outside the frame are
    grey 110 (the authors pad the frame with 110 by 1.8 s on each side, which covers every box whose
    centre lies in the frame; here any overhang is filled). The crop is resized to 224x224 (bilinear),
    made grey (after the resize, as the authors) and its central 112x112 kept.
    """
    img = np.asarray(frame)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(
            f"frame must be uint8 (H, W, 3) RGB or (H, W) grey, got {img.dtype} {img.shape}"
        )
    r0, r1, c0, c1 = _crop_window(box)
    if r1 <= r0 or c1 <= c0:
        raise ValueError(f"empty crop for box {tuple(box)}")
    h, w = img.shape[:2]
    crop = np.full((r1 - r0, c1 - c0, *img.shape[2:]), CROP_PAD_VALUE, dtype=np.uint8)
    sr0, sr1, sc0, sc1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
    if sr0 < sr1 and sc0 < sc1:
        crop[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = img[sr0:sr1, sc0:sc1]
    crop = cv2.resize(crop, (_CROP_RESIZE, _CROP_RESIZE), interpolation=cv2.INTER_LINEAR)
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    lo = (_CROP_RESIZE - FACE_SIZE) // 2
    return np.ascontiguousarray(crop[lo : lo + FACE_SIZE, lo : lo + FACE_SIZE])


def face_crops(frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """:func:`face_crop` of each frame (T, H, W, 3) or (T, H, W) with its box (T, 4) -> (T, 112, 112)."""
    frames = np.asarray(frames)
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) != len(frames):
        raise ValueError(f"boxes must be (T, 4) with T = {len(frames)} frames, got {boxes.shape}")
    out = np.empty((len(frames), FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    for i, (frame, box) in enumerate(zip(frames, boxes, strict=True)):
        out[i] = face_crop(frame, box)
    return out
