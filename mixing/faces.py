"""Face streams of a mixture: per speaker, 25 fps face crops and/or embeddings aligned to the audio.

Contract: for a recipe with ``n`` speakers and ``V = num_video_frames(T)`` frames (75 per 3 s),
:class:`FaceStreams` returns ``face_mask`` (n, V) bool, ``crops`` (n, V, H, W, 3) uint8 RGB or None, and
``embeddings`` (n, V, D) float32 or None, as the render config asks. Mixture frame ``k`` shows clip
frame ``offset_frames + k - start_frames``; the mask is False (and crop / embedding zeros) before a
speaker starts, past its clip's end, where ``face_present`` is False, and for clips without that
stream. Crops are decoded from the media shard's JPEGs once per clip and process and kept in a
bounded LRU cache (:mod:`mixing.face_cache`, ``RenderConfig.face_cache_mb``), at reduced JPEG scale
when the requested size is at most half the stored one.

Failure modes: a config asking for a stream that no clip of the corpus has raises
:class:`MixingError` when the streams are set up; a corrupt JPEG raises ``ManifestError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from manifests import MediaReader
from manifests.schema import MixtureSpec
from mixing import functional as F
from mixing.config import FaceStream, RenderConfig
from mixing.errors import MixingError
from mixing.face_cache import CropCache


class FaceStreams:
    """Renders the face streams of recipes (see the module docstring)."""

    def __init__(
        self, reader: MediaReader, clips: Mapping[str, Any], config: RenderConfig, corpus: str
    ) -> None:
        self.reader = reader
        self.clips = clips
        self.config = config
        self.corpus = corpus
        self.crop_size_px, self.embedding_dim = self._face_shapes()
        self.crop_cache = (
            None
            if self.crop_size_px is None
            else CropCache(reader, self.crop_size_px, config.face_cache_mb << 20)
        )

    def _face_shapes(self) -> tuple[int | None, int | None]:
        stream = self.config.face_stream
        size = dim = None
        if stream in (FaceStream.CROPS, FaceStream.BOTH):
            size = self.config.face_size_px
            if size is None:
                first = next((m for m in self.clips.values() if m.has_crops), None)
                if first is not None:
                    size = self.reader.table(first.path).column("crop_size")[first.row].as_py()
            if size is None:
                raise MixingError(
                    f"{self.corpus}: face_stream {stream.value} but no clip has face crops"
                )
        if stream in (FaceStream.EMBEDDINGS, FaceStream.BOTH):
            first = next((m for m in self.clips.values() if m.has_embeddings), None)
            if first is None:
                raise MixingError(
                    f"{self.corpus}: face_stream {stream.value} but no clip has embeddings"
                )
            dim = self.reader.table(first.path).column("embedding_dim")[first.row].as_py()
        return size, dim

    def __call__(
        self, spec: MixtureSpec, *, crops_out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(face_mask (n, V) bool, crops (n, V, H, W, 3) uint8 | None, embeddings (n, V, D) | None).

        ``crops_out``: a zero-filled uint8 (n, V, H, W, 3) array (e.g. one item of a batch array)
        to render the crops into instead of a new one; it is returned as the crops."""
        cfg = self.config
        n_frames = F.num_video_frames(
            F.seconds_to_samples(spec.duration_s, cfg.sample_rate_hz), cfg.sample_rate_hz, cfg.fps
        )
        n = len(spec.clip_ids)
        mask = np.zeros((n, n_frames), bool)
        crops = emb = None
        if self.crop_size_px is not None:
            shape = (n, n_frames, self.crop_size_px, self.crop_size_px, 3)
            if crops_out is None:
                crops = np.zeros(shape, np.uint8)
            elif crops_out.shape != shape or crops_out.dtype != np.uint8:
                raise MixingError(
                    f"recipe {spec.mixture_id}: crops_out is {crops_out.dtype} "
                    f"{crops_out.shape}, the crops are uint8 {shape}"
                )
            else:
                crops = crops_out
        if self.embedding_dim is not None:
            emb = np.zeros((n, n_frames, self.embedding_dim), np.float32)
        for i, clip_id in enumerate(spec.clip_ids):
            media = self.clips[clip_id]
            track = self.reader.face_track(media.path, media.row)
            if track is None:
                continue
            first = round(spec.starts_s[i] * cfg.fps)
            clip_first = round(spec.offsets_s[i] * cfg.fps)
            count = max(0, min(n_frames - first, track.num_frames - clip_first))
            if count == 0:
                continue
            present = track.present[clip_first : clip_first + count]
            mask[i, first : first + count] = present
            if crops is not None and media.has_crops:
                frames = self.crop_cache.crops(  # type: ignore[union-attr]
                    media.path, media.row, clip_first, clip_first + count
                )
                placed = crops[i, first : first + frames.shape[0]]
                placed[:] = frames
                placed[~present[: frames.shape[0]]] = 0
            if emb is not None and media.has_embeddings:
                vectors = self.reader.embeddings(media.path, media.row)
                if vectors is not None and vectors.shape[1] == self.embedding_dim:
                    part = vectors[clip_first : clip_first + count].copy()
                    part[~present[: part.shape[0]]] = 0.0
                    emb[i, first : first + part.shape[0]] = part
        if crops is None and emb is None and cfg.face_stream != FaceStream.NONE:
            raise MixingError(f"recipe {spec.mixture_id}: no face stream available")
        return mask, crops, emb
