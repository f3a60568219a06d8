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

Failure modes (all :class:`MixingError`, a ``ValueError``; :class:`SilentRecipeError` for a silent crop): a recipe naming a clip, noise or RIR that
is not in the manifests; an inconsistent recipe (list lengths, unaligned offsets, both or neither noise
level); a sample-rate mismatch; a reference or noise without any active frame; an RIR of zeros. A
corrupt media shard raises :class:`manifests.ManifestError`. Never a silent NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from manifests import MediaReader, read_clips, read_noises, read_rirs
from manifests.io import join
from manifests.schema import MixtureSpec
from mixing import functional as F
from mixing.config import FaceStream, RenderConfig
from mixing.sampler import RecipeSampler
from mixing.transforms import ActiveLevel, PeakGuard, Reverb


class MixingError(ValueError):
    """A recipe cannot be rendered from this corpus; the message names the recipe and the problem."""


class SilentRecipeError(MixingError):
    """A speaker crop or the noise of a recipe has no active frame, so its level is undefined."""


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
    """(n, T) what a model should recover: the dry speaker, or its early-reflection image (reverb)."""
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
        self.level = ActiveLevel(
            frame_len=cfg.active_frame_len,
            threshold_db=cfg.active_threshold_db,
            floor_db=cfg.active_floor_db,
        )
        self.reverb = Reverb(self._load_rir)
        self.guard = PeakGuard(max_abs=cfg.peak_max_abs)
        self.samples_per_frame = round(cfg.sample_rate_hz / cfg.fps)
        self.crop_size_px, self.embedding_dim = self._face_shapes()

    # ------------------------------------------------------------------ lookups

    def _face_shapes(self) -> tuple[int | None, int | None]:
        stream = self.config.face_stream
        size = dim = None
        if stream in (FaceStream.CROPS, FaceStream.BOTH):
            size = self.config.face_size_px
            if size is None:
                first = next((m for m in self.clips.values() if m.has_crops), None)
                if first is not None:
                    size = self.reader.table(first.path).column("crop_size")[first.row].as_py()
            if size is None:
                raise MixingError(
                    f"{self.corpus}: face_stream {stream.value} but no clip has face crops"
                )
        if stream in (FaceStream.EMBEDDINGS, FaceStream.BOTH):
            first = next((m for m in self.clips.values() if m.has_embeddings), None)
            if first is None:
                raise MixingError(
                    f"{self.corpus}: face_stream {stream.value} but no clip has embeddings"
                )
            dim = self.reader.table(first.path).column("embedding_dim")[first.row].as_py()
        return size, dim

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
        if not all(np.isfinite(g) for g in spec.gains_db):
            raise MixingError(f"recipe {spec.mixture_id}: gains_db must be finite")
        for clip_id in spec.clip_ids:
            self._lookup(self.clips, clip_id, "clip", spec)
        for rir_id in [*spec.rir_ids, spec.noise_rir_id]:
            if rir_id is not None:
                self._lookup(self.rirs, rir_id, "rir", spec)
        if spec.noise_id is not None:
            self._lookup(self.noises, spec.noise_id, "noise", spec)

    # ------------------------------------------------------------------ audio

    def _speaker(self, spec: MixtureSpec, i: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        media = self.clips[spec.clip_ids[i]]
        sr = self.config.sample_rate_hz
        start = F.seconds_to_samples(spec.starts_s[i], sr)
        offset = F.seconds_to_samples(spec.offsets_s[i], sr)
        dry = F.place(
            self.reader.audio(media.path, media.row, offset, offset + max(0, length - start)),
            start=start,
            length=length,
        )
        rir_id = spec.rir_ids[i]
        if rir_id is None:
            return dry, dry
        return self.reverb(dry, rir_id)

    def _noise(self, spec: MixtureSpec, length: int) -> np.ndarray:
        media = self.noises[spec.noise_id]  # type: ignore[index]
        offset = (
            F.seconds_to_samples(spec.noise_offset_s or 0.0, self.config.sample_rate_hz)
            % media.num_samples
        )
        if offset + length <= media.num_samples:
            noise = self.reader.audio(media.path, media.row, offset, offset + length)
        elif length <= media.num_samples:  # wraps around once: two slices
            head = self.reader.audio(media.path, media.row, offset, media.num_samples)
            tail = self.reader.audio(media.path, media.row, 0, length - head.shape[0])
            noise = np.concatenate([head, tail])
        else:  # shorter than the mixture: looped
            noise = F.tile(self.reader.audio(media.path, media.row), offset=offset, length=length)
        if spec.noise_rir_id is not None:
            noise, _ = self.reverb(noise, spec.noise_rir_id)
        return noise

    def render_audio(
        self, spec: MixtureSpec
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """(mixture (T,), images (n, T), targets (n, T), noise (T,), peak scale) of ``spec``."""
        self.check_spec(spec)
        length = F.seconds_to_samples(spec.duration_s, self.config.sample_rate_hz)
        n = len(spec.clip_ids)
        images = np.empty((n, length), np.float32)
        targets = np.empty((n, length), np.float32)
        for i in range(n):
            images[i], targets[i] = self._speaker(spec, i, length)
        ref = spec.reference
        try:
            ref_power, ref_mask = self.level(images[ref])
            ref_gain = F.db_to_amplitude(spec.gains_db[ref])
            ref_power *= ref_gain**2
            scales = np.empty(n, np.float64)
            for i in range(n):
                if i == ref:
                    scales[i] = ref_gain
                    continue
                power, _ = self.level(images[i])
                scales[i] = F.gain_for_ratio(ref_power, power, -spec.gains_db[i])
            noise = np.zeros(length, np.float32)
            if spec.noise_id is not None:
                noise = self._noise(spec, length)
                if spec.noise_gain is not None:
                    noise_scale = float(spec.noise_gain)
                else:
                    noise_power = self.level.masked(noise, ref_mask)
                    noise_scale = F.gain_for_ratio(ref_power, noise_power, float(spec.noise_snr_db))  # type: ignore[arg-type]
                noise = (noise * noise_scale).astype(np.float32)
        except F.SilentSignalError as exc:
            raise SilentRecipeError(
                f"recipe {spec.mixture_id}: {exc} (a silent crop or noise)"
            ) from None
        images *= scales[:, None].astype(np.float32)
        targets *= scales[:, None].astype(np.float32)
        mixture = images.sum(axis=0) + noise
        scale = self.guard([mixture, images, targets, noise])
        if scale != 1.0:
            s = np.float32(scale)
            images *= s
            targets *= s
            noise = noise * s
            mixture = images.sum(axis=0) + noise
        if not np.all(np.isfinite(mixture)):
            raise MixingError(f"recipe {spec.mixture_id}: rendering produced NaN or inf")
        return mixture, images, targets, noise, scale

    # ------------------------------------------------------------------ faces

    def render_faces(
        self, spec: MixtureSpec
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(face_mask (n, V) bool, crops (n, V, H, W, 3) uint8 | None, embeddings (n, V, D) | None)."""
        cfg = self.config
        n_frames = F.num_video_frames(
            F.seconds_to_samples(spec.duration_s, cfg.sample_rate_hz), cfg.sample_rate_hz, cfg.fps
        )
        n = len(spec.clip_ids)
        mask = np.zeros((n, n_frames), bool)
        crops = emb = None
        if self.crop_size_px is not None:
            crops = np.zeros((n, n_frames, self.crop_size_px, self.crop_size_px, 3), np.uint8)
        if self.embedding_dim is not None:
            emb = np.zeros((n, n_frames, self.embedding_dim), np.float32)
        for i, clip_id in enumerate(spec.clip_ids):
            media = self.clips[clip_id]
            track = self.reader.face_track(media.path, media.row)
            if track is None:
                continue
            first = round(spec.starts_s[i] * cfg.fps)
            clip_first = round(spec.offsets_s[i] * cfg.fps)
            count = max(0, min(n_frames - first, track.num_frames - clip_first))
            if count == 0:
                continue
            present = track.present[clip_first : clip_first + count]
            mask[i, first : first + count] = present
            if crops is not None and media.has_crops:
                frames = self.reader.face_crops(
                    media.path, media.row, clip_first, clip_first + count
                )
                if frames.shape[1] != self.crop_size_px:
                    frames = _resize(frames, self.crop_size_px)
                frames[~present] = 0
                crops[i, first : first + count] = frames
            if emb is not None and media.has_embeddings:
                vectors = self.reader.embeddings(media.path, media.row)
                if vectors is not None and vectors.shape[1] == self.embedding_dim:
                    part = vectors[clip_first : clip_first + count].copy()
                    part[~present[: part.shape[0]]] = 0.0
                    emb[i, first : first + part.shape[0]] = part
        if crops is None and emb is None and cfg.face_stream != FaceStream.NONE:
            raise MixingError(f"recipe {spec.mixture_id}: no face stream available")
        return mask, crops, emb

    def __call__(self, spec: MixtureSpec) -> RenderedMixture:
        """Render ``spec`` completely (audio and the configured face streams)."""
        mixture, images, targets, noise, scale = self.render_audio(spec)
        mask, crops, emb = self.render_faces(spec)
        return RenderedMixture(mixture, images, targets, noise, mask, crops, emb, scale, spec)


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    import cv2

    out = np.zeros((frames.shape[0], size, size, 3), np.uint8)
    for k, frame in enumerate(frames):
        out[k] = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    return out
