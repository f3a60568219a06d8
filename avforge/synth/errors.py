"""Typed errors of the synthetic talk-video generator."""

from __future__ import annotations


class SynthError(RuntimeError):
    """Base class: the generator could not do what was asked."""


class ScenarioError(SynthError, ValueError):
    """A scenario or section is malformed (times do not tile, unknown speaker, missing SNR, ...)."""


class MissingToolError(SynthError):
    """A required external program (ffmpeg, espeak-ng) is not installed."""


class RenderError(SynthError):
    """ffmpeg failed while encoding; the message carries the tail of its stderr."""
