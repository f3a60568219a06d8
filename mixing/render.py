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
clip frame ``offset_frames + k - start_frames``. ``face_mask`` is False (and the crop / embedding zeros)
before the speaker starts, past the clip's end, where ``face_present`` is False, and for clips without
that stream.

Faces are rendered by :class:`mixing.faces.FaceStreams` (same frame mapping).

Failure modes, all ``ValueError`` subclasses naming the recipe: :class:`MixingError` for a recipe
naming a clip, noise or RIR that is not in the manifests, an inconsistent recipe (list lengths,
unaligned offsets, both or neither noise level) or a sample-rate mismatch;
:class:`SilentRecipeError` (a ``MixingError``) for a crop or noise without any active frame (training
redraws those deterministically, see :func:`render_item`); ``mixing.functional.InvalidRirError`` for
an RIR of zeros. A corrupt media shard raises :class:`manifests.ManifestError`. Never a silent NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from manifests import MediaReader
from manifests.schema import MixtureSpec
from mixing import functional as F
from mixing.audio_rows import AudioRows, RowAudio
from mixing.config import RenderConfig
from mixing.corpus_index import CorpusIndex, MediaRef
from mixing.errors import MixingError, SilentRecipeError
from mixing.faces import FaceStreams
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


MAX_ATTEMPTS = 16
AudioOut = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Where :meth:`MixtureRenderer.render_audio` may write: (images (n, T), noise (T,), mixture (T,))."""
PEAK_BOUND_MARGIN = 1.0 - 1e-5
"""The mixture's own peak is skipped when its parts' peaks sum below ``peak_max_abs`` times this
(the margin covers float32 rounding of the sum)."""


def render_item(
    renderer: MixtureRenderer,
    sampler: RecipeSampler,
    *,
    epoch: int,
    index: int,
    crops_out: np.ndarray | None = None,
    audio_out: AudioOut | None = None,
) -> RenderedMixture:
    """Draw and render item ``index`` of ``epoch``; a recipe with a silent crop is redrawn with
    ``attempt`` 1, 2, ... (deterministically), up to ``MAX_ATTEMPTS`` times. ``crops_out``,
    ``audio_out``: see :meth:`MixtureRenderer.__call__`."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            spec = sampler(epoch=epoch, index=index, attempt=attempt)
            return renderer(spec, crops_out=crops_out, audio_out=audio_out)
        except SilentRecipeError:
            continue
    raise MixingError(f"item {index} of epoch {epoch}: {MAX_ATTEMPTS} draws were all silent")


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
        self.config = config or RenderConfig()
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

        The arrays are views of one new buffer (rows: images, noise, mixture), or the float32
        arrays ``out = (images (n, T), noise (T,), mixture (T,))`` when given (e.g. items of batch
        arrays; every element is written, also after a failed draw); for a dry recipe ``targets``
        *is* ``images`` (the same array: copy before modifying one in place).

        A *direct* source (a dry crop, or the noise, at a frame-aligned offset inside its row:
        every sampled dry recipe) takes its frame powers and frame peaks from the per-row cache
        (:mod:`mixing.audio_rows`) and is decoded and scaled into its output row once its gain
        is known; other sources (reverberant, running past the clip's end, looped noise) are
        decoded first and measured. Both give the same levels. The mixture's own peak pass is
        skipped when the per-frame sum of its parts' peaks stays under the guard.
        """
        self.index.check_spec(spec)
        fl = self.frame_len
        length = F.seconds_to_samples(spec.duration_s, self.config.sample_rate_hz)
        n_frames = length // fl
        if n_frames == 0:
            raise MixingError(
                f"recipe {spec.mixture_id}: {spec.duration_s} s is shorter than one level frame"
            )
        n = len(spec.clip_ids)
        # buf[i]: row of source i (speakers, then the noise at n); one block unless out is given
        buf: np.ndarray | list[np.ndarray]
        if out is None:
            buf = np.empty((n + 2, length), np.float32)
            images, noise, mixture = buf[:n], buf[n], buf[n + 1]
        else:
            images, noise, mixture = out
            if (
                images.shape != (n, length)
                or noise.shape != (length,)
                or mixture.shape != (length,)
            ):
                raise MixingError(f"recipe {spec.mixture_id}: out arrays do not fit {n} x {length}")
            buf = [*images, noise]
        reverberant = spec.rir_ids.count(None) != n
        targets = np.empty((n, length), np.float32) if reverberant else images
        # frame powers (0) and, for direct sources, frame peaks (1) of speakers 0..n-1 and noise n
        stats = np.zeros((2, n + 1, n_frames))
        aligned = length == n_frames * fl
        direct = [self._speaker(spec, i, buf, targets, stats, aligned) for i in range(n)]
        if spec.noise_id is not None:
            direct.append(self._noise_source(spec, buf, stats, aligned))
        # levels on active frames (within threshold of the loudest; a crop under the floor is silent)
        speech = stats[0, :n]
        loudest = speech.max(axis=1)
        if loudest.min() < self.floor_power:
            silent = [spec.clip_ids[i] for i in range(n) if loudest[i] < self.floor_power]
            raise SilentRecipeError(
                f"recipe {spec.mixture_id}: no active frame above "
                f"{self.config.active_floor_db} dBFS in the crop of {silent} (a silent crop)"
            )
        masks = speech >= (loudest * self.threshold_ratio)[:, None]
        counts = masks.sum(axis=1).tolist()
        # sums[j][i]: power of source j (speakers, then the noise) summed over speaker i's mask
        sums = (stats[0] @ masks.T).tolist()
        levels = [sums[i][i] / counts[i] for i in range(n)]
        ref = spec.reference
        ref_gain = F.db_to_amplitude(spec.gains_db[ref])
        ref_power = levels[ref] * ref_gain**2
        gains = [
            ref_gain if i == ref else F.gain_for_ratio(ref_power, levels[i], -spec.gains_db[i])
            for i in range(n)
        ]
        if spec.noise_id is not None:
            gains.append(self._noise_gain(spec, sums[n][ref] / counts[ref], ref_power))
        else:
            gains.append(0.0)
            noise[:] = 0.0
        # decode + scale + place (direct sources) or scale (the others), in place
        raw_peaks = []
        for i, item in enumerate(direct):
            row = buf[i]
            if item is not None:
                audio, offset, start = item
                if start:
                    row[:start] = 0.0
                placed = row[start:]
                placed[:] = audio.samples[offset : offset + length - start]  # a plain cast: faster
                placed *= np.float32(gains[i] * audio.factor)  # than one mixed-type multiply
            else:
                row *= np.float32(gains[i])
                raw_peaks.append(max(float(row.max()), -float(row.min())))
            if reverberant and i < n:
                if spec.rir_ids[i] is None:
                    targets[i] = row
                else:
                    targets[i] *= np.float32(gains[i])
        np.add(images[0], noise, out=mixture)
        for i in range(1, n):
            mixture += images[i]
        # one peak guard for everything, from peaks known without a pass where possible
        magnitudes = [abs(g) for g in gains]
        peaks = [g * p for g, p in zip(magnitudes, stats[1].max(axis=1).tolist(), strict=True)]
        peaks += raw_peaks  # (the other sources' rows of stats[1] are zeros: 0 above)
        bound = float((np.array(magnitudes) @ stats[1]).max()) + sum(raw_peaks)
        if not aligned or not bound <= self.config.peak_max_abs * PEAK_BOUND_MARGIN:
            peaks.append(max(float(mixture.max()), -float(mixture.min())))
        if reverberant:
            peaks.append(max(float(targets.max()), -float(targets.min())))
        if not math.isfinite(sum(peaks)):  # float32 peaks: a finite sum means finite peaks
            raise MixingError(f"recipe {spec.mixture_id}: rendering produced NaN or inf")
        peak, max_abs = max(peaks), self.config.peak_max_abs
        scale = 1.0 if peak <= max_abs else max_abs / peak * (1.0 - 1e-6)  # F.peak_scale_from_peaks
        if scale != 1.0:
            scaled = [buf] if out is None else [images, noise, mixture]  # the block holds all three
            for signal in [*scaled, targets] if reverberant else scaled:
                signal *= np.float32(scale)
        return mixture, images, targets, noise, scale

    def _speaker(
        self,
        spec: MixtureSpec,
        i: int,
        buf: np.ndarray | list[np.ndarray],
        targets: np.ndarray,
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
        start = round(spec.starts_s[i] * sr)  # F.seconds_to_samples
        offset = round(spec.offsets_s[i] * sr)
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
            image[:], targets[i] = self.reverb(image, rir_id)
        stats[0, i] = F.frame_powers(image, fl)
        return None

    def _noise_source(
        self,
        spec: MixtureSpec,
        buf: np.ndarray | list[np.ndarray],
        stats: np.ndarray,
        aligned: bool,
    ) -> tuple[RowAudio, int, int] | None:
        """Like :meth:`_speaker` for the recipe's noise (row ``n`` of ``buf`` and ``stats``)."""
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

    def _noise_gain(self, spec: MixtureSpec, noise_power: float, ref_power: float) -> float:
        """The noise's amplitude gain: ``noise_gain``, or from the SNR given the noise's mean power
        over the reference's active frames."""
        if spec.noise_gain is not None:
            return float(spec.noise_gain)
        if not noise_power > 0.0:
            raise SilentRecipeError(
                f"recipe {spec.mixture_id}: noise {spec.noise_id!r} is silent where the "
                "reference speaks"
            )
        return F.gain_for_ratio(ref_power, noise_power, float(spec.noise_snr_db))  # type: ignore[arg-type]

    # ------------------------------------------------------------------ faces

    def __call__(
        self,
        spec: MixtureSpec,
        *,
        crops_out: np.ndarray | None = None,
        audio_out: AudioOut | None = None,
    ) -> RenderedMixture:
        """Render ``spec`` completely (audio and the configured face streams); the audio goes into
        ``audio_out`` (see :meth:`render_audio`) and the face crops into ``crops_out`` (see
        :class:`mixing.faces.FaceStreams`) when given."""
        mixture, images, targets, noise, scale = self.render_audio(spec, out=audio_out)
        mask, crops, emb = self.faces(spec, crops_out=crops_out)
        return RenderedMixture(mixture, images, targets, noise, mask, crops, emb, scale, spec)
