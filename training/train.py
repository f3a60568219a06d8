"""``avforge train --config FILE``: one training run from a :class:`~training.config.TrainConfig`.

What a run writes into ``out_dir``:

- ``config/train.yaml``: the resolved config (also stored in every checkpoint's hyperparameters);
- ``checkpoints/step=N.ckpt`` every ``checkpoint_every_n_steps`` and ``checkpoints/last.ckpt``: model,
  optimizer, scheduler, loop counters and the DataModule's listing state. The data stream position
  is a pure function of (seed, epoch, step), so resuming from any of them continues the exact stream;
- ``logs/csv/version_N/metrics.csv`` (CSVLogger, always) and ``logs/tensorboard`` when the
  ``tensorboard`` (or ``tensorboardX``) package is installed;
- ``model.pt``: the final separator as a plain package (:func:`training.models.save_model`).

Hardware: ``precision: auto`` is 16-bit mixed precision on GPU and 32-bit on CPU; more than one device
trains with DDP (each rank draws its own batches of the one stream, see :mod:`training.data`);
gradients are clipped to ``grad_clip_norm``. A run resumes from ``checkpoints/last.ckpt`` when one
exists (``resume: auto``), or from an explicit checkpoint.

Integrity (training.datamodule): before the first step every media shard the corpora point to is
opened and checked (``data.broken_media``: stop naming a broken shard, or skip its clips), and a
resumed run whose corpora changed since its checkpoint stops with :class:`training.data.DataError`
unless ``allow_corpus_change`` (``--allow-corpus-change``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from tqdm.auto import tqdm

from avforge.core.config import ConfigError, config_to_dict, write_resolved_config
from mixing.config import FaceStream
from training.config import (
    Accelerator,
    ModelKind,
    Precision,
    TrainConfig,
    TrainerConfig,
    VisualInputChoice,
)
from training.datamodule import SeparationDataModule
from training.models import VisualInput, save_model
from training.system import SeparationSystem


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Where a finished run left its outputs."""

    out_dir: Path
    last_checkpoint: Path | None
    model_path: Path
    global_step: int
    resumed_from: Path | None


def corpus_has_lip_features(corpus: str) -> bool:
    """Whether ``corpus`` has clips and every clip has lip features (False when its clips manifest
    cannot be read: the data module then reports why)."""
    from manifests import read_clips
    from manifests.io import ManifestError

    try:
        clips = read_clips(corpus)
    except ManifestError:
        return False
    if clips.num_rows == 0 or "has_lip_features" not in clips.column_names:
        return False
    return bool(all(clips.column("has_lip_features").to_pylist()))


def resolve_visual_input(cfg: TrainConfig, checkpoint: Path | None = None) -> TrainConfig:
    """``cfg`` with ``model.visual_input: auto`` made concrete: ``lips`` when every clip of every
    training corpus has lip features, else ``crops`` (``VisualInputChoice.AUTO``). A resumed run
    keeps the choice its ``checkpoint`` was trained with, whatever the corpora hold now."""
    if cfg.model.visual_input != VisualInputChoice.AUTO:
        return cfg
    earlier = _checkpoint_visual_input(checkpoint) if checkpoint is not None else None
    if earlier is not None:
        choice = earlier
    elif cfg.model.kind != ModelKind.AUDIO_ONLY and all(
        corpus_has_lip_features(str(c)) for c in cfg.data.corpora
    ):
        choice = VisualInputChoice.LIPS
    else:
        choice = VisualInputChoice.CROPS
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, visual_input=choice))


def _checkpoint_visual_input(path: Path) -> VisualInputChoice | None:
    """The resolved ``model.visual_input`` saved in a Lightning checkpoint's hyper-parameters."""
    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    value = ckpt.get("hyper_parameters", {}).get("resolved_config", {}).get("model", {})
    value = value.get("visual_input") if isinstance(value, dict) else None
    if value in (VisualInputChoice.CROPS, VisualInputChoice.EMBEDDINGS, VisualInputChoice.LIPS):
        return VisualInputChoice(value)
    return None


