"""Fixtures shared by every test package: a seeded generator and the rendered scenario videos."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from avforge.testing.videos import ScenarioVideos


@pytest.fixture
def seeded() -> np.random.Generator:
    """A fresh ``numpy.random.Generator`` with a fixed seed (one per test)."""
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def scenario_videos(tmp_path_factory: pytest.TempPathFactory) -> ScenarioVideos:
    """Scenario talk videos rendered once per session, on first use.

    ``scenario_videos["mixed_20s"]`` is the MP4 path (its ground truth is ``.with_suffix(".json")``);
    names: ``mixed_20s``, ``clean_talk`` (12 s), ``long_talk`` (60 s) and the demo talks.
    """
    # Imported here so that sessions which never render a video do not pay for importing the
    # generator (scipy.signal, cv2) at collection time.
    from avforge.testing.videos import ScenarioVideos
    from tests.helpers.synth_videos import session_cache

    return ScenarioVideos(session_cache(tmp_path_factory))
