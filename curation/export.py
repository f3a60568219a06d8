"""Export: kept clips -> one media shard per source, plus its segments, clips and sources rows.

Contract:

- input: a source's :class:`manifests.SourceRecord`, all its :class:`manifests.SegmentRecord` rows, and
  its kept clips (:class:`KeptClip`: 16 kHz audio, the 25 fps face track, crops, optional embeddings);
- output: :func:`build_outputs` makes the :class:`manifests.ClipRecord` rows and media rows (pure);
  :func:`write_source_shards` writes ``media/<shard>``, ``segments/<shard>``, ``clips/<shard>`` and then
  ``sources/<shard>`` last, each atomically: a ``sources`` shard exists only when everything else of
  that source is complete, so it is the "done" marker a rerun checks; a failed source has its
  ``sources`` shard only (readers find no ``segments`` / ``clips`` shard for it);
- failures: only systemic ones (unwritable output) raise.

Ids (stable across reruns): a segment's id and a kept clip's id are both
``<source_id>-<start in ms, 8 digits>-<end in ms, 8 digits>`` (times in the source).

Split (by source, never by clip, so no speaker leaks across splits): ``u`` = the first 8 bytes of
SHA-256 of ``<split_salt>:<source_id>`` read as a fraction of 2^64; ``u < test_ratio`` -> test,
``u < test_ratio + val_ratio`` -> val, else train. Defaults: 90 % train, 5 % val, 5 % test. An AVSpeech
row's source id carries the segment start, so the split is keyed on the YouTube id part instead
(all rows of one video land in the same split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avforge.core.config import ConfigError, check_range
from avforge.core.ids import hash_split
from curation.crops import encode_crops
from manifests.io import shard_path, write_records
from manifests.media import FaceTrack, MediaRecord, write_media_shard
from manifests.schema import (
    ClipRecord,
    SampleFormat,
    SegmentRecord,
    SourceKind,
    SourceRecord,
    SourceStatus,
    Split,
)


@dataclass(frozen=True)
class ExportConfig:
    """How kept clips are written (the ``export`` config section)."""

    crop_size: int = 112
    """Side of the aligned face crops (px)."""
    jpeg_quality: int = 90
    store_crops: bool = True
    store_embeddings: bool = True
    """Store per-frame face embeddings when the detector makes them (insightface)."""
    store_voice_embeddings: bool = True
    """Compute and store each kept clip's speaker embedding (``curation.voice``, 256 float16: 512 B
    a clip), which the corpus-level split pass (``avforge split``) clusters into pseudo-speakers."""
    store_lip_features: bool = True
    """Store the active-speaker network's per-frame visual embedding (128 float16 a frame: 6.4 KB
    per second of clip), a lip-motion face stream for training."""
    sample_format: SampleFormat = SampleFormat.PCM16
    val_ratio: float = 0.05
    test_ratio: float = 0.05
    split_salt: str = "avforge-split-v1"
    """Changing it reshuffles the split of every source."""

    def __post_init__(self) -> None:
        check_range(self, "crop_size", 16, 1024)
        check_range(self, "jpeg_quality", 10, 100)
        check_range(self, "val_ratio", 0.0, 1.0)
        check_range(self, "test_ratio", 0.0, 1.0)
        if self.val_ratio + self.test_ratio > 1.0:
            raise ConfigError(
                f"val_ratio + test_ratio must be <= 1, got {self.val_ratio + self.test_ratio}",
                "val_ratio",
            )


@dataclass(frozen=True, eq=False)
class KeptClip:
    """A kept clip's data, ready to export."""

    start_s: float
    end_s: float
    audio: np.ndarray
    """float32 (num_samples,) at ``sample_rate_hz``."""
    sample_rate_hz: int
    track: FaceTrack
    crops: np.ndarray | None
    """uint8 (num_frames, size, size, 3) RGB, zeros where the face is not present."""
    embeddings: np.ndarray | None
    snr_db: float | None
    sync_score: float | None
    face_x: float | None = None
    """Face centre at ``start_s``, 0..1 of the frame width."""
    face_y: float | None = None
    speaking_score: float | None = None
    speaking_scores: np.ndarray | None = None
    """(num_frames,) float32 active-speaker score per frame."""
    lip_features: np.ndarray | None = None
    """(num_frames, 128) float32 LR-ASD visual embedding."""
    voice_embedding: np.ndarray | None = None
    """(256,) float32 speaker embedding of ``audio`` (``curation.voice``)."""


