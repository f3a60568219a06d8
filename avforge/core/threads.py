"""torch's thread count, which is process-wide: run a block on a given count and give it back.

Libraries change it behind the caller's back (silero-vad's import sets one thread for the whole
process), and a stage that picks its own count must not leave it for whatever runs next in the same
process (in-process curation, then training)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(count: int | None = None) -> Iterator[None]:
    """Run the block on ``count`` torch threads (``None``: as they are), then restore the count the
    process had before, also when the block itself changed it."""
    import torch

    before = torch.get_num_threads()
    if count is not None and count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
