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
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from manifests import MediaReader, read_clips, read_noises, read_rirs
from manifests.io import join
from manifests.schema import MixtureSpec
from mixing import functional as F
from mixing.audio_rows import AudioRows, RowAudio
from mixing.config import RenderConfig
from mixing.errors import MixingError, SilentRecipeError
from mixing.faces import FaceStreams
from mixing.sampler import RecipeSampler
from mixing.transforms import Reverb


class _Media(NamedTuple):
    path: str
    row: int
    num_samples: int
    sample_rate_hz: int
    has_crops: bool
    has_embeddings: bool


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


def _index(table: pa.Table, key: str, corpus: str, *, with_faces: bool) -> dict[str, _Media]:
    cols = table.to_pydict()
    out = {}
    for i, item in enumerate(cols[key]):
        out[item] = _Media(
            join(corpus, "media", cols["media_shard"][i]),
            int(cols["media_row"][i]),
            int(cols["num_samples"][i]),
            int(cols["sample_rate_hz"][i]),
            bool(cols["has_crops"][i]) if with_faces else False,
            bool(cols["has_embeddings"][i]) if with_faces else False,
        )
    return out


MAX_ATTEMPTS = 16
PEAK_BOUND_MARGIN = 1.0 - 1e-5
"""The mixture's own peak is skipped when its parts' peaks sum below ``peak_max_abs`` times this
(the margin covers float32 rounding of the sum)."""


