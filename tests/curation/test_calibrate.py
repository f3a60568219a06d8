"""SNR calibration: a tiny run writes the plot and tables, curves rise with the true SNR, seeded."""

from __future__ import annotations

import csv

import numpy as np
from scipy.stats import spearmanr

from curation.calibrate import active_speech_power, calibrate_snr, choose_threshold, mix_at_snr
from curation.snr import SnrConfig, SnrEstimatorKind, WadaSnrEstimator
from tests.helpers.curation_audio_media import load_asset


def test_tiny_calibration_writes_files_and_curves_rise(tmp_path):
    result = calibrate_snr(tmp_path / "cal", mixtures_per_bin=2, seed=3)
    assert result.png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(result.csv_path) as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["true_snr_db"]) for r in rows] == list(range(-5, 36))
    assert set(result.estimates_db) == {"vad_gated", "vad_gated_silero", "wada"}
    table = result.markdown_path.read_text()
    assert "| vad_gated |" in table and "| 35 |" in table
    for name, mean in result.mean_db.items():
        assert spearmanr(result.bins_db, mean).statistic > 0.85, name
        assert mean[-10:].mean() > mean[:10].mean() + 12.0, name
        assert float(rows[-1][f"{name}_mean_db"]) == round(mean[-1], 2)
        assert 10.0 <= result.thresholds_db[name] <= 35.0
    assert result.true_db.size == 82
    assert np.all(np.abs(result.true_db - np.repeat(result.bins_db, 2)) <= 0.5)


def test_calibration_is_seeded(tmp_path):
    wada = {"wada": WadaSnrEstimator(SnrConfig(estimator=SnrEstimatorKind.WADA)).estimate}
    kwargs = {"mixtures_per_bin": 1, "snr_range_db": (0, 10), "scorers": wada}
    a = calibrate_snr(tmp_path / "a", seed=5, **kwargs)
    b = calibrate_snr(tmp_path / "b", seed=5, **kwargs)
    c = calibrate_snr(tmp_path / "c", seed=6, **kwargs)
    np.testing.assert_array_equal(a.estimates_db["wada"], b.estimates_db["wada"])
    assert not np.array_equal(a.estimates_db["wada"], c.estimates_db["wada"])
    assert a.csv_path.read_text() == b.csv_path.read_text()


def test_threshold_rule_known_answers():
    true = np.arange(-5.0, 35.0, 0.1)
    assert choose_threshold(true, true, 17.0, 0.0) == 17.0
    assert choose_threshold(true, true, 17.0, 0.05) == 16.5  # 5 of 185 kept (2.7 %) are below
    assert choose_threshold(true, true + 3.0, 17.0, 0.0) == 20.0  # biased high by 3 dB
    noisy = true + np.random.default_rng(0).normal(0.0, 3.0, true.size)
    loose = choose_threshold(true, noisy, 17.0, 0.2)
    strict = choose_threshold(true, noisy, 17.0, 0.02)
    assert loose < strict


def test_mixing_hits_the_active_speech_snr():
    speech = load_asset("cmu_arctic_us_aew_a0002.wav")
    noise = load_asset("exercise_bike.wav")[: speech.size]
    for snr_db in (-5.0, 17.0, 35.0):
        mixture = mix_at_snr(speech, noise, snr_db)
        added = mixture.astype(np.float64) - speech
        got = 10 * np.log10(active_speech_power(speech, 16000) / np.mean(added**2))
        assert abs(got - snr_db) < 1e-3


def test_committed_calibration_matches_the_default_thresholds():
    from pathlib import Path

    from curation.snr import CALIBRATED_THRESHOLD_DB

    table = Path(__file__).resolve().parents[2] / "docs" / "snr_calibration" / "snr_calibration.md"
    rows: dict[str, float] = {}
    for line in table.read_text().splitlines():  # the first table: estimator | threshold | ...
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 2 and cells[1] in ("vad_gated", "wada") and cells[1] not in rows:
            rows[cells[1]] = float(cells[2])
    assert rows["vad_gated"] == CALIBRATED_THRESHOLD_DB[SnrEstimatorKind.VAD_GATED]
    assert rows["wada"] == CALIBRATED_THRESHOLD_DB[SnrEstimatorKind.WADA]
