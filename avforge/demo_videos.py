"""The demo's curation input: real talk videos (the bundled clips) and real variants with known truth.

:func:`build_demo_videos` writes, into one folder (``avforge demo``: ``OUT/videos/``):

- the positives: the bundled clips labelled ``keep`` (:data:`avforge.variants.BUNDLED_CLIPS`: one real
  person talking to camera, their own sound, in sync), copied unchanged; all 9 (9 different people)
  for the full demo, 3 of them (3 different people) with ``quick``;
- one negative of each reason curation must give, each made from real clips with
  :mod:`avforge.variants` (ffmpeg), its truth known by construction:

  ================  =====================================================================  ==============
  kind              what it is                                                             expected
  ================  =====================================================================  ==============
  ``dubbed``        a talk with another talk's sound (both real: the sound swapped)        not_in_sync
  ``still_face``    one frame of a talk held for its whole length, over its own sound      not_speaking
  ``two_faces``     two talks side by side, the left one's sound (full demo: also the      multiple_faces
                    bundled split-screen TV debate, two real faces at all times)
  ``no_face``       a grey picture over a talk's own sound                                 no_face
  ``silence``       a talk's picture with digital silence                                  no_speech
  ``noisy``         a talk under real babble (6 bundled read-speech talkers summed) at      low_snr
                    0 dB SNR (full demo: also one under real guitar music at 0 dB)
  ================  =====================================================================  ==============

Nothing here uses the synthetic generator's faces or voices (its mouths follow the speech envelope, so
an active-speaker model cannot be judged on them).

Contract:

- Output: ``NAME.mp4`` (H.264 + mono AAC, 25 fps, 16 kHz; the positives as bundled, the variants as
  :mod:`avforge.variants` encodes them) and its ground truth ``NAME.json`` for every
  :class:`DemoVideo` of :func:`demo_video_plan`, plus the babble track in ``noise/babble.wav``. Returns
  the MP4 paths in plan order (positives first). Files are written atomically (a half-written video
  never has the final name); existing files of the same names are replaced, other files are left alone.
- Ground truth: the ``avforge.synth.truth/1`` JSON format (:func:`avforge.synth.load_truth` reads it;
  ``avforge.demo_config.summary`` scores curation with it), reduced to what is known of a real clip: one
  section covering the whole video with its ``kind``, ``start_s`` / ``end_s`` (0 to the duration in
  whole 25 fps frames), ``speaker_ids`` (the bundled clips' ``speaker`` labels),
  ``visible_speaker_ids`` / ``audible_speaker_ids``, ``clean_single_speaker`` (true only for the
  positives), and ``snr_db`` / ``noise`` for the noisy ones; no face boxes (nobody drew them). Extra
  keys: ``origin`` (this module), ``variant`` (the :mod:`avforge.variants` function, or ``copy``),
  ``clips`` (the bundled clips used), ``expected_reason`` (``None`` for a positive).
- Deterministic: the same plan gives the same files (the variants are bit-exact; the babble's talkers
  and offsets are fixed).
- Errors: :class:`avforge.variants.VariantError` when ffmpeg is missing or fails; ``OSError`` when
  the folder cannot be written.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf

from avforge import variants
from avforge.core import assets
from avforge.core.media import FPS
from avforge.core.media import SAMPLE_RATE_HZ as AUDIO_RATE_HZ
from avforge.synth.audio import normalize_active, trim_silence
from avforge.synth.truth import TRUTH_FORMAT
from avforge.variants import BundledClip, bundled_clip, num_frames, probe
from manifests.schema import RejectReason

AUDIO_ASSETS = assets.AUDIO_DIR
"""The bundled real speech, noise and music recordings (:mod:`avforge.core.assets`)."""

Kind = Literal["clean", "dubbed", "still_face", "two_faces", "no_face", "silence", "noisy"]
KINDS: tuple[Kind, ...] = (
    "clean",
    "dubbed",
    "still_face",
    "two_faces",
    "no_face",
    "silence",
    "noisy",
)
EXPECTED_REASON: dict[Kind, RejectReason | None] = {
    "clean": None,
    "dubbed": RejectReason.NOT_IN_SYNC,
    "still_face": RejectReason.NOT_SPEAKING,
    "two_faces": RejectReason.MULTIPLE_FACES,
    "no_face": RejectReason.NO_FACE,
    "silence": RejectReason.NO_SPEECH,
    "noisy": RejectReason.LOW_SNR,
}
"""What curation must decide on each kind (``None``: keep)."""

BABBLE = "babble"
"""``DemoVideo.noise`` value for the babble track (any other value is a file in :data:`AUDIO_ASSETS`)."""
BABBLE_TALKERS: tuple[tuple[str, ...], ...] = tuple(
    assets.VOICES[v].files for v in ("aew", "axb", "arctic_m", "libri_f1", "libri_m5", "libri_m6")
)
"""The babble's six talkers (each: its utterances, looped), all real read speech in :data:`AUDIO_ASSETS`."""
BABBLE_S = 12.0
"""Length of the babble track (longer than any bundled clip, so a noisy variant never loops it)."""
BABBLE_LEVEL_DBFS = -30.0
"""Active-speech level of each talker before summing (the sum stays well under full scale)."""

