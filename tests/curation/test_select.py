"""Candidate windows and the keep/reject decision on synthetic speech activity and face tracks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from curation.select import (
    FRAME_S,
    SegmentConfig,
    WindowEvidence,
    candidate_windows,
    close_gaps,
    decide,
    match_hint,
    tracks_in_window,
)
from curation.tracking import TrackEstimate
from curation.vad import SpeechActivity
from manifests.schema import RejectReason

DET_FPS = 5.0


def speech(duration_s: float, regions: list[tuple[float, float]], frame_s: float = 0.03):
    n = int(np.ceil(duration_s / frame_s))
    t = (np.arange(n) + 0.5) * frame_s
    flags = np.zeros(n, bool)
    for a, b in regions:
        flags |= (t >= a) & (t < b)
    return SpeechActivity(frame_s=frame_s, speech=flags)


def track(track_id: int, spans: list[tuple[float, float]], x0: float, duration_s: float = 60.0):
    det = np.arange(0, duration_s, 1 / DET_FPS)
    mask = np.zeros(len(det), bool)
    for a, b in spans:
        mask |= (det >= a) & (det < b)
    times = det[mask]
    boxes = np.tile(np.array([x0, 50, x0 + 80, 150], np.float32), (len(times), 1))
    return TrackEstimate(
        track_id=track_id,
        times_s=times,
        boxes=boxes,
        scores=np.ones(len(times), np.float32),
        landmarks=None,
        detection_times_s=det,
    )


CFG = SegmentConfig()


def test_decide_follows_the_documented_order():
    everything_bad = WindowEvidence(
        duration_s=1.0,
        tracks_present=0,
        speech_ratio=0.0,
        snr_db=0.0,
        snr_threshold_db=17.0,
        missing_ratio=0.9,
        dropped_ratio=0.9,
        speaking_score=-3.0,
        speaking_threshold=0.0,
        sync_score=0.0,
        sync_threshold=0.3,
    )
    expected = [
        ("tracks_present", 2, RejectReason.NO_FACE),
        ("tracks_present", 1, RejectReason.MULTIPLE_FACES),
        ("speech_ratio", 1.0, RejectReason.NO_SPEECH),
        ("duration_s", 5.0, RejectReason.TOO_SHORT),
        ("snr_db", 30.0, RejectReason.LOW_SNR),
        ("missing_ratio", 0.0, RejectReason.FACE_MISSING_FRAMES),
        ("dropped_ratio", 0.1, RejectReason.LOW_FACE_QUALITY),
        ("speaking_score", 2.0, RejectReason.NOT_SPEAKING),
        ("sync_score", 0.9, RejectReason.NOT_IN_SYNC),
    ]
    ev = everything_bad
    for field, fixed_value, reason in expected:
        assert decide(ev, CFG) == reason, field
        ev = WindowEvidence(**{**ev.__dict__, field: fixed_value})
    assert decide(ev, CFG) is None


def test_decide_skips_unmeasured_checks_and_fails_nan_snr():
    assert decide(WindowEvidence(duration_s=5.0), CFG) is None
    nan_snr = WindowEvidence(duration_s=5.0, snr_db=float("nan"), snr_threshold_db=17.0)
    assert decide(nan_snr, CFG) == RejectReason.LOW_SNR
    hint_miss = WindowEvidence(duration_s=5.0, tracks_present=2, hint_matched=False)
    assert decide(hint_miss, CFG) == RejectReason.FACE_HINT_MISMATCH
    hint_ok = WindowEvidence(duration_s=5.0, tracks_present=2, hint_matched=True)
    assert decide(hint_ok, CFG) is None


def test_close_gaps_bridges_only_inner_short_gaps():
    m = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0], bool)
    out = close_gaps(m, 2)
    assert out.tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0]


def test_candidate_windows_follow_speech_and_faces():
    dur = 30.0
    sp = speech(dur, [(2.0, 14.0), (16.0, 28.0)])
    tracks = [track(0, [(0.0, 20.0)], 10.0), track(1, [(10.0, 30.0)], 200.0)]
    cands = candidate_windows(0.0, dur, sp, tracks, CFG)
    # Windows lie on the 40 ms grid, do not overlap, and stay inside the source.
    for c in cands:
        assert abs(c.start_s / FRAME_S - round(c.start_s / FRAME_S)) < 1e-6
        assert abs(c.end_s / FRAME_S - round(c.end_s / FRAME_S)) < 1e-6
        assert 0.0 <= c.start_s < c.end_s <= dur
        assert c.duration_s <= CFG.max_duration_s + 1e-9
    for a, b in itertools.pairwise(cands):
        assert a.end_s <= b.start_s + 1e-9
    single = [c for c in cands if c.speech and c.num_tracks == 1]
    assert {c.track_id for c in single} == {0, 1}
    one = [c for c in single if c.track_id == 0]
    two = [c for c in single if c.track_id == 1]
    # Edges are within a detection period plus the margin of the true changes.
    assert one[0].start_s == pytest.approx(2.0 + CFG.edge_margin_s, abs=0.35)
    assert one[-1].end_s == pytest.approx(10.0 - CFG.edge_margin_s, abs=0.35)
    assert two[0].start_s == pytest.approx(20.0 + CFG.edge_margin_s, abs=0.35)
    assert two[-1].end_s == pytest.approx(28.0 - CFG.edge_margin_s, abs=0.35)
    for part in (one, two):  # a run's windows tile it
        assert all(abs(a.end_s - b.start_s) < 1e-9 for a, b in itertools.pairwise(part))
    multi = [c for c in cands if c.num_tracks == 2]
    assert multi and all(c.start_s >= 10.0 - 0.35 and c.end_s <= 20.0 + 0.35 for c in multi)
    silent = [c for c in cands if not c.speech]
    assert any(c.end_s <= 2.0 for c in silent) and any(c.start_s >= 28.0 - 0.35 for c in silent)


def test_long_runs_split_into_equal_windows_and_blips_do_not_split():
    dur = 26.0
    sp = speech(dur, [(0.0, 26.0)])
    # Face missing for 0.4 s (two detection frames) at 12 s: a tracker blip, not a new state.
    tr = track(0, [(0.0, 12.0), (12.4, 26.0)], 10.0)
    cands = candidate_windows(0.0, dur, sp, [tr], SegmentConfig(target_duration_s=10.0))
    assert len(cands) == 3
    lengths = [c.duration_s for c in cands]
    assert max(lengths) - min(lengths) <= FRAME_S + 1e-9
    assert cands[0].start_s == 0.0 and cands[-1].end_s == pytest.approx(26.0)
    assert all(c.track_id == 0 and c.speech for c in cands)


@pytest.mark.parametrize(
    ("run_s", "target_s", "expected"),
    [(9.6, 5.0, 2), (5.5, 5.0, 1), (25.0, 5.0, 5), (2.0, 5.0, 1), (31.0, 10.0, 4), (7.0, 3.0, 2)],
)
def test_windows_are_about_the_target_length(run_s, target_s, expected):
    cfg = SegmentConfig(target_duration_s=target_s)
    sp = speech(run_s, [(0.0, run_s)])
    cands = candidate_windows(0.0, run_s, sp, [track(0, [(0.0, run_s)], 10.0)], cfg)
    assert len(cands) == expected
    if run_s >= cfg.min_duration_s:
        assert all(cfg.min_duration_s - 1e-9 <= c.duration_s <= cfg.max_duration_s for c in cands)


def test_short_pauses_are_bridged_but_long_silence_splits():
    dur = 20.0
    sp = speech(dur, [(0.0, 4.0), (4.5, 9.0), (12.0, 20.0)])
    cands = candidate_windows(0.0, dur, sp, [track(0, [(0.0, 20.0)], 10.0)], CFG)
    speech_c = [c for c in cands if c.speech]
    assert speech_c[0].start_s == 0.0
    first_run = [c for c in speech_c if c.end_s < 10.0]
    assert first_run[-1].end_s == pytest.approx(9.0 - CFG.edge_margin_s, abs=0.1)
    assert next(c for c in cands if not c.speech).start_s == pytest.approx(9.2, abs=0.1)


def test_only_track_hides_other_faces():
    dur = 10.0
    sp = speech(dur, [(0.0, 10.0)])
    tracks = [track(0, [(0.0, 10.0)], 10.0, dur), track(1, [(0.0, 10.0)], 200.0, dur)]
    assert all(c.num_tracks == 2 for c in candidate_windows(0.0, dur, sp, tracks, CFG))
    cands = candidate_windows(0.0, dur, sp, tracks, CFG, only_track=1)
    assert cands and {(c.track_id, c.num_tracks) for c in cands} == {(1, 1)}


def test_match_hint_picks_the_track_under_the_point():
    tracks = [track(0, [(0.0, 10.0)], 10.0), track(1, [(0.0, 10.0)], 200.0)]
    assert match_hint(tracks, 2.0, 50.0, 100.0, CFG) == 0
    assert match_hint(tracks, 2.0, 240.0, 90.0, CFG) == 1
    assert match_hint(tracks, 2.0, 140.0, 100.0, CFG) is None  # between the two faces
    assert match_hint(tracks, 30.0, 50.0, 100.0, CFG) is None  # no track then


def test_tracks_in_window_uses_presence_fraction():
    tracks = [track(0, [(0.0, 10.0)], 10.0), track(1, [(4.0, 10.0)], 200.0)]
    det = tracks[0].detection_times_s
    assert tracks_in_window(tracks, det, 0.0, 5.0, CFG) == [0]
    assert tracks_in_window(tracks, det, 4.0, 9.0, CFG) == [0, 1]
    assert tracks_in_window(tracks, det, 20.0, 25.0, CFG) == []


def test_windows_fall_on_the_source_grid_whatever_the_range_offset():
    """A file holding the source from 0.5 s (a ranged fetch) gives the windows of the whole file,
    shifted: edges on the source's 40 ms grid, not on the file's."""
    sp, tr = speech(12.0, [(0.0, 12.0)]), [track(0, [(0.0, 12.0)], 100.0, 12.0)]
    whole = candidate_windows(1.5, 7.5, sp, tr, CFG)
    in_file = candidate_windows(1.0, 7.0, sp, tr, CFG, grid_origin_s=-0.5)
    assert [(c.start_s, c.end_s) for c in whole] == [(1.52, 7.48)]
    assert [(round(c.start_s + 0.5, 6), round(c.end_s + 0.5, 6)) for c in in_file] == [(1.52, 7.48)]
    assert [(c.start_s, c.end_s) for c in candidate_windows(1.0, 7.0, sp, tr, CFG)] == [
        (1.0, 4.0),
        (4.0, 7.0),
    ]
