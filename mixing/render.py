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

The module is one job, a recipe of one corpus; the batch arithmetic of the audio is
:mod:`mixing.render_batch` (:meth:`MixtureRenderer.render_audio` is its batch of one) and drawing
items from a sampler, with the redraws of silent recipes, is :mod:`mixing.draw`.

Failure modes, all ``ValueError`` subclasses naming the recipe (:mod:`mixing.errors`):
:class:`MixingError` for a recipe
naming a clip, noise or RIR that is not in the manifests, an inconsistent recipe (list lengths,
unaligned offsets, both or neither noise level) or a sample-rate mismatch;
:class:`SilentRecipeError` (a ``MixingError``) for a crop or noise without any active frame (training
redraws those deterministically, see :func:`mixing.draw.render_item`); ``mixing.functional.InvalidRirError`` for
an RIR of zeros. A corrupt media shard raises :class:`manifests.ManifestError`. Never a silent NaN.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from manifests import MediaReader
from manifests.schema import MixtureSpec
from mixing import functional as F
from mixing.audio_rows import AudioRows, RowAudio
from mixing.config import FaceStream, RenderConfig
from mixing.corpus_index import CorpusIndex, MediaRef
from mixing.face_streams import FaceStreams
from mixing.render_batch import AudioOut, render_audio_batch
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
