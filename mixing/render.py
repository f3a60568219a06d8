"""Rendering: a :class:`manifests.MixtureSpec` recipe -> mixture audio, targets, noise, face streams.

Input: a recipe and the corpus it names (clips, noises, rirs manifests and their media shards, read
through one :class:`manifests.MediaReader` that memory-maps each shard once). Output: a
:class:`RenderedMixture`. Rendering draws no random numbers: the same recipe renders bit-identically.

Steps, per speaker ``i`` (T = duration samples, sample rate 16 kHz):

1. crop the clip at ``offsets_s[i]`` and place it at ``starts_s[i]`` (zeros before, truncated at T;
   a clip too short for the crop is zero-padded);
2. reverberant recipe: convolve with the full RIR (the *source image*, what is heard in the mixture)
   and with the early RIR (direct path + early reflections: the *target*); dry recipe: image = target;
3. level: the reference's image is scaled by ``gains_db[ref]`` from its recorded level; image ``i``
   is scaled so that its mean power over its own active frames is ``gains_db[i]`` dB relative to the
   reference's (so the reference-over-interferer SIR is ``-gains_db[i]``); the target gets the same
   factor as its image.

Noise: the noise recording from ``noise_offset_s``, looped when it is shorter than the mixture
(documented handling, see :func:`mixing.functional.tile`), optionally convolved with
``noise_rir_id``, then either times ``noise_gain`` (the paper's ``s + 0.3·noise``) or scaled so that
the reference image's active power over the noise power *in the same frames* is ``noise_snr_db``.

Then one peak guard: a single factor <= 1 for mixture, images, targets and noise together, so that no
sample exceeds ``peak_max_abs`` and the mixture stays exactly ``sum(images) + noise``.

Faces: per speaker, ``num_video_frames(T)`` frames (75 per 3 s) at 25 fps; mixture frame ``k`` shows
clip frame ``offset_frames + k - start_frames``. ``face_mask`` is False (and the crop / embedding /
lip feature zeros) before the speaker starts, past the clip's end, where ``face_present`` is False, and
for clips without that stream.

Faces are rendered by :class:`mixing.face_streams.FaceStreams` (same frame mapping).

Failure modes, all ``ValueError`` subclasses naming the recipe: :class:`MixingError` for a recipe
naming a clip, noise or RIR that is not in the manifests, an inconsistent recipe (list lengths,
unaligned offsets, both or neither noise level) or a sample-rate mismatch;
:class:`SilentRecipeError` (a ``MixingError``) for a crop or noise without any active frame (training
redraws those deterministically, see :func:`render_item`); ``mixing.functional.InvalidRirError`` for
an RIR of zeros. A corrupt media shard raises :class:`manifests.ManifestError`. Never a silent NaN.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from manifests import MediaReader
from manifests.schema import MixtureSpec
from mixing import functional as F
from mixing.audio_rows import AudioRows, RowAudio
from mixing.config import FaceStream, RenderConfig
from mixing.corpus_index import CorpusIndex, MediaRef
from mixing.errors import MixingError, SilentRecipeError
from mixing.face_streams import FaceStreams
from mixing.sampler import RecipeSampler
from mixing.transforms import Reverb


@dataclass(frozen=True)
class RenderedMixture:
    """One rendered recipe. Shapes: n speakers, T samples, V video frames; all float32 unless noted."""

    mixture: np.ndarray
    """(T,) what the model hears: ``images.sum(0) + noise``."""
    images: np.ndarray
    """(n, T) each speaker as heard in the mixture (reverberant when the recipe is)."""
    targets: np.ndarray
    """(n, T) what a model should recover: the dry speaker, or its early-reflection image (reverb).
    For a dry recipe this is the ``images`` array itself (no copy)."""
    noise: np.ndarray
    """(T,) the scaled noise (zeros when the recipe has none)."""
    face_mask: np.ndarray
    """(n, V) bool: True where a real face frame is present."""
    face_crops: np.ndarray | None
    """(n, V, H, W, 3) uint8 RGB, or None when the config asks for no crops."""
    face_embeddings: np.ndarray | None
    """(n, V, D) float32, or None when the config asks for no embeddings."""
    peak_scale: float
    """The peak guard's common factor (1.0 when nothing was too loud)."""
    spec: MixtureSpec
    lip_features: np.ndarray | None = None
    """(n, V, D_lip) float32 LR-ASD lip features, or None when the config asks for none
    (``face_stream: lips``)."""


