"""Training data from corpus manifests: deterministic mixture streams and frozen mixture sets.

Built on mixing's recipe sampler (:class:`mixing.sampler.RecipeSampler`: recipe = pure function of
(seed, epoch, index)) and renderer (:class:`mixing.render.MixtureRenderer`), over one or more corpora:

- :class:`MixtureSource`: the samplers and renderers of the corpora for one split. Item ``index`` of
  ``epoch`` picks its corpus with a generator seeded by (seed, epoch, index) (corpora weighted by
  their clip counts), then renders that corpus's item ``(epoch, index)`` with
  :func:`mixing.draw.render_item`, the one place where a recipe with a silent crop is redrawn
  (``attempt`` 1, 2, ... of the same item), so the stream stays a pure function of its position.
- :class:`BatchStream`: an ``IterableDataset`` of whole batches. Global batch ``g`` of an epoch holds
  items ``g * B .. g * B + B - 1``; DDP rank ``r`` of ``W`` takes local steps ``s`` = batches
  ``s * W + r`` (every rank the same count: no hang at the epoch end, no item twice), and DataLoader
  worker ``w`` of ``k`` takes local steps ``start + w, start + w + k, ...``, which PyTorch's in-order
  round-robin hands back as ``start, start + 1, ...``. ``start`` is the resume position.
- :class:`FrozenMixtures`: a map-style dataset over a fixed list of recipes (a frozen set);
  :class:`DrawnMixtures`: the first items of epoch 0 of a source (validation drawn on the fly).
- :func:`collate`: rendered mixtures -> :class:`training.batch.SeparationBatch`.

Faces per ``data.mixing.render.face_stream`` (set from ``model.visual_input``): uint8 crops
(B, n, V, H, W, 3), embeddings (B, n, V, D) or lip features (B, n, V, 128) float32, V = 25 fps frames
of the mixture, every stream on the same frames (mixing's frame mapping). ``lips`` needs lip features
for every clip of the pool: :class:`MixtureSource` (and :func:`check_lip_features`) raise
:class:`DataError` naming the corpus, the split and how many clips lack them.

Integrity: before a pool is used, :class:`MixtureSource` opens every media shard its corpora's
clips, noises and RIRs point to (:func:`manifests.verify.check_referenced_media`: readable, the media
schema, enough rows; every row's checksums too with ``checksums``). A broken shard raises
:class:`avforge.core.errors.CorruptCorpusError` naming it (``broken_media="error"``, the default) or, with
``broken_media="skip"``, its clips, noises and RIRs leave the pool with one logged warning per shard.
:attr:`MixtureSource.fingerprint` hashes what the stream is drawn from (the pools, in order), so a
resumed run can tell that its corpora changed (:mod:`training.datamodule`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from avforge.core.errors import CorruptCorpusError
from manifests import read_clips, read_noises, read_rirs
from manifests.io import media_file
from manifests.schema import MixtureSpec, Split
from manifests.verify import check_referenced_media
from mixing.config import FaceStream, MixingConfig
from mixing.draw import RenderedBatch, render_item, render_items
from mixing.errors import MixingError
from mixing.render import MixtureRenderer, RenderedMixture
from mixing.sampler import RecipePools, RecipeSampler
from training.batch import SeparationBatch
from training.config import BrokenMedia

log = logging.getLogger(__name__)


class DataError(ValueError):
    """The corpora cannot serve the requested mixtures (the message says which and why)."""


def collate(
    items: Sequence[RenderedMixture],
    face_stream: FaceStream,
    crops: np.ndarray | None = None,
    audio: tuple[np.ndarray, np.ndarray] | None = None,
    lips: np.ndarray | None = None,
) -> SeparationBatch:
    """Stack rendered mixtures into a batch; faces are crops (uint8), embeddings or lip features
    per ``face_stream``.

    ``crops``, ``lips``, ``audio``: the batch's (B, n, V, H, W, 3) crops, (B, n, V, D) lip features
    and (images (B, n, T), mixture (B, T)) when the items were rendered into them (then only
    reverberant targets are stacked; for dry items the sources are the images, one tensor)."""
    if audio is None:
        mixture = torch.from_numpy(np.stack([it.mixture for it in items]))
        images = torch.from_numpy(np.stack([it.images for it in items]))
    else:
        images, mixture = (torch.from_numpy(a) for a in audio)
    if audio is not None and all(it.targets is it.images for it in items):
        sources = images
    else:
        sources = torch.from_numpy(np.stack([it.targets for it in items]))
    faces = None
    if face_stream == FaceStream.CROPS:
        if any(it.face_crops is None for it in items):
            raise DataError("face crops requested but a rendered mixture has none")
        if crops is None:
            crops = np.stack([it.face_crops for it in items])  # type: ignore[misc]
        faces = torch.from_numpy(crops)
    elif face_stream == FaceStream.EMBEDDINGS:
        emb = [it.face_embeddings for it in items]
        if any(e is None for e in emb):
            raise DataError("face embeddings requested but a rendered mixture has none")
        faces = torch.from_numpy(np.stack(emb))  # type: ignore[arg-type]
    elif face_stream == FaceStream.LIPS:
        if any(it.lip_features is None for it in items):
            raise DataError("lip features requested but a rendered mixture has none")
        if lips is None:
            lips = np.stack([it.lip_features for it in items])  # type: ignore[misc]
        faces = torch.from_numpy(lips)
    ids = [it.spec.mixture_id for it in items]
    return SeparationBatch(mixture, sources, faces, ids, images)


def rendered_face_shape(renderer: MixtureRenderer) -> tuple[int, ...] | None:
    """The per-frame shape of the face stream ``renderer`` delivers: (D,) for embeddings or lip
    features, (S, S, 3) for crops, None without faces (for
    :func:`training.models.serialize.check_input`)."""
    faces = renderer.faces
    stream = renderer.config.face_stream
    if stream == FaceStream.LIPS and faces.lip_dim is not None:
        return (faces.lip_dim,)
    if stream == FaceStream.EMBEDDINGS and faces.embedding_dim is not None:
        return (faces.embedding_dim,)
    if stream == FaceStream.CROPS and faces.crop_size_px is not None:
        return (faces.crop_size_px, faces.crop_size_px, 3)
    return None


def check_lip_features(renderer: MixtureRenderer, clip_ids: Iterable[str], where: str) -> None:
    """Raise :class:`DataError` unless every clip of ``clip_ids`` has lip features
    (``has_lip_features`` in the clips manifest); ``where`` names the corpus and split. Clips the
    corpus does not have are left to the renderer's recipe check."""
    ids = list(dict.fromkeys(clip_ids))
    missing = [c for c in ids if c in renderer.clips and not renderer.clips[c].has_lip_features]
    if missing:
        raise lip_features_error(where, len(missing), len(ids), missing[:3])


