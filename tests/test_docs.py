"""The user docs stay true: runnable examples run, links resolve, every page is indexed, every
failure reason is explained, and what docs/scaling.md says about URLs holds (checked on memory://).

Runnable examples are the ``sh`` blocks after a ``<!-- runnable -->`` line in README.md and docs/**
(see tests/helpers/docs_examples.py); each runs as written in an empty temporary folder.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
from typer.testing import CliRunner

import manifests
from avforge.cli import app
from avforge.core import assets as bundled
from avforge.core.cluster import ClusterConfig, ClusterType
from avforge.core.config import config_from_dict
from avforge.testing.corpus import ASSETS, build_corpus
from manifests.schema import RejectReason, SourceError
from mixing.config import MixingConfig
from mixing.dataset import freeze_recipes
from mixing.noises import add_noises
from mixing.render import MixtureRenderer
from mixing.rirs import RirConfig, build_rirs
from tests.helpers.docs_examples import (
    MARKER,
    REPO,
    DocsExampleError,
    anchors,
    doc_pages,
    extract_runnable,
    relative_links,
    run_example,
    shell_blocks,
)
from training.data import MixtureSource

EXAMPLE_TIMEOUT_S = 300.0
DOCS = REPO / "docs"

# Pages with shell blocks but no runnable one, and why (keep this short and honest).
NOT_RUNNABLE = {
    "README.md": "`make demo` / `make test` are the demo and the suite themselves; the rest needs your data",
    "docs/quickstart.md": "`make demo` takes minutes; tests/test_demo.py runs `avforge demo --quick`",
    "docs/interop.md": "its `example: cli` block runs in tests/interop/test_docs_examples.py; the rest needs LibriSpeech / MUSAN",
    "docs/mixing.md": "its commands need a corpus with clips; not marked by the mixing page yet",
    "docs/speaker_calibration.md": "it curates 230 real videos (20 min) from talks not in the repo; tests/curation/test_real_talks.py and test_calibrate_sync.py check the same decisions on bundled talks",
}


def _all_examples() -> list:
    return [ex for page in doc_pages() for ex in extract_runnable(page.read_text(), page)]


def _rel(page: Path) -> str:
    return str(page.relative_to(REPO))


# --------------------------------------------------------------------------- runnable examples


@pytest.mark.parametrize("example", _all_examples(), ids=lambda ex: ex.name)
def test_runnable_example_runs(example, tmp_path):
    run = run_example(example.code, tmp_path / "work", EXAMPLE_TIMEOUT_S)
    assert not run.timed_out, (
        f"{example.name} ran over {EXAMPLE_TIMEOUT_S:.0f} s:\n{run.output[-4000:]}"
    )
    assert run.returncode == 0, f"{example.name} exited {run.returncode}:\n{run.output[-4000:]}"


def test_the_runner_fails_when_a_block_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        f"text\n{MARKER}\n```sh\necho ok\n```\n\n{MARKER}\n```sh\necho before\nfalse\necho after\n```\n"
    )
    ok, failing = extract_runnable(page.read_text(), page)
    assert ok.line == 3 and ok.code == "echo ok\n"
    assert run_example(ok.code, tmp_path / "a", 30).returncode == 0
    run = run_example(failing.code, tmp_path / "b", 30)
    assert run.returncode != 0 and "before" in run.output and "after" not in run.output
    # -u and pipefail: an unset variable or a failure inside a pipeline fails the block too.
    assert run_example('echo "$NOT_SET_ANYWHERE"\n', tmp_path / "c", 30).returncode != 0
    assert run_example("false | cat\n", tmp_path / "d", 30).returncode != 0


def test_the_runner_kills_a_block_that_runs_too_long_with_its_background_jobs(tmp_path):
    run = run_example("sleep 300 &\necho started\nsleep 300\n", tmp_path / "w", 2)
    assert run.timed_out and run.returncode != 0 and run.wall_s < 30
    assert "started" in run.output


def test_blocks_run_in_an_empty_folder_with_the_venv_first_on_path(tmp_path):
    code = (
        'test -z "$(ls -A)"\n'
        'test "$(command -v avforge)" = "$(dirname "$(command -v python)")/avforge"\n'
        'test -f "$AVFORGE_REPO/docs/README.md"\n'
        'python -c "import avforge, manifests"\n'
    )
    run = run_example(code, tmp_path / "w", 60)
    assert run.returncode == 0, run.output


def test_a_marker_must_precede_a_shell_block(tmp_path):
    page = tmp_path / "page.md"
    with pytest.raises(DocsExampleError, match=r"page\.md:1"):
        extract_runnable(f"{MARKER}\n```python\nprint(1)\n```\n", page)
    with pytest.raises(DocsExampleError, match="never closed"):
        extract_runnable(f"{MARKER}\n```sh\necho\n", page)
    assert extract_runnable("<!-- example: cli -->\n```sh\nfalse\n```\n", page) == []


def test_pages_with_shell_commands_have_a_runnable_example():
    missing = []
    for page in doc_pages():
        text = page.read_text()
        if (
            shell_blocks(text)
            and not extract_runnable(text, page)
            and _rel(page) not in NOT_RUNNABLE
        ):
            missing.append(_rel(page))
    assert not missing, f"pages with shell blocks but no {MARKER} block: {missing}"


# --------------------------------------------------------------------------- index and links


def test_the_docs_index_links_every_page_and_the_readme_links_the_index():
    index = DOCS / "README.md"
    linked = {(DOCS / t.split("#")[0]).resolve() for t in relative_links(index.read_text())}
    pages = {p.resolve() for p in DOCS.rglob("*.md") if p != index}
    assert not pages - linked, f"not linked from docs/README.md: {sorted(pages - linked)}"
    assert "docs/README.md" in relative_links((REPO / "README.md").read_text())


def test_relative_links_and_anchors_resolve():
    broken = []
    for page in doc_pages():
        for target in relative_links(page.read_text()):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{_rel(page)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
                broken.append(f"{_rel(page)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_every_failure_reason_is_explained_in_troubleshooting():
    text = (DOCS / "troubleshooting.md").read_text()
    reasons = [e.value for e in SourceError] + [r.value for r in RejectReason]
    missing = [r for r in reasons if f"| `{r}` |" not in text]
    assert not missing, f"reasons without a row in docs/troubleshooting.md: {missing}"


# --------------------------------------------------------------------------- scaling.md's URL table


@pytest.fixture()
def remote_corpus(tmp_path):
    """The same small real corpus on local disk and on memory:// (a stand-in for s3:// or gs://)."""
    local = build_corpus(tmp_path, n_speakers=3, clips_per_speaker=2, clip_duration_s=2.0)
    root = f"avforge-docs-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    fs.put(str(local), f"/{root}/corpus", recursive=True)
    yield local, f"memory://{root}/corpus", f"memory://{root}"
    fs.rm(f"/{root}", recursive=True)


