"""Pseudo-speakers: cluster clips' voice embeddings across the whole corpus.

Contract:

- input: (n, 256) unit voice embeddings (``curation.voice``), one per clip;
- output: :func:`cluster_speakers` -> (n,) int labels, clips with one label being one pseudo-speaker:
  average-linkage agglomerative clustering on cosine similarity, merged while the average similarity
  between two clusters is at least ``threshold``. :data:`DEFAULT_THRESHOLD` was chosen on real speech
  with known speakers (LibriSpeech, 3-5 s pieces of one utterance per speaker) on half of the
  speakers and measured on the other half (``python -m curation.clusters``; numbers and plot in
  docs/splits.md);
- cost: O(n²) memory and time (the condensed distance matrix: 8 bytes x n²/2, 400 MB at 10 000
  clips); :func:`cluster_speakers` refuses more than :data:`MAX_CLIPS` clips with a ``ValueError``.

:func:`purity` / :func:`inverse_purity` are the clustering scores the calibration reports: purity is
the share of clips whose cluster's majority speaker is their speaker (1.0 = no cluster mixes
speakers), inverse purity the share of clips whose speaker's majority cluster is their cluster
(1.0 = no speaker is split over clusters). A leak-free split needs high inverse purity most (a split
speaker can leak); purity keeps groups small.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

DEFAULT_THRESHOLD = 0.78
"""Cosine similarity at which two clusters merge (average linkage); docs/splits.md has its calibration."""
MAX_CLIPS = 30000


class ClusteringLimitError(ValueError):
    """More clips than :func:`cluster_speakers` handles (:data:`MAX_CLIPS`)."""


def cluster_speakers(embeddings: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """(n,) int pseudo-speaker labels 0..k-1 of ``embeddings`` (n, d) (see the module docstring)."""
    x = np.asarray(embeddings, np.float64)
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    if n > MAX_CLIPS:
        raise ClusteringLimitError(
            f"{n} clips is more than speaker clustering handles ({MAX_CLIPS}); "
            "run `avforge split --no-speakers` or split the corpus"
        )
    if n == 1:
        return np.zeros(1, np.int64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    dist = np.clip(pdist(x, "cosine"), 0.0, 2.0)
    z = linkage(dist, method="average")
    raw = fcluster(z, t=1.0 - threshold, criterion="distance")
    # Relabel in order of first appearance: labels depend on the clips' order only.
    _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.int64)


def purity(truth: Sequence[object], labels: Sequence[object]) -> float:
    """Share of items whose cluster's most common true class is their class."""
    if not len(truth):
        return 1.0
    by_cluster: dict[object, Counter[object]] = {}
    for t, c in zip(truth, labels, strict=True):
        by_cluster.setdefault(c, Counter())[t] += 1
    return sum(cnt.most_common(1)[0][1] for cnt in by_cluster.values()) / len(truth)


def inverse_purity(truth: Sequence[object], labels: Sequence[object]) -> float:
    """Share of items whose class's most common cluster is their cluster."""
    return purity(labels, truth)


# --------------------------------------------------------------------------- calibration


def speech_pieces(
    path: Path, rng: np.random.Generator, min_s: float = 3.0, max_s: float = 5.0
) -> list[np.ndarray]:
    """Consecutive non-overlapping pieces of a 16 kHz utterance, each ``min_s``..``max_s`` long (a
    remainder shorter than ``min_s`` is dropped)."""
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=False)
    if rate != 16000:
        raise ValueError(f"{path}: expected 16 kHz, got {rate}")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    pieces = []
    pos = 0
    while True:
        length = int(rng.uniform(min_s, max_s) * rate)
        if pos + length > len(audio):
            break
        pieces.append(audio[pos : pos + length])
        pos += length
    return pieces


