"""The active-speaker stage (curation.speaker) on real data: the first 4 s of a real talk (the LR-ASD
known-answer file: the authors' face crops and MFCCs of hdtf_katie_hill, with the talk's own sound
decoded from the bundled clip), and its pure helpers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from avforge import variants
from avforge.core.config import ConfigError
from curation.decode import decode_audio
from curation.lrasd import mfcc_for_frames
from curation.speaker import (
    ActiveSpeaker,
    SpeakerConfig,
    SpeakerScores,
    chunk_starts,
    correlation,
    frame_energy_db,
    pooled_sync,
    smooth,
    window_mfcc,
)

REF = Path(__file__).resolve().parents[1] / "data" / "lr_asd" / "reference_katie_4s.npz"


def _sound(talk: str) -> np.ndarray:
    return decode_audio(str(variants.bundled_clip(talk).path), sample_rate_hz=16000)


@pytest.fixture(scope="module")
def katie():
    data = np.load(REF)
    faces = data["faces_u8"]
    energy = frame_energy_db(_sound("hdtf_katie_hill"), len(faces))
    return faces, data["mfcc"].astype(np.float32), energy


@pytest.fixture(scope="module")
def speaker():
    return ActiveSpeaker(SpeakerConfig())


def test_a_real_talk_with_its_own_sound_is_speaking_and_in_sync(katie, speaker):
    faces, mfcc, energy = katie
    out = speaker.score(faces, mfcc, np.ones(len(faces), bool), energy)
    assert out.frame_scores.shape == (100,) and out.lip_features.shape == (100, 128)
    assert out.lip_activity is not None and out.lip_activity.shape == (100,)
    assert out.speaking_score > 1.0  # the model's boundary is 0; real talks score ~2-3
    # Its score at the sound's own alignment stands above the off-sync grid (4 s alone is weak
    # evidence; curation pools neighbouring windows: test_pooling_...).
    assert out.sync_confidence > 1.0
    # Near offsets and the far contrast offsets (both signs) were all scored.
    cfg = speaker.cfg
    assert set(out.offset_scores) == set(cfg.near_frames) | set(cfg.far_frames)


def test_pooling_takes_the_contrast_of_the_frame_weighted_mean_curve():
    cfg = SpeakerConfig(context_windows=1)
    grid = cfg.far_frames
    offsets = sorted({*cfg.near_frames, *grid})

    def fake(peak: float, frames: int) -> SpeakerScores:
        by = {k: (peak if k == 0 else float(k % 3)) for k in offsets}
        return SpeakerScores(np.zeros(1), np.zeros((1, 128)), 0.0, 0.0, 0.0, by, frames)

    # Without per-frame lip activity and energy the confidence is the offset contrast alone.
    windows = [fake(10.0, 100), fake(0.0, 300), fake(4.0, 100)]
    pooled = pooled_sync(windows, cfg)
    values = np.array([float(k % 3) for k in grid])
    # Window 1 pools all three: the zero-offset mean is (10*100 + 0*300 + 4*100) / 500 = 2.8.
    assert pooled[1][0] == pytest.approx((2.8 - values.mean()) / values.std())
    # Window 0 pools itself and window 1 only: (10*100 + 0) / 400 = 2.5.
    assert pooled[0][0] == pytest.approx((2.5 - values.mean()) / values.std())
    assert pooled[0][1] == 0.0  # the peak (offset 0) of the pooled curve
    alone = pooled_sync(windows, SpeakerConfig(context_windows=0))
    assert alone[2][0] == pytest.approx((4.0 - values.mean()) / values.std())


def test_pooling_correlates_lips_and_energy_over_the_joined_frames():
    cfg = SpeakerConfig(context_windows=1, lip_energy_weight=2.0)
    offsets = sorted({*cfg.near_frames, *cfg.far_frames})
    flat = {k: float(k % 2) for k in offsets}

    def fake(lips: list[float], energy: list[float]) -> SpeakerScores:
        return SpeakerScores(
            np.zeros(1), np.zeros((1, 128)), 0.0, 0.0, 0.0, flat, 10,
            np.array(lips, np.float32), np.array(energy, np.float32),
        )  # fmt: skip

    # Each window alone: lips and energy constant inside it (correlation 0); joined, they rise
    # together (correlation 1), so the pooled confidence is the contrast + 2 * 1.
    windows = [fake([0, 0], [-60, -60]), fake([5, 5], [-20, -20])]
    contrast = pooled_sync(windows, SpeakerConfig(context_windows=1, lip_energy_weight=0.0))
    pooled = pooled_sync(windows, cfg)
    assert pooled[0][0] == pytest.approx(contrast[0][0] + 2.0)
    # Each window alone: constant series, correlation 0, the contrast alone.
    alone = dataclasses.replace(cfg, context_windows=0)
    no_lips = dataclasses.replace(alone, lip_energy_weight=0.0)
    assert pooled_sync(windows, alone)[0][0] == pytest.approx(pooled_sync(windows, no_lips)[0][0])


def test_real_lips_follow_their_own_sound_not_another_voice_or_a_shifted_one(katie, speaker):
    """Known answers on a real talk: the lip-energy correlation of Katie Hill's first 4 s with her
    own sound, with Ed Markey's speech (dubbed), and with her own sound 1 s late."""
    faces, mfcc, energy = katie
    ones = np.ones(len(faces), bool)
    own = speaker.score(faces, mfcc, ones, energy)
    lips = own.lip_activity
    assert lips is not None
    other = _sound("hdtf_ed_markey")[: 4 * 16000]
    late = np.concatenate([np.zeros(16000, np.float32), _sound("hdtf_katie_hill")])
    r_own = correlation(lips, energy)
    r_dub = correlation(lips, frame_energy_db(other, len(faces)))
    r_late = correlation(lips, frame_energy_db(late, len(faces)))
    # Measured: own 0.24, dubbed -0.15, late -0.15 (one 4 s window: weak alone, pooled in curation).
    assert r_own > 0.2, r_own
    assert r_dub < 0.0 and r_late < 0.0, (r_dub, r_late)
    # The window's confidence is the offset contrast plus the weighted correlation.
    contrast = speaker.score(
        faces, mfcc, ones, np.zeros(len(faces), np.float32)
    ).sync_confidence  # constant energy: correlation 0
    assert own.sync_confidence == pytest.approx(contrast + speaker.cfg.lip_energy_weight * r_own)
    # The same lips, the dubbed voice's MFCCs and energy: a lower confidence.
    dubbed = speaker.score(
        faces, mfcc_for_frames(other, len(faces)), ones, frame_energy_db(other, len(faces))
    )
    assert dubbed.sync_confidence < own.sync_confidence - 2.0


