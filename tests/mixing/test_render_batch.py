"""Rendering several recipes at once: every item equals its single render, bit for bit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from manifests.schema import MixTask
from mixing.config import FaceStream, RenderConfig, preset_config
from mixing.draw import render_item, render_items
from mixing.errors import MixingError, SilentRecipeError
from mixing.render import MixtureRenderer
from mixing.render_batch import render_audio_batch
from mixing.sampler import RecipeSampler

AUDIO_ONLY = RenderConfig(face_stream=FaceStream.NONE)


def _specs(corpus, cfg, count, renderer):
    """The first ``count`` renderable recipes of ``cfg`` (training's redraw for silent crops)."""
    sampler = RecipeSampler.from_corpus(str(corpus), cfg)
    return [render_item(renderer, sampler, epoch=0, index=i).spec for i in range(count)]


def _assert_same(batch, k, single) -> None:
    mixture, images, targets, noise, scale = single
    np.testing.assert_array_equal(batch.mixture[k], mixture)
    np.testing.assert_array_equal(batch.images[k], images)
    np.testing.assert_array_equal(batch.targets[k], targets)
    np.testing.assert_array_equal(batch.noise[k], noise)
    assert batch.peak_scales[k] == scale


@pytest.mark.parametrize(
    "cfg",
    [
        preset_config(MixTask.CUSTOM, snr_db_range=(-5.0, 25.0), render=AUDIO_ONLY),
        preset_config(
            MixTask.CUSTOM,
            n_speakers=3,
            overlap_ratio_range=(0.3, 1.0),
            p_noise=0.5,
            p_reverb=0.5,
            reference_gain_db_range=(5.0, 15.0),
            render=AUDIO_ONLY,
        ),
        preset_config(MixTask.ONE_SPEAKER_NOISE, render=AUDIO_ONLY),
    ],
    ids=["dry_snr", "mixed_reverb_noise_overlap_loud", "paper_1s"],
)
def test_batched_items_equal_single_renders(corpus, cfg) -> None:
    renderer = MixtureRenderer(str(corpus), AUDIO_ONLY)
    specs = _specs(corpus, cfg, 10, renderer)
    batch = render_audio_batch([(renderer, s) for s in specs])
    assert not batch.silent
    assert batch.images.shape == (10, len(specs[0].clip_ids), 48000)
    for k, spec in enumerate(specs):
        _assert_same(batch, k, renderer.render_audio(spec))
    # the mixed config really mixes reverberant and dry, with and without noise, clipped or not
    kinds = {(any(s.rir_ids), s.noise_id is not None) for s in specs}
    if cfg.p_reverb:
        assert (
            len(kinds) >= 3 and min(batch.peak_scales) < 1.0 and batch.targets is not batch.images
        )


def test_silent_items_are_reported_not_raised(corpus) -> None:
    renderer = MixtureRenderer(str(corpus), AUDIO_ONLY)
    cfg = preset_config(MixTask.TWO_SPEAKERS_NOISE, render=AUDIO_ONLY)
    # 40 ms crops at every 40 ms of the first second: some fall in the recordings' pauses
    base = _specs(corpus, cfg, 1, renderer)[0]
    specs = [
        replace(base, duration_s=0.04, offsets_s=[0.04 * k, base.offsets_s[1]], mixture_id=str(k))
        for k in range(25)
    ]
    expected = set()
    for k, spec in enumerate(specs):
        try:
            renderer.render_audio(spec)
        except SilentRecipeError:
            expected.add(k)
    assert 0 < len(expected) < len(specs)
    batch = render_audio_batch([(renderer, s) for s in specs])
    assert set(batch.silent) == expected
    for k in range(len(specs)):
        if k in expected:
            assert "silent" in str(batch.silent[k])
            assert not batch.mixture[k].any() and not batch.images[k].any()
        else:
            _assert_same(batch, k, renderer.render_audio(specs[k]))


def test_render_items_equals_render_item_with_redraws_and_crops(corpus) -> None:
    render = RenderConfig(face_stream=FaceStream.CROPS)
    renderer = MixtureRenderer(str(corpus), render)
    # 0.4 s crops: some first draws fall into the recordings' pauses and are redrawn
    cfg = preset_config(MixTask.TWO_SPEAKERS_NOISE, duration_s=0.4, render=render)
    sampler = RecipeSampler.from_corpus(str(corpus), cfg)
    indices = list(range(16))
    redrawn = [
        i
        for i in indices
        if render_item(renderer, sampler, epoch=2, index=i).spec
        != sampler(epoch=2, index=i, attempt=0)
    ]
    assert redrawn, "the fixture corpus should have crops that start in silence"
    batch = render_items([(renderer, sampler)] * len(indices), epoch=2, indices=indices)
    assert batch.crops is not None and batch.crops.shape[:3] == (16, 2, 10)
    for k, index in enumerate(indices):
        single = render_item(renderer, sampler, epoch=2, index=index)
        item = batch.items[k]
        assert item.spec == single.spec
        for name in ("mixture", "images", "targets", "noise", "face_mask", "face_crops"):
            np.testing.assert_array_equal(getattr(item, name), getattr(single, name), name)
        np.testing.assert_array_equal(batch.audio.mixture[k], single.mixture)
        np.testing.assert_array_equal(batch.crops[k], single.face_crops)


def test_a_batch_needs_one_shape(corpus) -> None:
    renderer = MixtureRenderer(str(corpus), AUDIO_ONLY)
    two = _specs(corpus, preset_config(MixTask.TWO_SPEAKERS, render=AUDIO_ONLY), 1, renderer)[0]
    three = _specs(corpus, preset_config(MixTask.THREE_SPEAKERS, render=AUDIO_ONLY), 1, renderer)[0]
    with pytest.raises(MixingError, match="a batch needs one shape"):
        render_audio_batch([(renderer, two), (renderer, three)])
    with pytest.raises(MixingError, match="a batch needs one shape"):
        render_audio_batch([(renderer, two), (renderer, replace(two, duration_s=2.0))])
    other = MixtureRenderer(str(corpus), replace(AUDIO_ONLY, peak_max_abs=0.5))
    with pytest.raises(MixingError, match="audio settings differ"):
        render_audio_batch([(renderer, two), (other, two)])
    with pytest.raises(ValueError, match="at least one"):
        render_audio_batch([])
