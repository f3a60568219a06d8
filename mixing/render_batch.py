"""Batch audio rendering: the audio of B recipes at once, bit-identical to one recipe at a time.

:func:`render_audio_batch` is the audio arithmetic of :mod:`mixing.render` (crop, reverb, levels on
active frames, SNR and SIR gains, one peak guard) for a batch of (renderer, recipe) jobs: the
per-item work (recipe check, crop lookup, decode and scale into the output rows) stays a loop; the
level, gain and peak-guard arithmetic runs once on (B, sources, frames) arrays.
:meth:`mixing.render.MixtureRenderer.render_audio` is this function for one job, so there is one
implementation of the recipe's audio. A silent item is reported in :attr:`AudioBatch.silent`, not
raised; any other bad recipe raises :class:`mixing.errors.MixingError` for the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from manifests.schema import MixtureSpec
from mixing import functional as F
from mixing.audio_rows import RowAudio
from mixing.errors import MixingError, SilentRecipeError

if TYPE_CHECKING:
    from mixing.render import MixtureRenderer

AudioOut = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Where :meth:`MixtureRenderer.render_audio` may write: (images (n, T), noise (T,), mixture (T,));
for :func:`render_audio_batch` the same with a leading batch axis: ((B, n, T), (B, T), (B, T))."""
PEAK_BOUND_MARGIN = 1.0 - 1e-5
"""A frame whose parts' peaks sum below ``peak_max_abs`` times this cannot exceed the guard in the
mixture (the margin covers float32 rounding of the sum), so the mixture's own peak is looked for
only in the other frames."""
Job = tuple["MixtureRenderer", MixtureSpec]
"""One batch item: the renderer of its corpus and its recipe."""


@dataclass(frozen=True)
class AudioBatch:
    """Audio of B recipes with n speakers and T samples each (see :func:`render_audio_batch`)."""

    mixture: np.ndarray
    """(B, T) float32."""
    images: np.ndarray
    """(B, n, T) float32."""
    targets: np.ndarray
    """(B, n, T) float32; *is* ``images`` when no recipe of the batch is reverberant."""
    noise: np.ndarray
    """(B, T) float32."""
    peak_scales: list[float]
    """The peak guard's factor per item."""
    silent: dict[int, SilentRecipeError]
    """Items not rendered because a crop (or the noise where the reference speaks) is silent, with
    the error a single render raises; their rows are zeros."""


