"""The music check (curation/music.py): YAMNet's frontend and network with known answers on real
audio, the config's model checks, and the decision it adds to the SNR check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avforge.core import assets
from avforge.core.config import ConfigError
from curation.music import (
    MUSIC_CLASS,
    PATCH_FRAMES,
    class_names,
    log_mel,
    mel_matrix,
    music_detector,
    patches,
)
from curation.select import SegmentConfig, WindowEvidence, decide
from curation.snr import CALIBRATED_MUSIC_THRESHOLD, SnrConfig
from manifests.schema import RejectReason

DATA = Path(__file__).parents[1] / "data"
ASSETS = assets.AUDIO_DIR
RATE = 16000


def _read(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return audio.mean(axis=1), rate


def _top(scores: np.ndarray) -> str:
    return class_names()[int(np.argmax(scores.mean(axis=0)))]


def test_class_map_names_music_at_its_index():
    names = class_names()
    assert len(names) == 521
    assert names[MUSIC_CLASS] == "Music" and names[0] == "Speech" and names[494] == "Silence"


def test_frontend_puts_a_1khz_tone_in_its_mel_band():
    t = np.arange(2 * RATE) / RATE
    feats = log_mel(0.3 * np.sin(2 * np.pi * 1000.0 * t).astype(np.float32))
    assert feats.shape == (1 + (2 * RATE - 400) // 160, 64)
    # HTK mel: 1000 Hz is 1000 mel; bands centred every (mel(7500) - mel(125)) / 65 from mel(125).
    assert int(np.argmax(feats.mean(axis=0))) == 19
    assert mel_matrix()[0].sum() == 0.0  # the DC bin feeds no band


def test_silence_is_the_log_offset_and_short_input_pads_to_one_patch():
    feats = log_mel(np.zeros(RATE // 2, np.float32))
    assert np.allclose(feats, np.log(0.001))
    assert patches(feats).shape == (1, PATCH_FRAMES, 64)
    assert patches(log_mel(np.zeros(3 * RATE, np.float32))).shape == (5, PATCH_FRAMES, 64)


def test_known_answer_on_the_models_own_test_speech():
    """google-coral/coralmicro's test input for this network (0.975 s of speech): ``Speech`` on
    top; Google's float YAMNet says 0.998, this int8 network on our frontend 0.969."""
    raw = np.fromfile(DATA / "yamnet" / "coral_test_audio_int16.bin", np.int16)
    scores = music_detector().class_scores(raw.astype(np.float32) / 32768.0)
    assert scores.shape == (1, 521)
    assert _top(scores) == "Speech" and 0.93 <= scores[0, 0] <= 1.0
    assert scores[0, MUSIC_CLASS] < 0.01


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (ASSETS / "guitar_16k.wav", "Music"),
        (DATA / "music" / "monkeys_spinning_monkeys_10s.flac", "Music"),
        (DATA / "audio" / "8629-261139-0000.flac", "Speech"),
    ],
)
def test_real_recordings_get_their_class(path, expected):
    audio, rate = _read(path)
    scores = music_detector().class_scores(audio, rate)
    assert _top(scores) == expected
    music = float(scores[:, MUSIC_CLASS].mean())
    if expected == "Music":
        assert music > 0.5
    else:
        assert music < CALIBRATED_MUSIC_THRESHOLD / 4


def test_music_under_real_speech_scores_above_the_threshold_and_clean_speech_below():
    speech, _ = _read(DATA / "audio" / "8629-261139-0000.flac")
    music, _ = _read(DATA / "music" / "monkeys_spinning_monkeys_10s.flac")
    music = music[: len(speech)]
    detector = music_detector()
    gain = np.sqrt(np.mean(speech**2) / np.mean(music**2))
    assert detector.score(speech) < CALIBRATED_MUSIC_THRESHOLD
    assert detector.score(speech + gain * music) >= CALIBRATED_MUSIC_THRESHOLD  # 0 dB
    assert detector.score(speech + 0.01 * gain * music) < CALIBRATED_MUSIC_THRESHOLD  # 40 dB


def test_other_sample_rates_are_resampled():
    speech, rate = _read(DATA / "audio" / "8629-261139-0000.flac")
    from scipy.signal import resample_poly

    at_48k = resample_poly(speech, 3, 1).astype(np.float32)
    a = music_detector().class_scores(speech, rate)
    b = music_detector().class_scores(at_48k, 48000)
    assert a.shape == b.shape
    assert np.abs(a[:, 0] - b[:, 0]).max() < 0.05


def test_config_checks_the_music_model(tmp_path):
    assert SnrConfig().music_threshold == CALIBRATED_MUSIC_THRESHOLD
    assert SnrConfig().music_model is None  # the bundled one
    with pytest.raises(ConfigError, match="music_model: YAMNet model file not found"):
        SnrConfig(music_model=tmp_path / "missing.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match=r"music_model: .* is not a TFLite model"):
        SnrConfig(music_model=bad)
    with pytest.raises(ConfigError, match="music_model"):
        SnrConfig(music_threshold=None, music_model=bad)
    with pytest.raises(ConfigError, match="music_threshold"):
        SnrConfig(music_threshold=1.5)
    assert SnrConfig(music_threshold=None).music_threshold is None


def test_a_music_score_at_the_threshold_rejects_as_low_snr():
    cfg = SegmentConfig()
    ev = WindowEvidence(
        duration_s=5.0, tracks_present=1, speech_ratio=0.9, snr_db=30.0, snr_threshold_db=18.0
    )
    assert decide(ev, cfg) is None
    music = WindowEvidence(**{**ev.__dict__, "music_score": 0.04, "music_threshold": 0.04})
    assert decide(music, cfg) is RejectReason.LOW_SNR
    below = WindowEvidence(**{**ev.__dict__, "music_score": 0.039, "music_threshold": 0.04})
    assert decide(below, cfg) is None
    off = WindowEvidence(**{**ev.__dict__, "music_score": 0.9, "music_threshold": None})
    assert decide(off, cfg) is None
