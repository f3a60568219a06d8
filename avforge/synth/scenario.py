"""Scenarios: what a synthetic talk video shows and says, as a list of timed sections.

A :class:`Scenario` is a frozen, validated description; rendering it (``avforge.synth.render``) is
deterministic given its ``seed``. Sections tile ``[0, duration_s]`` back to back. Section kinds:

- CLEAN: one face, and that face's clean speech (the only kind that is clean single-speaker);
- NOISY: one face, its speech under real noise or music at ``snr_db`` (measured on active speech);
- TWO_FACES: two faces; the first speaks, or (``alternate=True``) they take turns;
- NO_FACE: speech over a slide, no face;
- SILENCE: one face with a closed mouth, only very low room tone;
- DUBBED: one face whose mouth moves with its own voice while the audio is ``voice_id``'s voice.

``speaker_ids`` are the visible faces left to right, except NO_FACE where it names the voice.
Build sections with :func:`section` (durations) and lay them out with :meth:`Scenario.from_parts`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from avforge.synth.errors import ScenarioError
from avforge.synth.voices import SPEAKERS, NoiseSource

TIME_TOLERANCE_S = 1e-6


class SectionKind(enum.StrEnum):
    CLEAN = "clean"
    NOISY = "noisy"
    TWO_FACES = "two_faces"
    NO_FACE = "no_face"
    SILENCE = "silence"
    DUBBED = "dubbed"


N_FACES = {
    SectionKind.CLEAN: 1,
    SectionKind.NOISY: 1,
    SectionKind.TWO_FACES: 2,
    SectionKind.NO_FACE: 0,
    SectionKind.SILENCE: 1,
    SectionKind.DUBBED: 1,
}


@dataclass(frozen=True)
class Section:
    """One timed stretch of a scenario."""

    start_s: float
    end_s: float
    kind: SectionKind
    speaker_ids: tuple[str, ...]
    """Visible faces left to right (NO_FACE: the voice heard)."""
    voice_id: str | None = None
    """DUBBED only: the speaker whose voice is heard instead of the face's own."""
    snr_db: float | None = None
    """NOISY only: speech-to-noise ratio in dB, on active speech."""
    noise: NoiseSource | None = None
    """NOISY only: the background sound (default: kitchen noise)."""
    alternate: bool = False
    """TWO_FACES only: both faces speak, in turns (first half, second half)."""
    face_x: tuple[float, ...] | None = None
    """Horizontal face centres as fractions of the width (left to right); None: a seeded layout."""

    def __post_init__(self) -> None:
        if not self.end_s > self.start_s >= 0.0:
            raise ScenarioError(
                f"section needs 0 <= start_s < end_s, got {self.start_s}..{self.end_s}"
            )
        unknown = [s for s in (*self.speaker_ids, self.voice_id) if s and s not in SPEAKERS]
        if unknown:
            raise ScenarioError(f"unknown speaker(s) {unknown}; known: {sorted(SPEAKERS)}")
        want = max(N_FACES[self.kind], 1)
        if len(self.speaker_ids) != want:
            raise ScenarioError(f"{self.kind} needs {want} speaker id(s), got {self.speaker_ids}")
        if len(set(self.speaker_ids)) != len(self.speaker_ids):
            raise ScenarioError(f"{self.kind}: the same speaker twice: {self.speaker_ids}")
        if (self.snr_db is not None) != (self.kind is SectionKind.NOISY):
            raise ScenarioError(f"snr_db is required for noisy sections only ({self.kind})")
        if self.noise is not None and self.kind is not SectionKind.NOISY:
            raise ScenarioError(f"noise is for noisy sections only ({self.kind})")
        if (self.voice_id is not None) != (self.kind is SectionKind.DUBBED):
            raise ScenarioError(f"voice_id is required for dubbed sections only ({self.kind})")
        if self.kind is SectionKind.DUBBED and self.voice_id in self.speaker_ids:
            raise ScenarioError("a dubbed section's voice must differ from the face's speaker")
        if self.alternate and self.kind is not SectionKind.TWO_FACES:
            raise ScenarioError(f"alternate is for two_faces sections only ({self.kind})")
        if self.face_x is not None and (
            len(self.face_x) != N_FACES[self.kind]
            or not all(0.15 <= x <= 0.85 for x in self.face_x)
        ):
            raise ScenarioError(f"face_x needs one value in 0.15..0.85 per face, got {self.face_x}")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def visible_speaker_ids(self) -> tuple[str, ...]:
        return () if self.kind is SectionKind.NO_FACE else self.speaker_ids

    @property
    def audible_speaker_ids(self) -> tuple[str, ...]:
        """Whose voices are heard (in turn order)."""
        if self.kind is SectionKind.SILENCE:
            return ()
        if self.kind is SectionKind.DUBBED:
            return (self.voice_id,)  # type: ignore[return-value]
        if self.kind is SectionKind.TWO_FACES and not self.alternate:
            return self.speaker_ids[:1]
        return self.speaker_ids

    @property
    def clean_single_speaker(self) -> bool:
        """Ground truth for curation: one visible face whose own clean voice is the only sound.

        Only CLEAN sections; NOISY ones are false at any SNR (even >= 25 dB, where a filter may
        reasonably keep them), so precision is never inflated by a judgement call.
        """
        return self.kind is SectionKind.CLEAN


