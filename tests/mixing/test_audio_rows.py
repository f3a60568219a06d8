"""The per-row audio cache: cached frame powers and peaks equal a direct pass over the samples."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(database=None, derandomize=True, max_examples=60, deadline=None)
@given(start=st.integers(0, 5000), length=st.integers(0, 4000))
def test_peak_of_any_range_equals_the_exact_peak(start: int, length: int) -> None:
    samples = _pcm(0, 9000)
    audio = RowAudio(samples, FRAME)
    stop = min(start + length, samples.shape[0])
    part = samples[start:stop].astype(np.float64) / 32768.0
    expected = float(np.abs(part).max()) if part.size else 0.0
    assert audio.peak(start, stop) == expected


def test_frame_powers_and_decode_match_a_direct_pass() -> None:
    samples = _pcm(1, 9000)  # not a whole number of frames: the tail is not a frame
    audio = RowAudio(samples, FRAME)
    decoded = samples.astype(np.float32) / np.float32(32768.0)
    np.testing.assert_array_equal(audio.frame_powers, F.frame_powers(decoded, FRAME))
    out = np.empty(3200, np.float32)
    peak = audio.decode_into(640, out, 0.25)
    np.testing.assert_allclose(out, decoded[640:3840] * 0.25, rtol=1e-6)
    assert peak == pytest.approx(float(np.abs(out).max()), rel=1e-6)


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
    assert flt.samples.dtype == np.float32 and flt.peak(0, 1000) == 0.5
    assert rows.get(path, 1) is flt and len(rows._rows) == 1  # bounded: row 0 was evicted
    assert not pickle.loads(pickle.dumps(rows))._rows  # views of mapped shards never travel
    with pytest.raises(ManifestError, match="row 2 out of range"):
        rows.get(path, 2)
