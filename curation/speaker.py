"""Active speaker: is the one visible face the person speaking, in sync with the sound?

Contract (pure but for torch; no I/O once the weights are loaded):

- :func:`score_window` takes one candidate window's 25 fps face crops (the LR-ASD geometry,
  :func:`curation.lrasd.face_crops`), the window's MFCCs (13 at 100 Hz, 4 rows per video frame) and
  the window's speech mask per video frame, and returns a :class:`SpeakerScores`:

  - ``frame_scores`` (T,): LR-ASD's per-frame speaking score (class-1 logit, > 0 means speaking),
    smoothed over ``smooth_frames`` (the face against its own sound, as recorded);
  - ``lip_features`` (T, 128): the network's visual embedding, a lip-motion feature computed anyway
    (stored with kept clips as an optional face stream for training);
  - ``speaking_score``: the mean frame score at zero offset over the frames where speech is heard
    (a listener, a still photo or slides with a voice-over score low: ``not_speaking``);
  - ``sync_offset_s``: the audio delay (s, positive when the sound lags the lips) at which the
    window's mean score peaks, among the offsets scored (every ``offset_step_frames`` within
    ``max_offset_s``, and the contrast grid out to ``contrast_max_s``);
  - ``sync_confidence``: the sum of two independent measures of whether the lips and the sound
    belong together (``not_in_sync`` below ``min_sync_confidence``):

    1. the *offset contrast*: how sharply the score peaks at the sound's own alignment, the mean
       score at zero offset minus the mean over the contrast grid (offsets of ``contrast_min_s`` to
       ``contrast_max_s``, every ``contrast_step_frames``, both signs), in units of that grid's
       standard deviation. The face track's visual embedding is computed once; only the small audio
       branch and the back end run again per offset. A face with its own, in-sync sound peaks at
       zero; a face with another person's speech (dubbing) or with its sound moved by a second
       scores about as well at many offsets;
    2. the *lip-energy correlation* times ``lip_energy_weight``: the Pearson correlation, over the
       window's frames, of LR-ASD's visual-only speaking score (its ``lossV`` head: lip motion alone)
       with the sound's log energy per video frame. Own sound: the lips move when the voice is loud
       and close in its pauses; another person's speech or a shifted sound does not follow them.

    An active-speaker model alone mostly watches the lips: on real talks its raw score separates
    dubbed and shifted windows from real ones with an area under the ROC curve of only about 0.7-0.8
    (docs/speaker_calibration.md), so these two measures are what catch dubbing. Each alone
    separates the windows of 13 real talks from those of all 156 of their cross-dubbed pairs with an
    area under the curve of 0.90 (contrast) and 0.91 (correlation); their sum 0.93, and 0.94
    against sound shifted by 1 s.

Offsets move the window's own MFCC rows circularly (whole video frames, 4 rows each): every offset
sees the same sound, only its alignment changes, and no audio from outside the window is needed.
The GRU back end runs on chunks of about ``chunk_s`` (the authors score 1-6 s windows; one pass over
3 s chunks matched their averaging), overlapping chunks are averaged, and all chunks of all offsets go
through the network as one batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from avforge.core.config import ConfigError, check_range
from avforge.core.threads import torch_threads
from curation.lrasd import LRASD, load_lrasd
from curation.snr import frame_powers

FPS = 25.0
MFCC_PER_FRAME = 4


@dataclass(frozen=True)
class SpeakerConfig:
    """Active-speaker and sync settings (the ``speaker`` section of the curation config)."""

    enabled: bool = True
    weights: str = "ava"
    """``ava`` (bundled LR-ASD weights trained on AVA-ActiveSpeaker: the default), ``talkset``
    (bundled, fine-tuned on TalkSet: scores silence and shifted sound about as high as the real
    sound, so the sync check cannot work with it), or a path to another LR-ASD state dict."""
    min_speaking_score: float = 0.0
    """Windows whose mean speaking score over speech frames is below this are ``not_speaking``. On
    8 real talks (docs/speaker_calibration.md) every still-face window scored <= -2.27 and every
    in-sync one >= 1.04: any value between separates them; this is the model's own boundary (score
    > 0 means speaking), which a listener's small mouth movements are less likely to pass."""
    min_sync_confidence: float = 4.7
    """Windows whose sync confidence (offset contrast + ``lip_energy_weight`` x lip-energy
    correlation) is below this are ``not_in_sync`` (dubbed or shifted sound). Chosen on 13 real
    talks against all 156 of their cross-dubbed pairs and their ±1 s shifts
    (``python -m curation.calibrate_sync``, docs/speaker_calibration.md) as the lowest threshold
    that keeps at most 10 % of those negative windows; then tested, unchanged, on 9 other real
    talks and their 72 cross-dubbed pairs: it kept 67 % of their in-sync windows, 9 % of the dubbed
    ones and 2 % of the ±1 s shifted ones."""
    max_offset_s: float = 0.32
    """Offsets near zero scored for the sync offset estimate: within ±this (whole video frames)."""
    offset_step_frames: int = 2
    """Step of that search, in video frames."""
    contrast_min_s: float = 0.32
    """The contrast grid (the sync confidence's off-sync baseline) starts this far from zero..."""
    contrast_max_s: float = 1.6
    """... and ends this far (both signs)."""
    contrast_step_frames: int = 3
    """Step of the contrast grid in video frames (every 3rd: 22 offsets from 0.32 to 1.6 s; a grid
    of every frame separated real from dubbed and shifted windows no better)."""
    lip_energy_weight: float = 9.2
    """Weight of the lip-energy correlation (-1..1) in the sync confidence: the ratio of the two
    measures' spreads over the cross-dubbed pairs of 13 real talks, so each counts alike
    (``python -m curation.calibrate_sync``). 0: the offset contrast alone."""
    context_windows: int = 1
    """The sync confidence of a window pools its scores with this many neighbouring windows on each
    side (the same face track, consecutive: one span). On real talks this lifted the separation of
    in-sync from dubbed and shifted windows from an area under the ROC curve of about 0.93 (each
    window alone, 3-5 s) to about 0.99; a change of sound inside a talk is then seen one window late.
    0: each window alone."""
    chunk_s: float = 3.0
    """Length of the back end's chunks."""
    smooth_frames: int = 5
    """Moving average of the frame scores (the authors smooth over ±2 frames)."""
    threads: int = 1
    """torch intra-op threads in each worker (1 per Dask worker process)."""

    def __post_init__(self) -> None:
        check_range(self, "min_speaking_score", -20.0, 20.0)
        check_range(self, "min_sync_confidence", -20.0, 20.0)
        check_range(self, "max_offset_s", 0.0, 1.0)
        check_range(self, "offset_step_frames", 1, 25)
        check_range(self, "contrast_min_s", 0.04, 5.0)
        check_range(self, "contrast_max_s", 0.04, 5.0)
        check_range(self, "contrast_step_frames", 1, 25)
        check_range(self, "lip_energy_weight", 0.0, 100.0)
        check_range(self, "context_windows", 0, 10)
        check_range(self, "chunk_s", 1.0, 10.0)
        check_range(self, "smooth_frames", 1, 25)
        check_range(self, "threads", 1, 64)
        if len(self.far_frames) < 4:
            raise ConfigError(
                "the contrast grid needs at least 4 offsets: contrast_max_s must exceed "
                "contrast_min_s by a few contrast_step_frames",
                "contrast_max_s",
            )

    @property
    def near_frames(self) -> list[int]:
        """Offsets (video frames) searched for the sync peak, 0 included."""
        k = int(self.max_offset_s * FPS + 1e-6)
        step = self.offset_step_frames
        return sorted({0, *range(-(k // step) * step, k + 1, step)})

    @property
    def far_frames(self) -> list[int]:
        """The contrast grid in video frames, both signs."""
        lo, hi = round(self.contrast_min_s * FPS), round(self.contrast_max_s * FPS)
        ks = range(max(1, lo), hi + 1, self.contrast_step_frames)
        return sorted({*ks, *(-k for k in ks)})


@dataclass(frozen=True, eq=False)
class SpeakerScores:
    """What the active-speaker stage measured on one window (see the module docstring)."""

    frame_scores: np.ndarray
    """(T,) float32 smoothed speaking score per frame (the face against its own sound as it is)."""
    lip_features: np.ndarray
    """(T, 128) float32 visual embedding."""
    speaking_score: float
    sync_offset_s: float
    sync_confidence: float
    offset_scores: dict[int, float]
    """Mean score over speech frames per offset (video frames), near and far."""
    speech_frames: int = 0
    """Frames the means are taken over."""
    lip_activity: np.ndarray | None = None
    """(T,) float32 visual-only speaking score per frame (LR-ASD's ``lossV`` head)."""
    energy_db: np.ndarray | None = None
    """(T,) float32 the sound's log energy per video frame (:func:`frame_energy_db`)."""


def chunk_starts(num_frames: int, chunk: int) -> list[int]:
    """Starts of equal chunks of ``min(chunk, num_frames)`` frames covering ``num_frames`` (the last
    one ends at the end; consecutive chunks may overlap)."""
    if num_frames <= chunk:
        return [0]
    n = math.ceil(num_frames / chunk)
    last = num_frames - chunk
    return [round(i * last / (n - 1)) for i in range(n)]


def smooth(x: np.ndarray, frames: int) -> np.ndarray:
    """Moving average over ``frames`` along the last axis, shrinking at the edges (no zero pull)."""
    if frames <= 1 or x.shape[-1] == 0:
        return x
    kernel = np.ones(frames)
    pad = frames // 2
    num = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="full"), -1, x)
    den = np.convolve(np.ones(x.shape[-1]), kernel, mode="full")
    sl = slice(pad, pad + x.shape[-1])
    return (num[..., sl] / den[sl]).astype(np.float32)


def window_mfcc(mfcc: np.ndarray, num_frames: int) -> np.ndarray:
    """Exactly ``4 * num_frames`` MFCC rows: trimmed, or padded by repeating the last row."""
    want = MFCC_PER_FRAME * num_frames
    if len(mfcc) >= want:
        return mfcc[:want]
    if len(mfcc) == 0:
        return np.zeros((want, 13), np.float32)
    return np.concatenate([mfcc, np.repeat(mfcc[-1:], want - len(mfcc), axis=0)])


class ActiveSpeaker:
    """LR-ASD with the settings of one run; call :meth:`score` per window (see module docstring)."""

    def __init__(self, cfg: SpeakerConfig, model: LRASD | None = None) -> None:
        self.cfg = cfg
        self.model = model if model is not None else load_lrasd(cfg.weights)

    def score(
        self, faces: np.ndarray, mfcc: np.ndarray, speech: np.ndarray, energy_db: np.ndarray
    ) -> SpeakerScores:
        """One window: ``faces`` uint8 (T, 112, 112), ``mfcc`` (>= ~4T, 13), ``speech`` (T,) bool,
        ``energy_db`` (T,) the sound's log energy per frame (:func:`frame_energy_db`).

        Runs on ``threads`` torch threads and gives the process its own thread count back
        afterwards (curating in-process must not slow down whatever runs next, e.g. training)."""
        with torch_threads(self.cfg.threads):
            return self._score(faces, mfcc, speech, energy_db)

    @torch.inference_mode()
    def _score(
        self, faces: np.ndarray, mfcc: np.ndarray, speech: np.ndarray, energy_db: np.ndarray
    ) -> SpeakerScores:
        cfg = self.cfg
        t = len(faces)
        mf = window_mfcc(np.asarray(mfcc, np.float32), t)
        near, far = cfg.near_frames, cfg.far_frames
        offsets = sorted({*near, *far})
        video = self.model.visual_embed(torch.from_numpy(np.ascontiguousarray(faces))[None])
        audio = circular_audio_embed(self.model, mf, offsets)  # (offsets, T, 128)
        chunk = max(1, round(cfg.chunk_s * FPS))
        starts = chunk_starts(t, chunk)
        size = min(chunk, t)
        a_chunks = torch.cat(
            [audio[:, s : s + size] for s in starts]
        )  # (chunks*offsets, size, 128)
        v_chunks = torch.cat([video[:, s : s + size].expand(len(offsets), -1, -1) for s in starts])
        logits = self.model.logits(self.model.backend(a_chunks, v_chunks))[..., 1]
        logits = logits.reshape(len(starts), len(offsets), size).numpy()
        total = np.zeros((len(offsets), t), np.float64)
        count = np.zeros(t, np.float64)
        for i, s in enumerate(starts):
            total[:, s : s + size] += logits[i]
            count[s : s + size] += 1
        frame = smooth((total / count).astype(np.float32), cfg.smooth_frames)
        mask = np.asarray(speech, bool)[:t]
        if len(mask) < t:
            mask = np.pad(mask, (0, t - len(mask)))
        if not mask.any():
            mask = np.ones(t, bool)
        means = frame[:, mask].mean(axis=1)
        by_offset = {k: float(m) for k, m in zip(offsets, means, strict=True)}
        lips = self.model.visual_scores(video)[0].numpy().astype(np.float32)
        energy = np.asarray(energy_db, np.float32)
        if energy.shape != (t,):
            raise ValueError(f"energy_db must have one value per frame ({t},), got {energy.shape}")
        confidence, offset_s = sync_measure(by_offset, far)
        confidence += cfg.lip_energy_weight * correlation(lips, energy)
        return SpeakerScores(
            frame_scores=frame[offsets.index(0)],
            lip_features=video[0].numpy().astype(np.float32),
            speaking_score=by_offset[0],
            sync_offset_s=offset_s,
            sync_confidence=confidence,
            offset_scores=by_offset,
            speech_frames=int(mask.sum()),
            lip_activity=lips,
            energy_db=energy,
        )


def frame_energy_db(audio: np.ndarray, num_frames: int, sample_rate_hz: int = 16000) -> np.ndarray:
    """The sound's log energy (dB re full scale) in each of ``num_frames`` video frames at 25 fps
    (float32, (num_frames,)); samples missing at the end count as silence."""
    hop = round(sample_rate_hz / FPS)
    x = np.zeros(num_frames * hop, np.float32)
    a = np.asarray(audio, np.float32)[: len(x)]
    x[: len(a)] = a
    return (10.0 * np.log10(frame_powers(x, hop) + 1e-10)).astype(np.float32)


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two equal-length series; 0 when either is constant or empty."""
    x = np.asarray(x, np.float64) - np.mean(x) if len(x) else np.zeros(0)
    y = np.asarray(y, np.float64) - np.mean(y) if len(y) else np.zeros(0)
    den = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 1e-12 else 0.0


AUDIO_CONTEXT_FRAMES = 8
"""Frames of wrapped-around MFCCs on each side of a window for :func:`circular_audio_embed`: more
than the audio encoder's receptive field (about 6 frames), so the window's embedding is exactly
that of a circular signal."""


def circular_audio_embed(model: LRASD, mfcc: np.ndarray, offsets: list[int]) -> torch.Tensor:
    """LR-ASD's audio embedding of the window's MFCCs rolled by each offset (video frames), in ONE
    encoder pass: the encoder runs once on the window treated as a circular signal (wrapped-around
    context on both sides), and a roll of 4 MFCC rows is then a roll of one embedding frame (the
    encoder's convolutions and its two stride-2 poolings commute with it). Equal, for every offset,
    to encoding the rolled MFCCs with wrapped-around edges; the audio branch cost no longer grows
    with the number of offsets (it was a third of curation's CPU with 29 offsets).

    ``mfcc`` (4T, 13) float32 -> (len(offsets), T, 128)."""
    t = len(mfcc) // MFCC_PER_FRAME
    ctx = min(AUDIO_CONTEXT_FRAMES, t) * MFCC_PER_FRAME
    wrapped = np.concatenate([mfcc[len(mfcc) - ctx :], mfcc, mfcc[:ctx]])
    pad = ctx // MFCC_PER_FRAME
    base = model.audio_embed(torch.from_numpy(np.ascontiguousarray(wrapped))[None])[
        0, pad : pad + t
    ]
    index = (torch.arange(t)[None, :] + torch.tensor(offsets)[:, None]) % t
    return base[index]


def sync_measure(by_offset: dict[int, float], grid: list[int]) -> tuple[float, float]:
    """(sync confidence, sync offset in s) from mean scores per offset (see the module docstring)."""
    best = max(by_offset, key=lambda k: (by_offset[k], -abs(k)))
    values = np.array([by_offset[k] for k in grid])
    spread = max(float(values.std()), 1e-3)
    return (by_offset[0] - float(values.mean())) / spread, best / FPS


def pooled_components(
    scores: list[SpeakerScores], cfg: SpeakerConfig
) -> list[tuple[float, float, float]]:
    """(offset contrast, lip-energy correlation, sync offset in s) of each window from its own and
    its ``context_windows`` neighbours' scores on each side (windows of one span: the same face
    track, consecutive): the offset scores weighted by their speech frames, the correlation over
    their frames joined (0 when a window has no per-frame series)."""
    out = []
    for i in range(len(scores)):
        near = scores[max(0, i - cfg.context_windows) : i + cfg.context_windows + 1]
        weight = sum(max(1, s.speech_frames) for s in near)
        pooled = {
            k: sum(s.offset_scores[k] * max(1, s.speech_frames) for s in near) / weight
            for k in scores[i].offset_scores
        }
        contrast, offset_s = sync_measure(pooled, cfg.far_frames)
        r = 0.0
        if all(s.lip_activity is not None and s.energy_db is not None for s in near):
            r = correlation(
                np.concatenate([s.lip_activity for s in near]),  # type: ignore[misc]
                np.concatenate([s.energy_db for s in near]),  # type: ignore[misc]
            )
        out.append((contrast, r, offset_s))
    return out


def pooled_sync(scores: list[SpeakerScores], cfg: SpeakerConfig) -> list[tuple[float, float]]:
    """Sync confidence (offset contrast + ``lip_energy_weight`` x correlation) and offset of each
    window, pooled with its neighbours (:func:`pooled_components`; see the module docstring)."""
    return [(c + cfg.lip_energy_weight * r, off) for c, r, off in pooled_components(scores, cfg)]
