"""Lhotse import: register an existing Lhotse corpus as audio-only clips or as noise recordings.

Contract:

- input: a Lhotse manifest of cuts or of recordings (``.jsonl``/``.jsonl.gz`` read lazily, or
  ``.json``/``.yaml``; the manifest type is read from the file) whose audio ``lhotse`` can load;
- each cut (a recording stands for one cut over all of it): audio loaded by lhotse
  (``cut.load_audio()``: a ``MonoCut`` gives its one channel, a ``MultiCut`` (a multi-channel
  recording) gives all, which are averaged to mono), resampled to ``sample_rate_hz`` (16 kHz, scipy
  polyphase), clipped to -1..1, stored as PCM16;
- output in corpus folder ``out``, ``clips_per_shard`` items per shard named
  ``lhotse-<clips|noise>-<name>-<nnnnn>`` (``name``: the manifest file's stem unless given):

  - as clips: ``media/`` (audio only, no face track) and ``clips/`` shards of
    :class:`manifests.ClipRecord` with ``has_crops`` False and ``num_frames`` the 25 fps frames the
    audio spans, then one ``sources/lhotse-clips-<name>`` shard (one row per source, kind ``local``, or
    ``url`` for http(s) audio) written last;
  - as noise: ``media/`` and ``noises/`` shards of :class:`manifests.NoiseRecord`;

- ids (stable: same manifest, same ids): clip / noise id = ``id_prefix`` + the cut id (made safe by
  :func:`avforge.interop.naming.safe_name`); source id = ``id_prefix`` + the recording id, so a
  recording's cuts share a source. A cut exported by ``avforge export lhotse`` carries its original
  ``source_id``, ``start_s``, ``end_s``, ``snr_db`` and ``split`` in its supervision's custom fields:
  those are restored, so export -> import gives back the same clips (audio-only);
- speaker and gender: ``speaker_id`` is the first supervision's ``speaker``; ``gender`` its
  ``gender`` (``F`` / ``M`` / ``female`` / ``male`` in any case, see
  :func:`manifests.schema.normalize_gender`), else the speaker's gender in the ``speaker_genders``
  file when given (:func:`read_speaker_genders`: LibriSpeech's ``SPEAKERS.TXT`` and the like), else
  unknown;
- split: ``split`` when given, else the cut's (or its supervision's) custom ``split``, else
  :func:`~avforge.interop.naming.hash_split` of the speaker (of the recording id when there is no
  speaker; of the noise id for noise), so one speaker never spans two splits;
- failures: a cut whose audio cannot be loaded, that is not a single-recording cut (a ``MixedCut``), or
  that is shorter than ``min_duration_s`` becomes an :class:`ImportFailure` (cut id and reason); the
  others are imported. An unreadable manifest (or ``speaker_genders`` file) raises
  :class:`LhotseImportError`.

Example::

    result = import_lhotse("librispeech_cuts_dev-clean.jsonl.gz", "corpus/")
    manifests.read_clips("corpus/")           # result.num_items audio-only clips
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lhotse
import numpy as np
from lhotse import Recording, RecordingSet
from lhotse.audio.utils import AudioLoadingError
from lhotse.cut import Cut, MonoCut, MultiCut

from avforge.core.config import ConfigError, check_range, write_resolved_config
from avforge.core.media import FPS
from avforge.core.signal import resample
from avforge.interop.naming import hash_split, safe_name
from manifests.io import join, shard_path, write_records
from manifests.media import MediaRecord, write_media_shard
from manifests.schema import (
    ClipRecord,
    NoiseKind,
    NoiseRecord,
    SourceKind,
    SourceRecord,
    SourceStatus,
    Split,
    normalize_gender,
)


class ImportTarget(enum.StrEnum):
    """What the imported cuts become."""

    CLIPS = "clips"
    NOISE = "noise"


class LhotseImportError(ValueError):
    """The manifest itself cannot be read (a systemic problem, not a bad cut)."""


@dataclass(frozen=True)
class LhotseImportConfig:
    """How ``avforge import lhotse`` registers a Lhotse corpus."""

    target: ImportTarget = ImportTarget.CLIPS
    sample_rate_hz: int = 16000
    noise_kind: NoiseKind = NoiseKind.NOISE
    """Kind of every imported noise recording (``target`` noise)."""
    split: Split | None = None
    """Force one split for every item (else from the cut, else by hash)."""
    name: str | None = None
    """Shard name part; default: the manifest file's stem (``librispeech_cuts_dev-clean``)."""
    id_prefix: str = ""
    """Prepended to every clip, source and noise id (keeps two imports apart)."""
    clips_per_shard: int = 256
    min_duration_s: float = 0.5
    val_ratio: float = 0.05
    test_ratio: float = 0.05
    split_salt: str = "avforge-split-v1"
    speaker_genders: str | None = None
    """A speaker metadata file giving genders (LibriSpeech's ``SPEAKERS.TXT``, or ``speaker|gender``
    / ``speaker<TAB>gender`` lines), used for cuts whose supervision has a speaker but no gender."""

    def __post_init__(self) -> None:
        for name, kind in (("target", ImportTarget), ("noise_kind", NoiseKind)):
            object.__setattr__(self, name, kind(getattr(self, name)))
        if self.split is not None:
            object.__setattr__(self, "split", Split(self.split))
        check_range(self, "sample_rate_hz", 8000, 48000)
        check_range(self, "clips_per_shard", 1, 100_000)
        check_range(self, "min_duration_s", 0.0, 60.0)
        check_range(self, "val_ratio", 0.0, 1.0)
        check_range(self, "test_ratio", 0.0, 1.0)
        for name in ("name", "id_prefix"):
            value = getattr(self, name)
            if value and safe_name(value) != value:
                raise ConfigError(f"must match [A-Za-z0-9_.-]+, got {value!r}", name)


