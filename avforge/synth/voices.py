"""Speakers of the synthetic talks: each one is a (real face, voice) pair with a stable id.

Voices are real recordings bundled in ``avforge/assets/audio`` (CMU ARCTIC, LibriSpeech; see
PROVENANCE.md there), read with soundfile, plus one espeak-ng voice synthesised on demand (no shell,
deterministic sentences per speaker). Every utterance is trimmed to its speech and normalised to
``SPEECH_LEVEL_DB`` dBFS of active speech. When espeak-ng is not installed, the espeak speakers are
simply absent from :func:`available_speakers`; asking for one raises :class:`MissingToolError`.

Noises are the real recordings from the same folder (kitchen, exercise bike, guitar music).
"""

from __future__ import annotations

import enum
import functools
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from avforge.core import assets
from avforge.core.media import SAMPLE_RATE_HZ
from avforge.core.signal import resample
from avforge.synth.audio import normalize_active, trim_silence
from avforge.synth.errors import MissingToolError, SynthError

SPEECH_LEVEL_DB = -26.0
ESPEAK_TIMEOUT_S = 30.0


class Gender(enum.StrEnum):
    FEMALE = "female"
    MALE = "male"


class NoiseSource(enum.StrEnum):
    """Real background sounds for NOISY sections (files in ``avforge/assets/audio``)."""

    DISHES = "doing_the_dishes"
    EXERCISE_BIKE = "exercise_bike"
    MUSIC = "guitar_16k"


@dataclass(frozen=True)
class Speaker:
    """One identifiable person: always the same face with the same voice."""

    speaker_id: str
    face_id: str
    """Key of :data:`avforge.synth.face_photos.FACES`."""
    gender: Gender
    files: tuple[str, ...] = ()
    """Recorded utterances (file names in ``avforge/assets/audio``)."""
    espeak_voice: str | None = None
    """espeak-ng voice name, for synthetic speakers (then ``files`` is empty)."""

    @property
    def voice_source(self) -> str:
        return f"espeak-ng:{self.espeak_voice}" if self.espeak_voice else ",".join(self.files)


SPEAKERS: dict[str, Speaker] = {
    s.speaker_id: s
    for s in (
        *(
            Speaker(voice, face, Gender(assets.VOICES[voice].gender), assets.VOICES[voice].files)
            for voice, face in (
                ("aew", "t1_e"),
                ("axb", "t1_b"),
                ("arctic_m", "t1_a"),
                ("libri_f1", "astronaut"),
                ("libri_m5", "t1_f"),
                ("libri_f2", "t1_c"),
                ("libri_m6", "tom_hanks"),
            )
        ),
        Speaker("espeak_f", "t1_d", Gender.FEMALE, espeak_voice="en-us+f3"),
    )
}

# Harvard sentences (IEEE 1969 recommended practice; public domain), spoken by espeak speakers.
SENTENCES: tuple[str, ...] = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
)
ESPEAK_SENTENCES_PER_SPEAKER = 6


def _read_mono(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE_HZ:
        mono = resample(mono, rate, SAMPLE_RATE_HZ)
    return mono


def espeak_available() -> bool:
    """Whether the espeak-ng binary is on PATH."""
    return shutil.which("espeak-ng") is not None


def available_speakers() -> tuple[str, ...]:
    """Speaker ids usable on this machine (espeak speakers only when espeak-ng is installed)."""
    has_espeak = espeak_available()
    return tuple(s for s, spk in SPEAKERS.items() if spk.espeak_voice is None or has_espeak)


def espeak_sentence(text: str, voice: str, words_per_minute: int = 150) -> np.ndarray:
    """Synthesise ``text`` with espeak-ng (subprocess, no shell) to float32 mono at 16 kHz."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingToolError("espeak-ng is not installed; espeak speakers are unavailable")
    with tempfile.TemporaryDirectory(prefix="avforge-espeak-") as tmp:
        out = Path(tmp) / "s.wav"
        proc = subprocess.run(
            [exe, "-v", voice, "-s", str(words_per_minute), "-w", str(out), text],
            capture_output=True,
            timeout=ESPEAK_TIMEOUT_S,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            tail = proc.stderr.decode(errors="replace")[-300:]
            raise SynthError(f"espeak-ng failed for voice {voice!r}: {tail}")
        return _read_mono(out)


@functools.cache
def load_utterances(speaker_id: str) -> tuple[np.ndarray, ...]:
    """The speaker's utterances: float32 mono 16 kHz, trimmed, at ``SPEECH_LEVEL_DB`` active level.

    espeak speakers say ``ESPEAK_SENTENCES_PER_SPEAKER`` Harvard sentences, chosen and ordered by a
    generator seeded from the speaker id (the same on every machine).
    """
    try:
        speaker = SPEAKERS[speaker_id]
    except KeyError:
        raise SynthError(f"unknown speaker {speaker_id!r}; known: {sorted(SPEAKERS)}") from None
    if speaker.espeak_voice is not None:
        rng = np.random.default_rng(zlib.crc32(speaker_id.encode()))
        order = rng.permutation(len(SENTENCES))[:ESPEAK_SENTENCES_PER_SPEAKER]
        raw = [espeak_sentence(SENTENCES[i], speaker.espeak_voice) for i in order]
    else:
        raw = [_read_mono(assets.audio_path(name)) for name in speaker.files]
    return tuple(
        normalize_active(trim_silence(x, SAMPLE_RATE_HZ), SAMPLE_RATE_HZ, SPEECH_LEVEL_DB)
        for x in raw
    )


@functools.cache
def load_noise(source: NoiseSource) -> np.ndarray:
    """A bundled noise or music recording: float32 mono 16 kHz, as recorded (not normalised)."""
    return _read_mono(assets.audio_path(f"{source.value}.wav"))
