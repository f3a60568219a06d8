"""Drawing items: recipe ``(seed, epoch, index[, attempt])`` from a sampler, rendered, silent draws redrawn.

:func:`render_item` is the one place where a recipe with a silent crop is redrawn (attempt 1, 2, ...
up to :data:`MAX_ATTEMPTS`), so a stream of items stays a pure function of its position;
:func:`render_items` renders several items as one batch (:func:`mixing.render_batch.render_audio_batch`,
face crops and lip features into one batch array each), each item bit-identical to
:func:`render_item` of it. Both training streams (:mod:`mixing.dataset`, :mod:`training.data`) and
``avforge mix freeze`` draw through these two functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mixing.errors import MixingError, SilentRecipeError
from mixing.render import MixtureRenderer, RenderedMixture
from mixing.render_batch import AudioBatch, AudioOut, render_audio_batch
from mixing.sampler import RecipeSampler

MAX_ATTEMPTS = 16
"""Draws of one item before it fails (a recipe is redrawn while its crop or noise is silent)."""


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
