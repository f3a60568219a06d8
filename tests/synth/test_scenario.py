"""Scenarios: validation, tiling, presets and per-kind ground-truth properties (no rendering)."""

from __future__ import annotations

import pytest

from avforge.synth import PRESETS, Scenario, ScenarioError, Section, long_talk, mixed_20s, section
from avforge.synth import SectionKind as K
from avforge.synth.presets import demo_scenarios


def test_from_parts_tiles_back_to_back():
    sc = Scenario.from_parts("t", [section(K.CLEAN, 3.5, "aew"), section(K.SILENCE, 2.25, "aew")])
    assert [(s.start_s, s.end_s) for s in sc.sections] == [(0.0, 3.5), (3.5, 5.75)]
    assert sc.duration_s == 5.75


def test_gap_between_sections_is_rejected():
    a = Section(0.0, 2.0, K.CLEAN, ("aew",))
    b = Section(2.5, 4.0, K.CLEAN, ("aew",))
    with pytest.raises(ScenarioError, match="tile"):
        Scenario("gap", (a, b))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": K.CLEAN, "speaker_ids": ("nobody",)}, "unknown speaker"),
        ({"kind": K.NOISY, "speaker_ids": ("aew",)}, "snr_db"),
        ({"kind": K.CLEAN, "speaker_ids": ("aew",), "snr_db": 10.0}, "snr_db"),
        ({"kind": K.TWO_FACES, "speaker_ids": ("aew",)}, "2 speaker"),
        ({"kind": K.TWO_FACES, "speaker_ids": ("aew", "aew")}, "same speaker"),
        ({"kind": K.DUBBED, "speaker_ids": ("aew",)}, "voice_id"),
        ({"kind": K.DUBBED, "speaker_ids": ("aew",), "voice_id": "aew"}, "differ"),
        ({"kind": K.CLEAN, "speaker_ids": ("aew",), "alternate": True}, "alternate"),
        ({"kind": K.CLEAN, "speaker_ids": ("aew",), "face_x": (0.5, 0.6)}, "face_x"),
    ],
)
def test_malformed_sections_are_rejected(kwargs, match):
    with pytest.raises(ScenarioError, match=match):
        Section(0.0, 1.0, **kwargs)


def test_scenario_name_must_be_a_plain_stem():
    with pytest.raises(ScenarioError, match="file stem"):
        Scenario.from_parts("../evil", [section(K.CLEAN, 1.0, "aew")])


def test_mixed_20s_has_every_kind_and_only_clean_is_clean():
    sc = mixed_20s()
    assert sc.duration_s == pytest.approx(20.0)
    assert {s.kind for s in sc.sections} == set(K)
    assert all(3.0 <= s.duration_s <= 4.0 for s in sc.sections)
    for s in sc.sections:
        assert s.clean_single_speaker == (s.kind is K.CLEAN)


def test_section_audible_and_visible_speakers():
    dub = section(K.DUBBED, 1.0, "aew", voice_id="axb")
    assert dub.visible_speaker_ids == ("aew",) and dub.audible_speaker_ids == ("axb",)
    assert section(K.NO_FACE, 1.0, "axb").visible_speaker_ids == ()
    assert section(K.SILENCE, 1.0, "axb").audible_speaker_ids == ()
    assert section(K.TWO_FACES, 1.0, "aew", "axb").audible_speaker_ids == ("aew",)
    both = section(K.TWO_FACES, 1.0, "aew", "axb", alternate=True)
    assert both.audible_speaker_ids == ("aew", "axb")


@pytest.mark.parametrize("duration_s", [600.0, 61.3, 7.0])
def test_long_talk_tiles_its_duration(duration_s):
    sc = long_talk(duration_s=duration_s)
    assert sc.duration_s == pytest.approx(duration_s, abs=1e-6)
    assert sum(s.duration_s for s in sc.sections) == pytest.approx(duration_s, abs=1e-6)


def test_presets_build_and_demo_talks_have_distinct_clean_speakers():
    for build in PRESETS.values():
        assert build().duration_s > 0
    for quick in (False, True):
        talks = demo_scenarios(quick=quick)
        clean = [{s.speaker_ids[0] for s in t.sections if s.kind is K.CLEAN} for t in talks]
        assert all(len(c) == 1 for c in clean)
        assert len(set().union(*clean)) == len(talks) >= 3
        assert len({t.name for t in talks}) == len(talks)
