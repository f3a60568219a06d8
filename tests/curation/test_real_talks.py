"""Curation decisions on REAL talking faces (the bundled clips, avforge/assets/video/PROVENANCE.md).

Ground truth: the bundled clips are one real person talking to camera with their own sound, in sync.
The negatives are built from them with ffmpeg (``avforge.variants``): the face with another talk's
sound (dubbed), the own sound moved by one second, one frame held over the talk (a photo with a
voice), two talks side by side, the talk under real babble or music. The pipeline runs with its
shipped defaults (thresholds chosen on real clips: docs/speaker_calibration.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import manifests
from avforge import variants
from avforge.core import assets
from avforge.core.cluster import ClusterConfig, ClusterType
from curation.calibrate_speaker import bundled_babble
from curation.config import CurateConfig, RunConfig
from curation.faces import load_detector
from curation.pipeline import curate
from curation.sources import scan_folder
from curation.windows import analyse

SYNC = ClusterConfig(type=ClusterType.SYNCHRONOUS)
CFG = CurateConfig(run=RunConfig(progress=False))
ASSETS = assets.AUDIO_DIR
HELDOUT_MUSIC = Path(__file__).parents[1] / "data" / "music" / "monkeys_spinning_monkeys_10s.flac"
"""Real stock music the music threshold was not chosen on (tests/data/music/PROVENANCE.md)."""
TALKS = ("hdtf_amy_klobuchar", "hdtf_ed_markey", "retalking_face4")
"""Three different people: two HDTF studio talks and a talk in a room."""
DUB_WITH = {
    "hdtf_amy_klobuchar": "hdtf_ed_markey",
    "hdtf_ed_markey": "hdtf_katie_hill",
    "retalking_face4": "retalking_face5",
}
"""Whose sound each face is dubbed with (another person's real speech)."""


@pytest.fixture(scope="module")
def real_cases(tmp_path_factory) -> tuple[Path, dict[str, tuple[str, str]]]:
    """The folder of every variant, and file name -> (talk, case kind)."""
    folder = tmp_path_factory.mktemp("real_cases")
    babble = bundled_babble(tmp_path_factory.mktemp("noise") / "babble.wav", seconds=8.0)
    cases: dict[str, tuple[str, str]] = {}
    for i, talk in enumerate(TALKS):
        path = variants.bundled_clip(talk).path
        other = variants.bundled_clip(DUB_WITH[talk]).path
        neighbour = variants.bundled_clip(TALKS[(i + 1) % len(TALKS)]).path

        def out(kind: str, talk: str = talk) -> Path:
            cases[f"{talk}__{kind}.mp4"] = (talk, kind)
            return folder / f"{talk}__{kind}.mp4"

        (folder / f"{talk}__in_sync.mp4").write_bytes(path.read_bytes())
        cases[f"{talk}__in_sync.mp4"] = (talk, "in_sync")
        variants.dubbed(path, other, out("dubbed"))
        variants.shifted(path, 1.0 if i % 2 == 0 else -1.0, out("shifted"))
        variants.still_face(path, out("still_face"))
        if i == 0:
            variants.side_by_side(path, neighbour, out("two_faces"))
            variants.noisy(path, babble, 0.0, out("babble"))
            variants.noisy(path, ASSETS / "guitar_16k.wav", 0.0, out("music"))
            variants.noisy(path, HELDOUT_MUSIC, 0.0, out("music_heldout"))
    return folder, cases


@pytest.fixture(scope="module")
def curated(real_cases, tmp_path_factory):
    folder, cases = real_cases
    corpus = tmp_path_factory.mktemp("real_corpus")
    summary = curate(scan_folder(folder), str(corpus), CFG, SYNC)
    assert summary.sources_ok == len(cases)
    names = {
        r["source_id"]: Path(r["url"]).name for r in manifests.read_sources(corpus).to_pylist()
    }
    rows = manifests.read_segments(corpus).to_pylist()
    by_case: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_case.setdefault(cases[names[r["source_id"]]], []).append(r)
    return corpus, by_case


def _duration(talk: str) -> float:
    return variants.probe(variants.bundled_clip(talk).path).duration_s


def _kept_fraction(rows: list[dict], talk: str) -> float:
    return sum(r["end_s"] - r["start_s"] for r in rows if r["kept"]) / _duration(talk)


def _why(rows: list[dict]) -> list[tuple]:
    """What each window got, for assertion messages."""
    keys = ("start_s", "reason", "snr_db", "music_score", "speaking_score", "sync_score")
    return [
        tuple(round(v, 2) if isinstance(v, float) else v for v in map(r.get, keys)) for r in rows
    ]


def _scored(rows: list[dict]) -> list[dict]:
    """Windows that reached the active-speaker stage (earlier checks, e.g. SNR, come first)."""
    return [r for r in rows if r["speaking_score"] is not None]


@pytest.mark.parametrize("talk", TALKS)
def test_real_in_sync_talks_are_kept(curated, talk):
    _, by_case = curated
    rows = by_case[(talk, "in_sync")]
    assert _kept_fraction(rows, talk) >= 0.8, _why(rows)
    for r in rows:
        if r["kept"]:
            assert r["speaking_score"] > CFG.speaker.min_speaking_score
            assert abs(r["sync_offset_s"]) <= 0.2  # real talks peak within a few frames of zero


@pytest.mark.parametrize("talk", TALKS)
@pytest.mark.parametrize("kind", ["dubbed", "shifted"])
def test_dubbed_or_shifted_sound_is_rejected_as_not_in_sync(curated, talk, kind):
    _, by_case = curated
    rows = by_case[(talk, kind)]
    assert _kept_fraction(rows, talk) <= 0.2, _why(rows)
    scored = _scored(rows)
    assert scored, _why(rows)
    assert {r["reason"] for r in scored} <= {"not_in_sync", "not_speaking", None}, _why(rows)


@pytest.mark.parametrize("talk", TALKS)
def test_a_still_face_with_a_voice_is_not_speaking(curated, talk):
    _, by_case = curated
    rows = by_case[(talk, "still_face")]
    assert rows and not any(r["kept"] for r in rows), _why(rows)
    scored = _scored(rows)
    assert scored and {r["reason"] for r in scored} == {"not_speaking"}, _why(rows)


def test_two_real_faces_keep_nothing(curated):
    _, by_case = curated
    rows = by_case[(TALKS[0], "two_faces")]
    assert rows and not any(r["kept"] for r in rows), _why(rows)
    assert {r["reason"] for r in rows} == {"multiple_faces"}, _why(rows)


@pytest.mark.parametrize("noise", ["babble", "music", "music_heldout"])
def test_a_real_talk_under_loud_babble_or_music_is_low_snr(curated, noise):
    _, by_case = curated
    rows = by_case[(TALKS[0], noise)]
    assert rows and not any(r["kept"] for r in rows), _why(rows)
    assert "low_snr" in {r["reason"] for r in rows}, _why(rows)
    if noise == "music_heldout":  # continuous music at 0 dB: the music check catches every window
        measured = [r for r in rows if r["music_score"] is not None]
        assert measured and all(r["music_score"] >= CFG.snr.music_threshold for r in measured), (
            _why(rows)
        )


def test_real_talks_without_music_score_below_the_music_threshold(curated):
    _, by_case = curated
    for talk in TALKS:
        rows = [r for r in by_case[(talk, "in_sync")] if r["music_score"] is not None]
        assert rows, _why(by_case[(talk, "in_sync")])
        assert max(r["music_score"] for r in rows) < CFG.snr.music_threshold / 2, _why(rows)


def test_kept_real_clips_carry_scores_and_lip_features(curated):
    corpus, _ = curated
    reader = manifests.MediaReader()
    clips = manifests.read_clips(corpus).to_pylist()
    assert clips
    for row in clips:
        path = str(corpus / "media" / row["media_shard"])
        scores = reader.speaking_scores(path, row["media_row"])
        lips = reader.lip_features(path, row["media_row"])
        assert scores.shape == (row["num_frames"],) and lips.shape == (row["num_frames"], 128)
        # A talking face: the per-frame score says "speaking" most of the time.
        assert float(np.mean(scores > 0)) > 0.6


def test_a_real_talking_head_is_one_track():
    """Head turns and mouth motion must not split a real talker's track (they did with a frame-to-
    frame thumbnail check: four tracks on this clip, each window too short)."""
    cfg = dataclasses.replace(CFG)
    a = analyse(str(variants.bundled_clip("hdtf_katie_hill").path), cfg, load_detector(cfg.faces))
    assert len(a.tracks) == 1
    assert a.tracks[0].end_s - a.tracks[0].start_s >= 7.5
