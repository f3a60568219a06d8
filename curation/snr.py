"""Speech SNR: how much louder the main speech is than everything else in a segment, in dB.

Contract: an :class:`SnrEstimator` maps mono float audio (``(n,)``, any rate) and optionally its
:class:`~curation.vad.SpeechActivity` to one number in dB, clamped to ``[min_db, max_db]``. Pure, no I/O
(but building a ``denoiser`` :class:`SnrConfig` reads its model file once).
Three estimators (choose with :class:`SnrConfig`; thresholds come from the real-room calibration,
``python -m curation.calibrate``, whose output is in docs/snr_calibration/). The VAD-gated and WADA
estimators measure the speech band: audio first goes through an 80 Hz high-pass (:func:`highpass`),
because DC offset, rumble and mains hum fill the pauses of many real recordings without being noise
that matters to speech (on dry LibriSpeech windows, without it 21 % read under 22.5 dB and 5 % under
12 dB; with it 1.4 % read under 18 dB and none under 12 dB):

- :class:`VadGatedSnrEstimator`: frames the VAD calls speech carry speech + noise, frames well away
  from speech carry noise only; ``SNR = 10 log10((P_speech - P_noise) / P_noise)``. Fallback when the
  segment has fewer than ``min_noise_s`` of non-speech frames (continuous talk): the noise power is the
  ``noise_percentile``-th percentile of all frame powers. That over-estimates noise under continuous
  speech, so the fallback errs towards *lower* SNR (a false reject, never a false keep).
- :class:`WadaSnrEstimator`: WADA-SNR (Kim & Stern, Interspeech 2008). Speech amplitudes are modelled
  as Gamma(shape 0.4) and noise as Gaussian; ``G = log(mean|x|) - mean(log|x|)`` rises monotonically
  with SNR and is mapped back to dB through a table. The table (:data:`WADA_TABLE_G`, -20..100 dB) was
  generated here by the paper's method: :func:`simulate_wada_table` (2**22 samples of random-sign
  Gamma(0.4) "speech" plus Gaussian noise at each SNR, seed 2008). WADA needs no VAD and measures
  speech energy over the whole segment (pauses included).
- :class:`DenoiserSnrEstimator`: the paper's method with any denoiser ``denoise(audio, rate) -> clean
  estimate``: ``SNR = 10 log10(P(s_hat) / P(x - s_hat))``, both powers over the frames the VAD calls
  speech (so pauses neither dilute the speech nor hide the noise under it). In curation the denoiser
  is a trained 1-speaker + noise model package (``snr: {estimator: denoiser, model: PATH}``,
  ``training.denoiser``); the package is checked when the config is built, so a missing or wrong
  model is a :class:`~avforge.core.config.ConfigError` at load, never a failure per source.

Silence-only input gives ``min_db``; digital silence between words with no noise gives ``max_db``.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.signal import butter, sosfilt, sosfilt_zi

from avforge.core import signal
from avforge.core.config import ConfigError, check_order, check_range
from curation.music import MusicModelError, check_music_model
from curation.vad import SpeechActivity, VadConfig, detect_speech

_TINY = 1e-20

WADA_TABLE_DB = tuple(range(-20, 101))
"""SNR grid (dB) of :data:`WADA_TABLE_G`."""
# fmt: off
WADA_TABLE_G = (
    0.4095, 0.4094, 0.4096, 0.4096, 0.4097, 0.4098, 0.4101, 0.4105, 0.4110, 0.4116, 0.4125, 0.4136,
    0.4155, 0.4176, 0.4206, 0.4243, 0.4291, 0.4351, 0.4425, 0.4516, 0.4622, 0.4744, 0.4889, 0.5050,
    0.5231, 0.5434, 0.5656, 0.5892, 0.6142, 0.6403, 0.6675, 0.6957, 0.7246, 0.7538, 0.7832, 0.8128,
    0.8421, 0.8714, 0.9003, 0.9288, 0.9567, 0.9840, 1.0103, 1.0361, 1.0610, 1.0852, 1.1086, 1.1315,
    1.1533, 1.1745, 1.1948, 1.2144, 1.2331, 1.2513, 1.2686, 1.2852, 1.3010, 1.3164, 1.3309, 1.3449,
    1.3582, 1.3711, 1.3834, 1.3952, 1.4065, 1.4172, 1.4274, 1.4372, 1.4465, 1.4554, 1.4640, 1.4723,
    1.4801, 1.4876, 1.4948, 1.5017, 1.5082, 1.5145, 1.5203, 1.5259, 1.5313, 1.5365, 1.5414, 1.5461,
    1.5506, 1.5550, 1.5590, 1.5629, 1.5666, 1.5702, 1.5736, 1.5769, 1.5800, 1.5830, 1.5859, 1.5886,
    1.5912, 1.5937, 1.5961, 1.5983, 1.6005, 1.6026, 1.6045, 1.6064, 1.6082, 1.6099, 1.6115, 1.6132,
    1.6147, 1.6161, 1.6174, 1.6188, 1.6201, 1.6213, 1.6224, 1.6235, 1.6246, 1.6256, 1.6265, 1.6274,
    1.6283,
)
"""WADA's ``G(SNR)`` for Gamma(0.4) speech + Gaussian noise (see :func:`simulate_wada_table`)."""
# fmt: on


