"""SNR calibration on real recordings: a tiny real run writes the plot and tables, holds speakers out,
its curves rise with the true SNR, it is seeded; mixing and the threshold rule have known answers."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from curation import calibrate
from curation.calibrate import (
    BABBLE,
    HELD_OUT,
    ROOM_TONE,
    STUDIO,
    TUNE,
    Scorer,
    active_speech_power,
    calibrate_snr,
    choose_threshold,
    keep_half_true_db,
    mix_at_snr,
    speaker_of,
    split_speakers,
)
from curation.snr import (
    CALIBRATED_THRESHOLD_DB,
    SnrConfig,
    SnrEstimatorKind,
    VadGatedSnrEstimator,
    WadaSnrEstimator,
)
from curation.vad import VadConfig
from tests.helpers.curation_audio_media import load_asset

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
ASSETS = calibrate.ASSETS_DIR
NOISE = {"kitchen": [ASSETS / "doing_the_dishes.wav"], "music": [ASSETS / "guitar_16k.wav"]}


def _tiny(out: Path, seed: int = 0, **kwargs) -> calibrate.CalibrationResult:
    """Six real LibriSpeech speakers (3 tuned on, 3 held out), real kitchen noise and guitar, two
    simulated rooms, 3-4 s windows."""
    options = {
        "mixtures_per_bin": 1,
        "seed": seed,
        "speech": [DATA],
        "noise": NOISE,
        "snr_range_db": (0, 30),
        "segment_s": (3.0, 4.0),
        "num_rooms": 2,
        "studio_per_speaker": 1,
        "scorers": {"vad_gated": Scorer(VadGatedSnrEstimator().estimate, VadConfig())},
    }
    options.update(kwargs)
    return calibrate_snr(out, **options)


def test_tiny_real_calibration_writes_files_holds_speakers_out_and_curves_rise(tmp_path):
    result = _tiny(tmp_path / "cal")
    assert result.png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(result.csv_path) as fh:
        rows = list(csv.DictReader(fh))
    assert result.kinds == (ROOM_TONE, "kitchen", "music", BABBLE)
    assert len(rows) == 4 * 31  # one row per kind and 1 dB bin, 0..30 dB
    assert {r["kind"] for r in rows} == set(result.kinds)
    table = result.markdown_path.read_text()
    assert "| vad_gated |" in table and "| 30 |" in table
    # speakers: 6 real ones, each in exactly one half, both halves used for every kind
    assert set(result.speaker) == {"19", "1363", "1624", "5339", "7367", "8629"}
    for s in set(result.speaker):
        assert len(set(result.split[result.speaker == s])) == 1
    for kind in (*result.kinds, STUDIO):
        assert set(result.split[result.kind == kind]) == {TUNE, HELD_OUT}
    assert np.isnan(result.true_db[result.kind == STUDIO]).all()
    assert np.all(result.rt60_s[result.kind != STUDIO] >= 0.2)
    # the curve rises with the true SNR on the held-out half (room tone: the steadiest noise)
    est, true = result.estimates_db["vad_gated"], result.true_db
    sel = (result.split == HELD_OUT) & (result.kind != STUDIO) & (result.kind != "music")
    assert spearmanr(true[sel], est[sel]).statistic > 0.7  # a few pause-less 3 s windows read low
    mean = result.mean_db["vad_gated"][ROOM_TONE]
    assert np.nanmean(mean[-8:]) > np.nanmean(mean[:8]) + 12.0
    assert 10.0 <= result.thresholds_db["vad_gated"] <= 30.0
    rates = result.rates["vad_gated"]
    assert rates["keep clean"] >= 0.8 and rates["reject noisy"] >= 0.7, rates
    assert 0.0 <= result.precision["vad_gated"] <= 1.0 and 0.0 <= result.recall["vad_gated"] <= 1.0


def test_calibration_is_seeded(tmp_path):
    wada = {
        "wada": Scorer(WadaSnrEstimator(SnrConfig(estimator=SnrEstimatorKind.WADA)).estimate, None)
    }
    kwargs = {"snr_range_db": (10, 12), "scorers": wada, "noise": {}, "babble_talkers": (0, 0)}
    a = _tiny(tmp_path / "a", seed=5, **kwargs)
    b = _tiny(tmp_path / "b", seed=5, **kwargs)
    c = _tiny(tmp_path / "c", seed=6, **kwargs)
    assert a.kinds == (ROOM_TONE,)
    np.testing.assert_array_equal(a.estimates_db["wada"], b.estimates_db["wada"])
    assert not np.array_equal(a.estimates_db["wada"], c.estimates_db["wada"])
    assert a.csv_path.read_text() == b.csv_path.read_text()


def test_command_line_runs_on_real_folders(tmp_path, capsys):
    code = calibrate.main(
        [
            "--speech",
            str(DATA),
            "--noise",
            f"kitchen={ASSETS / 'doing_the_dishes.wav'}",
            "--out",
            str(tmp_path / "cli"),
            "--mixtures-per-bin",
            "1",
            "--rooms",
            "2",
            "--snr-range",
            "8",
            "12",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "vad_gated: threshold" in out and "wada: threshold" in out
    assert (tmp_path / "cli" / "snr_calibration.md").exists()
    with pytest.raises(SystemExit):
        calibrate.main(["--noise", "no-kind-here"])


def test_mixtures_hit_their_true_snr_on_reverberant_speech():
    """True SNR = active level of the reverberant speech window / power of all that was added."""
    talk = calibrate.load_audio(DATA / "8629-261139-0000.flac")
    others = [calibrate.load_audio(DATA / f"{s}.flac") for s in ("19-198-0000", "1624-142933-0000")]
    room = calibrate.simulate_rooms(1, 3, (0.4, 0.6))[0]
    kitchen = [calibrate.load_audio(ASSETS / "doing_the_dishes.wav")]
    for kind, true_db in ((ROOM_TONE, 30.0), ("kitchen", 5.0), (BABBLE, -3.0)):
        m = calibrate.make_mixture(
            kind,
            true_db,
            talk,
            room,
            np.random.default_rng(1),
            segment_n=48000,
            context_n=16000,
            noise=kitchen,
            babble=others,
        )
        win = slice(m.start, m.stop)
        added = m.audio[win].astype(np.float64) - m.speech[win]
        got = 10 * np.log10(active_speech_power(m.speech[win], 16000) / np.mean(added**2))
        assert got == pytest.approx(true_db, abs=0.01), kind
        assert -12.5 <= 20 * np.log10(np.abs(m.audio).max()) <= -0.5
        assert m.rt60_s == room.rt60_s and m.audio.size == 48000 + 2 * 16000


def test_mixing_hits_the_active_speech_snr():
    speech = load_asset("cmu_arctic_us_aew_a0002.wav")
    noise = load_asset("exercise_bike.wav")[: speech.size]
    for snr_db in (-5.0, 17.0, 35.0):
        mixture = mix_at_snr(speech, noise, snr_db)
        added = mixture.astype(np.float64) - speech
        got = 10 * np.log10(active_speech_power(speech, 16000) / np.mean(added**2))
        assert abs(got - snr_db) < 1e-3


def test_speakers_and_halves_known_answers():
    assert speaker_of(Path("x/103-1240-0000.flac")) == "103"
    assert speaker_of(Path("cmu_arctic_us_aew_a0001.wav")) == "aew"
    assert speaker_of(Path("librispeech_example1.wav")) == "librispeech_example1"
    halves = split_speakers(["1363", "19", "103", "aew", "8629"])
    assert halves == {"19": TUNE, "103": HELD_OUT, "1363": TUNE, "8629": HELD_OUT, "aew": TUNE}


def test_threshold_rule_known_answers():
    keep, reject = np.array([20.0, 25.0, 30.0]), np.array([5.0, 10.0, 15.0])
    # every T in (15, 20] separates them; without curve data: the middle of that range
    assert choose_threshold(keep, reject) == 18.0
    # with an unbiased curve, the tie goes to the T whose 50 %-keep true SNR is nearest 17 dB
    true = np.repeat(np.arange(-5.0, 36.0), 10) + np.tile(np.linspace(-0.45, 0.45, 10), 41)
    bins = np.arange(-5.0, 36.0)
    assert choose_threshold(keep, reject, true_db=true, estimate_db=true, bins_db=bins) == 17.0
    assert (
        choose_threshold(keep, reject, true_db=true, estimate_db=true + 3.0, bins_db=bins) == 20.0
    )
    # overlapping classes: the balanced accuracy decides
    overlap = choose_threshold(np.array([12.0, 30.0, 31.0, 32.0]), np.array([14.0, 2.0, 3.0]))
    assert overlap == 22.5  # keeps 3 of 4, rejects 3 of 3 anywhere in (14, 30]: the middle
    assert keep_half_true_db(true, true >= 17.0, bins) == pytest.approx(17.0, abs=0.1)
    assert keep_half_true_db(true, true >= 99.0, bins) == math.inf


def test_committed_calibration_matches_the_default_thresholds():
    table = Path(__file__).resolve().parents[2] / "docs" / "snr_calibration" / "snr_calibration.md"
    rows: dict[str, float] = {}
    for line in table.read_text().splitlines():  # the first table: estimator | threshold | ...
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 2 and cells[1] in ("vad_gated", "wada") and cells[1] not in rows:
            rows[cells[1]] = float(cells[2])
    assert rows["vad_gated"] == CALIBRATED_THRESHOLD_DB[SnrEstimatorKind.VAD_GATED]
    assert rows["wada"] == CALIBRATED_THRESHOLD_DB[SnrEstimatorKind.WADA]


def test_music_threshold_rule_known_answer():
    """Balanced accuracy of "SNR kept and music < M"; ties within the tolerance go to the highest M."""
    from curation.calibrate import choose_music_threshold

    music = np.array([0.0, 0.01, 0.02, 0.3, 0.5, 0.06, 0.9, 0.9])
    snr_kept = np.array([True, True, True, True, True, True, True, False])
    clean = np.array([True, True, True, False, False, False, False, False])
    noisy = ~clean
    # M in (0.02, 0.06] keeps every clean window and rejects every noisy one: the highest is 0.06
    assert choose_music_threshold(music, snr_kept, clean, noisy) == pytest.approx(0.06)
    # a wider tolerance reaches thresholds that keep one noisy window in five (0.3 -> 0.9 BA)
    assert choose_music_threshold(music, snr_kept, clean, noisy, tolerance=0.1) == pytest.approx(
        0.3
    )


def test_tiny_calibration_chooses_a_music_threshold_and_reports_held_out_noise(tmp_path):
    """The music check is scored on every window; its threshold is chosen on the music kinds of the
    tune half and rejects at least as much music as the SNR threshold alone; a held-out noise kind
    is reported but chooses nothing."""
    result = _tiny(
        tmp_path / "cal",
        noise={"kitchen": NOISE["kitchen"]},
        eval_noise={"music_heldout": NOISE["music"]},
    )
    assert result.eval_kinds == ("music_heldout",)
    assert result.music_scores is not None and result.music_scores.shape == result.kind.shape
    # no music among the kinds that choose: no music threshold, no combined row
    assert result.music_threshold is None and "vad_gated + music" not in result.rates
    assert "reject held-out noise <= 10" in result.rates["vad_gated"]
    with_music = _tiny(tmp_path / "cal2")
    assert with_music.music_threshold is not None and 0 < with_music.music_threshold <= 0.5
    alone, both = with_music.rates["vad_gated"], with_music.rates["vad_gated + music"]
    assert both["reject music <= 10"] >= alone["reject music <= 10"]
    assert both["keep clean"] <= alone["keep clean"]
    # music alone scores high, clean studio speech low
    studio = with_music.music_scores[with_music.kind == STUDIO]
    assert np.median(studio) < 0.01
    assert "Music score (YAMNet" in with_music.markdown_path.read_text()
