"""The ``lips`` face stream: curation's LR-ASD lip features through the loader and one training step.

The corpus's lip features encode the answer (:func:`avforge.testing.corpus.synthetic_lip_features`):
column 0 of clip frame ``j`` is ``j``, column 1 the clip's media row, so a delivered batch shows which
clip frames it holds. They must be the frames the face crops of the same recipe cover.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from avforge.core.config import config_from_dict
from avforge.testing.corpus import LIP_DIM
from avforge.testing.training_corpus import TINY_AUDIO, build_two_speaker_corpus
from manifests.schema import MixTask, MixtureSpec, Split
from mixing.config import FaceStream, MixingConfig, RenderConfig
from mixing.errors import MixingError
from mixing.render import MixtureRenderer
from training.config import ModelConfig, TrainConfig
from training.data import BatchStream, DataError, MixtureSource, split_config
from training.datamodule import SeparationDataModule
from training.models import AudioVisualSeparator, VisualInput, from_package, load_model, serialize
from training.models.streams import LipStream
from training.system import SeparationSystem
from training.train import face_stream_for, train

TINY = {**TINY_AUDIO, "visual_channels": 8}
MIXING = MixingConfig(task=MixTask.TWO_SPEAKERS, duration_s=0.8)  # 20 video frames
FRAMES = 20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build_two_speaker_corpus(
        tmp_path_factory.mktemp("lips") / "corpus", with_lip_features=True
    )


@pytest.fixture(scope="module")
def plain_corpus(tmp_path_factory) -> Path:
    """The same corpus curated without lip features."""
    return build_two_speaker_corpus(tmp_path_factory.mktemp("plain") / "corpus")


def _config(out: Path, corpus: Path, **model: object) -> TrainConfig:
    return config_from_dict(
        TrainConfig,
        {
            "out_dir": str(out),
            "model": {"kind": "audio_visual", "visual_input": "lips", **TINY, **model},
            "optim": {"lr": 1e-3},
            "data": {
                "corpora": [str(corpus)],
                "mixing": {"task": "2s_clean", "duration_s": 0.8},
                "batch_size": 3,
                "num_workers": 0,
                "items_per_epoch": 6,
                "val_items": 2,
            },
            "trainer": {
                "max_steps": 1,
                "accelerator": "cpu",
                "val_every_n_steps": 1,
                "checkpoint_every_n_steps": 1,
                "log_every_n_steps": 1,
            },
        },
    )


def _expected_frames(spec: MixtureSpec) -> np.ndarray:
    """(n, V) clip frame shown at each mixture frame (-1 before a speaker starts): crops' mapping."""
    out = np.full((len(spec.clip_ids), FRAMES), -1.0, np.float32)
    for i in range(len(spec.clip_ids)):
        first, clip_first = round(spec.starts_s[i] * 25), round(spec.offsets_s[i] * 25)
        out[i, first:] = clip_first + np.arange(FRAMES - first)
    return out


def test_lips_config_selects_the_lip_stream_and_the_loader_delivers_aligned_features(
    corpus,
) -> None:
    cfg = _config(Path("unused"), corpus)
    assert cfg.model.visual_input == VisualInput.LIPS and cfg.model.lip_dim == LIP_DIM
    assert face_stream_for(cfg) == FaceStream.LIPS
    dm = SeparationDataModule(cfg.data, face_stream_for(cfg))
    batch = next(iter(dm.train_dataloader()))
    assert batch.faces is not None and batch.faces.dtype == torch.float32
    assert batch.faces.shape == (3, 2, FRAMES, LIP_DIM)  # (B, speakers, frames, 128)
    source = dm.train_source(0)
    for b, mixture_id in enumerate(batch.mixture_ids):
        spec = source.item(0, b).spec  # the recipe rendered (after any silent redraw)
        assert spec.mixture_id == mixture_id
        np.testing.assert_array_equal(batch.faces[b, :, :, 0].numpy(), _expected_frames(spec))
        rows = [source.renderers[0].clips[c].row for c in spec.clip_ids]
        expected_rows = np.broadcast_to(np.array(rows, np.float32)[:, None], (2, FRAMES))
        np.testing.assert_array_equal(batch.faces[b, :, :, 1].numpy(), expected_rows)
    dm.setup("fit")
    val = next(iter(dm.val_dataloader()))
    assert val.faces is not None and val.faces.shape == (2, 2, FRAMES, LIP_DIM)


