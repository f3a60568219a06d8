"""Calibrate the sync decision (``speaker.lip_energy_weight``, ``speaker.min_sync_confidence``) on
REAL talks against every cross-dubbed pair.

``curation.calibrate_speaker`` builds one dubbed copy per talk with ffmpeg and runs the whole
pipeline on every variant: the end-to-end check of the shipped thresholds. With a dozen talks that
is a dozen dubbed negatives, too few to choose a threshold that must keep 80-95 % of them out. Here
every face is scored against every other talk's sound instead (N talks: N x (N - 1) dubbed pairs),
and against its own sound shifted by ±0.5 and ±1 s, at the level of the active-speaker stage:

- :func:`record` curates one talk with the thresholds open and keeps, per window that reaches the
  active-speaker stage, the pipeline's own inputs (LR-ASD face crops, the window's place in the talk)
  and the talk's sound;
- :func:`score_cases` scores each window's face against each case's sound exactly as curation does
  (MFCCs, speech mask from the case's sound, frame energies, windows pooled with
  ``context_windows`` neighbours) and returns the two components of the sync confidence per window:
  the offset contrast and the lip-energy correlation;
- :func:`choose` sets the correlation's weight to the ratio of the two components' spreads over the
  dubbed pairs (each then counts alike) and chooses the threshold by leave-one-talk-out: for each
  talk, the lowest threshold that keeps at most ``max_false_keep`` of the negatives of the OTHER
  talks (pairs that do not involve the held-out talk), applied to the held-out talk's windows.

Run: ``python -m curation.calibrate_sync TALK.mp4 ... --out DIR`` (docs/speaker_calibration.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from avforge.core.media import FPS
from avforge.core.media import SAMPLE_RATE_HZ as AUDIO_RATE_HZ
from avforge.variants import delay, fit_length
from curation.calibrate_speaker import auc, open_config
from curation.config import CurateConfig
from curation.decode import decode_audio
from curation.faces import load_detector
from curation.lrasd import mfcc_for_frames
from curation.select import candidate_windows
from curation.snr import make_estimator
from curation.speaker import (
    ActiveSpeaker,
    SpeakerConfig,
    SpeakerScores,
    frame_energy_db,
    pooled_components,
)
from curation.vad import detect_speech
from curation.windows import WindowChecker, analyse

RATE = AUDIO_RATE_HZ
SHIFTS_S = (-1.0, -0.5, 0.5, 1.0)


@dataclass(frozen=True, eq=False)
class Talk:
    """One real talk as the active-speaker stage saw it."""

    name: str
    sound: np.ndarray
    """The talk's own sound, mono float32 at 16 kHz."""
    windows: list[tuple[float, np.ndarray]]
    """(start in s, LR-ASD face crops (T, 112, 112) uint8) of each window that reached the stage."""


def record(path: Path, cfg: CurateConfig | None = None) -> Talk:
    """Curate ``path`` (a real in-sync single-face talk) with the thresholds open; its windows."""
    cfg = open_config(cfg or CurateConfig())
    detector = load_detector(cfg.faces)
    a = analyse(str(path), cfg, detector)
    end_s = len(a.audio) / cfg.decode.sample_rate_hz
    cands = candidate_windows(0.0, end_s, a.speech, a.tracks, cfg.segments, None)
    recorded: list[tuple[float, np.ndarray]] = []
    checker = WindowChecker(
        a,
        cfg,
        detector,
        make_estimator(cfg.snr),
        None,
        False,
        on_face_crops=lambda start_s, crops: recorded.append((start_s, crops)),
    )
    checker.run(cands)
    sound = decode_audio(str(path), sample_rate_hz=RATE)
    return Talk(path.stem, sound, recorded)


def _case_sounds(talk: Talk, others: Sequence[Talk]) -> dict[tuple[str, str], np.ndarray]:
    """(kind, sound source) -> the case's sound over the talk's length."""
    n = len(talk.sound)
    out = {("in_sync", talk.name): talk.sound}
    for s in SHIFTS_S:
        out[(f"shift{s:+.1f}", talk.name)] = delay(talk.sound, s, RATE)
    for o in others:
        if o.name != talk.name:
            out[("dubbed", o.name)] = fit_length(o.sound, n)
    return out


