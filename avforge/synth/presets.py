"""Named scenarios and the synthetic multi-speaker set (plumbing material, not what ``avforge demo`` curates).

- ``mixed_20s``: 20 s, one section of every kind (3-4 s each): the test suite's reference video;
- ``clean_talk``: one speaker, clean, 30 s by default;
- ``long_talk``: a long talk for benchmarks (10 min by default): mostly clean speech of one speaker with
  noisy and silent stretches, in a 20 s pattern that repeats;
- :func:`render_demo_set`: a handful of talks whose main speakers all differ, so curated clips come from
  different sources and speakers (what the mixing tasks need). ``avforge demo`` curates bundled real
  talks instead (``avforge.demo_videos``); this set stays for plumbing tests and benchmarks.

``PRESETS`` maps each name to its builder (an explicit mapping, not a registry).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from avforge.synth.render import RenderConfig, render_scenario
from avforge.synth.scenario import Scenario, Section, section
from avforge.synth.scenario import SectionKind as K
from avforge.synth.voices import NoiseSource, espeak_available


def mixed_20s(seed: int = 0, name: str = "mixed_20s") -> Scenario:
    """20 s with one section of each kind; six speakers; clean speech in 0-4 s only."""
    return Scenario.from_parts(
        name,
        [
            section(K.CLEAN, 4.0, "aew"),
            section(K.NOISY, 3.5, "axb", snr_db=0.0, noise=NoiseSource.DISHES),
            section(K.TWO_FACES, 3.5, "arctic_m", "libri_f1"),
            section(K.NO_FACE, 3.0, "libri_m5"),
            section(K.SILENCE, 3.0, "libri_f2"),
            section(K.DUBBED, 3.0, "aew", voice_id="axb"),
        ],
        seed=seed,
    )


def clean_talk(
    speaker_id: str = "aew", duration_s: float = 30.0, seed: int = 0, name: str = "clean_talk"
) -> Scenario:
    """One speaker talking cleanly for ``duration_s``."""
    return Scenario.from_parts(name, [section(K.CLEAN, duration_s, speaker_id)], seed=seed)


def long_talk(
    duration_s: float = 600.0, speaker_id: str = "aew", seed: int = 0, name: str = "long_talk"
) -> Scenario:
    """A long talk for speed benchmarks: a 20 s pattern (clean 8 s, noisy 4 s, clean 6 s, silence
    2 s) repeated up to ``duration_s``, the last pattern cut short. Noisy SNRs cycle 0/10/20 dB."""
    pattern: list[Section] = []
    snrs = (0.0, 10.0, 20.0)
    for k in range(int(duration_s // 20.0) + 1):
        pattern += [
            section(K.CLEAN, 8.0, speaker_id),
            section(K.NOISY, 4.0, speaker_id, snr_db=snrs[k % 3], noise=NoiseSource.EXERCISE_BIKE),
            section(K.CLEAN, 6.0, speaker_id),
            section(K.SILENCE, 2.0, speaker_id),
        ]
    parts, total = [], 0.0
    for part in pattern:
        left = round(duration_s - total, 6)
        if left <= 0.0:
            break
        take = min(part.duration_s, left)
        parts.append(
            section(part.kind, take, *part.speaker_ids, snr_db=part.snr_db, noise=part.noise)
        )
        total += take
    return Scenario.from_parts(name, parts, seed=seed)


PRESETS: dict[str, Callable[..., Scenario]] = {
    "mixed_20s": mixed_20s,
    "clean_talk": clean_talk,
    "long_talk": long_talk,
}


def demo_scenarios(quick: bool = False) -> list[Scenario]:
    """The demo talks; ``quick``: the first three, shorter (12 s each).

    No speaker has clean speech in two videos, so clean clips of different videos are always
    different speakers from different sources.
    """
    s = 0.6 if quick else 1.0  # quick: every section shorter
    fifth = "espeak_f" if espeak_available() else "libri_m6"
    talks = [
        Scenario.from_parts(
            "talk_aew",
            [
                section(K.CLEAN, 9.0 * s, "aew"),
                section(K.NOISY, 4.0 * s, "aew", snr_db=0.0, noise=NoiseSource.EXERCISE_BIKE),
                section(K.CLEAN, 7.0 * s, "aew"),
            ],
            seed=101,
        ),
        Scenario.from_parts(
            "talk_axb",
            [
                section(K.CLEAN, 7.0 * s, "axb"),
                section(K.TWO_FACES, 6.0 * s, "axb", "arctic_m", alternate=True),
                section(K.CLEAN, 7.0 * s, "axb"),
            ],
            seed=102,
        ),
        Scenario.from_parts(
            "talk_libri_f1",
            [
                section(K.CLEAN, 8.0 * s, "libri_f1"),
                section(K.NO_FACE, 4.0 * s, "libri_f1"),
                section(K.CLEAN, 8.0 * s, "libri_f1"),
            ],
            seed=103,
        ),
        Scenario.from_parts(
            "talk_libri_m5",
            [
                section(K.CLEAN, 8.0, "libri_m5"),
                section(K.SILENCE, 2.5, "libri_m5"),
                # dubbed sections last >= 4.5 s so a whole 3 s window fits and reaches the sync check
                section(K.DUBBED, 4.5, "libri_m5", voice_id="libri_m6"),
                section(K.CLEAN, 5.0, "libri_m5"),
            ],
            seed=104,
        ),
        Scenario.from_parts(
            f"talk_{fifth}",
            [
                section(K.CLEAN, 10.0, fifth),
                section(K.NOISY, 4.0, fifth, snr_db=15.0, noise=NoiseSource.MUSIC),
                section(K.CLEAN, 6.0, fifth),
            ],
            seed=105,
        ),
        Scenario.from_parts(
            "panel_mixed",
            [
                section(K.CLEAN, 4.0, "libri_f2"),
                section(K.NOISY, 3.0, "libri_f2", snr_db=5.0, noise=NoiseSource.DISHES),
                section(K.TWO_FACES, 4.0, "libri_f2", "libri_m6", alternate=True),
                section(K.NO_FACE, 2.5, "libri_m6"),
                section(K.SILENCE, 2.0, "libri_f2"),
                section(K.DUBBED, 4.5, "libri_f2", voice_id="arctic_m"),
            ],
            seed=106,
        ),
    ]
    return talks[:3] if quick else talks


def render_demo_set(
    out_dir: str | os.PathLike[str], quick: bool = False, config: RenderConfig | None = None
) -> list[Path]:
    """Render :func:`demo_scenarios` into ``out_dir``; returns the MP4 paths (each has its ``.json``)."""
    return [render_scenario(sc, out_dir, config).video_path for sc in demo_scenarios(quick)]