class SnrEstimatorKind(enum.StrEnum):
    VAD_GATED = "vad_gated"
    WADA = "wada"
    DENOISER = "denoiser"


CALIBRATED_THRESHOLD_DB: dict[SnrEstimatorKind, float] = {
    SnrEstimatorKind.VAD_GATED: 18.0,
    SnrEstimatorKind.WADA: 13.5,
    SnrEstimatorKind.DENOISER: 17.0,
}
"""Default keep thresholds per estimator, from the real-room calibration in docs/snr_calibration/
(``python -m curation.calibrate`` on 251 LibriSpeech speakers, half tuned on and half held out; real
kitchen noise, exercise bike, four real music recordings and 3-6-talker babble, plus eight more music
recordings held out of every choice; pyroomacoustics rooms, RT60 0.2-0.8 s, plus a room-tone floor;
true SNRs -5..35 dB, 30 mixtures per 1 dB bin and kind; seed 0; 2026-12-05).

Rule: on the tuning half, the threshold that best separates clean real talks (dry studio LibriSpeech,
and reverberant speech over room tone at true SNR >= 25 dB: keep) from noisy real scenes (babble,
music, kitchen and bike noise at true SNR <= 10 dB: reject), by balanced accuracy; ties go to the
threshold whose 50 %-keep true SNR is nearest the paper's 17 dB. On the held-out half, ``vad_gated``
at 18.0 dB keeps 99.6 % of studio windows and 83 % of reverberant room-tone ones (93.2 % of clean in
all) and rejects 97.5 % of noisy ones (kitchen, bike, babble 100 %, music 90.2 %, held-out music
95.7 %); with the music check (:data:`CALIBRATED_MUSIC_THRESHOLD`) the same clean keep rate and
99.9 % (music 99.6 %, held-out music 100 %). ``wada`` at 13.5 dB: 92.2 % / 97.7 %. Before (no
high-pass, 22.5 dB, calibrated on dry mixtures of 11 bundled utterances): 68.2 % of clean kept. With
``vad.use_silero: true`` the rule gives 17.5 dB: 94.6 % / 98.7 %. The
denoiser's is the paper's 17 dB until a trained denoiser is calibrated (``avforge calibrate-snr
--denoiser PATH`` measures one; docs/snr_calibration/README.md)."""


CALIBRATED_MUSIC_THRESHOLD = 0.06
"""Default ``music_threshold``, from the same real-room calibration (docs/snr_calibration/): on the
tuning speakers, the threshold that best separates the clean windows from real music at true SNR
<= 10 dB when combined with the ``vad_gated`` threshold (balanced accuracy; ties within 0.005 go to
the highest, which rejects least). Real music: the bundled guitar plus three clips; eight more music recordings
are held out of the choice and only reported."""