def score_cases(
    talks: Sequence[Talk], speaker: ActiveSpeaker, show_progress: bool = True
) -> list[dict]:
    """One row per (face talk, case, window): the offset contrast and the lip-energy correlation."""
    rows: list[dict] = []
    jobs = [(t, key, sound) for t in talks for key, sound in _case_sounds(t, talks).items()]
    bar = tqdm(total=len(jobs), unit="case", disable=not show_progress, dynamic_ncols=True)
    for talk, (kind, source), sound in jobs:
        speech = detect_speech(sound, RATE, CurateConfig().vad)
        scores: list[SpeakerScores] = []
        for start_s, faces in talk.windows:
            t = len(faces)
            first = round(start_s * RATE)
            seg = sound[first : first + round(t * RATE / FPS)]
            mask = speech.mask(start_s, start_s + t / FPS, FPS)
            scores.append(
                speaker.score(
                    faces, mfcc_for_frames(seg, t, RATE), mask, frame_energy_db(seg, t, RATE)
                )
            )
        components = pooled_components(scores, speaker.cfg)
        for (start_s, _), (c, r, off) in zip(talk.windows, components, strict=True):
            rows.append(
                {
                    "talk": talk.name,
                    "kind": kind,
                    "sound": source,
                    "start_s": start_s,
                    "contrast": round(c, 4),
                    "correlation": round(r, 4),
                    "offset_s": off,
                }
            )
        bar.update(1)
    bar.close()
    return rows


def _negative(r: dict) -> bool:
    return r["kind"] == "dubbed" or r["kind"] in ("shift-1.0", "shift+1.0")


def _involves(r: dict, talk: str) -> bool:
    return talk in (r["talk"], r["sound"])


def threshold_for(neg: Sequence[float], max_false_keep: float) -> float:
    """The lowest threshold (keep when score >= it) that keeps at most ``max_false_keep`` of ``neg``."""
    v = np.sort(np.asarray(neg, float))[::-1]
    allowed = int(np.floor(max_false_keep * len(v) + 1e-9))
    if len(v) == 0:
        return 0.0
    return round(float(v[allowed]) + 1e-3, 3) if allowed < len(v) else round(float(v[-1]), 3)


def choose(
    rows: list[dict],
    max_false_keep: float,
    weight: float | None = None,
    threshold: float | None = None,
) -> dict:
    """The correlation's weight and the threshold (see the module docstring), with held-out results.
    A given ``weight`` or ``threshold`` is used as it is (to evaluate chosen values on new talks)."""
    dub = [r for r in rows if r["kind"] == "dubbed"]
    if weight is None:
        spread = np.std([r["contrast"] for r in dub]) / max(
            np.std([r["correlation"] for r in dub]), 1e-6
        )
        weight = round(float(spread), 1)
    for r in rows:
        r["sync"] = r["contrast"] + weight * r["correlation"]
    talks = sorted({r["talk"] for r in rows})
    per_talk: dict[str, dict] = {}
    kept = {"in_sync": [0, 0], "dubbed": [0, 0], "shift ±1 s": [0, 0], "shift ±0.5 s": [0, 0]}
    thresholds = []
    for talk in talks:
        train_neg = [r["sync"] for r in rows if _negative(r) and not _involves(r, talk)]
        t = threshold if threshold is not None else threshold_for(train_neg, max_false_keep)
        thresholds.append(t)
        mine = [r for r in rows if r["talk"] == talk]
        groups = {
            "in_sync": [r for r in mine if r["kind"] == "in_sync"],
            "dubbed": [r for r in mine if r["kind"] == "dubbed"],
            "shift ±1 s": [r for r in mine if r["kind"] in ("shift-1.0", "shift+1.0")],
            "shift ±0.5 s": [r for r in mine if r["kind"] in ("shift-0.5", "shift+0.5")],
        }
        per_talk[talk] = {"threshold": t}
        for g, rs in groups.items():
            k = sum(r["sync"] >= t for r in rs)
            kept[g][0] += k
            kept[g][1] += len(rs)
            per_talk[talk][g] = f"{k}/{len(rs)}"
        per_talk[talk]["in_sync_score"] = round(
            float(np.mean([r["sync"] for r in groups["in_sync"]])), 2
        )
    pos = [r for r in rows if r["kind"] == "in_sync"]
    aucs = {}
    for measure in ("contrast", "correlation", "sync"):
        p = [r[measure] for r in pos]
        aucs[measure] = {
            "dubbed": round(auc(p, [r[measure] for r in dub]), 3),
            "shift ±1 s": round(
                auc(p, [r[measure] for r in rows if r["kind"] in ("shift-1.0", "shift+1.0")]), 3
            ),
            "shift ±0.5 s": round(
                auc(p, [r[measure] for r in rows if r["kind"] in ("shift-0.5", "shift+0.5")]), 3
            ),
        }
    return {
        "fixed": threshold is not None,
        "talks": len(talks),
        "windows": {g: v[1] for g, v in kept.items()},
        "lip_energy_weight": weight,
        "max_false_keep": max_false_keep,
        "threshold_all_talks": threshold_for(
            [r["sync"] for r in rows if _negative(r)], max_false_keep
        ),
        "held_out_thresholds": [min(thresholds), max(thresholds)],
        "held_out_kept": {g: round(v[0] / max(1, v[1]), 3) for g, v in kept.items()},
        "auc": aucs,
        "per_talk": per_talk,
    }


