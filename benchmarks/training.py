"""Training throughput: optimizer-step samples/s of the separators, and loader samples/s with k workers.

Usage::

    .venv/bin/python benchmarks/training.py [--out DIR] [--steps N] [--workers 0,1,2] [--device cpu|cuda]

Builds the two-speaker real-speech corpus of the training tests (CMU ARCTIC, drawn faces) in a
temporary folder, then measures, for 3 s mixtures of the ``2s_clean`` task:

- loader samples/s: rendered mixtures per second out of a DataLoader over the training stream with
  k workers, with and without face crops (what feeds an audio-only vs an audio-visual model);
- training samples/s: mixtures per second through forward + backward + Adam step, for a reduced
  model (the test config) and for the paper-size model (96 filters x 15 layers, BLSTM 400, FC 600).
  On a GPU it also reports whether the loader keeps up (loader rate with the most workers >= the
  training rate of the paper model).

Prints one JSON object and writes it to ``--out/training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifests.schema import MixTask, Split
from mixing.config import FaceStream, MixingConfig
from tests.helpers.training_corpus import build_two_speaker_corpus
from training.config import REDUCED_MODEL, ModelConfig, ModelKind
from training.data import MixtureSource, MixtureStream, split_config
from training.system import SeparationSystem

REDUCED = REDUCED_MODEL


def loader_rate(corpus: Path, face_stream: FaceStream, workers: int, batches: int) -> float:
    mixing = split_config(
        MixingConfig(task=MixTask.TWO_SPEAKERS, duration_s=3.0), Split.TRAIN, face_stream
    )
    stream = MixtureStream(
        MixtureSource([str(corpus)], mixing), batch_size=8, steps_per_epoch=batches + 2, epoch=0
    )
    loader = DataLoader(stream, batch_size=None, num_workers=workers)
    it = iter(loader)
    next(it)  # worker start-up and first render are not throughput
    t0 = time.perf_counter()
    n = 0
    for batch in it:
        n += len(batch)
    return n / (time.perf_counter() - t0)


def train_rate(corpus: Path, model: ModelConfig, steps: int, batch_size: int, device: str) -> float:
    face_stream = FaceStream.NONE if model.kind == ModelKind.AUDIO_ONLY else FaceStream.CROPS
    mixing = split_config(
        MixingConfig(task=MixTask.TWO_SPEAKERS, duration_s=3.0), Split.TRAIN, face_stream
    )
    stream = MixtureStream(
        MixtureSource([str(corpus)], mixing), batch_size=batch_size, steps_per_epoch=1, epoch=0
    )
    batch = next(iter(stream))
    batch.mixture, batch.sources = batch.mixture.to(device), batch.sources.to(device)
    if batch.faces is not None:
        batch.faces = batch.faces.to(device)
    batch.images = None
    system = SeparationSystem.from_configs(model).to(device)
    opt = torch.optim.Adam(system.parameters(), lr=1e-4)
    autocast = torch.autocast(device_type=device, dtype=torch.float16, enabled=device == "cuda")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss, *_ = system.compute_loss(batch)
        loss.backward()
        opt.step()

    step()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--loader-batches", type=int, default=12)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-paper-model", action="store_true")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    result: dict[str, object] = {
        "device": args.device,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "mixture_s": 3.0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        corpus = build_two_speaker_corpus(Path(tmp) / "corpus", crop_size_px=112)
        loaders: dict[str, dict[str, float]] = {}
        for stream in (FaceStream.NONE, FaceStream.CROPS):
            loaders[stream.value] = {
                str(k): round(loader_rate(corpus, stream, k, args.loader_batches), 1)
                for k in workers
            }
        result["loader_samples_per_s"] = loaders
        models = {
            "audio_only_reduced": ModelConfig(kind=ModelKind.AUDIO_ONLY, **REDUCED),
            "audio_visual_reduced": ModelConfig(**REDUCED),
        }
        if not args.skip_paper_model:
            models["audio_only_paper"] = ModelConfig(kind=ModelKind.AUDIO_ONLY)
            models["audio_visual_paper"] = ModelConfig()
        rates = {}
        for name, model in models.items():
            paper = name.endswith("paper")
            batch = (16 if args.device == "cuda" else 2) if paper else 8
            steps = args.steps if not paper or args.device == "cuda" else 1
            rates[name] = round(train_rate(corpus, model, steps, batch, args.device), 2)
        result["train_samples_per_s"] = rates
        if "audio_visual_paper" in rates:
            best_loader = max(loaders["crops"].values())
            result["loader_keeps_up_with_paper_av"] = best_loader >= rates["audio_visual_paper"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
