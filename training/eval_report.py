"""Evaluation reports: the AVSpeech paper's Table 3 layout, per-metric tables, the Fig. 5 scatter.

Input: :class:`EvalRecord` rows, one per separated speaker of one evaluated mixture and model.
Output (pure text / files, no model):

- :func:`table3`: model x task matrix of the mean of one metric (SDRi by default), laid out as the
  paper's Table 3: rows audio-only then AV with 1/2/3 faces, columns the tasks in the paper's order
  (1S+noise, 2S clean, 2S+noise, 3S clean); an empty cell means that model was not evaluated on
  that task;
- :func:`gender_tables`: per task, the same metric by gender pair of the mixture's speakers (model
  rows, ``F-F`` / ``F-M`` / ``M-M`` columns), for records whose speakers' genders are all known
  (:func:`gender_pair`; the clips manifest's ``gender``), else nothing;
- :func:`plot_input_sdr_scatter`: the paper's Fig. 5, SDR improvement against input SDR (mixture vs
  target), one colour per model;
- :func:`write_report`: all of the above plus ``results.csv`` and ``summary.json`` into a folder.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from manifests.schema import GENDERS, MixTask

TASK_ORDER: tuple[MixTask, ...] = (
    MixTask.ONE_SPEAKER_NOISE,
    MixTask.TWO_SPEAKERS,
    MixTask.TWO_SPEAKERS_NOISE,
    MixTask.THREE_SPEAKERS,
    MixTask.CUSTOM,
)
TASK_TITLES: dict[MixTask, str] = {
    MixTask.ONE_SPEAKER_NOISE: "1S + noise",
    MixTask.TWO_SPEAKERS: "2S clean",
    MixTask.TWO_SPEAKERS_NOISE: "2S + noise",
    MixTask.THREE_SPEAKERS: "3S clean",
    MixTask.CUSTOM: "custom",
}
MODEL_ORDER: tuple[str, ...] = ("audio-only", "AV 1 face", "AV 2 faces", "AV 3 faces")
METRICS: tuple[str, ...] = ("sdri_db", "si_sdri_db", "pesq", "stoi")
METRIC_TITLES: dict[str, str] = {
    "sdri_db": "SDR improvement (dB)",
    "si_sdri_db": "SI-SDR improvement (dB)",
    "pesq": "PESQ (wide-band MOS-LQO)",
    "stoi": "STOI",
}


@dataclasses.dataclass(frozen=True)
class EvalRecord:
    """The metrics of one separated speaker of one mixture under one model."""

    mixture_id: str
    task: MixTask
    model: str
    """Model label: ``audio-only`` or ``AV k face(s)`` (see :func:`model_label`)."""
    source_index: int
    input_sdr_db: float
    sdr_db: float
    sdri_db: float
    si_sdri_db: float
    pesq: float
    stoi: float
    gender_pair: str | None = None
    """e.g. ``F-M`` (:func:`gender_pair`), when the corpus knows every speaker's gender."""


def model_label(audio_visual: bool, n_faces: int) -> str:
    """``audio-only`` or ``AV 1 face`` / ``AV 2 faces`` / ..."""
    if not audio_visual:
        return "audio-only"
    return f"AV {n_faces} face{'s' if n_faces != 1 else ''}"


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def metric_matrix(
    records: Sequence[EvalRecord], metric: str = "sdri_db"
) -> dict[tuple[MixTask, str], float]:
    """Mean ``metric`` per (task, model) cell (NaNs, e.g. unscorable PESQ, left out of the mean)."""
    cells: dict[tuple[MixTask, str], list[float]] = defaultdict(list)
    for r in records:
        cells[(r.task, r.model)].append(float(getattr(r, metric)))
    return {key: _mean(values) for key, values in cells.items()}


def _models(records: Sequence[EvalRecord]) -> list[str]:
    """Model labels in the paper's order (audio-only, AV 1/2/3 faces), then any others sorted."""
    seen = {r.model for r in records}
    return [m for m in MODEL_ORDER if m in seen] + sorted(seen - set(MODEL_ORDER))


def _tasks(records: Sequence[EvalRecord]) -> list[MixTask]:
    return [t for t in TASK_ORDER if any(r.task == t for r in records)]


def table3(records: Sequence[EvalRecord], metric: str = "sdri_db", digits: int = 1) -> str:
    """Markdown table as the paper's Table 3: rows models, columns tasks, cells mean ``metric``."""
    matrix = metric_matrix(records, metric)
    tasks = _tasks(records)
    lines = [
        f"| {METRIC_TITLES.get(metric, metric)} | "
        + " | ".join(TASK_TITLES[t] for t in tasks)
        + " |",
        "| --- |" + " ---: |" * len(tasks),
    ]
    for model in _models(records):
        cells = [_fmt(matrix.get((t, model)), digits) for t in tasks]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


