"""The face-crop cache: same pixels as the reader, each frame decoded once, bounded, reduced decodes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from manifests import ManifestError, MediaReader, read_clips
from manifests.media import MediaRecord, encode_jpeg, write_media_shard
from mixing.face_cache import CropCache, reduction_for


def _clip(corpus) -> tuple[str, int, int]:
    row = read_clips(str(corpus)).to_pylist()[0]
    return str(corpus / "media" / row["media_shard"]), row["media_row"], row["num_frames"]


def test_cached_crops_equal_the_readers_and_decode_once(corpus) -> None:
    path, row, num_frames = _clip(corpus)
    reader = MediaReader()
    cache = CropCache(reader, 32, max_bytes=64 << 20)
    first = cache.crops(path, row, 10, 40)
    np.testing.assert_array_equal(first, reader.face_crops(path, row, 10, 40))
    assert cache.decoded_frames == 30 and not first.flags.writeable
    again = cache.crops(path, row, 0, 60)  # overlaps: only frames 0..9 and 40..59 are new
    np.testing.assert_array_equal(again, reader.face_crops(path, row, 0, 60))
    assert cache.decoded_frames == 60
    past_end = cache.crops(path, row, num_frames - 5, num_frames + 20)
    assert past_end.shape[0] == 5
    assert not pickle.loads(pickle.dumps(cache))._clips  # workers start empty


def test_cache_is_bounded_and_zero_disables_it(corpus) -> None:
    rows = read_clips(str(corpus)).to_pylist()[:3]
    one_clip = rows[0]["num_frames"] * 32 * 32 * 3
    cache = CropCache(MediaReader(), 32, max_bytes=2 * one_clip)
    for r in rows:
        cache.crops(str(corpus / "media" / r["media_shard"]), r["media_row"], 0, 10)
    assert len(cache._clips) == 2 and cache._bytes <= cache.max_bytes  # the first was evicted
    off = CropCache(MediaReader(), 32, max_bytes=0)
    path, row, _ = _clip(corpus)
    off.crops(path, row, 0, 10)
    off.crops(path, row, 0, 10)
    assert off.decoded_frames == 20 and not off._clips


def test_reduced_decode_is_close_to_a_full_decode_and_resize(tmp_path) -> None:
    import cv2

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:96, 0:96]
    base = np.stack([xx * 2, yy * 2, (xx + yy)], axis=-1).astype(np.float64)
    frames = [(base + rng.normal(0, 3, base.shape)).clip(0, 255).astype(np.uint8) for _ in range(4)]
    path = str(tmp_path / "crops.arrow")
    record = MediaRecord.from_audio("c", np.zeros(2560, np.float32), 16000)
    record = MediaRecord(
        **{**record.__dict__, "crops_jpeg": [encode_jpeg(f) for f in frames], "crop_size": 96}
    )
    write_media_shard(path, [record])
    assert reduction_for(96, 24) == 4 and reduction_for(96, 48) == 2 and reduction_for(96, 50) == 1
    small = CropCache(MediaReader(), 24, max_bytes=1 << 20).crops(path, 0, 0, 4)
    full = MediaReader().face_crops(path, 0, 0, 4)
    resized = np.stack([cv2.resize(f, (24, 24), interpolation=cv2.INTER_AREA) for f in full])
    assert small.shape == (4, 24, 24, 3)
    assert np.abs(small.astype(int) - resized.astype(int)).mean() < 3.0


def test_corrupt_jpeg_is_a_manifest_error(tmp_path) -> None:
    path = str(tmp_path / "bad.arrow")
    record = MediaRecord.from_audio("c", np.zeros(1280, np.float32), 16000)
    record = MediaRecord(**{**record.__dict__, "crops_jpeg": [b"not a jpeg", b""], "crop_size": 8})
    write_media_shard(path, [record])
    with pytest.raises(ManifestError, match="frame 0: corrupt JPEG"):
        CropCache(MediaReader(), 8, max_bytes=1 << 20).crops(path, 0, 0, 2)
