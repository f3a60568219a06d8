"""BSS-eval SDR: avforge's numpy solve (``training.metrics.sdr``) against torchmetrics'
``signal_distortion_ratio``, the implementation it replaced, on the same real speech in one run.

Inputs: ``--batch`` two-speaker mixtures of ``--seconds`` s from the bundled LibriSpeech speakers
(``tests/data/speech/librispeech``); every target is scored against the unprocessed mixture, the
way ``avforge evaluate`` scores its inputs (B x 2 rows). torch runs on one thread, the only count at
which torchmetrics' ``torch.linalg.solve`` works in this torch build. The tools take turns, who
goes first alternates; the speed-up is the median over ``--rounds`` of the per-round ratios of wall
times. Also prints the largest difference between the two tools' values (dB).

Run: ``.venv/bin/python benchmarks/metrics.py [--batch 16] [--seconds 2] [--rounds 7]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torchmetrics.functional.audio import signal_distortion_ratio

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # `training`, not benchmarks/training.py

from avforge.core.media import SAMPLE_RATE_HZ
from training.metrics import SDR_FILTER_TAPS, sdr

SPEECH = Path(__file__).resolve().parents[1] / "tests" / "data" / "speech" / "librispeech"


def _inputs(batch: int, seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    n = round(seconds * SAMPLE_RATE_HZ)
    files = sorted(SPEECH.glob("*.flac"))
    clips = []
    for f in files:
        x, _ = sf.read(f, dtype="float32")
        if len(x) >= n:
            clips.append(x[:n])
    if len(clips) < 2:
        sys.exit(f"need two clips of {seconds} s in {SPEECH}")
    rng = np.random.default_rng(0)
    pairs = [rng.choice(len(clips), 2, replace=False) for _ in range(batch)]
    targets = torch.from_numpy(np.stack([[clips[i], clips[j]] for i, j in pairs]))
    mixture = targets.sum(dim=1, keepdim=True).expand_as(targets).contiguous()
    return mixture, targets


def _torchmetrics(est: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    length = tgt.shape[-1]
    values = signal_distortion_ratio(
        est.reshape(-1, length).double(),
        tgt.reshape(-1, length).double(),
        filter_length=SDR_FILTER_TAPS,
        zero_mean=True,
    )
    return values.float().reshape(tgt.shape[:-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    est, tgt = _inputs(args.batch, args.seconds)
    ours, theirs = sdr(est, tgt), _torchmetrics(est, tgt)  # warm-up, and the agreement check
    diff = float((ours - theirs).abs().max())
    tools = {"avforge": sdr, "torchmetrics": _torchmetrics}
    ratios, walls = [], {name: [] for name in tools}
    for r in range(args.rounds):
        order = list(tools) if r % 2 == 0 else list(reversed(tools))
        for name in order:
            t0 = time.perf_counter()
            tools[name](est, tgt)
            walls[name].append(time.perf_counter() - t0)
        ratios.append(walls["torchmetrics"][-1] / walls["avforge"][-1])
    rows = est.shape[0] * est.shape[1]
    print(f"SDR of {rows} rows of {args.seconds} s, {SDR_FILTER_TAPS} taps, 1 torch thread")
    for name, w in walls.items():
        print(f"  {name:13s} median {statistics.median(w) * 1000:7.1f} ms per batch")
    print(
        f"  speed-up (torchmetrics time / avforge time): median {statistics.median(ratios):.2f}x "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}); largest difference {diff:.2e} dB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
