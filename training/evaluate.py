"""``avforge evaluate CHECKPOINT... --mixtures FROZEN_SET``: score trained separators on a frozen set.

Input: one or more trained models (a Lightning checkpoint ``*.ckpt`` from ``avforge train`` or a
``model.pt`` package) and a frozen mixture set: a folder whose ``mixtures`` manifest holds recipes
(``avforge mix freeze``) over the clips of a corpus (``--corpus``, default: the set's own folder).
Each recipe is rendered exactly as frozen; each model separates it; every separated speaker gets SDR,
SDRi, SI-SDRi, PESQ and STOI against its target (audio-only outputs are matched to the targets by the
best permutation, AV outputs follow the faces). As in the paper, an AV model scores every speaker: with
as many face streams as speakers in one pass, with fewer (a 1-face model on 2-speaker mixtures) in one
pass per speaker, that speaker's face first (:func:`face_passes`). An audio-only model with ``n_src``
outputs is scored on the first ``n_src`` speakers.

Output (:func:`training.eval_report.write_report`): the paper's Table 3 layout (models in rows, tasks in
columns, SDRi dB) plus SI-SDRi / PESQ / STOI tables, a gender-pair breakdown per task when the clips
manifest knows every speaker's gender (``gender``), ``results.csv``, ``summary.json`` and the Fig. 5
scatter ``input_sdr_scatter.png`` (SDR improvement against input SDR).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from avforge.core.config import config_from_dict
from manifests import read_clips, read_mixtures, table_to_records
from manifests.schema import MixtureSpec, normalize_gender
from mixing.config import FaceStream, RenderConfig
from mixing.render import MixtureRenderer
from training import losses, metrics
from training.data import DataError, check_lip_features, collate, rendered_face_shape
from training.eval_report import EvalRecord, gender_pair, model_label, render_tables, write_report
from training.models import AudioVisualSeparator, MaskSeparator, load_model
from training.models.serialize import InputMismatchError, check_input, contract_of


class EvaluateError(ValueError):
    """A model and a mixture set that do not fit together (the message says why)."""


def load_separator(path: str | Path) -> tuple[MaskSeparator, RenderConfig]:
    """(separator in eval mode, the render config it was trained with) from a checkpoint or package."""
    path = Path(path)
    if path.suffix == ".ckpt":
        from training.system import SeparationSystem

        system = SeparationSystem.load_from_checkpoint(str(path), map_location="cpu")
        resolved: dict[str, Any] = dict(system.hparams.get("resolved_config") or {})
        render = resolved.get("data", {}).get("mixing", {}).get("render")
        render_cfg = config_from_dict(RenderConfig, render) if render else RenderConfig()
        return system.model.eval(), render_cfg
    return load_model(path), RenderConfig()


def face_stream_of(model: MaskSeparator) -> FaceStream:
    if not isinstance(model, AudioVisualSeparator):
        return FaceStream.NONE
    return FaceStream(model.visual_input.value)


def align_to_targets(estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Estimates (B, n, L) permuted to best match targets (B, n, L) by SI-SDR."""
    pit = losses.PitLoss(losses.pairwise_neg_sisdr)(estimates, targets)
    return losses.reorder(estimates, pit.permutation)


def face_passes(n_faces: int, n_speakers: int) -> list[list[int]]:
    """The face orders an AV model with ``n_faces`` streams is run with on ``n_speakers`` speakers.

    As many faces as speakers: one pass, faces in order, output i is speaker i. Fewer faces (the
    paper's 1-face model on 2-speaker mixtures): one pass per speaker i, with face i first and the
    next ones (cyclically) filling the other streams; output 0 of pass i is speaker i. Either way
    every speaker is scored once.
    """
    if n_faces > n_speakers:
        raise ValueError(f"{n_faces} face streams but only {n_speakers} speakers")
    if n_faces == n_speakers:
        return [list(range(n_speakers))]
    return [[(i + k) % n_speakers for k in range(n_faces)] for i in range(n_speakers)]


def separate_speakers(
    model: MaskSeparator, mixture: torch.Tensor, faces: torch.Tensor | None, targets: torch.Tensor
) -> torch.Tensor:
    """Estimates (B, n_scored, L) on CPU, output j matched to ``targets[:, j]``.

    AV model: every speaker, through :func:`face_passes` (faces (B, n_speakers, ...) in speaker
    order). Audio-only model: its ``n_src`` outputs, permuted to best match the first ``n_src``
    targets by SI-SDR. ``mixture``, ``faces`` on the model's device; ``targets`` (B, n_speakers, L).
    """
    if not isinstance(model, AudioVisualSeparator):
        n = model.init_args["n_src"]
        out = model(mixture).waveforms[:, :n].float().cpu()
        return align_to_targets(out, targets[:, :n]) if n > 1 else out
    assert faces is not None, "collate gives faces for an AV model's face stream"
    passes = face_passes(model.n_faces, targets.shape[1])
    if len(passes) == 1:
        return model(mixture, faces[:, passes[0]]).waveforms[:, : model.n_faces].float().cpu()
    return torch.stack(
        [model(mixture, faces[:, order]).waveforms[:, 0].float().cpu() for order in passes], dim=1
    )


