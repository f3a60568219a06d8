"""Mixing: multi-speaker + noise + reverb mixtures, first as recipes, rendered on the fly.

Public API (docs/mixing.md):

- configs: :class:`MixingConfig`, :class:`RenderConfig`, :func:`preset_config` (the paper's tasks);
- recipes: :class:`RecipeSampler` (seeds from (base seed, epoch, index));
- rendering: :class:`MixtureRenderer` -> :class:`RenderedMixture`; batches of recipes at once:
  :func:`render_audio_batch`, :func:`render_items` (what the training loaders use);
- datasets: :class:`MixtureStream` + :class:`MixtureLoader` (training), :class:`MixtureSet` (frozen);
- framing shared with training: :func:`stft`, :func:`istft`, :func:`num_stft_frames`,
  :func:`num_video_frames`;
- corpora: :func:`add_noises` (``avforge noises add``), :func:`build_rirs` (``avforge rirs build``).
"""

import importlib
from typing import Any

# Lazy re-exports (PEP 562): ``import mixing`` stays cheap for the command line, which must not
# pay for torch when it only registers its verbs.
_EXPORTS = {
    "FaceStream": "mixing.config",
    "MixingConfig": "mixing.config",
    "MixingError": "mixing.errors",
    "MixtureLoader": "mixing.dataset",
    "MixtureRenderer": "mixing.render",
    "MixtureSet": "mixing.dataset",
    "MixtureStream": "mixing.dataset",
    "NoiseConfig": "mixing.noises",
    "NoiseMode": "mixing.config",
    "RecipeSampler": "mixing.sampler",
    "RenderConfig": "mixing.config",
    "AudioBatch": "mixing.render_batch",
    "RenderedBatch": "mixing.draw",
    "RenderedMixture": "mixing.render",
    "RirConfig": "mixing.rirs",
    "SamplerError": "mixing.sampler",
    "SilentRecipeError": "mixing.errors",
    "add_noises": "mixing.noises",
    "build_rirs": "mixing.rirs",
    "derive_seed": "mixing.sampler",
    "freeze_recipes": "mixing.dataset",
    "istft": "mixing.functional",
    "num_stft_frames": "mixing.functional",
    "num_video_frames": "mixing.functional",
    "preset_config": "mixing.config",
    "render_audio_batch": "mixing.render_batch",
    "render_item": "mixing.draw",
    "render_items": "mixing.draw",
    "stft": "mixing.functional",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mixing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AudioBatch",
    "FaceStream",
    "MixingConfig",
    "MixingError",
    "MixtureLoader",
    "MixtureRenderer",
    "MixtureSet",
    "MixtureStream",
    "NoiseConfig",
    "NoiseMode",
    "RecipeSampler",
    "RenderConfig",
    "RenderedBatch",
    "RenderedMixture",
    "RirConfig",
    "SamplerError",
    "SilentRecipeError",
    "add_noises",
    "build_rirs",
    "derive_seed",
    "freeze_recipes",
    "istft",
    "num_stft_frames",
    "num_video_frames",
    "preset_config",
    "render_audio_batch",
    "render_item",
    "render_items",
    "stft",
]
