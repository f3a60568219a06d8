"""SNR-estimator calibration: the AVSpeech paper's Fig. 3(b) on real speech + real noise and music.

Contract: :func:`calibrate_snr` mixes real speech (the bundled CMU ARCTIC and LibriSpeech utterances)
with real noise and music (kitchen noise, an exercise bike, solo guitar) at known true SNRs, ``-5..35``
dB in 1 dB bins, ``mixtures_per_bin`` mixtures a bin (seeded), scores every mixture with each estimator,
and writes into ``out_dir``:

- ``snr_calibration.png``: estimated vs true SNR per estimator (mean ± 1 std per bin, identity line,
  the 17 dB target and the chosen threshold);
- ``snr_calibration.csv``: per bin and estimator: mean, std, and the fraction kept at the threshold;
- ``snr_calibration.md``: the same table in Markdown, with the thresholds and their precision/recall.

True SNR is measured on active speech: the speech power is the mean power of the clean utterance's
20 ms frames within 40 dB of its loudest frame (a simplified ITU-T P.56 active level), the noise power
is over the whole segment. Each mixture is a 3 s segment: a random window of concatenated utterances
of the pool (pauses included, as in real talks) plus a random window of one noise recording.

Threshold rule (documented in docs/snr_calibration/README.md): for each estimator, the smallest
estimate ``T`` (on a 0.5 dB grid) such that at most ``max_false_keep`` (5 %) of the mixtures with an
estimate >= ``T`` have a true SNR under ``target_db`` (17 dB, the paper's cut). Deterministic for a seed.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from curation.snr import SnrConfig, SnrEstimatorKind, VadGatedSnrEstimator, WadaSnrEstimator

ASSETS_DIR = Path(__file__).resolve().parents[1] / "avforge" / "assets" / "audio"
SPEECH_FILES = (
    "cmu_arctic_us_aew_a0001.wav",
    "cmu_arctic_us_aew_a0002.wav",
    "cmu_arctic_us_aew_a0003.wav",
    "cmu_arctic_us_axb_a0004.wav",
    "cmu_arctic_us_axb_a0005.wav",
    "cmu_arctic_us_axb_a0006.wav",
    "arctic_a0010.wav",
    "librispeech_example1.wav",
    "librispeech_example2.flac",
    "librispeech_example5.wav",
    "librispeech_example6.wav",
)
NOISE_FILES = ("doing_the_dishes.wav", "exercise_bike.wav", "guitar_16k.wav")
SAMPLE_RATE_HZ = 16000

Scorer = Callable[[np.ndarray, int], float]


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """What :func:`calibrate_snr` measured and wrote."""

    bins_db: np.ndarray
    """(num_bins,) bin centres (true SNR, dB)."""
    true_db: np.ndarray
    """(num_mixtures,) true SNR of every mixture."""
    noise_index: np.ndarray
    """(num_mixtures,) index into ``noise_files`` of each mixture's noise."""
    estimates_db: dict[str, np.ndarray]
    """Estimator name -> (num_mixtures,) estimates."""
    mean_db: dict[str, np.ndarray]
    std_db: dict[str, np.ndarray]
    thresholds_db: dict[str, float]
    precision: dict[str, float]
    """Fraction of kept mixtures (estimate >= threshold) whose true SNR is >= target."""
    recall: dict[str, float]
    """Fraction of mixtures with true SNR >= target that are kept."""
    png_path: Path
    csv_path: Path
    markdown_path: Path
    elapsed_s: float
    target_db: float = 17.0
    noise_files: tuple[str, ...] = field(default=NOISE_FILES)


def _load(name: str) -> np.ndarray:
    audio, rate = sf.read(ASSETS_DIR / name, dtype="float32")
    if rate != SAMPLE_RATE_HZ or audio.ndim != 1:
        raise ValueError(f"{name}: expected 16 kHz mono, got {rate} Hz shape {audio.shape}")
    return audio


