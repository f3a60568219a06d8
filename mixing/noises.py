"""Noise corpus: register noise / music recordings for mixing (``avforge noises add``).

Input: a folder of audio files (searched recursively; a file under a folder named ``music``, ``noise``
or ``babble`` gets that kind) or a text file with one path or URL per line (any fsspec URL, e.g.
``https://...``; ``#`` starts a comment). Each recording is decoded (soundfile, or ffmpeg for formats
soundfile cannot read), down-mixed to mono, resampled to ``sample_rate_hz`` and truncated to
``max_duration_s``.

Output, in corpus folder ``out``: one media shard ``media/noises-<hash>.arrow`` (PCM16) and one manifest
shard ``noises/noises-<hash>.arrow`` of :class:`manifests.NoiseRecord`. The hash covers the sorted
noise ids of the recordings it registers; a recording already registered in ``out`` is skipped (listed
as known), so registering the same inputs again writes nothing (idempotent). A recording's
``noise_id`` is its file name (slugged) plus a hash of its bytes, so the same file has the same id, and
the same split, wherever it lives (another checkout, mount point or URL); its split is a salted hash of
that id (:func:`split_of`: curation's rule, :func:`avforge.core.ids.hash_split`, with salt
:data:`NOISE_SPLIT_SALT`), so a recording is entirely in one of train / val / test, never split across
them. The split is stored in the recording's manifest row and read from there, never recomputed.

Failure modes: an input that cannot be read or decoded, or is shorter than ``min_duration_s``,
becomes a :class:`NoiseFailure` (origin and reason) in the result; the others are still registered.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import numpy as np
import soundfile

from avforge.core.config import check_range
from avforge.core.ids import hash_split
from avforge.core.signal import resample as resample
from manifests import read_noises
from manifests.io import media_file, shard_path, write_records
from manifests.media import MediaRecord, write_media_shard
from manifests.schema import NoiseKind, NoiseRecord, Split

NOISE_SPLIT_SALT = "noise"
"""Salt of the noise split: :func:`split_of` is ``hash_split(id, salt=NOISE_SPLIT_SALT)``.
Changing it moves newly registered recordings to other splits."""

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aac", ".webm")


@dataclass(frozen=True)
class NoiseConfig:
    """How recordings are registered."""

    sample_rate_hz: int = 16000
    kind: NoiseKind = NoiseKind.NOISE
    """Kind of a recording whose folder does not name one."""
    val_fraction: float = 0.1
    """Share of recordings (by hash of their id) that go to the val split ..."""
    test_fraction: float = 0.1
    """... and to the test split; the rest is train."""
    min_duration_s: float = 0.5
    max_duration_s: float = 600.0
    """Longer recordings are truncated."""

    def __post_init__(self) -> None:
        check_range(self, "sample_rate_hz", 8000, 48000)
        check_range(self, "val_fraction", 0.0, 1.0)
        check_range(self, "test_fraction", 0.0, 1.0 - self.val_fraction)
        check_range(self, "min_duration_s", 0.0)
        check_range(self, "max_duration_s", self.min_duration_s, low_open=True)


@dataclass(frozen=True)
class NoiseFailure:
    """An input that was not registered, and why (one line)."""

    origin: str
    reason: str


@dataclass(frozen=True)
class KnownNoise:
    """An input already registered in the corpus (the same ``noise_id``): its row stands as it is."""

    origin: str
    noise_id: str
    split: Split


@dataclass(frozen=True)
class NoiseAddResult:
    records: list[NoiseRecord]
    """The recordings registered by this call (sorted by id)."""
    failures: list[NoiseFailure]
    known: list[KnownNoise] = field(default_factory=list)
    """Inputs that were registered before; nothing was written for them."""


class NoiseDecodeError(ValueError):
    """A recording could not be decoded."""


def list_inputs(source: str) -> list[str]:
    """Origins named by ``source``: the audio files of a folder (sorted) or the lines of a list file."""
    path = Path(source)
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    with fsspec.open(source, "r") as fh:
        lines = [line.split("#", 1)[0].strip() for line in fh]
    return [line for line in lines if line]


def kind_of(origin: str, default: NoiseKind) -> NoiseKind:
    """The kind named by one of the origin's parent folders, else ``default``."""
    parents = origin.replace("\\", "/").split("/")[:-1]
    for part in reversed(parents):
        if part.lower() in {k.value for k in NoiseKind}:
            return NoiseKind(part.lower())
    return default


def noise_id_of(origin: str, data: bytes) -> str:
    """Stable id: the file stem (slugged) plus a hash of the file's bytes, not of its location (a
    hash of the path gave the same recording other ids, and other splits, on other machines)."""
    stem = posixpath.splitext(posixpath.basename(origin.rstrip("/")))[0]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-").lower()[:40] or "noise"
    return f"{slug}-{hashlib.sha1(data).hexdigest()[:8]}"


def split_of(noise_id: str, *, val_fraction: float, test_fraction: float) -> Split:
    """Split of a recording from a salted hash of its id (deterministic, independent of the other
    inputs): ``hash_split(noise_id, val_ratio=val_fraction, test_ratio=test_fraction,
    salt=NOISE_SPLIT_SALT)``, the rule curation uses for sources (:mod:`avforge.core.ids`)."""
    return hash_split(
        noise_id, val_ratio=val_fraction, test_ratio=test_fraction, salt=NOISE_SPLIT_SALT
    )


