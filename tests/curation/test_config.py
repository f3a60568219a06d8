"""The curation config: the documented example loads, and it keeps the calibrated SNR threshold."""

from __future__ import annotations

import textwrap

import curation.config
from curation.config import load_curate_config
from curation.snr import CALIBRATED_THRESHOLD_DB, SnrEstimatorKind


def test_docstring_example_loads_and_keeps_the_calibrated_snr_threshold(tmp_path):
    doc = curation.config.__doc__ or ""
    example = textwrap.dedent(doc.split("::\n", 1)[1]).strip()
    (tmp_path / "curate.yaml").write_text(example + "\n")
    cfg = load_curate_config(tmp_path / "curate.yaml")
    assert cfg.snr.threshold_db == CALIBRATED_THRESHOLD_DB[SnrEstimatorKind.VAD_GATED] == 18.0
    assert cfg.decode.detect_fps == 5.0 and cfg.segments.max_duration_s == 10.0