def render_item(
    renderer: MixtureRenderer, sampler: RecipeSampler, *, epoch: int, index: int
) -> RenderedMixture:
    """Draw and render item ``index`` of ``epoch``; a recipe with a silent crop is redrawn with
    ``attempt`` 1, 2, ... (deterministically), up to ``MAX_ATTEMPTS`` times."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            return renderer(sampler(epoch=epoch, index=index, attempt=attempt))
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
        self.clips = _index(read_clips(corpus), "clip_id", corpus, with_faces=True)
        self.noises = _index(read_noises(corpus), "noise_id", corpus, with_faces=False)
        self.rirs = _index(read_rirs(corpus), "rir_id", corpus, with_faces=False)
        cfg = self.config
        self.reverb = Reverb(self._load_rir)
        self.samples_per_frame = round(cfg.sample_rate_hz / cfg.fps)
        self.rows = AudioRows(self.reader, cfg.active_frame_len)
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

    # ------------------------------------------------------------------ lookups

    def _lookup(self, table: dict[str, _Media], key: str, what: str, spec: MixtureSpec) -> _Media:
        media = table.get(key)
        if media is None:
            raise MixingError(
                f"recipe {spec.mixture_id}: {what} {key!r} is not in the {what}s manifest of {self.corpus}"
            )
        if media.sample_rate_hz != self.config.sample_rate_hz:
            raise MixingError(
                f"recipe {spec.mixture_id}: {what} {key!r} is at {media.sample_rate_hz} Hz, "
                f"mixing runs at {self.config.sample_rate_hz} Hz"
            )
        return media

    def _load_rir(self, rir_id: str) -> tuple[np.ndarray, np.ndarray]:
        media = self.rirs[rir_id]
        return self.reader.audio(media.path, media.row), self.reader.audio(
            media.path, media.row + 1
        )

    # ------------------------------------------------------------------ checks

    def check_spec(self, spec: MixtureSpec) -> None:
        """Raise :class:`MixingError` unless ``spec`` is self-consistent and names known media."""
        n = len(spec.clip_ids)
        lists = (spec.offsets_s, spec.starts_s, spec.gains_db, spec.rir_ids)
        if n == 0 or any(len(v) != n for v in lists):
            raise MixingError(
                f"recipe {spec.mixture_id}: clip_ids, offsets_s, starts_s, gains_db, rir_ids differ in length"
            )
        if not 0 <= spec.reference < n:
            raise MixingError(f"recipe {spec.mixture_id}: reference {spec.reference} out of range")
        for t in (spec.duration_s, *spec.offsets_s, *spec.starts_s):
            if t < 0 or not F.is_aligned(t):
                raise MixingError(
                    f"recipe {spec.mixture_id}: time {t} s is not a non-negative multiple of 40 ms"
                )
        if spec.noise_id is not None and (spec.noise_snr_db is None) == (spec.noise_gain is None):
            raise MixingError(
                f"recipe {spec.mixture_id}: a noise needs exactly one of noise_snr_db, noise_gain"
            )
        if not all(math.isfinite(g) for g in spec.gains_db):
            raise MixingError(f"recipe {spec.mixture_id}: gains_db must be finite")
        for clip_id in spec.clip_ids:
            self._lookup(self.clips, clip_id, "clip", spec)
        for rir_id in [*spec.rir_ids, spec.noise_rir_id]:
            if rir_id is not None:
                self._lookup(self.rirs, rir_id, "rir", spec)
        if spec.noise_id is not None:
            self._lookup(self.noises, spec.noise_id, "noise", spec)

    # ------------------------------------------------------------------ audio

    def _row(self, media: _Media) -> RowAudio:
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
        self, spec: MixtureSpec
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """(mixture (T,), images (n, T), targets (n, T), noise (T,), peak scale) of ``spec``.

        The arrays are views of one new buffer (rows: images, noise, mixture); for a dry recipe
        ``targets`` *is* ``images`` (the same array: copy before modifying one in place). A dry
        crop at a frame-aligned offset (every sampled recipe) takes its frame powers and peak from
        the per-row cache (:mod:`mixing.audio_rows`) and is decoded and scaled in one pass; other
        crops (reverberant, unaligned, running past the clip's end) are decoded, measured, then
        scaled. Both give the same levels.
        """
        self.check_spec(spec)
        cfg = self.config
        sr, frame_len = cfg.sample_rate_hz, cfg.active_frame_len
        length = F.seconds_to_samples(spec.duration_s, sr)
        n_frames = length // frame_len
        n = len(spec.clip_ids)
        buf = np.empty((n + 2, length), np.float32)
        images, noise, mixture = buf[:n], buf[n], buf[n + 1]
        reverberant = any(r is not None for r in spec.rir_ids)
        targets = np.empty((n, length), np.float32) if reverberant else images
        powers = np.zeros((n, n_frames), np.float32)
        direct: list[tuple[RowAudio, int, int] | None] = [None] * n  # (row, offset, start)
        for i in range(n):
            audio = self._row(self.clips[spec.clip_ids[i]])
            start = F.seconds_to_samples(spec.starts_s[i], sr)
            offset = F.seconds_to_samples(spec.offsets_s[i], sr)
            rir_id = spec.rir_ids[i]
            if (
                rir_id is None
                and start < length
                and start % frame_len == 0
                and offset % frame_len == 0
                and offset + length - start <= audio.num_samples
            ):
                first = start // frame_len
                cached = audio.frame_powers[offset // frame_len :]
                powers[i, first:] = cached[: n_frames - first]
                direct[i] = (audio, offset, start)
                continue
            images[i] = 0.0
            if start < length:
                audio.read_into(offset, offset + length - start, images[i, start:])
            if rir_id is not None:
                images[i], targets[i] = self.reverb(images[i], rir_id)
            powers[i] = F.frame_powers(images[i], frame_len)
        masks = F.mask_from_powers(
            powers, threshold_db=cfg.active_threshold_db, floor_db=cfg.active_floor_db
        )
        active = masks.any(axis=1)
        if not active.all():
            silent = [spec.clip_ids[i] for i in range(n) if not active[i]]
            raise SilentRecipeError(
                f"recipe {spec.mixture_id}: no active frame above {cfg.active_floor_db} dBFS "
                f"in the crop of {silent} (a silent crop)"
            )
        levels = F.masked_mean(powers, masks).tolist()
        ref = spec.reference
        ref_gain = F.db_to_amplitude(spec.gains_db[ref])
        ref_power = levels[ref] * ref_gain**2
        peaks = []  # of every image and the noise, known while writing them
        for i in range(n):
            scale = (
                ref_gain if i == ref else F.gain_for_ratio(ref_power, levels[i], -spec.gains_db[i])
            )
            item = direct[i]
            if item is not None:
                audio, offset, start = item
                if start:
                    images[i, :start] = 0.0
                peaks.append(audio.decode_into(offset, images[i, start:], scale))
                if reverberant:
                    targets[i] = images[i]
            else:
                images[i] *= np.float32(scale)
                peaks.append(max(float(images[i].max()), -float(images[i].min())))
                if reverberant and spec.rir_ids[i] is not None:
                    targets[i] *= np.float32(scale)
                elif reverberant:
                    targets[i] = images[i]
        if spec.noise_id is None:
            noise[:] = 0.0
        else:
            peaks.append(self._render_noise(spec, noise, masks[ref], ref_power))
        np.add(images[0], noise, out=mixture)
        for i in range(1, n):
            mixture += images[i]
        if not sum(peaks) <= cfg.peak_max_abs * PEAK_BOUND_MARGIN:
            # |mixture| <= the sum of its parts' peaks: only a sum that may be too loud needs a pass
            peaks.append(max(float(mixture.max()), -float(mixture.min())))
        if reverberant:
            peaks.append(max(float(targets.max()), -float(targets.min())))
        try:
            scale = F.peak_scale_from_peaks(peaks, max_abs=cfg.peak_max_abs)
        except ValueError:
            raise MixingError(f"recipe {spec.mixture_id}: rendering produced NaN or inf") from None
        if scale != 1.0:
            buf *= np.float32(scale)
            if reverberant:
                targets *= np.float32(scale)
        return mixture, images, targets, noise, scale

    def _render_noise(
        self, spec: MixtureSpec, out: np.ndarray, ref_mask: np.ndarray, ref_power: float
    ) -> float:
        """The recipe's scaled noise into ``out`` (gain, or SNR over the reference's active frames);
        returns its peak magnitude."""
        audio = self._row(self.noises[spec.noise_id])  # type: ignore[index]
        frame_len, length = self.config.active_frame_len, out.shape[0]
        total = audio.num_samples
        offset = (
            F.seconds_to_samples(spec.noise_offset_s or 0.0, self.config.sample_rate_hz) % total
        )
        direct = spec.noise_rir_id is None and offset % frame_len == 0 and offset + length <= total
        raw = None if direct else self._noise(spec, length)
        if spec.noise_gain is not None:
            gain = float(spec.noise_gain)
        else:
            if direct:
                first = offset // frame_len
                noise_powers = audio.frame_powers[first : first + ref_mask.shape[0]]
            else:
                noise_powers = F.frame_powers(raw, frame_len)  # type: ignore[arg-type]
            noise_power = float(F.masked_mean(noise_powers, ref_mask))
            if not noise_power > 0.0:
                raise SilentRecipeError(
                    f"recipe {spec.mixture_id}: noise {spec.noise_id!r} is silent where the "
                    "reference speaks"
                )
            gain = F.gain_for_ratio(ref_power, noise_power, float(spec.noise_snr_db))  # type: ignore[arg-type]
        if direct:
            return audio.decode_into(offset, out, gain)
        np.multiply(raw, np.float32(gain), out=out)
        return max(float(out.max()), -float(out.min()))

    # ------------------------------------------------------------------ faces

    def __call__(self, spec: MixtureSpec) -> RenderedMixture:
        """Render ``spec`` completely (audio and the configured face streams)."""
        mixture, images, targets, noise, scale = self.render_audio(spec)
        mask, crops, emb = self.faces(spec)
        return RenderedMixture(mixture, images, targets, noise, mask, crops, emb, scale, spec)
