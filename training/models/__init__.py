"""Separation models, composed from encoder, streams, fusion and mask parts."""

from training.models.separators import (
    AudioOnlySeparator,
    AudioVisualSeparator,
    MaskSeparator,
    SeparationOutput,
    VisualInput,
)
from training.models.serialize import (
    MODEL_CLASSES,
    ModelPackageError,
    from_package,
    load_model,
    save_model,
    serialize,
)

__all__ = [
    "MODEL_CLASSES",
    "AudioOnlySeparator",
    "AudioVisualSeparator",
    "MaskSeparator",
    "ModelPackageError",
    "SeparationOutput",
    "VisualInput",
    "from_package",
    "load_model",
    "save_model",
    "serialize",
]
