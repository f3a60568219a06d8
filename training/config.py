"""Typed training configuration: :class:`TrainConfig` and its sections, loaded from one YAML file.

``avforge train --config FILE`` reads a :class:`TrainConfig` with ``avforge.core.config.load_config``
(unknown keys rejected, ranges checked here in ``__post_init__``). Sections, each given only to the
part that uses it:

- ``model`` (:class:`ModelConfig`): which separator and its widths (defaults are the paper's);
- ``loss`` (:class:`LossConfig`): the separation loss, PIT search, CMC weight;
- ``optim`` (:class:`OptimConfig`): Adam and its step decay;
- ``data`` (:class:`DataConfig`): corpus folders, the mixing config, batch size, loader workers;
- ``trainer`` (:class:`TrainerConfig`): steps, precision, devices, clipping, checkpoints, logs.

The resolved config (every default filled in) is written to ``out_dir/config/train.yaml`` and into
every checkpoint's hyperparameters.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from avforge.core.config import ConfigError, check_choice, check_range
from mixing.config import MixingConfig
from training.losses import PitMode
from training.models.separators import VisualInput


class ModelKind(enum.StrEnum):
    AUDIO_VISUAL = "audio_visual"
    """The AVSpeech paper's model: one output per visible face (in face order)."""
    AUDIO_ONLY = "audio_only"
    """The audio-only baseline: unordered outputs, trained with PIT."""


class LossKind(enum.StrEnum):
    SPECTRAL_L2 = "spectral_l2"
    """L2 between power-law compressed complex spectrograms (the paper's loss)."""
    NEG_SISDR = "neg_sisdr"
    """Negative SI-SDR (dB) of the waveforms."""


class VisualInputChoice(enum.StrEnum):
    """``model.visual_input`` as configured: a :class:`VisualInput`, or ``auto``."""

    AUTO = "auto"
    """``lips`` when every clip of every training corpus has lip features (``has_lip_features``
    in the clips manifest: curation stores them by default), else ``crops``. Resolved when training
    starts; the resolved config and the model package record the choice."""
    CROPS = VisualInput.CROPS.value
    EMBEDDINGS = VisualInput.EMBEDDINGS.value
    LIPS = VisualInput.LIPS.value


@dataclass(frozen=True)
class ModelConfig:
    """The separator and its widths (defaults: the AVSpeech paper's model)."""

    kind: ModelKind = ModelKind.AUDIO_VISUAL
    n_sources: int = 2
    """Separated speakers: face streams of the AV model, outputs of the audio-only one (1..3 in the paper)."""
    residual_mask: bool = False
    """One more output for the rest of the mixture (noise, or speakers without a face stream). Off by
    default, as in the paper: its 1-face model has one output, the speech of the face it is given,
    also on mixtures of more speakers. An audio-only model with fewer outputs than speakers needs it."""
    visual_input: VisualInputChoice = VisualInputChoice.AUTO
    """``auto`` (lips when every training clip has them, else crops), ``crops`` (small CNN, works
    offline on any corpus), ``embeddings`` (ArcFace identity, when stored) or ``lips`` (LR-ASD
    lip-motion features, when curation stored them: ``has_lip_features`` in the clips manifest; two
    temporal convs instead of the dilated visual stream: per-frame lip timing, which the paper's
    per-frame face features carry and 5-frame-held identity embeddings do not)."""
    embedding_dim: int = 512
    lip_dim: int = 128
    """Width of the stored lip features (LR-ASD's visual embedding: 128)."""
    crop_feature_dim: int = 128
    audio_channels: int = 96
    audio_out_channels: int = 8
    audio_layers: int = 15
    visual_channels: int = 256
    visual_layers: int = 6
    """Layers of the dilated visual stream (crops, embeddings; the lips stream has two)."""
    lstm_hidden: int = 400
    """BLSTM units per direction (the paper leaves it open)."""
    fc_dim: int = 600
    """Width of the three FC layers (the paper leaves it open)."""
    mask_bound: float = 2.0
    power: float = 0.3
    """Power-law compression exponent p."""

    def __post_init__(self) -> None:
        check_range(self, "n_sources", 1, 6)
        check_range(self, "embedding_dim", 1, 4096)
        check_range(self, "lip_dim", 1, 4096)
        check_range(self, "crop_feature_dim", 1, 4096)
        check_range(self, "audio_channels", 1, 1024)
        check_range(self, "audio_out_channels", 1, 256)
        check_range(self, "audio_layers", 2, 15)
        check_range(self, "visual_channels", 1, 4096)
        check_range(self, "visual_layers", 1, 6)
        check_range(self, "lstm_hidden", 1, 4096)
        check_range(self, "fc_dim", 1, 8192)
        check_range(self, "mask_bound", 0.0, 100.0, low_open=True)
        check_range(self, "power", 0.0, 1.0, low_open=True)

    @property
    def n_outputs(self) -> int:
        return self.n_sources + int(self.residual_mask)


