"""The demo set: ``render_demo_set`` (through ``avforge demo --quick``) writes talks with ground truth."""

from __future__ import annotations

from typer.testing import CliRunner

from avforge.cli import app
from avforge.synth import load_truth
from avforge.synth.presets import demo_scenarios


def test_demo_quick_renders_the_demo_set(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output  # later stages say plainly they are not built
    assert "not built yet" in result.output
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert [v.stem for v in videos] == sorted(s.name for s in demo_scenarios(quick=True))
    clean_speakers = []
    for video in videos:
        assert str(video) in result.output
        truth = load_truth(video)
        assert truth["duration_s"] <= 12.0 + 1e-6
        clean_speakers += {
            s["speaker_ids"][0] for s in truth["sections"] if s["clean_single_speaker"]
        }
    assert len(clean_speakers) == len(set(clean_speakers)) == len(videos)
