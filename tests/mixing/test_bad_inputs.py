"""Bad inputs end as clear errors or documented handling, never as a silent NaN."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from manifests import ManifestError, MediaRecord, RirRecord, Split, write_media_shard, write_records
from manifests.io import shard_path
from manifests.schema import MixTask, SampleFormat
from mixing import functional as F
from mixing.config import FaceStream, RenderConfig, preset_config
from mixing.errors import MixingError, SilentRecipeError
from mixing.render import MixtureRenderer
from mixing.sampler import RecipeSampler

AUDIO = RenderConfig(face_stream=FaceStream.NONE)


@pytest.fixture
def spec(corpus):
    cfg = preset_config(MixTask.CUSTOM, seed=2)
    return RecipeSampler.from_corpus(str(corpus), cfg)(epoch=0, index=0)


def test_recipe_naming_a_missing_clip(corpus, spec):
    bad = dataclasses.replace(spec, clip_ids=[spec.clip_ids[0], "no-such-clip"])
    with pytest.raises(MixingError, match="'no-such-clip' is not in the clips manifest"):
        MixtureRenderer(str(corpus), AUDIO)(bad)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"offsets_s": [0.01, 0.0]}, "multiple of 40 ms"),
        ({"gains_db": [0.0]}, "differ in length"),
        ({"noise_gain": 0.3}, "exactly one of"),
        ({"noise_id": "missing-noise"}, "not in the noises manifest"),
        ({"rir_ids": ["missing-rir", None]}, "not in the rirs manifest"),
        ({"gains_db": [0.0, float("nan")]}, "finite"),
    ],
)
def test_inconsistent_recipes(corpus, spec, change, message):
    with pytest.raises(MixingError, match=message):
        MixtureRenderer(str(corpus), AUDIO)(dataclasses.replace(spec, **change))


def test_corrupt_media_shard_raises_manifest_error(corpus, spec, tmp_path):
    copy = tmp_path / "corpus"
    shutil.copytree(corpus, copy)
    media = copy / "media" / "clips-00000.arrow"
    data = media.read_bytes()
    media.write_bytes(data[: len(data) // 3])
    renderer = MixtureRenderer(str(copy), AUDIO)  # manifests are fine; the media shard is not
    with pytest.raises(ManifestError, match=r"clips-00000\.arrow"):
        renderer(spec)


def test_noise_shorter_than_the_mixture_is_looped(corpus, spec, tmp_path):
    copy = tmp_path / "corpus"
    shutil.copytree(corpus, copy)
    rng = np.random.default_rng(0)
    short = (0.1 * rng.standard_normal(4000)).astype(np.float32)  # 0.25 s
    write_media_shard(
        str(copy / "media" / "short.arrow"), [MediaRecord.from_audio("short", short, 16000)]
    )
    from manifests.schema import NoiseKind, NoiseRecord

    write_records(
        str(copy),
        "noises",
        "short",
        [NoiseRecord("short", NoiseKind.NOISE, 0.25, 16000, 4000, Split.TRAIN, "short.arrow", 0)],
    )
    looped = dataclasses.replace(
        spec, noise_id="short", noise_offset_s=0.2, noise_snr_db=5.0, noise_gain=None
    )
    out = MixtureRenderer(str(copy), AUDIO)(looped)
    stored = np.round(short * 32768).clip(-32768, 32767) / 32768  # PCM16 round trip
    expected = F.tile(stored.astype(np.float32), offset=3200, length=48000)
    ratio = out.noise / np.where(expected == 0, np.nan, expected)
    assert np.nanstd(ratio) < 1e-4  # one gain times the looped noise
    assert np.all(np.isfinite(out.mixture))


def _with_rir(corpus, tmp_path, full, early):
    copy = tmp_path / "corpus"
    shutil.copytree(corpus, copy)
    media = [
        MediaRecord.from_audio("zero/full", full, 16000, SampleFormat.FLOAT32),
        MediaRecord.from_audio("zero/early", early, 16000, SampleFormat.FLOAT32),
    ]
    write_media_shard(shard_path(str(copy), "media", "zero-rir"), media)
    record = RirRecord(
        "zero-rir",
        "room-zero",
        0.3,
        4,
        4,
        3,
        1,
        1,
        1,
        2,
        2,
        1.5,
        16000,
        len(full),
        0,
        Split.TRAIN,
        "zero-rir.arrow",
        0,
    )
    write_records(str(copy), "rirs", "zero-rir", [record])
    return copy


def test_rir_of_zeros_is_a_clear_error(corpus, spec, tmp_path):
    zeros = np.zeros(800, np.float32)
    copy = _with_rir(corpus, tmp_path, zeros, zeros)
    reverberant = dataclasses.replace(spec, rir_ids=["zero-rir", None])
    with pytest.raises(F.InvalidRirError, match=r"zero-rir.*all zeros"):
        MixtureRenderer(str(copy), AUDIO)(reverberant)


def test_silent_crop_is_a_typed_error(corpus, spec, tmp_path):
    copy = tmp_path / "corpus"
    shutil.copytree(corpus, copy)
    write_media_shard(
        str(copy / "media" / "silent.arrow"),
        [MediaRecord.from_audio("silent", np.zeros(64000, np.float32), 16000)],
    )
    from manifests.schema import ClipRecord

    clip = ClipRecord(
        "silent", "src-silent", 0, 4, 4, None, 100, 16000, 64000, Split.TRAIN, "silent.arrow", 0
    )
    write_records(str(copy), "clips", "silent", [clip])
    with pytest.raises(SilentRecipeError, match="no active frame"):
        MixtureRenderer(str(copy), AUDIO)(
            dataclasses.replace(spec, clip_ids=[spec.clip_ids[0], "silent"])
        )


def test_wrong_sample_rate_is_refused(corpus, spec, tmp_path):
    with pytest.raises(MixingError, match="16000 Hz, mixing runs at 8000 Hz"):
        MixtureRenderer(
            str(corpus), RenderConfig(sample_rate_hz=8000, fps=25.0, face_stream=FaceStream.NONE)
        )(spec)


def test_crop_past_the_clip_end_is_zero_padded_and_still_levelled(corpus, spec):
    # clips are 4 s: a 3 s crop from 2.4 s has 1.6 s of audio, then zeros (the general path)
    late = dataclasses.replace(
        spec, offsets_s=[spec.offsets_s[0], 2.4], noise_id=None, noise_snr_db=None
    )
    out = MixtureRenderer(str(corpus), AUDIO)(late)
    assert not out.images[1, round(1.6 * 16000) :].any() and out.images[1, :16000].any()
    ref_power, _ = F.active_power(out.images[0], frame_len=320)
    power, _ = F.active_power(out.images[1], frame_len=320)
    assert F.power_ratio_db(ref_power, power) == pytest.approx(-late.gains_db[1], abs=0.5)
