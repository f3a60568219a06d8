"""The training stream: determinism, DDP/worker sharding without loss or duplicates, resume, relisting."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from avforge.core.config import config_from_dict
from avforge.testing.training_corpus import build_two_speaker_corpus
from manifests.schema import MixTask, Split
from mixing.config import FaceStream, MixingConfig
from training.config import DataConfig
from training.data import BatchStream, DataError, MixtureSource, split_config
from training.datamodule import SeparationDataModule

MIXING = MixingConfig(task=MixTask.TWO_SPEAKERS, duration_s=0.4)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_two_speaker_corpus(tmp_path_factory.mktemp("data") / "corpus")


def _source(corpus, face_stream=FaceStream.NONE, corpora=None) -> MixtureSource:
    return MixtureSource(corpora or [str(corpus)], split_config(MIXING, Split.TRAIN, face_stream))


def _ids(batches) -> list[str]:
    return [i for b in batches for i in b.mixture_ids]


def test_stream_batches_are_deterministic_and_carry_faces(corpus) -> None:
    source = _source(corpus, FaceStream.CROPS)
    a = list(BatchStream(source, batch_size=3, steps_per_epoch=2, epoch=1))
    b = list(BatchStream(source, batch_size=3, steps_per_epoch=2, epoch=1))
    assert _ids(a) == [f"mix-train-s0-e1-i{i}" for i in range(6)]
    assert all(torch.equal(x.mixture, y.mixture) for x, y in zip(a, b, strict=True))
    batch = a[0]
    assert batch.mixture.shape == (3, 6400) and batch.sources.shape == (3, 2, 6400)
    assert batch.faces is not None and batch.faces.shape == (3, 2, 10, 24, 24, 3)
    assert torch.allclose(batch.mixture, batch.sources.sum(1), atol=1e-6)


def test_audio_and_crops_rendered_into_the_batch_equal_stacked_items(corpus) -> None:
    source = _source(corpus, FaceStream.CROPS)
    batch = BatchStream(source, batch_size=3, steps_per_epoch=1, epoch=4).render_batch([5, 6, 7])
    items = [source.item(4, i) for i in (5, 6, 7)]
    assert batch.faces is not None and batch.faces.any()
    assert torch.equal(batch.faces, torch.from_numpy(np.stack([it.face_crops for it in items])))
    assert torch.equal(batch.mixture, torch.from_numpy(np.stack([it.mixture for it in items])))
    assert torch.equal(batch.sources, torch.from_numpy(np.stack([it.targets for it in items])))
    assert torch.equal(batch.images, torch.from_numpy(np.stack([it.images for it in items])))


@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_and_workers_split_the_epoch_without_duplicates(corpus, workers) -> None:
    source = _source(corpus)
    seen = []
    for rank in range(2):
        stream = BatchStream(
            source, batch_size=2, steps_per_epoch=3, epoch=0, rank=rank, world_size=2
        )
        batches = list(DataLoader(stream, batch_size=None, num_workers=workers))
        assert len(batches) == 3  # every rank the same count: no DDP hang
        seen += _ids(batches)
    assert sorted(seen) == sorted(f"mix-train-s0-e0-i{i}" for i in range(12))
    single = list(BatchStream(source, batch_size=2, steps_per_epoch=3, epoch=0))
    assert len(single) == 3


def test_worker_order_equals_serial_order_and_resume_skips_exactly(corpus) -> None:
    source = _source(corpus)
    serial = _ids(BatchStream(source, batch_size=2, steps_per_epoch=5, epoch=2))
    stream = BatchStream(source, batch_size=2, steps_per_epoch=5, epoch=2, start_step=2)
    resumed = _ids(DataLoader(stream, batch_size=None, num_workers=2))
    assert resumed == serial[4:]


def test_multiple_corpora_are_mixed_by_clip_count(corpus, tmp_path) -> None:
    other = shutil.copytree(corpus, tmp_path / "other")
    source = _source(corpus, corpora=[str(corpus), str(other)])
    picks = [source.recipe(0, i)[0] for i in range(200)]
    assert 60 < sum(picks) < 140  # equal clip counts: about half from each


def _with_silent_clip(corpus, tmp_path):
    """A copy of ``corpus`` with one more train clip (its own source and speaker) of pure silence."""
    import manifests
    from manifests.schema import ClipRecord

    copy = shutil.copytree(corpus, tmp_path / "with-silence")
    manifests.write_media_shard(
        str(copy / "media" / "silent.arrow"),
        [manifests.MediaRecord.from_audio("silent", np.zeros(32000, np.float32), 16000)],
    )
    clip = ClipRecord(
        "silent", "src-silent", 0, 2, 2, None, 50, 16000, 32000, Split.TRAIN, "silent.arrow", 0
    )
    manifests.write_records(str(copy), "clips", "silent", [clip])
    return copy


def test_silent_recipes_are_redrawn_by_mixing_render_item(corpus, tmp_path) -> None:
    from mixing.draw import render_item

    copy = _with_silent_clip(corpus, tmp_path)
    source = _source(copy)
    sampler, renderer = source.samplers[0], source.renderers[0]
    items = [source.item(3, i) for i in range(24)]
    # one mechanism: the training item is exactly mixing's render_item of the same position
    for i, item in enumerate(items):
        expected = render_item(renderer, sampler, epoch=3, index=i)
        assert item.spec == expected.spec
        assert torch.equal(torch.from_numpy(item.mixture), torch.from_numpy(expected.mixture))
    redrawn = [it.spec for it in items if "-a" in it.spec.mixture_id]
    assert redrawn, "some first draws should have picked the silent clip"
    assert all("silent" not in spec.clip_ids for spec in redrawn)
    assert all(sampler(epoch=3, index=spec.index).clip_ids.count("silent") for spec in redrawn)


def test_missing_split_is_a_clear_error(corpus) -> None:
    cfg = split_config(MixingConfig(task=MixTask.THREE_SPEAKERS), Split.TRAIN, FaceStream.NONE)
    with pytest.raises(DataError, match="speakers"):
        MixtureSource([str(corpus)], cfg)


def test_datamodule_relists_new_shards_at_the_next_epoch(corpus, tmp_path) -> None:
    grown = shutil.copytree(corpus, tmp_path / "grown")
    data = config_from_dict(
        DataConfig,
        {
            "corpora": [str(grown)],
            "mixing": {"task": "2s_clean", "duration_s": 0.4},
            "batch_size": 2,
            "items_per_epoch": 4,
            "relist_every_n_epochs": 1,
        },
    )
    dm = SeparationDataModule(data)
    assert len(dm.train_source(0).samplers[0].pools.clip_ids) == 4
    # A new shard lands: another corpus's clips under a new shard name (ids made unique).
    import manifests
    from manifests.schema import ClipRecord

    clips = manifests.table_to_records(manifests.read_clips(str(grown)), ClipRecord)
    extra = [ClipRecord(**{**c.__dict__, "clip_id": c.clip_id + "-new"}) for c in clips[:2]]
    manifests.write_records(str(grown), "clips", "clips-00001", extra)
    assert len(dm.train_source(0).samplers[0].pools.clip_ids) == 4  # same epoch: pool fixed
    assert len(dm.train_source(1).samplers[0].pools.clip_ids) == 6  # next epoch: re-listed
    dm.relist()
    dm.train_source(1)
    assert dm.listings == 3