def face_stream_for(cfg: TrainConfig) -> FaceStream:
    """The face stream the model reads (none for audio-only)."""
    if cfg.model.kind == ModelKind.AUDIO_ONLY:
        return FaceStream.NONE
    if cfg.model.visual_input == VisualInput.EMBEDDINGS:
        return FaceStream.EMBEDDINGS
    if cfg.model.visual_input == VisualInput.LIPS:
        return FaceStream.LIPS
    return FaceStream.CROPS


def check_face_stream(cfg: TrainConfig) -> None:
    """Raise :class:`ConfigError` when ``data.mixing.render.face_stream`` is set to another stream
    than the model reads (it is set from ``model.visual_input``; an explicit value must agree)."""
    wanted = face_stream_for(cfg)
    given = cfg.data.mixing.render.face_stream
    if given is not None and given != wanted:
        why = (
            "an audio-only model"
            if cfg.model.kind == ModelKind.AUDIO_ONLY
            else f"model.visual_input {cfg.model.visual_input.value}"
        )
        raise ConfigError(
            f"is {given.value}, but this model reads {wanted.value} ({why}); leave it out: "
            "training sets it from the model",
            "data.mixing.render.face_stream",
        )


def tensorboard_available() -> bool:
    """Whether Lightning's TensorBoardLogger can write here (``tensorboard`` or ``tensorboardX``)."""
    return any(importlib.util.find_spec(m) is not None for m in ("tensorboard", "tensorboardX"))


def check_accelerator(trainer: TrainerConfig) -> None:
    """Raise :class:`ConfigError` when ``trainer.accelerator`` asks for a GPU that torch cannot
    see (Lightning would stop later with a traceback)."""
    gpu = trainer.accelerator in (Accelerator.GPU, Accelerator.CUDA)
    if gpu and not torch.cuda.is_available():
        raise ConfigError(
            f"is {trainer.accelerator}, but torch sees no CUDA GPU on this machine; use auto "
            "(a GPU when there is one, else the CPU) or cpu",
            "trainer.accelerator",
        )


def resolve_precision(trainer: TrainerConfig) -> str:
    """``auto`` -> ``16-mixed`` when training on a CUDA GPU, else ``32-true``."""
    if trainer.precision != Precision.AUTO:
        return "32-true" if trainer.precision == Precision.FP32 else str(trainer.precision)
    on_gpu = trainer.accelerator in (Accelerator.GPU, Accelerator.CUDA) or (
        trainer.accelerator == Accelerator.AUTO and torch.cuda.is_available()
    )
    return "16-mixed" if on_gpu else "32-true"


def build_loggers(out_dir: Path) -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(str(out_dir / "logs"), name="csv")]
    if tensorboard_available():
        loggers.append(TensorBoardLogger(str(out_dir / "logs"), name="tensorboard"))
    return loggers


