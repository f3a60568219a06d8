"""Speech SNR: known answers on real speech + real noise at known active-speech SNRs."""

from __future__ import annotations

import numpy as np
import pytest

from avforge.config import ConfigError, config_from_dict
from curation.calibrate import mix_at_snr
from curation.snr import (
    CALIBRATED_THRESHOLD_DB,
    WADA_TABLE_DB,
    WADA_TABLE_G,
    DenoiserSnrEstimator,
    SnrConfig,
    SnrEstimatorKind,
    VadGatedSnrEstimator,
    WadaSnrEstimator,
    estimate_snr,
    make_estimator,
    simulate_wada_table,
)
from curation.vad import VadConfig, detect_speech
from tests.helpers.curation_audio_media import load_asset, trimmed_speech

TRUE_DB = (0.0, 10.0, 20.0, 30.0)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """7.4 s of real read speech (two ARCTIC speakers), with the recordings' own pauses."""
    return np.concatenate(
        [load_asset("cmu_arctic_us_aew_a0001.wav"), load_asset("cmu_arctic_us_axb_a0006.wav")]
    )


def _noise(name: str, n: int) -> np.ndarray:
    return load_asset(name)[16000 : 16000 + n]


@pytest.mark.parametrize("noise_name", ["exercise_bike.wav", "doing_the_dishes.wav"])
def test_vad_gated_matches_true_snr_on_stationary_noise(speech, noise_name):
    noise = _noise(noise_name, speech.size)
    est = [VadGatedSnrEstimator().estimate(mix_at_snr(speech, noise, t), 16000) for t in TRUE_DB]
    assert np.all(np.diff(est) > 3.0)
    np.testing.assert_allclose(est, TRUE_DB, atol=3.0)


@pytest.mark.parametrize("noise_name", ["exercise_bike.wav", "doing_the_dishes.wav"])
def test_wada_tracks_true_snr_up_to_20_db(speech, noise_name):
    noise = _noise(noise_name, speech.size)
    est = [WadaSnrEstimator().estimate(mix_at_snr(speech, noise, t), 16000) for t in TRUE_DB]
    assert np.all(np.diff(est) > 3.0)
    # WADA scores speech energy over the whole segment (pauses included): it reads low, more so
    # at high SNR where the recordings' own noise floor (~28 dB on the clean files) takes over.
    np.testing.assert_allclose(est[:3], TRUE_DB[:3], atol=4.5)
    assert 20.0 <= est[3] <= 30.0


def test_estimates_stay_monotonic_with_music(speech):
    guitar = _noise("guitar_16k.wav", speech.size)
    for estimator in (VadGatedSnrEstimator(), WadaSnrEstimator()):
        est = [estimator.estimate(mix_at_snr(speech, guitar, t), 16000) for t in TRUE_DB]
        assert np.all(np.diff(est) > 0.5), est


def test_denoiser_estimator_gives_the_energy_ratio_of_its_clean_estimate(speech):
    noise = _noise("exercise_bike.wav", speech.size)
    mixture = mix_at_snr(speech, noise, 10.0)
    residual = mixture.astype(np.float64) - speech
    want = 10 * np.log10(np.sum(speech.astype(np.float64) ** 2) / np.sum(residual**2))
    oracle = DenoiserSnrEstimator(lambda audio, rate: speech.copy())
    assert oracle.estimate(mixture, 16000) == pytest.approx(want, abs=1e-3)
    assert DenoiserSnrEstimator(lambda a, r: a).estimate(mixture, 16000) == 60.0
    with pytest.raises(ValueError, match="shape"):
        DenoiserSnrEstimator(lambda a, r: a[:-1]).estimate(mixture, 16000)


