"""The numbers of a finished ``avforge demo``, read back from its outputs, and the table printed last.

Input: the demo folder (``corpus/`` manifests, ``videos/*.json`` ground truth, ``evaluation/summary.json``)
and the timings of its steps. Output: :class:`DemoSummary` (pure data) and :func:`format_table` (text).
Nothing here runs a stage; a missing or unreadable output raises (``manifests.ManifestError``,
``OSError``, ``KeyError`` for an evaluation without the expected model), and the demo reports it as a
failed step.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import manifests
from avforge.demo_config.configs import EVAL_SEED

EVAL_TASK = "2s_clean"
MODELS = ("audio-only", "AV 2 faces")
"""Model labels in ``avforge evaluate``'s summary.json (training.eval_report.model_label)."""


@dataclass(frozen=True)
class StepTiming:
    """Wall and CPU time of one demo step (CPU: this process and every child it waited for)."""

    name: str
    wall_s: float
    cpu_s: float


@dataclass(frozen=True)
class ScenarioRow:
    """Candidate segments whose largest overlap is with sections of one scenario kind."""

    kind: str
    segments: int
    kept: int
    reasons: dict[str, int]


@dataclass(frozen=True)
class DemoSummary:
    """What the final table shows."""

    sources_ok: int
    sources_failed: dict[str, int]
    segments_kept: int
    rejected_by_reason: dict[str, int]
    truth: GroundTruthCheck
    media_in_s: float
    """Seconds of source media curated."""
    clips_out_s: float
    """Seconds of kept clips."""
    curate_wall_s: float
    curate_cpu_s: float
    task_s: float
    """Wall time summed over the curation tasks (one worker core each)."""
    si_sdri_db: dict[str, float]
    eval_speakers: dict[str, int]
    """Separated speakers scored per model."""
    eval_mixtures: int
    eval_split: str
    train_split_sources: int
    train_steps: int
    """Optimiser steps of each model."""
    report: Path
    examples: list[Path]
    timings: list[StepTiming] = field(default_factory=list)


def _video_name(url: str) -> str:
    return Path(unquote(urlsplit(url).path)).name


@dataclass(frozen=True)
class GroundTruthCheck:
    """Curation against the videos' ground truth (``avforge.synth`` JSON next to each video)."""

    rows: list[ScenarioRow]
    kept_s: float
    """Seconds of kept segments."""
    clean_s: float
    """Seconds of clean single-speaker sections."""
    kept_clean_s: float
    """Seconds of kept segments inside clean single-speaker sections."""

    @property
    def precision(self) -> float:
        return self.kept_clean_s / self.kept_s if self.kept_s else float("nan")

    @property
    def recall(self) -> float:
        return self.kept_clean_s / self.clean_s if self.clean_s else float("nan")


