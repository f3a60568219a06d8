"""Save and rebuild separators: constructor arguments, weights and versions in one plain package.

A package is a dict of plain data and tensors (``torch.load(..., weights_only=True)`` reads it):
``{"model_name", "model_args", "state_dict", "avforge_version", "torch_version"}``, the asteroid
``serialize`` idea. Model classes are looked up in the explicit :data:`MODEL_CLASSES` mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from avforge import __version__
from training.models.separators import AudioOnlySeparator, AudioVisualSeparator, MaskSeparator

MODEL_CLASSES: dict[str, type[MaskSeparator]] = {
    "AudioVisualSeparator": AudioVisualSeparator,
    "AudioOnlySeparator": AudioOnlySeparator,
}


class ModelPackageError(ValueError):
    """A model package is not one this avforge can rebuild."""


def serialize(model: MaskSeparator) -> dict[str, Any]:
    """The model as a package: class name, constructor arguments, weights (on CPU), versions."""
    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise ModelPackageError(f"unknown model class {name}")
    return {
        "model_name": name,
        "model_args": dict(model.init_args),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "avforge_version": __version__,
        "torch_version": str(torch.__version__),
    }


def from_package(package: dict[str, Any]) -> MaskSeparator:
    """Rebuild a model from :func:`serialize`'s package (weights loaded strictly, eval mode)."""
    missing = {"model_name", "model_args", "state_dict"} - set(package)
    if missing:
        raise ModelPackageError(f"package lacks {sorted(missing)}")
    cls = MODEL_CLASSES.get(package["model_name"])
    if cls is None:
        raise ModelPackageError(f"unknown model class {package['model_name']!r}")
    model = cls(**package["model_args"])
    model.load_state_dict(package["state_dict"])
    return model.eval()


def save_model(model: MaskSeparator, path: str | Path) -> None:
    """Write :func:`serialize`'s package to ``path`` with ``torch.save``."""
    torch.save(serialize(model), str(path))


def load_model(path: str | Path) -> MaskSeparator:
    """Read a package written by :func:`save_model` (safe loader: plain data and tensors only)."""
    return from_package(torch.load(str(path), map_location="cpu", weights_only=True))
