"""Shared fixtures for the mixing tests: one small real corpus (clips, noises, a tiny RIR bank)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avforge.core.cluster import ClusterConfig, ClusterType
from avforge.testing.corpus import build_corpus
from mixing.rirs import RirConfig, build_rirs

TINY_RIRS = RirConfig(
    n_rooms=3,
    sources_per_room=4,
    rooms_per_shard=2,
    rt60_s=(0.15, 0.35),
    room_x_m=(3.0, 5.0),
    room_y_m=(3.0, 5.0),
    val_fraction=0.0,
    test_fraction=0.0,
    seed=11,
)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 speakers x 2 clips of 4 s (faces + embeddings), the bundled noises, 3 rooms x 4 RIRs."""
    root = tmp_path_factory.mktemp("mixing-corpus")
    path = build_corpus(root, n_speakers=4, clips_per_speaker=2, with_embeddings=True, seed=3)
    build_rirs(str(path), TINY_RIRS, ClusterConfig(type=ClusterType.SYNCHRONOUS))
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