def clip_genders(corpus: str | Path) -> dict[str, str]:
    """clip id -> gender for the clips of ``corpus`` whose gender is known (``ClipRecord.gender``)."""
    rows = read_clips(str(corpus)).select(["clip_id", "gender"]).to_pylist()
    known = ((row["clip_id"], normalize_gender(row["gender"])) for row in rows)
    return {clip_id: gender for clip_id, gender in known if gender}


@torch.no_grad()
def evaluate_model(
    model: MaskSeparator,
    specs: Sequence[MixtureSpec],
    renderer: MixtureRenderer,
    *,
    batch_size: int = 8,
    perceptual: bool = True,
    device: str | torch.device = "cpu",
    genders: Mapping[str, str] | None = None,
) -> list[EvalRecord]:
    """One :class:`EvalRecord` per scored speaker of every recipe in ``specs``, in recipe order.

    An AV model scores every speaker of a recipe (one pass per face when it has fewer face streams
    than the recipe has speakers, see :func:`face_passes`); an audio-only model with ``n_src``
    outputs scores the first ``n_src`` speakers. ``genders`` (clip id -> gender) labels each record
    with the recipe's gender pair when every speaker's gender is known.
    """
    is_av = isinstance(model, AudioVisualSeparator)
    n = model.n_faces if isinstance(model, AudioVisualSeparator) else model.init_args["n_src"]
    label = model_label(is_av, n)
    stream = face_stream_of(model)
    short = [s.mixture_id for s in specs if len(s.clip_ids) < n]
    if short:
        raise EvaluateError(f"{label} model needs {n} speakers; recipes {short[:5]} have fewer")
    model = model.to(device).eval()
    # Recipes are batched with others of the same shape (speakers, length) only.
    groups: dict[tuple[int, float], list[int]] = {}
    for index, spec in enumerate(specs):
        groups.setdefault((len(spec.clip_ids), spec.duration_s), []).append(index)
    per_spec: dict[int, list[EvalRecord]] = {}
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            chunk = [specs[i] for i in indices[start : start + batch_size]]
            batch = collate([renderer(s) for s in chunk], stream)
            faces = batch.faces.to(device) if is_av and batch.faces is not None else None
            out = separate_speakers(model, batch.mixture.to(device), faces, batch.sources)
            scored = out.shape[1]
            targets = batch.sources[:, :scored]
            m = metrics.evaluate_sources(out, targets, batch.mixture, perceptual=perceptual)
            for b, spec in enumerate(chunk):
                pair = gender_pair([(genders or {}).get(c) for c in spec.clip_ids])
                per_spec[indices[start + b]] = [
                    EvalRecord(
                        mixture_id=spec.mixture_id,
                        task=spec.task,
                        model=label,
                        source_index=i,
                        input_sdr_db=float(m.input_sdr_db[b, i]),
                        sdr_db=float(m.sdr_db[b, i]),
                        sdri_db=float(m.sdri_db[b, i]),
                        si_sdri_db=float(m.si_sdri_db[b, i]),
                        pesq=float(m.pesq[b, i]),
                        stoi=float(m.stoi[b, i]),
                        gender_pair=pair,
                    )
                    for i in range(scored)
                ]
    return [r for i in range(len(specs)) for r in per_spec[i]]


def evaluate(
    checkpoints: Sequence[str | Path],
    mixtures: str | Path,
    out_dir: str | Path,
    *,
    corpus: str | Path | None = None,
    batch_size: int = 8,
    perceptual: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[list[EvalRecord], str]:
    """Evaluate every checkpoint on the frozen set; write the report; return (records, tables text)."""
    specs = table_to_records(read_mixtures(str(mixtures)), MixtureSpec)
    if not specs:
        raise EvaluateError(f"{mixtures}: no mixture recipes (expected a mixtures/ manifest)")
    genders = clip_genders(corpus or mixtures)
    records: list[EvalRecord] = []
    for checkpoint in checkpoints:
        model, render = load_separator(checkpoint)
        render = dataclasses.replace(render, face_stream=face_stream_of(model))
        renderer = MixtureRenderer(str(corpus or mixtures), render)
        if render.face_stream == FaceStream.LIPS:
            try:
                clip_ids = (c for spec in specs for c in spec.clip_ids)
                check_lip_features(renderer, clip_ids, str(corpus or mixtures))
            except DataError as exc:
                raise EvaluateError(f"{checkpoint}: {exc}") from None
        shape = rendered_face_shape(renderer)
        try:
            check_input(
                contract_of(model),
                sample_rate_hz=render.sample_rate_hz,
                faces_shape=None if shape is None else (1, *shape),
            )
        except InputMismatchError as exc:
            raise EvaluateError(f"{checkpoint}: {exc}") from None
        records += evaluate_model(
            model,
            specs,
            renderer,
            batch_size=batch_size,
            perceptual=perceptual,
            device=device,
            genders=genders,
        )
    write_report(records, out_dir)
    return records, render_tables(records)
