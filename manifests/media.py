"""Media shards: the bulk data (audio, face tracks, crops, embeddings) that manifest rows point to.

One media shard is an uncompressed Arrow IPC file with ``MEDIA_SCHEMA`` rows. Audio is stored as raw
little-endian PCM16 (clips, noise) or float32 (RIRs) in one ``large_binary`` cell per item, so a reader
that memory-maps the file gets a clip's samples as a zero-copy ``numpy`` view and crops it by slicing:
no decoding, no seeking through a container, no per-item file opens (the reader caches open shards).
That is what keeps on-the-fly mixing close to in-memory speed (docs/manifests.md has the numbers).

Face crops are JPEG per frame (a 112x112 crop is ~3 KB instead of 37 KB raw): face streams are read
once per item, so decode cost is small next to the storage saved.

Example::

    rec = MediaRecord.from_audio("clip-1", samples, 16000)
    write_media_shard(path, [rec])
    reader = MediaReader()
    audio = reader.audio(path, row=0)          # float32 (num_samples,)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from manifests.io import ManifestError, open_ipc, validate_schema, write_table
from manifests.schema import MEDIA_SCHEMA, SampleFormat

PCM16_SCALE = 32768.0


@dataclass(frozen=True)
class FaceTrack:
    """A face track at ``fps`` frames per second, aligned with the clip's audio.

    Shapes: ``boxes`` (n, 4) float32 x0, y0, x1, y1 in source pixels; ``landmarks`` (n, 5, 2) float32
    or None; ``quality`` (n,) float32 in 0..1; ``present`` (n,) bool (False where the face was missing
    or dropped for quality; boxes there are interpolated).
    """

    fps: float
    boxes: np.ndarray
    quality: np.ndarray
    present: np.ndarray
    landmarks: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.boxes.shape[0])


@dataclass(frozen=True)
class MediaRecord:
    """One row of a media shard (see module docstring)."""

    media_id: str
    sample_rate_hz: int
    samples: np.ndarray
    """(num_samples,) float32 in -1..1 (stored as PCM16 unless ``sample_format`` is float32)."""
    sample_format: SampleFormat = SampleFormat.PCM16
    track: FaceTrack | None = None
    crops_jpeg: list[bytes] | None = None
    crop_size: int | None = None
    embeddings: np.ndarray | None = None
    """(num_frames, dim) float32, stored as float16."""
    speaking_scores: np.ndarray | None = None
    """(num_frames,) float32 active-speaker score per frame (LR-ASD logit, > 0 speaking)."""
    lip_features: np.ndarray | None = None
    """(num_frames, dim) float32 lip-motion features (LR-ASD visual embedding), stored as float16."""

    @classmethod
    def from_audio(
        cls,
        media_id: str,
        samples: np.ndarray,
        sample_rate_hz: int,
        sample_format: SampleFormat = SampleFormat.PCM16,
    ) -> MediaRecord:
        return cls(media_id, sample_rate_hz, np.asarray(samples, np.float32), sample_format)


def encode_samples(samples: np.ndarray, sample_format: SampleFormat) -> bytes:
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"media audio must be mono (num_samples,), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("media audio contains NaN or inf")
    if sample_format == SampleFormat.PCM16:
        return np.clip(np.round(x * PCM16_SCALE), -32768, 32767).astype("<i2").tobytes()
    return x.astype("<f4").tobytes()


def decode_samples(buf: Any, sample_format: SampleFormat | str) -> np.ndarray:
    """Raw cell bytes -> float32 samples. ``buf`` may be a pyarrow buffer (zero-copy view)."""
    if SampleFormat(sample_format) == SampleFormat.PCM16:
        return np.frombuffer(buf, dtype="<i2").astype(np.float32) / PCM16_SCALE
    return np.frombuffer(buf, dtype="<f4")


def media_records_to_table(records: list[MediaRecord]) -> pa.Table:
    cols: dict[str, list[Any]] = {f.name: [] for f in MEDIA_SCHEMA}
    for r in records:
        t = r.track
        cols["media_id"].append(r.media_id)
        cols["sample_rate_hz"].append(int(r.sample_rate_hz))
        cols["sample_format"].append(SampleFormat(r.sample_format).value)
        cols["samples"].append(encode_samples(r.samples, r.sample_format))
        cols["fps"].append(None if t is None else float(t.fps))
        cols["face_boxes"].append(None if t is None else t.boxes.astype("<f4").tobytes())
        lm = None if t is None or t.landmarks is None else t.landmarks.astype("<f4").tobytes()
        cols["face_landmarks"].append(lm)
        cols["face_quality"].append(None if t is None else t.quality.astype("<f4").tobytes())
        cols["face_present"].append(None if t is None else t.present.astype(np.uint8).tobytes())
        cols["face_crops"].append(r.crops_jpeg)
        cols["crop_size"].append(r.crop_size)
        emb = r.embeddings
        cols["face_embeddings"].append(None if emb is None else emb.astype("<f2").tobytes())
        cols["embedding_dim"].append(None if emb is None else int(emb.shape[1]))
        sc = r.speaking_scores
        cols["speaking_scores"].append(None if sc is None else sc.astype("<f4").tobytes())
        lip = r.lip_features
        cols["lip_features"].append(None if lip is None else lip.astype("<f2").tobytes())
        cols["lip_dim"].append(None if lip is None else int(lip.shape[1]))
    arrays = []
    for f in MEDIA_SCHEMA:
        if f.name == "sample_format":
            arrays.append(pa.array(cols[f.name], pa.string()).dictionary_encode().cast(f.type))
        else:
            arrays.append(pa.array(cols[f.name], type=f.type))
    return pa.Table.from_arrays(arrays, schema=MEDIA_SCHEMA)


def write_media_shard(path: str, records: list[MediaRecord]) -> None:
    """Write media records to ``path`` atomically; row i is ``records[i]``."""
    write_table(path, media_records_to_table(records))


class MediaReader:
    """Reads rows of media shards, keeping up to ``max_open`` shards open (memory-mapped).

    Thread-safe; cheap to pickle (open shards are not carried across processes: each DataLoader
    worker or Dask worker opens its own).
    """

    def __init__(self, max_open: int = 256) -> None:
        self.max_open = max_open
        self._open: OrderedDict[str, pa.Table] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"max_open": self.max_open}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_open"])  # type: ignore[misc]

    def table(self, path: str) -> pa.Table:
        with self._lock:
            table = self._open.get(path)
            if table is not None:
                self._open.move_to_end(path)
                return table
        table = open_ipc(path)
        validate_schema(path, table.schema, MEDIA_SCHEMA)
        with self._lock:
            self._open[path] = table
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)
        return table

    def _cell(self, path: str, row: int, column: str) -> Any:
        table = self.table(path)
        if not 0 <= row < table.num_rows:
            raise ManifestError(path, f"row {row} out of range (shard has {table.num_rows} rows)")
        return table.column(column)[row]

    def audio(self, path: str, row: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``start:stop`` of row ``row`` as float32 (num_samples,)."""
        fmt = SampleFormat(self._cell(path, row, "sample_format").as_py())
        buf = self._cell(path, row, "samples").as_buffer()
        width = 2 if fmt == SampleFormat.PCM16 else 4
        total = buf.size // width
        stop = total if stop is None else min(stop, total)
        start = max(0, min(start, stop))
        return decode_samples(buf.slice(start * width, (stop - start) * width), fmt)

    def num_samples(self, path: str, row: int) -> int:
        fmt = SampleFormat(self._cell(path, row, "sample_format").as_py())
        return self._cell(path, row, "samples").as_buffer().size // (
            2 if fmt == SampleFormat.PCM16 else 4
        )

    def face_track(self, path: str, row: int) -> FaceTrack | None:
        fps = self._cell(path, row, "fps").as_py()
        if fps is None:
            return None
        boxes = np.frombuffer(self._cell(path, row, "face_boxes").as_py(), "<f4").reshape(-1, 4)
        lm_raw = self._cell(path, row, "face_landmarks").as_py()
        landmarks = None if lm_raw is None else np.frombuffer(lm_raw, "<f4").reshape(-1, 5, 2)
        quality = np.frombuffer(self._cell(path, row, "face_quality").as_py(), "<f4")
        present = np.frombuffer(self._cell(path, row, "face_present").as_py(), np.uint8) > 0
        return FaceTrack(fps, boxes, quality, present, landmarks)

    def face_crops(
        self, path: str, row: int, start: int = 0, stop: int | None = None
    ) -> np.ndarray:
        """Decoded crops ``start:stop`` as uint8 (n, size, size, 3) RGB; missing frames are zeros."""
        import cv2

        cell = self._cell(path, row, "face_crops")
        size = self._cell(path, row, "crop_size").as_py()
        if not cell.is_valid or size is None:
            raise ManifestError(path, f"row {row} has no face crops")
        frames = cell.values
        n = len(frames)
        stop = n if stop is None else min(stop, n)
        out = np.zeros((max(0, stop - start), size, size, 3), np.uint8)
        for i in range(start, stop):
            raw = frames[i].as_py()
            if raw:
                img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
                if img is None:
                    raise ManifestError(path, f"row {row} frame {i}: corrupt JPEG crop")
                out[i - start] = img[:, :, ::-1]
        return out

    def embeddings(self, path: str, row: int) -> np.ndarray | None:
        raw = self._cell(path, row, "face_embeddings").as_py()
        if raw is None:
            return None
        dim = self._cell(path, row, "embedding_dim").as_py()
        return np.frombuffer(raw, "<f2").astype(np.float32).reshape(-1, dim)

    def speaking_scores(self, path: str, row: int) -> np.ndarray | None:
        """(num_frames,) float32 active-speaker score per frame, or None when not stored."""
        raw = self._cell(path, row, "speaking_scores").as_py()
        return None if raw is None else np.frombuffer(raw, "<f4").copy()

    def lip_features(self, path: str, row: int) -> np.ndarray | None:
        """(num_frames, dim) float32 lip-motion features (LR-ASD visual embedding), or None."""
        raw = self._cell(path, row, "lip_features").as_py()
        if raw is None:
            return None
        dim = self._cell(path, row, "lip_dim").as_py()
        return np.frombuffer(raw, "<f2").astype(np.float32).reshape(-1, dim)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """uint8 (h, w, 3) RGB -> JPEG bytes."""
    import cv2

    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
