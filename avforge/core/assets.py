"""The assets bundled inside the package, named once: real voices, noise and music, real talking faces.

Files live in ``avforge/assets/audio`` (16 kHz mono recordings, origin and licence in its
``PROVENANCE.md``) and ``avforge/assets/video`` (short real talking-face clips, ``PROVENANCE.md``
there). Every module that reads a bundled file takes its name and path from here (the demo, the
synthetic talk generator, the test corpus builders, SNR calibration's defaults): which voices a
module uses and in which order is that module's choice; what the files are is said only here.

Example::

    from avforge.core import assets

    [assets.audio_path(f) for f in assets.VOICES["axb"].files]   # a female CMU ARCTIC speaker
    assets.noise_files("music")                                  # ('guitar_16k.wav',)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
AUDIO_DIR = ASSETS_DIR / "audio"
"""Bundled real speech, noise and music (``PROVENANCE.md`` there)."""
VIDEO_DIR = ASSETS_DIR / "video"
"""Bundled real talking-face clips (``PROVENANCE.md`` there)."""


@dataclass(frozen=True)
class BundledVoice:
    """One real speaker of the bundled read speech."""

    voice_id: str
    gender: str
    """``female`` or ``male`` (``manifests.schema.GENDERS``)."""
    files: tuple[str, ...]
    """Its utterances, file names in :data:`AUDIO_DIR`."""
    corpus: str
    """Where the recordings come from (``PROVENANCE.md``)."""


VOICES: dict[str, BundledVoice] = {
    v.voice_id: v
    for v in (
        BundledVoice(
            "aew", "male", tuple(f"cmu_arctic_us_aew_a000{i}.wav" for i in (1, 2, 3)), "CMU ARCTIC"
        ),
        BundledVoice(
            "axb",
            "female",
            tuple(f"cmu_arctic_us_axb_a000{i}.wav" for i in (4, 5, 6)),
            "CMU ARCTIC",
        ),
        BundledVoice("arctic_m", "male", ("arctic_a0010.wav",), "CMU ARCTIC"),
        BundledVoice("libri_f1", "female", ("librispeech_example1.wav",), "LibriSpeech"),
        BundledVoice("libri_f2", "female", ("librispeech_example2.flac",), "LibriSpeech"),
        BundledVoice("libri_m5", "male", ("librispeech_example5.wav",), "LibriSpeech"),
        BundledVoice("libri_m6", "male", ("librispeech_example6.wav",), "LibriSpeech"),
    )
}
"""The seven bundled real voices, by id."""


@dataclass(frozen=True)
class BundledNoise:
    """One real background recording."""

    label: str
    """Its short name (calibration tables, the generator's noise sources)."""
    file: str
    """File name in :data:`AUDIO_DIR`."""
    kind: str
    """``noise`` or ``music`` (``manifests.schema.NoiseKind``)."""


NOISES: dict[str, BundledNoise] = {
    n.label: n
    for n in (
        BundledNoise("kitchen", "doing_the_dishes.wav", "noise"),
        BundledNoise("bike", "exercise_bike.wav", "noise"),
        BundledNoise("guitar", "guitar_16k.wav", "music"),
    )
}
"""The bundled real background recordings, by label."""


def audio_path(name: str) -> Path:
    """The path of the bundled audio file ``name`` (a file name in :data:`AUDIO_DIR`)."""
    return AUDIO_DIR / name


def speech_files(voice_ids: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The utterance files of ``voice_ids`` (default: every voice, in :data:`VOICES` order)."""
    ids = tuple(VOICES) if voice_ids is None else voice_ids
    return tuple(f for v in ids for f in VOICES[v].files)


def noise_files(kind: str) -> tuple[str, ...]:
    """The bundled background files of ``kind`` (``noise`` or ``music``)."""
    return tuple(n.file for n in NOISES.values() if n.kind == kind)
