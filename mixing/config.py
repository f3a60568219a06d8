"""Configuration of mixing: what a mixture looks like (:class:`MixingConfig`) and how it is rendered
(:class:`RenderConfig`), plus presets for the AVSpeech paper's four tasks.

All dataclasses are frozen and validate their ranges in ``__post_init__``; load them from YAML with
``avforge.core.config.load_config(MixingConfig, path)``. Fields left ``None`` in a :class:`MixingConfig`
are filled from the task's preset (:data:`TASK_PRESETS`), so the resolved config written next to every
output always holds concrete values.

The paper's noise convention is ``mixture = s + 0.3 · noise`` (a raw gain, not an SNR); the presets
use it (``noise_mode: gain``, ``noise_gain: 0.3``). ``noise_mode: snr`` scales the noise to an SNR
drawn from ``snr_db_range`` against the reference speaker's active speech instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from avforge.core.config import ConfigError, check_choice, check_range
from manifests.schema import MixTask, Split


class NoiseMode(enum.StrEnum):
    """How the noise level of a recipe is set."""

    GAIN = "gain"
    """``noise_gain`` times the raw noise (the paper's ``s + 0.3·noise``)."""
    SNR = "snr"
    """Noise scaled to an SNR against the reference speaker's active speech."""


class FaceStream(enum.StrEnum):
    """Which per-speaker face streams a rendered mixture carries."""

    NONE = "none"
    CROPS = "crops"
    """Face crops (uint8 RGB) decoded from the media shards' JPEGs."""
    EMBEDDINGS = "embeddings"
    """Stored per-frame face embeddings (ArcFace identity, when curation made them)."""
    BOTH = "both"
    """Crops and embeddings."""
    LIPS = "lips"
    """Stored per-frame lip features: the LR-ASD active-speaker network's visual embedding (128
    float16 a frame at 25 fps), a lip-motion feature, not an identity one."""


@dataclass(frozen=True)
class TaskPreset:
    """What a paper task fixes: speakers, and whether and how noise is added."""

    n_speakers: int
    p_noise: float
    noise_mode: NoiseMode


TASK_PRESETS: dict[MixTask, TaskPreset] = {
    MixTask.ONE_SPEAKER_NOISE: TaskPreset(1, 1.0, NoiseMode.GAIN),
    MixTask.TWO_SPEAKERS: TaskPreset(2, 0.0, NoiseMode.GAIN),
    MixTask.TWO_SPEAKERS_NOISE: TaskPreset(2, 1.0, NoiseMode.GAIN),
    MixTask.THREE_SPEAKERS: TaskPreset(3, 0.0, NoiseMode.GAIN),
    MixTask.CUSTOM: TaskPreset(2, 1.0, NoiseMode.SNR),
}
CLEAN_TASKS = (MixTask.TWO_SPEAKERS, MixTask.THREE_SPEAKERS)
MAX_SPEAKERS = 4


def _check_pair(obj: object, name: str, low: float, high: float) -> None:
    value = getattr(obj, name)
    if len(value) != 2 or value[0] > value[1]:
        raise ConfigError(f"must be [min, max] with min <= max, got {list(value)}", name)
    if value[0] < low or value[1] > high:
        raise ConfigError(f"must lie within [{low}, {high}], got {list(value)}", name)


@dataclass(frozen=True)
class RenderConfig:
    """How a recipe becomes audio and face streams (never changes which recipe is drawn)."""

    sample_rate_hz: int = 16000
    """Clips, noises and RIRs must all be at this rate."""
    fps: float = 25.0
    """Face frames per second (one frame = 640 samples at 16 kHz)."""
    peak_max_abs: float = 0.9
    """No sample of the mixture, sources, targets or noise exceeds this after the peak guard."""
    active_frame_s: float = 0.02
    """Frame length of the active-speech detector."""
    active_threshold_db: float = -40.0
    """A frame is active when its power is within this of the loudest frame."""
    active_floor_db: float = -70.0
    """A signal whose loudest frame is below this (dB re full scale) is silent."""
    face_stream: FaceStream | None = None
    """The face stream rendered with each mixture; None: ``crops`` (for ``avforge mix render`` and
    the datasets). ``avforge train`` sets it from ``model.visual_input`` and refuses a different
    value set here."""
    face_size_px: int | None = None
    """Resize face crops to this square size; None keeps the stored size (all clips must agree)."""
    face_cache_mb: int = 256
    """Decoded face crops kept per process (per DataLoader worker), by clip; 0: decode every time."""

    def __post_init__(self) -> None:
        check_range(self, "sample_rate_hz", 8000, 48000)
        check_range(self, "fps", 1.0, 120.0)
        check_range(self, "peak_max_abs", 0.0, 1.0, low_open=True)
        check_range(self, "active_frame_s", 0.005, 0.1)
        check_range(self, "active_threshold_db", -80.0, 0.0)
        check_range(self, "active_floor_db", -120.0, -20.0)
        check_range(self, "face_size_px", 8, 512)
        check_range(self, "face_cache_mb", 0, 1 << 20)
        samples_per_frame = self.sample_rate_hz / self.fps
        if abs(samples_per_frame - round(samples_per_frame)) > 1e-9:
            raise ConfigError(
                f"{self.sample_rate_hz} Hz / {self.fps} fps is not a whole number", "fps"
            )

    @property
    def audio_settings(self) -> tuple[float, ...]:
        """The fields that decide rendered audio (renderers agreeing on them can share a batch)."""
        return (
            self.sample_rate_hz,
            self.fps,
            self.peak_max_abs,
            self.active_frame_s,
            self.active_threshold_db,
            self.active_floor_db,
        )

    @property
    def active_frame_len(self) -> int:
        """Active-speech frame length in samples."""
        return round(self.active_frame_s * self.sample_rate_hz)


@dataclass(frozen=True)
class MixingConfig:
    """Which mixtures are drawn: task, speakers, levels, overlap, noise and reverb probabilities."""

    task: MixTask = MixTask.TWO_SPEAKERS_NOISE
    n_speakers: int | None = None
    """1..4; None takes the task's (a paper task fixes it; ``custom`` defaults to 2)."""
    duration_s: float = 3.0
    """Mixture length; a multiple of 40 ms."""
    p_noise: float | None = None
    """Probability that a mixture has noise; None takes the task's (0 for the clean tasks)."""
    noise_mode: NoiseMode | None = None
    """None takes the task's (``gain`` for the paper tasks, ``snr`` for ``custom``)."""
    noise_gain: float = 0.3
    """Raw noise gain for ``noise_mode: gain`` (the paper's 0.3)."""
    snr_db_range: tuple[float, float] = (0.0, 20.0)
    """Reference speaker (active speech) over noise, for ``noise_mode: snr``."""
    sir_db_range: tuple[float, float] = (-5.0, 5.0)
    """Reference speaker over each interfering speaker, both on active speech."""
    reference_gain_db_range: tuple[float, float] = (0.0, 0.0)
    """Gain of the reference speaker against its recorded level (level jitter)."""
    overlap_ratio_range: tuple[float, float] = (1.0, 1.0)
    """Fraction of the mixture during which each interferer overlaps the reference (1 = full)."""
    p_reverb: float = 0.0
    """Probability that a mixture is reverberant (all its speakers in one simulated room)."""
    reverb_noise: bool = False
    """Also convolve the noise with an RIR of the same room when the mixture is reverberant."""
    p_same_speaker: float = 0.0
    """Probability that an interferer is the reference's own speaker (another source of theirs)."""
    split: Split = Split.TRAIN
    """Clips and noises are drawn from this split."""
    seed: int = 0
    """Base seed: item ``index`` of ``epoch`` uses the seed derived from (seed, epoch, index)."""
    render: RenderConfig = field(default_factory=RenderConfig)

    def __post_init__(self) -> None:
        preset = TASK_PRESETS[self.task]
        if self.n_speakers is None:
            object.__setattr__(self, "n_speakers", preset.n_speakers)
        if self.p_noise is None:
            object.__setattr__(self, "p_noise", preset.p_noise)
        if self.noise_mode is None:
            object.__setattr__(self, "noise_mode", preset.noise_mode)
        check_range(self, "n_speakers", 1, MAX_SPEAKERS)
        if self.task != MixTask.CUSTOM and self.n_speakers != preset.n_speakers:
            raise ConfigError(
                f"task {self.task.value} has {preset.n_speakers} speaker(s), got {self.n_speakers}; "
                "use task: custom for other counts",
                "n_speakers",
            )
        check_range(self, "p_noise", 0.0, 1.0)
        if self.task in CLEAN_TASKS and self.p_noise:
            raise ConfigError(f"task {self.task.value} is clean: p_noise must be 0", "p_noise")
        if self.task == MixTask.ONE_SPEAKER_NOISE and self.p_noise != 1.0:
            raise ConfigError("task 1s_noise always has noise: p_noise must be 1", "p_noise")
        check_choice(self, "noise_mode", list(NoiseMode))
        check_range(self, "duration_s", 0.4, 60.0)
        steps = self.duration_s / 0.04
        if abs(steps - round(steps)) > 1e-6:
            raise ConfigError(f"must be a multiple of 0.04 s, got {self.duration_s}", "duration_s")
        check_range(self, "noise_gain", 0.0, 10.0, low_open=True)
        _check_pair(self, "snr_db_range", -30.0, 60.0)
        _check_pair(self, "sir_db_range", -30.0, 30.0)
        _check_pair(self, "reference_gain_db_range", -40.0, 20.0)
        _check_pair(self, "overlap_ratio_range", 0.0, 1.0)
        check_range(self, "p_reverb", 0.0, 1.0)
        check_range(self, "p_same_speaker", 0.0, 1.0)
        check_range(self, "seed", 0, 2**63 - 1)

    def with_overrides(self, **changes: Any) -> MixingConfig:
        """A copy with ``changes`` applied and validated again."""
        return replace(self, **changes)


def preset_config(task: MixTask, **overrides: Any) -> MixingConfig:
    """The config of one of the paper's tasks (or ``custom``), with ``overrides`` applied.

    Example::

        cfg = preset_config(MixTask.TWO_SPEAKERS_NOISE, duration_s=3.0, seed=7)
        cfg.n_speakers, cfg.noise_mode, cfg.noise_gain     # 2, NoiseMode.GAIN, 0.3
    """
    return MixingConfig(task=task, **overrides)
