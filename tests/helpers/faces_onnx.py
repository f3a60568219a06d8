"""Tiny ONNX models shaped like insightface's buffalo_l pack, built in the test (no download).

- :func:`tiny_scrfd`: the SCRFD detector interface of ``det_10g.onnx``: input ``1x3xHxW`` (dynamic
  H, W), nine outputs (scores, bbox distances, keypoint distances for strides 8, 16, 32; two anchors
  per location; rank-2 ``(H/s * W/s * 2, 1 | 4 | 10)``). Its "face" is any stride-32 cell that is
  white: score ``sigmoid(10 * mean - 5)`` of the normalised cell; strides 8 and 16 never fire. Box
  distances are one stride on each side of the anchor and keypoints sit at :data:`KPS_OFFSETS`
  strides from it, so the decoded answer is known exactly.
- :func:`tiny_arcface`: the ArcFace interface of ``w600k_r50.onnx``: input ``Nx3x112x112``, output
  ``Nx512`` = ``mean_rgb(normalised crop) @ WEIGHT + BIAS`` (see :func:`arcface_reference`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STRIDES = (8, 16, 32)
KPS_OFFSETS = np.array(
    [[-0.3, -0.2], [0.3, -0.2], [0.0, 0.1], [-0.25, 0.4], [0.25, 0.4]], np.float32
)
EMBED_DIM = 512
_rng = np.random.default_rng(1234)
WEIGHT = _rng.normal(size=(3, EMBED_DIM)).astype(np.float32)
BIAS = _rng.normal(size=EMBED_DIM).astype(np.float32) * 0.1


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_scrfd(path: Path) -> Path:
    nodes, inits, outputs = [], [], {"score": [], "bbox": [], "kps": []}
    widths = {"score": 1, "bbox": 4, "kps": 10}
    for s in STRIDES:
        pool = f"pool{s}"
        nodes.append(
            helper.make_node(
                "AveragePool", ["input.1"], [pool], kernel_shape=[s, s], strides=[s, s]
            )
        )
        for kind, k in widths.items():
            w = np.zeros((2 * k, 3, 1, 1), np.float32)
            if kind == "score":
                b = np.full(2 * k, -20.0 if s != 32 else -5.0, np.float32)
                if s == 32:
                    w[:] = 10.0 / 3.0
            elif kind == "bbox":
                b = np.ones(2 * k, np.float32)
            else:
                b = np.tile(KPS_OFFSETS.ravel(), 2).astype(np.float32)
            inits += [
                numpy_helper.from_array(w, f"w_{kind}{s}"),
                numpy_helper.from_array(b, f"b_{kind}{s}"),
            ]
            conv, tr, out = f"conv_{kind}{s}", f"tr_{kind}{s}", f"{kind}_{s}"
            nodes.append(helper.make_node("Conv", [pool, f"w_{kind}{s}", f"b_{kind}{s}"], [conv]))
            src = conv
            if kind == "score":
                nodes.append(helper.make_node("Sigmoid", [conv], [f"sig{s}"]))
                src = f"sig{s}"
            nodes.append(helper.make_node("Transpose", [src], [tr], perm=[0, 2, 3, 1]))
            shape = f"shape_{kind}"
            if shape not in {i.name for i in inits}:
                inits.append(numpy_helper.from_array(np.array([-1, k], np.int64), shape))
            nodes.append(helper.make_node("Reshape", [tr, shape], [out]))
            outputs[kind].append(
                helper.make_tensor_value_info(out, TensorProto.FLOAT, [f"n{s}", k])
            )
    graph = helper.make_graph(
        nodes,
        "tiny_scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])],
        outputs["score"] + outputs["bbox"] + outputs["kps"],
        inits,
    )
    return _save(graph, path)


def tiny_arcface(path: Path) -> Path:
    nodes = [
        helper.make_node("GlobalAveragePool", ["input.1"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "weight", "bias"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", EMBED_DIM])],
        [numpy_helper.from_array(WEIGHT, "weight"), numpy_helper.from_array(BIAS, "bias")],
    )
    return _save(graph, path)


def arcface_reference(crops_rgb: np.ndarray) -> np.ndarray:
    """What :func:`tiny_arcface` + L2 normalisation gives for RGB crops (n, 112, 112, 3)."""
    mean_rgb = ((crops_rgb.astype(np.float64) - 127.5) / 127.5).mean(axis=(1, 2))
    feats = mean_rgb @ WEIGHT + BIAS
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


def tiny_pack(root: Path, pack: str = "buffalo_l", recognition: bool = True) -> Path:
    """``root/models/<pack>/`` with det_10g.onnx (+ w600k_r50.onnx) -> the pack folder."""
    folder = root / "models" / pack
    tiny_scrfd(folder / "det_10g.onnx")
    if recognition:
        tiny_arcface(folder / "w600k_r50.onnx")
    return folder
