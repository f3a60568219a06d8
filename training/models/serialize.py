"""Save and rebuild separators: constructor arguments, weights and versions in one plain package.

A package is a dict of plain data and tensors (``torch.load(..., weights_only=True)`` reads it):
``{"model_name", "model_args", "state_dict", "avforge_version", "torch_version", "input_contract"}``,
the asteroid ``serialize`` idea. Model classes are looked up in the explicit :data:`MODEL_CLASSES`
mapping.

``input_contract`` (:class:`InputContract` as a dict) records what the model was trained on: audio
sample rate, face stream kind (``none``, ``crops``, ``embeddings``, ``lips``), per-frame face feature
width and face crop size (None: not recorded). A rebuilt model carries it as ``model.input_contract``
(derived from the model for packages written before it existed), and :func:`check_input` refuses
input that does not match it with :class:`InputMismatchError` (a :class:`ValueError`), which
``separate`` and ``evaluate`` report as they report their own errors.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from avforge import __version__
from avforge.core.media import SAMPLE_RATE_HZ
from training.models.separators import (
    AudioOnlySeparator,
    AudioVisualSeparator,
    MaskSeparator,
    VisualInput,
)

MODEL_CLASSES: dict[str, type[MaskSeparator]] = {
    "AudioVisualSeparator": AudioVisualSeparator,
    "AudioOnlySeparator": AudioOnlySeparator,
}


class ModelPackageError(ValueError):
    """A model package is not one this avforge can rebuild."""


class InputMismatchError(ValueError):
    """Input that does not match the model's :class:`InputContract` (the message says how)."""


@dataclasses.dataclass(frozen=True)
class InputContract:
    """What a separator was trained to read."""

    sample_rate_hz: int = SAMPLE_RATE_HZ
    """Audio sample rate of the mixtures."""
    face_stream: str = "none"
    """``none`` (audio-only), ``crops``, ``embeddings`` (ArcFace) or ``lips`` (LR-ASD features)."""
    face_dim: int | None = None
    """Per-frame width of embeddings or lip features (None for crops and audio-only)."""
    crop_size_px: int | None = None
    """Square crop size the model was trained on (crops only; None: not recorded, any size)."""
    fps: float = 25.0
    """Face frames per second."""


def input_contract(model: MaskSeparator, crop_size_px: int | None = None) -> InputContract:
    """The :class:`InputContract` of ``model`` (``crop_size_px``: the training crop size, if known)."""
    if not isinstance(model, AudioVisualSeparator):
        return InputContract()
    stream = VisualInput(model.visual_input)
    dim = None if stream == VisualInput.CROPS else int(model.visual_in_dim)
    size = crop_size_px if stream == VisualInput.CROPS else None
    return InputContract(face_stream=stream.value, face_dim=dim, crop_size_px=size)


def contract_of(model: MaskSeparator) -> InputContract:
    """The contract a loaded model carries (``model.input_contract``), else :func:`input_contract`."""
    contract = getattr(model, "input_contract", None)
    return contract if isinstance(contract, InputContract) else input_contract(model)


def check_input(
    contract: InputContract,
    *,
    sample_rate_hz: int | None = None,
    face_stream: str | None = None,
    faces_shape: tuple[int, ...] | None = None,
) -> None:
    """Raise :class:`InputMismatchError` unless the input fits ``contract``.

    ``faces_shape``: one face stream's shape, (..., T_v, D) for embeddings and lip features or
    (..., T_v, H, W, 3) for crops; None skips the face checks (the separator checks the count)."""
    if sample_rate_hz is not None and sample_rate_hz != contract.sample_rate_hz:
        raise InputMismatchError(
            f"the model was trained on {contract.sample_rate_hz} Hz audio, got {sample_rate_hz} Hz"
        )
    if face_stream is not None and face_stream != contract.face_stream:
        raise InputMismatchError(
            f"the model reads face stream {contract.face_stream!r}, the input has {face_stream!r}"
        )
    if faces_shape is None or contract.face_stream == "none":
        return
    if contract.face_stream == "crops":
        if len(faces_shape) < 4 or faces_shape[-1] != 3 or faces_shape[-2] != faces_shape[-3]:
            raise InputMismatchError(
                f"the model reads square RGB face crops (..., T_v, S, S, 3), got {faces_shape}"
            )
        size = faces_shape[-2]
        if contract.crop_size_px is not None and size != contract.crop_size_px:
            raise InputMismatchError(
                f"the model was trained on {contract.crop_size_px} px face crops, got {size} px"
            )
    elif faces_shape[-1] != contract.face_dim or len(faces_shape) < 2:
        raise InputMismatchError(
            f"the model reads {contract.face_dim}-d {contract.face_stream} per face frame, got "
            f"face input of shape {faces_shape}"
        )


def serialize(model: MaskSeparator, crop_size_px: int | None = None) -> dict[str, Any]:
    """The model as a package: class name, constructor arguments, weights (on CPU), versions and
    its :class:`InputContract` (``crop_size_px``: the training crop size, for crop models)."""
    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise ModelPackageError(f"unknown model class {name}")
    recorded = getattr(model, "input_contract", None)
    if crop_size_px is None and isinstance(recorded, InputContract):
        crop_size_px = recorded.crop_size_px
    return {
        "model_name": name,
        "model_args": dict(model.init_args),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "avforge_version": __version__,
        "torch_version": str(torch.__version__),
        "input_contract": dataclasses.asdict(input_contract(model, crop_size_px)),
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
    derived = input_contract(model)
    recorded = package.get("input_contract")
    if recorded is not None:
        unknown = set(recorded) - {f.name for f in dataclasses.fields(InputContract)}
        if unknown:
            raise ModelPackageError(f"input_contract has unknown fields {sorted(unknown)}")
        contract = InputContract(**recorded)
        if (contract.face_stream, contract.face_dim) != (derived.face_stream, derived.face_dim):
            raise ModelPackageError(
                f"input_contract ({contract.face_stream}, {contract.face_dim}) does not match the "
                f"model ({derived.face_stream}, {derived.face_dim})"
            )
    else:
        contract = derived
    model.input_contract = contract
    return model.eval()


def save_model(model: MaskSeparator, path: str | Path, crop_size_px: int | None = None) -> None:
    """Write :func:`serialize`'s package to ``path`` with ``torch.save``."""
    torch.save(serialize(model, crop_size_px), str(path))


def load_model(path: str | Path) -> MaskSeparator:
    """Read a package written by :func:`save_model` (safe loader: plain data and tensors only)."""
    return from_package(torch.load(str(path), map_location="cpu", weights_only=True))
