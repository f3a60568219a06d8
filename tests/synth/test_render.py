"""Rendered talks: container facts (ffprobe), faces per section (CenterFace), mouth-audio sync,
ground truth consistency and determinism."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from avforge.core.config import ConfigError
from avforge.synth import (
    RenderConfig,
    Scenario,
    clean_single_speaker_intervals,
    detect_faces,
    load_truth,
    render_scenario,
    section,
)
from avforge.synth import SectionKind as K
from avforge.synth.mouth import speech_envelope_db
from tests.helpers.synth_videos import decode_audio, decode_frames, ffprobe


@pytest.fixture(scope="module")
def mixed(scenario_videos):
    path = scenario_videos["mixed_20s"]
    return path, load_truth(path)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_container_is_360p_25fps_h264_with_aac(mixed):
    path, truth = mixed
    info = ffprobe(path)
    video = [s for s in info["streams"] if s["codec_type"] == "video"]
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert len(video) == 1 and len(audio) == 1
    v, a = video[0], audio[0]
    assert v["codec_name"] == "h264" and v["pix_fmt"] == "yuv420p"
    assert (v["width"], v["height"]) == (640, 360)
    assert v["r_frame_rate"] == "25/1" and v["avg_frame_rate"] == "25/1"
    assert a["codec_name"] == "aac" and int(a["sample_rate"]) >= 16_000
    assert int(a["sample_rate"]) == truth["sample_rate_hz"]
    assert float(v["duration"]) == pytest.approx(20.0, abs=0.1)
    assert float(a["duration"]) == pytest.approx(20.0, abs=0.1)
    assert int(v["nb_frames"]) == truth["n_frames"] == 500


def test_truth_sections_tile_the_duration(mixed):
    path, truth = mixed
    assert truth["video"] == path.name and truth["fps"] == 25
    assert truth["duration_s"] == pytest.approx(20.0)
    secs = truth["sections"]
    assert secs[0]["start_s"] == 0.0 and secs[-1]["end_s"] == pytest.approx(20.0)
    for prev, nxt in itertools.pairwise(secs):
        assert prev["end_s"] == pytest.approx(nxt["start_s"])
        assert prev["end_frame"] == nxt["first_frame"]
    assert {s["kind"] for s in secs} == set(K)
    assert clean_single_speaker_intervals(truth) == [(0.0, 4.0, "aew")]
    for s in secs:
        assert len(s["faces"]) == len(s["visible_speaker_ids"])
        assert set(s["speaker_ids"]) <= set(truth["speakers"])
    json.dumps(truth)  # plain data


@pytest.mark.parametrize("kind", list(K))
def test_centerface_counts_faces_per_section(mixed, kind):
    path, truth = mixed
    sec = next(s for s in truth["sections"] if s["kind"] == kind)
    mid_s = (sec["start_s"] + sec["end_s"]) / 2
    frames = decode_frames(path, mid_s, 2)
    expected = {K.TWO_FACES: 2, K.NO_FACE: 0}.get(kind, 1)
    for frame in frames:
        boxes, _ = detect_faces(frame)
        assert len(boxes) == expected
        for face in sec["faces"]:  # each true face box (drift: a few px) matches a detection
            assert max(iou(face["box_xyxy"], b[:4]) for b in boxes) > 0.6


def mouth_darkness(frames: np.ndarray, drift_px: float) -> np.ndarray:
    """Share of dark pixels under the mouth line, per frame (mouth located by CenterFace once)."""
    boxes, landmarks = detect_faces(frames[len(frames) // 2])
    best = int(np.argmax(boxes[:, 4]))
    lx, ly, rx, ry = landmarks[best, 6:10]
    face_h = boxes[best, 3] - boxes[best, 1]
    cx, cy, w = (lx + rx) / 2, (ly + ry) / 2, abs(rx - lx)
    x0, x1 = int(cx - 0.3 * w - drift_px), int(cx + 0.3 * w + drift_px)
    y0, y1 = int(cy - drift_px / 2), int(cy + 0.15 * face_h + drift_px / 2)
    lum = frames[:, y0:y1, x0:x1].mean(axis=3)
    return (lum < 70).mean(axis=(1, 2))


def test_mouth_follows_the_heard_speech_except_when_dubbed(mixed):
    path, truth = mixed
    audio = decode_audio(path)
    corr = {}
    for kind in (K.CLEAN, K.NOISY, K.DUBBED, K.SILENCE):
        sec = next(s for s in truth["sections"] if s["kind"] == kind)
        n = sec["end_frame"] - sec["first_frame"]
        frames = decode_frames(path, sec["start_s"], n)
        mouth = mouth_darkness(frames, truth["drift_px"])
        env = speech_envelope_db(audio, 16_000, 25, len(frames), sec["start_s"])
        if kind is K.SILENCE:
            assert mouth.max() < 0.05  # closed throughout
            continue
        corr[kind] = float(np.corrcoef(mouth, env)[0, 1])
    assert corr[K.CLEAN] > 0.6 and corr[K.NOISY] > 0.5, corr
    assert corr[K.DUBBED] < corr[K.CLEAN] - 0.3, corr


def test_noisy_section_reports_its_snr(mixed):
    _, truth = mixed
    sec = next(s for s in truth["sections"] if s["kind"] == "noisy")
    assert sec["measured_snr_db"] == pytest.approx(sec["snr_db"], abs=0.3)
    assert sec["clean_single_speaker"] is False


@pytest.mark.parametrize(
    "kwargs", [{"preset": "placebo-ish"}, {"crf": 60}, {"audio_rate_hz": 11_025}]
)
def test_render_config_is_validated(kwargs):
    with pytest.raises(ConfigError):
        RenderConfig(**kwargs)


def test_rendering_is_deterministic(tmp_path):
    sc = Scenario.from_parts("tiny", [section(K.CLEAN, 1.0, "axb"), section(K.NO_FACE, 1.0, "aew")])
    fast = RenderConfig(preset="ultrafast")
    a = render_scenario(sc, tmp_path / "a", fast)
    b = render_scenario(sc, tmp_path / "b", fast)
    assert a.video_path.read_bytes() == b.video_path.read_bytes()
    assert a.truth["sections"] == b.truth["sections"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["tiny.json", "tiny.mp4"]
