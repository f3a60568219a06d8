"""Known answers for the separation metrics (training/metrics.py)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from training import metrics

SR = 16000
SPEECH = Path(__file__).resolve().parents[1] / "data" / "speech" / "librispeech"


def _tone(freq_hz: float, phase: float = 0.0, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return torch.sin(2 * math.pi * freq_hz * t + phase).float()


def _batch(*signals: torch.Tensor) -> torch.Tensor:
    return torch.stack(signals).unsqueeze(0)  # (1, n, L)


def test_si_sdr_of_a_scaled_target_plus_an_orthogonal_error():
    """est = 3 s + e with e orthogonal to s: SI-SDR = 10 log10(|3s|^2 / |e|^2), whatever the scale.
    s = sin, e = 0.3 cos at 100 Hz over whole periods: |3s|^2 / |e|^2 = 9 / 0.09 -> 20 dB."""
    s, e = _tone(100.0), 0.3 * _tone(100.0, math.pi / 2)
    est = _batch(3.0 * s + e)
    value = metrics.si_sdr(est, _batch(s))
    assert value.shape == (1, 1)
    assert float(value) == pytest.approx(20.0, abs=0.01)
    assert float(metrics.si_sdr(0.01 * est, _batch(s))) == pytest.approx(20.0, abs=0.01)


def test_improvements_are_against_the_unprocessed_mixture():
    """Two orthogonal equal-power sources: the mixture scores 0 dB SI-SDR against each; an estimate
    s1 + 0.1 s2 scores 20 dB, so its SI-SDRi is 20 dB; the mixture itself improves by 0."""
    s1, s2 = _tone(200.0), _tone(300.0)
    targets, mixture = _batch(s1, s2), (s1 + s2).unsqueeze(0)
    mix_est = mixture.unsqueeze(1).expand_as(targets)
    np.testing.assert_allclose(metrics.si_sdr(mix_est, targets).numpy(), [[0.0, 0.0]], atol=0.01)
    est = _batch(s1 + 0.1 * s2, s2 + 0.1 * s1)
    np.testing.assert_allclose(
        metrics.si_sdr_improvement(est, targets, mixture).numpy(), [[20.0, 20.0]], atol=0.01
    )
    np.testing.assert_allclose(
        metrics.si_sdr_improvement(mix_est, targets, mixture).numpy(), [[0.0, 0.0]], atol=0.01
    )


def test_sdr_forgives_a_short_filter_and_si_sdr_does_not():
    """BSS-eval SDR allows a causal 512-tap distortion filter: a target through a causal 3-tap
    filter scores far above the same estimate's SI-SDR (10 log10(1 / 0.45) = 3.5 dB); white noise 10 dB under the target scores about
    10 dB on both."""
    rng = np.random.default_rng(0)
    s = torch.from_numpy(rng.standard_normal(SR).astype(np.float32))
    causal = np.convolve(s.numpy(), [1.0, 0.6, 0.3])[: len(s)]  # s[n] + 0.6 s[n-1] + 0.3 s[n-2]
    filtered = torch.from_numpy(causal.astype(np.float32))
    assert float(metrics.sdr(_batch(filtered), _batch(s))) > 40.0
    assert float(metrics.si_sdr(_batch(filtered), _batch(s))) < 5.0
    noise = torch.from_numpy(rng.standard_normal(SR).astype(np.float32)) * math.sqrt(0.1)
    assert float(metrics.sdr(_batch(s + noise), _batch(s))) == pytest.approx(10.0, abs=0.5)
    assert float(metrics.si_sdr(_batch(s + noise), _batch(s))) == pytest.approx(10.0, abs=0.3)


def test_pesq_and_stoi_of_real_speech_against_itself_and_under_noise():
    """Real speech against itself: wide-band PESQ at its ceiling (4.64) and STOI 1; the same speech
    under white noise at 0 dB scores clearly lower on both; silence cannot be scored (NaN)."""
    x, rate = sf.read(sorted(SPEECH.glob("*.flac"))[0], dtype="float32")
    assert rate == SR
    assert metrics.pesq_wb(x, x) == pytest.approx(4.64, abs=0.01)
    assert metrics.stoi_score(x, x) == pytest.approx(1.0, abs=1e-3)
    noise = np.random.default_rng(1).standard_normal(len(x)).astype(np.float32)
    noisy = x + noise * np.sqrt(np.mean(x**2) / np.mean(noise**2))
    assert metrics.pesq_wb(noisy, x) < 1.5
    assert metrics.stoi_score(noisy, x) < 0.85


def test_stoi_of_a_signal_too_short_to_score_is_nan_not_pystois_sentinel():
    """pystoi needs 30 frames (384 ms) of target speech after dropping silent frames; with fewer it
    warns and returns 1e-5. Real speech cut to 0.3 s gives NaN here, quietly; 1 s scores normally."""
    x, _ = sf.read(sorted(SPEECH.glob("*.flac"))[0], dtype="float32")
    speech = x[np.argmax(np.abs(x) > 0.05) :]  # from the first loud sample on
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(metrics.stoi_score(speech[: int(0.3 * SR)], speech[: int(0.3 * SR)]))
        assert metrics.stoi_score(speech[:SR], speech[:SR]) == pytest.approx(1.0, abs=1e-3)
    assert math.isnan(metrics.pesq_wb(np.zeros_like(x), np.zeros_like(x)))


def test_sdr_matches_torchmetrics_on_real_speech_and_solves_on_several_threads():
    """The BSS-eval solve is ours (numpy): it gives torchmetrics' values (computed on one thread,
    where its solver works) to 1e-4 dB on a real two-speaker mixture, and the same values with torch
    on two threads, where torchmetrics' ``torch.linalg.solve`` raised 'Pivots given to lu_solve must
    all be greater or equal to 1' in this torch build and failed every validation step."""
    from torchmetrics.functional.audio import signal_distortion_ratio

    files = sorted(SPEECH.glob("*.flac"))[:2]
    speech = [torch.from_numpy(sf.read(f, dtype="float32")[0][: 2 * SR]) for f in files]
    targets = torch.stack(speech).unsqueeze(0)
    mixture = (speech[0] + speech[1]).expand(1, 2, -1).contiguous()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        reference = signal_distortion_ratio(
            mixture[0].double(), targets[0].double(), filter_length=512, zero_mean=True
        )
        ours_one = metrics.sdr(mixture, targets)
        torch.set_num_threads(2)
        ours_two = metrics.sdr(mixture, targets)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(ours_one[0].numpy(), reference.numpy(), atol=1e-4)
    np.testing.assert_array_equal(ours_two.numpy(), ours_one.numpy())
    assert abs(float(reference[0])) > 0.5  # not a trivial 0 dB case


def test_sdr_of_silent_and_exact_signals():
    """A silent target has no SDR (NaN), a silent estimate scores -inf, an exact copy of the target
    scores at float64's ceiling (about 160 dB), not NaN as 1 - c rounds to zero or below."""
    s = _tone(200.0)
    silent = torch.zeros_like(s)
    values = metrics.sdr(_batch(s, silent, s), _batch(silent, s, s))[0].numpy()
    assert np.isnan(values[0]) and values[1] == -np.inf and 140.0 < values[2] < 170.0
