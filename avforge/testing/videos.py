"""Generated talk videos for tests and benchmarks, each rendered once per process.

:class:`RenderCache` is the one cache: ``cache.get(name, build)`` calls ``build(folder)`` the first
time ``name`` is asked for (``folder`` a new folder of its own) and returns the path it made from then
on. A test session keeps one (``tests/conftest.py``), so every test module shares one render of each
video. :class:`ScenarioVideos` names the generator's presets and demo talks on top of it::

    videos = ScenarioVideos(RenderCache(tmp_path_factory.mktemp))
    path = videos["mixed_20s"]              # MP4; ground truth at path.with_suffix(".json")

Everything comes from the synthetic generator (:mod:`avforge.synth`) and ffmpeg: plumbing, faults,
scale and speed. No keep/reject decision of a real model may be tested or calibrated on these videos
(their mouths follow the speech envelope); those are tested on real clips.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from avforge.synth import PRESETS, Scenario, demo_scenarios, long_talk, render_scenario

TEST_SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "mixed_20s": lambda: PRESETS["mixed_20s"](),
    "clean_talk": lambda: PRESETS["clean_talk"](duration_s=12.0),
    "long_talk": lambda: long_talk(duration_s=60.0),
}
"""Presets with test-sized parameters (``long_talk``'s default is 10 minutes)."""


class RenderCache:
    """Render-once cache: ``make_folder(name)`` gives each name a new folder (e.g. pytest's
    ``tmp_path_factory.mktemp``)."""

    def __init__(self, make_folder: Callable[[str], Path]) -> None:
        self._make_folder = make_folder
        self._paths: dict[str, Path] = {}

    def get(self, name: str, build: Callable[[Path], Path]) -> Path:
        """``build(folder)``'s path for ``name``, built on the first call only."""
        if name not in self._paths:
            self._paths[name] = build(self._make_folder(name))
        return self._paths[name]


def scenario(name: str) -> Scenario:
    """The scenario ``name``: one of :data:`TEST_SCENARIOS` or a demo talk (KeyError otherwise)."""
    if name in TEST_SCENARIOS:
        return TEST_SCENARIOS[name]()
    for sc in demo_scenarios(quick=False):
        if sc.name == name:
            return sc
    raise KeyError(f"no scenario {name!r}; known: {sorted(TEST_SCENARIOS)} and the demo talks")


class ScenarioVideos:
    """``videos[name]``: the MP4 of scenario ``name`` (:func:`scenario`), rendered once in ``cache``."""

    def __init__(self, cache: RenderCache) -> None:
        self.cache = cache

    def __getitem__(self, name: str) -> Path:
        return self.cache.get(
            f"scenario-{name}", lambda folder: render_scenario(scenario(name), folder).video_path
        )
