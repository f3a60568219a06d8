"""Sizes and YAML configs of ``avforge demo``: what a user would write by hand for their own corpus.

:func:`write_demo_configs` writes, into ``OUT/configs/``:

- ``dask_cluster.yaml``: a LocalCluster of 2 single-threaded worker processes;
- ``curate.yaml``: curation defaults, except that every source goes to the ``train`` split (the demo
  corpus has a handful of sources, one speaker each: too few to hold speakers out);
- ``rirs.yaml``: a few rooms, all in ``train`` (so are the bundled noises: ``noises add --split train``);
- ``mixing_eval.yaml``: the frozen evaluation set (2 clean speakers, 1 s, training clips, another seed
  than training's, so other pairings, crops and gains than the models were trained on);
- ``mixing_examples.yaml``: 2 speakers + noise in reverberant rooms, to render and listen to;
- ``train_audio_only.yaml`` / ``train_audio_visual.yaml``: reduced CPU-sized models (the settings of
  ``tests/training``'s learning test: 8 filters x 6 audio layers, BLSTM 48, FC 64, negative SI-SDR,
  Adam 2e-3, 1 s clean 2-speaker mixtures, batches of 8); face crops resized to 32 px.

Every dict is a plain mapping of the stage's config dataclass (``load_config`` rejects unknown keys, so
``tests/test_demo.py`` loads each one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from avforge.core.config import check_range


@dataclass(frozen=True)
class DemoSize:
    """How big a demo run is."""

    name: str
    train_steps: int
    """Optimiser steps of each model."""
    batch_size: int
    mixture_duration_s: float
    """Length of training and evaluation mixtures (a multiple of 40 ms)."""
    eval_mixtures: int
    """Recipes in the frozen evaluation set."""
    rooms: int
    """Rooms of the RIR bank (4 source positions each)."""
    examples: int
    """Example mixtures rendered of each kind (evaluation set, noisy reverberant)."""
    face_size_px: int = 32
    """Face crops are resized to this for the audio-visual model (curation stores 112 px)."""
    learning_rate: float = 2e-3
    torch_threads: int = 1
    """``OMP_NUM_THREADS`` of the ``train`` / ``evaluate`` processes. These models are too small to gain
    from a second thread, and on a busy 2-core machine two spinning OpenMP threads cost 2-4x the CPU
    (40 steps of the audio-visual model: 29 s wall with one thread, 131 s with two, measured under load)."""

    def __post_init__(self) -> None:
        check_range(self, "train_steps", 1)
        check_range(self, "batch_size", 1, 64)
        check_range(self, "mixture_duration_s", 0.4, 10.0)
        check_range(self, "eval_mixtures", 1)
        check_range(self, "rooms", 1)
        check_range(self, "examples", 1)
        check_range(self, "face_size_px", 16, 112)
        check_range(self, "torch_threads", 1, 256)


FULL = DemoSize(
    "full",
    train_steps=300,
    batch_size=8,
    mixture_duration_s=1.0,
    eval_mixtures=32,
    rooms=4,
    examples=3,
)
QUICK = DemoSize(
    "quick",
    train_steps=12,
    batch_size=4,
    mixture_duration_s=1.0,
    eval_mixtures=8,
    rooms=2,
    examples=2,
)

TRAIN_SEED = 0
EVAL_SEED = 1000
"""Evaluation recipes come from another seed than the training stream (seed 0, epochs 0..)."""


@dataclass(frozen=True)
class DemoConfigs:
    """Paths of the written configs (all under ``OUT/configs/``)."""

    cluster: Path
    curate: Path
    rirs: Path
    mixing_eval: Path
    mixing_examples: Path
    train_audio_only: Path
    train_audio_visual: Path


def _train_config(kind: str, out_dir: Path, corpus: Path, size: DemoSize) -> dict[str, Any]:
    # imported here: training.config pulls in torch, which the CLI must not load at start-up
    from training.config import REDUCED_MODEL

    steps = size.train_steps
    return {
        "out_dir": str(out_dir),
        "seed": TRAIN_SEED,
        "model": {"kind": kind, "n_sources": 2, "visual_input": "crops", **REDUCED_MODEL},
        "loss": {"kind": "neg_sisdr"},
        "optim": {"lr": size.learning_rate},
        "data": {
            "corpora": [str(corpus)],
            "mixing": {
                "task": "2s_clean",
                "duration_s": size.mixture_duration_s,
                "split": "train",
                "seed": TRAIN_SEED,
                "render": {"face_size_px": size.face_size_px},
            },
            "batch_size": size.batch_size,
            "num_workers": 0,
            "items_per_epoch": steps * size.batch_size,
            "val_items": 0,
        },
        "trainer": {
            "max_steps": steps,
            "accelerator": "cpu",
            "precision": "32",
            "val_every_n_steps": steps + 1,
            "checkpoint_every_n_steps": steps,
            "log_every_n_steps": max(1, min(25, steps // 2)),
            "progress_bar": True,
        },
    }


def demo_config_dicts(out: Path, size: DemoSize) -> dict[str, dict[str, Any]]:
    """File stem -> config mapping for a demo writing into ``out`` (see the module docstring)."""
    corpus = out / "corpus"
    return {
        "dask_cluster": {
            "type": "local",
            "local": {"n_workers": 2, "threads_per_worker": 1, "memory_limit": "3GiB"},
        },
        "curate": {"export": {"val_ratio": 0.0, "test_ratio": 0.0}},
        "rirs": {
            "n_rooms": size.rooms,
            "rooms_per_shard": 2,
            "val_fraction": 0.0,
            "test_fraction": 0.0,
        },
        "mixing_eval": {
            "task": "2s_clean",
            "duration_s": size.mixture_duration_s,
            "split": "train",
            "seed": EVAL_SEED,
        },
        "mixing_examples": {
            "task": "2s_noise",
            "duration_s": 3.0,
            "p_reverb": 1.0,
            "split": "train",
            "seed": EVAL_SEED + 1,
        },
        "train_audio_only": _train_config("audio_only", out / "runs" / "audio_only", corpus, size),
        "train_audio_visual": _train_config(
            "audio_visual", out / "runs" / "audio_visual", corpus, size
        ),
    }


def write_demo_configs(out: Path, size: DemoSize) -> DemoConfigs:
    """Write the configs into ``out/configs/`` and return their paths."""
    folder = out / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for stem, data in demo_config_dicts(out, size).items():
        path = folder / f"{stem}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        paths[stem] = path
    return DemoConfigs(
        cluster=paths["dask_cluster"],
        curate=paths["curate"],
        rirs=paths["rirs"],
        mixing_eval=paths["mixing_eval"],
        mixing_examples=paths["mixing_examples"],
        train_audio_only=paths["train_audio_only"],
        train_audio_visual=paths["train_audio_visual"],
    )