QUICK_POSITIVES = ("hdtf_amy_klobuchar", "hdtf_alexandria_ocasio_cortez", "retalking_face2")
"""The ``quick`` positives: three different people (one more than the demo's 2-speaker mixtures need),
chosen among the clips whose windows curation kept most clearly in a full run (docs/quickstart.md)."""


@dataclass(frozen=True)
class DemoVideo:
    """One demo video: its file stem, its kind and how it is made from the bundled clips.

    ``clip``: the talk whose picture is shown (``no_face``: whose sound is heard; ``two_faces``: the
    left one, whose sound is heard). ``other``: the second clip (``dubbed``: whose sound is heard;
    ``two_faces``: the right one; ``None``: none, e.g. the bundled debate, copied as it is).
    ``noise`` / ``snr_db``: for ``noisy`` only.
    """

    name: str
    kind: Kind
    clip: str
    other: str | None = None
    noise: str | None = None
    snr_db: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; known: {', '.join(KINDS)}")
        clip = bundled_clip(self.clip)  # KeyError for an unknown clip
        if self.other is not None:
            bundled_clip(self.other)
        if clip.truth == "unlabelled":
            raise ValueError(f"{self.name}: {clip.name} has no ground truth ({clip.note})")
        if self.kind == "clean" and (clip.truth != "keep" or self.other is not None):
            raise ValueError(f"{self.name}: a positive is one bundled clip labelled keep")
        if self.kind == "two_faces" and self.other is None and clip.faces < 2:
            raise ValueError(f"{self.name}: {clip.name} shows one face; give the second clip")
        if self.kind == "dubbed" and self.other is None:
            raise ValueError(f"{self.name}: a dubbed video needs the clip whose sound it takes")
        if (self.kind == "noisy") != (self.noise is not None and self.snr_db is not None):
            raise ValueError(
                f"{self.name}: noise and snr_db are for (and required by) noisy videos"
            )

    @property
    def expected_reason(self) -> RejectReason | None:
        """What curation must decide (``None``: keep)."""
        return EXPECTED_REASON[self.kind]

    @property
    def positive(self) -> bool:
        """A clean single-speaker talk that curation must keep."""
        return self.kind == "clean"


NEGATIVES: tuple[DemoVideo, ...] = (
    DemoVideo("dubbed_ed_markey", "dubbed", "hdtf_ed_markey", other="hdtf_amy_klobuchar"),
    DemoVideo("still_face_amy_klobuchar", "still_face", "hdtf_amy_klobuchar"),
    DemoVideo("two_faces_side_by_side", "two_faces", "retalking_face2", other="retalking_face4"),
    DemoVideo("no_face_retalking_face2", "no_face", "retalking_face2"),
    DemoVideo("silence_retalking_face5", "silence", "retalking_face5"),
    DemoVideo(
        "noisy_babble_0db", "noisy", "hdtf_alexandria_ocasio_cortez", noise=BABBLE, snr_db=0.0
    ),
)
"""One negative of each reason (both sizes). The clips are ones whose variant got its reason with a
margin in a full run (the dubbed sound and the noisy talk are clear of the SNR threshold; the still
face's speaking score is far under 0); see docs/quickstart.md."""
FULL_EXTRA_NEGATIVES: tuple[DemoVideo, ...] = (
    DemoVideo("two_faces_debate", "two_faces", "debate_splitscreen_1"),
    DemoVideo("noisy_music_0db", "noisy", "portrait_3", noise="guitar_16k.wav", snr_db=0.0),
)
"""Two more negatives of the full demo: the real split-screen debate, and music instead of babble."""


