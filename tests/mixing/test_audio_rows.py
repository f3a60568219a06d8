"""The per-row audio cache: cached frame powers and peaks equal a direct pass over the samples."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from manifests import ManifestError, MediaReader
from manifests.media import MediaRecord, write_media_shard
from manifests.schema import SampleFormat
from mixing import functional as F
from mixing.audio_rows import AudioRows, RowAudio

FRAME = 320


def _pcm(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 6000).clip(-32768, 32767).astype(np.int16)
    x[n // 3] = -32768  # the one magnitude int16 cannot negate
    return x


def test_frame_stats_and_reads_match_a_direct_pass() -> None:
    samples = _pcm(1, 9000)  # not a whole number of frames: the tail is no frame
    audio = RowAudio(samples, FRAME)
    decoded = samples.astype(np.float32) / np.float32(32768.0)
    np.testing.assert_array_equal(audio.frame_powers, F.frame_powers(decoded, FRAME))
    frames = decoded[: 28 * FRAME].reshape(28, FRAME)
    np.testing.assert_array_equal(audio.frame_peaks, np.abs(frames).max(axis=1))
    assert audio.frame_peaks[3000 // FRAME] == 1.0  # the -32768 sample
    out = np.full(700, 7.0, np.float32)
    audio.read_into(8500, 9100, out)  # runs past the end: only 500 samples are written
    np.testing.assert_array_equal(out[:500], decoded[8500:])
    assert (out[500:] == 7.0).all()


def test_float_rows_and_shard_reads(tmp_path) -> None:
    path = str(tmp_path / "media.arrow")
    rir = np.linspace(-0.5, 0.25, 1000, dtype=np.float32)
    speech = _pcm(2, 4000).astype(np.float32) / 32768.0
    write_media_shard(
        path,
        [
            MediaRecord.from_audio("a", speech, 16000),
            MediaRecord.from_audio("b", rir, 16000, SampleFormat.FLOAT32),
        ],
    )
    rows = AudioRows(MediaReader(), FRAME, max_rows=1)
    pcm = rows.get(path, 0)
    assert pcm.samples.dtype == np.int16 and pcm.num_samples == 4000
    flt = rows.get(path, 1)
    assert flt.samples.dtype == np.float32 and flt.frame_peaks.max() == 0.5
    assert rows.get(path, 1) is flt and len(rows._rows) == 1  # bounded: row 0 was evicted
    assert not pickle.loads(pickle.dumps(rows))._rows  # views of mapped shards never travel
    with pytest.raises(ManifestError, match="row 2 out of range"):
        rows.get(path, 2)
