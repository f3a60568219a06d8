"""Decoded face crops, per clip, in a bounded per-process LRU cache (clips recur across mixtures).

Contract: :meth:`CropCache.crops` returns frames ``start:stop`` of a media row's JPEG face crops as a
read-only uint8 (k, S, S, 3) RGB view, where ``S`` is the requested size. Frames are decoded on first
use and kept with their clip: a clip's later mixtures (other offsets, other partners) reuse them.
When ``S`` is at most half the stored crop size, the JPEG is decoded at 1/2, 1/4 or 1/8 scale by
libjpeg's DCT scaling (``cv2.IMREAD_REDUCED_COLOR_*``, several times faster than a full decode)
before the area resize to ``S``. A frame stored without a crop (an empty cell) is zeros.

The cache holds at most ``max_bytes`` of decoded frames (a clip counts at its full decoded size from
its first use); the least recently used clip goes first. Each DataLoader worker has its own cache
(nothing is pickled), so a loader with W workers holds up to W times ``max_bytes``. ``max_bytes``
0 turns caching off (every call decodes).

Failure modes: a row without face crops or a corrupt JPEG raises :class:`manifests.ManifestError`.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from manifests import ManifestError, MediaReader

REDUCED_FLAGS = {
    2: "IMREAD_REDUCED_COLOR_2",
    4: "IMREAD_REDUCED_COLOR_4",
    8: "IMREAD_REDUCED_COLOR_8",
}
"""OpenCV's flags for decoding a JPEG at 1/2, 1/4 and 1/8 scale."""


def reduction_for(stored_px: int, size_px: int) -> int:
    """The largest JPEG decode reduction (1, 2, 4, 8) that still gives at least ``size_px`` pixels."""
    for factor in (8, 4, 2):
        if -(-stored_px // factor) >= size_px:
            return factor
    return 1


def decode_crop(raw: bytes, size_px: int, reduction: int) -> np.ndarray | None:
    """One JPEG crop as uint8 (size_px, size_px, 3) RGB, decoded at ``1 / reduction`` scale; None if
    the bytes are not a JPEG."""
    import cv2

    flag = cv2.IMREAD_COLOR if reduction == 1 else getattr(cv2, REDUCED_FLAGS[reduction])
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), flag)
    if img is None:
        return None
    if img.shape[0] != size_px or img.shape[1] != size_px:
        img = cv2.resize(img, (size_px, size_px), interpolation=cv2.INTER_AREA)
    return img[:, :, ::-1]


class _ClipCrops:
    __slots__ = ("done", "frames")

    def __init__(self, num_frames: int, size_px: int) -> None:
        self.frames = np.zeros((num_frames, size_px, size_px, 3), np.uint8)
        self.done = np.zeros(num_frames, bool)


class CropCache:
    """Decoded crops of ``size_px`` pixels per (shard path, row); see the module docstring."""

    def __init__(self, reader: MediaReader, size_px: int, max_bytes: int) -> None:
        self.reader = reader
        self.size_px = size_px
        self.max_bytes = max_bytes
        self._clips: OrderedDict[tuple[str, int], _ClipCrops] = OrderedDict()
        self._bytes = 0
        self.decoded_frames = 0
        """Frames decoded so far by this process (a measure of the cache's hit rate)."""

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_clips": OrderedDict(), "_bytes": 0, "decoded_frames": 0}

    def crops(self, path: str, row: int, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` (clipped to the clip) as read-only uint8 (k, S, S, 3) RGB."""
        table = self.reader.table(path)
        if not 0 <= row < table.num_rows:
            raise ManifestError(path, f"row {row} out of range ({table.num_rows} rows)")
        cell = table.column("face_crops")[row]
        stored = table.column("crop_size")[row].as_py()
        if not cell.is_valid or stored is None:
            raise ManifestError(path, f"row {row} has no face crops")
        frames = cell.values
        stop = min(stop, len(frames))
        start = max(0, min(start, stop))
        entry = self._entry(path, row, len(frames))
        missing = np.flatnonzero(~entry.done[start:stop]) + start
        if missing.size:
            reduction = reduction_for(stored, self.size_px)
            for k in missing.tolist():
                raw = frames[k].as_py()
                if raw:
                    img = decode_crop(raw, self.size_px, reduction)
                    if img is None:
                        raise ManifestError(path, f"row {row} frame {k}: corrupt JPEG crop")
                    entry.frames[k] = img
                entry.done[k] = True
            self.decoded_frames += int(missing.size)
        view = entry.frames[start:stop]
        view.flags.writeable = False
        return view

    def _entry(self, path: str, row: int, num_frames: int) -> _ClipCrops:
        key = (path, row)
        entry = self._clips.get(key)
        if entry is not None:
            self._clips.move_to_end(key)
            return entry
        entry = _ClipCrops(num_frames, self.size_px)
        if entry.frames.nbytes > self.max_bytes:  # larger than the whole cache: not kept
            return entry
        self._clips[key] = entry
        self._bytes += entry.frames.nbytes
        while self._bytes > self.max_bytes:
            _, old = self._clips.popitem(last=False)
            self._bytes -= old.frames.nbytes
        return entry
