"""Window checks' plumbing: spans of survivors share one decode, streamed frames are sliced per window."""

from __future__ import annotations

import numpy as np

from curation.decode import VideoChunk
from curation.select import Candidate, WindowEvidence
from curation.windows import SPAN_MAX_GAP_S, Survivor, group_spans, shifted, window_frames
from manifests.media import FaceTrack


def _chunks(n: int, size: int) -> list[VideoChunk]:
    """Frames 0..n-1 whose pixels hold their index, in chunks of ``size``."""
    frames = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 3, 3), np.uint8)
    return [
        VideoChunk(frames[i : i + size], np.arange(i, min(n, i + size)) / 25.0)
        for i in range(0, n, size)
    ]


def test_window_frames_slices_a_streamed_decode_and_pads_the_end():
    starts, counts = [0, 5, 40, 95], [5, 10, 20, 10]  # touching, a gap, past the end (100 frames)
    got = list(window_frames(iter(_chunks(100, 7)), starts, counts, (2, 3)))
    assert [len(f) for f in got] == counts
    for frames, first, count in zip(got[:3], starts[:3], counts[:3], strict=True):
        np.testing.assert_array_equal(frames[:, 0, 0, 0], np.arange(first, first + count))
    np.testing.assert_array_equal(got[3][:5, 0, 0, 0], np.arange(95, 100))
    assert not got[3][5:].any()  # black frames where the decode ran short


def _survivor(index: int, start_s: float, end_s: float, track_id: int) -> Survivor:
    c = Candidate(start_s, end_s, track_id, 1, True)
    return Survivor(index, c, WindowEvidence(end_s - start_s), track_id, np.zeros(1), 1)


def test_spans_join_neighbours_on_one_track_only():
    s = [
        _survivor(0, 0.0, 5.0, 0),
        _survivor(1, 5.0, 10.0, 0),  # touching: same span
        _survivor(3, 10.0 + SPAN_MAX_GAP_S, 15.0, 0),  # a rejected window between: same span
        _survivor(5, 20.0, 25.0, 0),  # far: new span
        _survivor(6, 25.0, 30.0, 1),  # another track: new span
    ]
    assert [[x.index for x in span] for span in group_spans(s)] == [[0, 1, 3], [5], [6]]
    assert group_spans([]) == []


def test_shifted_moves_boxes_and_landmarks():
    track = FaceTrack(
        25.0,
        np.array([[10, 20, 30, 40]], np.float32),
        np.ones(1, np.float32),
        np.ones(1, bool),
        np.full((1, 5, 2), 15.0, np.float32),
    )
    moved = shifted(track, -10.0, -20.0)
    np.testing.assert_array_equal(moved.boxes, [[0, 0, 20, 20]])
    np.testing.assert_array_equal(moved.landmarks[0, :, 0], 5.0)
    np.testing.assert_array_equal(moved.landmarks[0, :, 1], -5.0)
    np.testing.assert_array_equal(track.boxes, [[10, 20, 30, 40]])  # a copy, not in place
