"""The asset catalogue names every bundled file once, and names only files that are there."""

from __future__ import annotations

import soundfile as sf

from avforge.core import assets
from avforge.core.media import SAMPLE_RATE_HZ
from manifests.schema import GENDERS


def test_the_catalogue_and_the_audio_folder_agree_file_for_file() -> None:
    on_disk = {p.name for p in assets.AUDIO_DIR.iterdir() if p.suffix in (".wav", ".flac")}
    noises = {n.file for n in assets.NOISES.values()}
    named = set(assets.speech_files()) | noises
    assert named == on_disk
    assert len(assets.speech_files()) + len(assets.NOISES) == len(named)  # no file named twice


def test_every_bundled_recording_is_16_khz_mono_with_sound() -> None:
    for name in (*assets.speech_files(), *(n.file for n in assets.NOISES.values())):
        info = sf.info(str(assets.audio_path(name)))
        assert (info.samplerate, info.channels) == (SAMPLE_RATE_HZ, 1), name
        assert info.frames > SAMPLE_RATE_HZ, name


def test_voices_have_a_known_gender_and_noises_a_known_kind() -> None:
    assert {v.gender for v in assets.VOICES.values()} == set(GENDERS)
    assert {n.kind for n in assets.NOISES.values()} == {"noise", "music"}
    assert assets.noise_files("music") == ("guitar_16k.wav",)
    assert assets.speech_files(("axb",)) == tuple(
        f"cmu_arctic_us_axb_a000{i}.wav" for i in (4, 5, 6)
    )


def test_the_video_folder_holds_the_real_clips_with_their_provenance() -> None:
    clips = sorted(p.name for p in assets.VIDEO_DIR.glob("*.mp4"))
    provenance = (assets.VIDEO_DIR / "PROVENANCE.md").read_text()
    assert clips and all(c.removesuffix(".mp4") in provenance for c in clips)


def test_the_generator_voices_and_noises_are_bundled_ones() -> None:
    from avforge.synth.voices import SPEAKERS, NoiseSource

    noise_files = {n.file for n in assets.NOISES.values()}
    assert {f"{s.value}.wav" for s in NoiseSource} <= noise_files
    recorded = [s for s in SPEAKERS.values() if s.files]
    assert {s.speaker_id for s in recorded} == set(assets.VOICES)
    for s in recorded:
        voice = assets.VOICES[s.speaker_id]
        assert (s.files, s.gender.value) == (voice.files, voice.gender)
