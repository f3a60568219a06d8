"""``avforge evaluate CHECKPOINT... --mixtures FROZEN_SET``: score trained separators on a frozen set.

Input: one or more trained models (a Lightning checkpoint ``*.ckpt`` from ``avforge train`` or a
``model.pt`` package) and a frozen mixture set: a folder whose ``mixtures`` manifest holds recipes
(``avforge mix freeze``) over the clips of a corpus (``--corpus``, default: the set's own folder).
Each recipe is rendered exactly as frozen; each model separates it; every separated speaker gets SDR,
SDRi, SI-SDRi, PESQ and STOI against its target (audio-only outputs are matched to the targets by the
best permutation, AV outputs follow the faces). An AV model with k faces is scored on the first k
speakers of each recipe.

Output (:func:`training.report.write_report`): the paper's Table 3 layout (task x model, SDRi dB) plus
SI-SDRi / PESQ / STOI tables, a gender-pair breakdown when genders are known, ``results.csv``,
``summary.json`` and the Fig. 5 style scatter ``input_sdr_scatter.png``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from avforge.config import config_from_dict
from manifests import read_mixtures, table_to_records
from manifests.schema import MixtureSpec
from mixing.config import FaceStream, RenderConfig
from mixing.render import MixtureRenderer
from training import losses, metrics
from training.data import DataError, check_lip_features, collate
from training.models import AudioVisualSeparator, MaskSeparator, load_model
from training.report import EvalRecord, model_label, render_tables, write_report


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


@torch.no_grad()
def evaluate_model(
    model: MaskSeparator,
    specs: Sequence[MixtureSpec],
    renderer: MixtureRenderer,
    *,
    batch_size: int = 8,
    perceptual: bool = True,
    device: str | torch.device = "cpu",
) -> list[EvalRecord]:
    """One :class:`EvalRecord` per separated speaker of every recipe in ``specs``."""
    is_av = isinstance(model, AudioVisualSeparator)
    n = model.n_faces if isinstance(model, AudioVisualSeparator) else model.init_args["n_src"]
    label = model_label(is_av, n)
    stream = face_stream_of(model)
    model = model.to(device).eval()
    records: list[EvalRecord] = []
    for start in range(0, len(specs), batch_size):
        chunk = specs[start : start + batch_size]
        short = [s.mixture_id for s in chunk if len(s.clip_ids) < n]
        if short:
            raise EvaluateError(f"{label} model needs {n} speakers; recipes {short} have fewer")
        batch = collate([renderer(s) for s in chunk], stream)
        faces = batch.faces[:, :n].to(device) if is_av and batch.faces is not None else None
        out = model(batch.mixture.to(device), faces).waveforms[:, :n].float().cpu()
        targets = batch.sources[:, :n]
        if not is_av and n > 1:
            out = align_to_targets(out, targets)
        m = metrics.evaluate_sources(out, targets, batch.mixture, perceptual=perceptual)
        for b, spec in enumerate(chunk):
            for i in range(n):
                records.append(
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
                    )
                )
    return records


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
        records += evaluate_model(
            model, specs, renderer, batch_size=batch_size, perceptual=perceptual, device=device
        )
    write_report(records, out_dir)
    return records, render_tables(records)
