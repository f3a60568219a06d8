"""The sync calibration (curation.calibrate_sync): its threshold rule and weight on hand-made rows,
and the whole path on two REAL bundled talks (their faces against their own, shifted and each
other's sound)."""

from __future__ import annotations

import numpy as np
import pytest

from avforge import variants
from curation.calibrate_sync import choose, record, score_cases, threshold_for
from curation.speaker import ActiveSpeaker, SpeakerConfig


def test_threshold_keeps_at_most_the_allowed_fraction_of_negatives():
    neg = [float(v) for v in range(1, 11)]  # 1..10
    t = threshold_for(neg, 0.2)
    assert sum(v >= t for v in neg) == 2 and t > 8.0  # keeps 9 and 10 only
    assert sum(v >= threshold_for(neg, 0.0) for v in neg) == 0
    assert threshold_for(neg, 1.0) == 1.0  # keeps everything


def _row(talk: str, kind: str, sound: str, contrast: float, correlation: float) -> dict:
    return {"talk": talk, "kind": kind, "sound": sound, "contrast": contrast,
            "correlation": correlation}  # fmt: skip


def test_weight_is_the_ratio_of_spreads_and_held_out_pairs_are_left_out():
    rows = [
        _row("a", "dubbed", "b", 0.0, 0.0),
        _row("b", "dubbed", "a", 4.0, 0.2),
        _row("a", "dubbed", "c", 2.0, -0.2),
        _row("c", "dubbed", "a", 2.0, 0.0),
        _row("b", "dubbed", "c", 6.0, 0.0),  # the only negative without talk "a"
        _row("c", "dubbed", "b", 0.0, 0.0),  # ... and without "a" too
        _row("a", "in_sync", "a", 9.0, 0.5),
        _row("b", "in_sync", "b", 9.0, 0.5),
        _row("c", "in_sync", "c", 9.0, 0.5),
    ]
    got = choose(rows, max_false_keep=0.0)
    contrast = [r["contrast"] for r in rows if r["kind"] == "dubbed"]
    corr = [r["correlation"] for r in rows if r["kind"] == "dubbed"]
    assert got["lip_energy_weight"] == pytest.approx(np.std(contrast) / np.std(corr), abs=0.05)
    # Held out "a": its threshold comes from b<->c pairs only (6.0 and 0.0): just above 6.0.
    assert 6.0 < got["per_talk"]["a"]["threshold"] < 6.01
    assert got["per_talk"]["a"]["in_sync"] == "1/1"
    fixed = choose(rows, 0.0, weight=1.0, threshold=100.0)
    assert fixed["lip_energy_weight"] == 1.0 and fixed["held_out_kept"]["in_sync"] == 0.0


@pytest.fixture(scope="module")
def two_talks():
    return [
        record(variants.bundled_clip(n).path) for n in ("hdtf_amy_klobuchar", "retalking_face4")
    ]


def test_real_talks_score_above_their_dubbed_and_shifted_copies(two_talks):
    assert all(t.windows for t in two_talks)
    rows = score_cases(two_talks, ActiveSpeaker(SpeakerConfig()), show_progress=False)
    kinds = {r["kind"] for r in rows}
    assert kinds == {"in_sync", "dubbed", "shift-1.0", "shift-0.5", "shift+0.5", "shift+1.0"}
    w = SpeakerConfig().lip_energy_weight
    threshold = SpeakerConfig().min_sync_confidence
    for talk in two_talks:
        mine = [r for r in rows if r["talk"] == talk.name]
        sync = {
            k: [r["contrast"] + w * r["correlation"] for r in mine if r["kind"] == k] for k in kinds
        }
        # Every in-sync window passes the shipped threshold; every ±1 s shifted or dubbed one fails.
        assert min(sync["in_sync"]) >= threshold, sync
        for k in ("shift-1.0", "shift+1.0", "dubbed"):
            assert max(sync[k]) < threshold, (k, sync)
        # Both components favour the own sound: on average over the windows.
        own = [r for r in mine if r["kind"] == "in_sync"]
        dub = [r for r in mine if r["kind"] == "dubbed"]
        assert np.mean([r["correlation"] for r in own]) > np.mean([r["correlation"] for r in dub])
        assert np.mean([r["contrast"] for r in own]) > np.mean([r["contrast"] for r in dub])
