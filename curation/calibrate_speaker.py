"""Calibrate and evaluate the active-speaker decisions on REAL talking-face videos.

Contract: :func:`build_variants` turns real in-sync single-face talks into labelled test cases with
ffmpeg (``avforge.variants``): the talk itself, dubbed with another talk's sound, its own sound
shifted by ±0.5 and ±1 s, a still face over its own sound, two talks side by side, and the talk under
real babble and music. :func:`calibrate` curates them with both speaker thresholds open, reads each
window's speaking score and sync confidence from ``segments``, and chooses each threshold by
leave-one-talk-out: for every talk, the threshold is chosen on the OTHER talks (the best balanced
accuracy, ties to the lower value) and applied to the held-out talk's windows. :func:`evaluate`
curates the same cases with the shipped config and reports, per talk and case, the fraction of its
seconds in kept clips, and the rejection reasons. Both write a Markdown table and plots.

Run: ``python -m curation.calibrate_speaker TALK.mp4 ... --out DIR [--noise F --music F
--music-heldout F]``
(docs/speaker_calibration.md shows the result on the bundled and shared real talks).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avforge import variants
from avforge.core import assets
from avforge.core.cluster import ClusterConfig
from avforge.core.config import config_from_dict
from curation.config import CurateConfig
from curation.pipeline import curate
from curation.sources import scan_folder

POSITIVE = "in_sync"
NEGATIVE_SYNC = ("dubbed", "shift+1.0", "shift-1.0", "shift+0.5", "shift-0.5")
NEGATIVE_SPEAKING = ("still_face",)
NOISY = ("babble", "music", "music_heldout")
"""Cases under real noise (at 0 dB): curated only with the shipped thresholds, never in the open pass."""
CASES = (POSITIVE, *NEGATIVE_SYNC, *NEGATIVE_SPEAKING, "two_faces", *NOISY)


@dataclass(frozen=True)
class Case:
    """One variant video: which talk it was made from and what it is."""

    talk: str
    kind: str
    path: Path


def bundled_babble(path: Path, seconds: float = 20.0) -> Path:
    """A babble of five real read-speech recordings bundled with avforge (LibriSpeech and CMU ARCTIC
    speakers, avforge/assets/audio/PROVENANCE.md), summed at equal level, written to ``path``."""
    import soundfile as sf

    names = (
        *assets.speech_files(("libri_f1", "libri_m5", "libri_m6")),
        assets.VOICES["aew"].files[0],
        assets.VOICES["axb"].files[0],
    )
    n = round(16000 * seconds)
    out = np.zeros(n, np.float32)
    for k, name in enumerate(names):
        x, _ = sf.read(assets.audio_path(name), dtype="float32")
        x = np.tile(x, n // len(x) + 2)[k * 3000 : k * 3000 + n]
        out += x / (np.sqrt(np.mean(x**2)) + 1e-9)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * out / np.sqrt(np.mean(out**2)), 16000)
    return path


def build_variants(
    talks: Sequence[Path],
    out: Path,
    babble: Path | None = None,
    music: Path | None = None,
    music_heldout: Path | None = None,
) -> list[Case]:
    """Every case of every talk under ``out`` (``<talk>__<kind>.mp4``); existing files are reused."""
    out.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    names = [t.stem for t in talks]
    for i, talk in enumerate(talks):
        other = talks[(i + 1) % len(talks)]
        name = names[i]

        def target(kind: str, name: str = name) -> Path:
            return out / f"{name}__{kind}.mp4"

        jobs = {
            POSITIVE: lambda p, t=talk: shutil.copyfile(t, p),
            "dubbed": lambda p, t=talk, o=other: variants.dubbed(t, o, p),
            "shift+1.0": lambda p, t=talk: variants.shifted(t, 1.0, p),
            "shift-1.0": lambda p, t=talk: variants.shifted(t, -1.0, p),
            "shift+0.5": lambda p, t=talk: variants.shifted(t, 0.5, p),
            "shift-0.5": lambda p, t=talk: variants.shifted(t, -0.5, p),
            "still_face": lambda p, t=talk: variants.still_face(t, p),
            "two_faces": lambda p, t=talk, o=other: variants.side_by_side(t, o, p),
        }
        if babble is not None:
            jobs["babble"] = lambda p, t=talk: variants.noisy(t, babble, 0.0, p)
        if music is not None:
            jobs["music"] = lambda p, t=talk: variants.noisy(t, music, 0.0, p)
        if music_heldout is not None:
            jobs["music_heldout"] = lambda p, t=talk: variants.noisy(t, music_heldout, 0.0, p)
        for kind, make in jobs.items():
            path = target(kind)
            if not path.exists():
                make(path)
            cases.append(Case(name, kind, path))
    return cases


def _curate_cases(cases: Sequence[Case], corpus: Path, cfg: CurateConfig) -> list[dict]:
    """Curate the case files into ``corpus``; each segment row with its case's talk and kind."""
    folder = cases[0].path.parent
    sources = scan_folder(folder)
    by_name = {c.path.name: c for c in cases}
    sources = [s for s in sources if Path(s.url).name in by_name]
    curate(sources, str(corpus), cfg, ClusterConfig())
    import manifests

    url_of = {
        r["source_id"]: Path(r["url"]).name for r in manifests.read_sources(str(corpus)).to_pylist()
    }
    rows = []
    for r in manifests.read_segments(str(corpus)).to_pylist():
        case = by_name.get(url_of.get(r["source_id"], ""))
        if case is not None:
            rows.append({**r, "talk": case.talk, "kind": case.kind, "reason": r["reason"]})
    return rows


def auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """Area under the ROC curve of scores ``pos`` (label 1) against ``neg`` (label 0); ties count 1/2."""
    if not pos or not neg:
        return float("nan")
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def best_threshold(pos: Sequence[float], neg: Sequence[float]) -> float:
    """The threshold (keep when score >= it) with the best balanced accuracy; ties to the lower one
    (recall first), placed halfway between neighbouring scores."""
    values = np.unique(np.concatenate([np.asarray(pos, float), np.asarray(neg, float)]))
    if len(values) == 0:
        return 0.0
    cands = np.concatenate(
        [[values[0] - 1e-3], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-3]]
    )
    p, n = np.asarray(pos, float), np.asarray(neg, float)
    best, best_t = -1.0, float(cands[0])
    for t in cands:
        tpr = float((p >= t).mean()) if len(p) else 0.0
        tnr = float((n < t).mean()) if len(n) else 0.0
        score = (tpr + tnr) / 2
        if score > best + 1e-12:
            best, best_t = score, float(t)
    return round(best_t, 3)


def _scored(
    rows: list[dict], measure: str, kinds: Sequence[str], talk: str | None = None
) -> list[float]:
    return [
        float(r[measure])
        for r in rows
        if r["kind"] in kinds and r[measure] is not None and (talk is None or r["talk"] == talk)
    ]


def _loo(rows: list[dict], measure: str, neg_kinds: Sequence[str]) -> dict:
    """Leave-one-talk-out threshold choice and held-out keep rates for one measure."""
    talks = sorted({r["talk"] for r in rows})
    held: dict[str, dict] = {}
    kept_pos = kept_neg = n_pos = n_neg = 0
    for talk in talks:
        train = [r for r in rows if r["talk"] != talk]
        t = best_threshold(_scored(train, measure, (POSITIVE,)), _scored(train, measure, neg_kinds))
        pos = _scored(rows, measure, (POSITIVE,), talk)
        neg = _scored(rows, measure, neg_kinds, talk)
        held[talk] = {
            "threshold": t,
            "positives_kept": f"{sum(v >= t for v in pos)}/{len(pos)}",
            "negatives_kept": f"{sum(v >= t for v in neg)}/{len(neg)}",
        }
        kept_pos += sum(v >= t for v in pos)
        kept_neg += sum(v >= t for v in neg)
        n_pos, n_neg = n_pos + len(pos), n_neg + len(neg)
    pos_all = _scored(rows, measure, (POSITIVE,))
    neg_all = _scored(rows, measure, neg_kinds)
    return {
        "measure": measure,
        "negatives": list(neg_kinds),
        "auc": round(auc(pos_all, neg_all), 3),
        "threshold_all_talks": best_threshold(pos_all, neg_all),
        "held_out_recall": round(kept_pos / max(1, n_pos), 3),
        "held_out_false_keep": round(kept_neg / max(1, n_neg), 3),
        "per_talk": held,
    }


