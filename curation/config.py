"""The curation config: every stage's own frozen config, composed (``avforge curate --config FILE``).

Each stage module defines and validates its section; this module only composes them, plus the
settings of the run itself (:class:`RunConfig`). Load with :func:`load_curate_config` (strict: unknown
keys are errors naming their path, e.g. ``segments.min_duraton_s``). The resolved config is written to
``DIR/config/curate.yaml`` by every run. Where the work runs is not here: that is ``dask_cluster.yaml``.

Example YAML (every key optional)::

    download: {max_height: 480, retries: 3, source_timeout_s: 600}
    decode: {detect_fps: 5.0, max_duration_s: 7200}
    vad: {aggressiveness: 2}
    faces: {backend: centerface}
    speaker: {weights: ava}            # LR-ASD active speaker + sync (curation.speaker)
    snr: {estimator: vad_gated}        # threshold_db defaults to its calibrated value (docs/snr_calibration)
    segments: {min_duration_s: 3.0, max_duration_s: 10.0}
    export: {crop_size: 112, val_ratio: 0.05, test_ratio: 0.05}
    run: {max_in_flight_per_worker: 2}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from avforge.core.config import ConfigError, check_range, load_config
from curation.decode import DecodeConfig
from curation.download import DownloadConfig
from curation.export import ExportConfig
from curation.faces import FaceConfig
from curation.select import SegmentConfig
from curation.snr import SnrConfig
from curation.speaker import SpeakerConfig
from curation.tracking import QualityConfig, TrackConfig
from curation.vad import VadConfig


@dataclass(frozen=True)
class RunConfig:
    """How the Dask run itself behaves (not where it runs)."""

    max_in_flight_per_worker: int = 2
    """Sliding window: at most this many sources submitted per worker thread at a time."""
    task_retries: int = 2
    """Extra attempts of a source whose worker died (on top of Dask's own rescheduling)."""
    workdir: Path | None = None
    """Base of the scratch folders for fetched files (default: ``DIR/.work``). Each run works in its
    own locked ``<base>/run-<random>/`` folder, removed when the run ends (and by a later run when a
    killed run left it), so concurrent runs into one corpus never share scratch files."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self) -> None:
        check_range(self, "max_in_flight_per_worker", 1, 1000)
        check_range(self, "task_retries", 0, 20)


@dataclass(frozen=True)
class CurateConfig:
    """Every curation stage's config (one section each) and the run settings."""

    download: DownloadConfig = field(default_factory=DownloadConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    faces: FaceConfig = field(default_factory=FaceConfig)
    tracking: TrackConfig = field(default_factory=TrackConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    snr: SnrConfig = field(default_factory=SnrConfig)
    segments: SegmentConfig = field(default_factory=SegmentConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.speaker.enabled and self.decode.sample_rate_hz != 16000:
            raise ConfigError(
                "the active-speaker stage (LR-ASD) needs 16 kHz audio: set decode.sample_rate_hz "
                "to 16000 or speaker.enabled to false",
                "decode.sample_rate_hz",
            )
        if self.speaker.enabled and self.decode.clip_fps != 25.0:
            raise ConfigError(
                "the active-speaker stage (LR-ASD) needs 25 fps face tracks: set decode.clip_fps "
                "to 25 or speaker.enabled to false",
                "decode.clip_fps",
            )


def load_curate_config(path: str | Path | None) -> CurateConfig:
    """Read a curation config YAML (``None``: all defaults); errors name the file and key path."""
    return load_config(CurateConfig, path)
