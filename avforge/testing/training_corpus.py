"""A two-speaker real-speech corpus with held-out utterances, for the training tests.

Speakers ``aew`` (male) and ``axb`` (female) of CMU ARCTIC (``avforge/assets/audio``). Each utterance is
one clip from its own source: utterances 1 and 2 of each speaker are the ``train`` split, utterance 3
is both the ``val`` and the ``test`` split (two clips, one per split, same audio), so evaluation mixes
utterances the model never heard. Faces come from :mod:`avforge.testing.corpus`: a drawn face per speaker
whose mouth opens with the audio envelope (so the visual stream carries real timing information),
and optionally lip features (:func:`avforge.testing.corpus.synthetic_lip_features`: column 0 the clip
frame index, column 1 the clip's media row).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import torch

from avforge.testing.corpus import (
    ASSETS,
    SAMPLES_PER_FRAME,
    SPEAKERS,
    face_crops,
    synthetic_face_track,
    synthetic_lip_features,
    write_shards,
)
from manifests import (
    ClipRecord,
    MediaRecord,
    SourceKind,
    SourceRecord,
    SourceStatus,
    Split,
)
from manifests.schema import MixTask
from mixing.config import FaceStream, MixingConfig
from training import metrics
from training.batch import SeparationBatch
from training.data import MixtureSource, collate, split_config
from training.evaluate import align_to_targets

TINY_AUDIO = {
    "audio_channels": 4,
    "audio_out_channels": 2,
    "audio_layers": 4,
    "lstm_hidden": 8,
    "fc_dim": 8,
}
"""Widths of the smallest audio stream the training tests use (``ModelConfig`` keys): seconds of CPU."""


def tiny_train_dict(
    out: Path, corpus: Path, *, steps: int, data: dict | None = None, trainer: dict | None = None
) -> dict:
    """A ``TrainConfig`` mapping for a seconds-long CPU run of the tiny audio-only model on ``corpus``
    (2-speaker 0.8 s mixtures, batches of 2, a checkpoint every step); ``data`` / ``trainer`` add or
    override keys of those sections."""
    return {
        "out_dir": str(out),
        "seed": 3,
        "model": {"kind": "audio_only", **TINY_AUDIO},
        "optim": {"lr": 1e-3},
        "data": {
            "corpora": [str(corpus)],
            "mixing": {"task": "2s_clean", "duration_s": 0.8},
            "batch_size": 2,
            "num_workers": 0,
            "items_per_epoch": 8,
            "val_items": 2,
            **(data or {}),
        },
        "trainer": {
            "max_steps": steps,
            "checkpoint_every_n_steps": 1,
            "val_every_n_steps": 100,
            "deterministic": True,
            "accelerator": "cpu",
            "log_every_n_steps": 1,
            **(trainer or {}),
        },
    }


TINY_AV = {**TINY_AUDIO, "visual_channels": 8, "visual_layers": 2, "crop_feature_dim": 8}
"""The same with a small visual stream."""

UTTERANCES: dict[str, tuple[str, ...]] = {k: SPEAKERS[k] for k in ("aew", "axb")}
"""Two CMU ARCTIC speakers of :data:`SPEAKERS`, three utterances each."""
SPLITS: tuple[tuple[int, Split], ...] = (
    (0, Split.TRAIN),
    (1, Split.TRAIN),
    (2, Split.VAL),
    (2, Split.TEST),
)


def build_two_speaker_corpus(
    out: Path, *, crop_size_px: int = 24, seed: int = 0, with_lip_features: bool = False
) -> Path:
    """Write the corpus into ``out`` (see the module docstring) and return ``out``."""
    rng = np.random.default_rng(seed)
    media: list[MediaRecord] = []
    clips: list[ClipRecord] = []
    sources: list[SourceRecord] = []
    shard = "clips-00000"
    for s, (speaker, files) in enumerate(UTTERANCES.items()):
        tone = (200, 160, 130) if s == 0 else (150, 190, 220)
        for utt, split in SPLITS:
            audio, rate = soundfile.read(ASSETS / files[utt], dtype="float32")
            assert rate == 16000
            n_frames = audio.shape[0] // SAMPLES_PER_FRAME
            audio = audio[: n_frames * SAMPLES_PER_FRAME]
            track = synthetic_face_track(audio, rng, missing_ratio=0.0, centre=(160.0, 120.0))
            crops = face_crops(audio, track, crop_size_px, tone)
            clip_id = f"{speaker}-u{utt}-{split.value}"
            lips = synthetic_lip_features(audio, len(media)) if with_lip_features else None
            media.append(
                MediaRecord(
                    clip_id,
                    16000,
                    audio,
                    track=track,
                    crops_jpeg=crops,
                    crop_size=crop_size_px,
                    lip_features=lips,
                )
            )
            duration_s = audio.shape[0] / 16000
            clips.append(
                ClipRecord(
                    clip_id=clip_id,
                    source_id=f"src-{clip_id}",
                    start_s=0.0,
                    end_s=duration_s,
                    duration_s=duration_s,
                    snr_db=40.0,
                    num_frames=n_frames,
                    sample_rate_hz=16000,
                    num_samples=audio.shape[0],
                    split=split,
                    media_shard=shard + ".arrow",
                    media_row=len(media) - 1,
                    speaker_id=speaker,
                    has_lip_features=with_lip_features,
                )
            )
            sources.append(
                SourceRecord(
                    source_id=f"src-{clip_id}",
                    url=str(ASSETS / files[utt]),
                    kind=SourceKind.LOCAL,
                    status=SourceStatus.OK,
                    num_segments=1,
                    num_clips=1,
                )
            )
    write_shards(out, shard, media, clips, sources)
    return out


def fixed_mixtures(
    corpus: Path, split: Split, count: int, *, seed: int, duration_s: float = 2.0
) -> SeparationBatch:
    """``count`` clean 2-speaker mixtures of ``split``'s speakers, the same for a given ``seed``
    (audio only): the held-out set of the learning test and the learning-curve benchmark."""
    mixing = split_config(
        MixingConfig(task=MixTask.TWO_SPEAKERS, duration_s=duration_s, seed=seed),
        split,
        FaceStream.NONE,
    )
    source = MixtureSource([str(corpus)], mixing)
    return collate([source.item(0, i) for i in range(count)], FaceStream.NONE)


def mean_si_sdri(
    estimates: torch.Tensor, batch: SeparationBatch, *, aligned: bool = False
) -> float:
    """Mean SI-SDRi (dB) over every speaker of ``batch``; outputs matched to targets by the best
    permutation unless already ``aligned`` (in target order)."""
    if not aligned:
        estimates = align_to_targets(estimates[:, : batch.sources.shape[1]], batch.sources)
    return float(metrics.si_sdr_improvement(estimates, batch.sources, batch.mixture).mean())
