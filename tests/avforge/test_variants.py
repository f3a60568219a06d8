"""Variants of a real talk clip (avforge.variants) and the bundled clips' table of truth.

Every variant is decoded again and measured: lengths, the delay of a shifted sound, the SNR of a noisy
one, a still face's frames, whose sound a dubbed clip carries. The variants are made once per module.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import correlate

from avforge import variants as V
from avforge.core import assets
from avforge.synth.audio import active_power

RATE = V.AUDIO_RATE_HZ
SOURCE = V.bundled_clip("retalking_face4")  # 6.64 s: not a whole number of AAC frames
OTHER = V.bundled_clip("retalking_face5")  # 4.88 s: looped under the 6.64 s source
RIGHT = V.bundled_clip("portrait_2")
NOISE = assets.audio_path(assets.NOISES["kitchen"].file)
SHIFTS_S = (0.5, -0.3)
SNR_DB = 5.0
FAST = V.EncodeConfig(preset="ultrafast")


def audio_duration_s(path: Path) -> float:
    return V.load_audio(path).size / RATE


def gray_frames(path: Path, count: int | None = None) -> np.ndarray:
    """Decoded frames (n, h, w) uint8 grey at the file's own rate (every frame, no resampling)."""
    info = V.probe(path)
    args = ["ffmpeg", "-v", "error", "-i", str(path)]
    if count is not None:
        args += ["-frames:v", str(count)]
    args += ["-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"]
    raw = subprocess.run(args, capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, info.height, info.width)


def stream_facts(path: Path) -> dict[str, float]:
    """Declared video frames, video and audio durations (one ffprobe call, no decoding)."""
    args = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,nb_frames,duration"]
    out = subprocess.run([*args, "-of", "json", str(path)], capture_output=True, check=True)
    streams = {st["codec_type"]: st for st in json.loads(out.stdout)["streams"]}
    return {
        "frames": float(streams["video"]["nb_frames"]),
        "video_s": float(streams["video"]["duration"]),
        "audio_s": float(streams["audio"]["duration"]),
    }


