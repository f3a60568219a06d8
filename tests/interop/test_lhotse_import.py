"""avforge import lhotse: export -> import gives the same clips; a foreign Lhotse corpus becomes
audio-only clips (mono, 16 kHz, stable ids, split per speaker) or noise; bad cuts are failures."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from lhotse import CutSet, MonoCut, Recording, RecordingSet, SupervisionSegment

import manifests
from avforge.core.config import ConfigError
from avforge.interop.lhotse_export import export_lhotse
from avforge.interop.lhotse_import import (
    ImportTarget,
    LhotseImportConfig,
    LhotseImportError,
    import_lhotse,
)
from avforge.interop.naming import safe_name
from avforge.interop.tables import media_path
from avforge.testing.corpus import ASSETS
from manifests.schema import NoiseKind, Split


def _audio(corpus, row) -> np.ndarray:
    return manifests.MediaReader().audio(
        media_path(str(corpus), row["media_shard"]), row["media_row"]
    )


@pytest.fixture(scope="module")
def exported(corpus, tmp_path_factory):
    return export_lhotse(str(corpus), tmp_path_factory.mktemp("lhotse"))


def test_export_then_import_gives_back_the_same_clips(corpus, exported, tmp_path):
    back = tmp_path / "back"
    result = import_lhotse(exported.cuts_path, str(back), LhotseImportConfig(clips_per_shard=4))
    assert result.failures == [] and result.num_items == 6
    assert result.shards == ["lhotse-clips-cuts-00000", "lhotse-clips-cuts-00001"]
    original = {r["clip_id"]: r for r in manifests.read_clips(str(corpus)).to_pylist()}
    imported = {r["clip_id"]: r for r in manifests.read_clips(str(back)).to_pylist()}
    assert imported.keys() == original.keys()
    for clip_id, new in imported.items():
        old = original[clip_id]
        for key in (
            "source_id",
            "start_s",
            "end_s",
            "snr_db",
            "split",
            "speaker_id",
            "num_samples",
        ):
            assert new[key] == old[key], key
        assert abs(new["duration_s"] - old["duration_s"]) <= 1 / 16000
        assert new["num_frames"] == old["num_frames"] and new["has_crops"] is False
        np.testing.assert_array_equal(_audio(back, new), _audio(corpus, old))
        track = manifests.MediaReader().face_track(
            media_path(str(back), new["media_shard"]), new["media_row"]
        )
        assert track is None  # audio-only
    sources = manifests.read_sources(str(back)).to_pylist()
    assert sorted(s["source_id"] for s in sources) == sorted(
        r["source_id"] for r in original.values()
    )
    assert all(s["status"] == "ok" and s["num_clips"] == 1 for s in sources)


def _sine_stereo(path, rate=8000, seconds=2.0) -> None:
    t = np.arange(int(rate * seconds)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    soundfile.write(path, np.stack([left, np.zeros_like(left)], axis=1), rate, subtype="PCM_16")


@pytest.fixture()
def foreign(tmp_path):
    """A small foreign Lhotse corpus: an 8 kHz stereo tone, two utterances of one real speaker in one
    recording (unsafe cut ids), and four bad cuts (missing file, too short, a MixedCut)."""
    _sine_stereo(tmp_path / "tone.wav")
    speech = ASSETS / "librispeech_example1.wav"
    tone = Recording.from_file(tmp_path / "tone.wav", recording_id="tone")
    talk = Recording.from_file(speech, recording_id="talk 1")
    gone_path = tmp_path / "gone.wav"
    _sine_stereo(gone_path)
    gone = Recording.from_file(gone_path, recording_id="gone")
    gone_path.unlink()

    def cut(cut_id, rec, start, duration, speaker=None):
        sup = SupervisionSegment(cut_id, rec.id, start, duration, speaker=speaker)
        return MonoCut(cut_id, start, duration, 0, recording=rec, supervisions=[sup])

    cuts = [
        cut("tone-0", tone, 0.0, 2.0),
        cut("talk 1/utt#1", talk, 0.5, 1.5, "spk1"),
        cut("talk 1/utt#2", talk, 2.0, 1.0, "spk1"),
        cut("gone-0", gone, 0.0, 2.0),
        cut("tone-short", tone, 0.0, 0.2),
    ]
    cuts.append(cuts[1].mix(cuts[2], offset_other_by=0.1).with_id("mixed-0"))
    path = tmp_path / "foreign_cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path, speech


def test_a_foreign_corpus_becomes_mono_16k_clips_with_stable_ids(foreign, tmp_path):
    manifest, speech = foreign
    out = tmp_path / "corpus"
    result = import_lhotse(manifest, str(out))
    assert result.num_items == 3
    reasons = {f.cut_id: f.reason for f in result.failures}
    assert reasons.keys() == {"gone-0", "tone-short", "mixed-0"}
    assert reasons["gone-0"].startswith("AudioLoadingError") and "gone.wav" in reasons["gone-0"]
    assert reasons["tone-short"] == "shorter than 0.5 s"
    assert reasons["mixed-0"] == "MixedCut is not a single-recording cut"
    clips = {r["clip_id"]: r for r in manifests.read_clips(str(out)).to_pylist()}
    utt1, utt2 = safe_name("talk 1/utt#1"), safe_name("talk 1/utt#2")
    assert set(clips) == {"tone-0", utt1, utt2}
    # The 8 kHz tone, channel 0 of a stereo file (a MonoCut's channel): resampled to 16 kHz.
    tone = _audio(out, clips["tone-0"])
    assert tone.shape == (32000,) and clips["tone-0"]["sample_rate_hz"] == 16000
    spectrum = np.abs(np.fft.rfft(tone))
    assert abs(np.argmax(spectrum) * 16000 / len(tone) - 440.0) < 1.0
    assert np.max(np.abs(tone[1000:-1000])) == pytest.approx(0.5, abs=0.01)
    # The real speech at its native 16 kHz: the exact samples of the cut's range, times in the recording.
    source, _ = soundfile.read(speech, dtype="float32")
    np.testing.assert_array_equal(_audio(out, clips[utt1]), source[8000:32000])
    assert (clips[utt1]["start_s"], clips[utt1]["end_s"]) == (0.5, 2.0)
    assert clips[utt1]["source_id"] == clips[utt2]["source_id"] == safe_name("talk 1")
    assert clips[utt1]["speaker_id"] == "spk1" and clips[utt1]["split"] == clips[utt2]["split"]
    assert all(
        not c["has_crops"] and c["num_frames"] == c["num_samples"] * 25 // 16000
        for c in clips.values()
    )
    # Rerun: the same shards, ids and rows.
    first = manifests.read_clips(str(out))
    import_lhotse(manifest, str(out))
    assert manifests.read_clips(str(out)).equals(first)
    assert len(manifests.read_sources(str(out))) == 2


def test_a_stereo_recording_is_averaged_to_mono(tmp_path):
    _sine_stereo(tmp_path / "tone.wav")
    manifest = tmp_path / "recordings.jsonl.gz"
    RecordingSet.from_recordings([Recording.from_file(tmp_path / "tone.wav")]).to_file(manifest)
    result = import_lhotse(manifest, str(tmp_path / "c"), LhotseImportConfig(split=Split.VAL))
    assert result.num_items == 1 and result.failures == []
    (clip,) = manifests.read_clips(str(tmp_path / "c")).to_pylist()
    assert clip["split"] == "val" and clip["clip_id"] == "tone"
    tone = _audio(tmp_path / "c", clip)
    assert np.max(np.abs(tone[1000:-1000])) == pytest.approx(0.25, abs=0.01)  # (0.5 + 0) / 2


def test_import_as_noise(exported, tmp_path):
    cfg = LhotseImportConfig(
        target=ImportTarget.NOISE, noise_kind=NoiseKind.MUSIC, split=Split.TEST, id_prefix="lh-"
    )
    result = import_lhotse(exported.recordings_path, str(tmp_path), cfg)
    assert result.num_items == 6 and result.shards == ["lhotse-noise-recordings-00000"]
    noises = manifests.read_noises(str(tmp_path)).to_pylist()
    assert {n["kind"] for n in noises} == {"music"} and {n["split"] for n in noises} == {"test"}
    assert all(n["noise_id"].startswith("lh-") and n["origin"].endswith(".wav") for n in noises)
    assert manifests.read_clips(str(tmp_path)).num_rows == 0
    first = noises[0]
    assert _audio(tmp_path, first).shape == (first["num_samples"],) == (64000,)


def test_bad_manifests_and_options_are_typed_errors(exported, tmp_path):
    with pytest.raises(LhotseImportError, match="no such Lhotse manifest"):
        import_lhotse(tmp_path / "missing.jsonl.gz", str(tmp_path / "c"))
    with pytest.raises(LhotseImportError, match="expected cuts or recordings"):
        import_lhotse(exported.supervisions_path, str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="id_prefix"):
        LhotseImportConfig(id_prefix="a/b")
    with pytest.raises(ConfigError, match="sample_rate_hz"):
        LhotseImportConfig(sample_rate_hz=1000)