def render_audio_batch(jobs: Sequence[Job], *, out: AudioOut | None = None) -> AudioBatch:
    """Render the audio of several recipes at once: the per-item work (recipe check, crop lookup,
    decode and scale into the output rows) stays a loop, the level, gain and peak-guard arithmetic
    runs once for the whole batch on (B, sources, frames) arrays, and the mixtures are summed with
    one operation per speaker. Every item is bit-identical to :meth:`MixtureRenderer.render_audio`
    of its recipe (which is this function for one job).

    ``jobs``: (renderer, recipe) pairs; the recipes must have the same number of speakers and the
    same duration, and the renderers the same audio settings (corpora may differ). ``out``: float32
    ``(images (B, n, T), noise (B, T), mixture (B, T))`` to write into (every element is written);
    default: new arrays. A silent item is reported in :attr:`AudioBatch.silent`, not raised; any
    other bad recipe raises for the batch (the errors of :meth:`MixtureRenderer.render_audio`).
    """
    if not jobs:
        raise ValueError("render_audio_batch needs at least one recipe")
    first_renderer, first = jobs[0]
    cfg = first_renderer.config
    settings = cfg.audio_settings
    n = len(first.clip_ids)
    length = F.seconds_to_samples(first.duration_s, cfg.sample_rate_hz)
    for renderer, spec in jobs:
        renderer.index.check_spec(spec)
        if len(spec.clip_ids) != n or spec.duration_s != first.duration_s:
            raise MixingError(
                f"recipe {spec.mixture_id}: a batch needs one shape, {len(spec.clip_ids)} speakers "
                f"x {spec.duration_s} s differs from {first.mixture_id}'s {n} x {first.duration_s} s"
            )
        if renderer.config is not cfg and renderer.config.audio_settings != settings:
            raise MixingError(
                f"recipe {spec.mixture_id}: its renderer's audio settings differ within the batch"
            )
    fl = first_renderer.frame_len
    n_frames = length // fl
    if n_frames == 0:
        raise MixingError(
            f"recipe {first.mixture_id}: {first.duration_s} s is shorter than one level frame"
        )
    b_count = len(jobs)
    reverberant = [spec.rir_ids.count(None) != n for _, spec in jobs]
    any_reverb = any(reverberant)
    if out is None:
        # one allocation for all outputs: freed and reallocated batch after batch, a block this
        # size stays in the heap (separate arrays get trimmed and page-faulted in every time)
        rows_per_item = 2 * n + 2 if any_reverb else n + 2
        block = np.empty(b_count * rows_per_item * length, np.float32)
        cut = b_count * n * length
        images = block[:cut].reshape(b_count, n, length)
        noise = block[cut : cut + b_count * length].reshape(b_count, length)
        mixture = block[cut + b_count * length : cut + 2 * b_count * length].reshape(
            b_count, length
        )
        if any_reverb:
            targets = block[cut + 2 * b_count * length :].reshape(b_count, n, length)
    else:
        images, noise, mixture = out
        if (
            images.shape != (b_count, n, length)
            or noise.shape != (b_count, length)
            or mixture.shape != (b_count, length)
        ):
            raise MixingError(
                f"recipe {first.mixture_id}: out arrays do not fit {b_count} x {n} x {length}"
            )
        if any_reverb:
            targets = np.empty((b_count, n, length), np.float32)
    if not any_reverb:
        targets = images
    # frame powers (0) and, for direct sources, frame peaks (1) of speakers 0..n-1 and noise n
    stats = np.zeros((b_count, 2, n + 1, n_frames))
    aligned = length == n_frames * fl
    rows = [[*images[b], noise[b]] for b in range(b_count)]
    direct = []
    for b, (renderer, spec) in enumerate(jobs):
        tb = targets[b] if reverberant[b] else None
        item = [renderer.speaker_source(spec, i, rows[b], tb, stats[b], aligned) for i in range(n)]
        if spec.noise_id is not None:
            item.append(renderer.noise_source(spec, rows[b], stats[b], aligned))
        direct.append(item)
    # levels on active frames (within threshold of the loudest; a crop under the floor is silent),
    # for all items at once (a few operations on (B, sources, frames) arrays; ufunc reductions
    # called directly: the ndarray methods add a Python call each)
    speech = stats[:, 0, :n]
    loudest = np.maximum.reduce(speech, axis=2)
    masks = speech >= (loudest * first_renderer.threshold_ratio)[:, :, None]
    counts = np.add.reduce(masks, axis=2).tolist()
    # sums[b][j][i]: power of source j (speakers, then the noise) summed over speaker i's mask
    sums = np.matmul(stats[:, 0], masks.transpose(0, 2, 1)).tolist()
    silent: dict[int, SilentRecipeError] = {}
    if float(np.minimum.reduce(loudest, axis=None)) < first_renderer.floor_power:
        for b, quiet in enumerate((loudest < first_renderer.floor_power).tolist()):
            if any(quiet):
                spec = jobs[b][1]
                names = [spec.clip_ids[i] for i in range(n) if quiet[i]]
                silent[b] = SilentRecipeError(
                    f"recipe {spec.mixture_id}: no active frame above "
                    f"{cfg.active_floor_db} dBFS in the crop of {names} (a silent crop)"
                )
    gains: list[list[float]] = []
    for b, (_, spec) in enumerate(jobs):
        gains.append([0.0] * (n + 1))
        if b not in silent:
            try:
                gains[b] = _gains(spec, sums[b], counts[b])
            except SilentRecipeError as exc:
                silent[b] = exc
    # decode + scale + place (direct sources) or scale (the others), in place
    raw_peaks: list[list[float]] = [[] for _ in range(b_count)]
    for b, item in enumerate(direct):
        if b in silent:
            for row in rows[b]:
                row[:] = 0.0
            if reverberant[b]:
                targets[b] = 0.0
            continue
        raw_peaks[b] = _place(item, rows[b], gains[b], length)
        if reverberant[b]:
            spec = jobs[b][1]
            for i in range(n):
                if spec.rir_ids[i] is None:
                    targets[b, i] = rows[b][i]
                else:
                    targets[b, i] *= np.float32(gains[b][i])
    np.add(images[:, 0], noise, out=mixture)
    for i in range(1, n):
        mixture += images[:, i]
    scales = _peak_guard(
        jobs, stats, gains, raw_peaks, silent, (images, noise, mixture, targets), reverberant
    )
    if targets is not images:  # the dry items of a batch with reverberant ones
        for b in range(b_count):
            if not reverberant[b]:
                targets[b] = images[b]
    return AudioBatch(mixture, images, targets, noise, scales, silent)


