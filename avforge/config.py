"""Typed configuration: one strict YAML loader for every stage's frozen dataclass.

Each stage owns a frozen dataclass (``curation.config.VadConfig``, ``mixing.config.MixingConfig``, ...)
that validates its own ranges in ``__post_init__`` with :func:`check_range` / :func:`check_choice`.
This module turns nested mappings (parsed YAML) into those dataclasses:

- unknown keys are rejected, with the full key path (``faces.min_face_px``) and the keys allowed;
- values are converted to the declared type: ``int``, ``float``, ``bool``, ``str``, ``Path``, enums
  (by value), nested dataclasses, ``tuple[...]`` / ``list[...]`` and ``X | None``;
- range errors raised by ``__post_init__`` are re-raised with the key path prefixed.

The resolved config (every field, defaults included) is written next to every output with
:func:`write_resolved_config`, so a corpus, mixture set or checkpoint says how it was made.

Example::

    @dataclass(frozen=True)
    class VadConfig:
        frame_ms: int = 30
        def __post_init__(self) -> None:
            check_choice(self, "frame_ms", (10, 20, 30))

    cfg = load_config(VadConfig, "vad.yaml")           # or config_from_dict(VadConfig, {...})
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import fsspec
import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """An invalid configuration value or key; the message names the key path and the problem."""

    def __init__(self, message: str, key_path: str = "") -> None:
        self.key_path = key_path
        self.detail = message
        super().__init__(f"{key_path}: {message}" if key_path else message)

    def prefixed(self, prefix: str) -> ConfigError:
        path = f"{prefix}.{self.key_path}" if self.key_path else prefix
        return ConfigError(self.detail, path)


def check_range(
    obj: object,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``low <= obj.name <= high``.

    ``low_open`` / ``high_open`` make the bound strict. ``None`` values pass (optional fields).
    """
    value = getattr(obj, name)
    if value is None:
        return
    if low is not None and (value <= low if low_open else value < low):
        rel = ">" if low_open else ">="
        raise ConfigError(f"must be {rel} {low}, got {value!r}", name)
    if high is not None and (value >= high if high_open else value > high):
        rel = "<" if high_open else "<="
        raise ConfigError(f"must be {rel} {high}, got {value!r}", name)


def check_choice(obj: object, name: str, choices: Iterable[object]) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``obj.name`` is one of ``choices``."""
    choices = tuple(choices)
    value = getattr(obj, name)
    if value not in choices:
        raise ConfigError(f"must be one of {list(choices)}, got {value!r}", name)


def check_order(obj: object, low_name: str, high_name: str) -> None:
    """Raise :class:`ConfigError` unless ``obj.low_name <= obj.high_name``."""
    low, high = getattr(obj, low_name), getattr(obj, high_name)
    if low is not None and high is not None and low > high:
        raise ConfigError(f"must be <= {high_name} ({high!r}), got {low!r}", low_name)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as exc:
                errors.append(exc.detail)
        raise ConfigError(f"expected {_type_name(tp)}, got {value!r} ({'; '.join(errors)})", path)
    if value is None:
        raise ConfigError(f"expected {_type_name(tp)}, got null", path)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping for {tp.__name__}, got {value!r}", path)
        return _build(tp, value, path)
    if origin in (tuple, list):
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise ConfigError(f"expected a list, got {value!r}", path)
        items = list(value)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ConfigError(f"expected {len(args)} items, got {len(items)}", path)
            out = [
                _convert(v, a, f"{path}[{i}]")
                for i, (v, a) in enumerate(zip(items, args, strict=True))
            ]
        else:
            item_tp = args[0] if args else Any
            out = [_convert(v, item_tp, f"{path}[{i}]") for i, v in enumerate(items)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping, got {value!r}", path)
        k_tp, v_tp = args if args else (Any, Any)
        return {
            _convert(k, k_tp, f"{path}.{k}"): _convert(v, v_tp, f"{path}.{k}")
            for k, v in value.items()
        }
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"must be one of {list(args)}, got {value!r}", path)
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            allowed = [m.value for m in tp]
            raise ConfigError(f"must be one of {allowed}, got {value!r}", path) from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected true or false, got {value!r}", path)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {value!r}", path)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {value!r}", path)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {value!r}", path)
        return value
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"expected a path, got {value!r}", path)
        return Path(value)
    raise ConfigError(f"unsupported config type {_type_name(tp)}", path)


def _build(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = prefix or cls.__name__
        bad = ", ".join(f"{prefix + '.' if prefix else ''}{k}" for k in unknown)
        raise ConfigError(f"unknown key(s) {bad} in {where}; allowed: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        key_path = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _convert(value, hints[name], key_path)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise exc.prefixed(prefix) if prefix else exc from None
    except TypeError as exc:  # a required field without a default is missing
        raise ConfigError(str(exc), prefix) from None


def config_from_dict(cls: type[T], data: Mapping[str, Any] | None) -> T:
    """Build ``cls`` from a nested mapping, strictly (see the module docstring)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__}")
    return _build(cls, data, "")


def load_config(cls: type[T], path: str | Path | None) -> T:
    """Load ``cls`` from a YAML file (``None``: all defaults). Errors name the file and key path."""
    if path is None:
        return config_from_dict(cls, {})
    try:
        with fsspec.open(str(path), "r") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return config_from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_to_dict(cfg: object) -> dict[str, Any]:
    """Plain-data view of a config dataclass (enums as values, paths and tuples as str / list)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def config_to_yaml(cfg: object) -> str:
    """The resolved config as YAML text (every field, defaults included)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def write_resolved_config(cfg: object, path: str) -> None:
    """Write ``cfg`` as YAML to ``path`` (any fsspec URL) atomically."""
    from manifests.io import atomic_write_bytes

    atomic_write_bytes(path, config_to_yaml(cfg).encode())


def config_fingerprint(cfg: object) -> str:
    """A short stable hash of the resolved config (for telling outputs of different configs apart)."""
    import hashlib

    blob = json.dumps(config_to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
