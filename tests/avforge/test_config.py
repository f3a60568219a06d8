"""The strict config loader: types converted, unknown keys and bad values rejected with the key path."""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from avforge.core.cluster import ClusterConfig, ClusterType, load_cluster_config, open_client
from avforge.core.config import (
    ConfigError,
    check_choice,
    check_range,
    config_from_dict,
    config_to_dict,
    load_config,
    write_resolved_config,
)


class Mode(enum.StrEnum):
    FAST = "fast"
    GOOD = "good"


@dataclass(frozen=True)
class Inner:
    rate_hz: int = 16000
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        check_range(self, "rate_hz", 8000, 48000)
        check_range(self, "gain_db", -60, 20)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    mode: Mode = Mode.FAST
    inner: Inner = field(default_factory=Inner)
    sizes: tuple[int, ...] = (1, 2)
    model_dir: Path | None = None
    frame_ms: int = 30

    def __post_init__(self) -> None:
        check_choice(self, "frame_ms", (10, 20, 30))


def test_defaults_and_conversion():
    cfg = config_from_dict(
        Outer, {"mode": "good", "inner": {"gain_db": 3}, "sizes": [4, 5, 6], "model_dir": "/m"}
    )
    assert cfg.mode is Mode.GOOD
    assert cfg.inner == Inner(16000, 3.0) and isinstance(cfg.inner.gain_db, float)
    assert cfg.sizes == (4, 5, 6)
    assert cfg.model_dir == Path("/m")
    assert config_from_dict(Outer, None) == Outer()


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"inner": {"rate": 1}}, r"unknown key\(s\) inner\.rate in inner"),
        ({"nmae": "typo"}, r"unknown key\(s\) nmae"),
        ({"inner": {"rate_hz": 4000}}, r"^inner\.rate_hz: must be >= 8000, got 4000"),
        ({"inner": {"rate_hz": "fast"}}, r"^inner\.rate_hz: expected an integer"),
        ({"inner": {"rate_hz": True}}, r"^inner\.rate_hz: expected an integer"),
        ({"mode": "slow"}, r"^mode: must be one of \['fast', 'good'\]"),
        ({"frame_ms": 25}, r"^frame_ms: must be one of \[10, 20, 30\]"),
        ({"sizes": [1, "a"]}, r"^sizes\[1\]: expected an integer"),
        ({"inner": [1, 2]}, r"^inner: expected a mapping"),
        ({"name": None}, r"^name: expected str, got null"),
    ],
)
def test_rejections_name_the_key_path(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config_from_dict(Outer, data)


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inner:\n  gain_db: 99\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: inner\.gain_db: must be <= 20"):
        load_config(Outer, bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Outer, tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("inner: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_config(Outer, broken)


def test_resolved_config_round_trips(tmp_path):
    cfg = config_from_dict(Outer, {"mode": "good", "sizes": [3], "model_dir": "/m"})
    path = tmp_path / "out" / "resolved.yaml"
    write_resolved_config(cfg, str(path))
    assert load_config(Outer, path) == cfg
    assert config_to_dict(cfg)["mode"] == "good"


def test_project_dask_cluster_yaml_loads():
    cfg = load_cluster_config(Path(__file__).parents[2] / "dask_cluster.yaml")
    assert cfg.type is ClusterType.LOCAL
    assert cfg.local.n_workers >= 1


def test_cluster_address_needs_address():
    with pytest.raises(ConfigError, match=r"^address: type 'address' needs an address"):
        config_from_dict(ClusterConfig, {"type": "address"})


def test_cluster_optional_backend_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed
    cfg = config_from_dict(ClusterConfig, {"type": "slurm"})
    with pytest.raises(ConfigError, match=r"pip install 'avforge\[slurm\]'"), open_client(cfg):
        pass


def test_synchronous_cluster_has_no_client():
    with open_client(config_from_dict(ClusterConfig, {"type": "synchronous"})) as client:
        assert client is None
