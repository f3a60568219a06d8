"""The LightningDataModule: corpus folders + a mixing config -> training and validation batches.

- Training: a :class:`training.data.BatchStream` per epoch (the Trainer reloads the train loader
  every epoch). Every ``relist_every_n_epochs`` epochs the corpus manifests are read again, so shards
  curated since the last listing join the pool without restarting; :meth:`relist` forces it at the
  next epoch. Within an epoch the pool is fixed.
- Resume: the stream's position is a pure function of (mixing seed, epoch, step), so resuming only
  needs the epoch and the step within it, which the restored Trainer knows (``global_step``); the
  listing state (which epoch listed the pool, how many clips it had, and the pool's
  :attr:`~training.data.MixtureSource.fingerprint`) is saved in the checkpoint through
  :meth:`state_dict`. Exact resume needs the same pool: when the first listing after a resume is for
  an epoch an uninterrupted run would not have re-listed at, and the fingerprint differs from the
  checkpoint's (clips were added, removed or changed since), the run stops with :class:`DataError`
  unless ``allow_corpus_change`` (``avforge train --allow-corpus-change``), which logs one warning
  and continues on the new pool. Checkpoints written before fingerprints existed are not compared.
- Integrity: every listing checks the media shards its corpora point to
  (``data.broken_media``, ``data.verify_media_checksums``; :class:`training.data.MixtureSource`),
  each shard once per run unless more of its rows are needed (a skipped shard is warned about once).
- Validation: a frozen mixture set (``data.val_mixtures``: a folder with a ``mixtures`` manifest of
  recipes over the first corpus), else ``val_items`` recipes drawn once from the val split.

Faces: the model decides the stream (``FaceStream.NONE`` for audio-only; crops, embeddings or lip
features for AV, from ``model.visual_input``); the rest of the render config comes from
``data.mixing.render``. With lip features every clip the training and validation mixtures can use
must have them (:class:`training.data.DataError` otherwise, when the loaders are built).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from manifests import read_mixtures, table_to_records
from manifests.schema import MixtureSpec, Split
from mixing.config import FaceStream, MixingConfig
from mixing.errors import MixingError
from mixing.render import MixtureRenderer
from training.config import DataConfig
from training.data import (
    BatchStream,
    DataError,
    DrawnMixtures,
    FrozenMixtures,
    MixtureSource,
    check_lip_features,
    checked_media_tables,
    collate,
    lip_features_error,
    rendered_face_shape,
    split_config,
)

log = logging.getLogger(__name__)


class SeparationDataModule(pl.LightningDataModule):
    """Mixtures from ``data.corpora`` drawn as ``data.mixing`` says (see the module docstring)."""

    def __init__(
        self,
        data: DataConfig,
        face_stream: FaceStream = FaceStream.NONE,
        *,
        allow_corpus_change: bool = False,
    ) -> None:
        super().__init__()
        self.data = data
        self.face_stream = face_stream
        self.allow_corpus_change = allow_corpus_change
        self._checked_media: dict[tuple[str, int], str | None] = {}
        self._restored: dict[str, Any] | None = None
        """The checkpoint's listing state until the first listing after a resume compares with it."""
        self.train_mixing = split_config(data.mixing, Split.TRAIN, face_stream)
        self.val_mixing = split_config(data.mixing, Split.VAL, face_stream)
        self._source: MixtureSource | None = None
        self._listed_epoch: int | None = None
        self._relist_requested = False
        self._val: FrozenMixtures | DrawnMixtures | None = None
        self.listings = 0
        """How many times the training manifests were read (for tests and logs)."""

    # ------------------------------------------------------------------ listing

    def relist(self) -> None:
        """Read the corpus manifests again when the next training epoch starts."""
        self._relist_requested = True

    def _needs_listing(self, epoch: int) -> bool:
        if self._source is None or self._relist_requested:
            return True
        every = self.data.relist_every_n_epochs
        return bool(every) and epoch != self._listed_epoch and epoch % every == 0

    def train_source(self, epoch: int) -> MixtureSource:
        """The training pool for ``epoch`` (re-listed when due)."""
        if self._needs_listing(epoch):
            self._source = self._mixture_source(self.train_mixing)
            self._check_resumed_pool(epoch, self._source)
            self._listed_epoch, self._relist_requested = epoch, False
            self.listings += 1
        assert self._source is not None
        return self._source

    def _mixture_source(self, mixing: MixingConfig) -> MixtureSource:
        return MixtureSource(
            self.data.corpora,
            mixing,
            broken_media=self.data.broken_media,
            checksums=self.data.verify_media_checksums,
            checked=self._checked_media,
        )

    def _check_resumed_pool(self, epoch: int, source: MixtureSource) -> None:
        """After a resume: stop (or warn once) when the pool differs from the checkpoint's although
        an uninterrupted run would still be drawing from the checkpoint's pool at ``epoch``."""
        restored, self._restored = self._restored, None
        if restored is None or restored.get("fingerprint") is None:
            return
        every = self.data.relist_every_n_epochs
        listed = restored.get("listed_epoch")
        if bool(every) and epoch != listed and epoch % every == 0:
            return  # an uninterrupted run re-lists here too, and would see the same corpora
        if restored["fingerprint"] == source.fingerprint:
            return
        change = (
            f"the training corpora changed since the checkpoint was written "
            f"({restored.get('num_clips')} clips in the pool then, {source.num_clips} now, "
            f"corpora {', '.join(source.corpora)})"
        )
        if not self.allow_corpus_change:
            raise DataError(
                f"cannot resume: {change}, so the resumed run would not continue the same stream; "
                "restore the corpora, start a new out_dir, or pass --allow-corpus-change to "
                "continue on the new pool"
            )
        log.warning("resuming on a changed pool (--allow-corpus-change): %s", change)

    # ------------------------------------------------------------------ loaders

    def steps_per_epoch(self, world_size: int = 1) -> int:
        """Optimizer steps per epoch on each device."""
        steps = self.data.items_per_epoch // (self.data.batch_size * world_size)
        if steps < 1:
            raise DataError(
                f"items_per_epoch {self.data.items_per_epoch} is less than one batch per device"
            )
        return steps

    def train_stream(
        self, epoch: int, start_step: int = 0, rank: int = 0, world_size: int = 1
    ) -> BatchStream:
        return BatchStream(
            self.train_source(epoch),
            batch_size=self.data.batch_size,
            steps_per_epoch=self.steps_per_epoch(world_size),
            epoch=epoch,
            start_step=start_step,
            rank=rank,
            world_size=world_size,
        )

    def _position(self) -> tuple[int, int, int, int]:
        """(epoch, step within it, rank, world size) where the attached Trainer stands."""
        trainer = self.trainer
        if trainer is None:
            return 0, 0, 0, 1
        world = trainer.world_size
        epoch = trainer.current_epoch
        done = trainer.global_step - epoch * self.steps_per_epoch(world)
        return epoch, max(0, done), trainer.global_rank, world

    def crop_size_px(self) -> int | None:
        """The face-crop size the training pool delivers (None unless the face stream is crops, or
        before the pool is listed): recorded in the model package so ``separate`` crops alike."""
        if self._source is None or self.face_stream != FaceStream.CROPS:
            return None
        shapes = {rendered_face_shape(r) for r in self._source.renderers}
        sizes = {shape[0] for shape in shapes if shape is not None}
        return sizes.pop() if len(sizes) == 1 else None

    def train_dataloader(self) -> DataLoader:
        epoch, start, rank, world = self._position()
        stream = self.train_stream(epoch, start, rank, world)
        return DataLoader(
            stream,
            batch_size=None,
            num_workers=self.data.num_workers,
            pin_memory=self._pin_memory(),
        )

    def _pin_memory(self) -> bool:
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self._val is None:
            self._val = self._build_val()

    def _build_val(self) -> FrozenMixtures | DrawnMixtures | None:
        if self.data.val_mixtures:
            specs = table_to_records(read_mixtures(self.data.val_mixtures), MixtureSpec)
            corpus = self.data.corpora[0]
            # a frozen set cannot drop recipes: its media must be whole whatever broken_media says
            checked_media_tables(
                corpus, checksums=self.data.verify_media_checksums, checked=self._checked_media
            )
            if self.face_stream != FaceStream.LIPS:
                return FrozenMixtures(specs, MixtureRenderer(corpus, self.val_mixing.render))
            where = f"{corpus} (val_mixtures {self.data.val_mixtures})"
            clip_ids = list(dict.fromkeys(c for spec in specs for c in spec.clip_ids))
            try:
                renderer = MixtureRenderer(corpus, self.val_mixing.render)
            except MixingError:  # no clip of the corpus has lip features
                raise lip_features_error(
                    where, len(clip_ids), len(clip_ids), clip_ids[:3]
                ) from None
            check_lip_features(renderer, clip_ids, where)
            return FrozenMixtures(specs, renderer)
        if self.data.val_items == 0:
            return None
        return DrawnMixtures(self._mixture_source(self.val_mixing), self.data.val_items)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        if self._val is None:
            return []
        return DataLoader(
            self._val,
            batch_size=self.data.batch_size,
            num_workers=self.data.num_workers,
            collate_fn=partial(collate, face_stream=self.face_stream),
            pin_memory=self._pin_memory(),
        )

    # ------------------------------------------------------------------ checkpoint state

    def state_dict(self) -> dict[str, Any]:
        return {
            "listed_epoch": self._listed_epoch,
            "num_clips": None if self._source is None else self._source.num_clips,
            "listings": self.listings,
            "fingerprint": None if self._source is None else self._source.fingerprint,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.listings = int(state_dict.get("listings", 0))
        self._listed_epoch = state_dict.get("listed_epoch")
        self._restored = dict(state_dict)
