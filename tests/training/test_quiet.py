"""``avforge train`` is quiet by default: its own summary, no third-party tips or inapplicable warnings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from avforge.testing.training_corpus import build_two_speaker_corpus, tiny_train_dict

AVFORGE = [sys.executable, "-c", "from avforge.cli import main; main()"]


def _train(tmp_path: Path, cfg: dict) -> subprocess.CompletedProcess[str]:
    """``avforge train --config`` on ``cfg`` in a subprocess, output captured."""
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.run(
        [*AVFORGE, "train", "--config", str(tmp_path / "train.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_train_prints_only_its_summary(tmp_path: Path) -> None:
    corpus = build_two_speaker_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    cfg = tiny_train_dict(out, corpus, steps=2, trainer={"val_every_n_steps": 2})
    proc = _train(tmp_path, cfg)
    assert proc.returncode == 0, proc.stderr
    lines = [
        ln for ln in (proc.stdout + proc.stderr).replace("\r", "\n").splitlines() if ln.strip()
    ]
    assert lines == [
        f"trained 2 steps; model: {out / 'model.pt'}",
        f"last checkpoint: {out / 'checkpoints' / 'last.ckpt'}",
    ], lines


def test_the_progress_bar_counts_the_runs_steps(tmp_path: Path) -> None:
    """``trainer.progress_bar: true`` shows steps out of ``max_steps`` (Lightning's own bar showed
    ``Epoch 0/-2`` for a run bounded by steps), and nothing else is added."""
    corpus = build_two_speaker_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    cfg = tiny_train_dict(
        out, corpus, steps=3, trainer={"val_every_n_steps": 3, "progress_bar": True}
    )
    proc = _train(tmp_path, cfg)
    assert proc.returncode == 0, proc.stderr
    bar = [ln for ln in proc.stderr.replace("\r", "\n").splitlines() if ln.startswith("train:")]
    assert bar and "3/3" in bar[-1] and "loss=" in bar[-1], proc.stderr
    assert "Epoch" not in proc.stderr and "/-" not in proc.stderr, proc.stderr


def test_a_face_stream_the_model_does_not_read_is_a_config_error(tmp_path: Path) -> None:
    """``data.mixing.render.face_stream`` used to be overwritten silently by the model's stream."""
    corpus = build_two_speaker_corpus(tmp_path / "corpus")
    cfg = tiny_train_dict(tmp_path / "run", corpus, steps=1)
    cfg["data"]["mixing"]["render"] = {"face_stream": "crops"}  # an audio-only model reads none
    proc = _train(tmp_path, cfg)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: data.mixing.render.face_stream: is crops, but this model reads none (an "
        "audio-only model); leave it out: training sets it from the model"
    ]
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the value works")
def test_a_gpu_accelerator_without_a_gpu_is_a_config_error(tmp_path: Path) -> None:
    """``trainer.accelerator: gpu`` validated, then failed inside Lightning with a traceback."""
    corpus = build_two_speaker_corpus(tmp_path / "corpus")
    cfg = tiny_train_dict(tmp_path / "run", corpus, steps=1, trainer={"accelerator": "gpu"})
    proc = _train(tmp_path, cfg)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: trainer.accelerator: is gpu, but torch sees no CUDA GPU on this machine; use auto "
        "(a GPU when there is one, else the CPU) or cpu"
    ]
