"""The learned speech-SNR estimator: ``snr: {estimator: denoiser, model: PATH}`` end to end.

A tiny audio-only 1-speaker + residual model is trained here for a few seconds of CPU on real
LibriSpeech speech (``tests/data/audio``) under real kitchen noise (``avforge/assets/audio``), saved as
a model package, and used as curation's denoiser. It is a plumbing model, not a good denoiser: it
learns roughly a fixed gain with a little input dependence (held-out clean speech reads ~3 dB, the
same speech at 0 dB SNR ~1 dB: a 1.5-2 dB margin), which is what the known-answer test asserts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

import manifests
from avforge import variants
from avforge.cli import app
from avforge.core.cluster import ClusterConfig, ClusterType
from avforge.core.config import ConfigError, config_from_dict
from avforge.testing.training_corpus import TINY_AUDIO
from curation import calibrate
from curation.calibrate import mix_at_snr
from curation.config import CurateConfig, load_curate_config
from curation.pipeline import curate
from curation.snr import DenoiserSnrEstimator, SnrConfig, SnrEstimatorKind, make_estimator
from curation.sources import scan_folder
from training.denoiser import DenoiserError, ModelDenoiser, load_denoiser
from training.models import AudioOnlySeparator, AudioVisualSeparator, save_model

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
ASSETS = calibrate.ASSETS_DIR
TINY = TINY_AUDIO
TARGET = "8629-261139-0000.flac"
"""The held-out talker of the known-answer test (never seen in training)."""


def _read(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 16000
    return audio


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """These models are tiny: two torch threads only spin (minutes on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_tiny_denoiser(path: Path, steps: int = 60, seed: int = 0) -> Path:
    """Train a tiny ``n_src=1, residual_mask`` model on 0.5 s crops of real speech + real kitchen
    noise at -5..20 dB (negative SNR loss on speech and residual outputs) and save its package
    (~3 s of CPU on one thread)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    speech = [_read(p) for p in sorted(DATA.glob("*.flac")) if p.name != TARGET]
    noise = _read(ASSETS / "doing_the_dishes.wav")
    model = AudioOnlySeparator(n_src=1, residual_mask=True, **TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    n = 8000
    for _ in range(steps):
        mixes, targets = [], []
        for _ in range(4):
            s = speech[int(rng.integers(len(speech)))]
            s = s[(start := int(rng.integers(s.size - n))) : start + n]
            z = noise[(start := int(rng.integers(noise.size - n))) : start + n]
            gain = math.sqrt(np.mean(s**2) / (np.mean(z**2) * 10 ** (rng.uniform(-5, 20) / 10)))
            mixes.append(s + gain * z)
            targets.append(np.stack([s, gain * z]))
        target = torch.tensor(np.stack(targets))
        out = model(torch.tensor(np.stack(mixes)), None).waveforms
        ratio = target.pow(2).sum(-1) / ((out - target).pow(2).sum(-1) + 1e-8)
        loss = -10.0 * torch.log10(ratio + 1e-8).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_model(model.eval(), path)
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return train_tiny_denoiser(tmp_path_factory.mktemp("denoiser") / "model.pt")


def _denoiser_cfg(path: Path | str | None, **extra: object) -> dict:
    snr: dict[str, object] = {"estimator": "denoiser", **extra}
    if path is not None:
        snr["model"] = str(path)
    return {"snr": snr}


def _one_line_config_error(data: dict, match: str) -> ConfigError:
    with pytest.raises(ConfigError, match=match) as info:
        config_from_dict(CurateConfig, data)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("snr.model: ")
    return info.value


# --------------------------------------------------------------------------- (a) config errors


def test_denoiser_without_a_model_is_a_config_error_at_load(tmp_path):
    _one_line_config_error(_denoiser_cfg(None), "needs a trained 1-speaker")
    yaml = tmp_path / "curate.yaml"
    yaml.write_text("snr: {estimator: denoiser}\n")
    with pytest.raises(ConfigError, match=r"snr\.model"):
        load_curate_config(yaml)


def test_a_missing_or_broken_model_file_is_a_config_error_at_load(tmp_path):
    _one_line_config_error(_denoiser_cfg(tmp_path / "nope.pt"), "no such model file")
    text = tmp_path / "notes.pt"
    text.write_text("not a model\n" * 50)
    _one_line_config_error(_denoiser_cfg(text), "not an avforge model package")
    other = tmp_path / "dict.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    _one_line_config_error(_denoiser_cfg(other), "not an avforge model package")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    _one_line_config_error(_denoiser_cfg(folder), "no such model file")


def test_a_model_that_is_not_one_speaker_audio_only_is_a_config_error(tmp_path):
    two = tmp_path / "two.pt"
    save_model(AudioOnlySeparator(n_src=2, **TINY), two)
    _one_line_config_error(_denoiser_cfg(two), "one speaker output, got AudioOnlySeparator with 2")
    av = tmp_path / "av.pt"
    save_model(AudioVisualSeparator(n_faces=1, embedding_dim=8, visual_channels=4, **TINY), av)
    _one_line_config_error(_denoiser_cfg(av), "one speaker output, got AudioVisualSeparator")


def test_a_model_with_another_estimator_is_refused(model_path):
    with pytest.raises(ConfigError, match=r"snr\.model: only the denoiser"):
        config_from_dict(CurateConfig, {"snr": {"estimator": "wada", "model": str(model_path)}})


def test_curate_command_stops_with_one_error_line_for_a_bad_model(tmp_path):
    (tmp_path / "videos").mkdir()
    config = tmp_path / "curate.yaml"
    config.write_text(f"snr: {{estimator: denoiser, model: {tmp_path / 'missing.pt'}}}\n")
    run = CliRunner().invoke(
        app,
        ["curate", str(tmp_path / "videos"), "--out", str(tmp_path / "c"), "--config", str(config)],
    )
    assert run.exit_code == 2, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no such model file" in errors[0], run.output
    assert not (tmp_path / "c" / "sources").exists()


def test_model_denoiser_hop_is_on_the_40_ms_grid(model_path):
    model = load_denoiser(model_path).model
    denoiser = ModelDenoiser(model)
    assert denoiser.hop_s == 1.52
    # 7.4 s: several windows, so the default hop is really used (1.5 s failed here on first use)
    audio = _read(DATA / TARGET)
    assert denoiser(audio, 16000).shape == audio.shape
    for bad in ({"hop_s": 1.5}, {"window_s": 3.01}, {"hop_s": 4.0}, {"hop_s": 0.0}):
        with pytest.raises(DenoiserError):
            ModelDenoiser(model, **bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- (b) known answer


def test_tiny_trained_model_ranks_clean_speech_above_0_db_noise(model_path):
    cfg = config_from_dict(SnrConfig, {"estimator": "denoiser", "model": str(model_path)})
    assert cfg.model == model_path.absolute() and cfg.threshold_db == 17.0
    estimator = make_estimator(cfg)
    assert isinstance(estimator, DenoiserSnrEstimator)
    clean = _read(DATA / TARGET)
    clean_db = estimator.estimate(clean, 16000)
    assert math.isfinite(clean_db) and cfg.min_db < clean_db < cfg.max_db
    for name in ("doing_the_dishes.wav", "exercise_bike.wav"):  # trained on the first only
        noise = _read(ASSETS / name)[16000 : 16000 + clean.size]
        noisy_db = estimator.estimate(mix_at_snr(clean, noise, 0.0), 16000)
        assert math.isfinite(noisy_db)
        assert clean_db > noisy_db + 0.5, (name, clean_db, noisy_db)
    # any rate: resampled to the model's 16 kHz and back
    from scipy.signal import resample_poly

    at_8k = resample_poly(clean, 1, 2).astype(np.float32)
    assert load_denoiser(model_path)(at_8k, 8000).shape == at_8k.shape


def test_speech_frames_gate_the_denoiser_ratio():
    """Known answer with an oracle denoiser: pauses (noise only) do not count, speech frames do."""
    rng = np.random.default_rng(1)
    speech = np.concatenate([np.zeros(16000), _read(DATA / TARGET)[:32000], np.zeros(16000)])
    noise = rng.normal(0.0, 1.0, speech.size) * math.sqrt(np.mean(speech[16000:48000] ** 2) / 100)
    mixture = (speech + noise).astype(np.float32)
    oracle = DenoiserSnrEstimator(lambda audio, rate: speech.astype(np.float32))
    from curation.vad import SpeechActivity

    activity = SpeechActivity(0.02, np.r_[np.zeros(50), np.ones(100), np.zeros(50)].astype(bool))
    got = oracle.estimate(mixture, 16000, activity)
    want = 10 * math.log10(np.mean(speech[16000:48000] ** 2) / np.mean(noise[16000:48000] ** 2))
    assert got == pytest.approx(want, abs=0.05)
    silent = SpeechActivity(0.02, np.zeros(200, bool))
    assert oracle.estimate(mixture, 16000, silent) == -20.0


# --------------------------------------------------------------------------- (c) curation


def test_curating_a_real_talk_with_the_denoiser_estimator(model_path, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    talk = variants.bundled_clip("retalking_face4").path
    (folder / "talk.mp4").write_bytes(talk.read_bytes())
    cfg = config_from_dict(CurateConfig, {**_denoiser_cfg(model_path), "run": {"progress": False}})
    assert cfg.snr.estimator is SnrEstimatorKind.DENOISER
    corpus = tmp_path / "corpus"
    summary = curate(
        scan_folder(folder), str(corpus), cfg, ClusterConfig(type=ClusterType.SYNCHRONOUS)
    )
    assert summary.sources_ok == 1
    sources = manifests.read_sources(corpus).to_pylist()
    assert [r["status"] for r in sources] == ["ok"] and sources[0]["error"] is None
    segments = manifests.read_segments(corpus).to_pylist()
    scored = [r["snr_db"] for r in segments if r["snr_db"] is not None]
    assert scored, segments
    assert all(math.isfinite(v) and -20.0 < v < 60.0 for v in scored), scored
    resolved = (corpus / "config" / "curate.yaml").read_text()
    assert "estimator: denoiser" in resolved and str(model_path.absolute()) in resolved


def test_calibrate_snr_evaluates_the_denoiser_like_the_others(model_path, tmp_path):
    scorers = calibrate.default_scorers(denoiser=model_path)
    assert set(scorers) == {"vad_gated", "wada", "vad_gated_previous", "denoiser"}
    result = calibrate.calibrate_snr(
        tmp_path / "cal",
        mixtures_per_bin=1,
        speech=[DATA],
        noise={},
        snr_range_db=(0, 1),
        num_rooms=2,
        babble_talkers=(0, 0),
        studio_per_speaker=1,
        segment_s=(3.0, 3.5),
        scorers={"denoiser": scorers["denoiser"]},
    )
    assert np.all(np.isfinite(result.estimates_db["denoiser"]))
    assert "| denoiser |" in result.markdown_path.read_text()
    run = CliRunner().invoke(app, ["calibrate-snr", "--denoiser", str(tmp_path / "missing.pt")])
    assert run.exit_code == 2 and "no such model file" in run.output, run.output