@dataclass(frozen=True)
class LossConfig:
    kind: LossKind = LossKind.SPECTRAL_L2
    pit_mode: PitMode = PitMode.EXHAUSTIVE
    """Permutation search of the audio-only model."""
    cmc_weight: float = 0.0
    """Lambda of the cross-modal correspondence loss (Makishima et al., Eq. 10: summed over frames,
    speakers and face pairs per mixture; AV models; 0 = off; the paper's setting is 1)."""
    cmc_visual_projection: bool = False
    """Also project the visual features through a linear head into ``cmc_dim`` (not in the paper,
    which compares tanh audio embeddings with the visual features as they are)."""
    cmc_dim: int = 64
    """Embedding size of both CMC heads when ``cmc_visual_projection`` is on (else unused: the audio
    embedding has the visual stream's width, ``model.visual_channels``)."""

    def __post_init__(self) -> None:
        check_range(self, "cmc_weight", 0.0, 100.0)
        check_range(self, "cmc_dim", 1, 4096)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-5
    """Adam learning rate (the paper's)."""
    weight_decay: float = 0.0
    lr_decay_steps: int = 1_800_000
    """Multiply the learning rate by ``lr_decay_factor`` every this many steps (paper: 1.8 M, x0.5)."""
    lr_decay_factor: float = 0.5

    def __post_init__(self) -> None:
        check_range(self, "lr", 0.0, 1.0, low_open=True)
        check_range(self, "weight_decay", 0.0, 1.0)
        check_range(self, "lr_decay_steps", 1)
        check_range(self, "lr_decay_factor", 0.0, 1.0, low_open=True)


class BrokenMedia(enum.StrEnum):
    """``data.broken_media``: what a broken media shard of the corpora does to training."""

    ERROR = "error"
    """Stop before the first step, naming the shard."""
    SKIP = "skip"
    """Train without its clips, noises and RIRs (one logged warning per shard)."""


class Accelerator(enum.StrEnum):
    """``trainer.accelerator`` (Lightning's names)."""

    AUTO = "auto"
    CPU = "cpu"
    GPU = "gpu"
    CUDA = "cuda"


class Precision(enum.StrEnum):
    """``trainer.precision``: ``auto`` is 16-mixed on a GPU and 32 on a CPU."""

    AUTO = "auto"
    FP32 = "32"
    FP16_MIXED = "16-mixed"
    BF16_MIXED = "bf16-mixed"


@dataclass(frozen=True)
class DataConfig:
    corpora: tuple[str, ...] = ()
    """Corpus folders written by ``avforge curate`` (local paths or fsspec URLs)."""
    mixing: MixingConfig = field(default_factory=MixingConfig)
    """How training mixtures are drawn (validation mixtures use the same config on the val split)."""
    val_mixtures: str | None = None
    """A frozen mixture set (``avforge mix freeze``) to validate on; None draws ``val_items`` on the fly."""
    batch_size: int = 8
    num_workers: int = 2
    items_per_epoch: int = 4096
    """Length of one epoch of the on-the-fly training stream (per run, shared by all devices)."""
    val_items: int = 64
    relist_every_n_epochs: int = 1
    """Re-read the corpus manifests every this many epochs (0: never) to pick up new shards."""
    broken_media: BrokenMedia = BrokenMedia.ERROR
    """A media shard the corpora point to that does not open, has another schema or too few rows
    (checked before the first step and at each re-listing): ``error`` stops naming it, ``skip``
    trains without its clips (one logged warning per shard)."""
    verify_media_checksums: bool = False
    """Also recompute every referenced media row's checksums in that check (reads all media once)."""

    def __post_init__(self) -> None:
        check_choice(self, "broken_media", list(BrokenMedia))
        check_range(self, "batch_size", 1, 4096)
        check_range(self, "num_workers", 0, 256)
        check_range(self, "items_per_epoch", 1)
        check_range(self, "val_items", 0)
        check_range(self, "relist_every_n_epochs", 0)
        if self.items_per_epoch < self.batch_size:
            raise ConfigError(
                f"must be >= batch_size ({self.batch_size}), got {self.items_per_epoch}",
                "items_per_epoch",
            )


