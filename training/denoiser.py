"""Closing the loop: a trained 1-speaker + noise model as curation's speech-SNR denoiser.

The AVSpeech paper estimated each segment's speech SNR with its own speech enhancement network:
denoised output = clean speech estimate, the rest = noise. :class:`ModelDenoiser` makes a trained
audio-only separator with one speaker output (``n_sources: 1``, usually with ``residual_mask``, trained
on the ``1s_noise`` task, docs/training.md) into the callable ``curation.snr.DenoiserSnrEstimator``
takes. Curation uses it with ``snr: {estimator: denoiser, model: PATH}``::

    from curation.snr import DenoiserSnrEstimator
    estimator = DenoiserSnrEstimator(ModelDenoiser.from_file("runs/enhance/model.pt"))
    snr_db = estimator.estimate(audio, 16000)

Contract: :meth:`ModelDenoiser.from_file` raises :class:`DenoiserError` (one line naming the file) for a
missing file, a file that is not a model package or checkpoint, or a model that is not audio-only with
one speaker output; the constructor raises it for a window or hop off the 40 ms grid. Once built, the
denoiser maps any mono audio to a clean estimate of the same length: recordings of any length are
processed in overlapping windows (:func:`training.separate.separate_long`), audio at another rate than
the model's 16 kHz is resampled there and back. :func:`load_denoiser` caches one per file and process.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from avforge.core.media import SAMPLE_RATE_HZ
from avforge.core.signal import resample
from training.models import AudioOnlySeparator, MaskSeparator, from_package
from training.separate import SeparateError, _frames, separate_long

MIN_SAMPLES = 400
"""Shorter audio than one STFT window (25 ms at 16 kHz) has no clean estimate: zeros."""


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class DenoiserError(ValueError):
    """The model cannot serve as a denoiser (the message names the file and why, on one line)."""


class ModelDenoiser:
    """``denoise(audio (L,) float32, sample_rate_hz) -> clean speech estimate (L,) float32``."""

    def __init__(
        self,
        model: MaskSeparator,
        *,
        window_s: float = 3.0,
        hop_s: float = 1.52,  # 38 video frames: about half a window, on separate_long's 40 ms grid
        device: str | torch.device = "cpu",
    ) -> None:
        if not isinstance(model, AudioOnlySeparator) or model.n_src != 1:
            what = type(model).__name__
            if isinstance(model, AudioOnlySeparator):
                what += f" with {model.n_src} speaker outputs"
            raise DenoiserError(
                f"a denoiser needs an audio-only model with one speaker output, got {what}"
            )
        try:
            win_f, hop_f = _frames(window_s, "window_s"), _frames(hop_s, "hop_s")
        except SeparateError as exc:
            raise DenoiserError(str(exc)) from None
        if hop_f > win_f:
            raise DenoiserError(f"hop_s ({hop_s}) must not exceed window_s ({window_s})")
        self.model = model.eval()
        self.window_s, self.hop_s, self.device = window_s, hop_s, device

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: object) -> ModelDenoiser:
        """Load a ``model.pt`` package (or a training checkpoint ``*.ckpt``); see the module contract."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise DenoiserError(f"no such model file: {path}")
        not_a_model = f"{path} is not an avforge model package or checkpoint"
        if path.suffix == ".ckpt":
            from training.evaluate import load_separator

            try:
                model, _ = load_separator(path)
            except Exception as exc:  # noqa: BLE001 (Lightning / torch errors: many types, lines)
                raise DenoiserError(f"{not_a_model} ({_first_line(exc)})") from None
        else:
            try:
                package = torch.load(str(path), map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 (not a torch file: errors of many types)
                raise DenoiserError(f"{not_a_model} (torch cannot read it)") from None
            if not isinstance(package, dict):
                raise DenoiserError(f"{not_a_model} (it holds a {type(package).__name__})")
            try:
                model = from_package(package)
            except Exception as exc:  # noqa: BLE001 (rebuild errors: many types, many lines)
                raise DenoiserError(f"{not_a_model} ({_first_line(exc)})") from None
        try:
            return cls(model, **kwargs)  # type: ignore[arg-type]
        except DenoiserError as exc:
            raise DenoiserError(f"{path}: {exc}") from None

    def __call__(self, audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        x = np.asarray(audio, np.float32)
        if x.ndim != 1:
            raise DenoiserError(f"audio must be mono (L,), got shape {x.shape}")
        length = x.shape[0]
        rate = int(sample_rate_hz)
        if rate != SAMPLE_RATE_HZ:
            x = resample(x, rate, SAMPLE_RATE_HZ)
        if x.shape[0] < MIN_SAMPLES:
            return np.zeros(length, np.float32)
        out = separate_long(
            self.model, x, window_s=self.window_s, hop_s=self.hop_s, device=self.device
        )
        clean = out[0].numpy().astype(np.float32)
        if rate != SAMPLE_RATE_HZ:
            clean = resample(clean, SAMPLE_RATE_HZ, rate)
            clean = np.pad(clean, (0, max(0, length - clean.shape[0])))[:length]
        return clean


@functools.lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int, size: int) -> ModelDenoiser:
    return ModelDenoiser.from_file(path)


def load_denoiser(path: str | Path) -> ModelDenoiser:
    """:meth:`ModelDenoiser.from_file` with default windows, built once per file (and version of it)
    per process: curation builds an estimator per source."""
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except OSError:
        raise DenoiserError(f"no such model file: {path}") from None
    return _cached(str(path), stat.st_mtime_ns, stat.st_size)
