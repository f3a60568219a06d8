"""Rendering into caller-given arrays (batch slots): the same values as a fresh render, or an error."""

from __future__ import annotations

import numpy as np
import pytest

from manifests.schema import MixTask
from mixing.config import FaceStream, RenderConfig, preset_config
from mixing.draw import render_item
from mixing.errors import MixingError
from mixing.render import MixtureRenderer
from mixing.sampler import RecipeSampler


def test_crops_rendered_into_a_given_array(corpus) -> None:
    cfg = preset_config(MixTask.TWO_SPEAKERS, render=RenderConfig(face_stream=FaceStream.CROPS))
    renderer = MixtureRenderer(str(corpus), cfg.render)
    sampler = RecipeSampler.from_corpus(str(corpus), cfg)
    fresh = render_item(renderer, sampler, epoch=0, index=3)
    out = np.zeros_like(fresh.face_crops)
    given = render_item(renderer, sampler, epoch=0, index=3, crops_out=out)
    assert given.face_crops is out and np.array_equal(out, fresh.face_crops) and out.any()
    with pytest.raises(MixingError, match="crops_out is uint8"):
        renderer(fresh.spec, crops_out=np.zeros((2, 75, 16, 16, 3), np.uint8))


def test_audio_rendered_into_given_arrays(corpus) -> None:
    cfg = preset_config(
        MixTask.TWO_SPEAKERS_NOISE, render=RenderConfig(face_stream=FaceStream.NONE)
    )
    renderer = MixtureRenderer(str(corpus), cfg.render)
    sampler = RecipeSampler.from_corpus(str(corpus), cfg)
    fresh = render_item(renderer, sampler, epoch=1, index=2)
    out = (
        np.full((2, 48000), np.nan, np.float32),
        np.empty(48000, np.float32),
        np.empty(48000, np.float32),
    )
    given = render_item(renderer, sampler, epoch=1, index=2, audio_out=out)
    assert given.images is out[0] and given.targets is out[0] and given.mixture is out[2]
    for a, b in ((given.images, fresh.images), (given.noise, fresh.noise), (out[2], fresh.mixture)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(MixingError, match="out arrays do not fit"):
        renderer.render_audio(fresh.spec, out=(out[0][:1], out[1], out[2]))