def window_id(source_id: str, start_s: float, end_s: float) -> str:
    """Stable id of a window of a source: ``<source_id>-<start ms:08d>-<end ms:08d>``."""
    return f"{source_id}-{round(start_s * 1000):08d}-{round(end_s * 1000):08d}"


def split_key(source_id: str, kind: SourceKind) -> str:
    """The part of a source id that decides its split (the YouTube id for AVSpeech rows)."""
    if kind == SourceKind.AVSPEECH and "_" in source_id:
        return source_id.rsplit("_", 1)[0]
    return source_id


def split_for(key: str, cfg: ExportConfig) -> Split:
    """Deterministic split of a source from its split key (see the module docstring): the one rule
    of :func:`avforge.core.ids.hash_split`."""
    return hash_split(key, val_ratio=cfg.val_ratio, test_ratio=cfg.test_ratio, salt=cfg.split_salt)


def build_outputs(
    source: SourceRecord, kept: list[KeptClip], shard: str, cfg: ExportConfig
) -> tuple[list[ClipRecord], list[MediaRecord]]:
    """Clip rows and media rows for a source's kept clips (pure; row i of the media shard is clip i)."""
    split = split_for(split_key(source.source_id, source.kind), cfg)
    clips: list[ClipRecord] = []
    media: list[MediaRecord] = []
    for row, k in enumerate(kept):
        cid = window_id(source.source_id, k.start_s, k.end_s)
        crops = None
        if cfg.store_crops and k.crops is not None:
            crops = encode_crops(k.crops, k.track.present, cfg.jpeg_quality)
        emb = k.embeddings if cfg.store_embeddings else None
        lips = k.lip_features if cfg.store_lip_features else None
        media.append(
            MediaRecord(
                media_id=cid,
                sample_rate_hz=k.sample_rate_hz,
                samples=np.asarray(k.audio, np.float32),
                sample_format=cfg.sample_format,
                track=k.track,
                crops_jpeg=crops,
                crop_size=cfg.crop_size if crops is not None else None,
                embeddings=emb,
                speaking_scores=k.speaking_scores,
                lip_features=lips,
                voice_embedding=k.voice_embedding if cfg.store_voice_embeddings else None,
            )
        )
        clips.append(
            ClipRecord(
                clip_id=cid,
                source_id=source.source_id,
                start_s=k.start_s,
                end_s=k.end_s,
                duration_s=round(k.end_s - k.start_s, 6),
                snr_db=k.snr_db,
                num_frames=k.track.num_frames,
                sample_rate_hz=k.sample_rate_hz,
                num_samples=len(k.audio),
                split=split,
                media_shard=shard + ".arrow",
                media_row=row,
                fps=float(k.track.fps),
                speaker_id=None,
                face_x=k.face_x,
                face_y=k.face_y,
                sync_score=k.sync_score,
                speaking_score=k.speaking_score,
                has_crops=crops is not None,
                has_embeddings=emb is not None,
                has_lip_features=lips is not None,
            )
        )
    return clips, media


def write_source_shards(
    corpus: str,
    shard: str,
    source: SourceRecord,
    segments: list[SegmentRecord],
    clips: list[ClipRecord],
    media: list[MediaRecord],
) -> None:
    """Write one source's shards: media, segments, clips, then sources (the done marker) last.

    A failed source (no segments, no clips) gets its ``sources`` shard only: no empty shards."""
    if media:
        write_media_shard(shard_path(corpus, "media", shard), media)
    if segments or source.status != SourceStatus.FAILED:
        write_records(corpus, "segments", shard, segments)
    if clips or source.status != SourceStatus.FAILED:
        write_records(corpus, "clips", shard, clips)
    write_records(corpus, "sources", shard, [source])