def test_frame_energy_and_correlation_known_answers():
    t = np.arange(16000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)  # power 0.125: -9.03 dB
    e = frame_energy_db(tone, 30)  # 25 frames of tone, 5 frames past its end
    assert e.shape == (30,) and e.dtype == np.float32
    np.testing.assert_allclose(e[:25], 10 * np.log10(0.125), atol=0.01)
    np.testing.assert_allclose(e[25:], -100.0, atol=0.01)
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert correlation(x, 2 * x + 1) == pytest.approx(1.0)
    assert correlation(x, -x) == pytest.approx(-1.0)
    assert correlation(x, np.ones(4)) == 0.0 and correlation(np.zeros(0), np.zeros(0)) == 0.0


def test_scoring_gives_the_process_its_thread_count_back(katie, speaker):
    """Scoring used to leave torch on ``speaker.threads`` (1) for the rest of the process, so a
    training run after in-process curation ran on one thread."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        faces, mfcc, energy = katie
        speaker.score(faces[:25], mfcc[:100], np.ones(25, bool), energy[:25])
        assert speaker.cfg.threads == 1 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_a_still_face_over_real_speech_is_not_speaking(katie, speaker):
    faces, mfcc, energy = katie
    still = np.repeat(faces[10:11], len(faces), axis=0)
    out = speaker.score(still, mfcc, np.ones(len(faces), bool), energy)
    assert out.speaking_score < SpeakerConfig().min_speaking_score


def test_speech_mask_selects_the_frames_that_are_averaged(katie, speaker):
    faces, mfcc, energy = katie
    mask = np.zeros(len(faces), bool)
    mask[20:60] = True
    out = speaker.score(faces, mfcc, mask, energy)
    assert out.speaking_score == pytest.approx(float(out.frame_scores[20:60].mean()), abs=1e-5)
    # No speech at all: every frame counts (a speaking score is still defined).
    none = speaker.score(faces, mfcc, np.zeros(len(faces), bool), energy)
    assert none.speaking_score == pytest.approx(float(none.frame_scores.mean()), abs=1e-5)


def test_chunks_cover_every_frame_with_equal_lengths():
    assert chunk_starts(50, 75) == [0]
    for n in (75, 76, 150, 151, 250):
        starts = chunk_starts(n, 75)
        covered = np.zeros(n, bool)
        for s in starts:
            covered[s : s + 75] = True
            assert s + 75 <= n
        assert covered.all() and starts[0] == 0 and starts[-1] == n - 75


def test_smooth_is_a_moving_average_that_does_not_pull_edges_to_zero():
    x = np.array([[1.0, 1.0, 1.0, 1.0, 1.0, 6.0]])
    out = smooth(x, 5)
    assert out[0, 0] == pytest.approx(1.0)
    assert out[0, 3] == pytest.approx((1 + 1 + 1 + 1 + 6) / 5)
    assert out[0, 5] == pytest.approx((1 + 1 + 6) / 3)
    assert smooth(x, 1) is x


def test_window_mfcc_trims_or_pads_to_four_rows_per_frame():
    m = np.arange(13 * 10, dtype=np.float32).reshape(10, 13)
    assert window_mfcc(m, 2).shape == (8, 13)
    padded = window_mfcc(m, 3)
    assert padded.shape == (12, 13) and (padded[10:] == m[-1]).all()


def test_offsets_and_config_validation():
    cfg = SpeakerConfig(max_offset_s=0.32, offset_step_frames=2)
    assert cfg.near_frames == [-8, -6, -4, -2, 0, 2, 4, 6, 8]
    far = cfg.far_frames
    assert far[-1] == 38 and far[0] == -38 and len(far) == 22 and 8 in far and 7 not in far
    with pytest.raises(ConfigError, match="contrast_max_s"):
        SpeakerConfig(contrast_min_s=1.0, contrast_max_s=1.04)
    with pytest.raises(ConfigError):
        SpeakerConfig(smooth_frames=0)


def test_one_audio_pass_equals_encoding_each_rolled_window(katie, speaker):
    import torch

    from curation.speaker import AUDIO_CONTEXT_FRAMES, circular_audio_embed

    _, mfcc, _ = katie
    model = speaker.model
    offsets = [0, 3, -13, 38]
    got = circular_audio_embed(model, mfcc, offsets)
    ctx = AUDIO_CONTEXT_FRAMES * 4
    with torch.inference_mode():
        for i, k in enumerate(offsets):
            rolled = np.roll(mfcc, -4 * k, axis=0)
            wrapped = np.concatenate([rolled[-ctx:], rolled, rolled[:ctx]])
            want = model.audio_embed(torch.from_numpy(wrapped)[None])[0, 8:108]
            np.testing.assert_allclose(got[i].numpy(), want.numpy(), atol=1e-4)
        # Away from the window's ends, offset 0 is the plain (zero-padded) encoding.
        plain = model.audio_embed(torch.from_numpy(mfcc)[None])[0]
        np.testing.assert_allclose(got[0, 8:92].numpy(), plain[8:92].numpy(), atol=1e-4)
