"""Typed configuration: one strict YAML loader for every stage's frozen dataclass.

Each stage owns a frozen dataclass (``curation.config.VadConfig``, ``mixing.config.MixingConfig``, ...)
that validates its own ranges in ``__post_init__`` with :func:`check_range` / :func:`check_choice`.
This module turns nested mappings (parsed YAML) into those dataclasses:

- unknown keys are rejected, with the full key path (``faces.min_face_px``) and the keys allowed;
- a key given twice in one mapping is rejected with its key path and line (YAML would silently keep
  the last one);
- values are converted to the declared type: ``int``, ``float``, ``bool``, ``str``, ``Path``, enums
  (by value), nested dataclasses, ``tuple[...]`` / ``list[...]`` and ``X | None``;
- a float is never NaN, and never infinite unless its field allows it (its default is infinite, or
  its ``dataclasses.field`` metadata holds :data:`ALLOW_INF`); :func:`check_range` says the same for
  values built in Python;
- range errors raised by ``__post_init__`` are re-raised with the key path prefixed;
- a config file that is missing, a directory, unreadable, not UTF-8 or not YAML is a
  :class:`ConfigError` naming the file (one line).

Everything is checked when the config is loaded, so a bad value never surfaces hours into a run.

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
import math
import numbers
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import fsspec
import yaml

from avforge.core import files
from avforge.core.errors import one_line

T = TypeVar("T")

ALLOW_INF: Mapping[str, bool] = types.MappingProxyType({"allow_inf": True})
"""``dataclasses.field(metadata=ALLOW_INF)``: this float field may be ``.inf`` / ``-.inf`` (a field whose
default is infinite allows it without saying so). NaN is never allowed."""


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
    allow_inf: bool = False,
) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``low <= obj.name <= high``.

    ``low_open`` / ``high_open`` make the bound strict. ``None`` values pass (optional fields). NaN
    never passes (it compares false with every bound); ``+-inf`` passes only with ``allow_inf`` (and
    still has to be within the bounds).
    """
    value = getattr(obj, name)
    if value is None:
        return
    _check_finite(value, name, allow_inf=allow_inf)
    if low is not None and (value <= low if low_open else value < low):
        rel = ">" if low_open else ">="
        raise ConfigError(f"must be {rel} {low}, got {value!r}", name)
    if high is not None and (value >= high if high_open else value > high):
        rel = "<" if high_open else "<="
        raise ConfigError(f"must be {rel} {high}, got {value!r}", name)


def _check_finite(value: Any, path: str, *, allow_inf: bool = False) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, numbers.Integral):
        return
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ConfigError(f"must be a finite number, got {number!r}", path)


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


def _convert(value: Any, tp: Any, path: str, allow_inf: bool = False) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        alternatives = [arg for arg in args if arg is not type(None)]
        if len(alternatives) == 1:  # ``X | None``: X's own message
            return _convert(value, alternatives[0], path, allow_inf)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path, allow_inf)
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
                _convert(v, a, f"{path}[{i}]", allow_inf)
                for i, (v, a) in enumerate(zip(items, args, strict=True))
            ]
        else:
            item_tp = args[0] if args else Any
            out = [_convert(v, item_tp, f"{path}[{i}]", allow_inf) for i, v in enumerate(items)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping, got {value!r}", path)
        k_tp, v_tp = args if args else (Any, Any)
        return {
            _convert(k, k_tp, f"{path}.{k}"): _convert(v, v_tp, f"{path}.{k}", allow_inf)
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
        _check_finite(float(value), path, allow_inf=allow_inf)
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


def _allows_inf(f: dataclasses.Field[Any]) -> bool:
    """Whether a field may hold an infinite float: :data:`ALLOW_INF` metadata, or an infinite default."""
    if f.metadata.get("allow_inf"):
        return True
    return isinstance(f.default, float) and math.isinf(f.default)


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
        kwargs[name] = _convert(value, hints[name], key_path, _allows_inf(fields[name]))
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


def _yaml_error(exc: yaml.YAMLError) -> str:
    """A YAML parse error on one line: where (1-based line and column) and what."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return one_line(f"{where}{problem}", limit=None)


def _check_duplicate_keys(node: yaml.Node, path: str = "", seen: set[int] | None = None) -> None:
    """Raise :class:`ConfigError` at the first mapping that gives one key twice (key path and line)."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias of a node already checked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[object, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may override keys
                _check_duplicate_keys(value_node, path, seen)
                continue
            scalar = isinstance(key_node, yaml.ScalarNode)
            key = (key_node.tag, key_node.value) if scalar else id(key_node)
            name = key_node.value if scalar else "<key>"
            key_path = f"{path}.{name}" if path else str(name)
            line = key_node.start_mark.line + 1
            if key in first:
                raise ConfigError(
                    f"duplicate key on line {line} (first given on line {first[key]})", key_path
                )
            first[key] = line
            _check_duplicate_keys(value_node, key_path, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicate_keys(item, f"{path}[{i}]", seen)


def parse_yaml(text: str) -> Any:
    """Parse one YAML document strictly (safe types only; a key given twice in a mapping is a
    :class:`ConfigError` naming its key path and line, not silently the last value)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicate_keys(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_config_text(path: str | Path) -> str:
    """The text of config file ``path`` (any fsspec URL; UTF-8, a BOM allowed). A file that is
    missing, a directory, unreadable or not UTF-8 is a one-line :class:`ConfigError` naming it."""
    try:
        with fsspec.open(str(path), "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a file: {path}") from None
    except OSError as exc:
        reason = exc.strerror or one_line(exc, limit=None) or type(exc).__name__
        raise ConfigError(f"cannot read config file {path}: {reason}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})"
        ) from None


def load_config(cls: type[T], path: str | Path | None) -> T:
    """Load ``cls`` from a YAML file (``None``: all defaults). Errors are one-line
    :class:`ConfigError` s that name the file and key path (see the module docstring)."""
    if path is None:
        return config_from_dict(cls, {})
    text = read_config_text(path)
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_error(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
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


_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*:)[^/?#@\s]*@")
"""``scheme://user:PASSWORD@`` at the start of a string value (a proxy or storage URL)."""


def redact_secrets(value: Any) -> Any:
    """``value`` (plain config data) with the password of every ``scheme://user:password@host`` URL
    replaced by ``***``: what is written next to outputs must not carry credentials."""
    if isinstance(value, dict):
        return {k: redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1***@", value)
    return value


def config_to_yaml(cfg: object) -> str:
    """The resolved config as YAML text (every field, defaults included; passwords in URLs redacted)."""
    return yaml.safe_dump(redact_secrets(config_to_dict(cfg)), sort_keys=False)


def write_resolved_config(cfg: object, path: str) -> None:
    """Write ``cfg`` as YAML to ``path`` (any fsspec URL) atomically (passwords in URLs redacted)."""

    files.atomic_write_bytes(path, config_to_yaml(cfg).encode())