def demo_video_plan(quick: bool = False) -> list[DemoVideo]:
    """The demo videos: the positives (see :data:`QUICK_POSITIVES`), then the negatives."""
    keep = [c for c in variants.BUNDLED_CLIPS if c.truth == "keep"]
    if quick:
        keep = [c for c in keep if c.name in QUICK_POSITIVES]
    positives = [DemoVideo(f"clean_{c.name}", "clean", c.name) for c in keep]
    return positives + list(NEGATIVES) + ([] if quick else list(FULL_EXTRA_NEGATIVES))


def positive_speakers(plan: Sequence[DemoVideo]) -> set[str]:
    """The distinct speakers of the plan's positives (what mixing can pair)."""
    return {bundled_clip(v.clip).speaker for v in plan if v.positive}


# --------------------------------------------------------------------------- building


def make_babble(out: Path, duration_s: float = BABBLE_S) -> Path:
    """Write the babble track (:data:`BABBLE_TALKERS` at equal active levels, each looped from its own
    start offset, summed) as a 16 kHz mono 16-bit WAV at ``out``; returns ``out``."""
    rate = AUDIO_RATE_HZ
    length = round(duration_s * rate)
    babble = np.zeros(length, np.float64)
    for k, files in enumerate(BABBLE_TALKERS):
        speech = np.concatenate(
            [trim_silence(variants.load_audio(AUDIO_ASSETS / f, rate), rate) for f in files]
        )
        talker = normalize_active(speech, rate, BABBLE_LEVEL_DBFS)
        offset = round(k * len(talker) / len(BABBLE_TALKERS))  # talkers start mid-sentence
        babble += variants.fit_length(np.roll(talker, -offset), length)
    peak = float(np.max(np.abs(babble)))
    if peak > variants.PEAK_LIMIT:
        babble *= variants.PEAK_LIMIT / peak
    _atomic(out, lambda tmp: sf.write(tmp, babble.astype(np.float32), rate, "PCM_16", format="WAV"))
    return out


