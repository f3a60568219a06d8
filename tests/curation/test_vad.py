"""VAD: known answers on real speech padded with silence, real noise and music, and the helpers."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avforge.core.config import ConfigError
from curation.vad import SpeechActivity, VadConfig, detect_speech, smooth_decisions
from tests.helpers.curation_audio_media import load_asset, trimmed_speech

ARCTIC = (
    "cmu_arctic_us_aew_a0001.wav",
    "cmu_arctic_us_aew_a0002.wav",
    "cmu_arctic_us_aew_a0003.wav",
    "cmu_arctic_us_axb_a0004.wav",
    "cmu_arctic_us_axb_a0006.wav",
    "arctic_a0010.wav",
)
LEAD_S, TAIL_S = 1.0, 1.5


def _padded(name: str, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Speech trimmed at -30 dB re its peak, 10 ms fades, 1.0 s / 1.5 s of -50 dBFS noise around it."""
    speech = trimmed_speech(name, threshold_db=-30.0)
    ramp = np.linspace(0.0, 1.0, 160, dtype=np.float32)
    speech[:160] *= ramp
    speech[-160:] *= ramp[::-1]
    x = np.concatenate([np.zeros(int(LEAD_S * 16000)), speech, np.zeros(int(TAIL_S * 16000))])
    x = x + rng.normal(0.0, 10 ** (-50 / 20), x.size)
    return x.astype(np.float32), LEAD_S + speech.size / 16000


@pytest.mark.parametrize("name", ARCTIC)
def test_regions_match_the_padded_speech_boundaries(name):
    audio, end_s = _padded(name, np.random.default_rng(7))
    act = detect_speech(audio, 16000, VadConfig())
    regions = act.regions()
    assert len(regions) == 1  # word gaps are bridged
    start, end = regions[0]
    assert abs(start - LEAD_S) <= 0.05
    assert -0.1 <= end - end_s <= 0.13  # webrtcvad's own hangover makes ends a little late
    assert act.ratio(LEAD_S + 0.1, end_s - 0.1) == 1.0
    assert act.ratio(0.0, LEAD_S - 0.1) == 0.0


def test_other_rates_give_the_same_regions():
    from scipy.signal import resample_poly

    audio, _ = _padded(ARCTIC[0], np.random.default_rng(1))
    ref = detect_speech(audio, 16000, VadConfig()).regions()
    for rate in (8000, 44100, 48000):
        other = resample_poly(audio, rate, 16000).astype(np.float32)
        got = detect_speech(other, rate, VadConfig()).regions()
        assert len(got) == 1
        assert abs(got[0][0] - ref[0][0]) <= 0.06 and abs(got[0][1] - ref[0][1]) <= 0.09


def test_silence_and_steady_noise_are_not_speech():
    rng = np.random.default_rng(3)
    silence = rng.normal(0.0, 10 ** (-60 / 20), 5 * 16000).astype(np.float32)
    assert detect_speech(silence, 16000, VadConfig()).speech.mean() == 0.0
    assert detect_speech(np.zeros(16000 * 3, np.float32), 16000, VadConfig()).speech.sum() == 0
    bike = load_asset("exercise_bike.wav")[: 10 * 16000]
    assert detect_speech(bike, 16000, VadConfig()).speech.mean() < 0.1


def test_silero_second_opinion_rejects_kitchen_noise_and_music_but_keeps_speech():
    cfg = VadConfig(use_silero=True)
    dishes = load_asset("doing_the_dishes.wav")[: 10 * 16000]
    guitar = load_asset("guitar_16k.wav")
    assert detect_speech(dishes, 16000, VadConfig()).speech.mean() > 0.9  # webrtcvad alone: fooled
    assert detect_speech(dishes, 16000, cfg).speech.mean() < 0.05
    assert detect_speech(guitar, 16000, cfg).speech.mean() < 0.5
    audio, end_s = _padded(ARCTIC[1], np.random.default_rng(5))
    act = detect_speech(audio, 16000, cfg)
    assert act.ratio(LEAD_S, end_s) > 0.9 and act.ratio(0.0, LEAD_S - 0.1) == 0.0


def test_loading_silero_leaves_torch_threads_alone():
    """silero-vad's import sets torch to one thread for the whole process; everything run after
    in-process curation with ``vad.use_silero`` (a training run, the learning test) then ran on one."""
    import torch

    from curation.vad import _silero_model

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        _silero_model.cache_clear()
        sys.modules.pop("silero_vad.model", None)  # so that its import runs again
        sys.modules.pop("silero_vad", None)
        _silero_model()
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_smoothing_fills_short_gaps_drops_blips_and_extends():
    cfg = VadConfig(min_silence_ms=90, min_speech_ms=90, hangover_ms=60, onset_ms=30)
    raw = np.array([1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    #               blip          run A    gap  run B
    got = smooth_decisions(raw, 30, cfg)
    want = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], bool)
    np.testing.assert_array_equal(got, want)


def test_activity_ratio_mask_crop_and_regions():
    speech = np.array([0, 0, 1, 1, 1, 0, 1, 1, 0, 0], bool)
    act = SpeechActivity(frame_s=0.5, speech=speech)
    assert act.regions() == [(1.0, 2.5), (3.0, 4.0)]
    assert act.ratio(1.0, 2.5) == 1.0
    assert act.ratio(0.0, 5.0) == pytest.approx(0.5)
    assert act.ratio(6.0, 7.0) == 0.0
    mask = act.mask(0.75, 1.25, sample_rate_hz=8)
    np.testing.assert_array_equal(mask, [False, False, True, True])
    assert act.mask(4.5, 6.0, 4).sum() == 0 and act.mask(4.5, 6.0, 4).size == 6
    part = act.crop(2.0, 3.5)
    assert part.start_s == 2.0 and part.regions() == [(2.0, 2.5), (3.0, 3.5)]
    assert part.ratio(2.0, 3.5) == pytest.approx(act.ratio(2.0, 3.5))


def test_config_validation():
    with pytest.raises(ConfigError, match="frame_ms"):
        VadConfig(frame_ms=25)
    with pytest.raises(ConfigError, match="aggressiveness"):
        VadConfig(aggressiveness=4)
    with pytest.raises(ValueError, match="mono"):
        detect_speech(np.zeros((2, 100), np.float32), 16000, VadConfig())


@settings(max_examples=200, deadline=None)
@given(
    raw=st.lists(st.booleans(), min_size=0, max_size=80),
    min_speech=st.integers(0, 6),
    min_silence=st.integers(0, 6),
    hangover=st.integers(0, 3),
)
def test_smoothing_invariants(raw, min_speech, min_silence, hangover):
    from curation.vad import _runs

    cfg = VadConfig(
        min_speech_ms=30 * min_speech, min_silence_ms=30 * min_silence, hangover_ms=30 * hangover
    )
    flags = np.array(raw, bool)
    out = smooth_decisions(flags, 30, cfg)
    assert out.shape == flags.shape
    runs = _runs(out)
    # Every output run is at least min_speech long.
    assert all(end - start >= min_speech for start, end in runs)
    # Without hangover, every output speech frame lies between two raw speech frames' runs or on one.
    if hangover == 0 and runs:
        raw_idx = np.flatnonzero(flags)
        assert raw_idx.size and runs[0][0] >= raw_idx[0] and runs[-1][1] <= raw_idx[-1] + 1
    # Raw speech runs that are long enough survive.
    for start, end in _runs(flags):
        if end - start >= max(min_speech, 1):
            assert out[start:end].all()
