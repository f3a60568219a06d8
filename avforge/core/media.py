"""The corpus's media rates: every clip's audio and face stream are stored at these, and the models
read them. Models with their own input rate (LR-ASD, YAMNet, GE2E, silero-vad) keep theirs in their
own modules: those are properties of the published networks, not of the corpus."""

from __future__ import annotations

SAMPLE_RATE_HZ = 16_000
"""Audio sample rate of clips, mixtures and separation models (the AVSpeech paper's)."""
FPS = 25
"""Video frame rate of face streams (crops, embeddings, lip features): one frame per 40 ms, 640
samples. An int, so that samples per frame stay whole numbers."""
