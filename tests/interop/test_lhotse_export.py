"""avforge export lhotse: the manifests load with lhotse alone, with the clips' durations, samples and
face tracks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from lhotse import CutSet, RecordingSet, SupervisionSet

import manifests
from avforge.interop.lhotse_export import (
    AudioFormat,
    LhotseExportConfig,
    LhotseExportError,
    export_lhotse,
)
from avforge.interop.tables import media_path
from avforge.testing.corpus import build_corpus
from manifests.schema import Split


@pytest.fixture(scope="module")
def exported(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("lhotse")
    return export_lhotse(str(corpus), out), out


def test_cuts_match_the_clips(corpus, exported):
    result, _ = exported
    clips = {r["clip_id"]: r for r in manifests.read_clips(str(corpus)).to_pylist()}
    cuts = CutSet.from_file(result.cuts_path)
    assert result.num_cuts == len(cuts) == len(clips) == 6
    assert sorted(c.id for c in cuts) == sorted(clips)
    reader = manifests.MediaReader()
    for cut in cuts:
        clip = clips[cut.id]
        shard = media_path(str(corpus), clip["media_shard"])
        # Durations within one sample of the manifest's, and exactly the stored sample count.
        assert abs(cut.duration - clip["duration_s"]) <= 1 / clip["sample_rate_hz"]
        assert cut.num_samples == clip["num_samples"]
        assert cut.sampling_rate == 16000
        # Audio: what lhotse loads equals the media shard's samples (PCM16 both ways: exact).
        audio = cut.load_audio()
        expected = reader.audio(shard, clip["media_row"])
        assert audio.shape == (1, clip["num_samples"])
        assert np.max(np.abs(audio[0] - expected)) <= 0.5 / 32768
        # Face track: 25 fps, one frame per 40 ms of audio, the same boxes and presence.
        track = reader.face_track(shard, clip["media_row"])
        boxes = cut.load_face_boxes()
        assert boxes.shape == (round(cut.duration * 25), 4) == (clip["num_frames"], 4)
        assert cut.face_boxes.frame_shift == pytest.approx(0.04)
        np.testing.assert_array_equal(boxes, track.boxes)
        np.testing.assert_array_equal(cut.load_face_present() > 0, track.present)
        assert not track.present.all()  # the helper corpus has missing frames: they survive
        # Supervision: the whole clip, speaker, and where the clip is in its source.
        (sup,) = cut.supervisions
        assert (sup.start, sup.duration) == (0.0, cut.duration)
        assert sup.speaker == clip["speaker_id"]
        assert sup.custom == {
            "source_id": clip["source_id"],
            "start_s": clip["start_s"],
            "end_s": clip["end_s"],
            "snr_db": clip["snr_db"],
            "split": clip["split"],
        }
        assert cut.custom["split"] == clip["split"]
    assert result.total_duration_s == pytest.approx(sum(c["duration_s"] for c in clips.values()))


def test_recordings_and_supervisions_manifests_pair_up(exported):
    result, out = exported
    recordings = RecordingSet.from_file(result.recordings_path)
    supervisions = SupervisionSet.from_file(result.supervisions_path)
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    assert len(recordings) == len(supervisions) == len(cuts) == 6
    assert all(r.sources[0].source.startswith(str(out / "audio")) for r in recordings)
    assert not list(out.glob(".tmp-*")) and (out / "avforge_export.yaml").is_file()


def test_the_export_loads_without_avforge(exported):
    """A fresh interpreter that imports only lhotse reads cuts, audio and face arrays."""
    result, _ = exported
    code = (
        "import json, sys\n"
        "from lhotse import CutSet\n"
        f"cuts = CutSet.from_file({str(result.cuts_path)!r})\n"
        "out = [[c.id, c.load_audio().shape[1], c.load_face_boxes().shape[0]] for c in cuts]\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'avforge', 'manifests'})\n"
        "print(json.dumps({'cuts': out, 'avforge_modules': bad}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["avforge_modules"] == []
    assert len(got["cuts"]) == 6
    assert all(n == 64000 and f == 100 for _, n, f in got["cuts"])


def test_flac_split_filter_and_no_faces(tmp_path):
    corpus = build_corpus(
        tmp_path, n_speakers=2, clips_per_speaker=1, with_noises=False, split=Split.VAL
    )
    cfg = LhotseExportConfig(audio_format=AudioFormat.FLAC, split=Split.VAL, face_arrays=False)
    result = export_lhotse(str(corpus), tmp_path / "val", cfg)
    cuts = CutSet.from_file(result.cuts_path)
    assert len(cuts) == 2 and result.num_face_arrays == 0
    assert all(c.recording.sources[0].source.endswith(".flac") for c in cuts)
    assert not any(c.has_custom("face_boxes") for c in cuts)
    reader = manifests.MediaReader()
    clip = manifests.read_clips(str(corpus)).to_pylist()[0]
    expected = reader.audio(media_path(str(corpus), clip["media_shard"]), clip["media_row"])
    by_id = {c.id: c for c in cuts}
    np.testing.assert_array_equal(by_id[clip["clip_id"]].load_audio()[0], expected)
    with pytest.raises(LhotseExportError, match="no clips of split train"):
        export_lhotse(str(corpus), tmp_path / "train", LhotseExportConfig(split=Split.TRAIN))
    assert not (tmp_path / "train").exists()


def test_audio_only_clips_export_without_face_arrays(tmp_path):
    corpus = build_corpus(
        tmp_path, n_speakers=1, clips_per_speaker=2, with_faces=False, with_noises=False
    )
    result = export_lhotse(str(corpus), tmp_path / "out")
    cuts = CutSet.from_file(result.cuts_path)
    assert len(cuts) == 2 and result.num_face_arrays == 0
    assert all(not c.has_custom("face_boxes") and c.supervisions[0].speaker == "aew" for c in cuts)