MAX_ATTEMPTS = 16
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


def render_item(
    renderer: MixtureRenderer,
    sampler: RecipeSampler,
    *,
    epoch: int,
    index: int,
    crops_out: np.ndarray | None = None,
    audio_out: AudioOut | None = None,
    first_attempt: int = 0,
    lips_out: np.ndarray | None = None,
) -> RenderedMixture:
    """Draw and render item ``index`` of ``epoch``; a recipe with a silent crop is redrawn with
    ``attempt`` 1, 2, ... (deterministically), up to ``MAX_ATTEMPTS`` times. ``crops_out``,
    ``lips_out``, ``audio_out``: see :meth:`MixtureRenderer.__call__`. ``first_attempt``: the first
    attempt tried (:func:`render_items` passes 1 for items whose first draw was silent)."""
    for attempt in range(first_attempt, MAX_ATTEMPTS):
        try:
            spec = sampler(epoch=epoch, index=index, attempt=attempt)
            return renderer(spec, crops_out=crops_out, audio_out=audio_out, lips_out=lips_out)
        except SilentRecipeError:
            continue
    raise MixingError(f"item {index} of epoch {epoch}: {MAX_ATTEMPTS} draws were all silent")


@dataclass(frozen=True)
class RenderedBatch:
    """Items rendered together by :func:`render_items`; the items' arrays are views of the batch's."""

    items: list[RenderedMixture]
    audio: AudioBatch
    """The batch's audio: (B, n, T) images and targets, (B, T) mixtures and noises."""
    crops: np.ndarray | None
    """(B, n, V, H, W, 3) uint8 face crops, or None when the renderers make none."""
    lips: np.ndarray | None = None
    """(B, n, V, D_lip) float32 lip features, or None when the renderers make none."""


def render_items(
    draws: Sequence[tuple[MixtureRenderer, RecipeSampler]],
    *,
    epoch: int,
    indices: Sequence[int],
) -> RenderedBatch:
    """Items ``indices[k]`` of ``epoch``, item k drawn by ``draws[k]`` (its corpus's renderer and
    sampler), rendered as one batch (:func:`render_audio_batch`, crops and lip features into one
    batch array each):
    each item equals :func:`render_item` of it, bit for bit. First draws that are silent are
    redrawn one by one (attempt 1, 2, ...) into their batch rows.

    The batch arrays are ready for a training step without stacking. A redrawn recipe that turns
    out reverberant in a dry batch has a targets array of its own (then ``targets`` of that item
    is not a view of ``audio.targets``, which is ``audio.images``).
    """
    jobs = [
        (renderer, sampler(epoch=epoch, index=i, attempt=0))
        for (renderer, sampler), i in zip(draws, indices, strict=True)
    ]
    batch = render_audio_batch(jobs)
    faces = jobs[0][0].faces
    n, n_frames = batch.images.shape[1], jobs[0][0].num_video_frames(jobs[0][1])
    crops_out = lips_out = None
    if faces.crop_size_px is not None:
        crop_px = faces.crop_size_px
        crops_out = np.zeros((len(jobs), n, n_frames, crop_px, crop_px, 3), np.uint8)
    if faces.lip_dim is not None:
        lips_out = np.zeros((len(jobs), n, n_frames, faces.lip_dim), np.float32)
    items = []
    for k, (renderer, spec) in enumerate(jobs):
        crops = None if crops_out is None else crops_out[k]
        lips = None if lips_out is None else lips_out[k]
        if k in batch.silent:
            _, sampler = draws[k]
            item = render_item(
                renderer,
                sampler,
                epoch=epoch,
                index=indices[k],
                crops_out=crops,
                audio_out=(batch.images[k], batch.noise[k], batch.mixture[k]),
                first_attempt=1,
                lips_out=lips,
            )
            if batch.targets is not batch.images:
                batch.targets[k] = item.targets
            batch.peak_scales[k] = item.peak_scale
            items.append(item)
            continue
        frames = renderer.faces(spec, crops_out=crops, lips_out=lips)
        images = batch.images[k]
        targets = images if batch.targets is batch.images else batch.targets[k]
        items.append(
            RenderedMixture(
                batch.mixture[k],
                images,
                targets,
                batch.noise[k],
                frames.mask,
                frames.crops,
                frames.embeddings,
                batch.peak_scales[k],
                spec,
                frames.lips,
            )
        )
    return RenderedBatch(items, batch, crops_out, lips_out)