@dataclass(frozen=True)
class SnrConfig:
    """Speech-SNR filter (``snr`` section of the curation config)."""

    estimator: SnrEstimatorKind = SnrEstimatorKind.VAD_GATED
    """Which estimator scores segments."""
    threshold_db: float | None = None
    """Keep segments whose estimate is >= this; None: the calibrated value for ``estimator``
    (:data:`CALIBRATED_THRESHOLD_DB`), filled in at construction so the resolved config states it."""
    frame_ms: int = 20
    """Frame length of the VAD-gated power measurement."""
    guard_ms: int = 60
    """Non-speech frames closer than this to speech are not used as noise (speech tails)."""
    min_noise_s: float = 0.3
    """Below this much non-speech, the VAD-gated noise floor falls back to a frame-power percentile."""
    noise_percentile: float = 10.0
    """Percentile of frame powers used as the noise floor in that fallback."""
    highpass_hz: float = 80.0
    """The VAD-gated and WADA estimators measure the speech band: a 4th-order Butterworth high-pass
    at this frequency first removes DC offset, rumble and mains hum, which carry almost no speech but
    dominate the pauses of many real recordings (docs/snr_calibration/README.md). 0: off."""
    vad_aggressiveness: int = 2
    """webrtcvad mode used when the caller passes no speech activity."""
    use_silero: bool = False
    """silero-vad second opinion for that VAD run."""
    min_db: float = -20.0
    max_db: float = 60.0
    model: Path | None = None
    """The ``denoiser`` estimator's model: a local ``model.pt`` package (or ``*.ckpt`` checkpoint) of
    an audio-only separator with one speaker output (``training.denoiser``). Required by that
    estimator and checked here (the file is loaded once), so a bad model stops the run at load;
    not allowed with the other estimators. Stored as an absolute path (workers may run elsewhere)."""
    music_threshold: float | None = CALIBRATED_MUSIC_THRESHOLD
    """Second opinion on the estimate, whatever the estimator: a window whose music score (YAMNet's
    mean ``Music`` probability, curation.music) is >= this is ``low_snr`` too, however clean its SNR
    reads. The VAD-gated estimate reads a talk under music as clean (webrtcvad calls the notes
    speech). None: off. Calibrated with the SNR threshold (:data:`CALIBRATED_MUSIC_THRESHOLD`)."""
    music_model: Path | None = None
    """The music check's network: None for the bundled YAMNet (curation/models/yamnet), or a path to
    another YAMNet log-mel TFLite file. Loaded once here, so a bad file stops the run at load."""

    def __post_init__(self) -> None:
        if self.threshold_db is None:
            object.__setattr__(self, "threshold_db", CALIBRATED_THRESHOLD_DB[self.estimator])
        if self.estimator is SnrEstimatorKind.DENOISER:
            if self.model is None:
                raise ConfigError(
                    "the denoiser estimator needs a trained 1-speaker + noise model package: "
                    "set snr.model (docs/curation_audio.md)",
                    "model",
                )
            object.__setattr__(self, "model", Path(self.model).expanduser().absolute())
            check_denoiser_model(self.model)
        elif self.model is not None:
            raise ConfigError(
                f"only the denoiser estimator reads a model, not {self.estimator.value}", "model"
            )
        check_range(self, "threshold_db", -20.0, 100.0)
        if self.music_threshold is not None:
            check_range(self, "music_threshold", 0.0, 1.0, low_open=True)
            if self.music_model is not None:
                model = Path(self.music_model).expanduser().absolute()
                object.__setattr__(self, "music_model", model)
            try:
                check_music_model(self.music_model)
            except MusicModelError as exc:
                raise ConfigError(str(exc), "music_model") from None
        elif self.music_model is not None:
            raise ConfigError(
                "set only with music_threshold (the music check is off)", "music_model"
            )
        check_range(self, "frame_ms", 5, 200)
        check_range(self, "guard_ms", 0, 1000)
        check_range(self, "min_noise_s", 0.0, 60.0)
        check_range(self, "noise_percentile", 0.0, 50.0, low_open=True)
        check_range(self, "vad_aggressiveness", 0, 3)
        check_range(self, "highpass_hz", 0.0, 1000.0)
        check_order(self, "min_db", "max_db")


def check_denoiser_model(path: Path) -> None:
    """Load the denoiser model at ``path`` once (``training.denoiser.load_denoiser``, cached), or raise
    :class:`ConfigError` (key ``model``) saying in one line why it cannot serve."""
    from training.denoiser import DenoiserError, load_denoiser  # torch: only when asked for

    try:
        load_denoiser(path)
    except DenoiserError as exc:
        raise ConfigError(str(exc), "model") from None


class SnrEstimator(Protocol):
    """Anything that scores a segment's speech SNR in dB."""

    def estimate(
        self, audio: np.ndarray, sample_rate_hz: int, speech: SpeechActivity | None = None
    ) -> float: ...


def _clamp(value_db: float, low_db: float, high_db: float) -> float:
    if math.isnan(value_db):
        return low_db
    return float(min(max(value_db, low_db), high_db))


@functools.cache
def _highpass_filter(sample_rate_hz: int, cutoff_hz: float) -> tuple[np.ndarray, np.ndarray]:
    sos = butter(4, cutoff_hz, "highpass", fs=sample_rate_hz, output="sos")
    return sos, sosfilt_zi(sos)


def highpass(audio: np.ndarray, sample_rate_hz: int, cutoff_hz: float) -> np.ndarray:
    """``audio`` (float (n,)) through a 4th-order Butterworth high-pass at ``cutoff_hz`` (0: as is).

    The filter starts in its steady state for ``audio[0]``, so a DC offset leaves no start-up transient.
    """
    audio = np.asarray(audio, np.float32)
    if cutoff_hz <= 0 or audio.size == 0 or cutoff_hz >= sample_rate_hz / 2:
        return audio
    sos, zi = _highpass_filter(int(sample_rate_hz), float(cutoff_hz))
    return sosfilt(sos, audio, zi=zi * audio[0])[0].astype(np.float32)