def lag_samples(x: np.ndarray, reference: np.ndarray) -> int:
    """Delay of ``x`` relative to ``reference`` (positive: ``x`` is later), by cross-correlation."""
    n = min(x.size, reference.size)
    c = correlate(x[:n].astype(np.float64), reference[:n].astype(np.float64), "full", method="fft")
    return int(np.argmax(c)) - (n - 1)


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation at lag 0 of the common length."""
    n = min(a.size, b.size)
    a, b = a[:n].astype(np.float64), b[:n].astype(np.float64)
    return float(a @ b / math.sqrt((a @ a) * (b @ b)))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("variants")
    out = {
        "dubbed": V.dubbed(SOURCE.path, OTHER.path, d / "dubbed.mp4", encode=FAST),
        "still_face": V.still_face(SOURCE.path, d / "still.mp4", at_s=2.0, encode=FAST),
        "noisy": V.noisy(SOURCE.path, NOISE, SNR_DB, d / "noisy.mp4", encode=FAST),
        "silent": V.silent(SOURCE.path, d / "silent.mp4", encode=FAST),
        "no_face": V.no_face(SOURCE.path, d / "no_face.mp4", encode=FAST),
        "side_by_side": V.side_by_side(SOURCE.path, RIGHT.path, d / "sbs.mp4", encode=FAST),
    }
    for s in SHIFTS_S:
        out[f"shifted{s:+.1f}"] = V.shifted(SOURCE.path, s, d / f"shifted{s:+.1f}.mp4", encode=FAST)
    return out


@pytest.fixture(scope="module")
def own() -> np.ndarray:
    return V.load_audio(SOURCE.path)


# --------------------------------------------------------------------------- the bundled clips


def test_bundled_table_matches_the_folder_and_provenance() -> None:
    names = [c.name for c in V.BUNDLED_CLIPS]
    assert len(set(names)) == len(names)
    on_disk = sorted(p.stem for p in V.BUNDLED.glob("*.mp4"))
    assert sorted(names) == on_disk
    provenance = (V.BUNDLED / "PROVENANCE.md").read_text()
    total = 0
    for clip in V.BUNDLED_CLIPS:
        assert f"{clip.name}.mp4" in provenance, clip.name
        assert (clip.truth == "reject") == (clip.reason is not None), clip.name
        if clip.truth == "keep":
            assert clip.faces == 1, clip.name
        total += clip.path.stat().st_size
    assert total <= 6_000_000
    assert any(c.truth == "keep" for c in V.BUNDLED_CLIPS)
    assert any(c.truth == "reject" for c in V.BUNDLED_CLIPS)
    with pytest.raises(KeyError, match="hdtf_katie_hill"):
        V.bundled_clip("nobody")


@pytest.mark.parametrize("clip", V.BUNDLED_CLIPS, ids=lambda c: c.name)
def test_bundled_clip_format(clip: V.BundledClip) -> None:
    info = V.probe(clip.path)
    assert min(info.width, info.height) <= 360
    assert info.duration_s <= 10.05
    assert info.duration_s * V.FPS == pytest.approx(round(info.duration_s * V.FPS), abs=1e-6)
    sound = V.load_audio(clip.path)
    assert abs(sound.size / RATE - info.duration_s) < 0.05
    assert float(np.sqrt(np.mean(sound**2))) > 0.01  # real sound, not silence


# --------------------------------------------------------------------------- every variant


def test_lengths_equal_the_source(made: dict[str, Path]) -> None:
    source_s = V.probe(SOURCE.path).duration_s
    right_s = V.probe(RIGHT.path).duration_s
    for name, path in made.items():
        expected = min(source_s, right_s) if name == "side_by_side" else source_s
        facts = stream_facts(path)
        assert abs(facts["video_s"] - expected) <= 0.05, name
        assert abs(facts["audio_s"] - expected) <= 0.05, name
        assert facts["frames"] == round(expected * V.FPS), name
        assert abs(audio_duration_s(path) - expected) <= 0.05, name  # as decoded


@pytest.mark.parametrize("offset_s", SHIFTS_S)
def test_shifted_sound_lags_by_the_offset(
    made: dict[str, Path], own: np.ndarray, offset_s: float
) -> None:
    sound = V.load_audio(made[f"shifted{offset_s:+.1f}"])
    lag = lag_samples(sound, own)
    assert abs(lag / RATE - offset_s) <= 0.020
    assert lag_samples(own, own) == 0  # the measure itself: no lag for the original


def test_noisy_has_the_requested_snr(made: dict[str, Path], own: np.ndarray) -> None:
    sound = V.load_audio(made["noisy"])
    n = min(sound.size, own.size)
    noise = V.fit_length(V.load_audio(NOISE), n)
    # The known parts: least-squares weights of the own sound and the noise in the decoded mix (the
    # AAC coding error is nearly orthogonal to both, so it does not bias the weights).
    basis = np.stack([own[:n], noise], axis=1).astype(np.float64)
    (a, b), *_ = np.linalg.lstsq(basis, sound[:n].astype(np.float64), rcond=None)
    measured = 10 * math.log10(active_power(a * own[:n], RATE) / np.mean((b * noise) ** 2))
    assert abs(measured - SNR_DB) <= 0.5
    residual = sound[:n] - basis @ np.array([a, b])
    assert np.mean(residual**2) < 0.05 * np.mean(sound[:n] ** 2)  # the two parts explain the mix


def test_still_face_frames_are_identical(made: dict[str, Path]) -> None:
    frames = gray_frames(made["still_face"], 30).astype(np.int16)
    assert len(frames) == 30
    assert np.abs(np.diff(frames, axis=0)).max() == 0
    talking = gray_frames(SOURCE.path, 30).astype(np.int16)  # the measure sees a moving face
    assert np.abs(np.diff(talking, axis=0)).max() > 10


def test_dubbed_carries_the_other_talks_sound(made: dict[str, Path], own: np.ndarray) -> None:
    sound = V.load_audio(made["dubbed"])
    other = V.fit_length(V.load_audio(OTHER.path), sound.size)  # looped to the length
    assert ncc(sound, other) > 0.9
    assert abs(ncc(sound, own)) < 0.2
    tail = slice(other.size - RATE, other.size)  # the last second comes from the loop's restart
    assert ncc(sound[tail], other[tail]) > 0.9


def test_silent_and_no_face(made: dict[str, Path], own: np.ndarray) -> None:
    assert np.max(np.abs(V.load_audio(made["silent"]))) < 1e-4
    assert ncc(V.load_audio(made["no_face"]), own) > 0.9
    frames = gray_frames(made["no_face"], 10)
    assert frames.std() < 2.0 and abs(float(frames.mean()) - 128) < 8


def test_side_by_side_geometry_and_sound(made: dict[str, Path], own: np.ndarray) -> None:
    left, right, both = V.probe(SOURCE.path), V.probe(RIGHT.path), V.probe(made["side_by_side"])
    height = min(left.height, right.height)
    expected_w = sum(round(i.width * height / i.height) // 2 * 2 for i in (left, right))
    assert (both.width, both.height) == (expected_w, height)
    assert ncc(V.load_audio(made["side_by_side"]), own) > 0.9


def test_no_face_noise_changes_every_frame(tmp_path: Path) -> None:
    out = V.no_face(OTHER.path, tmp_path / "noise.mp4", fill="noise", encode=FAST)
    frames = gray_frames(out, 3).astype(np.int16)
    assert np.abs(np.diff(frames, axis=0)).mean() > 5


# --------------------------------------------------------------------------- failures


def test_failure_is_atomic(tmp_path: Path) -> None:
    out = tmp_path / "dubbed.mp4"
    out.write_bytes(b"previous")
    not_media = tmp_path / "notes.txt"
    not_media.write_text("no audio here")
    with pytest.raises(V.VariantError, match=r"notes\.txt"):
        V.dubbed(SOURCE.path, not_media, out)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dubbed.mp4", "notes.txt"]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        V.shifted(SOURCE.path, math.nan, Path("/nonexistent/out.mp4"))
    with pytest.raises(ValueError, match="fill"):
        V.no_face(SOURCE.path, Path("x.mp4"), fill="blur")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="folder"):
        V.silent(SOURCE.path, Path("/nonexistent/out.mp4"))


def test_pure_helpers() -> None:
    x = np.arange(1, 6, dtype=np.float32)
    assert V.fit_length(x, 7).tolist() == [1, 2, 3, 4, 5, 1, 2]
    assert V.fit_length(x, 3).tolist() == [1, 2, 3]
    assert V.delay(x, 2 / RATE, RATE).tolist() == [0, 0, 1, 2, 3]
    assert V.delay(x, -2 / RATE, RATE).tolist() == [3, 4, 5, 0, 0]
    rng = np.random.default_rng(0)
    speech, noise = rng.standard_normal(RATE).astype(np.float32), rng.standard_normal(RATE)
    g = V.noise_gain(speech, noise, 10.0, RATE)
    snr = 10 * math.log10(active_power(speech, RATE) / np.mean((g * noise) ** 2))
    assert abs(snr - 10.0) < 1e-6
