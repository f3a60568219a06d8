"""Lhotse export: a corpus's clips as Lhotse ``RecordingSet`` / ``SupervisionSet`` / ``CutSet`` manifests.

Contract:

- input: a corpus folder (local path or fsspec URL) with ``clips`` and their ``media`` shards;
- output, in folder ``out`` (local): ``audio/<clip id>.wav`` (or ``.flac``), one PCM16 file per clip at
  the clip's sample rate (16 kHz), bit-exact with the media shard's samples; ``face_tracks/``, a Lhotse
  ``NumpyFilesWriter`` store of each clip's 25 fps face boxes; and three manifests readable by
  ``lhotse`` alone (no avforge import needed to load them, their audio or their face arrays):

  - ``recordings.jsonl.gz``: one ``Recording`` per clip (id = clip id, absolute audio path);
  - ``supervisions.jsonl.gz``: one ``SupervisionSegment`` per clip covering all of it, ``speaker`` =
    the clip's ``speaker_id`` (or its ``source_id`` when unknown), ``gender`` when known,
    ``custom`` = ``source_id``,
    ``start_s`` / ``end_s`` (the clip's range in its source), ``snr_db``, ``split``;
  - ``cuts.jsonl.gz``: one ``MonoCut`` per clip with that recording and supervision, ``custom`` =
    ``split`` and ``source_id``, and when the clip has a face track two ``TemporalArray`` custom fields
    (frame shift 1/fps = 0.04 s): ``face_boxes`` (num_frames, 4) float32 x0 y0 x1 y1 in source pixels
    and ``face_present`` (num_frames,) uint8 (0 where the face was missing; boxes there are
    interpolated). Load them with ``cut.load_face_boxes()`` / ``cut.load_face_present()``.

- atomicity: each file is written to a temporary name and renamed, the manifests last, so an export
  killed midway leaves no manifest that points to missing audio; rerunning overwrites the same files;
  the resolved config goes to ``avforge_export.yaml`` next to them.
- failures: a corrupt media shard raises :class:`manifests.ManifestError` (a corpus problem, systemic);
  no clip to export raises :class:`LhotseExportError` and writes nothing.

Example::

    result = export_lhotse("corpus/", "lhotse/")
    cuts = lhotse.CutSet.from_file(result.cuts_path)
"""

from __future__ import annotations

import contextlib
import enum
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import soundfile
from lhotse import (
    CutSet,
    MonoCut,
    NumpyFilesWriter,
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
)
from lhotse.array import TemporalArray
from lhotse.audio import AudioSource

import manifests
from avforge.core.config import write_resolved_config
from avforge.interop.naming import safe_name
from avforge.interop.tables import media_path
from manifests.media import PCM16_SCALE, FaceTrack
from manifests.schema import Split

RECORDINGS_NAME = "recordings.jsonl.gz"
SUPERVISIONS_NAME = "supervisions.jsonl.gz"
CUTS_NAME = "cuts.jsonl.gz"
CONFIG_NAME = "avforge_export.yaml"
"""The resolved :class:`LhotseExportConfig`, written next to the manifests."""


class LhotseExportError(ValueError):
    """Nothing to export: the corpus (or the chosen split) has no clips. Lhotse cannot load an empty
    manifest back (its type is read from the first item), so no files are written."""


class AudioFormat(enum.StrEnum):
    """Container of the exported per-clip audio files (both PCM16, lossless)."""

    WAV = "wav"
    FLAC = "flac"


@dataclass(frozen=True)
class LhotseExportConfig:
    """How ``avforge export lhotse`` writes a corpus."""

    audio_format: AudioFormat = AudioFormat.WAV
    """``wav`` (fastest to read) or ``flac`` (about half the size)."""
    split: Split | None = None
    """Export only the clips of this split (all clips when None)."""
    face_arrays: bool = True
    """Attach the face track as ``face_boxes`` / ``face_present`` temporal arrays."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "audio_format", AudioFormat(self.audio_format))
        if self.split is not None:
            object.__setattr__(self, "split", Split(self.split))


@dataclass(frozen=True)
class LhotseExportResult:
    """Paths written by :func:`export_lhotse` and what they hold."""

    recordings_path: Path
    supervisions_path: Path
    cuts_path: Path
    num_cuts: int
    total_duration_s: float
    num_face_arrays: int
    """Cuts that carry a face track."""


def pcm16(samples: np.ndarray) -> np.ndarray:
    """float32 (n,) in -1..1 -> int16 (n,), the same rounding as avforge's media shards (exact round
    trip for samples read from a PCM16 shard)."""
    return np.clip(np.round(samples * PCM16_SCALE), -32768, 32767).astype(np.int16)


def encode_audio(samples: np.ndarray, sample_rate_hz: int, audio_format: AudioFormat) -> bytes:
    """float32 (n,) mono -> a PCM16 WAV or FLAC file's bytes."""
    buf = io.BytesIO()
    fmt = "WAV" if audio_format == AudioFormat.WAV else "FLAC"
    soundfile.write(buf, pcm16(samples), sample_rate_hz, subtype="PCM_16", format=fmt)
    return buf.getvalue()


