"""Configs are checked when loaded: NaN / infinities, duplicate keys, unreadable files, URL templates
and Dask memory sizes are one-line :class:`ConfigError` s that name the key (or the file).

Every case goes through the real loader (``load_config`` on a YAML file), and a few through the real
command line, where the contract is one ``error:`` line and exit status 2 before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avforge.cli import app
from avforge.core.cluster import ClusterConfig, load_cluster_config
from avforge.core.config import ConfigError, config_to_yaml, load_config, write_resolved_config
from curation.config import CurateConfig, load_curate_config
from curation.snr import SnrConfig
from mixing.config import MixingConfig


def _yaml(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(loader, path: Path) -> str:
    """The message of the ConfigError raised by ``loader(path)``; it is one line naming the file."""
    with pytest.raises(ConfigError) as info:
        loader(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


# ----------------------------------------------------------------------------- NaN and infinities


def test_nan_threshold_is_rejected_at_load(tmp_path):
    # `.nan` compared false with both bounds, so it passed, and then rejected every segment
    message = _error(load_curate_config, _yaml(tmp_path, "snr:\n  threshold_db: .nan\n"))
    assert "snr.threshold_db: must be a finite number, got nan" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("download:\n  source_timeout_s: .inf\n", "download.source_timeout_s"),  # no upper bound
        ("segments:\n  min_duration_s: .nan\n", "segments.min_duration_s"),
        ("snr:\n  min_noise_s: -.inf\n", "snr.min_noise_s"),
    ],
)
def test_nan_and_infinity_in_curation_floats(tmp_path, text, key):
    message = _error(load_curate_config, _yaml(tmp_path, text))
    assert key in message and "finite" in message


def test_nan_inside_a_list_of_floats(tmp_path):
    # every float the loader converts, not only the range-checked fields: items of a tuple too
    text = "snr_db_range: [0.0, .nan]\n"
    message = _error(lambda p: load_config(MixingConfig, p), _yaml(tmp_path, text))
    assert "snr_db_range[1]" in message and "finite" in message


def test_check_range_rejects_nan_built_in_python():
    with pytest.raises(ConfigError, match="threshold_db"):
        SnrConfig(threshold_db=math.nan)
    with pytest.raises(ConfigError, match="threshold_db"):
        SnrConfig(threshold_db=math.inf)


def test_fields_that_allow_infinity_keep_working(tmp_path):
    from avforge.core.config import ALLOW_INF, check_range

    @dataclasses.dataclass(frozen=True)
    class Caps:
        max_duration_s: float = math.inf
        """A cap whose default is 'no cap': infinity is its meaning."""
        ceiling_db: float = dataclasses.field(default=60.0, metadata=ALLOW_INF)

        def __post_init__(self) -> None:
            check_range(self, "max_duration_s", 0.0, allow_inf=True)
            check_range(self, "ceiling_db", 0.0, allow_inf=True)

    load = lambda p: load_config(Caps, p)  # noqa: E731
    assert load(_yaml(tmp_path, "{}\n")).max_duration_s == math.inf
    caps = load(_yaml(tmp_path, "max_duration_s: .inf\nceiling_db: .inf\n", "inf.yaml"))
    assert caps.max_duration_s == math.inf and caps.ceiling_db == math.inf
    assert load(_yaml(tmp_path, "max_duration_s: 7200\n", "finite.yaml")).max_duration_s == 7200.0
    assert "max_duration_s" in _error(load, _yaml(tmp_path, "max_duration_s: .nan\n", "n.yaml"))
    # still a range: -inf is below 0
    assert "ceiling_db" in _error(load, _yaml(tmp_path, "ceiling_db: -.inf\n", "m.yaml"))


# ----------------------------------------------------------------------------- duplicate keys


def test_duplicate_top_level_section_is_rejected_with_its_line(tmp_path):
    text = "snr:\n  threshold_db: 10\nvad:\n  aggressiveness: 2\nsnr:\n  frame_ms: 20\n"
    message = _error(load_curate_config, _yaml(tmp_path, text))
    assert "snr: duplicate key on line 5 (first given on line 1)" in message


def test_duplicate_nested_key_is_rejected_with_its_path(tmp_path):
    text = "segments:\n  min_duration_s: 3.0\n  max_duration_s: 10.0\n  min_duration_s: 4.0\n"
    message = _error(load_curate_config, _yaml(tmp_path, text))
    assert "segments.min_duration_s: duplicate key on line 4" in message


def test_duplicate_in_flow_mapping_of_the_cluster_config(tmp_path):
    text = "type: local\nlocal: {n_workers: 2, n_workers: 4}\n"
    message = _error(load_cluster_config, _yaml(tmp_path, text))
    assert "local.n_workers: duplicate key on line 2" in message


def test_merge_keys_may_still_override(tmp_path):
    from avforge.core.config import parse_yaml

    data = parse_yaml("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  x: 3\n")
    assert data["use"] == {"x": 3, "y": 2}


# ----------------------------------------------------------------------------- the file itself


def test_config_path_that_is_a_directory(tmp_path):
    message = _error(load_curate_config, tmp_path)
    assert "directory" in message


def test_config_path_that_is_missing(tmp_path):
    message = _error(load_curate_config, tmp_path / "nope.yaml")
    assert "not found" in message


def test_config_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("run:\n  progress: false  # caf\u00e9\n".encode("latin-1"))
    message = _error(load_curate_config, path)
    assert "UTF-8" in message


def test_a_utf8_bom_is_fine(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfsnr:\n  threshold_db: 12.5\n")
    assert load_curate_config(path).snr.threshold_db == 12.5


def test_yaml_syntax_error_is_one_line_with_its_position(tmp_path):
    message = _error(load_curate_config, _yaml(tmp_path, "snr: {threshold_db: 10\nvad: 1\n"))
    assert "not valid YAML" in message and "line " in message


# ----------------------------------------------------------------------------- avspeech_url_template


@pytest.mark.parametrize(
    "template",
    [
        "https://mirror.example/{video_id}.mp4",  # a field the code does not fill: KeyError per row
        "https://mirror.example/videos.mp4",  # no placeholder: every row fetches one video
        "https://mirror.example/{id",  # does not format: every row invalid
        "https://mirror.example/{}.mp4",
        "https://mirror.example/{id.upper}.mp4",
        "mirror.example/{id}.mp4",  # neither a URL nor an absolute path
        "ftp://mirror.example/{id}.mp4",
    ],
)
def test_bad_avspeech_url_template_is_rejected_at_load(tmp_path, template):
    text = f"download:\n  avspeech_url_template: '{template}'\n"
    message = _error(load_curate_config, _yaml(tmp_path, text))
    assert "download.avspeech_url_template" in message and "{id}" in message


@pytest.mark.parametrize(
    "template",
    [
        "https://www.youtube.com/watch?v={id}",
        "http://127.0.0.1:8123/{id}.mp4",
        "/data/mirror/{id}.mp4",
    ],
)
def test_good_avspeech_url_templates_load(tmp_path, template):
    text = f"download:\n  avspeech_url_template: '{template}'\n"
    assert load_curate_config(_yaml(tmp_path, text)).download.avspeech_url_template == template


# ----------------------------------------------------------------------------- memory sizes


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("local: {memory_limit: lots}\n", "local.memory_limit"),
        ("local: {memory_limit: '-4GiB'}\n", "local.memory_limit"),
        ("local: {memory_limit: ''}\n", "local.memory_limit"),
        ("local: {memory_limit: 1.5}\n", "local.memory_limit"),  # neither a fraction nor bytes
        ("slurm: {memory: lots}\n", "slurm.memory"),
    ],
)
def test_bad_memory_sizes_are_rejected_at_load(tmp_path, text, key):
    message = _error(load_cluster_config, _yaml(tmp_path, text))
    assert key in message and "parse_bytes" in message


@pytest.mark.parametrize("value", ["4GiB", "500 MB", "auto", 0.5, "0.25", 0, 8589934592])
def test_memory_limits_dask_accepts_load(tmp_path, value):
    from distributed.worker_memory import parse_memory_limit

    cfg = load_cluster_config(_yaml(tmp_path, f"local: {{memory_limit: {value!r}}}\n"))
    # what the loader accepts, distributed can parse (the value handed to LocalCluster)
    import logging

    parse_memory_limit(cfg.local.memory_limit, 1, logger=logging.getLogger("test"))
    # and the resolved config loads again
    again = load_config(ClusterConfig, _yaml(tmp_path, config_to_yaml(cfg), "resolved.yaml"))
    assert again == cfg


# ----------------------------------------------------------------------------- the command line


def test_curate_with_a_bad_memory_limit_stops_before_any_work(tmp_path):
    cluster = _yaml(tmp_path, "local: {memory_limit: lots}\n", "dask_cluster.yaml")
    urls = _yaml(tmp_path, "http://127.0.0.1:9/talk.mp4\n", "urls.txt")
    out = tmp_path / "corpus"
    result = CliRunner().invoke(
        app, ["curate", str(urls), "--out", str(out), "--cluster", str(cluster)]
    )
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: ") and "local.memory_limit" in result.stderr
    assert not out.exists()


def test_train_with_a_duplicate_key_is_one_error_line(tmp_path):
    # out_dir in tmp_path and no corpus: whatever happens, nothing is trained or written elsewhere
    text = f"seed: 1\nout_dir: '{tmp_path / 'run'}'\nseed: 2\n"
    config = _yaml(tmp_path, text, "train.yaml")
    # a real process: Lightning's log handlers must not outlive a CliRunner's captured streams
    exe = [sys.executable, "-c", "from avforge.cli import main; main()"]
    result = subprocess.run(
        [*exe, "train", "--config", str(config)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"error: {config}: seed: duplicate key on line 3 (first given on line 1)"
    )


def test_defaults_still_load():
    assert load_curate_config(None) == CurateConfig()
    assert load_cluster_config(None) == ClusterConfig()


def test_the_resolved_config_written_next_to_outputs_carries_no_proxy_password(tmp_path):
    from curation.config import CurateConfig
    from curation.download import DownloadConfig

    proxy = "http://bob:hunter2@127.0.0.1:3128"
    cfg = CurateConfig(download=DownloadConfig(proxy=proxy))
    path = tmp_path / "config" / "curate.yaml"
    write_resolved_config(cfg, str(path))
    text = path.read_text()
    assert "hunter2" not in text
    assert "http://bob:***@127.0.0.1:3128" in text
    assert cfg.download.proxy == proxy  # the run itself still uses the real one
