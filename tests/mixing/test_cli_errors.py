"""Every verb that reads a corpus stops on a broken one with one ``error:`` line and exit status 2.

Real corpora (``avforge.testing.corpus``) with one Arrow file cut in half (what an unfinished copy
leaves) or re-stamped with a newer schema version, run through the real command line
(``avforge.cli.app``): no traceback, stderr is the one line naming the file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from avforge.cli import app
from avforge.testing.corpus import build_corpus
from manifests.io import META_VERSION

runner = CliRunner()
AVFORGE = [sys.executable, "-c", "from avforge.cli import main; main()"]


@pytest.fixture(scope="module")
def good_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 speakers x 2 clips of 3 s (faces), the bundled noises, and a frozen set of 2 recipes."""
    root = tmp_path_factory.mktemp("cli-errors")
    corpus = build_corpus(root, n_speakers=2, clips_per_speaker=2, clip_duration_s=3.0, seed=5)
    args = [
        "mix",
        "freeze",
        str(corpus),
        "--out",
        str(corpus),
        "--count",
        "2",
        "--task",
        "2s_clean",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return corpus


def _copy(corpus: Path, tmp_path: Path) -> Path:
    out = tmp_path / "corpus"
    shutil.copytree(corpus, out)
    return out


def _truncate(corpus: Path, table: str) -> Path:
    """Cut the first shard of ``table`` in half (an unfinished copy); return it."""
    shard = sorted((corpus / table).glob("*.arrow"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    return shard


def _newer_schema(corpus: Path, table: str) -> Path:
    """Re-stamp the first shard of ``table`` as written by a newer schema version; return it."""
    shard = sorted((corpus / table).glob("*.arrow"))[0]
    with pa.memory_map(str(shard)) as source:
        arrow = pa.ipc.open_file(source).read_all()
    meta = dict(arrow.schema.metadata or {})
    meta[META_VERSION] = b"99"
    arrow = arrow.replace_schema_metadata(meta)
    with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_file(sink, arrow.schema) as writer:
        writer.write_table(arrow)
    return shard


def _assert_one_error_line(result, *needles: str) -> str:
    """Exit status 2, no traceback, stderr is exactly one ``error:`` line holding ``needles``."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("table", ["clips", "media", "noises"])
def test_mix_freeze_on_a_truncated_shard(good_corpus, tmp_path, table):
    corpus = _copy(good_corpus, tmp_path)
    shard = _truncate(corpus, table)
    out = tmp_path / "frozen"
    args = ["mix", "freeze", str(corpus), "--out", str(out), "--count", "2", "--task", "2s_clean"]
    line = _assert_one_error_line(runner.invoke(app, args), str(shard))
    assert "truncated or corrupt" in line
    assert not (out / "mixtures").exists()  # nothing written


def test_mix_freeze_on_a_newer_schema(good_corpus, tmp_path):
    corpus = _copy(good_corpus, tmp_path)
    shard = _newer_schema(corpus, "clips")
    args = ["mix", "freeze", str(corpus), "--out", str(tmp_path / "f"), "--task", "2s_clean"]
    _assert_one_error_line(runner.invoke(app, args), str(shard), "schema version '99'")


def test_mix_render_on_truncated_media(good_corpus, tmp_path):
    corpus = _copy(good_corpus, tmp_path)
    shard = _truncate(corpus, "media")
    args = ["mix", "render", str(corpus), "--out", str(tmp_path / "ex"), "--count", "1"]
    _assert_one_error_line(runner.invoke(app, [*args, "--task", "2s_clean"]), str(shard))
    assert not (tmp_path / "ex").exists() or not any((tmp_path / "ex").iterdir())


def test_mix_render_on_truncated_recipes(good_corpus, tmp_path):
    corpus = _copy(good_corpus, tmp_path)
    shard = _truncate(corpus, "mixtures")
    args = ["mix", "render", str(corpus), "--out", str(tmp_path / "ex"), "--recipes", str(corpus)]
    _assert_one_error_line(runner.invoke(app, args), str(shard))


def test_evaluate_on_truncated_recipes(good_corpus, tmp_path):
    corpus = _copy(good_corpus, tmp_path)
    shard = _truncate(corpus, "mixtures")
    args = ["evaluate", str(tmp_path / "model.pt"), "--mixtures", str(corpus)]
    _assert_one_error_line(
        runner.invoke(app, [*args, "--out", str(tmp_path / "report")]), str(shard)
    )


@pytest.mark.parametrize(
    "verb", [["export", "lhotse", "--out", "lhotse"], ["export", "avspeech-csv", "--out", "x.csv"]]
)
def test_export_on_a_truncated_clips_shard(good_corpus, tmp_path, verb):
    corpus = _copy(good_corpus, tmp_path)
    shard = _truncate(corpus, "clips")
    args = [*verb[:2], str(corpus), verb[2], str(tmp_path / verb[3])]
    _assert_one_error_line(runner.invoke(app, args), str(shard))


def test_train_on_truncated_media_stops_before_training(good_corpus, tmp_path):
    corpus = _copy(good_corpus, tmp_path)
    shard = _truncate(corpus, "media")
    config = tmp_path / "train.yaml"
    config.write_text(
        f"out_dir: '{tmp_path / 'run'}'\n"
        "model: {kind: audio_only}\n"
        f"data: {{corpora: ['{corpus}'], batch_size: 2, num_workers: 0, items_per_epoch: 2,"
        " val_items: 0, mixing: {task: 2s_clean}}\n"
        "trainer: {max_steps: 1, progress_bar: false}\n"
    )
    # a real process: Lightning's log handlers must not outlive a CliRunner's captured streams
    result = subprocess.run(
        [*AVFORGE, "train", "--config", str(config)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    # Lightning may log to stderr before the data is read: the error line is the last one, alone
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(shard) in errors[0], result.stderr
    assert result.stderr.rstrip("\n").splitlines()[-1] == errors[0]


def test_mix_verbs_with_a_config_that_is_a_folder(good_corpus, tmp_path):
    args = [
        "mix",
        "freeze",
        str(good_corpus),
        "--out",
        str(tmp_path / "f"),
        "--config",
        str(tmp_path),
    ]
    _assert_one_error_line(runner.invoke(app, args), str(tmp_path), "directory")
    args = ["rirs", "build", "--out", str(tmp_path / "r"), "--config", str(tmp_path)]
    _assert_one_error_line(runner.invoke(app, args), str(tmp_path), "directory")


def test_noises_add_with_nothing_registered_is_an_error(tmp_path):
    listing = tmp_path / "noises.txt"
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not audio")
    listing.write_text(f"{broken}\n")
    result = runner.invoke(app, ["noises", "add", str(listing), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("error: no recording registered")
    assert any(line.startswith(f"failed: {broken}") for line in lines[:-1])


@pytest.mark.parametrize(
    "verb",
    [
        ["mix", "freeze", "{c}", "--out", "{o}", "--count", "2", "--task", "2s_clean"],
        ["mix", "render", "{c}", "--out", "{o}", "--count", "1", "--task", "2s_clean"],
        ["export", "lhotse", "{c}", "--out", "{o}"],
        ["export", "avspeech-csv", "{c}"],
    ],
    ids=lambda v: " ".join(v[:2]),
)
def test_a_mistyped_corpus_folder_is_an_error_not_an_empty_corpus(tmp_path, verb):
    missing, out = tmp_path / "no-such-corpus", tmp_path / "out"
    args = [a.format(c=missing, o=out) for a in verb]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == [f"error: {missing}: no such corpus folder"], result.output
    assert not out.exists() or not any(out.rglob("*.arrow"))