def _atomic(out: Path, write: Callable[[str], object]) -> None:
    tmp = str(out.parent / f".{out.name}.{secrets.token_hex(6)}.partial")
    try:
        write(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _render(video: DemoVideo, out: Path, babble: Path) -> None:
    clip = bundled_clip(video.clip).path
    other = None if video.other is None else bundled_clip(video.other).path
    if video.kind == "clean" or (video.kind == "two_faces" and other is None):
        _atomic(out, lambda tmp: shutil.copyfile(clip, tmp))
    elif video.kind == "dubbed":
        assert other is not None
        variants.dubbed(clip, other, out)
    elif video.kind == "still_face":
        variants.still_face(clip, out)
    elif video.kind == "two_faces":
        assert other is not None
        variants.side_by_side(clip, other, out, audio="left")
    elif video.kind == "no_face":
        variants.no_face(clip, out)
    elif video.kind == "silence":
        variants.silent(clip, out)
    else:  # noisy
        assert video.noise is not None and video.snr_db is not None
        noise = babble if video.noise == BABBLE else AUDIO_ASSETS / video.noise
        variants.noisy(clip, noise, video.snr_db, out)


VARIANT_FUNCTION: dict[Kind, str] = {
    "clean": "copy",
    "dubbed": "dubbed",
    "still_face": "still_face",
    "two_faces": "side_by_side",
    "no_face": "no_face",
    "silence": "silent",
    "noisy": "noisy",
}


def truth_for(video: DemoVideo, path: Path) -> dict[str, Any]:
    """The ground truth of ``video`` built at ``path`` (see the module docstring)."""
    info = probe(path)
    frames = num_frames(path)
    duration_s = round(frames / FPS, 6)
    main = bundled_clip(video.clip)
    other = None if video.other is None else bundled_clip(video.other)
    speaker, second = main.speaker, None if other is None else other.speaker
    two_real_faces = video.kind == "two_faces" and other is None  # the bundled debate
    speaker_ids = [speaker] if second is None else [speaker, second]
    visible = {
        "dubbed": [speaker],
        "no_face": [],
        "two_faces": speaker_ids,
    }.get(video.kind, [speaker])
    audible = {
        "dubbed": [second],
        "silence": [],
        "two_faces": speaker_ids if two_real_faces else [speaker],
    }.get(video.kind, [speaker])
    clean = video.positive
    noise = None
    if video.noise is not None:
        noise = "babble" if video.noise == BABBLE else Path(video.noise).stem
    section = {
        "index": 0,
        "start_s": 0.0,
        "end_s": duration_s,
        "first_frame": 0,
        "end_frame": frames,
        "kind": video.kind,
        "speaker_ids": speaker_ids,
        "visible_speaker_ids": visible,
        "audible_speaker_ids": audible,
        "voice_id": second if video.kind == "dubbed" else None,
        "snr_db": video.snr_db,
        "noise": noise,
        "alternate": False,
        "faces": [
            {"speaker_id": s, "speaking": video.kind not in ("still_face",) and s in audible}
            for s in visible
        ],
        "clean_single_speaker": clean,
    }
    clips = [main.name] + ([] if other is None else [other.name])
    extra: dict[str, Any] = {}
    if video.noise == BABBLE:
        extra["babble_talkers"] = [list(t) for t in BABBLE_TALKERS]
    elif video.noise is not None:
        extra["noise_file"] = video.noise
    return {
        "format": TRUTH_FORMAT,
        "origin": "avforge.demo_videos",
        "scenario": video.name,
        "seed": None,
        "video": path.name,
        "video_path": str(path.resolve()),
        "width": info.width,
        "height": info.height,
        "fps": FPS,
        "n_frames": frames,
        "sample_rate_hz": AUDIO_RATE_HZ,
        "duration_s": duration_s,
        "variant": VARIANT_FUNCTION[video.kind] if not two_real_faces else "copy",
        "clips": clips,
        "expected_reason": None if video.expected_reason is None else video.expected_reason.value,
        "speakers": {c.speaker: {"clip": c.name, "note": c.note} for c in _clips(main, other)},
        "sections": [section],
        "clean_single_speaker_s": duration_s if clean else 0.0,
        **extra,
    }


def _clips(main: BundledClip, other: BundledClip | None) -> list[BundledClip]:
    return [main] if other is None else [main, other]


def build_demo_videos(
    out_dir: str | os.PathLike[str],
    quick: bool = False,
    plan: Sequence[DemoVideo] | None = None,
    on_video: Callable[[Path, dict[str, Any]], None] | None = None,
) -> list[Path]:
    """Build the demo videos (``plan``, default :func:`demo_video_plan`) and their ground truth into
    ``out_dir`` (created if missing); returns the MP4 paths in plan order. ``on_video(path, truth)`` is
    called after each one (the demo prints a line). See the module docstring for the contract."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    videos = list(demo_video_plan(quick) if plan is None else plan)
    names = [v.name for v in videos]
    if len(set(names)) != len(names):
        raise ValueError(f"video names must be unique: {names}")
    babble = folder / "noise" / "babble.wav"
    if any(v.noise == BABBLE for v in videos):
        babble.parent.mkdir(exist_ok=True)
        make_babble(babble)
    paths = []
    for video in videos:
        path = folder / f"{video.name}.mp4"
        _render(video, path, babble)
        truth = truth_for(video, path)
        truth_path = path.with_suffix(".json")
        text = json.dumps(truth, indent=1) + "\n"
        _atomic(truth_path, lambda tmp, text=text: Path(tmp).write_text(text))
        paths.append(path)
        if on_video is not None:
            on_video(path, truth)
    return paths