class MixtureRenderer:
    """Renders recipes of one corpus (see the module docstring). Cheap to pickle into DataLoader workers.

    Example::

        renderer = MixtureRenderer("corpus/", RenderConfig())
        out = renderer(spec)              # RenderedMixture
    """

    def __init__(
        self, corpus: str, config: RenderConfig | None = None, *, reader: MediaReader | None = None
    ) -> None:
        corpus = str(corpus)
        self.corpus = corpus
        config = config or RenderConfig()
        if config.face_stream is None:
            config = dataclasses.replace(config, face_stream=FaceStream.CROPS)
        self.config = config
        self.reader = reader or MediaReader()
        cfg = self.config
        self.index = CorpusIndex(corpus, cfg.sample_rate_hz)
        self.clips, self.noises, self.rirs = self.index.clips, self.index.noises, self.index.rirs
        self.reverb = Reverb(self._load_rir)
        self.samples_per_frame = round(cfg.sample_rate_hz / cfg.fps)
        self.frame_len = cfg.active_frame_len
        self.floor_power = 10.0 ** (cfg.active_floor_db / 10.0)
        """A crop whose loudest frame is below this mean power is silent."""
        self.threshold_ratio = 10.0 ** (cfg.active_threshold_db / 10.0)
        """A frame is active when its power is at least this times the loudest frame's."""
        self.rows = AudioRows(self.reader, self.frame_len)
        self.faces = FaceStreams(self.reader, self.clips, self.config, corpus)

    def __getstate__(self) -> dict[str, object]:
        # the RIR spectra cache is never pickled (the row cache empties itself; workers rebuild
        # both on first use)
        state = dict(self.__dict__)
        state["reverb"] = None
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.reverb = Reverb(self._load_rir)

    def _load_rir(self, rir_id: str) -> tuple[np.ndarray, np.ndarray]:
        media = self.rirs[rir_id]
        return self.reader.audio(media.path, media.row), self.reader.audio(
            media.path, media.row + 1
        )

    def num_video_frames(self, spec: MixtureSpec) -> int:
        """Face frames of ``spec``'s mixture (75 per 3 s at 25 fps)."""
        cfg = self.config
        return F.num_video_frames(
            F.seconds_to_samples(spec.duration_s, cfg.sample_rate_hz), cfg.sample_rate_hz, cfg.fps
        )

    def check_spec(self, spec: MixtureSpec) -> None:
        """Raise :class:`MixingError` unless ``spec`` is self-consistent and names known media
        (:meth:`mixing.corpus_index.CorpusIndex.check_spec`)."""
        self.index.check_spec(spec)

    # ------------------------------------------------------------------ audio

    def _row(self, media: MediaRef) -> RowAudio:
        return self.rows.get(media.path, media.row)

    def _noise(self, spec: MixtureSpec, length: int) -> np.ndarray:
        """The recipe's unscaled noise (T,): read from its offset, looped, optionally reverberant."""
        audio = self._row(self.noises[spec.noise_id])  # type: ignore[index]
        n = audio.num_samples
        offset = F.seconds_to_samples(spec.noise_offset_s or 0.0, self.config.sample_rate_hz) % n
        noise = np.empty(length, np.float32)
        if offset + length <= n:
            audio.read_into(offset, offset + length, noise)
        elif length <= n:  # wraps around once: two slices
            audio.read_into(offset, n, noise)
            audio.read_into(0, length - (n - offset), noise[n - offset :])
        else:  # shorter than the mixture: looped
            whole = np.empty(n, np.float32)
            audio.read_into(0, n, whole)
            noise = F.tile(whole, offset=offset, length=length)
        if spec.noise_rir_id is not None:
            noise, _ = self.reverb(noise, spec.noise_rir_id)
        return noise

    def render_audio(
        self, spec: MixtureSpec, *, out: AudioOut | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """(mixture (T,), images (n, T), targets (n, T), noise (T,), peak scale) of ``spec``.

        The arrays are new, or the float32 arrays ``out = (images (n, T), noise (T,), mixture
        (T,))`` when given (e.g. items of batch arrays; every element is written, also after a
        failed draw); for a dry recipe ``targets`` *is* ``images`` (the same array: copy before
        modifying one in place). This is :func:`render_audio_batch` for one recipe (which raises
        its :class:`SilentRecipeError` here).

        A *direct* source (a dry crop, or the noise, at a frame-aligned offset inside its row:
        every sampled dry recipe) takes its frame powers and frame peaks from the per-row cache
        (:mod:`mixing.audio_rows`) and is decoded and scaled into its output row once its gain
        is known; other sources (reverberant, running past the clip's end, looped noise) are
        decoded first and measured. Both give the same levels. The mixture's own peak is looked
        for only in frames where the sum of its parts' frame peaks could exceed the guard.
        """
        batch_out = None if out is None else (out[0][None], out[1][None], out[2][None])
        batch = render_audio_batch([(self, spec)], out=batch_out)
        if batch.silent:
            raise batch.silent[0]
        if out is None:
            images, noise, mixture = batch.images[0], batch.noise[0], batch.mixture[0]
        else:
            images, noise, mixture = out  # the caller's arrays themselves, not views of them
        targets = images if batch.targets is batch.images else batch.targets[0]
        return mixture, images, targets, noise, batch.peak_scales[0]

    def speaker_source(
        self,
        spec: MixtureSpec,
        i: int,
        buf: list[np.ndarray],
        targets: np.ndarray | None,
        stats: np.ndarray,
        aligned: bool,
    ) -> tuple[RowAudio, int, int] | None:
        """Speaker ``i``'s frame statistics into ``stats[:, i]``; (row, offset, start) for a direct
        crop (decoded later), else None with its unscaled image in ``buf[i]`` (and reverberant
        target in ``targets[i]``)."""
        sr, fl = self.config.sample_rate_hz, self.frame_len
        length = buf[i].shape[0]
        media = self.clips[spec.clip_ids[i]]
        audio = self.rows.get(media.path, media.row)
        start = F.seconds_to_samples(spec.starts_s[i], sr)
        offset = F.seconds_to_samples(spec.offsets_s[i], sr)
        rir_id = spec.rir_ids[i]
        if (
            aligned
            and rir_id is None
            and start < length
            and start % fl == 0
            and offset % fl == 0
            and offset + length - start <= audio.num_samples
        ):
            first, cached = start // fl, offset // fl
            stats[:, i, first:] = audio.stats[:, cached : cached + (length - start) // fl]
            return audio, offset, start
        image = buf[i]
        image[:] = 0.0
        if start < length:
            audio.read_into(offset, offset + length - start, image[start:])
        if rir_id is not None:
            image[:], targets[i] = self.reverb(image, rir_id)  # type: ignore[index]
        stats[0, i] = F.frame_powers(image, fl)
        return None

    def noise_source(
        self,
        spec: MixtureSpec,
        buf: list[np.ndarray],
        stats: np.ndarray,
        aligned: bool,
    ) -> tuple[RowAudio, int, int] | None:
        """Like :meth:`speaker_source` for the recipe's noise (row ``n`` of ``buf`` and ``stats``)."""
        n = len(spec.clip_ids)
        media = self.noises[spec.noise_id]  # type: ignore[index]
        audio = self.rows.get(media.path, media.row)
        fl, length = self.frame_len, buf[n].shape[0]
        total = audio.num_samples
        offset = (
            F.seconds_to_samples(spec.noise_offset_s or 0.0, self.config.sample_rate_hz) % total
        )
        if aligned and spec.noise_rir_id is None and offset % fl == 0 and offset + length <= total:
            first = offset // fl
            stats[:, n] = audio.stats[:, first : first + length // fl]
            return audio, offset, 0
        buf[n][:] = self._noise(spec, length)
        if spec.noise_snr_db is not None:
            stats[0, n] = F.frame_powers(buf[n], fl)
        return None

    # ------------------------------------------------------------------ faces

    def __call__(
        self,
        spec: MixtureSpec,
        *,
        crops_out: np.ndarray | None = None,
        audio_out: AudioOut | None = None,
        lips_out: np.ndarray | None = None,
    ) -> RenderedMixture:
        """Render ``spec`` completely (audio and the configured face streams); the audio goes into
        ``audio_out`` (see :meth:`render_audio`), the face crops into ``crops_out`` and the lip
        features into ``lips_out`` (see :class:`mixing.face_streams.FaceStreams`) when given."""
        mixture, images, targets, noise, scale = self.render_audio(spec, out=audio_out)
        f = self.faces(spec, crops_out=crops_out, lips_out=lips_out)
        return RenderedMixture(
            mixture, images, targets, noise, f.mask, f.crops, f.embeddings, scale, spec, f.lips
        )