def section(
    kind: SectionKind,
    duration_s: float,
    *speaker_ids: str,
    voice_id: str | None = None,
    snr_db: float | None = None,
    noise: NoiseSource | None = None,
    alternate: bool = False,
    face_x: tuple[float, ...] | None = None,
) -> Section:
    """A section of ``duration_s`` starting at 0; :meth:`Scenario.from_parts` places it in time."""
    if kind is SectionKind.NOISY and noise is None:
        noise = NoiseSource.DISHES
    return Section(
        0.0, duration_s, kind, tuple(speaker_ids), voice_id, snr_db, noise, alternate, face_x
    )


@dataclass(frozen=True)
class Scenario:
    """A whole synthetic talk: named, seeded, sections tiling ``[0, duration_s]``."""

    name: str
    sections: tuple[Section, ...]
    seed: int = 0
    face_height_px: int = 120
    """Face box height in the 360p frame (talks: about 80-160 px)."""
    drift_px: float = 6.0
    """Amplitude of the slow drift of each face's position (0: still)."""

    def __post_init__(self) -> None:
        if not self.sections:
            raise ScenarioError("a scenario needs at least one section")
        if not self.name or any(c in self.name for c in "/\\\0") or self.name.startswith("."):
            raise ScenarioError(f"scenario name must be a plain file stem, got {self.name!r}")
        if not 80 <= self.face_height_px <= 160:
            raise ScenarioError(f"face_height_px must be in 80..160, got {self.face_height_px}")
        if not 0.0 <= self.drift_px <= 40.0:
            raise ScenarioError(f"drift_px must be in 0..40, got {self.drift_px}")
        if abs(self.sections[0].start_s) > TIME_TOLERANCE_S:
            raise ScenarioError("the first section must start at 0 s")
        for prev, nxt in zip(self.sections, self.sections[1:], strict=False):
            if abs(prev.end_s - nxt.start_s) > TIME_TOLERANCE_S:
                raise ScenarioError(f"sections must tile: {prev.end_s} s then {nxt.start_s} s")

    @property
    def duration_s(self) -> float:
        return self.sections[-1].end_s

    @property
    def speaker_ids(self) -> tuple[str, ...]:
        """Every speaker seen or heard, in first-appearance order."""
        seen: dict[str, None] = {}
        for sec in self.sections:
            for s in (*sec.speaker_ids, sec.voice_id):
                if s:
                    seen.setdefault(s, None)
        return tuple(seen)

    @classmethod
    def from_parts(
        cls,
        name: str,
        parts: Iterable[Section],
        seed: int = 0,
        face_height_px: int = 120,
        drift_px: float = 6.0,
    ) -> Scenario:
        """Lay ``parts`` back to back from 0 s (their own start/end only give durations)."""
        placed, t = [], 0.0
        for part in parts:
            end = round(t + part.duration_s, 6)
            placed.append(dataclasses.replace(part, start_s=t, end_s=end))
            t = end
        return cls(name, tuple(placed), seed, face_height_px, drift_px)
