"""Curation decisions on a REAL talk that no threshold was chosen on (a test-set talk of
docs/speaker_calibration.md, `tests/data/video/PROVENANCE.md`): kept with its own sound; its face
with another person's real speech, or with its sound moved by one second, keeps nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import manifests
from avforge import variants
from avforge.core.cluster import ClusterConfig, ClusterType
from curation.config import CurateConfig, RunConfig
from curation.pipeline import curate
from curation.sources import scan_folder

TALK = Path(__file__).resolve().parents[1] / "data" / "video" / "edtalk_ted_lieu.mp4"
SYNC = ClusterConfig(type=ClusterType.SYNCHRONOUS)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, list[dict]]:
    folder = tmp_path_factory.mktemp("heldout")
    (folder / "in_sync.mp4").write_bytes(TALK.read_bytes())
    variants.dubbed(TALK, variants.bundled_clip("hdtf_amy_klobuchar").path, folder / "dubbed.mp4")
    variants.shifted(TALK, 1.0, folder / "late.mp4")
    variants.shifted(TALK, -1.0, folder / "early.mp4")
    corpus = tmp_path_factory.mktemp("heldout_corpus")
    curate(scan_folder(folder), str(corpus), CurateConfig(run=RunConfig(progress=False)), SYNC)
    names = {
        r["source_id"]: Path(r["url"]).stem for r in manifests.read_sources(corpus).to_pylist()
    }
    out: dict[str, list[dict]] = {}
    for r in manifests.read_segments(corpus).to_pylist():
        out.setdefault(names[r["source_id"]], []).append(r)
    return out


def _kept_s(rows: list[dict]) -> float:
    return sum(r["end_s"] - r["start_s"] for r in rows if r["kept"])


def test_a_held_out_real_talk_is_kept(outcomes):
    rows = outcomes["in_sync"]
    assert _kept_s(rows) >= 0.8 * 10.0, [(r["reason"], r["sync_score"]) for r in rows]


@pytest.mark.parametrize("case", ["dubbed", "late", "early"])
def test_its_face_with_other_or_moved_sound_keeps_nothing(outcomes, case):
    rows = outcomes[case]
    assert _kept_s(rows) == 0.0, [(r["reason"], r["sync_score"]) for r in rows]
    assert any(r["reason"] == "not_in_sync" for r in rows)
