"""A small real corpus built directly, without curation, for mixing and training tests.

``build_corpus(tmp_path)`` writes, in ``tmp_path / "corpus"`` (or ``out``):

- ``media/clips-00000.arrow``: one media row per clip. Audio is real read speech from
  ``avforge/assets/audio`` (CMU ARCTIC and LibriSpeech, see PROVENANCE.md), PCM16 at 16 kHz. Face
  tracks are synthetic but plausible: a 25 fps box drifting slowly around a speaker-specific position,
  five landmarks, quality 0.8..1, a few frames marked missing (``face_present`` False, no JPEG), and
  small JPEG crops of a drawn face whose mouth opens with the audio envelope of that frame. Optional
  float16 embeddings: a per-speaker unit vector plus a little per-frame noise. Optional lip features
  (:func:`synthetic_lip_features`, 128 float16 a frame, like curation's LR-ASD features) with a known
  answer: column 0 is the clip's frame index, column 1 the clip's number in the corpus.
- ``clips/clips-00000.arrow`` and ``sources/sources-00000.arrow``: one ``ClipRecord`` per clip, each
  clip from its own source; ``speaker_id`` is the real speaker.
- the bundled noises (kitchen, exercise bike: ``noise``; guitar: ``music``) through
  :func:`mixing.noises.add_noises`.

Everything is deterministic for a given ``seed``. Speakers available: :data:`SPEAKERS` (7).

Example::

    corpus = build_corpus(tmp_path, n_speakers=3, clips_per_speaker=2, with_faces=True)
    clips = manifests.read_clips(str(corpus))          # 6 rows
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from avforge.core import assets
from avforge.core.media import FPS, SAMPLE_RATE_HZ
from manifests import (
    ClipRecord,
    FaceTrack,
    MediaRecord,
    NoiseKind,
    SourceKind,
    SourceRecord,
    SourceStatus,
    Split,
    write_media_shard,
    write_records,
)
from manifests.io import shard_path
from manifests.media import encode_jpeg
from mixing.noises import NoiseConfig, add_noises

ASSETS = assets.AUDIO_DIR
SAMPLES_PER_FRAME = SAMPLE_RATE_HZ // FPS

CORPUS_VOICES: dict[str, str] = {
    "aew": "aew",
    "axb": "axb",
    "libri1": "libri_f1",
    "libri5": "libri_m5",
    "libri6": "libri_m6",
    "arctic": "arctic_m",
    "libri2": "libri_f2",
}
"""The corpus's speaker ids (stable: they are in its manifests) -> bundled voices
(:data:`avforge.core.assets.VOICES`), in the order ``build_corpus`` takes them."""
SPEAKERS: dict[str, tuple[str, ...]] = {
    speaker: assets.VOICES[voice].files for speaker, voice in CORPUS_VOICES.items()
}
"""Real speakers and their utterances (file names in :data:`ASSETS`)."""


def speaker_speech(speaker: str, min_samples: int) -> np.ndarray:
    """The speaker's utterances back to back (0.2 s gaps), looped to at least ``min_samples``."""
    gap = np.zeros(SAMPLE_RATE_HZ // 5, np.float32)
    parts: list[np.ndarray] = []
    for name in SPEAKERS[speaker]:
        audio, rate = soundfile.read(ASSETS / name, dtype="float32")
        assert rate == SAMPLE_RATE_HZ, f"{name}: {rate} Hz"
        parts += [audio, gap]
    speech = np.concatenate(parts)
    reps = -(-min_samples // speech.shape[0])
    return np.tile(speech, reps)


def _draw_face(size: int, mouth_open: float, tone: tuple[int, int, int]) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.full((size, size, 3), 40, np.uint8)
    face = ((xx - 0.5) / 0.38) ** 2 + ((yy - 0.5) / 0.46) ** 2 <= 1.0
    img[face] = tone
    for ex in (0.35, 0.65):
        img[((xx - ex) / 0.06) ** 2 + ((yy - 0.4) / 0.04) ** 2 <= 1.0] = (20, 20, 30)
    mouth_h = 0.015 + 0.09 * mouth_open
    img[((xx - 0.5) / 0.14) ** 2 + ((yy - 0.7) / mouth_h) ** 2 <= 1.0] = (120, 30, 40)
    return img


def synthetic_face_track(
    audio: np.ndarray,
    rng: np.random.Generator,
    *,
    missing_ratio: float,
    centre: tuple[float, float],
) -> FaceTrack:
    """A plausible 25 fps track for ``audio``: slow drift, landmarks, quality, some missing frames."""
    n = audio.shape[0] // SAMPLES_PER_FRAME
    drift = np.cumsum(rng.normal(0.0, 0.8, size=(n, 2)), axis=0).astype(np.float32)
    cx, cy = centre[0] + drift[:, 0], centre[1] + drift[:, 1]
    half = 48.0
    boxes = np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).astype(np.float32)
    rel = np.array(
        [[-0.35, -0.2], [0.35, -0.2], [0.0, 0.05], [-0.25, 0.4], [0.25, 0.4]], np.float32
    )
    landmarks = np.stack([cx, cy], axis=1)[:, None, :] + rel[None] * half
    quality = rng.uniform(0.8, 1.0, size=n).astype(np.float32)
    present = rng.uniform(size=n) >= missing_ratio
    return FaceTrack(float(FPS), boxes, quality, present, landmarks.astype(np.float32))


def face_crops(
    audio: np.ndarray, track: FaceTrack, size: int, tone: tuple[int, int, int]
) -> list[bytes]:
    """JPEG crops (empty bytes where the face is missing), mouth opening from the frame's RMS."""
    n = track.num_frames
    frames = audio[: n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    opening = np.clip(rms / (rms.max() + 1e-12), 0.0, 1.0)
    return [
        encode_jpeg(_draw_face(size, float(o), tone)) if p else b""
        for o, p in zip(opening, track.present, strict=True)
    ]


LIP_DIM = 128
"""Width of curation's lip features (LR-ASD's visual embedding)."""


def synthetic_lip_features(audio: np.ndarray, clip_number: int, dim: int = LIP_DIM) -> np.ndarray:
    """(num_frames, dim) float32 stand-ins for a clip's LR-ASD lip features, exact in float16:
    column 0 is the frame index (0, 1, 2, ...), column 1 ``clip_number``, the others the frame's
    mouth opening (audio RMS, 0..1, as the drawn crops show it) times a fixed +-1 pattern."""
    n = audio.shape[0] // SAMPLES_PER_FRAME
    frames = audio[: n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    opening = np.clip(rms / (rms.max() + 1e-12), 0.0, 1.0)
    pattern = np.where(np.arange(dim - 2) % 3 == 0, -1.0, 1.0)
    out = np.empty((n, dim), np.float32)
    out[:, 0] = np.arange(n)
    out[:, 1] = clip_number
    out[:, 2:] = np.round(opening[:, None] * pattern[None, :], 3)
    return out


def build_corpus(
    tmp_path: Path,
    *,
    n_speakers: int = 4,
    clips_per_speaker: int = 2,
    clip_duration_s: float = 4.0,
    with_faces: bool = True,
    with_embeddings: bool = False,
    with_lip_features: bool = False,
    crop_size_px: int = 32,
    missing_face_ratio: float = 0.1,
    with_noises: bool = True,
    split: Split = Split.TRAIN,
    seed: int = 0,
    out: Path | None = None,
) -> Path:
    """Write a small real corpus (see the module docstring) and return its folder.

    ``clip_duration_s`` is rounded down to whole 40 ms frames. Clip ``j`` of a speaker starts
    ``0.52 j`` seconds into that speaker's (looped) speech, so clips of one speaker differ.
    ``with_lip_features`` (needs ``with_faces``): :func:`synthetic_lip_features` per clip, whose
    clip number is the clip's media row.
    """
    if not 1 <= n_speakers <= len(SPEAKERS):
        raise ValueError(f"n_speakers must be 1..{len(SPEAKERS)}, got {n_speakers}")
    corpus = out or (tmp_path / "corpus")
    rng = np.random.default_rng(seed)
    n_frames = int(clip_duration_s * FPS + 1e-9)
    num_samples = n_frames * SAMPLES_PER_FRAME
    shard = "clips-00000"
    media: list[MediaRecord] = []
    clips: list[ClipRecord] = []
    sources: list[SourceRecord] = []
    for s, speaker in enumerate(list(SPEAKERS)[:n_speakers]):
        stride = round(0.52 * SAMPLE_RATE_HZ)
        speech = speaker_speech(speaker, num_samples + stride * clips_per_speaker)
        tone = tuple(int(v) for v in rng.integers(120, 230, size=3))
        voice = rng.normal(size=16)
        voice /= np.linalg.norm(voice)
        for j in range(clips_per_speaker):
            audio = speech[j * stride : j * stride + num_samples]
            clip_id = f"{speaker}-{j:02d}"
            source_id = f"src-{speaker}-{j:02d}"
            track = crops = emb = lips = None
            if with_faces:
                centre = (160.0 + 40 * s, 120.0 + 10 * j)
                track = synthetic_face_track(
                    audio, rng, missing_ratio=missing_face_ratio, centre=centre
                )
                crops = face_crops(audio, track, crop_size_px, tone)  # type: ignore[arg-type]
                if with_embeddings:
                    noise = rng.normal(scale=0.05, size=(n_frames, 16))
                    emb = (voice[None, :] + noise).astype(np.float32)
                if with_lip_features:
                    lips = synthetic_lip_features(audio, len(media))
            media.append(
                MediaRecord(
                    media_id=clip_id,
                    sample_rate_hz=SAMPLE_RATE_HZ,
                    samples=audio,
                    track=track,
                    crops_jpeg=crops,
                    crop_size=crop_size_px if with_faces else None,
                    embeddings=emb,
                    lip_features=lips,
                )
            )
            clips.append(
                ClipRecord(
                    clip_id=clip_id,
                    source_id=source_id,
                    start_s=0.52 * j,
                    end_s=0.52 * j + num_samples / SAMPLE_RATE_HZ,
                    duration_s=num_samples / SAMPLE_RATE_HZ,
                    snr_db=30.0,
                    num_frames=n_frames,
                    sample_rate_hz=SAMPLE_RATE_HZ,
                    num_samples=num_samples,
                    split=split,
                    media_shard=shard + ".arrow",
                    media_row=len(media) - 1,
                    speaker_id=speaker,
                    has_crops=with_faces,
                    has_embeddings=emb is not None,
                    has_lip_features=lips is not None,
                )
            )
            sources.append(
                SourceRecord(
                    source_id=source_id,
                    url=str(ASSETS / SPEAKERS[speaker][0]),
                    kind=SourceKind.LOCAL,
                    status=SourceStatus.OK,
                    num_segments=1,
                    num_clips=1,
                )
            )
    write_shards(corpus, shard, media, clips, sources)
    if with_noises:
        register_bundled_noises(corpus, split=split)
    return corpus


def write_shards(
    corpus: Path,
    shard: str,
    media: list[MediaRecord],
    clips: list[ClipRecord],
    sources: list[SourceRecord],
) -> None:
    """Write a built corpus's media and clips shard ``shard`` and its one sources shard."""
    write_media_shard(shard_path(str(corpus), "media", shard), media)
    write_records(str(corpus), "clips", shard, clips)
    write_records(str(corpus), "sources", "sources-00000", sources)


def register_bundled_noises(corpus: Path, *, split: Split = Split.TRAIN) -> None:
    """Register the bundled real noises and music in ``corpus`` (all in ``split``)."""
    for kind in (NoiseKind.NOISE, NoiseKind.MUSIC):
        origins = [str(assets.audio_path(name)) for name in assets.noise_files(kind.value)]
        result = add_noises(origins, str(corpus), NoiseConfig(), split=split, kind=kind)
        if result.failures:
            raise RuntimeError(f"bundled noises failed: {result.failures}")
