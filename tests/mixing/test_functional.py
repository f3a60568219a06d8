"""Known-answer and property tests of the pure DSP core."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mixing import functional as F


def test_paper_framing_three_seconds_is_257_by_298_and_75_video_frames():
    x = torch.zeros(2, 48000)
    spec = F.stft(x)
    assert spec.shape == (2, 257, 298)
    assert F.num_stft_frames(48000) == 298
    assert F.num_video_frames(48000) == 75
    assert F.num_stft_frames(399) == 0


@given(st.integers(min_value=400, max_value=6000))
@settings(max_examples=30, deadline=None, database=None, derandomize=True)
def test_stft_frame_count_matches_num_stft_frames(num_samples):
    spec = F.stft(torch.zeros(num_samples))
    assert spec.shape == (257, F.num_stft_frames(num_samples))


def test_stft_frame_holds_exactly_one_400_sample_window():
    # an impulse at sample 450 lies in frames t with 160 t <= 450 < 160 t + 400: t = 1 and 2
    x = torch.zeros(48000)
    x[450] = 1.0
    energy = F.stft(x).abs().sum(dim=0)
    assert torch.nonzero(energy > 1e-6).flatten().tolist() == [1, 2]


def test_istft_inverts_stft_on_covered_samples():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 48000, generator=gen)
    y = F.istft(F.stft(x), 48000)
    assert y.shape == x.shape
    covered = 297 * 160 + 400
    # the first 42 and last 41 covered samples have a summed squared window under 1 % of its peak
    assert torch.allclose(y[:, 42 : covered - 41], x[:, 42 : covered - 41], atol=1e-4)
    assert torch.all(y[:, :42] == 0) and torch.all(y[:, covered - 41 : covered] == 0)
    assert torch.all(y[:, covered:] == 0)


def test_active_level_ignores_silence():
    sr = 16000
    t = np.arange(sr) / sr
    tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    padded = np.concatenate([np.zeros(2 * sr, np.float32), tone, np.zeros(sr, np.float32)])
    power, mask = F.active_power(padded, frame_len=320)
    assert power == pytest.approx(0.1**2 / 2, rel=1e-3)
    assert mask.sum() == sr // 320


def test_silent_signal_has_no_level():
    with pytest.raises(F.SilentSignalError):
        F.active_power(np.zeros(16000, np.float32), frame_len=320)


@settings(database=None, derandomize=True)
@given(
    st.floats(min_value=-20, max_value=30),
    st.floats(min_value=1e-4, max_value=1.0),
    st.floats(min_value=1e-4, max_value=1.0),
)
def test_gain_for_ratio_hits_the_ratio(ratio_db, ref_power, other_power):
    gain = F.gain_for_ratio(ref_power, other_power, ratio_db)
    assert F.power_ratio_db(ref_power, gain**2 * other_power) == pytest.approx(ratio_db, abs=1e-9)


@settings(database=None, derandomize=True)
@given(st.integers(1, 300), st.integers(0, 1000), st.integers(1, 900))
def test_tile_loops_a_short_signal(n, offset, length):
    signal = np.arange(n, dtype=np.float32)
    out = F.tile(signal, offset=offset, length=length)
    assert out.shape == (length,)
    np.testing.assert_array_equal(out, signal[(offset + np.arange(length)) % n])


def test_place_pads_and_truncates():
    out = F.place(np.ones(5, np.float32), start=3, length=6)
    np.testing.assert_array_equal(out, [0, 0, 0, 1, 1, 1])


@given(st.integers(1, 400), st.integers(1, 120), st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None, database=None, derandomize=True)
def test_fft_convolve_equals_direct_convolution(n, m, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    h = rng.normal(size=m).astype(np.float32)
    np.testing.assert_allclose(F.fft_convolve(x, h), np.convolve(x, h)[:n], atol=1e-4)


@pytest.mark.parametrize(
    "rir", [np.zeros(100, np.float32), np.array([], np.float32), np.array([np.nan, 1.0])]
)
def test_unusable_rir_is_a_clear_error(rir):
    with pytest.raises(F.InvalidRirError):
        F.fft_convolve(np.ones(10, np.float32), rir)


@settings(database=None, derandomize=True)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=50), st.floats(0.1, 1.0))
def test_peak_scale_brings_every_signal_under_the_guard(values, max_abs):
    signals = [np.array(values, np.float32), 0.5 * np.array(values, np.float32)]
    scale = F.peak_scale(signals, max_abs=max_abs)
    assert 0 < scale <= 1
    assert max(float(np.max(np.abs(s * np.float32(scale)))) for s in signals) <= max_abs
    if float(np.max(np.abs(signals[0]))) <= max_abs:
        assert scale == 1.0


def test_alignment_to_video_frames():
    assert F.is_aligned(0.12) and F.is_aligned(3.0) and not F.is_aligned(0.13)
    assert math.isinf(F.power_ratio_db(1.0, 0.0))
