"""End-to-end training runs: exact resume (learning itself: ``test_learning.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from avforge.core.config import config_from_dict, load_config
from avforge.testing.training_corpus import TINY_AV, build_two_speaker_corpus
from training.config import TrainConfig
from training.train import train

TINY = TINY_AV


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
    assert not torch.are_deterministic_algorithms_enabled()
    straight = train(_config(tmp_path / "a", corpus, steps=6, workers=0, kind=kind), resume=None)
    assert not torch.are_deterministic_algorithms_enabled()  # the run's setting, not the process's
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


def test_a_trained_crop_model_records_the_crop_size_it_was_trained_on(tmp_path) -> None:
    """The corpus holds 20 px crops: the package says 20, so ``separate`` crops new videos at 20 px
    (it used to fall back to 112)."""
    from avforge.testing.training_corpus import build_two_speaker_corpus as build
    from training.models import load_model

    corpus = build(tmp_path / "corpus20", crop_size_px=20)
    result = train(_config(tmp_path / "run", corpus, steps=1, workers=0, kind="audio_visual"))
    assert load_model(result.model_path).input_contract.crop_size_px == 20


# Learning on real speech with held-out speakers, against baselines: tests/training/test_learning.py.
