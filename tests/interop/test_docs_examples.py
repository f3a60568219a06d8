"""The examples of docs/interop.md run as written on a small corpus, and compute the right answers.

Each example is the fenced block after a ``<!-- example: NAME -->`` line. The corpus has two clips
shards (train and val) and a stray ``.tmp-*.arrow`` file, as a killed writer leaves: an example that
read it would count its rows twice.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import typer
from lhotse import CutSet
from typer.testing import CliRunner

import manifests
from avforge.interop.cli import register
from avforge.interop.tables import media_path
from avforge.testing.corpus import build_corpus
from manifests.io import write_records
from manifests.schema import ClipRecord, SourceRecord, Split, table_to_records

DOC = Path(__file__).resolve().parents[2] / "docs" / "interop.md"
_EXAMPLE = re.compile(r"<!-- example: (\w+) -->\n```(\w+)\n(.*?)```", re.DOTALL)


def examples() -> dict[str, tuple[str, str]]:
    """name -> (language, code) of every marked example in docs/interop.md."""
    return {m.group(1): (m.group(2), m.group(3)) for m in _EXAMPLE.finditer(DOC.read_text())}


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    corpus = build_corpus(tmp_path, n_speakers=3, clips_per_speaker=2, with_noises=False)
    clips = table_to_records(manifests.read_clips(str(corpus)), ClipRecord)
    extra = [
        dataclasses.replace(c, clip_id=c.clip_id + "-v", split=Split.VAL, snr_db=20.0)
        for c in clips[:2]
    ]
    write_records(str(corpus), "clips", "clips-00001", extra)
    sources = table_to_records(manifests.read_sources(str(corpus)), SourceRecord)
    sized = [dataclasses.replace(s, width=640, height=480) for s in sources]
    write_records(str(corpus), "sources", "sources-00000", sized)
    shutil.copy(
        corpus / "clips" / "clips-00000.arrow", corpus / "clips" / ".tmp-0f-clips-00002.arrow"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_python(name: str) -> dict:
    language, code = examples()[name]
    assert language == "python"
    namespace: dict = {"__name__": f"docs_example_{name}"}
    exec(compile(code, f"docs/interop.md:{name}", "exec"), namespace)
    return namespace


def truth() -> list[dict]:
    return manifests.read_clips("corpus").to_pylist()


def test_the_marked_examples_are_all_there():
    assert set(examples()) == {"cli", "pandas", "polars", "duckdb", "avforge", "media"}


def test_pandas_example(workdir):
    ns = run_python("pandas")
    rows = truth()
    assert len(rows) == 8 and len(ns["clips"]) == 8
    hours = defaultdict(float)
    for r in rows:
        hours[r["split"]] += r["duration_s"] / 3600
    assert ns["hours_per_split"].to_dict() == pytest.approx(dict(hours))
    assert sorted(ns["clean"]["clip_id"]) == sorted(r["clip_id"] for r in rows if r["snr_db"] >= 25)


def test_polars_example(workdir):
    ns = run_python("polars")
    got = {r["speaker_id"]: (r["clips"], r["seconds"]) for r in ns["per_speaker"].to_dicts()}
    want: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for r in truth():
        want[r["speaker_id"]][0] += 1
        want[r["speaker_id"]][1] += r["duration_s"]
    assert got == {k: (n, pytest.approx(s)) for k, (n, s) in want.items()}


def test_duckdb_example(workdir):
    ns = run_python("duckdb")
    frame = ns["per_source"]
    counts = Counter(r["source_id"] for r in truth())
    sources = manifests.read_sources("corpus").to_pylist()
    assert list(frame["source_id"]) == sorted(s["source_id"] for s in sources)
    assert dict(zip(frame["source_id"], frame["clips"], strict=True)) == dict(counts)
    assert list(frame["url"]) == [s["url"] for s in sorted(sources, key=lambda s: s["source_id"])]


def test_avforge_example(workdir):
    ns = run_python("avforge")
    assert ns["kept_per_split"] == [("train", 6), ("val", 2)]
    assert len(ns["frame"]) == 8 and ns["lazy"].collect().height == 8


def test_media_example(workdir):
    ns = run_python("media")
    clip = ns["clip"]
    shard = media_path("corpus", clip["media_shard"])
    reader = manifests.MediaReader()
    np.testing.assert_array_equal(ns["samples"], reader.audio(shard, clip["media_row"]))
    np.testing.assert_array_equal(ns["boxes"], reader.face_track(shard, clip["media_row"]).boxes)


def test_cli_example(workdir):
    language, code = examples()["cli"]
    assert language == "sh"
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """avforge (test)."""

    register(app)
    for line in code.strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "avforge"
        result = CliRunner().invoke(app, args[1:])
        assert result.exit_code == 0, (line, result.output)
    assert len(CutSet.from_file("corpus_lhotse/cuts.jsonl.gz")) == 8
    assert manifests.read_clips("corpus_audio_only")["clip_id"].to_pylist() == [
        "lh-" + r["clip_id"] for r in truth()
    ]
    csv_rows = [line.split(",") for line in Path("corpus.csv").read_text().splitlines()]
    times = sorted((float(r[1]), float(r[2])) for r in csv_rows)
    assert times == sorted((r["start_s"], r["end_s"]) for r in truth())