def open_config(base: CurateConfig) -> CurateConfig:
    """``base`` with both speaker thresholds open and the SNR and music checks off (every window is
    scored)."""
    return dataclasses.replace(
        base,
        speaker=dataclasses.replace(
            base.speaker, min_speaking_score=-20.0, min_sync_confidence=-20.0
        ),
        snr=dataclasses.replace(
            base.snr, threshold_db=-20.0, music_threshold=None, music_model=None
        ),
        run=dataclasses.replace(base.run, progress=False),
    )


def calibrate(
    cases: Sequence[Case], work: Path, base: CurateConfig | None = None, fresh: bool = False
) -> dict:
    """Scores of every window of every case with the thresholds open; leave-one-talk-out choices.

    The open-threshold corpus in ``work`` is reused (a rerun resumes; cases curated before are
    skipped) unless ``fresh``."""
    base = base or CurateConfig()
    corpus = work / "corpus_open"
    if fresh:
        shutil.rmtree(corpus, ignore_errors=True)
    rows = _curate_cases([c for c in cases if c.kind not in NOISY], corpus, open_config(base))
    scored = [r for r in rows if r["speaking_score"] is not None]
    return {
        "windows": [
            {
                k: r[k]
                for k in (
                    "talk",
                    "kind",
                    "start_s",
                    "end_s",
                    "speaking_score",
                    "sync_score",
                    "sync_offset_s",
                )
            }
            for r in scored
        ],
        "speaking": _loo(scored, "speaking_score", NEGATIVE_SPEAKING),
        "sync": _loo(scored, "sync_score", NEGATIVE_SYNC),
        "speaking_score_vs_sync_negatives": _loo(scored, "speaking_score", NEGATIVE_SYNC),
    }


def kept_fraction(rows: list[dict], durations: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per talk and case: seconds in kept windows / the case video's duration."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    kept: dict[tuple[str, str], float] = defaultdict(float)
    for r in rows:
        if r["kept"]:
            kept[(r["talk"], r["kind"])] += r["end_s"] - r["start_s"]
    for (talk, kind), dur in durations.items():  # type: ignore[misc]
        out[talk][kind] = round(kept[(talk, kind)] / dur, 3) if dur > 0 else 0.0
    return dict(out)


def evaluate(cases: Sequence[Case], work: Path, cfg: CurateConfig | None = None) -> dict:
    """Curate every case with ``cfg`` (the shipped defaults); kept fractions and reasons per case."""
    from curation.decode import probe_media

    cfg = cfg or CurateConfig()
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, progress=False))
    corpus = work / "corpus_eval"
    shutil.rmtree(corpus, ignore_errors=True)
    rows = _curate_cases(cases, corpus, cfg)
    durations = {(c.talk, c.kind): probe_media(str(c.path)).duration_s for c in cases}
    reasons: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        reasons[r["kind"]][r["reason"] or "kept"] += 1
    return {
        "kept_fraction": kept_fraction(rows, durations),  # type: ignore[arg-type]
        "reasons": {k: dict(v) for k, v in reasons.items()},
    }