def test_the_python_calls_scaling_md_lists_take_a_corpus_url(remote_corpus, tmp_path):
    local, url, root = remote_corpus
    clips = manifests.read_clips(url)
    assert clips.equals(manifests.read_clips(str(local)))
    clip = clips.to_pylist()[0]
    media = f"media/{clip['media_shard']}"
    reader = manifests.MediaReader()
    np.testing.assert_array_equal(
        reader.audio(f"{url}/{media}", clip["media_row"]),
        reader.audio(str(local / media), clip["media_row"]),
    )
    cfg = config_from_dict(MixingConfig, {"task": "2s_clean", "duration_s": 1.0, "seed": 5})
    specs = freeze_recipes(url, f"{root}/eval", cfg, 2)
    assert manifests.read_mixtures(f"{root}/eval").num_rows == 2
    from_url = MixtureRenderer(url, cfg.render)(specs[0])
    from_disk = MixtureRenderer(str(local), cfg.render)(specs[0])
    np.testing.assert_array_equal(from_url.mixture, from_disk.mixture)
    assert MixtureSource([url, str(local)], cfg).corpora == [url, str(local)]
    added = add_noises([str(ASSETS / "exercise_bike.wav")], f"{root}/bank")
    assert not added.failures and manifests.read_noises(f"{root}/bank").num_rows == 1
    rooms = RirConfig(n_rooms=1, rooms_per_shard=1, rt60_s=(0.2, 0.25), room_x_m=(3.0, 4.0))
    written = build_rirs(f"{root}/bank", rooms, ClusterConfig(type=ClusterType.SYNCHRONOUS))
    assert written > 0 and manifests.read_rirs(f"{root}/bank").num_rows == written


