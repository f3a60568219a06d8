"""AVSpeech CSV round trip over loopback HTTP: a talk curated from an AVSpeech row, exported with
``export_avspeech_csv``, re-curated from that CSV, gives the same clips: the same ranges in the source,
the same split, the same face position, and the same audio (range fetches are stream copies)."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

import manifests
from avforge.core.cluster import ClusterConfig, ClusterType
from avforge.interop import export_avspeech_csv
from avforge.interop.tables import media_path
from avforge.synth import load_truth, serve_folder
from curation.config import CurateConfig, RunConfig
from curation.pipeline import curate
from curation.sources import parse_avspeech_csv
from tests.helpers.curation_videos import SYNTH_SPEAKER, cached, render, scenario_clean

SYNC = ClusterConfig(type=ClusterType.SYNCHRONOUS)
CFG = CurateConfig(run=RunConfig(progress=False), speaker=SYNTH_SPEAKER)
VIDEO_ID = "cleanaxb001"  # 11 characters: a YouTube-shaped id, as AVSpeech rows carry


def _clips(corpus) -> list[dict]:
    return sorted(manifests.read_clips(str(corpus)).to_pylist(), key=lambda r: r["start_s"])


@pytest.mark.slow
def test_recurating_the_exported_csv_yields_the_same_clips(tmp_path_factory, tmp_path):
    video = cached(
        tmp_path_factory, "clean_axb", lambda d: render(d, scenario_clean("clean_axb", "axb"))
    )
    truth = load_truth(video)
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(video, served / f"{VIDEO_ID}.mp4")
    (section,) = truth["sections"]
    x0, y0, x1, y1 = section["faces"][0]["box_xyxy"]
    fx, fy = (x0 + x1) / 2 / truth["width"], (y0 + y1) / 2 / truth["height"]
    row = f"{VIDEO_ID},{section['start_s']:.6f},{section['end_s']:.6f},{fx:.6f},{fy:.6f}"
    cfg = dataclasses.replace(CFG, download=dataclasses.replace(CFG.download, range_pad_s=1.0))
    with serve_folder(served) as base:
        template = base + "/{id}.mp4"
        first = tmp_path / "first"
        curate(parse_avspeech_csv(row, template), str(first), cfg, SYNC)
        text, export = export_avspeech_csv(str(first), str(tmp_path / "export.csv"))
        assert export.rows and not export.skipped
        again = tmp_path / "again"
        sources = parse_avspeech_csv(text, template)
        assert len(sources) == len(export.rows) and all(s.invalid is None for s in sources)
        curate(sources, str(again), cfg, SYNC)
    before, after = _clips(first), _clips(again)
    assert [(c["start_s"], c["end_s"]) for c in after] == [
        (c["start_s"], c["end_s"]) for c in before
    ]
    assert all(c["split"] == before[0]["split"] for c in after)  # split keyed on the video id
    reader = manifests.MediaReader()
    for old, new in zip(before, after, strict=True):
        a = reader.audio(media_path(str(first), old["media_shard"]), old["media_row"])
        b = reader.audio(media_path(str(again), new["media_shard"]), new["media_row"])
        assert a.shape == b.shape
        # Range fetches are stream copies (an MP4 edit list starts the file at the cut), so a clip
        # fetched from another start decodes to the same samples; measured 57-141 dB.
        correlation = float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))
        snr_db = 10 * np.log10(np.sum(a**2) / max(float(np.sum((a - b) ** 2)), 1e-12))
        assert correlation > 0.999 and snr_db > 40.0, (old["clip_id"], correlation, snr_db)
        assert abs(new["face_x"] - old["face_x"]) < 0.02
        assert abs(new["face_y"] - old["face_y"]) < 0.02