def test_lip_features_cover_the_frames_of_the_crops_for_a_known_offset(corpus) -> None:
    """Speaker 0 cropped 0.4 s (10 frames) into its clip from the start; speaker 1 cropped 0.2 s
    (5 frames) in, starting 0.12 s (3 frames) into the mixture."""
    spec = MixtureSpec(
        mixture_id="known",
        task=MixTask.TWO_SPEAKERS,
        seed=0,
        duration_s=0.8,
        clip_ids=["aew-u0-train", "axb-u1-train"],
        offsets_s=[0.4, 0.2],
        starts_s=[0.0, 0.12],
        gains_db=[0.0, 0.0],
        rir_ids=[None, None],
        split=Split.TRAIN,
    )
    lips = MixtureRenderer(str(corpus), RenderConfig(face_stream=FaceStream.LIPS))(spec)
    crops = MixtureRenderer(str(corpus), RenderConfig(face_stream=FaceStream.CROPS))(spec)
    assert lips.lip_features is not None and lips.lip_features.shape == (2, FRAMES, LIP_DIM)
    assert lips.face_crops is None and crops.lip_features is None
    np.testing.assert_array_equal(lips.lip_features[0, :, 0], np.arange(10, 30))
    np.testing.assert_array_equal(lips.lip_features[1, :3], 0.0)  # before speaker 1 starts
    np.testing.assert_array_equal(lips.lip_features[1, 3:, 0], np.arange(5, 22))
    np.testing.assert_array_equal(lips.lip_features[:, 3:, 1], [[0] * 17, [5] * 17])  # media rows
    # the crops of the same recipe show the same clip frames
    np.testing.assert_array_equal(lips.face_mask, crops.face_mask)
    reader, clips = crops_renderer_media(corpus, spec)
    for i, (first, clip_first) in enumerate(((0, 10), (3, 5))):
        media = clips[spec.clip_ids[i]]
        stored = reader.face_crops(media.path, media.row, clip_first, clip_first + FRAMES - first)
        np.testing.assert_array_equal(crops.face_crops[i, first:], stored)
        assert not crops.face_crops[i, :first].any()


def crops_renderer_media(corpus: Path, spec: MixtureSpec):
    renderer = MixtureRenderer(str(corpus), RenderConfig(face_stream=FaceStream.NONE))
    return renderer.reader, renderer.clips


def test_batched_lip_features_equal_single_renders(corpus) -> None:
    source = MixtureSource([str(corpus)], split_config(MIXING, Split.TRAIN, FaceStream.LIPS))
    batch = BatchStream(source, batch_size=4, steps_per_epoch=1, epoch=2).render_batch(range(4))
    rendered = source.items(2, range(4))
    assert rendered.lips is not None and rendered.items[1].lip_features.base is rendered.lips
    single = np.stack([source.item(2, i).lip_features for i in range(4)])
    assert batch.faces is not None and torch.equal(batch.faces, torch.from_numpy(single))


def test_lips_model_shapes_serialisation_and_width_check() -> None:
    stream = LipStream(LIP_DIM, 8)
    assert stream(torch.randn(3, LIP_DIM, 20)).shape == (3, 8, 20)
    assert sum(isinstance(m, torch.nn.Conv1d) for m in stream.modules()) == 2
    model = AudioVisualSeparator(
        n_faces=2, visual_input="lips", lip_dim=LIP_DIM, cmc_dim=4, **TINY, visual_layers=3
    ).eval()
    assert isinstance(model.visual_stream, LipStream)
    mixture = torch.randn(2, 12800) * 0.1
    with torch.no_grad():
        out = model(mixture, torch.randn(2, 2, 20, LIP_DIM))
    assert out.waveforms.shape == (2, 2, 12800) and out.visual.shape == (2, 2, 78, 8)
    lips = torch.randn(2, 2, 20, LIP_DIM)
    rebuilt = from_package(serialize(model))
    assert rebuilt.init_args["visual_input"] == "lips" and rebuilt.init_args["lip_dim"] == LIP_DIM
    with torch.no_grad():
        assert torch.equal(rebuilt(mixture, lips).waveforms, model(mixture, lips).waveforms)
    with pytest.raises(ValueError, match="128-d lips"):
        model(mixture, torch.randn(2, 2, 20, 64))
    with pytest.raises(ValueError, match="128-d lips"):
        model(mixture, torch.randint(0, 255, (2, 2, 20, 16, 16, 3), dtype=torch.uint8))


