"""Near-duplicate audio: landmark (spectral peak pair) fingerprints and their matching.

Contract:

- :func:`fingerprint` (mono audio, rate) -> :class:`Fingerprint`: hashes of pairs of spectral peaks
  (anchor frequency, frequency step, time step) with the anchor's time, at 8 kHz with 16 ms frames.
  Peaks and their relative positions survive lossy re-encoding (another codec or bitrate), level
  changes and trims, so the same recording in two sources shares many hashes at one time offset;
- :func:`match` (a, b) -> :class:`Match`: the hashes both share at their most common time offset
  (±1 frame); :meth:`Match.is_duplicate` applies the thresholds :data:`MIN_MATCHES` and
  :data:`MIN_RATIO` (share of the smaller fingerprint's hashes);
- :class:`DuplicateIndex`: an inverted index over many fingerprints (a corpus's sources), so linking
  n sources costs one pass over their hashes, not n² comparisons;
- :func:`source_fingerprint`: one source's fingerprint from its kept clips (each clip's hashes at its
  start time in the source), which is what the corpus-level split pass compares.

Thresholds were set on real talks (``avforge/assets/video/``): a copy re-encoded to Opus 24 kbit/s or
MP3 64 kbit/s and trimmed by 0.4-1.1 s shares 30-41 % of its hashes with the original at
one offset; two different talks share under 1 % (chance), see docs/splits.md and
``tests/curation/test_fingerprint.py``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter

from avforge.core.signal import resample

RATE = 8000
N_FFT = 512
HOP = 128
"""16 ms frames at 8 kHz."""
FRAME_S = HOP / RATE
PEAK_NEIGHBOURHOOD = (15, 9)
"""Frequency bins x frames a peak must be the maximum of."""
PEAKS_PER_SECOND = 30
FAN_OUT = 5
MAX_DT = 63
MAX_DF = 63
MIN_MATCHES = 20
MIN_RATIO = 0.05


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """Peak-pair hashes (uint32) and their anchor times (int32 frames of :data:`FRAME_S`)."""

    hashes: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return int(self.hashes.size)

    @staticmethod
    def concat(parts: Sequence[tuple[float, Fingerprint]]) -> Fingerprint:
        """One fingerprint of several pieces, each shifted to its start time (seconds)."""
        if not parts:
            return Fingerprint(np.zeros(0, np.uint32), np.zeros(0, np.int32))
        hashes = np.concatenate([fp.hashes for _, fp in parts])
        times = np.concatenate([fp.times + round(start / FRAME_S) for start, fp in parts]).astype(
            np.int32
        )
        return Fingerprint(hashes, times)


@dataclass(frozen=True)
class Match:
    """Hashes two fingerprints share at their best offset (``offset_s``: b's time minus a's)."""

    matches: int
    ratio: float
    offset_s: float

    def is_duplicate(self) -> bool:
        return self.matches >= MIN_MATCHES and self.ratio >= MIN_RATIO


def _peaks(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(audio, np.float64)
    if rate != RATE:
        x = resample(x, rate, RATE, dtype=np.float64)  # the peak picking runs in float64
    if x.size < N_FFT:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    n = 1 + (x.size - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(N_FFT), axis=1)).T  # (freq, time)
    logs = np.log(spec + 1e-9)
    local_max = maximum_filter(logs, size=PEAK_NEIGHBOURHOOD, mode="constant", cval=-np.inf)
    is_peak = (logs == local_max) & (spec > 1e-6)
    is_peak[:2] = False  # DC and the lowest bin: hum, not content
    f, t = np.nonzero(is_peak)
    if f.size == 0:
        return f, t
    # Keep the strongest peaks, PEAKS_PER_SECOND on average (per one-second block, so that quiet
    # passages keep theirs).
    strength = logs[f, t]
    block = t // round(1 / FRAME_S)
    order = np.lexsort((-strength, block))
    f, t, block = f[order], t[order], block[order]
    rank = np.arange(f.size) - np.searchsorted(block, block, side="left")
    keep = rank < PEAKS_PER_SECOND
    f, t = f[keep], t[keep]
    order = np.lexsort((f, t))
    return f[order], t[order]


def fingerprint(audio: np.ndarray, rate: int = 16000) -> Fingerprint:
    """Peak-pair hashes of mono ``audio`` (see the module docstring)."""
    f, t = _peaks(audio, rate)
    hashes: list[np.ndarray] = []
    times: list[np.ndarray] = []
    for k in range(1, FAN_OUT + 1):
        if f.size <= k:
            break
        f1, t1, f2, t2 = f[:-k], t[:-k], f[k:], t[k:]
        dt = t2 - t1
        df = f2 - f1
        ok = (dt >= 1) & (dt <= MAX_DT) & (np.abs(df) <= MAX_DF)
        h = (
            (f1[ok].astype(np.uint32) << 14)
            | ((df[ok] + 64).astype(np.uint32) << 6)
            | dt[ok].astype(np.uint32)
        )
        hashes.append(h)
        times.append(t1[ok].astype(np.int32))
    if not hashes:
        return Fingerprint(np.zeros(0, np.uint32), np.zeros(0, np.int32))
    return Fingerprint(np.concatenate(hashes), np.concatenate(times))


def _best_offset(offsets: Iterable[int]) -> tuple[int, int]:
    counts = Counter(offsets)
    if not counts:
        return 0, 0
    best, best_n = 0, -1
    for off in counts:
        n = counts[off] + counts.get(off - 1, 0) + counts.get(off + 1, 0)
        if n > best_n or (n == best_n and off < best):
            best, best_n = off, n
    return best_n, best


def match(a: Fingerprint, b: Fingerprint) -> Match:
    """Shared hashes of ``a`` and ``b`` at their most common time offset (±1 frame)."""
    index: dict[int, list[int]] = defaultdict(list)
    for h, t in zip(b.hashes.tolist(), b.times.tolist(), strict=True):
        index[h].append(t)
    offsets = (
        tb - ta
        for h, ta in zip(a.hashes.tolist(), a.times.tolist(), strict=True)
        for tb in index.get(h, ())
    )
    n, off = _best_offset(offsets)
    smaller = max(1, min(len(a), len(b)))
    return Match(n, n / smaller, off * FRAME_S)


class DuplicateIndex:
    """Fingerprints of many items (e.g. sources) and the duplicate pairs among them."""

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._sizes: list[int] = []
        self._index: dict[int, list[tuple[int, int]]] = defaultdict(list)

    def add(self, key: str, fp: Fingerprint) -> list[tuple[str, Match]]:
        """Add ``fp`` as ``key``; returns the items already added that it duplicates."""
        votes: dict[int, list[int]] = defaultdict(list)
        for h, t in zip(fp.hashes.tolist(), fp.times.tolist(), strict=True):
            for item, t2 in self._index.get(h, ()):
                votes[item].append(t2 - t)
        found = []
        for item, offs in votes.items():
            if len(offs) < MIN_MATCHES:
                continue
            n, off = _best_offset(offs)
            m = Match(n, n / max(1, min(len(fp), self._sizes[item])), off * FRAME_S)
            if m.is_duplicate():
                found.append((self._keys[item], m))
        me = len(self._keys)
        self._keys.append(key)
        self._sizes.append(len(fp))
        for h, t in zip(fp.hashes.tolist(), fp.times.tolist(), strict=True):
            self._index[h].append((me, t))
        return sorted(found, key=lambda kv: kv[0])


def source_fingerprint(clips: Sequence[tuple[float, np.ndarray, int]]) -> Fingerprint:
    """A source's fingerprint from its clips: (start in the source (s), audio, rate) each."""
    return Fingerprint.concat([(start, fingerprint(audio, rate)) for start, audio, rate in clips])
