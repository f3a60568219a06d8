"""Shared corpora for the interop tests (built once per session, never modified by a test)."""

from __future__ import annotations

import pytest

from avforge.testing.corpus import build_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """3 real speakers x 2 clips of 4 s, 16 kHz PCM16, 25 fps face tracks with missing frames."""
    return build_corpus(
        tmp_path_factory.mktemp("interop"), n_speakers=3, clips_per_speaker=2, with_noises=False
    )
