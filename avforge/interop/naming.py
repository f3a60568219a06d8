"""Ids, file names and splits for data crossing avforge's boundary (pure functions, no I/O).

- :func:`safe_name` turns a foreign id (a Lhotse cut id may hold ``/`` or spaces) into a stable
  ``[A-Za-z0-9_.-]`` name that is still readable and never collides for two different inputs;
- :func:`hash_split` assigns train / val / test from a key (a speaker, a recording) by a salted
  SHA-256, the same rule as curation's per-source split: same key, same split, on every machine
  (re-exported from :mod:`avforge.core.ids`, the rule's one home).
"""

from __future__ import annotations

import re

from avforge.core.ids import hash_split, stable_hash

__all__ = ["hash_split", "safe_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_NAME = 80


def safe_name(text: str) -> str:
    """``text`` when it is already a safe name (``[A-Za-z0-9_.-]``, not starting with ``.``, at most 80
    characters), else a slug of it plus 10 hex digits of its SHA-256 (stable, collision-free).

    Example::

        safe_name("1089-134686-0000")      # '1089-134686-0000'
        safe_name("spk 1/utt#2")           # 'spk_1_utt_2-<10 hex digits>'
    """
    if text and len(text) <= _MAX_NAME and not _UNSAFE.search(text) and not text.startswith("."):
        return text
    slug = _UNSAFE.sub("_", text).strip("._")[:60] or "item"
    return f"{slug}-{stable_hash(text, 10)}"
