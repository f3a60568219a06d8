"""Evaluation report layout (Table 3, scatter) and windowed whole-recording separation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from manifests.schema import MixTask
from tests.training.conftest import TINY_AUDIO, TINY_VISUAL
from training.eval_report import EvalRecord, model_label, table3, write_report
from training.models import AudioOnlySeparator, AudioVisualSeparator
from training.separate import SeparateError, separate_long, window_starts


def _record(task: MixTask, model: str, sdri: float, i: int = 0, gender: str | None = None):
    return EvalRecord(f"m{i}", task, model, 0, 0.5, 0.5 + sdri, sdri, sdri - 1, 2.5, 0.8, gender)


def test_table3_has_paper_model_rows_and_task_columns_with_means() -> None:
    records = [
        _record(MixTask.TWO_SPEAKERS, "AV 2 faces", 10.0),
        _record(MixTask.TWO_SPEAKERS, "AV 2 faces", 12.0, 1),
        _record(MixTask.TWO_SPEAKERS, "audio-only", 9.0),
        _record(MixTask.ONE_SPEAKER_NOISE, "AV 1 face", 14.2),
    ]
    lines = table3(records).splitlines()
    assert lines[0] == "| SDR improvement (dB) | 1S + noise | 2S clean |"  # paper column order
    assert lines[2] == "| audio-only |  | 9.0 |"
    assert lines[3] == "| AV 1 face | 14.2 |  |"
    assert lines[4] == "| AV 2 faces |  | 11.0 |"
    assert model_label(True, 1) == "AV 1 face" and model_label(False, 2) == "audio-only"


def test_write_report_writes_tables_csv_summary_and_png(tmp_path) -> None:
    records = [
        _record(MixTask.TWO_SPEAKERS, "audio-only", 8.0, 0, "F-M"),
        _record(MixTask.TWO_SPEAKERS, "audio-only", float("nan"), 1, "M-M"),
    ]
    paths = write_report(records, tmp_path / "eval")
    text = paths["tables"].read_text()
    assert "SI-SDR improvement" in text and "2S clean, by gender pair | F-M | M-M |" in text
    assert "| audio-only | 8.0 |  |" in text.split("by gender pair")[1]
    assert paths["scatter"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(paths["results"].read_text().splitlines()) == 3
    assert '"count": 2' in paths["summary"].read_text()


def test_window_starts_cover_the_signal() -> None:
    assert window_starts(100, 48000, 24000) == [0]
    starts = window_starts(100000, 48000, 23680)
    assert starts[-1] + 48000 >= 100000 and starts[-2] + 48000 < 100000


def _pass_through(model) -> None:
    """Masks fixed to (1, 0) for output 0 and (0, 0) for the others: output 0 is the mixture."""
    out = model.head.out
    torch.nn.init.zeros_(out.weight)
    bias = torch.zeros(model.n_out, 257, 2)
    bound = model.head.mask_bound
    bias[0, :, 0] = math.log((1 + 1 / bound) / (1 - 1 / bound))  # sigmoid^-1((1 + 1/bound) / 2)
    out.bias.data = bias.flatten()


@pytest.mark.parametrize("audio_visual", [False, True])
def test_separate_long_overlap_adds_windows_back_to_the_recording(audio_visual: bool) -> None:
    if audio_visual:
        model = AudioVisualSeparator(n_faces=2, embedding_dim=8, **TINY_AUDIO, **TINY_VISUAL)
        faces = torch.randn(2, 150, 8)  # 6 s of faces for a 7.3 s recording: padded with zeros
    else:
        model, faces = AudioOnlySeparator(n_src=2, **TINY_AUDIO), None
    _pass_through(model)
    rng = np.random.default_rng(0)
    x = rng.normal(scale=0.1, size=int(7.3 * 16000)).astype(np.float32)
    out = separate_long(model.eval(), x, faces, window_s=2.0, hop_s=1.2)
    assert out.shape == (2, x.shape[0])
    inner = slice(400, x.shape[0] - 400)
    assert np.abs(out[0, inner].numpy() - x[inner]).max() < 2e-3
    assert out[1].abs().max() < 1e-6


def test_separate_long_rejects_bad_windows_and_missing_faces() -> None:
    model = AudioVisualSeparator(n_faces=1, embedding_dim=8, **TINY_AUDIO, **TINY_VISUAL)
    with pytest.raises(SeparateError, match="needs face streams"):
        separate_long(model, np.zeros(16000, np.float32))
    with pytest.raises(SeparateError, match=r"multiple of 0\.04"):
        separate_long(model, np.zeros(16000, np.float32), torch.zeros(1, 25, 8), window_s=1.01)