def _overlap_s(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def check_ground_truth(corpus: Path, videos: Path) -> GroundTruthCheck:
    """Segments by the section kind they mostly lie in; kept seconds vs clean seconds (pure reads)."""
    from avforge.synth import load_truth  # the generator's package loads cv2: only when summarising

    truths = {}
    for s in manifests.read_sources(str(corpus)).to_pylist():
        json_path = (videos / _video_name(s["url"])).with_suffix(".json")
        if json_path.exists():
            truths[s["source_id"]] = load_truth(json_path)
    counts: dict[str, list[int]] = {}
    reasons: dict[str, Counter[str]] = {}
    kept_s = kept_clean_s = 0.0
    for seg in manifests.read_segments(str(corpus)).to_pylist():
        truth = truths.get(seg["source_id"])
        if truth is None:
            continue
        span = (seg["start_s"], seg["end_s"])
        overlap: Counter[str] = Counter()
        for sec in truth["sections"]:
            overlap[sec["kind"]] += _overlap_s(span, (sec["start_s"], sec["end_s"]))
        kind = overlap.most_common(1)[0][0]
        row = counts.setdefault(kind, [0, 0])
        row[0] += 1
        if seg["kept"]:
            row[1] += 1
            kept_s += span[1] - span[0]
            kept_clean_s += sum(
                _overlap_s(span, (sec["start_s"], sec["end_s"]))
                for sec in truth["sections"]
                if sec["clean_single_speaker"]
            )
        else:
            reasons.setdefault(kind, Counter())[str(seg["reason"])] += 1
    rows = [
        ScenarioRow(kind, n, kept, dict(sorted(reasons.get(kind, Counter()).items())))
        for kind, (n, kept) in sorted(counts.items())
    ]
    clean_s = sum(float(t["clean_single_speaker_s"]) for t in truths.values())
    return GroundTruthCheck(rows, kept_s, clean_s, kept_clean_s)


def summarize_demo(
    out: Path,
    timings: list[StepTiming],
    examples: list[Path],
    curate_step: str,
    train_steps: int,
) -> DemoSummary:
    """Read the demo's outputs under ``out`` (see the module docstring)."""
    corpus = out / "corpus"
    sources = manifests.read_sources(str(corpus)).to_pylist()
    segments = manifests.read_segments(str(corpus)).to_pylist()
    clips = manifests.read_clips(str(corpus)).to_pylist()
    summary = json.loads((out / "evaluation" / "summary.json").read_text())[EVAL_TASK]
    mixtures = manifests.read_mixtures(str(out / "eval_set"))
    curate = next(t for t in timings if t.name == curate_step)
    ok = [s for s in sources if s["status"] == "ok"]
    return DemoSummary(
        sources_ok=len(ok),
        sources_failed=dict(
            Counter(str(s["error"]) for s in sources if s["status"] != "ok").most_common()
        ),
        segments_kept=sum(bool(s["kept"]) for s in segments),
        rejected_by_reason=dict(
            sorted(Counter(str(s["reason"]) for s in segments if not s["kept"]).items())
        ),
        truth=check_ground_truth(corpus, out / "videos"),
        media_in_s=sum(s["duration_s"] or 0.0 for s in ok),
        clips_out_s=sum(c["duration_s"] for c in clips),
        curate_wall_s=curate.wall_s,
        curate_cpu_s=curate.cpu_s,
        task_s=sum(s["processing_s"] or 0.0 for s in sources),
        si_sdri_db={m: float(summary[m]["si_sdri_db"]) for m in MODELS},
        eval_speakers={m: int(summary[m]["count"]) for m in MODELS},
        eval_mixtures=mixtures.num_rows,
        eval_split=",".join(sorted(set(mixtures.column("split").to_pylist()))),
        train_split_sources=len({c["source_id"] for c in clips if c["split"] == "train"}),
        train_steps=train_steps,
        report=corpus / "report.html",
        examples=examples,
        timings=timings,
    )


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def format_table(s: DemoSummary) -> str:
    """The final table (plain text, one fact per line)."""
    rows: list[tuple[str, str]] = [
        ("sources", f"{s.sources_ok} ok, {sum(s.sources_failed.values())} failed"),
        (
            "segments",
            f"{s.segments_kept} kept, {sum(s.rejected_by_reason.values())} rejected "
            f"({_reasons(s.rejected_by_reason)})",
        ),
    ]
    for r in s.truth.rows:
        rows.append(
            (f"  {r.kind} sections", f"{r.segments} segments, {r.kept} kept; {_reasons(r.reasons)}")
        )
    rows.append(
        (
            "kept vs ground truth",
            f"precision {s.truth.precision:.2f} ({s.truth.kept_clean_s:.0f} of {s.truth.kept_s:.0f} "
            f"kept s are clean single-speaker speech), recall {s.truth.recall:.2f} (of "
            f"{s.truth.clean_s:.0f} clean s)",
        )
    )
    share = s.clips_out_s / s.media_in_s if s.media_in_s else 0.0
    rows += [
        (
            "hours",
            f"{s.media_in_s / 3600:.4f} in ({s.media_in_s:.0f} s), "
            f"{s.clips_out_s / 3600:.4f} out ({s.clips_out_s:.0f} s, {share:.0%})",
        ),
        (
            "curation speed",
            f"{s.media_in_s / max(s.curate_wall_s, 1e-9):.1f}x real time end to end "
            f"(wall, cluster start included); "
            f"{s.media_in_s / max(s.curate_cpu_s, 1e-9):.1f}x per CPU second; "
            f"{s.media_in_s / max(s.task_s, 1e-9):.1f}x per worker core (task time)",
        ),
    ]
    for model, value in s.si_sdri_db.items():
        rows.append(
            (
                f"SI-SDRi {model}",
                f"{value:+.2f} dB after {s.train_steps} steps (2 clean speakers, "
                f"{s.eval_mixtures} mixtures, {s.eval_speakers[model]} separated speakers)",
            )
        )
    rows.append(
        (
            "evaluation set",
            f"split '{s.eval_split}': new mixtures (other pairings, crops and gains: seed {EVAL_SEED}) of "
            f"the {s.train_split_sources} training sources' clips: the demo corpus is too small to "
            f"hold speakers out, so this measures fit, not generalisation to new speakers",
        )
    )
    rows.append(("report", str(s.report)))
    rows += [("example", str(p)) for p in s.examples]
    wall = sum(t.wall_s for t in s.timings)
    cpu = sum(t.cpu_s for t in s.timings)
    rows.append(("total time", f"{wall:.0f} s wall, {cpu:.0f} s CPU"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)
