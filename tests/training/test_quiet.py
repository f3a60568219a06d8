"""``avforge train`` is quiet by default: its own summary, no third-party tips or inapplicable warnings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers.training_corpus import build_two_speaker_corpus, tiny_train_dict

AVFORGE = [sys.executable, "-c", "from avforge.cli import main; main()"]


def test_train_prints_only_its_summary(tmp_path: Path) -> None:
    corpus = build_two_speaker_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    cfg = tiny_train_dict(out, corpus, steps=2, trainer={"val_every_n_steps": 2})
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [*AVFORGE, "train", "--config", str(tmp_path / "train.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [
        ln for ln in (proc.stdout + proc.stderr).replace("\r", "\n").splitlines() if ln.strip()
    ]
    assert lines == [
        f"trained 2 steps; model: {out / 'model.pt'}",
        f"last checkpoint: {out / 'checkpoints' / 'last.ckpt'}",
    ], lines
