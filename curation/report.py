"""Report: ``avforge report DIR`` -> one self-contained HTML page of plots about a curated corpus.

Contract: :func:`report_data` reads the corpus manifests and computes the numbers (pure given the
tables); :func:`write_report` renders them as matplotlib PNGs embedded in the HTML (base64, no external
files) and writes ``DIR/report.html`` (or the given path). Sections:

- the funnel: hours of media at each stage (sources fetched, candidate windows, then what is left
  after each check in the decision order of ``curation.select``), rejections by reason (count and
  hours), failed sources by reason;
- SNR histogram of the segments that reached the SNR check (kept vs rejected) with the threshold;
- duration histogram of kept clips; faces per detection frame over all candidate windows;
- thumbnails (middle face crop) of a few kept clips.

An empty corpus gives a page saying so. Unreadable manifests raise ``manifests.ManifestError``.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import yaml

import manifests
from avforge.core import files
from curation.splits import LeakReport, find_leaks, read_split_records
from manifests.io import exists, join, media_file
from manifests.schema import RejectReason

DECISION_ORDER = (
    RejectReason.NO_FACE,
    RejectReason.MULTIPLE_FACES,
    RejectReason.FACE_HINT_MISMATCH,
    RejectReason.NO_SPEECH,
    RejectReason.TOO_SHORT,
    RejectReason.LOW_SNR,
    RejectReason.FACE_MISSING_FRAMES,
    RejectReason.LOW_FACE_QUALITY,
    RejectReason.NOT_IN_SYNC,
)
"""The order of the checks in ``curation.select.decide`` (the funnel's stages)."""


@dataclass(frozen=True, eq=False)
class ReportData:
    """The numbers behind the report."""

    sources_ok: int
    sources_failed: int
    failed_by_reason: dict[str, int]
    source_hours: float
    funnel: list[tuple[str, float]]
    """(stage, hours left after it), from the candidate windows to the kept clips."""
    rejected_count: dict[str, int]
    rejected_hours: dict[str, float]
    kept_clips: int
    kept_hours: float
    snr_db_kept: np.ndarray
    snr_db_rejected: np.ndarray
    snr_threshold_db: float | None
    clip_durations_s: np.ndarray
    faces_per_frame: np.ndarray
    clips: pa.Table
    leaks: LeakReport | None = None
    """Leaks of the clips' current split given the groups of the last ``avforge split`` pass (None
    when no pass has run)."""


def _threshold(corpus: str) -> float | None:
    path = join(corpus, "config", "curate.yaml")
    if not exists(path):
        return None
    import fsspec

    with fsspec.open(path, "r") as fh:
        data = yaml.safe_load(fh) or {}
    value = (data.get("snr") or {}).get("threshold_db")
    return float(value) if isinstance(value, int | float) else None


def report_data(corpus: str) -> ReportData:
    """Read the corpus manifests and compute the report's numbers."""
    sources = manifests.read_sources(corpus).to_pylist()
    segments = manifests.read_segments(corpus).to_pylist()
    clips = manifests.read_clips(corpus)
    ok = [s for s in sources if s["status"] == "ok"]
    failed = Counter(s["error"] or "unknown" for s in sources if s["status"] != "ok")
    seg_h = [(s["end_s"] - s["start_s"]) / 3600.0 for s in segments]
    rej_count: Counter[str] = Counter()
    rej_hours: Counter[str] = Counter()
    for s, h in zip(segments, seg_h, strict=True):
        if not s["kept"] and s["reason"] is not None:
            rej_count[s["reason"]] += 1
            rej_hours[s["reason"]] += h
    left = float(sum(seg_h))
    funnel = [("candidate windows", left)]
    for reason in DECISION_ORDER:
        if rej_hours.get(reason.value):
            left -= rej_hours[reason.value]
            funnel.append((f"after {reason.value}", max(0.0, left)))
    kept_h = float(sum(h for s, h in zip(segments, seg_h, strict=True) if s["kept"]))
    funnel.append(("kept clips", kept_h))
    snr_seen = [s for s in segments if s["snr_db"] is not None]
    return ReportData(
        sources_ok=len(ok),
        sources_failed=len(sources) - len(ok),
        failed_by_reason=dict(sorted(failed.items())),
        source_hours=float(sum((s["duration_s"] or 0.0) for s in ok)) / 3600.0,
        funnel=funnel,
        rejected_count=dict(sorted(rej_count.items())),
        rejected_hours=dict(sorted(rej_hours.items())),
        kept_clips=clips.num_rows,
        kept_hours=kept_h,
        snr_db_kept=np.array([s["snr_db"] for s in snr_seen if s["kept"]], np.float64),
        snr_db_rejected=np.array([s["snr_db"] for s in snr_seen if not s["kept"]], np.float64),
        snr_threshold_db=_threshold(corpus),
        clip_durations_s=np.asarray(clips.column("duration_s").to_numpy(), np.float64),
        faces_per_frame=np.array(
            [s["num_faces"] for s in segments if s["num_faces"] is not None], np.float64
        ),
        clips=clips,
        leaks=_leaks(corpus, clips),
    )


def _leaks(corpus: str, clips: pa.Table) -> LeakReport | None:
    records = read_split_records(corpus)
    if not records:
        return None
    current = dict(
        zip(clips.column("clip_id").to_pylist(), clips.column("split").to_pylist(), strict=True)
    )
    return find_leaks(current, records)


# --------------------------------------------------------------------------- rendering


def _png(fig: object) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _funnel_png(d: ReportData) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    stages = [("sources fetched", d.source_hours), *d.funnel]
    axes[0].barh([s for s, _ in stages][::-1], [h for _, h in stages][::-1], color="#4878a8")
    axes[0].set_xlabel("hours")
    axes[0].set_title("Funnel: hours left at each stage")
    reasons = list(d.rejected_hours)
    axes[1].barh(reasons, [d.rejected_hours[r] for r in reasons], color="#c8553d")
    for i, r in enumerate(reasons):
        axes[1].text(d.rejected_hours[r], i, f" {d.rejected_count[r]}", va="center", fontsize=8)
    axes[1].set_xlabel("hours (label: segments)")
    axes[1].set_title("Rejections by reason")
    return _png(fig)


def _hist_png(d: ReportData) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
    bins = np.arange(-20, 62, 2)
    axes[0].hist(d.snr_db_rejected, bins=bins, alpha=0.7, label="rejected", color="#c8553d")
    axes[0].hist(d.snr_db_kept, bins=bins, alpha=0.7, label="kept", color="#4878a8")
    if d.snr_threshold_db is not None:
        axes[0].axvline(d.snr_threshold_db, color="k", ls="--", label="threshold")
    axes[0].set_xlabel("estimated speech SNR (dB)")
    axes[0].set_title("SNR of segments that reached the SNR check")
    axes[0].legend(fontsize=8)
    axes[1].hist(d.clip_durations_s, bins=np.arange(2.5, 10.75, 0.5), color="#4878a8")
    axes[1].set_xlabel("clip duration (s)")
    axes[1].set_title("Kept clip durations")
    axes[2].hist(d.faces_per_frame, bins=np.arange(-0.25, 4.5, 0.25), color="#6a994e")
    axes[2].set_xlabel("mean faces per detection frame")
    axes[2].set_title("Faces per frame (candidate windows)")
    return _png(fig)


def _thumbs_png(corpus: str, clips: pa.Table, max_clips: int) -> str | None:
    import matplotlib.pyplot as plt

    rows = [r for r in clips.to_pylist() if r["has_crops"]][:max_clips]
    if not rows:
        return None
    reader = manifests.MediaReader()
    fig, axes = plt.subplots(1, len(rows), figsize=(1.6 * len(rows), 2.0), squeeze=False)
    for ax, r in zip(axes[0], rows, strict=True):
        path = media_file(corpus, r["media_shard"])
        mid = r["num_frames"] // 2
        crop = reader.face_crops(path, r["media_row"], mid, mid + 1)[0]
        ax.imshow(crop)
        ax.set_title(f"{r['start_s']:.1f}-{r['end_s']:.1f} s", fontsize=7)
        ax.axis("off")
    return _png(fig)


def render_html(corpus: str, d: ReportData, max_thumbnails: int = 8) -> str:
    """The report page for ``d`` (thumbnails read from ``corpus``'s media shards)."""
    import matplotlib

    matplotlib.use("Agg")
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>avforge corpus report: {esc(corpus)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1300px}"
        "td,th{padding:2px 10px;text-align:left}</style></head><body>",
        f"<h1>Corpus report</h1><p>{esc(corpus)}</p>",
        "<table>",
        f"<tr><th>sources ok</th><td>{d.sources_ok}</td></tr>",
        f"<tr><th>sources failed</th><td>{d.sources_failed} "
        f"{esc(', '.join(f'{k}: {v}' for k, v in d.failed_by_reason.items()))}</td></tr>",
        f"<tr><th>hours fetched</th><td>{d.source_hours:.3f}</td></tr>",
        f"<tr><th>kept clips</th><td>{d.kept_clips} ({d.kept_hours:.3f} h)</td></tr>",
        "</table>",
    ]
    if not d.funnel or d.funnel[0][1] <= 0:
        parts.append("<p>No candidate segments yet.</p>")
    else:
        parts += ["<h2>Funnel</h2>", _img(_funnel_png(d), "funnel")]
        parts += ["<h2>Distributions</h2>", _img(_hist_png(d), "histograms")]
        thumbs = _thumbs_png(corpus, d.clips, max_thumbnails)
        if thumbs is not None:
            parts += ["<h2>Kept clips</h2>", _img(thumbs, "thumbnails")]
    parts.append("<h2>Split leaks</h2>")
    if d.leaks is None:
        parts.append(
            "<p>No split pass yet: run <code>avforge split CORPUS</code> to find them.</p>"
        )
    else:
        parts.append(f"<pre>{esc(d.leaks.format())}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(corpus: str, out_path: str | None = None) -> str:
    """Write the HTML report of ``corpus`` to ``out_path`` (default ``corpus/report.html``).

    Both may be local paths or fsspec URLs; the page is written atomically. Returns where it went.
    """
    d = report_data(corpus)
    path = out_path if out_path is not None else join(corpus, "report.html")
    files.atomic_write_bytes(path, render_html(corpus, d).encode("utf-8"))
    return path
