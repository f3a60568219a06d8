"""`separate_video` end to end on a rendered two-face talk: real decode, CenterFace tracks, crops."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from avforge.synth import render_scenario
from avforge.synth.scenario import Scenario, SectionKind, section
from curation.decode import decode_audio
from tests.training.conftest import TINY_AUDIO, TINY_VISUAL
from tests.training.test_report_separate import _pass_through
from training.models import AudioVisualSeparator
from training.separate import SeparateError, separate_video


@pytest.fixture(scope="module")
def two_face_video(tmp_path_factory):
    scenario = Scenario.from_parts(
        "panel", [section(SectionKind.TWO_FACES, 4.0, "aew", "axb", alternate=True)], seed=3
    )
    return render_scenario(scenario, tmp_path_factory.mktemp("video")).video_path


def test_one_wav_per_tracked_face(two_face_video, tmp_path):
    model = AudioVisualSeparator(
        n_faces=2, visual_input="crops", crop_feature_dim=8, **TINY_AUDIO, **TINY_VISUAL
    )
    _pass_through(model)  # output 0 = the mixture, output 1 = silence: a known answer
    paths = separate_video(model.eval(), two_face_video, tmp_path, crop_size_px=32)
    assert [p.name for p in paths] == ["panel.face0.wav", "panel.face1.wav"]
    mixture = decode_audio(str(two_face_video), 16000)
    first, rate = soundfile.read(paths[0], dtype="float32")
    second, _ = soundfile.read(paths[1], dtype="float32")
    assert rate == 16000 and first.shape == second.shape == mixture.shape
    inner = slice(400, mixture.shape[0] - 400)
    assert np.abs(first[inner] - mixture[inner]).max() < 2e-3
    assert np.abs(second).max() < 1e-5


def test_asking_for_a_face_the_video_does_not_have(two_face_video, tmp_path):
    model = AudioVisualSeparator(
        n_faces=2, visual_input="crops", crop_feature_dim=8, **TINY_AUDIO, **TINY_VISUAL
    )
    with pytest.raises(SeparateError, match=r"video has 2 track\(s\), asked for \[0, 5\]"):
        separate_video(model.eval(), two_face_video, tmp_path, faces=[0, 5], crop_size_px=32)


def test_a_lip_feature_model_gets_curations_lip_features_of_a_real_talk(tmp_path):
    """A real bundled talk, a model that reads lip features: separate computes them as curation
    does (LR-ASD's embedding of its own crops of the track): per frame, the same features as the
    curation pipeline's first window of that talk (cosine > 0.95), and one WAV the length of the
    sound."""
    import torch

    from avforge import variants
    from curation.calibrate_sync import record
    from curation.lrasd import load_lrasd, visual_embed_long
    from training.models import VisualInput
    from training.separate import face_streams_of_video

    video = variants.bundled_clip("hdtf_amy_klobuchar").path
    lips, chosen = face_streams_of_video(str(video), None, 1, stream=VisualInput.LIPS)
    assert chosen == [0] and lips.shape[0] == 1 and lips.shape[2] == 128
    start_s, crops = record(video).windows[0]
    assert start_s == 0.0
    curated = visual_embed_long(load_lrasd(), crops)
    ours = lips[0, : len(curated)]
    cos = torch.nn.functional.cosine_similarity(ours, curated, dim=1)
    assert cos.mean() > 0.95 and cos.min() > 0.8, (cos.mean(), cos.min())

    model = AudioVisualSeparator(
        n_faces=1, visual_input="lips", lip_dim=128, **TINY_AUDIO, **TINY_VISUAL
    )
    paths = separate_video(model.eval(), video, tmp_path)
    signal, rate = soundfile.read(paths[0], dtype="float32")
    assert [p.name for p in paths] == ["hdtf_amy_klobuchar.face0.wav"]
    assert rate == 16000 and signal.shape == decode_audio(str(video), 16000).shape


def test_a_face_embedding_model_is_refused_with_a_clear_error(two_face_video, tmp_path):
    model = AudioVisualSeparator(n_faces=2, visual_input="embeddings", **TINY_AUDIO, **TINY_VISUAL)
    with pytest.raises(SeparateError, match="reads face embeddings"):
        separate_video(model.eval(), two_face_video, tmp_path)
