"""The export / import verbs through typer's CliRunner on a fresh app: outputs, summaries, and exit
status 2 with a one-line message for bad inputs."""

from __future__ import annotations

import csv
import dataclasses
import io

import pytest
import typer
from lhotse import CutSet
from typer.testing import CliRunner

import manifests
from avforge.interop.cli import register
from avforge.testing.corpus import build_corpus
from manifests.io import write_records
from manifests.schema import ClipRecord, table_to_records


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """avforge (test)."""

    register(app)
    return app


def invoke(app, *args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_export_lhotse_then_import(app, corpus, tmp_path):
    result = invoke(app, "export", "lhotse", corpus, "--out", tmp_path / "lh", "--format", "flac")
    assert result.exit_code == 0, result.output
    assert "6 cuts (0.007 h, 6 with face tracks)" in result.stdout
    cuts = CutSet.from_file(tmp_path / "lh" / "cuts.jsonl.gz")
    assert len(cuts) == 6
    result = invoke(
        app,
        "import",
        "lhotse",
        tmp_path / "lh" / "cuts.jsonl.gz",
        "--out",
        tmp_path / "c",
        "--as",
        "noise",
        "--kind",
        "babble",
        "--split",
        "val",
    )
    assert result.exit_code == 0, result.output
    assert "6 noise (0.007 h) in 1 shard(s), 0 failed" in result.stdout
    noises = manifests.read_noises(str(tmp_path / "c")).to_pylist()
    assert {(n["kind"], n["split"]) for n in noises} == {("babble", "val")}


def test_export_avspeech_csv_to_stdout_reports_skipped_clips(app, corpus):
    result = invoke(app, "export", "avspeech-csv", corpus)
    assert result.exit_code == 0, result.output
    # The helper corpus has no frame sizes and no face_x/face_y: every clip is skipped, and said so.
    assert result.stdout == ""
    assert "0 rows, 6 clips skipped" in result.stderr
    assert "skipped aew-00: source frame size unknown" in result.stderr


def test_export_avspeech_csv_to_a_file(app, tmp_path):
    corpus = build_corpus(tmp_path, n_speakers=1, clips_per_speaker=1, with_noises=False)
    (clip,) = table_to_records(manifests.read_clips(str(corpus)), ClipRecord)
    clip = dataclasses.replace(clip, face_x=0.5, face_y=0.25)
    write_records(str(corpus), "clips", "clips-00000", [clip])
    result = invoke(app, "export", "avspeech-csv", corpus, "--out", tmp_path / "a.csv")
    assert result.exit_code == 0 and result.stdout == ""
    assert "1 rows, 0 clips skipped" in result.stderr
    (row,) = csv.reader(io.StringIO((tmp_path / "a.csv").read_text()))
    assert row[1:] == ["0.000000", "4.000000", "0.500000", "0.250000"]
    assert row[0].endswith("cmu_arctic_us_aew_a0001.wav")  # a local source: its path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("export", "lhotse", "{tmp}", "--out", "{tmp}/o"), "no clips to export"),
        (("export", "lhotse", "{tmp}/nothing", "--out", "{tmp}/o"), "no such corpus folder"),
        (("export", "lhotse", "{corpus}", "--out", "{tmp}/o", "--format", "mp3"), "--format"),
        (("import", "lhotse", "{tmp}/missing.jsonl.gz", "--out", "{tmp}/c"), "no such Lhotse"),
        (("import", "lhotse", "{tmp}/m.jsonl.gz", "--out", "{tmp}/c", "--as", "speech"), "--as"),
        (
            ("import", "lhotse", "{tmp}/m.jsonl.gz", "--out", "{tmp}/c", "--id-prefix", "a/b"),
            "id_prefix",
        ),
    ],
)
def test_bad_inputs_exit_2_with_one_line(app, corpus, tmp_path, args, message):
    filled = [a.format(tmp=tmp_path, corpus=corpus) for a in args]
    result = invoke(app, *filled)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
