"""Typed errors of the mixing stage (each a ``ValueError`` whose message names the recipe and problem)."""

from __future__ import annotations


class MixingError(ValueError):
    """A recipe cannot be rendered from this corpus; the message names the recipe and the problem."""


class SilentRecipeError(MixingError):
    """A speaker crop or the noise of a recipe has no active frame, so its level is undefined."""
