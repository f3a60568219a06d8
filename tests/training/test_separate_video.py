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
