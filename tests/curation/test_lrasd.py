"""LR-ASD in our torch code: known answers of the reference implementation, MFCCs, crops, loading.

The known answer (``tests/data/lr_asd/reference_katie_4s.npz``) is 4 s of a real talk: the faces and
MFCCs the authors' preprocessing gave, and the embeddings and logits their implementation computed
from them with each bundled weight file. Measured agreement: max abs difference 3e-6 (embeddings up
to 7.8) and 1e-6 (logits); the MFCCs agree to 2e-6 of python_speech_features' float64 output.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from curation import lrasd

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "lr_asd" / "reference_katie_4s.npz"
TOL = {"rtol": 1e-4, "atol": 1e-4}


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------- network


@pytest.mark.parametrize("weights", ["ava", "talkset"])
def test_known_answer_embeddings_and_logits(ref, weights):
    net = lrasd.load_lrasd(weights)
    faces = torch.from_numpy(ref["faces_u8"])[None]
    mfcc = torch.from_numpy(ref["mfcc"])[None]
    with torch.inference_mode():
        visual = net.visual_embed(faces)
        audio = net.audio_embed(mfcc)
        logits = net.logits(net.backend(audio, visual))
        score = net.speaking_score(faces, mfcc)
    assert visual.shape == (1, 100, 128) and audio.shape == (1, 100, 128)
    assert logits.shape == (1, 100, 2) and score.shape == (1, 100)
    np.testing.assert_allclose(visual[0].numpy(), ref[f"{weights}_visual_embedding"], **TOL)
    np.testing.assert_allclose(audio[0].numpy(), ref[f"{weights}_audio_embedding"], **TOL)
    np.testing.assert_allclose(logits[0].numpy(), ref[f"{weights}_logits"], **TOL)
    np.testing.assert_array_equal(score.numpy(), logits[..., 1].numpy())


def test_fast_visual_path_equals_the_3d_conv_path(ref):
    """visual_embed (eval) runs folded 2-D convs; the module's own 3-D conv forward is the reference."""
    net = lrasd.load_lrasd("ava")
    faces = torch.from_numpy(ref["faces_u8"][:30])[None]
    with torch.inference_mode():
        fast = net.visual_embed(faces)
        x = (faces.float() / 255 - lrasd.FACE_MEAN) / lrasd.FACE_STD
        slow = net.model.visualEncoder(x.unsqueeze(1))
    np.testing.assert_allclose(fast.numpy(), slow.numpy(), **TOL)


