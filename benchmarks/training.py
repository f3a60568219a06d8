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

``--curve MINUTES``: instead, the learning curve of the CPU-sized audio-only model on real speech
with held-out speakers (:func:`learning_curve`): LibriSpeech train-clean-100, one utterance per speaker
(``--speech DIR``, default ``../shared/data/speech/librispeech-train-clean-100``, else the 251 speakers
bundled with the tests), speakers split train / val / test, 2-speaker clean mixtures; every
``--eval-every`` steps, the mean SI-SDRi (dB) on 64 fixed 2 s test-speaker mixtures against minutes of
training, next to the unprocessed mixture (0 dB; its SI-SDR is reported), the fixed spectral-gain
baseline fitted on training speakers and the ideal-ratio-mask oracle
(:mod:`training.baselines`). Writes ``--out/learning_curve.json`` and ``--out/learning_curve.png``.
With ``--paper-curve`` the paper-size audio-only model instead, on ``--device`` (a GPU).
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

from avforge.testing.training_corpus import (
    build_two_speaker_corpus,
    fixed_mixtures,
    mean_si_sdri,
)
from manifests.schema import MixTask, Split
from mixing.config import FaceStream, MixingConfig
from training.baselines import SpectralGains, ideal_ratio_masks
from training.config import CPU_LEARNING_MODEL, REDUCED_MODEL, ModelConfig, ModelKind
from training.data import BatchStream, MixtureSource, split_config
from training.system import SeparationSystem

TEST_SPEECH = Path(__file__).resolve().parents[1] / "tests" / "data" / "speech"
"""The real speech the learning test trains on (data files; nothing is imported from tests/)."""
REDUCED = REDUCED_MODEL