def lip_features_error(where: str, missing: int, total: int, examples: Sequence[str]) -> DataError:
    """The error for clips without lip features under ``model.visual_input: lips``."""
    return DataError(
        f"{where}: model.visual_input lips needs lip features, but {missing} of {total} clips "
        f"have none (has_lip_features is false in the clips manifest, e.g. {list(examples)}); "
        "curate with speaker.enabled and export.store_lip_features on (the defaults), or train "
        "with model.visual_input crops"
    )


def checked_media_tables(
    corpus: str,
    *,
    broken_media: BrokenMedia | str = BrokenMedia.ERROR,
    checksums: bool = False,
    checked: dict[tuple[str, int], str | None] | None = None,
) -> dict[str, pa.Table]:
    """The ``clips``, ``noises`` and ``rirs`` manifests of ``corpus`` after checking every media
    shard they point to (module docstring): :class:`CorruptCorpusError` naming the first broken shard
    with ``broken_media="error"``; with ``"skip"`` the rows in broken shards are dropped, with one
    warning per shard and ``checked`` cache (the results so far, see
    :func:`manifests.verify.check_referenced_media`)."""
    if broken_media not in list(BrokenMedia):
        raise ValueError(f"broken_media must be one of {list(BrokenMedia)}, got {broken_media!r}")
    corpus = str(corpus)
    tables = {"clips": read_clips(corpus), "noises": read_noises(corpus), "rirs": read_rirs(corpus)}
    known = set() if checked is None else {key for key, why in checked.items() if why}
    broken = check_referenced_media(corpus, tables, checksums=checksums, checked=checked)
    if not broken:
        return tables
    if broken_media == BrokenMedia.ERROR:
        first = next(iter(broken.values()))
        more = f" (and {len(broken) - 1} more broken media shards)" if len(broken) > 1 else ""
        raise CorruptCorpusError(
            f"{first}{more}; training stopped before its first step. Run 'avforge verify {corpus}' "
            "for every problem, restore or re-curate the shard, or set data.broken_media: skip to "
            "train without its clips"
        )
    shards = pa.array(sorted(broken), pa.string())
    warned = {key[0] for key in known}
    for name, table in tables.items():
        bad = pc.is_in(table.column("media_shard"), value_set=shards)
        for shard in broken:
            n = int(pc.sum(pc.equal(table.column("media_shard"), shard)).as_py() or 0)
            if n and media_file(corpus, shard) not in warned:
                log.warning("skipping %d %s of %s: %s", n, name, shard, broken[shard])
        tables[name] = table.filter(pc.invert(bad))
    return tables


