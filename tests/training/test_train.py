"""End-to-end training runs: exact resume, and learning on real speech (audio-only and AV)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avforge.config import config_from_dict, load_config
from manifests.schema import Split
from tests.helpers.training_corpus import build_two_speaker_corpus
from training import metrics
from training.config import REDUCED_MODEL, TrainConfig
from training.data import MixtureSource, collate, split_config
from training.system import SeparationSystem
from training.train import face_stream_for, train

TINY = {
    "audio_channels": 4,
    "audio_out_channels": 2,
    "audio_layers": 4,
    "lstm_hidden": 8,
    "fc_dim": 8,
    "visual_channels": 8,
    "visual_layers": 2,
    "crop_feature_dim": 8,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build_two_speaker_corpus(tmp_path_factory.mktemp("train") / "corpus")


def _config(out: Path, corpus: Path, *, steps: int, workers: int, kind: str) -> TrainConfig:
    return config_from_dict(
        TrainConfig,
        {
            "out_dir": str(out),
            "seed": 3,
            "model": {"kind": kind, **TINY},
            "optim": {"lr": 1e-3},
            "data": {
                "corpora": [str(corpus)],
                "mixing": {"task": "2s_clean", "duration_s": 0.8},
                "batch_size": 2,
                "num_workers": workers,
                "items_per_epoch": 8,
                "val_items": 2,
            },
            "trainer": {
                "max_steps": steps,
                "checkpoint_every_n_steps": 1,
                "val_every_n_steps": 2,
                "deterministic": True,
                "accelerator": "cpu",
                "log_every_n_steps": 1,
            },
        },
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize(
    "kind", ["audio_only", pytest.param("audio_visual", marks=pytest.mark.slow)]
)
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(corpus, tmp_path, kind) -> None:
    """6 steps straight vs 3 steps, stop, resume to 6 (crossing an epoch of 4 steps; the resumed run
    even uses 2 loader workers): identical weights, bit for bit."""
    straight = train(_config(tmp_path / "a", corpus, steps=6, workers=0, kind=kind), resume=None)
    first = train(_config(tmp_path / "b", corpus, steps=3, workers=0, kind=kind))
    assert first.global_step == 3 and first.resumed_from is None
    resumed = train(_config(tmp_path / "b", corpus, steps=6, workers=2, kind=kind))
    assert resumed.resumed_from is not None and resumed.global_step == 6
    a, b = _weights(straight.model_path), _weights(resumed.model_path)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The checkpoint is self-describing: resolved config inside, and next to the run.
    ckpt = torch.load(resumed.last_checkpoint, map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["resolved_config"]["data"]["batch_size"] == 2
    saved = load_config(TrainConfig, tmp_path / "b" / "config" / "train.yaml")
    assert saved.model.kind.value == kind
    assert (tmp_path / "b" / "logs" / "csv").exists()


@pytest.mark.slow
def test_a_different_resume_position_would_change_the_weights(corpus, tmp_path) -> None:
    """Control for the resume test: a run that sees other batches ends elsewhere."""
    a = train(_config(tmp_path / "a", corpus, steps=3, workers=0, kind="audio_only"), resume=None)
    cfg = _config(tmp_path / "c", corpus, steps=3, workers=0, kind="audio_only")
    from dataclasses import replace

    other = replace(cfg, data=replace(cfg.data, mixing=replace(cfg.data.mixing, seed=1)))
    b = train(other, resume=None)
    wa, wb = _weights(a.model_path), _weights(b.model_path)
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


LEARN_MODEL = REDUCED_MODEL  # the widths the demo and the benchmark use too
MARGIN_DB = 6.0
"""The trained model must beat the untrained one by at least this SI-SDRi on held-out mixtures."""


def _heldout_si_sdri(system: SeparationSystem, cfg: TrainConfig, corpus: Path) -> float:
    """Mean SI-SDRi (dB) over 24 test-split mixtures of the held-out utterances."""
    stream = face_stream_for(cfg)
    source = MixtureSource([str(corpus)], split_config(cfg.data.mixing, Split.TEST, stream))
    batch = collate([source.item(0, i) for i in range(24)], stream)
    estimates = system.eval().separate(batch)
    return metrics.si_sdr_improvement(estimates, batch.sources, batch.mixture).mean().item()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["audio_only", "audio_visual"])
def test_models_learn_to_separate_held_out_real_speech(corpus, tmp_path, kind) -> None:
    """2 real speakers (CMU ARCTIC aew, axb), clean 1 s mixtures at -5..5 dB SIR, 150 steps of 8."""
    cfg = config_from_dict(
        TrainConfig,
        {
            "out_dir": str(tmp_path / kind),
            "seed": 0,
            "model": {"kind": kind, **LEARN_MODEL},
            "loss": {"kind": "neg_sisdr"},
            "optim": {"lr": 2e-3},
            "data": {
                "corpora": [str(corpus)],
                "mixing": {"task": "2s_clean", "duration_s": 1.0},
                "batch_size": 8,
                "num_workers": 0,
                "items_per_epoch": 800,
                "val_items": 0,
            },
            "trainer": {
                "max_steps": 150,
                "checkpoint_every_n_steps": 1000,
                "val_every_n_steps": 1000,
                "accelerator": "cpu",
                "log_every_n_steps": 25,
            },
        },
    )
    untrained = SeparationSystem.from_configs(cfg.model, cfg.loss, cfg.optim)
    before = _heldout_si_sdri(untrained, cfg, corpus)
    result = train(cfg, resume=None)
    assert result.last_checkpoint is not None
    trained = SeparationSystem.load_from_checkpoint(result.last_checkpoint, map_location="cpu")
    after = _heldout_si_sdri(trained, cfg, corpus)
    assert after > 0.0, f"held-out SI-SDRi {after:.2f} dB (untrained {before:.2f} dB)"
    assert after - before > MARGIN_DB