def test_wada_table_is_reproduced_by_the_papers_simulation():
    picks = (-20, 0, 10, 20, 40, 100)
    fresh = simulate_wada_table(num_samples=1 << 19, seed=1, snrs_db=picks)
    table = np.asarray(WADA_TABLE_G)[[WADA_TABLE_DB.index(p) for p in picks]]
    np.testing.assert_allclose(fresh, table, atol=0.01)
    assert np.all(np.diff(WADA_TABLE_G[5:]) > 0)
    # A gamma-speech + gaussian-noise signal built like the table reads back its SNR.
    rng = np.random.default_rng(4)
    s = rng.gamma(0.4, 1.0, 200_000) * rng.choice((-1.0, 1.0), 200_000)
    for snr_db in (0.0, 15.0, 30.0):
        x = s + rng.standard_normal(s.size) * np.sqrt(np.mean(s**2) / 10 ** (snr_db / 10))
        assert WadaSnrEstimator().estimate(x.astype(np.float32), 16000) == pytest.approx(
            snr_db, abs=1.0
        )


def test_vad_gated_fallback_without_pauses_errs_low(speech):
    words = [trimmed_speech(n, -30.0) for n in ("cmu_arctic_us_aew_a0001.wav", "arctic_a0010.wav")]
    continuous = np.concatenate(words * 2)
    noise = _noise("exercise_bike.wav", continuous.size)
    mixture = mix_at_snr(continuous, noise, 20.0)
    act = detect_speech(mixture, 16000, VadConfig())
    assert act.speech.mean() > 0.9  # too few pauses: the percentile floor is used
    est = VadGatedSnrEstimator().estimate(mixture, 16000, act)
    assert 8.0 <= est <= 21.0


def test_given_activity_is_used_and_aligned(speech):
    noise = _noise("doing_the_dishes.wav", speech.size)
    mixture = mix_at_snr(speech, noise, 15.0)
    whole = detect_speech(mixture, 16000, VadConfig())
    est = VadGatedSnrEstimator()
    start, end = 1.2, 5.7
    segment = mixture[int(start * 16000) : int(end * 16000)]
    from_crop = est.estimate(segment, 16000, whole.crop(start, end))
    own_vad = est.estimate(segment, 16000)
    assert from_crop == pytest.approx(own_vad, abs=2.0)
    assert abs(from_crop - 15.0) < 4.0


def test_edge_cases_silence_and_noiseless_speech():
    rng = np.random.default_rng(0)
    hiss = rng.normal(0.0, 0.01, 3 * 16000).astype(np.float32)
    zeros = np.zeros(3 * 16000, np.float32)
    gated, wada = VadGatedSnrEstimator(), WadaSnrEstimator()
    assert gated.estimate(zeros, 16000) == -20.0 and wada.estimate(zeros, 16000) == -20.0
    assert wada.estimate(hiss, 16000) < -10.0
    clean = np.concatenate([zeros[:16000], trimmed_speech("arctic_a0010.wav"), zeros[:16000]])
    assert gated.estimate(clean, 16000) == 60.0
    assert gated.estimate(np.zeros(10, np.float32), 16000) == -20.0


def test_config_resolves_the_calibrated_threshold_and_builds_estimators():
    cfg = SnrConfig()
    assert cfg.threshold_db == CALIBRATED_THRESHOLD_DB[SnrEstimatorKind.VAD_GATED]
    wada = config_from_dict(SnrConfig, {"estimator": "wada"})
    assert wada.threshold_db == CALIBRATED_THRESHOLD_DB[SnrEstimatorKind.WADA]
    assert config_from_dict(SnrConfig, {"threshold_db": 12.5}).threshold_db == 12.5
    assert isinstance(make_estimator(wada), WadaSnrEstimator)
    assert isinstance(make_estimator(cfg), VadGatedSnrEstimator)
    with pytest.raises(ConfigError, match="denoise"):
        make_estimator(SnrConfig(estimator=SnrEstimatorKind.DENOISER))
    with pytest.raises(ConfigError, match="estimator"):
        config_from_dict(SnrConfig, {"estimator": "oracle"})
    with pytest.raises(ConfigError, match="min_db"):
        SnrConfig(min_db=10.0, max_db=0.0)
    tone = np.sin(np.arange(16000) / 16000 * 2 * np.pi * 200).astype(np.float32)
    assert estimate_snr(tone, 16000, wada) == WadaSnrEstimator().estimate(tone, 16000)
