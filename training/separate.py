"""Separate a recording of any length with a trained model: windowed inference with overlap-add.

Contract:

- :func:`separate_long` (pure, the core): a mono 16 kHz waveform (L,) and, for audio-visual models,
  one face stream per chosen face (n_faces, T_v, ...) at 25 fps -> separated signals (n_out, L).
  The recording is cut into windows of ``window_s`` (3 s, what the model was trained on) every
  ``hop_s`` (both multiples of one video frame, 40 ms, so audio and face windows stay aligned), each
  window is separated, and the outputs are cross-faded with a Hann window and normalised by the
  summed weights. Audio-only outputs have no fixed order, so each window's outputs are permuted to
  best match the running estimate on the overlap first (correlation, exhaustive over n! orders).
- :func:`separate_video`: decode a video's audio (ffmpeg), track its faces (curation's detector),
  compute the face stream the model reads, and write one WAV per chosen face. Face crops are cut at
  the crop size the model was trained on; lip features are curation's: LR-ASD's per-frame visual
  embedding of its own 112 px grey crops of the track (the bundled ``ava`` weights, as
  ``speaker.weights`` by default). It raises :class:`SeparateError` for a video with no audio, fewer
  faces than asked, a model that cannot take the chosen number of faces, or an AV model that reads
  face embeddings (computing those from a video is curation's job; :func:`separate_long` takes them
  when given).

Input contract: both check the input against the model's recorded
:class:`training.models.serialize.InputContract` (sample rate, face stream kind, per-frame feature
width or crop size) and raise :class:`SeparateError` naming what the model expects and what it got.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from avforge.core.media import FPS, SAMPLE_RATE_HZ
from manifests.media import FaceTrack
from training.models import AudioVisualSeparator, MaskSeparator, VisualInput
from training.models.serialize import InputMismatchError, check_input, contract_of

if TYPE_CHECKING:
    from curation.probe import MediaInfo

SAMPLES_PER_FRAME = SAMPLE_RATE_HZ // FPS


class SeparateError(ValueError):
    """The recording or the request cannot be separated (the message says why)."""


def _frames(seconds: float, name: str) -> int:
    frames = seconds * FPS
    if abs(frames - round(frames)) > 1e-6 or round(frames) < 1:
        raise SeparateError(f"{name} must be a positive multiple of 0.04 s, got {seconds}")
    return round(frames)


def window_starts(num_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of the windows covering ``num_samples`` (the last window may run past the end)."""
    if num_samples <= window:
        return [0]
    n = -(-(num_samples - window) // hop) + 1
    return [i * hop for i in range(n)]


@torch.no_grad()
def separate_long(
    model: MaskSeparator,
    waveform: np.ndarray | Tensor,
    faces: Tensor | None = None,
    *,
    window_s: float = 3.0,
    hop_s: float = 1.52,  # 38 video frames: about half a window, on the 40 ms grid
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> Tensor:
    """Separate ``waveform`` (L,) at 16 kHz -> float32 (n_out, L) on CPU (see module docstring).

    ``faces``: (n_faces, T_v, ...) crops, embeddings or lip features at 25 fps for AV models (frames
    past the end are padded with zeros). ``hop_s`` <= ``window_s``; windows overlap by
    ``window_s - hop_s``. ``sample_rate_hz``: the waveform's rate; input that does not match the
    model's input contract (rate, face feature width, crop size) raises :class:`SeparateError`.
    """
    x = torch.as_tensor(
        np.asarray(waveform, np.float32) if not isinstance(waveform, Tensor) else waveform
    )
    if x.dim() != 1:
        raise SeparateError(f"waveform must be mono (L,), got shape {tuple(x.shape)}")
    is_av = isinstance(model, AudioVisualSeparator)
    if is_av and faces is None:
        raise SeparateError("an audio-visual model needs face streams")
    try:
        check_input(
            contract_of(model),
            sample_rate_hz=sample_rate_hz,
            faces_shape=tuple(faces.shape) if is_av and faces is not None else None,
        )
    except InputMismatchError as exc:
        raise SeparateError(str(exc)) from None
    win_f, hop_f = _frames(window_s, "window_s"), _frames(hop_s, "hop_s")
    if hop_f > win_f:
        raise SeparateError(f"hop_s ({hop_s}) must not exceed window_s ({window_s})")
    window, hop = win_f * SAMPLES_PER_FRAME, hop_f * SAMPLES_PER_FRAME
    length = x.shape[0]
    starts = window_starts(length, window, hop)
    padded = torch.nn.functional.pad(x, (0, starts[-1] + window - length))
    if is_av:
        assert faces is not None
        need = starts[-1] // SAMPLES_PER_FRAME + win_f
        pad = need - faces.shape[1]
        if pad > 0:
            faces = torch.cat([faces, faces.new_zeros(faces.shape[0], pad, *faces.shape[2:])], 1)
    model = model.to(device).eval()
    outputs: list[Tensor] = []
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        mix = torch.stack([padded[s : s + window] for s in chunk]).to(device)
        face_batch = None
        if is_av and faces is not None:
            face_batch = torch.stack(
                [faces[:, s // SAMPLES_PER_FRAME : s // SAMPLES_PER_FRAME + win_f] for s in chunk]
            ).to(device)
        outputs.extend(model(mix, face_batch).waveforms.float().cpu().unbind(0))
    weight = torch.hann_window(window, periodic=False) + 1e-3
    n_out = outputs[0].shape[0]
    total = torch.zeros(n_out, padded.shape[0])
    norm = torch.zeros(padded.shape[0])
    for k, (start, out) in enumerate(zip(starts, outputs, strict=True)):
        if not is_av and k > 0 and n_out > 1:
            overlap = window - hop
            if overlap > 0:
                prev = total[:, start : start + overlap] / norm[start : start + overlap].clamp_min(
                    1e-8
                )
                out = _reorder_like(prev, out, overlap)
        total[:, start : start + window] += out * weight
        norm[start : start + window] += weight
    return (total / norm.clamp_min(1e-8))[:, :length]


def _reorder_like(previous: Tensor, current: Tensor, overlap: int) -> Tensor:
    """``current`` (n, W) permuted so its first ``overlap`` samples best match ``previous``."""
    n = current.shape[0]
    best, best_score = tuple(range(n)), -float("inf")
    for perm in itertools.permutations(range(n)):
        score = float(sum((previous[j] * current[p, :overlap]).sum() for j, p in enumerate(perm)))
        if score > best_score:
            best, best_score = perm, score
    return current[list(best)]


def face_streams_of_video(
    path: str,
    faces: Sequence[int] | None,
    n_faces: int,
    crop_size_px: int = 112,
    width: int = 640,
    stream: VisualInput = VisualInput.CROPS,
) -> tuple[Tensor, list[int]]:
    """The chosen tracks' face stream at 25 fps: crops (len(faces), T_v, S, S, 3) uint8, or with
    ``stream`` lips, LR-ASD lip features (len(faces), T_v, 128) float32.

    Faces are detected on every frame (curation's offline CenterFace detector), linked into tracks
    (ids 0.. by start time, then left to right) and cropped. ``faces`` None takes the ``n_faces``
    longest tracks. Frames where a track is absent are zeros.
    """
    from curation.crops import extract_crops
    from curation.decode import iter_video_frames, probe_media
    from curation.faces import FaceConfig, detect_faces, load_detector
    from curation.tracking import TrackConfig, interpolate_track, track_faces

    info = probe_media(path)
    face_cfg = FaceConfig()
    width = min(width, info.width) if info.width else width
    scale = info.width / width if info.width else 1.0
    dets = detect_faces(
        iter_video_frames(path, FPS, width, info=info), load_detector(face_cfg), face_cfg, scale
    )
    tracks = track_faces(dets, TrackConfig())
    if faces is None:
        by_length = sorted(tracks, key=lambda t: t.end_s - t.start_s, reverse=True)
        chosen = sorted(t.track_id for t in by_length[:n_faces])
    else:
        chosen = list(faces)
    if len(chosen) != n_faces or any(not 0 <= f < len(tracks) for f in chosen):
        raise SeparateError(
            f"the model takes {n_faces} face(s); video has {len(tracks)} track(s), asked for {chosen}"
        )
    n_frames = len(dets.times_s)
    fixed = [interpolate_track(tracks[f], 0.0, n_frames, FPS) for f in chosen]
    if stream == VisualInput.LIPS:
        return _lip_features(path, fixed, n_frames, width, scale, info), chosen
    out = np.zeros((len(chosen), n_frames, crop_size_px, crop_size_px, 3), np.uint8)
    first = 0
    for chunk in iter_video_frames(path, FPS, width, info=info):
        k = len(chunk.frames)
        for j, track in enumerate(fixed):
            part = _slice_track(track, first, first + k)
            out[j, first : first + k] = extract_crops(chunk.frames, part, scale, crop_size_px)
        first += k
    return torch.from_numpy(out), chosen


def _lip_features(
    path: str, tracks: list[FaceTrack], n_frames: int, width: int, scale: float, info: MediaInfo
) -> Tensor:
    """Curation's lip features of each track: LR-ASD's 112 px grey crops of every frame, then its
    visual embedding over the whole track (frames where the track is absent: zeros)."""
    from curation.decode import iter_video_frames
    from curation.lrasd import FACE_SIZE, face_crops, load_lrasd, visual_embed_long

    grey = np.zeros((len(tracks), n_frames, FACE_SIZE, FACE_SIZE), np.uint8)
    first = 0
    for chunk in iter_video_frames(path, FPS, width, info=info):
        k = min(len(chunk.frames), n_frames - first)
        for j, track in enumerate(tracks):
            grey[j, first : first + k] = face_crops(
                chunk.frames[:k], track.boxes[first : first + k] / scale
            )
        first += k
    model = load_lrasd()
    lips = torch.stack([visual_embed_long(model, g) for g in grey])
    present = torch.from_numpy(np.stack([t.present[:n_frames] for t in tracks]))
    return (lips * present[..., None]).float()


def _slice_track(track: FaceTrack, start: int, stop: int) -> FaceTrack:
    lm = None if track.landmarks is None else track.landmarks[start:stop]
    return FaceTrack(
        track.fps, track.boxes[start:stop], track.quality[start:stop], track.present[start:stop], lm
    )


def separate_video(
    model: MaskSeparator,
    video: str | Path,
    out_dir: str | Path,
    *,
    faces: Sequence[int] | None = None,
    crop_size_px: int | None = None,
    device: str | torch.device = "cpu",
) -> list[Path]:
    """Separate ``video`` and write one 16 kHz WAV per chosen face (or per output, audio-only).

    ``crop_size_px``: None takes the crop size of the model's input contract (112 when not recorded)."""
    import soundfile

    from curation.decode import MediaError, decode_audio

    if isinstance(model, AudioVisualSeparator) and model.visual_input == VisualInput.EMBEDDINGS:
        raise SeparateError(
            "the model reads face embeddings; separate computes face crops and lip features "
            "only (use a model trained with model.visual_input: crops or lips, or separate_long "
            "with precomputed embeddings)"
        )
    try:
        audio = decode_audio(str(video), SAMPLE_RATE_HZ)
    except MediaError as exc:
        raise SeparateError(f"{video}: cannot decode audio ({exc})") from None
    streams, names = None, []
    if crop_size_px is None:
        crop_size_px = contract_of(model).crop_size_px or 112
    if isinstance(model, AudioVisualSeparator):
        streams, chosen = face_streams_of_video(
            str(video), faces, model.n_faces, crop_size_px, stream=model.visual_input
        )
        names = [f"face{f}" for f in chosen]
    out = separate_long(model, audio, streams, device=device)
    if not names:
        names = [f"source{i}" for i in range(out.shape[0])]
    if out.shape[0] > len(names):
        names.append("residual")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for signal, name in zip(out, names, strict=True):
        path = folder / f"{Path(video).stem}.{name}.wav"
        soundfile.write(str(path), signal.numpy(), SAMPLE_RATE_HZ, subtype="FLOAT")
        paths.append(path)
    return paths