@dataclass(frozen=True)
class ImportFailure:
    cut_id: str
    reason: str


@dataclass(frozen=True)
class LhotseImportResult:
    """What :func:`import_lhotse` wrote."""

    target: ImportTarget
    num_items: int
    total_duration_s: float
    shards: list[str]
    """Shard names written (media and manifest shards share them)."""
    failures: list[ImportFailure] = field(default_factory=list)


def manifest_name(path: str | Path) -> str:
    """A manifest file's stem without its ``.jsonl.gz``-style suffixes, made safe."""
    base = Path(path).name
    for suffix in (".gz", ".jsonl", ".json", ".yaml", ".yml"):
        base = base.removesuffix(suffix)
    return safe_name(base or "manifest")


def read_cuts(path: str | Path) -> Iterable[Cut]:
    """The cuts of a Lhotse cuts or recordings manifest (lazily for jsonl); raises
    :class:`LhotseImportError` when the file is missing or holds another manifest type."""
    p = str(path)
    if not Path(p).is_file():
        raise LhotseImportError(f"no such Lhotse manifest: {p}")
    try:
        lazy = ".jsonl" in Path(p).name
        manifest = lhotse.load_manifest_lazy(p) if lazy else lhotse.load_manifest(p)
    except (ValueError, KeyError, OSError) as exc:
        raise LhotseImportError(f"cannot read Lhotse manifest {p}: {exc}") from None
    if isinstance(manifest, lhotse.CutSet):
        return manifest
    if isinstance(manifest, RecordingSet):
        return (rec.to_cut() for rec in manifest)
    raise LhotseImportError(f"{p}: expected cuts or recordings, got {type(manifest).__name__}")


def mono_audio(cut: Cut, sample_rate_hz: int) -> np.ndarray:
    """The cut's audio as float32 (n,) mono at ``sample_rate_hz``, clipped to -1..1."""
    audio = np.asarray(cut.load_audio(), np.float32)
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    rate = int(cut.sampling_rate)
    if rate != sample_rate_hz:
        mono = resample(mono, rate, sample_rate_hz, dtype=np.float64)
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


def _custom(cut: Cut) -> dict[str, Any]:
    """The avforge fields a cut carries: its supervision's custom fields, then the cut's own."""
    merged: dict[str, Any] = {}
    if cut.supervisions and cut.supervisions[0].custom:
        merged.update(cut.supervisions[0].custom)
    merged.update(cut.custom or {})
    return merged