def test_float_faces_equal_uint8_faces(ref):
    net = lrasd.load_lrasd("ava")
    faces = torch.from_numpy(ref["faces_u8"][:10])[None]
    with torch.inference_mode():
        a = net.visual_embed(faces)
        b = net.visual_embed(faces.float())
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_batch_invariance(ref):
    net = lrasd.load_lrasd("ava")
    faces = torch.from_numpy(ref["faces_u8"][:50])
    mfcc = torch.from_numpy(ref["mfcc"][:200])
    other_faces = torch.flip(faces, dims=[0])
    other_mfcc = torch.roll(mfcc, 37, dims=0)
    with torch.inference_mode():
        both = net.speaking_score(
            torch.stack([faces, other_faces]), torch.stack([mfcc, other_mfcc])
        )
        one = net.speaking_score(faces[None], mfcc[None])
        two = net.speaking_score(other_faces[None], other_mfcc[None])
    assert both.shape == (2, 50)
    np.testing.assert_allclose(both[0].numpy(), one[0].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(both[1].numpy(), two[0].numpy(), rtol=1e-5, atol=1e-5)


def test_mismatched_lengths_are_refused(ref):
    net = lrasd.load_lrasd("ava")
    faces = torch.from_numpy(ref["faces_u8"][:10])[None]
    with pytest.raises(ValueError, match="MFCC rows"):
        net.speaking_score(faces, torch.zeros(1, 39, 13))


# --------------------------------------------------------------------------------------------- loading


def test_state_dict_keys_are_the_published_ones():
    published = torch.load(
        lrasd.WEIGHTS_DIR / "pretrain_AVA.model", weights_only=True, map_location="cpu"
    )
    assert len(published) == 168
    assert list(lrasd.LRASD().state_dict()) == list(published)
    assert {k: v.shape for k, v in lrasd.LRASD().state_dict().items()} == {
        k: v.shape for k, v in published.items()
    }


def test_load_names_paths_and_cache():
    net = lrasd.load_lrasd()
    assert not net.training
    assert lrasd.DEFAULT_WEIGHTS == "ava"
    assert lrasd.load_lrasd("ava") is net
    assert lrasd.load_lrasd(lrasd.WEIGHTS_DIR / "pretrain_AVA.model") is net
    assert lrasd.load_lrasd(str(lrasd.WEIGHTS_DIR / "pretrain_AVA.model")) is net
    assert lrasd.load_lrasd("talkset") is not net
    assert (lrasd.WEIGHTS_DIR / "LICENSE").is_file()
    assert (lrasd.WEIGHTS_DIR / "PROVENANCE.md").is_file()


def _published() -> dict[str, torch.Tensor]:
    return torch.load(
        lrasd.WEIGHTS_DIR / "pretrain_AVA.model", weights_only=True, map_location="cpu"
    )


def test_missing_key_is_refused(tmp_path):
    state = _published()
    del state["model.fusion.bn.running_var"]
    torch.save(state, tmp_path / "missing.model")
    with pytest.raises(ValueError, match=r"missing keys \['model\.fusion\.bn\.running_var'\]"):
        lrasd.load_lrasd(tmp_path / "missing.model")


def test_unexpected_key_is_refused(tmp_path):
    state = _published()
    state["module.extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "extra.model")
    with pytest.raises(ValueError, match=r"unexpected keys \['module\.extra\.weight'\]"):
        lrasd.load_lrasd(tmp_path / "extra.model")


def test_wrong_shape_and_non_state_dicts_are_refused(tmp_path):
    state = _published()
    state["lossAV.FC.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "shape.model")
    with pytest.raises(ValueError, match=r"wrong shapes.*lossAV\.FC\.bias"):
        lrasd.load_lrasd(tmp_path / "shape.model")
    (tmp_path / "junk.model").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch state dict"):
        lrasd.load_lrasd(tmp_path / "junk.model")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="LR-ASD weight file not found"):
        lrasd.load_lrasd(tmp_path / "nowhere.model")
    with pytest.raises(FileNotFoundError):
        lrasd.load_lrasd("avaa")


# --------------------------------------------------------------------------------------------- MFCC


def test_mfcc_known_answer(ref):
    audio = ref["audio_int16"]  # exactly 4 s at 16 kHz
    feat = lrasd.mfcc(audio)
    # python_speech_features gives 1 + ceil((64000 - 400) / 160) = 399 rows, the last over a
    # zero-padded window; the reference's 400 rows came from the longer audio of the whole video,
    # so its rows 398 and 399 saw samples beyond these 4 s.
    assert feat.shape == (399, 13) and feat.dtype == np.float32
    np.testing.assert_allclose(feat[:398], ref["mfcc"][:398], **TOL)
    assert np.abs(feat[398] - ref["mfcc"][398]).max() > 1.0


def test_mfcc_float_input_is_scaled_to_int16(ref):
    audio = ref["audio_int16"][:8000]
    np.testing.assert_allclose(
        lrasd.mfcc(audio.astype(np.float32) / 32768), lrasd.mfcc(audio), rtol=1e-5, atol=1e-4
    )


@pytest.mark.parametrize("n", [1, 400, 401, 560, 561, 12345])
def test_mfcc_frame_count(n):
    audio = np.random.default_rng(n).normal(0, 1000, n).astype(np.int16)
    assert lrasd.mfcc(audio).shape == (1 + max(0, math.ceil((n - 400) / 160)), 13)


def test_mfcc_of_silence_is_finite():
    feat = lrasd.mfcc(np.zeros(1600, np.int16))
    assert np.isfinite(feat).all()
    np.testing.assert_allclose(feat[:, 0], np.log(np.finfo(np.float64).eps), rtol=1e-6)


def test_mfcc_refuses_stereo_and_empty():
    with pytest.raises(ValueError):
        lrasd.mfcc(np.zeros((1600, 2), np.int16))
    with pytest.raises(ValueError):
        lrasd.mfcc(np.zeros(0, np.int16))


def test_mfcc_for_frames_pads_by_wrapping_and_trims(ref):
    audio = ref["audio_int16"]
    feat = lrasd.mfcc(audio)
    four = lrasd.mfcc_for_frames(audio, 100)
    assert four.shape == (400, 13) and four.dtype == np.float32
    np.testing.assert_array_equal(four[:399], feat)
    np.testing.assert_array_equal(four[399], feat[0])  # the authors' numpy.pad(..., "wrap")
    np.testing.assert_array_equal(lrasd.mfcc_for_frames(audio, 50), feat[:200])
    # 15 ms of audio beyond the last frame: every row from real samples
    longer = np.concatenate([audio, audio[:240]])
    np.testing.assert_array_equal(lrasd.mfcc_for_frames(longer, 100)[:398], feat[:398])
    assert lrasd.mfcc(longer).shape == (400, 13)


# --------------------------------------------------------------------------------------------- crops

# Box (200, 100, 300, 200): centre (250, 150), s = 50 -> rows 100..240, columns 180..320 (140x140),
# resized to 224 (x 1.6, bilinear: destination i samples source (i + 0.5) / 1.6 - 0.5), central 112
# kept: crop pixel j samples source row 100 + (56 + j + 0.5) / 1.6 - 0.5, column 180 + the same.
BOX = (200.0, 100.0, 300.0, 200.0)


def _expected_source(j: np.ndarray, start: float) -> np.ndarray:
    return start + (56 + j + 0.5) / 1.6 - 0.5


def test_face_crop_geometry_rows_and_columns():
    rows = np.repeat(np.arange(250, dtype=np.uint8)[:, None], 400, axis=1)  # value = row
    cols = np.repeat(np.clip(np.arange(400) - 100, 0, 255).astype(np.uint8)[None], 250, axis=0)
    j = np.arange(112, dtype=np.float64)
    crop_r = lrasd.face_crop(rows, BOX)
    crop_c = lrasd.face_crop(cols, BOX)
    assert crop_r.shape == (112, 112) and crop_r.dtype == np.uint8
    np.testing.assert_allclose(crop_r, np.repeat(_expected_source(j, 100)[:, None], 112, 1), atol=1)
    np.testing.assert_allclose(
        crop_c, np.repeat(_expected_source(j, 180)[None] - 100, 112, 0), atol=1
    )
    # the crop centre is 0.4 s below the box centre, horizontally centred
    assert abs(int(crop_r[56, 56]) - 170) <= 1 and abs(int(crop_c[56, 56]) + 100 - 250) <= 1


def test_face_crop_rgb_is_converted_as_rgb():
    for colour, grey in (((255, 0, 0), 76), ((0, 255, 0), 150), ((0, 0, 255), 29)):
        frame = np.empty((250, 400, 3), np.uint8)
        frame[:] = colour
        np.testing.assert_array_equal(lrasd.face_crop(frame, BOX), grey)
    ramp = np.repeat(np.arange(250, dtype=np.uint8)[:, None], 400, axis=1)
    np.testing.assert_array_equal(
        lrasd.face_crop(np.stack([ramp] * 3, axis=-1), BOX), lrasd.face_crop(ramp, BOX)
    )


def test_face_crop_at_the_border_is_padded_with_110():
    frame = np.full((100, 100), 200, np.uint8)
    # centre (0, 0), s = 30: rows -30..54, columns -42..42; the central half reaches row -9, col -21
    crop = lrasd.face_crop(frame, (-30, -30, 30, 30))
    assert crop[0, 0] == crop[0, -1] == crop[-1, 0] == lrasd.CROP_PAD_VALUE == 110
    assert crop[-1, -1] == 200
    # a box entirely outside the frame is all padding
    np.testing.assert_array_equal(lrasd.face_crop(frame, (300, 300, 340, 340)), 110)


def _authors_crop(rgb: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """The authors' recipe, literally: pad the frame by 1.8 s with 110, slice, resize, grey, centre."""
    import cv2

    cs = 0.4
    bs = max(box[3] - box[1], box[2] - box[0]) / 2
    y, x = (box[1] + box[3]) / 2, (box[0] + box[2]) / 2
    pad = int(bs * (1 + 2 * cs))
    frame = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), constant_values=110)
    my, mx = y + pad, x + pad
    face = frame[
        int(my - bs) : int(my + bs * (1 + 2 * cs)),
        int(mx - bs * (1 + cs)) : int(mx + bs * (1 + cs)),
    ]
    face = cv2.cvtColor(cv2.resize(face, (224, 224)), cv2.COLOR_RGB2GRAY)
    return face[56:168, 56:168]


def test_face_crops_match_the_authors_padding_recipe():
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (24, 180, 320, 3), dtype=np.uint8)
    centres = rng.uniform([0, 0], [320, 180], (24, 2))
    half = rng.uniform(4, 120, (24, 2))
    boxes = np.concatenate([centres - half, centres + half], axis=1)
    crops = lrasd.face_crops(frames, boxes)
    assert crops.shape == (24, 112, 112)
    for frame, box, crop in zip(frames, boxes, crops, strict=True):
        np.testing.assert_array_equal(crop, _authors_crop(frame, tuple(box)))


