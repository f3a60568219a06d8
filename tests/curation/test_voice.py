"""Speaker encoder: reproduces the reference implementation and separates real speakers."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from curation import voice

DATA = Path(__file__).parents[1] / "data"


def _audio(name: str) -> np.ndarray:
    a, rate = sf.read(DATA / "audio" / f"{name}.flac", dtype="float32")
    assert rate == 16000
    return a


@pytest.fixture(scope="module")
def enc():
    return voice.load_voice_encoder()


@pytest.mark.parametrize("name", ["8629-261139-0000", "1363-135842-0000"])
def test_matches_reference_resemblyzer(enc, name):
    ref = np.load(DATA / "voice" / "reference_resemblyzer.npz")
    a = _audio(name)
    pre = enc.preprocess(a)
    assert len(pre) == int(ref[f"prelen_{name[:4]}"])  # same VAD trimming
    mel = voice.mel_spectrogram(pre)[:100]
    want = ref[f"mel_{name[:4]}"]
    assert np.max(np.abs(mel - want)) <= 1e-5 * np.max(np.abs(want))
    emb = enc.embed(a)
    assert emb.shape == (256,) and emb.dtype == np.float32
    assert float(emb @ ref[f"emb_{name[:4]}"]) > 0.9999


def test_same_speaker_closer_than_different_speakers(enc):
    halves = {}
    for name in ["8629-261139-0000", "1363-135842-0000"]:
        a = _audio(name)
        n = len(a) // 2
        halves[name[:4]] = (enc.embed(a[:n]), enc.embed(a[n:]))
    others = [enc.embed(_audio(n)) for n in ["1624-142933-0000", "5339-14133-0000"]]
    same = [float(x @ y) for x, y in halves.values()]
    diff = [float(h @ o) for pair in halves.values() for h in pair for o in others]
    diff.append(float(halves["8629"][0] @ halves["1363"][0]))
    assert min(same) > max(diff) + 0.1


def test_resamples_other_rates(enc):
    from scipy.signal import resample_poly

    a = _audio("8629-261139-0000")[: 3 * 16000]
    a48 = resample_poly(a, 3, 1).astype(np.float32)
    assert float(enc.embed(a48, 48000) @ enc.embed(a)) > 0.98


def test_missing_weights_is_a_clear_error(tmp_path):
    with pytest.raises(voice.VoiceModelError, match="not found"):
        voice.VoiceEncoder(tmp_path / "nope.pt")
