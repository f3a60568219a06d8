"""Training-side integrity: broken media shards are found before the first step (stop, or skip with
a logged reason), flipped audio bytes stop rendering, and a resume over changed corpora is refused
unless asked."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import manifests
from avforge.cli import app
from avforge.core.config import config_from_dict
from avforge.core.errors import CorruptCorpusError
from avforge.testing.training_corpus import build_two_speaker_corpus, tiny_train_dict
from manifests import ClipRecord, MediaReader, MediaRecord, SourceKind, SourceRecord, SourceStatus
from manifests.io import shard_path
from manifests.schema import Split
from mixing.config import FaceStream
from training.config import TrainConfig
from training.data import DataError, MixtureSource, split_config
from training.datamodule import SeparationDataModule
from training.train import train

EXTRA = "extra-00000"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return build_two_speaker_corpus(tmp_path_factory.mktemp("integrity") / "corpus")


@pytest.fixture
def corpus(base, tmp_path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "corpus"))


def add_extra_clips(corpus: Path, shard: str = EXTRA) -> list[str]:
    """A new media shard and clips shard: a copy of each train clip's audio under a new id and
    source (what a later curation run adds); returns the new clip ids."""
    clips = manifests.table_to_records(manifests.read_clips(str(corpus)), ClipRecord)
    reader = MediaReader()
    media, rows, sources = [], [], []
    for clip in (c for c in clips if c.split == Split.TRAIN):
        path = str(corpus / "media" / clip.media_shard)
        new_id = f"{clip.clip_id}-{shard}"
        media.append(MediaRecord.from_audio(new_id, reader.audio(path, clip.media_row), 16000))
        rows.append(
            ClipRecord(
                **{
                    **clip.__dict__,
                    "clip_id": new_id,
                    "source_id": f"src-{new_id}",
                    "media_shard": shard + ".arrow",
                    "media_row": len(media) - 1,
                    "has_crops": False,
                }
            )
        )
        sources.append(
            SourceRecord(f"src-{new_id}", path, SourceKind.LOCAL, SourceStatus.OK, num_clips=1)
        )
    manifests.write_media_shard(shard_path(str(corpus), "media", shard), media)
    manifests.write_records(str(corpus), "clips", shard, rows)
    manifests.write_records(str(corpus), "sources", shard, sources)
    return [r.clip_id for r in rows]


def config(out: Path, corpus: Path, *, steps: int = 2, **data) -> TrainConfig:
    return config_from_dict(TrainConfig, tiny_train_dict(out, corpus, steps=steps, data=data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:3000])


# ---------------------------------------------------------------------------- broken media shards


def test_broken_media_shard_stops_training_before_the_first_step(corpus, tmp_path) -> None:
    add_extra_clips(corpus)
    broken = corpus / "media" / f"{EXTRA}.arrow"
    truncate(broken)
    cfg = config(tmp_path / "run", corpus)
    with pytest.raises(CorruptCorpusError) as err:
        train(cfg, resume=None)
    message = str(err.value)
    assert str(broken) in message and "truncated or corrupt" in message
    assert "data.broken_media: skip" in message
    assert not list((tmp_path / "run").glob("checkpoints/*.ckpt"))
    # the command line: one error line naming the file, exit status 2
    cfg_file = tmp_path / "train.yaml"
    cfg_file.write_text(yaml.safe_dump({"out_dir": str(tmp_path / "cli"), **_plain(cfg)}))
    result = CliRunner().invoke(app, ["train", "--config", str(cfg_file)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(broken) in lines[0]


def _plain(cfg: TrainConfig) -> dict:
    from avforge.core.config import config_to_dict

    d = config_to_dict(cfg)
    d.pop("out_dir")
    return d


def test_skip_drops_the_broken_shards_clips_with_a_logged_reason(corpus, tmp_path, caplog) -> None:
    extra = add_extra_clips(corpus)
    mixing = split_config(config(tmp_path, corpus).data.mixing, Split.TRAIN, FaceStream.NONE)
    whole = MixtureSource([str(corpus)], mixing)
    assert set(extra) <= set(whole.samplers[0].pools.clip_ids) and whole.num_clips == 8
    (corpus / "media" / f"{EXTRA}.arrow").write_bytes(b"not arrow at all")
    with caplog.at_level(logging.WARNING, logger="training.data"):
        skipped = MixtureSource([str(corpus)], mixing, broken_media="skip")
    assert skipped.num_clips == 4 and not set(extra) & set(skipped.samplers[0].pools.clip_ids)
    warnings = [r.getMessage() for r in caplog.records if r.name == "training.data"]
    assert len(warnings) == 1 and f"skipping 4 clips of {EXTRA}.arrow" in warnings[0]
    assert skipped.fingerprint != whole.fingerprint
    # a run warns once per broken shard, not at every listing (train, val, each re-listing)
    caplog.clear()
    module = SeparationDataModule(config(tmp_path, corpus, broken_media="skip").data)
    with caplog.at_level(logging.WARNING, logger="training.data"):
        module.setup("fit")
        for epoch in range(3):
            assert module.train_source(epoch).num_clips == 4
    assert module.listings == 3
    assert len([r for r in caplog.records if r.name == "training.data"]) == 1
    # and a run trains on what is left
    result = train(config(tmp_path / "run", corpus, broken_media="skip"), resume=None)
    assert result.global_step == 2


def test_too_few_rows_is_a_broken_shard(corpus, tmp_path) -> None:
    """A media shard replaced by a shorter one (clips point past its end): named before training."""
    add_extra_clips(corpus)
    path = shard_path(str(corpus), "media", EXTRA)
    manifests.write_media_shard(path, [MediaRecord.from_audio("x", [0.0] * 16000, 16000)])
    mixing = split_config(config(tmp_path, corpus).data.mixing, Split.TRAIN, FaceStream.NONE)
    with pytest.raises(CorruptCorpusError, match=f"{EXTRA}.arrow: has 1 rows"):
        MixtureSource([str(corpus)], mixing)


def test_flipped_audio_byte_stops_rendering_and_is_found_by_the_checksum_check(
    corpus, tmp_path
) -> None:
    extra = add_extra_clips(corpus)
    path = corpus / "media" / f"{EXTRA}.arrow"
    data = bytearray(path.read_bytes())
    row0 = MediaReader(verify=False).audio(str(path), 0)
    needle = (row0[:200] * 32768).round().astype("<i2").tobytes()
    data[data.find(needle) + 101] ^= 0x01
    path.write_bytes(bytes(data))
    mixing = split_config(config(tmp_path, corpus).data.mixing, Split.TRAIN, FaceStream.NONE)
    source = MixtureSource([str(corpus)], mixing)  # structure is fine: the cheap check passes
    with pytest.raises(CorruptCorpusError, match=rf"{EXTRA}.arrow: row 0 \({extra[0]}\)"):
        for index in range(64):  # the stream reaches the corrupt clip within a few items
            source.items(0, [index])
    with pytest.raises(CorruptCorpusError, match="audio \\(samples\\) checksum mismatch"):
        MixtureSource([str(corpus)], mixing, checksums=True)


# ---------------------------------------------------------------------------- resume vs corpus change


def test_resume_refuses_a_changed_pool_unless_allowed(corpus, tmp_path, caplog) -> None:
    data = config(tmp_path, corpus).data
    first = SeparationDataModule(data)
    first.train_source(0)
    state = first.state_dict()
    assert len(state["fingerprint"]) == 64
    # unchanged corpus: resumes quietly
    same = SeparationDataModule(data)
    same.load_state_dict(state)
    assert same.train_source(0).fingerprint == state["fingerprint"]
    add_extra_clips(corpus)
    grown = SeparationDataModule(data)
    grown.load_state_dict(state)
    with pytest.raises(DataError, match=r"corpora changed since the checkpoint .*4 clips .*8 now"):
        grown.train_source(0)
    # a resume at an epoch an uninterrupted run re-lists at anyway: the new pool is expected
    later = SeparationDataModule(data)
    later.load_state_dict(state)
    assert later.train_source(1).num_clips == 8
    allowed = SeparationDataModule(data, allow_corpus_change=True)
    allowed.load_state_dict(state)
    with caplog.at_level(logging.WARNING, logger="training.datamodule"):
        allowed.train_source(0)
        allowed.train_source(1)
    warned = [r for r in caplog.records if r.name == "training.datamodule"]
    assert len(warned) == 1 and "--allow-corpus-change" in warned[0].getMessage()


def test_resumed_run_after_the_corpus_grew(corpus, tmp_path) -> None:
    """3 steps, the corpus grows, resume to 5 (epochs of 4 steps): refused, then allowed."""
    run = tmp_path / "run"
    assert train(config(run, corpus, steps=3)).global_step == 3
    add_extra_clips(corpus)
    with pytest.raises(DataError, match="--allow-corpus-change"):
        train(config(run, corpus, steps=5))
    resumed = train(config(run, corpus, steps=5), allow_corpus_change=True)
    assert resumed.resumed_from is not None and resumed.global_step == 5