def markdown(result: dict) -> str:
    """The result as Markdown tables."""
    lines = [
        f"{result['talks']} real talks; windows: "
        + ", ".join(f"{g} {n}" for g, n in result["windows"].items()),
        "",
        "| measure | AUC vs dubbed | vs shift ±1 s | vs shift ±0.5 s |",
        "|---|---:|---:|---:|",
    ]
    for m, a in result["auc"].items():
        lines.append(f"| {m} | {a['dubbed']} | {a['shift ±1 s']} | {a['shift ±0.5 s']} |")
    kept = ", ".join(f"{g} {v}" for g, v in result["held_out_kept"].items())
    if result.get("fixed"):
        choice = [
            f"Weight {result['lip_energy_weight']} and threshold "
            f"{result['held_out_thresholds'][0]} given (chosen on other talks), not chosen here. "
            f"Fraction of windows kept: {kept}",
        ]
    else:
        choice = [
            f"Weight of the correlation: {result['lip_energy_weight']}. Threshold keeping at most "
            f"{result['max_false_keep']:.0%} of negatives: {result['threshold_all_talks']} on all "
            f"talks, {result['held_out_thresholds'][0]}..{result['held_out_thresholds'][1]} "
            "without each talk.",
            "",
            f"Held out (each talk scored with the threshold chosen without it): fraction of windows "
            f"kept: {kept}",
        ]
    lines += [
        "",
        *choice,
        "",
        "| talk | threshold | in-sync score | in sync | dubbed | shift ±1 s | shift ±0.5 s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for talk, d in result["per_talk"].items():
        lines.append(
            f"| {talk} | {d['threshold']} | {d['in_sync_score']} | {d['in_sync']} | {d['dubbed']} "
            f"| {d['shift ±1 s']} | {d['shift ±0.5 s']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("talks", nargs="+", type=Path, help="real in-sync single-face talks")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--max-false-keep",
        type=float,
        default=0.1,
        help="fraction of dubbed and ±1 s shifted windows a threshold may keep (default 0.1)",
    )
    ap.add_argument("--work", type=Path, help="cache of recorded talks (default: a temporary one)")
    ap.add_argument(
        "--fixed",
        nargs=2,
        type=float,
        metavar=("WEIGHT", "THRESHOLD"),
        help="evaluate this weight and threshold (chosen on other talks) instead of choosing them",
    )
    ap.add_argument(
        "--rescore",
        type=Path,
        metavar="JSON",
        help="re-decide from an earlier run's sync_pairs.json instead of scoring talks again",
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    weight, threshold = args.fixed if args.fixed else (None, None)
    if args.rescore is not None:
        rows = json.loads(args.rescore.read_text())["rows"]
        _write(args.out, choose(rows, args.max_false_keep, weight, threshold), rows)
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="avforge-sync-cal-"))
    work.mkdir(parents=True, exist_ok=True)
    talks = []
    for path in tqdm(args.talks, unit="talk", dynamic_ncols=True):
        cache = work / f"{path.stem}.npz"
        if cache.exists():
            z = np.load(cache)
            wins = [(float(s), z[f"faces{i}"]) for i, s in enumerate(z["starts"])]
            talks.append(Talk(path.stem, z["sound"], wins))
            continue
        talk = record(path)
        np.savez_compressed(
            cache,
            sound=talk.sound,
            starts=np.array([s for s, _ in talk.windows]),
            **{f"faces{i}": f for i, (_, f) in enumerate(talk.windows)},
        )
        talks.append(talk)
    talks = [t for t in talks if t.windows]
    speaker = ActiveSpeaker(SpeakerConfig())
    rows = score_cases(talks, speaker)
    _write(args.out, choose(rows, args.max_false_keep, weight, threshold), rows)
    return 0


def _write(out: Path, result: dict, rows: list[dict]) -> None:
    (out / "sync_pairs.json").write_text(json.dumps({"result": result, "rows": rows}, indent=1))
    (out / "sync_pairs.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    raise SystemExit(main())
