"""The paper's 1-face model and evaluation: one pass per face, Table 3 orientation, Fig. 5 axes,
and the gender-pair table from clip genders (set by a Lhotse import).

Known answers come from an oracle "model" that returns, for the face in its first stream, that
speaker's rendered target: scored per face it must get every speaker right, so a pass that feeds
the wrong face (or a speaker left unscored) shows.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from typer.testing import CliRunner

from avforge.core.config import ConfigError, config_from_dict
from avforge.interop.cli import register
from avforge.interop.lhotse_import import (
    LhotseImportConfig,
    LhotseImportError,
    import_lhotse,
    read_speaker_genders,
)
from avforge.testing.corpus import ASSETS, LIP_DIM
from avforge.testing.training_corpus import build_two_speaker_corpus
from manifests import read_clips, write_records
from manifests.schema import MixTask, MixtureSpec, Split, normalize_gender
from mixing.config import FaceStream, RenderConfig
from mixing.render import MixtureRenderer
from tests.training.conftest import TINY_AUDIO, TINY_VISUAL
from training import metrics
from training.batch import SeparationBatch
from training.config import ModelConfig, TrainConfig
from training.eval_report import EvalRecord, plot_input_sdr_scatter, render_tables, table3
from training.evaluate import evaluate, evaluate_model, face_passes
from training.models import AudioOnlySeparator, AudioVisualSeparator, SeparationOutput, save_model
from training.system import SeparationSystem

DURATION_S = 0.8
TINY_MODEL = {**TINY_AUDIO, **TINY_VISUAL}


# --------------------------------------------------------------------------- the 1-face model


def _train_config(kind: str, n_sources: int, **model: object) -> TrainConfig:
    return config_from_dict(
        TrainConfig,
        {
            "model": {"kind": kind, "n_sources": n_sources, **model},
            "data": {"mixing": {"task": "2s_clean", "duration_s": DURATION_S}},
        },
    )


def test_the_one_face_model_has_a_single_output_by_default() -> None:
    cfg = _train_config("audio_visual", 1, visual_input="embeddings", embedding_dim=6)
    assert not cfg.model.residual_mask and cfg.model.n_outputs == 1
    model = ModelConfig(n_sources=1, visual_input="embeddings", embedding_dim=6, **TINY_MODEL)
    system = SeparationSystem.from_configs(model)
    assert isinstance(system.model, AudioVisualSeparator) and system.model.n_out == 1
    sources = torch.randn(2, 2, 4000)
    batch = SeparationBatch(sources.sum(1), sources, torch.randn(2, 2, 7, 6))
    torch.testing.assert_close(system.targets(batch), sources[:, :1])  # the face's speaker only
    out = system.model(batch.mixture, batch.faces[:, :1])
    assert out.waveforms.shape == (2, 1, 4000)
    # The residual output stays an option.
    with_residual = _train_config("audio_visual", 1, residual_mask=True)
    assert with_residual.model.n_outputs == 2
    # Unordered audio-only outputs still need somewhere to put the other speaker.
    with pytest.raises(ConfigError, match="residual_mask"):
        _train_config("audio_only", 1)


# --------------------------------------------------------------------------- one pass per face


def test_face_passes_score_every_speaker_once() -> None:
    assert face_passes(2, 2) == [[0, 1]]
    assert face_passes(1, 2) == [[0], [1]]
    assert face_passes(1, 3) == [[0], [1], [2]]
    assert face_passes(2, 3) == [[0, 1], [1, 2], [2, 0]]
    with pytest.raises(ValueError):
        face_passes(3, 2)


class FaceOracle(AudioVisualSeparator):
    """Output k = the rendered target of the speaker whose face is in stream k (found by the
    mixture's bytes and the clip's media row, column 1 of the test corpus's lip features) plus 1 %
    of the mixture, so that SDR is finite (about 40 dB) for the right speaker."""

    def __init__(self, n_faces: int, answers: dict[tuple[bytes, int], np.ndarray]) -> None:
        super().__init__(
            n_faces=n_faces, visual_input="lips", lip_dim=LIP_DIM, **TINY_AUDIO, **TINY_VISUAL
        )
        self.answers = answers

    def forward(self, mixture: torch.Tensor, faces: torch.Tensor | None = None) -> SeparationOutput:
        assert faces is not None and faces.shape[1] == self.n_faces
        out = torch.stack(
            [
                torch.stack(
                    [
                        torch.from_numpy(
                            self.answers[
                                (mixture[b].numpy().tobytes(), int(faces[b, k, :, 1].max()))
                            ]
                        )
                        for k in range(self.n_faces)
                    ]
                )
                for b in range(mixture.shape[0])
            ]
        )
        dummy = torch.zeros(1)
        return SeparationOutput(waveforms=out, compressed=dummy, masks=dummy)


def _spec(mixture_id: str, clip_ids: list[str], gains_db: list[float]) -> MixtureSpec:
    return MixtureSpec(
        mixture_id=mixture_id,
        task=MixTask.TWO_SPEAKERS,
        seed=0,
        duration_s=DURATION_S,
        clip_ids=clip_ids,
        offsets_s=[0.4, 0.2],
        starts_s=[0.0, 0.0],
        gains_db=gains_db,
        rir_ids=[None, None],
        split=Split.TEST,
    )


@pytest.fixture(scope="module")
def lips_corpus(tmp_path_factory) -> Path:
    return build_two_speaker_corpus(
        tmp_path_factory.mktemp("eval") / "corpus", with_lip_features=True
    )


def test_a_one_face_model_on_two_speaker_mixtures_scores_both_speakers(lips_corpus) -> None:
    specs = [
        _spec("m0", ["aew-u2-test", "axb-u2-test"], [0.0, -6.0]),
        _spec("m1", ["axb-u2-test", "aew-u2-test"], [0.0, 3.0]),
        _spec("m2", ["aew-u1-train", "axb-u0-train"], [0.0, 0.0]),
    ]
    renderer = MixtureRenderer(str(lips_corpus), RenderConfig(face_stream=FaceStream.LIPS))
    answers: dict[tuple[bytes, int], np.ndarray] = {}
    expected_input_sdr: dict[tuple[str, int], float] = {}
    for spec in specs:
        rendered = renderer(spec)
        for i, clip_id in enumerate(spec.clip_ids):
            row = renderer.clips[clip_id].row
            answer = rendered.targets[i] + 0.01 * rendered.mixture
            answers[(rendered.mixture.tobytes(), row)] = answer
            mix, tgt = torch.from_numpy(rendered.mixture), torch.from_numpy(rendered.targets[i])
            expected_input_sdr[(spec.mixture_id, i)] = float(metrics.sdr(mix[None], tgt[None])[0])

    one_face = evaluate_model(
        FaceOracle(1, answers), specs, renderer, batch_size=2, perceptual=False
    )
    assert [(r.mixture_id, r.source_index) for r in one_face] == [
        (m, i) for m in ("m0", "m1", "m2") for i in (0, 1)
    ]
    for r in one_face:
        assert r.model == "AV 1 face"
        assert r.sdr_db > 30.0  # the oracle's answer for the face it was given, for both speakers
        assert r.input_sdr_db == pytest.approx(expected_input_sdr[(r.mixture_id, r.source_index)])
        assert r.sdri_db == pytest.approx(r.sdr_db - r.input_sdr_db)
    # The -6 dB speaker starts lower than the 0 dB one: both were scored, each against itself.
    by_key = {(r.mixture_id, r.source_index): r for r in one_face}
    assert by_key[("m0", 1)].input_sdr_db < by_key[("m0", 0)].input_sdr_db - 3.0

    two_faces = evaluate_model(FaceOracle(2, answers), specs, renderer, perceptual=False)
    assert [(r.model, r.source_index) for r in two_faces[:2]] == [
        ("AV 2 faces", 0),
        ("AV 2 faces", 1),
    ]
    assert len(two_faces) == 6 and all(r.sdr_db > 30.0 for r in two_faces)


# --------------------------------------------------------------------------- report layout


def _record(task: MixTask, model: str, sdri: float, input_sdr: float = 0.0, sdr: float = 99.0):
    return EvalRecord("m", task, model, 0, input_sdr, sdr, sdri, sdri, float("nan"), float("nan"))


def test_table3_has_models_in_rows_and_tasks_in_columns() -> None:
    records = [
        _record(MixTask.TWO_SPEAKERS, "AV 2 faces", 10.0),
        _record(MixTask.TWO_SPEAKERS, "AV 2 faces", 12.0),
        _record(MixTask.THREE_SPEAKERS, "AV 1 face", 9.5),
        _record(MixTask.TWO_SPEAKERS, "audio-only", 9.0),
        _record(MixTask.ONE_SPEAKER_NOISE, "AV 1 face", 14.2),
    ]
    lines = table3(records).splitlines()
    assert lines[0] == "| SDR improvement (dB) | 1S + noise | 2S clean | 3S clean |"
    assert lines[2] == "| audio-only |  | 9.0 |  |"
    assert lines[3] == "| AV 1 face | 14.2 |  | 9.5 |"
    assert lines[4] == "| AV 2 faces |  | 11.0 |  |"
    assert len(lines) == 5


def test_fig5_plots_sdr_improvement_against_input_sdr(tmp_path) -> None:
    records = [
        _record(MixTask.TWO_SPEAKERS, "audio-only", sdri=5.0, input_sdr=-3.0, sdr=2.0),
        _record(MixTask.TWO_SPEAKERS, "audio-only", sdri=1.0, input_sdr=4.0, sdr=5.0),
        _record(MixTask.TWO_SPEAKERS, "AV 1 face", sdri=8.0, input_sdr=-3.0, sdr=5.0),
    ]
    plotted = plot_input_sdr_scatter(records, tmp_path / "fig5.png")
    assert plotted == {"audio-only": ([-3.0, 4.0], [5.0, 1.0]), "AV 1 face": ([-3.0], [8.0])}
    assert (tmp_path / "fig5.png").read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- gender pairs


UTTERANCES = {  # CMU ARCTIC: aew is a male speaker, axb a female one
    "aew-1": ("cmu_arctic_us_aew_a0001.wav", "aew", "M"),
    "aew-2": ("cmu_arctic_us_aew_a0002.wav", "aew", "M"),
    "axb-4": ("cmu_arctic_us_axb_a0004.wav", "axb", "F"),
    "axb-5": ("cmu_arctic_us_axb_a0005.wav", "axb", "F"),
}


# The first lines of LibriSpeech's SPEAKERS.TXT (CC BY 4.0, (c) 2014 Vassil Panayotov et al.; the copy
# in ../shared/data/speech/librispeech-train-clean-100/), a name containing "|" included.
SPEAKERS_TXT = """\
; gender: 'F' for female, 'M' for male
;ID  |SEX| SUBSET           |MINUTES| NAME
19   | F | train-clean-100  | 25.19 | Kara Shallenberg
26   | M | train-clean-100  | 25.08 | Denny Sayers
60   | M | train-clean-100  | 20.18 | |CBW|Simon
"""


def _lhotse_corpus(tmp_path: Path, genders: str | None) -> Path:
    """The four utterances imported through the Lhotse import: genders given by the supervisions
    (``supervision``), by a SPEAKERS.TXT-style file (``file``), or not at all (None)."""
    cuts = []
    for cut_id, (name, speaker, gender) in UTTERANCES.items():
        rec = Recording.from_file(ASSETS / name, recording_id=cut_id)
        given = gender if genders == "supervision" else None
        sup = SupervisionSegment(cut_id, cut_id, 0.0, rec.duration, speaker=speaker, gender=given)
        cuts.append(MonoCut(cut_id, 0.0, rec.duration, 0, recording=rec, supervisions=[sup]))
    manifest = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    speakers = tmp_path / "SPEAKERS.TXT"
    speakers.write_text(
        SPEAKERS_TXT + "aew  | M | arctic | 1.0 | aew\naxb  | F | arctic | 1.0 | axb\n"
    )
    corpus = tmp_path / "corpus"
    cfg = LhotseImportConfig(speaker_genders=str(speakers) if genders == "file" else None)
    import_lhotse(manifest, str(corpus), cfg)
    specs = [
        _spec("f-m", ["aew-1", "axb-4"], [0.0, 0.0]),
        _spec("m-m", ["aew-1", "aew-2"], [0.0, 0.0]),
        _spec("f-f", ["axb-5", "axb-4"], [0.0, 0.0]),
    ]
    write_records(str(corpus), "mixtures", "frozen-00000", specs)
    return corpus


@pytest.mark.parametrize("genders", ["supervision", "file", None])
def test_gender_table_appears_when_the_clips_know_genders(tmp_path, genders: str | None) -> None:
    corpus = _lhotse_corpus(tmp_path, genders)
    clips = read_clips(str(corpus)).to_pydict()
    known = dict(zip(clips["clip_id"], clips["gender"], strict=True))
    if genders:
        assert known == {"aew-1": "male", "aew-2": "male", "axb-4": "female", "axb-5": "female"}
    else:
        assert set(known.values()) == {None}
    package = tmp_path / "ao.pt"
    save_model(AudioOnlySeparator(n_src=2, **TINY_AUDIO).eval(), package)
    records, tables = evaluate([package], corpus, tmp_path / "eval", perceptual=False)
    assert len(records) == 6
    pairs = {r.mixture_id: r.gender_pair for r in records}
    if not genders:
        assert set(pairs.values()) == {None} and "gender pair" not in tables
        return
    assert pairs == {"f-m": "F-M", "m-m": "M-M", "f-f": "F-F"}
    lines = tables.split("by gender pair")[1].splitlines()
    assert lines[0].endswith("| F-F | F-M | M-M |")
    order = ("F-F", "F-M", "M-M")
    sdri = {p: np.mean([r.sdri_db for r in records if r.gender_pair == p]) for p in order}
    assert lines[2] == "| audio-only | " + " | ".join(f"{sdri[p]:.1f}" for p in order) + " |"
    assert tables == render_tables(records)
    with (tmp_path / "eval" / "results.csv").open() as fh:
        assert {row["gender_pair"] for row in csv.DictReader(fh)} == {"F-M", "M-M", "F-F"}


def test_speaker_genders_file_and_its_errors(tmp_path) -> None:
    path = tmp_path / "SPEAKERS.TXT"
    path.write_text(SPEAKERS_TXT)
    assert read_speaker_genders(path) == {"19": "female", "26": "male", "60": "male"}
    path.write_text("speaker\tsex\n103\tF\n1034\tM\n")  # a header row is skipped
    assert read_speaker_genders(path) == {"103": "female", "1034": "male"}
    path.write_text("; nothing\nspeaker|sex\n")
    with pytest.raises(LhotseImportError, match="no speaker genders"):
        read_speaker_genders(path)
    with pytest.raises(LhotseImportError, match="cannot read speaker genders"):
        read_speaker_genders(tmp_path / "missing.txt")
    # Through the CLI: one error: line, exit status 2, nothing imported.
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    manifest = tmp_path / "cuts.jsonl.gz"
    rec = Recording.from_file(ASSETS / UTTERANCES["aew-1"][0], recording_id="aew-1")
    CutSet.from_cuts([rec.to_cut()]).to_file(manifest)
    args = ["import", "lhotse", str(manifest), "--out", str(tmp_path / "corpus")]
    result = CliRunner().invoke(app, [*args, "--speaker-genders", str(tmp_path / "missing.txt")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: cannot read speaker genders")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "corpus" / "clips").exists()


def test_gender_spellings() -> None:
    assert [normalize_gender(g) for g in ("F", "m", "Female", " MALE ", "", "x", None)] == [
        "female",
        "male",
        "female",
        "male",
        None,
        None,
        None,
    ]
