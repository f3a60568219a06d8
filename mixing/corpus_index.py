"""The media of one corpus by id (clips, noises, RIRs) and the validation of recipes against it.

Input: a corpus folder's ``clips``, ``noises`` and ``rirs`` manifests. Output: :class:`CorpusIndex`,
plain dicts from id to :class:`MediaRef` (shard path, row, sizes, which face streams a clip has),
cheap to pickle into DataLoader workers, and :meth:`CorpusIndex.check_spec`.

Failure modes: :meth:`CorpusIndex.check_spec` raises :class:`MixingError` naming the recipe for an
inconsistent recipe (list lengths, reference out of range, times that are negative or not multiples
of 40 ms, both or neither noise level, non-finite gains) or one naming a clip, noise or RIR that is
not in the manifests or is not at the mixing sample rate. It runs once per rendered item, so the
common case (every id known and at the right rate) is a few set lookups.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import pyarrow as pa

from manifests import read_clips, read_noises, read_rirs
from manifests.io import media_file
from manifests.schema import MixtureSpec
from mixing import functional as F
from mixing.errors import MixingError


class MediaRef(NamedTuple):
    """Where one clip, noise or RIR lives in the corpus's media shards."""

    path: str
    row: int
    num_samples: int
    sample_rate_hz: int
    has_crops: bool
    has_embeddings: bool
    has_lip_features: bool = False


def index_table(table: pa.Table, key: str, corpus: str, *, with_faces: bool) -> dict[str, MediaRef]:
    """``key`` -> :class:`MediaRef` for every row of a clips / noises / rirs manifest table."""
    cols = table.to_pydict()
    out = {}
    for i, item in enumerate(cols[key]):
        out[item] = MediaRef(
            media_file(corpus, cols["media_shard"][i]),
            int(cols["media_row"][i]),
            int(cols["num_samples"][i]),
            int(cols["sample_rate_hz"][i]),
            bool(cols["has_crops"][i]) if with_faces else False,
            bool(cols["has_embeddings"][i]) if with_faces else False,
            bool(cols["has_lip_features"][i]) if with_faces else False,
        )
    return out


def _usable(table: Mapping[str, MediaRef], sample_rate_hz: int) -> frozenset[str]:
    return frozenset(k for k, m in table.items() if m.sample_rate_hz == sample_rate_hz)


class CorpusIndex:
    """Clips, noises and RIRs of ``corpus`` by id, for rendering at ``sample_rate_hz``."""

    def __init__(self, corpus: str, sample_rate_hz: int) -> None:
        self.corpus = str(corpus)
        self.sample_rate_hz = sample_rate_hz
        self.clips = index_table(read_clips(self.corpus), "clip_id", self.corpus, with_faces=True)
        self.noises = index_table(
            read_noises(self.corpus), "noise_id", self.corpus, with_faces=False
        )
        self.rirs = index_table(read_rirs(self.corpus), "rir_id", self.corpus, with_faces=False)
        self._ok_clips = _usable(self.clips, sample_rate_hz)
        self._ok_noises = _usable(self.noises, sample_rate_hz)
        self._ok_rirs = _usable(self.rirs, sample_rate_hz) | {None}

    def lookup(
        self, table: Mapping[str, MediaRef], key: str, what: str, spec: MixtureSpec
    ) -> MediaRef:
        """``table[key]``, or :class:`MixingError` when it is missing or at another sample rate."""
        media = table.get(key)
        if media is None:
            raise MixingError(
                f"recipe {spec.mixture_id}: {what} {key!r} is not in the {what}s manifest of {self.corpus}"
            )
        if media.sample_rate_hz != self.sample_rate_hz:
            raise MixingError(
                f"recipe {spec.mixture_id}: {what} {key!r} is at {media.sample_rate_hz} Hz, "
                f"mixing runs at {self.sample_rate_hz} Hz"
            )
        return media

    def check_spec(self, spec: MixtureSpec) -> None:
        """Raise :class:`MixingError` unless ``spec`` is self-consistent and names known media."""
        n = len(spec.clip_ids)
        if n == 0 or not (
            len(spec.offsets_s)
            == len(spec.starts_s)
            == len(spec.gains_db)
            == len(spec.rir_ids)
            == n
        ):
            raise MixingError(
                f"recipe {spec.mixture_id}: clip_ids, offsets_s, starts_s, gains_db, rir_ids differ in length"
            )
        if not 0 <= spec.reference < n:
            raise MixingError(f"recipe {spec.mixture_id}: reference {spec.reference} out of range")
        step = F.ALIGN_S
        for t in (spec.duration_s, *spec.offsets_s, *spec.starts_s):
            frames = t / step
            if t < 0 or abs(frames - round(frames)) * step >= 1e-6:  # F.is_aligned, inlined
                raise MixingError(
                    f"recipe {spec.mixture_id}: time {t} s is not a non-negative multiple of 40 ms"
                )
        if spec.noise_id is not None and (spec.noise_snr_db is None) == (spec.noise_gain is None):
            raise MixingError(
                f"recipe {spec.mixture_id}: a noise needs exactly one of noise_snr_db, noise_gain"
            )
        if not all(map(math.isfinite, spec.gains_db)):
            raise MixingError(f"recipe {spec.mixture_id}: gains_db must be finite")
        ok_clips, ok_rirs = self._ok_clips, self._ok_rirs
        if (
            all(c in ok_clips for c in spec.clip_ids)
            and all(r in ok_rirs for r in spec.rir_ids)
            and spec.noise_rir_id in ok_rirs
            and (spec.noise_id is None or spec.noise_id in self._ok_noises)
        ):
            return
        for clip_id in spec.clip_ids:  # slow path: find the culprit for the message
            self.lookup(self.clips, clip_id, "clip", spec)
        for rir_id in [*spec.rir_ids, spec.noise_rir_id]:
            if rir_id is not None:
                self.lookup(self.rirs, rir_id, "rir", spec)
        if spec.noise_id is not None:
            self.lookup(self.noises, spec.noise_id, "noise", spec)
