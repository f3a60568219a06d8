"""Decode: real ffmpeg on small media made in the test (lavfi sources and bundled real speech)."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest

from curation.decode import (
    Crop,
    DecodeConfig,
    MediaError,
    check_media,
    decode_audio,
    decode_video,
    face_region,
    iter_video_frames,
    probe_media,
    video_args,
    video_output_size,
)
from manifests.schema import SourceError
from tests.helpers.curation_audio_media import ASSETS, ffmpeg, load_asset, write_wav

SPEECH = "cmu_arctic_us_aew_a0001.wav"


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """3 s testsrc 320x240 at 25 fps with real speech as 44.1 kHz stereo AAC (left speech, right sine)."""
    out = tmp_path_factory.mktemp("talk") / "talk.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=3",
        "-i", ASSETS / SPEECH,
        "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100:duration=3",
        "-filter_complex", "[1:a]aresample=44100,apad[l];[2:a]anull[r];[l][r]join=inputs=2:channel_layout=stereo[a]",
        "-map", "0:v", "-map", "[a]", "-t", "3",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k", out,
    )  # fmt: skip
    return out


def test_probe_reports_streams_and_sizes(talk):
    info = probe_media(str(talk))
    assert info.has_audio and info.has_video
    assert (info.width, info.height, info.rotation_deg) == (320, 240, 0)
    assert info.fps == pytest.approx(25.0)
    assert info.duration_s == pytest.approx(3.0, abs=0.1)
    assert (info.audio_sample_rate_hz, info.audio_channels) == (44100, 2)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.size_bytes == os.path.getsize(talk)


def test_left_channel_is_the_speech_and_mix_adds_the_right(talk):
    speech = load_asset(SPEECH)[: 3 * 16000]
    left = decode_audio(str(talk), 16000, "left")
    mix = decode_audio(str(talk), 16000, "mix")
    assert left.dtype == np.float32 and left.size == pytest.approx(48000, abs=1200)
    lag = int(np.argmax(np.correlate(left[:8000], speech[:4000], "valid")))  # AAC priming delay
    assert _corr(left[lag:], speech) > 0.98
    spectrum = np.abs(np.fft.rfft(mix[:16000]))
    left_spectrum = np.abs(np.fft.rfft(left[:16000]))
    assert spectrum[1000] > 20 * left_spectrum[1000]  # the 1 kHz tone is only in the right channel


@pytest.mark.parametrize(("rate_hz", "channels"), [(8000, 1), (44100, 2), (48000, 2), (48000, 6)])
def test_odd_rates_and_layouts_resample_to_16k_left(tmp_path, rate_hz, channels):
    speech = load_asset(SPEECH)
    src = write_wav(tmp_path / "s.wav", speech)
    out = tmp_path / f"odd_{rate_hz}_{channels}.wav"
    tone = "sine=frequency=440:sample_rate=16000:duration=4"
    inputs = ["-i", src] + ["-f", "lavfi", "-i", tone] * (channels - 1)
    if channels == 1:
        graph = "[0:a]anull[a]"
    else:
        layout = {2: "stereo", 6: "5.1"}[channels]
        labels = "".join(f"[{i}:a]" for i in range(channels))
        names = {2: ("FL", "FR"), 6: ("FL", "FR", "FC", "LFE", "BL", "BR")}[channels]
        mapping = "|".join(f"{i}.0-{name}" for i, name in enumerate(names))
        graph = f"{labels}join=inputs={channels}:channel_layout={layout}:map={mapping}[a]"
    ffmpeg(*inputs, "-filter_complex", graph, "-map", "[a]", "-ar", str(rate_hz), out)
    info = probe_media(str(out))
    assert (info.audio_sample_rate_hz, info.audio_channels) == (rate_hz, channels)
    audio = decode_audio(str(out), 16000, "left")
    assert audio.size == pytest.approx(speech.size, abs=16)
    reference = speech
    if rate_hz == 8000:  # the 8 kHz file has no content above 4 kHz
        spec = np.fft.rfft(speech)
        spec[np.fft.rfftfreq(speech.size, 1 / 16000) > 3800] = 0
        reference = np.fft.irfft(spec, speech.size)
    assert _corr(audio, reference) > 0.99


def test_seek_returns_the_same_samples_as_slicing(tmp_path):
    speech = load_asset(SPEECH)
    src = write_wav(tmp_path / "s.wav", speech)
    full = decode_audio(str(src))
    part = decode_audio(str(src), start_s=1.25, duration_s=0.5)
    assert part.size == 8000
    np.testing.assert_allclose(part, full[20000:28000], atol=1e-6)
    np.testing.assert_allclose(full, speech, atol=1e-6)


@pytest.fixture(scope="module")
def counter_video(tmp_path_factory):
    """4 s at 25 fps whose grey level encodes the frame number: luma = 16 + 2 * N (lossless x264)."""
    out = tmp_path_factory.mktemp("counter") / "counter.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=black:size=64x48:rate=25:duration=4,format=yuv420p,"
        "geq=lum='16+2*N':cb=128:cr=128",
        "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", out,
    )  # fmt: skip
    return out


def _frame_number(frames: np.ndarray, path) -> np.ndarray:
    """Source frame numbers of ``frames``: nearest grey level among all frames decoded at 25 fps."""
    reference = decode_video(str(path), fps=25.0, width=frames.shape[2]).frames
    assert len(reference) == 100
    ref_level = reference.reshape(100, -1).mean(axis=1)
    level = frames.reshape(len(frames), -1).mean(axis=1)
    return np.abs(level[:, None] - ref_level[None, :]).argmin(axis=1)


@pytest.mark.parametrize(("start_s", "fps"), [(0.0, 5.0), (1.0, 5.0), (0.52, 25.0), (2.3, 7.0)])
def test_frame_i_is_the_picture_at_start_plus_i_over_fps(counter_video, start_s, fps):
    seg = decode_video(str(counter_video), fps=fps, width=64, start_s=start_s, duration_s=1.0)
    assert len(seg.frames) == math.ceil(fps - 1e-6)
    np.testing.assert_allclose(seg.times_s, start_s + np.arange(len(seg.frames)) / fps)
    on_screen = np.floor(seg.times_s * 25.0 + 1e-6).astype(int)  # latest source frame at or before
    got = _frame_number(seg.frames, counter_video)
    np.testing.assert_array_equal(got[1:], on_screen[1:])
    assert got[0] - on_screen[0] in (0, 1)  # a seek between two source frames starts at the next


def test_whole_file_detection_pass_is_chunked_and_bounded(counter_video):
    chunks = list(iter_video_frames(str(counter_video), fps=5.0, width=32, chunk_frames=3))
    assert [len(c.frames) for c in chunks] == [3, 3, 3, 3, 3, 3, 2]
    frames = np.concatenate([c.frames for c in chunks])
    assert frames.shape == (20, 24, 32, 3)
    times = np.concatenate([c.times_s for c in chunks])
    np.testing.assert_allclose(times, np.arange(20) / 5.0)
    np.testing.assert_array_equal(_frame_number(frames, counter_video), np.arange(20) * 5)


def test_width_scale_and_no_upscaling(talk):
    half = decode_video(str(talk), fps=5.0, width=160, duration_s=1.0)
    assert half.frames.shape == (5, 120, 160, 3) and half.scale == pytest.approx(2.0)
    full = decode_video(str(talk), fps=5.0, width=1000, duration_s=1.0)
    assert full.frames.shape == (5, 240, 320, 3) and full.scale == pytest.approx(1.0)


def test_a_cropped_decode_is_that_region_of_the_whole_frame_decode(talk):
    """``crop`` cuts the source rectangle before scaling: the frames equal the same region of a
    whole-frame decode at the same scale, and ``origin_xy`` / ``scale`` map pixels back."""
    info = probe_media(str(talk))
    region = face_region(np.array([[100.0, 60.0, 160.0, 140.0]]), info, 160, margin=0.5)
    # The box + 30 px, out to whole even decoded pixels (4 source px at this scale).
    assert region == Crop(x=68, y=28, width=124, height=144)
    assert video_output_size(info, 160, region) == (62, 72)
    whole = decode_video(str(talk), fps=5.0, width=160, duration_s=1.0)
    part = decode_video(str(talk), fps=5.0, width=160, duration_s=1.0, crop=region)
    assert part.frames.shape == (5, 72, 62, 3)
    assert part.origin_xy == (68, 28) and part.scale == pytest.approx(whole.scale) == 2.0
    inner = whole.frames[:, 14 : 14 + 72, 34 : 34 + 62].astype(int)
    assert np.abs(part.frames.astype(int) - inner)[:, 2:-2, 2:-2].mean() < 2.0  # edges resample
    assert np.abs(part.frames.astype(int) - whole.frames[:, :72, :62]).mean() > 20.0
    # Nothing to save (most of the frame) or nothing to crop: a whole-frame decode.
    assert face_region(np.array([[0.0, 0.0, 300.0, 230.0]]), info, 160) is None
    assert face_region(np.zeros((0, 4)), info, 160) is None
    args = video_args(str(talk), 25.0, (62, 72), crop=region)
    assert "crop=124:144:68:28:exact=1,scale=62:72" in " ".join(args)
    assert args[args.index("-threads") + 1] == "1" and "-filter_threads" in args


def test_rotation_metadata_gives_upright_frames(tmp_path, talk):
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-i", talk, "-c", "copy", "-metadata:s:v", "rotate=90", rotated)
    info = probe_media(str(rotated))
    assert info.rotation_deg in (90, 270)
    assert (info.width, info.height) == (240, 320)
    upright = decode_video(str(rotated), fps=5.0, width=240, duration_s=0.4)
    plain = decode_video(str(talk), fps=5.0, width=320, duration_s=0.4)
    assert upright.frames.shape == (2, 320, 240, 3)
    turned = np.rot90(plain.frames, k=info.rotation_deg // 90, axes=(1, 2))
    assert np.abs(upright.frames.astype(int) - turned).mean() < 3.0
    assert np.abs(upright.frames.astype(int) - np.rot90(turned, 2, axes=(1, 2))).mean() > 20.0


def test_variable_frame_rate_becomes_constant(tmp_path):
    parts = []
    for i, (colour, rate) in enumerate((("red", 10), ("blue", 30))):
        part = tmp_path / f"part{i}.mp4"
        ffmpeg(
            "-f", "lavfi", "-i", f"color=c={colour}:size=64x48:rate={rate}:duration=1",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-video_track_timescale", "90000", part,
        )  # fmt: skip
        parts.append(part)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    vfr = tmp_path / "vfr.mp4"
    ffmpeg("-f", "concat", "-safe", "0", "-i", listing, "-c", "copy", vfr)
    seg = decode_video(str(vfr), fps=5.0, width=64)
    assert len(seg.frames) == 10
    red = seg.frames[..., 0].mean(axis=(1, 2)) > seg.frames[..., 2].mean(axis=(1, 2))
    assert red.tolist() == [True] * 5 + [False] * 5


def test_missing_streams_are_typed_errors(tmp_path, talk):
    video_only = tmp_path / "video_only.mp4"
    ffmpeg("-i", talk, "-an", "-c", "copy", video_only)
    audio_only = tmp_path / "audio_only.m4a"
    ffmpeg("-i", talk, "-vn", "-c", "copy", audio_only)
    assert not probe_media(str(video_only)).has_audio
    with pytest.raises(MediaError) as no_audio:
        decode_audio(str(video_only))
    assert no_audio.value.reason is SourceError.NO_AUDIO
    with pytest.raises(MediaError) as no_video:
        decode_video(str(audio_only), fps=5.0, width=64)
    assert no_video.value.reason is SourceError.NO_VIDEO


def test_zero_byte_truncated_and_missing_files(tmp_path, talk):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    data = talk.read_bytes()
    cut_tail = tmp_path / "cut_tail.mp4"  # moov atom at the end: gone
    cut_tail.write_bytes(data[: len(data) // 2])
    faststart = tmp_path / "faststart.mp4"
    ffmpeg("-i", talk, "-c", "copy", "-movflags", "+faststart", faststart)
    fs = faststart.read_bytes()
    cut_media = tmp_path / "cut_media.mp4"  # index intact, media data cut short
    cut_media.write_bytes(fs[: len(fs) // 3])
    for path in (empty, cut_tail):
        with pytest.raises(MediaError) as err:
            probe_media(str(path))
        assert err.value.reason is SourceError.CORRUPT_MEDIA
        assert err.value.detail and "\n" not in err.value.detail
        assert str(path) not in err.value.detail
    for decode in (
        lambda p: decode_audio(p),
        lambda p: decode_video(p, fps=5.0, width=64),
    ):
        with pytest.raises(MediaError) as err:
            decode(str(cut_media))
        assert err.value.reason is SourceError.CORRUPT_MEDIA
        assert "\n" not in err.value.detail
    with pytest.raises(MediaError) as err:
        probe_media(str(tmp_path / "nope.mp4"))
    assert err.value.reason is SourceError.NOT_FOUND
    assert MediaError(SourceError.CORRUPT_MEDIA, "a\x1b[2J\x00b\n c").detail == "a [2J b c"


def test_odd_file_names_are_not_options_or_protocols(tmp_path, talk):
    odd = tmp_path / "-i concat:x|y;$(rm -rf) ünï.mp4"
    shutil.copy(talk, odd)
    assert probe_media(str(odd)).has_video
    assert decode_audio(str(odd), duration_s=0.5).size == 8000


def test_a_stalled_input_times_out_instead_of_hanging(tmp_path, talk):
    fifo = tmp_path / "stalled.mp4"
    os.mkfifo(fifo)  # nobody ever writes: ffmpeg blocks on open
    with pytest.raises(MediaError) as err:
        probe_media(str(fifo), timeout_s=1.0)
    assert err.value.reason is SourceError.TIMEOUT
    info = probe_media(str(talk))
    with pytest.raises(MediaError) as err:
        decode_audio(str(fifo), info=info, timeout_s=1.0)
    assert err.value.reason is SourceError.TIMEOUT
    with pytest.raises(MediaError) as err:
        decode_video(str(fifo), fps=5.0, width=64, info=info, stall_timeout_s=1.0)
    assert err.value.reason is SourceError.TIMEOUT


def test_duration_cap_and_unknown_duration(talk):
    info = probe_media(str(talk))
    check_media(info, DecodeConfig(max_duration_s=10.0))
    with pytest.raises(MediaError) as err:
        check_media(info, DecodeConfig(max_duration_s=2.0))
    assert err.value.reason is SourceError.TOO_LONG
    import dataclasses

    with pytest.raises(MediaError) as err:
        check_media(dataclasses.replace(info, duration_s=math.nan), DecodeConfig())
    assert err.value.reason is SourceError.TOO_LONG


def test_config_rejects_bad_values():
    from avforge.core.config import ConfigError, config_from_dict

    assert config_from_dict(DecodeConfig, {"channel": "mix"}).channel == "mix"
    with pytest.raises(ConfigError, match="channel"):
        config_from_dict(DecodeConfig, {"channel": "right"})
    with pytest.raises(ConfigError, match="detect_fps"):
        DecodeConfig(detect_fps=0.0)
