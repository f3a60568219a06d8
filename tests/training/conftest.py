"""Shared fixtures of the training tests: seeded RNGs and tiny model widths."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def deterministic_rng() -> None:
    """Seed every generator the training code may touch."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


# Constructor arguments of a reduced-width model: the paper's structure at test speed.
TINY_AUDIO = {
    "audio_channels": 4,
    "audio_out_channels": 2,
    "audio_layers": 4,
    "lstm_hidden": 8,
    "fc_dim": 8,
}
TINY_VISUAL = {"visual_channels": 8, "visual_layers": 3}
