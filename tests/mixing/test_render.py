"""Property tests of rendering on a real corpus: sums, levels, peak guard, determinism, frame counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifests.schema import MixTask
from mixing import functional as F
from mixing.config import FaceStream, NoiseMode, RenderConfig, preset_config
from mixing.draw import render_item
from mixing.render import MixtureRenderer
from mixing.sampler import RecipeSampler

RENDER = RenderConfig(face_stream=FaceStream.BOTH)
CONFIGS = {
    "snr2": preset_config(
        MixTask.CUSTOM, snr_db_range=(-5.0, 25.0), sir_db_range=(-8.0, 8.0), render=RENDER
    ),
    "snr3_overlap": preset_config(
        MixTask.CUSTOM,
        n_speakers=3,
        overlap_ratio_range=(0.3, 1.0),
        snr_db_range=(0.0, 15.0),
        render=RENDER,
    ),
    "reverb": preset_config(MixTask.CUSTOM, p_reverb=1.0, reverb_noise=True, render=RENDER),
    "loud": preset_config(
        MixTask.CUSTOM,
        reference_gain_db_range=(15.0, 20.0),
        snr_db_range=(-5.0, 0.0),
        render=RENDER,
    ),
    "paper_1s": preset_config(MixTask.ONE_SPEAKER_NOISE, render=RENDER),
    "paper_3s": preset_config(MixTask.THREE_SPEAKERS, render=RENDER),
}
PROPERTY = settings(
    database=None,
    derandomize=True,
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def renderer(corpus):
    return MixtureRenderer(str(corpus), RENDER)


@pytest.fixture(scope="module")
def samplers(corpus):
    return {name: RecipeSampler.from_corpus(str(corpus), cfg) for name, cfg in CONFIGS.items()}


def _draw(samplers, name, seed, index, renderer):
    """A renderable recipe: attempt 0, or the deterministic redraw that training would use when
    attempt 0 crops into silence (the real recordings have pauses)."""
    sampler = samplers[name]
    cfg = sampler.config.with_overrides(seed=seed)
    return render_item(
        renderer, RecipeSampler(sampler.pools, cfg), epoch=seed % 3, index=index
    ).spec


recipes = st.tuples(
    st.sampled_from(sorted(CONFIGS)), st.integers(0, 10_000), st.integers(0, 1_000_000)
)


@given(recipes)
@PROPERTY
def test_mixture_is_the_sum_of_images_and_noise(renderer, samplers, drawn):
    out = renderer(_draw(samplers, *drawn, renderer))
    np.testing.assert_allclose(out.mixture, out.images.sum(axis=0) + out.noise, atol=1e-6)
    if not any(out.spec.rir_ids):
        np.testing.assert_array_equal(out.images, out.targets)
    assert np.all(np.isfinite(out.mixture))


@given(recipes)
@PROPERTY
def test_achieved_snr_and_sir_on_active_speech_match_the_recipe(renderer, samplers, drawn):
    spec = _draw(samplers, *drawn, renderer)
    out = renderer(spec)
    ref_power, ref_mask = F.active_power(out.images[spec.reference], frame_len=320)
    for i in range(len(spec.clip_ids)):
        if i == spec.reference:
            continue
        power, _ = F.active_power(out.images[i], frame_len=320)
        assert F.power_ratio_db(ref_power, power) == pytest.approx(-spec.gains_db[i], abs=0.5)
    if spec.noise_snr_db is not None:
        noise_power = F.masked_power(out.noise, ref_mask, frame_len=320)
        assert F.power_ratio_db(ref_power, noise_power) == pytest.approx(spec.noise_snr_db, abs=0.5)


@given(recipes)
@PROPERTY
def test_no_sample_exceeds_the_peak_guard(renderer, samplers, drawn):
    out = renderer(_draw(samplers, *drawn, renderer))
    for signal in (out.mixture, out.images, out.targets, out.noise):
        assert float(np.max(np.abs(signal))) <= RENDER.peak_max_abs


def test_loud_recipes_trigger_the_guard_and_keep_their_ratios(corpus, samplers):
    guard = RenderConfig(face_stream=FaceStream.NONE, peak_max_abs=0.1)
    renderer = MixtureRenderer(str(corpus), guard)
    for index in range(5):
        spec = _draw(samplers, "loud", 5, index, renderer)
        out = renderer(spec)
        assert out.peak_scale < 1.0
        peak = max(
            float(np.max(np.abs(s))) for s in (out.mixture, out.images, out.targets, out.noise)
        )
        assert peak == pytest.approx(0.1, rel=1e-4)
        ref_power, mask = F.active_power(out.images[0], frame_len=320)
        noise_power = F.masked_power(out.noise, mask, frame_len=320)
        assert F.power_ratio_db(ref_power, noise_power) == pytest.approx(spec.noise_snr_db, abs=0.5)
        power, _ = F.active_power(out.images[1], frame_len=320)
        assert F.power_ratio_db(ref_power, power) == pytest.approx(-spec.gains_db[1], abs=0.5)


@given(recipes)
@PROPERTY
def test_rendering_twice_is_bit_identical(corpus, renderer, samplers, drawn):
    spec = _draw(samplers, *drawn, renderer)
    first = renderer(spec)
    again = MixtureRenderer(str(corpus), RENDER)(spec)  # a fresh renderer: no shared cache
    for name in (
        "mixture",
        "images",
        "targets",
        "noise",
        "face_mask",
        "face_crops",
        "face_embeddings",
    ):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name


@given(recipes)
@PROPERTY
def test_durations_and_frame_counts(renderer, samplers, drawn):
    spec = _draw(samplers, *drawn, renderer)
    out = renderer(spec)
    n = len(spec.clip_ids)
    assert out.mixture.shape == (48000,) and out.targets.shape == (n, 48000)
    assert out.face_mask.shape == (n, 75)
    assert out.face_crops.shape == (n, 75, 32, 32, 3) and out.face_crops.dtype == np.uint8
    assert out.face_embeddings.shape == (n, 75, 16)
    assert F.stft(torch.from_numpy(out.mixture)).shape == (257, 298)
    assert F.stft(torch.from_numpy(out.targets)).shape == (n, 257, 298)
    # faces are masked (and zero) before a speaker starts and where the face was missing
    for i in range(n):
        first = round(spec.starts_s[i] * 25)
        assert not out.face_mask[i, :first].any()
        assert not out.face_crops[i][~out.face_mask[i]].any()
        assert not out.face_embeddings[i][~out.face_mask[i]].any()
        assert out.face_crops[i][out.face_mask[i]].any()


def test_face_frames_follow_the_crop_offset(corpus, renderer, samplers):
    spec = _draw(samplers, "snr3_overlap", 1, 4, renderer)
    out = renderer(spec)
    media = renderer.clips[spec.clip_ids[1]]
    first = round(spec.starts_s[1] * 25)
    clip_first = round(spec.offsets_s[1] * 25)
    crops = renderer.reader.face_crops(media.path, media.row, clip_first, clip_first + 75 - first)
    present = renderer.reader.face_track(media.path, media.row).present[
        clip_first : clip_first + 75 - first
    ]
    np.testing.assert_array_equal(out.face_mask[1, first:], present)
    np.testing.assert_array_equal(out.face_crops[1, first:][present], crops[present])


def test_reverberant_targets_are_early_images_aligned_with_the_mixture(renderer, samplers):
    spec = _draw(samplers, "reverb", 2, 9, renderer)
    assert all(spec.rir_ids) and spec.noise_rir_id is not None
    out = renderer(spec)
    for i in range(len(spec.clip_ids)):
        assert not np.array_equal(out.images[i], out.targets[i])
        # the target is most of the image: the late tail is what differs
        corr = np.corrcoef(out.images[i], out.targets[i])[0, 1]
        assert corr > 0.5


def test_paper_noise_convention_is_a_raw_gain(renderer, samplers):
    spec = _draw(samplers, "paper_1s", 0, 3, renderer)
    assert CONFIGS["paper_1s"].noise_mode == NoiseMode.GAIN
    assert spec.noise_gain == pytest.approx(0.3) and spec.noise_snr_db is None
    out = renderer(spec)
    media = renderer.noises[spec.noise_id]
    start = round(spec.noise_offset_s * 16000)
    raw = F.tile(renderer.reader.audio(media.path, media.row), offset=start, length=48000)
    np.testing.assert_allclose(out.noise, 0.3 * raw * out.peak_scale, atol=1e-6)