def loader_rate(corpus: Path, face_stream: FaceStream, workers: int, batches: int) -> float:
    mixing = split_config(
        MixingConfig(task=MixTask.TWO_SPEAKERS, duration_s=3.0), Split.TRAIN, face_stream
    )
    stream = BatchStream(
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
    stream = BatchStream(
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


def speech_speakers(folder: Path | None) -> list:
    """Speakers for the learning curve: every speaker of ``folder`` (LibriSpeech layout with
    ``SPEAKERS.TXT``; 80 % train, 5 % val, 15 % test by speaker, alternating sexes), else the
    speakers bundled with the tests (those of the learning test)."""
    from avforge.testing.speech import Speaker, bundled_speakers

    if folder is None or not (folder / "SPEAKERS.TXT").exists():
        return bundled_speakers(TEST_SPEECH / "librispeech") + bundled_speakers(
            TEST_SPEECH / "librispeech_more"
        )
    sex = {}
    for line in (folder / "SPEAKERS.TXT").read_text().splitlines():
        if not line.startswith(";") and "|" in line:
            parts = [p.strip() for p in line.split("|")]
            sex[parts[0]] = parts[1]
    files = sorted(folder.glob("*.flac"), key=lambda p: int(p.name.split("-")[0]))
    out = []
    for i, path in enumerate(files):
        bucket = i % 20
        split = Split.TEST if bucket < 3 else Split.VAL if bucket == 3 else Split.TRAIN
        out.append(
            Speaker(path.name.split("-")[0], sex.get(path.name.split("-")[0], "?"), split, path)
        )
    return out


def learning_curve(
    corpus: Path,
    minutes: float,
    eval_every: int,
    batch_size: int,
    lr: float,
    seed: int,
    *,
    device: str = "cpu",
    paper_model: bool = False,
) -> dict[str, object]:
    """Train the CPU-sized audio-only model (:data:`training.config.CPU_LEARNING_MODEL`; neg SI-SDR,
    PIT, Adam ``lr`` times 0.4 every 900 steps as in the learning test, 1 s mixtures) for ``minutes``
    of wall time; held-out-speaker SI-SDRi every ``eval_every`` steps. ``paper_model``: the paper-size
    audio-only model instead (meant for ``device="cuda"``)."""
    from training import metrics
    from training.config import LossConfig, LossKind, OptimConfig

    torch.manual_seed(seed)
    test = fixed_mixtures(corpus, Split.TEST, 64, seed=1)
    fit = fixed_mixtures(corpus, Split.TRAIN, 256, seed=2)
    gains = SpectralGains.fit(fit.sources)
    mixture_sisdr = metrics.si_sdr(test.mixture.unsqueeze(1).expand_as(test.sources), test.sources)
    reference = {
        "mixture_si_sdr_db": round(float(mixture_sisdr.mean()), 2),
        "mixture_si_sdri_db": 0.0,
        "spectral_gain_baseline_si_sdri_db": round(mean_si_sdri(gains(test.mixture), test), 2),
        "oracle_irm_si_sdri_db": round(
            mean_si_sdri(ideal_ratio_masks(test.sources, test.mixture), test, aligned=True), 2
        ),
    }
    system = SeparationSystem.from_configs(
        ModelConfig(kind=ModelKind.AUDIO_ONLY, **({} if paper_model else CPU_LEARNING_MODEL)),
        LossConfig(kind=LossKind.NEG_SISDR),
        OptimConfig(lr=lr),
    ).to(device)
    opt = torch.optim.Adam(system.parameters(), lr=lr)
    decay = torch.optim.lr_scheduler.StepLR(opt, step_size=900, gamma=0.4)
    mixing = split_config(
        MixingConfig(task=MixTask.TWO_SPEAKERS, duration_s=1.0, seed=seed),
        Split.TRAIN,
        FaceStream.NONE,
    )
    stream = iter(
        BatchStream(
            MixtureSource([str(corpus)], mixing),
            batch_size=batch_size,
            steps_per_epoch=10**6,
            epoch=0,
        )
    )
    points = []

    def evaluate(step: int, elapsed_s: float) -> None:
        system.eval()
        with torch.no_grad():
            out = system.model(test.mixture.to(device)).waveforms[:, :2].cpu()
        value = mean_si_sdri(out, test)
        points.append(
            {"step": step, "minutes": round(elapsed_s / 60, 2), "si_sdri_db": round(value, 2)}
        )
        print(json.dumps(points[-1]), flush=True)
        system.train()

    t0 = time.perf_counter()
    evaluated = 0.0
    step = 0
    evaluate(0, 0.0)
    while (time.perf_counter() - t0 - evaluated) < minutes * 60:
        batch = next(stream)
        batch.images = None
        batch.mixture, batch.sources = batch.mixture.to(device), batch.sources.to(device)
        opt.zero_grad(set_to_none=True)
        loss, *_ = system.compute_loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(system.parameters(), 5.0)
        opt.step()
        decay.step()
        step += 1
        if step % eval_every == 0:
            e0 = time.perf_counter()
            evaluate(step, e0 - t0 - evaluated)
            evaluated += time.perf_counter() - e0
    if step % eval_every:
        evaluate(step, time.perf_counter() - t0 - evaluated)
    return {**reference, "curve": points, "batch_size": batch_size, "lr": lr, "seed": seed}


def plot_curve(result: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["curve"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(
        [p["minutes"] for p in curve],
        [p["si_sdri_db"] for p in curve],
        "o-",
        label=f"audio-only model ({result.get('model', 'CPU_LEARNING_MODEL')})",
    )
    for key, label, style in (
        ("oracle_irm_si_sdri_db", "oracle IRM", "g--"),
        ("spectral_gain_baseline_si_sdri_db", "fixed spectral gain", "r--"),
        ("mixture_si_sdri_db", "mixture", "k:"),
    ):
        ax.axhline(result[key], color=style[0], linestyle=style[1:], label=label)
    ax.set_xlabel("minutes of CPU training")
    ax.set_ylabel("held-out-speaker SI-SDRi (dB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--loader-batches", type=int, default=12)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-paper-model", action="store_true")
    parser.add_argument(
        "--curve", type=float, default=0.0, help="learning curve: minutes of training"
    )
    parser.add_argument(
        "--speech", type=Path, default=Path("../shared/data/speech/librispeech-train-clean-100")
    )
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument(
        "--paper-curve", action="store_true", help="learning curve of the paper-size model (GPU)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.curve > 0:
        from avforge.testing.speech import build_speech_corpus

        args.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            speakers = speech_speakers(args.speech if args.speech.exists() else None)
            corpus = build_speech_corpus(speakers, Path(tmp) / "corpus")
            result = learning_curve(
                corpus,
                args.curve,
                args.eval_every,
                args.batch_size,
                args.lr,
                args.seed,
                device=args.device,
                paper_model=args.paper_curve,
            )
        result.update(
            device=args.device,
            model="paper" if args.paper_curve else "CPU_LEARNING_MODEL",
            speakers={s.value: sum(sp.split == s for sp in speakers) for s in Split},
            cpu_count=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            date=time.strftime("%Y-%m-%d"),
        )
        (args.out / "learning_curve.json").write_text(json.dumps(result, indent=2))
        plot_curve(result, args.out / "learning_curve.png")
        print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=2))
        return
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