class StepProgressBar(pl.Callback):
    """One progress bar over optimizer steps, ``step/max_steps`` with the training loss (rank 0).

    Lightning's own bar counts batches per epoch, and a run bounded by steps has no epoch count
    (``max_epochs=-1``), so it shows ``Epoch 0/-2``; this one shows the run's real total, starting
    at the resumed step."""

    def __init__(self) -> None:
        self._bar: tqdm | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self._bar = tqdm(
                total=trainer.max_steps, initial=trainer.global_step, desc="train", unit="step"
            )

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: object,
        batch: object,
        batch_idx: int,
    ) -> None:
        if self._bar is None:
            return
        self._bar.update(trainer.global_step - self._bar.n)
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            self._bar.set_postfix(loss=f"{float(loss):.3f}", refresh=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def build_trainer(cfg: TrainConfig, extra_callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    """A Trainer configured from ``cfg.trainer`` writing into ``cfg.out_dir``."""
    t = cfg.trainer
    out = Path(cfg.out_dir)
    checkpoints = ModelCheckpoint(
        dirpath=str(out / "checkpoints"),
        filename="step={step}",
        auto_insert_metric_name=False,
        every_n_train_steps=t.checkpoint_every_n_steps,
        save_top_k=-1,
        save_last=True,
    )
    distributed = t.devices > 1 or t.num_nodes > 1
    return pl.Trainer(
        default_root_dir=str(out),
        max_steps=t.max_steps,
        max_epochs=-1,
        accelerator="gpu" if t.accelerator == Accelerator.CUDA else str(t.accelerator),
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy="ddp" if distributed else "auto",
        precision=resolve_precision(t),  # type: ignore[arg-type]
        gradient_clip_val=t.grad_clip_norm or None,
        gradient_clip_algorithm="norm",
        val_check_interval=t.val_every_n_steps,
        check_val_every_n_epoch=None,
        limit_val_batches=t.limit_val_batches or None,
        num_sanity_val_steps=0,
        log_every_n_steps=t.log_every_n_steps,
        reload_dataloaders_every_n_epochs=1,
        deterministic=t.deterministic,
        enable_progress_bar=False,  # StepProgressBar instead, with the run's real total
        enable_model_summary=False,
        logger=build_loggers(out),
        callbacks=[
            checkpoints,
            LearningRateMonitor("step"),
            *([StepProgressBar()] if t.progress_bar else []),
            *(extra_callbacks or []),
        ],
        use_distributed_sampler=False,
    )


_INAPPLICABLE_WARNINGS = (
    # Lightning's own deprecated call into torch's pytree (nothing a user can act on)
    r".*isinstance\(treespec, LeafSpec\).*",
    # our IterableDataset shards the stream per worker itself (training.data), so __len__ is exact
    r"Your `IterableDataset` has `__len__` defined.*",
)


def quiet_lightning() -> None:
    """Quiet by default (the command line calls this): Lightning's INFO lines (hardware summary, an
    advert for a cloud logger, "fit stopped") and two warnings that do not apply to avforge's runs
    are not printed; Lightning's warnings about real problems still are."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in _INAPPLICABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def find_resume_checkpoint(cfg: TrainConfig, resume: str | Path | None) -> Path | None:
    """``auto``: ``out_dir/checkpoints/last.ckpt`` if present; a path: that file; None: fresh."""
    if resume is None:
        return None
    if str(resume) == "auto":
        last = Path(cfg.out_dir) / "checkpoints" / "last.ckpt"
        return last if last.exists() else None
    path = Path(resume)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
    return path


@contextlib.contextmanager
def _deterministic_algorithms_restored() -> Iterator[None]:
    """Give the process its ``torch.use_deterministic_algorithms`` setting back after a run. The
    Trainer sets it from ``trainer.deterministic`` (Lightning calls it for any bool), and torch keeps
    it process-wide, so a deterministic run used to leave it on for whatever the process did next."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def train(
    cfg: TrainConfig,
    resume: str | Path | None = "auto",
    extra_callbacks: list[pl.Callback] | None = None,
    *,
    allow_corpus_change: bool = False,
) -> TrainResult:
    """Run (or resume) training as ``cfg`` says; returns where the outputs are.

    ``allow_corpus_change``: resume even when the training pool differs from the checkpoint's (one
    warning) instead of stopping with :class:`training.data.DataError`."""
    cfg = resolve_visual_input(cfg, find_resume_checkpoint(cfg, resume))
    check_face_stream(cfg)
    check_accelerator(cfg.trainer)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_resolved_config(cfg, str(out / "config" / "train.yaml"))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    with _deterministic_algorithms_restored():
        system = SeparationSystem.from_configs(
            cfg.model, cfg.loss, cfg.optim, resolved_config=config_to_dict(cfg)
        )
        datamodule = SeparationDataModule(
            cfg.data, face_stream_for(cfg), allow_corpus_change=allow_corpus_change
        )
        trainer = build_trainer(cfg, extra_callbacks)
        ckpt = find_resume_checkpoint(cfg, resume)
        trainer.fit(system, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
    model_path = out / "model.pt"
    if trainer.is_global_zero:
        save_model(system.model, model_path, crop_size_px=datamodule.crop_size_px())
    last = out / "checkpoints" / "last.ckpt"
    return TrainResult(out, last if last.exists() else None, model_path, trainer.global_step, ckpt)