def pools_fingerprint(pools: Sequence[RecipePools]) -> str:
    """SHA-256 (hex) of what a stream is drawn from: each corpus's pools, in corpus order."""
    digest = hashlib.sha256()
    for p in pools:
        fields = [p.clip_ids, p.source_ids, p.speaker_ids, p.clip_frames, p.noise_ids]
        fields += [p.noise_frames, sorted(p.rooms.items())]
        digest.update(json.dumps(fields, separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()


class MixtureSource:
    """Recipes and renderers of one split over several corpora (cheap to pickle into workers).

    Every media shard the corpora point to is checked first (module docstring: ``broken_media``,
    ``checksums``, ``checked``). With ``face_stream: lips`` every clip of each corpus's split must
    have lip features (:class:`DataError` otherwise, before anything is rendered)."""

    def __init__(
        self,
        corpora: Sequence[str],
        mixing: MixingConfig,
        *,
        broken_media: BrokenMedia | str = BrokenMedia.ERROR,
        checksums: bool = False,
        checked: dict[tuple[str, int], str | None] | None = None,
    ) -> None:
        if not corpora:
            raise DataError("no corpus folder given (data.corpora is empty)")
        self.mixing = mixing
        self.corpora = [str(c) for c in corpora]
        self.samplers: list[RecipeSampler] = []
        self.renderers: list[MixtureRenderer] = []
        weights = []
        for corpus in self.corpora:
            try:
                tables = checked_media_tables(
                    corpus, broken_media=broken_media, checksums=checksums, checked=checked
                )
                pools = RecipePools.from_tables(
                    tables["clips"], tables["noises"], tables["rirs"], mixing.split
                )
                sampler = RecipeSampler(pools, mixing)
            except ValueError as exc:  # SamplerError (too few clips / speakers), ManifestError
                raise DataError(f"{corpus} ({mixing.split.value} split): {exc}") from None
            where = f"{corpus} ({mixing.split.value} split)"
            clip_ids = sampler.pools.clip_ids
            lips = mixing.render.face_stream == FaceStream.LIPS
            try:
                renderer = MixtureRenderer(corpus, mixing.render)
            except MixingError:
                if not lips:
                    raise
                # the face streams found no clip with lip features in the whole corpus
                raise lip_features_error(
                    where, len(clip_ids), len(clip_ids), clip_ids[:3]
                ) from None
            if lips:
                check_lip_features(renderer, clip_ids, where)
            self.samplers.append(sampler)
            self.renderers.append(renderer)
            weights.append(len(sampler.pools.clip_ids))
        self.weights = np.asarray(weights, np.float64) / float(sum(weights))

    @property
    def num_clips(self) -> int:
        return sum(len(s.pools.clip_ids) for s in self.samplers)

    @functools.cached_property
    def fingerprint(self) -> str:
        """:func:`pools_fingerprint` of this source's pools (changes when the corpora do)."""
        return pools_fingerprint([s.pools for s in self.samplers])

    def _corpus_for(self, epoch: int, index: int) -> int:
        if len(self.samplers) == 1:
            return 0
        rng = np.random.default_rng(np.random.SeedSequence([self.mixing.seed, epoch, index, 1]))
        return int(rng.choice(len(self.samplers), p=self.weights))

    def recipe(self, epoch: int, index: int) -> tuple[int, MixtureSpec]:
        """(corpus number, recipe) of item ``index`` of ``epoch`` (before any redraw)."""
        c = self._corpus_for(epoch, index)
        return c, self.samplers[c](epoch=epoch, index=index)

    def item(self, epoch: int, index: int) -> RenderedMixture:
        """Item ``index`` of ``epoch``, rendered by :func:`mixing.draw.render_item` (which
        redraws silent recipes); a recipe that cannot be rendered raises :class:`DataError`."""
        c = self._corpus_for(epoch, index)
        try:
            return render_item(self.renderers[c], self.samplers[c], epoch=epoch, index=index)
        except MixingError as exc:
            raise DataError(f"{self.corpora[c]}: {exc}") from exc

    def items(self, epoch: int, indices: Sequence[int]) -> RenderedBatch:
        """Items ``indices`` of ``epoch`` rendered as one batch (:func:`mixing.draw.render_items`;
        each equals :meth:`item`); a recipe that cannot be rendered raises :class:`DataError`."""
        draws = []
        for index in indices:
            c = self._corpus_for(epoch, index)
            draws.append((self.renderers[c], self.samplers[c]))
        try:
            return render_items(draws, epoch=epoch, indices=indices)
        except MixingError as exc:
            raise DataError(f"{', '.join(self.corpora)}: {exc}") from exc


class BatchStream(IterableDataset):
    """Batches ``start_step .. steps_per_epoch - 1`` of one epoch of this rank (module docstring)."""

    def __init__(
        self,
        source: MixtureSource,
        *,
        batch_size: int,
        steps_per_epoch: int,
        epoch: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        if not 0 <= start_step <= steps_per_epoch:
            raise ValueError(f"start_step {start_step} outside 0..{steps_per_epoch}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.source, self.batch_size, self.steps_per_epoch = source, batch_size, steps_per_epoch
        self.epoch, self.start_step, self.rank, self.world_size = (
            epoch,
            start_step,
            rank,
            world_size,
        )

    def __len__(self) -> int:
        return self.steps_per_epoch

    def batch_indices(self, step: int) -> list[int]:
        """Item indices of this rank's local ``step``."""
        g = step * self.world_size + self.rank
        return list(range(g * self.batch_size, (g + 1) * self.batch_size))

    def __iter__(self) -> Iterator[SeparationBatch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for step in range(self.start_step + worker, self.steps_per_epoch, workers):
            yield self.render_batch(self.batch_indices(step))

    def render_batch(self, indices: Sequence[int]) -> SeparationBatch:
        """The items ``indices`` of this epoch as one batch, rendered together
        (:meth:`MixtureSource.items`: audio, face crops and lip features straight into the batch
        arrays, the level and peak arithmetic once per batch)."""
        rendered = self.source.items(self.epoch, indices)
        audio = rendered.audio
        return collate(
            rendered.items,
            self.source.mixing.render.face_stream,
            crops=rendered.crops,
            audio=(audio.images, audio.mixture),
            lips=rendered.lips,
        )


class FrozenMixtures(Dataset):
    """A fixed list of recipes rendered on access; item i is ``specs[i]``."""

    def __init__(self, specs: Sequence[MixtureSpec], renderer: MixtureRenderer) -> None:
        self.specs, self.renderer = list(specs), renderer

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, i: int) -> RenderedMixture:
        return self.renderer(self.specs[i])


class DrawnMixtures(Dataset):
    """Items ``0 .. count - 1`` of epoch 0 of ``source``: a fixed set drawn on the fly (validation)."""

    def __init__(self, source: MixtureSource, count: int) -> None:
        self.source, self.count = source, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> RenderedMixture:
        return self.source.item(0, i)


def split_config(mixing: MixingConfig, split: Split, face_stream: FaceStream) -> MixingConfig:
    """``mixing`` drawing from ``split`` and rendering ``face_stream``."""
    from dataclasses import replace

    return replace(mixing, split=split, render=replace(mixing.render, face_stream=face_stream))
