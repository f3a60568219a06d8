"""The batch a :class:`training.system.SeparationSystem` consumes, whatever produced it.

The DataModule turns rendered mixtures into this; tests and benchmarks may build it directly. It is a
plain (mutable) dataclass so Lightning can move it between devices.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor


@dataclasses.dataclass
class SeparationBatch:
    """B mixtures of n speakers, L samples at 16 kHz."""

    mixture: Tensor
    """(B, L) float32."""
    sources: Tensor
    """(B, n, L) float32: each speaker's target as it sounds in the mixture, in face order."""
    faces: Tensor | None = None
    """Per speaker, in the same order: crops uint8 (B, n, T_v, H, W, 3), embeddings (B, n, T_v, D)
    or lip features float32 (B, n, T_v, 128)."""
    mixture_ids: list[str] = dataclasses.field(default_factory=list)
    images: Tensor | None = None
    """(B, n, L) each speaker as heard in the mixture (reverberant when the mixture is); equals
    ``sources`` for dry mixtures. The residual target is ``mixture - images[:, :k].sum(1)``."""

    def __len__(self) -> int:
        return int(self.mixture.shape[0])