def clip_cut(
    clip: dict[str, Any], audio_path: str, num_samples: int, custom: dict[str, TemporalArray]
) -> MonoCut:
    """The Lhotse cut of one ``clips`` row (as ``Table.to_pylist`` gives it) whose audio file holds
    ``num_samples`` samples at the clip's rate; ``custom``: temporal arrays to attach (pure)."""
    clip_id = clip["clip_id"]
    rate = int(clip["sample_rate_hz"])
    duration_s = num_samples / rate
    recording = Recording(
        id=clip_id,
        sources=[AudioSource(type="file", channels=[0], source=audio_path)],
        sampling_rate=rate,
        num_samples=num_samples,
        duration=duration_s,
    )
    supervision = SupervisionSegment(
        id=clip_id,
        recording_id=clip_id,
        start=0.0,
        duration=duration_s,
        channel=0,
        speaker=clip["speaker_id"] or clip["source_id"],
        gender=clip.get("gender"),
        custom={
            "source_id": clip["source_id"],
            "start_s": clip["start_s"],
            "end_s": clip["end_s"],
            "snr_db": clip["snr_db"],
            "split": clip["split"],
        },
    )
    return MonoCut(
        id=clip_id,
        start=0.0,
        duration=duration_s,
        channel=0,
        recording=recording,
        supervisions=[supervision],
        custom={"split": clip["split"], "source_id": clip["source_id"], **custom},
    )


def _face_arrays(
    writer: NumpyFilesWriter, key: str, track: FaceTrack | None
) -> dict[str, TemporalArray]:
    if track is None or track.num_frames == 0:
        return {}
    shift = 1.0 / track.fps
    boxes = writer.store_array(
        f"{key}-boxes",
        np.ascontiguousarray(track.boxes, np.float32),
        frame_shift=shift,
        temporal_dim=0,
    )
    present = writer.store_array(
        f"{key}-present", track.present.astype(np.uint8), frame_shift=shift, temporal_dim=0
    )
    return {"face_boxes": boxes, "face_present": present}  # type: ignore[dict-item]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_lhotse(
    corpus: str, out: str | Path, config: LhotseExportConfig | None = None
) -> LhotseExportResult:
    """Write ``corpus``'s clips as Lhotse manifests and audio files in ``out`` (see the module
    docstring); returns the manifest paths and counts. Streams: memory does not grow with the corpus."""
    config = config or LhotseExportConfig()
    out_dir = Path(out).resolve()
    audio_dir = out_dir / "audio"
    clips = manifests.read_clips(str(corpus))
    if config.split is not None:
        clips = clips.filter(pc.equal(clips["split"].cast("string"), config.split.value))
    if clips.num_rows == 0:
        which = f" of split {config.split.value}" if config.split is not None else ""
        raise LhotseExportError(f"{corpus}: no clips{which} to export")
    audio_dir.mkdir(parents=True, exist_ok=True)
    reader = manifests.MediaReader()
    paths = [out_dir / n for n in (RECORDINGS_NAME, SUPERVISIONS_NAME, CUTS_NAME)]
    tmps = [p.with_name(f".tmp-{uuid.uuid4().hex}-{p.name}") for p in paths]
    num_cuts = num_faces = 0
    total_s = 0.0
    try:
        with contextlib.ExitStack() as stack:
            faces = stack.enter_context(NumpyFilesWriter(str(out_dir / "face_tracks")))
            rec_w, sup_w, cut_w = (
                stack.enter_context(kind.open_writer(str(tmp)))
                for kind, tmp in zip((RecordingSet, SupervisionSet, CutSet), tmps, strict=True)
            )
            for clip in clips.to_pylist():
                shard = media_path(str(corpus), clip["media_shard"])
                samples = reader.audio(shard, clip["media_row"])
                name = safe_name(clip["clip_id"])
                path = audio_dir / f"{name}.{config.audio_format.value}"
                rate = int(clip["sample_rate_hz"])
                _write_atomic(path, encode_audio(samples, rate, config.audio_format))
                track = reader.face_track(shard, clip["media_row"]) if config.face_arrays else None
                arrays = _face_arrays(faces, name, track)
                cut = clip_cut(clip, str(path), len(samples), arrays)
                rec_w.write(cut.recording)
                for supervision in cut.supervisions:
                    sup_w.write(supervision)
                cut_w.write(cut)
                num_cuts += 1
                num_faces += bool(arrays)
                total_s += cut.duration
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in zip(tmps, paths, strict=True):
        os.replace(tmp, path)
    write_resolved_config(config, str(out_dir / CONFIG_NAME))
    return LhotseExportResult(
        *paths,
        num_cuts=num_cuts,
        total_duration_s=round(total_s, 6),
        num_face_arrays=num_faces,
    )
