"""Plan a scenario: its whole audio track and, per section, which faces sit where with which mouth.

:func:`plan_scenario` is pure and deterministic: every random choice comes from a generator seeded
with ``(scenario.seed, section index)`` (or ``(scenario.seed, "room")`` for the room tone), so one
section's randomness never depends on another's. The plan holds no video frames: the renderer composes
them one at a time from the backgrounds and the precomputed face sprites.

Per section kind (see ``avforge.synth.scenario``): the audible track is the speakers' speech
(``speech_stream``), real noise scaled to ``snr_db`` on active speech (NOISY), or nothing (SILENCE); a
room tone at ``room_tone_db`` runs under the whole video. Each visible face's mouth follows the
envelope of its *driver*: its own speech when it speaks (its unheard own speech in DUBBED), silence
otherwise. A single peak guard scales the whole track if it would clip.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from avforge.core.media import SAMPLE_RATE_HZ
from avforge.synth import audio as A
from avforge.synth.mouth import mouth_opening, speech_envelope_db
from avforge.synth.scenario import N_FACES, Scenario, Section, SectionKind
from avforge.synth.scene import slide_background, stage_background
from avforge.synth.sprite import TalkingSprite, build_sprite
from avforge.synth.voices import SPEAKERS, load_noise, load_utterances

WIDTH, HEIGHT, FPS = 640, 360, 25
FACE_CENTRE_Y = 0.47
PEAK_LIMIT = 0.95
SINGLE_FACE_X = (0.36, 0.5, 0.64)
TWO_FACES_X = (0.3, 0.7)


@dataclass(frozen=True, eq=False)
class FacePlan:
    """One visible face during one section, frame by frame (arrays indexed by frame in the section)."""

    speaker_id: str
    sprite: TalkingSprite
    levels: np.ndarray
    """Mouth opening level per frame, int32 in ``0..sprite.n_levels-1``."""
    x: np.ndarray
    """Sprite top-left x per frame (int32, frame pixels)."""
    y: np.ndarray
    speaking: bool
    """Whether this face's mouth moves with speech in this section."""
    mouth_driver_id: str | None
    """Whose speech drives the mouth (None: closed mouth)."""

    def box_xyxy(self, frame: int = 0) -> tuple[float, float, float, float]:
        """The face box (where CenterFace finds it) at ``frame`` of the section, in frame pixels."""
        x0, y0, x1, y1 = self.sprite.box_xyxy
        dx, dy = float(self.x[frame]), float(self.y[frame])
        return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)

    def mouth_xy(self, frame: int = 0) -> tuple[float, float]:
        mx, my = self.sprite.mouth_xy
        return (mx + float(self.x[frame]), my + float(self.y[frame]))


@dataclass(frozen=True, eq=False)
class SectionPlan:
    section: Section
    first_frame: int
    end_frame: int
    """One past the last frame of the section."""
    background: np.ndarray
    """RGB uint8 (HEIGHT, WIDTH, 3)."""
    faces: tuple[FacePlan, ...]
    measured_snr_db: float | None
    """NOISY: the achieved SNR (active speech vs noise plus room tone)."""

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.first_frame


@dataclass(frozen=True, eq=False)
class Plan:
    scenario: Scenario
    audio: np.ndarray
    """The audible track, float32 mono at ``SAMPLE_RATE_HZ``, exactly ``duration_s`` long."""
    sections: tuple[SectionPlan, ...]

    @property
    def n_frames(self) -> int:
        return self.sections[-1].end_frame


def _rng(seed: int, key: int | str) -> np.random.Generator:
    tag = key if isinstance(key, int) else zlib.crc32(key.encode())
    return np.random.default_rng([seed, tag])