def _gains(spec: MixtureSpec, sums: list[list[float]], counts: list[int]) -> list[float]:
    """Amplitude gains of the speakers and the noise (0 when there is none) of one recipe, from
    its sources' powers summed over each speaker's active frames."""
    n = len(spec.clip_ids)
    levels = [sums[i][i] / counts[i] for i in range(n)]
    ref = spec.reference
    ref_gain = F.db_to_amplitude(spec.gains_db[ref])
    ref_power = levels[ref] * ref_gain**2
    gains = [
        ref_gain if i == ref else F.gain_for_ratio(ref_power, levels[i], -spec.gains_db[i])
        for i in range(n)
    ]
    if spec.noise_id is None:
        return [*gains, 0.0]
    if spec.noise_gain is not None:
        return [*gains, float(spec.noise_gain)]
    noise_power = sums[n][ref] / counts[ref]
    if not noise_power > 0.0:
        raise SilentRecipeError(
            f"recipe {spec.mixture_id}: noise {spec.noise_id!r} is silent where the reference speaks"
        )
    return [*gains, F.gain_for_ratio(ref_power, noise_power, float(spec.noise_snr_db))]  # type: ignore[arg-type]


def _place(
    item: list[tuple[RowAudio, int, int] | None],
    rows: list[np.ndarray],
    gains: list[float],
    length: int,
) -> list[float]:
    """Decode, scale and place the direct sources of one recipe into their rows, scale the others
    (already there); returns the peaks of the others."""
    raw = []
    for i, source in enumerate(item):
        row = rows[i]
        if source is not None:
            audio, offset, start = source
            if start:
                row[:start] = 0.0
            placed = row[start:]
            placed[:] = audio.samples[offset : offset + length - start]  # a plain cast: faster
            placed *= np.float32(gains[i] * audio.factor)  # than one mixed-type multiply
        else:
            row *= np.float32(gains[i])
            raw.append(max(float(row.max()), -float(row.min())))
    if len(item) < len(rows):  # no noise: its row is zeros
        rows[-1][:] = 0.0
    return raw


def _peak_guard(
    jobs: Sequence[Job],
    stats: np.ndarray,
    gains: list[list[float]],
    raw_peaks: list[list[float]],
    silent: dict[int, SilentRecipeError],
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    reverberant: list[bool],
) -> list[float]:
    """Apply one peak guard per item (mixture, images, targets and noise scaled together) and
    return the factors. Peaks of direct sources come from their cached frame peaks; the mixture's
    own peak is looked for only in frames where the sum of its parts' frame peaks could exceed the
    guard (usually a few, often none); a NaN or inf anywhere raises :class:`MixingError`."""
    images, noise, mixture, targets = arrays
    n_frames = stats.shape[3]
    fl = jobs[0][0].frame_len
    max_abs = jobs[0][0].config.peak_max_abs
    aligned = mixture.shape[1] == n_frames * fl
    magnitudes = [[abs(g) for g in row] for row in gains]
    frame_peaks = stats[:, 1]  # (B, sources, frames); zeros for the sources that are not direct
    largest = np.maximum.reduce(frame_peaks, axis=2).tolist()
    bounds = np.matmul(np.array(magnitudes)[:, None, :], frame_peaks)[:, 0]  # (B, frames)
    top = np.maximum.reduce(bounds, axis=1).tolist()
    scales = []
    for b, (_, spec) in enumerate(jobs):
        if b in silent:
            scales.append(1.0)
            continue
        peaks = [g * p for g, p in zip(magnitudes[b], largest[b], strict=True)] + raw_peaks[b]
        limit = max_abs * PEAK_BOUND_MARGIN - sum(raw_peaks[b])
        m = mixture[b]
        if not aligned:
            peaks.append(max(float(m.max()), -float(m.min())))
        elif not top[b] <= limit:  # some frames could exceed the guard: look at those
            hot = bounds[b] > limit
            if np.count_nonzero(hot) > n_frames // 4:
                peaks.append(max(float(m.max()), -float(m.min())))
            else:
                part = m.reshape(n_frames, fl)[hot]
                peaks.append(max(float(part.max()), -float(part.min())))
        if reverberant[b]:
            peaks.append(max(float(targets[b].max()), -float(targets[b].min())))
        if not math.isfinite(sum(peaks)):  # float32 peaks: a finite sum means finite peaks
            raise MixingError(f"recipe {spec.mixture_id}: rendering produced NaN or inf")
        peak = max(peaks)
        scale = F.peak_scale_from_peaks([peak], max_abs=max_abs)
        if scale != 1.0:
            factor = np.float32(scale)
            for signal in (images[b], noise[b], mixture[b]):
                signal *= factor
            if reverberant[b]:
                targets[b] *= factor
        scales.append(scale)
    return scales
