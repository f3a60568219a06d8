"""Per-process cache of media audio rows for rendering: zero-copy samples, frame powers, frame peaks.

Contract: :meth:`AudioRows.get` takes a media shard path and row and returns a :class:`RowAudio`:
the row's samples as a zero-copy view of the memory-mapped shard (int16 for PCM16, float32
otherwise), the decode factor to float (1/32768 or 1), and, computed once per row, the mean power
and the peak magnitude of every full ``frame_len`` frame of the decoded samples. A crop at a
frame-aligned offset then takes its active-speech levels and its peak from these per-row arrays
(slices, no pass over the samples) before it is decoded.

The cache holds at most ``max_rows`` rows (least recently used out first). Views of memory-mapped
shards are never pickled: a renderer sent to a DataLoader worker starts with an empty cache.

Failure modes: a row outside its shard raises :class:`manifests.ManifestError`.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from manifests import ManifestError, MediaReader
from manifests.media import PCM16_SCALE, verify_row
from manifests.schema import SampleFormat
from mixing import functional as F

MAX_ROWS = 65536
"""Media rows a cache keeps (their arrays are views of memory-mapped shards plus 1/80 of their size)."""


class RowAudio:
    """One media row's samples and per-frame statistics (see the module docstring)."""

    __slots__ = ("factor", "frame_len", "num_samples", "samples", "stats")

    def __init__(self, samples: np.ndarray, frame_len: int) -> None:
        self.samples = samples
        """(N,) int16 (PCM16) or float32 zero-copy view of the shard cell."""
        self.num_samples = int(samples.shape[0])
        self.factor = 1.0 / PCM16_SCALE if samples.dtype == np.int16 else 1.0
        """Factor that decodes ``samples`` to floats in -1..1 (a power of two: exact in float32)."""
        self.frame_len = frame_len
        n = samples.shape[0] // frame_len
        frames = samples[: n * frame_len].reshape(n, frame_len)
        decoded = np.multiply(frames, self.factor, dtype=np.float32).reshape(-1)
        self.stats = np.zeros((2, n))
        """(2, N // frame_len) float64: mean power (row 0) and largest magnitude (row 1) of each
        full frame of the decoded samples (one array, so a crop copies both with one slice)."""
        if n:
            self.stats[0] = F.frame_powers(decoded, frame_len)
            lowest = frames.min(axis=1).astype(np.float64)  # float first: -(-32768) overflows int16
            self.stats[1] = np.maximum(frames.max(axis=1), -lowest) * self.factor

    @property
    def frame_powers(self) -> np.ndarray:
        """(N // frame_len,) mean power of each full frame (float32 math, stored as float64)."""
        return self.stats[0]

    @property
    def frame_peaks(self) -> np.ndarray:
        """(N // frame_len,) largest decoded magnitude of each full frame."""
        return self.stats[1]

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        """Samples ``start:stop`` decoded into float32 ``out[: stop - start]`` (clipped at the end)."""
        part = self.samples[start:stop]
        head = out[: part.shape[0]]
        head[:] = part  # a plain cast, then an in-place scale: faster than one mixed-type multiply
        if self.factor != 1.0:
            head *= np.float32(self.factor)


class AudioRows:
    """LRU cache of :class:`RowAudio` per (shard path, row), over one :class:`MediaReader`."""

    def __init__(self, reader: MediaReader, frame_len: int, max_rows: int = MAX_ROWS) -> None:
        self.reader = reader
        self.frame_len = frame_len
        self.max_rows = max_rows
        self._rows: OrderedDict[tuple[str, int], RowAudio] = OrderedDict()

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_rows": OrderedDict()}

    def get(self, path: str, row: int) -> RowAudio:
        """The cached :class:`RowAudio` of ``row`` of the media shard ``path`` (built on first use)."""
        key = (path, row)
        audio = self._rows.get(key)
        if audio is not None:
            self._rows.move_to_end(key)
            return audio
        table = self.reader.table(path)
        if not 0 <= row < table.num_rows:
            raise ManifestError(path, f"row {row} out of range ({table.num_rows} rows)")
        if self.reader.verify:  # once per cached row: a flipped byte stops with the shard's name
            verify_row(path, table, row, faces=False)
        fmt = SampleFormat(table.column("sample_format")[row].as_py())
        buf = table.column("samples")[row].as_buffer()
        view = np.frombuffer(buf, "<i2" if fmt == SampleFormat.PCM16 else "<f4")
        audio = RowAudio(view, self.frame_len)
        self._rows[key] = audio
        if len(self._rows) > self.max_rows:
            self._rows.popitem(last=False)
        return audio
