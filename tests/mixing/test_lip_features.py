"""``face_stream: lips``: LR-ASD lip features rendered on the crops' frames, masked like them, batched."""

from __future__ import annotations

import numpy as np
import pytest

from avforge.testing.corpus import LIP_DIM, build_corpus
from manifests.schema import MixTask
from mixing.config import FaceStream, RenderConfig, preset_config
from mixing.dataset import to_item
from mixing.draw import render_item, render_items
from mixing.errors import MixingError
from mixing.render import MixtureRenderer
from mixing.sampler import RecipeSampler

LIPS = preset_config(
    MixTask.TWO_SPEAKERS, duration_s=2.0, render=RenderConfig(face_stream=FaceStream.LIPS)
)


@pytest.fixture(scope="module")
def lip_corpus(tmp_path_factory):
    """3 speakers x 2 clips of 3 s with lip features; 20 % of face frames missing."""
    return build_corpus(
        tmp_path_factory.mktemp("lips"),
        n_speakers=3,
        clips_per_speaker=2,
        clip_duration_s=3.0,
        with_lip_features=True,
        missing_face_ratio=0.2,
        with_noises=False,
        seed=5,
    )


def test_lip_features_follow_the_crop_frames_and_are_zero_where_the_face_is_missing(
    lip_corpus,
) -> None:
    renderer = MixtureRenderer(str(lip_corpus), LIPS.render)
    crops = MixtureRenderer(str(lip_corpus), RenderConfig(face_stream=FaceStream.CROPS))
    sampler = RecipeSampler.from_corpus(str(lip_corpus), LIPS)
    for index in range(6):
        out = render_item(renderer, sampler, epoch=0, index=index)
        assert out.lip_features is not None and out.lip_features.shape == (2, 50, LIP_DIM)
        assert out.face_crops is None and out.face_embeddings is None
        same = crops(out.spec)
        np.testing.assert_array_equal(out.face_mask, same.face_mask)
        for i, clip_id in enumerate(out.spec.clip_ids):
            first = round(out.spec.starts_s[i] * 25)
            clip_first = round(out.spec.offsets_s[i] * 25)
            mask = out.face_mask[i]
            assert not out.lip_features[i][~mask].any()
            frames = clip_first + np.arange(50) - first
            np.testing.assert_array_equal(out.lip_features[i, mask, 0], frames[mask])
            np.testing.assert_array_equal(out.lip_features[i, mask, 1], renderer.clips[clip_id].row)
            assert not same.face_crops[i][~mask].any() and same.face_crops[i][mask].any()
        assert (~out.face_mask).any()  # some frames were missing in this corpus


def test_batched_lip_features_equal_single_renders_and_reach_the_dataset_items(
    lip_corpus,
) -> None:
    renderer = MixtureRenderer(str(lip_corpus), LIPS.render)
    sampler = RecipeSampler.from_corpus(str(lip_corpus), LIPS)
    batch = render_items([(renderer, sampler)] * 5, epoch=1, indices=range(5))
    assert batch.lips is not None and batch.lips.shape == (5, 2, 50, LIP_DIM)
    assert batch.crops is None
    for k, item in enumerate(batch.items):
        single = render_item(renderer, sampler, epoch=1, index=k)
        np.testing.assert_array_equal(batch.lips[k], single.lip_features)
        assert item.lip_features is not None and item.lip_features.base is batch.lips
    assert to_item(batch.items[0])["lip_features"].shape == (2, 50, LIP_DIM)
    with pytest.raises(MixingError, match="lips_out is float32"):
        renderer(batch.items[0].spec, lips_out=np.zeros((2, 50, 64), np.float32))


def test_lips_without_lip_features_in_the_corpus_is_an_error(corpus) -> None:
    with pytest.raises(MixingError, match="face_stream lips but no clip has lip features"):
        MixtureRenderer(str(corpus), LIPS.render)