def plot_scores(result: dict, path: Path, cfg: CurateConfig) -> None:
    """Strip plots of speaking score and sync confidence per case kind, with the shipped thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [POSITIVE, *NEGATIVE_SYNC, *NEGATIVE_SPEAKING, "two_faces"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    rng = np.random.default_rng(0)
    for ax, measure, thr, label in (
        (
            axes[0],
            "speaking_score",
            cfg.speaker.min_speaking_score,
            "speaking score (mean LR-ASD logit)",
        ),
        (
            axes[1],
            "sync_score",
            cfg.speaker.min_sync_confidence,
            "sync confidence (offset contrast + weight x lip-energy correlation)",
        ),
    ):
        for y, kind in enumerate(kinds):
            vals = [w[measure] for w in result["windows"] if w["kind"] == kind]
            ax.scatter(
                vals,
                y + rng.uniform(-0.18, 0.18, len(vals)),
                s=14,
                alpha=0.7,
                color="tab:green" if kind == POSITIVE else "tab:red",
            )
        ax.axvline(thr, color="k", ls="--", lw=1)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_yticks(range(len(kinds)), kinds)
    fig.suptitle("Real talks: one dot per 3-10 s window (dashed: shipped threshold)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict, cfg: CurateConfig) -> str:
    """The calibration and evaluation tables as Markdown (docs/speaker_calibration.md embeds them)."""
    lines: list[str] = []
    cal = report.get("calibration")
    if cal:
        lines += [
            "| measure | negatives | windows (pos / neg) | AUC | threshold on all talks | "
            "held-out recall | held-out false keeps |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for key in ("speaking", "sync", "speaking_score_vs_sync_negatives"):
            r = cal[key]
            pos = len(_scored(cal["windows"], r["measure"], (POSITIVE,)))
            neg = len(_scored(cal["windows"], r["measure"], r["negatives"]))
            lines.append(
                f"| `{r['measure']}` | {', '.join(r['negatives'])} | {pos} / {neg} | {r['auc']:.3f} | "
                f"{r['threshold_all_talks']:.2f} | {r['held_out_recall']:.2f} | "
                f"{r['held_out_false_keep']:.2f} |"
            )
        lines.append("")
    ev = report.get("evaluation")
    if ev:
        kinds = [k for k in CASES if any(k in v for v in ev["kept_fraction"].values())]
        lines += [
            f"Fraction of each video's seconds in kept clips (shipped defaults: "
            f"`min_speaking_score` {cfg.speaker.min_speaking_score}, `min_sync_confidence` "
            f"{cfg.speaker.min_sync_confidence}, SNR threshold {cfg.snr.threshold_db} dB, music "
            f"threshold {cfg.snr.music_threshold}):",
            "",
            "| talk | " + " | ".join(kinds) + " |",
            "|---|" + "---:|" * len(kinds),
        ]
        for talk, row in sorted(ev["kept_fraction"].items()):
            cells = [f"{row[k]:.2f}" if k in row else "" for k in kinds]
            lines.append(f"| {talk} | " + " | ".join(cells) + " |")
        lines += ["", "| case | segments by outcome |", "|---|---|"]
        for kind in kinds:
            got = ev["reasons"].get(kind, {})
            lines.append(
                f"| {kind} | " + ", ".join(f"{k} {v}" for k, v in sorted(got.items())) + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("talks", nargs="+", type=Path, help="real in-sync single-face talks")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--babble", type=Path, help="real babble recording (default: 5 bundled real voices summed)"
    )
    ap.add_argument("--music", type=Path, help="real music recording")
    ap.add_argument(
        "--music-heldout",
        type=Path,
        help="a second real music recording, one the music threshold was not chosen on",
    )
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    ap.add_argument("--skip-calibrate", action="store_true", help="only evaluate the defaults")
    ap.add_argument("--fresh", action="store_true", help="re-curate the open-threshold corpus")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="avforge-asd-cal-"))
    args.out.mkdir(parents=True, exist_ok=True)
    babble = args.babble or bundled_babble(work / "babble.wav")
    cases = build_variants(args.talks, work / "cases", babble, args.music, args.music_heldout)
    cfg = config_from_dict(CurateConfig, {})
    report: dict = {}
    previous = args.out / "results.json"
    if (
        args.skip_calibrate and previous.exists()
    ):  # keep the last calibration beside a new evaluation
        report["calibration"] = json.loads(previous.read_text()).get("calibration")
    if not args.skip_calibrate:
        report["calibration"] = calibrate(cases, work, cfg, fresh=args.fresh)
        plot_scores(report["calibration"], args.out / "scores.png", cfg)
    report["evaluation"] = evaluate(cases, work, cfg)
    (args.out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / "results.md").write_text(markdown(report, cfg))
    print(
        json.dumps(
            {k: v for k, v in report.get("calibration", {}).items() if k != "windows"}, indent=1
        )
    )
    print(json.dumps(report["evaluation"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
