"""Synthetic talk videos with known ground truth, and a loopback server to fetch them from.

The generator renders talks from real faces (insightface's and scikit-image's test photos) and real
speech and noise (``avforge/assets/audio``): 640x360, 25 fps, H.264 + AAC MP4, with each visible
speaker's mouth opening and closing with the envelope of the speech it is saying. A scenario is a list
of timed sections (clean, noisy, two faces, no face, silence, dubbed); next to each video a JSON says
what happens when. Tests and ``avforge demo`` use these videos as curation input; ``serve_folder``
serves them on 127.0.0.1 (with byte ranges and injectable faults) so downloads run offline.

Main entry points: :func:`render_scenario`, :data:`PRESETS`, :func:`render_demo_set`,
:func:`serve_folder`, :func:`load_truth`. See docs/generator.md.
"""

from avforge.synth.errors import MissingToolError, RenderError, ScenarioError, SynthError
from avforge.synth.face_photos import FACES, detect_faces
from avforge.synth.presets import (
    PRESETS,
    clean_talk,
    demo_scenarios,
    long_talk,
    mixed_20s,
    render_demo_set,
)
from avforge.synth.render import RenderConfig, RenderedVideo, render_scenario
from avforge.synth.scenario import Scenario, Section, SectionKind, section
from avforge.synth.serve import FaultKind, LoopbackServer, fault_url, serve_folder
from avforge.synth.truth import clean_single_speaker_intervals, load_truth
from avforge.synth.voices import SPEAKERS, NoiseSource, available_speakers

__all__ = [
    "FACES",
    "PRESETS",
    "SPEAKERS",
    "FaultKind",
    "LoopbackServer",
    "MissingToolError",
    "NoiseSource",
    "RenderConfig",
    "RenderError",
    "RenderedVideo",
    "Scenario",
    "ScenarioError",
    "Section",
    "SectionKind",
    "SynthError",
    "available_speakers",
    "clean_single_speaker_intervals",
    "clean_talk",
    "demo_scenarios",
    "detect_faces",
    "fault_url",
    "load_truth",
    "long_talk",
    "mixed_20s",
    "render_demo_set",
    "render_scenario",
    "section",
    "serve_folder",
]
