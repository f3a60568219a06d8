"""The mixing verbs end to end through the real command line (typer runner, real ffmpeg)."""

from __future__ import annotations

import json
import re
import subprocess

import soundfile
from typer.testing import CliRunner

import manifests
from avforge.cli import app
from avforge.testing.corpus import ASSETS

runner = CliRunner()


def test_mix_freeze_then_render_examples(corpus, tmp_path):
    frozen = tmp_path / "eval"
    result = runner.invoke(
        app,
        ["mix", "freeze", str(corpus), "--out", str(frozen), "--count", "5", "--task", "3s_clean"],
    )
    assert result.exit_code == 0, result.output
    table = manifests.read_mixtures(str(frozen))
    assert table.num_rows == 5 and set(table.column("task").to_pylist()) == {"3s_clean"}
    out = tmp_path / "examples"
    result = runner.invoke(
        app,
        ["mix", "render", str(corpus), "--out", str(out), "--recipes", str(frozen), "--count", "2"],
    )
    assert result.exit_code == 0, result.output
    folders = sorted(p for p in out.iterdir())
    assert len(folders) == 2
    for folder in folders:
        audio, rate = soundfile.read(folder / "mixture.wav")
        assert rate == 16000 and audio.shape == (48000,)
        assert all((folder / f"target_{i}.wav").exists() for i in range(3))
        assert len(json.loads((folder / "recipe.json").read_text())["clip_ids"]) == 3
        probe = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "stream=codec_type,width,nb_frames",
                "-of",
                "json",
                str(folder / "faces.mp4"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
        assert streams["video"]["width"] == 3 * 96 and int(streams["video"]["nb_frames"]) == 75
        assert "audio" in streams


def test_freeze_reports_an_unservable_config(corpus, tmp_path):
    config = tmp_path / "mix.yaml"
    config.write_text("task: custom\nn_speakers: 4\np_reverb: 0.5\nsplit: val\n")
    result = runner.invoke(
        app, ["mix", "freeze", str(corpus), "--out", str(tmp_path / "x"), "--config", str(config)]
    )
    assert result.exit_code == 2 and "no clip in split 'val'" in result.output


def test_noises_add_and_rirs_build(tmp_path):
    listing = tmp_path / "noises.txt"
    listing.write_text(f"{ASSETS / 'guitar_16k.wav'}\n")
    out = tmp_path / "corpus"
    result = runner.invoke(
        app, ["noises", "add", str(listing), "--out", str(out), "--kind", "music"]
    )
    assert result.exit_code == 0, result.output
    assert manifests.read_noises(str(out)).column("kind").to_pylist() == ["music"]
    again = runner.invoke(app, ["noises", "add", str(listing), "--out", str(out)])
    assert again.exit_code == 0, again.output  # a rerun is not an error, and adds no row
    assert re.search(
        r"^guitar-16k-[0-9a-f]{8}\talready registered \((train|val|test)\)$", again.output, re.M
    )
    assert manifests.read_noises(str(out)).num_rows == 1
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("type: synchronous\n")
    rirs = tmp_path / "rirs.yaml"
    rirs.write_text("sources_per_room: 2\nrt60_s: [0.15, 0.2]\nrooms_per_shard: 2\n")
    result = runner.invoke(
        app,
        [
            "rirs",
            "build",
            "--out",
            str(out),
            "--rooms",
            "3",
            "--config",
            str(rirs),
            "--cluster",
            str(cluster),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 6 RIRs" in result.output
    assert manifests.read_rirs(str(out)).num_rows == 6
    assert (out / "config" / "rirs_build.yaml").exists()