def active_speech_power(speech: np.ndarray, sample_rate_hz: int, floor_db: float = -40.0) -> float:
    """Mean power of the 20 ms frames within ``-floor_db`` dB of the loudest one (active speech)."""
    frame = sample_rate_hz // 50
    n = speech.size // frame
    power = np.mean(np.asarray(speech[: n * frame], np.float64).reshape(n, frame) ** 2, axis=1)
    active = power >= power.max() * 10 ** (floor_db / 10)
    return float(power[active].mean())


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g * noise`` with ``g`` such that active-speech power / noise power = ``snr_db``."""
    noise_power = float(np.mean(np.asarray(noise, np.float64) ** 2))
    gain = math.sqrt(
        active_speech_power(speech, SAMPLE_RATE_HZ) / (noise_power * 10 ** (snr_db / 10))
    )
    return (speech + gain * noise).astype(np.float32)


def _speech_segment(pool: list[np.ndarray], rng: np.random.Generator, n: int) -> np.ndarray:
    parts: list[np.ndarray] = []
    total = 0
    while total < 2 * n:
        part = pool[int(rng.integers(len(pool)))]
        parts.append(part)
        total += part.size
    joined = np.concatenate(parts)
    start = int(rng.integers(0, joined.size - n + 1))
    return joined[start : start + n]


def _noise_segment(
    pool: list[np.ndarray], rng: np.random.Generator, n: int
) -> tuple[int, np.ndarray]:
    which = int(rng.integers(len(pool)))
    start = int(rng.integers(0, pool[which].size - n + 1))
    return which, pool[which][start : start + n]


def default_scorers() -> dict[str, Scorer]:
    """The estimators calibrated by default: VAD-gated (webrtcvad, and with silero), WADA."""
    gated = VadGatedSnrEstimator(SnrConfig())
    gated_silero = VadGatedSnrEstimator(SnrConfig(use_silero=True))
    wada = WadaSnrEstimator(SnrConfig(estimator=SnrEstimatorKind.WADA))
    return {
        "vad_gated": gated.estimate,
        "vad_gated_silero": gated_silero.estimate,
        "wada": wada.estimate,
    }


def choose_threshold(
    true_db: np.ndarray, estimate_db: np.ndarray, target_db: float, max_false_keep: float
) -> float:
    """Smallest estimate T (0.5 dB grid) with at most ``max_false_keep`` of the kept below target."""
    for threshold in np.arange(-20.0, 60.5, 0.5):
        kept = estimate_db >= threshold
        if kept.any() and np.mean(true_db[kept] < target_db) <= max_false_keep:
            return float(threshold)
    return 60.0


def calibrate_snr(
    out_dir: Path,
    mixtures_per_bin: int = 60,
    seed: int = 0,
    snr_range_db: tuple[int, int] = (-5, 35),
    segment_s: float = 3.0,
    target_db: float = 17.0,
    max_false_keep: float = 0.05,
    scorers: dict[str, Scorer] | None = None,
) -> CalibrationResult:
    """Run the calibration (module docstring) and write the PNG, CSV and Markdown table to ``out_dir``.

    Example::

        result = calibrate_snr(Path("docs/snr_calibration"))
        result.thresholds_db["vad_gated"]      # the default keep threshold of that estimator
    """
    started = time.perf_counter()
    scorers = scorers if scorers is not None else default_scorers()
    rng = np.random.default_rng(seed)
    speech_pool = [_load(name) for name in SPEECH_FILES]
    noise_pool = [_load(name) for name in NOISE_FILES]
    n = round(segment_s * SAMPLE_RATE_HZ)
    bins = np.arange(snr_range_db[0], snr_range_db[1] + 1, dtype=np.float64)
    true_db = np.repeat(bins, mixtures_per_bin) + rng.uniform(
        -0.5, 0.5, bins.size * mixtures_per_bin
    )
    estimates = {name: np.empty(true_db.size) for name in scorers}
    noise_index = np.empty(true_db.size, np.int64)
    for i, snr_db in enumerate(true_db):
        speech = _speech_segment(speech_pool, rng, n)
        noise_index[i], noise = _noise_segment(noise_pool, rng, n)
        mixture = mix_at_snr(speech, noise, float(snr_db))
        for name, score in scorers.items():
            estimates[name][i] = score(mixture, SAMPLE_RATE_HZ)
    bin_index = np.repeat(np.arange(bins.size), mixtures_per_bin)
    mean = {
        k: np.array([v[bin_index == b].mean() for b in range(bins.size)])
        for k, v in estimates.items()
    }
    std = {
        k: np.array([v[bin_index == b].std() for b in range(bins.size)])
        for k, v in estimates.items()
    }
    thresholds = {
        k: choose_threshold(true_db, v, target_db, max_false_keep) for k, v in estimates.items()
    }
    precision, recall = {}, {}
    for k, v in estimates.items():
        kept = v >= thresholds[k]
        precision[k] = float(np.mean(true_db[kept] >= target_db)) if kept.any() else 1.0
        positives = true_db >= target_db
        recall[k] = float(np.mean(kept[positives])) if positives.any() else math.nan
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = CalibrationResult(
        bins_db=bins,
        true_db=true_db,
        noise_index=noise_index,
        estimates_db=estimates,
        mean_db=mean,
        std_db=std,
        thresholds_db=thresholds,
        precision=precision,
        recall=recall,
        png_path=out_dir / "snr_calibration.png",
        csv_path=out_dir / "snr_calibration.csv",
        markdown_path=out_dir / "snr_calibration.md",
        elapsed_s=0.0,
        target_db=target_db,
    )
    _write_csv(result, bin_index)
    _write_plot(result)
    elapsed = time.perf_counter() - started
    result = dataclasses.replace(result, elapsed_s=elapsed)
    _write_markdown(result, bin_index, mixtures_per_bin, seed, segment_s)
    return result


def _keep_rate(result: CalibrationResult, name: str, bin_index: np.ndarray) -> np.ndarray:
    kept = result.estimates_db[name] >= result.thresholds_db[name]
    return np.array([kept[bin_index == b].mean() for b in range(result.bins_db.size)])


def _write_csv(result: CalibrationResult, bin_index: np.ndarray) -> None:
    names = list(result.estimates_db)
    with open(result.csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        header = ["true_snr_db"]
        for name in names:
            header += [f"{name}_mean_db", f"{name}_std_db", f"{name}_keep_rate"]
        writer.writerow(header)
        keep = {name: _keep_rate(result, name, bin_index) for name in names}
        for b, centre in enumerate(result.bins_db):
            row = [f"{centre:.0f}"]
            for name in names:
                row += [
                    f"{result.mean_db[name][b]:.2f}",
                    f"{result.std_db[name][b]:.2f}",
                    f"{keep[name][b]:.3f}",
                ]
            writer.writerow(row)


def _write_plot(result: CalibrationResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.estimates_db)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.2), squeeze=False)
    lo, hi = result.bins_db[0], result.bins_db[-1]
    for ax, name in zip(axes[0], names, strict=True):
        m, s = result.mean_db[name], result.std_db[name]
        ax.plot([lo, hi], [lo, hi], color="0.6", ls="--", lw=1, label="identity")
        ax.fill_between(result.bins_db, m - s, m + s, alpha=0.3, color="C0", label="±1 std")
        ax.plot(result.bins_db, m, color="C0", lw=2, label="mean estimate")
        ax.axvline(result.target_db, color="C3", lw=1, label=f"true {result.target_db:g} dB")
        ax.axhline(result.thresholds_db[name], color="C2", lw=1, label="threshold")
        ax.set_title(
            f"{name}: T = {result.thresholds_db[name]:g} dB\n"
            f"precision {result.precision[name]:.2f}, recall {result.recall[name]:.2f}"
        )
        ax.set_xlabel("true SNR (dB, active speech)")
        ax.set_ylabel("estimated SNR (dB)")
        ax.set_xlim(lo, hi)
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(result.png_path, dpi=110)
    plt.close(fig)


def _write_markdown(
    result: CalibrationResult,
    bin_index: np.ndarray,
    mixtures_per_bin: int,
    seed: int,
    segment_s: float,
) -> None:
    names = list(result.estimates_db)
    lines = [
        "# SNR-estimator calibration (generated by `avforge calibrate-snr`)",
        "",
        f"{result.true_db.size} mixtures: {mixtures_per_bin} per 1 dB bin, {segment_s:g} s each, "
        f"seed {seed}; speech: {len(SPEECH_FILES)} real utterances; noise: {', '.join(NOISE_FILES)}. "
        f"Run time {result.elapsed_s:.1f} s.",
        "",
        f"| estimator | threshold (dB) | precision (true >= {result.target_db:g} dB among kept) "
        "| recall (kept among true >= target) |",
        "| --- | --- | --- | --- |",
    ]
    for name in names:
        lines.append(
            f"| {name} | {result.thresholds_db[name]:g} | {result.precision[name]:.3f} "
            f"| {result.recall[name]:.3f} |"
        )
    lines += [
        "",
        "Per noise recording: error (estimate - true) over true SNRs 10..25 dB, and the share of kept",
        "mixtures (estimate >= threshold) whose true SNR is under the target.",
        "",
        "| estimator | noise | bias (dB) | std (dB) | false keeps |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in names:
        est = result.estimates_db[name]
        for j, noise_name in enumerate(result.noise_files):
            mine = result.noise_index == j
            band = mine & (result.true_db >= 10.0) & (result.true_db <= 25.0)
            err = est[band] - result.true_db[band]
            kept = mine & (est >= result.thresholds_db[name])
            false_keep = (
                float(np.mean(result.true_db[kept] < result.target_db)) if kept.any() else 0.0
            )
            bias, spread = (
                (f"{err.mean():+.1f}", f"{err.std():.1f}") if err.size else ("n/a", "n/a")
            )
            lines.append(f"| {name} | {noise_name} | {bias} | {spread} | {false_keep:.3f} |")
    lines += [
        "",
        "Per bin: mean ± std of the estimate (dB), and the fraction kept at the threshold.",
        "",
    ]
    lines.append("| true SNR (dB) | " + " | ".join(names) + " |")
    lines.append("| --- |" + " --- |" * len(names))
    keep = {name: _keep_rate(result, name, bin_index) for name in names}
    for b, centre in enumerate(result.bins_db):
        cells = [
            f"{result.mean_db[n][b]:.1f} ± {result.std_db[n][b]:.1f} (kept {keep[n][b]:.2f})"
            for n in names
        ]
        lines.append(f"| {centre:.0f} | " + " | ".join(cells) + " |")
    result.markdown_path.write_text("\n".join(lines) + "\n")