GENDER_LETTERS: dict[str, str] = {g: g[0].upper() for g in GENDERS}
"""``ClipRecord.gender`` value -> its letter in gender-pair labels (female F, male M)."""


def gender_pair(genders: Sequence[str | None]) -> str | None:
    """``F-M``-style label of a mixture's speakers (letters sorted), None unless all are known."""
    letters = [GENDER_LETTERS.get(g or "") for g in genders]
    if not letters or any(letter is None for letter in letters):
        return None
    return "-".join(sorted(letter for letter in letters if letter))


def gender_tables(records: Sequence[EvalRecord], metric: str = "sdri_db") -> list[str]:
    """One markdown table per task whose records know genders: rows models, columns gender pairs
    (``F-F``, ``F-M``, ``M-M``; one letter for 1-speaker tasks), cells mean ``metric``."""
    known = [r for r in records if r.gender_pair]
    tables = []
    for task in _tasks(known):
        sub = [r for r in known if r.task == task]
        pairs = sorted({r.gender_pair for r in sub if r.gender_pair})
        title = f"{METRIC_TITLES.get(metric, metric)}, {TASK_TITLES[task]}, by gender pair"
        lines = [f"| {title} | " + " | ".join(pairs) + " |", "| --- |" + " ---: |" * len(pairs)]
        for model in _models(sub):
            cells = [
                _fmt(
                    _mean(
                        [
                            float(getattr(r, metric))
                            for r in sub
                            if r.model == model and r.gender_pair == pair
                        ]
                    ),
                    1,
                )
                for pair in pairs
            ]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        tables.append("\n".join(lines))
    return tables


def plot_input_sdr_scatter(
    records: Sequence[EvalRecord], path: str | Path
) -> dict[str, tuple[list[float], list[float]]]:
    """PNG scatter as the paper's Fig. 5: input SDR (x, mixture vs target) against SDR improvement
    (y), one colour per model, with y = 0 (no improvement) drawn. Returns the plotted points per
    model, read back from the figure: ``{model: (xs, ys)}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    plotted: dict[str, tuple[list[float], list[float]]] = {}
    for model in _models(records):
        sub = [r for r in records if r.model == model]
        points = ax.scatter(
            [r.input_sdr_db for r in sub], [r.sdri_db for r in sub], s=10, alpha=0.6, label=model
        )
        offsets = np.asarray(points.get_offsets(), dtype=float)
        plotted[model] = (offsets[:, 0].tolist(), offsets[:, 1].tolist())
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--", label="no improvement")
    ax.set_xlabel("input SDR (dB)")
    ax.set_ylabel("SDR improvement (dB)")
    ax.set_title("SDR improvement vs input SDR")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path))
    plt.close(fig)
    return plotted


def summary(records: Sequence[EvalRecord]) -> dict[str, dict[str, dict[str, float]]]:
    """Nested means: summary[task][model][metric], plus ``count`` of separated speakers."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for metric in METRICS:
        for (task, model), value in metric_matrix(records, metric).items():
            out.setdefault(task.value, {}).setdefault(model, {})[metric] = value
    for r in records:
        cell = out[r.task.value][r.model]
        cell["count"] = cell.get("count", 0) + 1
    return out


def render_tables(records: Sequence[EvalRecord]) -> str:
    """Table 3 (SDRi) followed by the SI-SDRi, PESQ and STOI tables and the gender breakdown."""
    parts = [table3(records, "sdri_db"), table3(records, "si_sdri_db")]
    parts += [table3(records, "pesq", 2), table3(records, "stoi", 3)]
    parts += gender_tables(records)
    return "\n\n".join(parts) + "\n"


def write_report(records: Sequence[EvalRecord], out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.csv``, ``table3.md``, ``summary.json``, ``input_sdr_scatter.png`` to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out / "results.csv",
        "tables": out / "table3.md",
        "summary": out / "summary.json",
        "scatter": out / "input_sdr_scatter.png",
    }
    fields = [f.name for f in dataclasses.fields(EvalRecord)]
    with paths["results"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in records:
            row = dataclasses.asdict(r)
            row["task"] = r.task.value
            writer.writerow(row)
    paths["tables"].write_text(render_tables(records))
    paths["summary"].write_text(json.dumps(summary(records), indent=2, allow_nan=True))
    plot_input_sdr_scatter(records, paths["scatter"])
    return paths