def _decode_ffmpeg(data: bytes, sample_rate_hz: int) -> np.ndarray:
    cmd = [
        "ffmpeg",
        "-v",
        "error",
        "-nostdin",
        "-i",
        "pipe:0",
        "-ac",
        "1",
        "-ar",
        str(sample_rate_hz),
    ]
    cmd += ["-f", "f32le", "pipe:1"]
    proc = subprocess.run(cmd, input=data, capture_output=True, check=False, timeout=600)
    if proc.returncode != 0 or not proc.stdout:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise NoiseDecodeError(detail[-1] if detail else "ffmpeg produced no audio")
    return np.frombuffer(proc.stdout, "<f4").copy()


def decode_audio(data: bytes, sample_rate_hz: int) -> np.ndarray:
    """Encoded audio bytes -> mono float32 at ``sample_rate_hz``."""
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        return _decode_ffmpeg(data, sample_rate_hz)
    return resample(samples.mean(axis=1), int(rate), sample_rate_hz)


def read_bytes(origin: str) -> bytes:
    """The encoded bytes of one recording (any fsspec URL)."""
    with fsspec.open(origin, "rb") as fh:
        return fh.read()


def load_noise(data: bytes, config: NoiseConfig) -> np.ndarray:
    """Decode, resample and truncate one recording's bytes."""
    if not data:
        raise NoiseDecodeError("empty file")
    samples = decode_audio(data, config.sample_rate_hz)
    if not np.all(np.isfinite(samples)):
        raise NoiseDecodeError("decoded audio contains NaN or inf")
    limit = round(config.max_duration_s * config.sample_rate_hz)
    return np.clip(samples[:limit], -1.0, 1.0)


def add_noises(
    source: str | list[str],
    out: str,
    config: NoiseConfig | None = None,
    *,
    split: Split | None = None,
    kind: NoiseKind | None = None,
) -> NoiseAddResult:
    """Register the recordings named by ``source`` (folder, list file, or list of origins) in ``out``.

    ``split`` / ``kind`` force one split / kind for all of them (else by hash / by folder name). A
    recording already registered in ``out`` (the same ``noise_id``, that is the same bytes and file
    name) is not registered again: its row, split included, stands, and it is listed in
    ``known``. So registering an overlapping set again neither gives a recording a second split nor
    a second row (which would double its weight in the sampler). Returns the records written (sorted
    by id), the inputs that failed and the known ones.

    Example::

        result = add_noises("noises/", "corpus/")
        [r.noise_id for r in result.records]
    """
    config = config or NoiseConfig()
    origins = list_inputs(source) if isinstance(source, str) else list(source)
    stored = stored_splits(out)
    media: list[MediaRecord] = []
    pending: list[tuple[str, str, int]] = []
    failures: list[NoiseFailure] = []
    known: list[KnownNoise] = []
    seen: dict[str, str] = {}
    for origin in origins:
        try:
            data = read_bytes(origin)
            noise_id = noise_id_of(origin, data)
            if noise_id in seen:
                failures.append(NoiseFailure(origin, f"the same recording as {seen[noise_id]}"))
                continue
            seen[noise_id] = origin
            if noise_id in stored:
                known.append(KnownNoise(origin, noise_id, stored[noise_id]))
                continue
            samples = load_noise(data, config)
        except (OSError, NoiseDecodeError, subprocess.TimeoutExpired) as exc:
            failures.append(NoiseFailure(origin, f"{type(exc).__name__}: {exc}".splitlines()[0]))
            continue
        if samples.shape[0] < config.min_duration_s * config.sample_rate_hz:
            failures.append(NoiseFailure(origin, f"shorter than {config.min_duration_s} s"))
            continue
        media.append(MediaRecord.from_audio(noise_id, samples, config.sample_rate_hz))
        pending.append((noise_id, origin, samples.shape[0]))
    if not media:
        return NoiseAddResult([], failures, known)
    order = sorted(range(len(media)), key=lambda i: pending[i][0])
    media = [media[i] for i in order]
    pending = [pending[i] for i in order]
    shard = "noises-" + hashlib.sha1("\n".join(p[0] for p in pending).encode()).hexdigest()[:10]
    write_media_shard(shard_path(out, "media", shard), media)
    records = [
        NoiseRecord(
            noise_id=noise_id,
            kind=kind or kind_of(origin, config.kind),
            duration_s=n / config.sample_rate_hz,
            sample_rate_hz=config.sample_rate_hz,
            num_samples=n,
            split=split
            or split_of(
                noise_id, val_fraction=config.val_fraction, test_fraction=config.test_fraction
            ),
            media_shard=shard + ".arrow",
            media_row=row,
            origin=origin,
        )
        for row, (noise_id, origin, n) in enumerate(pending)
    ]
    write_records(out, "noises", shard, records)
    return NoiseAddResult(records, failures, known)


def stored_splits(corpus: str) -> dict[str, Split]:
    """The split of every recording already registered in ``corpus`` (its ``noises`` rows)."""
    table = read_noises(corpus)
    ids, splits = table.column("noise_id").to_pylist(), table.column("split").to_pylist()
    return {noise_id: Split(s) for noise_id, s in zip(ids, splits, strict=True)}


def media_path(corpus: str, media_shard: str) -> str:
    """Path of a media shard named in a manifest row (relative to ``corpus/media``)."""
    return media_file(corpus, media_shard)
