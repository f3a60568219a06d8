"""The synthetic multi-speaker set: ``render_demo_set(quick=True)`` writes its talks with their truth.

It is plumbing material (synthetic corpora for the mixing and training tests are built from the same
scenarios); ``avforge demo`` itself curates bundled REAL talks (avforge/demo_videos.py) and is tested
end to end in tests/test_demo.py.
"""

from __future__ import annotations

from avforge.synth import load_truth, render_demo_set
from avforge.synth.presets import demo_scenarios


def test_quick_demo_set_renders_talks_of_distinct_clean_speakers(tmp_path):
    videos = render_demo_set(tmp_path / "videos", quick=True)
    assert sorted(v.stem for v in videos) == sorted(s.name for s in demo_scenarios(quick=True))
    clean_speakers = []
    for video in videos:
        assert video.exists() and video.with_suffix(".json").exists()
        truth = load_truth(video)
        assert truth["duration_s"] <= 12.0 + 1e-6
        clean_speakers += {
            s["speaker_ids"][0] for s in truth["sections"] if s["clean_single_speaker"]
        }
    assert len(clean_speakers) == len(set(clean_speakers)) == len(videos)