def read_speaker_genders(path: str | Path) -> dict[str, str]:
    """speaker id -> ``female`` / ``male`` from a speaker metadata file.

    Lines are ``speaker|gender|...`` (LibriSpeech's ``SPEAKERS.TXT``: ``ID | SEX | SUBSET | MINUTES |
    NAME``, fields padded with spaces) or ``speaker<TAB or spaces>gender ...``; lines starting with ``;``
    or ``#`` and rows whose second field is not a gender (:func:`manifests.schema.normalize_gender`,
    e.g. a header) are skipped. Raises :class:`LhotseImportError` when the file cannot be read or
    names no gender at all.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LhotseImportError(f"cannot read speaker genders {path}: {exc}") from None
    genders: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith((";", "#")):
            continue
        fields = line.split("|") if "|" in line else line.split()
        gender = normalize_gender(fields[1]) if len(fields) > 1 else None
        if gender:
            genders[fields[0].strip()] = gender
    if not genders:
        raise LhotseImportError(
            f"{path}: no speaker genders (expected 'speaker|F' or SPEAKERS.TXT rows)"
        )
    return genders


def _split(cfg: LhotseImportConfig, given: Any, key: str) -> Split:
    if cfg.split is not None:
        return cfg.split
    if given in {s.value for s in Split}:
        return Split(given)
    return hash_split(key, val_ratio=cfg.val_ratio, test_ratio=cfg.test_ratio, salt=cfg.split_salt)


def _origin(cut: MonoCut | MultiCut) -> str:
    rec = cut.recording
    if rec is not None and rec.sources and rec.sources[0].type in {"file", "url"}:
        return str(rec.sources[0].source)
    return f"lhotse:{cut.recording_id}"


def clip_record(
    cut: MonoCut | MultiCut,
    num_samples: int,
    cfg: LhotseImportConfig,
    shard: str,
    row: int,
    speaker_genders: Mapping[str, str] | None = None,
) -> ClipRecord:
    """The clip row of an imported cut (pure; see the module docstring for ids, split and gender)."""
    custom = _custom(cut)
    duration_s = round(num_samples / cfg.sample_rate_hz, 6)
    speaker = cut.supervisions[0].speaker if cut.supervisions else None
    gender = normalize_gender(cut.supervisions[0].gender) if cut.supervisions else None
    if gender is None and speaker is not None:
        gender = (speaker_genders or {}).get(speaker)
    if custom.get("source_id") and custom.get("start_s") is not None:
        source_id = f"{cfg.id_prefix}{custom['source_id']}"
        start_s, end_s = float(custom["start_s"]), float(custom["end_s"])
    else:
        source_id = f"{cfg.id_prefix}{safe_name(cut.recording_id)}"
        start_s, end_s = round(cut.start, 6), round(cut.start + duration_s, 6)
    snr = custom.get("snr_db")
    return ClipRecord(
        clip_id=f"{cfg.id_prefix}{safe_name(cut.id)}",
        source_id=source_id,
        start_s=start_s,
        end_s=end_s,
        duration_s=duration_s,
        snr_db=None if snr is None else float(snr),
        num_frames=int(num_samples * FPS // cfg.sample_rate_hz),
        sample_rate_hz=cfg.sample_rate_hz,
        num_samples=num_samples,
        split=_split(cfg, custom.get("split"), speaker or source_id),
        media_shard=shard + ".arrow",
        media_row=row,
        speaker_id=speaker,
        gender=gender,
        has_crops=False,
    )


def noise_record(
    cut: MonoCut | MultiCut, num_samples: int, cfg: LhotseImportConfig, shard: str, row: int
) -> NoiseRecord:
    """The noise row of an imported cut (pure)."""
    noise_id = f"{cfg.id_prefix}{safe_name(cut.id)}"
    return NoiseRecord(
        noise_id=noise_id,
        kind=cfg.noise_kind,
        duration_s=round(num_samples / cfg.sample_rate_hz, 6),
        sample_rate_hz=cfg.sample_rate_hz,
        num_samples=num_samples,
        split=_split(cfg, _custom(cut).get("split"), noise_id),
        media_shard=shard + ".arrow",
        media_row=row,
        origin=_origin(cut),
    )


def _loaded(
    cuts: Iterable[Cut], cfg: LhotseImportConfig, failures: list[ImportFailure]
) -> Iterator[tuple[MonoCut | MultiCut, np.ndarray]]:
    """(cut, audio) for each importable cut; the others are appended to ``failures``."""
    for cut in cuts:
        if not isinstance(cut, MonoCut | MultiCut):
            failures.append(
                ImportFailure(cut.id, f"{type(cut).__name__} is not a single-recording cut")
            )
            continue
        try:
            audio = mono_audio(cut, cfg.sample_rate_hz)
        except (AudioLoadingError, OSError, RuntimeError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            failures.append(ImportFailure(cut.id, reason))
            continue
        if audio.shape[0] < cfg.min_duration_s * cfg.sample_rate_hz:
            failures.append(ImportFailure(cut.id, f"shorter than {cfg.min_duration_s} s"))
            continue
        yield cut, audio


def _source_rows(
    clips: list[ClipRecord], cuts: dict[str, MonoCut | MultiCut]
) -> list[SourceRecord]:
    """One ``sources`` row per source id of ``clips`` (``cuts``: source id -> one of its cuts)."""
    counts: dict[str, int] = {}
    for c in clips:
        counts[c.source_id] = counts.get(c.source_id, 0) + 1
    rows = []
    for source_id, n in sorted(counts.items()):
        cut = cuts[source_id]
        url = _origin(cut)
        rec: Recording | None = cut.recording
        rows.append(
            SourceRecord(
                source_id=source_id,
                url=url,
                kind=SourceKind.URL
                if url.startswith(("http://", "https://"))
                else SourceKind.LOCAL,
                status=SourceStatus.OK,
                duration_s=None if rec is None else float(rec.duration),
                audio_sample_rate_hz=None if rec is None else int(rec.sampling_rate),
                audio_channels=None if rec is None else rec.num_channels,
                num_segments=n,
                num_clips=n,
            )
        )
    return rows


def import_lhotse(
    manifest: str | Path, out: str, config: LhotseImportConfig | None = None
) -> LhotseImportResult:
    """Register the cuts of Lhotse ``manifest`` in corpus ``out`` (see the module docstring).

    Streams the manifest: memory holds one shard of audio (``clips_per_shard`` items) at a time.
    """
    cfg = config or LhotseImportConfig()
    name = cfg.name or manifest_name(manifest)
    genders = read_speaker_genders(cfg.speaker_genders) if cfg.speaker_genders else None
    failures: list[ImportFailure] = []
    shards: list[str] = []
    all_clips: list[ClipRecord] = []
    source_cuts: dict[str, MonoCut | MultiCut] = {}
    total_s = 0.0
    num_items = 0
    batch: list[tuple[MonoCut | MultiCut, np.ndarray]] = []

    def flush() -> None:
        shard = f"lhotse-{cfg.target.value}-{name}-{len(shards):05d}"
        records: list[ClipRecord] | list[NoiseRecord]
        if cfg.target == ImportTarget.CLIPS:
            records = [
                clip_record(c, len(a), cfg, shard, i, genders) for i, (c, a) in enumerate(batch)
            ]
            all_clips.extend(records)
            for rec, (c, _) in zip(records, batch, strict=True):
                source_cuts.setdefault(rec.source_id, c)
            ids = [r.clip_id for r in records]
        else:
            records = [noise_record(c, len(a), cfg, shard, i) for i, (c, a) in enumerate(batch)]
            ids = [r.noise_id for r in records]
        media = [
            MediaRecord.from_audio(item_id, audio, cfg.sample_rate_hz)
            for item_id, (_, audio) in zip(ids, batch, strict=True)
        ]
        write_media_shard(shard_path(out, "media", shard), media)
        table = "clips" if cfg.target == ImportTarget.CLIPS else "noises"
        write_records(out, table, shard, records)
        shards.append(shard)
        batch.clear()

    for cut, audio in _loaded(read_cuts(manifest), cfg, failures):
        batch.append((cut, audio))
        num_items += 1
        total_s += audio.shape[0] / cfg.sample_rate_hz
        if len(batch) == cfg.clips_per_shard:
            flush()
    if batch:
        flush()
    if all_clips:
        write_records(out, "sources", f"lhotse-clips-{name}", _source_rows(all_clips, source_cuts))
    write_resolved_config(cfg, join(out, "config", f"import_lhotse-{cfg.target.value}-{name}.yaml"))
    return LhotseImportResult(cfg.target, num_items, round(total_s, 6), shards, failures)
