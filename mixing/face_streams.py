"""Face streams of a mixture: per speaker, 25 fps face crops, embeddings or lip features aligned to
the audio.

Contract: for a recipe with ``n`` speakers and ``V = num_video_frames(T)`` frames (75 per 3 s),
:class:`FaceStreams` returns :class:`FaceFrames`: ``mask`` (n, V) bool, ``crops`` (n, V, H, W, 3)
uint8 RGB or None, ``embeddings`` (n, V, D) float32 or None and ``lips`` (n, V, D_lip) float32 or
None (the LR-ASD lip features curation stores, ``face_stream: lips``), as the render config asks.
Mixture frame ``k`` shows clip frame ``offset_frames + k - start_frames`` in every stream; the mask is
False (and crop / embedding / lip feature zeros) before a speaker starts, past its clip's end, where
``face_present`` is False, and for clips without that stream. Lip features are read as a slice of
the memory-mapped float16 cell (only the mixture's frames are converted). Crops are decoded from the
media shard's JPEGs once per clip and process and kept in a bounded LRU cache
(:mod:`mixing.face_cache`, ``RenderConfig.face_cache_mb``), at reduced JPEG scale when the requested
size is at most half the stored one.

Failure modes: a config asking for a stream that no clip of the corpus has raises
:class:`MixingError` when the streams are set up, and so does a clip whose lip features have
another width than the corpus's first; a corrupt JPEG, or a clip whose manifest row says it has lip
features while its media row has none, raises ``ManifestError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from manifests import ManifestError, MediaReader
from manifests.schema import MixtureSpec
from mixing import functional as F
from mixing.config import FaceStream, RenderConfig
from mixing.errors import MixingError
from mixing.face_cache import CropCache


def _out_array(
    out: np.ndarray | None, shape: tuple[int, ...], dtype: type, recipe: str, what: str
) -> np.ndarray:
    """``out`` when it has ``shape`` and ``dtype``, a new zero array when it is None; else an error."""
    if out is None:
        return np.zeros(shape, dtype)
    if out.shape != shape or out.dtype != dtype:
        raise MixingError(
            f"recipe {recipe}: {what}_out is {out.dtype} {out.shape}, the {what} are "
            f"{np.dtype(dtype)} {shape}"
        )
    return out


class FaceFrames(NamedTuple):
    """The face streams of one recipe (see the module docstring for shapes and alignment)."""

    mask: np.ndarray
    crops: np.ndarray | None
    embeddings: np.ndarray | None
    lips: np.ndarray | None


def lip_rows(reader: MediaReader, path: str, row: int) -> np.ndarray:
    """A media row's lip features as a read-only float16 (num_frames, D) view of the shard (no copy
    when the shard is memory-mapped); :class:`ManifestError` when the row has none."""
    table = reader.table(path)
    if not 0 <= row < table.num_rows:
        raise ManifestError(path, f"row {row} out of range ({table.num_rows} rows)")
    cell = table.column("lip_features")[row]
    dim = table.column("lip_dim")[row].as_py()
    if not cell.is_valid or not dim:
        raise ManifestError(path, f"row {row} has no lip features")
    return np.frombuffer(cell.as_buffer(), "<f2").reshape(-1, dim)


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
        self.lip_dim = self._lip_dim()
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

    def _lip_dim(self) -> int | None:
        if self.config.face_stream != FaceStream.LIPS:
            return None
        first = next((m for m in self.clips.values() if m.has_lip_features), None)
        if first is None:
            raise MixingError(
                f"{self.corpus}: face_stream lips but no clip has lip features "
                "(has_lip_features is false in every clips manifest row; curate with "
                "speaker.enabled and export.store_lip_features on)"
            )
        return int(self.reader.table(first.path).column("lip_dim")[first.row].as_py())

    def __call__(
        self,
        spec: MixtureSpec,
        *,
        crops_out: np.ndarray | None = None,
        lips_out: np.ndarray | None = None,
    ) -> FaceFrames:
        """The recipe's :class:`FaceFrames`.

        ``crops_out``: a zero-filled uint8 (n, V, H, W, 3) array (e.g. one item of a batch array)
        to render the crops into instead of a new one; it is returned as the crops. ``lips_out``:
        the same for the lip features, a zero-filled float32 (n, V, D_lip) array."""
        cfg = self.config
        n_frames = F.num_video_frames(
            F.seconds_to_samples(spec.duration_s, cfg.sample_rate_hz), cfg.sample_rate_hz, cfg.fps
        )
        n = len(spec.clip_ids)
        mask = np.zeros((n, n_frames), bool)
        crops = emb = None
        if self.crop_size_px is not None:
            shape = (n, n_frames, self.crop_size_px, self.crop_size_px, 3)
            crops = _out_array(crops_out, shape, np.uint8, spec.mixture_id, "crops")
        if self.embedding_dim is not None:
            emb = np.zeros((n, n_frames, self.embedding_dim), np.float32)
        lips = None
        if self.lip_dim is not None:
            shape = (n, n_frames, self.lip_dim)
            lips = _out_array(lips_out, shape, np.float32, spec.mixture_id, "lips")
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
            if lips is not None and media.has_lip_features:
                rows = lip_rows(self.reader, media.path, media.row)
                if rows.shape[1] != self.lip_dim:
                    raise MixingError(
                        f"recipe {spec.mixture_id}: clip {clip_id!r} has {rows.shape[1]}-d lip "
                        f"features, the corpus's first clip with them has {self.lip_dim}-d ones"
                    )
                part = rows[clip_first : clip_first + count]
                placed = lips[i, first : first + part.shape[0]]
                placed[:] = part  # float16 -> float32, only the mixture's frames
                placed[~present[: part.shape[0]]] = 0.0
        if crops is None and emb is None and lips is None and cfg.face_stream != FaceStream.NONE:
            raise MixingError(f"recipe {spec.mixture_id}: no face stream available")
        return FaceFrames(mask, crops, emb, lips)