def frame_powers(audio: np.ndarray, frame_len: int) -> np.ndarray:
    """Mean square per non-overlapping frame of ``frame_len`` samples (the last partial frame
    dropped), in float64: :func:`avforge.core.signal.frame_powers`."""
    return signal.frame_powers(audio, frame_len, dtype=np.float64)


class VadGatedSnrEstimator:
    """Speech-frame power against the noise floor of non-speech frames (module docstring)."""

    def __init__(self, cfg: SnrConfig | None = None) -> None:
        self.cfg = cfg or SnrConfig()
        self._vad = VadConfig(
            aggressiveness=self.cfg.vad_aggressiveness, use_silero=self.cfg.use_silero
        )

    def estimate(
        self, audio: np.ndarray, sample_rate_hz: int, speech: SpeechActivity | None = None
    ) -> float:
        """SNR in dB of ``audio`` (float (n,)).

        ``speech`` must describe this audio: its ``start_s`` is the time of ``audio[0]`` (pass
        ``activity.crop(start_s, end_s)`` of the whole source; a frame of misalignment is harmless).
        Without it the VAD runs here.
        """
        cfg = self.cfg
        audio = np.asarray(audio, np.float32)
        if speech is None:
            speech = detect_speech(audio, sample_rate_hz, self._vad)
        audio = highpass(audio, sample_rate_hz, cfg.highpass_hz)
        frame_len = max(1, sample_rate_hz * cfg.frame_ms // 1000)
        power = frame_powers(audio, frame_len)
        n = power.size
        if n == 0:
            return cfg.min_db
        duration_s = n * frame_len / sample_rate_hz
        mask = speech.mask(speech.start_s, speech.start_s + duration_s, sample_rate_hz)
        frac = mask[: n * frame_len].reshape(n, frame_len).mean(axis=1)
        is_speech = frac >= 0.5
        if not is_speech.any():
            return cfg.min_db
        guard = math.ceil(cfg.guard_ms / cfg.frame_ms - 1e-9)
        near = np.convolve(frac > 0, np.ones(2 * guard + 1), mode="same") > 0
        noise = ~near
        if noise.sum() * frame_len / sample_rate_hz >= cfg.min_noise_s:
            noise_power = float(power[noise].mean())
        else:
            noise_power = float(np.percentile(power, cfg.noise_percentile))
        speech_power = float(power[is_speech].mean()) - noise_power
        if noise_power <= _TINY:
            return cfg.max_db if speech_power > _TINY else cfg.min_db
        if speech_power <= 0.0:
            return cfg.min_db
        return _clamp(10.0 * math.log10(speech_power / noise_power), cfg.min_db, cfg.max_db)


def simulate_wada_table(
    num_samples: int = 1 << 22, seed: int = 2008, snrs_db: tuple[int, ...] = WADA_TABLE_DB
) -> np.ndarray:
    """Kim & Stern's ``G(SNR)`` by simulation: random-sign Gamma(0.4) speech + Gaussian noise.

    Returns float64 ``(len(snrs_db),)``; :data:`WADA_TABLE_G` is this with the defaults, rounded.
    """
    rng = np.random.default_rng(seed)
    speech = rng.gamma(0.4, 1.0, num_samples) * rng.choice((-1.0, 1.0), num_samples)
    noise = rng.standard_normal(num_samples)
    speech_power = float(np.mean(speech**2))
    out = np.empty(len(snrs_db))
    for i, snr_db in enumerate(snrs_db):
        x = speech + noise * math.sqrt(speech_power / 10 ** (snr_db / 10))
        out[i] = wada_statistic(x)
    return out


def wada_statistic(audio: np.ndarray) -> float:
    """``G = log(mean|x|) - mean(log|x|)`` (|x| floored at 1e-10 as in the reference code)."""
    mag = np.maximum(np.abs(np.asarray(audio, np.float64)), 1e-10)
    return float(np.log(mag.mean()) - np.log(mag).mean())


class WadaSnrEstimator:
    """WADA-SNR (Kim & Stern 2008); ignores ``speech`` (it needs no VAD)."""

    def __init__(self, cfg: SnrConfig | None = None) -> None:
        self.cfg = cfg or SnrConfig(estimator=SnrEstimatorKind.WADA)
        table = np.asarray(WADA_TABLE_G)
        # The simulated curve is flat (sampling noise) at the low end: make it strictly increasing.
        self._g = np.maximum.accumulate(table) + np.arange(table.size) * 1e-9
        self._db = np.asarray(WADA_TABLE_DB, np.float64)

    def estimate(
        self, audio: np.ndarray, sample_rate_hz: int, speech: SpeechActivity | None = None
    ) -> float:
        """SNR in dB of ``audio`` (float (n,)) over the whole segment."""
        audio = highpass(np.asarray(audio, np.float32), sample_rate_hz, self.cfg.highpass_hz)
        if audio.size == 0 or not np.any(audio):
            return self.cfg.min_db
        g = wada_statistic(audio / np.abs(audio).max())
        snr_db = float(np.interp(g, self._g, self._db))
        return _clamp(snr_db, self.cfg.min_db, self.cfg.max_db)


class DenoiserSnrEstimator:
    """The paper's estimator around any denoiser: ``10 log10(P(s_hat) / P(x - s_hat))`` on speech frames."""

    def __init__(
        self, denoise: Callable[[np.ndarray, int], np.ndarray], cfg: SnrConfig | None = None
    ) -> None:
        self.denoise = denoise
        # Only the frame, VAD and clamp settings are read: the default needs no model file.
        self.cfg = cfg or SnrConfig(threshold_db=CALIBRATED_THRESHOLD_DB[SnrEstimatorKind.DENOISER])
        self._vad = VadConfig(
            aggressiveness=self.cfg.vad_aggressiveness, use_silero=self.cfg.use_silero
        )

    def estimate(
        self, audio: np.ndarray, sample_rate_hz: int, speech: SpeechActivity | None = None
    ) -> float:
        """SNR in dB; ``denoise(audio, rate)`` must return the clean estimate, same length.

        ``speech`` as for :meth:`VadGatedSnrEstimator.estimate` (without it the VAD runs here); both
        powers are means over its ``frame_ms`` frames that are at least half speech.
        """
        cfg = self.cfg
        audio = np.asarray(audio, np.float64)
        clean = np.asarray(self.denoise(audio.astype(np.float32), sample_rate_hz), np.float64)
        if clean.shape != audio.shape:
            raise ValueError(f"denoiser returned shape {clean.shape}, expected {audio.shape}")
        if not np.all(np.isfinite(clean)):
            raise ValueError("denoiser returned non-finite samples")
        if speech is None:
            speech = detect_speech(audio.astype(np.float32), sample_rate_hz, self._vad)
        frame_len = max(1, sample_rate_hz * cfg.frame_ms // 1000)
        n = audio.size // frame_len
        if n == 0:
            return cfg.min_db
        mask = speech.mask(
            speech.start_s, speech.start_s + n * frame_len / sample_rate_hz, sample_rate_hz
        )
        is_speech = mask[: n * frame_len].reshape(n, frame_len).mean(axis=1) >= 0.5
        if not is_speech.any():
            return cfg.min_db
        speech_power = float(frame_powers(clean, frame_len)[is_speech].mean())
        rest_power = float(frame_powers(audio - clean, frame_len)[is_speech].mean())
        if speech_power <= _TINY:
            return cfg.min_db
        if rest_power <= _TINY:
            return cfg.max_db
        return _clamp(10.0 * math.log10(speech_power / rest_power), cfg.min_db, cfg.max_db)


def make_estimator(
    cfg: SnrConfig, denoise: Callable[[np.ndarray, int], np.ndarray] | None = None
) -> SnrEstimator:
    """The estimator ``cfg.estimator`` names. For the denoiser kind, ``denoise`` (default: the model
    ``cfg.model``, loaded once per process by ``training.denoiser.load_denoiser``)."""
    if cfg.estimator is SnrEstimatorKind.VAD_GATED:
        return VadGatedSnrEstimator(cfg)
    if cfg.estimator is SnrEstimatorKind.WADA:
        return WadaSnrEstimator(cfg)
    if denoise is None:
        if cfg.model is None:  # unreachable through SnrConfig's own check
            raise ConfigError(
                "the denoiser estimator needs a denoise callable or snr.model", "model"
            )
        from training.denoiser import load_denoiser

        denoise = load_denoiser(cfg.model)
    return DenoiserSnrEstimator(denoise, cfg)


def estimate_snr(
    audio: np.ndarray,
    sample_rate_hz: int,
    cfg: SnrConfig | None = None,
    speech: SpeechActivity | None = None,
) -> float:
    """Functional twin of :func:`make_estimator` (``cfg`` default: VAD-gated). Returns dB."""
    return make_estimator(cfg or SnrConfig()).estimate(audio, sample_rate_hz, speech)
