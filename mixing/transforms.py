"""Stateful callables around :mod:`mixing.functional`: each binds its settings once and caches what is
expensive to recompute (torchaudio's ``functional`` / ``transforms`` split).

- :class:`ActiveLevel` binds the active-speech detector's frame length and thresholds.
- :class:`Reverb` keeps RIRs and their spectra (per FFT size) in a bounded LRU cache, so an RIR bank
  is read and transformed once per worker, and convolves a source with its full and early RIRs in one
  forward FFT.
- :class:`PeakGuard` applies one common gain to a group of signals.

None of them draws random numbers: randomness lives in :mod:`mixing.sampler`, which derives it from
(base seed, epoch, index).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from mixing import functional as F


class ActiveLevel:
    """Mean power over active frames, with the detector's settings bound.

    Example::

        level = ActiveLevel(frame_len=320)
        power, mask = level(speech)
    """

    def __init__(
        self, *, frame_len: int, threshold_db: float = -40.0, floor_db: float = -70.0
    ) -> None:
        self.frame_len = frame_len
        self.threshold_db = threshold_db
        self.floor_db = floor_db

    def __call__(self, signal: np.ndarray) -> tuple[float, np.ndarray]:
        """(active power, active frame mask) of ``signal``; raises ``SilentSignalError``."""
        return F.active_power(
            signal, frame_len=self.frame_len, threshold_db=self.threshold_db, floor_db=self.floor_db
        )

    def masked(self, signal: np.ndarray, mask: np.ndarray) -> float:
        """Mean power of ``signal`` over the frames of ``mask``."""
        return F.masked_power(signal, mask, frame_len=self.frame_len)


RirPair = tuple[np.ndarray, np.ndarray]


class Reverb:
    """Convolve sources with (full, early) RIR pairs loaded through ``load(rir_id)``, with caching.

    ``load`` returns the full RIR and the early (direct path + early reflections) RIR, float32.
    """

    def __init__(self, load: Callable[[str], RirPair], *, max_cached: int = 512) -> None:
        self._load = load
        self.max_cached = max_cached
        self._rirs: OrderedDict[str, RirPair] = OrderedDict()
        self._spectra: OrderedDict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def rirs(self, rir_id: str) -> RirPair:
        """The (full, early) pair of ``rir_id``, validated (``InvalidRirError`` if unusable)."""
        pair = self._rirs.get(rir_id)
        if pair is None:
            full, early = self._load(rir_id)
            try:
                F.check_rir(full)
                F.check_rir(early)
            except F.InvalidRirError as exc:
                raise F.InvalidRirError(f"rir {rir_id!r}: {exc}") from None
            pair = (np.asarray(full, np.float32), np.asarray(early, np.float32))
            self._rirs[rir_id] = pair
            if len(self._rirs) > self.max_cached:
                self._rirs.popitem(last=False)
        else:
            self._rirs.move_to_end(rir_id)
        return pair

    def _spectra_for(self, rir_id: str, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
        key = (rir_id, n_fft)
        spectra = self._spectra.get(key)
        if spectra is None:
            full, early = self.rirs(rir_id)
            spectra = (F.rir_spectrum(full, n_fft), F.rir_spectrum(early, n_fft))
            self._spectra[key] = spectra
            if len(self._spectra) > self.max_cached:
                self._spectra.popitem(last=False)
        else:
            self._spectra.move_to_end(key)
        return spectra

    def __call__(self, signal: np.ndarray, rir_id: str) -> RirPair:
        """(reverberant image, early-reflection target) of ``signal``, each ``len(signal)`` long."""
        full, _ = self.rirs(rir_id)
        n_fft = F.fft_size(signal.shape[0], full.shape[0])
        wet, early = F.convolve_spectra(signal, self._spectra_for(rir_id, n_fft), n_fft=n_fft)
        return wet, early


class PeakGuard:
    """One gain for a group of signals so that none exceeds ``max_abs``."""

    def __init__(self, *, max_abs: float) -> None:
        self.max_abs = max_abs

    def __call__(self, signals: Sequence[np.ndarray]) -> float:
        """The common factor (<= 1) to multiply every signal of the group by."""
        return F.peak_scale(signals, max_abs=self.max_abs)
