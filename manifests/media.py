"""Media shards: the bulk data (audio, face tracks, crops, embeddings) that manifest rows point to.

One media shard is an uncompressed Arrow IPC file with ``MEDIA_SCHEMA`` rows. Audio is stored as raw
little-endian PCM16 (clips, noise) or float32 (RIRs) in one ``large_binary`` cell per item, so a reader
that memory-maps the file gets a clip's samples as a zero-copy ``numpy`` view and crops it by slicing:
no decoding, no seeking through a container, no per-item file opens (the reader caches open shards).
That is what keeps on-the-fly mixing close to in-memory speed (docs/manifests.md has the numbers).

Face crops are JPEG per frame (a 112x112 crop is ~3 KB instead of 37 KB raw): face streams are read
once per item, so decode cost is small next to the storage saved.

Integrity: every writer stores a CRC-32 of each row's stored audio bytes (``samples_crc32``) and of
its face bytes (``face_crc32``: the cells of :data:`FACE_CHECKSUM_COLUMNS` in that order, each JPEG
crop in frame order); :func:`verify_row` recomputes them and raises
:class:`avforge.core.errors.CorruptCorpusError` naming the shard, the row and the part on a mismatch.
:meth:`MediaReader.audio` checks a row's audio checksum on every read (one CRC pass over the row, next
to the decode); the mixing renderer checks it once per row it caches; ``avforge verify`` checks every
row of every shard. Shards written before checksums existed have no such columns: they read as
before and are reported as "no checksums" (never an error).

Example::

    rec = MediaRecord.from_audio("clip-1", samples, 16000)
    write_media_shard(path, [rec])
    reader = MediaReader()
    audio = reader.audio(path, row=0)          # float32 (num_samples,)
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from avforge.core.errors import CorruptCorpusError
from manifests.io import ManifestError, open_ipc, validate_schema, write_table
from manifests.schema import MEDIA_OPTIONAL_COLUMNS, MEDIA_SCHEMA, SampleFormat

PCM16_SCALE = 32768.0
FACE_CHECKSUM_COLUMNS: tuple[str, ...] = (
    "face_boxes",
    "face_landmarks",
    "face_quality",
    "face_present",
    "face_crops",
    "face_embeddings",
    "speaking_scores",
    "lip_features",
)
"""The face cells ``face_crc32`` covers, in checksum order (``face_crops``: each frame's JPEG)."""
MEDIA_REQUIRED_SCHEMA = pa.schema(
    [f for f in MEDIA_SCHEMA if f.name not in MEDIA_OPTIONAL_COLUMNS],
    metadata=MEDIA_SCHEMA.metadata,
)
"""``MEDIA_SCHEMA`` without its optional (checksum) columns: what every media shard must have."""


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
    voice_embedding: np.ndarray | None = None
    """(dim,) float32 speaker embedding of the clip's audio (``curation.voice``), stored as float16."""

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


def crc32_parts(parts: Iterable[Any]) -> int | None:
    """CRC-32 of the concatenated bytes of ``parts`` (bytes-likes or pyarrow buffers; None parts are
    skipped, a list part counts as its items in order); None when every part is None."""
    crc: int | None = None
    for part in parts:
        if part is None:
            continue
        for piece in part if isinstance(part, list) else (part,):
            if piece is not None:
                crc = zlib.crc32(piece, crc or 0)
    return crc


def _face_cell_parts(table: pa.Table, row: int) -> list[Any]:
    parts: list[Any] = []
    for name in FACE_CHECKSUM_COLUMNS:
        cell = table.column(name)[row]
        if not cell.is_valid:
            parts.append(None)
        elif name == "face_crops":
            parts.append([v.as_buffer() for v in cell.values if v.is_valid])
        else:
            parts.append(cell.as_buffer())
    return parts


def has_checksums(schema: pa.Schema) -> bool:
    """Whether a media shard with this schema stores checksums (written since they exist)."""
    return all(schema.get_field_index(name) >= 0 for name in ("samples_crc32", "face_crc32"))


def validate_media_schema(path: str, schema: pa.Schema) -> None:
    """:class:`ManifestError` unless ``schema`` is a media shard's of this schema version: every
    required column, and the checksum columns with their types when present."""
    validate_schema(path, schema, MEDIA_REQUIRED_SCHEMA)
    for name in MEDIA_OPTIONAL_COLUMNS:
        idx = schema.get_field_index(name)
        want = MEDIA_SCHEMA.field(name).type
        if idx >= 0 and not schema.field(idx).type.equals(want):
            raise ManifestError(
                path, f"column {name!r} has type {schema.field(idx).type}, expected {want}"
            )


def verify_row(path: str, table: pa.Table, row: int, *, faces: bool = True) -> bool:
    """Recompute row ``row``'s checksums (audio, and face bytes when ``faces``) and compare them with
    the stored ones. Returns False when the shard has no checksums (nothing to compare), True when
    they match; raises :class:`CorruptCorpusError` naming ``path``, the row and the part otherwise."""
    if not has_checksums(table.schema):
        return False
    stored = table.column("samples_crc32")[row].as_py()
    if stored is not None:
        got = zlib.crc32(table.column("samples")[row].as_buffer())
        if got != stored:
            raise _mismatch(path, table, row, "audio (samples)", stored, got)
    if faces:
        stored_face = table.column("face_crc32")[row].as_py()
        got_face = crc32_parts(_face_cell_parts(table, row))
        if stored_face != got_face:
            raise _mismatch(path, table, row, "face data", stored_face, got_face)
    return True


def _mismatch(
    path: str, table: pa.Table, row: int, part: str, stored: int | None, got: int | None
) -> CorruptCorpusError:
    media_id = table.column("media_id")[row].as_py()

    def fmt(v: int | None) -> str:
        return "none" if v is None else f"{v:08x}"

    return CorruptCorpusError(
        f"{path}: row {row} ({media_id}): {part} checksum mismatch (stored {fmt(stored)}, "
        f"computed {fmt(got)}): the media shard is corrupt; restore it or re-curate its sources"
    )


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
        cols["samples_crc32"].append(zlib.crc32(cols["samples"][-1]))
        cols["face_crc32"].append(crc32_parts(cols[c][-1] for c in FACE_CHECKSUM_COLUMNS))
        ve = r.voice_embedding
        cols["voice_embedding"].append(
            None if ve is None else np.asarray(ve).astype("<f2").tobytes()
        )
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
    worker or Dask worker opens its own). With ``verify`` (the default) :meth:`audio` checks the
    row's audio checksum (:func:`verify_row`) before returning samples.
    """

    def __init__(self, max_open: int = 256, *, verify: bool = True) -> None:
        self.max_open = max_open
        self.verify = verify
        self._open: OrderedDict[str, pa.Table] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"max_open": self.max_open, "verify": self.verify}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_open"], verify=state.get("verify", True))  # type: ignore[misc]

    def table(self, path: str) -> pa.Table:
        with self._lock:
            table = self._open.get(path)
            if table is not None:
                self._open.move_to_end(path)
                return table
        table = open_ipc(path)
        validate_media_schema(path, table.schema)
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
        """Samples ``start:stop`` of row ``row`` as float32 (num_samples,); with ``verify``, a row
        whose audio checksum does not match raises :class:`CorruptCorpusError`."""
        fmt = SampleFormat(self._cell(path, row, "sample_format").as_py())
        if self.verify:
            verify_row(path, self.table(path), row, faces=False)
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

    def voice_embedding(self, path: str, row: int) -> np.ndarray | None:
        """(dim,) float32 speaker embedding, or None (not computed, or a shard without the column)."""
        if self.table(path).schema.get_field_index("voice_embedding") < 0:
            return None
        raw = self._cell(path, row, "voice_embedding").as_py()
        return None if raw is None else np.frombuffer(raw, "<f2").astype(np.float32)

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