def test_the_interop_verbs_take_a_corpus_url(remote_corpus, tmp_path):
    local, url, root = remote_corpus
    runner = CliRunner()
    from_url = runner.invoke(app, ["export", "avspeech-csv", url])
    from_disk = runner.invoke(app, ["export", "avspeech-csv", str(local)])
    assert from_url.exit_code == 0, from_url.output
    assert from_url.stdout == from_disk.stdout
    out = tmp_path / "lhotse"
    run = runner.invoke(app, ["export", "lhotse", url, "--out", str(out)])
    assert run.exit_code == 0, run.output
    run = runner.invoke(
        app, ["import", "lhotse", str(out / "cuts.jsonl.gz"), "--out", f"{root}/again"]
    )
    assert run.exit_code == 0, run.output
    assert manifests.read_clips(f"{root}/again").num_rows == manifests.read_clips(url).num_rows


def test_mixing_verbs_take_a_url_as_scaling_md_says(remote_corpus, tmp_path, monkeypatch):
    """`mix freeze`, `mix render`, `noises add` and `rirs build` read and write corpus URLs."""
    _local, url, root = remote_corpus
    monkeypatch.chdir(tmp_path)  # a mangled URL would appear here as a local "memory:" folder
    config = tmp_path / "mix.yaml"
    config.write_text("task: 2s_clean\nduration_s: 1.0\n")
    runner = CliRunner()
    memory = fsspec.filesystem("memory")
    args = [
        "mix",
        "freeze",
        url,
        "--out",
        f"{root}/frozen",
        "--count",
        "2",
        "--config",
        str(config),
    ]
    run = runner.invoke(app, args)
    assert run.exit_code == 0, run.output
    assert manifests.read_mixtures(f"{root}/frozen").num_rows == 2
    args = ["mix", "render", url, "--out", str(tmp_path / "ex"), "--recipes", f"{root}/frozen"]
    run = runner.invoke(app, [*args, "--count", "1", "--config", str(config)])
    assert run.exit_code == 0, run.output
    assert list((tmp_path / "ex").rglob("*.wav"))
    rooms = tmp_path / "rirs.yaml"
    rooms.write_text("n_rooms: 1\n")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("type: synchronous\n")
    args = ["rirs", "build", "--out", f"{root}/bank", "--config", str(rooms)]
    run = runner.invoke(app, [*args, "--cluster", str(cluster)])
    assert run.exit_code == 0, run.output
    assert manifests.read_rirs(f"{root}/bank").num_rows > 0
    assert memory.exists(f"/{root.split('://')[1]}/bank/config/rirs_build.yaml")
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    assets = bundled.AUDIO_DIR
    shutil.copy(assets / "guitar_16k.wav", noise_dir)
    run = runner.invoke(app, ["noises", "add", str(noise_dir), "--out", f"{root}/bank"])
    assert run.exit_code == 0, run.output
    assert manifests.read_noises(f"{root}/bank").num_rows == 1
    assert not (tmp_path / "memory:").exists()
