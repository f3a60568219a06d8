"""Shared fixtures of the training tests: seeded RNGs and tiny model widths."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from avforge.testing.training_corpus import TINY_AUDIO  # noqa: F401  (re-exported: tests import it from here)


@pytest.fixture(autouse=True)
def deterministic_rng() -> None:
    """Seed every generator the training code may touch."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


# Constructor arguments of a reduced-width model: the paper's structure at test speed (the audio
# widths have one home: avforge.testing.training_corpus).
TINY_VISUAL = {"visual_channels": 8, "visual_layers": 3}