REDUCED_MODEL: dict[str, int] = {
    "audio_channels": 8,
    "audio_out_channels": 4,
    "audio_layers": 6,
    "lstm_hidden": 48,
    "fc_dim": 64,
    "visual_channels": 16,
    "visual_layers": 3,
    "crop_feature_dim": 16,
}
"""Widths of a CPU-sized separator (``ModelConfig`` keys), used by the demo, the training tests and
the training benchmark's throughput figures. It fits its training mixtures within minutes of CPU
but, trained on 32 real speakers, does not beat a fixed spectral gain on unseen ones; for learning
that carries to new voices use :data:`CPU_LEARNING_MODEL` (docs/training.md, held-out speakers)."""


CPU_LEARNING_MODEL: dict[str, int] = {
    "audio_channels": 8,
    "audio_out_channels": 4,
    "audio_layers": 2,
    "lstm_hidden": 128,
    "fc_dim": 256,
}
"""Widths of an audio-only separator that learns speaker-independent separation on a CPU within
minutes: the paper's first audio layer (1x7) and 1x1 output conv with 8 filters, BLSTM 128, FC 256
(1.6 M parameters). Trained for 2800 steps of 8 x 1 s mixtures of 239 real LibriSpeech speakers (about
5 minutes on 2 cores) it beats the fixed spectral gain by about 1 dB SI-SDRi on speakers it never saw
(docs/training.md, held-out speakers)."""


@dataclass(frozen=True)
class TrainerConfig:
    max_steps: int = 100_000
    accelerator: Accelerator = Accelerator.AUTO
    """``auto``, ``cpu``, ``gpu`` / ``cuda``."""
    devices: int = 1
    """Devices on this node; more than one trains with DDP."""
    num_nodes: int = 1
    precision: Precision = Precision.AUTO
    """``auto`` (16-mixed on GPU, 32 on CPU), ``32``, ``16-mixed``, ``bf16-mixed``."""
    grad_clip_norm: float = 5.0
    """Clip the global gradient norm to this (0: off)."""
    val_every_n_steps: int = 1000
    checkpoint_every_n_steps: int = 1000
    log_every_n_steps: int = 50
    limit_val_batches: int = 0
    """Validation batches per check (0: all)."""
    deterministic: bool = False
    """Deterministic algorithms (exact CPU resume tests; slower on GPU)."""
    progress_bar: bool = False

    def __post_init__(self) -> None:
        check_range(self, "max_steps", 1)
        check_choice(self, "accelerator", list(Accelerator))
        check_range(self, "devices", 1, 1024)
        check_range(self, "num_nodes", 1, 4096)
        check_choice(self, "precision", list(Precision))
        check_range(self, "grad_clip_norm", 0.0)
        check_range(self, "val_every_n_steps", 1)
        check_range(self, "checkpoint_every_n_steps", 1)
        check_range(self, "log_every_n_steps", 1)
        check_range(self, "limit_val_batches", 0)


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``avforge train`` needs; the resolved copy goes with every checkpoint."""

    out_dir: str = "runs/avforge"
    """Experiment folder: checkpoints/, logs/, config/train.yaml, model.pt."""
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        check_range(self, "seed", 0, 2**31 - 1)
        n_speakers = self.data.mixing.n_speakers or 0
        if self.model.n_sources > n_speakers:
            raise ConfigError(
                f"model separates {self.model.n_sources} sources but mixtures have {n_speakers} speakers",
                "model.n_sources",
            )
        audio_only = self.model.kind == ModelKind.AUDIO_ONLY
        if audio_only and self.model.n_sources < n_speakers and not self.model.residual_mask:
            # An AV model with fewer faces than speakers separates the speakers it sees (the
            # paper's 1-face model); unordered audio-only outputs need the rest to go somewhere.
            raise ConfigError(
                "an audio-only model with fewer outputs than speakers needs residual_mask: true",
                "model.residual_mask",
            )