def test_smooth_boxes_is_the_authors_median_filter():
    import scipy.signal

    rng = np.random.default_rng(3)
    boxes = rng.uniform(50, 250, (40, 4))
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(20, 80, (40, 2))
    smooth = lrasd.smooth_boxes(boxes)
    s = scipy.signal.medfilt(
        np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2, 13
    )
    x = scipy.signal.medfilt((boxes[:, 0] + boxes[:, 2]) / 2, 13)
    y = scipy.signal.medfilt((boxes[:, 1] + boxes[:, 3]) / 2, 13)
    np.testing.assert_allclose(smooth, np.stack([x - s, y - s, x + s, y + s], axis=1))
    # a steady box stays where it is (square, same centre and half-side); short tracks too
    for n in (1, 2, 5, 7, 13, 30):
        steady = lrasd.smooth_boxes(np.tile([10.0, 20.0, 50.0, 80.0], (n, 1)))
        np.testing.assert_allclose(steady, np.tile([0.0, 20.0, 60.0, 80.0], (n, 1)))


def test_long_tracks_are_embedded_in_chunks_equal_to_one_pass(ref):
    model = lrasd.load_lrasd("ava")
    faces = ref["faces_u8"]
    with torch.inference_mode():
        whole = model.visual_embed(torch.from_numpy(faces)[None])[0]
    chunked = lrasd.visual_embed_long(model, faces, chunk_frames=30)
    assert chunked.shape == (len(faces), 128)
    torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=1e-4)