def _section_audio(
    sec: Section, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """(audible speech + noise, driver speech per visible speaker, noise or None) for one section."""

    def stream(speaker_id: str, length: int) -> np.ndarray:
        return A.speech_stream(load_utterances(speaker_id), length, SAMPLE_RATE_HZ, rng)

    silent = np.zeros(n, dtype=np.float32)
    kind = sec.kind
    if kind is SectionKind.SILENCE:
        return silent, {sec.speaker_ids[0]: silent}, None
    if kind is SectionKind.DUBBED:
        own = stream(sec.speaker_ids[0], n)
        heard = stream(sec.voice_id, n)  # type: ignore[arg-type]
        return heard, {sec.speaker_ids[0]: own}, None
    if kind is SectionKind.TWO_FACES:
        a, b = sec.speaker_ids
        if not sec.alternate:
            voice = stream(a, n)
            return voice, {a: voice, b: silent}, None
        half = n // 2
        va = np.concatenate([stream(a, half), np.zeros(n - half, dtype=np.float32)])
        vb = np.concatenate([np.zeros(half, dtype=np.float32), stream(b, n - half)])
        return va + vb, {a: va, b: vb}, None
    voice = stream(sec.speaker_ids[0], n)
    drivers = {} if kind is SectionKind.NO_FACE else {sec.speaker_ids[0]: voice}
    if kind is SectionKind.NOISY:
        noise = A.noise_excerpt(load_noise(sec.noise), n, rng)  # type: ignore[arg-type]
        noise = noise * A.noise_gain_for_snr(voice, noise, sec.snr_db, SAMPLE_RATE_HZ)  # type: ignore[arg-type]
        return voice + noise, drivers, noise
    return voice, drivers, None


def _face_xs(sec: Section, rng: np.random.Generator) -> tuple[float, ...]:
    if sec.face_x is not None:
        return sec.face_x
    if N_FACES[sec.kind] == 2:
        return TWO_FACES_X
    return (float(rng.choice(SINGLE_FACE_X)),) if N_FACES[sec.kind] else ()


def _face_plan(
    scenario: Scenario,
    speaker_id: str,
    centre_x: float,
    driver: np.ndarray,
    frames: tuple[int, int],
    first_sample: int,
    n_levels: int,
    rng: np.random.Generator,
) -> FacePlan:
    """Where one face sits in each frame of a section, and how open its mouth is."""
    f0, f1 = frames
    sprite = build_sprite(SPEAKERS[speaker_id].face_id, scenario.face_height_px, n_levels)
    offset_s = f0 / FPS - first_sample / SAMPLE_RATE_HZ
    env = speech_envelope_db(driver, SAMPLE_RATE_HZ, FPS, f1 - f0, offset_s)
    times_s = np.arange(f0, f1) / FPS
    phase = rng.uniform(0, 2 * np.pi, size=2)
    dx = scenario.drift_px * np.sin(2 * np.pi * times_s / 6.0 + phase[0])
    dy = 0.5 * scenario.drift_px * np.sin(2 * np.pi * times_s / 4.3 + phase[1])
    bx0, by0, bx1, by1 = sprite.box_xyxy
    left = centre_x * WIDTH - (bx0 + bx1) / 2
    top = FACE_CENTRE_Y * HEIGHT - (by0 + by1) / 2
    speaking = bool(np.any(driver))
    return FacePlan(
        speaker_id=speaker_id,
        sprite=sprite,
        levels=mouth_opening(env, n_levels),
        x=np.round(left + dx).astype(np.int32),
        y=np.round(top + dy).astype(np.int32),
        speaking=speaking,
        mouth_driver_id=speaker_id if speaking else None,
    )


def plan_scenario(scenario: Scenario, room_tone_db: float = -62.0, n_levels: int = 12) -> Plan:
    """Plan ``scenario`` (see the module doc). Deterministic given ``scenario.seed``."""
    total = round(scenario.duration_s * SAMPLE_RATE_HZ)
    room = A.room_tone(total, room_tone_db, _rng(scenario.seed, "room"))
    audio = room.copy()
    stage = stage_background(WIDTH, HEIGHT, _rng(scenario.seed, "stage"))
    sections = []
    for index, sec in enumerate(scenario.sections):
        rng = _rng(scenario.seed, index)
        s0, s1 = round(sec.start_s * SAMPLE_RATE_HZ), round(sec.end_s * SAMPLE_RATE_HZ)
        f0, f1 = round(sec.start_s * FPS), round(sec.end_s * FPS)
        heard, drivers, noise = _section_audio(sec, s1 - s0, rng)
        audio[s0:s1] += heard
        measured = None
        if noise is not None:
            noise_and_room = noise + room[s0:s1]
            measured = round(A.snr_db(heard - noise, noise_and_room, SAMPLE_RATE_HZ), 2)
        background = stage
        if sec.kind is SectionKind.NO_FACE:
            background = slide_background(WIDTH, HEIGHT, rng)
        faces = tuple(
            _face_plan(scenario, sid, cx, drivers[sid], (f0, f1), s0, n_levels, rng)
            for sid, cx in zip(sec.visible_speaker_ids, _face_xs(sec, rng), strict=True)
        )
        sections.append(SectionPlan(sec, f0, f1, background, faces, measured))
    peak = float(np.max(np.abs(audio))) if total else 0.0
    if peak > PEAK_LIMIT:
        audio *= PEAK_LIMIT / peak
    return Plan(scenario, audio.astype(np.float32), tuple(sections))
