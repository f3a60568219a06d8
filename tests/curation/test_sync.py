"""Active-speaker sync: a mouth driven by the same speech scores high, another utterance low, and a
known audio shift is recovered within one frame. Faces are real photos, speech real recordings."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avforge.config import ConfigError
from curation.faces import FaceConfig, load_detector
from curation.sync import SyncConfig, mouth_motion, speech_envelope, sync_score
from manifests.media import FaceTrack
from tests.helpers.faces_synth import (
    SPEECH_FILES,
    astronaut,
    envelope_openness,
    render_talking_face,
    speech,
)

FPS = 25.0
SR = 16000
OFFSET = np.array([40.0, 0.0], np.float32)  # where render_talking_face puts the photo


@pytest.fixture(scope="module")
def face() -> dict[str, object]:
    photo = cv2.resize(astronaut(), (240, 240), interpolation=cv2.INTER_AREA)
    det = load_detector(FaceConfig()).detect(photo)[0]
    lm = det.landmarks
    assert lm is not None
    return {
        "photo": photo,
        "mouth": tuple((lm[3] + lm[4]) / 2),
        "mouth_width": float(np.linalg.norm(lm[4] - lm[3])),
        "box": det.box + np.tile(OFFSET, 2),
        "landmarks": lm + OFFSET,
    }


def talking(face: dict[str, object], audio: np.ndarray, seed: int) -> tuple[np.ndarray, FaceTrack]:
    n = int(len(audio) / SR * FPS)
    frames = render_talking_face(
        envelope_openness(audio, SR, FPS, n),
        face["mouth"],  # type: ignore[arg-type]
        face["mouth_width"],  # type: ignore[arg-type]
        face["photo"],  # type: ignore[arg-type]
        offset=(40, 0),
        seed=seed,
    )
    track = FaceTrack(
        FPS,
        np.tile(face["box"], (n, 1)),
        np.ones(n, np.float32),
        np.ones(n, bool),
        np.tile(face["landmarks"], (n, 1, 1)),
    )
    return frames, track


def test_same_speech_scores_high_other_utterance_low(face):
    cfg = SyncConfig()
    for i, name in enumerate(SPEECH_FILES[:4]):
        audio = speech(name)
        frames, track = talking(face, audio, seed=i)
        motion = mouth_motion(frames, track)
        same = sync_score(motion, audio, SR, FPS, cfg)
        assert same.score > 0.8 and same.offset_s == 0.0
        assert same.correlations.shape == (15,)  # whole frames within ±0.3 s
        for other in SPEECH_FILES[5:8]:
            dubbed = sync_score(motion, speech(other), SR, FPS, cfg)
            assert dubbed.score < cfg.threshold < same.score, (name, other, dubbed.score)


@pytest.mark.parametrize("shift_s", [0.2, -0.12, 0.28])
def test_known_audio_shift_is_recovered_within_one_frame(face, shift_s):
    audio = speech(SPEECH_FILES[1])
    frames, track = talking(face, audio, seed=7)
    k = round(abs(shift_s) * SR)
    if shift_s > 0:  # the audio lags the video
        shifted = np.concatenate([np.zeros(k, np.float32), audio])[: len(audio)]
    else:
        shifted = np.concatenate([audio[k:], np.zeros(k, np.float32)])
    result = sync_score(mouth_motion(frames, track), shifted, SR, FPS, SyncConfig())
    assert abs(result.offset_s - shift_s) <= 1 / FPS + 1e-9
    assert result.score > 0.6


def test_still_mouth_does_not_pass(face):
    audio = speech(SPEECH_FILES[0])
    n = int(len(audio) / SR * FPS)
    frames = render_talking_face(
        np.zeros(n), face["mouth"], face["mouth_width"], face["photo"], seed=3
    )
    track = FaceTrack(
        FPS, np.tile(face["box"], (n, 1)), np.ones(n, np.float32), np.ones(n, bool),
        np.tile(face["landmarks"], (n, 1, 1)),
    )  # fmt: skip
    result = sync_score(mouth_motion(frames, track), audio, SR, FPS, SyncConfig())
    assert result.score < SyncConfig().threshold
    flat = sync_score(np.zeros(n, np.float32), audio, SR, FPS, SyncConfig())
    assert flat.score == 0.0 and flat.offset_s == 0.0


def test_speech_envelope_known_answer():
    t = np.arange(SR) / SR
    audio = np.concatenate([np.zeros(SR), 0.5 * np.sin(2 * np.pi * 200 * t)]).astype(np.float32)
    env = speech_envelope(audio, SR, FPS, 50)
    loud = 10 * np.log10(0.125)  # mean square of a 0.5-amplitude sine
    np.testing.assert_allclose(env[25:], loud, atol=0.05)
    np.testing.assert_allclose(env[:25], loud - 50.0, atol=0.05)
    assert speech_envelope(audio[:100], SR, FPS, 3).shape == (3,)  # missing audio is silence


def test_mouth_motion_is_zscored_and_ignores_absent_frames(face):
    audio = speech(SPEECH_FILES[2])
    frames, track = talking(face, audio, seed=1)
    present = track.present.copy()
    present[10:20] = False
    motion = mouth_motion(frames, FaceTrack(FPS, track.boxes, track.quality, present, None))
    assert motion.dtype == np.float32 and (motion[10:20] == 0).all()
    assert abs(motion[present].mean()) < 1e-5 and abs(motion[present].std() - 1) < 1e-4
    # scale: frames decoded at half size, boxes in source pixels
    half = np.stack([cv2.resize(f, (160, 120), interpolation=cv2.INTER_AREA) for f in frames])
    twice = FaceTrack(FPS, track.boxes, track.quality, track.present, track.landmarks)
    assert sync_score(mouth_motion(half, twice, 2.0), audio, SR, FPS, SyncConfig()).score > 0.6


def test_sync_config_validates():
    with pytest.raises(ConfigError, match="max_offset_s"):
        SyncConfig(max_offset_s=-0.1)
    with pytest.raises(ConfigError, match="threshold"):
        SyncConfig(threshold=1.5)


def test_generator_clean_vs_dubbed(tmp_path):
    """On the synthetic generator's rendered video (H.264, decoded by curation.decode): the clean
    section's face is in sync, the dubbed one (same face, another speaker's voice) is not."""
    render = pytest.importorskip("avforge.synth.render")
    from avforge.synth.scenario import Scenario, SectionKind, section
    from curation.decode import decode_audio, decode_video, iter_video_frames, probe_media
    from curation.faces import detect_faces
    from curation.tracking import TrackConfig, interpolate_track, track_faces

    scenario = Scenario.from_parts(
        "sync",
        [
            section(SectionKind.CLEAN, 4.0, "aew"),
            section(SectionKind.DUBBED, 4.0, "aew", voice_id="axb"),
        ],
        seed=0,
    )
    path = str(render.render_scenario(scenario, tmp_path).video_path)
    info = probe_media(path)
    detector = load_detector(FaceConfig())
    dets = detect_faces(
        iter_video_frames(path, 5.0, 320, info=info), detector, FaceConfig(), info.width / 320
    )
    tracks = track_faces(dets, TrackConfig())
    audio = decode_audio(path)
    scores = {}
    for name, (s0, s1) in {"clean": (0.2, 3.8), "dubbed": (4.2, 7.8)}.items():
        seg = decode_video(path, FPS, 640, s0, s1 - s0, info=info)
        (track,) = [t for t in tracks if t.presence(s0, s1) > 0.5]
        face_track = interpolate_track(track, s0, len(seg.frames))
        motion = mouth_motion(seg.frames, face_track, seg.scale)
        scores[name] = sync_score(motion, audio[int(s0 * SR) : int(s1 * SR)], SR, FPS, SyncConfig())
    assert scores["clean"].score > 0.8 and abs(scores["clean"].offset_s) <= 1 / FPS
    assert scores["dubbed"].score < SyncConfig().threshold
