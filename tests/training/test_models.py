"""Shapes of the AVSpeech model for 1/2/3 face streams, the spectral round trip, serialisation."""

from __future__ import annotations

import pytest
import torch

from tests.training.conftest import TINY_AUDIO, TINY_VISUAL
from training.models import (
    AudioOnlySeparator,
    AudioVisualSeparator,
    VisualInput,
    load_model,
    save_model,
    spectral,
)
from training.models.streams import PAPER_AUDIO_LAYERS, AudioStream

THREE_S = 48000


def test_stft_has_257_bins_and_298_frames_per_3_s() -> None:
    spec = spectral.stft(torch.randn(2, THREE_S))
    assert spec.shape == (2, 257, 298)
    assert spectral.num_frames(THREE_S) == 298


def test_istft_inverts_stft_where_frames_cover_the_signal() -> None:
    x = torch.randn(3, THREE_S)
    y = spectral.istft(spectral.stft(x), THREE_S)
    assert y.shape == x.shape
    inner = slice(spectral.WIN_LENGTH, THREE_S - spectral.WIN_LENGTH)
    assert torch.allclose(y[:, inner], x[:, inner], atol=1e-5)


def test_power_law_compression_round_trips_and_compresses_magnitude() -> None:
    spec = spectral.stft(torch.randn(1, 16000))
    c = spectral.compress(spec, 0.3)
    assert torch.allclose(c.abs(), (spec.abs() + 1e-8).pow(0.3), rtol=1e-4, atol=1e-6)
    assert torch.allclose(torch.angle(c[spec.abs() > 1e-3]), torch.angle(spec[spec.abs() > 1e-3]))
    back = spectral.decompress(c, 0.3)
    assert torch.allclose(back, spec, rtol=1e-3, atol=1e-4)


def test_paper_audio_stream_has_15_layers_of_96_filters() -> None:
    stream = AudioStream()
    convs = [m for m in stream.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 15
    assert [c.out_channels for c in convs] == [96] * 14 + [8]
    assert [c.kernel_size for c in convs[:3]] == [(1, 7), (7, 1), (5, 5)]
    assert [c.dilation for c in convs[3:8]] == [(2, 1), (4, 1), (8, 1), (16, 1), (32, 1)]
    assert [c.dilation for c in convs[9:14]] == [(2, 2), (4, 4), (8, 8), (16, 16), (32, 32)]
    assert convs[-1].kernel_size == (1, 1)
    assert len(PAPER_AUDIO_LAYERS) == 14


@pytest.mark.parametrize("n_faces", [1, 2, 3])
def test_audio_visual_shapes_for_1_2_3_face_streams(n_faces: int) -> None:
    model = AudioVisualSeparator(n_faces=n_faces, embedding_dim=32, **TINY_AUDIO, **TINY_VISUAL)
    out = model(torch.randn(2, THREE_S), torch.randn(2, n_faces, 75, 32))
    assert out.masks.shape == (2, n_faces, 257, 298, 2)
    assert out.compressed.shape == (2, n_faces, 257, 298)
    assert out.waveforms.shape == (2, n_faces, THREE_S)
    assert out.visual is not None and out.visual.shape == (2, n_faces, 298, 8)
    assert out.masks.abs().max() < model.init_args["mask_bound"]


def test_residual_mask_adds_one_output_and_crops_front_end_runs() -> None:
    model = AudioVisualSeparator(
        n_faces=2, residual_mask=True, visual_input=VisualInput.CROPS, **TINY_AUDIO, **TINY_VISUAL
    )
    crops = torch.randint(0, 256, (2, 2, 25, 24, 24, 3), dtype=torch.uint8)
    out = model(torch.randn(2, 16000), crops)
    assert out.waveforms.shape == (2, 3, 16000)


def test_visual_features_follow_each_face() -> None:
    """The visual stream is shared: swapping faces swaps their features (nearest 25 -> 100 Hz)."""
    model = AudioVisualSeparator(n_faces=2, embedding_dim=16, **TINY_AUDIO, **TINY_VISUAL).eval()
    faces = torch.randn(1, 2, 25, 16)
    mix = torch.randn(1, 16000)
    a = model(mix, faces).visual
    b = model(mix, faces.flip(1)).visual
    assert a is not None and b is not None
    assert torch.allclose(a, b.flip(1), atol=1e-6)
    assert a.shape[2] == spectral.num_frames(16000)


def test_wrong_number_of_faces_is_an_error() -> None:
    model = AudioVisualSeparator(n_faces=2, embedding_dim=16, **TINY_AUDIO, **TINY_VISUAL)
    with pytest.raises(ValueError, match="2 face streams"):
        model(torch.randn(1, 16000), torch.randn(1, 3, 25, 16))


def test_audio_only_shapes() -> None:
    model = AudioOnlySeparator(n_src=3, residual_mask=True, **TINY_AUDIO)
    out = model(torch.randn(2, THREE_S))
    assert out.masks.shape == (2, 4, 257, 298, 2)
    assert out.visual is None


@pytest.mark.parametrize(
    "model",
    [
        AudioOnlySeparator(n_src=2, **TINY_AUDIO),
        AudioVisualSeparator(n_faces=2, embedding_dim=16, cmc_dim=4, **TINY_AUDIO, **TINY_VISUAL),
    ],
)
def test_serialised_model_rebuilds_with_identical_outputs(model, tmp_path) -> None:
    model.eval()
    path = tmp_path / "model.pt"
    save_model(model, path)
    again = load_model(path)
    assert type(again) is type(model)
    assert again.init_args == model.init_args
    mix = torch.randn(1, 16000)
    faces = torch.randn(1, 2, 25, 16) if isinstance(model, AudioVisualSeparator) else None
    assert torch.equal(model(mix, faces).waveforms, again(mix, faces).waveforms)
