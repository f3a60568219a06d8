"""Audio and mouth cores: known answers, achieved SNR, determinism of the plan."""

from __future__ import annotations

import numpy as np
import pytest

from avforge.synth import MissingToolError, Scenario, section
from avforge.synth import SectionKind as K
from avforge.synth.audio import (
    active_power,
    noise_gain_for_snr,
    normalize_active,
    snr_db,
    speech_stream,
)
from avforge.synth.mouth import mouth_opening, speech_envelope_db
from avforge.synth.timeline import plan_scenario
from avforge.synth.voices import (
    SAMPLE_RATE_HZ,
    SPEECH_LEVEL_DB,
    available_speakers,
    espeak_available,
    espeak_sentence,
    load_utterances,
)

SR = SAMPLE_RATE_HZ


def bursts(
    seeded: np.random.Generator, on_s: float = 0.4, off_s: float = 0.6, n: int = 4
) -> np.ndarray:
    """Alternating tone bursts and silence: an obvious envelope."""
    t = np.arange(int(on_s * SR)) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.01 * seeded.standard_normal(len(t)))
    gap = np.zeros(int(off_s * SR))
    return np.concatenate([np.concatenate([tone, gap]) for _ in range(n)]).astype(np.float32)


def test_active_power_ignores_pauses(seeded):
    x = bursts(seeded)
    burst_only = x[: int(0.4 * SR)]
    assert active_power(x, SR) == pytest.approx(active_power(burst_only, SR), rel=0.05)
    assert active_power(np.zeros(SR, dtype=np.float32), SR) == 0.0


def test_normalize_active_hits_target(seeded):
    y = normalize_active(bursts(seeded), SR, -30.0)
    assert 10 * np.log10(active_power(y, SR)) == pytest.approx(-30.0, abs=0.05)


@pytest.mark.parametrize("target_db", [-5.0, 0.0, 12.5, 30.0])
def test_noise_gain_achieves_requested_snr(seeded, target_db):
    speech = bursts(seeded)
    noise = seeded.standard_normal(len(speech)).astype(np.float32)
    g = noise_gain_for_snr(speech, noise, target_db, SR)
    assert snr_db(speech, g * noise, SR) == pytest.approx(target_db, abs=0.01)


def test_speech_stream_fills_with_short_pauses(seeded):
    utts = load_utterances("axb")
    out = speech_stream(utts, 10 * SR, SR, seeded)
    assert out.shape == (10 * SR,) and out.dtype == np.float32
    levels = 20 * np.log10(np.abs(out) + 1e-9)
    assert np.mean(levels > -60) > 0.6  # mostly speech
    assert np.all(out[: int(0.09 * SR)] == 0.0)  # the lead-in


def test_utterances_are_level_normalised():
    for utt in load_utterances("aew") + load_utterances("libri_f2"):
        assert 10 * np.log10(active_power(utt, SR)) == pytest.approx(SPEECH_LEVEL_DB, abs=0.1)


def test_envelope_known_answer(seeded):
    x = bursts(seeded)  # 0.4 s on, 0.6 s off, 4 times: 100 frames at 25 fps
    env = speech_envelope_db(x, SR, 25, 100)
    on = np.concatenate([np.arange(k * 25 + 2, k * 25 + 8) for k in range(4)])
    off = np.concatenate([np.arange(k * 25 + 13, k * 25 + 23) for k in range(4)])
    assert np.all(env[on] > -15) and np.all(env[off] < -90)
    levels = mouth_opening(env, 12)
    assert levels.min() == 0 and levels.max() == 11
    assert np.all(levels[on] >= 9) and np.all(levels[off] == 0)


def test_plan_is_deterministic_and_seed_dependent():
    parts = [section(K.CLEAN, 2.0, "aew"), section(K.NOISY, 2.0, "axb", snr_db=5.0)]
    a = plan_scenario(Scenario.from_parts("p", parts, seed=3))
    b = plan_scenario(Scenario.from_parts("p", parts, seed=3))
    c = plan_scenario(Scenario.from_parts("p", parts, seed=4))
    assert np.array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio)
    assert len(a.audio) == 4 * SR and a.n_frames == 100
    assert np.array_equal(a.sections[0].faces[0].levels, b.sections[0].faces[0].levels)


def test_plan_noisy_snr_and_dubbed_mouth():
    sc = Scenario.from_parts(
        "p",
        [
            section(K.NOISY, 3.0, "aew", snr_db=5.0),
            section(K.DUBBED, 3.0, "aew", voice_id="axb"),
            section(K.SILENCE, 2.0, "axb"),
        ],
        seed=1,
    )
    plan = plan_scenario(sc)
    noisy, dubbed, silence = plan.sections
    assert noisy.measured_snr_db == pytest.approx(5.0, abs=0.2)  # room tone adds a little noise
    assert dubbed.faces[0].mouth_driver_id == "aew" and dubbed.faces[0].levels.max() > 6
    assert silence.faces[0].levels.max() == 0 and not silence.faces[0].speaking
    room = plan.audio[int(6.2 * SR) :]
    assert 20 * np.log10(np.sqrt(np.mean(room**2))) == pytest.approx(-62.0, abs=1.5)


def test_without_espeak_its_speakers_are_absent(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no espeak-ng on PATH
    assert not espeak_available()
    assert "espeak_f" not in available_speakers() and "aew" in available_speakers()
    with pytest.raises(MissingToolError):
        espeak_sentence("Hello there.", "en-us")


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")
def test_espeak_speaker_is_deterministic_and_normalised():
    utts = load_utterances("espeak_f")
    assert len(utts) == 6 and all(len(u) > SR for u in utts)
    for utt in utts:
        assert 10 * np.log10(active_power(utt, SR)) == pytest.approx(SPEECH_LEVEL_DB, abs=0.1)
    again = espeak_sentence("The birch canoe slid on the smooth planks.", "en-us+f3")
    assert np.array_equal(
        again, espeak_sentence("The birch canoe slid on the smooth planks.", "en-us+f3")
    )