def test_one_training_step_with_the_lips_stream(corpus, tmp_path) -> None:
    system = SeparationSystem.from_configs(ModelConfig(visual_input=VisualInput.LIPS, **TINY))
    cfg = _config(tmp_path / "run", corpus)
    batch = next(iter(SeparationDataModule(cfg.data, FaceStream.LIPS).train_dataloader()))
    loss, output, _, _ = system.compute_loss(batch)
    assert output.waveforms.shape == (3, 2, 12800) and output.visual.shape == (3, 2, 78, 8)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in system.model.visual_stream.parameters())
    # and one step of the Lightning run (avforge train), with validation and the saved model
    result = train(cfg, resume=None)
    assert result.global_step == 1
    model = load_model(result.model_path)
    assert isinstance(model, AudioVisualSeparator) and model.visual_input == VisualInput.LIPS
    with open(next((tmp_path / "run" / "logs" / "csv").glob("version_*/metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert losses and all(math.isfinite(v) for v in losses)
    assert any(r.get("val/loss") for r in rows)


def test_lips_on_a_corpus_without_lip_features_is_a_clear_error(plain_corpus, tmp_path) -> None:
    cfg = _config(tmp_path / "run", plain_corpus)
    dm = SeparationDataModule(cfg.data, face_stream_for(cfg))
    with pytest.raises(DataError, match=r"train split\).*lips needs lip features.*4 of 4 clips"):
        dm.train_dataloader()
    with pytest.raises(MixingError, match="no clip has lip features"):
        MixtureRenderer(str(plain_corpus), RenderConfig(face_stream=FaceStream.LIPS))


def test_some_clips_without_lip_features_is_a_clear_error(corpus, plain_corpus, tmp_path) -> None:
    """A corpus grown by a curation run that stored no lip features: the pool names the culprits."""
    import manifests
    from manifests.schema import ClipRecord

    mixed = shutil.copytree(corpus, tmp_path / "mixed")
    shutil.copy(plain_corpus / "media" / "clips-00000.arrow", mixed / "media" / "old.arrow")
    old = manifests.table_to_records(manifests.read_clips(str(plain_corpus)), ClipRecord)
    extra = [
        ClipRecord(**{**c.__dict__, "clip_id": c.clip_id + "-old", "media_shard": "old.arrow"})
        for c in old
        if c.split == Split.TRAIN
    ]
    manifests.write_records(str(mixed), "clips", "clips-00001", extra)
    cfg = split_config(MIXING, Split.TRAIN, FaceStream.LIPS)
    with pytest.raises(DataError, match=r"4 of 8 clips have none.*aew-u0-train-old"):
        MixtureSource([str(mixed)], cfg)
    MixtureSource([str(mixed)], split_config(MIXING, Split.TRAIN, FaceStream.CROPS))  # crops: fine


def test_separate_video_takes_a_lips_model_and_names_a_missing_video(tmp_path) -> None:
    """A lips model is accepted (separate computes lip features: test_separate_video.py); a video
    that is not there is one clear SeparateError."""
    from training.separate import SeparateError, separate_video

    model = AudioVisualSeparator(n_faces=1, visual_input="lips", **TINY)
    with pytest.raises(SeparateError, match="cannot decode audio"):
        separate_video(model, tmp_path / "missing.mp4", tmp_path / "out")


def test_auto_visual_input_is_lips_exactly_when_every_training_clip_has_them(
    corpus, plain_corpus, tmp_path
) -> None:
    from training.config import VisualInputChoice
    from training.train import resolve_visual_input

    def resolved(*corpora: Path, **model: object) -> str:
        cfg = _config(tmp_path / "unused", corpora[0], visual_input="auto", **model)
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, corpora=list(corpora)))
        return resolve_visual_input(cfg).model.visual_input.value

    assert ModelConfig().visual_input == VisualInputChoice.AUTO  # the default
    assert resolved(corpus) == "lips"
    assert resolved(plain_corpus) == "crops"
    assert resolved(corpus, plain_corpus) == "crops"  # one corpus without them: crops
    assert resolved(tmp_path / "no_such_corpus") == "crops"  # the data module says why later
    explicit = _config(tmp_path / "unused", corpus, visual_input="crops")
    assert resolve_visual_input(explicit) is explicit
    # A run with auto on a corpus with lip features trains a lips model and says so in its config.
    result = train(_config(tmp_path / "run", corpus, visual_input="auto"), resume=None)
    assert load_model(result.model_path).visual_input == VisualInput.LIPS
    assert "visual_input: lips" in (tmp_path / "run" / "config" / "train.yaml").read_text()
    # Resumed on corpora without lip features: the run keeps its checkpoint's lips (it does not
    # switch to crops under a lips checkpoint) and the loader says what is missing.
    more = _config(tmp_path / "run", plain_corpus, visual_input="auto")
    more = dataclasses.replace(more, trainer=dataclasses.replace(more.trainer, max_steps=2))
    assert resolve_visual_input(more, result.last_checkpoint).model.visual_input == "lips"
    with pytest.raises(DataError, match="lips needs lip features"):
        train(more, allow_corpus_change=True)