def calibrate(
    speech_dir: Path,
    out_dir: Path,
    seed: int = 0,
    thresholds: np.ndarray | None = None,
    keep_embeddings: bool = False,
) -> dict[str, float]:
    """Choose the clustering threshold on half of the speakers in ``speech_dir`` (LibriSpeech names
    ``SPEAKER-CHAPTER-UTT.flac``), measure it on the other half; writes ``calibration.csv``,
    ``calibration.png``, ``result.txt`` (and ``embeddings.npz`` when ``keep_embeddings``) in
    ``out_dir``; returns the numbers."""
    from curation.voice import load_voice_encoder

    enc = load_voice_encoder()
    rng = np.random.default_rng(seed)
    files = sorted(speech_dir.glob("*.flac"))
    if not files:
        raise ValueError(f"no .flac files in {speech_dir}")
    speakers: list[str] = []
    embs: list[np.ndarray] = []
    durations: list[float] = []
    for f in files:
        for piece in speech_pieces(f, rng):
            speakers.append(f.name.split("-")[0])
            embs.append(enc.embed(piece))
            durations.append(len(piece) / 16000)
    emb = np.stack(embs)
    spk = np.array(speakers)
    uniq = np.array(sorted(set(speakers)))
    perm = rng.permutation(len(uniq))
    tune_spk = set(uniq[perm[: len(uniq) // 2]])
    tune = np.array([s in tune_spk for s in spk])
    grid = np.round(np.arange(0.50, 0.951, 0.01), 2) if thresholds is None else thresholds

    def scores(mask: np.ndarray, t: float) -> tuple[float, float, int]:
        lab = cluster_speakers(emb[mask], float(t))
        return purity(spk[mask], lab), inverse_purity(spk[mask], lab), int(lab.max() + 1)

    rows = []
    for t in grid:
        p_a, ip_a, k_a = scores(tune, t)
        p_b, ip_b, k_b = scores(~tune, t)
        rows.append((float(t), p_a, ip_a, k_a, p_b, ip_b, k_b))
    # Chosen on the tuning half only: the best worst-of-both (ties: the lower threshold, which
    # merges more and so splits fewer speakers).
    best = max(rows, key=lambda r: (round(min(r[1], r[2]), 4), -r[0]))
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "calibration.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "threshold",
                "tune_purity",
                "tune_inverse_purity",
                "tune_clusters",
                "heldout_purity",
                "heldout_inverse_purity",
                "heldout_clusters",
            ]
        )
        for r in rows:
            w.writerow(
                [
                    f"{r[0]:.2f}",
                    f"{r[1]:.4f}",
                    f"{r[2]:.4f}",
                    r[3],
                    f"{r[4]:.4f}",
                    f"{r[5]:.4f}",
                    r[6],
                ]
            )
    if keep_embeddings:
        np.savez_compressed(
            out_dir / "embeddings.npz", embeddings=emb.astype(np.float16), speakers=spk
        )
    # Baselines on the held-out half: one cluster per clip, one cluster for all.
    held = ~tune
    n_held = int(held.sum())
    singletons = np.arange(n_held)
    result = {
        "threshold": best[0],
        "tune_purity": best[1],
        "tune_inverse_purity": best[2],
        "heldout_purity": best[4],
        "heldout_inverse_purity": best[5],
        "heldout_clusters": float(best[6]),
        "heldout_speakers": float(len(set(spk[held]))),
        "heldout_clips": float(n_held),
        "tune_speakers": float(len(tune_spk)),
        "tune_clips": float(int(tune.sum())),
        "clip_seconds_mean": float(np.mean(durations)),
        "baseline_singletons_inverse_purity": inverse_purity(spk[held], singletons),
        "baseline_one_cluster_purity": purity(spk[held], np.zeros(n_held)),
    }
    _plot(rows, best[0], out_dir / "calibration.png")
    with open(out_dir / "result.txt", "w") as fh:
        for k, v in result.items():
            fh.write(f"{k}: {v:.4f}\n")
    return result


def _plot(rows: list[tuple], chosen: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(t, [r[1] for r in rows], "C0--", label="purity (tuning half)")
    ax.plot(t, [r[2] for r in rows], "C1--", label="inverse purity (tuning half)")
    ax.plot(t, [r[4] for r in rows], "C0-", label="purity (held-out half)")
    ax.plot(t, [r[5] for r in rows], "C1-", label="inverse purity (held-out half)")
    ax.axvline(chosen, color="k", lw=0.8)
    ax.axhline(0.9, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("merge threshold (cosine similarity, average linkage)")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Pseudo-speaker clustering on real LibriSpeech speakers")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python -m curation.clusters --speech DIR --out DIR``: the threshold calibration."""
    p = argparse.ArgumentParser(prog="python -m curation.clusters", description=main.__doc__)
    p.add_argument(
        "--speech", type=Path, default=Path("../shared/data/speech/librispeech-train-clean-100")
    )
    p.add_argument("--out", type=Path, default=Path("docs/splits_calibration"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-embeddings", action="store_true", help="Also write embeddings.npz.")
    a = p.parse_args(argv)
    result = calibrate(a.speech, a.out, a.seed, keep_embeddings=a.keep_embeddings)
    for k, v in result.items():
        print(f"{k}: {v:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
