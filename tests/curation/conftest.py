"""Fixtures shared by the curation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.curation_videos import cached, render, scenario_clean


@pytest.fixture(scope="session")
def clean_talk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 8 s clean talk (speaker axb, 640x360, ground truth next to it) that every curation test
    module shares: rendered once a session (the same render as ``cached(..., "clean_axb")``), so
    faults, the address cluster, reruns and hints neither render nor curate a longer one of their own."""
    return cached(
        tmp_path_factory, "clean_axb", lambda d: render(d, scenario_clean("clean_axb", "axb"))
    )
